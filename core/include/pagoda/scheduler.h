/* scheduler.h - iteration-level scheduler over a KV manager (continuous
 * batching with a pluggable policy, vLLM-style).
 *
 * A request is a sequence group: one or more sequences (parallel samples,
 * beams) sharing a prompt. Each sequence holds its tokens (prompt, then
 * generated ones) and how many of them already have K/V in the cache
 * (`computed`). What a step computes for a sequence is always
 * tokens[computed .. len-1]: a prefill (or a chunk of it), one decode token,
 * or after a recompute preemption its whole token list again (the
 * sequences of a forked group then share the whole blocks of their common
 * prefix again: the first computes them, the others start after them). A
 * sequence whose computed count reaches len in a step gets logits to sample
 * from.
 *
 * pgd_scheduler_step() fills a plan: the scheduled sequences with their new
 * tokens and block tables, and an ORDERED list of block operations (swap
 * out, copy-on-write copies, swap in) that the caller must run in order
 * before the forward pass, plus the groups preempted or dropped this step.
 *
 * Invariants kept by every step: at most max_num_batched_tokens new tokens
 * and at most max_num_seqs sequences in a plan; running groups are served
 * first (decodes are 1 token each, a running prefill takes its next chunk),
 * then swapped groups (swapped back in before any new admission), then
 * waiting groups in policy order; a group is admitted, preempted, swapped
 * and freed as a whole. With chunked prefill off a prompt is scheduled
 * whole or not at all, except a group with more tokens to compute than a
 * whole step's budget (a recomputed forked group), which is prefilled in
 * chunks. A group that may fork is admitted only while a free block is left
 * for every running sequence and each of its own. A swapped group that
 * cannot come back even with nothing running is recomputed instead. With
 * a KV manager that batches statically (PGD_KV_STATIC_BATCH: "static") new
 * groups are only admitted when nothing is running (request-level static
 * batching). Block counts come from the KV manager's queries
 * (pgd_kv_blocks_needed, pgd_kv_group_blocks, pgd_kv_swap_in_blocks).
 *
 * Batches in flight: with max_in_flight K > 1 the caller may plan up to K
 * steps before the first one's logits are back (pipeline stages, async
 * scheduling; vLLM's virtual engines). Every group in a plan is then IN
 * FLIGHT until the caller reports it landed (pgd_scheduler_landed, after
 * its logits were sampled): a group is in at most one in-flight batch, is
 * not scheduled, preempted or chosen as a victim while in flight (its
 * blocks stay reserved), and is not dropped for want of blocks that
 * in-flight groups may still free. With K = 1 nothing changes: the caller
 * samples each plan before the next (groups land implicitly).
 *
 * The group/sequence structs are shared with the engine and the policies;
 * callers treat them as read-only and change them only through the
 * functions below. Pointers stay valid until the group is removed. */
#ifndef PAGODA_SCHEDULER_H
#define PAGODA_SCHEDULER_H

#include <stdint.h>
#include <stdio.h>

#include "pagoda/kv_manager.h"
#include "pagoda/status.h"

typedef struct pgd_scheduler pgd_scheduler;

typedef enum pgd_preempt_mode { PGD_PREEMPT_RECOMPUTE = 0, PGD_PREEMPT_SWAP } pgd_preempt_mode;

typedef enum pgd_sched_state {
    PGD_SCHED_WAITING = 0,
    PGD_SCHED_RUNNING,
    PGD_SCHED_SWAPPED,
    PGD_SCHED_DONE,
} pgd_sched_state;

typedef struct pgd_sched_config {
    int max_num_batched_tokens; /* 0 = max(max_seq_len, 2048), or 512 with chunked prefill */
    int max_num_seqs;           /* 0 = 256 */
    const char *policy;         /* NULL = "fcfs" */
    pgd_preempt_mode preemption;
    int chunked_prefill;
    int max_seq_len;            /* the model's context (> 0) */
    int max_in_flight;          /* plans out before the oldest lands: 0 or 1 = one at a time */
    FILE *trace;                /* NULL = off; else one JSON line per step: the decisions
                                   (pgd_scheduler_step's "Decision trace" below) */
} pgd_sched_config;

typedef struct pgd_sched_seq {
    int64_t id;         /* KV manager sequence id (unique within the scheduler) */
    int32_t *tokens;    /* prompt then generated tokens */
    int len, cap;
    int computed;       /* tokens[0..computed-1] have K/V (or are scheduled this step) */
    int in_kv;          /* registered with the KV manager */
    void *user;         /* the caller's per-sequence data */
} pgd_sched_seq;

