/* scheduler.c - the scheduler's bookkeeping: creation and validation,
 * requests (sequence groups) and their sequences, fork/free of sequences,
 * removal. The per-step planning loop lives in sched_step.c.
 *
 * Invariants: see sched_impl.h. A group is freed only by
 * pgd_scheduler_remove() (or destroy); its sequences' blocks are returned
 * to the KV manager whenever the group leaves the device. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "sched_impl.h"

pgd_status pgd_preempt_mode_parse(const char *name, pgd_preempt_mode *out) {
    if (name && !strcmp(name, "recompute")) *out = PGD_PREEMPT_RECOMPUTE;
    else if (name && !strcmp(name, "swap")) *out = PGD_PREEMPT_SWAP;
    else return pgd_error(PGD_ERR_INVALID, "preemption mode must be 'recompute' or 'swap' (got '%s')",
                          name ? name : "(null)");
    return PGD_OK;
}

pgd_status pgd_scheduler_create(const pgd_sched_config *cfg, pgd_kv_manager *kv,
                                pgd_scheduler **out) {
    if (!cfg || !kv || !out) return pgd_error(PGD_ERR_INVALID, "scheduler: NULL argument");
    *out = NULL;
    pgd_sched_config c = *cfg;
    if (c.max_seq_len <= 0)
        return pgd_error(PGD_ERR_INVALID, "scheduler: max_seq_len must be positive (got %d)", c.max_seq_len);
    if (!c.policy) c.policy = "fcfs";
    if (c.max_num_seqs == 0) c.max_num_seqs = 256;
    if (c.max_num_batched_tokens == 0)
        c.max_num_batched_tokens = c.chunked_prefill ? 512 : (c.max_seq_len > 2048 ? c.max_seq_len : 2048);
    if (c.max_num_seqs < 1)
        return pgd_error(PGD_ERR_INVALID, "scheduler: max_num_seqs must be >= 1 (got %d)", c.max_num_seqs);
    if (c.max_num_batched_tokens < c.max_num_seqs)
        return pgd_error(PGD_ERR_INVALID, "scheduler: max_num_batched_tokens (%d) must be >= max_num_seqs (%d)",
                         c.max_num_batched_tokens, c.max_num_seqs);
    if (!c.chunked_prefill && c.max_num_batched_tokens < c.max_seq_len)
        return pgd_error(PGD_ERR_INVALID,
                         "scheduler: max_num_batched_tokens (%d) must be >= the context (%d) when chunked "
                         "prefill is off (a recomputed sequence is prefilled whole)",
                         c.max_num_batched_tokens, c.max_seq_len);
    if (c.max_in_flight < 0 || c.max_in_flight > 64)
        return pgd_error(PGD_ERR_INVALID, "scheduler: max_in_flight must be in 0..64 (got %d)", c.max_in_flight);
    if (c.max_in_flight == 0) c.max_in_flight = 1;
    if (c.preemption != PGD_PREEMPT_RECOMPUTE && c.preemption != PGD_PREEMPT_SWAP)
        return pgd_error(PGD_ERR_INVALID, "scheduler: unknown preemption mode %d", (int)c.preemption);
    const struct pgd_policy_ops *pol = pgd_policy_find(c.policy);
    if (!pol) {
        char names[256] = "";
        for (const char *const *n = pgd_policy_names(); *n; n++) {
            if (names[0]) strncat(names, ", ", sizeof names - strlen(names) - 1);
            strncat(names, *n, sizeof names - strlen(names) - 1);
        }
        return pgd_error(PGD_ERR_INVALID, "scheduler: unknown policy '%s' (choices: %s)", c.policy, names);
    }
    pgd_scheduler *s = calloc(1, sizeof *s);
    if (!s) return pgd_error(PGD_ERR_OOM, "scheduler: out of memory");
    s->cfg = c;
    s->kv = kv;
    s->kv_caps = pgd_kv_manager_caps(kv);
    s->block_size = pgd_kv_manager_block_size(kv);
    s->pol = pol;
    if (!(s->lens = malloc(sizeof *s->lens * (size_t)c.max_num_seqs))) {
        pgd_scheduler_destroy(s);
        return pgd_error(PGD_ERR_OOM, "scheduler: out of memory");
    }
    if (pgd_pol_init(s) != PGD_OK) goto fail;
    *out = s;
    return PGD_OK;
fail:
    pgd_scheduler_destroy(s);
    return pgd_error(PGD_ERR_OOM, "scheduler: cannot create policy '%s'", c.policy);
}

static void free_seq_mem(pgd_sched_seq *q) {
    if (!q) return;
    free(q->tokens);
    free(q);
}

static void free_group_mem(pgd_scheduler *s, pgd_sched_group *g) {
    for (int i = 0; i < g->num_seqs; i++) {
        if (g->seqs[i]->in_kv) pgd_kv_free(s->kv, g->seqs[i]->id);
        free_seq_mem(g->seqs[i]);
    }
    free(g->seqs);
    free(g);
}

void pgd_scheduler_destroy(pgd_scheduler *s) {
    if (!s) return;
    pgd_sched_group *g;
    if (s->waiting)
        while ((g = pgd_pol_pop(s, s->waiting))) free_group_mem(s, g);
    if (s->swapped)
        while ((g = pgd_pol_pop(s, s->swapped))) free_group_mem(s, g);
    for (int i = 0; i < s->n_running; i++) free_group_mem(s, s->running[i]);
    pgd_pol_fini(s);
    free(s->lens);
    free(s->running);
    free(s->plan.items);
    free(s->plan.ops);
    free(s->plan.preempted);
    free(s->plan.dropped);
    free(s->copybuf);
    free(s->tr_pre);
    free(s->tr_in);
    free(s->tr_kind);
    free(s);
}

const pgd_sched_config *pgd_scheduler_config(const pgd_scheduler *s) { return &s->cfg; }

static pgd_sched_seq *new_seq(pgd_scheduler *s, const int32_t *tokens, int n, int cap) {
    pgd_sched_seq *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    q->cap = cap > n ? cap : n;
    q->tokens = malloc(sizeof(int32_t) * (size_t)(q->cap > 0 ? q->cap : 1));
    if (!q->tokens) {
        free(q);
        return NULL;
    }
    memcpy(q->tokens, tokens, sizeof(int32_t) * (size_t)n);
    q->len = n;
    q->id = s->next_seq_id++;
    return q;
}

pgd_status pgd_scheduler_add(pgd_scheduler *s, const pgd_sched_request *r, pgd_sched_group **out) {
    if (!s || !r || !r->prompt) return pgd_error(PGD_ERR_INVALID, "scheduler: NULL argument");
    const pgd_sched_config *c = &s->cfg;
    int ns = r->num_seqs > 0 ? r->num_seqs : 1, ms = r->max_seqs > ns ? r->max_seqs : ns;
    if (r->n_prompt < 1)
        return pgd_error(PGD_ERR_INVALID, "request %lld: empty prompt", (long long)r->id);
    if (r->n_prompt > c->max_seq_len)
        return pgd_error(PGD_ERR_INVALID, "request %lld: prompt of %d tokens is longer than the context (%d tokens)",
                         (long long)r->id, r->n_prompt, c->max_seq_len);
    if (r->max_new_tokens < 1)
        return pgd_error(PGD_ERR_INVALID, "request %lld: max_tokens must be >= 1 (got %d)", (long long)r->id,
                         r->max_new_tokens);
    if (ms > c->max_num_seqs)
        return pgd_error(PGD_ERR_INVALID, "request %lld: %d sequences exceed max_num_seqs (%d)",
                         (long long)r->id, ms, c->max_num_seqs);
    pgd_kv_stats st;
    pgd_kv_get_stats(s->kv, &st);
    for (int i = 0; i < ns; i++) s->lens[i] = r->n_prompt;
    int need = pgd_kv_group_blocks(s->kv, 0, 0, s->lens, ns);
    if (need > st.num_blocks)
        return pgd_error(PGD_ERR_INVALID, "request %lld: prompt of %d tokens needs %d KV blocks, the whole cache has %d",
                         (long long)r->id, r->n_prompt, need, st.num_blocks);
    /* the policy's per-group data lives right after the group, aligned as malloc aligns */
    const size_t al = _Alignof(max_align_t), gsize = (sizeof(pgd_sched_group) + al - 1) / al * al;
    pgd_sched_group *g = calloc(1, gsize + s->pol->group_data_size);
    if (!g) return pgd_error(PGD_ERR_OOM, "scheduler: out of memory");
    if (s->pol->group_data_size) g->policy_data = (char *)g + gsize;
    g->seqs = calloc((size_t)ms, sizeof *g->seqs);
    if (!g->seqs) goto fail;
    long total = (long)r->n_prompt + r->max_new_tokens - 1;
    g->max_total_len = (int)(total < c->max_seq_len ? total : c->max_seq_len);
    if (g->max_total_len < r->n_prompt) g->max_total_len = r->n_prompt;
    for (int i = 0; i < ns; i++) {
        g->seqs[i] = new_seq(s, r->prompt, r->n_prompt, g->max_total_len + 1);
        if (!g->seqs[i]) goto fail;
        g->num_seqs++;
    }
    g->id = r->id;
    g->arrival = r->arrival;
    g->priority = r->priority;
    g->prompt_len = r->n_prompt;
    g->true_output_len = r->true_output_len;
    g->max_seqs = ms;
    g->state = PGD_SCHED_WAITING;
    g->order = s->next_order++;
    g->scheduled_step = -1;
    g->preempted_step = -1;
    g->user = r->user;
    g->client = r->client > 0 ? r->client : 0;
    g->slo_class = r->slo_class > 0 ? r->slo_class : 0;
    g->ttft_deadline = r->ttft_deadline;
    pgd_pol_arrival(s, g);
    if (pgd_pol_enqueue(s, s->waiting, g) != PGD_OK) goto fail;
    if (out) *out = g;
    return PGD_OK;
