/* profile.c - `pagoda profile`: time every backend op of a model's forward
 * pass on a real backend (the CPU by default) over a grid of batch shapes
 * and write the calibration table the sim backend loads with
 * `[model] profile = FILE` (format and lookup: backends/sim/sim_cost.h).
 *
 * Ops are timed inside real forward passes: the model runs on a timing
 * wrapper around the backend, so every op sees the caches, the weights
 * streaming from memory and the thread pool as it does under the engine,
 * with the very shapes the engine issues. Each grid point is a batch:
 *   decode  - B sequences of one new token at context L (B up to
 *             --max-seqs, L up to --max-context, B x L within --kv-memory):
 *             attn_decode (B, L) and every other op at B tokens;
 *   prefill - T new tokens (T up to --max-tokens) in sequences of q tokens
 *             after o earlier ones, chosen so that the mean number of
 *             (query, key) pairs per token takes the values 2, 8, 32, ...:
 *             attn_prefill (T, pairs/T) and the other ops at T tokens;
 *   tokens  - more token counts (dense where the batched matmul's tiles
 *             make its time a staircase) for every op but attention;
 * plus copy_blocks of 1..64 block pairs and the swap transfers of a block.
 * The grid is swept --reps times (rounds); in each, every point runs once
 * unrecorded and once recorded, the steady state of the engine's steps
 * (caches hold what the last step of that shape left). A row's time is the
 * median over rounds of the mean of the round's calls at that shape (all
 * layers): the sim adds op times up, so it needs expected times, and the
 * machine's speed drifts, so a round in a slow spell is outvoted. Two rows are
 * derived per pass: meta_upload = the forward's wall time minus its ops
 * and its logits download (its host work and metadata upload), and logits
 * = that download plus what the engine does with every row (copy it and
 * run the sampler; greedy unless --temperature).
 *
 * Exit status: 0 table written, 1 a failure while profiling, 2 bad usage. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "kernels.h"
#include "pagoda/config.h"
#include "pagoda/model.h"
#include "pagoda/sampler.h"
#include "sim/sim_cost.h"

/* ------------------------------------------------------------ timing wrapper */

enum { OP_EMBEDDING, OP_MATMUL, OP_RMSNORM, OP_ROPE, OP_SILU_MUL, OP_ADD, OP_KV_WRITE, OP_ATTN_DECODE,
       OP_ATTN_PREFILL, OP_GATHER, OP_COPY_BLOCKS, OP_UPLOAD, OP_DOWNLOAD, OP_META_UPLOAD, OP_LOGITS, N_OPS };
static const char *const op_names[N_OPS] = {"embedding", "matmul",   "rmsnorm", "rope",        "silu_mul",
                                            "add",       "kv_write", "attn_decode", "attn_prefill", "gather",
                                            "copy_blocks", "upload", "download", "meta_upload", "logits"};

typedef struct sample {
    int op, round;
    long k[3];
    double x, y, t;
} sample;

/* Samples of every model profiled (one table: shapes two models share,
 * e.g. their logits rows at equal vocabularies, pool their samples). */
typedef struct pool {
    sample *s;
    size_t n, cap;
    int oom;
    int host_memory; /* the backend's memory is the host's: its copy bandwidth is measured */
} pool;

typedef struct prof {
    pool *pool;            /* borrowed */
    int record_transfers;  /* 1: uploads/downloads are samples (swap phase) */
    int round;             /* which sweep over the grid the samples belong to */
    int attn_op;           /* OP_ATTN_DECODE or OP_ATTN_PREFILL: the batch being run; -1: not recorded */
    double attn_x, attn_y;
    double ops_time;       /* seconds in compute ops since the last reset */
    double up_time, down_time;
    size_t up_bytes, down_bytes;
} prof;

static void add_sample(prof *pr, int op, long k1, long k2, long k3, double x, double y, double t) {
    pool *p = pr->pool;
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 4096;
        sample *s = realloc(p->s, sizeof *s * cap);
        if (!s) {
            p->oom = 1;
            return;
        }
        p->s = s;
        p->cap = cap;
    }
    p->s[p->n++] = (sample){.op = op, .round = pr->round, .k = {k1, k2, k3}, .x = x, .y = y, .t = t};
}

/* The backend's observer (pgd_backend_observe, installed with sync_each:
 * every op is timed to completion by the backend's own op accounting):
 * each compute op is a sample keyed by its shape; attention is recorded
 * under the batch's attn_decode/attn_prefill point; transfers add to the
 * pass's upload/download totals (samples of their own in the swap phase). */
