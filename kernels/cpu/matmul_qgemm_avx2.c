/* matmul_qgemm_avx2.c - batched matmul with q8_0 / q4_0 weights in 16-bit
 * integers: y(n, out) = x(n, in) @ W^T for prefill and batched decode.
 *
 * Why 16 bits: on the machine this was written for (a Zen 4 EPYC with
 * AVX2 exposed), vpmaddwd, vpmaddubsw, vpsignb and vfmadd231ps all issue on
 * the same two pipes, two per cycle in total, while vpaddd issues on four
 * (measured in registers, one thread). An f32 FMA does 8 multiply-adds on
 * those pipes; the int8 sign trick (sign, maddubs, madd) does 32 in three
 * slots (10.7 a slot); vpmaddwd on int16 pairs does 16 in one. So W and x
 * are widened to int16 once (W per panel, x per call) and the inner loop is
 * vpmaddwd + vpaddd only: at most twice the f32 micro-kernel's rate, about
 * 1.3x in practice (a tile in L1/L2, one thread).
 *
 * Block-interleaved layout: the 32-bit lane j of a vector holds two
 * consecutive values of block 8g + j, so eight blocks of 32 (a group of
 * 256 values) are 16 vectors, and after the 16 vpmaddwd of a group the
 * eight int32 lanes are the eight blocks' exact integer dot products. They
 * are converted and scaled with one FMA per group by the eight products
 * d_w d_x (W's f16 block scales times x's per-block scales): no horizontal
 * sums per block. A row whose block count is not a multiple of 8 is padded
 * with zero blocks.
 *
 * x is quantized per block of 32 exactly as the decode path does
 * (quant_avx2.h's pgd_avx2_quant_block: d = max|x| / 127, round to nearest
 * even),
 * so every block's integer dot product equals the decode path's; outputs
 * differ from it only in f32 summation order.
 *
 * Blocking: x (all n tokens, padded to tiles of TT = 8) is packed once per
 * call while it fits in XP_BYTES (fast.c: into one buffer the threads share,
 * each packing the (tile, group) units it claims; alone: by each thread),
 * else per block of tokens, again for every chunk; each claimed chunk of output rows is packed per K panel of KCG
 * groups (1024 values: RC x 2 KB = 128 KB, in L2); for every 8-token tile
 * (16 KB of packed x per panel, in L1) each row runs the 1 x 8 micro-kernel
 * (8 int32 accumulators, one W vector and one x vector live). The f32
 * accumulation of each output goes in group order within a panel and panels
 * in order, so a result does not depend on the rows a thread claims. */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "fast_impl.h"
#include "quant_avx2.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))
#define QB PGD_QBLOCK /* 32 values a block */
#define GB 8          /* blocks a group: the lanes of the int32 accumulator */
#define GV (QB * GB)  /* 256 values a group = 16 vectors of int16 pairs */
#define TT 8          /* tokens a tile */
#define KCG 4         /* groups a K panel */

#define XP_BYTES ((size_t)4 << 20) /* packed x of one token block at most (L2/L3) */
#define RC 64                      /* most rows of a claimed chunk (fast.c hands out multiples of 8) */

/* q8_0: widen the 32 int8 values of each of 8 blocks (v[j], j < 8) into the
 * group's 16 vectors of int16 pairs (512 bytes): vector s, lane j = values
 * 2s, 2s + 1 of block j. */
ALWAYS_INLINE void interleave8_i16(char *dst, const __m256i v[8]) {
#pragma GCC unroll 2
    for (int half = 0; half < 2; half++) {
        __m256i a[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) /* pairs 8 half .. 8 half + 7 of block j as 8 dwords */
            a[j] = _mm256_cvtepi8_epi16(half ? _mm256_extracti128_si256(v[j], 1) : _mm256_castsi256_si128(v[j]));
        pgd_avx2_transpose8_store(dst + 256 * half, a);
    }
}

/* q4_0: the 32 bytes of each of 8 blocks as they are (256 bytes): vector s,
 * lane j = values 4s .. 4s + 3 of block j. */
