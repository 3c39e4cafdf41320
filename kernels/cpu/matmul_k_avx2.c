/* matmul_k_avx2.c - GGUF k-quant weights (q4_k, q6_k; dtype.h has their
 * super-block layouts) with AVX2, read in their stored form.
 *
 *  - Decode and small batches (n <= PGD_K_INT_MAX_TOKENS = 8, measured:
 *    fast_impl.h), the rows of the chunks claimed: each token's x is
 *    quantized per block of 32 to int8 with an f32 scale d_x = max|x| / 127
 *    (and, for q4_k's mins, d_x times the block's sum of q), then every W
 *    row is read once, one sequential stream of super-blocks, and dotted with
 *    each token (3 at a time) in integers, one 32-value group at a time:
 *      q4_k: the 4-bit q (0..15, unsigned) times x (maddubs: at most
 *        2 x 15 x 127 per pair), summed to int32, converted, and accumulated
 *        with d sc_j d_x; the mins come off once per row as
 *        sum_j dmin m_j (d_x sum q_x)_j.
 *      q6_k: w = q - 32 (-32..31) as |w| times x carrying w's sign (maddubs:
 *        at most 2 x 32 x 127), summed to int32 in 8 lanes whose low 4 are
 *        the first sub-block of 16 and the high 4 the second, converted, and
 *        accumulated with d d_x times the two int8 scales.
 *    Bytes read per weight: 144/256 (q4_k), 210/256 (q6_k).
 *  - Batched q6_k (n > 8; q4_k takes matmul_qgemm_avx2.c's byte GEMM
 *    there, unless pgd_cpu_set_q_int_max_tokens sends it here): each
 *    claimed chunk of W rows dequantized to f32
 *    (pgd_avx2_dequant_k, bit-equal to pgd_dtype_to_f32) into a buffer, then
 *    matmul_avx2.c's f32 micro-kernel over it (pgd_avx2_matmul_batched on
 *    the buffer's rows), so batched results equal the f32 kernel's on the
 *    dequantized weights exactly.
 * The integer decode path differs from the reference (W dequantized, then
 * f32 dot products) by the activations' rounding to int8: about 0.3% of
 * |x| |w| per output (tests allow 1%). Which path an output row takes
 * depends on n only, never on the chunk or thread it falls in. */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "fast_impl.h"
#include "quant_avx2.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))
#define QK PGD_QK_K
#define NTK 3 /* tokens per pass over a row */

/* most tokens of the integer path (a variable: a benchmark that includes this file moves it) */
static int g_k_int_max = PGD_K_INT_MAX_TOKENS;

typedef struct xk8 {
    int8_t q[32];
} xk8; /* one block of 32 quantized x values; its scale in xd[], d * sum(q) in xs[] */

/* One row of x (in % 256 == 0) to blocks of 32 int8 with f32 scales xd
 * and xs = xd * (the block's sum of q): the sum of x as quantized. */
static void quantize_xk(xk8 *dst, float *xd, float *xs, const float *x, int in) {
    for (int b = 0; b < in / 32; b++, x += 32) {
        int sum;
        _mm256_storeu_si256((__m256i *)dst[b].q, pgd_avx2_quant_block(x, &xd[b], &sum));
        xs[b] = xd[b] * (float)sum;
    }
}

ALWAYS_INLINE float f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* q4_k's 8 scales (*sc) and 8 mins (*m) as bytes of two 64-bit words, from
 * the 12 packed bytes q (the layout pgd_q4k_scales reads, four lanes at a time). */
ALWAYS_INLINE void q4k_scales8(const uint8_t *q, uint64_t *sc, uint64_t *m) {
    uint32_t a[3];
    memcpy(a, q, 12);
    uint32_t s_lo = a[0] & 0x3f3f3f3f, m_lo = a[1] & 0x3f3f3f3f;
    uint32_t s_hi = (a[2] & 0x0f0f0f0f) | ((a[0] >> 6) & 0x03030303) << 4;
    uint32_t m_hi = ((a[2] >> 4) & 0x0f0f0f0f) | ((a[1] >> 6) & 0x03030303) << 4;
    *sc = s_lo | (uint64_t)s_hi << 32;
    *m = m_lo | (uint64_t)m_hi << 32;
}

ALWAYS_INLINE __m256 bytes8_ps(uint64_t v) {
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)v)));
}

/* Sum of the 32 products of unsigned bytes u and signed bytes x, as 8 int32 lanes. */
ALWAYS_INLINE __m256i dot_u8s8(__m256i u, __m256i x) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), _mm256_set1_epi16(1));
}

