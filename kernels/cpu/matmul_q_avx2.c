/* matmul_q_avx2.c - quantized weights (q8_0, q4_0) with AVX2: the decode
 * path's integer dot products and the batched path's panel dequantization.
 *
 *  - Decode (n <= 3), pgd_avx2_matmul_q_rows: each token's x is quantized
 *    per block of 32 to int8 with an f32 scale (d = max|x| / 127, the
 *    ggml/llama.cpp recipe for activations against q8_0/q4_0 weights), then
 *    every W row is read once, as one sequential stream of blocks, and
 *    dotted with each token in integers: |w| (unsigned) times x carrying w's
 *    sign (_mm256_sign_epi8), pairs summed to int16 (_mm256_maddubs_epi16:
 *    at most 2 x 127 x 127, no saturation since |w| <= 127), then to int32
 *    (q4_0: its nibbles as unsigned bytes times x, less 8 x's pair sums,
 *    precomputed per x block; with n = 1, two blocks per register and 8
 *    sum(x) taken off each block's sum, qrows8_q4p). With n = 1 (every decode step's matmuls)
 *    eight blocks' int32 sums are reduced to one vector and scaled in one
 *    FMA (DOT8_ROWS); with n = 2, 3 each block is converted to f32 and
 *    accumulated with the product of the two block scales (q4_0's offset
 *    through the block sum of x). Bytes read per weight: 34/32 (q8_0) or
 *    18/32 (q4_0).
 *  - Batched (n > 3), pgd_avx2_matmul_q_batched: every token's x quantized
 *    the same way once per thread, then a register-blocked micro-kernel of
 *    QR W rows x QT tokens: per block, the QR weight blocks are loaded and
 *    made |w| once, and each of the QT activation blocks is loaded once and
 *    dotted with all QR rows (sign trick, maddubs, madd, convert, one fma by
 *    d_w d_x), so a load serves QR or QT dot products, with QR x QT f32
 *    accumulators in registers. q4_0 here is unpacked to signed nibbles
 *    (w - 8) and takes the q8_0 code.
 *  - Or, for n where fast.c chooses it (measured), matmul_avx2.c's f32
 *    micro-kernel over W panels that pgd_avx2_dequant converts to f32 first,
 *    as it does for f16/bf16.
 * Against the reference (W dequantized, then f32 dot products), the integer
 * paths differ by the activations' rounding to int8: a relative error of
 * about 0.3% of |x| |w| per output (tests allow 1%); the dequantizing
 * batched path by f32 summation order only. */
#include <immintrin.h>
#include <stdlib.h>

#include "fast_impl.h"
#include "quant_avx2.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))
#define QB PGD_QBLOCK
#define NTQ 3 /* most tokens of the decode path */

typedef struct xq8 {
    float d;
    float s8;    /* 8 * d * sum(q): what q4_0's offset of -8 takes from a dot product */
    int8_t q[QB];
    int16_t x8[QB / 2]; /* 8 (q[2i] + q[2i+1]): q4_0's offset of -8 per int16 pair (n = 1 path) */
} xq8;

/* One row of x (in % 32 == 0) to blocks of int8 with f32 scales. */
static void quantize_x(xq8 *dst, const float *x, int in) {
    for (int b = 0; b < in / QB; b++, x += QB) {
        int sum;
        __m256i p = pgd_avx2_quant_block(x, &dst[b].d, &sum);
        _mm256_storeu_si256((__m256i *)dst[b].q, p);
        dst[b].s8 = 8.0f * dst[b].d * (float)sum;
        _mm256_storeu_si256((__m256i *)dst[b].x8, _mm256_maddubs_epi16(_mm256_set1_epi8(8), p));
    }
}