ALWAYS_INLINE void interleave8_u8(char *dst, const __m256i v[8]) {
    __m256i a[8];
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) a[j] = v[j];
    pgd_avx2_transpose8_store(dst, a);
}

/* Bytes of one packed group (8 blocks) of one row or token. */
ALWAYS_INLINE size_t group_bytes(pgd_dtype wt) { return wt == PGD_Q8_0 ? 512 : 256; }

/* One W row's groups g0..g1-1 (blocks past nb are zero) to wp (WG bytes a
 * group: int16 pairs for q8_0, the signed nibbles w - 8 as bytes for q4_0),
 * its scales to dw (GB floats a group) and, for q4_0, -128 times each
 * block's sum of w to wc (GB int32 a group: what x's offset of +128 adds).
 * q4_k (a group is one super-block): the unsigned 4-bit q of each
 * sub-block of 32 as bytes, d sc_j in dw and the mins dmin m_j in wc (as
 * floats). */
static void pack_w_row(char *wp, float *dw, int32_t *wc, pgd_dtype wt, const char *row, int nb, int g0, int g1,
                       int x8) {
    size_t bsz = pgd_dtype_bytes(wt, QB);
    for (int g = g0; g < g1; g++, wp += group_bytes(wt), dw += GB, wc += GB) {
        __m256i v[GB];
        if (x8 && wt == PGD_Q8_0) { /* q8_0x8 (x8.c): chunk k, lane j = values 4k..4k+3 of block j, already
                                       interleaved; each chunk's dword split into its two int16 pairs (the byte to
                                       the high half, shifted down) */
            const char *src = row + (size_t)g * GB * sizeof(pgd_block_q8_0);
            const __m256i lo =
                _mm256_setr_epi8(-128, 0, -128, 1, -128, 4, -128, 5, -128, 8, -128, 9, -128, 12, -128, 13, -128, 0,
                                 -128, 1, -128, 4, -128, 5, -128, 8, -128, 9, -128, 12, -128, 13);
            const __m256i hi = _mm256_add_epi8(lo, _mm256_set1_epi16(0x0200));
            _mm256_storeu_ps(dw, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)src)));
