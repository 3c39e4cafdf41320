/* fast_impl.h - private interface between fast.c (dispatch, threading,
 * portable paths) and the AVX2/FMA/F16C kernels in *_avx2.c.
 *
 * Every pgd_avx2_* function is single-threaded and works on the slice it is
 * given (or, for pgd_avx2_matmul_batched, the row chunks it claims through
 * fast.c's callback); fast.c splits work across the pool and calls them only
 * after checking at run time that the CPU has AVX2, FMA and F16C. The *_avx2.c
 * files are the only ones compiled with -mavx2 -mfma -mf16c, so nothing here
 * may use intrinsic types. */
#ifndef PAGODA_KERNELS_CPU_FAST_IMPL_H
#define PAGODA_KERNELS_CPU_FAST_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

/* Scores per chunk of the attention context kept on the stack; contexts
 * longer than this are handled with an online-softmax rescale per chunk. */
#define PGD_ATTN_CHUNK 1024

/* Decode (n <= 3): rows r0..r1-1 of y(n, out) = x(n, in) @ W^T. */
void pgd_avx2_matmul_rows(float *y, const float *x, const void *w, pgd_dtype wt, int n, int in,
                          int out, int r0, int r1);

/* Decode (n <= 3) with quantized W (q8_0, q4_0; in % 32 == 0): rows
 * r0..r1-1, integer dot products against x quantized per block of 32
 * (matmul_q_avx2.c). _f32: the same rows with W dequantized in chunks and f32
 * dot products, for any n and any blocked W (q4_k/q6_k too): what the q and
 * k kernels fall back to without memory for the quantized x or a panel. */
void pgd_avx2_matmul_q_rows(float *y, const float *x, const void *w, pgd_dtype wt, int n, int in,
                            int out, int r0, int r1);
void pgd_avx2_matmul_q_rows_f32(float *y, const float *x, const void *w, pgd_dtype wt, int n,
                                int in, int out, int r0, int r1);
/* Batched (3 < n <= PGD_Q_TILE_MAX_TOKENS) with quantized W (in % 32 == 0):
 * the row chunks claim hands this thread (pgd_claim_fn below), integer dot
 * products against x quantized per block of 32, QR x QT register tiles
 * (matmul_q_avx2.c). */
typedef int (*pgd_claim_fn)(void *ctx, int *r0, int *r1);
void pgd_avx2_matmul_q_batched(float *y, const float *x, const void *w, pgd_dtype wt, int n, int in, int out,
                               pgd_claim_fn claim, void *ctx);
/* Batched q8_0 / q4_0 W (in % 32 == 0) with W and x widened to int16 in a
 * block-interleaved layout (vpmaddwd: twice the multiply-adds of an f32 FMA
 * per issue slot), for the row chunks claim hands this thread
 * (matmul_qgemm_avx2.c). fast.c takes it above PGD_Q_TILE_MAX_TOKENS
 * tokens, where it measured faster than pgd_avx2_matmul_q_batched's tiles
 * (one thread, 768 x 2048 q8_0: 1.06x at 6 tokens, 1.35x at 8, 1.54x at 16;
 * 0.89x at 5, 0.71x at 4, where padding to 8 tokens wastes the most). */
#define PGD_Q_TILE_MAX_TOKENS 5
void pgd_avx2_matmul_q_gemm(float *y, const float *x, const void *w, pgd_dtype wt, int n, int in, int out,
                            pgd_claim_fn claim, void *ctx, int x8);
/* The same with the call's buffers supplied (fast.c: from the pool, so
 * nothing is allocated per call): xshared, when not NULL and x fits in one
 * block (pgd_avx2_q_gemm_shared_x_bytes > 0), is x already packed by
 * pgd_avx2_q_gemm_pack_x (all its units), read by every thread; scratch,
 * when not NULL, holds pgd_avx2_q_gemm_scratch_bytes(wt, n, in, xshared !=
 * NULL) bytes, 64-byte aligned, for this thread alone. NULL: packed and
 * allocated per call, per thread. The outputs are the same bit for bit. */
void pgd_avx2_matmul_q_gemm_ex(float *y, const float *x, const void *w, pgd_dtype wt, int n, int in, int out,
                               pgd_claim_fn claim, void *ctx, int x8, const void *xshared, void *scratch);
/* Bytes of x packed once for all threads (64-byte aligned buffer), or 0 when
 * x is too large for one block (then every thread packs its own blocks). */
