/* backend.c - backend registry and the checked wrappers around the ops
 * table. This is the only file that calls through pgd_backend_ops.
 *
 * Op accounting (backend.h): each wrapper of a transfer, sync or compute
 * op that reaches the ops table goes through TIMED, which reads the
 * backend's clock before and after the call and adds the difference and
 * one call to the backend's op_seconds/op_calls. Validation errors and
 * early returns (nothing to do) are not counted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_impl.h"
#include "pagoda/backend.h"

typedef pgd_status (*pgd_backend_create_fn)(const pgd_backend_config *, pgd_backend **);

static const struct {
    const char *name;
    pgd_backend_create_fn create;
} registry[] = {
    {"cpu", pgd_cpu_backend_create},
    {"sim", pgd_sim_backend_create},
    /* GPU backends exist only when CMake found their toolchain */
#if PAGODA_HAVE_CUDA
    {"cuda", pgd_cuda_backend_create},
#endif
#if PAGODA_HAVE_ROCM
    {"rocm", pgd_rocm_backend_create},
#endif
#if PAGODA_HAVE_GPU_EMU
    {"gpu-emu", pgd_gpuemu_backend_create}, /* the GPU code on the CPU, for tests */
#endif
};
static const char *const names[] = {"cpu", "sim",
#if PAGODA_HAVE_CUDA
                                    "cuda",
#endif
#if PAGODA_HAVE_ROCM
                                    "rocm",
#endif
#if PAGODA_HAVE_GPU_EMU
                                    "gpu-emu",
#endif
                                    NULL};

const char *const *pgd_backend_list(void) { return names; }

pgd_status pgd_backend_create(const pgd_backend_config *cfg, pgd_backend **out) {
    static const pgd_backend_config defaults = {0};
    if (!out) return pgd_error(PGD_ERR_INVALID, "pgd_backend_create: out is NULL");
    *out = NULL;
    if (!cfg) cfg = &defaults;
    const char *name = cfg->name ? cfg->name : "cpu";
    pgd_dtype kvt = PGD_F32;
    int want_kv = cfg->kv_dtype && *cfg->kv_dtype;
    if (want_kv && (!pgd_dtype_from_name(cfg->kv_dtype, &kvt) || pgd_dtype_is_quant(kvt)))
        return pgd_error(PGD_ERR_INVALID, "KV cache dtype must be f32, f16 or bf16 (got '%s')", cfg->kv_dtype);
    for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++)
        if (!strcmp(registry[i].name, name)) {
            PGD_TRY(registry[i].create(cfg, out));
            if (!want_kv) return PGD_OK;
            /* a virtual backend only accounts the KV cache: any dtype; else the backend's own list */
            unsigned ok = (*out)->is_virtual ? ~0u : (*out)->kv_dtypes ? (*out)->kv_dtypes : 1u << PGD_F32;
            if (!(ok & (1u << kvt))) {
                pgd_backend_destroy(*out);
                *out = NULL;
                return pgd_error(PGD_ERR_UNSUPPORTED, "the %s backend keeps its KV cache in f32 only (asked for %s)",
                                 name, cfg->kv_dtype);
            }
            (*out)->kv_dtype = kvt;
            return PGD_OK;
        }
    char have[96] = "";
    for (int i = 0; names[i]; i++)
        snprintf(have + strlen(have), sizeof have - strlen(have), "%s%s", i ? ", " : "", names[i]);
    return pgd_error(PGD_ERR_UNSUPPORTED, "unknown backend '%s' (this build has: %s)", name, have);
}

void pgd_backend_destroy(pgd_backend *b) {
    if (b) b->ops->destroy(b);
}
const char *pgd_backend_name(const pgd_backend *b) { return b->ops->name; }
const char *pgd_backend_describe(const pgd_backend *b) { return b->description; }
pgd_clock *pgd_backend_clock(const pgd_backend *b) { return b ? b->clock : NULL; }
int pgd_backend_computes(const pgd_backend *b) { return b ? !b->is_virtual : 1; }
pgd_dtype pgd_backend_kv_dtype(const pgd_backend *b) { return b ? b->kv_dtype : PGD_F32; }
int pgd_backend_takes_weights(const pgd_backend *b, pgd_dtype t) {
    return !pgd_dtype_is_quant(t) || (b && b->quant_weights);
}

