/* cluster_impl.h - the replica set's internals, shared by cluster.c (local
 * replicas: threads, the sim) and cluster_mpi.c (replicas on other MPI
 * ranks, behind a request/reply protocol). */
#ifndef PAGODA_CLUSTER_IMPL_H
#define PAGODA_CLUSTER_IMPL_H

#include <pthread.h>

#include "pagoda/cluster.h"
#include "pagoda/comm.h"

typedef struct replica {
    pgd_exec *exec;
    pgd_engine *eng;
    pgd_replica_role role;
    double off;      /* cluster time = engine time + off */
    int outstanding; /* = n_live */
    int64_t *live;   /* engine ids of its unfinished requests */
    int64_t n_live, cap_live;
    int64_t *cid; /* engine id -> cluster id (-1 = none) */
    int64_t n_cid, cap_cid;
    struct pgd_cluster *c;
    int index;
    /* worker */
    pthread_t th;
    int has_thread, go, nf;
    pgd_status st;
    char err[512];
    int64_t steps;
    /* a replica on another MPI rank (cluster_mpi.c): rank = index; its engine's stats and
     * clock as of its latest reply */
    int remote;
    pgd_engine_stats rstats;
    double rnow; /* its engine time */
    /* P/D: its parked requests as of its latest step reply (engine ids, prompts at pk_at[i] in pk_tok) */
    int64_t *pk_eid;
    int64_t *pk_at;
    int32_t *pk_tok;
    int n_pk, cap_pk;
    int64_t cap_pk_tok;
} replica;

typedef struct req_slot {
    int replica; /* -1 = released */
    int64_t eid;
    int finished;             /* counted out of outstanding */
    pgd_request_output *rout; /* a remote replica's finished output (owned; cluster_mpi.c) */
} req_slot;

struct pgd_cluster {
    pgd_cluster_config cfg;
    char router_name[64];
    int n, virt;
    replica *r;
    pgd_clock *real_clock; /* owned, when no replica has a virtual clock and the caller gave none */
    pgd_clock *shared;     /* the clock of every replica on the real timeline */
    pgd_tokenizer *own_tok;
    const pgd_tokenizer *tok;
    const pgd_router_ops *router;
    void *rstate;
    req_slot *reqs;
    int64_t n_reqs, cap_reqs;
    /* worker threads (real clock, not serial) */
    pthread_mutex_t mu;
    pthread_cond_t cv_go, cv_done;
    int pending, quit, have_sync;
    /* shifted output scratch */
    pgd_request_output out;
    pgd_seq_output *seqs;
    int cap_seqs;
    double **times;
    int *cap_times;
    /* injected failure (PAGODA_CLUSTER_FAIL_REPLICA=R[:STEP]) */
    int fail_replica;
    int64_t fail_step;
    pgd_replica_load *loads;
    pgd_comm *comm; /* borrowed: MPI ranks (replica r on rank r), or NULL */
    char *msg;      /* message scratch (cluster_mpi.c) */
    size_t msg_cap;
};


/* cluster_mpi.c: rank 0's side of the protocol. Each fails with "replica R
 * (rank R): ..." when the rank reports an error or the transport fails. */
pgd_status pgd_cluster_remote_hello(pgd_cluster *c, int r);
pgd_status pgd_cluster_remote_add(pgd_cluster *c, int r, const pgd_request_params *p, int64_t *eid);
int pgd_cluster_remote_cached_prefix(pgd_cluster *c, int r, const int32_t *prompt, int n_prompt);
pgd_status pgd_cluster_remote_step_begin(pgd_cluster *c, int r);
/* the reply: every request that finished (stored as req_slot.rout), the stats */
pgd_status pgd_cluster_remote_step_end(pgd_cluster *c, int r, int *num_finished);
void pgd_cluster_remote_forget(pgd_cluster *c, int r, int64_t eid, int abort);
void pgd_cluster_remote_quit(pgd_cluster *c, int r);
/* P/D when replica `from` or `to` is on another rank: export cluster request
 * `id` on `from`, its bytes rank to rank, import on `to`; fills t's bytes
 * and times and *neid (its engine id on `to`). Errors name the replica and rank. */
struct pgd_kv_transfer;
pgd_status pgd_cluster_remote_handoff(pgd_cluster *c, int64_t id, int from, int to, struct pgd_kv_transfer *t,
                                      int64_t *neid);
void pgd_cluster_free_output(pgd_request_output *o);

#endif
