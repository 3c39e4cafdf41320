/* engine.h - the serving engine: continuous batching of many requests over
 * one model and a paged (or contiguous) KV cache.
 *
 * pgd_engine_step() runs one iteration: the scheduler plans a ragged batch
 * (running decodes first, then swapped and waiting requests in policy
 * order, preempting by recompute or swap when the KV cache is full), the
 * engine sends the plan's block copies and swaps and the batch to its
 * executor (pagoda/exec.h), and samples and updates every request of a
 * batch whose logits are back. Outputs are streamed by a callback and
 * readable at any time with pgd_engine_get_output().
 *
 * Batches in flight: the executor may take K > 1 batches before the first
 * one's logits are back (K = pipeline stages, + 1 with async scheduling).
 * A step then plans and submits a batch of requests that are not in flight
 * (the scheduler keeps each in at most one), and lands (samples) the oldest
 * batch once K are out or nothing new could be planned. With K = 1 a step
 * is plan, pass, sample, as before. Aborting or releasing a request in
 * flight takes effect when its batch lands.
 *
 * Determinism: each sequence has its own sampler seeded with
 * params.sampling.seed + i for its index i among the request's n samples,
 * so a request's tokens do not depend on the rest of the batch, on
 * preemptions or on the memory manager (n = 4 greedy equals 1 greedy).
 *
 * Stopping: a sequence stops at max_tokens, when its context is full, at
 * EOS or, for llama2.c checkpoints, BOS (as run.c; neither with ignore_eos), at a
 * stop token id or when its text ends with a stop string (the stop token is
 * kept in the output). */
#ifndef PAGODA_ENGINE_H
#define PAGODA_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "pagoda/clock.h"
#include "pagoda/exec.h"
#include "pagoda/kv_manager.h"
#include "pagoda/model.h"
#include "pagoda/sampler.h"
#include "pagoda/scheduler.h"
#include "pagoda/tokenizer.h"

typedef struct pgd_engine pgd_engine;

/* Called for every generated token of a sampled (non-beam) sequence. */
typedef void (*pgd_token_cb)(void *ctx, int64_t request, int seq_index, int32_t token, double time);

typedef struct pgd_engine_config {
    int block_size;           /* tokens per KV block; 0 = 16 */
    int num_blocks;           /* device KV blocks incl. the null block; 0 = from kv_memory_bytes */
    size_t kv_memory_bytes;   /* when num_blocks == 0; 0 = 256 MiB (capped at what max_num_seqs can use) */
    int num_host_blocks;      /* swap space in blocks; 0 = as many as device blocks */
    int max_num_batched_tokens; /* 0 = scheduler default */
    int max_num_seqs;         /* 0 = 256 */
    const char *policy;       /* NULL = "fcfs" */
    const char *kv_manager;   /* a registered KV manager (pgd_kv_manager_names()); NULL = "paged" */
    pgd_preempt_mode preemption;
    int chunked_prefill;
    int prefix_caching;
    uint64_t hash_seed;
    pgd_token_cb on_token;    /* optional */
    void *on_token_ctx;
    pgd_clock *clock;         /* borrowed, optional: the engine's time source; NULL = real
                                 monotonic. Engine times are seconds since create. */
    FILE *sched_trace;        /* borrowed, optional: the scheduler's per-step decision trace
                                 (JSON lines, scheduler.h) is written here */
} pgd_engine_config;

typedef struct pgd_request_params {
    const int32_t *prompt;    /* copied */
    int n_prompt;
    pgd_sampling_params sampling;
    int max_tokens;           /* 0 = until the context is full */
    int n;                    /* parallel samples; 0 = 1 */
    int beam_width;           /* 0 = no beam search; k >= 1 = beam search of width k */
    int priority;             /* lower = more urgent (priority policy) */
    double arrival_time;      /* engine clock seconds; <= 0 = now */
    const int32_t *stop_token_ids;
    int n_stop_token_ids;
    const char *const *stop_strings; /* need a tokenizer */
    int n_stop_strings;
    int true_output_len;      /* known output length (oracle/sjf); caps generation; 0 = unknown */
    int ignore_eos;           /* do not stop at EOS/BOS: generate exactly max_tokens */
    int client;               /* who sent it (fairness policies, per-client metrics); 0 = default */
    int slo_class;            /* SLO class, 0 = most urgent (slo policy, per-class metrics) */
    double ttft_slo;          /* its TTFT target in seconds (slo policy's deadline); <= 0 = none */
    int prefill_only;         /* disaggregation: stop after the first token (finish reason
                                 "prefilled"), keeping the prompt's KV for pgd_kv_handoff;
                                 n = 1, no beam search */
} pgd_request_params;

