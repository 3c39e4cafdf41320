/* sim_backend.c - the simulator backend: the same ops table as the CPU
 * backend, but nothing is computed; each op advances a virtual clock by the
 * time the cost model (sim_cost.h) predicts for it on a named device, so
 * paper-scale models (OPT-175B) "run" on a laptop, fast and deterministically.
 *
 * Memory: an allocation below SIM_SMALL bytes (batch metadata, block-id
 * pairs) is real zeroed host memory, so the cost model can read e.g. the
 * sequence lengths of an attention call; a larger one (weights, the KV
 * cache, activations, swap space) is an address range reserved with
 * mmap(PROT_NONE, MAP_NORESERVE): it costs no memory, and any stray
 * dereference faults at once. Uploads into and memsets of such ranges are
 * dropped; a download from one writes zeros into host memory (so logits
 * are all equal and greedy sampling picks token 0), or nothing when the
 * destination is itself a virtual range (swap space).
 *
 * Invariants: the clock only moves forward, by exactly the sum of the
 * predicted op times; the same sequence of ops gives the same times. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "backend_impl.h"
#include "sim_cost.h"

#define SIM_SMALL ((size_t)4 << 20)

typedef struct vrange {
    char *base;
    size_t bytes;
} vrange;

typedef struct sim_backend {
    pgd_backend base;
    pgd_sim_cost cost;
    pgd_sim_table *table; /* owned */
    pgd_clock *own_clock;
    vrange *ranges;       /* virtual allocations */
    int n_ranges, cap_ranges;
    char *zero_at;        /* host span known to hold zeros from the last virtual download */
    size_t zero_len;
} sim_backend;

static sim_backend *S(pgd_backend *b) { return (sim_backend *)b; }
static void tick(pgd_backend *b, double dt) { pgd_clock_advance(b->clock, dt); }

static int find_range(const sim_backend *s, const void *p) {
    const char *c = p;
    for (int i = 0; i < s->n_ranges; i++)
        if (c >= s->ranges[i].base && c < s->ranges[i].base + s->ranges[i].bytes) return i;
    return -1;
}

static void sim_destroy(pgd_backend *b) {
    sim_backend *s = S(b);
    for (int i = 0; i < s->n_ranges; i++) munmap(s->ranges[i].base, s->ranges[i].bytes);
    free(s->ranges);
    pgd_sim_table_destroy(s->table);
    pgd_clock_destroy(s->own_clock);
    free(s);
}

