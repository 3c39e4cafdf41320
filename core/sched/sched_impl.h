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

/* A preemption as the decision trace tells it. */
typedef struct pgd_sched_trace_pre {
    int64_t req, for_req; /* for_req: the group whose blocks it freed (-1: none) */
    int why;              /* 0: blocks for for_req; 1: an append ran out of blocks; 2: recomputed to share
                             its prefix again */
} pgd_sched_trace_pre;

struct pgd_scheduler {
    pgd_sched_config cfg;
    pgd_kv_manager *kv; /* borrowed */
    pgd_kv_caps kv_caps; /* what the KV manager can do (fork, static batch) */
    int block_size;
    int *lens; /* (max_num_seqs) scratch: sequence lengths for the KV manager's block queries */
    const struct pgd_policy_ops *pol;
    void *pol_self;          /* the policy object (NULL if it has none) */
    void *waiting, *swapped; /* policy queues */
    pgd_sched_group **running;
    int n_running, cap_running;
    int reserved_seqs;
    int n_in_flight;         /* groups in flight (max_in_flight > 1) */
    int held_blocks;         /* allocated outside the scheduler, coming back (pgd_scheduler_set_held_blocks) */
    const void *starved;     /* the waiting head that found too little of a step's token budget left
                                after the running groups (admitted first next step), or NULL */
    int64_t next_seq_id, next_order, total_preemptions, total_swaps; /* swaps: preemptions that swapped out */
    int step_no;
    /* plan storage, reused every step */
    pgd_sched_plan plan;
    int cap_items, cap_ops, cap_pre, cap_drop;
    pgd_kv_copy *copybuf;
    int cap_copy;
    /* the step's decisions for the trace (cfg.trace): why the waiting head
       waits, what each preemption was for, who came in */
    const char *wait_why;
    pgd_sched_trace_pre *tr_pre;
    int n_tr_pre, cap_tr_pre;
    int64_t *tr_in; /* admitted, then swapped in, as tr_kind says */
    char *tr_kind;
    int n_tr_in, cap_tr_in;
};

/* Policy calls (policy_call.c): the only calls through the ops table. */
pgd_status pgd_pol_init(pgd_scheduler *s);
void pgd_pol_fini(pgd_scheduler *s);
pgd_status pgd_pol_enqueue(pgd_scheduler *s, void *q, pgd_sched_group *g);
pgd_sched_group *pgd_pol_peek(pgd_scheduler *s, void *q);
pgd_sched_group *pgd_pol_pop(pgd_scheduler *s, void *q);
int pgd_pol_remove(pgd_scheduler *s, void *q, pgd_sched_group *g);
/* Groups in a queue (the scheduler keeps no counters of its own). */
int pgd_pol_len(const pgd_scheduler *s, const void *q);
int pgd_pol_pick_victim(pgd_scheduler *s, pgd_sched_group *const *running, int n);
void pgd_pol_arrival(pgd_scheduler *s, pgd_sched_group *g);
void pgd_pol_scheduled(pgd_scheduler *s, pgd_sched_group *g, int new_tokens, int prefill);
void pgd_pol_removed(pgd_scheduler *s, pgd_sched_group *g);
int pgd_pol_may_admit(pgd_scheduler *s, const pgd_sched_group *g);
int pgd_pol_prefill_budget(pgd_scheduler *s, int total, int left);
int pgd_pol_chunk_limit(pgd_scheduler *s, const pgd_sched_group *g, int left);
/* Whether the policy has the op (the caller then skips the work for it). */
static inline int pgd_pol_wants_scheduled(const pgd_scheduler *s) { return s->pol->on_scheduled != NULL; }
static inline int pgd_pol_has_chunk_limit(const pgd_scheduler *s) { return s->pol->chunk_limit != NULL; }

/* Grow-on-demand pushes for the plan (PGD_ERR_OOM on failure). */
pgd_status pgd_sched_push_op(pgd_scheduler *s, int kind, int32_t src, int32_t dst);
pgd_status pgd_sched_running_push(pgd_scheduler *s, pgd_sched_group *g);
void pgd_sched_running_remove(pgd_scheduler *s, pgd_sched_group *g);
/* Release every sequence's KV (recompute state: computed = 0). */
void pgd_sched_release_kv(pgd_scheduler *s, pgd_sched_group *g);
/* Decision trace (sched_trace.c): record and write one step. */
pgd_status pgd_sched_trace_pre_push(pgd_scheduler *s, int64_t req, int64_t for_req, int why);
pgd_status pgd_sched_trace_in_push(pgd_scheduler *s, int64_t req, char kind);
void pgd_sched_trace_write(pgd_scheduler *s);

/* Make room in copybuf for n copies. */
pgd_status pgd_sched_copybuf(pgd_scheduler *s, int n);

#endif
