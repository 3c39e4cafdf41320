/* sjf.c - shortest job first: by true output length when the workload
 * knows it (an oracle), else by prompt length; then arrival. The longest
 * running job is preempted first. Jobs with a known length sort before
 * jobs without one. */
#include "policy.h"

static int sjf_cmp(const pgd_sched_group *a, const pgd_sched_group *b) {
    int ka = a->true_output_len > 0, kb = b->true_output_len > 0;
    if (ka != kb) return ka ? -1 : 1;
    int la = ka ? a->true_output_len : a->prompt_len, lb = kb ? b->true_output_len : b->prompt_len;
    if (la != lb) return la < lb ? -1 : 1;
    return pgd_group_cmp_arrival(a, b);
}

const struct pgd_policy_ops pgd_policy_sjf = {
    .name = "sjf",
    .order = sjf_cmp,
};
