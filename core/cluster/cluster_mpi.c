/* cluster_mpi.c - replicas on other MPI ranks (cluster.h, cfg->comm): rank
 * 0's side (the pgd_cluster_remote_* calls of cluster_impl.h) and the
 * serving loop of every other rank (pgd_cluster_serve).
 *
 * Protocol: rank 0 sends requests on tag TAG_REQ, the rank replies on
 * TAG_REP; each message is an 8-byte length, then that many bytes (native
 * layout: every rank runs the same build). Requests, in order:
 *   HELLO                  -> status, message, engine time (once, at create)
 *   ADD params             -> status, message, engine id
 *   PREFIX prompt          -> cached prompt tokens
 *   STEP                   -> status, message, engine stats, finished outputs,
 *                             parked requests (P/D: engine id, prompt)
 *   EXPORT id, dst rank    -> status, message, engine times before and after,
 *                             KV bytes, wire bytes (P/D: exports the parked
 *                             request, sends its bytes to rank dst on TAG_KV,
 *                             frees its blocks once they are sent and
 *                             releases it)
 *   IMPORT src rank        -> status, message, engine id, engine time (P/D:
 *                             receives the bytes from rank src on TAG_KV,
 *                             imports them)
 *   FORGET id, abort flag  (no reply: abort, or abort and release)
 *   QUIT                   (no reply: the rank's serve loop returns)
 * A rank whose replica failed (create or step) replies with the error and
 * keeps answering (a failed replica answers ADD and STEP with its error)
 * until QUIT, so rank 0 always gets its replies and never hangs on it; the
 * transport's own failures come back as PGD_ERR_COMM (comm.h: a dead rank
 * ends the job through mpirun).
 *
 * The KV bytes of a hand-off go straight from the exporting rank to the
 * importing one (rank 0 is an end only when it runs one of the two
 * replicas): on TAG_KV a header (status, message, byte count), then the
 * bytes. An exporter that fails still sends the header, with its error, so
 * the importer never waits for bytes that will not come.
 * PAGODA_CLUSTER_FAIL_HANDOFF=R makes replica R's first export or import
 * fail (with PAGODA_CLUSTER_FAIL_MODE=exit: its process exits there). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/cluster_impl.h"
#include "pagoda/disagg.h"

enum { TAG_REQ = 701, TAG_REP = 702, TAG_KV = 703 };
enum { OP_HELLO = 1, OP_ADD, OP_PREFIX, OP_STEP, OP_FORGET, OP_QUIT, OP_EXPORT, OP_IMPORT };

/* ---- a growable byte buffer and a reader ---- */
typedef struct wbuf {
    char *p;
    size_t n, cap;
    int oom;
} wbuf;

static void put(wbuf *b, const void *x, size_t k) {
    if (b->oom || k == 0) return;
    if (b->n + k > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 4096;
        while (nc < b->n + k) nc *= 2;
        char *q = realloc(b->p, nc);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = nc;
    }
    memcpy(b->p + b->n, x, k);
    b->n += k;
}
static void put_i32(wbuf *b, int32_t v) { put(b, &v, sizeof v); }
static void put_i64(wbuf *b, int64_t v) { put(b, &v, sizeof v); }
static void put_f64(wbuf *b, double v) { put(b, &v, sizeof v); }
static void put_str(wbuf *b, const char *s) {
    int32_t n = s ? (int32_t)strlen(s) : -1;
    put_i32(b, n);
    if (n > 0) put(b, s, (size_t)n);
}

typedef struct rbuf {
    const char *p;
    size_t n, at;
    int bad;
} rbuf;

static void get(rbuf *r, void *x, size_t k) {
    if (k == 0) return;
    if (r->bad || r->at + k > r->n) {
        r->bad = 1;
        memset(x, 0, k);
        return;
    }
    memcpy(x, r->p + r->at, k);
    r->at += k;
}
static int32_t get_i32(rbuf *r) {
    int32_t v;
    get(r, &v, sizeof v);
    return v;
}
static int64_t get_i64(rbuf *r) {
    int64_t v;
    get(r, &v, sizeof v);
    return v;
}
static double get_f64(rbuf *r) {
    double v;
    get(r, &v, sizeof v);
    return v;
}
/* malloc'd, NULL for a NULL string */
static char *get_str(rbuf *r) {
    int32_t n = get_i32(r);
    if (n < 0 || r->bad) return NULL;
    if (r->at + (size_t)n > r->n) {
        r->bad = 1;
        return NULL;
    }
    char *s = malloc((size_t)n + 1);
    if (!s) {
        r->bad = 1;
        return NULL;
    }
    memcpy(s, r->p + r->at, (size_t)n);
    s[n] = 0;
    r->at += (size_t)n;
    return s;
}

static pgd_status send_msg(pgd_comm *comm, int dst, int tag, const wbuf *b) {
    if (b->oom) return pgd_error(PGD_ERR_OOM, "cluster: out of memory");
    uint64_t n = b->n;
    PGD_TRY(pgd_comm_send(comm, &n, sizeof n, dst, tag));
    return n ? pgd_comm_send(comm, b->p, b->n, dst, tag) : PGD_OK;
}