#pragma GCC unroll 8
            for (int k = 0; k < GB; k++) {
                __m256i c = _mm256_loadu_si256((const __m256i *)(src + 16 + 32 * k));
                _mm256_storeu_si256((__m256i *)(wp + 64 * k), _mm256_srai_epi16(_mm256_shuffle_epi8(c, lo), 8));
                _mm256_storeu_si256((__m256i *)(wp + 64 * k + 32), _mm256_srai_epi16(_mm256_shuffle_epi8(c, hi), 8));
            }
            continue;
        }
        if (x8) { /* q4_0x8: chunk k holds vector k's values (4k..) in its low nibbles and vector 4 + k's
                     (16 + 4k..) in its high ones: w - 8 as bytes, and -128 sum(w) per block (lane) */
            const char *src = row + (size_t)g * GB * sizeof(pgd_block_q4_0);
            const __m256i m4 = _mm256_set1_epi8(15), one8 = _mm256_set1_epi8(1), ones = _mm256_set1_epi16(1);
            __m256i su = _mm256_setzero_si256();
            _mm256_storeu_ps(dw, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)src)));
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                __m256i c = _mm256_loadu_si256((const __m256i *)(src + 16 + 32 * k));
                __m256i ul = _mm256_and_si256(c, m4), uh = _mm256_and_si256(_mm256_srli_epi16(c, 4), m4);
                _mm256_storeu_si256((__m256i *)(wp + 32 * k), _mm256_sub_epi8(ul, _mm256_set1_epi8(8)));
                _mm256_storeu_si256((__m256i *)(wp + 32 * (k + 4)), _mm256_sub_epi8(uh, _mm256_set1_epi8(8)));
                __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(ul, one8), _mm256_maddubs_epi16(uh, one8));
                su = _mm256_add_epi32(su, _mm256_madd_epi16(p, ones));
            }
            /* sum(w) = sum(u) - 8 x 32 */
            _mm256_storeu_si256((__m256i *)wc, _mm256_mullo_epi32(_mm256_sub_epi32(su, _mm256_set1_epi32(8 * QB)),
                                                                  _mm256_set1_epi32(-128)));
            continue;
        }
        if (wt == PGD_Q4_K) { /* a group is one super-block: sub-block j's 4-bit q as bytes, d sc_j, dmin m_j */
            const uint8_t *blk = (const uint8_t *)row + (size_t)g * 144;
            uint16_t h[2];
            memcpy(h, blk, sizeof h);
            float d = _cvtsh_ss(h[0]), dmin = _cvtsh_ss(h[1]), *mw = (float *)wc;
            int sc[GB], m[GB];
            pgd_q4k_scales(blk + 4, sc, m);
            for (int c = 0; c < 4; c++) { /* 32 bytes of qs: low nibbles sub-block 2c, high 2c + 1 */
                __m256i raw = _mm256_loadu_si256((const __m256i *)(blk + 16 + 32 * c));
                v[2 * c] = _mm256_and_si256(raw, _mm256_set1_epi8(15));
                v[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), _mm256_set1_epi8(15));
            }
            for (int j = 0; j < GB; j++) dw[j] = d * (float)sc[j], mw[j] = dmin * (float)m[j];
            interleave8_u8(wp, v);
            continue;
        }
        for (int j = 0; j < GB; j++) {
            int b = g * GB + j;
            if (b < nb) {
                const char *blk = row + (size_t)b * bsz;
                v[j] = pgd_avx2_q_values(wt, blk);
                dw[j] = _cvtsh_ss(*(const uint16_t *)blk);
                if (wt == PGD_Q4_0) { /* sum of the nibbles (sad against 0), less 32 x 8 */
                    __m256i u = _mm256_add_epi8(v[j], _mm256_set1_epi8(8));
                    __m256i sad = _mm256_sad_epu8(u, _mm256_setzero_si256());
                    __m128i h = _mm_add_epi64(_mm256_castsi256_si128(sad), _mm256_extracti128_si256(sad, 1));
                    h = _mm_add_epi64(h, _mm_unpackhi_epi64(h, h));
                    wc[j] = -128 * (_mm_cvtsi128_si32(h) - 8 * QB);
                }
            } else {
                v[j] = _mm256_setzero_si256();
                dw[j] = 0.0f;
                wc[j] = 0;
            }
        }
        if (wt == PGD_Q4_0) interleave8_u8(wp, v);
        else interleave8_i16(wp, v);
    }
}

/* Packed x: for tile T, group g, token t (< TT): group_bytes(wt) at
 * xp + ((T * ng + g) * TT + t) * group_bytes(wt) (q8_0: int16 pairs; q4_0:
 * the int8 values plus 128 as unsigned bytes, 1..255, for vpmaddubsw; q4_k:
 * the int8 values, and d_x times each block's sum of them in xs), its GB
 * scales at the same index times GB in xd. Tokens past n and blocks past
 * nb have scale 0. Only the units (T, g) u0 <= T * ng + g < u1 are written:
 * a unit's bytes depend on nothing but its own tokens and blocks, so x
 * packed in parts (by several threads) equals x packed at once. */
static void pack_x_units(char *xp, float *xd, float *xs, pgd_dtype wt, const float *x, int n, int in, int ng, int u0,
                         int u1) {
    int nb = in / QB;
    size_t gbytes = group_bytes(wt);
    for (int u = u0; u < u1; u++) {
        int T = u / ng, g = u % ng;
        for (int t = 0; t < TT; t++) {
            size_t at = (size_t)u * TT + t;
            int tok = T * TT + t;
            __m256i v[GB];
            for (int j = 0; j < GB; j++) {
                int b = g * GB + j;
                int sum = 0;
                if (tok < n && b < nb)
                    v[j] = pgd_avx2_quant_block(x + (size_t)tok * in + (size_t)b * QB, &xd[at * GB + j],
                                                wt == PGD_Q4_K ? &sum : NULL);
                else v[j] = _mm256_setzero_si256(), xd[at * GB + j] = 0.0f;
                xs[at * GB + j] = xd[at * GB + j] * (float)sum; /* q4_k's mins: d_x sum(x_q) */
            }
            if (wt == PGD_Q4_0) {
                for (int j = 0; j < GB; j++) v[j] = _mm256_xor_si256(v[j], _mm256_set1_epi8((char)0x80));
                interleave8_u8(xp + at * gbytes, v);
            } else if (wt == PGD_Q4_K) { /* signed bytes as they are */
                interleave8_u8(xp + at * gbytes, v);
            } else {
                interleave8_i16(xp + at * gbytes, v);
            }
        }
    }
}