static void observe(void *ctx, pgd_backend_op op, const pgd_op_shape *s, double t) {
    prof *p = ctx;
    int id;
    switch (op) {
    case PGD_OP_UPLOAD:
    case PGD_OP_DOWNLOAD: {
        int up = op == PGD_OP_UPLOAD;
        if (p->record_transfers) add_sample(p, up ? OP_UPLOAD : OP_DOWNLOAD, 0, 0, 0, s->x, 0, t);
        *(up ? &p->up_time : &p->down_time) += t;
        *(up ? &p->up_bytes : &p->down_bytes) += (size_t)s->x;
        return;
    }
    case PGD_OP_PAGED_ATTENTION:
        p->ops_time += t;
        if (p->attn_op >= 0) add_sample(p, p->attn_op, s->k[0], s->k[1], s->k[2], p->attn_x, p->attn_y, t);
        return;
    case PGD_OP_EMBEDDING: id = OP_EMBEDDING; break;
    case PGD_OP_MATMUL: id = OP_MATMUL; break;
    case PGD_OP_RMSNORM: id = OP_RMSNORM; break;
    case PGD_OP_ROPE: id = OP_ROPE; break;
    case PGD_OP_SILU_MUL: id = OP_SILU_MUL; break;
    case PGD_OP_ADD: id = OP_ADD; break;
    case PGD_OP_KV_WRITE: id = OP_KV_WRITE; break;
    case PGD_OP_GATHER_ROWS: id = OP_GATHER; break;
    case PGD_OP_COPY_BLOCKS: id = OP_COPY_BLOCKS; break;
    default: return; /* memset, sync, device sampling: not in the sim's table */
    }
    p->ops_time += t;
    add_sample(p, id, s->k[0], s->k[1], s->k[2], s->x, s->y, t);
}

/* ------------------------------------------------------------------- grid */

typedef struct point {
    int decode;          /* 1: decode (q = 1 each), 0: prefill */
    int attn;            /* 1: a point of the attention grid (its attention call is recorded) */
    int nseq, q, extra;  /* sequences; new tokens of each: q, or q + 1 for the first `extra` */
    int before;          /* tokens before the new ones in every sequence */
    int tokens;          /* total new tokens */
    double ax, ay;       /* attention sizes (sim_cost.h) */
} point;

typedef struct opts {
    int threads, max_tokens, max_seqs, max_context, block_size, reps, quick;
    size_t kv_memory;
    float temperature;
    pgd_dtype dtype;
    const char *backend;
} opts;

static int blocks_of(int len, int bs) { return (len + bs - 1) / bs; }

/* The grid values: a roughly geometric ladder (1, 2, 3, 4, 6, 8, 12, ...
 * or x4 steps) up to and including `max`. */
static int ladder(int first, int max, int dense, int *out, int cap) {
    int n = 0;
    for (int v = first; v <= max && n < cap;) {
        out[n++] = v;
        int next = dense ? (v < 4 ? v + 1 : (v & (v - 1)) ? v / 3 * 4 : v / 2 * 3) : v * 4;
        if (next <= v) next = v + 1;
        v = next;
    }
    if (n < cap && (n == 0 || out[n - 1] < max) && max >= first) out[n++] = max;
    return n;
}

