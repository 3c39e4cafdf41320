/* matmul_x8_avx2.c - y(n, out) = x(n, in) @ W^T for q8_0 / q4_0 W in the
 * CPU backend's x8 layouts (x8.c: 8 blocks a group, their scales first,
 * then chunk k of block j at 16 + 32 k + 4 j), decode and small batches.
 *
 * x is quantized per block of 32 exactly as every other integer path does
 * (quant_avx2.h) and laid out as W's groups are: the 8 x 8 dword transpose
 * of the group's 8 blocks, so vector s, lane j = values 4s..4s+3 of block j.
 *
 * q8_0x8, for each chunk k of a group and each token:
 *     vpsignb    w carrying x's sign        (|x| w sign(x) = x w)
 *     vpmaddubsw |x| times that, pairs to int16 (|pair| <= 2 x 127 x 127)
 *     vpmaddwd   with ones, to int32: lane j = 4 products of block j
 *     vpaddd     into the group's sum
 * three operations on the two multiply pipes per 32 multiply-adds (the
 * plain layout's decode took four, plus a reduction tree and 8 scale
 * inserts per 8 blocks); |x| is kept beside x, once per call.
 *
 * q4_0x8: chunk k (k < 4) holds values 4k..4k+3 of each block in its low
 * nibbles and 16+4k..16+4k+3 in its high ones, unsigned (u = w + 8): for
 * each token, vpmaddubsw of the nibbles (unsigned) by x (signed) for both
 * halves (|pair| <= 2 x 15 x 127 = 3810), the group's 8 products added in
 * int16 (<= 30480: exact), one vpmaddwd to int32, less 8 sum(x) per block
 * (the offset, one vector a group): 9 multiply-pipe operations per 256
 * multiply-adds.
 *
 * After a group, lane j holds block j's exact integer dot product: one
 * convert and one FMA by d_w d_x (8 f16 scales in one load) per group and
 * token. A row's W group is loaded once for up to 4 tokens. The integers
 * are those of the plain layout's paths: outputs differ from them in f32
 * summation order only.
 *
 * Measured (one thread, CPU time, Zen 4 VM with AVX2): q8_0 decode in L2
 * 37 GB/s against 25 for the plain layout's kernel (pagoda bench, same
 * run); 44-45 GMAC/s at 3 to 32 tokens (2048 x 768). */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "fast_impl.h"
#include "quant_avx2.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))
#define QB PGD_QBLOCK
#define GB 8
#define GV (GB * QB)       /* 256 values a group */
#define XT 4               /* tokens sharing one load of a W group */
#define X_STACK (64 << 10) /* x's interleaved copies on the stack up to this */

/* Bytes of a W group: 272 (q8_0), 144 (q4_0). */
ALWAYS_INLINE size_t gbytes(pgd_dtype wt) { return wt == PGD_Q8_0 ? 272 : 144; }

/* Token t's x: ng groups of 256 bytes of x and of |x| (q8_0) or 8 sum(x)
 * per block (q4_0), interleaved as W's quants are, and its block scales. */
typedef struct x8 {
    int8_t *s;  /* x */
    uint8_t *a; /* q8_0: |x| */
    int32_t *o; /* q4_0: 8 sum(x_q) of each block (the offset of u = w + 8) */
    float *d;
} x8;

static void prepare_x(x8 *t, pgd_dtype wt, const float *x, int ng) {
    for (int g = 0; g < ng; g++) {
        __m256i v[GB];
        int sum[GB];
        for (int j = 0; j < GB; j++)
            v[j] = pgd_avx2_quant_block(x + (size_t)(g * GB + j) * QB, &t->d[g * GB + j], &sum[j]);
        char *s = (char *)t->s + (size_t)g * GV;
        pgd_avx2_transpose8_store(s, v);
        if (wt == PGD_Q4_0) {
            for (int j = 0; j < GB; j++) t->o[g * GB + j] = 8 * sum[j];
            continue;
        }
        char *a = (char *)t->a + (size_t)g * GV;
        for (int k = 0; k < GB; k++)
            _mm256_storeu_si256((__m256i *)(a + 32 * k),
                                _mm256_abs_epi8(_mm256_loadu_si256((const __m256i *)(s + 32 * k))));
    }
}

/* The 8 block sums of one q8_0x8 group (p) against token xt at group offset xo. */
ALWAYS_INLINE __m256i q8_group(const char *p, const x8 *xt, size_t xo, __m256i ones) {
    __m256i s0 = _mm256_setzero_si256(), s1 = s0;
#pragma GCC unroll 4
    for (int k = 0; k < GB; k += 2) { /* two partial sums: even and odd chunks */
        __m256i w0 = _mm256_loadu_si256((const __m256i *)(p + 16 + 32 * k));
        __m256i w1 = _mm256_loadu_si256((const __m256i *)(p + 48 + 32 * k));
        __m256i p0 =
            _mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)(xt->a + xo + 32 * k)),
                                 _mm256_sign_epi8(w0, _mm256_loadu_si256((const __m256i *)(xt->s + xo + 32 * k))));
        __m256i p1 =
            _mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)(xt->a + xo + 32 * k + 32)),
                                 _mm256_sign_epi8(w1, _mm256_loadu_si256((const __m256i *)(xt->s + xo + 32 * k + 32))));
        s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(p0, ones));
        s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(p1, ones));
    }
    return _mm256_add_epi32(s0, s1);
}

