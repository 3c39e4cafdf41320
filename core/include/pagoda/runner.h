/* runner.h - executes one run of an experiment: loads the model, builds the
 * engine and the workload from the run's resolved config, feeds requests
 * to the engine as the clock passes their arrival times (sleeping to the
 * next arrival when the engine is idle; at most `concurrency` in flight),
 * steps the engine until every request has finished, and records each
 * request and one timeline sample per step into pgd_metrics.
 *
 * Time: every time is on the engine clock (seconds since the engine was
 * created). With the real clock, requests arrive while the engine computes;
 * a request is added at the first step boundary after its arrival but keeps
 * its arrival time (its wait counts in its latency). A request held back
 * by the concurrency limit counts from its submission (vLLM's client).
 *
 * Multi-turn workloads (pgd_workload_num_sessions > 0) run through
 * runner/sessions.h: turn k is added think_time after turn k-1 finished,
 * its prompt the history with the engine's actual outputs.
 *
 * Determinism: the request list is a function of the config (seed); every
 * request's sampling seed is experiment seed + its workload index, so its
 * tokens do not depend on timing, batching or preemption. token_fingerprint
 * hashes every request's output tokens (by workload index). */
#ifndef PAGODA_RUNNER_H
#define PAGODA_RUNNER_H

#include <signal.h>
#include <stdint.h>

#include "pagoda/backend.h"
#include "pagoda/clock.h"
#include "pagoda/config.h"
#include "pagoda/engine.h"
#include "pagoda/metrics.h"

typedef struct pgd_run_progress {
    int done, total;      /* requests finished / to send */
    int64_t tokens;       /* output tokens so far */
    double elapsed;       /* engine clock seconds */
    int64_t steps;
    int running, waiting; /* the engine's queues after the step */
    double kv_usage;      /* KV blocks in use / blocks */
} pgd_run_progress;

typedef void (*pgd_run_progress_cb)(void *ctx, const pgd_run_progress *p);

typedef struct pgd_run_options {
    pgd_clock *clock;               /* borrowed; NULL = a real clock */
    pgd_run_progress_cb on_progress; /* optional, called after every step */
    void *progress_ctx;
    const volatile sig_atomic_t *stop; /* optional: when it becomes non-zero (a signal handler),
                                          the run stops between steps with an error */
} pgd_run_options;

typedef struct pgd_run_result {
    pgd_metrics *metrics;           /* owned; freed by pgd_run_result_free */
    pgd_metrics_summary summary;
    pgd_engine_stats stats;
    int num_requests;               /* sent to the engine (after the duration cut) */
    int rejected;                   /* requests the engine refused (recorded as "error") */
    uint64_t workload_fingerprint;
    uint64_t token_fingerprint;
    double wall_time;               /* seconds of real time the run took */
    char model_desc[160];           /* "random:stories15M (15.2M params, f32)" */
    char backend_desc[160];
    char workload_desc[256];        /* pgd_workload_format */
    char layout_desc[160];          /* parallel layout (pgd_model_layout_str) */
    int threads;
    int worker;                     /* this process served the driver (an mpirun rank > 0): no results */
    char sweep_id[64];              /* set by the caller before writing: the `pagoda run` that wrote it
                                       (summary.json, complete.json, runs.csv); "" = none */
    /* Where the measured run's time went (op_times.csv). run_time: engine
     * clock seconds from the start of the arrival loop to its end. op_times:
     * pgd_backend_op_times of the model's backend, reset when the loop
     * starts (weight loading and engine setup are not counted); under
     * tp/pp > 1 this is the driver's (rank 0's) backend only. The step
     * phases are stats.schedule/forward/logits_seconds (the engine is
     * created for the run, so they cover the loop's steps). */
    double run_time;
    /* Pipeline stages of the sim (one clock each): stage s's device was busy
     * for stage_busy[s] of run_time's seconds (0 stages elsewhere). */
    int num_stages;
    double stage_busy[64];
    pgd_op_time op_times[PGD_BACKEND_NUM_OPS];
    int num_op_times;
    /* The load: offered_rate = (requests sent - 1) / the span of their
     * arrival times (INFINITY when they all arrive at once, a closed loop
     * included); achieved rate = summary.request_throughput. */
    double offered_rate;
    /* [experiment] trace_steps = on: the scheduler's decision trace (JSON
     * lines, scheduler.h), written as steps.jsonl; owned, NULL when off. A cluster's: every
     * replica's lines with "replica":R first and cluster ids (core/runner/cluster_trace.h). */
    char *steps_trace;
    size_t steps_trace_len;
    struct json_t *extra;           /* borrowed, optional: more summary.json fields (`pagoda bench
                                       serve`: the client, the URL); merged last */
    /* [cluster] replicas > 1 (runner_cluster.c, cluster.h): summary, stats, timeline and op times
     * above are the cluster's (stats and op times summed over the replicas, the timeline one
     * sample per cluster step with the replicas' queues and KV blocks summed); `cluster` is
     * summary.json's "cluster" section {replicas, router, per_replica: [{replica, requests,
     * steps, prefix_queries, prefix_hits, summary: the replica's metrics summary over the
     * cluster's window}]} (owned; NULL for one engine); runs.csv's cluster columns come from
     * the replicas, router and replica_* fields (runs_csv_cluster.c: cluster_replicas,
     * cluster_router, replica_*; 1 and empty for one engine). */
    struct json_t *cluster;
    int replicas;
    char router[32];
    double replica_requests_min, replica_requests_max, replica_ttft_p90_max, replica_kv_usage_max,
        replica_prefix_hit_rate_min, replica_prefix_hit_rate_max;
    /* [cluster] prefill/decode (runner_disagg.c): kv_transfers.csv, one row per KV hand-off
     * (request,from,to,kv_bytes,start,ready on the cluster timeline); NULL otherwise */
    char *kv_transfers_csv;
    size_t kv_transfers_csv_len;
} pgd_run_result;

