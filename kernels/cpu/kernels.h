/* kernels.h - CPU kernels for the Llama forward pass.
 *
 * Each op has a naive reference kernel (pgd_ref_*: plain loops in the style
 * of llama2.c's run.c, single-threaded, the ground truth for tests) and a
 * fast kernel (pgd_cpu_*: AVX2/FMA/F16C when the CPU has them, detected at
 * run time, else a portable scalar path; split across the threads of `tp`,
 * which may be NULL for the calling thread alone). Fast and reference
 * kernels agree to a relative error under 1e-5 in f32.
 *
 * Kernels take raw pointers and sizes only, no engine types, so each can be
 * tested and benchmarked alone. All arrays are row-major and densely packed,
 * except where a row stride is given: rope, kv_write and paged attention
 * read their per-token rows (of q and k, of k and v, of q) `stride` floats
 * apart, so that they can work inside the forward pass's fused QKV rows
 * (q | k | v per token); stride 0 means dense rows. Strided rows may
 * interleave (q and k of one fused row) but must not overlap.
 *
 * Paged KV cache layout, per layer (K and V caches have the same layout):
 *   cache[num_blocks][n_kv_heads][block_size][head_dim]
 * in the cache's dtype: f32, f16 or bf16 (kv_write rounds to nearest;
 * attention converts back to f32 as it reads), or q8, whose rows (one
 * [head_dim] vector) are pgd_kv_row_bytes = head_dim + 4 bytes: an f32
 * scale then head_dim int8 (pagoda/dtype.h; kv_write quantizes each row,
 * attention applies the scale per row). Block copies take the block's bytes
 * / 4 as block_floats.
 * A token's cache slot is block_id * block_size + offset_in_block.
 * Ragged batches: sequence s owns query rows query_start[s] ..
 * query_start[s+1]-1 (its new tokens, in position order); seq_lens[s] is its
 * context length counting those new tokens (already written to the cache),
 * so query row r = query_start[s] + j sits at position
 *   seq_lens[s] - (query_start[s+1] - query_start[s]) + j
 * and attends causally to positions 0 .. that position. block_tables is
 * (num_seqs, max_blocks_per_seq): logical block i of sequence s lives in
 * physical block block_tables[s * max_blocks_per_seq + i]. */
#ifndef PAGODA_KERNELS_CPU_H
#define PAGODA_KERNELS_CPU_H

#include <stddef.h>
#include <stdint.h>

#include "pagoda/dtype.h"
#include "pagoda/paged_attn.h"
#include "threadpool.h"

/* Paged attention takes pgd_paged_attn (pagoda/paged_attn.h). */

/* ---- reference kernels ---- */

/* y(n, out) = x(n, in) @ W^T where W is (out, in) of dtype wt. */
void pgd_ref_matmul(float *y, const float *x, const void *w, pgd_dtype wt, int n, int in, int out);
/* out(n, dim) = table[tokens[i]] rows converted to f32. */
void pgd_ref_embedding(float *out, const void *table, pgd_dtype tt, const int32_t *tokens, int n, int dim);
/* y(n, dim) = x * w / sqrt(mean(x^2) + eps), per row; y may alias x. */
void pgd_ref_rmsnorm(float *y, const float *x, const float *w, int n, int dim, float eps);
/* In-place rotary embedding on interleaved pairs (x[2i], x[2i+1]) of each
 * head (llama2.c / GGUF-llama convention): freq = 1/theta^(2i/head_dim),
 * angle = pos * freq. q is (n, n_heads*head_dim), k is (n, n_kv_heads*head_dim);
 * token t's rows start at q + t*stride and k + t*stride (stride 0: dense,
 * n_heads*head_dim and n_kv_heads*head_dim). */
void pgd_ref_rope(float *q, float *k, const int32_t *pos, int n, int n_heads, int n_kv_heads,
                  int head_dim, float theta, int stride);
