/* engine_impl.h - the engine's internal state, shared by engine.c (create,
 * requests, the step), engine_seq.c (sampling, stopping, outputs) and
 * engine_beam.c (beam search).
 *
 * Invariants: a live request owns exactly one scheduler group (r->group)
 * whose sequences' `user` point at the request's live eseqs; an eseq with
 * sseq == NULL is finished and keeps its tokens for the output. */
#ifndef PAGODA_ENGINE_IMPL_H
#define PAGODA_ENGINE_IMPL_H

#include "pagoda/engine.h"

typedef struct eseq {
    int index;              /* output slot (parallel sampling) */
    pgd_sched_seq *sseq;    /* NULL once finished */
    pgd_sampler *sampler;   /* sampled requests */
    int32_t *gen;
    double *times;
    int n_gen, cap;
    double cum_logprob;
    const char *finish_reason;
    char *text;             /* decoded text, kept only with stop strings */
    size_t text_len, text_cap;
    int streamed;           /* tokens handed out by take_new_tokens */
    int pending;            /* beam: candidates below are fresh */
    int32_t *cand_tok;      /* beam: (2k) best next tokens */
    float *cand_lp, *cand_logit;
} eseq;

typedef struct ereq {
    int64_t id;
    pgd_request_params p;   /* pointers below are the request's own copies */
    int32_t *prompt, *stop_ids;
    char **stop_strs;
    int max_new, n, beam;
    pgd_sched_group *group; /* NULL once finished */
    eseq **seqs;            /* sampling: n slots (NULL until forked); beam: live beams */
    int n_seqs;
    eseq **fin;             /* beam: finished beams */
    int n_fin, cap_fin, fin_count;
    int finished;
    const char *finish_reason;
    char error[256];
    double arrival, first_scheduled, first_token, finish;
    pgd_seq_output *outs;
    pgd_request_output out;
    int64_t touched_step;
    int in_flight;          /* items in a batch whose logits have not landed */
    int remove_on_landing;  /* finished (aborted) while in flight: its group goes when the batch lands */
    int release_on_landing; /* released while in flight: destroyed when the batch lands */
    /* prefill_only (engine_disagg.c): its prompt's KV waiting for pgd_engine_export */
    int parked; /* 1: blocks kept under the KV manager id park_id; 2: copied to staged */
    int64_t park_id;
    void *staged; /* contiguous kinds: the K/V read at once (staged_bytes) */
    size_t staged_bytes;
    int staged_blocks;
    int exported;
    /* imported (engine_disagg.c): not admitted yet (its KV arrives at ready_at, engine time, or
       there was no room); its hand-off, owned */
    struct pgd_kv_handoff *pending;
    double ready_at;
} ereq;

/* A batch in flight: what sampling needs when its logits land. */
typedef struct flight_item {
    ereq *r;
    eseq *es;
    int sample;
} flight_item;
typedef struct flight {
    int ticket, n, cap;
    flight_item *items;
} flight;

struct pgd_engine {
    pgd_engine_config cfg;
    pgd_exec *exec;            /* borrowed: runs the passes and holds the KV cache */
    const pgd_tokenizer *tok;  /* borrowed, may be NULL */
    const pgd_model_config *mc;
    pgd_kv_manager *kvm;
    pgd_scheduler *sched;
    flight *flights;           /* ring of max_in_flight batches out */
    int n_flights, flight_head, max_in_flight;
    int64_t landings;          /* batches landed so far (marks a landing's touched requests) */
    int kv_created;            /* the executor's KV cache is this engine's */
    ereq **reqs;               /* by id; NULL once released */
    int64_t n_reqs, cap_reqs;
    int64_t n_live;
    int eos, bos, stop_bos, can_fork;
    int stand_in_tokens;       /* the executor computes nothing (sim): sampled sequences get token 0 */
    double t0;
    pgd_engine_stats stats;
    int importing;      /* set while pgd_engine_import adds its request (engine_disagg.c) */
    int64_t n_parked;   /* live requests parked (prefill_only, waiting for export): not busy */
    int64_t n_pending;  /* imported requests not admitted yet */
    int64_t pending_lo; /* no request below this id is pending */
    /* exported KV still being sent (pgd_engine_export_held): freed at free_at (engine time) */
    struct held_kv {
        int64_t request, kv_id;
        double free_at; /* INFINITY until pgd_engine_export_sent */
    } * held;
    int n_held, cap_held;
    /* per-step scratch */
    int32_t *tokens, *qs, *lens, *tables, *pairs;
    float *scratch;
    ereq **touched;            /* requests in this step's plan */
    size_t cap_tokens, cap_seqs, cap_tables, cap_pairs, cap_touched;
};

/* Logits of a sequence that completed this step (engine_seq.c). */
pgd_status pgd_engine_on_logits(pgd_engine *e, ereq *r, eseq *es, const float *logits);
/* Free an eseq (not its scheduler sequence). */
void pgd_eseq_destroy(eseq *es);
eseq *pgd_eseq_create(int index);
pgd_status pgd_eseq_push(eseq *es, int32_t token, double t);
/* Stop checks for a sequence that just got `token`: a reason or NULL. */
const char *pgd_engine_stop_reason(pgd_engine *e, ereq *r, eseq *es, int32_t token);
/* Beam search (engine_beam.c): collect candidates / advance when all beams are ready. */
pgd_status pgd_beam_collect(pgd_engine *e, ereq *r, eseq *es, const float *logits);
pgd_status pgd_beam_advance(pgd_engine *e, ereq *r);
/* Prefill/decode disaggregation (engine_disagg.c): keep a prefill_only
 * request's KV after its first token (es stays live until this returns). */
pgd_status pgd_engine_park(pgd_engine *e, ereq *r, eseq *es);
/* Drop what a parked or pending request still holds (finish, release). */
void pgd_engine_unpark(pgd_engine *e, ereq *r);
/* Admit the pending imports whose KV has arrived; with idle = 1 (nothing
 * else to run) first wait on the engine clock for the earliest one. */
pgd_status pgd_engine_admit_imports(pgd_engine *e, int idle);
/* Free the held exports whose transfer has ended by now; with idle = 1
 * (nothing scheduled) first wait on the engine clock for the earliest one. */
void pgd_engine_free_sent(pgd_engine *e, int idle);

/* Finish the request: free its group, set reasons and times. */
void pgd_engine_finish(pgd_engine *e, ereq *r, const char *reason);

#endif