/* into *buf (grown as needed) */
static pgd_status recv_msg(pgd_comm *comm, int src, int tag, char **buf, size_t *cap, size_t *len) {
    uint64_t n = 0;
    PGD_TRY(pgd_comm_recv(comm, &n, sizeof n, src, tag));
    if (n > *cap) {
        char *q = realloc(*buf, n);
        if (!q) return pgd_error(PGD_ERR_OOM, "cluster: out of memory (a %llu-byte message)", (unsigned long long)n);
        *buf = q;
        *cap = n;
    }
    if (n) PGD_TRY(pgd_comm_recv(comm, *buf, n, src, tag));
    *len = n;
    return PGD_OK;
}

/* A hand-off's bytes: the header (status, message, count), then the bytes when st is PGD_OK. */
static pgd_status send_kv(pgd_comm *comm, int dst, pgd_status st, const char *msg, const void *buf, size_t n) {
    wbuf h = {0};
    put_i32(&h, st);
    put_str(&h, st != PGD_OK ? msg : NULL);
    put_i64(&h, st == PGD_OK ? (int64_t)n : 0);
    pgd_status out = send_msg(comm, dst, TAG_KV, &h);
    free(h.p);
    if (out == PGD_OK && st == PGD_OK && n) out = pgd_comm_send(comm, buf, n, dst, TAG_KV);
    return out;
}

/* *buf malloc'd; a failed sender's header comes back as its error. */
static pgd_status recv_kv(pgd_comm *comm, int src, void **buf, size_t *n) {
    char *h = NULL;
    size_t cap = 0, len = 0;
    *buf = NULL;
    *n = 0;
    pgd_status st = recv_msg(comm, src, TAG_KV, &h, &cap, &len);
    if (st != PGD_OK) {
        free(h);
        return st;
    }
    rbuf r = {.p = h, .n = len};
    int32_t code = get_i32(&r);
    char *msg = get_str(&r);
    int64_t nb = get_i64(&r);
    if (r.bad || nb < 0) st = pgd_error(PGD_ERR_COMM, "malformed KV header from rank %d", src);
    else if (code != PGD_OK) st = pgd_error((pgd_status)code, "%s", msg ? msg : "failed");
    else if (!(*buf = malloc(nb ? (size_t)nb : 1)))
        st = pgd_error(PGD_ERR_OOM, "cluster: out of memory for a %lld-byte hand-off", (long long)nb);
    else if (nb && (st = pgd_comm_recv(comm, *buf, (size_t)nb, src, TAG_KV)) != PGD_OK) {
        free(*buf);
        *buf = NULL;
    }
    if (st == PGD_OK) *n = (size_t)nb;
    free(msg);
    free(h);
    return st;
}

static const char *const reasons[] = {"stop", "length", "abort", "error"};

static int32_t reason_code(const char *s) {
    for (int i = 0; s && i < 4; i++)
        if (!strcmp(s, reasons[i])) return i;
    return -1;
}

static const char *reason_name(int32_t k) { return k >= 0 && k < 4 ? reasons[k] : NULL; }

/* ---- rank 0's side ---- */

static pgd_status rank_error(pgd_status st, int r) {
    return pgd_error(st, "replica %d (rank %d): %s", r, r, pgd_last_error());
}

static pgd_status call(pgd_cluster *c, int r, const wbuf *req, rbuf *rep) {
    pgd_status st = send_msg(c->comm, r, TAG_REQ, req);
    size_t len = 0;
    if (st == PGD_OK) st = recv_msg(c->comm, r, TAG_REP, &c->msg, &c->msg_cap, &len);
    if (st != PGD_OK) return rank_error(st, r);
    *rep = (rbuf){.p = c->msg, .n = len};
    return PGD_OK;
}

/* status + message at the head of a reply */
static pgd_status reply_status(rbuf *rep, int r) {
    int32_t st = get_i32(rep);
    char *msg = get_str(rep);
    pgd_status out = PGD_OK;
    if (rep->bad) out = pgd_error(PGD_ERR_COMM, "replica %d (rank %d): malformed reply", r, r);
    else if (st != PGD_OK) out = pgd_error((pgd_status)st, "replica %d (rank %d): %s", r, r, msg ? msg : "failed");
    free(msg);
    return out;
}

pgd_status pgd_cluster_remote_hello(pgd_cluster *c, int r) {
    wbuf b = {0};
    put_i32(&b, OP_HELLO);
    double t0 = pgd_cluster_now(c);
    rbuf rep = {0};
    pgd_status st = call(c, r, &b, &rep);
    double t1 = pgd_cluster_now(c);
    free(b.p);
    PGD_TRY(st);
    PGD_TRY(reply_status(&rep, r));
    double w = get_f64(&rep);
    get(&rep, &c->r[r].rstats, sizeof c->r[r].rstats);
    if (rep.bad) return pgd_error(PGD_ERR_COMM, "replica %d (rank %d): malformed reply", r, r);
    c->r[r].rnow = w;
    c->r[r].off = (t0 + t1) / 2 - w; /* its engine time w was read halfway through the round trip */
    return PGD_OK;
}

static void put_params(wbuf *b, const pgd_request_params *p) {
    put_i32(b, p->n_prompt);
    put(b, p->prompt, sizeof(int32_t) * (size_t)(p->n_prompt > 0 ? p->n_prompt : 0));
    put(b, &p->sampling, sizeof p->sampling);
    put_i32(b, p->max_tokens);
    put_i32(b, p->n);
    put_i32(b, p->beam_width);
    put_i32(b, p->priority);
    put_f64(b, p->arrival_time);
    put_i32(b, p->n_stop_token_ids);
    put(b, p->stop_token_ids, sizeof(int32_t) * (size_t)(p->n_stop_token_ids > 0 ? p->n_stop_token_ids : 0));
    put_i32(b, p->n_stop_strings);
    for (int i = 0; i < p->n_stop_strings; i++) put_str(b, p->stop_strings[i]);
    put_i32(b, p->true_output_len);
    put_i32(b, p->ignore_eos);
    put_i32(b, p->client);
    put_i32(b, p->slo_class);
    put_f64(b, p->ttft_slo);
    put_i32(b, p->prefill_only);
}