static void pack_x(char *xp, float *xd, float *xs, pgd_dtype wt, const float *x, int n, int in, int ng) {
    pack_x_units(xp, xd, xs, wt, x, n, in, ng, 0, (n + TT - 1) / TT * ng);
}

/* acc[t] (8 lanes, f32, in memory) += over groups g < ng: lane j gets
 * d_w[g][j] d_x[t][g][j] (W block . x_t block) for block 8 g + j, from the
 * eight int32 block sums of token t in sum[t]. */
ALWAYS_INLINE void fold8(float acc[TT][GB], const float *dw, const float *xd, const __m256i sum[TT]) {
    __m256 d = _mm256_loadu_ps(dw);
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++)
        _mm256_storeu_ps(acc[t], _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_loadu_ps(xd + t * GB)),
                                                 _mm256_cvtepi32_ps(sum[t]), _mm256_loadu_ps(acc[t])));
}

/* q8_0, one row against TT = 8 tokens over ng groups. wp/dw: the row's
 * packed groups; xp/xd: the tile's (TT tokens a group). */
static void kernel_i16(const char *wp, const float *dw, const char *xp, const float *xd, int ng, float acc[TT][GB]) {
    for (int g = 0; g < ng; g++, wp += 512, dw += GB, xp += TT * 512, xd += TT * GB) {
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, wv, p;
        /* The group's 16 steps in assembly: one W vector, then vpmaddwd with
         * each token's x vector (a memory operand: token t at 512 t bytes,
         * step s at 32 s bytes) and vpaddd into its accumulator. GCC's own
         * code for this loop spilled the accumulators or copied them between
         * registers every step (measured at a third, then 0.8x, of this
         * speed). */
        __asm__(".irp s, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n\t"
                "vmovdqu \\s*32(%[w]), %[wv]\n\t"
                "vpmaddwd \\s*32(%[x]), %[wv], %[p]\n\t"
                "vpaddd %[p], %[a0], %[a0]\n\t"
                "vpmaddwd \\s*32+512(%[x]), %[wv], %[p]\n\t"
                "vpaddd %[p], %[a1], %[a1]\n\t"
                "vpmaddwd \\s*32+1024(%[x]), %[wv], %[p]\n\t"
                "vpaddd %[p], %[a2], %[a2]\n\t"
                "vpmaddwd \\s*32+1536(%[x]), %[wv], %[p]\n\t"
                "vpaddd %[p], %[a3], %[a3]\n\t"
                "vpmaddwd \\s*32+2048(%[x]), %[wv], %[p]\n\t"
                "vpaddd %[p], %[a4], %[a4]\n\t"
                "vpmaddwd \\s*32+2560(%[x]), %[wv], %[p]\n\t"
                "vpaddd %[p], %[a5], %[a5]\n\t"
                "vpmaddwd \\s*32+3072(%[x]), %[wv], %[p]\n\t"
                "vpaddd %[p], %[a6], %[a6]\n\t"
                "vpmaddwd \\s*32+3584(%[x]), %[wv], %[p]\n\t"
                "vpaddd %[p], %[a7], %[a7]\n\t"
                ".endr"
                : [a0] "+x"(a0), [a1] "+x"(a1), [a2] "+x"(a2), [a3] "+x"(a3), [a4] "+x"(a4), [a5] "+x"(a5),
                  [a6] "+x"(a6), [a7] "+x"(a7), [wv] "=&x"(wv), [p] "=&x"(p)
                : [w] "r"(wp), [x] "r"(xp), "m"(*(const char(*)[512])wp), "m"(*(const char(*)[TT * 512]) xp));
        const __m256i sum[TT] = {a0, a1, a2, a3, a4, a5, a6, a7};
        fold8(acc, dw, xd, sum);
    }
}

