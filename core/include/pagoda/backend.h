/* backend.h - the compute backend interface (CPU, CUDA, ROCm, simulator).
 *
 * A backend owns device memory and runs the ops of a Llama forward pass.
 * Device memory is addressed by plain pointers returned by
 * pgd_backend_alloc(): host pointers on the CPU backend, device pointers on
 * GPUs (never dereference them on the host; use upload/download). Ops are
 * queued in order on the backend's stream and may run asynchronously;
 * pgd_backend_download() and pgd_backend_sync() wait for them.
 *
 * Implementations fill a `static const struct pgd_backend_ops` (see
 * backends/backend_impl.h); only core/backend.c calls through the table. */
#ifndef PAGODA_BACKEND_H
#define PAGODA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "pagoda/clock.h"
#include "pagoda/dtype.h"
#include "pagoda/status.h"

typedef struct pgd_backend pgd_backend;

typedef struct pgd_backend_config {
    const char *name; /* "cpu" (default when NULL), "sim", or where built "cuda", "rocm",
                         "gpu-emu" (pgd_backend_list()) */
    int num_threads;  /* CPU: worker threads, <= 0 = all online CPUs */
    int device;       /* GPU ordinal */
    /* CPU: bind the backend's threads (the creating thread included) to
     * core range pin_rank (1-based) of pin_ranks equal ranges of this host's
     * cores (hwloc); pin_rank = 0: no binding. Used by parallel layouts to
     * give each rank its own cores. */
    int pin_rank, pin_ranks;
    /* sim only (backends/sim/sim_cost.h): */
    const char *sim_device;  /* device preset: a100-40gb (default), a100-80gb, h100, h200, cpu */
    const char *sim_profile; /* calibration table (CSV from `pagoda profile`); NULL = roofline */
    int sim_tp;              /* tensor-parallel degree (GPUs); 0 = 1 */
    pgd_clock *clock;        /* borrowed virtual clock the sim advances; NULL = its own */
    /* KV cache element type: "f32", "f16", "bf16"; NULL or "" = the backend's
     * default (f32; the sim: its preset's). A backend that cannot store it
     * (CUDA, ROCm: f32 only) fails to create. */
    const char *kv_dtype;
} pgd_backend_config;

/* Same meaning as kernels/cpu/kernels.h pgd_attn_args; all pointers are
 * device pointers of this backend. */
typedef struct pgd_paged_attn {
    float *out;                  /* (num_tokens, n_heads, head_dim), dense */
    const float *q;              /* (num_tokens, n_heads, head_dim), rows q_stride floats apart */
    const float *k_cache;        /* (num_blocks, n_kv_heads, block_size, head_dim) of the
                                    backend's KV dtype (pgd_backend_kv_dtype) */
    const float *v_cache;
    const int32_t *query_start;  /* (num_seqs + 1) */
    const int32_t *seq_lens;     /* (num_seqs) */
    const int32_t *block_tables; /* (num_seqs, max_blocks_per_seq) */
    int num_seqs, num_tokens, max_blocks_per_seq;
    int max_seq_len;             /* largest seq_lens[i] (host-side hint) */
    int n_heads, n_kv_heads, head_dim, block_size;
    float scale;
    int q_stride;                /* floats between consecutive tokens' rows of q: 0 = dense
                                    (n_heads*head_dim), else >= n_heads*head_dim (the
                                    forward pass reads q from its fused QKV rows) */
} pgd_paged_attn;

pgd_status pgd_backend_create(const pgd_backend_config *cfg, pgd_backend **out);
void pgd_backend_destroy(pgd_backend *b);
const char *pgd_backend_name(const pgd_backend *b);
/* A one-line description (e.g. "cpu: 2 threads, avx2"). */
const char *pgd_backend_describe(const pgd_backend *b);
/* The virtual clock a simulating backend advances by each op's predicted
 * time, or NULL for a backend that computes in real time. */
