/* mlfq.c - skip-join multi-level feedback queue (FastServe, Wu et al. 2023).
 *
 * Levels 0..MLFQ_LEVELS-1, level 0 served first. A new job skips the levels
 * whose quantum its prefill would overrun: it joins the first level l with
 * prompt_len <= MLFQ_PREFILL_QUANTUM << l. While running, each step that
 * schedules it counts one iteration of its quantum; after
 * MLFQ_DECODE_QUANTUM << l iterations at level l it is demoted to l+1 (and
 * its count restarts). Within a level jobs are served by arrival. The
 * victim is the running job at the lowest level (latest arrival first).
 * State is the policy's per-group data (mlfq_group at g->policy_data); a
 * recomputed or swapped job keeps its level. */
#include "policy.h"

enum { MLFQ_LEVELS = 8, MLFQ_PREFILL_QUANTUM = 32, MLFQ_DECODE_QUANTUM = 16 };

typedef struct mlfq_group {
    int level;        /* 0..MLFQ_LEVELS-1 */
    int quantum_used; /* steps scheduled at this level */
} mlfq_group;

static inline mlfq_group *mg(const pgd_sched_group *g) { return g->policy_data; }

static int mlfq_cmp(const pgd_sched_group *a, const pgd_sched_group *b) {
    if (mg(a)->level != mg(b)->level) return mg(a)->level < mg(b)->level ? -1 : 1;
    return pgd_group_cmp_arrival(a, b);
}

static void mlfq_on_arrival(void *self, pgd_sched_group *g) {
    (void)self;
    int l = 0;
    while (l < MLFQ_LEVELS - 1 && g->prompt_len > (MLFQ_PREFILL_QUANTUM << l)) l++;
    mg(g)->level = l;
    mg(g)->quantum_used = 0;
}

static void mlfq_on_scheduled(void *self, pgd_sched_group *g, int new_tokens, int prefill) {
    (void)self;
    (void)prefill;
    if (new_tokens <= 0) return;
    mlfq_group *d = mg(g);
    if (++d->quantum_used >= (MLFQ_DECODE_QUANTUM << d->level) && d->level < MLFQ_LEVELS - 1) {
        d->level++;
        d->quantum_used = 0;
    }
}

const struct pgd_policy_ops pgd_policy_mlfq = {
    .name = "mlfq",
    .group_data_size = sizeof(mlfq_group),
    .order = mlfq_cmp,
    .on_scheduled = mlfq_on_scheduled,
    .on_arrival = mlfq_on_arrival,
};