static int make_grid(const opts *o, int num_blocks, point **out) {
    int bs = o->block_size, cap_blocks = num_blocks - 1, n = 0;
    int bv[64], lv[16], tv[64], yv[16];
    int nb = ladder(1, o->max_seqs < o->max_tokens ? o->max_seqs : o->max_tokens, !o->quick, bv, 64);
    int nl = ladder(16 < o->max_context ? 16 : o->max_context, o->max_context, 0, lv, 16);
    int nt = ladder(o->quick ? 16 : 4, o->max_tokens, 0, tv, 64);
    int nt2 = 0, tv2[64];
    for (int i = 0; i < nt; i++) { /* x2 steps for prefill sizes */
        tv2[nt2++] = tv[i];
        if (!o->quick && i + 1 < nt && tv[i] * 2 < tv[i + 1] && nt2 < 63) tv2[nt2++] = tv[i] * 2;
    }
    int ny = ladder(2, o->max_context, 0, yv, 16);
    point *g = calloc((size_t)(nb * nl + nt2 * ny + 1 + 1024), sizeof *g);
    if (!g) return -1;
    for (int i = 0; i < nb; i++)
        for (int j = 0; j < nl; j++) {
            int B = bv[i], L = lv[j];
            if ((long)B * blocks_of(L, bs) > cap_blocks) continue;
            g[n++] = (point){.decode = 1, .attn = 1, .nseq = B, .q = 1, .before = L - 1, .tokens = B, .ax = B,
                             .ay = L};
        }
    for (int i = 0; i < nt2; i++)
        for (int j = 0; j < ny; j++) {
            /* sequences of about q = 2y - 1 new tokens each (a fresh prompt of
             * q tokens has (q + 1) / 2 pairs per token), or one sequence of
             * T tokens after `before` earlier ones when T is smaller */
            int T = tv2[i], y = yv[j], qt = 2 * y - 1 < T ? 2 * y - 1 : T;
            int nseq = (int)lround((double)T / qt);
            if (nseq < 1) nseq = 1;
            int q = T / nseq, extra = T % nseq;
            if (q < 2) continue; /* 1-token sequences are decode */
            int before = (int)lround(y - (q + 1) / 2.0);
            if (before < 0) before = 0;
            int longest = before + q + (extra > 0);
            if (longest > o->max_context || nseq > o->max_seqs || (long)nseq * blocks_of(longest, bs) > cap_blocks)
                continue;
            double pairs = 0;
            for (int s = 0; s < nseq; s++) {
                double qq = q + (s < extra), L = before + qq;
                pairs += qq * L - qq * (qq - 1) / 2;
            }
            int dup = 0; /* two targets may round to the same batch */
            for (int k = 0; k < n; k++)
                if (!g[k].decode && g[k].tokens == T && g[k].q == q && g[k].before == before) dup = 1;
            if (dup) continue;
            g[n++] = (point){.decode = 0, .attn = 1, .nseq = nseq, .q = q, .extra = extra, .before = before,
                             .tokens = T, .ax = T, .ay = pairs / T};
        }
    /* More token counts for the other ops: the batched matmul works in
     * tiles of 8 and 16 tokens, so its time is a staircase in n (n = 8k + 1
     * costs about what 8k + 8 does, not what 8k does). Every n to 16, then
     * 8k and 8k + 1 to 128, 16k and 16k + 1 to 512, 64k and 64k + 1 beyond:
     * decode batches at the smallest context, else fresh prompts. */
    if (!o->quick)
        for (int v = 1; v <= o->max_tokens && n < nb * nl + nt2 * ny + 1024; v++) {
            int step = v <= 16 ? 1 : v <= 129 ? 8 : v <= 513 ? 16 : 64;
            if (step > 1 && v % step > 1) continue;
            int have = 0;
            for (int k = 0; k < n && !have; k++) have = g[k].tokens == v;
            if (have) continue;
            if (v <= o->max_seqs && v * blocks_of(lv[0], bs) <= cap_blocks) {
                g[n++] = (point){.decode = 1, .nseq = v, .q = 1, .before = lv[0] - 1, .tokens = v};
                continue;
            }
            int qmax = o->max_context < 128 ? o->max_context : 128, nseq = (v + qmax - 1) / qmax;
            int q = v / nseq, extra = v % nseq;
            if (q < 2 || nseq > o->max_seqs || (long)nseq * blocks_of(q + 1, bs) > cap_blocks) continue;
            g[n++] = (point){.decode = 0, .nseq = nseq, .q = q, .extra = extra, .tokens = v};
        }
    *out = g;
    return n;
}

/* ---------------------------------------------------------------- running */

typedef struct ctx {
    prof *p;
    pgd_backend *be;
    pgd_model *model;
    pgd_kv_cache *kv;
    const pgd_model_config *c;
    pgd_sampler *sampler;
    int bs, max_seqs;
    int32_t *tokens, *qs, *lens, *tables;
    int32_t *perm;       /* the cache's blocks (not the null block 0) in a seeded random order */
    float *logits, *scratch;
    size_t max_rows;
    int mbps; /* block-table width */
} ctx;

/* One forward pass of point g; records its ops, meta_upload and logits. */
static pgd_status run_point(ctx *x, const point *g, int record) {
    const int V = x->c->vocab_size;
    int T = 0, maxb = 0;
    for (int s = 0; s < g->nseq; s++) {
        int q = g->q + (s < g->extra), L = g->before + q;
        x->qs[s] = T;
        x->lens[s] = L;
        for (int i = 0; i < q; i++) x->tokens[T + i] = 3 + (int32_t)((s * 7919u + (unsigned)i * 104729u) % (unsigned)(V - 3));
        T += q;
        if (blocks_of(L, x->bs) > maxb) maxb = blocks_of(L, x->bs);
    }
    x->qs[g->nseq] = T;
    /* distinct blocks for every sequence, scattered over the cache as the
     * engine's block tables are once sequences have come and gone (reading
     * scattered blocks is measurably slower than reading consecutive ones) */
    int next = 0;
    for (int s = 0; s < g->nseq; s++)
        for (int b = 0; b < maxb; b++)
            x->tables[(size_t)s * maxb + b] = b < blocks_of(x->lens[s], x->bs) ? x->perm[next++] : 0;
    pgd_batch batch = {.num_seqs = g->nseq, .num_tokens = T, .tokens = x->tokens, .query_start = x->qs,
                       .seq_lens = x->lens, .block_tables = x->tables, .max_blocks_per_seq = maxb};
    prof *p = x->p;
    size_t mark = p->pool->n;
    p->attn_op = !g->attn ? -1 : g->decode ? OP_ATTN_DECODE : OP_ATTN_PREFILL;
    p->attn_x = g->ax;
    p->attn_y = g->ay;
    p->ops_time = p->up_time = p->down_time = 0;
    p->up_bytes = p->down_bytes = 0;
    double t0 = pgd_cli_now();
    PGD_TRY(pgd_model_forward(x->model, x->kv, &batch, x->logits));
    double wall = pgd_cli_now() - t0;
    /* what the engine does with each row of logits: copy it and sample */
    double s0 = pgd_cli_now();
    volatile int sink = 0;
    for (int s = 0; s < g->nseq; s++) {
        memcpy(x->scratch, x->logits + (size_t)s * V, sizeof(float) * (size_t)V);
        sink += pgd_sampler_sample(x->sampler, x->scratch);
    }
    (void)sink;
    double sampling = pgd_cli_now() - s0;
    if (!record) {
        p->pool->n = mark;
        return PGD_OK;
    }
    double host = wall - p->ops_time - p->down_time;
    add_sample(p, OP_META_UPLOAD, 0, 0, 0, (double)p->up_bytes, 0, host > 0 ? host : 0);
    add_sample(p, OP_LOGITS, 0, 0, 0, (double)p->down_bytes, 0, p->down_time + sampling);
    return p->pool->oom ? pgd_error(PGD_ERR_OOM, "profile: out of memory") : PGD_OK;
}