pgd_status pgd_cluster_remote_add(pgd_cluster *c, int r, const pgd_request_params *p, int64_t *eid) {
    wbuf b = {0};
    put_i32(&b, OP_ADD);
    put_params(&b, p);
    rbuf rep = {0};
    pgd_status st = call(c, r, &b, &rep);
    free(b.p);
    PGD_TRY(st);
    int32_t code = get_i32(&rep);
    char *msg = get_str(&rep);
    int64_t id = get_i64(&rep);
    if (rep.bad) st = pgd_error(PGD_ERR_COMM, "replica %d (rank %d): malformed reply", r, r);
    else if (code == PGD_ERR_OOM || code == PGD_ERR_DEVICE || code == PGD_ERR_COMM) /* the replica failed */
        st = pgd_error((pgd_status)code, "replica %d (rank %d): %s", r, r, msg ? msg : "failed");
    else if (code != PGD_OK) /* a rejected request keeps the engine's own message, as on one engine */
        st = pgd_error((pgd_status)code, "%s", msg ? msg : "rejected");
    free(msg);
    if (st == PGD_OK) *eid = id;
    return st;
}

int pgd_cluster_remote_cached_prefix(pgd_cluster *c, int r, const int32_t *prompt, int n_prompt) {
    wbuf b = {0};
    put_i32(&b, OP_PREFIX);
    put_i32(&b, n_prompt);
    put(&b, prompt, sizeof(int32_t) * (size_t)(n_prompt > 0 ? n_prompt : 0));
    rbuf rep = {0};
    pgd_status st = call(c, r, &b, &rep);
    free(b.p);
    if (st != PGD_OK) return 0; /* the next step reports the transport's failure */
    int32_t k = get_i32(&rep);
    return rep.bad ? 0 : k;
}

pgd_status pgd_cluster_remote_step_begin(pgd_cluster *c, int r) {
    wbuf b = {0};
    put_i32(&b, OP_STEP);
    pgd_status st = send_msg(c->comm, r, TAG_REQ, &b);
    free(b.p);
    return st == PGD_OK ? PGD_OK : rank_error(st, r);
}

void pgd_cluster_free_output(pgd_request_output *o) {
    if (!o) return;
    for (int k = 0; o->seqs && k < o->num_seqs; k++) {
        free((void *)o->seqs[k].tokens);
        free((void *)o->seqs[k].token_times);
    }
    free((void *)o->seqs);
    free((void *)o->error);
    free(o);
}

static pgd_request_output *read_output(rbuf *rep, int64_t *eid) {
    pgd_request_output *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    *eid = get_i64(rep);
    o->finished = 1;
    o->finish_reason = reason_name(get_i32(rep));
    o->error = get_str(rep);
    o->n_prompt = get_i32(rep);
    o->arrival = get_f64(rep);
    o->first_scheduled = get_f64(rep);
    o->first_token = get_f64(rep);
    o->finish = get_f64(rep);
    o->num_preemptions = get_i32(rep);
    o->num_cached_tokens = get_i32(rep);
    int ns = get_i32(rep);
    if (rep->bad || ns < 0 || ns > 4096) {
        pgd_cluster_free_output(o);
        return NULL;
    }
    pgd_seq_output *seqs = calloc((size_t)(ns ? ns : 1), sizeof *seqs);
    o->seqs = seqs;
    o->num_seqs = seqs ? ns : 0;
    for (int k = 0; seqs && k < ns; k++) {
        int nt = get_i32(rep);
        seqs[k].cum_logprob = get_f64(rep);
        seqs[k].finish_reason = reason_name(get_i32(rep));
        int have_times = get_i32(rep);
        if (rep->bad || nt < 0 || (size_t)nt > rep->n) break;
        int32_t *t = malloc(sizeof *t * (size_t)(nt ? nt : 1));
        double *tt = have_times ? malloc(sizeof *tt * (size_t)(nt ? nt : 1)) : NULL;
        seqs[k].tokens = t;
        seqs[k].token_times = tt;
        if (!t || (have_times && !tt)) {
            rep->bad = 1;
            break;
        }
        get(rep, t, sizeof *t * (size_t)nt);
        if (tt) get(rep, tt, sizeof *tt * (size_t)nt);
        seqs[k].n_tokens = nt;
    }
    if (!seqs || rep->bad) {
        pgd_cluster_free_output(o);
        return NULL;
    }
    return o;
}

