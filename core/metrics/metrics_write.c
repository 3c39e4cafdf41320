/* metrics_write.c - the result files of a run: summary.json (jansson),
 * requests.csv and timeline.csv (column lists in metrics.h). Times are
 * printed with %.9f (nanosecond resolution on the engine clock), other
 * reals with %.9g; undefined derived values are empty CSV fields. Each
 * writer writes a temporary file and renames it over the path (results.h):
 * the path holds the whole file or is untouched, and a failure is
 * PGD_ERR_IO naming the path. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "metrics/metrics_impl.h"
#include "pagoda/results.h"

static json_t *dist_json(const pgd_dist_stats *d) {
    return json_pack("{s:I,s:f,s:f,s:f,s:f,s:f,s:f,s:f}", "count", (json_int_t)d->count, "mean",
                     d->mean, "median", d->median, "std", d->std, "p90", d->p90, "p99", d->p99,
                     "min", d->min, "max", d->max);
}

/* Clients and SLO classes (metrics.h), when the run has more than one of
 * either. 0 on success. */
static int groups_json(json_t *o, const pgd_metrics_summary *s) {
    if (s->num_clients <= 1 && s->num_classes <= 1) return 0;
    const struct {
        const char *key;
        const pgd_group_summary *v;
        int n;
    } sets[2] = {{"clients", s->clients, s->num_clients}, {"classes", s->classes, s->num_classes}};
    for (int k = 0; k < 2; k++) {
        json_t *a = json_array();
        if (!a || json_object_set_new(o, sets[k].key, a)) return -1;
        for (int g = 0; g < sets[k].n; g++) {
            const pgd_group_summary *v = &sets[k].v[g];
            json_t *e = json_pack("{s:i,s:I,s:I,s:f,s:f,s:f,s:f}", "id", g, "requests", (json_int_t)v->requests,
                                  "completed", (json_int_t)v->completed, "request_throughput", v->request_throughput,
                                  "output_throughput", v->output_throughput, "service_rate", v->service_rate,
                                  "slo_attainment", v->slo_attainment);
            if (!e || json_array_append_new(a, e) || json_object_set_new(e, "ttft", dist_json(&v->ttft)) ||
                json_object_set_new(e, "tpot", dist_json(&v->tpot)) || json_object_set_new(e, "e2e", dist_json(&v->e2e)))
                return -1;
        }
    }
    return json_object_set_new(o, "jain_fairness", json_real(s->jain_fairness)) ||
           json_object_set_new(o, "slo_attainment", json_real(s->slo_attainment)) ||
           json_object_set_new(o, "service_window_s", json_real(s->service_window));
}

json_t *pgd_metrics_summary_to_json(const pgd_metrics_summary *s) {
    json_t *o = json_pack(
        "{s:I,s:I,s:I,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:I,s:{s:f,s:f,s:f},s:I,s:I,s:I,s:I,s:f}",
        "num_requests", (json_int_t)s->num_requests, "completed", (json_int_t)s->completed,
        "failed", (json_int_t)s->failed, "start_s", s->start, "end_s", s->end, "duration_s",
        s->duration, "request_throughput", s->request_throughput, "output_throughput",
        s->output_throughput, "total_token_throughput", s->total_token_throughput, "goodput",
        s->goodput, "good_requests", (json_int_t)s->good_requests, "slo", "ttft_s", s->slo.ttft,
        "tpot_s", s->slo.tpot, "e2e_s", s->slo.e2e, "total_input_tokens",
        (json_int_t)s->total_input_tokens, "total_output_tokens",
        (json_int_t)s->total_output_tokens, "preemptions", (json_int_t)s->preemptions, "swaps",
        (json_int_t)s->swaps, "prefix_hit_rate", s->prefix_hit_rate);
    if (!o) return NULL;
    struct {
        const char *key;
        const pgd_dist_stats *d;
    } dists[] = {{"ttft", &s->ttft}, {"tpot", &s->tpot}, {"itl", &s->itl}, {"e2e", &s->e2e},
                 {"normalized_latency", &s->norm_latency}, {"queue_delay", &s->queue_delay}};
    for (size_t i = 0; i < sizeof dists / sizeof *dists; i++)
        if (json_object_set_new(o, dists[i].key, dist_json(dists[i].d))) goto fail;
    if (json_object_set_new(o, "batch",
                            json_pack("{s:f,s:f,s:i,s:i,s:I}", "mean_seqs", s->mean_batch_seqs,
                                      "mean_tokens", s->mean_batch_tokens, "max_seqs",
                                      s->max_batch_seqs, "max_tokens", s->max_batch_tokens,
                                      "samples", (json_int_t)s->timeline_samples)) ||
        json_object_set_new(o, "kv",
                            json_pack("{s:f,s:f,s:f,s:f}", "mean_usage", s->mean_kv_usage, "max_usage",
                                      s->max_kv_usage, "mean_utilization", s->mean_kv_utilization,
                                      "mean_sharing_saving", s->mean_kv_sharing_saving)))
        goto fail;
    if (groups_json(o, s) != 0) goto fail;
    return o;
fail:
    json_decref(o);
    return NULL;
}

pgd_status pgd_metrics_write_summary_json(const pgd_metrics_summary *s, json_t *extra,
                                          const char *path) {
    json_t *o = pgd_metrics_summary_to_json(s);
    if (!o) return pgd_error(PGD_ERR_OOM, "metrics: cannot build the summary JSON for %s", path);
    if (extra && json_is_object(extra)) json_object_update(o, extra);
    pgd_status st = pgd_results_write_json(o, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(9), path);
    json_decref(o);
    return st;
}