/* out(n_rows, hidden) = silu(gate) * up, silu(x) = x / (1 + exp(-x)), where
 * gate_up is (n_rows, 2*hidden) and row r holds [gate | up] (the forward
 * pass's fused w1 | w3 GEMM output). out must not overlap gate_up. */
void pgd_ref_silu_mul(float *out, const float *gate_up, int n_rows, int hidden);
/* y[i] += x[i]. */
void pgd_ref_add(float *y, const float *x, size_t n);
/* Write n tokens' k, v (n, n_kv_heads*head_dim; token t's rows at
 * k + t*stride and v + t*stride, stride 0 = dense) into the caches (of
 * dtype kt) at slot_mapping[i]; a negative slot means "skip this token". */
void pgd_ref_kv_write(void *k_cache, void *v_cache, pgd_dtype kt, const float *k, const float *v,
                      const int32_t *slot_mapping, int n, int n_kv_heads, int head_dim,
                      int block_size, int stride);
/* Causal paged attention over a ragged batch (prefill and decode mixed). */
void pgd_ref_paged_attention(const pgd_paged_attn *a);
/* Copy whole blocks inside one cache: for each pair, block src -> block dst.
 * pairs is (n_pairs, 2) of {src, dst}; block_floats = floats per block. */
void pgd_ref_copy_blocks(float *cache, const int32_t *pairs, int n_pairs, size_t block_floats);

/* ---- fast kernels (same contracts; tp may be NULL) ---- */
void pgd_cpu_matmul(pgd_threadpool *tp, float *y, const float *x, const void *w, pgd_dtype wt,
                    int n, int in, int out);
void pgd_cpu_embedding(pgd_threadpool *tp, float *out, const void *table, pgd_dtype tt,
                       const int32_t *tokens, int n, int dim);
void pgd_cpu_rmsnorm(pgd_threadpool *tp, float *y, const float *x, const float *w, int n, int dim,
                     float eps);

/* x8 layouts: the CPU backend's layout for q8_0 and q4_0 matrices (x8.c):
 * each 8 blocks of a row regrouped, their 8 f16 scales first, then chunk k
 * of block j's quant bytes (4 bytes) at byte 16 + 32 k + 4 j ("q8_0x8",
 * "q4_0x8"); the same bytes as the plain dtype.
 * _fits: 1 when rows of `in` values are whole groups (in % 256 == 0).
 * _pack: rearranges rows x in of wt (q8_0, q4_0) in place and returns 1,
 * or returns 0 and leaves w as it was (another dtype, in does not fit, a
 * q8_0 weight of -128).
 * _row_to_f32: the `in` values of one packed row, bit-equal to
 * pgd_dtype_to_f32 of the row before packing. pgd_cpu_matmul_x8 and
 * pgd_cpu_embedding_x8: pgd_cpu_matmul / pgd_cpu_embedding for a W or a
 * table of wt in this layout (same results up to f32 summation order).
 * _enabled: 1 (default) when the CPU backend rearranges the matrices it is
 * offered (and pgd_cpu_measure_matmul* measure this layout): the AVX2
 * kernels are in use and pgd_cpu_set_x8 has not turned it off (pagoda
 * bench's "q8_0:plain" rows, for same-run comparisons; set before a model
 * loads). */
int pgd_cpu_x8_fits(int in);
int pgd_cpu_x8_pack(void *w, pgd_dtype wt, size_t rows, int in);
void pgd_cpu_x8_row_to_f32(float *dst, const void *row, pgd_dtype wt, int in);
void pgd_cpu_matmul_x8(pgd_threadpool *tp, float *y, const float *x, const void *w, pgd_dtype wt, int n, int in,
                       int out);
void pgd_cpu_embedding_x8(float *out, const void *table, pgd_dtype wt, const int32_t *tokens, int n, int dim);
int pgd_cpu_x8_enabled(void);
void pgd_cpu_set_x8(int on);
void pgd_cpu_rope(pgd_threadpool *tp, float *q, float *k, const int32_t *pos, int n, int n_heads,
                  int n_kv_heads, int head_dim, float theta, int stride);
