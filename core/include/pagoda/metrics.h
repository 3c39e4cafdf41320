/* metrics.h - per-request latency records, run summaries and the engine
 * timeline, with the definitions of vLLM's benchmark client
 * (benchmarks/benchmark_serving.py), which the README quotes:
 *
 *   All times are seconds on the engine clock. For each request:
 *   - TTFT  = first_token - arrival                 (time to first token)
 *   - E2E   = finish - arrival                      (end-to-end latency)
 *   - TPOT  = (E2E - TTFT) / (output_tokens - 1)    (time per output token
 *             after the first; only requests with >= 2 output tokens enter
 *             the TPOT statistics; for goodput a 1-token request has TPOT 0)
 *   - ITL   = every gap token_times[k] - token_times[k-1], k >= 1, pooled
 *             over all requests (inter-token latency)
 *   - normalized latency = E2E / output_tokens (the PagedAttention paper's
 *             metric: its mean over requests, in s/token)
 *   Statistics over a metric's values: mean, median, std (population,
 *   ddof = 0, as numpy.std), p90, p99 (numpy.percentile's default linear
 *   interpolation: rank (n-1)*p/100 between the two nearest sorted
 *   values), min, max. Empty sets give 0.
 *   Only completed requests (finish_reason "stop" or "length") count in the
 *   latency statistics and throughputs; aborted/failed ones are counted
 *   as failed.
 *   - duration = end - start of the run: start defaults to the earliest
 *     arrival, end to the latest finish (pgd_metrics_set_window overrides)
 *   - request throughput      = completed / duration          (req/s)
 *   - output token throughput = sum output_tokens / duration  (tok/s)
 *   - total token throughput  = sum (prompt + output) / duration
 *   - goodput = completed requests meeting EVERY given SLO bound
 *     (TTFT <= slo.ttft, TPOT <= slo.tpot, E2E <= slo.e2e; a bound <= 0 is
 *     not checked) / duration, in req/s.
 *
 * The timeline holds one sample per engine step (or as often as the caller
 * samples): queue lengths, batch size, KV usage (used blocks, share of
 * device blocks in use, utilization = real tokens / reserved slots,
 * fragmentation = 1 - utilization, the share of reserved KV slots holding
 * no token: the paper's Fig. 2 waste), cumulative preemptions and swaps,
 * and the cumulative prefix-cache hit rate (hit blocks / queried blocks).
 *
 * Writers: summary.json (jansson), requests.csv (one row per request: id,
 * times, derived latencies, lengths, preemptions, finish reason) and
 * timeline.csv (one row per sample). Times (engine clock) are printed
 * with %.9f, other reals with %.9g; undefined values are empty fields. */
#ifndef PAGODA_METRICS_H
#define PAGODA_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "pagoda/engine.h"
#include "pagoda/status.h"

struct json_t; /* jansson */

typedef struct pgd_metrics pgd_metrics;

/* One finished (or abandoned) request. Times < 0 = never happened. */
typedef struct pgd_request_record {
    int64_t id;
    double arrival, first_scheduled, first_token, finish;
    const double *token_times; /* n_tokens times of every output token (copied) */
    int n_tokens;              /* token_times entries (0 = none recorded) */
    int prompt_tokens, output_tokens;
    int num_preemptions;
    int priority;
    const char *finish_reason; /* "stop", "length", "abort", "error" (copied; NULL = "error") */
    const char *error;         /* why it failed (copied; NULL = none given) */
    int client, slo_class;     /* who sent it and its SLO class (0 = the only one) */
    double ttft_slo;           /* its own TTFT target in seconds (0 = the run's [slo] ttft) */
    int cached_tokens;         /* prompt tokens served from the prefix cache */
    int num_turns;             /* multi-turn: turns of its conversation (0 = a single-turn request) */
    int session, turn;         /* multi-turn: conversation and 0-based turn */
} pgd_request_record;

typedef struct pgd_timeline_sample {
    double time;               /* engine clock */
    int64_t step;
    int running, waiting, swapped;
    int batch_seqs, batch_tokens; /* sequences and tokens in this step's batch */
    int kv_used_blocks, kv_num_blocks;
    int64_t kv_logical_blocks; /* block-table entries (shared blocks counted per sequence) */
    double kv_usage;           /* used / num blocks */
    double kv_utilization;     /* tokens stored / slots reserved (1 when nothing reserved) */
    double kv_fragmentation;   /* 1 - kv_utilization */
    int64_t preemptions, swaps; /* so far */
    double prefix_hit_rate;    /* prefix hits / queries so far (0 with no queries) */
} pgd_timeline_sample;

