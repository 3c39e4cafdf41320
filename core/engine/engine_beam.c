/* engine_beam.c - beam search of width k over the paged KV cache.
 *
 * Each live beam is a scheduler sequence. When a beam's logits arrive its
 * 2k best next tokens (by logit, ties to the lower id) are kept with their
 * log-probs (log-softmax). Once every live beam has its candidates, all
 * candidates are ranked by cumulative log-prob (ties: higher logit, lower
 * beam, lower token), a candidate that ends a beam (EOS/BOS/stop id, or the
 * length limit) becomes a finished beam if it ranks among the first k, and
 * the first k others become the new live beams: a beam with no child is
 * freed, a beam with c children is forked c-1 times (the children share its
 * blocks; copy-on-write on their next append). The search ends when no beam
 * is live or the k best finished beams all score at least the best live
 * beam (log-probs only lower a score). Width 1 is exactly greedy. Stop
 * strings are not applied to beams. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine_impl.h"

typedef struct cand {
    double score;
    float logit, lp;
    int beam;
    int32_t token;
} cand;

pgd_status pgd_beam_collect(pgd_engine *e, ereq *r, eseq *es, const float *logits) {
    int K = 2 * r->beam, V = e->mc->vocab_size;
    if (K > V) K = V;
    if (!es->cand_tok) {
        es->cand_tok = malloc(sizeof(int32_t) * (size_t)K);
        es->cand_lp = malloc(sizeof(float) * (size_t)K);
        es->cand_logit = malloc(sizeof(float) * (size_t)K);
        if (!es->cand_tok || !es->cand_lp || !es->cand_logit) return pgd_error(PGD_ERR_OOM, "engine: out of memory");
    }
    if (e->stand_in_tokens) {
        /* The sim computes no logits: all are 0 (sim_backend.c), so the scan
         * below would keep tokens 0..K-1 at log-prob -log V. Give exactly
         * that without V exps per beam and step (minutes per run at OPT's
         * 50K vocabulary and ShareGPT lengths). Every beam then ranks its
         * candidates alike and beam 0's rank first, so each step's k beams
         * all descend from one: the most sharing beam search can have. */
        float lp = (float)(0.0 - log((double)V));
        for (int j = 0; j < K; j++) {
            es->cand_tok[j] = j;
            es->cand_logit[j] = 0.0f;
            es->cand_lp[j] = lp;
        }
        es->pending = 1;
        return PGD_OK;
    }
    float mx = logits[0];
    for (int i = 1; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (int i = 0; i < V; i++) sum += exp((double)logits[i] - mx);
    double lse = mx + log(sum);
    int n = 0;
    for (int i = 0; i < V; i++) { /* insertion into the top-K, strict > keeps lower ids first */
        if (n == K && !(logits[i] > es->cand_logit[K - 1])) continue;
        int j = n < K ? n++ : K - 1;
        while (j > 0 && logits[i] > es->cand_logit[j - 1]) {
            es->cand_logit[j] = es->cand_logit[j - 1];
            es->cand_tok[j] = es->cand_tok[j - 1];
            j--;
        }
        es->cand_logit[j] = logits[i];
        es->cand_tok[j] = i;
    }
    for (int j = 0; j < K; j++) es->cand_lp[j] = (float)((double)es->cand_logit[j] - lse);
    es->pending = 1;
    return PGD_OK;
}

static int cand_cmp(const void *pa, const void *pb) {
    const cand *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    if (a->logit != b->logit) return a->logit > b->logit ? -1 : 1;
    if (a->beam != b->beam) return a->beam < b->beam ? -1 : 1;
    return (a->token > b->token) - (a->token < b->token);
}