void pgd_cpu_silu_mul(pgd_threadpool *tp, float *out, const float *gate_up, int n_rows, int hidden);
void pgd_cpu_add(pgd_threadpool *tp, float *y, const float *x, size_t n);
void pgd_cpu_kv_write(pgd_threadpool *tp, void *k_cache, void *v_cache, pgd_dtype kt, const float *k,
                      const float *v, const int32_t *slot_mapping, int n, int n_kv_heads,
                      int head_dim, int block_size, int stride);
void pgd_cpu_paged_attention(pgd_threadpool *tp, const pgd_paged_attn *a);
void pgd_cpu_copy_blocks(pgd_threadpool *tp, float *cache, const int32_t *pairs, int n_pairs,
                         size_t block_floats);

/* Quantized W (q8_0, q4_0) on AVX2: every matmul quantizes the activations
 * per block of 32 to int8 (scale max|x| / 127) and takes integer dot
 * products: decode (n <= 3) on the stored blocks, a few tokens with a
 * register-tiled micro-kernel, more with W panels and x widened to int16
 * (matmul_qgemm_avx2.c; vpmaddwd does twice an f32 FMA's multiply-adds per
 * issue slot on the machines measured). pgd_cpu_set_q_int_max_tokens(k)
 * sends batches of more than max(k, 3) tokens to the f32 micro-kernel on
 * dequantized panels instead (0: every batch), so that a benchmark or a
 * test can compare the paths in one run; the default takes integers at
 * every n. Not safe to change while matmuls run.
 * pgd_cpu_matmul_uses_int8: 1 when a matmul of n tokens with W of dtype wt
 * takes integer dot products.
 * k-quant W (q4_k, q6_k; in % 256 == 0) on AVX2: integer dot products
 * likewise up to 8 tokens (measured), larger batches dequantize each chunk
 * of rows to f32 for the f32 micro-kernel (matmul_k_avx2.c); the scalar path
 * dequantizes every row in pieces, as for q8_0/q4_0. */
#define PGD_Q_INT_MAX_TOKENS_DEFAULT (1 << 30)
int pgd_cpu_q_int_max_tokens(void);
void pgd_cpu_set_q_int_max_tokens(int n);
int pgd_cpu_matmul_uses_int8(pgd_dtype wt, int n);

/* Which fast path the running CPU selected: "avx2" or "scalar". The
 * environment variable PAGODA_CPU_ISA=scalar forces the portable path. */
const char *pgd_cpu_isa(void);
/* Force the fast path ("avx2" or "scalar"), e.g. so tests cover both.
 * Returns 0, or -1 if the name is unknown or the CPU lacks that ISA. Not
 * safe to call while kernels run on other threads. */
int pgd_cpu_set_isa(const char *name);

/* Memory for large streamed buffers (pages.c): 64-byte aligned; from 2 MB
 * up, 2 MB aligned and advised to the kernel as transparent huge pages
 * (MADV_HUGEPAGE), which streaming reads need to run at DRAM speed. Freed
 * with free(). The CPU backend's allocations and the bandwidth probes below
 * use it. */
void *pgd_cpu_alloc_pages(size_t bytes);

/* Median over `reps` runs of a memcpy of `bytes` bytes split across the
 * threads of `tp` (buffers allocated and faulted in first), as DRAM traffic
 * per second: bytes read + bytes written (STREAM "Copy" convention), 0 on
 * failure. Use bytes far above the L3 size (e.g. 256 MiB). */
double pgd_cpu_measure_copy_bandwidth(pgd_threadpool *tp, size_t bytes, int reps);
/* The same for reading only: each thread sums its slice of a `bytes`-byte
 * buffer (32-byte loads where AVX2 is in use), as bytes read per second.
 * What a decode step needs, since it reads its weights and KV cache and
 * writes little: the bound a decode figure is held to. */
double pgd_cpu_measure_read_bandwidth(pgd_threadpool *tp, size_t bytes, int reps);

