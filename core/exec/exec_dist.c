/* exec_dist.c - the executor of a model split over tp x pp ranks (tensor
 * and pipeline parallel).
 *
 * Rank r is tensor rank r % tp of pipeline stage r / tp and holds that part
 * of the weights (model_impl.h pgd_shard) and of the KV cache (its layers,
 * its KV heads; block ids are the same everywhere because one KV manager,
 * on the driver, decides them). Rank 0 is the driver: the engine runs
 * there, and every executor call becomes a COMMAND that rank 0 sends to
 * every other rank (point to point, buffered: the driver never waits for a
 * busy stage to take it) and runs on its own part; each rank runs the
 * commands in the order sent. Commands: FORWARD (the batch's tokens, query
 * starts, lengths, block tables), KV_CREATE, KV_OP (block pairs), KV_IO (the
 * P/D hand-off: every rank reads or writes its layers' and KV heads' part of
 * the listed blocks, gathered from or scattered to the driver over the host
 * communicator), QUIT. The
 * other ranks loop in serve() until QUIT.
 *
 * Batches in flight (a pipeline that stays full): submit sends FORWARD,
 * runs stage 0's part on the driver and returns once its activations are
 * sent on (buffered), so the driver submits the next batch while stage 1
 * works on this one; wait receives a batch's logits from the last stage's
 * tensor rank 0 (message order per channel keeps the batches apart). With
 * pp stages, pp batches are in flight (pp + 1 with async). With pp = 1 the
 * driver computes with its tensor peers and has the logits when submit
 * returns.
 *
 * Micro-batches: a step with enough tokens (PGD_PP_MB_TOKENS per
 * micro-batch) is also cut into up to pp micro-batches of whole sequences
 * and about equal token counts (PAGODA_PP_MICROBATCHES=M forces M), so the
 * stages overlap within a long prefill step too. Small decode steps are
 * not split: each micro-batch makes a stage stream its weights again.
 *
 * Transports: on the sim backend one process is tensor rank 0 of tp alike
 * ranks over the sim communicator (collectives cost virtual time, move
 * nothing; no commands are sent; pp > 1 on the sim is exec_simpipe.c's); comm = threads starts ranks 1.. as
 * threads of this process, each with its own backend; comm = mpi makes
 * each mpirun process one rank; comm = nccl uses NCCL for the tensor data
 * (GPU ranks) and keeps the commands on the bootstrap communicator (MPI
 * when launched by mpirun, else threads).
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
#include <unistd.h>

#include "exec_impl.h"
#include "model/model_impl.h"
#include "pagoda/comm.h"
#include "pagoda/parallel.h"

enum { CMD_QUIT = 1, CMD_FORWARD, CMD_KV_CREATE, CMD_KV_DESTROY, CMD_KV_OP, CMD_KV_IO };
#define CMD_TAG 30000 /* commands from the driver; micro-batch tags are small */
#define KVIO_TAG 30001 /* KV_IO: a rank's part of the blocks, to or from the driver */

typedef struct cmd_hdr {
    int32_t cmd;
    int32_t a, b, c, d; /* FORWARD: S, T, MB, all_logits; KV_CREATE: block size, blocks, host blocks; KV_OP: op, n */
    int32_t ticket;
    int32_t payload;    /* int32 elements that follow */
} cmd_hdr;

typedef struct worker worker;

/* A batch in flight on the driver. */
typedef struct dslot {
    int ticket, S, T, all, M;
    int32_t *qs; /* the batch's query starts (micro-batch rows) */
    size_t qs_cap;
    float *logits;
    size_t cap;
    int ready;   /* logits in place (this rank delivered them) */
} dslot;