/* acc[t] + acc2[t] += one q4_k super-block of a W row . token t's x (two
 * accumulators: two FMA chains; xq, xd, xs: its 8 blocks of 32, token t's
 * ldx blocks further on); corr[t] collects the mins' term in 8 lanes: the
 * 8 factors d sc_j d_x and the mins dmin m_j are made in vectors, once a
 * super-block. */
ALWAYS_INLINE void q4k_super(int nt, const uint8_t *blk, const xk8 *xq, const float *xd, const float *xs, size_t ldx,
                             __m256 *acc, __m256 *acc2, __m256 *corr) {
    uint64_t sc8, m8;
    q4k_scales8(blk + 4, &sc8, &m8);
    __m256 dsc = _mm256_mul_ps(_mm256_set1_ps(f16(blk)), bytes8_ps(sc8));
    __m256 dm = _mm256_mul_ps(_mm256_set1_ps(f16(blk + 2)), bytes8_ps(m8));
    float f[NTK][8] __attribute__((aligned(32)));
#pragma GCC unroll 3
    for (int t = 0; t < nt; t++) {
        _mm256_store_ps(f[t], _mm256_mul_ps(dsc, _mm256_loadu_ps(xd + (size_t)t * ldx)));
        corr[t] = _mm256_fmadd_ps(dm, _mm256_loadu_ps(xs + (size_t)t * ldx), corr[t]);
    }
    const uint8_t *qs = blk + 16;
    const __m256i m4 = _mm256_set1_epi8(0xF);
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
        __m256i lo = _mm256_and_si256(raw, m4), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
#pragma GCC unroll 3
        for (int t = 0; t < nt; t++) {
            const xk8 *x0 = xq + (size_t)t * ldx + 2 * c;
            __m256 p0 = _mm256_cvtepi32_ps(dot_u8s8(lo, _mm256_loadu_si256((const __m256i *)x0[0].q)));
            __m256 p1 = _mm256_cvtepi32_ps(dot_u8s8(hi, _mm256_loadu_si256((const __m256i *)x0[1].q)));
            acc[t] = _mm256_fmadd_ps(_mm256_broadcast_ss(&f[t][2 * c]), p0, acc[t]);
            acc2[t] = _mm256_fmadd_ps(_mm256_broadcast_ss(&f[t][2 * c + 1]), p1, acc2[t]);
        }
    }
}

/* The four 32-value groups of half h of a q6_k super-block as signed bytes
 * q - 32: group g is values 32g..32g+31 of the half. */
ALWAYS_INLINE void q6k_groups(const uint8_t *blk, int h, __m256i *g) {
    const uint8_t *ql = blk + 64 * h, *qh = blk + 128 + 32 * h;
    const __m256i m4 = _mm256_set1_epi8(0xF), m2 = _mm256_set1_epi8(3), o32 = _mm256_set1_epi8(32);
    __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
    __m256i hb = _mm256_loadu_si256((const __m256i *)qh);
    __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(hb, m2), 4);
    __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m2), 4);
    __m256i h2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m2), 4);
    __m256i h3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m2), 4);
    g[0] = _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(l0, m4), h0), o32);
    g[1] = _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(l1, m4), h1), o32);
    g[2] = _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), h2), o32);
    g[3] = _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), h3), o32);
}

/* acc[t] + acc2[t] += one q6_k super-block of a W row . token t's x
 * (groups 0, 2 into acc, 1, 3 into acc2). */
ALWAYS_INLINE void q6k_super(int nt, const uint8_t *blk, const xk8 *xq, const float *xd, size_t ldx, __m256 *acc,
                             __m256 *acc2) {
    /* d times the 16 int8 scales, in vectors once a super-block */
    __m256 d = _mm256_set1_ps(f16(blk + 208));
    __m128i s16 = _mm_loadu_si128((const __m128i *)(blk + 192));
    float sc[16] __attribute__((aligned(32)));
    _mm256_store_ps(sc, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(s16))));
    _mm256_store_ps(sc + 8, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(s16, 8)))));
    for (int h = 0; h < 2; h++) {
        __m256i g[4];
        q6k_groups(blk, h, g);
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            __m256i wa = _mm256_sign_epi8(g[k], g[k]);
            __m256 s2 = _mm256_set_m128(_mm_broadcast_ss(&sc[8 * h + 2 * k + 1]), _mm_broadcast_ss(&sc[8 * h + 2 * k]));
#pragma GCC unroll 3
            for (int t = 0; t < nt; t++) {
                size_t xb = (size_t)t * ldx + 4 * h + k;
                __m256i xv = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)xq[xb].q), g[k]);
                __m256 p = _mm256_cvtepi32_ps(dot_u8s8(wa, xv));
                __m256 *a = k & 1 ? acc2 : acc;
                a[t] = _mm256_fmadd_ps(_mm256_mul_ps(s2, _mm256_broadcast_ss(&xd[xb])), p, a[t]);
            }
        }
    }
}

