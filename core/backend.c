/* backend.c - backend registry and the checked wrappers around the ops
 * table. This is the only file that calls through pgd_backend_ops. */
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
    for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++)
        if (!strcmp(registry[i].name, name)) return registry[i].create(cfg, out);
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
int pgd_backend_is_virtual(const pgd_backend *b) { return b ? b->is_virtual : 0; }
pgd_dtype pgd_backend_kv_dtype(const pgd_backend *b) { return b ? b->kv_dtype : PGD_F32; }

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
    return b->ops->upload(b, dst, src, bytes);
}
pgd_status pgd_backend_download(pgd_backend *b, void *dst, const void *src, size_t bytes) {
    CHECK_OP(b, download);
    if (!bytes) return PGD_OK;
    return b->ops->download(b, dst, src, bytes);
}
pgd_status pgd_backend_memset(pgd_backend *b, void *dst, int value, size_t bytes) {
    CHECK_OP(b, memset);
    if (!bytes) return PGD_OK;
    return b->ops->memset(b, dst, value, bytes);
}
pgd_status pgd_backend_sync(pgd_backend *b) {
    CHECK_OP(b, sync);
    return b->ops->sync(b);
}

pgd_status pgd_backend_embedding(pgd_backend *b, float *out, const void *table, pgd_dtype tt,
                                 const int32_t *tokens, int n, int dim) {
    CHECK_OP(b, embedding);
    if (n < 0 || dim <= 0) return pgd_error(PGD_ERR_INVALID, "embedding: bad shape n=%d dim=%d", n, dim);
    if (!n) return PGD_OK;
    return b->ops->embedding(b, out, table, tt, tokens, n, dim);
}
pgd_status pgd_backend_matmul(pgd_backend *b, float *y, const float *x, const void *w,
                              pgd_dtype wt, int n, int in, int out) {
    CHECK_OP(b, matmul);
    if (n < 0 || in <= 0 || out <= 0)
        return pgd_error(PGD_ERR_INVALID, "matmul: bad shape n=%d in=%d out=%d", n, in, out);
    if (!n) return PGD_OK;
    return b->ops->matmul(b, y, x, w, wt, n, in, out);
}
pgd_status pgd_backend_rmsnorm(pgd_backend *b, float *y, const float *x, const float *w, int n,
                               int dim, float eps) {
    CHECK_OP(b, rmsnorm);
    if (n < 0 || dim <= 0) return pgd_error(PGD_ERR_INVALID, "rmsnorm: bad shape n=%d dim=%d", n, dim);
    if (!n) return PGD_OK;
    return b->ops->rmsnorm(b, y, x, w, n, dim, eps);
}
pgd_status pgd_backend_rope(pgd_backend *b, float *q, float *k, const int32_t *pos, int n,
                            int n_heads, int n_kv_heads, int head_dim, float theta) {
    CHECK_OP(b, rope);
    if (n < 0 || n_heads <= 0 || n_kv_heads <= 0 || head_dim <= 0 || head_dim % 2)
        return pgd_error(PGD_ERR_INVALID, "rope: bad shape heads=%d kv_heads=%d head_dim=%d",
                         n_heads, n_kv_heads, head_dim);
    if (!n) return PGD_OK;
    return b->ops->rope(b, q, k, pos, n, n_heads, n_kv_heads, head_dim, theta);
}
pgd_status pgd_backend_silu_mul(pgd_backend *b, float *gate, const float *up, size_t n) {
    CHECK_OP(b, silu_mul);
    if (!n) return PGD_OK;
    return b->ops->silu_mul(b, gate, up, n);
}
pgd_status pgd_backend_add(pgd_backend *b, float *y, const float *x, size_t n) {
    CHECK_OP(b, add);
    if (!n) return PGD_OK;
    return b->ops->add(b, y, x, n);
}
pgd_status pgd_backend_kv_write(pgd_backend *b, float *k_cache, float *v_cache, const float *k,
                                const float *v, const int32_t *slot_mapping, int n,
                                int n_kv_heads, int head_dim, int block_size) {
    CHECK_OP(b, kv_write);
    if (n < 0 || n_kv_heads <= 0 || head_dim <= 0 || block_size <= 0)
        return pgd_error(PGD_ERR_INVALID, "kv_write: bad shape");
    if (!n) return PGD_OK;
    return b->ops->kv_write(b, k_cache, v_cache, k, v, slot_mapping, n, n_kv_heads, head_dim,
                            block_size);
}
pgd_status pgd_backend_paged_attention(pgd_backend *b, const pgd_paged_attn *a) {
    CHECK_OP(b, paged_attention);
    if (!a || a->num_seqs < 0 || a->n_heads <= 0 || a->n_kv_heads <= 0 ||
        a->n_heads % a->n_kv_heads || a->head_dim <= 0 || a->block_size <= 0)
        return pgd_error(PGD_ERR_INVALID, "paged_attention: bad arguments");
    if (!a->num_seqs) return PGD_OK;
    return b->ops->paged_attention(b, a);
}
pgd_status pgd_backend_gather_rows(pgd_backend *b, float *out, const float *x,
                                   const int32_t *rows, int n, int dim) {
    CHECK_OP(b, gather_rows);
    if (n < 0 || dim <= 0) return pgd_error(PGD_ERR_INVALID, "gather_rows: bad shape");
    if (!n) return PGD_OK;
    return b->ops->gather_rows(b, out, x, rows, n, dim);
}
pgd_status pgd_backend_copy_blocks(pgd_backend *b, float *cache, const int32_t *pairs,
                                   int n_pairs, size_t block_floats) {
    CHECK_OP(b, copy_blocks);
    if (n_pairs < 0) return pgd_error(PGD_ERR_INVALID, "copy_blocks: n_pairs < 0");
    if (!n_pairs) return PGD_OK;
    return b->ops->copy_blocks(b, cache, pairs, n_pairs, block_floats);
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
    return b->ops->argmax(b, out, logits, n, vocab);
}
pgd_status pgd_backend_sample(pgd_backend *b, int32_t *out, const float *logits,
                              const pgd_sample_row *rows, int n, int vocab) {
    CHECK_OP(b, sample);
    if (n < 0 || vocab <= 0) return pgd_error(PGD_ERR_INVALID, "sample: bad shape n=%d vocab=%d", n, vocab);
    if (!n) return PGD_OK;
    return b->ops->sample(b, out, logits, rows, n, vocab);
}
