/* dist.c - a model split over tp x pp ranks (tensor and pipeline parallel).
 *
 * Rank r is tensor rank r % tp of pipeline stage r / tp and holds that part
 * of the weights (model_impl.h pgd_shard) and of the KV cache (its layers,
 * its KV heads; block ids are the same everywhere because one KV manager,
 * on the driver, decides them). Rank 0 is the driver: the engine runs there
 * and every model or cache operation it makes becomes a command:
 *
 *   driver                         every rank (driver included)
 *   broadcast header (+ payload)   -> run the command on its own part
 *
 * Commands: FORWARD (the batch's tokens, query starts, lengths, block
 * tables), KV_CREATE, KV_DESTROY, KV_COPY / KV_SWAP_OUT / KV_SWAP_IN (block
 * pairs), KV_HOST (swap space), QUIT. The other ranks loop in
 * pgd_model_serve() until QUIT.
 *
 * Forward: a step with enough tokens (PGD_PP_MB_TOKENS per micro-batch) is
 * cut into up to pp micro-batches of whole sequences and about equal token
 * counts (PAGODA_PP_MICROBATCHES=M forces M). Every stage runs them in
 * order, receiving x from the previous stage and sending it on; sends are
 * buffered, so stage 0 starts micro-batch 1 while stage 1 works on
 * micro-batch 0 and the stages overlap within the step. Small decode steps
 * are not split: each micro-batch makes a stage stream its weights again.
 * The last stage's tensor rank 0 sends each micro-batch's logits to the
 * driver. The scheduler sees one step at a time: batches are not kept in
 * flight across steps (vLLM's virtual engines), so a pipeline of decode
 * steps runs its stages one after the other.
 *
 * Transports: on the sim backend one process is tensor rank 0 of tp alike
 * ranks over the sim communicator (collectives cost virtual time, move
 * nothing); comm = threads starts ranks 1.. as threads of this process,
 * each with its own backend (rank_backend); comm = mpi makes each mpirun
 * process one rank; comm = nccl uses NCCL for the tensor data (GPU ranks)
 * and keeps the commands on the bootstrap communicator (MPI when launched
 * by mpirun, else threads).
 *
 * Failure: a rank whose command fails aborts the communicator with its
 * reason; every other rank's pending or next call returns PGD_ERR_COMM with
 * that reason, so the driver reports it and nobody hangs. Test hook:
 * PAGODA_TEST_FAIL_RANK=r makes rank r fail its first forward pass
 * (PAGODA_TEST_FAIL_MODE=exit: the rank's process exits instead, as a
 * crashed rank would). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "model_impl.h"
#include "pagoda/comm.h"
#include "pagoda/log.h"

enum {
    CMD_QUIT = 1,
    CMD_FORWARD,
    CMD_KV_CREATE,
    CMD_KV_DESTROY,
    CMD_KV_OP, /* a = op, b = n */
};

typedef struct cmd_hdr {
    int32_t cmd;
    int32_t a, b, c, d; /* FORWARD: S, T, MB, all_logits; KV_CREATE: block size, blocks */
    int32_t payload;    /* int32 elements that follow */
} cmd_hdr;

typedef struct worker worker;

/* Tokens a pipeline micro-batch needs before a step is split (see exec_forward). */
#define PGD_PP_MB_TOKENS 64

typedef struct pgd_dist {
    pgd_comm *ctrl;   /* every rank, host memory: commands and logits */
    pgd_comm *dworld; /* every rank, backend memory: stage-to-stage activations */
    pgd_comm *dtp;    /* this stage's tensor-parallel group, backend memory (NULL when tp = 1) */
    pgd_comm *ctrl_tp;/* split of ctrl used to make dtp when it is not NCCL */
    int own_dworld;   /* dworld is a separate (NCCL) communicator */
    int rank, size, tp, pp;
    char transport[16];
    pgd_kv_cache *kv; /* this rank's part of the cache */
    int32_t *buf;     /* command payload */
    size_t cap;
    int32_t *qs;      /* micro-batch query starts */
    size_t qs_cap;
    int dead;         /* a command failed: the communicator is aborted */
    int failed_once;  /* test hook fired */
    int microbatches; /* forced micro-batches per step (PAGODA_PP_MICROBATCHES); 0 = by size */
    /* threads transport (driver only) */
    int n_workers;
    worker *workers;
    char layout[160];
} pgd_dist;