typedef struct dist {
    pgd_exec base;
    pgd_model *m;     /* this rank's part */
    pgd_kv_cache *kv; /* this rank's part of the cache */
    pgd_comm *ctrl;   /* every rank, host memory: commands and logits */
    pgd_comm *dworld; /* every rank, backend memory: stage-to-stage activations */
    pgd_comm *dtp;    /* this stage's tensor-parallel group, backend memory (NULL when tp = 1) */
    pgd_comm *ctrl_tp;/* split of ctrl used to make dtp when it is not NCCL */
    int own_dworld;   /* dworld is a separate (NCCL) communicator */
    int rank, size, tp, pp, sim;
    char transport[16];
    int32_t *buf;     /* command payload */
    size_t cap;
    int32_t *qs;      /* micro-batch query starts */
    size_t qs_cap;
    int dead;         /* a command failed: the communicator is aborted */
    int failed_once;  /* test hook fired */
    int microbatches; /* forced micro-batches per step (PAGODA_PP_MICROBATCHES); 0 = by size */
    dslot *slots;     /* driver: max_in_flight of them */
    int n_workers;    /* threads transport (driver only) */
    worker *workers;
    void *io_host; /* driver: the KV_IO command's whole-model host buffer */
    char *io_buf;  /* a rank's part of a KV_IO */
    size_t io_cap;
} dist;

struct worker {
    pthread_t thread;
    int started;
    int rank;
    const pgd_exec_config *cfg;
    pgd_backend_config bcfg;
    pgd_comm *ctrl;
};

static dist *D(pgd_exec *x) { return (dist *)x; }

/* ---- helpers ---- */

static pgd_status fail_rank(dist *d, pgd_status s) {
    if (!d->dead) {
        d->dead = 1;
        if (s != PGD_ERR_COMM)
            pgd_comm_abort(d->ctrl, "tensor rank %d of stage %d: %s", d->rank % d->tp, d->rank / d->tp,
                           pgd_last_error());
    }
    return s;
}

static pgd_status grow_i32(int32_t **buf, size_t *cap, size_t n) {
    if (n <= *cap) return PGD_OK;
    size_t c = n > 2 * *cap ? n : 2 * *cap;
    int32_t *p = realloc(*buf, c * sizeof(int32_t));
    if (!p) return pgd_error(PGD_ERR_OOM, "parallel: out of memory for a command of %zu ints", n);
    *buf = p;
    *cap = c;
    return PGD_OK;
}