static int fin_cmp(const void *pa, const void *pb) {
    const eseq *a = *(eseq *const *)pa, *b = *(eseq *const *)pb;
    if (a->cum_logprob != b->cum_logprob) return a->cum_logprob > b->cum_logprob ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

static eseq *copy_beam(const eseq *src, int index) {
    eseq *c = pgd_eseq_create(index);
    if (!c) return NULL;
    for (int i = 0; i < src->n_gen; i++)
        if (pgd_eseq_push(c, src->gen[i], src->times[i]) != PGD_OK) {
            pgd_eseq_destroy(c);
            return NULL;
        }
    c->cum_logprob = src->cum_logprob;
    return c;
}

static int ends_beam(const pgd_engine *e, const ereq *r, int32_t t) {
    if (!r->p.ignore_eos && (t == e->eos || (e->stop_bos && t == e->bos))) return 1;
    for (int i = 0; i < r->p.n_stop_token_ids; i++)
        if (t == r->stop_ids[i]) return 1;
    return 0;
}

static pgd_status add_finished(ereq *r, const eseq *parent, const cand *c, const char *why, double now) {
    if (r->n_fin == r->cap_fin) {
        int cap = r->cap_fin ? 2 * r->cap_fin : 8;
        eseq **f = realloc(r->fin, sizeof *f * (size_t)cap);
        if (!f) return pgd_error(PGD_ERR_OOM, "engine: out of memory");
        r->fin = f;
        r->cap_fin = cap;
    }
    eseq *b = copy_beam(parent, r->fin_count++); /* index: tie-breaker in finishing order */
    if (!b) return pgd_error(PGD_ERR_OOM, "engine: out of memory");
    pgd_status st = pgd_eseq_push(b, c->token, now);
    if (st != PGD_OK) {
        pgd_eseq_destroy(b);
        return st;
    }
    b->cum_logprob = c->score;
    b->finish_reason = why;
    r->fin[r->n_fin++] = b;
    return PGD_OK;
}

pgd_status pgd_beam_advance(pgd_engine *e, ereq *r) {
    int k = r->beam, L = r->n_seqs, K = 2 * k < e->mc->vocab_size ? 2 * k : e->mc->vocab_size;
    for (int b = 0; b < L; b++)
        if (!r->seqs[b]->pending) return PGD_OK; /* wait for every beam's logits */
    double now = pgd_engine_now(e);
    if (r->first_token < 0) r->first_token = now;
    cand *cs = malloc(sizeof *cs * (size_t)(L * K));
    cand *keep = malloc(sizeof *keep * (size_t)k);
    int *children = calloc((size_t)L, sizeof(int));
    eseq **nl = calloc((size_t)k, sizeof *nl);
    pgd_status st = PGD_ERR_OOM;
    if (!cs || !keep || !children || !nl) goto fail;
    int nc = 0;
    for (int b = 0; b < L; b++)
        for (int j = 0; j < K; j++) {
            eseq *es = r->seqs[b];
            cs[nc++] = (cand){.score = es->cum_logprob + es->cand_lp[j], .logit = es->cand_logit[j],
                              .lp = es->cand_lp[j], .beam = b, .token = es->cand_tok[j]};
        }
    qsort(cs, (size_t)nc, sizeof *cs, cand_cmp);
    int nk = 0, at_limit = r->seqs[0]->n_gen + 1 >= r->max_new;
    for (int i = 0; i < nc && nk < k; i++) {
        int stop = ends_beam(e, r, cs[i].token);
        if (stop || at_limit) {
            if (i < k && (st = add_finished(r, r->seqs[cs[i].beam], &cs[i], stop ? "stop" : "length", now)) != PGD_OK)
                goto fail;
            continue;
        }
        keep[nk++] = cs[i];
        children[cs[i].beam]++;
    }
    if (r->n_fin > 1) qsort(r->fin, (size_t)r->n_fin, sizeof *r->fin, fin_cmp);
    while (r->n_fin > k) pgd_eseq_destroy(r->fin[--r->n_fin]);
    int done = nk == 0 || (r->n_fin >= k && keep[0].score <= r->fin[k - 1]->cum_logprob);
    if (done) {
        free(cs);
        free(keep);
        free(children);
        free(nl);
        pgd_engine_finish(e, r, r->n_fin ? r->fin[0]->finish_reason : "length");
        return PGD_OK;
    }
    /* free beams without children first, so that forks find room */
    for (int b = 0; b < L; b++)
        if (!children[b]) {
            pgd_scheduler_free_seq(e->sched, r->group, r->seqs[b]->sseq);
            pgd_eseq_destroy(r->seqs[b]);
            r->seqs[b] = NULL;
        }
    int n = 0;
    for (int b = 0; b < L; b++) {
        if (!children[b]) continue;
        eseq *parent = r->seqs[b];
        int first = n;
        for (int i = 0; i < nk; i++) {
            if (keep[i].beam != b) continue;
            eseq *es = parent;
            if (n > first) { /* another child: fork before the parent gets its token */
                if (!(es = copy_beam(parent, n))) goto fail;
                if ((st = pgd_scheduler_fork(e->sched, r->group, parent->sseq, &es->sseq)) != PGD_OK) {
                    pgd_eseq_destroy(es);
                    goto fail;
                }
                es->sseq->user = es;
            }
            nl[n++] = es;
            es->cum_logprob = keep[i].score;
            es->pending = 0;
        }
        for (int i = first, j = 0; j < nk; j++) {
            if (keep[j].beam != b) continue;
            if ((st = pgd_eseq_push(nl[i], keep[j].token, now)) != PGD_OK) goto fail;
            if ((st = pgd_scheduler_append(e->sched, nl[i]->sseq, keep[j].token)) != PGD_OK) goto fail;
            i++;
        }
    }
    for (int i = 0; i < n; i++) nl[i]->index = i;
    memcpy(r->seqs, nl, sizeof *nl * (size_t)n);
    r->n_seqs = n;
    e->stats.tokens_generated += n;
    st = PGD_OK;
fail:
    free(cs);
    free(keep);
    free(children);
    free(nl);
    return st == PGD_ERR_OOM ? pgd_error(PGD_ERR_OOM, "engine: out of memory") : st;
}