struct worker {
    pthread_t thread;
    int started;
    int rank;
    const char *spec;
    pgd_model_load_opts opts;
    pgd_parallel_config par;
    pgd_backend_config bcfg;
    pgd_comm *ctrl;
};

/* ---- helpers ---- */

static pgd_status fail_rank(pgd_dist *d, pgd_status s) {
    if (!d->dead) {
        d->dead = 1;
        if (s != PGD_ERR_COMM)
            pgd_comm_abort(d->ctrl, "tensor rank %d of stage %d: %s", d->rank % d->tp, d->rank / d->tp,
                           pgd_last_error());
    }
    return s;
}

static pgd_status ensure_buf(int32_t **buf, size_t *cap, size_t n) {
    if (n <= *cap) return PGD_OK;
    size_t c = n > 2 * *cap ? n : 2 * *cap;
    int32_t *p = realloc(*buf, c * sizeof(int32_t));
    if (!p) return pgd_error(PGD_ERR_OOM, "parallel: out of memory for a command of %zu ints", n);
    *buf = p;
    *cap = c;
    return PGD_OK;
}

static int parse_stage_layers(const char *s, int pp, int *out) {
    memset(out, 0, sizeof(int) * 64);
    if (!s || !*s) return 0;
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 1024 || n >= 64) return -1;
        out[n++] = (int)v;
        p = end;
        if (*p == ',') p++;
        else if (*p) return -1;
    }
    return n == pp ? n : -1;
}

/* ---- executing commands on this rank ---- */

static pgd_status test_hook(pgd_dist *d) {
    const char *r = getenv("PAGODA_TEST_FAIL_RANK");
    if (!r || d->failed_once || atoi(r) != d->rank) return PGD_OK;
    d->failed_once = 1;
    const char *mode = getenv("PAGODA_TEST_FAIL_MODE");
    if (mode && !strcmp(mode, "exit")) {
        fprintf(stderr, "pagoda: rank %d exits now (PAGODA_TEST_FAIL_MODE=exit)\n", d->rank);
        fflush(stderr);
        _exit(3);
    }
    return pgd_error(PGD_ERR_DEVICE, "injected failure (PAGODA_TEST_FAIL_RANK=%d)", d->rank);
}

/* End of micro-batch mb of M starting at sequence s0: cut where the token
 * count passes (mb + 1) / M of the step's T, leaving a sequence for each
 * later micro-batch. Driver and stages call it alike, so they agree. */
static int mb_end(const int32_t *qs, int S, int T, int M, int mb, int s0) {
    if (mb == M - 1) return S;
    int s1 = s0 + 1;
    long target = (long)T * (mb + 1) / M;
    while (s1 < S - (M - 1 - mb) && qs[s1] < target) s1++;
    return s1;
}