typedef struct pgd_seq_output {
    const int32_t *tokens;    /* generated tokens */
    const double *token_times; /* engine clock time of each token */
    int n_tokens;
    double cum_logprob;       /* beam search: sum of token log-probs (score) */
    const char *finish_reason; /* "stop", "length" or NULL while running */
} pgd_seq_output;

typedef struct pgd_request_output {
    int64_t id;
    int finished;
    const char *finish_reason; /* "stop", "length", "abort", "error"; NULL while running */
    const char *error;        /* message when finish_reason is "error" */
    const int32_t *prompt;
    int n_prompt;
    int num_seqs;             /* n samples, or k beams in score order once finished */
    const pgd_seq_output *seqs;
    double arrival, first_scheduled, first_token, finish; /* engine clock; < 0 = not yet */
    int num_preemptions;
    int num_cached_tokens;    /* prompt tokens served from the prefix cache at its first admission */
} pgd_request_output;

typedef struct pgd_engine_stats {
    int64_t steps, preemptions, tokens_computed, tokens_generated;
    int max_batch_seqs, max_batch_tokens;
    int last_batch_seqs, last_batch_tokens; /* the latest step's batch */
    int num_waiting, num_running, num_swapped; /* scheduler queues now */
    pgd_kv_stats kv;
    /* Where the steps' time went, summed over steps since create, in engine
     * clock seconds (pgd_engine_now): schedule = the scheduler's plan plus
     * its block copies and swaps; forward = the forward pass over the batch
     * (logits downloaded); logits = sampling and request updates. On a
     * virtual clock only what advances it counts (on the sim: the backend
     * ops, so forward and the swaps/copies in schedule). A step that fails
     * part-way is not counted. forward_steps: steps that ran a forward
     * pass (a non-empty batch). */
    double schedule_seconds, forward_seconds, logits_seconds;
    int64_t forward_steps;
    int max_in_flight;         /* the executor's K */
    int64_t swaps;             /* preemptions that swapped out (the rest of `preemptions` recomputed) */
} pgd_engine_stats;

/* exec (a driver's executor without a KV cache yet: the engine creates it)
 * and tok (may be NULL) are borrowed. */
pgd_status pgd_engine_create(const pgd_engine_config *cfg, pgd_exec *exec, const pgd_tokenizer *tok,
                             pgd_engine **out);
void pgd_engine_destroy(pgd_engine *e);

/* Queue a request; *id gets its id (ids count up from 0). Impossible
 * requests (prompt beyond the context or the whole cache, bad parameters)
 * fail with PGD_ERR_INVALID and a message; the engine serves the rest. */
pgd_status pgd_engine_add_request(pgd_engine *e, const pgd_request_params *p, int64_t *id);
pgd_status pgd_engine_abort(pgd_engine *e, int64_t id);
/* One iteration. *num_finished (may be NULL) gets how many requests finished. */
pgd_status pgd_engine_step(pgd_engine *e, int *num_finished);
int pgd_engine_has_unfinished(const pgd_engine *e);
/* Run steps until every request has finished. */
pgd_status pgd_engine_run(pgd_engine *e);

/* Snapshot of a request (valid until the next step, abort or release). */
pgd_status pgd_engine_get_output(pgd_engine *e, int64_t id, const pgd_request_output **out);
/* Pull streaming: tokens of sequence seq_index generated since the last
 * call for it; returns their count (pointers borrowed like get_output). */
int pgd_engine_take_new_tokens(pgd_engine *e, int64_t id, int seq_index, const int32_t **tokens,
                               const double **times);
/* Forget a finished request's output. */
void pgd_engine_release(pgd_engine *e, int64_t id);

void pgd_engine_get_stats(const pgd_engine *e, pgd_engine_stats *out);
double pgd_engine_now(const pgd_engine *e);
const pgd_engine_config *pgd_engine_get_config(const pgd_engine *e);
/* Tokens of `prompt` a request added now would find in the prefix cache
 * (pgd_kv_cached_prefix: 0 without prefix caching); touches nothing. For
 * routers (cluster.h's prefix-aware). */
int pgd_engine_cached_prefix(const pgd_engine *e, const int32_t *prompt, int n_prompt);

