/* policy.h - the scheduling-policy interface (internal to core/sched).
 *
 * A policy orders a queue of sequence groups (waiting or swapped) and picks
 * preemption victims among running groups. Each policy is one file that
 * fills a `const struct pgd_policy_ops` (designated initializers, .name
 * first) and one line in registry.c; the scheduler loop never names a
 * policy. Only scheduler.c calls through the table.
 *
 * Contract: enqueue never fails for a group not already queued (returns
 * PGD_ERR_OOM only on allocation failure); peek/pop return NULL on an empty
 * queue; remove returns 1 if the group was queued; pick_victim returns the
 * index in `running` of the group to preempt first (n >= 1). on_scheduled
 * (optional) tells the policy a running group got `new_tokens` this step. */
#ifndef PAGODA_SCHED_POLICY_H
#define PAGODA_SCHED_POLICY_H

#include "pagoda/scheduler.h"

struct pgd_policy_ops {
    const char *name;
    pgd_status (*create)(void **state);
    void (*destroy)(void *state);
    pgd_status (*enqueue)(void *state, pgd_sched_group *g);
    pgd_sched_group *(*peek)(void *state);
    pgd_sched_group *(*pop)(void *state);
    int (*remove)(void *state, pgd_sched_group *g);
    int (*pick_victim)(void *state, pgd_sched_group *const *running, int n);
    void (*on_scheduled)(void *state, pgd_sched_group *g, int new_tokens); /* optional */
    /* Level a group joins at when first queued (optional; MLFQ's skip-join). */
    void (*on_arrival)(void *state, pgd_sched_group *g);
};

/* The registry (registry.c). NULL if unknown. */
const struct pgd_policy_ops *pgd_policy_find(const char *name);

/* A sorted queue that most policies are built on: groups ordered by a
 * comparison (ties keep insertion order). Its functions match the ops. */
typedef int (*pgd_group_cmp)(const pgd_sched_group *a, const pgd_sched_group *b);
pgd_status pgd_pqueue_create(pgd_group_cmp cmp, void **state);
void pgd_pqueue_destroy(void *state);
pgd_status pgd_pqueue_enqueue(void *state, pgd_sched_group *g);
pgd_sched_group *pgd_pqueue_peek(void *state);
pgd_sched_group *pgd_pqueue_pop(void *state);
int pgd_pqueue_remove(void *state, pgd_sched_group *g);
/* The running group that sorts last (served last = preempted first). */
int pgd_pqueue_pick_last(void *state, pgd_sched_group *const *running, int n);

/* Common tie-breakers: arrival time, then admission order. */
int pgd_group_cmp_arrival(const pgd_sched_group *a, const pgd_sched_group *b);

#endif