static pgd_status exec_forward(pgd_model *m, const cmd_hdr *h, const int32_t *p, float *logits) {
    pgd_dist *d = m->dist;
    const int S = h->a, T = h->b, MB = h->c, all = h->d;
    const int32_t *tok = p, *qs = p + T, *lens = qs + S + 1, *bt = lens + S;
    PGD_TRY(test_hook(d));
    if (!d->kv) return pgd_error(PGD_ERR_INVALID, "parallel forward: no KV cache was created");
    const pgd_shard *sh = &m->sh;
    /* micro-batches: a forced count, or as many as stages when the step has
     * at least PGD_PP_MB_TOKENS tokens per micro-batch. Splitting a small
     * (memory-bound) decode step only makes each stage stream its weights
     * once per micro-batch: measured on the 2-core CPU, PP 2 decode at batch
     * 8 ran at 255 tok/s with 2 micro-batches and 502 tok/s with 1. */
    int M = 1;
    if (sh->pp > 1) {
        M = d->microbatches ? d->microbatches : T / PGD_PP_MB_TOKENS;
        if (M > sh->pp && !d->microbatches) M = sh->pp;
        if (M > S) M = S;
        if (M < 1) M = 1;
    }
    int deliver = sh->pp_rank == sh->pp - 1 && sh->tp_rank == 0; /* sends or writes the logits */
    PGD_TRY(ensure_buf(&d->qs, &d->qs_cap, (size_t)S + 1));
    const int V = m->cfg.vocab_size;
    for (int mb = 0, s0 = 0; mb < M; mb++) {
        int s1 = mb_end(qs, S, T, M, mb, s0);
        int q0 = qs[s0], ns = s1 - s0, nt = qs[s1] - q0;
        for (int i = 0; i <= ns; i++) d->qs[i] = qs[s0 + i] - q0;
        pgd_batch b = {.num_seqs = ns, .num_tokens = nt, .tokens = tok + q0, .query_start = d->qs,
                       .seq_lens = lens + s0, .block_tables = bt + (size_t)s0 * MB,
                       .max_blocks_per_seq = MB, .all_logits = all};
        size_t row0 = all ? (size_t)q0 : (size_t)s0;
        pgd_pass_io io = {.tp = d->dtp, .world = d->dworld, .prev = sh->pp_rank ? d->rank - sh->tp : -1,
                          .next = sh->pp_rank < sh->pp - 1 ? d->rank + sh->tp : -1,
                          .logits_to = deliver && d->rank != 0 ? 0 : -1, .tag = mb,
                          .ctrl = d->ctrl /* logits go to the driver over the host communicator */};
        PGD_TRY(pgd_model_pass(m, d->kv, &b, d->rank == 0 ? logits + row0 * V : NULL, &io));
        s0 = s1;
    }
    if (d->rank == 0 && !deliver) {
        /* the driver collects each micro-batch's logits from the last stage */
        int src = (sh->pp - 1) * sh->tp;
        for (int mb = 0, s0 = 0; mb < M; mb++) {
            int s1 = mb_end(qs, S, T, M, mb, s0);
            size_t r0 = all ? (size_t)qs[s0] : (size_t)s0, nr = all ? (size_t)(qs[s1] - qs[s0]) : (size_t)(s1 - s0);
            PGD_TRY(pgd_comm_recv(d->ctrl, logits + r0 * V, sizeof(float) * nr * V, src, mb));
            s0 = s1;
        }
    }
    return PGD_OK;
}

static pgd_status exec_kv_create(pgd_model *m, int bs, int nb) {
    pgd_dist *d = m->dist;
    if (d->kv) return pgd_error(PGD_ERR_INVALID, "parallel model: a KV cache exists already (one at a time)");
    pgd_model_config lc = m->cfg; /* this rank's layers and KV heads */
    lc.n_layers = m->sh.layer_end - m->sh.layer_begin;
    lc.n_kv_heads = m->sh.kv_heads;
    return pgd_kv_cache_create(m->backend, &lc, bs, nb, &d->kv);
}

static pgd_status exec_kv_op(pgd_model *m, int op, const int32_t *pairs, int n) {
    pgd_dist *d = m->dist;
    if (!d->kv) return pgd_error(PGD_ERR_INVALID, "parallel model: KV operation without a cache");
    switch (op) {
    case PGD_KV_OP_COPY: return pgd_kv_cache_copy_blocks(d->kv, pairs, n);
    case PGD_KV_OP_SWAP_OUT: return pgd_kv_cache_swap_out(d->kv, pairs, n);
    case PGD_KV_OP_SWAP_IN: return pgd_kv_cache_swap_in(d->kv, pairs, n);
    case PGD_KV_OP_HOST: return pgd_kv_cache_set_host_blocks(d->kv, pairs[0]);
    default: return pgd_error(PGD_ERR_INVALID, "parallel model: unknown KV operation %d", op);
    }
}

static pgd_status exec(pgd_model *m, const cmd_hdr *h, const int32_t *p, float *logits) {
    pgd_dist *d = m->dist;
    switch (h->cmd) {
    case CMD_FORWARD: return exec_forward(m, h, p, logits);
    case CMD_KV_CREATE: return exec_kv_create(m, h->a, h->b);
    case CMD_KV_DESTROY:
        pgd_kv_cache_destroy(d->kv);
        d->kv = NULL;
        return PGD_OK;
    case CMD_KV_OP: return exec_kv_op(m, h->a, p, h->b);
    default: return pgd_error(PGD_ERR_INVALID, "parallel: unknown command %d", h->cmd);
    }
}