pgd_status pgd_cluster_remote_step_end(pgd_cluster *c, int r, int *num_finished) {
    replica *rp = &c->r[r];
    size_t len = 0;
    pgd_status st = recv_msg(c->comm, r, TAG_REP, &c->msg, &c->msg_cap, &len);
    if (st != PGD_OK) return rank_error(st, r);
    rbuf rep = {.p = c->msg, .n = len};
    PGD_TRY(reply_status(&rep, r));
    rp->rnow = get_f64(&rep);
    get(&rep, &rp->rstats, sizeof rp->rstats);
    int32_t nf = get_i32(&rep);
    *num_finished = 0;
    for (int32_t i = 0; i < nf && !rep.bad; i++) {
        int64_t eid = -1;
        pgd_request_output *o = read_output(&rep, &eid);
        if (!o) return pgd_error(PGD_ERR_COMM, "replica %d (rank %d): malformed output in its reply", r, r);
        int64_t cid = eid >= 0 && eid < rp->n_cid ? rp->cid[eid] : -1;
        if (cid < 0 || c->reqs[cid].finished) { /* released or aborted meanwhile */
            pgd_cluster_free_output(o);
            continue;
        }
        o->id = eid;
        c->reqs[cid].rout = o;
        c->reqs[cid].finished = 1;
        for (int64_t k = 0; k < rp->n_live; k++)
            if (rp->live[k] == eid) {
                rp->live[k] = rp->live[--rp->n_live];
                break;
            }
        rp->outstanding = (int)rp->n_live;
        (*num_finished)++;
    }
    /* P/D: the requests parked after their first token, with their prompts */
    int32_t npk = get_i32(&rep);
    rp->n_pk = 0;
    for (int32_t i = 0; i < npk && !rep.bad; i++) {
        int64_t eid = get_i64(&rep);
        int32_t np = get_i32(&rep);
        if (rep.bad || np < 0 || (size_t)np > rep.n) break;
        if (rp->n_pk + 1 >= rp->cap_pk) {
            int cap = rp->cap_pk ? 2 * rp->cap_pk : 16;
            int64_t *e = realloc(rp->pk_eid, sizeof *e * (size_t)cap);
            if (e) rp->pk_eid = e;
            int64_t *a = e ? realloc(rp->pk_at, sizeof *a * (size_t)(cap + 1)) : NULL;
            if (!a) return pgd_error(PGD_ERR_OOM, "cluster: out of memory");
            rp->pk_at = a;
            rp->cap_pk = cap;
        }
        int64_t at = rp->n_pk ? rp->pk_at[rp->n_pk] : 0;
        if (at + np > rp->cap_pk_tok) {
            int64_t cap = 2 * (at + np) + 256;
            int32_t *t = realloc(rp->pk_tok, sizeof *t * (size_t)cap);
            if (!t) return pgd_error(PGD_ERR_OOM, "cluster: out of memory");
            rp->pk_tok = t;
            rp->cap_pk_tok = cap;
        }
        get(&rep, rp->pk_tok + at, sizeof(int32_t) * (size_t)np);
        rp->pk_eid[rp->n_pk] = eid;
        rp->pk_at[rp->n_pk] = at;
        rp->pk_at[++rp->n_pk] = at + np;
    }
    if (rep.bad) return pgd_error(PGD_ERR_COMM, "replica %d (rank %d): malformed reply", r, r);
    return PGD_OK;
}

/* The first failure of a hand-off and its message (later ones are dropped). */
typedef struct first_err {
    pgd_status st;
    char why[512];
} first_err;

static pgd_status note(first_err *f, pgd_status st) {
    if (st != PGD_OK && f->st == PGD_OK) {
        f->st = st;
        snprintf(f->why, sizeof f->why, "%s", pgd_last_error());
    }
    return st;
}

/* A hand-off op's reply from rank r: its status (named by reply_status), then the rest in *rep. */
static pgd_status handoff_reply(pgd_cluster *c, int r, rbuf *rep) {
    size_t len = 0;
    pgd_status st = recv_msg(c->comm, r, TAG_REP, &c->msg, &c->msg_cap, &len);
    if (st != PGD_OK) return rank_error(st, r);
    *rep = (rbuf){.p = c->msg, .n = len};
    return reply_status(rep, r);
}

/* P/D: request `id` from replica `from` to `to`, one of them on another rank
 * (the protocol above; a local end goes through the same disagg.h helpers
 * as the threads link). Each op sent is answered and its reply taken,
 * failed or not, so the protocol stays in step. */