/* copy_blocks of 1..64 pairs and the swap of 1..8 blocks, `reps` times. */
static pgd_status run_block_ops(ctx *x, int reps) {
    int32_t pairs[2 * 64];
    int nb = pgd_kv_cache_num_blocks(x->kv);
    if (nb < 130) return PGD_OK; /* too small a cache to copy 64 distinct pairs */
    PGD_TRY(pgd_kv_cache_set_host_blocks(x->kv, 8));
    prof *p = x->p;
    for (int r = 0; r < reps; r++) {
        p->round = r;
        for (int n = 1; n <= 64; n *= 2) {
            for (int i = 0; i < n; i++) {
                pairs[2 * i] = 1 + i;
                pairs[2 * i + 1] = 1 + 64 + i;
            }
            PGD_TRY(pgd_kv_cache_copy_blocks(x->kv, pairs, n));
        }
        p->record_transfers = 1;
        for (int i = 0; i < 8; i++) {
            pairs[2 * i] = 1 + i;
            pairs[2 * i + 1] = i;
        }
        pgd_status st = pgd_kv_cache_swap_out(x->kv, pairs, 8);
        if (st == PGD_OK) {
            for (int i = 0; i < 8; i++) {
                pairs[2 * i] = i;
                pairs[2 * i + 1] = 1 + 64 + i;
            }
            st = pgd_kv_cache_swap_in(x->kv, pairs, 8);
        }
        p->record_transfers = 0;
        PGD_TRY(st);
    }
    return pgd_kv_cache_set_host_blocks(x->kv, 0);
}

static int cmp_sample(const void *a, const void *b) {
    const sample *p = a, *q = b;
    if (p->op != q->op) return p->op - q->op;
    for (int i = 0; i < 3; i++)
        if (p->k[i] != q->k[i]) return p->k[i] < q->k[i] ? -1 : 1;
    if (p->x != q->x) return p->x < q->x ? -1 : 1;
    if (p->y != q->y) return p->y < q->y ? -1 : 1;
    return (p->t > q->t) - (p->t < q->t);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Each shape's time into the table: the median over rounds of the mean of
 * the round's calls. The mean, because the sim adds op times up (a sum of
 * n calls is n means, the occasional slow call included); per round and
 * then the median over rounds, because the machine's speed drifts (a
 * round that ran in a slow spell is outvoted). *spread gets the median over
 * shapes of (max - min) / median of their round means, *peak the best
 * matmul FLOP/s of a median call (and its shape in peak_desc). */
