/* metrics_impl.h - the metrics collector's internals, shared by the
 * summary code (metrics.c), the writers (metrics_write.c) and the engine
 * sampler (metrics_engine.c). Records own their token_times and
 * finish_reason; a window with end <= start means "derive from data". */
#ifndef PAGODA_METRICS_IMPL_H
#define PAGODA_METRICS_IMPL_H

#include "pagoda/metrics.h"

struct pgd_metrics {
    pgd_request_record *reqs;
    int64_t n_reqs, cap_reqs;
    pgd_timeline_sample *samples;
    int64_t n_samples, cap_samples;
    double win_start, win_end;
};

/* Per-request derived latencies (NAN = undefined: no first token, one
 * output token for tpot, never scheduled for queue). */
typedef struct pgd_request_derived {
    double ttft, tpot, e2e, norm, queue;
} pgd_request_derived;

/* Per-client and per-class figures of a summary whose other fields are
 * filled (metrics_groups.c). */
pgd_status pgd_metrics_summarize_groups(const pgd_metrics *m, pgd_metrics_summary *s);

/* 1 when the request completed ("stop"/"length" with a finish time). */
int pgd_metrics_completed(const pgd_request_record *r);
/* Fill d; returns pgd_metrics_completed(r). */
int pgd_metrics_derive(const pgd_request_record *r, pgd_request_derived *d);

#endif
