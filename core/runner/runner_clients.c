/* runner_clients.c - a run's client mix and SLO classes from its config
 * ([workload] client_rates, client_burstiness, client_classes; [slo]
 * class_ttft: lists of numbers separated by commas) into the workload
 * config. The lists of one mix must be as long as client_rates. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda/runner.h"
#include "pagoda/workload.h"

/* Up to max numbers from "a, b, c"; -1 with an error naming the key. */
static int parse_list(const char *section, const char *key, const char *v, double *out, int max) {
    int n = 0;
    const char *p = v;
    while (*p) {
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) break;
        char *end;
        double x = strtod(p, &end);
        if (end == p || !isfinite(x)) {
            pgd_error(PGD_ERR_INVALID, "[%s] %s = '%s': '%.*s' is not a number (want numbers separated by commas)",
                      section, key, v, (int)strcspn(p, ","), p);
            return -1;
        }
        if (n == max) {
            pgd_error(PGD_ERR_INVALID, "[%s] %s = '%s': more than %d values", section, key, v, max);
            return -1;
        }
        out[n++] = x;
        p = end;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == ',') p++;
        else if (*p) {
            pgd_error(PGD_ERR_INVALID, "[%s] %s = '%s': expected ',' at '%s'", section, key, v, p);
            return -1;
        }
    }
    return n;
}

pgd_status pgd_run_client_mix(const pgd_run_config *rc, pgd_workload_config *wc) {
    double v[PGD_MAX_CLIENTS];
    const char *rates = pgd_run_get_str(rc, "workload", "client_rates");
    int n = parse_list("workload", "client_rates", rates, wc->client_rate, PGD_MAX_CLIENTS);
    if (n < 0) return PGD_ERR_INVALID;
    wc->num_clients = n;
    static const char *const keys[2] = {"client_burstiness", "client_classes"};
    for (int k = 0; k < 2; k++) {
        const char *s = pgd_run_get_str(rc, "workload", keys[k]);
        int m = parse_list("workload", keys[k], s, v, PGD_MAX_CLIENTS);
        if (m < 0) return PGD_ERR_INVALID;
        if (m > 0 && m != n)
            return pgd_error(PGD_ERR_INVALID, "[workload] %s = '%s' has %d values, client_rates = '%s' %d: give one "
                             "per client", keys[k], s, m, rates, n);
        for (int i = 0; i < m; i++) {
            if (k == 0) wc->client_burstiness[i] = v[i];
            else if (v[i] != floor(v[i]) || v[i] < 0 || v[i] >= PGD_MAX_CLIENTS)
                return pgd_error(PGD_ERR_INVALID, "[workload] client_classes = '%s': class %g is not an integer in "
                                 "0..%d", s, v[i], PGD_MAX_CLIENTS - 1);
            else wc->client_class[i] = (int)v[i];
        }
    }
    const char *cls = pgd_run_get_str(rc, "slo", "class_ttft");
    int c = parse_list("slo", "class_ttft", cls, wc->class_ttft_slo, PGD_MAX_CLIENTS);
    if (c < 0) return PGD_ERR_INVALID;
    wc->num_classes = c;
    return PGD_OK;
}
