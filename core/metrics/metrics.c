/* metrics.c - the metrics collector: per-request records and timeline
 * samples (owned copies), distribution statistics (numpy conventions) and
 * the run summary with vLLM's benchmark definitions (see metrics.h).
 *
 * Invariants: records and samples keep insertion order; a record owns its
 * token_times array and finish_reason string; summarizing never changes
 * the collector. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics_impl.h"

pgd_status pgd_metrics_create(pgd_metrics **out) {
    *out = calloc(1, sizeof **out);
    if (!*out) return pgd_error(PGD_ERR_OOM, "metrics: out of memory");
    return PGD_OK;
}

void pgd_metrics_destroy(pgd_metrics *m) {
    if (!m) return;
    for (int64_t i = 0; i < m->n_reqs; i++) {
        free((void *)m->reqs[i].token_times);
        free((void *)m->reqs[i].finish_reason);
        free((void *)m->reqs[i].error);
    }
    free(m->reqs);
    free(m->samples);
    free(m);
}

static pgd_status grow(void **v, int64_t *cap, int64_t n, size_t elem) {
    if (n < *cap) return PGD_OK;
    int64_t c = *cap ? *cap * 2 : 64;
    void *p = realloc(*v, (size_t)c * elem);
    if (!p) return pgd_error(PGD_ERR_OOM, "metrics: out of memory");
    *v = p;
    *cap = c;
    return PGD_OK;
}

pgd_status pgd_metrics_add_request(pgd_metrics *m, const pgd_request_record *r) {
    if (r->n_tokens < 0 || (r->n_tokens > 0 && !r->token_times) || r->prompt_tokens < 0 ||
        r->output_tokens < 0)
        return pgd_error(PGD_ERR_INVALID, "metrics: request %lld has negative or missing counts",
                         (long long)r->id);
    PGD_TRY(grow((void **)&m->reqs, &m->cap_reqs, m->n_reqs, sizeof *m->reqs));
    pgd_request_record c = *r;
    const char *fr = r->finish_reason ? r->finish_reason : "error";
    size_t fl = strlen(fr) + 1;
    char *frc = malloc(fl), *err = r->error && r->error[0] ? strdup(r->error) : NULL;
    double *tt = r->n_tokens ? malloc((size_t)r->n_tokens * sizeof *tt) : NULL;
    if (!frc || (r->n_tokens && !tt) || (r->error && r->error[0] && !err)) {
        free(frc);
        free(tt);
        free(err);
        return pgd_error(PGD_ERR_OOM, "metrics: out of memory");
    }
    c.error = err;
    memcpy(frc, fr, fl);
    if (tt) memcpy(tt, r->token_times, (size_t)r->n_tokens * sizeof *tt);
    c.finish_reason = frc;
    c.token_times = tt;
    m->reqs[m->n_reqs++] = c;
    return PGD_OK;
}

pgd_status pgd_metrics_add_output(pgd_metrics *m, const pgd_request_output *o, int priority) {
    pgd_request_record r = {
        .id = o->id,
        .arrival = o->arrival,
        .first_scheduled = o->first_scheduled,
        .first_token = o->first_token,
        .finish = o->finish,
        .prompt_tokens = o->n_prompt,
        .num_preemptions = o->num_preemptions,
        .priority = priority,
        .finish_reason = o->finish_reason ? o->finish_reason : (o->finished ? "error" : "abort"),
        .error = o->error,
        .cached_tokens = o->num_cached_tokens,
    };
    if (o->num_seqs > 0 && o->seqs) {
        r.token_times = o->seqs[0].token_times;
        r.n_tokens = o->seqs[0].n_tokens;
        r.output_tokens = o->seqs[0].n_tokens;
    }
    return pgd_metrics_add_request(m, &r);
}

void pgd_metrics_tag_last(pgd_metrics *m, int client, int slo_class, double ttft_slo) {
    if (!m || m->n_reqs == 0) return;
    pgd_request_record *r = &m->reqs[m->n_reqs - 1];
    r->client = client > 0 ? client : 0;
    r->slo_class = slo_class > 0 ? slo_class : 0;
    r->ttft_slo = ttft_slo > 0 ? ttft_slo : 0;
}

pgd_status pgd_metrics_add_sample(pgd_metrics *m, const pgd_timeline_sample *s) {
    PGD_TRY(grow((void **)&m->samples, &m->cap_samples, m->n_samples, sizeof *m->samples));
    m->samples[m->n_samples++] = *s;
    return PGD_OK;
}

pgd_status pgd_metrics_set_last_turn(pgd_metrics *m, int session, int turn, int num_turns) {
    if (m->n_reqs == 0) return pgd_error(PGD_ERR_INVALID, "metrics: no request to mark with a turn");
    pgd_request_record *r = &m->reqs[m->n_reqs - 1];
    r->session = session, r->turn = turn, r->num_turns = num_turns;
    return PGD_OK;
}

void pgd_metrics_set_window(pgd_metrics *m, double start, double end) {
    m->win_start = start;
    m->win_end = end;
}

int64_t pgd_metrics_num_requests(const pgd_metrics *m) { return m->n_reqs; }
int64_t pgd_metrics_num_samples(const pgd_metrics *m) { return m->n_samples; }

const pgd_request_record *pgd_metrics_request(const pgd_metrics *m, int64_t i) {
    return i >= 0 && i < m->n_reqs ? &m->reqs[i] : NULL;
}

const pgd_timeline_sample *pgd_metrics_sample(const pgd_metrics *m, int64_t i) {
    return i >= 0 && i < m->n_samples ? &m->samples[i] : NULL;
}

int pgd_metrics_completed(const pgd_request_record *r) {
    return r->finish >= 0 && r->finish_reason &&
           (strcmp(r->finish_reason, "stop") == 0 || strcmp(r->finish_reason, "length") == 0);
}

int pgd_metrics_derive(const pgd_request_record *r, pgd_request_derived *d) {
    d->ttft = r->first_token >= 0 && r->arrival >= 0 ? r->first_token - r->arrival : NAN;
    d->e2e = r->finish >= 0 && r->arrival >= 0 ? r->finish - r->arrival : NAN;
    d->tpot = r->output_tokens > 1 && !isnan(d->ttft) && !isnan(d->e2e)
                  ? (d->e2e - d->ttft) / (r->output_tokens - 1)
                  : NAN;
    d->norm = r->output_tokens > 0 && !isnan(d->e2e) ? d->e2e / r->output_tokens : NAN;
    d->queue = r->first_scheduled >= 0 && r->arrival >= 0 ? r->first_scheduled - r->arrival : NAN;
    return pgd_metrics_completed(r);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double pgd_percentile_sorted(const double *v, size_t n, double p) {
    if (n == 0) return 0;
    double rank = (double)(n - 1) * p / 100.0;
    size_t lo = (size_t)floor(rank), hi = (size_t)ceil(rank);
    if (hi >= n) hi = n - 1;
    return v[lo] + (v[hi] - v[lo]) * (rank - (double)lo);
}

pgd_status pgd_dist_stats_compute(const double *values, size_t n, pgd_dist_stats *out) {
    memset(out, 0, sizeof *out);
    out->count = (int64_t)n;
    if (n == 0) return PGD_OK;
    double *v = malloc(n * sizeof *v);
    if (!v) { /* no statistics rather than zeros that look measured */
        out->count = 0;
        return pgd_error(PGD_ERR_OOM, "metrics: out of memory (statistics of %zu values)", n);
    }
    memcpy(v, values, n * sizeof *v);
    qsort(v, n, sizeof *v, cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += v[i];
    out->mean = sum / (double)n;
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (v[i] - out->mean) * (v[i] - out->mean);
    out->std = sqrt(ss / (double)n);
    out->median = pgd_percentile_sorted(v, n, 50);
    out->p90 = pgd_percentile_sorted(v, n, 90);
    out->p95 = pgd_percentile_sorted(v, n, 95);
    out->p99 = pgd_percentile_sorted(v, n, 99);
    out->min = v[0];
    out->max = v[n - 1];
    free(v);
    return PGD_OK;
}