typedef struct pgd_slo {
    double ttft, tpot, e2e;    /* seconds; <= 0 = no bound */
} pgd_slo;

typedef struct pgd_dist_stats {
    int64_t count;
    double mean, median, std, p90, p99, min, max;
    double p95; /* runs.csv's p95 columns (not in summary.json, whose keys baselines compare) */
} pgd_dist_stats;

/* Per client or per SLO class (ids >= PGD_METRICS_MAX_GROUPS - 1 are
 * counted in the last group). service_rate = the service its requests got
 * while requests were still arriving (from the run's start to the last
 * arrival; with every request at t = 0, the whole run), per second: prompt
 * tokens (counted at the first token) + 2 x output tokens, VTC's weights.
 * Over the whole run every client's demand is served in the end; in the
 * arrival window a fair scheduler splits the service differently.
 * slo_attainment = its requests (completed or not) meeting every SLO bound,
 * TTFT against the request's own target where it has one, / its requests. */
#define PGD_METRICS_MAX_GROUPS 16
typedef struct pgd_group_summary {
    int64_t requests, completed, good;
    double request_throughput, output_throughput, service_rate, slo_attainment;
    pgd_dist_stats ttft, tpot, e2e;
} pgd_group_summary;

typedef struct pgd_metrics_summary {
    int64_t num_requests, completed, failed;
    int64_t total_input_tokens, total_output_tokens; /* completed requests */
    double start, end, duration;
    double request_throughput, output_throughput, total_token_throughput;
    pgd_slo slo;
    int64_t good_requests;
    double goodput;            /* good_requests / duration */
    pgd_dist_stats ttft, tpot, itl, e2e, norm_latency, queue_delay; /* queue: first_scheduled - arrival */
    int64_t preemptions;       /* sum over requests */
    /* from the timeline (0 when empty) */
    int64_t timeline_samples;
    double mean_batch_seqs, mean_batch_tokens;
    int max_batch_seqs, max_batch_tokens;
    double mean_kv_usage, max_kv_usage, mean_kv_utilization;
    double mean_kv_sharing_saving; /* mean over steps with blocks in use of
                                      1 - used / logical blocks: memory saved by sharing */
    int64_t swaps;             /* last sample's */
    double prefix_hit_rate;    /* last sample's */
    /* clients and SLO classes: groups 0 .. num_clients-1 (the largest id
     * seen + 1) and 0 .. num_classes-1; with one client and one class the
     * groups are left zero (jain_fairness 1, slo_attainment still set) */
    int num_clients, num_classes;
    pgd_group_summary clients[PGD_METRICS_MAX_GROUPS], classes[PGD_METRICS_MAX_GROUPS];
    double jain_fairness;      /* Jain's index over the clients' service rates that sent requests:
                                  (sum x)^2 / (n sum x^2), 1 = equal service; 1 with one client */
    double slo_attainment;     /* all requests, each against its own TTFT target */
    double service_window;     /* seconds the service rates are measured over */
} pgd_metrics_summary;

pgd_status pgd_metrics_create(pgd_metrics **out);
void pgd_metrics_destroy(pgd_metrics *m);

/* Record a request (the record and its strings/times are copied). */
pgd_status pgd_metrics_add_request(pgd_metrics *m, const pgd_request_record *r);
/* Record an engine request output (uses seqs[0]'s token times; the output
 * token count is seqs[0].n_tokens). */
pgd_status pgd_metrics_add_output(pgd_metrics *m, const pgd_request_output *o, int priority);
/* Give the last recorded request its client, SLO class and TTFT target. */
void pgd_metrics_tag_last(pgd_metrics *m, int client, int slo_class, double ttft_slo);
pgd_status pgd_metrics_add_sample(pgd_metrics *m, const pgd_timeline_sample *s);

/* Fill a sample from the engine: step count, queue lengths, KV stats,
 * preemptions, prefix hit rate; batch_tokens and batch_seqs from the
 * difference of tokens_computed / tokens_generated to `prev` (the stats
 * at the previous sample; NULL = first sample). swaps = preemptions when
 * the engine preempts by swapping, else 0 (the engine does not count
 * swaps separately yet). */
