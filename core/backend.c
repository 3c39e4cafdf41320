/* backend.c - backend registry and the checked wrappers around the ops
 * table. This is the only file that calls through pgd_backend_ops.
 *
 * The wrappers of the ops (pagoda/backend_ops.h) are generated from the op
 * list: each calls its hand-written check_<op>() below, which validates the
 * arguments, says whether there is nothing to do (*skip) and gives the op's
 * shape; then the op runs through the table, timed on the backend's clock
 * (op accounting, backend.h), its time and shape handed to the observer
 * where one is installed. Validation errors and early returns are not
 * counted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_impl.h"
#include "pagoda/backend.h"

static const char *const op_names[PGD_OP_COUNT];
static const int op_required[PGD_OP_COUNT];

typedef pgd_status (*pgd_backend_create_fn)(const pgd_backend_config *, pgd_backend **);

static const char *const no_keys[] = {NULL};
static const char *const sim_keys[] = {"device", "profile", "tp", NULL}; /* backends/sim/sim_backend.c */

/* clang-format off */
static const struct {
    const char *name;
    pgd_backend_create_fn create;
    const char *const *option_keys; /* pgd_backend_config.options it takes (NULL = none) */
} registry[] = {
    {"cpu", pgd_cpu_backend_create, NULL},
    {"sim", pgd_sim_backend_create, sim_keys},
    /* GPU backends exist only when CMake found their toolchain */
#if PAGODA_HAVE_CUDA
    {"cuda", pgd_cuda_backend_create, NULL},
#endif
#if PAGODA_HAVE_ROCM
    {"rocm", pgd_rocm_backend_create, NULL},
#endif
#if PAGODA_HAVE_GPU_EMU
    {"gpu-emu", pgd_gpuemu_backend_create, NULL}, /* the GPU code on the CPU, for tests */
#endif
};
/* clang-format on */
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

const char *const *pgd_backend_option_keys(const char *name) {
    for (size_t i = 0; name && i < sizeof registry / sizeof registry[0]; i++)
        if (!strcmp(registry[i].name, name)) return registry[i].option_keys ? registry[i].option_keys : no_keys;
    return NULL;
}

const char *pgd_backend_option(const pgd_backend_config *cfg, const char *key) {
    const char *v = NULL; /* the last one given wins */
    for (int i = 0; cfg && cfg->options && cfg->options[i]; i++) {
        size_t n = strlen(key);
        if (!strncmp(cfg->options[i], key, n) && cfg->options[i][n] == '=') v = cfg->options[i] + n + 1;
    }
    return v;
}

/* Every option must be key=value with a key the backend takes. */
static pgd_status check_options(const char *name, const char *const *keys, const char *const *options) {
    for (int i = 0; options && options[i]; i++) {
        const char *o = options[i], *eq = strchr(o, '=');
        if (!eq || eq == o) return pgd_error(PGD_ERR_INVALID, "backend option '%s' is not key=value", o);
        int known = 0;
        for (int k = 0; keys && keys[k] && !known; k++)
            known = strlen(keys[k]) == (size_t)(eq - o) && !strncmp(keys[k], o, (size_t)(eq - o));
        if (known) continue;
        char have[128] = "";
        for (int k = 0; keys && keys[k]; k++)
            snprintf(have + strlen(have), sizeof have - strlen(have), "%s%s", k ? ", " : "", keys[k]);
        return pgd_error(PGD_ERR_INVALID, "the %s backend has no option '%.*s' (%s%s)", name, (int)(eq - o), o,
                         *have ? "it takes: " : "it takes none", have);
    }
    return PGD_OK;
}

/* The clock the wrappers time ops on: the backend's virtual one, else real time. */
static void learn_clock(pgd_backend *b) {
    pgd_clock *c = NULL;
    if (b->ops->control && b->ops->control(b, "clock", &c) == PGD_OK) b->clock = c;
    else b->clock = NULL;
}