pgd_clock *pgd_backend_clock(const pgd_backend *b);
/* Capability: 1 when the backend computes values; 0 when large allocations
 * hold no data (the sim: never dereferenced, uploads to them are dropped,
 * downloads from them give zeros, ops only cost time). Loaders then skip
 * filling weights, and the engine samples stand-in tokens. */
int pgd_backend_computes(const pgd_backend *b);
/* Element type of the KV cache: what kv_write stores and paged_attention
 * reads (the k_cache/v_cache pointers point at storage of this type), and
 * what its memory budget counts. f32 unless pgd_backend_config.kv_dtype
 * asked for another; the sim's GPU presets default to f16 (accounting only:
 * the sim stores nothing). */
pgd_dtype pgd_backend_kv_dtype(const pgd_backend *b);
/* Capability: 1 when matmul and embedding take weights of dtype t (f32,
 * f16 and bf16 everywhere; q8_0 and q4_0 where the backend has kernels for
 * them, else loaders dequantize such weights). */
int pgd_backend_takes_weights(const pgd_backend *b, pgd_dtype t);

pgd_status pgd_backend_alloc(pgd_backend *b, size_t bytes, void **dptr);
void pgd_backend_free(pgd_backend *b, void *dptr);
pgd_status pgd_backend_upload(pgd_backend *b, void *dst, const void *src, size_t bytes);
pgd_status pgd_backend_download(pgd_backend *b, void *dst, const void *src, size_t bytes);
pgd_status pgd_backend_memset(pgd_backend *b, void *dst, int value, size_t bytes);
pgd_status pgd_backend_sync(pgd_backend *b);

/* Ops (shapes as in kernels/cpu/kernels.h). Row strides (rope, kv_write,
 * pgd_paged_attn.q_stride) are floats between consecutive tokens' rows of
 * the token-major inputs, so the ops can read q, k and v in place from the
 * forward pass's fused QKV rows; 0 means dense rows, a nonzero stride must
 * be at least the row's width (else PGD_ERR_INVALID). */
pgd_status pgd_backend_embedding(pgd_backend *b, float *out, const void *table, pgd_dtype tt,
                                 const int32_t *tokens, int n, int dim);
pgd_status pgd_backend_matmul(pgd_backend *b, float *y, const float *x, const void *w,
                              pgd_dtype wt, int n, int in, int out);
pgd_status pgd_backend_rmsnorm(pgd_backend *b, float *y, const float *x, const float *w, int n,
                               int dim, float eps);
/* In place on q (n, n_heads*head_dim) and k (n, n_kv_heads*head_dim) whose
 * token rows are `stride` floats apart (both; 0 = dense, each its own width). */
pgd_status pgd_backend_rope(pgd_backend *b, float *q, float *k, const int32_t *pos, int n,
                            int n_heads, int n_kv_heads, int head_dim, float theta, int stride);
/* The FFN activation: out(n_rows, hidden) = silu(gate) * up, where gate_up
 * is (n_rows, 2*hidden) with row r = [gate | up] (the forward pass's fused
 * w1 | w3 GEMM output). out must not overlap gate_up. Priced and profiled
 * by its n_rows*hidden outputs. */
pgd_status pgd_backend_silu_mul(pgd_backend *b, float *out, const float *gate_up, int n_rows,
                                int hidden);
pgd_status pgd_backend_add(pgd_backend *b, float *y, const float *x, size_t n);
/* k and v (n, n_kv_heads*head_dim), token rows `stride` floats apart (0 = dense). */
pgd_status pgd_backend_kv_write(pgd_backend *b, float *k_cache, float *v_cache, const float *k,
                                const float *v, const int32_t *slot_mapping, int n,
                                int n_kv_heads, int head_dim, int block_size, int stride);