pgd_status pgd_cluster_remote_handoff(pgd_cluster *c, int64_t id, int from, int to, pgd_kv_transfer *t, int64_t *neid) {
    replica *pf = &c->r[from], *pd = &c->r[to];
    int64_t eid = c->reqs[id].eid;
    first_err f = {PGD_OK, ""};
    int import_sent = 0, export_sent = 0;
    if (pd->remote) { /* the decode rank: receive from `from`, import */
        wbuf b = {0};
        put_i32(&b, OP_IMPORT);
        put_i32(&b, from);
        pgd_status st = send_msg(c->comm, to, TAG_REQ, &b);
        free(b.p);
        import_sent = note(&f, st == PGD_OK ? PGD_OK : rank_error(st, to)) == PGD_OK;
    }
    if (pf->remote && f.st == PGD_OK) { /* the prefill rank: export, send to `to` */
        wbuf b = {0};
        put_i32(&b, OP_EXPORT);
        put_i64(&b, eid);
        put_i32(&b, to);
        pgd_status st = send_msg(c->comm, from, TAG_REQ, &b);
        free(b.p);
        export_sent = note(&f, st == PGD_OK ? PGD_OK : rank_error(st, from)) == PGD_OK;
    } else if (!pf->remote) { /* rank 0 exports: its bytes go to the decode rank */
        pgd_engine *pe = pf->eng;
        void *buf = NULL;
        size_t n = 0;
        t->start = pgd_cluster_to_cluster_time(c, from, pgd_engine_now(pe));
        pgd_status ex = pgd_disagg_export_packed(pe, eid, &buf, &n, &t->kv_bytes);
        if (ex != PGD_OK)
            ex = pgd_error(ex, "request %lld: export from replica %d: %s", (long long)id, from, pgd_last_error());
        char why[512];
        snprintf(why, sizeof why, "%s", ex != PGD_OK ? pgd_last_error() : "");
        note(&f, ex);
        if (import_sent) { /* the decode rank waits for the header either way */
            pgd_status st = send_kv(c->comm, to, ex, why, buf, n);
            if (st != PGD_OK) note(&f, rank_error(st, to));
        }
        if (buf) pgd_engine_export_sent(pe, eid, pgd_engine_now(pe)); /* the bytes are out: its blocks go back */
        t->wire_bytes = n;
        free(buf);
    }
    void *kv = NULL;
    size_t kn = 0;
    pgd_status kst = PGD_OK;
    if (export_sent && !pd->remote) kst = recv_kv(c->comm, from, &kv, &kn); /* rank 0 imports */
    if (export_sent) {
        rbuf rep = {0};
        if (note(&f, handoff_reply(c, from, &rep)) == PGD_OK) {
            double t0 = get_f64(&rep);
            (void)get_f64(&rep); /* its time once the bytes were out */
            t->kv_bytes = (size_t)get_i64(&rep);
            t->wire_bytes = (size_t)get_i64(&rep);
            t->start = pgd_cluster_to_cluster_time(c, from, t0);
            if (rep.bad) note(&f, pgd_error(PGD_ERR_COMM, "replica %d (rank %d): malformed reply", from, from));
        }
        if (!pd->remote && kst != PGD_OK)
            note(&f, pgd_error(kst, "request %lld: no KV from replica %d (rank %d): %s", (long long)id, from, from,
                               pgd_last_error()));
        if (!pd->remote && f.st == PGD_OK) {
            pgd_status st = pgd_disagg_import_packed(pd->eng, kv, kn, 0, neid);
            if (st != PGD_OK)
                note(&f, pgd_error(st, "request %lld: import from replica %d (rank %d) into replica %d: %s",
                                   (long long)id, from, from, to, pgd_last_error()));
            t->ready = pgd_cluster_now(c);
        }
    }
    free(kv);
    if (import_sent) {
        rbuf rep = {0};
        if (note(&f, handoff_reply(c, to, &rep)) == PGD_OK) {
            *neid = get_i64(&rep);
            t->ready = pgd_cluster_to_cluster_time(c, to, get_f64(&rep));
            if (rep.bad) note(&f, pgd_error(PGD_ERR_COMM, "replica %d (rank %d): malformed reply", to, to));
        }
    }
    return f.st == PGD_OK ? PGD_OK : pgd_error(f.st, "%s", f.why);
}

void pgd_cluster_remote_forget(pgd_cluster *c, int r, int64_t eid, int abort) {
    wbuf b = {0};
    put_i32(&b, OP_FORGET);
    put_i64(&b, eid);
    put_i32(&b, abort);
    (void)send_msg(c->comm, r, TAG_REQ, &b); /* a dead rank shows in the next call that waits */
    free(b.p);
}

void pgd_cluster_remote_quit(pgd_cluster *c, int r) {
    wbuf b = {0};
    put_i32(&b, OP_QUIT);
    (void)send_msg(c->comm, r, TAG_REQ, &b);
    free(b.p);
}

/* ---- every other rank: serve one replica ---- */

typedef struct server {
    pgd_exec *exec;
    pgd_engine *eng;
    pgd_tokenizer *tok;
    pgd_clock *clock;
    int64_t *live; /* engine ids not yet reported finished */
    int64_t n_live, cap_live;
    pgd_status failed; /* the replica's failure (create or step): every later ADD/STEP gets it */
    char why[512];
    int index, fail_replica, fail_exit, fail_handoff;
    int64_t steps, fail_step;
    int prefill; /* its requests are prefill_only (a PREFILL replica of P/D) */
    pgd_comm *comm;
} server;

static void put_reply_head(wbuf *b, const server *sv) {
    put_i32(b, sv->failed);
    put_str(b, sv->failed != PGD_OK ? sv->why : NULL);
}

static void put_output(wbuf *b, int64_t eid, const pgd_request_output *o) {
    put_i64(b, eid);
    put_i32(b, reason_code(o->finish_reason));
    put_str(b, o->error);
    put_i32(b, o->n_prompt);
    put_f64(b, o->arrival);
    put_f64(b, o->first_scheduled);
    put_f64(b, o->first_token);
    put_f64(b, o->finish);
    put_i32(b, o->num_preemptions);
    put_i32(b, o->num_cached_tokens);
    put_i32(b, o->num_seqs);
    for (int k = 0; k < o->num_seqs; k++) {
        const pgd_seq_output *s = &o->seqs[k];
        put_i32(b, s->n_tokens);
        put_f64(b, s->cum_logprob);
        put_i32(b, reason_code(s->finish_reason));
        put_i32(b, s->token_times != NULL);
        put(b, s->tokens, sizeof(int32_t) * (size_t)s->n_tokens);
        if (s->token_times) put(b, s->token_times, sizeof(double) * (size_t)s->n_tokens);
    }
}

static void fail_with(server *sv, pgd_status st, const char *what) {
    sv->failed = st;
    snprintf(sv->why, sizeof sv->why, "%s%s", what, pgd_last_error());
}