static const char *const op_names[PGD_BOP_COUNT] = {
    [PGD_BOP_UPLOAD] = "upload",           [PGD_BOP_DOWNLOAD] = "download",
    [PGD_BOP_MEMSET] = "memset",           [PGD_BOP_SYNC] = "sync",
    [PGD_BOP_EMBEDDING] = "embedding",     [PGD_BOP_MATMUL] = "matmul",
    [PGD_BOP_RMSNORM] = "rmsnorm",         [PGD_BOP_ROPE] = "rope",
    [PGD_BOP_SILU_MUL] = "silu_mul",       [PGD_BOP_ADD] = "add",
    [PGD_BOP_KV_WRITE] = "kv_write",       [PGD_BOP_PAGED_ATTENTION] = "paged_attention",
    [PGD_BOP_GATHER_ROWS] = "gather_rows", [PGD_BOP_COPY_BLOCKS] = "copy_blocks",
    [PGD_BOP_ARGMAX] = "argmax",           [PGD_BOP_SAMPLE] = "sample",
};
_Static_assert(PGD_BOP_COUNT == PGD_BACKEND_NUM_OPS, "PGD_BACKEND_NUM_OPS must count the timed ops");

int pgd_backend_op_times(const pgd_backend *b, pgd_op_time *out, int cap) {
    int n = 0;
    if (!b) return 0;
    for (int i = 0; i < PGD_BOP_COUNT; i++) {
        if (b->op_calls[i] <= 0) continue;
        if (out) {
            if (n >= cap) break;
            out[n] = (pgd_op_time){.op = op_names[i], .calls = b->op_calls[i], .seconds = b->op_seconds[i]};
        }
        n++;
    }
    return n;
}

void pgd_backend_op_times_reset(pgd_backend *b) {
    if (!b) return;
    memset(b->op_calls, 0, sizeof b->op_calls);
    memset(b->op_seconds, 0, sizeof b->op_seconds);
}

/* Return `call` (an op through the table), charging its time on the
 * backend's clock (virtual on the sim, else real) and one call to op `id`. */
#define TIMED(b, id, call)                                                                  \
    do {                                                                                    \
        double t0_ = pgd_clock_now((b)->clock);                                             \
        pgd_status st_ = (call);                                                            \
        (b)->op_seconds[id] += pgd_clock_now((b)->clock) - t0_;                             \
        (b)->op_calls[id]++;                                                                \
        return st_;                                                                         \
    } while (0)

