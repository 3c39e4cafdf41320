/* engine_seq.c - what happens to a sequence after the forward pass:
 * sampling (with the fork of parallel samples once the prompt is
 * prefilled), stop conditions, streaming, and the output snapshots.
 *
 * Invariants: an eseq's gen/times hold every token it generated, in order;
 * a token is appended to the scheduler sequence only while it is live, so
 * the scheduler never computes past a stop. */
#include <stdlib.h>
#include <string.h>

#include "engine_impl.h"

eseq *pgd_eseq_create(int index) {
    eseq *es = calloc(1, sizeof *es);
    if (es) es->index = index;
    return es;
}

void pgd_eseq_destroy(eseq *es) {
    if (!es) return;
    pgd_sampler_destroy(es->sampler);
    free(es->gen);
    free(es->times);
    free(es->text);
    free(es->cand_tok);
    free(es->cand_lp);
    free(es->cand_logit);
    free(es);
}

pgd_status pgd_eseq_push(eseq *es, int32_t token, double t) {
    if (es->n_gen == es->cap) {
        int cap = es->cap ? 2 * es->cap : 32;
        int32_t *g = realloc(es->gen, sizeof *g * (size_t)cap);
        if (!g) return pgd_error(PGD_ERR_OOM, "engine: out of memory");
        es->gen = g;
        double *tt = realloc(es->times, sizeof *tt * (size_t)cap);
        if (!tt) return pgd_error(PGD_ERR_OOM, "engine: out of memory");
        es->times = tt;
        es->cap = cap;
    }
    es->gen[es->n_gen] = token;
    es->times[es->n_gen++] = t;
    return PGD_OK;
}

static int ends_with_stop(const ereq *r, const eseq *es, size_t piece_len) {
    for (int i = 0; i < r->p.n_stop_strings; i++) {
        const char *s = r->stop_strs[i];
        size_t n = strlen(s);
        if (!n || n > es->text_len) continue;
        /* the stop string must end inside the newest piece */
        size_t from = es->text_len > piece_len + n ? es->text_len - piece_len - n : 0;
        for (size_t k = from; k + n <= es->text_len; k++)
            if (!memcmp(es->text + k, s, n)) return 1;
    }
    return 0;
}

const char *pgd_engine_stop_reason(pgd_engine *e, ereq *r, eseq *es, int32_t token) {
    if (!r->p.ignore_eos && (token == e->eos || (e->stop_bos && token == e->bos))) return "stop";
    for (int i = 0; i < r->p.n_stop_token_ids; i++)
        if (token == r->stop_ids[i]) return "stop";
    if (r->p.n_stop_strings > 0 && e->tok) {
        int prev = es->n_gen >= 2 ? es->gen[es->n_gen - 2] : r->prompt[r->p.n_prompt - 1];
        const char *piece = pgd_tokenizer_decode(e->tok, prev, token);
        size_t n = piece ? strlen(piece) : 0;
        if (es->text_len + n + 1 > es->text_cap) {
            size_t cap = (es->text_len + n + 1) * 2;
            char *t = realloc(es->text, cap);
            if (t) {
                es->text = t;
                es->text_cap = cap;
            }
        }
        if (es->text && es->text_len + n + 1 <= es->text_cap) {
            if (n) memcpy(es->text + es->text_len, piece, n);
            es->text_len += n;
            es->text[es->text_len] = 0;
            if (ends_with_stop(r, es, n)) return "stop";
        }
    }
    if (es->n_gen >= r->max_new) return "length";
    return NULL;
}

/* Record a sampled token; finish the sequence or feed the token back. */
static pgd_status emit(pgd_engine *e, ereq *r, eseq *es, int32_t token) {
    double now = pgd_engine_now(e);
    PGD_TRY(pgd_eseq_push(es, token, now));
    e->stats.tokens_generated++;
    if (r->first_token < 0) r->first_token = now;
    if (e->cfg.on_token) e->cfg.on_token(e->cfg.on_token_ctx, r->id, es->index, token, now);
    const char *why = pgd_engine_stop_reason(e, r, es, token);
    if (!why && r->p.prefill_only) return pgd_engine_park(e, r, es); /* disaggregation: hand it over */
    if (why) {
        es->finish_reason = why;
        pgd_scheduler_free_seq(e->sched, r->group, es->sseq);
        es->sseq = NULL;
        return PGD_OK;
    }
    return pgd_scheduler_append(e->sched, es->sseq, token);
}