static void serve_add(server *sv, rbuf *rq, wbuf *b) {
    pgd_request_params p;
    memset(&p, 0, sizeof p);
    p.n_prompt = get_i32(rq);
    int32_t *prompt = NULL, *stop_ids = NULL;
    char **stops = NULL;
    if (p.n_prompt > 0 && !rq->bad && (size_t)p.n_prompt <= rq->n) {
        prompt = malloc(sizeof *prompt * (size_t)p.n_prompt);
        if (prompt) get(rq, prompt, sizeof *prompt * (size_t)p.n_prompt);
        else rq->bad = 1;
    }
    p.prompt = prompt;
    get(rq, &p.sampling, sizeof p.sampling);
    p.max_tokens = get_i32(rq);
    p.n = get_i32(rq);
    p.beam_width = get_i32(rq);
    p.priority = get_i32(rq);
    p.arrival_time = get_f64(rq);
    p.n_stop_token_ids = get_i32(rq);
    if (p.n_stop_token_ids > 0 && !rq->bad && (size_t)p.n_stop_token_ids <= rq->n) {
        stop_ids = malloc(sizeof *stop_ids * (size_t)p.n_stop_token_ids);
        if (stop_ids) get(rq, stop_ids, sizeof *stop_ids * (size_t)p.n_stop_token_ids);
        else rq->bad = 1;
    }
    p.stop_token_ids = stop_ids;
    p.n_stop_strings = get_i32(rq);
    if (p.n_stop_strings > 0 && !rq->bad && (size_t)p.n_stop_strings <= rq->n) {
        stops = calloc((size_t)p.n_stop_strings, sizeof *stops);
        for (int i = 0; stops && i < p.n_stop_strings; i++) stops[i] = get_str(rq);
        if (!stops) rq->bad = 1;
    }
    p.stop_strings = (const char *const *)stops;
    p.true_output_len = get_i32(rq);
    p.ignore_eos = get_i32(rq);
    p.client = get_i32(rq);
    p.slo_class = get_i32(rq);
    p.ttft_slo = get_f64(rq);
    p.prefill_only = get_i32(rq);
    if (p.prefill_only) sv->prefill = 1; /* a PREFILL replica: its step replies list parked requests */
    int64_t eid = -1;
    pgd_status st;
    if (rq->bad) st = pgd_error(PGD_ERR_COMM, "malformed request from rank 0");
    else if (sv->failed != PGD_OK) st = pgd_error(sv->failed, "%s", sv->why);
    else st = pgd_engine_add_request(sv->eng, &p, &eid);
    if (st == PGD_OK && sv->n_live == sv->cap_live) {
        int64_t nc = sv->cap_live ? 2 * sv->cap_live : 64;
        int64_t *q = realloc(sv->live, sizeof *q * (size_t)nc);
        if (q) sv->live = q, sv->cap_live = nc;
        else st = pgd_error(PGD_ERR_OOM, "out of memory");
    }
    if (st == PGD_OK) sv->live[sv->n_live++] = eid;
    put_i32(b, st);
    put_str(b, st != PGD_OK ? pgd_last_error() : NULL);
    put_i64(b, eid);
    free(prompt);
    free(stop_ids);
    for (int i = 0; stops && i < p.n_stop_strings; i++) free(stops[i]);
    free(stops);
}

static void serve_step(server *sv, wbuf *b) {
    if (sv->failed == PGD_OK && sv->eng && pgd_engine_has_unfinished(sv->eng)) {
        pgd_status st;
        int nf = 0;
        if (sv->fail_replica == sv->index && sv->steps >= sv->fail_step && sv->fail_exit) {
            fprintf(stderr, "replica %d (rank %d) exits now (PAGODA_CLUSTER_FAIL_MODE=exit)\n", sv->index, sv->index);
            fflush(stderr);
            _exit(3); /* as a crash would: mpirun ends the job */
        }
        if (sv->fail_replica == sv->index && sv->steps >= sv->fail_step)
            st = pgd_error(PGD_ERR_DEVICE, "injected failure (PAGODA_CLUSTER_FAIL_REPLICA)");
        else st = pgd_engine_step(sv->eng, &nf);
        sv->steps++;
        if (st != PGD_OK) fail_with(sv, st, "");
    }
    put_reply_head(b, sv);
    pgd_engine_stats es;
    memset(&es, 0, sizeof es);
    if (sv->eng) pgd_engine_get_stats(sv->eng, &es);
    put_f64(b, sv->eng ? pgd_engine_now(sv->eng) : 0);
    put(b, &es, sizeof es);
    size_t at = b->n;
    put_i32(b, 0);
    int32_t nfin = 0;
    for (int64_t k = 0; sv->failed == PGD_OK && k < sv->n_live;) {
        const pgd_request_output *o = NULL;
        int64_t eid = sv->live[k];
        if (pgd_engine_get_output(sv->eng, eid, &o) != PGD_OK || !o->finished) {
            k++;
            continue;
        }
        put_output(b, eid, o);
        pgd_engine_release(sv->eng, eid);
        sv->live[k] = sv->live[--sv->n_live];
        nfin++;
    }
    if (!b->oom) memcpy(b->p + at, &nfin, sizeof nfin);
    /* P/D: the requests parked after their first token, for rank 0's hand-offs */
    at = b->n;
    put_i32(b, 0);
    int32_t npk = 0;
    for (int64_t k = 0; sv->prefill && sv->failed == PGD_OK && k < sv->n_live; k++) {
        const pgd_request_output *o = NULL;
        if (pgd_engine_get_output(sv->eng, sv->live[k], &o) != PGD_OK || o->finished || o->first_token < 0) continue;
        put_i64(b, sv->live[k]);
        put_i32(b, o->n_prompt);
        put(b, o->prompt, sizeof(int32_t) * (size_t)o->n_prompt);
        npk++;
    }
    if (!b->oom) memcpy(b->p + at, &npk, sizeof npk);
}