/* Sum over the block of w * x (both signed) as 8 int32 partial sums, converted to f32. */
ALWAYS_INLINE __m256 dot_block(__m256i wabs, __m256i wq, __m256i xq) {
    __m256i p16 = _mm256_maddubs_epi16(wabs, _mm256_sign_epi8(xq, wq));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

/* q4_0's 32 nibbles as unsigned bytes 0..15 (the -8 is applied through x's s8). */
ALWAYS_INLINE __m256i load_q4u(const void *blk) {
    __m128i raw = _mm_loadu_si128((const __m128i *)((const pgd_block_q4_0 *)blk)->q);
    __m128i lo = _mm_and_si128(raw, _mm_set1_epi8(15));
    __m128i hi = _mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(15));
    return _mm256_set_m128i(hi, lo);
}

/* acc[t] += d_w d_x (w . x) over one block b of the W row for nt tokens;
 * corr[t] collects q4_0's offset term. */
ALWAYS_INLINE void qblock(int nt, pgd_dtype wt, const xq8 *xq, int nb, const char *blk, int b, __m256 *acc,
                          float *corr) {
    float dw = _cvtsh_ss(*(const uint16_t *)blk);
    if (wt == PGD_Q8_0) {
        __m256i wq = _mm256_loadu_si256((const __m256i *)((const pgd_block_q8_0 *)blk)->q);
        __m256i wabs = _mm256_sign_epi8(wq, wq);
#pragma GCC unroll 3
        for (int t = 0; t < nt; t++) {
            const xq8 *xb = xq + (size_t)t * nb + b;
            __m256 s = dot_block(wabs, wq, _mm256_loadu_si256((const __m256i *)xb->q));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * xb->d), s, acc[t]);
        }
    } else {
        __m256i wu = load_q4u(blk);
#pragma GCC unroll 3
        for (int t = 0; t < nt; t++) {
            const xq8 *xb = xq + (size_t)t * nb + b;
            __m256i p16 = _mm256_maddubs_epi16(wu, _mm256_loadu_si256((const __m256i *)xb->q));
            __m256 s = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * xb->d), s, acc[t]);
            corr[t] += dw * xb->s8;
        }
    }
}

/* y[t*ldy] = W_row . x_t for nt tokens, two accumulators each (even, odd
 * blocks, unrolled so that they stay in registers). q8_0: |w| times x with
 * w's sign (signed x signed). q4_0: the unsigned nibbles u = w + 8 times x
 * directly (at most 2 x 15 x 127 per pair), and d_w d_x 8 sum(x_q) taken
 * off in a scalar sum on the side. */
ALWAYS_INLINE void qrow(int nt, pgd_dtype wt, const xq8 *xq, int nb, const char *w, size_t bsz,
                        float *y, size_t ldy) {
    __m256 a0[NTQ], a1[NTQ];
    float c0[NTQ] = {0}, c1[NTQ] = {0};
#pragma GCC unroll 3
    for (int t = 0; t < NTQ; t++) a0[t] = a1[t] = _mm256_setzero_ps();
    int b = 0;
    for (; b + 2 <= nb; b += 2) {
        qblock(nt, wt, xq, nb, w + (size_t)b * bsz, b, a0, c0);
        qblock(nt, wt, xq, nb, w + (size_t)(b + 1) * bsz, b + 1, a1, c1);
    }
    if (b < nb) qblock(nt, wt, xq, nb, w + (size_t)b * bsz, b, a0, c0);
#pragma GCC unroll 3
    for (int t = 0; t < nt; t++) y[t * ldy] = pgd_avx2_hsum8(_mm256_add_ps(a0[t], a1[t])) - (c0[t] + c1[t]);
}

/* Rows r0..r1-1 against all n tokens: each W row is read from memory once,
 * and dotted with the tokens NTQ at a time while it sits in L1 (the
 * quantized x, n x in/32 blocks of 36 bytes, stays in L1/L2). */
