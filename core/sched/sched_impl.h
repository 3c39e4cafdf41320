/* sched_impl.h - the scheduler's internal state, shared by scheduler.c
 * (queues, requests, sequences) and sched_step.c (the per-step planner).
 *
 * Invariants: every live group is in exactly one of the waiting queue, the
 * swapped queue or the running array, matching its state; reserved_seqs is
 * the sum of max_seqs over running groups and never exceeds max_num_seqs;
 * a sequence with in_kv set is registered with the KV manager and the
 * manager holds exactly `computed` of its tokens. */
#ifndef PAGODA_SCHED_IMPL_H
#define PAGODA_SCHED_IMPL_H

#include "policy.h"

struct pgd_scheduler {
    pgd_sched_config cfg;
    pgd_kv_manager *kv; /* borrowed */
    pgd_kv_kind kind;
    int block_size;
    const struct pgd_policy_ops *pol;
    void *waiting, *swapped; /* policy queues */
    int n_waiting, n_swapped;
    pgd_sched_group **running;
    int n_running, cap_running;
    int reserved_seqs;
    int n_in_flight;         /* groups in flight (max_in_flight > 1) */
    const void *starved;     /* the waiting head that found too little of a step's token budget left
                                after the running groups (admitted first next step), or NULL */
    int64_t next_seq_id, next_order, total_preemptions;
    int step_no;
    /* plan storage, reused every step */
    pgd_sched_plan plan;
    int cap_items, cap_ops, cap_pre, cap_drop;
    pgd_kv_copy *copybuf;
    int cap_copy;
};

/* Grow-on-demand pushes for the plan (PGD_ERR_OOM on failure). */
pgd_status pgd_sched_push_op(pgd_scheduler *s, int kind, int32_t src, int32_t dst);
pgd_status pgd_sched_running_push(pgd_scheduler *s, pgd_sched_group *g);
void pgd_sched_running_remove(pgd_scheduler *s, pgd_sched_group *g);
/* Release every sequence's KV (recompute state: computed = 0). */
void pgd_sched_release_kv(pgd_scheduler *s, pgd_sched_group *g);
/* Make room in copybuf for n copies. */
pgd_status pgd_sched_copybuf(pgd_scheduler *s, int n);

#endif
