/* workload_info.c - reading a built workload: accessors, engine request
 * parameters, the summary and one-line description, the fingerprint, and
 * the line reader the parsers share. Nothing here changes a workload. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workload/workload_impl.h"

int pgd_workload_count(const pgd_workload *w) { return w ? w->n : 0; }

const pgd_workload_request *pgd_workload_get(const pgd_workload *w, int i) {
    return w && i >= 0 && i < w->n ? &w->reqs[i].pub : NULL;
}

int pgd_workload_max_concurrency(const pgd_workload *w) { return w ? w->max_concurrency : 0; }
int pgd_workload_closed_loop(const pgd_workload *w) { return w ? w->closed_loop : 0; }

void pgd_workload_fill_params(const pgd_workload *w, int i, double t0, pgd_request_params *p) {
    const pgd_workload_request *r = pgd_workload_get(w, i);
    PGD_ASSERT(r != NULL);
    p->prompt = r->prompt;
    p->n_prompt = r->n_prompt;
    p->max_tokens = r->output_len;
    p->true_output_len = r->output_len;
    p->ignore_eos = 1;
    p->priority = r->priority;
    p->arrival_time = t0 + r->arrival;
    p->client = r->client;
    p->slo_class = r->slo_class;
    p->ttft_slo = r->ttft_slo;
}

void pgd_workload_describe(const pgd_workload *w, pgd_workload_summary *s) {
    memset(s, 0, sizeof *s);
    if (!w || w->n == 0) return;
    s->count = w->n;
    s->min_input = s->min_output = 1 << 30;
    double t_min = w->reqs[0].pub.arrival, t_max = t_min;
    for (int i = 0; i < w->n; i++) {
        const pgd_workload_request *r = &w->reqs[i].pub;
        s->total_input += r->n_prompt;
        s->total_output += r->output_len;
        if (r->n_prompt < s->min_input) s->min_input = r->n_prompt;
        if (r->n_prompt > s->max_input) s->max_input = r->n_prompt;
        if (r->output_len < s->min_output) s->min_output = r->output_len;
        if (r->output_len > s->max_output) s->max_output = r->output_len;
        if (r->arrival < t_min) t_min = r->arrival;
        if (r->arrival > t_max) t_max = r->arrival;
    }
    s->mean_input = (double)s->total_input / w->n;
    s->mean_output = (double)s->total_output / w->n;
    s->duration = t_max - t_min;
    s->rate = s->duration > 0 ? (w->n - 1) / s->duration : 0;
    s->num_clipped = w->num_clipped;
    s->num_skipped = w->num_skipped;
    s->rows_read = w->rows_read;
}

int pgd_workload_format(const pgd_workload *w, char *buf, size_t n) {
    pgd_workload_summary s;
    pgd_workload_describe(w, &s);
    return snprintf(buf, n,
                    "%d requests, input mean %.1f [%d, %d], output mean %.1f [%d, %d], "
                    "duration %.3f s (%.2f req/s)%s, %d clipped, %d skipped",
                    s.count, s.mean_input, s.min_input, s.max_input, s.mean_output, s.min_output,
                    s.max_output, s.duration, s.rate,
                    w && w->closed_loop ? ", closed loop" : "", s.num_clipped, s.num_skipped);
}

static uint64_t mix(uint64_t h, uint64_t x) { return pgd_hash64(h ^ x) + 0x632be59bd9b4e019ULL; }

uint64_t pgd_workload_fingerprint(const pgd_workload *w) {
    uint64_t h = 0x243f6a8885a308d3ULL;
    if (!w) return h;
    h = mix(h, (uint64_t)w->n);
    for (int i = 0; i < w->n; i++) {
        const pgd_workload_request *r = &w->reqs[i].pub;
        uint64_t bits;
        memcpy(&bits, &r->arrival, sizeof bits);
        h = mix(h, bits);
        h = mix(h, (uint64_t)r->n_prompt);
        h = mix(h, (uint64_t)r->output_len);
        h = mix(h, (uint64_t)(int64_t)r->priority);
        if (r->client || r->slo_class || r->ttft_slo > 0) { /* a client mix (left out otherwise: fingerprints of
                                                               runs without one stay as they were) */
            h = mix(h, (uint64_t)(int64_t)r->client);
            h = mix(h, (uint64_t)(int64_t)r->slo_class);
            h = mix(h, (uint64_t)(r->ttft_slo * 1e6));
        }
        for (int j = 0; j < r->n_prompt; j++) h = mix(h, (uint64_t)(uint32_t)r->prompt[j]);
    }
    return h;
}

long pgd_wl_getline(char **buf, size_t *cap, FILE *f) {
    size_t len = 0;
    int ch;
    if (!*buf || *cap < 2) {
        char *b = realloc(*buf, 256);
        if (!b) return -2;
        *buf = b;
        *cap = 256;
    }
    while ((ch = getc(f)) != EOF) {
        if (len + 1 >= *cap) {
            char *b = realloc(*buf, *cap * 2);
            if (!b) return -2;
            *buf = b;
            *cap *= 2;
        }
        if (ch == '\n') break;
        (*buf)[len++] = (char)ch;
    }
    if (ch == EOF && len == 0) return -1;
    while (len > 0 && (*buf)[len - 1] == '\r') len--;
    (*buf)[len] = '\0';
    return (long)len;
}