#define QROWS(WT)                                                                           \
    static void qrows_##WT(int n, const xq8 *xq, int nb, const char *w, float *y,           \
                           size_t ldy, int r0, int r1) {                                    \
        size_t bsz = pgd_dtype_bytes(WT, QB), row = bsz * (size_t)nb;                       \
        for (int r = r0; r < r1; r++) {                                                     \
            const char *wr = w + (size_t)r * row;                                           \
            int t = 0;                                                                      \
            for (; t + 3 <= n; t += 3)                                                      \
                qrow(3, WT, xq + (size_t)t * nb, nb, wr, bsz, y + (size_t)t * ldy + r, ldy); \
            if (n - t == 2) qrow(2, WT, xq + (size_t)t * nb, nb, wr, bsz, y + (size_t)t * ldy + r, ldy); \
            else if (n - t == 1) qrow(1, WT, xq + (size_t)t * nb, nb, wr, bsz, y + (size_t)t * ldy + r, ldy); \
        }                                                                                   \
    }

QROWS(PGD_Q8_0)
QROWS(PGD_Q4_0)

/* One token (n = 1, every decode step's matmuls): the products of one
 * block in int16 pairs, from q8_prod16 / q4_prod16. */
ALWAYS_INLINE __m256i q8_prod16(const char *blk, const xq8 *xb) {
    __m256i wq = _mm256_loadu_si256((const __m256i *)((const pgd_block_q8_0 *)blk)->q);
    __m256i xv = _mm256_loadu_si256((const __m256i *)xb->q);
    return _mm256_maddubs_epi16(_mm256_sign_epi8(wq, wq), _mm256_sign_epi8(xv, wq));
}

/* q4_0: the nibbles u = w + 8 as unsigned bytes (low nibbles: elements
 * 0..15, high: 16..31) times x, less x8 = 8 (x_2i + x_2i+1) per int16 pair
 * (quantize_x's x8): the signed sum of w x exactly (|u x pair| <= 3810,
 * |x8| <= 2032, in int16). */
ALWAYS_INLINE __m256i q4_prod16(const char *blk, const xq8 *xb) {
    __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)((const pgd_block_q4_0 *)blk)->q));
    __m256i u = _mm256_and_si256(_mm256_srlv_epi64(v, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(15));
    __m256i p16 = _mm256_maddubs_epi16(u, _mm256_loadu_si256((const __m256i *)xb->q));
    return _mm256_sub_epi16(p16, _mm256_loadu_si256((const __m256i *)xb->x8));
}

/* Eight blocks' int32 partial sums (v[k]: 8 lanes of block k) to one
 * vector of the eight block sums (lane k: block k). */
ALWAYS_INLINE __m256i sum8x8(const __m256i v[8]) {
    __m256i t0 = _mm256_hadd_epi32(v[0], v[1]), t1 = _mm256_hadd_epi32(v[2], v[3]);
    __m256i t2 = _mm256_hadd_epi32(v[4], v[5]), t3 = _mm256_hadd_epi32(v[6], v[7]);
    __m256i u0 = _mm256_hadd_epi32(t0, t1), u1 = _mm256_hadd_epi32(t2, t3);
    return _mm256_add_epi32(_mm256_permute2x128_si256(u0, u1, 0x20), _mm256_permute2x128_si256(u0, u1, 0x31));
}

/* y[r] = W_r . x for rows r0..r1-1 of one token, eight blocks at a time:
 * each block's products to 8 int32 lanes (maddubs, madd), the eight blocks
 * reduced to one vector of block sums (sum8x8), converted, and scaled by
 * the eight d_w d_x at once (8 f16 scales inserted into one register, one
 * vcvtph2ps, one multiply by x's scales xd[b..b+7]) in one FMA. Against one
 * FMA per block with its own scalar scale conversion and broadcast, this
 * issues about 9.5 instead of 13 instructions a block, which is what bounds
 * this loop on the 2-core EPYC VM this was measured on (1.34 against 1.49 ns a q8_0 block in L2, 1.41 against
 * 1.86 for q4_0; one thread, CPU time). The last nb % 8 blocks go one at a
 * time. */
