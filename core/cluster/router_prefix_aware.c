/* router_prefix_aware.c - "prefix-aware": the replica whose prefix cache
 * holds the longest prefix of the prompt (each replica's KV manager is
 * asked: pgd_cluster_cached_prefix, the cache-aware policy's query), as
 * SGLang's cache-aware router. Ties between equal positive matches: the
 * fewest outstanding requests, then the lowest index. No match anywhere
 * (or prefix caching off): least-outstanding. Load guard: a match is not
 * taken when its replica has more than PREFIX_BALANCE more outstanding
 * requests than the least-loaded one (then least-outstanding), so a hot
 * prefix does not pile every request onto one replica. */
#include "pagoda/cluster.h"

#define PREFIX_BALANCE 8

static int pick(void *state, pgd_cluster *c, const pgd_replica_load *load, int n, const int32_t *prompt, int n_prompt) {
    (void)state;
    int least = 0, best = -1, best_hit = 0;
    for (int i = 1; i < n; i++)
        if (load[i].outstanding < load[least].outstanding) least = i;
    for (int i = 0; i < n; i++) {
        int hit = pgd_cluster_cached_prefix(c, load[i].index, prompt, n_prompt);
        if (hit <= 0) continue;
        if (hit > best_hit || (hit == best_hit && load[i].outstanding < load[best].outstanding))
            best = i, best_hit = hit;
    }
    if (best < 0 || load[best].outstanding > load[least].outstanding + PREFIX_BALANCE) return least;
    return best;
}

const pgd_router_ops pgd_router_prefix_aware = {
    .name = "prefix-aware",
    .description = "longest cached prompt prefix (ties: fewest outstanding; no match: least-outstanding)",
    .pick = pick,
};