/* One group of the byte kernels in assembly: for each of the 8 steps, one W
 * vector, then each token's x vector (token t at 256 t bytes, step s at
 * 32 s bytes) multiplied by MUL (vpmaddubsw: AT&T order, the unsigned
 * operand second) and added in int16 into a0..a7. Uses the caller's a0..a7,
 * wv, xv, p, wp and xp. */
#define U8_GROUP(MUL)                                                                                                  \
    __asm__(".irp s, 0,1,2,3,4,5,6,7\n\t"                                                                              \
            "vmovdqu \\s*32(%[w]), %[wv]\n\t"                                                                          \
            "vmovdqu \\s*32(%[x]), %[xv]\n\t" MUL "vpaddw %[p], %[a0], %[a0]\n\t"                                      \
            "vmovdqu \\s*32+256(%[x]), %[xv]\n\t" MUL "vpaddw %[p], %[a1], %[a1]\n\t"                                  \
            "vmovdqu \\s*32+512(%[x]), %[xv]\n\t" MUL "vpaddw %[p], %[a2], %[a2]\n\t"                                  \
            "vmovdqu \\s*32+768(%[x]), %[xv]\n\t" MUL "vpaddw %[p], %[a3], %[a3]\n\t"                                  \
            "vmovdqu \\s*32+1024(%[x]), %[xv]\n\t" MUL "vpaddw %[p], %[a4], %[a4]\n\t"                                 \
            "vmovdqu \\s*32+1280(%[x]), %[xv]\n\t" MUL "vpaddw %[p], %[a5], %[a5]\n\t"                                 \
            "vmovdqu \\s*32+1536(%[x]), %[xv]\n\t" MUL "vpaddw %[p], %[a6], %[a6]\n\t"                                 \
            "vmovdqu \\s*32+1792(%[x]), %[xv]\n\t" MUL "vpaddw %[p], %[a7], %[a7]\n\t"                                 \
            ".endr"                                                                                                    \
            : [a0] "+x"(a0), [a1] "+x"(a1), [a2] "+x"(a2), [a3] "+x"(a3), [a4] "+x"(a4), [a5] "+x"(a5), [a6] "+x"(a6), \
              [a7] "+x"(a7), [wv] "=&x"(wv), [xv] "=&x"(xv), [p] "=&x"(p)                                              \
            : [w] "r"(wp), [x] "r"(xp), "m"(*(const char(*)[256])wp), "m"(*(const char(*)[TT * 256]) xp))

/* q4_0, the same with bytes: vpmaddubsw of x + 128 (unsigned, 1..255) and
 * w - 8 (signed, -8..7) sums two products to int16 (|sum| <= 2 x 255 x 8 =
 * 4080, no saturation), and a group's 8 steps add up in int16 (8 x 4080 =
 * 32640 <= 32767: exact), so vpmaddwd with ones and the correction
 * -128 sum(w) (wc) come once per group: about 11 issue slots of the two
 * multiply pipes per 256 multiply-adds, against 18 in kernel_i16. */
