/* sched_step.c - one scheduler step: serve running groups (preempting
 * victims chosen by the policy when the KV manager is full), swap groups
 * back in, then admit waiting groups in policy order, and fill the plan.
 *
 * Invariants of a plan: total new tokens <= max_num_batched_tokens;
 * scheduled sequences <= max_num_seqs; every scheduled sequence has slots
 * for its tokens (appended to the KV manager); the ops list is in the
 * order the state changes happened, so running it in order is always
 * correct (a block freed by a swap-out may be reused by a later copy or
 * swap-in of the same step). A group preempted in a step is not brought
 * back in that step. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched_impl.h"

static pgd_status push_group(pgd_sched_group ***arr, int *n, int *cap, pgd_sched_group *g) {
    if (*n == *cap) {
        int c = *cap ? 2 * *cap : 16;
        pgd_sched_group **p = realloc(*arr, sizeof *p * (size_t)c);
        if (!p) return pgd_error(PGD_ERR_OOM, "scheduler: out of memory");
        *arr = p;
        *cap = c;
    }
    (*arr)[(*n)++] = g;
    return PGD_OK;
}

static pgd_status push_item(pgd_scheduler *s, pgd_sched_group *g, pgd_sched_seq *q, int n) {
    pgd_sched_plan *p = &s->plan;
    if (p->num_items == s->cap_items) {
        int c = s->cap_items ? 2 * s->cap_items : 64;
        pgd_sched_item *it = realloc(p->items, sizeof *it * (size_t)c);
        if (!it) return pgd_error(PGD_ERR_OOM, "scheduler: out of memory");
        p->items = it;
        s->cap_items = c;
    }
    p->items[p->num_items++] = (pgd_sched_item){
        .group = g, .seq = q, .start = q->computed, .num_new_tokens = n, .sample = q->computed + n == q->len};
    p->num_tokens += n;
    return PGD_OK;
}

/* Tokens per sequence of g within the budget (counts[i]); returns the
 * total, or -1 when chunked prefill is off and the group does not fit. */
static int plan_counts(const pgd_scheduler *s, const pgd_sched_group *g, int budget, int *counts,
                       int *nsched) {
    int total = 0;
    *nsched = 0;
    for (int i = 0; i < g->num_seqs; i++) {
        const pgd_sched_seq *q = g->seqs[i];
        int need = q->len - q->computed;
        if (s->cfg.chunked_prefill && need > budget - total) need = budget - total;
        counts[i] = need;
        total += need;
        *nsched += need > 0;
    }
    return total > budget ? -1 : total;
}

static int blocks_needed(const pgd_scheduler *s, const pgd_sched_group *g, const int *counts) {
    int need = 0;
    for (int i = 0; i < g->num_seqs; i++)
        if (counts[i] > 0)
            need += pgd_kv_blocks_needed(s->kv, g->seqs[i]->id, g->seqs[i]->computed + counts[i]);
    return need;
}

static pgd_status take_copies(pgd_scheduler *s) {
    PGD_TRY(pgd_sched_copybuf(s, 64));
    int n;
    while ((n = pgd_kv_take_copies(s->kv, s->copybuf, s->cap_copy)) > 0)
        for (int i = 0; i < n; i++) PGD_TRY(pgd_sched_push_op(s, PGD_OP_COPY, s->copybuf[i].src, s->copybuf[i].dst));
    return PGD_OK;
}

/* Append the planned tokens of every sequence and add the plan items. On
 * PGD_ERR_NO_BLOCKS some sequences may have been appended: the caller
 * drops the group's items and recomputes it. */
static pgd_status commit(pgd_scheduler *s, pgd_sched_group *g, const int *counts) {
    for (int i = 0; i < g->num_seqs; i++) {
        pgd_sched_seq *q = g->seqs[i];
        if (counts[i] <= 0) continue;
        PGD_TRY(pgd_kv_append(s->kv, q->id, q->tokens + q->computed, counts[i]));
        PGD_TRY(take_copies(s));
        PGD_TRY(push_item(s, g, q, counts[i]));
        q->computed += counts[i];
    }
    return PGD_OK;
}