/* y[t * ldy + r] = W_r . x_t for rows r0..r1-1 and nt (<= XT) tokens. */
ALWAYS_INLINE void rows_nt(int nt, pgd_dtype wt, const x8 *xt, int ng, const char *w, float *y, size_t ldy, int r0,
                           int r1) {
    const size_t gb = gbytes(wt), row = (size_t)ng * gb;
    const __m256i ones = _mm256_set1_epi16(1), m4 = _mm256_set1_epi8(15);
    for (int r = r0; r < r1; r++) {
        const char *p = w + (size_t)r * row;
        __m256 acc[XT], acc2 = _mm256_setzero_ps();
#pragma GCC unroll 4
        for (int t = 0; t < XT; t++) acc[t] = _mm256_setzero_ps();
        for (int g = 0; g < ng; g++, p += gb) {
            size_t xo = (size_t)g * GV;
            __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
            __m256i s[XT];
            if (wt == PGD_Q8_0 && nt == 1) {
                s[0] = q8_group(p, xt, xo, ones);
            } else if (wt == PGD_Q8_0) {
#pragma GCC unroll 4
                for (int t = 0; t < nt; t++) s[t] = _mm256_setzero_si256();
#pragma GCC unroll 8
                for (int k = 0; k < GB; k++) {
                    __m256i wv = _mm256_loadu_si256((const __m256i *)(p + 16 + 32 * k));
#pragma GCC unroll 4
                    for (int t = 0; t < nt; t++) {
                        __m256i pr = _mm256_maddubs_epi16(
                            _mm256_loadu_si256((const __m256i *)(xt[t].a + xo + 32 * k)),
                            _mm256_sign_epi8(wv, _mm256_loadu_si256((const __m256i *)(xt[t].s + xo + 32 * k))));
                        s[t] = _mm256_add_epi32(s[t], _mm256_madd_epi16(pr, ones));
                    }
                }
            } else { /* q4_0x8: int16 sums over the group, then one madd */
                __m256i h[XT];
#pragma GCC unroll 4
                for (int t = 0; t < nt; t++) h[t] = _mm256_setzero_si256();
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++) {
                    __m256i v = _mm256_loadu_si256((const __m256i *)(p + 16 + 32 * k));
                    __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
#pragma GCC unroll 4
                    for (int t = 0; t < nt; t++) {
                        __m256i a =
                            _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(xt[t].s + xo + 32 * k)));
                        __m256i b = _mm256_maddubs_epi16(
                            hi, _mm256_loadu_si256((const __m256i *)(xt[t].s + xo + 32 * (k + 4))));
                        h[t] = _mm256_add_epi16(h[t], _mm256_add_epi16(a, b));
                    }
                }
#pragma GCC unroll 4
                for (int t = 0; t < nt; t++)
                    s[t] = _mm256_sub_epi32(_mm256_madd_epi16(h[t], ones),
                                            _mm256_loadu_si256((const __m256i *)(xt[t].o + (size_t)g * GB)));
            }
            if (nt == 1) { /* two chains of FMAs */
                __m256 d = _mm256_mul_ps(dw, _mm256_loadu_ps(xt[0].d + (size_t)g * GB));
                if (g & 1) acc2 = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s[0]), acc2);
                else acc[0] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s[0]), acc[0]);
                continue;
            }
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++)
                acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_loadu_ps(xt[t].d + (size_t)g * GB)),
                                         _mm256_cvtepi32_ps(s[t]), acc[t]);
        }
        acc[0] = _mm256_add_ps(acc[0], acc2);
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) y[(size_t)t * ldy + r] = pgd_avx2_hsum8(acc[t]);
    }
}

/* Rows r0..r1-1 for all n tokens, XT at a time (the W rows of a chunk stay
 * in L1/L2 between token tiles). */
#define ROWS_ALL(WT)                                                                                              \
    static void rows_all_##WT(int n, const x8 *xt, int ng, const char *w, float *y, size_t ldy, int r0, int r1) { \
        for (int t = 0; t < n; t += XT) {                                                                         \
            int nt = n - t < XT ? n - t : XT;                                                                     \
            float *yt = y + (size_t)t * ldy;                                                                      \
            if (nt == 4) rows_nt(4, WT, xt + t, ng, w, yt, ldy, r0, r1);                                          \
            else if (nt == 3) rows_nt(3, WT, xt + t, ng, w, yt, ldy, r0, r1);                                     \
            else if (nt == 2) rows_nt(2, WT, xt + t, ng, w, yt, ldy, r0, r1);                                     \
            else rows_nt(1, WT, xt + t, ng, w, yt, ldy, r0, r1);                                                  \
        }                                                                                                         \
    }
