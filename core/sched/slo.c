/* slo.c - SLO-aware order: SLO classes as strict priorities (class 0
 * first), and within a class the earliest TTFT deadline first (EDF;
 * deadline = arrival + the class's TTFT SLO, given per request; a request
 * without one sorts after those with one), then arrival. The victim is
 * the running group that sorts last (the least urgent class, the latest
 * deadline). */
#include "policy.h"

static int slo_cmp(const pgd_sched_group *a, const pgd_sched_group *b) {
    if (a->slo_class != b->slo_class) return a->slo_class < b->slo_class ? -1 : 1;
    int ha = a->ttft_deadline > 0, hb = b->ttft_deadline > 0;
    if (ha != hb) return ha ? -1 : 1;
    if (ha && a->ttft_deadline != b->ttft_deadline) return a->ttft_deadline < b->ttft_deadline ? -1 : 1;
    return pgd_group_cmp_arrival(a, b);
}

const struct pgd_policy_ops pgd_policy_slo = {
    .name = "slo",
    .order = slo_cmp,
};