static pgd_status aggregate(pool *p, int rounds, pgd_sim_table *t, double *spread, double *peak, char *peak_desc,
                            size_t pd) {
    qsort(p->s, p->n, sizeof *p->s, cmp_sample);
    double *sp = malloc(sizeof(double) * (p->n + 1)), *sum = calloc((size_t)rounds, sizeof(double)),
           *rm = malloc(sizeof(double) * (size_t)rounds);
    int *cnt = calloc((size_t)rounds, sizeof(int)), nsp = 0;
    if (!sp || !sum || !rm || !cnt) {
        free(sp);
        free(sum);
        free(rm);
        free(cnt);
        return pgd_error(PGD_ERR_OOM, "profile: out of memory");
    }
    *peak = 0;
    for (size_t i = 0; i < p->n;) {
        size_t j = i;
        while (j < p->n && p->s[j].op == p->s[i].op && p->s[j].k[0] == p->s[i].k[0] && p->s[j].k[1] == p->s[i].k[1] &&
               p->s[j].k[2] == p->s[i].k[2] && p->s[j].x == p->s[i].x && p->s[j].y == p->s[i].y)
            j++;
        size_t m = j - i;
        const sample *s = p->s + i;
        for (int r = 0; r < rounds; r++) sum[r] = 0, cnt[r] = 0;
        for (size_t q = 0; q < m; q++) {
            int r = s[q].round >= 0 && s[q].round < rounds ? s[q].round : 0;
            sum[r] += s[q].t;
            cnt[r]++;
        }
        int nr = 0;
        for (int r = 0; r < rounds; r++)
            if (cnt[r]) rm[nr++] = sum[r] / cnt[r];
        double value = pgd_cli_median(rm, nr); /* sorts rm */
        double med = m % 2 ? s[m / 2].t : 0.5 * (s[m / 2 - 1].t + s[m / 2].t);
        if (nr >= 2 && value > 0) sp[nsp++] = (rm[nr - 1] - rm[0]) / value;
        pgd_status st = pgd_sim_table_add(t, op_names[s->op], s->k[0], s->k[1], s->k[2], s->x, s->y, value);
        if (st != PGD_OK) {
            free(sp);
            free(sum);
            free(rm);
            free(cnt);
            return st;
        }
        if (s->op == OP_MATMUL && med > 0) {
            double f = 2.0 * s->x * (double)s->k[0] * (double)s->k[1] / med; /* typical speed: the median */
            if (f > *peak) {
                *peak = f;
                snprintf(peak_desc, pd, "n=%g, %ld x %ld", s->x, s->k[0], s->k[1]);
            }
        }
        i = j;
    }
    *spread = 0;
    if (nsp) {
        qsort(sp, (size_t)nsp, sizeof *sp, cmp_double);
        *spread = sp[nsp / 2];
    }
    free(sp);
    free(sum);
    free(rm);
    free(cnt);
    return PGD_OK;
}

typedef struct progress {
    int tty;
    long done, total;
    double last;
    const char *what;
} progress;

static void progress_tick(progress *pr, const char *shape) {
    pr->done++;
    double now = pgd_cli_now();
    int final = pr->done == pr->total;
    if (!final && now - pr->last < (pr->tty ? 0.2 : 15)) return;
    pr->last = now;
    if (pr->tty)
        fprintf(stderr, "\rpagoda profile: %s: %3ld%% (%ld/%ld passes) %-28s%s", pr->what, 100 * pr->done / pr->total,
                pr->done, pr->total, shape, final ? "\n" : "");
    else
        fprintf(stderr, "pagoda profile: %s: %ld%% (%ld/%ld passes)\n", pr->what, 100 * pr->done / pr->total, pr->done,
                pr->total);
    fflush(stderr);
}

