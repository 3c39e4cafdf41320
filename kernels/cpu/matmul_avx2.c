/* matmul_avx2.c - y(n, out) = x(n, in) @ W^T with AVX2/FMA/F16C, one thread's
 * slice of output rows.
 *
 *  - Decode (n <= 3; for n = 2, 3 only while in <= 1024): row by row, each
 *    W row read once as one sequential stream and dotted with every token
 *    (two accumulators per token, K step 16). This path is memory-bandwidth
 *    bound; a single stream per thread is what the hardware prefetcher
 *    follows best (measured faster than interleaving 4 rows).
 *  - Otherwise the micro-kernel computes a tile of up to 3 tokens x 4 output
 *    rows as 12 dot products in 12 ymm accumulators (K step 8), reduced with
 *    horizontal adds at the end. For n <= 3 it streams W once (f16/bf16
 *    converted in registers). For n > 3 the loops are blocked so that a
 *    4-row x KC panel of W (converted to f32 in a stack buffer when W is
 *    f16/bf16) stays in L1 while every 3-token tile of an NB-token block
 *    (x panel in L2) passes over it. With K split into panels, y is written
 *    by the first panel and accumulated by the later ones.
 * The K tail (in % 8) is summed in scalar everywhere. Every (token, row)
 * result is computed the same way whatever the row slice, so the output
 * does not depend on how rows are split across threads.
 * Invariants: W is (out, in) row-major of dtype wt; x is (n, in); y is
 * (n, out); r0..r1 is the slice of output rows this call owns. */
#include <immintrin.h>

#include "fast_impl.h"

#define MR 4   /* output rows per tile */
#define NT 3   /* tokens per tile */
#define KC 512 /* K panel when in > KC_MAX_WHOLE (multiple of 8) */
#define KC_MAX_WHOLE 1024
#define NB 96 /* tokens per block (multiple of NT) */

#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE __m256 load_w8(pgd_dtype wt, const void *w, size_t i) {
    if (wt == PGD_F32) return _mm256_loadu_ps((const float *)w + i);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + i));
    if (wt == PGD_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

ALWAYS_INLINE float load_w1(pgd_dtype wt, const void *w, size_t i) {
    if (wt == PGD_F32) return ((const float *)w)[i];
    uint16_t h = ((const uint16_t *)w)[i];
    if (wt == PGD_F16) return _cvtsh_ss(h);
    return pgd_bf16_to_f32(h);
}

/* [sum(a), sum(b), sum(c), sum(d)] */
ALWAYS_INLINE __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
    __m256 ab = _mm256_hadd_ps(a, b), cd = _mm256_hadd_ps(c, d);
    __m256 abcd = _mm256_hadd_ps(ab, cd);
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

/* y[t*ldy + r] (=|+=) sum_k w[r*ldw + k] * x[t*ldx + k], t < nt, r < nr.
 * nt, nr and wt are compile-time constants at every call site. */
ALWAYS_INLINE void tile(int nt, int nr, pgd_dtype wt, const float *x, size_t ldx, const void *w,
                        size_t ldw, int k, float *y, size_t ldy, int accumulate) {
    __m256 acc[NT][MR];
#pragma GCC unroll 3
    for (int t = 0; t < NT; t++)
#pragma GCC unroll 4
        for (int r = 0; r < MR; r++) acc[t][r] = _mm256_setzero_ps();
    int kk = 0;
    for (; kk + 8 <= k; kk += 8) {
        __m256 xv[NT];
#pragma GCC unroll 3
        for (int t = 0; t < nt; t++) xv[t] = _mm256_loadu_ps(x + t * ldx + kk);
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++) {
            __m256 wv = load_w8(wt, w, r * ldw + kk);
#pragma GCC unroll 3
            for (int t = 0; t < nt; t++) acc[t][r] = _mm256_fmadd_ps(wv, xv[t], acc[t][r]);
        }
    }
#pragma GCC unroll 3
    for (int t = 0; t < nt; t++) {
        float s[4];
        _mm_storeu_ps(s, hsum4(acc[t][0], acc[t][1], acc[t][2], acc[t][3]));
        for (int r = 0; r < nr; r++) {
            float v = s[r];
            for (int j = kk; j < k; j++) v += load_w1(wt, w, r * ldw + j) * x[t * ldx + j];
            float *dst = y + t * ldy + r;
            *dst = accumulate ? *dst + v : v;
        }
    }
}