static pgd_status swap_group(pgd_scheduler *s, pgd_sched_group *g, int out) {
    for (int i = 0; i < g->num_seqs; i++) {
        pgd_sched_seq *q = g->seqs[i];
        const int32_t *t;
        int nb = 0, nc = 0;
        if (!q->in_kv) continue;
        if (pgd_kv_block_table(s->kv, q->id, &t, &nb) != PGD_OK || nb < 0) nb = 0;
        int cap = nb > q->computed / s->block_size + 1 ? nb : q->computed / s->block_size + 1;
        PGD_TRY(pgd_sched_copybuf(s, cap));
        pgd_status st = out ? pgd_kv_swap_out(s->kv, q->id, s->copybuf, s->cap_copy, &nc)
                            : pgd_kv_swap_in(s->kv, q->id, s->copybuf, s->cap_copy, &nc);
        if (st != PGD_OK) return st;
        for (int j = 0; j < nc; j++)
            PGD_TRY(pgd_sched_push_op(s, out ? PGD_OP_SWAP_OUT : PGD_OP_SWAP_IN, s->copybuf[j].src,
                                      s->copybuf[j].dst));
    }
    return PGD_OK;
}

static pgd_status preempt(pgd_scheduler *s, pgd_sched_group *g, int allow_swap) {
    pgd_sched_running_remove(s, g);
    g->num_preemptions++;
    g->preempted_step = s->step_no;
    s->total_preemptions++;
    PGD_TRY(push_group(&s->plan.preempted, &s->plan.num_preempted, &s->cap_pre, g));
    if (allow_swap && s->cfg.preemption == PGD_PREEMPT_SWAP) {
        pgd_status st = swap_group(s, g, 1);
        if (st == PGD_OK) {
            g->state = PGD_SCHED_SWAPPED;
            PGD_TRY(s->pol->enqueue(s->swapped, g));
            s->n_swapped++;
            return PGD_OK;
        }
        if (st != PGD_ERR_NO_BLOCKS && st != PGD_ERR_UNSUPPORTED) return st;
        /* host space short (or no swap): recompute; copies already queued are harmless */
    }
    pgd_sched_release_kv(s, g);
    g->state = PGD_SCHED_WAITING;
    PGD_TRY(s->pol->enqueue(s->waiting, g));
    s->n_waiting++;
    return PGD_OK;
}

/* The group can never run: take it out of the queues for the caller. */
static pgd_status drop(pgd_scheduler *s, pgd_sched_group *g, int need) {
    pgd_kv_stats st;
    pgd_kv_get_stats(s->kv, &st);
    snprintf(g->error, sizeof g->error,
             "request %lld needs %d more KV blocks than are free in an otherwise empty cache of %d blocks",
             (long long)g->id, need, st.num_blocks);
    pgd_sched_release_kv(s, g);
    g->state = PGD_SCHED_DONE;
    return push_group(&s->plan.dropped, &s->plan.num_dropped, &s->cap_drop, g);
}

static void mark_scheduled(pgd_scheduler *s, pgd_sched_group *g, int total, int nsched, int *budget,
                           int *seqs_left) {
    *budget -= total;
    *seqs_left -= nsched;
    g->scheduled_step = s->step_no;
    if (s->pol->on_scheduled) s->pol->on_scheduled(s->waiting, g, total);
}

