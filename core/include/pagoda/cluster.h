/* cluster.h - data-parallel replicas behind a router: N engines, each with
 * its own executor, fed by one event loop on one timeline.
 *
 * A cluster owns N replicas. Replica r has its own executor (created from
 * cfg->exec: on the sim its own backend and virtual clock, i.e. its own
 * device; on the CPU its own backend with the host's threads split among
 * the replicas, at least 1 each) and its own engine (cfg->engine, with the
 * replica's clock). Requests get cluster ids (counting up from 0); the
 * router (core/cluster/router_*.c, found by name) picks a replica for each
 * as it is added.
 *
 * Time: the cluster's timeline is seconds since pgd_cluster_create.
 * Replica r's engine time maps onto it by a fixed offset measured at
 * create (0 for the sim's clocks, which all start together; the gap
 * between the engines' creations on the real clock), so every time a
 * cluster call returns or takes is cluster time, and outputs read through
 * pgd_cluster_get_output are shifted onto it.
 *
 * The event loop (the caller's: core/runner drives it like run_loop):
 *   while work remains:
 *     t = pgd_cluster_next_time(c)       the time of the next step
 *     add every request arriving at or before t (pgd_cluster_add_request)
 *     if pgd_cluster_busy(c): pgd_cluster_step(c) else sleep until the
 *       next arrival (pgd_cluster_idle_until)
 * - Virtual clocks (the sim): a step runs ONE engine step on the busy
 *   replica whose clock is earliest (ties: lowest index): a discrete-event
 *   loop, so the replicas run in parallel in virtual time. An arrival is
 *   routed once the earliest busy replica has reached it; the other
 *   replicas are then at most one step ahead of it (the router sees their
 *   state at their own, slightly later, time). An idle replica's clock is
 *   moved up to the arrival time when a request is routed to it.
 * - The real clock (CPU backends): a step runs one engine step on EVERY
 *   busy replica at once, each in its own worker thread (fork-join: the
 *   call returns when all have stepped). Threads, not a round-robin in one
 *   thread, so that N replicas really compute in parallel on the host's
 *   cores as N servers would; routing and output collection stay on the
 *   caller's thread between steps, so routers need no locks.
 * Determinism: a request's tokens depend only on its own sampling seed
 * (engine.h), never on which replica served it, so every router gives the
 * same tokens; on the sim routing itself is deterministic too.
 *
 * Failures: a replica whose create or step fails fails the call with
 * "replica R: <what failed>" (PGD_ERR_COMM/DEVICE/OOM as the engine said);
 * the other replicas' steps of that round still finish (no hang).
 *
 * MPI (cfg->comm): replica r runs on rank r; rank 0 routes and runs
 * replica 0, and talks to each other rank by request/reply messages
 * (cluster_mpi.c). A step sends "step" to every busy remote replica, steps
 * the local one, then takes the replies (the finished requests' outputs
 * and the replica's stats), so the ranks compute in parallel. Times from a
 * rank are mapped onto the cluster timeline by an offset measured at
 * create (request/reply, half the round trip). A rank's error comes back
 * as "replica R (rank R): ..."; a rank whose process dies ends the job
 * through mpirun. Remote outputs carry the finished request's sequences
 * and times (prompt NULL, n_prompt set). P/D over MPI: a prefill rank's
 * step reply lists its parked requests (with their prompts, for the
 * router); rank 0 calls the hand-off hook for each, which (disagg.c ->
 * pgd_cluster_remote_handoff) tells the prefill rank to export and send the
 * bytes straight to the decode rank and the decode rank to receive and
 * import them (rank 0 is an end only when it runs one of the replicas);
 * both reply to rank 0. A refused import or failed export fails the step
 * with "replica R (rank R): ..." and never leaves a rank waiting for bytes
 * (a failed exporter still sends its peer an error header).
 *
 * Prefill/decode disaggregation (the hook for the P/D mode): replicas have
 * a role (cfg->roles; NULL = all MIXED). The router only picks among
 * replicas that take new requests (MIXED and PREFILL); a request added to
 * a PREFILL replica is prefill_only (engine.h: parked after its first
 * token, its KV kept for the export). After a PREFILL
 * replica's step, for every request of it that has its first token and is
 * not finished, the cluster calls cfg->handoff (when set), which moves the
 * request to a DECODE replica: it picks one (pgd_cluster_pick_decode), moves
 * the KV state from engine to engine, and reports the move with
 * pgd_cluster_move_request so the cluster id now names the request on the
 * new replica. A hand-off that fails fails the step, naming both replicas. */
