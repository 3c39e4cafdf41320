/* workload.h - seeded, deterministic request streams for experiments.
 *
 * A workload is a list of requests, each with an arrival time (seconds from
 * the start of the run), prompt token ids, a target output length (fed to
 * the engine as max_tokens AND true_output_len, with ignore_eos, so the
 * length is real), a priority and optional shared-prefix information.
 * Requests are sorted by arrival time (stable: equal times keep source
 * order) and indexed 0..count-1.
 *
 * Sources:
 *  - SYNTHETIC: input/output lengths from a pgd_len_dist, prompt ids uniform
 *    in [3, vocab_size) (0..2 are unk/BOS/EOS), optionally starting with one
 *    shared prefix of shared_prefix_len tokens common to every request.
 *  - TRACE: Azure 2023 CSV (TIMESTAMP,ContextTokens,GeneratedTokens), Vidur
 *    CSV (arrived_at,num_prefill_tokens,num_decode_tokens), Vidur lengths
 *    CSV (num_prefill_tokens,num_decode_tokens,...: no timestamps), Mooncake
 *    JSONL ({timestamp ms, input_length, output_length, hash_ids}). Arrivals
 *    are made relative to the first row's and multiplied by time_scale;
 *    with a finite arrival.rate instead (kind TRACE or DEFAULT), they are
 *    rescaled so the selected requests arrive at that mean rate ((count - 1)
 *    / span = rate req/s): the trace's load axis, its burst shape kept.
 *    Mooncake: hash id h names one 512-token block whose tokens are a pure
 *    function of (seed, h), so equal ids give equal token blocks and prefix
 *    caching sees real sharing; tokens past the hashed blocks are per-request.
 *    Every format may give a request's client and SLO class (CSV columns
 *    "client" and "slo_class", Mooncake fields of those names; integers in
 *    0..PGD_MAX_CLIENTS-1; absent = 0).
 *  - DATASET: ShareGPT JSON ([{id, conversations:[{from,value}]}]: first
 *    human turn; output length = tokens of the following gpt turn if any),
 *    Alpaca JSON ([{instruction,input,output}]: prompt = instruction, a
 *    newline and the input when non-empty; output length = tokens of
 *    output), MT-bench JSONL ({question_id, category, turns:[...]}: first
 *    turn; no output). Text is tokenized with the given tokenizer (BOS
 *    prepended); missing output lengths come from output_len.
 *
 * Lengths are clipped to the model context (max_model_len): the prompt to
 * max_model_len - 1 tokens, then the output to max_model_len - prompt; each
 * request that had to be cut counts in num_clipped. Rows with an empty
 * prompt are skipped (num_skipped). Selection: the first num_requests rows,
 * or with sample=1 a seeded random sample of num_requests rows (kept in
 * source order before arrival sorting).
 *
 * Arrivals (vLLM benchmark convention): POISSON = exponential gaps of mean
 * 1/rate; GAMMA = gaps ~ Gamma(shape = burstiness, scale = 1/(rate *
 * burstiness)) (burstiness 1 = Poisson; < 1 burstier, > 1 more regular);
 * rate = INFINITY or ALL_AT_ONCE = every request at t = 0; CLOSED_LOOP =
 * every arrival 0 and at most max_concurrency requests in flight, so each
 * completion releases the next request; TRACE = the source's timestamps.
 * As in vLLM's client, the first request arrives at t = 0 and each later
 * one one gap after its predecessor. max_concurrency > 0 also applies to
 * open-loop arrivals: a
 * request is submitted at max(its arrival, the time a slot frees up); the
 * caller (runner) enforces it.
 *
 * Determinism: the whole request list is a function of the config (and the
 * files/tokenizer it names); pgd_workload_fingerprint() hashes it.
 * Errors: PGD_ERR_IO (missing/unreadable file), PGD_ERR_FORMAT (malformed
 * row or JSON: the message names the file and line), PGD_ERR_INVALID (bad
 * parameter: the message names it and its value). */
#ifndef PAGODA_WORKLOAD_H
#define PAGODA_WORKLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "pagoda/engine.h"
#include "pagoda/status.h"
#include "pagoda/tokenizer.h"

typedef struct pgd_workload pgd_workload;

/* ---- length distributions --------------------------------------------- */

