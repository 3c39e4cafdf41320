/* cluster.c - the replica set (cluster.h): N executors and engines, the
 * cluster-id table, time mapping between the replicas' engine clocks and
 * the cluster timeline, the router call, and the step: the earliest busy
 * replica on virtual clocks, every busy replica in its worker thread
 * (fork-join) on the real clock.
 *
 * Invariants: every live cluster id names exactly one (replica, engine id);
 * replica r's `outstanding` counts the live, unfinished ids on it; workers
 * touch only their own replica's engine, and only inside a round (the
 * caller's thread waits for the round to end before it reads anything). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/cluster_impl.h"
#include "pagoda/log.h"

static void token_tramp(void *ctx, int64_t request, int seq_index, int32_t token, double time) {
    replica *r = ctx;
    int64_t cid = request >= 0 && request < r->n_cid ? r->cid[request] : -1;
    if (cid >= 0) r->c->cfg.engine.on_token(r->c->cfg.engine.on_token_ctx, cid, seq_index, token, time + r->off);
}

static void *worker_main(void *arg) {
    replica *r = arg;
    pgd_cluster *c = r->c;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!r->go && !c->quit) pthread_cond_wait(&c->cv_go, &c->mu);
        if (c->quit) break;
        pthread_mutex_unlock(&c->mu);
        int nf = 0;
        pgd_status st;
        if (c->fail_replica == r->index && r->steps >= c->fail_step)
            st = pgd_error(PGD_ERR_DEVICE, "injected failure (PAGODA_CLUSTER_FAIL_REPLICA)");
        else st = pgd_engine_step(r->eng, &nf);
        r->steps++;
        if (st != PGD_OK) snprintf(r->err, sizeof r->err, "%s", pgd_last_error());
        pthread_mutex_lock(&c->mu);
        r->st = st;
        r->nf = nf;
        r->go = 0;
        if (--c->pending == 0) pthread_cond_broadcast(&c->cv_done);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static pgd_status grow(void **p, int64_t *cap, int64_t need, size_t elem) {
    if (need <= *cap) return PGD_OK;
    int64_t nc = *cap ? *cap * 2 : 64;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, (size_t)nc * elem);
    if (!q) return pgd_error(PGD_ERR_OOM, "cluster: out of memory");
    *p = q;
    *cap = nc;
    return PGD_OK;
}

static pgd_status map_eid(replica *r, int64_t eid, int64_t cid) {
    if (eid < 0) return pgd_error(PGD_ERR_INVALID, "cluster: bad engine id");
    int64_t old = r->cap_cid;
    PGD_TRY(grow((void **)&r->cid, &r->cap_cid, eid + 1, sizeof *r->cid));
    for (int64_t i = old; i < r->cap_cid; i++) r->cid[i] = -1;
    r->cid[eid] = cid;
    if (eid + 1 > r->n_cid) r->n_cid = eid + 1;
    return PGD_OK;
}

void pgd_cluster_destroy(pgd_cluster *c) {
    if (!c) return;
    for (int i = 0; c->r && i < c->n; i++)
        if (c->r[i].remote) pgd_cluster_remote_quit(c, i);
    for (int64_t i = 0; c->reqs && i < c->n_reqs; i++) pgd_cluster_free_output(c->reqs[i].rout);
    free(c->msg);
    if (c->have_sync) {
        pthread_mutex_lock(&c->mu);
        c->quit = 1;
        pthread_cond_broadcast(&c->cv_go);
        pthread_mutex_unlock(&c->mu);
        for (int i = 0; i < c->n; i++)
            if (c->r[i].has_thread) pthread_join(c->r[i].th, NULL);
        pthread_cond_destroy(&c->cv_go);
        pthread_cond_destroy(&c->cv_done);
        pthread_mutex_destroy(&c->mu);
    }
    for (int i = 0; c->r && i < c->n; i++) {
        pgd_engine_destroy(c->r[i].eng);
        pgd_exec_destroy(c->r[i].exec);
        free(c->r[i].cid);
        free(c->r[i].live);
        free(c->r[i].pk_eid);
        free(c->r[i].pk_at);
        free(c->r[i].pk_tok);
    }
    for (int i = 0; c->times && i < c->cap_seqs; i++) free(c->times[i]);
    free(c->times);
    free(c->cap_times);
    free(c->seqs);
    free(c->r);
    free(c->reqs);
    free(c->rstate);
    free(c->loads);
    pgd_clock_destroy(c->real_clock);
    pgd_tokenizer_destroy(c->own_tok);
    free(c);
}

static pgd_status replica_error(pgd_status st, int r, const char *what) {
    return pgd_error(st, "replica %d: %s: %s", r, what, pgd_last_error());
}

pgd_status pgd_cluster_create(const pgd_cluster_config *cfg, pgd_cluster **out) {
    if (!cfg || !out) return pgd_error(PGD_ERR_INVALID, "cluster: NULL argument");
    *out = NULL;
    if (cfg->replicas < 1 || cfg->replicas > 1024)
        return pgd_error(PGD_ERR_INVALID, "cluster: replicas must be 1..1024 (got %d)", cfg->replicas);
    const char *rname = cfg->router ? cfg->router : "round-robin";
    const pgd_router_ops *ro = pgd_router_find(rname);
    if (!ro) return pgd_error(PGD_ERR_INVALID, "cluster: unknown router '%s'", rname);
    if (cfg->exec.clock)
        return pgd_error(PGD_ERR_INVALID, "cluster: exec.clock must be NULL (each replica has its own)");
    int n_new = 0, n_dec = 0;
    for (int i = 0; i < cfg->replicas; i++) {
        pgd_replica_role ro_i = cfg->roles ? cfg->roles[i] : PGD_REPLICA_MIXED;
        if (ro_i == PGD_REPLICA_DECODE) n_dec++;
        else n_new++;
    }
    if (n_new == 0) return pgd_error(PGD_ERR_INVALID, "cluster: no replica takes new requests (all are decode)");
    if (cfg->comm && (pgd_comm_size(cfg->comm) != cfg->replicas || pgd_comm_rank(cfg->comm) != 0))
        return pgd_error(PGD_ERR_INVALID,
                         "cluster: %d replicas over MPI need exactly %d ranks (mpirun -np %d; got "
                         "%d), created on rank 0",
                         cfg->replicas, cfg->replicas, cfg->replicas, pgd_comm_size(cfg->comm));
    pgd_cluster *c = calloc(1, sizeof *c);
    if (!c) return pgd_error(PGD_ERR_OOM, "cluster: out of memory");
    c->cfg = *cfg;
    c->cfg.roles = NULL;
    snprintf(c->router_name, sizeof c->router_name, "%s", ro->name);
    c->cfg.router = c->router_name;
    c->n = cfg->replicas;
    c->router = ro;
    c->comm = cfg->comm;
    c->fail_replica = -1;
    const char *fe = getenv("PAGODA_CLUSTER_FAIL_REPLICA");
    if (fe && *fe) {
        char *end;
        c->fail_replica = (int)strtol(fe, &end, 10);
        c->fail_step = *end == ':' ? strtoll(end + 1, NULL, 10) : 0;
    }
    pgd_status st = PGD_OK;
    if (!(c->r = calloc((size_t)c->n, sizeof *c->r)) || !(c->loads = calloc((size_t)c->n, sizeof *c->loads)) ||
        (ro->state_size && !(c->rstate = calloc(1, ro->state_size)))) {
        st = pgd_error(PGD_ERR_OOM, "cluster: out of memory");
        goto fail;
    }
    /* the host's threads split among the replicas */
    int threads = cfg->exec.backend.num_threads;
    if (threads <= 0) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        threads = nc > 0 ? (int)nc : 1;
    }
    int per = threads / c->n > 0 ? threads / c->n : 1;
    for (int i = 0; i < c->n; i++) {
        replica *r = &c->r[i];
        r->c = c;
        r->index = i;
        r->role = cfg->roles ? cfg->roles[i] : PGD_REPLICA_MIXED;
        r->remote = c->comm && i > 0; /* its rank creates it (pgd_cluster_serve) */
    }
    for (int i = 0; i < c->n; i++) {
        replica *r = &c->r[i];
        if (r->remote) continue;
        pgd_exec_config xc = cfg->exec;
        xc.backend.num_threads = per;
        xc.clock = NULL;
        if ((st = pgd_exec_create(&xc, &r->exec)) != PGD_OK) {
            st = replica_error(st, i, "cannot create its executor");
            goto fail;
        }
        if (!pgd_exec_is_driver(r->exec)) {
            st = pgd_error(PGD_ERR_UNSUPPORTED,
                           "replica %d: a cluster runs in one process (mpirun ranks serving "
                           "replicas are not supported yet)",
                           i);
            goto fail;
        }
        pgd_clock *vc = pgd_exec_clock(r->exec);
        if (vc && c->comm) {
            st = pgd_error(PGD_ERR_UNSUPPORTED,
                           "replica %d: the sim's replicas share one process's event loop: "
                           "run them without MPI",
                           i);
            goto fail;
        }
        if (i == 0) c->virt = vc != NULL;
        else if ((vc != NULL) != c->virt) {
            st = pgd_error(PGD_ERR_INVALID, "replica %d: mixes a simulated and a real backend", i);
            goto fail;
        }
    }
    if (!c->virt) {
        c->shared = cfg->engine.clock;
        if (!c->shared) {
            if ((st = pgd_clock_create(PGD_CLOCK_REAL, &c->real_clock)) != PGD_OK) goto fail;
            c->shared = c->real_clock;
        }
    }
    c->tok = cfg->tok;
    if (!c->tok && cfg->tokenizer_path && *cfg->tokenizer_path) {
        if ((st = pgd_tokenizer_load_file(cfg->tokenizer_path, pgd_exec_model_config(c->r[0].exec)->vocab_size,
                                          &c->own_tok)) != PGD_OK)
            goto fail;
        c->tok = c->own_tok;
    }
    if (!c->tok) c->tok = pgd_exec_tokenizer(c->r[0].exec);
    c->cfg.tok = c->tok;
    c->cfg.tokenizer_path = NULL;
    double t00 = 0;
    for (int i = 0; i < c->n; i++) {
        replica *r = &c->r[i];
        if (r->remote) continue;
        pgd_engine_config ec = cfg->engine;
        ec.clock = c->virt ? pgd_exec_clock(r->exec) : c->shared;
        if (cfg->sched_traces) ec.sched_trace = cfg->sched_traces[i];
        if (cfg->engine.on_token) {
            ec.on_token = token_tramp;
            ec.on_token_ctx = r;
        }
        if ((st = pgd_engine_create(&ec, r->exec, c->tok, &r->eng)) != PGD_OK) {
            st = replica_error(st, i, "cannot create its engine");
            goto fail;
        }
        if (!c->virt) { /* engine time = clock - t0: offsets put every replica on replica 0's timeline */
            double t0 = pgd_clock_now(c->shared) - pgd_engine_now(r->eng);
            if (i == 0) t00 = t0;
            r->off = t0 - t00;
        }
    }
    for (int i = 0; i < c->n; i++) /* the other ranks' replicas: created there; their status and clock */
        if (c->r[i].remote && (st = pgd_cluster_remote_hello(c, i)) != PGD_OK) goto fail;
    if (!c->virt && !cfg->serial && !c->comm && c->n > 1) {
        pthread_mutex_init(&c->mu, NULL);
        pthread_cond_init(&c->cv_go, NULL);
        pthread_cond_init(&c->cv_done, NULL);
        c->have_sync = 1;
        for (int i = 0; i < c->n; i++) {
            if (pthread_create(&c->r[i].th, NULL, worker_main, &c->r[i]) != 0) {
                st = pgd_error(PGD_ERR_OOM, "replica %d: cannot start its worker thread", i);
                goto fail;
            }
            c->r[i].has_thread = 1;
        }
    }
    *out = c;
    return PGD_OK;