static pgd_status schedule_running(pgd_scheduler *s, pgd_sched_group *g, int *counts, int *budget,
                                   int *seqs_left, int may_preempt) {
    int nsched, total = plan_counts(s, g, *budget, counts, &nsched);
    if (total <= 0 || nsched > *seqs_left) return PGD_OK; /* waits for a later step */
    for (;;) {
        int need = blocks_needed(s, g, counts);
        if (need <= pgd_kv_free_blocks(s->kv)) break;
        if (!may_preempt) return PGD_OK;
        pgd_sched_group **cand = NULL;
        int nc = 0, cap = 0;
        for (int i = 0; i < s->n_running; i++)
            if (s->running[i]->scheduled_step != s->step_no &&
                push_group(&cand, &nc, &cap, s->running[i]) != PGD_OK) {
                free(cand);
                return PGD_ERR_OOM;
            }
        PGD_ASSERT(nc >= 1);
        pgd_sched_group *v = cand[s->pol->pick_victim(s->waiting, cand, nc)];
        free(cand);
        if (v == g && s->n_running == 1) {
            pgd_sched_running_remove(s, g);
            return drop(s, g, need - pgd_kv_free_blocks(s->kv));
        }
        PGD_TRY(preempt(s, v, 1));
        if (v == g) return PGD_OK;
    }
    int mark = s->plan.num_items, mark_tokens = s->plan.num_tokens;
    pgd_status st = commit(s, g, counts);
    if (st == PGD_ERR_NO_BLOCKS) { /* some sequences appended: recompute the group */
        s->plan.num_items = mark;
        s->plan.num_tokens = mark_tokens;
        return preempt(s, g, 0);
    }
    PGD_TRY(st);
    mark_scheduled(s, g, total, nsched, budget, seqs_left);
    return PGD_OK;
}

/* 1: admitted; 0: stop admitting; -1: dropped, try the next one. */
static int admit(pgd_scheduler *s, pgd_sched_group *g, int *counts, int *budget, int *seqs_left,
                 pgd_status *err) {
    *err = PGD_OK;
    if (g->preempted_step == s->step_no || s->reserved_seqs + g->max_seqs > s->cfg.max_num_seqs) return 0;
    int true_total = 0;
    if (g->true_output_len > 0) {
        true_total = g->prompt_len + g->true_output_len - 1;
        if (true_total > g->max_total_len) true_total = g->max_total_len;
    }
    for (int i = 0; i < g->num_seqs; i++) {
        pgd_sched_seq *q = g->seqs[i];
        int cached = 0;
        pgd_status st = pgd_kv_add_seq(s->kv, q->id, q->tokens, q->len, g->max_total_len, true_total, &cached);
        if (st != PGD_OK) {
            pgd_sched_release_kv(s, g);
            if (st == PGD_ERR_NO_BLOCKS) return 0;
            if (st != PGD_ERR_INVALID) {
                *err = st;
                return 0;
            }
            snprintf(g->error, sizeof g->error, "%s", pgd_last_error());
            PGD_ASSERT(s->pol->remove(s->waiting, g));
            s->n_waiting--;
            g->state = PGD_SCHED_DONE;
            *err = push_group(&s->plan.dropped, &s->plan.num_dropped, &s->cap_drop, g);
            return -1;
        }
        q->in_kv = 1;
        q->computed = cached;
    }
    int nsched, total = plan_counts(s, g, *budget, counts, &nsched);
    int need = total > 0 ? blocks_needed(s, g, counts) : 0;
    if (total > 0 && nsched <= *seqs_left && need > pgd_kv_free_blocks(s->kv) && s->n_running == 0 &&
        s->n_swapped == 0) {
        PGD_ASSERT(s->pol->remove(s->waiting, g));
        s->n_waiting--;
        *err = drop(s, g, need - pgd_kv_free_blocks(s->kv));
        return -1;
    }
    if (total <= 0 || nsched > *seqs_left || need > pgd_kv_free_blocks(s->kv)) {
        pgd_sched_release_kv(s, g);
        return 0;
    }
    int mark = s->plan.num_items, mark_tokens = s->plan.num_tokens;
    pgd_status st = commit(s, g, counts);
    if (st != PGD_OK) {
        s->plan.num_items = mark;
        s->plan.num_tokens = mark_tokens;
        pgd_sched_release_kv(s, g);
        if (st != PGD_ERR_NO_BLOCKS) *err = st;
        return 0;
    }
    PGD_ASSERT(s->pol->pop(s->waiting) == g);
    s->n_waiting--;
    if ((*err = pgd_sched_running_push(s, g)) != PGD_OK) return 0;
    mark_scheduled(s, g, total, nsched, budget, seqs_left);
    s->plan.num_admitted++;
    return 1;
}