fail:
    free_group_mem(s, g);
    return pgd_error(PGD_ERR_OOM, "scheduler: out of memory");
}

pgd_status pgd_scheduler_append(pgd_scheduler *s, pgd_sched_seq *q, int32_t token) {
    if (q->len == q->cap) {
        int cap = q->cap ? 2 * q->cap : 16;
        int32_t *t = realloc(q->tokens, sizeof(int32_t) * (size_t)cap);
        if (!t) return pgd_error(PGD_ERR_OOM, "scheduler: out of memory");
        q->tokens = t;
        q->cap = cap;
    }
    q->tokens[q->len++] = token;
    return PGD_OK;
}

pgd_status pgd_scheduler_fork(pgd_scheduler *s, pgd_sched_group *g, pgd_sched_seq *parent,
                              pgd_sched_seq **child) {
    if (g->num_seqs >= g->max_seqs)
        return pgd_error(PGD_ERR_INVALID, "scheduler: request %lld already has %d sequences",
                         (long long)g->id, g->num_seqs);
    pgd_sched_seq *q = new_seq(s, parent->tokens, parent->len, parent->cap);
    if (!q) return pgd_error(PGD_ERR_OOM, "scheduler: out of memory");
    q->computed = parent->computed;
    if (parent->in_kv) {
        pgd_status st = pgd_kv_fork(s->kv, parent->id, q->id);
        if (st != PGD_OK) {
            free_seq_mem(q);
            return st;
        }
        q->in_kv = 1;
    }
    g->seqs[g->num_seqs++] = q;
    *child = q;
    return PGD_OK;
}