fail:
    pgd_cluster_destroy(c);
    return st;
}

int pgd_cluster_size(const pgd_cluster *c) { return c ? c->n : 0; }
pgd_replica_role pgd_cluster_role(const pgd_cluster *c, int r) { return c->r[r].role; }
pgd_engine *pgd_cluster_engine(pgd_cluster *c, int r) { return r >= 0 && r < c->n ? c->r[r].eng : NULL; }
pgd_exec *pgd_cluster_exec(pgd_cluster *c, int r) { return r >= 0 && r < c->n ? c->r[r].exec : NULL; }
int pgd_cluster_is_virtual(const pgd_cluster *c) { return c->virt; }
const char *pgd_cluster_router_name(const pgd_cluster *c) { return c->router_name; }
const pgd_tokenizer *pgd_cluster_tokenizer(const pgd_cluster *c) { return c->tok; }

double pgd_cluster_to_cluster_time(const pgd_cluster *c, int r, double t) { return t + c->r[r].off; }
double pgd_cluster_to_engine_time(const pgd_cluster *c, int r, double t) { return t - c->r[r].off; }

/* A remote replica's clock is the real time of rank 0's replica. */
static double replica_now(const pgd_cluster *c, int i) {
    if (c->r[i].remote) i = 0;
    return pgd_engine_now(c->r[i].eng) + c->r[i].off;
}