/* Driver: send a command to every rank and run it here too. */
static pgd_status command(pgd_model *m, const cmd_hdr *h, const int32_t *payload, float *logits) {
    pgd_dist *d = m->dist;
    if (d->dead)
        return pgd_error(PGD_ERR_COMM, "parallel model: a rank failed earlier; the model cannot run any more");
    pgd_status s = pgd_comm_broadcast(d->ctrl, (void *)h, sizeof *h, 0);
    if (s == PGD_OK && h->payload)
        s = pgd_comm_broadcast(d->ctrl, (void *)payload, sizeof(int32_t) * (size_t)h->payload, 0);
    if (s != PGD_OK) return fail_rank(d, s);
    s = exec(m, h, payload, logits);
    if (s == PGD_OK || s == PGD_ERR_COMM) return s == PGD_OK ? PGD_OK : fail_rank(d, s);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", pgd_last_error());
    fail_rank(d, s);
    return pgd_error(s, "rank 0 (the driver): %s", msg);
}

pgd_status pgd_model_serve(pgd_model *m) {
    if (!m || !m->dist) return pgd_error(PGD_ERR_INVALID, "serve: not a rank of a parallel model");
    pgd_dist *d = m->dist;
    if (d->rank == 0) return pgd_error(PGD_ERR_INVALID, "serve: rank 0 is the driver, not a server");
    for (;;) {
        cmd_hdr h;
        pgd_status s = pgd_comm_broadcast(d->ctrl, &h, sizeof h, 0);
        if (s != PGD_OK) return fail_rank(d, s);
        if (h.cmd == CMD_QUIT) return PGD_OK;
        if (h.payload < 0) return fail_rank(d, pgd_error(PGD_ERR_INVALID, "serve: bad command payload"));
        if ((s = ensure_buf(&d->buf, &d->cap, (size_t)h.payload + 1)) != PGD_OK) return fail_rank(d, s);
        if (h.payload && (s = pgd_comm_broadcast(d->ctrl, d->buf, sizeof(int32_t) * (size_t)h.payload, 0)) != PGD_OK)
            return fail_rank(d, s);
        if ((s = exec(m, &h, d->buf, NULL)) != PGD_OK) return fail_rank(d, s);
    }
}

/* ---- driver entry points ---- */

pgd_status pgd_dist_forward(pgd_model *m, pgd_kv_cache *kv, const pgd_batch *b, float *logits) {
    pgd_dist *d = m->dist;
    (void)kv;
    const int S = b->num_seqs, T = b->num_tokens, MB = b->max_blocks_per_seq;
    size_t n = (size_t)T + 2 * (size_t)S + 1 + (size_t)S * MB;
    PGD_TRY(ensure_buf(&d->buf, &d->cap, n));
    int32_t *p = d->buf;
    memcpy(p, b->tokens, sizeof(int32_t) * T);
    memcpy(p + T, b->query_start, sizeof(int32_t) * (S + 1));
    memcpy(p + T + S + 1, b->seq_lens, sizeof(int32_t) * S);
    memcpy(p + T + 2 * S + 1, b->block_tables, sizeof(int32_t) * (size_t)S * MB);
    cmd_hdr h = {.cmd = CMD_FORWARD, .a = S, .b = T, .c = MB, .d = b->all_logits, .payload = (int32_t)n};
    return command(m, &h, p, logits);
}

pgd_status pgd_dist_kv_create(pgd_model *m, int block_size, int num_blocks, pgd_kv_cache **out) {
    *out = NULL;
    if (block_size <= 0 || block_size > 4096 || num_blocks <= 0)
        return pgd_error(PGD_ERR_INVALID, "kv cache: block size %d / %d blocks out of range", block_size, num_blocks);
    cmd_hdr h = {.cmd = CMD_KV_CREATE, .a = block_size, .b = num_blocks};
    PGD_TRY(command(m, &h, NULL, NULL));
    *out = pgd_kv_cache_wrap(m, block_size, num_blocks);
    if (!*out) return pgd_error(PGD_ERR_OOM, "kv cache: out of memory");
    return PGD_OK;
}