void pgd_scheduler_free_seq(pgd_scheduler *s, pgd_sched_group *g, pgd_sched_seq *q) {
    for (int i = 0; i < g->num_seqs; i++) {
        if (g->seqs[i] != q) continue;
        if (q->in_kv) pgd_kv_free(s->kv, q->id);
        free_seq_mem(q);
        memmove(g->seqs + i, g->seqs + i + 1, sizeof *g->seqs * (size_t)(g->num_seqs - i - 1));
        g->num_seqs--;
        return;
    }
    PGD_ASSERT(!"sequence not in group");
}

void pgd_scheduler_remove(pgd_scheduler *s, pgd_sched_group *g) {
    if (!g) return;
    pgd_scheduler_landed(s, g);
    switch (g->state) {
    case PGD_SCHED_WAITING: PGD_ASSERT(pgd_pol_remove(s, s->waiting, g)); break;
    case PGD_SCHED_SWAPPED: PGD_ASSERT(pgd_pol_remove(s, s->swapped, g)); break;
    case PGD_SCHED_RUNNING: pgd_sched_running_remove(s, g); break;
    case PGD_SCHED_DONE: break;
    }
    pgd_pol_removed(s, g);
    free_group_mem(s, g);
}

pgd_status pgd_sched_running_push(pgd_scheduler *s, pgd_sched_group *g) {
    if (s->n_running == s->cap_running) {
        int cap = s->cap_running ? 2 * s->cap_running : 16;
        pgd_sched_group **p = realloc(s->running, sizeof *p * (size_t)cap);
        if (!p) return pgd_error(PGD_ERR_OOM, "scheduler: out of memory");
        s->running = p;
        s->cap_running = cap;
    }
    s->running[s->n_running++] = g;
    s->reserved_seqs += g->max_seqs;
    g->state = PGD_SCHED_RUNNING;
    return PGD_OK;
}