#define DOT8_ROWS(NAME, BLK, STEP)                                                                      \
    static void NAME(const xq8 *xq, const float *xd, int nb, const char *w, float *y, int r0, int r1) { \
        const size_t bsz = sizeof(BLK), row = bsz * (size_t)nb;                                         \
        const __m256i ones = _mm256_set1_epi16(1);                                                      \
        for (int r = r0; r < r1; r++) {                                                                 \
            const char *wr = w + (size_t)r * row;                                                       \
            __m256 acc = _mm256_setzero_ps(), a1 = acc;                                                 \
            int b = 0;                                                                                  \
            for (; b + 8 <= nb; b += 8) {                                                               \
                const char *p = wr + (size_t)b * bsz;                                                   \
                __m256i v[8];                                                                           \
                _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) v[k] =                              \
                    _mm256_madd_epi16(STEP(p + k * bsz, xq + b + k), ones);                             \
                __m128i h = _mm_cvtsi32_si128(*(const uint16_t *)p);                                    \
                h = _mm_insert_epi16(h, *(const short *)(p + bsz), 1);                                  \
                h = _mm_insert_epi16(h, *(const short *)(p + 2 * bsz), 2);                              \
                h = _mm_insert_epi16(h, *(const short *)(p + 3 * bsz), 3);                              \
                h = _mm_insert_epi16(h, *(const short *)(p + 4 * bsz), 4);                              \
                h = _mm_insert_epi16(h, *(const short *)(p + 5 * bsz), 5);                              \
                h = _mm_insert_epi16(h, *(const short *)(p + 6 * bsz), 6);                              \
                h = _mm_insert_epi16(h, *(const short *)(p + 7 * bsz), 7);                              \
                __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(h), _mm256_loadu_ps(xd + b));                  \
                acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sum8x8(v)), acc);                           \
            }                                                                                           \
            for (; b < nb; b++) {                                                                       \
                const char *p = wr + (size_t)b * bsz;                                                   \
                __m256 s = _mm256_cvtepi32_ps(_mm256_madd_epi16(STEP(p, xq + b), ones));                \
                a1 = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(*(const uint16_t *)p) * xd[b]), s, a1);   \
            }                                                                                           \
            y[r] = pgd_avx2_hsum8(_mm256_add_ps(acc, a1));                                              \
        }                                                                                               \
    }

DOT8_ROWS(qrows8_q8, pgd_block_q8_0, q8_prod16)
DOT8_ROWS(qrows8_q4, pgd_block_q4_0, q4_prod16)

/* q4_0, one token, two blocks per register: x of blocks 2p and 2p+1
 * rearranged once per matmul as lo = (x_2p[0..15], x_2p+1[0..15]) and hi =
 * (x_2p[16..31], x_2p+1[16..31]) to match the nibbles of the two blocks'
 * 16-byte halves loaded side by side (low nibbles: elements 0..15, high:
 * 16..31), so one register of each serves two blocks. The offset of -8 is
 * taken off each block's int32 sum (8 sum(x) per block, x8s, in the order
 * the sums come out), once per 8 blocks, not per int16 pair. */
typedef struct xq4p {
    int8_t lo[QB], hi[QB];
} xq4p;

/* The order in which qrows8_q4p's eight block sums come out of its hadds. */
static const int Q4P_ORDER[8] = {0, 2, 4, 6, 1, 3, 5, 7};

