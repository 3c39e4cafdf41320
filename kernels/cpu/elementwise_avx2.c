/* elementwise_avx2.c - AVX2/FMA/F16C row and element kernels: rmsnorm,
 * silu*up, add, f16/bf16 -> f32 conversion and a vector exp.
 *
 * exp256 is the Cephes expf scheme (range reduction by ln2 split in two
 * constants, degree-5 polynomial, exponent built in the integer unit); its
 * error is ~2 ulp over the clamped input range [-87.3, 88.0] (clamped so
 * that 2^n never overflows), far below the 1e-5 tolerance against libm.
 * rmsnorm computes its scale with the same scalar formula as the reference,
 * so only the order of the sum of squares differs. silu*up runs its tail
 * through the vector code too (zero-padded), so that an element's result
 * does not depend on where a thread's range or a row ends. All functions are
 * single-threaded; n need not be a multiple of 8. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "fast_impl.h"

static inline __m256 exp256(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.0f), lo = _mm256_set1_ps(-87.3365478515625f);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 p = _mm256_set1_ps(1.9875691500E-4f);
    p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(1.3981999507E-3f));
    p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(8.3334519073E-3f));
    p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(4.1665795894E-2f));
    p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(1.6666665459E-1f));
    p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(5.0000001201E-1f));
    __m256 x2 = _mm256_mul_ps(x, x);
    p = _mm256_fmadd_ps(p, x2, _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127));
    e = _mm256_slli_epi32(e, 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

float pgd_avx2_exp_sum(float *x, int n, float sub) {
    __m256 vs = _mm256_set1_ps(sub), acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), vs));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    float sum = hsum(acc);
    for (; i < n; i++) {
        x[i] = expf(x[i] - sub);
        sum += x[i];
    }
    return sum;
}

void pgd_avx2_rmsnorm_row(float *y, const float *x, const float *w, int dim, float eps) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int j = 0;
    for (; j + 16 <= dim; j += 16) {
        __m256 v0 = _mm256_loadu_ps(x + j), v1 = _mm256_loadu_ps(x + j + 8);
        a0 = _mm256_fmadd_ps(v0, v0, a0);
        a1 = _mm256_fmadd_ps(v1, v1, a1);
    }
    for (; j + 8 <= dim; j += 8) {
        __m256 v0 = _mm256_loadu_ps(x + j);
        a0 = _mm256_fmadd_ps(v0, v0, a0);
    }
    float ss = hsum(_mm256_add_ps(a0, a1));
    for (; j < dim; j++) ss += x[j] * x[j];
    ss /= dim;
    ss += eps;
    ss = 1.0f / sqrtf(ss);
    __m256 vs = _mm256_set1_ps(ss);
    j = 0;
    for (; j + 8 <= dim; j += 8)
        _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_loadu_ps(w + j),
                                              _mm256_mul_ps(vs, _mm256_loadu_ps(x + j))));
    for (; j < dim; j++) y[j] = w[j] * (ss * x[j]);
}

static inline __m256 silu_mul8(__m256 g, __m256 u) {
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), g));
    return _mm256_mul_ps(_mm256_mul_ps(g, _mm256_div_ps(one, _mm256_add_ps(one, e))), u);
}

void pgd_avx2_silu_mul(float *out, const float *gate, const float *up, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, silu_mul8(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
    if (i < n) { /* the tail through the same code, zero-padded to 8 */
        float g[8] = {0}, u[8] = {0}, o[8];
        memcpy(g, gate + i, (n - i) * sizeof(float));
        memcpy(u, up + i, (n - i) * sizeof(float));
        _mm256_storeu_ps(o, silu_mul8(_mm256_loadu_ps(g), _mm256_loadu_ps(u)));
        memcpy(out + i, o, (n - i) * sizeof(float));
    }
}

void pgd_avx2_add(float *y, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
    for (; i < n; i++) y[i] += x[i];
}

void pgd_avx2_f16_to_f32(float *dst, const uint16_t *src, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = _cvtsh_ss(src[i]);
}

void pgd_avx2_bf16_to_f32(float *dst, const uint16_t *src, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + i)));
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
    }
    for (; i < n; i++) dst[i] = pgd_bf16_to_f32(src[i]);
}

uint64_t pgd_avx2_read_sum(const void *p, size_t bytes) {
    const __m256i *v = (const __m256i *)p;
    size_t n = bytes / 128;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < n; i++, v += 4) { /* 4 independent chains, 2 cache lines per step */
        a0 = _mm256_add_epi64(a0, _mm256_loadu_si256(v));
        a1 = _mm256_add_epi64(a1, _mm256_loadu_si256(v + 1));
        a2 = _mm256_add_epi64(a2, _mm256_loadu_si256(v + 2));
        a3 = _mm256_add_epi64(a3, _mm256_loadu_si256(v + 3));
    }
    __m256i a = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    uint64_t out[4];
    _mm256_storeu_si256((__m256i *)out, a);
    uint64_t s = out[0] + out[1] + out[2] + out[3];
    for (size_t i = n * 128; i < bytes; i++) s += ((const unsigned char *)p)[i];
    return s;
}

void pgd_avx2_f32_to_f16(uint16_t *dst, const float *src, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
}