#ifndef PAGODA_CLUSTER_H
#define PAGODA_CLUSTER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pagoda/engine.h"
#include "pagoda/exec.h"
#include "pagoda/status.h"

typedef struct pgd_cluster pgd_cluster;

typedef enum pgd_replica_role {
    PGD_REPLICA_MIXED = 0, /* prefill and decode (data parallel) */
    PGD_REPLICA_PREFILL,   /* computes prompts, hands requests off after their first token */
    PGD_REPLICA_DECODE     /* takes handed-off requests only */
} pgd_replica_role;

/* What a router sees of one replica when it routes (cluster time). */
typedef struct pgd_replica_load {
    int index;
    pgd_replica_role role;
    int outstanding; /* requests routed (or moved) here and not finished */
    int kv_used_blocks, kv_num_blocks;
    double kv_usage; /* used / num blocks */
    double now;      /* the replica's clock */
} pgd_replica_load;

/* A router: picks the replica of a new request among the `n` candidates
 * (load[i].index names the replica). prompt: the request's tokens. */
typedef struct pgd_router_ops {
    const char *name;
    const char *description;
    /* returns an index into load[] (0 .. n-1) */
    int (*pick)(void *state, pgd_cluster *c, const pgd_replica_load *load, int n, const int32_t *prompt, int n_prompt);
    size_t state_size; /* zeroed state per cluster (round-robin's cursor) */
} pgd_router_ops;

/* Routers compiled in (core/cluster/router_registry.c). NULL if unknown. */
const pgd_router_ops *pgd_router_find(const char *name);
/* NULL-terminated, in registry order. */
const char *const *pgd_router_names(void);

/* Hand-off hook (disaggregation): move request `id` (cluster id) from
 * replica `from` (PREFILL) to a DECODE replica; call
 * pgd_cluster_move_request when done. */
typedef pgd_status (*pgd_cluster_handoff_fn)(void *ctx, pgd_cluster *c, int64_t id, int from);

typedef struct pgd_cluster_config {
    int replicas;                   /* >= 1 */
    const char *router;             /* NULL = "round-robin" */
    pgd_exec_config exec;           /* each replica's executor; backend.num_threads (0 = all cores) is
                                      split among the replicas; backend.clock must be NULL (each sim
                                      replica gets its own clock) */
    pgd_engine_config engine;       /* each replica's engine; .clock is set per replica (its exec's
                                      virtual clock, else a real clock); on_token gets cluster ids */
    const pgd_tokenizer *tok;       /* borrowed, may be NULL; NULL = tokenizer_path's, else the model
                                      file's own */
    const char *tokenizer_path;     /* optional: a tokenizer file loaded (by the cluster, once the
                                      model's vocabulary is known) for every replica */
    const pgd_replica_role *roles;  /* replicas entries, or NULL = all MIXED */
    pgd_cluster_handoff_fn handoff; /* NULL = no P/D hand-off */
    void *handoff_ctx;
    int serial;            /* 1: on the real clock step the replicas in the caller's thread,
                                      one after the other, instead of in worker threads */
    struct pgd_comm *comm; /* borrowed, optional: MPI ranks, one replica each (replica r on
                                      rank r; comm size = replicas). Rank 0 creates the cluster (its
                                      replica 0 local, the others remote); every other rank calls
                                      pgd_cluster_serve. Real clocks only (not the sim). */
    FILE *const *sched_traces; /* borrowed, optional: replicas entries, replica r's engine's
                                  decision trace (engine.sched_trace for each local replica;
                                  they must outlive the cluster) */
} pgd_cluster_config;

pgd_status pgd_cluster_create(const pgd_cluster_config *cfg, pgd_cluster **out);
void pgd_cluster_destroy(pgd_cluster *c);
/* An MPI rank > 0 (core/cluster/cluster_mpi.c): create this rank's replica
 * from cfg (the same config as rank 0's) and run rank 0's requests (add,
 * step, prefix query, abort, release) until rank 0 destroys its cluster.
 * Its creation or a step that fails is reported to rank 0 (which fails
 * with "replica R (rank R): ..."), then the rank waits for rank 0's end. */
pgd_status pgd_cluster_serve(const pgd_cluster_config *cfg, struct pgd_comm *comm);