pgd_status pgd_backend_control(pgd_backend *b, const char *what, void *arg) {
    if (!b || !what) return pgd_error(PGD_ERR_INVALID, "backend control: NULL argument");
    pgd_status st = b->ops->control
                        ? b->ops->control(b, what, arg)
                        : pgd_error(PGD_ERR_UNSUPPORTED, "the %s backend takes no requests ('%s')", b->ops->name, what);
    if (st == PGD_OK && !strcmp(what, "set_clock")) learn_clock(b);
    return st;
}

pgd_status pgd_backend_create(const pgd_backend_config *cfg, pgd_backend **out) {
    static const pgd_backend_config defaults = {0};
    if (!out) return pgd_error(PGD_ERR_INVALID, "pgd_backend_create: out is NULL");
    *out = NULL;
    if (!cfg) cfg = &defaults;
    const char *name = cfg->name ? cfg->name : "cpu";
    pgd_dtype kvt = PGD_F32;
    int want_kv = cfg->kv_dtype && *cfg->kv_dtype;
    if (want_kv && (!pgd_dtype_from_name(cfg->kv_dtype, &kvt) || !pgd_dtype_is_kv(kvt)))
        return pgd_error(PGD_ERR_INVALID, "KV cache dtype must be f32, f16, bf16 or q8 (got '%s')", cfg->kv_dtype);
    for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++)
        if (!strcmp(registry[i].name, name)) {
            PGD_TRY(check_options(name, registry[i].option_keys, cfg->options));
            PGD_TRY(registry[i].create(cfg, out));
            learn_clock(*out);
            for (int op = 0; op < PGD_OP_COUNT; op++)
                if (op_required[op] && !pgd_backend_supports_op(*out, (pgd_backend_op)op)) {
                    pgd_backend_destroy(*out);
                    *out = NULL;
                    return pgd_error(PGD_ERR_UNSUPPORTED, "the %s backend lacks the required op %s", name,
                                     op_names[op]);
                }
            if (!want_kv) return PGD_OK;
            /* a virtual backend only accounts the KV cache: any dtype; else the backend's own list */
            unsigned ok = (*out)->is_virtual ? ~0u : (*out)->kv_dtypes ? (*out)->kv_dtypes : 1u << PGD_F32;
            if (!(ok & (1u << kvt))) {
                pgd_backend_destroy(*out);
                *out = NULL;
                return pgd_error(PGD_ERR_UNSUPPORTED, "the %s backend cannot keep its KV cache in %s", name,
                                 cfg->kv_dtype);
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
    return !pgd_dtype_is_blocked(t) || (b && b->quant_weights);
}

int pgd_backend_host_memory(const pgd_backend *b) { return b && b->host_memory; }

static const char *const op_names[PGD_OP_COUNT] = {
#define OP_NAME_(op, ID, req, params, args) [PGD_OP_##ID] = #op,
    PGD_BACKEND_OPS(OP_NAME_)
#undef OP_NAME_
};
static const int op_required[PGD_OP_COUNT] = {
#define OP_REQ_(op, ID, req, params, args) [PGD_OP_##ID] = req,
    PGD_BACKEND_OPS(OP_REQ_)
#undef OP_REQ_
};

const char *pgd_backend_op_name(pgd_backend_op op) {
    return (int)op >= 0 && op < PGD_OP_COUNT ? op_names[op] : NULL;
}

int pgd_backend_supports_op(const pgd_backend *b, pgd_backend_op op) {
    if (!b || (int)op < 0 || op >= PGD_OP_COUNT) return 0;
    switch (op) {
#define OP_HAS_(op, ID, req, params, args) \
    case PGD_OP_##ID: return b->ops->op != NULL;
        PGD_BACKEND_OPS(OP_HAS_)
#undef OP_HAS_
    default: return 0;
    }
}

int pgd_backend_op_times(const pgd_backend *b, pgd_op_time *out, int cap) {
    int n = 0;
    if (!b) return 0;
    for (int i = 0; i < PGD_OP_COUNT; i++) {
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

void pgd_backend_observe(pgd_backend *b, pgd_backend_observer fn, void *ctx, int sync_each) {
    if (!b) return;
    b->observer = fn;
    b->observer_ctx = fn ? ctx : NULL;
    b->observer_sync = fn && sync_each;
}

pgd_status pgd_backend_alloc(pgd_backend *b, size_t bytes, void **dptr) {
    if (!b) return pgd_error(PGD_ERR_INVALID, "alloc: backend is NULL");
    if (!dptr) return pgd_error(PGD_ERR_INVALID, "alloc: dptr is NULL");
    *dptr = NULL;
    if (bytes == 0) bytes = 1;
    return b->ops->alloc(b, bytes, dptr);
}
void pgd_backend_free(pgd_backend *b, void *dptr) {
    if (b && dptr) b->ops->free(b, dptr);
}
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

/* ---- per-op checks: validate, *skip = nothing to do, fill the shape ----
 * Each takes the op's own parameters (pagoda/backend_ops.h). */

typedef pgd_op_shape shape_t;
#define SHAPE(...) (sh ? (void)(*sh = (shape_t){__VA_ARGS__}) : (void)0) /* sh: only when observed */

/* A row stride must be 0 (dense) or hold a whole row of `width` floats. */
static int bad_stride(int stride, long long width) { return stride < 0 || (stride && stride < width); }

static inline pgd_status check_upload(shape_t *sh, int *skip, pgd_backend *b, void *dst, const void *src, size_t bytes) {
    SHAPE(.x = (double)bytes);
    *skip = !bytes;
    return PGD_OK;
}
static inline pgd_status check_download(shape_t *sh, int *skip, pgd_backend *b, void *dst, const void *src, size_t bytes) {
    SHAPE(.x = (double)bytes);
    *skip = !bytes;
    return PGD_OK;
}
static inline pgd_status check_memset(shape_t *sh, int *skip, pgd_backend *b, void *dst, int value, size_t bytes) {
    SHAPE(.x = (double)bytes);
    *skip = !bytes;
    return PGD_OK;
}
static inline pgd_status check_sync(shape_t *sh, int *skip, pgd_backend *b) {
    SHAPE(.x = 0);
    return PGD_OK;
}
static inline pgd_status check_embedding(shape_t *sh, int *skip, pgd_backend *b, float *out, const void *table,
                                  pgd_dtype tt, const int32_t *tokens, int n, int dim) {
    if (n < 0 || dim <= 0) return pgd_error(PGD_ERR_INVALID, "embedding: bad shape n=%d dim=%d", n, dim);
    SHAPE(.k = {dim, (long)tt}, .x = n);
    *skip = !n;
    return PGD_OK;
}
static inline pgd_status check_matmul(shape_t *sh, int *skip, pgd_backend *b, float *y, const float *x, const void *w,
                               pgd_dtype wt, int n, int in, int out) {
    if (n < 0 || in <= 0 || out <= 0)
        return pgd_error(PGD_ERR_INVALID, "matmul: bad shape n=%d in=%d out=%d", n, in, out);
    SHAPE(.k = {in, out, (long)wt}, .x = n);
    *skip = !n;
    return PGD_OK;
}
static inline pgd_status check_rmsnorm(shape_t *sh, int *skip, pgd_backend *b, float *y, const float *x, const float *w,
                                int n, int dim, float eps) {
    if (n < 0 || dim <= 0) return pgd_error(PGD_ERR_INVALID, "rmsnorm: bad shape n=%d dim=%d", n, dim);
    SHAPE(.k = {dim}, .x = n);
    *skip = !n;
    return PGD_OK;
}
static inline pgd_status check_rope(shape_t *sh, int *skip, pgd_backend *b, float *q, float *k, const int32_t *pos, int n,
                             int n_heads, int n_kv_heads, int head_dim, float theta, int stride) {
    if (n < 0 || n_heads <= 0 || n_kv_heads <= 0 || head_dim <= 0 || head_dim % 2)
        return pgd_error(PGD_ERR_INVALID, "rope: bad shape heads=%d kv_heads=%d head_dim=%d",
                         n_heads, n_kv_heads, head_dim);
    long long wide = (long long)(n_heads > n_kv_heads ? n_heads : n_kv_heads) * head_dim;
    if (bad_stride(stride, wide))
        return pgd_error(PGD_ERR_INVALID, "rope: row stride %d is shorter than a row (%lld floats; 0 = dense)",
                         stride, wide);
    SHAPE(.k = {n_heads, n_kv_heads, head_dim}, .x = n);
    *skip = !n;
    return PGD_OK;
}
static inline pgd_status check_silu_mul(shape_t *sh, int *skip, pgd_backend *b, float *out, const float *gate_up,
                                 int n_rows, int hidden) {
    if (n_rows < 0 || hidden <= 0)
        return pgd_error(PGD_ERR_INVALID, "silu_mul: bad shape n_rows=%d hidden=%d", n_rows, hidden);
    uintptr_t o = (uintptr_t)out, g = (uintptr_t)gate_up;
    size_t nb = sizeof(float) * (size_t)n_rows * hidden; /* out's bytes; gate_up has twice as many */
    if (n_rows && o < g + 2 * nb && g < o + nb)
        return pgd_error(PGD_ERR_INVALID, "silu_mul: out overlaps gate_up (%d rows of %d)", n_rows, hidden);
    SHAPE(.x = (double)n_rows * hidden);
    *skip = !n_rows;
    return PGD_OK;
}
static inline pgd_status check_add(shape_t *sh, int *skip, pgd_backend *b, float *y, const float *x, size_t n) {
    SHAPE(.x = (double)n);
    *skip = !n;
    return PGD_OK;
}
static inline pgd_status check_kv_write(shape_t *sh, int *skip, pgd_backend *b, float *k_cache, float *v_cache,
                                 const float *k, const float *v, const int32_t *slot_mapping, int n, int n_kv_heads,
                                 int head_dim, int block_size, int stride) {
    if (n < 0 || n_kv_heads <= 0 || head_dim <= 0 || block_size <= 0)
        return pgd_error(PGD_ERR_INVALID, "kv_write: bad shape");
    if (bad_stride(stride, (long long)n_kv_heads * head_dim))
        return pgd_error(PGD_ERR_INVALID, "kv_write: row stride %d is shorter than a row (%lld floats; 0 = dense)",
                         stride, (long long)n_kv_heads * head_dim);
    SHAPE(.k = {n_kv_heads, head_dim}, .x = n);
    *skip = !n;
    return PGD_OK;
}
static inline pgd_status check_paged_attention(shape_t *sh, int *skip, pgd_backend *b, const pgd_paged_attn *a) {
    if (!a || a->num_seqs < 0 || a->n_heads <= 0 || a->n_kv_heads <= 0 || a->n_heads % a->n_kv_heads ||
        a->head_dim <= 0 || a->block_size <= 0)
        return pgd_error(PGD_ERR_INVALID, "paged_attention: bad arguments");
    if (bad_stride(a->q_stride, (long long)a->n_heads * a->head_dim))
        return pgd_error(PGD_ERR_INVALID, "paged_attention: q row stride %d is shorter than a row (%lld floats; "
                         "0 = dense)", a->q_stride, (long long)a->n_heads * a->head_dim);
    if (a->kv_dtype != b->kv_dtype)
        return pgd_error(PGD_ERR_INVALID, "paged_attention: KV cache of %s, but the %s backend's is %s",
                         pgd_dtype_name(a->kv_dtype), b->ops->name, pgd_dtype_name(b->kv_dtype));
    SHAPE(.k = {a->n_heads, a->n_kv_heads, a->head_dim}, .x = a->num_tokens, .y = a->num_seqs);
    *skip = !a->num_seqs;
    return PGD_OK;
}
static inline pgd_status check_gather_rows(shape_t *sh, int *skip, pgd_backend *b, float *out, const float *x,
                                    const int32_t *rows, int n, int dim) {
    if (n < 0 || dim <= 0) return pgd_error(PGD_ERR_INVALID, "gather_rows: bad shape");
    SHAPE(.k = {dim}, .x = n);
    *skip = !n;
    return PGD_OK;
}
static inline pgd_status check_copy_blocks(shape_t *sh, int *skip, pgd_backend *b, float *cache, const int32_t *pairs,
                                    int n_pairs, size_t block_floats) {
    if (n_pairs < 0) return pgd_error(PGD_ERR_INVALID, "copy_blocks: n_pairs < 0");
    SHAPE(.k = {(long)block_floats}, .x = n_pairs);
    *skip = !n_pairs;
    return PGD_OK;
}
static inline pgd_status check_argmax(shape_t *sh, int *skip, pgd_backend *b, int32_t *out, const float *logits, int n,
                               int vocab) {
    if (n < 0 || vocab <= 0) return pgd_error(PGD_ERR_INVALID, "argmax: bad shape n=%d vocab=%d", n, vocab);
    SHAPE(.k = {vocab}, .x = n);
    *skip = !n;
    return PGD_OK;
}
static inline pgd_status check_sample(shape_t *sh, int *skip, pgd_backend *b, int32_t *out, const float *logits,
                               const pgd_sample_row *rows, int n, int vocab) {
    if (n < 0 || vocab <= 0) return pgd_error(PGD_ERR_INVALID, "sample: bad shape n=%d vocab=%d", n, vocab);
    SHAPE(.k = {vocab}, .x = n);
    *skip = !n;
    return PGD_OK;
}

/* The wrappers: pgd_backend_<op>(b, ...) for every op of the list, and
 * the observed variant each takes while an observer is installed. The
 * plain path is kept as lean as the hand-written wrappers were (the perf
 * gate counts its instructions): no shape, no observer calls. */
#define OP_WRAPPER_(op, ID, req, params, args)                                                      \
    static __attribute__((noinline, cold)) pgd_status observed_##op params {                        \
        shape_t shape;                                                                              \
        int skip = 0;                                                                               \
        PGD_TRY(check_##op(&shape, &skip, PGD_UNPAREN args));                                       \
        if (skip) return PGD_OK;                                                                    \
        double t0 = pgd_clock_now(b->clock);                                                        \
        pgd_status st = b->ops->op args;                                                            \
        if (st == PGD_OK && b->observer_sync && PGD_OP_##ID != PGD_OP_SYNC) st = b->ops->sync(b);   \
        double dt = pgd_clock_now(b->clock) - t0;                                                   \
        b->op_seconds[PGD_OP_##ID] += dt;                                                           \
        b->op_calls[PGD_OP_##ID]++;                                                                 \
        if (st == PGD_OK) b->observer(b->observer_ctx, PGD_OP_##ID, &shape, dt);                    \
        return st;                                                                                  \
    }                                                                                               \
    pgd_status pgd_backend_##op params {                                                            \
        if (!b) return pgd_error(PGD_ERR_INVALID, #op ": backend is NULL");                          \
        if (!b->ops->op)                                                                            \
            return pgd_error(PGD_ERR_UNSUPPORTED, "backend '%s' has no op " #op, b->ops->name);     \
        if (b->observer) return observed_##op args;                                                 \
        int skip = 0;                                                                               \
        PGD_TRY(check_##op(NULL, &skip, PGD_UNPAREN args));                                         \
        if (skip) return PGD_OK;                                                                    \
        double t0 = pgd_clock_now(b->clock);                                                        \
        pgd_status st = b->ops->op args;                                                            \
        b->op_seconds[PGD_OP_##ID] += pgd_clock_now(b->clock) - t0;                                 \
        b->op_calls[PGD_OP_##ID]++;                                                                 \
        return st;                                                                                  \
    }
PGD_BACKEND_OPS(OP_WRAPPER_)
#undef OP_WRAPPER_