static void kernel_u8(const char *wp, const float *dw, const int32_t *wc, const char *xp, const float *xd, int ng,
                      float acc[TT][GB]) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (int g = 0; g < ng; g++, wp += 256, dw += GB, wc += GB, xp += TT * 256, xd += TT * GB) {
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, wv, xv, p;
        U8_GROUP("vpmaddubsw %[wv], %[xv], %[p]\n\t"); /* x + 128 unsigned, w signed */
        __m256i c = _mm256_loadu_si256((const __m256i *)wc);
        const __m256i sum[TT] = {
            _mm256_add_epi32(_mm256_madd_epi16(a0, ones), c), _mm256_add_epi32(_mm256_madd_epi16(a1, ones), c),
            _mm256_add_epi32(_mm256_madd_epi16(a2, ones), c), _mm256_add_epi32(_mm256_madd_epi16(a3, ones), c),
            _mm256_add_epi32(_mm256_madd_epi16(a4, ones), c), _mm256_add_epi32(_mm256_madd_epi16(a5, ones), c),
            _mm256_add_epi32(_mm256_madd_epi16(a6, ones), c), _mm256_add_epi32(_mm256_madd_epi16(a7, ones), c)};
        fold8(acc, dw, xd, sum);
    }
}

/* q4_k: as kernel_u8 with W's q (0..15) the unsigned operand and x (int8)
 * the signed one (|pair| <= 2 x 15 x 127 = 3810, 8 steps <= 30480: exact in
 * int16); then lane j += d sc_j d_x (q . x_q) - dmin m_j (d_x sum x_q). */
static void kernel_u8k(const char *wp, const float *dw, const float *mw, const char *xp, const float *xd,
                       const float *xs, int ng, float acc[TT][GB]) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (int g = 0; g < ng; g++, wp += 256, dw += GB, mw += GB, xp += TT * 256, xd += TT * GB, xs += TT * GB) {
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, wv, xv, p;
        U8_GROUP("vpmaddubsw %[xv], %[wv], %[p]\n\t"); /* w's q unsigned, x signed */
        const __m256i sum[TT] = {_mm256_madd_epi16(a0, ones), _mm256_madd_epi16(a1, ones), _mm256_madd_epi16(a2, ones),
                                 _mm256_madd_epi16(a3, ones), _mm256_madd_epi16(a4, ones), _mm256_madd_epi16(a5, ones),
                                 _mm256_madd_epi16(a6, ones), _mm256_madd_epi16(a7, ones)};
        fold8(acc, dw, xd, sum);
        __m256 m = _mm256_loadu_ps(mw);
#pragma GCC unroll 8
        for (int t = 0; t < TT; t++)
            _mm256_storeu_ps(acc[t], _mm256_fnmadd_ps(m, _mm256_loadu_ps(xs + t * GB), _mm256_loadu_ps(acc[t])));
    }
}

/* The sums of v[0..7]'s lanes, as lanes 0..7 of one vector. */
ALWAYS_INLINE __m256 hsum8x8(const float v[TT][GB]) {
    __m256 h01 = _mm256_hadd_ps(_mm256_load_ps(v[0]), _mm256_load_ps(v[1]));
    __m256 h23 = _mm256_hadd_ps(_mm256_load_ps(v[2]), _mm256_load_ps(v[3]));
    __m256 h45 = _mm256_hadd_ps(_mm256_load_ps(v[4]), _mm256_load_ps(v[5]));
    __m256 h67 = _mm256_hadd_ps(_mm256_load_ps(v[6]), _mm256_load_ps(v[7]));
    __m256 q0 = _mm256_hadd_ps(h01, h23), q1 = _mm256_hadd_ps(h45, h67);
    return _mm256_add_ps(_mm256_permute2f128_ps(q0, q1, 0x20), _mm256_permute2f128_ps(q0, q1, 0x31));
}

/* y[(t0 + t) * out + r] = yb[(r - c0) * tb + t] for t < nt, c0 <= r < c1:
 * the block's outputs, token by token (rows contiguous in y), moved by 8 x
 * 8 transposes (a scalar loop read yb at a stride of tb floats per value:
 * 2-3% of a batch-32 decode step); the values are copied, not changed. */
