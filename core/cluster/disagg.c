/* disagg.c - the P/D hand-off of a cluster (disagg.h): pick the decode
 * replica, export from the prefill engine with its blocks held, the bytes
 * over a threads communicator (rank 0 = the prefill side, rank 1 = the
 * decode side) when both replicas are in this process, else through the
 * cluster's MPI ranks (cluster_mpi.c, with the same export/import helpers
 * below), the prefill blocks freed when the transfer ends, import into the
 * decode engine with the KV's ready time priced on virtual clocks, and the
 * transfer log.
 *
 * Invariants: a hand-off either moves the request (pgd_cluster_move_request)
 * or fails the step with a message naming both replicas (and their ranks
 * over MPI); the log holds one entry per moved request, in hand-off order;
 * an export's held blocks are always given an end time (sent or not). */
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster_impl.h"
#include "pagoda/comm.h"
#include "pagoda/disagg.h"

#define TAG_LEN 1
#define TAG_DATA 2

struct pgd_disagg {
    pgd_kv_link_config link;
    pgd_comm *comm[2]; /* a two-rank threads communicator: the link's ends */
    pgd_kv_transfer *log;
    int64_t n_log, cap_log;
    pgd_disagg_stats stats;
};

pgd_status pgd_disagg_create(const pgd_kv_link_config *cfg, pgd_disagg **out) {
    if (!out) return pgd_error(PGD_ERR_INVALID, "disagg: NULL argument");
    *out = NULL;
    pgd_kv_link_config l = cfg ? *cfg : (pgd_kv_link_config){.latency_us = -1};
    if (l.gbps == 0) l.gbps = PGD_KV_LINK_GBPS_DEFAULT;
    if (l.latency_us < 0) l.latency_us = PGD_KV_LINK_LATENCY_US_DEFAULT;
    if (!(l.gbps > 0) || l.gbps > 1e6 || !(l.latency_us >= 0) || l.latency_us > 1e9)
        return pgd_error(PGD_ERR_INVALID,
                         "disagg: kv_link_gbps must be in (0, 1e6] and kv_link_latency_us in "
                         "[0, 1e9] (got %g, %g)",
                         l.gbps, l.latency_us);
    pgd_disagg *d = calloc(1, sizeof *d);
    if (!d) return pgd_error(PGD_ERR_OOM, "disagg: out of memory");
    d->link = l;
    pgd_status st = pgd_comm_threads_create(2, d->comm);
    if (st != PGD_OK) {
        free(d);
        return st;
    }
    *out = d;
    return PGD_OK;
}

void pgd_disagg_destroy(pgd_disagg *d) {
    if (!d) return;
    pgd_comm_destroy(d->comm[0]);
    pgd_comm_destroy(d->comm[1]);
    free(d->log);
    free(d);
}

const pgd_kv_link_config *pgd_disagg_link(const pgd_disagg *d) { return &d->link; }

pgd_status pgd_disagg_roles(int p, int d, pgd_replica_role *roles) {
    if (p < 1 || d < 1)
        return pgd_error(PGD_ERR_INVALID,
                         "[cluster] prefill = %d, decode = %d: P/D disaggregation needs at least one "
                         "of each (or both 0 for data-parallel replicas)",
                         p, d);
    for (int i = 0; i < p + d; i++) roles[i] = i < p ? PGD_REPLICA_PREFILL : PGD_REPLICA_DECODE;
    return PGD_OK;
}

pgd_status pgd_disagg_export_packed(pgd_engine *e, int64_t eid, void **buf, size_t *n, size_t *kv_bytes) {
    *buf = NULL;
    *n = *kv_bytes = 0;
    pgd_kv_handoff *x = NULL;
    PGD_TRY(pgd_engine_export_held(e, eid, &x));
    pgd_status st = pgd_kv_handoff_pack(x, buf, n);
    *kv_bytes = x->kv_bytes;
    pgd_kv_handoff_free(x);
    if (st != PGD_OK) pgd_engine_export_sent(e, eid, 0); /* nothing will be sent: free its blocks now */
    return st;
}

pgd_status pgd_disagg_import_packed(pgd_engine *e, const void *buf, size_t n, double ready_time, int64_t *eid) {
    pgd_kv_handoff *y = NULL;
    PGD_TRY(pgd_kv_handoff_unpack(buf, n, &y));
    y->ready_time = ready_time;
    pgd_status st = pgd_engine_import(e, y, eid);
    pgd_kv_handoff_free(y);
    return st;
}

/* The hand-off's bytes through the threads communicator: a length, then the data. */
static pgd_status over_link(pgd_disagg *d, const void *buf, size_t n, void **out) {
    void *rbuf = NULL;
    uint64_t len = n, rlen = 0;
    double t0 = pgd_clock_now(NULL);
    pgd_status st = pgd_comm_send(d->comm[0], &len, sizeof len, 1, TAG_LEN);
    if (st == PGD_OK) st = pgd_comm_send(d->comm[0], buf, n, 1, TAG_DATA);
    if (st == PGD_OK) st = pgd_comm_recv(d->comm[1], &rlen, sizeof rlen, 0, TAG_LEN);
    if (st == PGD_OK && !(rbuf = malloc(rlen ? rlen : 1))) st = pgd_error(PGD_ERR_OOM, "disagg: out of memory");
    if (st == PGD_OK) st = pgd_comm_recv(d->comm[1], rbuf, rlen, 0, TAG_DATA);
    d->stats.comm_seconds += pgd_clock_now(NULL) - t0;
    if (st != PGD_OK) {
        free(rbuf);
        rbuf = NULL;
    }
    *out = rbuf;
    return st;
}