static void timeline_summary(const pgd_metrics *m, pgd_metrics_summary *s) {
    s->timeline_samples = m->n_samples;
    if (m->n_samples == 0) return;
    double bs = 0, bt = 0, ku = 0, kz = 0, sh = 0;
    int64_t n_sh = 0;
    for (int64_t i = 0; i < m->n_samples; i++) {
        const pgd_timeline_sample *t = &m->samples[i];
        bs += t->batch_seqs;
        bt += t->batch_tokens;
        ku += t->kv_usage;
        kz += t->kv_utilization;
        if (t->kv_logical_blocks > 0 && t->kv_used_blocks > 0) {
            sh += 1.0 - (double)t->kv_used_blocks / (double)t->kv_logical_blocks;
            n_sh++;
        }
        if (t->batch_seqs > s->max_batch_seqs) s->max_batch_seqs = t->batch_seqs;
        if (t->batch_tokens > s->max_batch_tokens) s->max_batch_tokens = t->batch_tokens;
        if (t->kv_usage > s->max_kv_usage) s->max_kv_usage = t->kv_usage;
    }
    double n = (double)m->n_samples;
    s->mean_batch_seqs = bs / n;
    s->mean_batch_tokens = bt / n;
    s->mean_kv_usage = ku / n;
    s->mean_kv_utilization = kz / n;
    s->mean_kv_sharing_saving = n_sh ? sh / (double)n_sh : 0;
    s->swaps = m->samples[m->n_samples - 1].swaps;
    s->prefix_hit_rate = m->samples[m->n_samples - 1].prefix_hit_rate;
}