static void store_block(float *y, size_t out, const float *yb, size_t tb, int t0, int nt, int c0, int c1) {
    int t = 0, r8 = c0 + (c1 - c0) / 8 * 8;
    for (; t + 8 <= nt; t += 8) {
        for (int r = c0; r < r8; r += 8) {
            const float *src = yb + (size_t)(r - c0) * tb + t;
            __m256 a[8];
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) a[i] = _mm256_loadu_ps(src + (size_t)i * tb); /* row r + i, tokens t.. */
            pgd_avx2_transpose8_ps(a);                                                /* a[k]: token t + k, rows r.. */
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) _mm256_storeu_ps(y + (size_t)(t0 + t + k) * out + r, a[k]);
        }
        for (int k = t; k < t + 8; k++)
            for (int r = r8; r < c1; r++) y[(size_t)(t0 + k) * out + r] = yb[(size_t)(r - c0) * tb + k];
    }
    for (; t < nt; t++)
        for (int r = c0; r < c1; r++) y[(size_t)(t0 + t) * out + r] = yb[(size_t)(r - c0) * tb + t];
}

/* The sizes of one call's buffers: tb tokens a block (all n, padded to
 * TT, when their packed x fits in XP_BYTES: packed once per call; else
 * blocks of that size, packed again for every chunk); the packed x of one
 * block (x bytes: values, then xd and xs); and one thread's W panel, its
 * scales and the block's outputs (w bytes). */
typedef struct gemm_sizes {
    int nb, ng;
    size_t tb, gbytes, xvals, xscales, wbytes, wscales, xtotal, wtotal;
} gemm_sizes;

static gemm_sizes sizes_of(pgd_dtype wt, int n, int in) {
    gemm_sizes z;
    z.nb = in / QB, z.ng = (z.nb + GB - 1) / GB;
    z.gbytes = group_bytes(wt);
    size_t per_tok = (size_t)z.ng * z.gbytes, npad = ((size_t)n + TT - 1) / TT * TT;
    z.tb = npad * per_tok <= XP_BYTES ? npad : XP_BYTES / per_tok / TT * TT;
    if (z.tb < TT) z.tb = TT;
    z.xvals = z.tb * per_tok, z.xscales = z.tb * z.ng * GB;
    z.wbytes = (size_t)RC * KCG * z.gbytes, z.wscales = (size_t)RC * KCG * GB;
    z.xtotal = (z.xvals + 2 * z.xscales * sizeof(float) + 63) / 64 * 64;
    z.wtotal = (z.wbytes + (2 * z.wscales + RC * z.tb) * sizeof(float) + 63) / 64 * 64;
    return z;
}

size_t pgd_avx2_q_gemm_shared_x_bytes(pgd_dtype wt, int n, int in) {
    gemm_sizes z = sizes_of(wt, n, in);
    return z.tb >= (size_t)n ? z.xtotal : 0;
}

int pgd_avx2_q_gemm_x_units(int n, int in) {
    int ng = (in / QB + GB - 1) / GB;
    return (n + TT - 1) / TT * ng;
}

void pgd_avx2_q_gemm_pack_x(void *xbuf, pgd_dtype wt, const float *x, int n, int in, int u0, int u1) {
    gemm_sizes z = sizes_of(wt, n, in);
    char *xp = xbuf;
    float *xd = (float *)(xp + z.xvals), *xs = xd + z.xscales;
    pack_x_units(xp, xd, xs, wt, x, n, in, z.ng, u0, u1);
}

size_t pgd_avx2_q_gemm_scratch_bytes(pgd_dtype wt, int n, int in, int x_shared) {
    gemm_sizes z = sizes_of(wt, n, in);
    return (x_shared ? 0 : z.xtotal) + z.wtotal;
}

void pgd_avx2_matmul_q_gemm(float *y, const float *x, const void *w, pgd_dtype wt, int n, int in, int out,
                            pgd_claim_fn claim, void *ctx, int x8) {
    pgd_avx2_matmul_q_gemm_ex(y, x, w, wt, n, in, out, claim, ctx, x8, NULL, NULL);
}