static void pair_x(xq4p *dst, float *xdp, int32_t *x8s, const xq8 *xq, int nb) {
    for (int p = 0; p < nb / 2; p++) {
        __m256i x0 = _mm256_loadu_si256((const __m256i *)xq[2 * p].q);
        __m256i x1 = _mm256_loadu_si256((const __m256i *)xq[2 * p + 1].q);
        _mm256_storeu_si256((__m256i *)dst[p].lo, _mm256_permute2x128_si256(x0, x1, 0x20));
        _mm256_storeu_si256((__m256i *)dst[p].hi, _mm256_permute2x128_si256(x0, x1, 0x31));
    }
    /* scales and 8 sum(x) of each group of 8 blocks in the sums' order */
    for (int b = 0; b + 8 <= nb; b += 8)
        for (int j = 0; j < 8; j++) {
            const xq8 *xb = xq + b + Q4P_ORDER[j];
            int sx = 0;
            for (int i = 0; i < QB; i++) sx += xb->q[i];
            xdp[b + j] = xb->d;
            x8s[b + j] = 8 * sx;
        }
}

/* int32 sums of u x (u = w + 8, the unsigned nibbles) of blocks 2p (low 128
 * bits) and 2p+1 (high), 4 lanes each. */
ALWAYS_INLINE __m256i q4_pair(const char *blk, const xq4p *xp, __m256i ones) {
    const pgd_block_q4_0 *b0 = (const pgd_block_q4_0 *)blk, *b1 = b0 + 1;
    __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)b0->q)),
                                        _mm_loadu_si128((const __m128i *)b1->q), 1);
    const __m256i m = _mm256_set1_epi8(15);
    __m256i lo = _mm256_and_si256(v, m), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
    __m256i p16 = _mm256_add_epi16(_mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)xp->lo)),
                                   _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)xp->hi)));
    return _mm256_madd_epi16(p16, ones); /* pairs of u x at most 2 x 15 x 127, two of them 7620: int16 */
}

/* The f16 scales of the blocks at p + k * bsz, k = ord[0..7], as 8 halves:
 * gathered in two 64-bit general registers (scalar loads and shifts) rather
 * than with eight vector inserts, which compete with the dot products for
 * the vector pipes (measured: q4_0 7-9% less time a block in L2). */
ALWAYS_INLINE uint64_t f16_at(const char *p) { return *(const uint16_t *)p; }
ALWAYS_INLINE __m128i scales8(const char *p, size_t bsz, const int *ord) {
    uint64_t a = 0, b = 0;
    for (int k = 0; k < 4; k++) a |= f16_at(p + ord[k] * bsz) << (16 * k);
    for (int k = 0; k < 4; k++) b |= f16_at(p + ord[4 + k] * bsz) << (16 * k);
    return _mm_insert_epi64(_mm_cvtsi64_si128((long long)a), (long long)b, 1);
}

/* Bytes ahead of its loads that qrows8_q4p prefetches (two lines per
 * group of 8 blocks, 72 bytes apart, at most one line in 9 left to the
 * hardware prefetcher). Measured on the 2-core EPYC VM, one thread, 5632 x
 * 2048 q4_0 matrices from DRAM, interleaved, medians of 15 under load: 1.20x
 * at 2048 (1.07x at 1024); with W in L2 it costs 4%. In DOT8_ROWS (q8_0)
 * the same made decode from DRAM 0.7-0.9x, so q8_0 has none: one thread of
 * it already streams near the read probe, q4_0 at half of it. */
#define Q4_PREFETCH 2048

/* As DOT8_ROWS for q4_0 on paired x (pair_x): per 8 blocks 4 pair sums,
 * 3 hadds to the block sums (order Q4P_ORDER, which the scales and x8s
 * follow), less 8 sum(x) of each block, one FMA; about 7 instead of 9
 * instructions a block. */