void pgd_dist_kv_release(pgd_model *m) {
    if (!m->dist || m->dist->dead) return;
    cmd_hdr h = {.cmd = CMD_KV_DESTROY};
    (void)command(m, &h, NULL, NULL);
}

pgd_status pgd_dist_kv_op(pgd_model *m, int op, const int32_t *pairs, int n) {
    if (op != PGD_KV_OP_HOST && n <= 0) return PGD_OK;
    cmd_hdr h = {.cmd = CMD_KV_OP, .a = op, .b = n, .payload = op == PGD_KV_OP_HOST ? 1 : 2 * n};
    return command(m, &h, pairs, NULL);
}

/* ---- setup and teardown ---- */

/* Everything one rank does to join: split its tp group, load its part,
 * wait for the others. `ctrl` becomes owned by the model (or is destroyed
 * on failure after aborting). */
static pgd_status join(const char *spec, const pgd_model_load_opts *opts, const pgd_parallel_config *par,
                       pgd_backend *b, pgd_comm *ctrl, const char *transport, pgd_model **out) {
    *out = NULL;
    int tp = par->tp > 0 ? par->tp : 1, pp = par->pp > 0 ? par->pp : 1;
    int rank = pgd_comm_rank(ctrl);
    pgd_model req = {0};
    req.req_tp = tp;
    req.req_tp_rank = rank % tp;
    req.req_pp = pp;
    req.req_pp_rank = rank / tp;
    pgd_status s = PGD_OK;
    if (parse_stage_layers(par->stage_layers, pp, req.req_stage_layers) < 0)
        s = pgd_error(PGD_ERR_INVALID, "parallel layout: stage_layers '%s' must list %d positive layer counts "
                      "separated by commas", par->stage_layers, pp);
    pgd_dist *d = calloc(1, sizeof *d);
    if (!d && s == PGD_OK) s = pgd_error(PGD_ERR_OOM, "parallel: out of memory");
    if (d) {
        d->ctrl = d->dworld = ctrl;
        d->rank = rank;
        d->size = pgd_comm_size(ctrl);
        d->tp = tp;
        d->pp = pp;
        const char *mbs = getenv("PAGODA_PP_MICROBATCHES");
        d->microbatches = mbs && atoi(mbs) > 0 ? atoi(mbs) : 0;
        snprintf(d->transport, sizeof d->transport, "%s", transport);
    }
    pgd_comm *tpc = NULL;
    if (s == PGD_OK && tp > 1) s = pgd_comm_split(ctrl, rank / tp, rank % tp, &tpc);
    pgd_model *m = NULL;
    if (s == PGD_OK) s = pgd_model_load_part(spec, opts, b, &req, &m);
    if (s == PGD_OK && !strcmp(transport, "nccl")) {
        /* tensor data over NCCL; activations too, commands and logits stay on ctrl */
        pgd_comm *nw = NULL, *nt = NULL;
        /* one GPU per rank: the thread's rank, or the process's rank on its host */
        const char *lr = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
        int device = !strcmp(d->transport, "nccl") && pgd_comm_mpi_world_size() > 1 && lr ? atoi(lr) : rank;
        s = pgd_comm_nccl_create(ctrl, device, &nw);
        if (s == PGD_OK && tp > 1) s = pgd_comm_split(nw, rank / tp, rank % tp, &nt);
        if (s == PGD_OK) {
            d->dworld = nw;
            d->own_dworld = 1;
            d->ctrl_tp = tpc;
            tpc = nt;
        } else {
            pgd_comm_destroy(nt);
            pgd_comm_destroy(nw);
        }
    }
    if (s != PGD_OK) {
        if (s != PGD_ERR_COMM)
            pgd_comm_abort(ctrl, "tensor rank %d of stage %d could not load its part of %s: %s", rank % tp,
                           rank / tp, spec, pgd_last_error());
        pgd_model_destroy(m);
        pgd_comm_destroy(tpc);
        free(d);
        return s;
    }
    d->dtp = tpc;
    m->dist = d;
    const pgd_shard *sh = &m->sh;
    snprintf(d->layout, sizeof d->layout, "tp %d x pp %d over %s; rank %d: layers %d-%d, heads %d-%d, kv heads %d-%d",
             tp, pp, transport, rank, sh->layer_begin, sh->layer_end - 1, sh->head0, sh->head0 + sh->heads - 1,
             sh->kv_head0, sh->kv_head0 + sh->kv_heads - 1);
    if ((s = pgd_comm_barrier(ctrl)) != PGD_OK) {
        d->dead = 1;
        *out = m; /* caller destroys */
        return s;
    }
    *out = m;
    return PGD_OK;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    pgd_backend *b = NULL;
    pgd_model *m = NULL;
    pgd_status s = pgd_backend_create(&w->bcfg, &b);
    if (s != PGD_OK) {
        pgd_comm_abort(w->ctrl, "rank %d could not create its %s backend: %s", w->rank,
                       w->bcfg.name ? w->bcfg.name : "cpu", pgd_last_error());
        pgd_comm_destroy(w->ctrl);
        return NULL;
    }
    s = join(w->spec, &w->opts, &w->par, b, w->ctrl, "threads", &m);
    if (s == PGD_OK) s = pgd_model_serve(m);
    if (m) pgd_model_destroy(m); /* destroys its communicators */
    else pgd_comm_destroy(w->ctrl);
    pgd_backend_destroy(b);
    return NULL;
}