/* y[t * ldy] = W_row . x_t for nt tokens (xq, xd, xs: nbx blocks of 32 each). */
ALWAYS_INLINE void krow(int nt, pgd_dtype wt, const xk8 *xq, const float *xd, const float *xs, int nbx,
                        const uint8_t *w, float *y, size_t ldy) {
    __m256 acc[NTK], acc2[NTK], corr[NTK];
#pragma GCC unroll 3
    for (int t = 0; t < NTK; t++) acc[t] = acc2[t] = corr[t] = _mm256_setzero_ps();
    size_t bsz = wt == PGD_Q4_K ? 144 : 210;
    for (int b = 0; b < nbx / 8; b++) {
        if (wt == PGD_Q4_K)
            q4k_super(nt, w + b * bsz, xq + 8 * b, xd + 8 * b, xs + 8 * b, (size_t)nbx, acc, acc2, corr);
        else q6k_super(nt, w + b * bsz, xq + 8 * b, xd + 8 * b, (size_t)nbx, acc, acc2);
    }
#pragma GCC unroll 3
    for (int t = 0; t < nt; t++) y[t * ldy] = pgd_avx2_hsum8(_mm256_sub_ps(_mm256_add_ps(acc[t], acc2[t]), corr[t]));
}

/* Rows r0..r1-1 against all n tokens, 3 at a time while the row sits in L1. */
#define KROWS(WT)                                                                                             \
    static void krows_##WT(int n, const xk8 *xq, const float *xd, const float *xs, int nbx, const uint8_t *w, \
                           size_t row, float *y, size_t ldy, int r0, int r1) {                                \
        for (int r = r0; r < r1; r++) {                                                                       \
            const uint8_t *wr = w + (size_t)r * row;                                                          \
            int t = 0;                                                                                        \
            for (; t + 3 <= n; t += 3) {                                                                      \
                size_t o = (size_t)t * nbx;                                                                   \
                krow(3, WT, xq + o, xd + o, xs + o, nbx, wr, y + t * ldy + r, ldy);                           \
            }                                                                                                 \
            size_t o = (size_t)t * nbx;                                                                       \
            if (n - t == 2) krow(2, WT, xq + o, xd + o, xs + o, nbx, wr, y + t * ldy + r, ldy);               \
            else if (n - t == 1) krow(1, WT, xq + o, xd + o, xs + o, nbx, wr, y + t * ldy + r, ldy);          \
        }                                                                                                     \
    }
KROWS(PGD_Q4_K)
KROWS(PGD_Q6_K)

void pgd_avx2_dequant_k(float *dst, const void *src, pgd_dtype wt, size_t n) {
    const uint8_t *blk = src;
    if (wt == PGD_Q4_K) {
        for (size_t b = 0; b < n / QK; b++, blk += 144) {
            float d = f16(blk), dmin = f16(blk + 2);
            int sc[8], m[8];
            pgd_q4k_scales(blk + 4, sc, m);
            for (int c = 0; c < 4; c++) {
                __m128i r0 = _mm_loadu_si128((const __m128i *)(blk + 16 + 32 * c));
                __m128i r1 = _mm_loadu_si128((const __m128i *)(blk + 32 + 32 * c));
                for (int hi = 0; hi < 2; hi++, dst += 32) { /* 32 low nibbles, then 32 high ones */
                    int j = 2 * c + hi;
                    __m256 ds = _mm256_set1_ps(d * (float)sc[j]), mm = _mm256_set1_ps(dmin * (float)m[j]);
                    __m128i a = _mm_and_si128(hi ? _mm_srli_epi16(r0, 4) : r0, _mm_set1_epi8(0xF));
                    __m128i bq = _mm_and_si128(hi ? _mm_srli_epi16(r1, 4) : r1, _mm_set1_epi8(0xF));
                    __m128i parts[4] = {a, _mm_srli_si128(a, 8), bq, _mm_srli_si128(bq, 8)};
                    for (int p = 0; p < 4; p++) /* (d sc) q - dmin m, rounded as pgd_dtype_to_f32 does */
                        _mm256_storeu_ps(
                            dst + 8 * p,
                            _mm256_sub_ps(_mm256_mul_ps(ds, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[p]))), mm));
                }
            }
        }
        return;
    }
    for (size_t b = 0; b < n / QK; b++, blk += 210) {
        float d = f16(blk + 208);
        const int8_t *sc = (const int8_t *)(blk + 192);
        for (int h = 0; h < 2; h++) {
            __m256i g[4];
            q6k_groups(blk, h, g);
            for (int k = 0; k < 4; k++) {
                __m128i lo = _mm256_castsi256_si128(g[k]), hi = _mm256_extracti128_si256(g[k], 1);
                __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
                for (int p = 0; p < 4; p++, dst += 8) {
                    __m256 ds = _mm256_set1_ps(d * (float)sc[8 * h + 2 * k + p / 2]);
                    _mm256_storeu_ps(dst, _mm256_mul_ps(ds, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[p]))));
                }
            }
        }
    }
}

