/* registry.c - the scheduling policies compiled in: one line each. */
#include <string.h>

#include "policy.h"

extern const struct pgd_policy_ops pgd_policy_fcfs, pgd_policy_priority, pgd_policy_sjf,
    pgd_policy_mlfq, pgd_policy_cache_aware, pgd_policy_cache_aware_uncached, pgd_policy_vtc, pgd_policy_slo,
    pgd_policy_sarathi;

static const struct pgd_policy_ops *const policies[] = {
    &pgd_policy_fcfs,
    &pgd_policy_priority,
    &pgd_policy_sjf,
    &pgd_policy_mlfq,
    &pgd_policy_cache_aware,
    &pgd_policy_cache_aware_uncached,
    &pgd_policy_vtc,
    &pgd_policy_slo,
    &pgd_policy_sarathi,
};

enum { NPOL = sizeof policies / sizeof policies[0] };

const struct pgd_policy_ops *pgd_policy_find(const char *name) {
    for (int i = 0; i < NPOL; i++)
        if (!strcmp(policies[i]->name, name)) return policies[i];
    return NULL;
}

const char *const *pgd_policy_names(void) {
    static const char *names[NPOL + 1];
    for (int i = 0; i < NPOL; i++) names[i] = policies[i]->name;
    names[NPOL] = NULL;
    return names;
}
