/* priority.c - request priority (lower value first), then arrival; the
 * lowest-priority, latest-arriving running group is preempted first. */
#include "policy.h"

static int priority_cmp(const pgd_sched_group *a, const pgd_sched_group *b) {
    if (a->priority != b->priority) return a->priority < b->priority ? -1 : 1;
    return pgd_group_cmp_arrival(a, b);
}

const struct pgd_policy_ops pgd_policy_priority = {
    .name = "priority",
    .order = priority_cmp,
};
