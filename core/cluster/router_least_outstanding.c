/* router_least_outstanding.c - "least-outstanding": the replica with the
 * fewest requests routed to it and not finished (Llumnix's and vLLM's
 * router's least-load). Ties: the lowest replica index. */
#include "pagoda/cluster.h"

static int pick(void *state, pgd_cluster *c, const pgd_replica_load *load, int n, const int32_t *prompt, int n_prompt) {
    (void)state, (void)c, (void)prompt, (void)n_prompt;
    int best = 0;
    for (int i = 1; i < n; i++)
        if (load[i].outstanding < load[best].outstanding) best = i;
    return best;
}

const pgd_router_ops pgd_router_least_outstanding = {
    .name = "least-outstanding",
    .description = "fewest unfinished requests (ties: lowest index)",
    .pick = pick,
};