pgd_status pgd_backend_paged_attention(pgd_backend *b, const pgd_paged_attn *a);
/* Gather rows: out[i] = x[rows[i]] for rows of `dim` floats. */
pgd_status pgd_backend_gather_rows(pgd_backend *b, float *out, const float *x,
                                   const int32_t *rows, int n, int dim);
/* Copy-on-write support: pairs (n_pairs, 2) of {src, dst} block ids; a
 * block is block_floats 4-byte words (of f32, or twice as many f16/bf16). */
pgd_status pgd_backend_copy_blocks(pgd_backend *b, float *cache, const int32_t *pairs,
                                   int n_pairs, size_t block_floats);

/* Host memory for transfers with the device (the KV cache's swap space):
 * page-locked on GPU backends, so copies run by DMA at full link speed;
 * plain 64-byte-aligned host memory on backends without pinned memory.
 * An upload from it may still be in flight when upload returns (it is
 * ordered before the backend's later ops): write it on the host only after
 * a later download or sync. Free with pgd_backend_host_free(). */
pgd_status pgd_backend_host_alloc(pgd_backend *b, size_t bytes, void **hptr);
void pgd_backend_host_free(pgd_backend *b, void *hptr);

/* Sampling helpers on device logits, n rows of vocab floats; out is a
 * device array of n token ids. argmax: pgd_argmax() per row (ties to the
 * lowest id). sample: per row, temperature / top-k / top-p as in
 * sampler.h, drawing with the row's `uniform` in [0, 1) (the kept tokens are
 * walked in id order). Optional: GPU backends only. */
typedef struct pgd_sample_row {
    float temperature; /* 0 = greedy */
    int32_t top_k;     /* <= 0 or >= vocab: off */
    float top_p;       /* <= 0 or >= 1: off */
    float uniform;     /* the row's draw in [0, 1) */
} pgd_sample_row;
pgd_status pgd_backend_argmax(pgd_backend *b, int32_t *out, const float *logits, int n, int vocab);
pgd_status pgd_backend_sample(pgd_backend *b, int32_t *out, const float *logits,
                              const pgd_sample_row *rows, int n, int vocab);

/* Op accounting: every wrapper above that reaches the backend's op (an
 * upload, download, memset, sync, compute op, or argmax/sample; not
 * alloc/free/host_alloc/host_free, and not a call that returns early with
 * nothing to do, e.g. n = 0) counts one call and the seconds it took, in
 * the backend object: between two reads of pgd_clock_now(pgd_backend_clock(b)),
 * i.e. the predicted seconds on the sim's virtual clock, CLOCK_MONOTONIC wall
 * time on a real backend. No allocation, no locks: like the backend itself,
 * one thread at a time.
 *
 * What wall time measures: the CPU backend computes each op before
 * returning (its sync is a no-op), so an op's seconds are its compute time.
 * GPU backends queue ops on a stream and return at once: an op's seconds
 * are then its launch time only, and the queued work is charged to the
 * next op that waits for it (a download, or a sync where the caller syncs);
 * the accounting adds no syncs of its own.
 *
 * pgd_backend_op_times writes up to cap rows, one per op with calls > 0, in
 * a fixed op order (upload, download, memset, sync, embedding, matmul,
 * rmsnorm, rope, silu_mul, add, kv_write, paged_attention, gather_rows,
 * copy_blocks, argmax, sample), and returns how many it wrote (out == NULL:
 * how many there are). Names are static strings. Counts run from the
 * backend's creation or the last pgd_backend_op_times_reset. */
#define PGD_BACKEND_NUM_OPS 16 /* rows pgd_backend_op_times can return at most */
typedef struct pgd_op_time {
    const char *op; /* "matmul", ... */
    int64_t calls;
    double seconds;
} pgd_op_time;
int pgd_backend_op_times(const pgd_backend *b, pgd_op_time *out, int cap);
void pgd_backend_op_times_reset(pgd_backend *b);

/* Names of the backends compiled into this build, NULL-terminated. */
const char *const *pgd_backend_list(void);

#endif
