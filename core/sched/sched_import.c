/* sched_import.c - admitting a request whose prompt was prefilled by
 * another engine (prefill/decode disaggregation): the group goes straight
 * to the running set with its prompt's K/V already in blocks, so the next
 * step schedules its first decode.
 *
 * Invariants (sched_impl.h) kept: the group is registered with the KV
 * manager holding exactly `computed` tokens, is running and counted in
 * reserved_seqs; nothing changes when there is no room (PGD_ERR_NO_BLOCKS). */
#include <string.h>

#include "sched_impl.h"

pgd_status pgd_scheduler_add_prefilled(pgd_scheduler *s, const pgd_sched_request *r, const int32_t *tokens,
                                       int n_tokens, int n_computed, pgd_sched_group **out, int *n_cached) {
    if (!s || !r || !tokens || !out) return pgd_error(PGD_ERR_INVALID, "scheduler: NULL argument");
    if (r->num_seqs > 1 || r->max_seqs > 1)
        return pgd_error(PGD_ERR_UNSUPPORTED, "request %lld: a prefilled request has one sequence (got %d)",
                         (long long)r->id, r->max_seqs > r->num_seqs ? r->max_seqs : r->num_seqs);
    if (n_tokens < r->n_prompt || n_computed < 1 || n_computed > n_tokens ||
        memcmp(tokens, r->prompt, sizeof(int32_t) * r->n_prompt))
        return pgd_error(PGD_ERR_INVALID,
                         "request %lld: %d prefilled tokens of %d do not start with its prompt "
                         "of %d",
                         (long long)r->id, n_computed, n_tokens, r->n_prompt);
    if (s->reserved_seqs + 1 > s->cfg.max_num_seqs || ((s->kv_caps & PGD_KV_STATIC_BATCH) && s->n_running > 0))
        return pgd_error(PGD_ERR_NO_BLOCKS, "request %lld: no sequence slot now (%d of max_num_seqs %d reserved)",
                         (long long)r->id, s->reserved_seqs, s->cfg.max_num_seqs); /* retry later */
    pgd_sched_group *g = NULL;
    PGD_TRY(pgd_scheduler_add(s, r, &g)); /* checks it, queues it as waiting */
    pgd_sched_seq *q = g->seqs[0];
    pgd_status st = PGD_OK;
    for (int i = r->n_prompt; i < n_tokens && st == PGD_OK; i++) st = pgd_scheduler_append(s, q, tokens[i]);
    int true_total = 0, cached = 0;
    if (g->true_output_len > 0) {
        true_total = g->prompt_len + g->true_output_len - 1;
        if (true_total > g->max_total_len) true_total = g->max_total_len;
    }
    if (st == PGD_OK) st = pgd_kv_add_seq(s->kv, q->id, q->tokens, r->n_prompt, g->max_total_len, true_total, &cached);
    if (st == PGD_OK) {
        q->in_kv = 1;
        if (cached > n_computed) cached = n_computed;
        st = cached < n_computed ? pgd_kv_append(s->kv, q->id, q->tokens + cached, n_computed - cached) : PGD_OK;
    }
    if (st != PGD_OK) {
        pgd_status keep = st;
        pgd_scheduler_remove(s, g); /* frees its KV too */
        return keep;
    }
    PGD_ASSERT(pgd_pol_remove(s, s->waiting, g));
    q->computed = n_computed;
    g->cached_tokens = cached;
    g->cached_known = 1;
    if ((st = pgd_sched_running_push(s, g)) != PGD_OK) {
        g->state = PGD_SCHED_DONE;
        pgd_scheduler_remove(s, g);
        return st;
    }
    *out = g;
    if (n_cached) *n_cached = cached;
    return PGD_OK;
}