void pgd_sched_running_remove(pgd_scheduler *s, pgd_sched_group *g) {
    for (int i = 0; i < s->n_running; i++)
        if (s->running[i] == g) {
            memmove(s->running + i, s->running + i + 1, sizeof *s->running * (size_t)(s->n_running - i - 1));
            s->n_running--;
            s->reserved_seqs -= g->max_seqs;
            return;
        }
    PGD_ASSERT(!"group not running");
}

void pgd_sched_release_kv(pgd_scheduler *s, pgd_sched_group *g) {
    for (int i = 0; i < g->num_seqs; i++) {
        pgd_sched_seq *q = g->seqs[i];
        if (q->in_kv) pgd_kv_free(s->kv, q->id);
        q->in_kv = 0;
        q->computed = 0;
    }
}

pgd_status pgd_sched_copybuf(pgd_scheduler *s, int n) {
    if (n <= s->cap_copy) return PGD_OK;
    pgd_kv_copy *p = realloc(s->copybuf, sizeof *p * (size_t)n);
    if (!p) return pgd_error(PGD_ERR_OOM, "scheduler: out of memory");
    s->copybuf = p;
    s->cap_copy = n;
    return PGD_OK;
}

pgd_status pgd_sched_push_op(pgd_scheduler *s, int kind, int32_t src, int32_t dst) {
    pgd_sched_plan *p = &s->plan;
    if (p->num_ops == s->cap_ops) {
        int cap = s->cap_ops ? 2 * s->cap_ops : 64;
        pgd_sched_op *o = realloc(p->ops, sizeof *o * (size_t)cap);
        if (!o) return pgd_error(PGD_ERR_OOM, "scheduler: out of memory");
        p->ops = o;
        s->cap_ops = cap;
    }
    p->ops[p->num_ops++] = (pgd_sched_op){.kind = kind, .src = src, .dst = dst};
    return PGD_OK;
}

int pgd_scheduler_num_waiting(const pgd_scheduler *s) { return pgd_pol_len(s, s->waiting); }
int pgd_scheduler_num_running(const pgd_scheduler *s) { return s->n_running; }
int pgd_scheduler_num_in_flight(const pgd_scheduler *s) { return s->n_in_flight; }

void pgd_scheduler_landed(pgd_scheduler *s, pgd_sched_group *g) {
    if (!g || !g->in_flight) return;
    g->in_flight = 0;
    s->n_in_flight--;
}
void pgd_scheduler_set_held_blocks(pgd_scheduler *s, int n) { s->held_blocks = n > 0 ? n : 0; }
int pgd_scheduler_num_swapped(const pgd_scheduler *s) { return pgd_pol_len(s, s->swapped); }
int pgd_scheduler_has_unfinished(const pgd_scheduler *s) {
    return pgd_pol_len(s, s->waiting) + s->n_running + pgd_pol_len(s, s->swapped) > 0;
}
int64_t pgd_scheduler_total_preemptions(const pgd_scheduler *s) { return s->total_preemptions; }
int64_t pgd_scheduler_total_swaps(const pgd_scheduler *s) { return s->total_swaps; }