#define TILE_CASE(NTV, NRV, WT) tile(NTV, NRV, WT, x, ldx, w, ldw, k, y, ldy, accumulate)

#define TILE_NR(NTV, WT)                          \
    switch (nr) {                                 \
    case 1: TILE_CASE(NTV, 1, WT); break;         \
    case 2: TILE_CASE(NTV, 2, WT); break;         \
    case 3: TILE_CASE(NTV, 3, WT); break;         \
    default: TILE_CASE(NTV, 4, WT); break;        \
    }

/* tile_<dtype>(nt, nr, ...): the tile above with constant nt, nr, wt. */
#define TILE_DISPATCH(WT)                                                                  \
    static void tile_##WT(int nt, int nr, const float *x, size_t ldx, const void *w,       \
                          size_t ldw, int k, float *y, size_t ldy, int accumulate) {       \
        if (nt == 1) { TILE_NR(1, WT) }                                                    \
        else if (nt == 2) { TILE_NR(2, WT) }                                               \
        else { TILE_NR(3, WT) }                                                            \
    }

TILE_DISPATCH(PGD_F32)
TILE_DISPATCH(PGD_F16)
TILE_DISPATCH(PGD_BF16)

typedef void (*tile_fn)(int nt, int nr, const float *x, size_t ldx, const void *w, size_t ldw,
                        int k, float *y, size_t ldy, int accumulate);

static tile_fn tile_for(pgd_dtype wt) {
    return wt == PGD_F16 ? tile_PGD_F16 : wt == PGD_BF16 ? tile_PGD_BF16 : tile_PGD_F32;
}

/* Convert nr rows x kc columns of W (row stride in) to f32 rows of stride kc. */
static void convert_panel(float *dst, const void *w, pgd_dtype wt, size_t in, int nr, int kc) {
    for (int r = 0; r < nr; r++) {
        const uint16_t *src = (const uint16_t *)w + r * in;
        if (wt == PGD_F16) pgd_avx2_f16_to_f32(dst + (size_t)r * kc, src, (size_t)kc);
        else pgd_avx2_bf16_to_f32(dst + (size_t)r * kc, src, (size_t)kc);
    }
}

/* y[t*ldy] = W . x_t for one W row and nt <= 3 tokens, two accumulators each. */
ALWAYS_INLINE void row_tokens(int nt, pgd_dtype wt, const float *x, size_t ldx, const void *w,
                              int k, float *y, size_t ldy) {
    __m256 a[NT][2];
#pragma GCC unroll 3
    for (int t = 0; t < NT; t++) a[t][0] = a[t][1] = _mm256_setzero_ps();
    int kk = 0;
    for (; kk + 16 <= k; kk += 16) {
        __m256 w0 = load_w8(wt, w, kk), w1 = load_w8(wt, w, kk + 8);
#pragma GCC unroll 3
        for (int t = 0; t < nt; t++) {
            a[t][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + t * ldx + kk), a[t][0]);
            a[t][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + t * ldx + kk + 8), a[t][1]);
        }
    }
    for (; kk + 8 <= k; kk += 8) {
        __m256 w0 = load_w8(wt, w, kk);
#pragma GCC unroll 3
        for (int t = 0; t < nt; t++)
            a[t][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + t * ldx + kk), a[t][0]);
    }
    float s[4];
    _mm_storeu_ps(s, hsum4(_mm256_add_ps(a[0][0], a[0][1]), _mm256_add_ps(a[1][0], a[1][1]),
                           _mm256_add_ps(a[2][0], a[2][1]), _mm256_setzero_ps()));