pgd_status pgd_metrics_summarize(const pgd_metrics *m, const pgd_slo *slo,
                                 pgd_metrics_summary *s) {
    memset(s, 0, sizeof *s);
    if (slo) s->slo = *slo;
    int64_t n = m->n_reqs, n_itl = 0;
    for (int64_t i = 0; i < n; i++)
        if (m->reqs[i].n_tokens > 1) n_itl += m->reqs[i].n_tokens - 1;
    size_t nn = (size_t)(n ? n : 1);
    double *ttft = malloc(nn * sizeof(double)), *tpot = malloc(nn * sizeof(double)),
           *e2e = malloc(nn * sizeof(double)), *norm = malloc(nn * sizeof(double)),
           *queue = malloc(nn * sizeof(double)),
           *itl = malloc((size_t)(n_itl ? n_itl : 1) * sizeof(double));
    pgd_status st = PGD_OK;
    if (!ttft || !tpot || !e2e || !norm || !queue || !itl) {
        st = pgd_error(PGD_ERR_OOM, "metrics: out of memory summarizing %lld requests", (long long)n);
        goto done;
    }
    size_t k_ttft = 0, k_tpot = 0, k_e2e = 0, k_norm = 0, k_queue = 0, k_itl = 0;
    double t_first = INFINITY, t_last = -INFINITY;
    s->num_requests = n;
    for (int64_t i = 0; i < n; i++) {
        const pgd_request_record *r = &m->reqs[i];
        if (r->arrival >= 0 && r->arrival < t_first) t_first = r->arrival;
        s->preemptions += r->num_preemptions;
        pgd_request_derived d;
        if (!pgd_metrics_derive(r, &d)) {
            s->failed++;
            continue;
        }
        s->completed++;
        if (r->finish > t_last) t_last = r->finish;
        s->total_input_tokens += r->prompt_tokens;
        s->total_output_tokens += r->output_tokens;
        if (!isnan(d.ttft)) ttft[k_ttft++] = d.ttft;
        if (!isnan(d.tpot)) tpot[k_tpot++] = d.tpot;
        if (!isnan(d.e2e)) e2e[k_e2e++] = d.e2e;
        if (!isnan(d.norm)) norm[k_norm++] = d.norm;
        if (!isnan(d.queue)) queue[k_queue++] = d.queue;
        for (int j = 1; j < r->n_tokens; j++) itl[k_itl++] = r->token_times[j] - r->token_times[j - 1];
        double tp = isnan(d.tpot) ? 0 : d.tpot; /* vLLM: a 1-token request has TPOT 0 */
        int good = (s->slo.ttft <= 0 || (!isnan(d.ttft) && d.ttft <= s->slo.ttft)) &&
                   (s->slo.tpot <= 0 || tp <= s->slo.tpot) &&
                   (s->slo.e2e <= 0 || (!isnan(d.e2e) && d.e2e <= s->slo.e2e));
        s->good_requests += good;
    }
    s->start = m->win_end > m->win_start ? m->win_start : (isinf(t_first) ? 0 : t_first);
    s->end = m->win_end > m->win_start ? m->win_end : (isinf(t_last) ? s->start : t_last);
    s->duration = s->end - s->start;
    if (s->duration > 0) {
        s->request_throughput = (double)s->completed / s->duration;
        s->output_throughput = (double)s->total_output_tokens / s->duration;
        s->total_token_throughput =
            (double)(s->total_input_tokens + s->total_output_tokens) / s->duration;
        s->goodput = (double)s->good_requests / s->duration;
    }
    if ((st = pgd_dist_stats_compute(ttft, k_ttft, &s->ttft)) != PGD_OK ||
        (st = pgd_dist_stats_compute(tpot, k_tpot, &s->tpot)) != PGD_OK ||
        (st = pgd_dist_stats_compute(itl, k_itl, &s->itl)) != PGD_OK ||
        (st = pgd_dist_stats_compute(e2e, k_e2e, &s->e2e)) != PGD_OK ||
        (st = pgd_dist_stats_compute(norm, k_norm, &s->norm_latency)) != PGD_OK ||
        (st = pgd_dist_stats_compute(queue, k_queue, &s->queue_delay)) != PGD_OK)
        goto done;
    timeline_summary(m, s);
    st = pgd_metrics_summarize_groups(m, s);
done:
    free(ttft);
    free(tpot);
    free(e2e);
    free(norm);
    free(queue);
    free(itl);
    return st;
}
