/* cpu_backend.c - the CPU backend: host memory and the fast CPU kernels of
 * kernels/cpu run on a thread pool. Always built. Ops run synchronously, so
 * sync is a no-op and "device pointers" are ordinary host pointers (64-byte
 * aligned; from 2 MB up on transparent huge pages, pgd_cpu_alloc_pages). */
#include <hwloc.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_impl.h"
#include "kernels.h"
#include "threadpool.h"

/* A byte range of weights rearranged in place for the kernels. */
typedef struct span {
    const char *lo, *hi;
} span;

typedef struct cpu_backend {
    pgd_backend base;
    pgd_threadpool *tp;
    /* the q8_0/q4_0 matrices prepare_weight rearranged to the x8 layouts (kernels.h), sorted,
     * adjacent ones merged: matmul and embedding look their W up here. One
     * backend belongs to one rank's thread, so no lock. */
    span *x8;
    int nx8, capx8;
} cpu_backend;

static pgd_threadpool *tp_of(pgd_backend *b) { return ((cpu_backend *)b)->tp; }

/* The index of the last span starting at or before p, or -1. */
static int span_at(const cpu_backend *c, const char *p) {
    int lo = 0, hi = c->nx8 - 1, at = -1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (c->x8[mid].lo <= p) at = mid, lo = mid + 1;
        else hi = mid - 1;
    }
    return at;
}

/* 1 when [p, p + bytes) lies in a rearranged matrix. */
static int is_x8(const cpu_backend *c, const void *p, size_t bytes) {
    if (!c->nx8) return 0;
    int i = span_at(c, p);
    return i >= 0 && (const char *)p < c->x8[i].hi && (const char *)p + bytes <= c->x8[i].hi;
}

/* 1 when [p, p + bytes) touches a rearranged matrix. */
static int touches_x8(const cpu_backend *c, const void *p, size_t bytes) {
    if (!c->nx8 || !bytes) return 0;
    int i = span_at(c, (const char *)p + bytes - 1);
    return i >= 0 && c->x8[i].hi > (const char *)p;
}

/* Room for one more span (before a matrix changes, so that recording it cannot fail after). */
static pgd_status reserve_span(cpu_backend *c) {
    if (c->nx8 < c->capx8) return PGD_OK;
    int cap = c->capx8 ? 2 * c->capx8 : 16;
    span *s = realloc(c->x8, sizeof *s * (size_t)cap);
    if (!s) return pgd_error(PGD_ERR_OOM, "cpu backend: out of memory recording a prepared weight");
    c->x8 = s, c->capx8 = cap;
    return PGD_OK;
}

/* Record [lo, hi) (room reserved). */
static void add_span(cpu_backend *c, const char *lo, const char *hi) {
    int i = span_at(c, lo) + 1;
    memmove(c->x8 + i + 1, c->x8 + i, sizeof *c->x8 * (size_t)(c->nx8 - i));
    c->x8[i] = (span){lo, hi};
    c->nx8++;
    if (i + 1 < c->nx8 && c->x8[i].hi == c->x8[i + 1].lo) { /* merge with the next */
        c->x8[i].hi = c->x8[i + 1].hi;
        memmove(c->x8 + i + 1, c->x8 + i + 2, sizeof *c->x8 * (size_t)(c->nx8 - i - 2));
        c->nx8--;
    }
    if (i > 0 && c->x8[i - 1].hi == c->x8[i].lo) { /* and with the previous */
        c->x8[i - 1].hi = c->x8[i].hi;
        memmove(c->x8 + i, c->x8 + i + 1, sizeof *c->x8 * (size_t)(c->nx8 - i - 1));
        c->nx8--;
    }
}

/* Forget the spans inside [lo, hi) (an allocation being freed). */
static void drop_spans(cpu_backend *c, const char *lo, const char *hi) {
    int k = 0;
    for (int i = 0; i < c->nx8; i++)
        if (c->x8[i].lo < lo || c->x8[i].lo >= hi) c->x8[k++] = c->x8[i];
    c->nx8 = k;
}

static void cpu_destroy(pgd_backend *b) {
    cpu_backend *c = (cpu_backend *)b;
    pgd_threadpool_destroy(c->tp);
    free(c->x8);
    free(c);
}

static pgd_status cpu_alloc(pgd_backend *b, size_t bytes, void **dptr) {
    void *p = pgd_cpu_alloc_pages(bytes); /* huge pages from 2 MB: weights and KV are streamed */
    if (!p) return pgd_error(PGD_ERR_OOM, "cpu backend: cannot allocate %zu bytes", bytes);
    *dptr = p;
    return PGD_OK;
}
static void cpu_free(pgd_backend *b, void *dptr) {
    cpu_backend *c = (cpu_backend *)b;
    if (dptr && c->nx8) drop_spans(c, dptr, (const char *)dptr + malloc_usable_size(dptr));
    free(dptr);
}
static pgd_status cpu_upload(pgd_backend *b, void *dst, const void *src, size_t bytes) {
    if (touches_x8((cpu_backend *)b, dst, bytes))
        return pgd_error(PGD_ERR_INVALID, "cpu backend: upload into a weight already prepared for the kernels "
                                          "(prepare_weight comes after a matrix is written whole)");
    memmove(dst, src, bytes);
    return PGD_OK;
}
static pgd_status cpu_copy(pgd_backend *b, void *dst, const void *src, size_t bytes) {
    memmove(dst, src, bytes);
    return PGD_OK;
}
static pgd_status cpu_memset(pgd_backend *b, void *dst, int value, size_t bytes) {
    if (touches_x8((cpu_backend *)b, dst, bytes))
        return pgd_error(PGD_ERR_INVALID, "cpu backend: memset over a weight already prepared for the kernels");
    memset(dst, value, bytes);
    return PGD_OK;
}