size_t pgd_avx2_q_gemm_shared_x_bytes(pgd_dtype wt, int n, int in);
size_t pgd_avx2_q_gemm_scratch_bytes(pgd_dtype wt, int n, int in, int x_shared);
/* Packing units of x: (tile of 8 tokens, group of 8 blocks) pairs; units
 * u0 <= u < u1 of x packed into xbuf. Each unit's bytes depend on its own
 * tokens and blocks alone: units packed by different threads, in any
 * split, give the buffer a single pgd_avx2_q_gemm_pack_x(.., 0, all) does. */
int pgd_avx2_q_gemm_x_units(int n, int in);
void pgd_avx2_q_gemm_pack_x(void *xbuf, pgd_dtype wt, const float *x, int n, int in, int u0, int u1);
/* q8_0 / q4_0 W in the CPU backend's x8 layouts (in % 256 == 0;
 * matmul_x8_avx2.c), any n: one load of a W group serves 4 tokens. fast.c
 * takes it up to PGD_X8_MAX_TOKENS(wt) tokens, and the GEMM above (x8 = 1:
 * it packs its panels from the layout). Measured (one thread, CPU time,
 * 2048 x 768, GEMM over this kernel): q8_0x8's kernel 44 GMAC/s at any
 * n >= 3 (39 at n = 1), the GEMM 1.01x at 8 tokens, 0.67x at 9 (padded to
 * 16), 0.88x at 12, 1.03x at 14, 1.16x at 16, 1.26x at 32; q4_0x8's kernel
 * 59 GMAC/s at n >= 2 (52 at n = 1), the GEMM 0.95x at 7, 1.07x at 8,
 * 0.74x at 9, 0.96x at 12, 1.10x at 14, 1.35x at 32. */
#define PGD_Q8X8_MAX_TOKENS 14
#define PGD_Q4X8_MAX_TOKENS 12
#define PGD_X8_MAX_TOKENS(wt) ((wt) == PGD_Q8_0 ? PGD_Q8X8_MAX_TOKENS : PGD_Q4X8_MAX_TOKENS)
void pgd_avx2_matmul_x8(float *y, const float *x, const void *w, pgd_dtype wt, int n, int in, int out,
                        pgd_claim_fn claim, void *ctx);
/* Rows r0..r1-1 of the same in f32 (W a group at a time, no heap): the x8
 * paths' fallback without memory. */
void pgd_avx2_matmul_x8_rows_f32(float *y, const float *x, const void *w, pgd_dtype wt, int n, int in, int out, int r0,
                                 int r1);
/* One row (in % 256 == 0) of x8 W as f32, bit-equal to
 * pgd_cpu_x8_row_to_f32 (the pgd_row_f32_fn shape). */
void pgd_avx2_x8_row_to_f32(float *dst, const void *row, pgd_dtype wt, size_t in);
/* Batched, any blocked W: every claimed chunk of rows converted to f32 by
 * row_f32 (one row of `in` values), then pgd_avx2_matmul_batched's
 * micro-kernel on it (matmul_k_avx2.c); without memory for a chunk, f32 dot
 * products a group of 256 values at a time. */
typedef void (*pgd_row_f32_fn)(float *dst, const void *row, pgd_dtype wt, size_t in);
void pgd_avx2_matmul_dequant_batched(float *y, const float *x, const void *w, pgd_dtype wt, int n, int in, int out,
                                     pgd_claim_fn claim, void *ctx, pgd_row_f32_fn row_f32);
/* The same as pgd_avx2_matmul_q_rows for the row chunks that claim(ctx, ...)
 * hands this thread (pgd_claim_fn below), x quantized once: what fast.c
 * runs on the pool, so that a thread the host deschedules does not hold
 * the others up at the end of every matmul. */
void pgd_avx2_matmul_q_decode(float *y, const float *x, const void *w, pgd_dtype wt, int n, int in, int out,
                              pgd_claim_fn claim, void *ctx);
/* dst[0..n) = the first n values of blocked src as f32 (n a whole number of
 * blocks: 32 for q8_0/q4_0, 256 for q4_k/q6_k, which go to
 * pgd_avx2_dequant_k). */
void pgd_avx2_dequant(float *dst, const void *src, pgd_dtype wt, size_t n);

/* q4_k / q6_k W (in % 256 == 0; matmul_k_avx2.c): y(n, out) = x(n, in) @
 * W^T for the row chunks claim hands this thread. n <= PGD_K_INT_MAX_TOKENS:
 * integer dot products against x quantized per block of 32 (each row read
 * once, 3 tokens at a time); more: each chunk dequantized to f32 and
 * pgd_avx2_matmul_batched's micro-kernel on it. The switch is measured
 * (README, the k-quant paragraph): one thread, 9216 x 768, the integer path 1.4-1.7x
 * (q4_k) and 1.8-2.4x (q6_k) at 4-6 tokens, 0.96-1.0x / 1.25x at 8,
 * 0.7x / 0.85x at 16.
 * pgd_avx2_dequant_k: n (% 256 == 0) values, bit-equal to pgd_dtype_to_f32. */
