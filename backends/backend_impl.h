/* backend_impl.h - what a backend implements (not a public header).
 *
 * A backend allocates a struct whose first member is `pgd_backend base`,
 * sets base.ops to its static const ops table, and registers a create
 * function in core/backend.c's registry. Every op returns PGD_OK or an error
 * recorded with pgd_error() naming the op. Optional ops may be NULL; the
 * wrappers in core/backend.c then report PGD_ERR_UNSUPPORTED.
 *
 * The wrappers also keep per-op call counts and seconds in the struct
 * (op_calls, op_seconds; pgd_backend_op_times): a backend must allocate it
 * zeroed (calloc) and never writes those fields itself. */
#ifndef PAGODA_BACKEND_IMPL_H
#define PAGODA_BACKEND_IMPL_H

#include "pagoda/backend.h"

/* Ops receive arguments core/backend.c has validated; a row stride is
 * either 0 (dense) or at least the row's width (backend.h). */
struct pgd_backend_ops {
    const char *name;
    void (*destroy)(pgd_backend *b);
    pgd_status (*alloc)(pgd_backend *b, size_t bytes, void **dptr);
    void (*free)(pgd_backend *b, void *dptr);
    pgd_status (*upload)(pgd_backend *b, void *dst, const void *src, size_t bytes);
    pgd_status (*download)(pgd_backend *b, void *dst, const void *src, size_t bytes);
    pgd_status (*memset)(pgd_backend *b, void *dst, int value, size_t bytes);
    pgd_status (*sync)(pgd_backend *b);

    pgd_status (*embedding)(pgd_backend *b, float *out, const void *table, pgd_dtype tt,
                            const int32_t *tokens, int n, int dim);
    pgd_status (*matmul)(pgd_backend *b, float *y, const float *x, const void *w, pgd_dtype wt,
                         int n, int in, int out);
    pgd_status (*rmsnorm)(pgd_backend *b, float *y, const float *x, const float *w, int n,
                          int dim, float eps);
    pgd_status (*rope)(pgd_backend *b, float *q, float *k, const int32_t *pos, int n,
                       int n_heads, int n_kv_heads, int head_dim, float theta, int stride);
    pgd_status (*silu_mul)(pgd_backend *b, float *out, const float *gate_up, int n_rows,
                           int hidden);
    pgd_status (*add)(pgd_backend *b, float *y, const float *x, size_t n);
    pgd_status (*kv_write)(pgd_backend *b, float *k_cache, float *v_cache, const float *k,
                           const float *v, const int32_t *slot_mapping, int n, int n_kv_heads,
                           int head_dim, int block_size, int stride);
    pgd_status (*paged_attention)(pgd_backend *b, const pgd_paged_attn *a);
    pgd_status (*gather_rows)(pgd_backend *b, float *out, const float *x, const int32_t *rows,
                              int n, int dim);
    pgd_status (*copy_blocks)(pgd_backend *b, float *cache, const int32_t *pairs, int n_pairs,
                              size_t block_floats);

    /* optional (NULL: see the wrappers in core/backend.c) */
    pgd_status (*host_alloc)(pgd_backend *b, size_t bytes, void **hptr); /* pinned */
    void (*host_free)(pgd_backend *b, void *hptr);
    pgd_status (*argmax)(pgd_backend *b, int32_t *out, const float *logits, int n, int vocab);
    pgd_status (*sample)(pgd_backend *b, int32_t *out, const float *logits,
                         const pgd_sample_row *rows, int n, int vocab);
};

/* The ops core/backend.c times, in the order pgd_backend_op_times lists them. */
enum pgd_backend_op_id {
    PGD_BOP_UPLOAD, PGD_BOP_DOWNLOAD, PGD_BOP_MEMSET, PGD_BOP_SYNC, PGD_BOP_EMBEDDING, PGD_BOP_MATMUL,
    PGD_BOP_RMSNORM, PGD_BOP_ROPE, PGD_BOP_SILU_MUL, PGD_BOP_ADD, PGD_BOP_KV_WRITE, PGD_BOP_PAGED_ATTENTION,
    PGD_BOP_GATHER_ROWS, PGD_BOP_COPY_BLOCKS, PGD_BOP_ARGMAX, PGD_BOP_SAMPLE,
    PGD_BOP_COUNT
};

struct pgd_backend {
    const struct pgd_backend_ops *ops;
    char description[128];
    pgd_clock *clock;   /* sim: the virtual clock it advances; NULL = real time */
    int is_virtual;     /* large allocations hold no data */
    pgd_dtype kv_dtype; /* KV cache dtype: what the storage holds, and what the
                           memory budget counts (the sim: accounting only); zeroed = f32 */
    unsigned kv_dtypes; /* the KV dtypes it can store, bit 1 << dtype (0 = f32 only); core/backend.c
                           applies pgd_backend_config.kv_dtype after create */
    unsigned quant_weights; /* 1 when matmul and embedding take q8_0/q4_0 weights */
    /* written by core/backend.c's wrappers only (zeroed at creation) */
    int64_t op_calls[PGD_BOP_COUNT];
    double op_seconds[PGD_BOP_COUNT];
};

/* Registry entries (defined by each backend). */
pgd_status pgd_cpu_backend_create(const pgd_backend_config *cfg, pgd_backend **out);
pgd_status pgd_sim_backend_create(const pgd_backend_config *cfg, pgd_backend **out);
/* GPU backends (backends/cuda, backends/rocm; C++ definitions with C linkage),
 * registered only when CMake built them (PAGODA_HAVE_CUDA / PAGODA_HAVE_ROCM). */
pgd_status pgd_cuda_backend_create(const pgd_backend_config *cfg, pgd_backend **out);
pgd_status pgd_rocm_backend_create(const pgd_backend_config *cfg, pgd_backend **out);
/* "gpu-emu": the same GPU code built for the host's CPU (kernels/gpu/emu),
 * registered when PAGODA_HAVE_GPU_EMU (default on, off with sanitizers). */
pgd_status pgd_gpuemu_backend_create(const pgd_backend_config *cfg, pgd_backend **out);

#endif
