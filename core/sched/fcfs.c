/* fcfs.c - first come, first served: order by arrival time (then admission
 * order); the latest arrival is preempted first (vLLM's default). */
#include "policy.h"

const struct pgd_policy_ops pgd_policy_fcfs = {
    .name = "fcfs",
    .order = pgd_group_cmp_arrival,
};