/* Both replicas in this process: export, the bytes over the threads link, import. */
static pgd_status local_handoff(pgd_disagg *d, pgd_cluster *c, int64_t id, int from, int to, pgd_kv_transfer *t,
                                int64_t *neid) {
    pgd_engine *pe = pgd_cluster_engine(c, from), *de = pgd_cluster_engine(c, to);
    int64_t eid = pgd_cluster_request_engine_id(c, id);
    void *buf = NULL, *rbuf = NULL;
    size_t n = 0;
    t->start = t->ready = pgd_cluster_to_cluster_time(c, from, pgd_engine_now(pe)); /* before the copy */
    pgd_status st = pgd_disagg_export_packed(pe, eid, &buf, &n, &t->kv_bytes);
    if (st != PGD_OK)
        return pgd_error(st, "request %lld: export from replica %d: %s", (long long)id, from, pgd_last_error());
    t->wire_bytes = n;
    st = over_link(d, buf, n, &rbuf);
    free(buf);
    /* the bytes are out of the prefill replica's blocks: freed when the transfer ends
     * (the sim: at the priced arrival on its own clock; real clocks: now) */
    double ready_time = 0;
    if (pgd_cluster_is_virtual(c)) {
        t->ready = t->start + d->link.latency_us * 1e-6 + (double)t->kv_bytes * 8.0 / (d->link.gbps * 1e9);
        double de_now = pgd_engine_now(de); /* absolute = engine time + (clock - engine time) */
        ready_time =
            pgd_clock_now(pgd_engine_get_config(de)->clock) - de_now + pgd_cluster_to_engine_time(c, to, t->ready);
        pgd_engine_export_sent(pe, eid, pgd_cluster_to_engine_time(c, from, t->ready));
    } else {
        pgd_engine_export_sent(pe, eid, pgd_engine_now(pe));
    }
    if (st != PGD_OK)
        return pgd_error(st, "request %lld: KV link from replica %d to replica %d: %s", (long long)id, from, to,
                         pgd_last_error());
    st = pgd_disagg_import_packed(de, rbuf, n, ready_time, neid);
    free(rbuf);
    if (st != PGD_OK)
        return pgd_error(st, "request %lld: import from replica %d into replica %d: %s", (long long)id, from, to,
                         pgd_last_error());
    if (!pgd_cluster_is_virtual(c)) t->ready = pgd_cluster_now(c);
    return PGD_OK;
}

static pgd_status log_push(pgd_disagg *d, const pgd_kv_transfer *t) {
    if (d->n_log == d->cap_log) {
        int64_t cap = d->cap_log ? 2 * d->cap_log : 64;
        pgd_kv_transfer *p = realloc(d->log, sizeof *p * (size_t)cap);
        if (!p) return pgd_error(PGD_ERR_OOM, "disagg: out of memory");
        d->log = p;
        d->cap_log = cap;
    }
    d->log[d->n_log++] = *t;
    return PGD_OK;
}

pgd_status pgd_disagg_handoff(void *ctx, pgd_cluster *c, int64_t id, int from) {
    pgd_disagg *d = ctx;
    const int32_t *prompt = NULL;
    int n_prompt = 0;
    PGD_TRY(pgd_cluster_request_prompt(c, id, &prompt, &n_prompt));
    int to = pgd_cluster_pick_decode(c, prompt, n_prompt);
    if (to < 0)
        return pgd_error(PGD_ERR_INVALID, "request %lld: no decode replica to hand it to from replica %d",
                         (long long)id, from);
    pgd_kv_transfer t = {.request = id, .from = from, .to = to};
    int64_t neid = -1;
    if (pgd_cluster_engine(c, from) && pgd_cluster_engine(c, to)) {
        PGD_TRY(local_handoff(d, c, id, from, to, &t, &neid));
    } else { /* an end on another MPI rank (cluster_mpi.c): the bytes go rank to rank */
        double t0 = pgd_clock_now(NULL);
        pgd_status st = pgd_cluster_remote_handoff(c, id, from, to, &t, &neid);
        d->stats.comm_seconds += pgd_clock_now(NULL) - t0;
        PGD_TRY(st);
    }
    PGD_TRY(pgd_cluster_move_request(c, id, to, neid));
    PGD_TRY(log_push(d, &t));
    d->stats.transfers++;
    d->stats.kv_bytes += (double)t.kv_bytes;
    d->stats.link_seconds += t.ready - t.start;
    if (t.ready - t.start > d->stats.max_link_seconds) d->stats.max_link_seconds = t.ready - t.start;
    return PGD_OK;
}

void pgd_disagg_get_stats(const pgd_disagg *d, pgd_disagg_stats *out) { *out = d->stats; }
int64_t pgd_disagg_num_transfers(const pgd_disagg *d) { return d->n_log; }
const pgd_kv_transfer *pgd_disagg_transfer(const pgd_disagg *d, int64_t i) {
    return i >= 0 && i < d->n_log ? &d->log[i] : NULL;
}
