/* priority.c - request priority (lower value first), then arrival; the
 * lowest-priority, latest-arriving running group is preempted first. */
#include "policy.h"

static int priority_cmp(const pgd_sched_group *a, const pgd_sched_group *b) {
    if (a->priority != b->priority) return a->priority < b->priority ? -1 : 1;
    return pgd_group_cmp_arrival(a, b);
}

static pgd_status priority_create(void *self, void **state) {
    (void)self;
    return pgd_pqueue_create(priority_cmp, state);
}

const struct pgd_policy_ops pgd_policy_priority = {
    .name = "priority",
    .create = priority_create,
    .destroy = pgd_pqueue_destroy,
    .enqueue = pgd_pqueue_enqueue,
    .peek = pgd_pqueue_peek,
    .pop = pgd_pqueue_pop,
    .remove = pgd_pqueue_remove,
    .len = pgd_pqueue_len,
    .pick_victim = pgd_pqueue_pick_last,
};
