/* loadgen.h - an HTTP load generator for OpenAI-compatible servers: replays
 * a workload (pagoda/workload.h) against POST /v1/completions with
 * stream: true, from one thread with libcurl's multi interface, and records
 * what the CLIENT sees into pgd_metrics (times in seconds since the replay
 * started, on CLOCK_MONOTONIC):
 *
 *   arrival      the moment the request was due (its workload arrival, or
 *                for a later turn its previous turn's finish + think time;
 *                held back by max_concurrency: the moment it was sent)
 *   first_token  arrival time of the first server-sent event carrying text
 *   token_times  one entry per such event (ITL = gaps between events)
 *   finish       the moment the stream ended ([DONE] or the connection)
 *   output_tokens the server's usage.completion_tokens when it sends usage
 *                (stream_options.include_usage), else the token ids it
 *                streamed (return_token_ids), else one per event
 *   prompt_tokens usage.prompt_tokens, else the ids sent
 *   cached_tokens usage.prompt_tokens_details.cached_tokens (0 if absent)
 *
 * The timeline (one sample every 0.1 s of the replay) is the client's:
 * running = requests in flight, waiting = requests due but held back by
 * max_concurrency; the engine's columns (batch, KV) stay 0.
 *
 * Each request body: {"model", "prompt": [token ids], "max_tokens",
 * "stream": true, "stream_options": {"include_usage": true}, "temperature",
 * "top_p", "seed"} plus, where the workload fixes the output length (it
 * always does), "ignore_eos": true and "min_tokens" = max_tokens (vLLM's
 * extensions), "top_k" when > 0, "priority" when the workload has
 * priorities, and "return_token_ids": true when asked (vLLM >= 0.10).
 *
 * Failures never vanish: an HTTP status >= 400 (with the server's error
 * message), a transport error (connection refused, reset, timeout) or a
 * stream that ends without [DONE] is recorded as finish_reason "error"
 * with the reason in the record's error. Multi-turn workloads: turn k is
 * sent think_time after turn k-1's stream ended, with the history of the
 * earlier messages and the server's actual outputs (its token ids when it
 * streams them, else its text encoded with `tokenizer`); a failed turn ends
 * its conversation (the later turns are recorded as failed). */
#ifndef PAGODA_LOADGEN_H
#define PAGODA_LOADGEN_H

#include <signal.h>
#include <stdint.h>

#include "pagoda/metrics.h"
#include "pagoda/status.h"
#include "pagoda/tokenizer.h"
#include "pagoda/workload.h"

typedef struct pgd_loadgen_progress {
    int done, total, failed;
    int64_t tokens;
    double elapsed;
} pgd_loadgen_progress;

typedef struct pgd_loadgen_config {
    const char *url;            /* server root, e.g. http://127.0.0.1:8000 (a trailing /v1 is accepted) */
    const char *model;          /* "model" of every request; NULL = the first id of GET /v1/models */
    double timeout;             /* seconds per request (0 = 600) */
    double temperature, top_p;  /* top_p 0 = 1 */
    int top_k;                  /* 0 = not sent */
    uint64_t seed;              /* request i gets seed + i */
    int send_priority;          /* send "priority" */
    int return_token_ids;       /* ask for the output's token ids (vLLM's return_token_ids) */
    int num_requests;           /* send only the first N requests (0 = all) */
    const pgd_tokenizer *tokenizer; /* optional, borrowed: encodes output text for multi-turn histories */
    void (*on_progress)(void *ctx, const pgd_loadgen_progress *p); /* optional, at most ~10 times/s */
    void *progress_ctx;
    const volatile sig_atomic_t *stop; /* optional: non-zero stops the replay (PGD_ERR_INVALID) */
} pgd_loadgen_config;

typedef struct pgd_loadgen_result {
    pgd_metrics *metrics;       /* owned (pgd_loadgen_result_free) */
    int num_requests, failed;
    int64_t output_tokens;
    double start, end;          /* the replay's window (seconds since it started) */
    uint64_t output_fingerprint; /* FNV-1a of every request's output text, by workload index */
    char model[256];            /* the model name sent */
} pgd_loadgen_result;

/* GET url/v1/models: *model (size n) gets the first model id. A server
 * that does not answer gives PGD_ERR_IO with one line naming the URL and
 * why (e.g. "cannot reach http://127.0.0.1:8000/v1/models: Couldn't
 * connect to server"). */
pgd_status pgd_loadgen_probe(const char *url, double timeout, char *model, size_t n);

/* Replay the workload. Errors: PGD_ERR_INVALID (bad config, interrupted),
 * PGD_ERR_IO (no server at url: the probe failed), PGD_ERR_OOM. Request
 * failures are not errors: they are in the metrics. */
pgd_status pgd_loadgen_run(const pgd_loadgen_config *cfg, const pgd_workload *wl, pgd_loadgen_result *out);
void pgd_loadgen_result_free(pgd_loadgen_result *r);

#endif