static int replica_busy(const pgd_cluster *c, int i) {
    return c->r[i].remote ? c->r[i].n_live > 0 : pgd_engine_has_unfinished(c->r[i].eng);
}

int pgd_cluster_busy(const pgd_cluster *c) {
    for (int i = 0; i < c->n; i++)
        if (replica_busy(c, i)) return 1;
    return 0;
}

void pgd_cluster_replica_stats(const pgd_cluster *c, int i, pgd_engine_stats *out) {
    if (c->r[i].remote) *out = c->r[i].rstats;
    else pgd_engine_get_stats(c->r[i].eng, out);
}

double pgd_cluster_replica_now(const pgd_cluster *c, int i) { return replica_now(c, i); }

double pgd_cluster_now(const pgd_cluster *c) {
    if (!c->virt) return replica_now(c, 0);
    double busy = 0, all = 0;
    int nb = 0;
    for (int i = 0; i < c->n; i++) {
        double t = replica_now(c, i);
        if (i == 0 || t < all) all = t;
        if (replica_busy(c, i) && (nb++ == 0 || t < busy)) busy = t;
    }
    return nb ? busy : all;
}

static void raise_clock(pgd_cluster *c, int i, double t) {
    if (!c->virt) return; /* real time passes by itself */
    pgd_clock *vc = pgd_exec_clock(c->r[i].exec);
    double now = replica_now(c, i);
    if (vc && t > now) pgd_clock_sleep_until(vc, pgd_clock_now(vc) + (t - now));
}