/* Profile one model into the pool; appends its description to desc. */
static int profile_model(const char *spec, const opts *o, pool *pl, char *desc, size_t dn) {
    int rc = 1;
    pgd_backend *inner = NULL;
    pgd_backend_config bc = {.name = o->backend, .num_threads = o->threads};
    if (pgd_backend_create(&bc, &inner) != PGD_OK) return pgd_cli_fail("profile: backend");
    if (!pgd_backend_computes(inner)) {
        fprintf(stderr, "pagoda profile: backend '%s' computes nothing, there is nothing to measure (use cpu)\n",
                o->backend);
        pgd_backend_destroy(inner);
        return 2;
    }
    pl->host_memory = pgd_backend_host_memory(inner);
    prof prf = {.pool = pl, .attn_op = -1}, *p = &prf;
    pgd_backend_observe(inner, observe, p, 1);
    ctx x = {.p = p, .be = inner, .bs = o->block_size};
    point *grid = NULL;
    pgd_model_load_opts mo = {.random_dtype = o->dtype};
    fprintf(stderr, "pagoda profile: loading %s on %s ...\n", spec, pgd_backend_describe(inner));
    if (pgd_model_load(spec, &mo, inner, &x.model) != PGD_OK) {
        rc = pgd_cli_fail("profile: --model");
        goto done;
    }
    x.c = pgd_model_get_config(x.model);
    opts oo = *o;
    if (oo.max_context <= 0 || oo.max_context > x.c->max_seq_len) oo.max_context = x.c->max_seq_len;
    if (oo.max_tokens <= 0) oo.max_tokens = x.c->max_seq_len > 2048 ? x.c->max_seq_len : 2048; /* scheduler default */
    size_t bb = pgd_kv_cache_block_bytes(x.c, o->block_size);
    long nbl = (long)(o->kv_memory / bb);
    if (nbl > (1L << 30)) nbl = 1L << 30;
    if (nbl < 2 + 1) {
        fprintf(stderr, "pagoda profile: --kv-memory %zu bytes holds %ld blocks of %zu bytes for %s (need at least 3)\n",
                o->kv_memory, nbl, bb, spec);
        rc = 2;
        goto done;
    }
    int ng = make_grid(&oo, (int)nbl, &grid);
    if (ng <= 0) {
        fprintf(stderr, "pagoda profile: no batch shape fits (check --max-tokens, --max-seqs, --max-context, "
                        "--kv-memory)\n");
        rc = 2;
        goto done;
    }
    if (pgd_model_kv_cache_create(x.model, o->block_size, (int)nbl, &x.kv) != PGD_OK) {
        rc = pgd_cli_fail("profile: KV cache (lower --kv-memory?)");
        goto done;
    }
    /* Fill the cache (small finite floats): pages never written read as the
     * kernel's shared zero page, so attention over them would be timed
     * from cache instead of memory. */
    size_t layer_bytes = (size_t)nbl * (size_t)x.c->n_kv_heads * (size_t)o->block_size * (size_t)x.c->head_dim *
                         sizeof(float);
    for (int l = 0; l < x.c->n_layers; l++)
        if (pgd_backend_memset(inner, pgd_kv_cache_k(x.kv, l), 0x3c, layer_bytes) != PGD_OK ||
            pgd_backend_memset(inner, pgd_kv_cache_v(x.kv, l), 0x3c, layer_bytes) != PGD_OK) {
            rc = pgd_cli_fail("profile: KV cache");
            goto done;
        }
    int max_rows = 0, max_tok = 0, max_seqs = 0, maxb = 0;
    for (int i = 0; i < ng; i++) {
        if (grid[i].tokens > max_tok) max_tok = grid[i].tokens;
        if (grid[i].nseq > max_seqs) max_seqs = grid[i].nseq;
        int b = blocks_of(grid[i].before + grid[i].q + 1, o->block_size);
        if (b > maxb) maxb = b;
    }
    max_rows = max_seqs;
    x.tokens = malloc(sizeof(int32_t) * (size_t)max_tok);
    x.qs = malloc(sizeof(int32_t) * (size_t)(max_seqs + 1));
    x.lens = malloc(sizeof(int32_t) * (size_t)max_seqs);
    x.tables = malloc(sizeof(int32_t) * (size_t)max_seqs * (size_t)maxb);
    x.logits = malloc(sizeof(float) * (size_t)max_rows * (size_t)x.c->vocab_size);
    x.scratch = malloc(sizeof(float) * (size_t)x.c->vocab_size);
    x.perm = malloc(sizeof(int32_t) * (size_t)nbl);
    if (x.perm) {
        uint64_t r = 0x9e3779b97f4a7c15ULL;
        for (long i = 0; i < nbl - 1; i++) x.perm[i] = (int32_t)(i + 1);
        for (long i = nbl - 2; i > 0; i--) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL;
            long j = (long)((r >> 33) % (uint64_t)(i + 1));
            int32_t tmp = x.perm[i];
            x.perm[i] = x.perm[j];
            x.perm[j] = tmp;
        }
    }
    pgd_sampling_params sp = {.temperature = o->temperature, .seed = 1};
    if (!x.tokens || !x.qs || !x.lens || !x.tables || !x.logits || !x.scratch || !x.perm) {
        fprintf(stderr, "pagoda profile: out of memory for batches of %d tokens\n", max_tok);
        goto done;
    }
    if (pgd_sampler_create(&sp, x.c->vocab_size, &x.sampler) != PGD_OK) {
        rc = pgd_cli_fail("profile: --temperature");
        goto done;
    }
    int nd = 0, np = 0;
    for (int i = 0; i < ng; i++) nd += grid[i].attn && grid[i].decode, np += grid[i].attn && !grid[i].decode;
    fprintf(stderr, "pagoda profile: %s: %d decode, %d prefill and %d more token-count shapes x %d reps (up to %d "
                    "tokens, %d sequences, context %d, %ld KV blocks)\n", x.c->name, nd, np, ng - nd - np, o->reps,
            oo.max_tokens, oo.max_seqs, oo.max_context, nbl);
    /* Every point in a steady state, as the engine's steps are (the next
     * step is much like the last): one unrecorded pass, then the recorded
     * ones back to back. What stays in the caches from one step to the next
     * matters: stories15M decodes one sequence 25-45% faster after a step of
     * its own shape than after one that streamed a large KV cache. */
    /* --reps rounds over the grid; in each, every point in a steady state as
     * the engine's steps are (the next step is much like the last): one
     * unrecorded pass of it, then the recorded one. What stays in the caches
     * from one step to the next matters: stories15M decodes one sequence
     * 25-45% faster after a step of its own shape than after one that
     * streamed a large KV cache. */
    progress pr = {.tty = isatty(STDERR_FILENO), .total = (long)ng * 2 * o->reps, .what = x.c->name};
    for (int r = 0; r < o->reps; r++)
        for (int i = 0; i < ng; i++) {
            const point *g = &grid[i];
            char shape[64];
            if (g->decode) snprintf(shape, sizeof shape, "decode %d x ctx %d", g->nseq, g->before + 1);
            else snprintf(shape, sizeof shape, "prefill %d tok, %.0f pairs/tok", g->tokens, g->ay);
            p->round = r;
            for (int pass = 0; pass < 2; pass++) {
                if (run_point(&x, g, pass) != PGD_OK) {
                    rc = pgd_cli_fail("profile: forward");
                    goto done;
                }
                progress_tick(&pr, shape);
            }
        }
    if (run_block_ops(&x, o->reps) != PGD_OK) {
        rc = pgd_cli_fail("profile: block copies and swaps");
        goto done;
    }
    const pgd_model_config *c = x.c;
    size_t len = strlen(desc);
    char dts[64];
    snprintf(desc + len, dn - len,
             "model %s: %s, dim %d, %d layers, %d/%d heads x %d, hidden %d, vocab %d, context %d, %s weights, on %s\n"
             "grid %s: %d decode shapes (sequences 1..%d x contexts %d..%d), %d prefill shapes (tokens up to %d), "
             "%d more token counts; block size %d, %ld KV blocks, %d reps\n",
             spec, c->name, c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->hidden_dim, c->vocab_size,
             c->max_seq_len, pgd_model_config_dtype_str(c, dts, sizeof dts), pgd_backend_describe(inner), c->name, nd,
             oo.max_seqs, oo.max_context < 16 ? oo.max_context : 16, oo.max_context, np, oo.max_tokens, ng - nd - np,
             o->block_size, nbl, o->reps);
    rc = 0;