void pgd_avx2_matmul_k(float *y, const float *x, const void *w, pgd_dtype wt, int n, int in, int out,
                       pgd_claim_fn claim, void *ctx);
void pgd_avx2_dequant_k(float *dst, const void *src, pgd_dtype wt, size_t n);
#define PGD_K_INT_MAX_TOKENS 8
/* q4_k's 6-bit scales sc[0..7] and mins m[0..7] of its 8 sub-blocks, from
 * the 12 packed bytes q (dtype.h's layout; matmul_k_avx2.c, matmul_qgemm_avx2.c). */
static inline void pgd_q4k_scales(const uint8_t *q, int *sc, int *m) {
    for (int j = 0; j < 4; j++) {
        sc[j] = q[j] & 63;
        m[j] = q[j + 4] & 63;
        sc[j + 4] = (q[j + 8] & 0xF) | ((q[j] >> 6) << 4);
        m[j + 4] = (q[j + 8] >> 4) | ((q[j + 4] >> 6) << 4);
    }
}

/* pgd_claim_fn hands out the next chunk [*r0, *r1) of output rows; returns
 * 0 once there is none left. Called concurrently by all the threads of one
 * matmul. */

/* Batched (n > 3): y(n, out) = x(n, in) @ W^T for the row chunks that
 * claim(ctx, ...) hands this thread, until it returns 0. */
void pgd_avx2_matmul_batched(float *y, const float *x, const void *w, pgd_dtype wt, int n,
                             int in, int out, pgd_claim_fn claim, void *ctx);

/* 1 when pgd_avx2_matmul_batched does (n, in) in one pass over x (one token
 * block, one K panel): then it packs x once per thread and small row chunks
 * cost nothing extra; otherwise it repacks x for every chunk. */
int pgd_avx2_matmul_one_pass(int n, int in);

/* Most heads one pgd_avx2_attention_heads call takes (its scores live on the
 * stack: PGD_ATTN_MAX_HEADS * PGD_ATTN_CHUNK floats). */
#define PGD_ATTN_MAX_HEADS 16

/* Heads h0..h1-1 (h1 - h0 <= PGD_ATTN_MAX_HEADS) of paged attention for one
 * query row: `seq` owns query row `row`, which sits at position `pos`. */
void pgd_avx2_attention_heads(const pgd_paged_attn *a, int seq, int row, int pos, int h0, int h1);

/* y(dim) = x * w / sqrt(mean(x^2) + eps) for one row; y may alias x. */
void pgd_avx2_rmsnorm_row(float *y, const float *x, const float *w, int dim, float eps);
/* out[i] = silu(gate[i]) * up[i]; every element is computed by the same
 * vector code (the tail too), so a result does not depend on where the
 * caller's ranges start or end. */
void pgd_avx2_silu_mul(float *out, const float *gate, const float *up, size_t n);
void pgd_avx2_add(float *y, const float *x, size_t n);
/* dst[i] = src[i] converted from f16 / bf16. */
void pgd_avx2_f16_to_f32(float *dst, const uint16_t *src, size_t n);
void pgd_avx2_bf16_to_f32(float *dst, const uint16_t *src, size_t n);
/* dst[i] = src[i] rounded to f16 (to nearest even, as pgd_f32_to_f16). */
void pgd_avx2_f32_to_f16(uint16_t *dst, const float *src, size_t n);
/* A sum over `bytes` bytes at p, read once with 32-byte loads (the read
 * bandwidth probe; the value only keeps the loads from being elided). */
uint64_t pgd_avx2_read_sum(const void *p, size_t bytes);
/* Compute probes (probe_avx2.c): run `iters` iterations in registers and
 * return the operations done: f32 flops of FMAs, or int8 multiply-adds of
 * the quantized kernels' block dot product. */
double pgd_avx2_probe_fma(long iters);
double pgd_avx2_probe_int8(long iters);
double pgd_avx2_probe_madd16(long iters);
double pgd_avx2_probe_maddubs(long iters);
/* x[i] = exp(x[i] - sub); returns the sum of the new x[i]. */
float pgd_avx2_exp_sum(float *x, int n, float sub);

#endif
