/* exec_local.c - the one-rank executor: the model's forward pass on one
 * backend, and its KV cache.
 *
 * Synchronous (async = 0): submit runs the pass, wait hands its logits
 * over; one batch in flight.
 *
 * async = 1: a worker thread owns the backend and runs, in submit order,
 * every queued job (forward passes and KV block operations); the engine's
 * thread only queues and collects, so it schedules step n + 1 and samples
 * step n - 1 while the pass of step n runs. Two batches in flight, each
 * with its own logits buffer. A job that fails makes every later call
 * return its error (the state of the cache is unknown after it).
 * A backend that computes nothing (the sim) runs synchronously even with
 * async = 1: its ops cost virtual time only, there is no host time to
 * overlap, and its clock is the engine's. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec_impl.h"
#include "model/model_impl.h"

typedef struct job {
    int kind; /* 0: forward; else a PGD_EXEC_KV_* op */
    int ticket;
    int32_t *data;
    size_t cap;
    int a, b, c, d; /* forward: S, T, MB, all_logits; KV op: n */
} job;

typedef struct slot {
    float *logits;
    size_t cap;
    int ticket; /* the batch whose logits it holds (or will hold) */
    int done;
    pgd_status st;
} slot;

#define QCAP 64

typedef struct local {
    pgd_exec base;
    pgd_model *m;
    pgd_kv_cache *kv;
    int async;
    slot slots[2];
    /* async: a ring of jobs served by the worker */
    pthread_t thread;
    int started, stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job q[QCAP];
    int q_head, q_n;
    pgd_status failed; /* sticky error of a job */
    char failed_msg[512];
} local;

static local *L(pgd_exec *x) { return (local *)x; }

static pgd_status ensure_logits(slot *s, size_t floats) {
    if (floats <= s->cap) return PGD_OK;
    float *p = realloc(s->logits, floats * sizeof(float));
    if (!p) return pgd_error(PGD_ERR_OOM, "executor: out of memory for logits (%zu floats)", floats);
    s->logits = p;
    s->cap = floats;
    return PGD_OK;
}

static pgd_status run_kv_op(local *l, int op, const int32_t *pairs, int n) {
    switch (op) {
    case PGD_EXEC_KV_COPY: return pgd_kv_cache_copy_blocks(l->kv, pairs, n);
    case PGD_EXEC_KV_SWAP_OUT: return pgd_kv_cache_swap_out(l->kv, pairs, n);
    default: return pgd_kv_cache_swap_in(l->kv, pairs, n);
    }
}

static pgd_status run_forward(local *l, const pgd_batch *b, slot *s) {
    size_t rows = b->all_logits ? (size_t)b->num_tokens : (size_t)b->num_seqs;
    PGD_TRY(ensure_logits(s, rows * (size_t)l->base.cfg.vocab_size));
    return pgd_model_pass(l->m, l->kv, b, s->logits, NULL); /* checked by pgd_exec_submit */
}

/* ---- the worker (async) ---- */