void pgd_cluster_idle_until(pgd_cluster *c, double t) {
    if (!c->virt) {
        pgd_clock_sleep_until(c->shared, pgd_clock_now(c->shared) + (t - replica_now(c, 0)));
        return;
    }
    for (int i = 0; i < c->n; i++) raise_clock(c, i, t);
}

void pgd_cluster_loads(pgd_cluster *c, pgd_replica_load *load) {
    for (int i = 0; i < c->n; i++) {
        pgd_engine_stats s;
        pgd_cluster_replica_stats(c, i, &s);
        load[i] = (pgd_replica_load){.index = i,
                                     .role = c->r[i].role,
                                     .outstanding = c->r[i].outstanding,
                                     .kv_used_blocks = s.kv.used_blocks,
                                     .kv_num_blocks = s.kv.num_blocks,
                                     .kv_usage = s.kv.num_blocks > 0 ? (double)s.kv.used_blocks / s.kv.num_blocks : 0,
                                     .now = replica_now(c, i)};
    }
}

int pgd_cluster_cached_prefix(pgd_cluster *c, int r, const int32_t *prompt, int n_prompt) {
    if (r < 0 || r >= c->n) return 0;
    if (c->r[r].remote) return pgd_cluster_remote_cached_prefix(c, r, prompt, n_prompt);
    return pgd_engine_cached_prefix(c->r[r].eng, prompt, n_prompt);
}

static int pick_among(pgd_cluster *c, int decode, const int32_t *prompt, int n_prompt) {
    pgd_replica_load *all = c->loads;
    pgd_cluster_loads(c, all);
    int n = 0;
    for (int i = 0; i < c->n; i++)
        if ((all[i].role == PGD_REPLICA_DECODE) == (decode != 0)) all[n++] = all[i];
    if (n == 0) return -1;
    int k = c->router->pick(c->rstate, c, all, n, prompt, n_prompt);
    if (k < 0 || k >= n) k = 0;
    return all[k].index;
}

