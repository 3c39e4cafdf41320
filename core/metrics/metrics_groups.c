/* metrics_groups.c - per-client and per-SLO-class figures of a run
 * (metrics.h, pgd_group_summary): throughputs over the run's duration,
 * service with VTC's weights, latency statistics, SLO attainment, and
 * Jain's fairness index over the clients' service rates. */
#include <math.h>
#include <stdlib.h>

#include "metrics/metrics_impl.h"

static int group_of(int id) { return id < 0 ? 0 : id >= PGD_METRICS_MAX_GROUPS ? PGD_METRICS_MAX_GROUPS - 1 : id; }

static int good(const pgd_request_record *r, const pgd_request_derived *d, const pgd_slo *slo) {
    double ttft = r->ttft_slo > 0 ? r->ttft_slo : slo->ttft, tp = isnan(d->tpot) ? 0 : d->tpot;
    return (ttft <= 0 || (!isnan(d->ttft) && d->ttft <= ttft)) && (slo->tpot <= 0 || tp <= slo->tpot) &&
           (slo->e2e <= 0 || (!isnan(d->e2e) && d->e2e <= slo->e2e));
}

/* Service (prompt + 2 x output tokens) a request got by time t: its
 * prompt counts once its first token is out, each output token at its time. */
static double service_by(const pgd_request_record *r, double t) {
    double x = r->first_token >= 0 && r->first_token <= t ? r->prompt_tokens : 0;
    for (int j = 0; j < r->n_tokens && r->token_times[j] <= t; j++) x += 2;
    return x;
}

/* One group's figures from the requests for which key(r) == g. */
static pgd_status fill(const pgd_metrics *m, const pgd_metrics_summary *s, double win_end, int by_class, int g,
                       double *buf, pgd_group_summary *out) {
    int64_t n = m->n_reqs, good_n = 0, in = 0, outt = 0;
    size_t k[3] = {0, 0, 0};
    double *v[3] = {buf, buf + n, buf + 2 * n};
    for (int64_t i = 0; i < n; i++) {
        const pgd_request_record *r = &m->reqs[i];
        if (group_of(by_class ? r->slo_class : r->client) != g) continue;
        out->requests++;
        out->service_rate += service_by(r, win_end);
        pgd_request_derived d;
        int done = pgd_metrics_derive(r, &d);
        if (done) {
            out->completed++;
            in += r->prompt_tokens;
            outt += r->output_tokens;
            if (!isnan(d.ttft)) v[0][k[0]++] = d.ttft;
            if (!isnan(d.tpot)) v[1][k[1]++] = d.tpot;
            if (!isnan(d.e2e)) v[2][k[2]++] = d.e2e;
        }
        good_n += done && good(r, &d, &s->slo);
    }
    out->good = good_n;
    if (s->duration > 0) {
        out->request_throughput = (double)out->completed / s->duration;
        out->output_throughput = (double)outt / s->duration;
    }
    out->service_rate = win_end > s->start ? out->service_rate / (win_end - s->start) : 0;
    (void)in;
    out->slo_attainment = out->requests ? (double)good_n / (double)out->requests : 0;
    PGD_TRY(pgd_dist_stats_compute(v[0], k[0], &out->ttft));
    PGD_TRY(pgd_dist_stats_compute(v[1], k[1], &out->tpot));
    return pgd_dist_stats_compute(v[2], k[2], &out->e2e);
}

pgd_status pgd_metrics_summarize_groups(const pgd_metrics *m, pgd_metrics_summary *s) {
    int64_t n = m->n_reqs, all_good = 0;
    s->num_clients = s->num_classes = n > 0;
    for (int64_t i = 0; i < n; i++) {
        const pgd_request_record *r = &m->reqs[i];
        if (group_of(r->client) + 1 > s->num_clients) s->num_clients = group_of(r->client) + 1;
        if (group_of(r->slo_class) + 1 > s->num_classes) s->num_classes = group_of(r->slo_class) + 1;
        pgd_request_derived d;
        all_good += pgd_metrics_derive(r, &d) && good(r, &d, &s->slo);
    }
    s->slo_attainment = n ? (double)all_good / (double)n : 0;
    s->jain_fairness = 1;
    if (s->num_clients <= 1 && s->num_classes <= 1) return PGD_OK; /* nothing to split */
    /* service is measured while requests still arrive (to the last arrival), where a fair scheduler
       differs from an unfair one; with every request at once, over the whole run */
    double win_end = s->start;
    for (int64_t i = 0; i < n; i++)
        if (m->reqs[i].arrival > win_end) win_end = m->reqs[i].arrival;
    if (win_end <= s->start) win_end = s->end;
    s->service_window = win_end - s->start;
    double *buf = malloc(sizeof *buf * (size_t)(3 * (n ? n : 1)));
    if (!buf) return pgd_error(PGD_ERR_OOM, "metrics: out of memory summarizing clients");
    pgd_status st = PGD_OK;
    for (int g = 0; g < s->num_clients && st == PGD_OK; g++) st = fill(m, s, win_end, 0, g, buf, &s->clients[g]);
    for (int g = 0; g < s->num_classes && st == PGD_OK; g++) st = fill(m, s, win_end, 1, g, buf, &s->classes[g]);
    free(buf);
    double sum = 0, sq = 0; /* Jain's index over the clients that sent requests */
    int k = 0;
    for (int g = 0; g < s->num_clients; g++) {
        if (!s->clients[g].requests) continue;
        double x = s->clients[g].service_rate;
        sum += x, sq += x * x, k++;
    }
    s->jain_fairness = k > 0 && sq > 0 ? sum * sum / ((double)k * sq) : 1;
    return st;
}
