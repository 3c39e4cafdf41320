/* fcfs.c - first come, first served: order by arrival time (then admission
 * order); the latest arrival is preempted first (vLLM's default). */
#include "policy.h"

static pgd_status fcfs_create(void *self, void **state) {
    (void)self;
    return pgd_pqueue_create(pgd_group_cmp_arrival, state);
}

const struct pgd_policy_ops pgd_policy_fcfs = {
    .name = "fcfs",
    .create = fcfs_create,
    .destroy = pgd_pqueue_destroy,
    .enqueue = pgd_pqueue_enqueue,
    .peek = pgd_pqueue_peek,
    .pop = pgd_pqueue_pop,
    .remove = pgd_pqueue_remove,
    .len = pgd_pqueue_len,
    .pick_victim = pgd_pqueue_pick_last,
};
