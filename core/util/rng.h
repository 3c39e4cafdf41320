/* rng.h - the project's one pseudo-random generator: xoshiro256**
 * (Blackman & Vigna) with splitmix64 seeding and mixing, plus the
 * distributions the workload generator draws from (rng.c). Used by the
 * workload (a stream per request and purpose) and by the sampler (one
 * generator per sequence).
 *
 * Invariant: pure functions of the state; identical on every platform with
 * IEEE doubles and a C11 libm. */
#ifndef PAGODA_UTIL_RNG_H
#define PAGODA_UTIL_RNG_H

#include <stdint.h>

typedef struct pgd_rng {
    uint64_t s[4];
} pgd_rng;

uint64_t pgd_hash64(uint64_t x); /* splitmix64: mix(x + 0x9e3779b97f4a7c15) */
/* s[i] = pgd_hash64(seed + (i + 1) * 0x9e3779b97f4a7c15), i = 0..3 */
void pgd_rng_seed(pgd_rng *r, uint64_t seed);
/* Seed for stream `stream`, item `index` of seed `seed`. */
uint64_t pgd_rng_stream(uint64_t seed, uint64_t stream, uint64_t index);
uint64_t pgd_rng_next(pgd_rng *r);
double pgd_rng_uniform(pgd_rng *r);                        /* [0, 1) */
double pgd_rng_uniform_pos(pgd_rng *r);                    /* (0, 1) */
int64_t pgd_rng_range(pgd_rng *r, int64_t lo, int64_t hi); /* [lo, hi) */
double pgd_rng_normal(pgd_rng *r);                         /* N(0, 1) */
double pgd_rng_exponential(pgd_rng *r, double mean);
double pgd_rng_gamma(pgd_rng *r, double shape, double scale);

#endif
