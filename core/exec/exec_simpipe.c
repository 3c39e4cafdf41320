/* exec_simpipe.c - the simulator's pipeline: a model split into pp stages
 * (each tensor rank 0 of tp alike ranks), each stage on its own sim backend
 * with its OWN virtual clock, run by one process.
 *
 * Time. The engine has its own clock (the driver backend's, which the
 * runner reads); each stage's clock says when that stage's device is next
 * free. Submitting a batch at engine time t runs its passes at once, in
 * order, micro-batch by micro-batch and stage by stage: micro-batch m
 * starts on stage s at
 *     start(s, m) = max(free(s), ready(s, m)),
 *     ready(0, m) = t,  ready(s + 1, m) = end(s, m) + send(activations),
 * where end - start is the sum of the stage's op costs (its clock advances
 * by them, all-reduces of its tensor group included) and send is the
 * sim's price of a "send" (its "link_seconds" request, pagoda/backend.h)
 * of the micro-batch's T x dim activations. The batch
 * lands at the end of its last micro-batch on the last stage (its logits
 * download included); waiting for it moves the engine's clock there. So
 * stage s works on batch b while stage s + 1 works on batch b - 1, exactly
 * as the threads and MPI pipelines do, and a step's time is never the sum
 * of its stages' times unless the pipeline is empty. KV operations (block
 * copies, swaps) run on every stage after the passes submitted before
 * them: each stage's part of the cache, from max(free(s), t).
 *
 * Batches in flight: pp (the engine keeps that many planned steps out;
 * async adds nothing here: the sim's host work takes no time). Micro-
 * batches: as the real pipeline cuts them (pgd_exec_microbatches).
 *
 * Accounting: op times (pgd_exec_backend) are stage 0's backend, as the
 * real pipeline accounts rank 0; pgd_exec_stage_busy gives each stage's
 * busy seconds (its device's work) since the executor was made. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec_impl.h"
#include "model/model_impl.h"
#include "pagoda/clock.h"
#include "pagoda/comm.h"
#include "pagoda/parallel.h"

typedef struct stage {
    pgd_backend *b;     /* owned; its clock is the stage's */
    pgd_model *m;       /* this stage's layers (tensor rank 0 of tp) */
    pgd_kv_cache *kv;
    pgd_comm *tp;       /* the stage's tensor group (tp > 1): all-reduces on the stage's clock */
    pgd_comm *world;    /* stage-to-stage sends: free here, priced by the executor */
    double busy;        /* seconds of device work */
} stage;

typedef struct sslot {
    int ticket;
    double lands;       /* engine time the logits are on the host */
    float *logits;
    size_t cap;
} sslot;

typedef struct simpipe {
    pgd_exec base;
    int tp, pp, microbatches;
    stage *st;
    sslot *slots;
    int32_t *qs;        /* a micro-batch's query starts */
    size_t qs_cap;
    pgd_backend *links; /* prices stage-to-stage sends on the device's links (the driver's backend) */
    double *busy;       /* stage_busy's answer */
} simpipe;

static simpipe *P(pgd_exec *x) { return (simpipe *)x; }
static double now_engine(const simpipe *p) { return pgd_clock_now(p->base.clock); }

static void simpipe_destroy(pgd_exec *x) {
    simpipe *p = P(x);
    for (int s = 0; p->st && s < p->pp; s++) {
        stage *g = &p->st[s];
        pgd_kv_cache_destroy(g->kv);
        pgd_model_destroy(g->m);
        pgd_comm_destroy(g->tp);
        pgd_comm_destroy(g->world);
        pgd_backend_destroy(g->b);
    }
    for (int i = 0; p->slots && i < x->max_in_flight; i++) free(p->slots[i].logits);
    free(p->st);
    free(p->slots);
    free(p->qs);
    free(p->busy);
    free(p);
}

static void simpipe_kv_destroy(pgd_exec *x) {
    simpipe *p = P(x);
    for (int s = 0; s < p->pp; s++) {
        pgd_kv_cache_destroy(p->st[s].kv);
        p->st[s].kv = NULL;
    }
}

static pgd_status simpipe_kv_create(pgd_exec *x, int bs, int nb, int nh) {
    simpipe *p = P(x);
    for (int s = 0; s < p->pp; s++) {
        stage *g = &p->st[s];
        pgd_model_config lc = g->m->cfg; /* this stage's layers and KV heads */
        lc.n_layers = g->m->sh.layer_end - g->m->sh.layer_begin;
        lc.n_kv_heads = g->m->sh.kv_heads;
        pgd_status st = pgd_kv_cache_create(g->b, &lc, bs, nb, &g->kv);
        if (st == PGD_OK) st = pgd_kv_cache_set_host_blocks(g->kv, nh);
        if (st != PGD_OK) {
            simpipe_kv_destroy(x);
            return st;
        }
    }
    return PGD_OK;
}