static pgd_status sample_emit(pgd_engine *e, ereq *r, eseq *es, const float *logits) {
    size_t V = (size_t)e->mc->vocab_size;
    /* A virtual backend (sim) computes no logits (they are all 0): its cheap
     * stand-in is token 0, what greedy picks from equal logits, without a scan
     * of the vocabulary. Lengths come from max_tokens / ignore_eos. */
    if (e->stand_in_tokens) return emit(e, r, es, 0);
    if (!e->scratch) {
        e->scratch = malloc(sizeof(float) * V);
        if (!e->scratch) return pgd_error(PGD_ERR_OOM, "engine: out of memory");
    }
    memcpy(e->scratch, logits, sizeof(float) * V);
    return emit(e, r, es, pgd_sampler_sample(es->sampler, e->scratch));
}

pgd_status pgd_engine_on_logits(pgd_engine *e, ereq *r, eseq *es, const float *logits) {
    if (r->beam) return pgd_beam_collect(e, r, es, logits);
    if (r->n > 1 && e->can_fork && !r->seqs[1]) {
        /* the prompt is prefilled once: fork the other samples from it */
        for (int i = 1; i < r->n; i++) {
            eseq *c = pgd_eseq_create(i);
            if (!c) return pgd_error(PGD_ERR_OOM, "engine: out of memory");
            pgd_sampling_params sp = r->p.sampling;
            sp.seed += (uint64_t)i;
            pgd_status st = pgd_sampler_create(&sp, e->mc->vocab_size, &c->sampler);
            if (st == PGD_OK) st = pgd_scheduler_fork(e->sched, r->group, es->sseq, &c->sseq);
            if (st != PGD_OK) {
                pgd_eseq_destroy(c);
                return st;
            }
            c->sseq->user = c;
            r->seqs[i] = c;
        }
        for (int i = 0; i < r->n; i++) PGD_TRY(sample_emit(e, r, r->seqs[i], logits));
        return PGD_OK;
    }
    return sample_emit(e, r, es, logits);
}

static const char *finish_of(const eseq *es) { return es ? es->finish_reason : NULL; }

static void fill_out(pgd_seq_output *o, const eseq *es) {
    memset(o, 0, sizeof *o);
    if (!es) return;
    o->tokens = es->gen;
    o->token_times = es->times;
    o->n_tokens = es->n_gen;
    o->cum_logprob = es->cum_logprob;
    o->finish_reason = finish_of(es);
}

pgd_status pgd_engine_get_output(pgd_engine *e, int64_t id, const pgd_request_output **out) {
    ereq *r = e && id >= 0 && id < e->n_reqs ? e->reqs[id] : NULL;
    if (!r) return pgd_error(PGD_ERR_INVALID, "engine: no request %lld", (long long)id);
    pgd_request_output *o = &r->out;
    o->id = r->id;
    o->finished = r->finished;
    o->finish_reason = r->finish_reason;
    o->error = r->error[0] ? r->error : NULL;
    o->prompt = r->prompt;
    o->n_prompt = r->p.n_prompt;
    o->arrival = r->arrival;
    o->first_scheduled = r->first_scheduled;
    o->first_token = r->first_token;
    o->finish = r->finish;
    o->num_preemptions = r->group ? r->group->num_preemptions : o->num_preemptions;
    o->num_cached_tokens = r->group ? r->group->cached_tokens : o->num_cached_tokens;
    int k = 0;
    if (r->beam && r->finished && r->n_fin > 0) {
        for (; k < r->n_fin && k < r->beam; k++) fill_out(&r->outs[k], r->fin[k]);
    } else {
        for (; k < r->n_seqs; k++) fill_out(&r->outs[k], r->seqs[k]);
    }
    o->num_seqs = k;
    o->seqs = r->outs;
    *out = o;
    return PGD_OK;
}

int pgd_engine_take_new_tokens(pgd_engine *e, int64_t id, int seq_index, const int32_t **tokens,
                               const double **times) {
    ereq *r = e && id >= 0 && id < e->n_reqs ? e->reqs[id] : NULL;
    if (!r || r->beam || seq_index < 0 || seq_index >= r->n_seqs || !r->seqs[seq_index]) return 0;
    eseq *es = r->seqs[seq_index];
    int n = es->n_gen - es->streamed;
    if (tokens) *tokens = es->gen + es->streamed;
    if (times) *times = es->times + es->streamed;
    es->streamed = es->n_gen;
    return n;
}