done:
    free(grid);
    free(x.tokens);
    free(x.qs);
    free(x.lens);
    free(x.tables);
    free(x.logits);
    free(x.scratch);
    free(x.perm);
    pgd_sampler_destroy(x.sampler);
    pgd_kv_cache_destroy(x.kv);
    pgd_model_destroy(x.model);
    pgd_backend_destroy(inner);
    return rc;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: pagoda profile --output FILE [--model SPEC]... [options]\n"
            "\n"
            "Times every op of the model's forward pass on a real backend over a grid of batch\n"
            "shapes and writes the calibration table of the sim backend ([model] profile = FILE).\n"
            "\n"
            "  -o, --output FILE    the table to write (CSV; format in backends/sim/sim_cost.h)\n"
            "  --model SPEC         model or random:<shape> (repeatable; default random:stories15M)\n"
            "  --backend NAME       backend to measure (default cpu)\n"
            "  --threads N          backend threads (default 0 = all cores; match the runs to predict)\n"
            "  --dtype T            weights of random models: f32 (default), f16, bf16\n"
            "  --max-tokens N       most tokens in one step (default: the scheduler's, max(2048, context))\n"
            "  --max-seqs N         most sequences in one step (default 256)\n"
            "  --max-context N      longest context (default: the model's)\n"
            "  --kv-memory SIZE     KV cache to profile in, bounds sequences x context (default 256M)\n"
            "  --block-size N       tokens per KV block (default 16)\n"
            "  --reps N             rounds over the grid (each: a warm-up and a timed pass per shape); a row is\n"
            "                       the median over rounds of its calls' mean time (default 3)\n"
            "  --temperature X      sampler the logits rows are timed with (default 0 = greedy)\n"
            "  --quick              coarse grid (seconds; for tests)\n"
            "\n"
            "       pagoda profile --import vidur --model SHAPE --mlp FILE [--attention FILE]\n"
            "                      [--all-reduce FILE] -o TABLE\n"
            "converts measured GPU op times in Vidur's formats into the same table.\n");
}

