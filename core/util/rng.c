/* rng.c - xoshiro256** seeded through splitmix64, with uniform, normal
 * (Box-Muller), exponential and gamma (Marsaglia-Tsang) draws (rng.h).
 * Pure functions of the seed: identical on every platform with IEEE
 * doubles and a C11 libm. */
#include <math.h>

#include "util/rng.h"

uint64_t pgd_hash64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

uint64_t pgd_rng_stream(uint64_t seed, uint64_t stream, uint64_t index) {
    return pgd_hash64(pgd_hash64(pgd_hash64(seed) ^ stream) ^ index);
}

void pgd_rng_seed(pgd_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) {
        x += 0x9e3779b97f4a7c15ULL;
        r->s[i] = pgd_hash64(x);
    }
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t pgd_rng_next(pgd_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double pgd_rng_uniform(pgd_rng *r) { return (double)(pgd_rng_next(r) >> 11) * 0x1.0p-53; }

double pgd_rng_uniform_pos(pgd_rng *r) {
    return ((double)(pgd_rng_next(r) >> 11) + 0.5) * 0x1.0p-53;
}

int64_t pgd_rng_range(pgd_rng *r, int64_t lo, int64_t hi) {
    uint64_t span = (uint64_t)(hi - lo);
    if (span == 0) return lo;
    /* rejection to avoid modulo bias */
    uint64_t lim = UINT64_MAX - UINT64_MAX % span;
    uint64_t x;
    do x = pgd_rng_next(r);
    while (x >= lim);
    return lo + (int64_t)(x % span);
}

double pgd_rng_normal(pgd_rng *r) {
    double u1 = pgd_rng_uniform_pos(r), u2 = pgd_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

double pgd_rng_exponential(pgd_rng *r, double mean) { return -mean * log(pgd_rng_uniform_pos(r)); }

double pgd_rng_gamma(pgd_rng *r, double shape, double scale) {
    if (shape < 1.0) { /* boost: G(a) = G(a+1) * U^(1/a) */
        double g = pgd_rng_gamma(r, shape + 1.0, 1.0);
        return scale * g * pow(pgd_rng_uniform_pos(r), 1.0 / shape);
    }
    double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v;
        do {
            x = pgd_rng_normal(r);
            v = 1.0 + c * x;
        } while (v <= 0.0);
        v = v * v * v;
        double u = pgd_rng_uniform_pos(r);
        if (u < 1.0 - 0.0331 * x * x * x * x) return scale * d * v;
        if (log(u) < 0.5 * x * x + d * (1.0 - v + log(v))) return scale * d * v;
    }
}