/* Stage s starts work at engine time t or when it is free, whichever is later. */
static double stage_start(stage *g, double t) {
    pgd_clock *c = pgd_backend_clock(g->b);
    pgd_clock_sleep_until(c, t);
    return pgd_clock_now(c);
}

static double stage_end(stage *g, double start) {
    double end = pgd_clock_now(pgd_backend_clock(g->b));
    g->busy += end - start;
    return end;
}

static pgd_status simpipe_kv_op(pgd_exec *x, int op, const int32_t *pairs, int n) {
    simpipe *p = P(x);
    double t = now_engine(p);
    for (int s = 0; s < p->pp; s++) {
        stage *g = &p->st[s];
        double t1 = stage_start(g, t);
        pgd_status st;
        switch (op) {
        case PGD_EXEC_KV_COPY: st = pgd_kv_cache_copy_blocks(g->kv, pairs, n); break;
        case PGD_EXEC_KV_SWAP_OUT: st = pgd_kv_cache_swap_out(g->kv, pairs, n); break;
        default: st = pgd_kv_cache_swap_in(g->kv, pairs, n); break;
        }
        stage_end(g, t1);
        if (st != PGD_OK) return st;
    }
    return PGD_OK;
}

static pgd_status simpipe_submit(pgd_exec *x, const pgd_batch *b, int ticket) {
    simpipe *p = P(x);
    sslot *sl = &p->slots[ticket % x->max_in_flight];
    const int S = b->num_seqs, T = b->num_tokens, V = x->cfg.vocab_size, d = x->cfg.dim;
    size_t rows = b->all_logits ? (size_t)T : (size_t)S, floats = rows * (size_t)V;
    if (floats > sl->cap) {
        float *q = realloc(sl->logits, floats * sizeof(float));
        if (!q) return pgd_error(PGD_ERR_OOM, "sim pipeline: out of memory for logits (%zu floats)", floats);
        sl->logits = q;
        sl->cap = floats;
    }
    if ((size_t)S + 1 > p->qs_cap) {
        int32_t *q = realloc(p->qs, sizeof(int32_t) * ((size_t)S + 1));
        if (!q) return pgd_error(PGD_ERR_OOM, "sim pipeline: out of memory");
        p->qs = q;
        p->qs_cap = (size_t)S + 1;
    }
    const double t = now_engine(p);
    const int M = pgd_exec_microbatches(p->pp, p->microbatches, S, T);
    double lands = t;
    for (int mb = 0, s0 = 0; mb < M; mb++) {
        int s1 = pgd_exec_mb_end(b->query_start, S, T, M, mb, s0);
        int q0 = b->query_start[s0], ns = s1 - s0, nt = b->query_start[s1] - q0;
        for (int i = 0; i <= ns; i++) p->qs[i] = b->query_start[s0 + i] - q0;
        pgd_batch mbb = {.num_seqs = ns, .num_tokens = nt, .tokens = b->tokens + q0, .query_start = p->qs,
                         .seq_lens = b->seq_lens + s0,
                         .block_tables = b->block_tables + (size_t)s0 * b->max_blocks_per_seq,
                         .max_blocks_per_seq = b->max_blocks_per_seq, .all_logits = b->all_logits};
        size_t row0 = b->all_logits ? (size_t)q0 : (size_t)s0;
        double ready = t;
        for (int s = 0; s < p->pp; s++) {
            stage *g = &p->st[s];
            int last = s == p->pp - 1;
            pgd_pass_io io = {.tp = g->tp, .world = g->world, .ctrl = g->world,
                              .prev = s ? (s - 1) * p->tp : -1, .next = last ? -1 : (s + 1) * p->tp,
                              .logits_to = -1, .tag = mb};
            double start = stage_start(g, ready);
            PGD_TRY(pgd_model_pass(g->m, g->kv, &mbb, last ? sl->logits + row0 * V : NULL, &io));
            double end = stage_end(g, start);
            pgd_backend_link_cost send = {.op = "send", .ranks = 2, .elems = (double)nt * d};
            if (!last) PGD_TRY(pgd_backend_control(p->links, "link_seconds", &send));
            ready = last ? end : end + send.seconds;
        }
        if (ready > lands) lands = ready;
        s0 = s1;
    }
    sl->ticket = ticket;
    sl->lands = lands;
    return PGD_OK;
}

static pgd_status simpipe_wait(pgd_exec *x, int ticket, const float **logits) {
    simpipe *p = P(x);
    sslot *sl = &p->slots[ticket % x->max_in_flight];
    if (sl->ticket != ticket) return pgd_error(PGD_ERR_INVALID, "sim pipeline: batch %d was not submitted", ticket);
    pgd_clock_sleep_until(x->clock, sl->lands);
    *logits = sl->logits;
    return PGD_OK;
}