static void *worker_main(void *arg) {
    local *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->q_n && !l->stop) pthread_cond_wait(&l->cv, &l->mu);
        if (!l->q_n && l->stop) break;
        job *j = &l->q[l->q_head];
        pgd_status failed = l->failed;
        pthread_mutex_unlock(&l->mu);
        pgd_status st = failed;
        char msg[512] = "";
        slot *s = NULL;
        if (j->kind == 0) s = &l->slots[j->ticket % 2];
        if (st == PGD_OK) {
            if (j->kind == 0) {
                pgd_batch b = pgd_exec_unpack_batch(j->data, j->a, j->b, j->c, j->d);
                st = run_forward(l, &b, s);
            } else {
                st = run_kv_op(l, j->kind, j->data, j->a);
            }
            if (st != PGD_OK) snprintf(msg, sizeof msg, "%s", pgd_last_error());
        }
        pthread_mutex_lock(&l->mu);
        if (st != PGD_OK && l->failed == PGD_OK) {
            l->failed = st;
            snprintf(l->failed_msg, sizeof l->failed_msg, "%s", msg);
        }
        if (s) {
            s->st = st;
            s->done = 1;
        }
        l->q_head = (l->q_head + 1) % QCAP;
        l->q_n--;
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* Queue a job (waits while the ring is full); copies n ints of data. */
static pgd_status enqueue(local *l, int kind, int ticket, const int32_t *data, size_t n, int a, int b, int c,
                          int d) {
    pthread_mutex_lock(&l->mu);
    while (l->q_n == QCAP) pthread_cond_wait(&l->cv, &l->mu);
    pgd_status st = l->failed;
    if (st != PGD_OK) {
        pthread_mutex_unlock(&l->mu);
        return pgd_error(st, "executor: an earlier job failed: %s", l->failed_msg);
    }
    job *j = &l->q[(l->q_head + l->q_n) % QCAP];
    pthread_mutex_unlock(&l->mu);
    /* the slot is not the worker's until q_n counts it */
    if (n > j->cap) {
        int32_t *p = realloc(j->data, n * sizeof(int32_t));
        if (!p) return pgd_error(PGD_ERR_OOM, "executor: out of memory queueing a job");
        j->data = p;
        j->cap = n;
    }
    if (n) memcpy(j->data, data, n * sizeof(int32_t));
    j->kind = kind, j->ticket = ticket, j->a = a, j->b = b, j->c = c, j->d = d;
    pthread_mutex_lock(&l->mu);
    if (kind == 0) {
        slot *s = &l->slots[ticket % 2];
        s->ticket = ticket;
        s->done = 0;
        s->st = PGD_OK;
    }
    l->q_n++;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return PGD_OK;
}

/* ---- ops ---- */

static void local_destroy(pgd_exec *x) {
    local *l = L(x);
    if (l->started) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
    }
    if (l->async) {
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
    }
    for (int i = 0; i < QCAP; i++) free(l->q[i].data);
    for (int i = 0; i < 2; i++) free(l->slots[i].logits);
    pgd_kv_cache_destroy(l->kv);
    pgd_model_destroy(l->m);
    free(l);
}

static pgd_status local_kv_create(pgd_exec *x, int block_size, int num_blocks, int num_host_blocks) {
    local *l = L(x);
    pgd_status st = pgd_kv_cache_create(pgd_model_backend(l->m), pgd_model_get_config(l->m), block_size, num_blocks,
                                        &l->kv);
    if (st == PGD_OK) st = pgd_kv_cache_set_host_blocks(l->kv, num_host_blocks);
    if (st != PGD_OK) {
        pgd_kv_cache_destroy(l->kv);
        l->kv = NULL;
        return st;
    }
    if (l->async && !l->started) {
        if (pthread_create(&l->thread, NULL, worker_main, l) != 0)
            return pgd_error(PGD_ERR_OOM, "executor: cannot start the async worker thread");
        l->started = 1;
    }
    return PGD_OK;
}

static void local_kv_destroy(pgd_exec *x) {
    local *l = L(x);
    if (l->async && l->started) { /* the queue drains before the cache goes */
        pthread_mutex_lock(&l->mu);
        while (l->q_n) pthread_cond_wait(&l->cv, &l->mu);
        pthread_mutex_unlock(&l->mu);
    }
    pgd_kv_cache_destroy(l->kv);
    l->kv = NULL;
}

static pgd_status local_kv_op(pgd_exec *x, int op, const int32_t *pairs, int n) {
    local *l = L(x);
    if (l->async) return enqueue(l, op, -1, pairs, 2 * (size_t)n, n, 0, 0, 0);
    return run_kv_op(l, op, pairs, n);
}