/* "prepare_weight": a q8_0 or q4_0 matrix whose rows are whole groups of
 * 256 is regrouped in place to its x8 layout (kernels.h), which the AVX2
 * kernels read fastest; with the scalar kernels, other dtypes, or a q8_0
 * weight of -128, the matrix stays as it is (arranged = 0). */
static pgd_status cpu_control(pgd_backend *b, const char *what, void *arg) {
    cpu_backend *c = (cpu_backend *)b;
    if (strcmp(what, "prepare_weight"))
        return pgd_error(PGD_ERR_UNSUPPORTED, "the cpu backend takes no request '%s' (it takes: prepare_weight)", what);
    pgd_backend_weight *pw = arg;
    if (!pw || !pw->w || pw->rows == 0 || pw->in <= 0)
        return pgd_error(PGD_ERR_INVALID, "cpu backend: prepare_weight needs a matrix (w, rows, in)");
    pw->arranged = 0;
    if ((pw->dtype != PGD_Q8_0 && pw->dtype != PGD_Q4_0) || !pgd_cpu_x8_enabled() || !pgd_cpu_x8_fits(pw->in))
        return PGD_OK;
    size_t bytes = pgd_dtype_bytes(pw->dtype, pw->rows * (size_t)pw->in);
    if (touches_x8(c, pw->w, bytes)) return PGD_OK; /* already done (a weight shared by two names) */
    PGD_TRY(reserve_span(c));
    if (!pgd_cpu_x8_pack(pw->w, pw->dtype, pw->rows, pw->in)) return PGD_OK;
    add_span(c, pw->w, (const char *)pw->w + bytes);
    pw->arranged = 1;
    return PGD_OK;
}
static pgd_status cpu_sync(pgd_backend *b) { return PGD_OK; }

static pgd_status cpu_embedding(pgd_backend *b, float *out, const void *table, pgd_dtype tt,
                                const int32_t *tokens, int n, int dim) {
    if (pgd_dtype_is_quant(tt) && is_x8((cpu_backend *)b, table, pgd_dtype_bytes(tt, (size_t)dim)))
        pgd_cpu_embedding_x8(out, table, tt, tokens, n, dim);
    else pgd_cpu_embedding(tp_of(b), out, table, tt, tokens, n, dim);
    return PGD_OK;
}
static pgd_status cpu_matmul(pgd_backend *b, float *y, const float *x, const void *w,
                             pgd_dtype wt, int n, int in, int out) {
    if (pgd_dtype_is_quant(wt) && is_x8((cpu_backend *)b, w, pgd_dtype_bytes(wt, (size_t)in * (size_t)out)))
        pgd_cpu_matmul_x8(tp_of(b), y, x, w, wt, n, in, out);
    else pgd_cpu_matmul(tp_of(b), y, x, w, wt, n, in, out);
    return PGD_OK;
}
static pgd_status cpu_rmsnorm(pgd_backend *b, float *y, const float *x, const float *w, int n,
                              int dim, float eps) {
    pgd_cpu_rmsnorm(tp_of(b), y, x, w, n, dim, eps);
    return PGD_OK;
}
static pgd_status cpu_rope(pgd_backend *b, float *q, float *k, const int32_t *pos, int n,
                           int n_heads, int n_kv_heads, int head_dim, float theta, int stride) {
    pgd_cpu_rope(tp_of(b), q, k, pos, n, n_heads, n_kv_heads, head_dim, theta, stride);
    return PGD_OK;
}
static pgd_status cpu_silu_mul(pgd_backend *b, float *out, const float *gate_up, int n_rows,
                               int hidden) {
    pgd_cpu_silu_mul(tp_of(b), out, gate_up, n_rows, hidden);
    return PGD_OK;
}
static pgd_status cpu_add(pgd_backend *b, float *y, const float *x, size_t n) {
    pgd_cpu_add(tp_of(b), y, x, n);
    return PGD_OK;
}
static pgd_status cpu_kv_write(pgd_backend *b, float *k_cache, float *v_cache, const float *k,
                               const float *v, const int32_t *slot_mapping, int n,
                               int n_kv_heads, int head_dim, int block_size, int stride) {
    pgd_cpu_kv_write(tp_of(b), k_cache, v_cache, b->kv_dtype, k, v, slot_mapping, n, n_kv_heads, head_dim,
                     block_size, stride);
    return PGD_OK;
}
static pgd_status cpu_paged_attention(pgd_backend *b, const pgd_paged_attn *a) {
    pgd_cpu_paged_attention(tp_of(b), a);
    return PGD_OK;
}
static pgd_status cpu_gather_rows(pgd_backend *b, float *out, const float *x,
                                  const int32_t *rows, int n, int dim) {
    for (int i = 0; i < n; i++)
        memcpy(out + (size_t)i * dim, x + (size_t)rows[i] * dim, sizeof(float) * (size_t)dim);
    return PGD_OK;
}
static pgd_status cpu_copy_blocks(pgd_backend *b, float *cache, const int32_t *pairs,
                                  int n_pairs, size_t block_floats) {
    pgd_cpu_copy_blocks(tp_of(b), cache, pairs, n_pairs, block_floats);
    return PGD_OK;
}

