/* mlfq.c - skip-join multi-level feedback queue (FastServe, Wu et al. 2023).
 *
 * Levels 0..MLFQ_LEVELS-1, level 0 served first. A new job skips the levels
 * whose quantum its prefill would overrun: it joins the first level l with
 * prompt_len <= MLFQ_PREFILL_QUANTUM << l. While running, each step that
 * schedules it counts one iteration of its quantum; after
 * MLFQ_DECODE_QUANTUM << l iterations at level l it is demoted to l+1 (and
 * its count restarts). Within a level jobs are served by arrival. The
 * victim is the running job at the lowest level (latest arrival first).
 * State lives in the group (level, quantum_used); a recomputed or swapped
 * job keeps its level. */
#include "policy.h"

enum { MLFQ_LEVELS = 8, MLFQ_PREFILL_QUANTUM = 32, MLFQ_DECODE_QUANTUM = 16 };

static int mlfq_cmp(const pgd_sched_group *a, const pgd_sched_group *b) {
    if (a->level != b->level) return a->level < b->level ? -1 : 1;
    return pgd_group_cmp_arrival(a, b);
}

static pgd_status mlfq_create(void *self, void **state) {
    (void)self;
    return pgd_pqueue_create(mlfq_cmp, state);
}

static void mlfq_on_arrival(void *self, pgd_sched_group *g) {
    (void)self;
    int l = 0;
    while (l < MLFQ_LEVELS - 1 && g->prompt_len > (MLFQ_PREFILL_QUANTUM << l)) l++;
    g->level = l;
    g->quantum_used = 0;
}

static void mlfq_on_scheduled(void *self, pgd_sched_group *g, int new_tokens, int prefill) {
    (void)self;
    (void)prefill;
    if (new_tokens <= 0) return;
    if (++g->quantum_used >= (MLFQ_DECODE_QUANTUM << g->level) && g->level < MLFQ_LEVELS - 1) {
        g->level++;
        g->quantum_used = 0;
    }
}

const struct pgd_policy_ops pgd_policy_mlfq = {
    .name = "mlfq",
    .create = mlfq_create,
    .destroy = pgd_pqueue_destroy,
    .enqueue = pgd_pqueue_enqueue,
    .peek = pgd_pqueue_peek,
    .pop = pgd_pqueue_pop,
    .remove = pgd_pqueue_remove,
    .pick_victim = pgd_pqueue_pick_last,
    .on_scheduled = mlfq_on_scheduled,
    .on_arrival = mlfq_on_arrival,
};