typedef enum pgd_len_kind {
    PGD_LEN_DEFAULT = 0, /* unset: synthetic source uses SHAREGPT */
    PGD_LEN_FIXED,       /* always `mean` */
    PGD_LEN_UNIFORM,     /* integers uniform in [min, max] */
    PGD_LEN_NORMAL,      /* round(N(mean, stddev)), clamped to [max(min,1), max] */
    PGD_LEN_LOGNORMAL,   /* lognormal with this mean and stddev OF THE LENGTH */
    PGD_LEN_SHAREGPT,    /* lognormal fit: input mean 161.31 (sigma 1.0),
                            output mean 337.99 (sigma 0.9) */
    PGD_LEN_ALPACA,      /* lognormal fit: input mean 19.31 (sigma 0.5),
                            output mean 58.45 (sigma 0.8) */
} pgd_len_kind;

typedef struct pgd_len_dist {
    pgd_len_kind kind;
    double mean;   /* FIXED, NORMAL, LOGNORMAL */
    double stddev; /* NORMAL, LOGNORMAL (> 0) */
    int min, max;  /* UNIFORM bounds; others: optional clamp (0 = none) */
} pgd_len_dist;

/* "fixed", "uniform", "normal", "lognormal", "sharegpt", "alpaca"
 * (parse: PGD_ERR_INVALID naming the value and the choices). */
const char *pgd_len_kind_name(pgd_len_kind k);
pgd_status pgd_len_kind_parse(const char *name, pgd_len_kind *out);

/* ---- arrivals --------------------------------------------------------- */

typedef enum pgd_arrival_kind {
    PGD_ARRIVAL_DEFAULT = 0, /* TRACE when the source has timestamps, else ALL_AT_ONCE */
    PGD_ARRIVAL_POISSON,     /* rate req/s (INFINITY = all at once) */
    PGD_ARRIVAL_GAMMA,       /* rate and burstiness */
    PGD_ARRIVAL_ALL_AT_ONCE,
    PGD_ARRIVAL_CLOSED_LOOP, /* needs max_concurrency > 0 */
    PGD_ARRIVAL_TRACE,       /* source timestamps (PGD_ERR_INVALID if it has none) */
} pgd_arrival_kind;

typedef struct pgd_arrival {
    pgd_arrival_kind kind;
    double rate;         /* requests/s, > 0 (INFINITY allowed) */
    double burstiness;   /* GAMMA shape, > 0; 0 = 1 */
    int max_concurrency; /* 0 = unlimited (CLOSED_LOOP: required) */
} pgd_arrival;

/* "default", "poisson", "gamma", "all-at-once", "closed-loop", "trace". */
const char *pgd_arrival_kind_name(pgd_arrival_kind k);
pgd_status pgd_arrival_kind_parse(const char *name, pgd_arrival_kind *out);

/* ---- sources ---------------------------------------------------------- */

typedef enum pgd_workload_source {
    PGD_WL_SYNTHETIC = 0,
    PGD_WL_TRACE,
    PGD_WL_DATASET,
} pgd_workload_source;

typedef enum pgd_trace_format {
    PGD_TRACE_AUTO = 0,  /* from the CSV header / .jsonl extension */
    PGD_TRACE_AZURE,     /* TIMESTAMP,ContextTokens,GeneratedTokens */
    PGD_TRACE_VIDUR,     /* arrived_at,num_prefill_tokens,num_decode_tokens */
    PGD_TRACE_LENGTHS,   /* num_prefill_tokens,num_decode_tokens[,...] (no times) */
    PGD_TRACE_MOONCAKE,  /* JSONL timestamp(ms),input_length,output_length,hash_ids */
} pgd_trace_format;

typedef enum pgd_dataset_format {
    PGD_DATASET_AUTO = 0, /* from the content: conversations / instruction / turns */
    PGD_DATASET_SHAREGPT,
    PGD_DATASET_ALPACA,
    PGD_DATASET_MTBENCH,
} pgd_dataset_format;

/* "synthetic", "trace", "dataset" / "auto", "azure", "vidur", "lengths",
 * "mooncake" / "auto", "sharegpt", "alpaca", "mtbench". */