int pgd_cluster_size(const pgd_cluster *c);
pgd_replica_role pgd_cluster_role(const pgd_cluster *c, int replica);
/* The replica's engine and executor; NULL for a replica on another MPI rank. */
pgd_engine *pgd_cluster_engine(pgd_cluster *c, int replica);
pgd_exec *pgd_cluster_exec(pgd_cluster *c, int replica);
/* 1 when the replicas run on virtual clocks (the sim's discrete-event loop). */
int pgd_cluster_is_virtual(const pgd_cluster *c);
const char *pgd_cluster_router_name(const pgd_cluster *c);
/* The replicas' tokenizer (cfg->tok, tokenizer_path's or the model's), or NULL. */
const pgd_tokenizer *pgd_cluster_tokenizer(const pgd_cluster *c);

/* Route and queue a request: p->arrival_time is cluster time (<= 0 = now).
 * *id gets its cluster id, *replica (may be NULL) where it went. Errors as
 * pgd_engine_add_request (a rejected request still uses no id). */
pgd_status pgd_cluster_add_request(pgd_cluster *c, const pgd_request_params *p, int64_t *id, int *replica);
/* Add on a given replica, bypassing the router (tests, P/D). */
pgd_status pgd_cluster_add_request_to(pgd_cluster *c, int replica, const pgd_request_params *p, int64_t *id);

/* 1 when some replica has unfinished requests. */
int pgd_cluster_busy(const pgd_cluster *c);
/* Cluster time now: on virtual clocks the earliest busy replica's clock
 * (the latest clock when none is busy); on the real clock the time since create. */
double pgd_cluster_now(const pgd_cluster *c);
/* Nothing busy: move time to t (virtual: every clock behind t; real: sleep). */
void pgd_cluster_idle_until(pgd_cluster *c, double t);
/* One event (see above). *stepped (may be NULL, size pgd_cluster_size) gets
 * 1 for each replica that stepped; *num_finished requests that finished. */
pgd_status pgd_cluster_step(pgd_cluster *c, int *num_finished, int *stepped);

/* The replica a request is on now, or -1 for an unknown id. */
int pgd_cluster_request_replica(const pgd_cluster *c, int64_t id);
/* Its engine id on that replica. */
int64_t pgd_cluster_request_engine_id(const pgd_cluster *c, int64_t id);
/* The cluster id of engine request engine_id on replica r, or -1 when none
 * (released, moved away by a P/D hand-off, or never added). Safe inside
 * replica r's step (its decision trace's writer). */
int64_t pgd_cluster_id_of(const pgd_cluster *c, int replica, int64_t engine_id);
/* Snapshot of a request with times on the cluster timeline (valid until the
 * next step or release). */
pgd_status pgd_cluster_get_output(pgd_cluster *c, int64_t id, const pgd_request_output **out);
void pgd_cluster_release(pgd_cluster *c, int64_t id);
pgd_status pgd_cluster_abort(pgd_cluster *c, int64_t id);

/* A replica's engine stats (a remote one's as of its latest step) and its
 * clock on the cluster timeline. */
void pgd_cluster_replica_stats(const pgd_cluster *c, int replica, pgd_engine_stats *out);
double pgd_cluster_replica_now(const pgd_cluster *c, int replica);

/* The current load of every replica (load: pgd_cluster_size entries). */
void pgd_cluster_loads(pgd_cluster *c, pgd_replica_load *load);
/* Tokens of prompt that replica r's prefix cache holds now (0 without
 * prefix caching): what the prefix-aware router asks. */
int pgd_cluster_cached_prefix(pgd_cluster *c, int replica, const int32_t *prompt, int n_prompt);
/* Map a time between replica r's engine clock and the cluster's. */
double pgd_cluster_to_cluster_time(const pgd_cluster *c, int replica, double engine_time);
double pgd_cluster_to_engine_time(const pgd_cluster *c, int replica, double cluster_time);

/* P/D: the prompt of request `id` (its replica's copy; for a replica on
 * another MPI rank the one its latest step reply carried for a parked
 * request). Valid until the next step or release. */
pgd_status pgd_cluster_request_prompt(pgd_cluster *c, int64_t id, const int32_t **prompt, int *n_prompt);
/* P/D: the DECODE replica the router picks for a handed-off request (-1 when there is none). */
int pgd_cluster_pick_decode(pgd_cluster *c, const int32_t *prompt, int n_prompt);
/* P/D: request `id` now lives on replica `to` as engine request `engine_id`
 * (the hook added it there, arrival time kept; the old replica's copy is
 * released by the cluster). */
pgd_status pgd_cluster_move_request(pgd_cluster *c, int64_t id, int to, int64_t engine_id);

#endif
