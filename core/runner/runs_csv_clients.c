/* runs_csv_clients.c - runs.csv's client and SLO-class columns, written
 * after sweep_id (scripts find them by name): Jain's fairness index over
 * the clients' service rates, the least and most served client's service
 * rate (prompt + 2 x output tokens/s), the share of requests meeting their
 * SLOs, and SLO class 0's and 1's attainment and p99 TTFT (empty when the
 * run has no such class). */
#include <stdio.h>

#include "pagoda/runner.h"

static const char *const columns[] = {"jain_fairness", "client_service_min", "client_service_max",
                                      "slo_attainment", "class0_slo_attainment", "class0_ttft_p99",
                                      "class1_slo_attainment", "class1_ttft_p99", NULL};

const char *const *pgd_runs_csv_client_columns(void) { return columns; }

static void put(char **p, size_t *left, int have, double v) {
    int k = have ? snprintf(*p, *left, ",%.9g", v) : snprintf(*p, *left, ",");
    if (k < 0 || (size_t)k >= *left) k = (int)*left - 1;
    *p += k;
    *left -= (size_t)k;
}

void pgd_runs_csv_client_values(const pgd_run_result *res, char **p, size_t *left) {
    const pgd_metrics_summary *s = &res->summary;
    double lo = 0, hi = 0;
    int any = 0;
    for (int g = 0; g < s->num_clients; g++) {
        if (!s->clients[g].requests) continue;
        double x = s->clients[g].service_rate;
        if (!any || x < lo) lo = x;
        if (!any || x > hi) hi = x;
        any = 1;
    }
    put(p, left, 1, s->jain_fairness);
    put(p, left, any, lo);
    put(p, left, any, hi);
    put(p, left, 1, s->slo_attainment);
    for (int c = 0; c < 2; c++) {
        int have = c < s->num_classes && s->classes[c].requests > 0;
        put(p, left, have, have ? s->classes[c].slo_attainment : 0);
        put(p, left, have, have ? s->classes[c].ttft.p99 : 0);
    }
}