/* Hands out one chunk, rows [0, rows) of the dequantized buffer, once. */
typedef struct one_chunk {
    int rows, done;
} one_chunk;

static int claim_one(void *ctx, int *r0, int *r1) {
    one_chunk *o = ctx;
    if (o->done) return 0;
    o->done = 1;
    *r0 = 0;
    *r1 = o->rows;
    return 1;
}

void pgd_avx2_matmul_dequant_batched(float *y, const float *x, const void *w, pgd_dtype wt, int n, int in, int out,
                                     pgd_claim_fn claim, void *ctx, pgd_row_f32_fn row_f32) {
    size_t row = pgd_dtype_bytes(wt, (size_t)in);
    float *buf = NULL;
    int cap = 0, r0, r1;
    while (claim(ctx, &r0, &r1)) {
        int nr = r1 - r0;
        if (nr > cap) {
            free(buf);
            buf = aligned_alloc(64, ((size_t)nr * in * sizeof(float) + 63) / 64 * 64);
            cap = buf ? nr : 0;
        }
        if (!buf) { /* no memory for the panel: f32 dot products, 256 values of a row at a time */
            float g[256];
            for (int r = r0; r < r1; r++)
                for (int t = 0; t < n; t++) {
                    float s = 0.0f;
                    for (int k0 = 0; k0 < in; k0 += 256) {
                        row_f32(g, (const char *)w + (size_t)r * row + pgd_dtype_bytes(wt, (size_t)k0), wt, 256);
                        for (int k = 0; k < 256; k++) s += g[k] * x[(size_t)t * in + k0 + k];
                    }
                    y[(size_t)t * out + r] = s;
                }
            continue;
        }
        for (int r = 0; r < nr; r++)
            row_f32(buf + (size_t)r * in, (const char *)w + (size_t)(r0 + r) * row, wt, (size_t)in);
        one_chunk o = {nr, 0};
        pgd_avx2_matmul_batched(y + r0, x, buf, PGD_F32, n, in, out, claim_one, &o);
    }
    free(buf);
}

void pgd_avx2_matmul_k(float *y, const float *x, const void *w, pgd_dtype wt, int n, int in, int out,
                       pgd_claim_fn claim, void *ctx) {
    if (n > g_k_int_max) {
        pgd_avx2_matmul_dequant_batched(y, x, w, wt, n, in, out, claim, ctx, pgd_avx2_dequant_k);
        return;
    }
    enum { STACK_BLOCKS = 3 * 512 }; /* 61 KB (and 12 KB of scales): in <= 16384 at n = 3 */
    xk8 stack[STACK_BLOCKS];
    float sd[STACK_BLOCKS], ss[STACK_BLOCKS];
    int nbx = in / 32, r0, r1;
    size_t nblk = (size_t)n * nbx;
    if (!claim(ctx, &r0, &r1)) return;
    int heap = nblk > STACK_BLOCKS;
    xk8 *xq = heap ? malloc(sizeof(xk8) * nblk) : stack;
    float *xd = heap ? malloc(sizeof(float) * nblk) : sd, *xs = heap ? malloc(sizeof(float) * nblk) : ss;
    if (!xq || !xd || !xs) { /* no memory for the quantized x: f32 dot products instead */
        if (heap) free(xq), free(xd), free(xs);
        do pgd_avx2_matmul_q_rows_f32(y, x, w, wt, n, in, out, r0, r1);
        while (claim(ctx, &r0, &r1));
        return;
    }
    for (int t = 0; t < n; t++) {
        size_t o = (size_t)t * nbx;
        quantize_xk(xq + o, xd + o, xs + o, x + (size_t)t * in, in);
    }
    size_t row = pgd_dtype_bytes(wt, (size_t)in);
    do {
        if (wt == PGD_Q4_K) krows_PGD_Q4_K(n, xq, xd, xs, nbx, w, row, y, (size_t)out, r0, r1);
        else krows_PGD_Q6_K(n, xq, xd, xs, nbx, w, row, y, (size_t)out, r0, r1);
    } while (claim(ctx, &r0, &r1));
    if (heap) free(xq), free(xd), free(xs);
}
