/* gpu_kernels.h - launchers of the single-source GPU kernels (CUDA and HIP).
 *
 * Same contracts as the CPU reference kernels in kernels/cpu/kernels.h
 * (shapes, RoPE pairing, paged KV cache layout
 * (num_blocks, n_kv_heads, block_size, head_dim), ragged batches, row
 * strides with 0 = dense); every pointer is a device pointer. Each launcher queues its kernel(s) on
 * `stream` and returns the launch status (gpuGetLastError()), never waiting
 * for the kernel; the backend names the op in any error. C++ only (compiled
 * by nvcc or hipcc); the symbols live in PGD_GPU_NS so the CUDA and ROCm
 * builds of these files can be linked into one program. */
#ifndef PAGODA_GPU_KERNELS_H
#define PAGODA_GPU_KERNELS_H

#include <stdint.h>
#include <string.h>

#include "compat.h"

extern "C" {
#include "pagoda/dtype.h"
#include "pagoda/paged_attn.h"
}

namespace PGD_GPU_NS {

/* ---- elementwise and data movement (elementwise.cu) ---- */
gpuError_t embedding(gpuStream_t st, float *out, const void *table, pgd_dtype tt,
                     const int32_t *tokens, int n, int dim);
gpuError_t rmsnorm(gpuStream_t st, float *y, const float *x, const float *w, int n, int dim,
                   float eps);
/* inv_freq: (head_dim / 2) floats, inv_freq[i] = 1 / powf(theta, 2i / head_dim)
 * computed on the host exactly as the reference does (so angles match it
 * bit for bit). */
gpuError_t rope(gpuStream_t st, float *q, float *k, const int32_t *pos, const float *inv_freq,
                int n, int n_heads, int n_kv_heads, int head_dim, int stride);
/* out (n_rows, hidden) = silu(gate) * up; gate_up (n_rows, 2*hidden), rows [gate | up]. */
gpuError_t silu_mul(gpuStream_t st, float *out, const float *gate_up, int n_rows, int hidden);
gpuError_t add(gpuStream_t st, float *y, const float *x, size_t n);
gpuError_t gather_rows(gpuStream_t st, float *out, const float *x, const int32_t *rows, int n,
                       int dim);
gpuError_t kv_write(gpuStream_t st, float *k_cache, float *v_cache, const float *k,
                    const float *v, const int32_t *slot_mapping, int n, int n_kv_heads,
                    int head_dim, int block_size, int stride);
gpuError_t copy_blocks(gpuStream_t st, float *cache, const int32_t *pairs, int n_pairs,
                       size_t block_floats);
/* dst (n elements of dtype dt: f16 or bf16, round to nearest even) = src. */
gpuError_t convert_from_f32(gpuStream_t st, void *dst, pgd_dtype dt, const float *src, size_t n);

/* ---- paged attention (attention.cu) ---- */
/* Paged attention takes pgd_paged_attn (pagoda/paged_attn.h) with q_stride
 * resolved (> 0: the backend turns 0 into n_heads*head_dim) and f32 caches. */

enum { ATTN_AUTO = 0, ATTN_SINGLE = 1, ATTN_SPLIT = 2 };
enum { ATTN_MAX_HEAD_DIM = 256, ATTN_MAX_PARTITION = 512 };

/* How one call runs. SINGLE: one pass over each row's whole context per
 * (row, KV head) (vLLM's paged_attention v1). SPLIT: the context is cut
 * into partitions of part_size tokens processed in parallel, then a second
 * kernel merges them with their softmax statistics (vLLM's v2, for long
 * contexts and small batches). AUTO picks SPLIT when the first kind would
 * leave the device underfilled or a context exceeds 8192 tokens. */
typedef struct attn_plan {
    int variant;      /* ATTN_SINGLE or ATTN_SPLIT */
    int part_size;    /* tokens per partition (SPLIT) */
    int max_parts;    /* partitions of the longest context */
    size_t workspace; /* bytes of device scratch the call needs */
} attn_plan;

/* Plan a call for a device with `num_sms` multiprocessors; `mode` is
 * ATTN_AUTO or forces a variant (tests cover both). */
attn_plan attention_plan(const pgd_paged_attn *p, int mode, int num_sms);
/* Every query row attends causally to its context (the reference's
 * semantics: decode rows and prefill chunks alike). head_dim must be
 * <= ATTN_MAX_HEAD_DIM (checked by the caller); max_seq_len must bound every
 * context (the split variant sizes its partitions from it); `workspace`
 * holds plan->workspace bytes. */
gpuError_t paged_attention(gpuStream_t st, const pgd_paged_attn *p, const attn_plan *plan,
                           void *workspace);

/* ---- sampling helpers (sampling.cu) ---- */
/* out[r] = pgd_argmax(logits row r) (ties to the lowest id; NaN loses). */
gpuError_t argmax_rows(gpuStream_t st, int32_t *out, const float *logits, int n_rows, int vocab);
/* Per-row sampling parameters; `uniform` is the row's draw in [0, 1). */
typedef struct sample_row {
    float temperature; /* 0 = greedy */
    int32_t top_k;     /* <= 0 or >= vocab: off */
    float top_p;       /* <= 0 or >= 1: off */
    float uniform;
} sample_row;
/* work: n_rows * vocab floats of scratch. */
gpuError_t sample_rows(gpuStream_t st, int32_t *out, const float *logits, const sample_row *params,
                       int n_rows, int vocab, float *work);

/* ---- the project's own GEMM (gemm.cu): y(n, out) = x(n, in) W^T ---- */
gpuError_t gemm(gpuStream_t st, float *y, const float *x, const void *w, pgd_dtype wt, int n,
                int in, int out);

} /* namespace PGD_GPU_NS */

#endif