const char *pgd_workload_source_name(pgd_workload_source s);
pgd_status pgd_workload_source_parse(const char *name, pgd_workload_source *out);
const char *pgd_trace_format_name(pgd_trace_format f);
pgd_status pgd_trace_format_parse(const char *name, pgd_trace_format *out);
const char *pgd_dataset_format_name(pgd_dataset_format f);
pgd_status pgd_dataset_format_parse(const char *name, pgd_dataset_format *out);

#define PGD_MOONCAKE_BLOCK 512 /* tokens per Mooncake hash id */
#define PGD_MAX_CLIENTS 16     /* clients and SLO classes a workload may name */

/* A zeroed config is valid: 100 synthetic ShareGPT-like requests, all at
 * t = 0, vocabulary 32000, no context clipping, seed 0. */
typedef struct pgd_workload_config {
    pgd_workload_source source;
    int num_requests;        /* synthetic: 0 = 100; trace/dataset: 0 = every row */
    int sample;              /* trace/dataset: 1 = seeded random sample of num_requests rows */
    uint64_t seed;
    int vocab_size;          /* random token ids in [3, vocab_size); 0 = 32000 */
    int max_model_len;       /* context for clipping; 0 = unknown: no clipping, and a prompt longer
                                than any model's context (PGD_MAX_CONTEXT) is an error */
    pgd_len_dist input_len;  /* synthetic prompt lengths */
    pgd_len_dist output_len; /* synthetic outputs; dataset fallback when it has none */
    int override_output_len; /* dataset: 1 = always draw outputs from output_len */
    int shared_prefix_len;   /* synthetic/dataset: tokens prepended to every prompt (same ids) */
    int num_priorities;      /* priorities uniform in [0, num_priorities); 0/1 = all 0 */
    pgd_arrival arrival;
    const char *path;        /* trace/dataset file (borrowed, read at create) */
    pgd_trace_format trace_format;
    pgd_dataset_format dataset_format;
    double time_scale;       /* trace arrivals multiplied by this (0.5 = twice as fast); 0 = 1 */
    const pgd_tokenizer *tokenizer; /* dataset: borrowed, needed at create only */
    /* Client mix (0 clients = one client, id 0, arrivals as `arrival` says).
     * With num_clients K >= 1 every client has its own arrival process:
     * client_rate[c] requests/s with gaps ~ Gamma(client_burstiness[c]) (0 =
     * 1: Poisson; < 1 burstier), its first request at t = 0 and a seeded
     * stream of its own. The requests (lengths and prompts from the source,
     * in its row order) go to the clients in the order of their merged
     * arrivals (ties: the lower client id), so each client sends about its
     * share of the rates. The source's timestamps are not used; arrival
     * must be default, poisson or gamma. Each client's requests have SLO
     * class client_class[c]. */
    int num_clients;
    double client_rate[PGD_MAX_CLIENTS];
    double client_burstiness[PGD_MAX_CLIENTS];
    int client_class[PGD_MAX_CLIENTS];
    /* TTFT target (s) of each SLO class (0 = none): the slo policy's
     * deadline and the per-class SLO attainment. */
    int num_classes;
    double class_ttft_slo[PGD_MAX_CLIENTS];
    /* Multi-turn sessions (session.c; below). turns: 0 or 1 = single-turn
     * requests as above; synthetic: turns per conversation (>= 2); dataset:
     * -1 = every turn of each conversation, k >= 2 = at most k turns. */
    int turns;
    double think_time;       /* seconds between a turn's finish and the next turn's release (>= 0) */
    int max_history;         /* a turn's prompt keeps the last max_history tokens (0 = the context) */
} pgd_workload_config;

typedef struct pgd_workload_request {
    double arrival;          /* seconds from the start of the run (0 for closed loop) */
    const int32_t *prompt;   /* owned by the workload */
    int n_prompt;
    int output_len;          /* max_tokens = true_output_len, ignore_eos */
    int priority;            /* lower = more urgent */
    int shared_prefix_len;   /* leading tokens equal across requests (synthetic
                                prefix, or Mooncake leading full blocks shared with
                                some earlier request); 0 = none known */
    const int64_t *hash_ids; /* Mooncake block ids (owned), NULL otherwise */
    int n_hash_ids;
    int64_t source_row;      /* 0-based data row in the file (synthetic: index) */
    int clipped;             /* 1 if the prompt or output was cut to the context */
    int client;              /* client id (0 without a client mix) */
    int slo_class;           /* its client's SLO class (0 without one) */
    double ttft_slo;         /* its class's TTFT target in seconds (0 = none) */
    /* multi-turn workloads only (pgd_workload_num_sessions > 0), else 0 */
    int session;             /* conversation index (in session arrival order) */
    int turn;                /* 0-based turn within the conversation */
    int num_turns;           /* turns of this conversation */
} pgd_workload_request;

