/* workload_impl.h - internals shared by the workload sources: the request
 * list, the seeded random streams and the raw-row staging area the trace
 * and dataset parsers fill before selection, clipping and arrivals.
 *
 * Invariants: every random draw comes from a pgd_rng seeded by
 * pgd_rng_stream(cfg seed, stream, index), so a request's prompt does not
 * depend on how many other requests or which arrival process there are;
 * w->reqs is sorted by arrival once pgd_workload_create returns. */
#ifndef PAGODA_WORKLOAD_IMPL_H
#define PAGODA_WORKLOAD_IMPL_H

#include <stdint.h>
#include <stdio.h>

#include "pagoda/workload.h"
#include "rows.h"
#include "util/rng.h"

/* ---- random numbers: util/rng.h; the workload's stream ids ---- */
enum { /* stream ids */
    PGD_STREAM_INPUT_LEN = 1,
    PGD_STREAM_OUTPUT_LEN,
    PGD_STREAM_ARRIVAL,
    PGD_STREAM_PRIORITY,
    PGD_STREAM_TOKENS,
    PGD_STREAM_PREFIX,
    PGD_STREAM_SAMPLE,
    PGD_STREAM_BLOCK,
};


/* ---- lengths (lengths.c) ---- */
/* Resolve DEFAULT/SHAREGPT/ALPACA into a concrete distribution for the
 * input (is_output 0) or output side; validates parameters, naming
 * `what` ("input_len", "output_len") in the message. */
pgd_status pgd_len_dist_resolve(const pgd_len_dist *d, int is_output, pgd_len_kind fallback,
                                const char *what, pgd_len_dist *out);
/* One draw (>= 1) from a resolved distribution. */
int pgd_len_dist_sample(const pgd_len_dist *d, pgd_rng *r);

/* ---- staged rows: rows.h (filled by trace.c / dataset.c) ---- */

/* trace.c */
pgd_status pgd_wl_trace_read(const pgd_workload_config *cfg, pgd_wl_rows *rs);
/* dataset.c: reads texts; pgd_wl_dataset_tokenize fills prompt/out_len of one row. */
pgd_status pgd_wl_dataset_read(const pgd_workload_config *cfg, pgd_wl_rows *rs,
                               pgd_dataset_format *fmt);
pgd_status pgd_wl_dataset_tokenize(const pgd_workload_config *cfg, pgd_wl_row *row);

/* ---- the workload ---- */
typedef struct pgd_wl_req {
    pgd_workload_request pub;
    int32_t *prompt;
    int64_t *hash_ids;
} pgd_wl_req;

struct pgd_workload {
    pgd_wl_req *reqs;
    int n;
    int max_concurrency, closed_loop;
    int num_clipped, num_skipped;
    int64_t rows_read;
    /* multi-turn (session.c): conversations, think time, history cut, context */
    int num_sessions;
    double think_time;
    int max_history, max_model_len;
};

/* session.c: build a multi-turn workload (cfg->turns != 0/1). */
pgd_status pgd_wl_sessions_create(const pgd_workload_config *cfg, pgd_workload **out);

/* Read one line of any length into *buf (grown as needed); strips \n and
 * \r. Returns length, or -1 at EOF. */
long pgd_wl_getline(char **buf, size_t *cap, FILE *f);

#endif