static void live_drop(server *sv, int64_t eid) {
    for (int64_t k = 0; k < sv->n_live; k++)
        if (sv->live[k] == eid) {
            sv->live[k] = sv->live[--sv->n_live];
            break;
        }
}

/* PAGODA_CLUSTER_FAIL_HANDOFF: this replica's first export or import fails (or its process exits) */
static pgd_status handoff_injected(server *sv, const char *what) {
    if (sv->fail_handoff != sv->index) return PGD_OK;
    sv->fail_handoff = -1;
    if (sv->fail_exit) {
        fprintf(stderr, "replica %d (rank %d) exits now in its %s (PAGODA_CLUSTER_FAIL_MODE=exit)\n", sv->index,
                sv->index, what);
        fflush(stderr);
        _exit(3); /* as a crash mid-transfer would: mpirun ends the job */
    }
    return pgd_error(PGD_ERR_DEVICE, "injected %s failure (PAGODA_CLUSTER_FAIL_HANDOFF)", what);
}

static void serve_export(server *sv, rbuf *rq, wbuf *b) {
    int64_t eid = get_i64(rq);
    int32_t dst = get_i32(rq);
    double t0 = sv->eng ? pgd_engine_now(sv->eng) : 0;
    void *buf = NULL;
    size_t n = 0, kvb = 0;
    pgd_status st;
    if (rq->bad || dst < 0 || dst >= pgd_comm_size(sv->comm)) {
        st = pgd_error(PGD_ERR_COMM, "malformed export request from rank 0");
        dst = -1; /* no peer to tell */
    } else if (sv->failed != PGD_OK) {
        st = pgd_error(sv->failed, "%s", sv->why);
    } else if ((st = handoff_injected(sv, "export")) == PGD_OK) {
        st = pgd_disagg_export_packed(sv->eng, eid, &buf, &n, &kvb);
    }
    char why[512];
    snprintf(why, sizeof why, "%s", st != PGD_OK ? pgd_last_error() : "");
    if (dst >= 0) { /* the importer waits for the header either way */
        pgd_status sst = send_kv(sv->comm, dst, st, why, buf, n);
        if (sst != PGD_OK && st == PGD_OK)
            st = sst, snprintf(why, sizeof why, "cannot send the KV to rank %d: %s", dst, pgd_last_error());
    }
    if (buf) { /* the bytes are out of its blocks: they go back, and the request with them */
        pgd_engine_export_sent(sv->eng, eid, pgd_engine_now(sv->eng));
        pgd_engine_release(sv->eng, eid);
        live_drop(sv, eid);
    }
    free(buf);
    put_i32(b, st);
    put_str(b, st != PGD_OK ? why : NULL);
    put_f64(b, t0);
    put_f64(b, sv->eng ? pgd_engine_now(sv->eng) : 0);
    put_i64(b, (int64_t)kvb);
    put_i64(b, (int64_t)n);
}

static void serve_import(server *sv, rbuf *rq, wbuf *b) {
    int32_t src = get_i32(rq);
    void *buf = NULL;
    size_t n = 0;
    int64_t eid = -1;
    pgd_status st;
    if (rq->bad || src < 0 || src >= pgd_comm_size(sv->comm))
        st = pgd_error(PGD_ERR_COMM, "malformed import request from rank 0");
    else if ((st = handoff_injected(sv, "import")) != PGD_OK)
        (void)recv_kv(sv->comm, src, &buf, &n); /* the bytes are taken all the same */
    else if ((st = recv_kv(sv->comm, src, &buf, &n)) != PGD_OK)
        st = pgd_error(st, "no KV from replica %d (rank %d): %s", src, src, pgd_last_error());
    else if (sv->failed != PGD_OK) st = pgd_error(sv->failed, "%s", sv->why);
    else if ((st = pgd_disagg_import_packed(sv->eng, buf, n, 0, &eid)) == PGD_OK && sv->n_live == sv->cap_live) {
        int64_t nc = sv->cap_live ? 2 * sv->cap_live : 64;
        int64_t *q = realloc(sv->live, sizeof *q * (size_t)nc);
        if (q) sv->live = q, sv->cap_live = nc;
        else st = pgd_error(PGD_ERR_OOM, "out of memory");
    }
    if (st == PGD_OK) sv->live[sv->n_live++] = eid;
    else if (eid >= 0) pgd_engine_release(sv->eng, eid);
    free(buf);
    put_i32(b, st);
    put_str(b, st != PGD_OK ? pgd_last_error() : NULL);
    put_i64(b, eid);
    put_f64(b, sv->eng ? pgd_engine_now(sv->eng) : 0);
}

static void serve_forget(server *sv, rbuf *rq) {
    int64_t eid = get_i64(rq);
    int abort = get_i32(rq);
    if (rq->bad || !sv->eng) return;
    (void)pgd_engine_abort(sv->eng, eid);
    if (abort) return; /* it finishes as "abort" and is reported by a step */
    pgd_engine_release(sv->eng, eid);
    for (int64_t k = 0; k < sv->n_live; k++)
        if (sv->live[k] == eid) {
            sv->live[k] = sv->live[--sv->n_live];
            break;
        }
}