pgd_status pgd_workload_create(const pgd_workload_config *cfg, pgd_workload **out);
void pgd_workload_destroy(pgd_workload *w);

int pgd_workload_count(const pgd_workload *w);
/* Borrowed; NULL when i is out of range. Sorted by arrival. */
const pgd_workload_request *pgd_workload_get(const pgd_workload *w, int i);
/* 0 = unlimited. */
int pgd_workload_max_concurrency(const pgd_workload *w);
int pgd_workload_closed_loop(const pgd_workload *w);

/* Fill the workload-owned fields of engine request params for request i:
 * prompt (borrowed from the workload), n_prompt, max_tokens and
 * true_output_len (= output_len), ignore_eos = 1, priority, arrival_time =
 * t0 + arrival, client, slo_class, ttft_slo. Other fields (sampling, n, stop...) are left as they are. */
void pgd_workload_fill_params(const pgd_workload *w, int i, double t0, pgd_request_params *p);

typedef struct pgd_workload_summary {
    int count;
    int64_t total_input, total_output;
    double mean_input, mean_output;
    int min_input, max_input, min_output, max_output;
    double duration;         /* last arrival - first arrival (s) */
    double rate;             /* (count - 1) / duration; 0 when duration is 0 */
    int num_clipped, num_skipped;
    int64_t rows_read;       /* data rows seen in the file (trace/dataset) */
} pgd_workload_summary;

void pgd_workload_describe(const pgd_workload *w, pgd_workload_summary *out);
/* One line: "200 requests, input mean 161.3 [1, 2047], output mean ...,
 * duration 12.3 s (16.2 req/s), 3 clipped". Returns snprintf's count. */
int pgd_workload_format(const pgd_workload *w, char *buf, size_t n);
/* 64-bit hash of every request's arrival, prompt, output length and
 * priority: equal fingerprints = identical request sets. */
uint64_t pgd_workload_fingerprint(const pgd_workload *w);

/* ---- multi-turn sessions ----------------------------------------------
 *
 * With cfg->turns != 0/1 a workload is a list of conversations. Requests
 * are ordered by (conversation arrival, conversation, turn), each
 * conversation's turns contiguous. Turn 0's prompt is its message (BOS +
 * text for datasets); a later turn's `prompt` holds only its NEW message
 * (no BOS), and its arrival is the conversation's (a lower bound): the
 * caller releases turn k when turn k-1 has finished, think_time later, with
 * the prompt pgd_workload_turn_prompt builds from the history = every
 * earlier turn's prompt message and the model's ACTUAL output, in order.
 * num_requests counts conversations. Sources: synthetic (every message
 * drawn from input_len, every output from output_len), ShareGPT (every
 * human turn; the following gpt turn's length is the output length) and
 * MT-bench (both turns; outputs from output_len). A trace source cannot be
 * multi-turn (PGD_ERR_INVALID). */

/* Conversations (0 for a single-turn workload). */
int pgd_workload_num_sessions(const pgd_workload *w);
double pgd_workload_think_time(const pgd_workload *w);

/* A conversation's history: its earlier messages and outputs, uncut. */
typedef struct pgd_session_history {
    int32_t *tokens;
    int n, cap;
} pgd_session_history;

pgd_status pgd_session_history_append(pgd_session_history *h, const int32_t *t, int n); /* PGD_ERR_OOM */
void pgd_session_history_free(pgd_session_history *h);

/* Request i's prompt: history + its message, keeping the last max_history
 * tokens (0 = all) and at most max_model_len - output_len (so the output
 * fits); *out is malloc'd (caller frees), *n its length (>= 1), *cut the
 * tokens dropped from the front. For a turn-0 request, history is ignored. */
pgd_status pgd_workload_turn_prompt(const pgd_workload *w, int i, const pgd_session_history *history,
                                    int32_t **out, int *n, int *cut);

#endif