int pgd_cluster_pick_decode(pgd_cluster *c, const int32_t *prompt, int n_prompt) {
    return pick_among(c, 1, prompt, n_prompt);
}

static pgd_status live_add(replica *r, int64_t eid) {
    PGD_TRY(grow((void **)&r->live, &r->cap_live, r->n_live + 1, sizeof *r->live));
    r->live[r->n_live++] = eid;
    r->outstanding = (int)r->n_live;
    return PGD_OK;
}

static void live_remove(replica *r, int64_t eid) {
    for (int64_t k = 0; k < r->n_live; k++)
        if (r->live[k] == eid) {
            r->live[k] = r->live[--r->n_live];
            break;
        }
    r->outstanding = (int)r->n_live;
}

static pgd_status add_on(pgd_cluster *c, int ri, const pgd_request_params *p, int64_t *id) {
    replica *r = &c->r[ri];
    pgd_request_params q = *p;
    if (r->role == PGD_REPLICA_PREFILL) q.prefill_only = 1; /* P/D: parked after its first token for the hand-off */
    if (p->arrival_time > 0) {
        raise_clock(c, ri, p->arrival_time); /* an idle sim replica starts when the request arrives */
        q.arrival_time = pgd_cluster_to_engine_time(c, ri, p->arrival_time);
        if (q.arrival_time <= 0) q.arrival_time = 1e-12; /* before this engine existed: "now" would move it */
    }
    int64_t eid;
    if (r->remote) PGD_TRY(pgd_cluster_remote_add(c, ri, &q, &eid));
    else PGD_TRY(pgd_engine_add_request(r->eng, &q, &eid));
    PGD_TRY(grow((void **)&c->reqs, &c->cap_reqs, c->n_reqs + 1, sizeof *c->reqs));
    int64_t cid = c->n_reqs;
    PGD_TRY(map_eid(r, eid, cid));
    PGD_TRY(live_add(r, eid));
    c->reqs[c->n_reqs++] = (req_slot){.replica = ri, .eid = eid};
    if (id) *id = cid;
    return PGD_OK;
}

pgd_status pgd_cluster_add_request(pgd_cluster *c, const pgd_request_params *p, int64_t *id, int *where) {
    if (!c || !p) return pgd_error(PGD_ERR_INVALID, "cluster: NULL argument");
    int ri = pick_among(c, 0, p->prompt, p->n_prompt);
    if (where) *where = ri;
    return add_on(c, ri, p, id);
}

pgd_status pgd_cluster_add_request_to(pgd_cluster *c, int ri, const pgd_request_params *p, int64_t *id) {
    if (!c || !p) return pgd_error(PGD_ERR_INVALID, "cluster: NULL argument");
    if (ri < 0 || ri >= c->n) return pgd_error(PGD_ERR_INVALID, "cluster: no replica %d (0..%d)", ri, c->n - 1);
    return add_on(c, ri, p, id);
}

static req_slot *slot(pgd_cluster *c, int64_t id) {
    return id >= 0 && id < c->n_reqs && c->reqs[id].replica >= 0 ? &c->reqs[id] : NULL;
}

int pgd_cluster_request_replica(const pgd_cluster *c, int64_t id) {
    return id >= 0 && id < c->n_reqs ? c->reqs[id].replica : -1;
}

int64_t pgd_cluster_request_engine_id(const pgd_cluster *c, int64_t id) {
    return id >= 0 && id < c->n_reqs && c->reqs[id].replica >= 0 ? c->reqs[id].eid : -1;
}

int64_t pgd_cluster_id_of(const pgd_cluster *c, int ri, int64_t eid) {
    if (!c || ri < 0 || ri >= c->n) return -1;
    const replica *r = &c->r[ri];
    return eid >= 0 && eid < r->n_cid ? r->cid[eid] : -1;
}

static double shift(double t, double off) { return t < 0 ? t : t + off; }