/* The workload run rc replays, built as pgd_run_execute builds it, for a
 * model of this vocabulary and context (tok may be NULL; a dataset needs
 * one), with the duration cut applied (*n_sent: the requests arriving
 * within [workload] duration). For `pagoda bench serve`. */
struct pgd_workload;
pgd_status pgd_run_workload_create(const pgd_run_config *rc, int vocab_size, int max_model_len,
                                   const pgd_tokenizer *tok, struct pgd_workload **out, int *n_sent);

/* Execute a run. Errors name the config file and key where one is at fault. */
pgd_status pgd_run_execute(const pgd_run_config *rc, const pgd_run_options *opts, pgd_run_result *out);
void pgd_run_result_free(pgd_run_result *r);

/* A run fails (pgd_run_failed; `pagoda run` exits 1) when every request
 * failed or more than this share of them did (failed = not finished with
 * "stop" or "length": rejected by the engine, dropped by the scheduler,
 * aborted). */
#define PGD_RUN_MAX_FAILED_SHARE 0.10
/* 1 when the run failed (all requests, or more than
 * PGD_RUN_MAX_FAILED_SHARE of them, failed), else 0. When any request
 * failed, msg gets a warning naming the run, the counts and the first
 * failure's reason ("" when none failed). */
int pgd_run_failed(const pgd_run_config *rc, const pgd_run_result *res, char *msg, size_t n);

/* Write dir/summary.json, requests.csv, timeline.csv, op_times.csv,
 * config.ini and env.json (creating dir and its parents), each to a
 * temporary name renamed into place, then the marker complete.json
 * (results.h). summary.json also holds "sweep_id" and "failures":
 * {failed, rejected, aborted, failed_share, max_failed_share, reasons:
 * [{reason, count, example}]}: reason is the kind of message (digits
 * replaced by N), most frequent first, at most 10 + "other reasons".
 *
 * op_times.csv: header kind,name,calls,seconds,share. Rows of kind "op":
 * one per backend op with calls > 0 (res->op_times, in backend.h's op
 * order): calls and seconds on the backend's clock (the sim's predicted
 * seconds; wall time on real backends, launch time only for ops a GPU
 * queues). Rows of kind "step": schedule, forward, logits (calls = engine
 * steps, steps with a forward pass, engine steps) and idle (no calls:
 * run_time minus the three phases, clamped at 0), in engine clock seconds.
 * share = seconds / run_time (empty when run_time is 0), so the step rows'
 * shares sum to 1 and their seconds to run_time. Reals are printed %.9g.
 * Both kinds are on one clock (the sim's virtual clock, or CLOCK_MONOTONIC)
 * unless options.clock gives a real backend a virtual engine clock. A sim
 * pipeline adds rows of kind "stage" (stage0, stage1, ...: each stage's
 * device-busy seconds in the run; share = its busy share), and
 * summary.json a "stage_busy" array of those shares. */
pgd_status pgd_run_write_outputs(const pgd_run_config *rc, const pgd_run_result *res, const char *dir);

/* runs.csv: one row per run of an experiment: "run", one column per swept
 * key (named by the key, or section_key when two sections share a key
 * name), then the headline metrics (pgd_runs_csv_columns), among them
 * sweep_id (the `pagoda run` that wrote the row; results.h). Rows keep the
 * order they were added; each write replaces the file whole (temporary
 * file renamed). */
typedef struct pgd_runs_csv pgd_runs_csv;
pgd_status pgd_runs_csv_create(const pgd_experiment *e, pgd_runs_csv **out);
void pgd_runs_csv_destroy(pgd_runs_csv *t);
pgd_status pgd_runs_csv_add(pgd_runs_csv *t, const pgd_run_config *rc, const pgd_run_result *res);
pgd_status pgd_runs_csv_write(const pgd_runs_csv *t, const char *path);
/* Keep the rows of an existing runs.csv with the same columns (runs not
 * re-run this time, e.g. with --only); rows added later replace them. */
pgd_status pgd_runs_csv_merge(pgd_runs_csv *t, const char *path);
/* Drop the row of run `index` (a run about to be re-run). */
void pgd_runs_csv_remove(pgd_runs_csv *t, int index);
/* Names of the columns after the swept ones, NULL-terminated (the first is
 * "completed"; "sweep_id" is followed by the columns added since: offered_rate
 * (pgd_run_result), achieved_rate (= request_throughput) and the p50/p90/p95
 * of ttft, tpot, itl, e2e and norm_latency). Read columns by name. */
const char *const *pgd_runs_csv_columns(void);

/* The environment as JSON text fields (env.json): git revision, compiler
 * and flags, CPU model and topology (hwloc), threads, date. Caller
 * json_decref's. */
struct json_t *pgd_env_json(int threads);
/* mkdir -p. */
pgd_status pgd_mkdir_p(const char *path);

#endif
