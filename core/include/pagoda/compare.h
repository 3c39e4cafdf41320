/* compare.h - regression checks between two results (`pagoda compare`).
 *
 * Inputs are summary.json files, run directories (holding summary.json) or
 * experiment directories (one run directory per run, paired by name).
 * Every numeric field of a summary is flattened to a dotted name
 * ("ttft.p99", "engine.steps") and classified:
 *   throughput (higher is better): *throughput, goodput
 *   latency (lower is better): ttft.*, tpot.*, itl.*, e2e.*,
 *     normalized_latency.*, queue_delay.* (mean, median, std, p90, p99)
 *   counts, lower is better: preemptions, swaps, failed, engine.steps,
 *     engine.preemptions, engine.tokens_computed
 *   counts, higher is better: completed, good_requests, batch.mean_*,
 *     kv.mean_utilization, prefix_hit_rate, engine.prefix_hits
 *   must be equal: total_input_tokens, total_output_tokens,
 *     engine.tokens_generated, workload.requests, and the string
 *     fingerprints (workload.fingerprint, token_fingerprint)
 *   anything else: information only (never a regression).
 * change = (current - baseline) / |baseline| in percent (baseline 0:
 * 0 if both are 0, else +-inf). A metric regresses when it moves the
 * wrong way by more than its class's threshold (percent), or, for the
 * must-be-equal class, differs at all.
 *
 * Missing is a failure, never a skip: a judged (non-info) metric of the
 * baseline that CURRENT lacks, or holds with another type, is a MISSING
 * row; so is a baseline run absent from CURRENT. Run directories must be
 * complete (results.h: complete.json present and summary.json matching
 * it) on both sides, else an INCOMPLETE row naming the directory; an
 * interrupted write (.<run>.partial) in either experiment directory is an
 * INCOMPLETE row for that run; a CURRENT run that its runs.csv does not
 * list, or lists with another sweep_id, is STALE. A summary.json named as
 * a file is read as is. */
#ifndef PAGODA_COMPARE_H
#define PAGODA_COMPARE_H

#include <stdio.h>

#include "pagoda/status.h"

struct json_t;

typedef enum pgd_cmp_class {
    PGD_CMP_INFO = 0,
    PGD_CMP_THROUGHPUT,   /* higher better, throughput_pct */
    PGD_CMP_LATENCY,      /* lower better, latency_pct */
    PGD_CMP_COUNT_LOWER,  /* lower better, counts_pct */
    PGD_CMP_COUNT_HIGHER, /* higher better, counts_pct */
    PGD_CMP_EQUAL,        /* must not change */
} pgd_cmp_class;

typedef struct pgd_compare_thresholds {
    double throughput_pct; /* max drop; default 5 */
    double latency_pct;    /* max rise; default 10 */
    double counts_pct;     /* max change for the worse; default 10 */
    char metrics[512];     /* comma list of names or globs ("ttft.*"); "" = all */
} pgd_compare_thresholds;

typedef struct pgd_compare_row {
    char run[128];
    char metric[96];
    pgd_cmp_class cls;
    int is_string;
    double base, cur;          /* numbers */
    char sbase[40], scur[40];  /* strings (fingerprints) */
    double change_pct;
    double limit_pct;          /* signed: -5 = may drop 5%, +10 = may rise 10%, 0 = equal */
    const char *verdict;       /* "ok", "better", "REGRESSION", "info"; or a problem: "MISSING"
                                  (a judged metric, or a run, absent from CURRENT), "INCOMPLETE"
                                  (a run without a whole complete.json), "STALE" (a run that
                                  runs.csv does not describe) */
    char note[512];            /* problems: what is wrong, naming the path */
} pgd_compare_row;

typedef struct pgd_compare_report {
    pgd_compare_row *rows;
    int n, cap;
    int regressions, compared;
    int missing;               /* problem rows (MISSING, INCOMPLETE, STALE): a failure like a regression */
    int runs;
} pgd_compare_report;

void pgd_compare_thresholds_default(pgd_compare_thresholds *t);
/* Read the [compare] section of an INI file (experiment config or a run's
 * config.ini) over t; other sections are ignored. Errors name file/line/key. */
pgd_status pgd_compare_thresholds_load(const char *path, pgd_compare_thresholds *t);
pgd_cmp_class pgd_compare_classify(const char *metric);
const char *pgd_cmp_class_name(pgd_cmp_class c);

/* Compare two summary objects; rows are appended under run name `run`. */
pgd_status pgd_compare_json(const struct json_t *base, const struct json_t *cur, const char *run,
                            const pgd_compare_thresholds *t, pgd_compare_report *rep);
/* Compare two paths (files, run dirs or experiment dirs). PGD_ERR_IO /
 * PGD_ERR_FORMAT / PGD_ERR_INVALID (naming the path) on bad input (a path
 * that does not exist, unreadable JSON, a run against an experiment);
 * missing and incomplete runs are problem rows (rep->missing), not errors. */
pgd_status pgd_compare_paths(const char *base, const char *cur, const pgd_compare_thresholds *t,
                             pgd_compare_report *rep);
/* The table (judged rows; all rows with all = 1). */
void pgd_compare_print(const pgd_compare_report *rep, int all, FILE *f);
struct json_t *pgd_compare_report_json(const pgd_compare_report *rep, const pgd_compare_thresholds *t,
                                       const char *base, const char *cur);
void pgd_compare_report_free(pgd_compare_report *rep);

#endif
