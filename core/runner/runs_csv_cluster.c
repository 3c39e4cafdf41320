/* runs_csv_cluster.c - runs.csv's cluster columns, written last (scripts
 * find them by name; prefixed so that a swept cluster.replicas or
 * cluster.router column, named by its key, does not share their name): the
 * replicas and the router ([cluster]; 1 and empty for one engine), and over the replicas the least and most requests
 * routed to one, the worst p90 TTFT, the highest mean KV usage and the
 * lowest and highest prefix hit rate (empty for one engine: the run's own
 * columns hold them). */
#include <stdio.h>

#include "pagoda/runner.h"

static const char *const columns[] = {"cluster_replicas",
                                      "cluster_router",
                                      "replica_requests_min",
                                      "replica_requests_max",
                                      "replica_ttft_p90_max",
                                      "replica_kv_usage_max",
                                      "replica_prefix_hit_rate_min",
                                      "replica_prefix_hit_rate_max",
                                      NULL};

const char *const *pgd_runs_csv_cluster_columns(void) { return columns; }

static void put(char **p, size_t *left, int have, double v) {
    int k = have ? snprintf(*p, *left, ",%.9g", v) : snprintf(*p, *left, ",");
    if (k < 0 || (size_t)k >= *left) k = (int)*left - 1;
    *p += k;
    *left -= (size_t)k;
}

void pgd_runs_csv_cluster_values(const pgd_run_result *res, char **p, size_t *left) {
    int have = res->replicas > 1;
    put(p, left, 1, have ? res->replicas : 1);
    int k = snprintf(*p, *left, ",%s", have ? res->router : "");
    if (k < 0 || (size_t)k >= *left) k = (int)*left - 1;
    *p += k;
    *left -= (size_t)k;
    const double v[] = {res->replica_requests_min, res->replica_requests_max,        res->replica_ttft_p90_max,
                        res->replica_kv_usage_max, res->replica_prefix_hit_rate_min, res->replica_prefix_hit_rate_max};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) put(p, left, have, v[i]);
}