void pgd_metrics_sample_engine(const pgd_engine *e, const pgd_engine_stats *prev,
                               pgd_timeline_sample *s);

/* Override the run window used for throughputs (end <= start = default). */
void pgd_metrics_set_window(pgd_metrics *m, double start, double end);

int64_t pgd_metrics_num_requests(const pgd_metrics *m);
int64_t pgd_metrics_num_samples(const pgd_metrics *m);
/* Borrowed, in insertion order; NULL when out of range. */
const pgd_request_record *pgd_metrics_request(const pgd_metrics *m, int64_t i);
const pgd_timeline_sample *pgd_metrics_sample(const pgd_metrics *m, int64_t i);

/* Statistics of n values (values is not modified). */
pgd_status pgd_dist_stats_compute(const double *values, size_t n, pgd_dist_stats *out); /* PGD_ERR_OOM */
/* numpy.percentile(values, p) with linear interpolation, on SORTED values. */
double pgd_percentile_sorted(const double *sorted, size_t n, double p);

/* slo may be NULL (no bounds: goodput = request throughput). */
pgd_status pgd_metrics_summarize(const pgd_metrics *m, const pgd_slo *slo,
                                 pgd_metrics_summary *out);

/* The summary as a new JSON object (caller json_decref's; NULL on OOM):
 * {num_requests, completed, failed, duration_s, request_throughput,
 *  output_throughput, total_token_throughput, goodput, good_requests,
 *  slo:{ttft_s,tpot_s,e2e_s}, total_input_tokens, total_output_tokens,
 *  ttft:{count,mean,median,std,p90,p99,min,max}, tpot, itl, e2e,
 *  normalized_latency, queue_delay, preemptions, swaps, prefix_hit_rate,
 *  batch:{mean_seqs,mean_tokens,max_seqs,max_tokens},
 *  kv:{mean_usage,max_usage,mean_utilization}}; all times in seconds.
 * With more than one client or SLO class also slo_attainment, jain_fairness and clients/classes: [{id, requests,
 * completed, request_throughput, output_throughput, service_rate,
 * slo_attainment, ttft, tpot, e2e}] (pgd_group_summary). */
struct json_t *pgd_metrics_summary_to_json(const pgd_metrics_summary *s);

/* Writers (PGD_ERR_IO naming the path on failure). `extra` (may be NULL)
 * is merged into the summary object (e.g. run name, config). */
pgd_status pgd_metrics_write_summary_json(const pgd_metrics_summary *s, struct json_t *extra,
                                          const char *path);
/* Multi-turn: set the conversation and turn of the latest record
 * (PGD_ERR_INVALID when there is none). */
pgd_status pgd_metrics_set_last_turn(pgd_metrics *m, int session, int turn, int num_turns);
/* The per-turn table of a multi-turn run as a new JSON array (NULL when no
 * record has num_turns > 0, or on OOM): one object per turn index
 * {turn, requests, completed, mean_prompt_tokens, mean_cached_tokens,
 *  prefix_hit_rate (cached / prompt tokens over the turn's requests),
 *  ttft_mean, e2e_mean (completed requests; seconds)}. */
struct json_t *pgd_metrics_turns_json(const pgd_metrics *m);

/* Columns: id,priority,arrival,first_scheduled,first_token,finish,
 * prompt_tokens,output_tokens,ttft,tpot,e2e,normalized_latency,
 * queue_delay,num_preemptions,finish_reason,error,session,turn,
 * cached_tokens,prefix_hit_rate,client,slo_class (session and turn empty
 * for single-turn requests; prefix_hit_rate = cached_tokens / prompt_tokens;
 * client and slo_class the record's, 0 without a client mix; derived values empty
 * when undefined, e.g. tpot for 1-token outputs; error: why a request
 * failed (rejected by the engine, dropped by the scheduler), empty for
 * completed ones; quoted as RFC 4180 when it holds a comma or quote). */
pgd_status pgd_metrics_write_requests_csv(const pgd_metrics *m, const char *path);
/* Columns: time,step,running,waiting,swapped,batch_seqs,batch_tokens,
 * kv_used_blocks,kv_num_blocks,kv_usage,kv_utilization,kv_fragmentation,
 * preemptions,swaps,prefix_hit_rate. */
pgd_status pgd_metrics_write_timeline_csv(const pgd_metrics *m, const char *path);

#endif
