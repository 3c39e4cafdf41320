/* quant_avx2.h - what the integer matmul kernels (matmul_q_avx2.c,
 * matmul_k_avx2.c, matmul_qgemm_avx2.c) share: a q8_0/q4_0 block's values,
 * a horizontal sum, and the activations' quantization: 32 values of x to int8 with one f32 scale d = max|x| / 127, rounded to
 * nearest (ties to even; |x / d| <= 127, no overflow) - the ggml/llama.cpp
 * recipe for activations against q8_0/q4_0/k-quant weights. One recipe, so
 * every path (decode, register tiles, GEMM) takes the same integers for the
 * same x. And the 8 x 8 transpose of 32-bit lanes: it block-interleaves 8
 * blocks (the GEMM's panels, x8.c's layouts) and turns f32 tiles
 * (matmul_avx2.c, the GEMM's output store). Included only by the *_avx2.c files (built with -mavx2 -mfma
 * -mf16c). */
#ifndef PAGODA_KERNELS_CPU_QUANT_AVX2_H
#define PAGODA_KERNELS_CPU_QUANT_AVX2_H
#include <immintrin.h>

#include "fast_impl.h"

/* The 32 signed values of a q8_0 or q4_0 weight block (q4_0: nibbles minus
 * 8; low nibbles are values 0..15, high 16..31). */
static inline __attribute__((always_inline)) __m256i pgd_avx2_q_values(pgd_dtype wt, const void *blk) {
    if (wt == PGD_Q8_0) return _mm256_loadu_si256((const __m256i *)((const pgd_block_q8_0 *)blk)->q);
    __m128i raw = _mm_loadu_si128((const __m128i *)((const pgd_block_q4_0 *)blk)->q);
    __m128i lo = _mm_and_si128(raw, _mm_set1_epi8(15));
    __m128i hi = _mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(15));
    return _mm256_sub_epi8(_mm256_set_m128i(hi, lo), _mm256_set1_epi8(8));
}

/* The sum of v's 8 lanes. */
static inline __attribute__((always_inline)) float pgd_avx2_hsum8(__m256 v) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* The 32 int8 values of x[0..32) in order; *d = their scale; *sum (when
 * not NULL) = the sum of the int8 values. */
static inline __attribute__((always_inline)) __m256i pgd_avx2_quant_block(const float *x, float *d, int *sum) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
    __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
    __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v0, absmask), _mm256_and_ps(v1, absmask)),
                             _mm256_max_ps(_mm256_and_ps(v2, absmask), _mm256_and_ps(v3, absmask)));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    float amax = _mm_cvtss_f32(h), id = amax > 0 ? 127.0f / amax : 0.0f;
    *d = amax / 127.0f;
    __m256 s = _mm256_set1_ps(id);
    __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, s)), i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, s));
    __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, s)), i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, s));
    if (sum) {
        __m256i s32 = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s32), _mm256_extracti128_si256(s32, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
        *sum = _mm_cvtsi128_si32(s4);
    }
    /* packs interleave the 128-bit lanes: a permute puts them back in order */
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* Transpose the 8 x 8 block r[0..7] of 32-bit lanes in place: r[j][i] <-
 * r[i][j] (data movement only: the bits are kept). */
static inline __attribute__((always_inline)) void pgd_avx2_transpose8_ps(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* dst[s] (32 bytes each, s < 8) = dword s of a[0], ..., a[7]: the same
 * transpose of integer lanes, stored. */
static inline __attribute__((always_inline)) void pgd_avx2_transpose8_store(char *dst, const __m256i a[8]) {
    __m256 r[8];
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) r[j] = _mm256_castsi256_ps(a[j]);
    pgd_avx2_transpose8_ps(r);
#pragma GCC unroll 8
    for (int s = 0; s < 8; s++) _mm256_storeu_ps((float *)(dst + 32 * s), r[s]);
}

#endif