pgd_status pgd_cluster_serve(const pgd_cluster_config *cfg, pgd_comm *comm) {
    if (!cfg || !comm) return pgd_error(PGD_ERR_INVALID, "cluster: NULL argument");
    server sv = {.index = pgd_comm_rank(comm), .fail_replica = -1, .fail_handoff = -1, .comm = comm};
    const char *fe = getenv("PAGODA_CLUSTER_FAIL_REPLICA");
    if (fe && *fe) {
        char *end;
        sv.fail_replica = (int)strtol(fe, &end, 10);
        sv.fail_step = *end == ':' ? strtoll(end + 1, NULL, 10) : 0;
    }
    const char *fh = getenv("PAGODA_CLUSTER_FAIL_HANDOFF");
    if (fh && *fh) sv.fail_handoff = (int)strtol(fh, NULL, 10);
    const char *mode = getenv("PAGODA_CLUSTER_FAIL_MODE");
    sv.fail_exit = mode && !strcmp(mode, "exit");
    /* this rank's replica, as rank 0 builds its own (its failure goes into the HELLO reply) */
    int threads = cfg->exec.backend.num_threads;
    if (threads <= 0) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        threads = nc > 0 ? (int)nc : 1;
    }
    int n = pgd_comm_size(comm);
    pgd_exec_config xc = cfg->exec;
    xc.backend.num_threads = threads / n > 0 ? threads / n : 1;
    xc.clock = NULL;
    pgd_status st;
    if ((st = pgd_exec_create(&xc, &sv.exec)) != PGD_OK) {
        fail_with(&sv, st, "cannot create its executor: ");
    } else if (pgd_exec_clock(sv.exec)) {
        fail_with(&sv,
                  pgd_error(PGD_ERR_UNSUPPORTED, "the sim's replicas share one process's event loop: run "
                                                 "them without MPI"),
                  "");
    } else if ((st = pgd_clock_create(PGD_CLOCK_REAL, &sv.clock)) != PGD_OK) {
        fail_with(&sv, st, "");
    } else {
        const pgd_tokenizer *tok = cfg->tok;
        if (!tok && cfg->tokenizer_path && *cfg->tokenizer_path) {
            if ((st = pgd_tokenizer_load_file(cfg->tokenizer_path, pgd_exec_model_config(sv.exec)->vocab_size,
                                              &sv.tok)) != PGD_OK)
                fail_with(&sv, st, "cannot load its tokenizer: ");
            tok = sv.tok;
        }
        if (!tok) tok = pgd_exec_tokenizer(sv.exec);
        pgd_engine_config ec = cfg->engine;
        ec.clock = sv.clock;
        ec.on_token = NULL; /* tokens come back with the outputs */
        if (sv.failed == PGD_OK && (st = pgd_engine_create(&ec, sv.exec, tok, &sv.eng)) != PGD_OK)
            fail_with(&sv, st, "cannot create its engine: ");
    }
    char *in = NULL;
    size_t cap = 0, len = 0;
    wbuf b = {0};
    pgd_status out = PGD_OK;
    for (;;) {
        if ((st = recv_msg(comm, 0, TAG_REQ, &in, &cap, &len)) != PGD_OK) {
            out = pgd_error(st, "replica %d (rank %d): lost rank 0: %s", sv.index, sv.index, pgd_last_error());
            break;
        }
        rbuf rq = {.p = in, .n = len};
        int32_t op = get_i32(&rq);
        b.n = 0;
        b.oom = 0;
        if (op == OP_QUIT) break;
        switch (op) {
        case OP_HELLO: {
            put_reply_head(&b, &sv);
            pgd_engine_stats es;
            memset(&es, 0, sizeof es);
            if (sv.eng) pgd_engine_get_stats(sv.eng, &es);
            put_f64(&b, sv.eng ? pgd_engine_now(sv.eng) : 0);
            put(&b, &es, sizeof es);
            break;
        }
        case OP_ADD: serve_add(&sv, &rq, &b); break;
        case OP_PREFIX: {
            int32_t np = get_i32(&rq);
            int32_t k = 0;
            if (!rq.bad && np > 0 && (size_t)np * sizeof(int32_t) <= rq.n - rq.at && sv.eng)
                k = pgd_engine_cached_prefix(sv.eng, (const int32_t *)(rq.p + rq.at), np);
            put_i32(&b, k);
            break;
        }
        case OP_STEP: serve_step(&sv, &b); break;
        case OP_EXPORT: serve_export(&sv, &rq, &b); break;
        case OP_IMPORT: serve_import(&sv, &rq, &b); break;
        case OP_FORGET: serve_forget(&sv, &rq); continue; /* no reply */
        default:
            out =
                pgd_error(PGD_ERR_COMM, "replica %d (rank %d): unknown request %d from rank 0", sv.index, sv.index, op);
            goto done;
        }
        if ((st = send_msg(comm, 0, TAG_REP, &b)) != PGD_OK) {
            out =
                pgd_error(st, "replica %d (rank %d): cannot reply to rank 0: %s", sv.index, sv.index, pgd_last_error());
            break;
        }
    }
done:
    free(in);
    free(b.p);
    free(sv.live);
    pgd_engine_destroy(sv.eng);
    pgd_tokenizer_destroy(sv.tok);
    pgd_exec_destroy(sv.exec);
    pgd_clock_destroy(sv.clock);
    if (out == PGD_OK && sv.failed != PGD_OK) /* rank 0 reported it; say it here too */
        return pgd_error(sv.failed, "replica %d (rank %d): %s", sv.index, sv.index, sv.why);
    return out;
}
