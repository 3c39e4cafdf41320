/* serve_engine.c - the engine thread of the HTTP server: takes handed-over
 * requests into the engine, runs steps while any is unfinished, copies each
 * step's new tokens (and their decoded text) into the requests, aborts the
 * ones whose clients went away, and releases finished ones with their
 * latencies recorded in the metrics. The only thread that calls the engine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda/log.h"
#include "serve_impl.h"

static void req_free(srv_req *r) { srv_req_free(r); }

void srv_req_unref_locked(srv_req *r) {
    if (r && --r->refs == 0) req_free(r);
}

int srv_submit(pgd_server *s, srv_req *r) {
    pthread_mutex_lock(&s->mu);
    if (s->stopping || s->in_flight >= s->cfg.max_queue) {
        s->m.rejected_full++;
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
    r->refs++; /* the engine side's */
    r->state = SRV_QUEUED;
    r->next = NULL;
    if (s->queue_tail) s->queue_tail->next = r;
    else s->queue_head = r;
    s->queue_tail = r;
    s->in_flight++;
    pthread_cond_signal(&s->work_cv);
    pthread_mutex_unlock(&s->mu);
    return 1;
}

static int grow(void **p, size_t elem, size_t need, size_t *cap) {
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap * 2 : 64;
    while (c < need) c *= 2;
    void *np = realloc(*p, c * elem);
    if (!np) return 0;
    *p = np;
    *cap = c;
    return 1;
}

/* Append new tokens of sequence q (mu held). */
static void append_tokens(pgd_server *s, srv_seq *q, const int32_t *t, int k) {
    size_t cap = (size_t)q->cap;
    if (!grow((void **)&q->tokens, sizeof *q->tokens, (size_t)q->n + (size_t)k, &cap)) return;
    q->cap = (int)cap;
    int bos = pgd_tokenizer_bos(s->tok), eos = pgd_tokenizer_eos(s->tok);
    for (int i = 0; i < k; i++) {
        q->tokens[q->n++] = t[i];
        if (t[i] != bos && t[i] != eos) {
            const char *piece = pgd_tokenizer_decode(s->tok, q->prev, t[i]);
            size_t pl = piece ? strlen(piece) : 0;
            if (pl && grow((void **)&q->text, 1, q->len + pl + 1, &q->tcap)) {
                memcpy(q->text + q->len, piece, pl);
                q->len += pl;
                q->text[q->len] = 0;
            }
        }
        q->prev = t[i];
    }
}

/* Finish r (mu held): counts, latencies, release, wake its client. */
static void finish(pgd_server *s, srv_req *r, const pgd_request_output *o) {
    srv_metrics *m = &s->m;
    r->finished = 1;
    r->state = SRV_DONE;
    r->finish_reason = o ? (o->finish_reason ? o->finish_reason : "error") : "error";
    if (!strcmp(r->finish_reason, "stop")) r->finish_reason = "stop";
    else if (!strcmp(r->finish_reason, "length")) r->finish_reason = "length";
    else if (!strcmp(r->finish_reason, "abort")) r->finish_reason = "abort";
    else r->finish_reason = "error";
    if (o && o->error && !r->error) r->error = strdup(o->error);
    if (o) r->cached_tokens = o->num_cached_tokens;
    for (int k = 0; o && k < r->n && k < o->num_seqs; k++) {
        const char *fr = o->seqs[k].finish_reason;
        r->seqs[k].finish_reason = fr && !strcmp(fr, "length") ? "length" : fr && !strcmp(fr, "stop") ? "stop"
                                 : r->finish_reason;
    }
    for (int k = 0; k < r->n; k++)
        if (!r->seqs[k].finish_reason) r->seqs[k].finish_reason = r->finish_reason;
    if (!strcmp(r->finish_reason, "stop")) m->finished_stop++;
    else if (!strcmp(r->finish_reason, "length")) m->finished_length++;
    else if (!strcmp(r->finish_reason, "abort")) m->finished_abort++;
    else m->finished_error++;
    if (o) {
        m->prompt_tokens += (uint64_t)o->n_prompt;
        for (int k = 0; k < o->num_seqs; k++) {
            const pgd_seq_output *q = &o->seqs[k];
            m->generation_tokens += (uint64_t)q->n_tokens;
            for (int i = 1; i < q->n_tokens; i++) srv_hist_observe(&m->itl, q->token_times[i] - q->token_times[i - 1]);
        }
        if (o->first_token >= 0 && o->arrival >= 0) srv_hist_observe(&m->ttft, o->first_token - o->arrival);
        if (o->first_scheduled >= 0 && o->arrival >= 0) srv_hist_observe(&m->queue, o->first_scheduled - o->arrival);
        if (o->finish >= 0 && o->arrival >= 0 && strcmp(r->finish_reason, "abort"))
            srv_hist_observe(&m->e2e, o->finish - o->arrival);
    }
    s->in_flight--;
    pthread_cond_broadcast(&s->out_cv);
}

