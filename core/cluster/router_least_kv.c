/* router_least_kv.c - "least-kv": the replica whose KV cache has the
 * smallest share of blocks in use. A request takes its blocks only when it
 * is scheduled, so requests routed between two steps see the same usage:
 * ties go to the fewest outstanding requests, then the lowest index. */
#include "pagoda/cluster.h"

static int pick(void *state, pgd_cluster *c, const pgd_replica_load *load, int n, const int32_t *prompt, int n_prompt) {
    (void)state, (void)c, (void)prompt, (void)n_prompt;
    int best = 0;
    for (int i = 1; i < n; i++) {
        if (load[i].kv_usage < load[best].kv_usage ||
            (load[i].kv_usage == load[best].kv_usage && load[i].outstanding < load[best].outstanding))
            best = i;
    }
    return best;
}

const pgd_router_ops pgd_router_least_kv = {
    .name = "least-kv",
    .description = "smallest KV usage (ties: fewest outstanding, then lowest index)",
    .pick = pick,
};