static const double *simpipe_stage_busy(const pgd_exec *x, int *n) {
    const simpipe *p = (const simpipe *)x;
    for (int s = 0; s < p->pp; s++) p->busy[s] = p->st[s].busy;
    *n = p->pp;
    return p->busy;
}

static const struct pgd_exec_ops simpipe_ops = {
    .name = "simpipe",
    .destroy = simpipe_destroy,
    .kv_create = simpipe_kv_create,
    .kv_destroy = simpipe_kv_destroy,
    .kv_op = simpipe_kv_op,
    .submit = simpipe_submit,
    .wait = simpipe_wait,
    .stage_busy = simpipe_stage_busy,
};

pgd_status pgd_exec_simpipe_create(const pgd_exec_config *cfg, pgd_backend *b, pgd_exec **out) {
    *out = NULL;
    const pgd_parallel_config *par = &cfg->parallel;
    int tp = par->tp > 0 ? par->tp : 1, pp = par->pp > 0 ? par->pp : 1;
    int layers[64];
    if (pgd_exec_parse_stage_layers(par->stage_layers, pp, layers) < 0)
        return pgd_error(PGD_ERR_INVALID, "parallel layout: stage_layers '%s' must list %d positive layer counts "
                         "separated by commas", par->stage_layers, pp);
    pgd_clock *engine_clock = pgd_backend_clock(b);
    if (!engine_clock) return pgd_error(PGD_ERR_INVALID, "sim pipeline: the driver backend has no virtual clock");
    const char *dev = "?"; /* the driver's preset: its links price the transfers and collectives */
    pgd_backend_control(b, "device", &dev);
    simpipe *p = calloc(1, sizeof *p);
    if (!p) return pgd_error(PGD_ERR_OOM, "sim pipeline: out of memory");
    pgd_exec *x = &p->base;
    x->ops = &simpipe_ops;
    x->max_in_flight = pp;
    p->tp = tp;
    p->pp = pp;
    const char *mbs = getenv("PAGODA_PP_MICROBATCHES");
    p->microbatches = mbs && atoi(mbs) > 0 ? atoi(mbs) : 0;
    p->links = b;
    pgd_backend_link_cost probe = {.op = "send", .ranks = 2};
    pgd_status st = PGD_OK;
    if (pgd_backend_control(b, "link_seconds", &probe) != PGD_OK)
        st = pgd_error(PGD_ERR_INVALID,
                       "sim pipeline: device %s has no device-to-device link for stage-to-stage transfers", dev);
    if (st == PGD_OK && (!(p->st = calloc((size_t)pp, sizeof *p->st)) ||
                         !(p->slots = calloc((size_t)pp, sizeof *p->slots)) ||
                         !(p->busy = calloc((size_t)pp, sizeof *p->busy))))
        st = pgd_error(PGD_ERR_OOM, "sim pipeline: out of memory");
    for (int s = 0; st == PGD_OK && s < pp; s++) {
        stage *g = &p->st[s];
        st = pgd_backend_create(&cfg->backend, &g->b); /* with its own clock */
        if (st == PGD_OK) st = pgd_comm_sim_create(tp * pp, g->b, &g->world);
        if (st == PGD_OK && tp > 1) st = pgd_comm_sim_create(tp, g->b, &g->tp);
        pgd_model req = {0};
        req.req_tp = tp;
        req.req_tp_rank = 0;
        req.req_pp = pp;
        req.req_pp_rank = s;
        memcpy(req.req_stage_layers, layers, sizeof layers);
        pgd_model_load_opts mo = cfg->load;
        if (st == PGD_OK) st = pgd_model_load_part(cfg->model, &mo, g->b, &req, &g->m);
    }
    if (st != PGD_OK) {
        simpipe_destroy(x);
        return st;
    }
    x->cfg = p->st[0].m->cfg;
    x->format = pgd_model_get_format(p->st[0].m);
    x->tok = pgd_model_tokenizer(p->st[0].m);
    x->driver = 1;
    x->computes = 0;
    x->clock = engine_clock;
    x->acct = p->st[0].b;
    int n = snprintf(x->desc, sizeof x->desc, "tp %d x pp %d over sim (a clock per stage); layers", tp, pp);
    for (int s = 0; s < pp && n > 0 && (size_t)n < sizeof x->desc; s++)
        n += snprintf(x->desc + n, sizeof x->desc - (size_t)n, "%s%d-%d", s ? ", " : " ", p->st[s].m->sh.layer_begin,
                      p->st[s].m->sh.layer_end - 1);
    *out = x;
    return PGD_OK;
}