typedef struct pgd_sched_group {
    int64_t id;           /* request id */
    double arrival;
    int priority;         /* lower value = served first (priority policy) */
    int prompt_len;
    int max_total_len;    /* most tokens one sequence ever holds in the KV cache */
    int true_output_len;  /* known true output length, <= 0 if unknown */
    int max_seqs;         /* sequences it may grow to (n or beam width) */
    int num_seqs;
    pgd_sched_seq **seqs; /* (max_seqs) */
    pgd_sched_state state;
    int num_preemptions;
    int64_t order;        /* admission order, tie-breaker for policies */
    void *policy_data;    /* the policy's own per-group data (its group_data_size bytes, zeroed at
                             add; only the policy reads it) */
    int client;           /* who sent it (fairness policies; 0 = the only client) */
    int slo_class;        /* its SLO class (0 = most urgent) */
    double ttft_deadline; /* arrival + its class's TTFT SLO (slo policy); <= 0 = none */
    int scheduled_step;   /* last step it was in a plan (internal) */
    int in_flight;        /* in a plan whose logits have not landed (max_in_flight > 1) */
    int preempted_step;   /* last step it was preempted (internal) */
    char error[192];      /* why it was dropped, if it was */
    void *user;           /* the caller's per-request data */
    int cached_tokens;    /* prompt tokens its first sequence found in the prefix cache at its
                             first admission (valid when cached_known) */
    int cached_known;
} pgd_sched_group;

typedef struct pgd_sched_request {
    int64_t id;
    const int32_t *prompt;
    int n_prompt;
    int max_new_tokens;   /* tokens a sequence may generate (stop included) */
    int true_output_len;  /* <= 0: unknown */
    int priority;
    double arrival;
    int num_seqs;         /* sequences created now (1, or n without fork support) */
    int max_seqs;         /* sequences it may grow to (>= num_seqs) */
    int client;           /* >= 0 */
    int slo_class;        /* >= 0 */
    double ttft_deadline; /* <= 0: none */
    void *user;
} pgd_sched_request;

typedef enum pgd_sched_op_kind { PGD_OP_SWAP_OUT = 0, PGD_OP_COPY, PGD_OP_SWAP_IN } pgd_sched_op_kind;

typedef struct pgd_sched_op {
    int kind; /* pgd_sched_op_kind */
    int32_t src, dst;
} pgd_sched_op;

typedef struct pgd_sched_item {
    pgd_sched_group *group;
    pgd_sched_seq *seq;
    int start;            /* position of the first new token (computed before this step) */
    int num_new_tokens;   /* tokens seq->tokens[start .. start+n-1] */
    int sample;           /* 1: the sequence is complete after this step, sample from its logits */
    const int32_t *block_table; /* borrowed until the next step */
    int n_blocks;
} pgd_sched_item;

typedef struct pgd_sched_plan {
    int num_items, num_tokens;
    pgd_sched_item *items;
    int num_ops;
    pgd_sched_op *ops;           /* run in order before the forward pass */
    int num_preempted;
    pgd_sched_group **preempted; /* preempted this step (recompute or swap) */
    int num_dropped;
    pgd_sched_group **dropped;   /* can never run (reason in group->error); removed by the caller */
    int num_swapped_in, num_admitted;
} pgd_sched_plan;

/* kv is borrowed and must outlive the scheduler. */
pgd_status pgd_scheduler_create(const pgd_sched_config *cfg, pgd_kv_manager *kv,
                                pgd_scheduler **out);
void pgd_scheduler_destroy(pgd_scheduler *s);
const pgd_sched_config *pgd_scheduler_config(const pgd_scheduler *s);

/* Queue a request as a waiting group. PGD_ERR_INVALID with a message when
 * it could never run (prompt beyond the context or the cache, too many
 * sequences for max_num_seqs, a prompt over the token budget with chunked
 * prefill off). */
pgd_status pgd_scheduler_add(pgd_scheduler *s, const pgd_sched_request *r, pgd_sched_group **out);