pgd_status pgd_cluster_get_output(pgd_cluster *c, int64_t id, const pgd_request_output **out) {
    req_slot *s = slot(c, id);
    if (!s) return pgd_error(PGD_ERR_INVALID, "cluster: unknown request %lld", (long long)id);
    const pgd_request_output *o;
    if (c->r[s->replica].remote) {
        if (!s->rout) { /* running on its rank: nothing back yet */
            memset(&c->out, 0, sizeof c->out);
            c->out.id = id;
            c->out.arrival = c->out.first_scheduled = c->out.first_token = c->out.finish = -1;
            *out = &c->out;
            return PGD_OK;
        }
        o = s->rout;
    } else {
        PGD_TRY(pgd_engine_get_output(c->r[s->replica].eng, s->eid, &o));
    }
    if (o->finished && !s->finished) { /* seen finished here or in a step: out of outstanding */
        s->finished = 1;
        live_remove(&c->r[s->replica], s->eid);
    }
    double off = c->r[s->replica].off;
    c->out = *o;
    c->out.id = id;
    if (off == 0) {
        *out = &c->out;
        return PGD_OK;
    }
    c->out.arrival = shift(o->arrival, off);
    c->out.first_scheduled = shift(o->first_scheduled, off);
    c->out.first_token = shift(o->first_token, off);
    c->out.finish = shift(o->finish, off);
    if (o->num_seqs > c->cap_seqs) {
        int nc = o->num_seqs;
        pgd_seq_output *ns = realloc(c->seqs, sizeof *ns * (size_t)nc);
        if (ns) c->seqs = ns;
        double **nt = ns ? realloc(c->times, sizeof *nt * (size_t)nc) : NULL;
        if (nt) c->times = nt;
        int *ncap = nt ? realloc(c->cap_times, sizeof *ncap * (size_t)nc) : NULL;
        if (!ncap) return pgd_error(PGD_ERR_OOM, "cluster: out of memory");
        c->cap_times = ncap;
        for (int i = c->cap_seqs; i < nc; i++) c->times[i] = NULL, c->cap_times[i] = 0;
        c->cap_seqs = nc;
    }
    for (int k = 0; k < o->num_seqs; k++) {
        c->seqs[k] = o->seqs[k];
        int nt = o->seqs[k].n_tokens;
        if (nt > c->cap_times[k]) {
            double *t = realloc(c->times[k], sizeof *t * (size_t)nt);
            if (!t) return pgd_error(PGD_ERR_OOM, "cluster: out of memory");
            c->times[k] = t;
            c->cap_times[k] = nt;
        }
        for (int j = 0; j < nt && o->seqs[k].token_times; j++) c->times[k][j] = o->seqs[k].token_times[j] + off;
        if (o->seqs[k].token_times) c->seqs[k].token_times = c->times[k];
    }
    c->out.seqs = c->seqs;
    *out = &c->out;
    return PGD_OK;
}

static void unmap(pgd_cluster *c, req_slot *s) {
    replica *r = &c->r[s->replica];
    if (!s->finished) {
        s->finished = 1;
        live_remove(r, s->eid);
    }
    if (s->eid >= 0 && s->eid < r->n_cid) r->cid[s->eid] = -1;
}

void pgd_cluster_release(pgd_cluster *c, int64_t id) {
    req_slot *s = slot(c, id);
    if (!s) return;
    int was_finished = s->finished;
    unmap(c, s);
    if (c->r[s->replica].remote) {
        if (!was_finished) pgd_cluster_remote_forget(c, s->replica, s->eid, 0);
        pgd_cluster_free_output(s->rout);
        s->rout = NULL;
    } else {
        pgd_engine_release(c->r[s->replica].eng, s->eid);
    }
    s->replica = -1;
}

pgd_status pgd_cluster_abort(pgd_cluster *c, int64_t id) {
    req_slot *s = slot(c, id);
    if (!s) return pgd_error(PGD_ERR_INVALID, "cluster: unknown request %lld", (long long)id);
    if (c->r[s->replica].remote) {
        if (!s->finished) pgd_cluster_remote_forget(c, s->replica, s->eid, 1);
        return PGD_OK;
    }
    return pgd_engine_abort(c->r[s->replica].eng, s->eid);
}

