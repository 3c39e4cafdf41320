/* serve_metrics.c - /metrics of the HTTP server in the Prometheus text
 * format (version 0.0.4). Names follow vLLM's where the meaning is the
 * same, so its dashboards work: gauges vllm:num_requests_running/_waiting/
 * _swapped and vllm:kv_cache_usage_perc (with the older name
 * vllm:gpu_cache_usage_perc, the same value); counters vllm:*_total; the
 * prefix-cache counters count tokens (full blocks x block size), as
 * vLLM's do; histograms of seconds for TTFT, inter-token latency, E2E
 * latency and queueing. Pagoda's own figures have the pagoda: prefix. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve_impl.h"

static const double TTFT_B[] = {0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500};
static const double ITL_B[] = {0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2, 5, 10};
static const double E2E_B[] = {0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600};

void srv_metrics_init(srv_metrics *m, int block_size) {
    memset(m, 0, sizeof *m);
    m->block_size = block_size;
    m->ttft = (srv_hist){.bounds = TTFT_B, .nb = (int)(sizeof TTFT_B / sizeof TTFT_B[0])};
    m->queue = (srv_hist){.bounds = TTFT_B, .nb = (int)(sizeof TTFT_B / sizeof TTFT_B[0])};
    m->itl = (srv_hist){.bounds = ITL_B, .nb = (int)(sizeof ITL_B / sizeof ITL_B[0])};
    m->e2e = (srv_hist){.bounds = E2E_B, .nb = (int)(sizeof E2E_B / sizeof E2E_B[0])};
}

void srv_hist_observe(srv_hist *h, double v) {
    if (!(v >= 0)) v = 0;
    int i = 0;
    while (i < h->nb && v > h->bounds[i]) i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

typedef struct out {
    char *p;
    size_t n, cap;
    int oom;
} out;

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out *o, const char *fmt, ...) {
    if (o->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(o->p + o->n, o->cap - o->n, fmt, ap);
        va_end(ap);
        if (k < 0) { o->oom = 1; return; }
        if ((size_t)k < o->cap - o->n) { o->n += (size_t)k; return; }
        size_t c = (o->cap + (size_t)k + 1) * 2;
        char *np = realloc(o->p, c);
        if (!np) { o->oom = 1; return; }
        o->p = np;
        o->cap = c;
    }
}

static void head(out *o, const char *name, const char *type, const char *help) {
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void gauge(out *o, const char *lab, const char *name, const char *help, double v) {
    head(o, name, "gauge", help);
    put(o, "%s{%s} %.17g\n", name, lab, v);
}

static void counter(out *o, const char *lab, const char *name, const char *help, double v) {
    char base[128];
    snprintf(base, sizeof base, "%s", name);
    size_t bl = strlen(base);
    if (bl > 6 && !strcmp(base + bl - 6, "_total")) base[bl - 6] = 0;
    head(o, base, "counter", help);
    put(o, "%s{%s} %.17g\n", name, lab, v);
}

static void hist(out *o, const char *lab, const char *name, const char *help, const srv_hist *h) {
    head(o, name, "histogram", help);
    uint64_t cum = 0;
    for (int i = 0; i < h->nb; i++) {
        cum += h->counts[i];
        put(o, "%s_bucket{%s,le=\"%g\"} %llu\n", name, lab, h->bounds[i], (unsigned long long)cum);
    }
    cum += h->counts[h->nb];
    put(o, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, lab, (unsigned long long)cum);
    put(o, "%s_sum{%s} %.17g\n", name, lab, h->sum);
    put(o, "%s_count{%s} %llu\n", name, lab, (unsigned long long)h->count);
}

char *srv_metrics_text(pgd_server *s) {
    out o = {0};
    const srv_metrics *m = &s->m;
    const pgd_engine_stats *st = &m->stats;
    /* label value: the model name with \ " and newlines escaped */
    char lab[600], *d = lab;
    d += sprintf(d, "model_name=\"");
    for (const char *c = s->model_name; *c && d < lab + sizeof lab - 8; c++) {
        if (*c == '\\' || *c == '"') *d++ = '\\', *d++ = *c;
        else if (*c == '\n') *d++ = '\\', *d++ = 'n';
        else *d++ = *c;
    }
    *d++ = '"';
    *d = 0;
    double usage = st->kv.num_blocks > 0 ? (double)st->kv.used_blocks / st->kv.num_blocks : 0;
    gauge(&o, lab, "vllm:num_requests_running", "Requests in the engine's running batch.", st->num_running);
    gauge(&o, lab, "vllm:num_requests_waiting", "Requests waiting to be scheduled (in the engine and handed over).",
          st->num_waiting);
    gauge(&o, lab, "vllm:num_requests_swapped", "Requests swapped out to host memory.", st->num_swapped);
    gauge(&o, lab, "vllm:kv_cache_usage_perc", "Fraction of KV cache blocks in use (0-1).", usage);
    gauge(&o, lab, "vllm:gpu_cache_usage_perc", "Fraction of KV cache blocks in use (0-1; older name).", usage);
    counter(&o, lab, "vllm:num_preemptions_total", "Preemptions (recompute or swap).", (double)st->preemptions);
    counter(&o, lab, "vllm:prompt_tokens_total", "Prompt tokens of finished requests.", (double)m->prompt_tokens);
    counter(&o, lab, "vllm:generation_tokens_total", "Generated tokens of finished requests.", (double)m->generation_tokens);
    counter(&o, lab, "vllm:prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache (full blocks).",
            (double)st->kv.prefix_queries * m->block_size);
    counter(&o, lab, "vllm:prefix_cache_hits_total", "Prompt tokens found in the prefix cache (full blocks).",
            (double)st->kv.prefix_hits * m->block_size);
    head(&o, "vllm:request_success", "counter", "Finished requests by finish reason.");
    put(&o, "vllm:request_success_total{%s,finished_reason=\"stop\"} %llu\n", lab, (unsigned long long)m->finished_stop);
    put(&o, "vllm:request_success_total{%s,finished_reason=\"length\"} %llu\n", lab, (unsigned long long)m->finished_length);
    put(&o, "vllm:request_success_total{%s,finished_reason=\"abort\"} %llu\n", lab, (unsigned long long)m->finished_abort);
    hist(&o, lab, "vllm:time_to_first_token_seconds", "Time to first token (request body received to first token).", &m->ttft);
    hist(&o, lab, "vllm:inter_token_latency_seconds", "Time between consecutive tokens of a sequence.", &m->itl);
    hist(&o, lab, "vllm:e2e_request_latency_seconds", "Request body received to finish, of requests not aborted.", &m->e2e);
    hist(&o, lab, "vllm:request_queue_time_seconds", "Request body received to first scheduled.", &m->queue);
    gauge(&o, lab, "pagoda:kv_blocks_used", "KV cache blocks referenced by a sequence.", st->kv.used_blocks);
    gauge(&o, lab, "pagoda:kv_blocks_total", "Usable KV cache blocks.", st->kv.num_blocks);
    gauge(&o, lab, "pagoda:kv_blocks_cached", "Unreferenced blocks kept for prefix reuse.", st->kv.cached_blocks);
    gauge(&o, lab, "pagoda:requests_in_flight", "Requests accepted and not finished (bounded by --max-queue).",
          s->in_flight);
    counter(&o, lab, "pagoda:requests_rejected_total", "Requests refused with 503 (queue full or shutting down).",
            (double)m->rejected_full);
    counter(&o, lab, "pagoda:bad_requests_total", "Requests answered with a 4xx error.", (double)m->bad_requests);
    counter(&o, lab, "pagoda:requests_failed_total", "Requests the engine refused or failed.", (double)m->finished_error);
    counter(&o, lab, "pagoda:engine_steps_total", "Engine steps.", (double)st->steps);
    if (o.oom) {
        free(o.p);
        return NULL;
    }
    return o.p ? o.p : strdup("");
}
