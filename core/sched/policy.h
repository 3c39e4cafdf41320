/* policy.h - the scheduling-policy interface (internal to core/sched).
 *
 * A policy orders a queue of sequence groups (waiting or swapped), picks
 * preemption victims among running groups and, optionally, decides
 * admission, the split of a step's token budget between the running groups
 * and new prefills, and the prefill chunk of each group. Each policy is one
 * file that fills a `const struct pgd_policy_ops` (designated initializers,
 * .name first) and one line in registry.c; the scheduler loop never names a
 * policy. Only policy_call.c calls through the table (every call has a
 * wrapper there, with the default behaviour of an absent optional op).
 *
 * Objects: a policy object (`self`) is created once per scheduler by init
 * (optional; NULL without it) with the environment it may consult (the KV
 * manager, the budgets); its two queues are created separately by
 * create(self, &queue), so policy-wide state (VTC's client counters) is
 * shared by both queues. Per-request inputs a policy may read are in the
 * group (client, slo_class, ttft_deadline, priority, lengths). State a
 * policy keeps per group (MLFQ's level) is its own struct of
 * group_data_size bytes: the scheduler allocates it with the group, zeroed,
 * and g->policy_data points to it; its layout is private to the policy.
 *
 * A sorted queue: most policies are one queue in one order. Such a policy
 * gives its comparison in .order and leaves the queue ops (create through
 * pick_victim) NULL: its queues are then pgd_pqueue's in that order and its
 * victim is the running group that sorts last (pgd_pqueue_pick_last). A
 * policy with a queue of its own gives every queue op instead.
 *
 * Contract: enqueue never fails for a group not already queued (returns
 * PGD_ERR_OOM only on allocation failure); peek/pop return NULL on an empty
 * queue and pop returns what peek returned just before (a policy whose
 * order changes over time, such as cache-aware, remembers its last peek);
 * remove returns 1 if the group was queued; len is the number queued (the
 * scheduler's only count of its waiting and swapped groups); pick_victim returns the index
 * in `running` of the group to preempt first (n >= 1). on_scheduled
 * (optional) tells the policy a running group got `new_tokens` this step,
 * `prefill` of them prompt (or recomputed) tokens.
 *
 * Hooks (optional; absent = today's behaviour):
 *  - may_admit: may the waiting head g start now? 0 = it waits ("policy" in
 *    the decision trace). Ignored while nothing runs and nothing is swapped
 *    (an idle engine always admits, so a hook cannot stall the engine).
 *  - prefill_budget: of the `left` tokens the running groups left of this
 *    step's budget `total`, how many new admissions may take (<= left).
 *  - chunk_limit: the most prompt tokens group g may compute this step
 *    (>= 1). Both budget hooks apply only where a prompt may be split
 *    (chunked prefill on, or a group larger than a whole step), so a
 *    prompt that must run whole is never held back by them. */
#ifndef PAGODA_SCHED_POLICY_H
#define PAGODA_SCHED_POLICY_H

#include "pagoda/scheduler.h"

/* What a policy may consult (borrowed for the scheduler's lifetime). */
typedef struct pgd_policy_env {
    pgd_kv_manager *kv;
    int block_size;
    int max_num_batched_tokens, max_num_seqs, chunked_prefill;
} pgd_policy_env;

/* An order of groups: < 0 when a is served before b (a sorted queue's order). */
typedef int (*pgd_group_cmp)(const pgd_sched_group *a, const pgd_sched_group *b);

/* The running set as admission sees it. */
typedef struct pgd_policy_view {
    pgd_sched_group *const *running;
    int n_running, n_waiting, n_swapped;
} pgd_policy_view;

struct pgd_policy_ops {
    const char *name;
    size_t group_data_size; /* bytes of per-group data at g->policy_data (0: none, NULL) */
    pgd_status (*init)(const pgd_policy_env *env, void **self); /* optional */
    void (*fini)(void *self);                                     /* optional */
    pgd_group_cmp order; /* a sorted queue's order: set it and leave the queue ops below NULL */
    /* the queue ops: all of them, or none with .order */
    pgd_status (*create)(void *self, void **queue);
    void (*destroy)(void *queue);
    pgd_status (*enqueue)(void *queue, pgd_sched_group *g);
    pgd_sched_group *(*peek)(void *queue);
    pgd_sched_group *(*pop)(void *queue);
    int (*remove)(void *queue, pgd_sched_group *g);
    int (*len)(const void *queue); /* groups queued */
    int (*pick_victim)(void *queue, pgd_sched_group *const *running, int n);
    void (*on_scheduled)(void *self, pgd_sched_group *g, int new_tokens, int prefill); /* optional */
    /* A group arrived, before it is first queued (optional; MLFQ's skip-join sets its level). */
    void (*on_arrival)(void *self, pgd_sched_group *g);
    /* A group left the scheduler (finished, aborted or dropped; optional). */
    void (*on_removed)(void *self, pgd_sched_group *g);
    int (*may_admit)(void *self, const pgd_sched_group *g, const pgd_policy_view *v);
    int (*prefill_budget)(void *self, int total, int left);
    int (*chunk_limit)(void *self, const pgd_sched_group *g, int left);
};

/* The registry (registry.c). NULL if unknown. */
const struct pgd_policy_ops *pgd_policy_find(const char *name);

/* A sorted queue that most policies are built on (.order), and policies
 * with a queue of their own may wrap: groups ordered by a comparison (ties
 * keep insertion order). Its functions match the ops. */
pgd_status pgd_pqueue_create(pgd_group_cmp cmp, void **state);
void pgd_pqueue_destroy(void *state);
pgd_status pgd_pqueue_enqueue(void *state, pgd_sched_group *g);
pgd_sched_group *pgd_pqueue_peek(void *state);
pgd_sched_group *pgd_pqueue_pop(void *state);
int pgd_pqueue_remove(void *state, pgd_sched_group *g);
/* The running group that sorts last (served last = preempted first). */
int pgd_pqueue_pick_last(void *state, pgd_sched_group *const *running, int n);
/* Queued groups, in order (for policies that scan their queue). */
int pgd_pqueue_len(const void *state);
pgd_sched_group *pgd_pqueue_at(const void *state, int i);

/* Common tie-breakers: arrival time, then admission order. */
int pgd_group_cmp_arrival(const pgd_sched_group *a, const pgd_sched_group *b);

#endif