/* ---- Prefill/decode disaggregation: the KV hand-off ----
 *
 * A request added with prefill_only computes its prompt, samples its first
 * token and is then PARKED: not finished (its output has the first token,
 * finish_reason NULL) but no longer scheduled, and the engine does not count
 * it as unfinished work (pgd_engine_has_unfinished, pgd_engine_run). If its
 * first token already ended it, it finishes as usual ("stop", "length").
 * Its prompt's KV blocks stay allocated (the paged manager keeps them under a
 * parked sequence id; the contiguous kinds copy them to host memory at once)
 * until pgd_engine_export takes them: the request's parameters, prompt,
 * first token, sampler state, times and every layer's K and V of its blocks
 * (through the executor: pgd_exec_kv_io); the request then finishes with
 * reason "exported" and its blocks are free (abort/release free them too).
 * pgd_engine_import on another engine (same model shape, KV dtype and block
 * size) adds it as a new request holding the first token; once the KV is
 * there (ready_time) and blocks are free, a step admits it straight into the
 * running set with the K/V written into fresh blocks and decodes from the
 * second token on; its tokens are those a single engine would give (same
 * sampler state, same K/V). An engine with only such waiting imports sleeps
 * on its clock until the earliest ready_time (the sim: a jump).
 *
 * Times in an export are absolute clock seconds (pgd_clock_now of the
 * exporting engine's clock): engines sharing a clock (threads of one
 * process, processes of one host, the sim's one virtual clock) agree. */
typedef struct pgd_kv_handoff {
    /* what it was computed with (import checks them) */
    int n_layers, n_kv_heads, head_dim, vocab_size, max_seq_len, kv_dtype, block_size;
    pgd_request_params params; /* prompt, stop ids and strings point into this export */
    int32_t first_token;
    const char *finish_reason; /* "prefilled": to be decoded; "stop"/"length": the first token ended it */
    double arrival, first_scheduled, first_token_time; /* absolute clock seconds */
    int num_cached_tokens;                             /* prompt tokens the exporter found in its prefix cache */
    uint64_t sampler_state[4];
    int n_tokens;       /* tokens with K/V: the prompt */
    int n_blocks;       /* ceil(n_tokens / block_size) */
    size_t block_bytes; /* one block over all layers, K and V */
    size_t kv_bytes;    /* n_blocks * block_bytes: what a transfer moves */
    void *kv;           /* kv_bytes bytes; NULL from an engine that computes nothing (sim) */
    double ready_time;  /* absolute clock seconds when the KV is on the importer (the
                                  transport sets it: a priced link on the sim); <= 0 = now */
    void *priv;         /* owned storage */
} pgd_kv_handoff;

/* Take request `id`'s hand-off (a parked prefill_only request, or one whose
 * first token ended it: then finish_reason says so and no KV comes); its
 * blocks are freed. *out is owned by the caller (pgd_kv_handoff_free). */
pgd_status pgd_engine_export(pgd_engine *e, int64_t id, pgd_kv_handoff **out);
/* As pgd_engine_export, but the request's blocks stay allocated (and count
 * in the engine's KV usage) while the transfer that reads them is in
 * flight, as DistServe and Splitwise model a prefill instance's memory:
 * they are freed at engine time t given by pgd_engine_export_sent (at once
 * when t <= now, else by the first step at or after t; a step that can
 * schedule nothing waits on the clock for them). The request itself
 * finishes "exported" and may be released at once. Only the paged KV
 * manager holds blocks; the contiguous kinds copied them out at park time. */
pgd_status pgd_engine_export_held(pgd_engine *e, int64_t id, pgd_kv_handoff **out);
/* The transfer of held export `id` (the exporting engine's request id) ends at engine time t. */
void pgd_engine_export_sent(pgd_engine *e, int64_t id, double t);
/* Blocks held by exports still in flight (tests, metrics). */
int pgd_engine_held_blocks(const pgd_engine *e);
void pgd_kv_handoff_free(pgd_kv_handoff *x);
/* Add an exported request to decode; *id gets its id on this engine. It is
 * admitted at once when its KV is ready and there is room, else by a later
 * step (x is copied then). PGD_ERR_INVALID with a message when the export
 * does not fit this engine (model shape, KV dtype, block size) or has
 * nothing to decode (finish_reason not "prefilled"). */
pgd_status pgd_engine_import(pgd_engine *e, const pgd_kv_handoff *x, int64_t *id);
/* One contiguous byte string for a communicator, and back (checked: a
 * truncated or corrupt buffer is PGD_ERR_FORMAT). *buf is malloc'd. */
pgd_status pgd_kv_handoff_pack(const pgd_kv_handoff *x, void **buf, size_t *n);
pgd_status pgd_kv_handoff_unpack(const void *buf, size_t n, pgd_kv_handoff **out);

#endif