static void qrows8_q4p(const xq8 *xq, const xq4p *xp, const float *xdp, const int32_t *x8s, const float *xd, int nb,
                       const char *w, float *y, int r0, int r1) {
    const size_t bsz = sizeof(pgd_block_q4_0), row = bsz * (size_t)nb;
    const __m256i ones = _mm256_set1_epi16(1);
    for (int r = r0; r < r1; r++) {
        const char *wr = w + (size_t)r * row;
        __m256 acc = _mm256_setzero_ps(), a1 = acc;
        int b = 0;
        for (; b + 8 <= nb; b += 8) {
            const char *p = wr + (size_t)b * bsz;
            const xq4p *x4 = xp + b / 2;
            _mm_prefetch(p + Q4_PREFETCH, _MM_HINT_T0);
            _mm_prefetch(p + Q4_PREFETCH + 72, _MM_HINT_T0);
            __m256i v01 = q4_pair(p, x4, ones), v23 = q4_pair(p + 2 * bsz, x4 + 1, ones);
            __m256i v45 = q4_pair(p + 4 * bsz, x4 + 2, ones), v67 = q4_pair(p + 6 * bsz, x4 + 3, ones);
            __m256i sums = _mm256_hadd_epi32(_mm256_hadd_epi32(v01, v23), _mm256_hadd_epi32(v45, v67));
            sums = _mm256_sub_epi32(sums, _mm256_loadu_si256((const __m256i *)(x8s + b)));
            __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(scales8(p, bsz, Q4P_ORDER)), _mm256_loadu_ps(xdp + b));
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sums), acc);
        }
        for (; b < nb; b++) {
            const char *p = wr + (size_t)b * bsz;
            __m256 s = _mm256_cvtepi32_ps(_mm256_madd_epi16(q4_prod16(p, xq + b), ones));
            a1 = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(*(const uint16_t *)p) * xd[b]), s, a1);
        }
        y[r] = pgd_avx2_hsum8(_mm256_add_ps(acc, a1));
    }
}

void pgd_avx2_matmul_q_decode(float *y, const float *x, const void *w, pgd_dtype wt, int n, int in, int out,
                              pgd_claim_fn claim, void *ctx) {
    enum { STACK_BLOCKS = 3 * 512 }; /* 108 KB (+ 6 KB of scales): in <= 16384 at n = 3 */
    xq8 stack[STACK_BLOCKS];
    float dstack[STACK_BLOCKS];
    int nb = in / QB, r0, r1;
    if (!claim(ctx, &r0, &r1)) return;
    int heap = (size_t)n * nb > STACK_BLOCKS;
    xq8 *xq = heap ? malloc(sizeof(xq8) * (size_t)n * nb) : stack;
    float *xd = heap ? malloc(sizeof(float) * (size_t)nb) : dstack;
    if (!xq || !xd) { /* no memory for the quantized x: dequantize row by row instead */
        if (heap) free(xq), free(xd);
        do pgd_avx2_matmul_q_rows_f32(y, x, w, wt, n, in, out, r0, r1);
        while (claim(ctx, &r0, &r1));
        return;
    }
    for (int t = 0; t < n; t++) quantize_x(xq + (size_t)t * nb, x + (size_t)t * in, in);
    for (int b = 0; b < nb; b++) xd[b] = xq[b].d;
    xq4p *xp = NULL;
    float *xdp = NULL;
    int32_t *x8s = NULL;
    if (n == 1 && wt == PGD_Q4_0 && nb >= 8) { /* paired x: (nb / 2) x 64 bytes, scales and 8 sum(x) in sum order */
        xp = malloc(sizeof(xq4p) * (size_t)(nb / 2) + (sizeof(float) + sizeof(int32_t)) * (size_t)nb);
        if (xp) {
            xdp = (float *)(xp + nb / 2), x8s = (int32_t *)(xdp + nb);
            pair_x(xp, xdp, x8s, xq, nb);
        }
    }
    do {
        if (n == 1 && wt == PGD_Q8_0) qrows8_q8(xq, xd, nb, w, y, r0, r1);
        else if (n == 1 && xp) qrows8_q4p(xq, xp, xdp, x8s, xd, nb, w, y, r0, r1);
        else if (n == 1) qrows8_q4(xq, xd, nb, w, y, r0, r1);
        else if (wt == PGD_Q8_0) qrows_PGD_Q8_0(n, xq, nb, w, y, (size_t)out, r0, r1);
        else qrows_PGD_Q4_0(n, xq, nb, w, y, (size_t)out, r0, r1);
    } while (claim(ctx, &r0, &r1));
    free(xp);
    if (heap) free(xq), free(xd);
}