static int swap_in_room(const pgd_scheduler *s, const pgd_sched_group *g) {
    int need = 0;
    for (int i = 0; i < g->num_seqs; i++) need += g->seqs[i]->computed / s->block_size + 2;
    return need <= pgd_kv_free_blocks(s->kv);
}

pgd_status pgd_scheduler_step(pgd_scheduler *s, const pgd_sched_plan **out) {
    pgd_sched_plan *p = &s->plan;
    p->num_items = p->num_tokens = p->num_ops = p->num_preempted = p->num_dropped = 0;
    p->num_swapped_in = p->num_admitted = 0;
    s->step_no++;
    int budget = s->cfg.max_num_batched_tokens, seqs_left = s->cfg.max_num_seqs;
    int admit_new = s->kind != PGD_KV_STATIC || (s->n_running == 0 && s->n_swapped == 0);
    pgd_status st = PGD_OK;
    int *counts = malloc(sizeof(int) * (size_t)s->cfg.max_num_seqs);
    pgd_sched_group **snap = malloc(sizeof *snap * (size_t)(s->n_running + 1));
    if (!counts || !snap) {
        st = pgd_error(PGD_ERR_OOM, "scheduler: out of memory");
        goto fail;
    }
    int nsnap = s->n_running;
    if (nsnap) memcpy(snap, s->running, sizeof *snap * (size_t)nsnap);
    for (int i = 0; i < nsnap && st == PGD_OK; i++)
        if (snap[i]->state == PGD_SCHED_RUNNING)
            st = schedule_running(s, snap[i], counts, &budget, &seqs_left, 1);
    pgd_sched_group *g;
    while (st == PGD_OK && (g = s->pol->peek(s->swapped))) {
        if (g->preempted_step == s->step_no || s->reserved_seqs + g->max_seqs > s->cfg.max_num_seqs ||
            !swap_in_room(s, g))
            break;
        pgd_status si = swap_group(s, g, 0);
        PGD_ASSERT(s->pol->pop(s->swapped) == g);
        s->n_swapped--;
        if (si != PGD_OK) { /* partly back: fall back to recomputing the group */
            pgd_sched_release_kv(s, g);
            g->state = PGD_SCHED_WAITING;
            if (si != PGD_ERR_NO_BLOCKS) st = si;
            else if ((st = s->pol->enqueue(s->waiting, g)) == PGD_OK) s->n_waiting++;
            break;
        }
        if ((st = pgd_sched_running_push(s, g)) != PGD_OK) break;
        p->num_swapped_in++;
        st = schedule_running(s, g, counts, &budget, &seqs_left, 0);
    }
    if (admit_new && s->n_swapped == 0)
        while (st == PGD_OK && (g = s->pol->peek(s->waiting)) &&
               admit(s, g, counts, &budget, &seqs_left, &st) != 0) {}
    if (st != PGD_OK) goto fail;
    for (int i = 0; i < p->num_items; i++) {
        pgd_sched_item *it = &p->items[i];
        if ((st = pgd_kv_block_table(s->kv, it->seq->id, &it->block_table, &it->n_blocks)) != PGD_OK) goto fail;
    }
    PGD_ASSERT(p->num_tokens <= s->cfg.max_num_batched_tokens && p->num_items <= s->cfg.max_num_seqs);
    free(counts);
    free(snap);
    *out = p;
    return PGD_OK;
fail:
    free(counts);
    free(snap);
    return st;
}