static pgd_status local_kv_io(pgd_exec *x, int dir, const int32_t *blocks, int n, void *host) {
    local *l = L(x);
    if (l->async && l->started) { /* every job sent before runs first; the worker is then idle */
        pthread_mutex_lock(&l->mu);
        while (l->q_n) pthread_cond_wait(&l->cv, &l->mu);
        pgd_status st = l->failed;
        pthread_mutex_unlock(&l->mu);
        if (st != PGD_OK) return pgd_error(st, "executor: an earlier job failed: %s", l->failed_msg);
    }
    return dir == PGD_EXEC_KV_READ ? pgd_kv_cache_read_blocks(l->kv, blocks, n, host)
                                   : pgd_kv_cache_write_blocks(l->kv, blocks, n, host);
}

static pgd_status local_submit(pgd_exec *x, const pgd_batch *b, int ticket) {
    local *l = L(x);
    if (l->async) {
        int32_t *p = NULL;
        size_t cap = 0, n = 0;
        /* pack straight into the job's own buffer would need the lock held; one copy is cheap */
        pgd_status st = pgd_exec_pack_batch(b, &p, &cap, &n);
        if (st == PGD_OK)
            st = enqueue(l, 0, ticket, p, n, b->num_seqs, b->num_tokens, b->max_blocks_per_seq, b->all_logits);
        free(p);
        return st;
    }
    slot *s = &l->slots[0];
    s->ticket = ticket;
    s->st = run_forward(l, b, s);
    s->done = 1;
    return s->st;
}

static pgd_status local_wait(pgd_exec *x, int ticket, const float **logits) {
    local *l = L(x);
    slot *s = &l->slots[l->async ? ticket % 2 : 0];
    if (l->async) {
        pthread_mutex_lock(&l->mu);
        while (!s->done) pthread_cond_wait(&l->cv, &l->mu);
        pgd_status st = s->st;
        char msg[512];
        snprintf(msg, sizeof msg, "%s", l->failed_msg);
        pthread_mutex_unlock(&l->mu);
        if (st != PGD_OK) return pgd_error(st, "%s", msg);
    } else if (s->st != PGD_OK) {
        return s->st;
    }
    if (s->ticket != ticket) return pgd_error(PGD_ERR_INVALID, "executor: batch %d was not submitted", ticket);
    *logits = s->logits;
    return PGD_OK;
}

static const struct pgd_exec_ops local_ops = {
    .name = "local",
    .destroy = local_destroy,
    .kv_create = local_kv_create,
    .kv_destroy = local_kv_destroy,
    .kv_op = local_kv_op,
    .kv_io = local_kv_io,
    .submit = local_submit,
    .wait = local_wait,
};

pgd_status pgd_exec_local_create(const pgd_exec_config *cfg, pgd_backend *b, pgd_exec **out) {
    *out = NULL;
    local *l = calloc(1, sizeof *l);
    if (!l) return pgd_error(PGD_ERR_OOM, "executor: out of memory");
    pgd_model_load_opts mo = cfg->load;
    pgd_status st = pgd_model_load(cfg->model, &mo, b, &l->m);
    if (st != PGD_OK) {
        free(l);
        return st;
    }
    pgd_exec *x = &l->base;
    x->ops = &local_ops;
    x->cfg = *pgd_model_get_config(l->m);
    x->format = pgd_model_get_format(l->m);
    x->tok = pgd_model_tokenizer(l->m);
    x->driver = 1;
    x->computes = pgd_backend_computes(b);
    l->async = cfg->async && x->computes;
    x->max_in_flight = l->async ? 2 : 1;
    if (l->async) {
        pthread_mutex_init(&l->mu, NULL);
        pthread_cond_init(&l->cv, NULL);
    }
    snprintf(x->desc, sizeof x->desc, "one rank on %s%s", pgd_backend_describe(b),
             l->async ? "; async (2 batches in flight)"
             : cfg->async ? "; async ignored (the backend computes nothing: no host time to overlap)" : "");
    *out = x;
    return PGD_OK;
}
