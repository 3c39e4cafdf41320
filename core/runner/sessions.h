/* sessions.h - the runner's arrival loop for multi-turn workloads
 * (pgd_workload_num_sessions > 0): a conversation's first turn is added at
 * its arrival; turn k is added think_time after turn k-1 finished, with a
 * prompt of the conversation's history (earlier messages and the engine's
 * actual outputs) plus its message (pgd_workload_turn_prompt). A turn that
 * fails ends its conversation: its later turns are recorded as failed
 * ("error": the earlier turn failed), never dropped. At most
 * max_concurrency turns are in flight (0 = unlimited; a turn held back
 * counts from its submission, as in the single-turn loop). Times on the engine
 * clock; every turn's record carries its conversation, turn and the prompt
 * tokens the prefix cache served. */
#ifndef PAGODA_RUNNER_SESSIONS_H
#define PAGODA_RUNNER_SESSIONS_H

#include "pagoda/runner.h"
#include "pagoda/workload.h"

typedef struct pgd_session_loop {
    /* in (borrowed) */
    pgd_engine *eng;
    pgd_workload *wl;
    pgd_metrics *m;
    const pgd_run_config *rc;
    const pgd_run_options *opts; /* may be NULL */
    pgd_clock *clock;
    /* out */
    int n, done, rejected;       /* turns in all, recorded, refused by the engine */
    int64_t tokens;
    uint64_t token_hash;         /* as the single-turn loop: per workload index */
    double t_start, t_end;
} pgd_session_loop;

pgd_status pgd_run_sessions(pgd_session_loop *s);

#endif