/* Compute probes: the peak rate, summed over the threads of `tp` (all
 * running at once), of the inner operation of the fast kernels, in
 * registers with no memory traffic: what no kernel built on that operation
 * can exceed (the compute bound beside the read bound). Each thread's rate
 * is per second of its own CPU time (CLOCK_THREAD_CPUTIME_ID), so time a
 * busy machine's neighbours take is not counted against the peak: the bound
 * is what the threads compute while they run (one thread per core assumed:
 * threads beyond the cores would each still report a core's rate). Median
 * of `reps` runs of about 20 ms each; 0 when the selected ISA has no such
 * kernel (scalar path).
 *  - PGD_PROBE_F32_FMA: f32 flops/s of _mm256_fmadd_ps (2 per lane): the
 *    f32/f16/bf16 matmuls, the batched path of quantized weights that
 *    dequantizes panels, attention.
 *  - PGD_PROBE_INT8_DOT: int8 multiply-adds/s of the quantized kernels'
 *    block dot product (sign, maddubs, madd, convert, fma per 32 pairs):
 *    q6_k's integer path.
 *  - PGD_PROBE_INT16_MADD: int16 multiply-adds/s of vpmaddwd + vpaddd (16
 *    a slot of the two multiply pipes): the bound of every q8_0 path. The
 *    GEMM runs that operation; decode and the small batches need at least
 *    a vpmaddubsw and a vpmaddwd per 32 multiply-adds (16 a slot at best),
 *    and the x8 kernel's sign, maddubs, madd (3 slots) ran at 97% of the
 *    int8 dot probe above (43.0 against 44.5 GMAC/s, one thread, 12
 *    tokens), so that probe does not bound it.
 *  - PGD_PROBE_U8_MADDUBS: byte multiply-adds/s of vpmaddubsw + vpaddw: the
 *    bound of every q4_0 / q4_k integer path (a 4-bit weight needs no sign
 *    trick: at best one vpmaddubsw per 32 multiply-adds).
 * pgd_cpu_matmul_probe: the probe whose operation a matmul of n tokens
 * with W of dtype wt runs on the selected path (what bounds its compute). */
typedef enum pgd_cpu_probe {
    PGD_PROBE_F32_FMA = 0,
    PGD_PROBE_INT8_DOT = 1,
    PGD_PROBE_INT16_MADD = 2,
    PGD_PROBE_U8_MADDUBS = 3
} pgd_cpu_probe;
double pgd_cpu_measure_compute(pgd_threadpool *tp, pgd_cpu_probe kind, int reps);
pgd_cpu_probe pgd_cpu_matmul_probe(pgd_dtype wt, int n);

/* The decode matmul alone: weight bytes read per second by pgd_cpu_matmul
 * with one token (n = 1) over (out, in) matrices of dtype wt filling
 * `bytes` (random weights, whole matrices, at least one), one after the
 * other as a decode step runs its layers, the best of `reps` passes after
 * one untimed pass. With tp and bytes far above the L3 (256 MiB): what the
 * kernel streams from DRAM on the pool's threads, to set against
 * pgd_cpu_measure_read_bandwidth (the gap is the kernel's, not the rest of
 * a step's). With tp NULL and bytes within L2: one thread's compute rate,
 * per second of its own CPU time (CLOCK_THREAD_CPUTIME_ID, so a busy
 * machine's neighbours do not count). 0 on failure or for in % 32 != 0
 * with quantized wt. */
double pgd_cpu_measure_matmul(pgd_threadpool *tp, pgd_dtype wt, int in, int out, size_t bytes, int reps);

/* A batched matmul alone: y(n, out) = x(n, in) @ W^T with W of dtype wt on
 * one thread (no pool), on whichever path pgd_cpu_matmul takes for n, W
 * and x in cache-sized or not as the shape makes them; multiply-adds per
 * second of the thread's CPU time, the best of reps after a warm-up. 0 on
 * failure or for in not a whole number of wt's blocks. */
double pgd_cpu_measure_matmul_batch(pgd_dtype wt, int n, int in, int out, int reps);

#endif