/* Take the queue into the engine (mu held). */
static void admit(pgd_server *s) {
    while (s->queue_head) {
        srv_req *r = s->queue_head;
        s->queue_head = r->next;
        if (!s->queue_head) s->queue_tail = NULL;
        r->next = NULL;
        if (r->abandoned) {
            r->finished = 1;
            r->state = SRV_DONE;
            r->finish_reason = "abort";
            s->m.finished_abort++;
            s->in_flight--;
            srv_req_unref_locked(r);
            continue;
        }
        if (pgd_engine_add_request(s->eng, &r->params, &r->eng_id) != PGD_OK) {
            r->error = strdup(pgd_last_error());
            r->rejected = 1;
            finish(s, r, NULL);
            srv_req_unref_locked(r);
            continue;
        }
        for (int k = 0; k < r->n; k++) r->seqs[k].prev = r->prompt[r->n_prompt - 1];
        r->state = SRV_ACTIVE;
        r->next = s->active;
        s->active = r;
    }
}

/* After a step: new tokens, finished requests (mu held). */
static void collect(pgd_server *s) {
    srv_req **pp = &s->active;
    int woke = 0;
    while (*pp) {
        srv_req *r = *pp;
        for (int k = 0; k < r->n; k++) {
            const int32_t *t = NULL;
            const double *tt = NULL;
            int got = pgd_engine_take_new_tokens(s->eng, r->eng_id, k, &t, &tt);
            if (got > 0) {
                append_tokens(s, &r->seqs[k], t, got);
                woke = 1;
            }
        }
        const pgd_request_output *o = NULL;
        if (pgd_engine_get_output(s->eng, r->eng_id, &o) == PGD_OK && o->finished) {
            finish(s, r, o);
            pgd_engine_release(s->eng, r->eng_id);
            *pp = r->next;
            r->next = NULL;
            srv_req_unref_locked(r);
            continue;
        }
        pp = &r->next;
    }
    if (woke) pthread_cond_broadcast(&s->out_cv);
}

static void abort_abandoned(pgd_server *s) {
    for (srv_req *r = s->active; r; r = r->next)
        if ((r->abandoned || s->stopping) && !r->aborted) {
            r->aborted = 1;
            pgd_engine_abort(s->eng, r->eng_id);
        }
}

void *srv_engine_main(void *arg) {
    pgd_server *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        admit(s);
        abort_abandoned(s);
        if (!s->active) {
            if (s->stopping) break;
            pthread_cond_wait(&s->work_cv, &s->mu);
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        int nfin = 0;
        pgd_status st = pgd_engine_step(s->eng, &nfin);
        char msg[512] = "";
        if (st != PGD_OK) snprintf(msg, sizeof msg, "%s", pgd_last_error());
        pgd_engine_stats es;
        pgd_engine_get_stats(s->eng, &es);
        pthread_mutex_lock(&s->mu);
        s->m.stats = es;
        if (st != PGD_OK) {
            /* the engine failed: fail every request in it rather than spin */
            PGD_LOG_W("serve: engine step failed: %s", msg);
            for (srv_req *r = s->active; r; r = r->next) {
                if (!r->error) r->error = strdup(msg);
                if (!r->aborted) {
                    r->aborted = 1;
                    pgd_engine_abort(s->eng, r->eng_id);
                }
            }
        }
        collect(s);
        if (st != PGD_OK && s->active && !pgd_engine_has_unfinished(s->eng)) {
            /* nothing the engine can still finish: end them here */
            while (s->active) {
                srv_req *r = s->active;
                s->active = r->next;
                finish(s, r, NULL);
                srv_req_unref_locked(r);
            }
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}