int pgd_cmd_profile(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--import") || !strncmp(argv[i], "--import=", 9)) return pgd_cmd_profile_import(argc, argv);
    const char *out_path = NULL, *models[16];
    int n_models = 0;
    opts o = {.max_seqs = 256, .block_size = 16, .reps = 3, .kv_memory = (size_t)256 << 20, .dtype = PGD_F32,
              .backend = "cpu"};
    static const struct option lopts[] = {
        {"output", required_argument, 0, 'o'},     {"model", required_argument, 0, 'm'},
        {"backend", required_argument, 0, 'B'},    {"threads", required_argument, 0, 'j'},
        {"dtype", required_argument, 0, 'd'},      {"max-tokens", required_argument, 0, 'T'},
        {"max-seqs", required_argument, 0, 'S'},   {"max-context", required_argument, 0, 'L'},
        {"kv-memory", required_argument, 0, 'K'},  {"block-size", required_argument, 0, 'b'},
        {"reps", required_argument, 0, 'r'},       {"temperature", required_argument, 0, 't'},
        {"quick", no_argument, 0, 'q'},            {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "o:h", lopts, NULL)) != -1) {
        switch (ch) {
        case 'o': out_path = optarg; break;
        case 'm':
            if (n_models == 16) {
                fprintf(stderr, "pagoda profile: at most 16 --model options\n");
                return 2;
            }
            models[n_models++] = optarg;
            break;
        case 'B': o.backend = optarg; break;
        case 'j': if (!pgd_cli_int("--threads", optarg, 0, 1024, &o.threads)) return 2; break;
        case 'd':
            if (!pgd_dtype_from_name(optarg, &o.dtype) || !pgd_dtype_is_weight(o.dtype)) {
                fprintf(stderr, "pagoda profile: --dtype must be f32, f16, bf16, q8_0 or q4_0 (got '%s')\n", optarg);
                return 2;
            }
            break;
        case 'T': if (!pgd_cli_int("--max-tokens", optarg, 1, 1 << 20, &o.max_tokens)) return 2; break;
        case 'S': if (!pgd_cli_int("--max-seqs", optarg, 1, 1 << 16, &o.max_seqs)) return 2; break;
        case 'L': if (!pgd_cli_int("--max-context", optarg, 1, 1 << 20, &o.max_context)) return 2; break;
        case 'K':
            if (!pgd_config_parse_size(optarg, &o.kv_memory)) {
                fprintf(stderr, "pagoda profile: --kv-memory must be a size like 256M or 1G (got '%s')\n", optarg);
                return 2;
            }
            break;
        case 'b': if (!pgd_cli_int("--block-size", optarg, 1, 4096, &o.block_size)) return 2; break;
        case 'r': if (!pgd_cli_int("--reps", optarg, 1, 1000, &o.reps)) return 2; break;
        case 't':
            if (!pgd_cli_float("--temperature", optarg, &o.temperature)) return 2;
            if (o.temperature < 0) {
                fprintf(stderr, "pagoda profile: --temperature must be >= 0 (got '%s')\n", optarg);
                return 2;
            }
            break;
        case 'q': o.quick = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "pagoda profile: unexpected argument '%s' (models go in --model)\n", argv[optind]);
        return 2;
    }
    if (!out_path) {
        fprintf(stderr, "pagoda profile: --output FILE is required (the table to write)\n");
        usage(stderr);
        return 2;
    }
    if (!n_models) models[n_models++] = "random:stories15M";
    /* fail on an unwritable output now, not after minutes of measuring */
    int existed = access(out_path, F_OK) == 0;
    FILE *probe = fopen(out_path, "a");
    if (!probe) {
        fprintf(stderr, "pagoda profile: cannot write --output '%s': ", out_path);
        perror(NULL);
        return 2;
    }
    fclose(probe);
    if (!existed) remove(out_path);

    pgd_sim_table *t = NULL;
    if (pgd_sim_table_new(&t) != PGD_OK) return pgd_cli_fail("profile");
    char desc[8192] = "", peak_desc[128] = "";
    double spread = 0, peak = 0, bw = 0;
    double w0 = pgd_cli_now();
    int rc = 0;
    pool pl = {0};
    for (int i = 0; i < n_models && !rc; i++) rc = profile_model(models[i], &o, &pl, desc, sizeof desc);
    if (!rc && aggregate(&pl, o.reps, t, &spread, &peak, peak_desc, sizeof peak_desc) != PGD_OK) rc = pgd_cli_fail("profile");
    free(pl.s);
    if (!rc && pl.host_memory) {
        fprintf(stderr, "pagoda profile: measuring copy bandwidth ...\n");
        pgd_threadpool *tp = pgd_threadpool_create(o.threads);
        bw = pgd_cpu_measure_copy_bandwidth(tp, (size_t)256 << 20, 2 * o.reps + 1);
        pgd_threadpool_destroy(tp);
    }
    if (!rc) {
        char cpu[256], when[64], comment[10240];
        pgd_cli_cpu_model(cpu, sizeof cpu);
        time_t now = time(NULL);
        strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", gmtime(&now));
        int n = snprintf(comment, sizeof comment,
                         "pagoda profile %s: calibration table of the sim backend (format: backends/sim/sim_cost.h)\n"
                         "machine: %s; backend %s, %d threads requested; %s\n"
                         "sampling timed: temperature %g\n%s",
                         PAGODA_VERSION, cpu, o.backend, o.threads, when, o.temperature, desc);
        if (bw > 0) n += snprintf(comment + n, sizeof comment - (size_t)n,
                                  "copy bandwidth: %.2f GB/s (256 MiB memcpy, read + written, median of %d)\n", bw / 1e9,
                                  2 * o.reps + 1);
        snprintf(comment + n, sizeof comment - (size_t)n,
                 "matmul peak: %.1f GFLOP/s (%s; median call)\n"
                 "noise: median over shapes of the spread of their round means ((max - min) / median): %.1f%%; "
                 "profiled in %.0f s",
                 peak / 1e9, peak_desc, 100 * spread, pgd_cli_now() - w0);
        if (pgd_sim_table_save(t, out_path, comment) != PGD_OK) rc = pgd_cli_fail("profile: --output");
        else
            fprintf(stderr, "pagoda profile: wrote %s (%d rows; matmul peak %.1f GFLOP/s, copy %.2f GB/s, noise %.1f%%, "
                            "%.0f s)\n", out_path, pgd_sim_table_rows(t), peak / 1e9, bw / 1e9, 100 * spread,
                    pgd_cli_now() - w0);
    }
    pgd_sim_table_destroy(t);
    return rc;
}