static pgd_status check_layout(const pgd_parallel_config *par, int *tp, int *pp) {
    *tp = par->tp > 0 ? par->tp : 1;
    *pp = par->pp > 0 ? par->pp : 1;
    if (*tp > 64 || *pp > 64 || *tp * *pp > 256)
        return pgd_error(PGD_ERR_INVALID, "parallel layout: tp %d x pp %d is too large (tp, pp <= 64, 256 ranks)",
                         *tp, *pp);
    return PGD_OK;
}

pgd_status pgd_dist_load(const char *spec, const pgd_model_load_opts *opts, pgd_backend *b, pgd_model **out) {
    const pgd_parallel_config *par = opts->parallel;
    int tp, pp;
    PGD_TRY(check_layout(par, &tp, &pp));
    const char *kind = par->comm && *par->comm ? par->comm : "threads";
    int n = tp * pp;
    pgd_model_load_opts sub = *opts;
    sub.parallel = NULL;
    if (!pgd_backend_is_virtual(b) &&
        (!strcmp(kind, "mpi") || (!strcmp(kind, "nccl") && pgd_comm_mpi_world_size() > 1))) {
        int ws = pgd_comm_mpi_world_size();
        if (ws != n) /* checked before MPI is initialised: no MPI state for a lone process */
            return pgd_error(PGD_ERR_INVALID, "parallel layout: %s tp %d x pp %d needs %d MPI ranks, this job has %d "
                             "(start it with mpirun -np %d)", kind, tp, pp, n, ws, n);
        pgd_comm *world = NULL;
        PGD_TRY(pgd_comm_mpi_create(&world));
        if (pgd_comm_size(world) != n) {
            pgd_status s = pgd_error(PGD_ERR_INVALID, "parallel layout: mpirun started %d ranks but tp %d x pp %d "
                                     "needs %d (run mpirun -np %d)", pgd_comm_size(world), tp, pp, n, n);
            pgd_comm_destroy(world);
            return s;
        }
        pgd_model *m = NULL;
        pgd_status s = join(spec, &sub, par, b, world, kind, &m);
        if (s != PGD_OK) {
            if (m) pgd_model_destroy(m); /* destroys world too */
            else pgd_comm_destroy(world);
            return s;
        }
        *out = m;
        return PGD_OK;
    }
    if (pgd_backend_is_virtual(b)) {
        /* the simulator: this process is tensor rank 0 of tp alike ranks */
        if (pp > 1)
            return pgd_error(PGD_ERR_UNSUPPORTED, "parallel layout: the sim backend simulates tensor parallelism "
                             "only (pp %d asks for pipeline stages)", pp);
        pgd_comm *world = NULL;
        PGD_TRY(pgd_comm_sim_create(tp, pgd_backend_clock(b), par->sim_device, &world));
        pgd_model *m = NULL;
        pgd_status s = join(spec, &sub, par, b, world, "sim", &m);
        if (s != PGD_OK) {
            if (m) pgd_model_destroy(m);
            else pgd_comm_destroy(world);
            return s;
        }
        *out = m;
        return PGD_OK;
    }
    if (strcmp(kind, "threads") && strcmp(kind, "nccl"))
        return pgd_error(PGD_ERR_INVALID, "parallel layout: unknown communicator '%s' (threads, mpi or nccl)", kind);
    if (n == 1 && !strcmp(kind, "threads")) return pgd_model_load_part(spec, &sub, b, NULL, out);
    /* threads: ranks 1..n-1 are threads with their own backends */
    pgd_comm **comms = calloc((size_t)n, sizeof *comms);
    worker *ws = calloc((size_t)n, sizeof *ws);
    if (!comms || !ws) {
        free(comms);
        free(ws);
        return pgd_error(PGD_ERR_OOM, "parallel: out of memory");
    }
    pgd_status s = pgd_comm_threads_create(n, comms);
    if (s != PGD_OK) {
        free(comms);
        free(ws);
        return s;
    }
    pgd_backend_config bc = {.name = "cpu"};
    if (opts->rank_backend) bc = *opts->rank_backend;
    for (int r = 1; r < n; r++) {
        worker *w = &ws[r];
        w->rank = r;
        w->spec = spec;
        w->opts = sub;
        w->par = *par;
        w->bcfg = bc;
        if (par->pin) {
            w->bcfg.pin_rank = r + 1;
            w->bcfg.pin_ranks = n;
        }
        if (!strcmp(kind, "nccl")) w->bcfg.device = r;
        w->ctrl = comms[r];
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            pgd_comm_abort(comms[0], "parallel: cannot start the thread of rank %d", r);
            for (int q = r; q < n; q++) pgd_comm_destroy(comms[q]);
            break;
        }
        w->started = 1;
    }
    pgd_model *m = NULL;
    s = join(spec, &sub, par, b, comms[0], kind, &m);
    if (s != PGD_OK) {
        for (int r = 1; r < n; r++)
            if (ws[r].started) pthread_join(ws[r].thread, NULL);
        free(ws);
        if (m) {
            m->dist->n_workers = 0;
            pgd_model_destroy(m); /* destroys comms[0] too */
        } else {
            pgd_comm_destroy(comms[0]);
        }
        free(comms);
        return s;
    }
    m->dist->workers = ws;
    m->dist->n_workers = n;
    free(comms);
    *out = m;
    return PGD_OK;
}