pgd_status pgd_cluster_move_request(pgd_cluster *c, int64_t id, int to, int64_t engine_id) {
    req_slot *s = slot(c, id);
    if (!s) return pgd_error(PGD_ERR_INVALID, "cluster: unknown request %lld", (long long)id);
    if (to < 0 || to >= c->n) return pgd_error(PGD_ERR_INVALID, "cluster: no replica %d (0..%d)", to, c->n - 1);
    int from = s->replica;
    int64_t old = s->eid;
    unmap(c, s);
    if (!c->r[from].remote) { /* the copy left behind (a remote rank released its own after the send) */
        (void)pgd_engine_abort(c->r[from].eng, old);
        pgd_engine_release(c->r[from].eng, old);
    }
    PGD_TRY(map_eid(&c->r[to], engine_id, id));
    s->replica = to;
    s->eid = engine_id;
    s->finished = 0;
    return live_add(&c->r[to], engine_id);
}

/* Requests on replica r that finished this step leave `outstanding`. */
static int settle(pgd_cluster *c, int ri) {
    replica *r = &c->r[ri];
    int nf = 0;
    for (int64_t k = 0; k < r->n_live;) {
        int64_t e = r->live[k], cid = r->cid[e];
        const pgd_request_output *o;
        if (pgd_engine_get_output(r->eng, e, &o) == PGD_OK && o->finished) {
            if (cid >= 0) c->reqs[cid].finished = 1;
            r->live[k] = r->live[--r->n_live];
            nf++;
        } else {
            k++;
        }
    }
    r->outstanding = (int)r->n_live;
    return nf;
}

pgd_status pgd_cluster_request_prompt(pgd_cluster *c, int64_t id, const int32_t **prompt, int *n_prompt) {
    req_slot *s = slot(c, id);
    if (!s) return pgd_error(PGD_ERR_INVALID, "cluster: unknown request %lld", (long long)id);
    replica *r = &c->r[s->replica];
    if (r->remote) {
        for (int k = 0; k < r->n_pk; k++)
            if (r->pk_eid[k] == s->eid) {
                *prompt = r->pk_tok + r->pk_at[k];
                *n_prompt = (int)(r->pk_at[k + 1] - r->pk_at[k]);
                return PGD_OK;
            }
        return pgd_error(PGD_ERR_INVALID, "cluster: request %lld is not parked on replica %d (rank %d)", (long long)id,
                         s->replica, s->replica);
    }
    const pgd_request_output *o = NULL;
    PGD_TRY(pgd_engine_get_output(r->eng, s->eid, &o));
    *prompt = o->prompt;
    *n_prompt = o->n_prompt;
    return PGD_OK;
}

static pgd_status handoffs(pgd_cluster *c, int ri) {
    replica *r = &c->r[ri];
    if (r->role != PGD_REPLICA_PREFILL || !c->cfg.handoff) return PGD_OK;
    if (r->remote) { /* the parked requests its step reply listed */
        for (int k = 0; k < r->n_pk; k++) {
            int64_t e = r->pk_eid[k], cid = e >= 0 && e < r->n_cid ? r->cid[e] : -1;
            if (cid < 0 || c->reqs[cid].replica != ri) continue; /* released meanwhile */
            pgd_status st = c->cfg.handoff(c->cfg.handoff_ctx, c, cid, ri);
            if (st != PGD_OK)
                return pgd_error(st, "replica %d: hand-off of request %lld: %s", ri, (long long)cid, pgd_last_error());
        }
        r->n_pk = 0;
        return PGD_OK;
    }
    for (int64_t k = r->n_live - 1; k >= 0; k--) { /* backwards: a hand-off removes live[k] */
        if (k >= r->n_live) continue;
        int64_t e = r->live[k], cid = r->cid[e];
        const pgd_request_output *o;
        if (cid < 0 || pgd_engine_get_output(r->eng, e, &o) != PGD_OK || o->finished || o->first_token < 0) continue;
        pgd_status st = c->cfg.handoff(c->cfg.handoff_ctx, c, cid, ri);
        if (st != PGD_OK)
            return pgd_error(st, "replica %d: hand-off of request %lld: %s", ri, (long long)cid, pgd_last_error());
    }
    return PGD_OK;
}

