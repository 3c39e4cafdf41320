/* sessions.h - the runner's arrival loop for multi-turn workloads
 * (pgd_workload_num_sessions > 0): a conversation's first turn is added at
 * its arrival; turn k is added think_time after turn k-1 finished, with a
 * prompt of the conversation's history (earlier messages and the engine's
 * actual outputs) plus its message (pgd_workload_turn_prompt). A turn that
 * fails ends its conversation: its later turns are recorded as failed
 * ("error": the earlier turn failed), never dropped. At most
 * max_concurrency turns are in flight (0 = unlimited; a turn held back
 * counts from its submission, as in the single-turn loop). Every turn's
 * record carries its conversation, turn and the prompt tokens the prefix
 * cache served.
 *
 * One loop, two drivers: one engine (runner.c: set eng and clock; times on
 * the engine clock) or anything behind a pgd_session_target (runner_cluster.c:
 * the replicas of a cluster behind its router, times on the cluster's
 * timeline; each turn is routed like any request, so a prefix-aware router
 * sees the history cached where the previous turn ran). */
#ifndef PAGODA_RUNNER_SESSIONS_H
#define PAGODA_RUNNER_SESSIONS_H

#include "pagoda/runner.h"
#include "pagoda/workload.h"

/* What the loop drives. Ids are the target's; times are on its timeline. */
typedef struct pgd_session_target {
    void *ctx;
    int real_time; /* 1: idle_until sleeps (the loop waits in 0.1 s slices to see a stop request) */
    double (*now)(void *ctx);
    int (*busy)(void *ctx); /* unfinished requests */
    /* Queue a turn (p->arrival_time on the target's timeline); *where (-1 = not known) names the
     * replica for a rejection's message. OOM, DEVICE and COMM fail the run; another error rejects
     * the turn. */
    pgd_status (*add)(void *ctx, const pgd_request_params *p, int64_t *id, int *where);
    pgd_status (*get_output)(void *ctx, int64_t id, const pgd_request_output **out);
    /* Optional: a finished turn was just recorded in the loop's metrics (before its release). */
    pgd_status (*recorded)(void *ctx, int64_t id, const pgd_request_output *o, const pgd_workload_request *wr);
    void (*release)(void *ctx, int64_t id);
    /* One step and its timeline samples; *num_finished requests finished; fills p's steps,
     * running, waiting and kv_usage. */
    pgd_status (*step)(void *ctx, int *num_finished, pgd_run_progress *p);
    void (*idle_until)(void *ctx, double t); /* nothing busy: move time to t */
} pgd_session_target;

typedef struct pgd_session_loop {
    /* in (borrowed) */
    const pgd_session_target *target; /* NULL = drive eng on clock */
    pgd_engine *eng;
    pgd_clock *clock;
    pgd_workload *wl;
    pgd_metrics *m;
    const pgd_run_config *rc;
    const pgd_run_options *opts; /* may be NULL */
    /* out */
    int n, done, rejected;       /* turns in all, recorded, refused by the engine */
    int64_t tokens;
    uint64_t token_hash;         /* as the single-turn loop: per workload index */
    double t_start, t_end;
} pgd_session_loop;

pgd_status pgd_run_sessions(pgd_session_loop *s);

#endif