void pgd_dist_destroy(pgd_model *m) {
    pgd_dist *d = m->dist;
    if (d->rank == 0 && !d->dead) {
        if (d->kv) pgd_dist_kv_release(m);
        cmd_hdr h = {.cmd = CMD_QUIT};
        (void)pgd_comm_broadcast(d->ctrl, &h, sizeof h, 0);
    }
    for (int r = 1; r < d->n_workers; r++)
        if (d->workers[r].started) pthread_join(d->workers[r].thread, NULL);
    free(d->workers);
    pgd_kv_cache_destroy(d->kv);
    pgd_comm_destroy(d->dtp);
    pgd_comm_destroy(d->ctrl_tp);
    if (d->own_dworld) pgd_comm_destroy(d->dworld);
    pgd_comm_destroy(d->ctrl);
    free(d->buf);
    free(d->qs);
    free(d);
    m->dist = NULL;
}

int pgd_model_is_driver(const pgd_model *m) { return !m->dist || m->dist->rank == 0; }

const char *pgd_model_layout_str(const pgd_model *m) {
    return m->dist ? m->dist->layout : "tp 1 x pp 1 (one rank)";
}

double pgd_model_comm_seconds(const pgd_model *m) {
    if (!m->dist) return 0;
    pgd_dist *d = m->dist;
    double t = pgd_comm_seconds(d->ctrl);
    if (d->dtp) t += pgd_comm_seconds(d->dtp);
    if (d->own_dworld) t += pgd_comm_seconds(d->dworld);
    return t;
}