/* Admit a request whose first n_computed of tokens[0..n_tokens-1] (its
 * prompt, then what it generated) already have K/V elsewhere (prefill/decode
 * disaggregation): one sequence holding those tokens, registered with the KV
 * manager for n_computed of them, goes straight to running, so the next step
 * computes tokens[n_computed..]. *out gets the group; the caller writes the
 * K/V into its block table (pgd_kv_block_table of seqs[0]->id) before the
 * next step, except the first *n_cached tokens' blocks (found in the prefix
 * cache; may be NULL). PGD_ERR_NO_BLOCKS when there are not enough free
 * blocks or sequence slots now (nothing changed: retry later); otherwise the
 * checks of pgd_scheduler_add. */
pgd_status pgd_scheduler_add_prefilled(pgd_scheduler *s, const pgd_sched_request *r, const int32_t *tokens,
                                       int n_tokens, int n_computed, pgd_sched_group **out, int *n_cached);

/* Plan the next step. The plan is owned by the scheduler and valid until
 * the next call.
 *
 * Decision trace (cfg.trace set): each step that plans, preempts, drops
 * or leaves a request waiting writes one JSON object on one line:
 *   {"step":N,
 *    "batch":[[req,seq,start,tokens,"prefill"|"decode"],...],
 *    "admitted":[req,...], "swapped_in":[req,...],
 *    "preempted":[[req,"swap"|"recompute","reason"],...],
 *    "dropped":[req,...],
 *    "waiting":{"head":req,"why":"budget"|"kv"|"max_num_seqs"|"policy"|
 *               "static"|"swapped"|"preempted","behind":n},
 *    "ops":{"swap_out":n,"copy":n,"swap_in":n}}
 * (empty members left out; seq is the sequence's index in its group). It
 * holds no times, so the same run on any backend writes the same file. A
 * waiting head's reason: the step's token budget ("budget"), free KV
 * blocks ("kv"), max_num_seqs, the policy's admission hook ("policy"),
 * static batching with groups running ("static"), swapped groups coming
 * back first ("swapped") or preempted this step ("preempted"); "behind"
 * counts the waiting groups queued after it. A preemption's reason names
 * the group whose blocks it freed, or "recompute: blocks ran out" when an
 * append failed. */
pgd_status pgd_scheduler_step(pgd_scheduler *s, const pgd_sched_plan **plan);

/* The batch holding g has landed (its logits were sampled): g may be
 * scheduled again. Needed only with max_in_flight > 1; idempotent. */
void pgd_scheduler_landed(pgd_scheduler *s, pgd_sched_group *g);
/* Groups currently in flight. */
int pgd_scheduler_num_in_flight(const pgd_scheduler *s);

/* After sampling: append a generated token to a sequence. */
pgd_status pgd_scheduler_append(pgd_scheduler *s, pgd_sched_seq *seq, int32_t token);
/* Fork a new sequence sharing `parent`'s tokens and K/V (beam search,
 * parallel sampling). Needs a running group with room (max_seqs). */
pgd_status pgd_scheduler_fork(pgd_scheduler *s, pgd_sched_group *g, pgd_sched_seq *parent,
                              pgd_sched_seq **child);
/* Finish one sequence of a group: its blocks are freed. */
void pgd_scheduler_free_seq(pgd_scheduler *s, pgd_sched_group *g, pgd_sched_seq *seq);
/* Remove a group (finished or aborted) from every queue and free it. */
void pgd_scheduler_remove(pgd_scheduler *s, pgd_sched_group *g);

/* Blocks the KV manager has allocated outside the scheduler's groups that
 * will come back without it (P/D: a prefill engine's exports whose transfer
 * is in flight, engine.h's pgd_engine_export_held): a group that does not
 * fit in the free blocks but would with these waits for them instead of
 * being dropped as too large for an otherwise empty cache. */
void pgd_scheduler_set_held_blocks(pgd_scheduler *s, int n);

int pgd_scheduler_num_waiting(const pgd_scheduler *s);
int pgd_scheduler_num_running(const pgd_scheduler *s);
int pgd_scheduler_num_swapped(const pgd_scheduler *s);
int pgd_scheduler_has_unfinished(const pgd_scheduler *s);
int64_t pgd_scheduler_total_preemptions(const pgd_scheduler *s);
/* Of those, the preemptions that swapped the group's KV out (in swap mode a
 * preemption recomputes instead when the host space is short). */
int64_t pgd_scheduler_total_swaps(const pgd_scheduler *s);

/* Registered policy names, NULL-terminated. */
const char *const *pgd_policy_names(void);
pgd_status pgd_preempt_mode_parse(const char *name, pgd_preempt_mode *out);

#endif