static const struct pgd_backend_ops cpu_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .control = cpu_control,
    .upload = cpu_upload,
    .download = cpu_copy,
    .memset = cpu_memset,
    .sync = cpu_sync,
    .embedding = cpu_embedding,
    .matmul = cpu_matmul,
    .rmsnorm = cpu_rmsnorm,
    .rope = cpu_rope,
    .silu_mul = cpu_silu_mul,
    .add = cpu_add,
    .kv_write = cpu_kv_write,
    .paged_attention = cpu_paged_attention,
    .gather_rows = cpu_gather_rows,
    .copy_blocks = cpu_copy_blocks,
};

typedef struct pin_job {
    hwloc_topology_t topo;
    int first, count, failed;
} pin_job;

static void pin_task(void *arg, int i, int n) {
    pin_job *j = arg;
    (void)n;
    hwloc_obj_t core = hwloc_get_obj_by_type(j->topo, HWLOC_OBJ_CORE, (unsigned)(j->first + i % j->count));
    if (!core || hwloc_set_cpubind(j->topo, core->cpuset, HWLOC_CPUBIND_THREAD) != 0) j->failed = 1;
}

/* Bind every thread of the backend to its core range; returns the range in first and count. */
static pgd_status pin_threads(cpu_backend *c, int slot, int slots, int *first, int *count) {
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) != 0 || hwloc_topology_load(topo) != 0)
        return pgd_error(PGD_ERR_DEVICE, "cpu backend: hwloc cannot read the topology to pin threads");
    int ncores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
    if (ncores <= 0) ncores = 1;
    int per = ncores / slots > 0 ? ncores / slots : 1;
    pin_job j = {.topo = topo, .first = ((slot - 1) * per) % ncores, .count = per};
    if (c->tp) pgd_threadpool_run(c->tp, pin_task, &j);
    else pin_task(&j, 0, 1);
    hwloc_topology_destroy(topo);
    if (j.failed) return pgd_error(PGD_ERR_DEVICE, "cpu backend: binding threads to cores %d-%d failed", j.first,
                                   j.first + per - 1);
    *first = j.first;
    *count = per;
    return PGD_OK;
}

pgd_status pgd_cpu_backend_create(const pgd_backend_config *cfg, pgd_backend **out) {
    cpu_backend *c = calloc(1, sizeof *c);
    if (!c) return pgd_error(PGD_ERR_OOM, "cpu backend: out of memory");
    if (cfg->num_threads != 1) {
        c->tp = pgd_threadpool_create(cfg->num_threads);
        if (!c->tp) {
            free(c);
            return pgd_error(PGD_ERR_OOM, "cpu backend: cannot start %d threads", cfg->num_threads);
        }
    }
    c->base.ops = &cpu_ops;
    c->base.quant_weights = 1;
    c->base.host_memory = 1;
    c->base.kv_dtypes = 1u << PGD_F32 | 1u << PGD_F16 | 1u << PGD_BF16 | 1u << PGD_Q8;
    int pin_first = -1, pin_count = 0;
    if (cfg->pin_rank > 0) {
        if (cfg->pin_ranks < cfg->pin_rank) {
            pgd_threadpool_destroy(c->tp);
            free(c);
            return pgd_error(PGD_ERR_INVALID, "cpu backend: pin slot %d of %d is out of range", cfg->pin_rank,
                             cfg->pin_ranks);
        }
        pgd_status st = pin_threads(c, cfg->pin_rank, cfg->pin_ranks, &pin_first, &pin_count);
        if (st != PGD_OK) {
            pgd_threadpool_destroy(c->tp);
            free(c);
            return st;
        }
    }
    int nt = c->tp ? pgd_threadpool_size(c->tp) : 1;
    char pin[48] = "";
    if (pin_first >= 0) snprintf(pin, sizeof pin, ", pinned to core%s %d-%d", pin_count > 1 ? "s" : "", pin_first,
                                 pin_first + pin_count - 1);
    snprintf(c->base.description, sizeof c->base.description, "cpu: %d thread%s, %s kernels%s", nt,
             nt > 1 ? "s" : "", pgd_cpu_isa(), pin);
    *out = &c->base;
    return PGD_OK;
}