typedef struct one_range {
    int r0, r1, done;
} one_range;

static int claim_once(void *ctx, int *r0, int *r1) {
    one_range *o = ctx;
    if (o->done || o->r0 >= o->r1) return 0;
    o->done = 1, *r0 = o->r0, *r1 = o->r1;
    return 1;
}

void pgd_avx2_matmul_q_rows(float *y, const float *x, const void *w, pgd_dtype wt, int n, int in, int out, int r0,
                            int r1) {
    one_range o = {r0, r1, 0};
    pgd_avx2_matmul_q_decode(y, x, w, wt, n, in, out, claim_once, &o);
}

#define QR 2 /* W rows per micro-tile */
#define QT 4 /* tokens per micro-tile */

/* y[t * ldy + r] = W_r . x_t for r < nr (<= QR) rows from w (rows `row`
 * bytes apart) and t < nt (<= QT) tokens from xq (nb blocks each). */
ALWAYS_INLINE void qtile(int nr, int nt, pgd_dtype wt, const xq8 *xq, int nb, const char *w, size_t row, size_t bsz,
                         float *y, size_t ldy) {
    __m256 acc[QR][QT];
    const __m256i ones = _mm256_set1_epi16(1);
#pragma GCC unroll 4
    for (int r = 0; r < QR; r++)
#pragma GCC unroll 4
        for (int t = 0; t < QT; t++) acc[r][t] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        __m256i wq[QR], wa[QR];
        __m256 dw[QR];
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++) {
            const char *blk = w + (size_t)r * row + (size_t)b * bsz;
            wq[r] = pgd_avx2_q_values(wt, blk);
            wa[r] = _mm256_sign_epi8(wq[r], wq[r]);
            dw[r] = _mm256_set1_ps(_cvtsh_ss(*(const uint16_t *)blk));
        }
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) {
            const xq8 *xb = xq + (size_t)t * nb + b;
            __m256i xv = _mm256_loadu_si256((const __m256i *)xb->q);
            __m256 dx = _mm256_set1_ps(xb->d);
#pragma GCC unroll 4
            for (int r = 0; r < nr; r++) {
                __m256i p16 = _mm256_maddubs_epi16(wa[r], _mm256_sign_epi8(xv, wq[r]));
                __m256 s = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
                acc[r][t] = _mm256_fmadd_ps(_mm256_mul_ps(dw[r], dx), s, acc[r][t]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < nr; r++)
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) y[(size_t)t * ldy + r] = pgd_avx2_hsum8(acc[r][t]);
}

#define QTILE(WT)                                                                                                    \
    static void qtile_##WT(int nr, int nt, const xq8 *xq, int nb, const char *w, size_t row, float *y, size_t ldy) { \
        size_t bsz = pgd_dtype_bytes(WT, QB);                                                                        \
        if (nr == QR && nt == QT) qtile(QR, QT, WT, xq, nb, w, row, bsz, y, ldy);                                    \
        else if (nr == QR) {                                                                                         \
            if (nt == 3) qtile(QR, 3, WT, xq, nb, w, row, bsz, y, ldy);                                              \
            else if (nt == 2) qtile(QR, 2, WT, xq, nb, w, row, bsz, y, ldy);                                         \
            else qtile(QR, 1, WT, xq, nb, w, row, bsz, y, ldy);                                                      \
        } else {                                                                                                     \
            if (nt == QT) qtile(1, QT, WT, xq, nb, w, row, bsz, y, ldy);                                             \
            else if (nt == 3) qtile(1, 3, WT, xq, nb, w, row, bsz, y, ldy);                                          \
            else if (nt == 2) qtile(1, 2, WT, xq, nb, w, row, bsz, y, ldy);                                          \
            else qtile(1, 1, WT, xq, nb, w, row, bsz, y, ldy);                                                       \
        }                                                                                                            \
    }