#pragma GCC unroll 3
    for (int t = 0; t < nt; t++) {
        float v = s[t];
        for (int j = kk; j < k; j++) v += load_w1(wt, w, j) * x[t * ldx + j];
        y[t * ldy] = v;
    }
}

/* rows_<dtype>(nt, ...): rows r0..r1-1 of W (row stride in) against nt tokens. */
#define ROWS_DISPATCH(WT)                                                                   \
    static void rows_##WT(int nt, const float *x, int in, const void *w, float *y,          \
                          size_t ldy, int r0, int r1) {                                     \
        for (int r = r0; r < r1; r++) {                                                     \
            const void *wr = (const char *)w + (size_t)r * in * pgd_dtype_size(WT);         \
            if (nt == 1) row_tokens(1, WT, x, (size_t)in, wr, in, y + r, ldy);              \
            else if (nt == 2) row_tokens(2, WT, x, (size_t)in, wr, in, y + r, ldy);         \
            else row_tokens(3, WT, x, (size_t)in, wr, in, y + r, ldy);                      \
        }                                                                                   \
    }

ROWS_DISPATCH(PGD_F32)
ROWS_DISPATCH(PGD_F16)
ROWS_DISPATCH(PGD_BF16)

void pgd_avx2_matmul_rows(float *y, const float *x, const void *w, pgd_dtype wt, int n, int in,
                          int out, int r0, int r1) {
    size_t es = pgd_dtype_size(wt);
    const char *wb = (const char *)w;
    if (n == 1 || (n <= NT && in <= KC_MAX_WHOLE)) { /* decode: one stream per thread */
        if (wt == PGD_F32) rows_PGD_F32(n, x, in, w, y, (size_t)out, r0, r1);
        else if (wt == PGD_F16) rows_PGD_F16(n, x, in, w, y, (size_t)out, r0, r1);
        else rows_PGD_BF16(n, x, in, w, y, (size_t)out, r0, r1);
        return;
    }
    if (n <= NT) { /* decode with long rows: 4 rows at a time, W streamed once */
        tile_fn f = tile_for(wt);
        for (int r = r0; r < r1; r += MR) {
            int nr = r1 - r < MR ? r1 - r : MR;
            const void *wr = wb + (size_t)r * in * es;
            f(n, nr, x, (size_t)in, wr, (size_t)in, in, y + r, (size_t)out, 0);
        }
        return;
    }
    int kc_max = in <= KC_MAX_WHOLE ? in : KC;
    float panel[MR * KC_MAX_WHOLE] __attribute__((aligned(32)));
    tile_fn f32 = tile_PGD_F32;
    for (int t0 = 0; t0 < n; t0 += NB) {
        int t1 = n - t0 < NB ? n : t0 + NB;
        for (int k0 = 0; k0 < in; k0 += kc_max) {
            int kc = in - k0 < kc_max ? in - k0 : kc_max;
            for (int r = r0; r < r1; r += MR) {
                int nr = r1 - r < MR ? r1 - r : MR;
                const void *wp;
                size_t ldw;
                if (wt == PGD_F32) {
                    wp = (const float *)w + (size_t)r * in + k0;
                    ldw = (size_t)in;
                } else {
                    convert_panel(panel, wb + ((size_t)r * in + k0) * es, wt, (size_t)in, nr, kc);
                    wp = panel;
                    ldw = (size_t)kc;
                }
                for (int t = t0; t < t1; t += NT) {
                    int nt = t1 - t < NT ? t1 - t : NT;
                    f32(nt, nr, x + (size_t)t * in + k0, (size_t)in, wp, ldw, kc,
                        y + (size_t)t * out + r, (size_t)out, k0 > 0);
                }
            }
        }
    }
}