void pgd_avx2_matmul_q_gemm_ex(float *y, const float *x, const void *w, pgd_dtype wt, int n, int in, int out,
                               pgd_claim_fn claim, void *ctx, int x8, const void *xshared, void *scratch) {
    int r0, r1;
    if (!claim(ctx, &r0, &r1)) return;
    gemm_sizes z = sizes_of(wt, n, in);
    int nb = z.nb, ng = z.ng, one_pass = z.tb >= (size_t)n;
    size_t tb = z.tb, gbytes = z.gbytes;
    if (!one_pass) xshared = NULL; /* packed per block of tokens: every thread packs its own */
    char *mem = scratch;
    if (!mem) mem = aligned_alloc(64, pgd_avx2_q_gemm_scratch_bytes(wt, n, in, xshared != NULL));
    if (!mem) { /* no memory for the packed x and W: dequantize row by row instead */
        do
            x8 ? pgd_avx2_matmul_x8_rows_f32(y, x, w, wt, n, in, out, r0, r1)
               : pgd_avx2_matmul_q_rows_f32(y, x, w, wt, n, in, out, r0, r1);
        while (claim(ctx, &r0, &r1));
        return;
    }
    /* this thread's x (unless shared), then its W panel, scales and outputs */
    char *xp = xshared ? (char *)xshared : mem, *wp = xshared ? mem : mem + z.xtotal;
    float *xd = (float *)(xp + z.xvals), *xs = xd + z.xscales;  /* xs: q4_k's d_x sum(x_q) per block */
    float *dw = (float *)(wp + z.wbytes), *yb = dw + z.wscales; /* yb[r - c0][token - t0] */
    int32_t *wc = (int32_t *)(yb + RC * tb);
    if (one_pass && !xshared) pack_x(xp, xd, xs, wt, x, n, in, ng);
    size_t row = pgd_dtype_bytes(wt, (size_t)in);
    do {
        for (int c0 = r0; c0 < r1; c0 += RC) {
            int c1 = r1 - c0 < RC ? r1 : c0 + RC;
            for (int t0 = 0; t0 < n; t0 += (int)tb) {
                int nt = n - t0 < (int)tb ? n - t0 : (int)tb, tiles = (nt + TT - 1) / TT;
                if (!one_pass) pack_x(xp, xd, xs, wt, x + (size_t)t0 * in, nt, in, ng);
                for (int g0 = 0; g0 < ng; g0 += KCG) {
                    int g1 = ng - g0 < KCG ? ng : g0 + KCG, kg = g1 - g0;
                    for (int r = c0; r < c1; r++)
                        pack_w_row(wp + (size_t)(r - c0) * kg * gbytes, dw + (size_t)(r - c0) * kg * GB,
                                   wc + (size_t)(r - c0) * kg * GB, wt, (const char *)w + (size_t)r * row, nb, g0, g1,
                                   x8);
                    for (int T = 0; T < tiles; T++) {
                        const char *xt = xp + ((size_t)T * ng + g0) * TT * gbytes;
                        const float *xdt = xd + ((size_t)T * ng + g0) * TT * GB;
                        for (int r = c0; r < c1; r++) {
                            float acc[TT][GB] __attribute__((aligned(32))) = {{0}};
                            const char *wr = wp + (size_t)(r - c0) * kg * gbytes;
                            const float *dwr = dw + (size_t)(r - c0) * kg * GB;
                            const int32_t *wcr = wc + (size_t)(r - c0) * kg * GB;
                            if (wt == PGD_Q4_0) kernel_u8(wr, dwr, wcr, xt, xdt, kg, acc);
                            else if (wt == PGD_Q4_K)
                                kernel_u8k(wr, dwr, (const float *)wcr, xt, xdt, xs + ((size_t)T * ng + g0) * TT * GB,
                                           kg, acc);
                            else kernel_i16(wr, dwr, xt, xdt, kg, acc);
                            float *dst = yb + (size_t)(r - c0) * tb + (size_t)T * TT;
                            __m256 v = hsum8x8(acc);
                            _mm256_storeu_ps(dst, g0 ? _mm256_add_ps(_mm256_loadu_ps(dst), v) : v);
                        }
                    }
                }
                store_block(y, (size_t)out, yb, tb, t0, nt, c0, c1);
            }
        }
    } while (claim(ctx, &r0, &r1));
    if (mem != scratch) free(mem);
}