static pgd_status sim_alloc(pgd_backend *b, size_t bytes, void **dptr) {
    sim_backend *s = S(b);
    if (bytes < SIM_SMALL) {
        void *p = calloc(1, (bytes + 63) & ~(size_t)63);
        if (!p) return pgd_error(PGD_ERR_OOM, "sim backend: cannot allocate %zu bytes of metadata", bytes);
        *dptr = p;
        return PGD_OK;
    }
    if (s->n_ranges == s->cap_ranges) {
        int cap = s->cap_ranges ? 2 * s->cap_ranges : 16;
        vrange *r = realloc(s->ranges, sizeof *r * (size_t)cap);
        if (!r) return pgd_error(PGD_ERR_OOM, "sim backend: out of memory");
        s->ranges = r;
        s->cap_ranges = cap;
    }
    void *p = mmap(NULL, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return pgd_error(PGD_ERR_OOM, "sim backend: cannot reserve %.2f GiB of address space", bytes / 1073741824.0);
    s->ranges[s->n_ranges++] = (vrange){.base = p, .bytes = bytes};
    *dptr = p;
    return PGD_OK;
}

static void sim_free(pgd_backend *b, void *dptr) {
    sim_backend *s = S(b);
    int i = find_range(s, dptr);
    if (i < 0) {
        if (s->zero_at == dptr) s->zero_at = NULL, s->zero_len = 0;
        free(dptr);
        return;
    }
    munmap(s->ranges[i].base, s->ranges[i].bytes);
    s->ranges[i] = s->ranges[--s->n_ranges];
}

static pgd_status sim_upload(pgd_backend *b, void *dst, const void *src, size_t bytes) {
    sim_backend *s = S(b);
    int meta = find_range(s, dst) < 0; /* batch metadata (real memory), not a swap-in */
    if (meta) memmove(dst, src, bytes);
    tick(b, pgd_sim_cost_transfer(&s->cost, bytes, 0, meta));
    return PGD_OK;
}

static pgd_status sim_download(pgd_backend *b, void *dst, const void *src, size_t bytes) {
    sim_backend *s = S(b);
    int result = find_range(s, dst) < 0;
    if (result) {
        if (find_range(s, src) < 0) {
            memmove(dst, src, bytes);
        } else {
            /* Only the sim writes the host span it zeroed last (the engine copies
             * logits before sampling), so zeros there need no rewriting. */
            char *d = dst;
            if (!(s->zero_at && d >= s->zero_at && d + bytes <= s->zero_at + s->zero_len)) {
                memset(dst, 0, bytes);
                s->zero_at = d;
                s->zero_len = bytes;
            }
        }
    }
    tick(b, pgd_sim_cost_transfer(&s->cost, bytes, 1, result));
    return PGD_OK;
}

static pgd_status sim_memset(pgd_backend *b, void *dst, int value, size_t bytes) {
    if (find_range(S(b), dst) < 0) memset(dst, value, bytes);
    return PGD_OK;
}
static pgd_status sim_sync(pgd_backend *b) { return PGD_OK; }

static pgd_status sim_embedding(pgd_backend *b, float *out, const void *table, pgd_dtype tt, const int32_t *tokens,
                                int n, int dim) {
    tick(b, pgd_sim_cost_embedding(&S(b)->cost, n, dim, tt));
    return PGD_OK;
}
static pgd_status sim_matmul(pgd_backend *b, float *y, const float *x, const void *w, pgd_dtype wt, int n, int in,
                             int out) {
    tick(b, pgd_sim_cost_matmul(&S(b)->cost, n, in, out, wt));
    return PGD_OK;
}
static pgd_status sim_rmsnorm(pgd_backend *b, float *y, const float *x, const float *w, int n, int dim, float eps) {
    tick(b, pgd_sim_cost_rmsnorm(&S(b)->cost, n, dim));
    return PGD_OK;
}
static pgd_status sim_rope(pgd_backend *b, float *q, float *k, const int32_t *pos, int n, int n_heads, int n_kv_heads,
                           int head_dim, float theta, int stride) {
    tick(b, pgd_sim_cost_rope(&S(b)->cost, n, n_heads, n_kv_heads, head_dim));
    return PGD_OK;
}
static pgd_status sim_silu_mul(pgd_backend *b, float *out, const float *gate_up, int n_rows, int hidden) {
    tick(b, pgd_sim_cost_silu_mul(&S(b)->cost, (size_t)n_rows * hidden));
    return PGD_OK;
}
static pgd_status sim_add(pgd_backend *b, float *y, const float *x, size_t n) {
    tick(b, pgd_sim_cost_add(&S(b)->cost, n));
    return PGD_OK;
}
static pgd_status sim_kv_write(pgd_backend *b, float *k_cache, float *v_cache, const float *k, const float *v,
                               const int32_t *slot_mapping, int n, int n_kv_heads, int head_dim, int block_size,
                               int stride) {
    tick(b, pgd_sim_cost_kv_write(&S(b)->cost, n, n_kv_heads, head_dim));
    return PGD_OK;
}
static pgd_status sim_paged_attention(pgd_backend *b, const pgd_paged_attn *a) {
    sim_backend *s = S(b);
    if (find_range(s, a->seq_lens) >= 0 || find_range(s, a->query_start) >= 0)
        return pgd_error(PGD_ERR_INVALID, "sim backend: paged_attention metadata (%d sequences) is not host-readable",
                         a->num_seqs);
    tick(b, pgd_sim_cost_attention(&s->cost, a->query_start, a->seq_lens, a->num_seqs, a->n_heads, a->n_kv_heads,
                                   a->head_dim));
    return PGD_OK;
}
static pgd_status sim_gather_rows(pgd_backend *b, float *out, const float *x, const int32_t *rows, int n, int dim) {
    tick(b, pgd_sim_cost_gather(&S(b)->cost, n, dim));
    return PGD_OK;
}
static pgd_status sim_copy_blocks(pgd_backend *b, float *cache, const int32_t *pairs, int n_pairs,
                                  size_t block_floats) {
    tick(b, pgd_sim_cost_copy_blocks(&S(b)->cost, n_pairs, block_floats));
    return PGD_OK;
}

static const struct pgd_backend_ops sim_ops = {
    .name = "sim",
    .destroy = sim_destroy,
    .alloc = sim_alloc,
    .free = sim_free,
    .upload = sim_upload,
    .download = sim_download,
    .memset = sim_memset,
    .sync = sim_sync,
    .embedding = sim_embedding,
    .matmul = sim_matmul,
    .rmsnorm = sim_rmsnorm,
    .rope = sim_rope,
    .silu_mul = sim_silu_mul,
    .add = sim_add,
    .kv_write = sim_kv_write,
    .paged_attention = sim_paged_attention,
    .gather_rows = sim_gather_rows,
    .copy_blocks = sim_copy_blocks,
};

pgd_status pgd_sim_backend_create(const pgd_backend_config *cfg, pgd_backend **out) {
    pgd_sim_device dev;
    PGD_TRY(pgd_sim_device_find(cfg->sim_device, &dev));
    if (cfg->sim_tp < 0 || cfg->sim_tp > 64)
        return pgd_error(PGD_ERR_INVALID, "sim backend: tensor-parallel degree must be in 1..64 (got %d)", cfg->sim_tp);
    if (cfg->clock && pgd_clock_get_kind(cfg->clock) != PGD_CLOCK_VIRTUAL)
        return pgd_error(PGD_ERR_INVALID, "sim backend: needs a virtual clock (got a real one)");
    sim_backend *s = calloc(1, sizeof *s);
    if (!s) return pgd_error(PGD_ERR_OOM, "sim backend: out of memory");
    pgd_status st;
    if (cfg->sim_profile && *cfg->sim_profile && (st = pgd_sim_table_load(cfg->sim_profile, &s->table)) != PGD_OK)
        goto fail;
    if (!cfg->clock && (st = pgd_clock_create(PGD_CLOCK_VIRTUAL, &s->own_clock)) != PGD_OK) goto fail;
    s->cost = (pgd_sim_cost){.dev = dev, .tp = cfg->sim_tp > 0 ? cfg->sim_tp : 1, .table = s->table};
    s->base.ops = &sim_ops;
    s->base.clock = cfg->clock ? cfg->clock : s->own_clock;
    s->base.is_virtual = 1;
    s->base.kv_dtype = dev.act_bytes == 2 ? PGD_F16 : PGD_F32;
    /* an explicit KV dtype (core/backend.c checked the name and applies it to base.kv_dtype after
     * create) is priced from the start */
    pgd_dtype kvt;
    if (cfg->kv_dtype && *cfg->kv_dtype && pgd_dtype_from_name(cfg->kv_dtype, &kvt)) s->base.kv_dtype = kvt;
    s->cost.kv_bytes = (double)pgd_dtype_size(s->base.kv_dtype);
    s->cost.kv_row_extra = s->base.kv_dtype == PGD_Q8 ? (double)sizeof(float) : 0; /* q8's row scale */
    s->base.quant_weights = 1; /* priced by the bytes they take */
    if (s->table)
        snprintf(s->base.description, sizeof s->base.description, "sim: %s x%d, calibrated (%d rows from %s)",
                 dev.name, s->cost.tp, pgd_sim_table_rows(s->table), cfg->sim_profile);
    else
        snprintf(s->base.description, sizeof s->base.description, "sim: %s x%d, roofline (%.0f TFLOP/s, %.2f TB/s)",
                 dev.name, s->cost.tp, dev.peak_flops / 1e12, dev.mem_bw / 1e12);
    *out = &s->base;
    return PGD_OK;
fail:
    sim_destroy(&s->base);
    return st;
}
