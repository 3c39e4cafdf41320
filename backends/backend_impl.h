/* backend_impl.h - what a backend implements (not a public header).
 *
 * A backend allocates a struct whose first member is `pgd_backend base`,
 * sets base.ops to its static const ops table, and registers a create
 * function in core/backend.c's registry, with the option keys it takes
 * (pgd_backend_config.options). What only one backend has (the sim's
 * clock, device preset and link prices) goes through the control op, not
 * this struct. Every op returns PGD_OK or an error recorded with
 * pgd_error() naming the op. Optional ops may be NULL; the
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
    /* optional (NULL: pgd_backend_host_alloc gives aligned host memory) */
    pgd_status (*host_alloc)(pgd_backend *b, size_t bytes, void **hptr); /* pinned */
    void (*host_free)(pgd_backend *b, void *hptr);
    /* optional: the escape hatch (pgd_backend_control); PGD_ERR_UNSUPPORTED
     * for a request it does not know. core/backend.c asks "clock" after
     * create and after a "set_clock" to learn the clock ops are timed on. */
    pgd_status (*control)(pgd_backend *b, const char *what, void *arg);

    /* the ops of pagoda/backend_ops.h, one field each (an optional op may be NULL) */
#define PGD_BACKEND_OP_FIELD_(op, ID, req, params, args) pgd_status(*op) params;
    PGD_BACKEND_OPS(PGD_BACKEND_OP_FIELD_)
#undef PGD_BACKEND_OP_FIELD_
};

struct pgd_backend {
    const struct pgd_backend_ops *ops;
    char description[128];
    int is_virtual;     /* large allocations hold no data (pgd_backend_computes() = 0) */
    pgd_dtype kv_dtype; /* KV cache dtype: what the storage holds, and what the
                           memory budget counts (the sim: accounting only); zeroed = f32 */
    unsigned kv_dtypes; /* the KV dtypes it can store, bit 1 << dtype (0 = f32 only); core/backend.c
                           applies pgd_backend_config.kv_dtype after create */
    unsigned quant_weights; /* 1 when matmul and embedding take q8_0/q4_0/q4_k/q6_k weights */
    int host_memory;        /* 1 when allocations are the host's own memory (pgd_backend_host_memory) */
    /* written by core/backend.c only (zeroed at creation) */
    pgd_clock *clock; /* what ops are timed on: the backend's "clock" (control), NULL = real time */
    int64_t op_calls[PGD_OP_COUNT];
    double op_seconds[PGD_OP_COUNT];
    pgd_backend_observer observer; /* pgd_backend_observe */
    void *observer_ctx;
    int observer_sync;
};

/* The value of option `key` in cfg->options ("key=value"), or NULL when
 * absent. core/backend.c has checked every key against the registry's list
 * for the backend before its create runs. */
const char *pgd_backend_option(const pgd_backend_config *cfg, const char *key);

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