static pgd_status test_hook(dist *d) {
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

static int microbatches_of(const dist *d, int S, int T) { return pgd_exec_microbatches(d->pp, d->microbatches, S, T); }

/* ---- executing commands on this rank ---- */

/* This rank's part of a forward pass; on the driver `logits` is the slot's
 * buffer (written when the driver delivers them itself). */
static pgd_status exec_forward(dist *d, const cmd_hdr *h, const int32_t *p, float *logits) {
    const int S = h->a, T = h->b, MB = h->c, all = h->d;
    pgd_batch whole = pgd_exec_unpack_batch(p, S, T, MB, all);
    const int32_t *tok = whole.tokens, *qs = whole.query_start, *lens = whole.seq_lens, *bt = whole.block_tables;
    PGD_TRY(test_hook(d));
    if (!d->kv) return pgd_error(PGD_ERR_INVALID, "parallel forward: no KV cache was created");
    const pgd_shard *sh = &d->m->sh;
    int M = microbatches_of(d, S, T);
    int deliver = sh->pp_rank == sh->pp - 1 && sh->tp_rank == 0; /* sends or writes the logits */
    PGD_TRY(grow_i32(&d->qs, &d->qs_cap, (size_t)S + 1));
    const int V = d->m->cfg.vocab_size;
    for (int mb = 0, s0 = 0; mb < M; mb++) {
        int s1 = pgd_exec_mb_end(qs, S, T, M, mb, s0);
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
        PGD_TRY(pgd_model_pass(d->m, d->kv, &b, d->rank == 0 ? logits + row0 * V : NULL, &io));
        s0 = s1;
    }
    return PGD_OK;
}

static pgd_status exec_kv_create(dist *d, int bs, int nb, int nh) {
    if (d->kv) return pgd_error(PGD_ERR_INVALID, "parallel model: a KV cache exists already (one at a time)");
    pgd_model_config lc = d->m->cfg; /* this rank's layers and KV heads */
    lc.n_layers = d->m->sh.layer_end - d->m->sh.layer_begin;
    lc.n_kv_heads = d->m->sh.kv_heads;
    PGD_TRY(pgd_kv_cache_create(d->m->backend, &lc, bs, nb, &d->kv));
    return pgd_kv_cache_set_host_blocks(d->kv, nh);
}

static pgd_status exec_kv_op(dist *d, int op, const int32_t *pairs, int n) {
    if (!d->kv) return pgd_error(PGD_ERR_INVALID, "parallel model: KV operation without a cache");
    switch (op) {
    case PGD_EXEC_KV_COPY: return pgd_kv_cache_copy_blocks(d->kv, pairs, n);
    case PGD_EXEC_KV_SWAP_OUT: return pgd_kv_cache_swap_out(d->kv, pairs, n);
    case PGD_EXEC_KV_SWAP_IN: return pgd_kv_cache_swap_in(d->kv, pairs, n);
    default: return pgd_error(PGD_ERR_INVALID, "parallel model: unknown KV operation %d", op);
    }
}

/* A rank's part of n blocks (every block: its layers' K then V, its KV heads)
 * and where each piece goes in the whole-model layout of pgd_exec_kv_io. */
typedef struct io_part {
    int layer_begin, layers, kv_head0, kv_heads;
} io_part;

static io_part part_of_rank(const dist *d, int r) {
    pgd_model tmp = *d->m; /* the layout of rank r: the same shard rule as its load */
    (void)pgd_model_shard_init(&tmp, d->tp, r % d->tp, d->pp, r / d->tp,
                               d->m->req_stage_layers[0] ? d->m->req_stage_layers : NULL);
    const pgd_shard *sh = &tmp.sh;
    return (io_part){sh->layer_begin, sh->layer_end - sh->layer_begin, sh->kv_head0, sh->kv_heads};
}

/* Copy between a rank's part (packed) and the whole layout (to_whole: part -> whole). */
static void io_scatter(const pgd_model_config *c, int bs, io_part pt, int n, char *part, char *whole, int to_whole) {
    size_t head = (size_t)bs * pgd_kv_row_bytes(c->kv_dtype, c->head_dim), chunk = head * c->n_kv_heads;
    size_t pchunk = head * pt.kv_heads;
    for (int i = 0; i < n; i++)
        for (int l = 0; l < 2 * pt.layers; l++) {
            char *w = whole + ((size_t)i * 2 * c->n_layers + 2 * pt.layer_begin + l) * chunk + pt.kv_head0 * head;
            char *q = part + ((size_t)i * 2 * pt.layers + l) * pchunk;
            if (to_whole) memcpy(w, q, pchunk);
            else memcpy(q, w, pchunk);
        }
}

/* KV_IO on every rank: a = direction, b = n blocks (payload). The driver
 * gathers (READ) or scatters (WRITE) the ranks' parts over ctrl. */
static pgd_status exec_kv_io(dist *d, int dir, const int32_t *blocks, int n) {
    if (!d->kv) return pgd_error(PGD_ERR_INVALID, "parallel model: KV transfer without a cache");
    int bs = pgd_kv_cache_block_size(d->kv);
    io_part mine = part_of_rank(d, d->rank);
    size_t bytes = (size_t)n * pgd_kv_cache_io_block_bytes(d->kv);
    if (bytes > d->io_cap) {
        char *p = realloc(d->io_buf, bytes);
        if (!p) return pgd_error(PGD_ERR_OOM, "parallel model: out of memory for %zu bytes of KV", bytes);
        d->io_buf = p;
        d->io_cap = bytes;
    }
    const pgd_model_config *c = &d->base.cfg;
    if (d->rank != 0) { /* a rank: its part to or from the driver */
        if (dir == PGD_EXEC_KV_READ) {
            PGD_TRY(pgd_kv_cache_read_blocks(d->kv, blocks, n, d->io_buf));
            return pgd_comm_send(d->ctrl, d->io_buf, bytes, 0, KVIO_TAG);
        }
        PGD_TRY(pgd_comm_recv(d->ctrl, d->io_buf, bytes, 0, KVIO_TAG));
        return pgd_kv_cache_write_blocks(d->kv, blocks, n, d->io_buf);
    }
    char *whole = d->io_host;
    if (dir == PGD_EXEC_KV_WRITE) {
        for (int r = 1; r < d->size; r++) { /* each rank's part, then the driver's own */
            io_part pt = part_of_rank(d, r);
            size_t rb = (size_t)n * 2 * pt.layers * pt.kv_heads * bs * pgd_kv_row_bytes(c->kv_dtype, c->head_dim);
            char *tmp = malloc(rb ? rb : 1);
            if (!tmp) return pgd_error(PGD_ERR_OOM, "parallel model: out of memory for %zu bytes of KV", rb);
            io_scatter(c, bs, pt, n, tmp, whole, 0);
            pgd_status s = pgd_comm_send(d->ctrl, tmp, rb, r, KVIO_TAG);
            free(tmp);
            PGD_TRY(s);
        }
        io_scatter(c, bs, mine, n, d->io_buf, whole, 0);
        return pgd_kv_cache_write_blocks(d->kv, blocks, n, d->io_buf);
    }
    PGD_TRY(pgd_kv_cache_read_blocks(d->kv, blocks, n, d->io_buf));
    io_scatter(c, bs, mine, n, d->io_buf, whole, 1);
    for (int r = 1; r < d->size; r++) {
        io_part pt = part_of_rank(d, r);
        size_t rb = (size_t)n * 2 * pt.layers * pt.kv_heads * bs * pgd_kv_row_bytes(c->kv_dtype, c->head_dim);
        char *tmp = malloc(rb ? rb : 1);
        if (!tmp) return pgd_error(PGD_ERR_OOM, "parallel model: out of memory for %zu bytes of KV", rb);
        pgd_status s = pgd_comm_recv(d->ctrl, tmp, rb, r, KVIO_TAG);
        if (s == PGD_OK) io_scatter(c, bs, pt, n, tmp, whole, 1);
        free(tmp);
        PGD_TRY(s);
    }
    return PGD_OK;
}

static pgd_status exec(dist *d, const cmd_hdr *h, const int32_t *p, float *logits) {
    switch (h->cmd) {
    case CMD_FORWARD: return exec_forward(d, h, p, logits);
    case CMD_KV_CREATE: return exec_kv_create(d, h->a, h->b, h->c);
    case CMD_KV_DESTROY:
        pgd_kv_cache_destroy(d->kv);
        d->kv = NULL;
        return PGD_OK;
    case CMD_KV_OP: return exec_kv_op(d, h->a, p, h->b);
    case CMD_KV_IO: return exec_kv_io(d, h->a, p, h->b);
    default: return pgd_error(PGD_ERR_INVALID, "parallel: unknown command %d", h->cmd);
    }
}

/* Driver: send a command to every rank (buffered), then run it here. */
static pgd_status command(dist *d, const cmd_hdr *h, const int32_t *payload, float *logits) {
    if (d->dead)
        return pgd_error(PGD_ERR_COMM, "parallel model: a rank failed earlier; the model cannot run any more");
    pgd_status s = PGD_OK;
    for (int r = 1; r < d->size && !d->sim && s == PGD_OK; r++) {
        s = pgd_comm_send(d->ctrl, h, sizeof *h, r, CMD_TAG);
        if (s == PGD_OK && h->payload)
            s = pgd_comm_send(d->ctrl, payload, sizeof(int32_t) * (size_t)h->payload, r, CMD_TAG);
    }
    if (s != PGD_OK) return fail_rank(d, s);
    s = exec(d, h, payload, logits);
    if (s == PGD_OK || s == PGD_ERR_COMM) return s == PGD_OK ? PGD_OK : fail_rank(d, s);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", pgd_last_error());
    fail_rank(d, s);
    return pgd_error(s, "rank 0 (the driver): %s", msg);
}

static pgd_status dist_serve(pgd_exec *x) {
    dist *d = D(x);
    for (;;) {
        cmd_hdr h;
        pgd_status s = pgd_comm_recv(d->ctrl, &h, sizeof h, 0, CMD_TAG);
        if (s != PGD_OK) return fail_rank(d, s);
        if (h.cmd == CMD_QUIT) return PGD_OK;
        if (h.payload < 0) return fail_rank(d, pgd_error(PGD_ERR_INVALID, "serve: bad command payload"));
        if ((s = grow_i32(&d->buf, &d->cap, (size_t)h.payload + 1)) != PGD_OK) return fail_rank(d, s);
        if (h.payload && (s = pgd_comm_recv(d->ctrl, d->buf, sizeof(int32_t) * (size_t)h.payload, 0, CMD_TAG)) != PGD_OK)
            return fail_rank(d, s);
        if ((s = exec(d, &h, d->buf, NULL)) != PGD_OK) return fail_rank(d, s);
    }
}

/* ---- driver ops ---- */

static pgd_status dist_kv_create(pgd_exec *x, int block_size, int num_blocks, int num_host_blocks) {
    cmd_hdr h = {.cmd = CMD_KV_CREATE, .a = block_size, .b = num_blocks, .c = num_host_blocks};
    return command(D(x), &h, NULL, NULL);
}

static void dist_kv_destroy(pgd_exec *x) {
    dist *d = D(x);
    if (d->dead) return;
    cmd_hdr h = {.cmd = CMD_KV_DESTROY};
    (void)command(d, &h, NULL, NULL);
}

static pgd_status dist_kv_op(pgd_exec *x, int op, const int32_t *pairs, int n) {
    cmd_hdr h = {.cmd = CMD_KV_OP, .a = op, .b = n, .payload = 2 * n};
    return command(D(x), &h, pairs, NULL);
}

static pgd_status dist_kv_io(pgd_exec *x, int dir, const int32_t *blocks, int n, void *host) {
    dist *d = D(x);
    if (d->sim) return PGD_OK; /* no data (pgd_exec_kv_io returns before this) */
    cmd_hdr h = {.cmd = CMD_KV_IO, .a = dir, .b = n, .payload = n};
    d->io_host = host;
    pgd_status s = command(d, &h, blocks, NULL);
    d->io_host = NULL;
    return s;
}

static pgd_status dist_submit(pgd_exec *x, const pgd_batch *b, int ticket) {
    dist *d = D(x);
    dslot *sl = &d->slots[ticket % x->max_in_flight];
    const int S = b->num_seqs, T = b->num_tokens;
    size_t n = 0, rows = b->all_logits ? (size_t)T : (size_t)S, floats = rows * (size_t)x->cfg.vocab_size;
    PGD_TRY(pgd_exec_pack_batch(b, &d->buf, &d->cap, &n));
    if (floats > sl->cap) {
        float *p = realloc(sl->logits, floats * sizeof(float));
        if (!p) return pgd_error(PGD_ERR_OOM, "parallel: out of memory for logits (%zu floats)", floats);
        sl->logits = p;
        sl->cap = floats;
    }
    PGD_TRY(grow_i32(&sl->qs, &sl->qs_cap, (size_t)S + 1));
    memcpy(sl->qs, b->query_start, sizeof(int32_t) * (size_t)(S + 1));
    sl->ticket = ticket, sl->S = S, sl->T = T, sl->all = b->all_logits, sl->M = microbatches_of(d, S, T);
    sl->ready = d->m->sh.pp == 1; /* the driver is the last stage's tensor rank 0 */
    cmd_hdr h = {.cmd = CMD_FORWARD, .a = S, .b = T, .c = b->max_blocks_per_seq, .d = b->all_logits,
                 .ticket = ticket, .payload = (int32_t)n};
    return command(d, &h, d->buf, sl->logits);
}

static pgd_status dist_wait(pgd_exec *x, int ticket, const float **logits) {
    dist *d = D(x);
    dslot *sl = &d->slots[ticket % x->max_in_flight];
    if (sl->ticket != ticket) return pgd_error(PGD_ERR_INVALID, "parallel: batch %d was not submitted", ticket);
    if (!sl->ready) { /* each micro-batch's logits from the last stage */
        const int V = x->cfg.vocab_size, src = (d->pp - 1) * d->tp;
        for (int mb = 0, s0 = 0; mb < sl->M; mb++) {
            int s1 = pgd_exec_mb_end(sl->qs, sl->S, sl->T, sl->M, mb, s0);
            size_t r0 = sl->all ? (size_t)sl->qs[s0] : (size_t)s0,
                   nr = sl->all ? (size_t)(sl->qs[s1] - sl->qs[s0]) : (size_t)(s1 - s0);
            pgd_status s = pgd_comm_recv(d->ctrl, sl->logits + r0 * V, sizeof(float) * nr * V, src, mb);
            if (s != PGD_OK) return fail_rank(d, s);
            s0 = s1;
        }
        sl->ready = 1;
    }
    *logits = sl->logits;
    return PGD_OK;
}

static double dist_comm_seconds(const pgd_exec *x) {
    const dist *d = (const dist *)x;
    double t = pgd_comm_seconds(d->ctrl);
    if (d->dtp) t += pgd_comm_seconds(d->dtp);
    if (d->own_dworld) t += pgd_comm_seconds(d->dworld);
    return t;
}

/* Tear down this rank's state (the driver first tells the others to quit). */
static void dist_free(dist *d) {
    if (d->base.driver && !d->dead && !d->sim) {
        cmd_hdr h = {.cmd = CMD_QUIT};
        for (int r = 1; r < d->size; r++) (void)pgd_comm_send(d->ctrl, &h, sizeof h, r, CMD_TAG);
    }
    for (int r = 1; r < d->n_workers; r++)
        if (d->workers[r].started) pthread_join(d->workers[r].thread, NULL);
    free(d->workers);
    pgd_kv_cache_destroy(d->kv);
    pgd_model_destroy(d->m);
    pgd_comm_destroy(d->dtp);
    pgd_comm_destroy(d->ctrl_tp);
    if (d->own_dworld) pgd_comm_destroy(d->dworld);
    pgd_comm_destroy(d->ctrl);
    for (int i = 0; d->slots && i < d->base.max_in_flight; i++) free(d->slots[i].logits), free(d->slots[i].qs);
    free(d->slots);
    free(d->buf);
    free(d->qs);
    free(d->io_buf);
    free(d);
}

static void dist_destroy(pgd_exec *x) { dist_free(D(x)); }

static const struct pgd_exec_ops dist_ops = {
    .name = "dist",
    .destroy = dist_destroy,
    .serve = dist_serve,
    .kv_create = dist_kv_create,
    .kv_destroy = dist_kv_destroy,
    .kv_op = dist_kv_op,
    .kv_io = dist_kv_io,
    .submit = dist_submit,
    .wait = dist_wait,
    .comm_seconds = dist_comm_seconds,
};

/* ---- setup ---- */

/* Everything one rank does to join: split its tp group, load its part,
 * wait for the others. `ctrl` becomes owned by the rank's state (or is
 * destroyed on failure after aborting). */
static pgd_status join(const pgd_exec_config *cfg, pgd_backend *b, pgd_comm *ctrl, const char *transport,
                       dist **out) {
    *out = NULL;
    const pgd_parallel_config *par = &cfg->parallel;
    int tp = par->tp > 0 ? par->tp : 1, pp = par->pp > 0 ? par->pp : 1;
    int rank = pgd_comm_rank(ctrl);
    pgd_model req = {0};
    req.req_tp = tp;
    req.req_tp_rank = rank % tp;
    req.req_pp = pp;
    req.req_pp_rank = rank / tp;
    pgd_status s = PGD_OK;
    if (pgd_exec_parse_stage_layers(par->stage_layers, pp, req.req_stage_layers) < 0)
        s = pgd_error(PGD_ERR_INVALID, "parallel layout: stage_layers '%s' must list %d positive layer counts "
                      "separated by commas", par->stage_layers, pp);
    dist *d = calloc(1, sizeof *d);
    if (!d && s == PGD_OK) s = pgd_error(PGD_ERR_OOM, "parallel: out of memory");
    if (d) {
        d->ctrl = d->dworld = ctrl;
        d->rank = rank;
        d->size = pgd_comm_size(ctrl);
        d->tp = tp;
        d->pp = pp;
        d->sim = !strcmp(transport, "sim");
        const char *mbs = getenv("PAGODA_PP_MICROBATCHES");
        d->microbatches = mbs && atoi(mbs) > 0 ? atoi(mbs) : 0;
        snprintf(d->transport, sizeof d->transport, "%s", transport);
    }
    pgd_comm *tpc = NULL;
    if (s == PGD_OK && tp > 1) s = pgd_comm_split(ctrl, rank / tp, rank % tp, &tpc);
    pgd_model *m = NULL;
    pgd_model_load_opts mo = cfg->load;
    if (s == PGD_OK) s = pgd_model_load_part(cfg->model, &mo, b, &req, &m);
    if (s == PGD_OK && !strcmp(transport, "nccl")) {
        /* tensor data over NCCL; activations too, commands and logits stay on ctrl */
        pgd_comm *nw = NULL, *nt = NULL;
        const char *lr = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
        int device = pgd_comm_mpi_world_size() > 1 && lr ? atoi(lr) : rank; /* one GPU per rank */
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
                           rank / tp, cfg->model, pgd_last_error());
        pgd_model_destroy(m);
        pgd_comm_destroy(tpc);
        free(d);
        return s;
    }
    d->dtp = tpc;
    d->m = m;
    pgd_exec *x = &d->base;
    x->ops = &dist_ops;
    x->cfg = m->cfg;
    x->format = pgd_model_get_format(m);
    x->tok = pgd_model_tokenizer(m);
    x->driver = rank == 0;
    x->computes = pgd_backend_computes(b);
    x->max_in_flight = pp > 1 ? pp + cfg->async : 1;
    const pgd_shard *sh = &m->sh;
    snprintf(x->desc, sizeof x->desc,
             "tp %d x pp %d over %s; rank %d: layers %d-%d, heads %d-%d, kv heads %d-%d%s", tp, pp, transport,
             rank, sh->layer_begin, sh->layer_end - 1, sh->head0, sh->head0 + sh->heads - 1, sh->kv_head0,
             sh->kv_head0 + sh->kv_heads - 1, pp > 1 ? (cfg->async ? "; async" : "") : "");
    if (x->driver && !(d->slots = calloc((size_t)x->max_in_flight, sizeof *d->slots))) {
        /* the other ranks wait at the barrier below: release them; the caller frees d (and ctrl with it) */
        s = pgd_error(PGD_ERR_OOM, "parallel: out of memory");
        pgd_comm_abort(ctrl, "rank 0 (the driver): %s", pgd_last_error());
        d->dead = 1;
        *out = d;
        return s;
    }
    if ((s = pgd_comm_barrier(ctrl)) != PGD_OK) {
        d->dead = 1;
        *out = d; /* caller frees */
        return s;
    }
    *out = d;
    return PGD_OK;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    pgd_backend *b = NULL;
    dist *d = NULL;
    pgd_status s = pgd_backend_create(&w->bcfg, &b);
    if (s != PGD_OK) {
        pgd_comm_abort(w->ctrl, "rank %d could not create its %s backend: %s", w->rank,
                       w->bcfg.name ? w->bcfg.name : "cpu", pgd_last_error());
        pgd_comm_destroy(w->ctrl);
        return NULL;
    }
    const char *kind = w->cfg->parallel.comm && *w->cfg->parallel.comm ? w->cfg->parallel.comm : "threads";
    s = join(w->cfg, b, w->ctrl, !strcmp(kind, "nccl") ? "nccl" : "threads", &d);
    if (s == PGD_OK) s = dist_serve(&d->base);
    if (d) dist_free(d); /* destroys its communicators */
    else pgd_comm_destroy(w->ctrl);
    pgd_backend_destroy(b);
    return NULL;
}