ROWS_ALL(PGD_Q8_0)
ROWS_ALL(PGD_Q4_0)

void pgd_avx2_matmul_x8_rows_f32(float *y, const float *x, const void *wv, pgd_dtype wt, int n, int in, int out, int r0,
                                 int r1) {
    float buf[GV];
    const char *w = wv;
    int ng = in / GV;
    for (int r = r0; r < r1; r++) {
        const char *p = w + (size_t)r * ng * gbytes(wt);
        for (int t = 0; t < n; t++) y[(size_t)t * out + r] = 0.0f;
        for (int g = 0; g < ng; g++) {
            pgd_cpu_x8_row_to_f32(buf, p + (size_t)g * gbytes(wt), wt, GV);
            for (int t = 0; t < n; t++) {
                const float *xg = x + (size_t)t * in + (size_t)g * GV;
                __m256 a = _mm256_setzero_ps();
                for (int i = 0; i < GV; i += 8)
                    a = _mm256_fmadd_ps(_mm256_loadu_ps(buf + i), _mm256_loadu_ps(xg + i), a);
                y[(size_t)t * out + r] += pgd_avx2_hsum8(a);
            }
        }
    }
}

void pgd_avx2_matmul_x8(float *y, const float *x, const void *w, pgd_dtype wt, int n, int in, int out,
                        pgd_claim_fn claim, void *ctx) {
    int ng = in / GV, r0, r1;
    if (!claim(ctx, &r0, &r1)) return;
    size_t per = (size_t)ng * 2 * GV + (size_t)ng * GB * (sizeof(float) + sizeof(int32_t)), bytes = per * (size_t)n;
    _Alignas(64) char stack[X_STACK];
    char *mem = bytes <= X_STACK ? stack : malloc(bytes);
    x8 *xt = malloc(sizeof(x8) * (size_t)n);
    if (!mem || !xt) { /* no memory for the quantized x: f32 dot products, a group at a time */
        if (mem != stack) free(mem);
        free(xt);
        do pgd_avx2_matmul_x8_rows_f32(y, x, w, wt, n, in, out, r0, r1);
        while (claim(ctx, &r0, &r1));
        return;
    }
    for (int t = 0; t < n; t++) {
        char *m = mem + per * (size_t)t;
        float *d = (float *)(m + (size_t)ng * 2 * GV);
        xt[t] = (x8){(int8_t *)m, (uint8_t *)m + (size_t)ng * GV, (int32_t *)(d + (size_t)ng * GB), d};
        prepare_x(&xt[t], wt, x + (size_t)t * in, ng);
    }
    do {
        if (wt == PGD_Q8_0) rows_all_PGD_Q8_0(n, xt, ng, w, y, (size_t)out, r0, r1);
        else rows_all_PGD_Q4_0(n, xt, ng, w, y, (size_t)out, r0, r1);
    } while (claim(ctx, &r0, &r1));
    free(xt);
    if (mem != stack) free(mem);
}

void pgd_avx2_x8_row_to_f32(float *dst, const void *row, pgd_dtype wt, size_t in) {
    const char *g = row;
    const __m256i m4 = _mm256_set1_epi8(15), eight = _mm256_set1_epi8(8);
    for (size_t gi = 0; gi < in / GV; gi++, g += gbytes(wt), dst += GV) {
        __m256i v[GB];
        _Alignas(32) char plain[GV]; /* the group's 8 blocks back in order: the transpose is its own inverse */
        if (wt == PGD_Q8_0) {
            for (int k = 0; k < GB; k++) v[k] = _mm256_loadu_si256((const __m256i *)(g + 16 + 32 * k));
        } else { /* chunk k: values 4k.. in the low nibbles (vector k), 16 + 4k.. in the high (vector 4 + k) */
            for (int k = 0; k < 4; k++) {
                __m256i c = _mm256_loadu_si256((const __m256i *)(g + 16 + 32 * k));
                v[k] = _mm256_sub_epi8(_mm256_and_si256(c, m4), eight);
                v[k + 4] = _mm256_sub_epi8(_mm256_and_si256(_mm256_srli_epi16(c, 4), m4), eight);
            }
        }
        pgd_avx2_transpose8_store(plain, v);
        _Alignas(32) float d[GB];
        _mm256_store_ps(d, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)g)));
        for (int j = 0; j < GB; j++) {
            __m256 dj = _mm256_set1_ps(d[j]);
            for (int c = 0; c < 4; c++) {
                __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(plain + 32 * j + 8 * c)));
                _mm256_storeu_ps(dst + 32 * j + 8 * c, _mm256_mul_ps(dj, _mm256_cvtepi32_ps(q)));
            }
        }
    }
}