#define CHECK_OP(b, op)                                                                     \
    do {                                                                                    \
        if (!(b)) return pgd_error(PGD_ERR_INVALID, #op ": backend is NULL");               \
        if (!(b)->ops->op)                                                                  \
            return pgd_error(PGD_ERR_UNSUPPORTED, "backend '%s' has no op " #op,            \
                             (b)->ops->name);                                               \
    } while (0)

pgd_status pgd_backend_alloc(pgd_backend *b, size_t bytes, void **dptr) {
    CHECK_OP(b, alloc);
    if (!dptr) return pgd_error(PGD_ERR_INVALID, "alloc: dptr is NULL");
    *dptr = NULL;
    if (bytes == 0) bytes = 1;
    return b->ops->alloc(b, bytes, dptr);
}
void pgd_backend_free(pgd_backend *b, void *dptr) {
    if (b && dptr) b->ops->free(b, dptr);
}
pgd_status pgd_backend_upload(pgd_backend *b, void *dst, const void *src, size_t bytes) {
    CHECK_OP(b, upload);
    if (!bytes) return PGD_OK;
    TIMED(b, PGD_BOP_UPLOAD, b->ops->upload(b, dst, src, bytes));
}
pgd_status pgd_backend_download(pgd_backend *b, void *dst, const void *src, size_t bytes) {
    CHECK_OP(b, download);
    if (!bytes) return PGD_OK;
    TIMED(b, PGD_BOP_DOWNLOAD, b->ops->download(b, dst, src, bytes));
}
pgd_status pgd_backend_memset(pgd_backend *b, void *dst, int value, size_t bytes) {
    CHECK_OP(b, memset);
    if (!bytes) return PGD_OK;
    TIMED(b, PGD_BOP_MEMSET, b->ops->memset(b, dst, value, bytes));
}
pgd_status pgd_backend_sync(pgd_backend *b) {
    CHECK_OP(b, sync);
    TIMED(b, PGD_BOP_SYNC, b->ops->sync(b));
}

pgd_status pgd_backend_embedding(pgd_backend *b, float *out, const void *table, pgd_dtype tt,
                                 const int32_t *tokens, int n, int dim) {
    CHECK_OP(b, embedding);
    if (n < 0 || dim <= 0) return pgd_error(PGD_ERR_INVALID, "embedding: bad shape n=%d dim=%d", n, dim);
    if (!n) return PGD_OK;
    TIMED(b, PGD_BOP_EMBEDDING, b->ops->embedding(b, out, table, tt, tokens, n, dim));
}
pgd_status pgd_backend_matmul(pgd_backend *b, float *y, const float *x, const void *w,
                              pgd_dtype wt, int n, int in, int out) {
    CHECK_OP(b, matmul);
    if (n < 0 || in <= 0 || out <= 0)
        return pgd_error(PGD_ERR_INVALID, "matmul: bad shape n=%d in=%d out=%d", n, in, out);
    if (!n) return PGD_OK;
    TIMED(b, PGD_BOP_MATMUL, b->ops->matmul(b, y, x, w, wt, n, in, out));
}
pgd_status pgd_backend_rmsnorm(pgd_backend *b, float *y, const float *x, const float *w, int n,
                               int dim, float eps) {
    CHECK_OP(b, rmsnorm);
    if (n < 0 || dim <= 0) return pgd_error(PGD_ERR_INVALID, "rmsnorm: bad shape n=%d dim=%d", n, dim);
    if (!n) return PGD_OK;
    TIMED(b, PGD_BOP_RMSNORM, b->ops->rmsnorm(b, y, x, w, n, dim, eps));
}
/* A row stride must be 0 (dense) or hold a whole row of `width` floats. */
static int bad_stride(int stride, long long width) { return stride < 0 || (stride && stride < width); }

pgd_status pgd_backend_rope(pgd_backend *b, float *q, float *k, const int32_t *pos, int n,
                            int n_heads, int n_kv_heads, int head_dim, float theta, int stride) {
    CHECK_OP(b, rope);
    if (n < 0 || n_heads <= 0 || n_kv_heads <= 0 || head_dim <= 0 || head_dim % 2)
        return pgd_error(PGD_ERR_INVALID, "rope: bad shape heads=%d kv_heads=%d head_dim=%d",
                         n_heads, n_kv_heads, head_dim);
    long long wide = (long long)(n_heads > n_kv_heads ? n_heads : n_kv_heads) * head_dim;
    if (bad_stride(stride, wide))
        return pgd_error(PGD_ERR_INVALID, "rope: row stride %d is shorter than a row (%lld floats; 0 = dense)",
                         stride, wide);
    if (!n) return PGD_OK;
    TIMED(b, PGD_BOP_ROPE, b->ops->rope(b, q, k, pos, n, n_heads, n_kv_heads, head_dim, theta, stride));
}
pgd_status pgd_backend_silu_mul(pgd_backend *b, float *out, const float *gate_up, int n_rows,
                                int hidden) {
    CHECK_OP(b, silu_mul);
    if (n_rows < 0 || hidden <= 0)
        return pgd_error(PGD_ERR_INVALID, "silu_mul: bad shape n_rows=%d hidden=%d", n_rows, hidden);
    if (!n_rows) return PGD_OK;
    uintptr_t o = (uintptr_t)out, g = (uintptr_t)gate_up;
    size_t nb = sizeof(float) * (size_t)n_rows * hidden; /* out's bytes; gate_up has twice as many */
    if (o < g + 2 * nb && g < o + nb)
        return pgd_error(PGD_ERR_INVALID, "silu_mul: out overlaps gate_up (%d rows of %d)", n_rows, hidden);
    TIMED(b, PGD_BOP_SILU_MUL, b->ops->silu_mul(b, out, gate_up, n_rows, hidden));
}
pgd_status pgd_backend_add(pgd_backend *b, float *y, const float *x, size_t n) {
    CHECK_OP(b, add);
    if (!n) return PGD_OK;
    TIMED(b, PGD_BOP_ADD, b->ops->add(b, y, x, n));
}
pgd_status pgd_backend_kv_write(pgd_backend *b, float *k_cache, float *v_cache, const float *k,
                                const float *v, const int32_t *slot_mapping, int n,
                                int n_kv_heads, int head_dim, int block_size, int stride) {
    CHECK_OP(b, kv_write);
    if (n < 0 || n_kv_heads <= 0 || head_dim <= 0 || block_size <= 0)
        return pgd_error(PGD_ERR_INVALID, "kv_write: bad shape");
    if (bad_stride(stride, (long long)n_kv_heads * head_dim))
        return pgd_error(PGD_ERR_INVALID, "kv_write: row stride %d is shorter than a row (%lld floats; 0 = dense)",
                         stride, (long long)n_kv_heads * head_dim);
    if (!n) return PGD_OK;
    TIMED(b, PGD_BOP_KV_WRITE,
          b->ops->kv_write(b, k_cache, v_cache, k, v, slot_mapping, n, n_kv_heads, head_dim, block_size,
                           stride));
}
pgd_status pgd_backend_paged_attention(pgd_backend *b, const pgd_paged_attn *a) {
    CHECK_OP(b, paged_attention);
    if (!a || a->num_seqs < 0 || a->n_heads <= 0 || a->n_kv_heads <= 0 ||
        a->n_heads % a->n_kv_heads || a->head_dim <= 0 || a->block_size <= 0)
        return pgd_error(PGD_ERR_INVALID, "paged_attention: bad arguments");
    if (bad_stride(a->q_stride, (long long)a->n_heads * a->head_dim))
        return pgd_error(PGD_ERR_INVALID, "paged_attention: q row stride %d is shorter than a row (%lld floats; "
                         "0 = dense)", a->q_stride, (long long)a->n_heads * a->head_dim);
    if (!a->num_seqs) return PGD_OK;
    TIMED(b, PGD_BOP_PAGED_ATTENTION, b->ops->paged_attention(b, a));
}
pgd_status pgd_backend_gather_rows(pgd_backend *b, float *out, const float *x,
                                   const int32_t *rows, int n, int dim) {
    CHECK_OP(b, gather_rows);
    if (n < 0 || dim <= 0) return pgd_error(PGD_ERR_INVALID, "gather_rows: bad shape");
    if (!n) return PGD_OK;
    TIMED(b, PGD_BOP_GATHER_ROWS, b->ops->gather_rows(b, out, x, rows, n, dim));
}
pgd_status pgd_backend_copy_blocks(pgd_backend *b, float *cache, const int32_t *pairs,
                                   int n_pairs, size_t block_floats) {
    CHECK_OP(b, copy_blocks);
    if (n_pairs < 0) return pgd_error(PGD_ERR_INVALID, "copy_blocks: n_pairs < 0");
    if (!n_pairs) return PGD_OK;
    TIMED(b, PGD_BOP_COPY_BLOCKS, b->ops->copy_blocks(b, cache, pairs, n_pairs, block_floats));
}

/* ---- optional ops ---- */

pgd_status pgd_backend_host_alloc(pgd_backend *b, size_t bytes, void **hptr) {
    if (!b || !hptr) return pgd_error(PGD_ERR_INVALID, "host_alloc: NULL argument");
    *hptr = NULL;
    if (bytes == 0) bytes = 1;
    if (b->ops->host_alloc) return b->ops->host_alloc(b, bytes, hptr);
    *hptr = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!*hptr) return pgd_error(PGD_ERR_OOM, "host_alloc: cannot allocate %zu bytes", bytes);
    return PGD_OK;
}
void pgd_backend_host_free(pgd_backend *b, void *hptr) {
    if (!b || !hptr) return;
    if (b->ops->host_free) b->ops->host_free(b, hptr);
    else free(hptr);
}
pgd_status pgd_backend_argmax(pgd_backend *b, int32_t *out, const float *logits, int n, int vocab) {
    CHECK_OP(b, argmax);
    if (n < 0 || vocab <= 0) return pgd_error(PGD_ERR_INVALID, "argmax: bad shape n=%d vocab=%d", n, vocab);
    if (!n) return PGD_OK;
    TIMED(b, PGD_BOP_ARGMAX, b->ops->argmax(b, out, logits, n, vocab));
}
pgd_status pgd_backend_sample(pgd_backend *b, int32_t *out, const float *logits,
                              const pgd_sample_row *rows, int n, int vocab) {
    CHECK_OP(b, sample);
    if (n < 0 || vocab <= 0) return pgd_error(PGD_ERR_INVALID, "sample: bad shape n=%d vocab=%d", n, vocab);
    if (!n) return PGD_OK;
    TIMED(b, PGD_BOP_SAMPLE, b->ops->sample(b, out, logits, rows, n, vocab));
}