static void put_time(FILE *f, double t, const char *sep) {
    if (isnan(t) || t < 0)
        fprintf(f, "%s", sep);
    else
        fprintf(f, "%.9f%s", t, sep);
}

static void put_real(FILE *f, double v, const char *sep) {
    if (isnan(v))
        fprintf(f, "%s", sep);
    else
        fprintf(f, "%.9g%s", v, sep);
}

/* An RFC 4180 field: quoted (quotes doubled) when it holds a comma, quote or
 * line break; line breaks become spaces. */
static void put_text(FILE *f, const char *s) {
    if (!s) return;
    int q = strpbrk(s, ",\"\r\n") != NULL;
    if (q) fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputs("\"\"", f);
        else fputc(*s == '\n' || *s == '\r' ? ' ' : *s, f);
    }
    if (q) fputc('"', f);
}

pgd_status pgd_metrics_write_requests_csv(const pgd_metrics *m, const char *path) {
    char tmp[4300];
    FILE *f;
    PGD_TRY(pgd_results_open(path, tmp, sizeof tmp, &f));
    fprintf(f, "id,priority,arrival,first_scheduled,first_token,finish,prompt_tokens,"
               "output_tokens,ttft,tpot,e2e,normalized_latency,queue_delay,num_preemptions,"
               "finish_reason,error,session,turn,cached_tokens,prefix_hit_rate,client,slo_class\n");
    for (int64_t i = 0; i < m->n_reqs; i++) {
        const pgd_request_record *r = &m->reqs[i];
        pgd_request_derived d;
        pgd_metrics_derive(r, &d);
        fprintf(f, "%lld,%d,", (long long)r->id, r->priority);
        put_time(f, r->arrival, ",");
        put_time(f, r->first_scheduled, ",");
        put_time(f, r->first_token, ",");
        put_time(f, r->finish, ",");
        fprintf(f, "%d,%d,", r->prompt_tokens, r->output_tokens);
        put_real(f, d.ttft, ",");
        put_real(f, d.tpot, ",");
        put_real(f, d.e2e, ",");
        put_real(f, d.norm, ",");
        put_real(f, d.queue, ",");
        fprintf(f, "%d,%s,", r->num_preemptions, r->finish_reason);
        put_text(f, r->error);
        if (r->num_turns > 0) fprintf(f, ",%d,%d,", r->session, r->turn);
        else fputs(",,,", f);
        fprintf(f, "%d,", r->cached_tokens);
        put_real(f, r->prompt_tokens > 0 ? (double)r->cached_tokens / r->prompt_tokens : NAN, ",");
        fprintf(f, "%d,%d\n", r->client, r->slo_class);
    }
    return pgd_results_commit(f, tmp, path);
}

pgd_status pgd_metrics_write_timeline_csv(const pgd_metrics *m, const char *path) {
    char tmp[4300];
    FILE *f;
    PGD_TRY(pgd_results_open(path, tmp, sizeof tmp, &f));
    fprintf(f, "time,step,running,waiting,swapped,batch_seqs,batch_tokens,kv_used_blocks,"
               "kv_num_blocks,kv_usage,kv_utilization,kv_fragmentation,preemptions,swaps,"
               "prefix_hit_rate\n");
    for (int64_t i = 0; i < m->n_samples; i++) {
        const pgd_timeline_sample *t = &m->samples[i];
        fprintf(f, "%.9f,%lld,%d,%d,%d,%d,%d,%d,%d,", t->time, (long long)t->step, t->running,
                t->waiting, t->swapped, t->batch_seqs, t->batch_tokens, t->kv_used_blocks,
                t->kv_num_blocks);
        put_real(f, t->kv_usage, ",");
        put_real(f, t->kv_utilization, ",");
        put_real(f, t->kv_fragmentation, ",");
        fprintf(f, "%lld,%lld,", (long long)t->preemptions, (long long)t->swaps);
        put_real(f, t->prefix_hit_rate, "\n");
    }
    return pgd_results_commit(f, tmp, path);
}

json_t *pgd_metrics_turns_json(const pgd_metrics *m) {
    int max_turn = -1;
    for (int64_t i = 0; i < m->n_reqs; i++)
        if (m->reqs[i].num_turns > 0 && m->reqs[i].turn > max_turn) max_turn = m->reqs[i].turn;
    if (max_turn < 0) return NULL;
    json_t *arr = json_array();
    for (int t = 0; arr && t <= max_turn; t++) {
        int64_t n = 0, done = 0, prompt = 0, cached = 0;
        double ttft = 0, e2e = 0;
        for (int64_t i = 0; i < m->n_reqs; i++) {
            const pgd_request_record *r = &m->reqs[i];
            if (r->num_turns <= 0 || r->turn != t) continue;
            n++;
            prompt += r->prompt_tokens;
            cached += r->cached_tokens;
            pgd_request_derived d;
            if (pgd_metrics_derive(r, &d)) {
                done++;
                ttft += d.ttft;
                e2e += d.e2e;
            }
        }
        json_array_append_new(arr, json_pack("{s:i,s:I,s:I,s:f,s:f,s:f,s:f,s:f}", "turn", t, "requests", (json_int_t)n,
                                             "completed", (json_int_t)done,
                                             "mean_prompt_tokens", n ? (double)prompt / n : 0.0,
                                             "mean_cached_tokens", n ? (double)cached / n : 0.0,
                                             "prefix_hit_rate", prompt ? (double)cached / prompt : 0.0,
                                             "ttft_mean", done ? ttft / done : 0.0, "e2e_mean", done ? e2e / done : 0.0));
    }
    return arr;
}