QTILE(PGD_Q8_0)
QTILE(PGD_Q4_0)

void pgd_avx2_matmul_q_batched(float *y, const float *x, const void *w, pgd_dtype wt, int n, int in, int out,
                               pgd_claim_fn claim, void *ctx) {
    int nb = in / QB, r0, r1;
    size_t row = pgd_dtype_bytes(wt, (size_t)in);
    if (!claim(ctx, &r0, &r1)) return;
    xq8 *xq = malloc(sizeof(xq8) * (size_t)n * nb);
    if (!xq) { /* no memory for the quantized x: dequantize row by row instead */
        do pgd_avx2_matmul_q_rows_f32(y, x, w, wt, n, in, out, r0, r1);
        while (claim(ctx, &r0, &r1));
        return;
    }
    for (int t = 0; t < n; t++) quantize_x(xq + (size_t)t * nb, x + (size_t)t * in, in);
    do {
        for (int r = r0; r < r1; r += QR) {
            int nr = r1 - r < QR ? r1 - r : QR;
            const char *wr = (const char *)w + (size_t)r * row;
            for (int t = 0; t < n; t += QT) {
                int nt = n - t < QT ? n - t : QT;
                float *yt = y + (size_t)t * out + r;
                if (wt == PGD_Q8_0) qtile_PGD_Q8_0(nr, nt, xq + (size_t)t * nb, nb, wr, row, yt, (size_t)out);
                else qtile_PGD_Q4_0(nr, nt, xq + (size_t)t * nb, nb, wr, row, yt, (size_t)out);
            }
        }
    } while (claim(ctx, &r0, &r1));
    free(xq);
}

void pgd_avx2_dequant(float *dst, const void *src, pgd_dtype wt, size_t n) {
    if (pgd_dtype_is_kquant(wt)) {
        pgd_avx2_dequant_k(dst, src, wt, n);
        return;
    }
    size_t bsz = pgd_dtype_bytes(wt, QB);
    for (size_t b = 0; b < n / QB; b++, dst += QB) {
        const char *blk = (const char *)src + b * bsz;
        __m256i q = pgd_avx2_q_values(wt, blk);
        __m256 d = _mm256_set1_ps(_cvtsh_ss(*(const uint16_t *)blk));
        __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
        _mm256_storeu_ps(dst, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo))));
        _mm256_storeu_ps(dst + 8, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)))));
        _mm256_storeu_ps(dst + 16, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi))));
        _mm256_storeu_ps(dst + 24, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)))));
    }
}

/* Fallback without the quantized x (or, for k-quants, a panel): each W row
 * dequantized on the stack in chunks of 1024 values (whole blocks of 32 and
 * super-blocks of 256), then f32 dot products. */
void pgd_avx2_matmul_q_rows_f32(float *y, const float *x, const void *w, pgd_dtype wt, int n, int in,
                                int out, int r0, int r1) {
    enum { CH = 1024 };
    float buf[CH] __attribute__((aligned(32)));
    size_t row = pgd_dtype_bytes(wt, (size_t)in);
    for (int r = r0; r < r1; r++)
        for (int k0 = 0; k0 < in; k0 += CH) {
            int kc = in - k0 < CH ? in - k0 : CH;
            pgd_avx2_dequant(buf, (const char *)w + r * row + pgd_dtype_bytes(wt, (size_t)k0), wt, (size_t)kc);
            for (int t = 0; t < n; t++) {
                const float *xt = x + (size_t)t * in + k0;
                __m256 a = _mm256_setzero_ps();
                for (int k = 0; k < kc; k += 8) a = _mm256_fmadd_ps(_mm256_load_ps(buf + k), _mm256_loadu_ps(xt + k), a);
                float v = pgd_avx2_hsum8(a), *dst = y + (size_t)t * out + r;
                *dst = k0 ? *dst + v : v;
            }
        }
}