static pgd_status step_one(pgd_cluster *c, int i, int *nf) {
    replica *r = &c->r[i];
    pgd_status st;
    if (c->fail_replica == i && r->steps >= c->fail_step)
        st = pgd_error(PGD_ERR_DEVICE, "injected failure (PAGODA_CLUSTER_FAIL_REPLICA)");
    else st = pgd_engine_step(r->eng, nf);
    r->steps++;
    if (st != PGD_OK) return pgd_error(st, "replica %d: %s", i, pgd_last_error());
    return PGD_OK;
}

pgd_status pgd_cluster_step(pgd_cluster *c, int *num_finished, int *stepped) {
    int total = 0;
    if (num_finished) *num_finished = 0;
    if (stepped) memset(stepped, 0, sizeof *stepped * (size_t)c->n);
    if (c->virt) {
        int best = -1;
        double bt = 0;
        for (int i = 0; i < c->n; i++) {
            if (!pgd_engine_has_unfinished(c->r[i].eng)) continue;
            double t = replica_now(c, i);
            if (best < 0 || t < bt) best = i, bt = t;
        }
        if (best < 0) return PGD_OK;
        int nf = 0;
        PGD_TRY(step_one(c, best, &nf));
        if (stepped) stepped[best] = 1;
        if (nf > 0) total += settle(c, best);
        PGD_TRY(handoffs(c, best));
    } else if (c->comm) { /* MPI: the other ranks step while this one does */
        int go[1024];
        pgd_status first = PGD_OK;
        for (int i = 1; i < c->n; i++) {
            go[i] = replica_busy(c, i);
            if (go[i] && (first = pgd_cluster_remote_step_begin(c, i)) != PGD_OK) {
                for (int k = i; k < c->n; k++) go[k] = 0;
                break;
            }
        }
        int nf = 0;
        if (first == PGD_OK && replica_busy(c, 0)) {
            if ((first = step_one(c, 0, &nf)) == PGD_OK) {
                if (stepped) stepped[0] = 1;
                if (nf > 0) total += settle(c, 0);
            }
        }
        for (int i = 1; i < c->n; i++) { /* every reply is taken, failed or not: the protocol stays in step */
            if (!go[i]) continue;
            int k = 0;
            pgd_status st = pgd_cluster_remote_step_end(c, i, &k);
            if (st != PGD_OK && first == PGD_OK) first = st;
            if (st == PGD_OK) {
                if (stepped) stepped[i] = 1;
                total += k;
            }
        }
        if (first != PGD_OK) return first;
        for (int i = 0; i < c->n; i++) PGD_TRY(handoffs(c, i)); /* every rank waits for requests now */
    } else if (!c->have_sync) {
        for (int i = 0; i < c->n; i++) {
            if (!pgd_engine_has_unfinished(c->r[i].eng)) continue;
            int nf = 0;
            PGD_TRY(step_one(c, i, &nf));
            if (stepped) stepped[i] = 1;
            if (nf > 0) total += settle(c, i);
            PGD_TRY(handoffs(c, i));
        }
    } else {
        int go[1024];
        pthread_mutex_lock(&c->mu);
        c->pending = 0;
        for (int i = 0; i < c->n; i++) {
            go[i] = pgd_engine_has_unfinished(c->r[i].eng);
            if (go[i]) c->r[i].go = 1, c->r[i].st = PGD_OK, c->pending++;
        }
        if (c->pending) pthread_cond_broadcast(&c->cv_go);
        while (c->pending > 0) pthread_cond_wait(&c->cv_done, &c->mu);
        pthread_mutex_unlock(&c->mu);
        pgd_status first = PGD_OK;
        for (int i = 0; i < c->n; i++) { /* every replica finished its step: report the first failure */
            if (!go[i]) continue;
            if (c->r[i].st != PGD_OK && first == PGD_OK)
                first = pgd_error(c->r[i].st, "replica %d: %s", i, c->r[i].err);
        }
        if (first != PGD_OK) return first;
        for (int i = 0; i < c->n; i++) {
            if (!go[i]) continue;
            if (stepped) stepped[i] = 1;
            if (c->r[i].nf > 0) total += settle(c, i);
            PGD_TRY(handoffs(c, i));
        }
    }
    if (num_finished) *num_finished = total;
    return PGD_OK;
}