pgd_status pgd_exec_dist_create(const pgd_exec_config *cfg, pgd_backend *b, pgd_exec **out) {
    *out = NULL;
    const pgd_parallel_config *par = &cfg->parallel;
    int tp = par->tp > 0 ? par->tp : 1, pp = par->pp > 0 ? par->pp : 1;
    const char *kind = par->comm && *par->comm ? par->comm : "threads";
    int n = tp * pp;
    dist *d = NULL;
    pgd_status s;
    if (!pgd_backend_computes(b)) {
        /* the simulator: this process is tensor rank 0 of tp alike ranks (pipelines: exec_simpipe.c) */
        pgd_comm *world = NULL;
        PGD_TRY(pgd_comm_sim_create(tp, b, &world));
        if ((s = join(cfg, b, world, "sim", &d)) != PGD_OK) {
            if (d) dist_free(d);
            else pgd_comm_destroy(world);
            return s;
        }
        *out = &d->base;
        return PGD_OK;
    }
    if (!strcmp(kind, "mpi") || (!strcmp(kind, "nccl") && pgd_comm_mpi_world_size() > 1)) {
        int ws = pgd_comm_mpi_world_size();
        if (ws != n) /* checked before MPI is initialised: no MPI state for a lone process */
            return pgd_error(PGD_ERR_INVALID, "parallel layout: %s tp %d x pp %d needs %d MPI ranks, this job has %d "
                             "(start it with mpirun -np %d)", kind, tp, pp, n, ws, n);
        pgd_comm *world = NULL;
        PGD_TRY(pgd_comm_mpi_create(&world));
        if (pgd_comm_size(world) != n) {
            s = pgd_error(PGD_ERR_INVALID, "parallel layout: mpirun started %d ranks but tp %d x pp %d needs %d (run "
                          "mpirun -np %d)", pgd_comm_size(world), tp, pp, n, n);
            pgd_comm_destroy(world);
            return s;
        }
        if ((s = join(cfg, b, world, kind, &d)) != PGD_OK) {
            if (d) dist_free(d);
            else pgd_comm_destroy(world);
            return s;
        }
        *out = &d->base;
        return PGD_OK;
    }
    if (strcmp(kind, "threads") && strcmp(kind, "nccl"))
        return pgd_error(PGD_ERR_INVALID, "parallel layout: unknown communicator '%s' (threads, mpi or nccl)", kind);
    /* threads: ranks 1..n-1 are threads with their own backends */
    pgd_comm **comms = calloc((size_t)n, sizeof *comms);
    worker *ws = calloc((size_t)n, sizeof *ws);
    if (!comms || !ws) {
        free(comms);
        free(ws);
        return pgd_error(PGD_ERR_OOM, "parallel: out of memory");
    }
    if ((s = pgd_comm_threads_create(n, comms)) != PGD_OK) {
        free(comms);
        free(ws);
        return s;
    }
    /* each worker rank: the driver's backend settings (its share of the threads), its own cores and GPU */
    pgd_backend_config rank_bc = cfg->backend;
    for (int r = 1; r < n; r++) {
        worker *w = &ws[r];
        w->rank = r;
        w->cfg = cfg;
        w->bcfg = rank_bc;
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
    s = join(cfg, b, comms[0], kind, &d);
    if (s != PGD_OK) {
        for (int r = 1; r < n; r++)
            if (ws[r].started) pthread_join(ws[r].thread, NULL);
        free(ws);
        if (d) dist_free(d); /* destroys comms[0] too */
        else pgd_comm_destroy(comms[0]);
        free(comms);
        return s;
    }
    d->workers = ws;
    d->n_workers = n;
    free(comms);
    *out = &d->base;
    return PGD_OK;
}
