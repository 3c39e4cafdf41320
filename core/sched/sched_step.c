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
 * back in that step.
 *
 * Forked groups (parallel samples, beams) need care or they thrash: each
 * recompute used to bring a group back as n separate prefills (its prompt
 * no longer shared, n times the blocks), which could exceed a step's token
 * budget and then blocked the queue for ever. So: admit() shares the
 * common prefix of a readmitted group again; plan_counts() chunks a group
 * larger than a step; fork_reserve() keeps room for a new group's fork and
 * the running sequences' next blocks; a swapped group that cannot return
 * even into an empty engine is recomputed; and a group alone that cannot
 * grow is recomputed rather than dropped when sharing again would fit. */
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
 * total, or -1 when the group must run whole (chunked prefill off) and does
 * not fit. `pre` tokens of the group are already planned this step (the
 * shared prefix of a re-forked group, see admit) and are not in `budget`. */
static int plan_counts(pgd_scheduler *s, const pgd_sched_group *g, int pre, int budget, int *counts,
                       int *nsched) {
    int total = 0, left = pre;
    *nsched = 0;
    for (int i = 0; i < g->num_seqs; i++) left += g->seqs[i]->len - g->seqs[i]->computed;
    /* A group with more tokens to compute than a whole step's budget can
     * never run whole: the sequences of a forked group (parallel samples,
     * beams) recomputed after a preemption each prefill their own output
     * again. It is prefilled in chunks, as with chunked prefill; waiting for
     * a step with room would block the queue for ever with the engine idle. */
    int chunk = s->cfg.chunked_prefill || left > s->cfg.max_num_batched_tokens;
    /* the policy's per-request prefill cap (Sarathi's long-prefill cap) on a group with a prompt to compute */
    /* (chunked, total stays within the capped budget, so -1 is never returned) */
    if (chunk && left - pre > g->num_seqs && pgd_pol_has_chunk_limit(s) && budget > 0)
        budget = pgd_pol_chunk_limit(s, g, budget);
    for (int i = 0; i < g->num_seqs; i++) {
        const pgd_sched_seq *q = g->seqs[i];
        int need = q->len - q->computed;
        if (chunk && need > budget - total) need = budget - total;
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

/* Tokens at the start of every sequence of g that are the same, in whole
 * blocks, leaving each sequence at least one token to compute (its logits). */
static int common_prefix(const pgd_scheduler *s, const pgd_sched_group *g) {
    const pgd_sched_seq *q0 = g->seqs[0];
    int n = q0->len - 1;
    for (int i = 1; i < g->num_seqs; i++) {
        const pgd_sched_seq *q = g->seqs[i];
        if (q->len - 1 < n) n = q->len - 1;
        int j = 0;
        while (j < n && q->tokens[j] == q0->tokens[j]) j++;
        n = j;
    }
    return n > 0 ? n / s->block_size * s->block_size : 0;
}

/* Blocks g would hold once recomputed, its sequences' common prefix shared
 * again as admit() shares it (at most a step's budget of it), each sequence
 * at computed + counts[i] tokens. A forked group after a swap holds private
 * copies of every block it shared, so this can be much less than it holds. */
static int shared_footprint(const pgd_scheduler *s, const pgd_sched_group *g, const int *counts) {
    int bs = s->block_size, shared = common_prefix(s, g), cap = s->cfg.max_num_batched_tokens / bs * bs;
    if (shared > cap) shared = cap;
    for (int i = 0; i < g->num_seqs; i++) s->lens[i] = g->seqs[i]->computed + (counts[i] > 0 ? counts[i] : 0);
    return pgd_kv_group_blocks(s->kv, 0, shared, s->lens, g->num_seqs);
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

static pgd_status preempt_to(pgd_scheduler *s, pgd_sched_group *g, int allow_swap) {
    PGD_TRY(push_group(&s->plan.preempted, &s->plan.num_preempted, &s->cap_pre, g));
    if (allow_swap && s->cfg.preemption == PGD_PREEMPT_SWAP) {
        pgd_status st = swap_group(s, g, 1);
        if (st == PGD_OK) {
            g->state = PGD_SCHED_SWAPPED;
            PGD_TRY(pgd_pol_enqueue(s, s->swapped, g));
            s->total_swaps++;
            return PGD_OK;
        }
        if (st != PGD_ERR_NO_BLOCKS && st != PGD_ERR_UNSUPPORTED) return st;
        /* host space short (or no swap): recompute; copies already queued are harmless */
    }
    pgd_sched_release_kv(s, g);
    g->state = PGD_SCHED_WAITING;
    PGD_TRY(pgd_pol_enqueue(s, s->waiting, g));
    return PGD_OK;
}

static pgd_status preempt(pgd_scheduler *s, pgd_sched_group *g, int allow_swap, int64_t for_req, int why) {
    PGD_TRY(pgd_sched_trace_pre_push(s, g->id, for_req, why));
    pgd_sched_running_remove(s, g);
    g->num_preemptions++;
    g->preempted_step = s->step_no;
    s->total_preemptions++;
    pgd_status st = preempt_to(s, g, allow_swap);
    /* out of memory on the way (the step fails): the group must stay in a list that owns it; the running
       list has room, it just left it */
    if (st != PGD_OK) PGD_ASSERT(pgd_sched_running_push(s, g) == PGD_OK);
    return st;
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

/* Tell the policy g got `total` tokens this step, how many of them prompt
 * tokens (g's items are the plan's last ones). Out of line: mark_scheduled
 * stays small enough to inline into the hot loop (the perf gate counts it). */
__attribute__((noinline)) static void notify_scheduled(pgd_scheduler *s, pgd_sched_group *g, int total) {
    int decode = 0;
    for (int i = s->plan.num_items - 1; i >= 0 && s->plan.items[i].group == g; i--) {
        const pgd_sched_item *it = &s->plan.items[i];
        decode += it->num_new_tokens == 1 && it->start >= g->prompt_len;
    }
    pgd_pol_scheduled(s, g, total, total - decode);
}

static void mark_scheduled(pgd_scheduler *s, pgd_sched_group *g, int total, int nsched, int *budget,
                           int *seqs_left) {

    *budget -= total;
    *seqs_left -= nsched;
    g->scheduled_step = s->step_no;
    if (s->cfg.max_in_flight > 1 && !g->in_flight) {
        g->in_flight = 1;
        s->n_in_flight++;
    }
    if (pgd_pol_wants_scheduled(s)) notify_scheduled(s, g, total);
}

static pgd_status schedule_running(pgd_scheduler *s, pgd_sched_group *g, int *counts, int *budget,
                                   int *seqs_left, int may_preempt) {
    if (g->in_flight) return PGD_OK; /* its last batch has not landed */
    int nsched, total = plan_counts(s, g, 0, *budget, counts, &nsched);
    if (total <= 0 || nsched > *seqs_left) return PGD_OK; /* waits for a later step */
    for (;;) {
        int need = blocks_needed(s, g, counts);
        if (need <= pgd_kv_free_blocks(s->kv)) break;
        if (!may_preempt) return PGD_OK;
        pgd_sched_group **cand = NULL;
        int nc = 0, cap = 0;
        for (int i = 0; i < s->n_running; i++)
            if (s->running[i]->scheduled_step != s->step_no && !s->running[i]->in_flight &&
                push_group(&cand, &nc, &cap, s->running[i]) != PGD_OK) {
                free(cand);
                return PGD_ERR_OOM;
            }
        PGD_ASSERT(nc >= 1);
        pgd_sched_group *v = cand[pgd_pol_pick_victim(s, cand, nc)];
        free(cand);
        if (v == g && s->n_in_flight > 0) {
            /* the only victim is itself, but in-flight groups hold blocks they
             * may free or share once they land: wait for them rather than
             * preempt (or drop) on a cache that is not really full */
            if (s->n_running - s->n_in_flight == 1) return PGD_OK;
        }
        if (v == g && s->n_running == 1 && need <= pgd_kv_free_blocks(s->kv) + s->held_blocks)
            return PGD_OK; /* blocks held outside (P/D transfers in flight) come back: wait for them */
        if (v == g && s->n_running == 1) {
            pgd_kv_stats ks;
            pgd_kv_get_stats(s->kv, &ks);
            if (g->num_seqs > 1 && shared_footprint(s, g, counts) <= ks.num_blocks)
                return preempt(s, g, 0, g->id, 2); /* fits once recomputed with its prefix shared again */
            pgd_sched_running_remove(s, g);
            return drop(s, g, need - pgd_kv_free_blocks(s->kv));
        }
        PGD_TRY(preempt(s, v, 1, g->id, 0));
        if (v == g) return PGD_OK;
    }
    int mark = s->plan.num_items, mark_tokens = s->plan.num_tokens;
    pgd_status st = commit(s, g, counts);
    if (st == PGD_ERR_NO_BLOCKS) { /* some sequences appended: recompute the group */
        s->plan.num_items = mark;
        s->plan.num_tokens = mark_tokens;
        return preempt(s, g, 0, g->id, 1);
    }
    PGD_TRY(st);
    mark_scheduled(s, g, total, nsched, budget, seqs_left);
    return PGD_OK;
}

/* Register sequence q of g with the KV manager (computed = its cached
 * prefix). On failure g's sequences are released; 0: stop admitting, -1:
 * g was dropped (it can never run), *err set on a hard error. */
static int add_seq(pgd_scheduler *s, pgd_sched_group *g, pgd_sched_seq *q, pgd_status *err) {
    int true_total = 0, cached = 0;
    if (g->true_output_len > 0) {
        true_total = g->prompt_len + g->true_output_len - 1;
        if (true_total > g->max_total_len) true_total = g->max_total_len;
    }
    pgd_status st = pgd_kv_add_seq(s->kv, q->id, q->tokens, q->len, g->max_total_len, true_total, &cached);
    if (st == PGD_OK) {
        q->in_kv = 1;
        q->computed = cached;
        if (!g->cached_known && q == g->seqs[0]) g->cached_tokens = cached, g->cached_known = 1;
        return 1;
    }
    pgd_sched_release_kv(s, g);
    if (st == PGD_ERR_NO_BLOCKS) return 0;
    if (st != PGD_ERR_INVALID) {
        *err = st;
        return 0;
    }
    snprintf(g->error, sizeof g->error, "%s", pgd_last_error());
    PGD_ASSERT(pgd_pol_remove(s, s->waiting, g));
    g->state = PGD_SCHED_DONE;
    *err = push_group(&s->plan.dropped, &s->plan.num_dropped, &s->cap_drop, g);
    return -1;
}

/* Blocks an admission must leave free. A group that may fork (parallel
 * samples, beams) is admitted only if, after its prefill, every sequence of
 * the running groups and each of its own could still get one new block
 * (running groups counted at their max_seqs). Its fork copies the shared
 * partial prompt block once per new sequence in the very next step and its
 * samples then grow together: admitted on the last free blocks it preempts
 * (or is preempted) at once, and a forked group is the costliest to preempt,
 * each sequence recomputing or swapping its own context. Single-sequence
 * groups are admitted as soon as their prompt fits, as in vLLM. Nothing is
 * reserved while nothing runs, so an idle engine always admits. */
static int fork_reserve(const pgd_scheduler *s, const pgd_sched_group *g) {
    return g->max_seqs > 1 && s->n_running > 0 ? s->reserved_seqs + g->max_seqs : 0;
}

/* 1: admitted; 0: stop admitting; -1: dropped, try the next one.
 *
 * A group that arrives with several sequences (paged: only a forked group
 * recomputed after a preemption: parallel samples or beams) shares their
 * common prefix again instead of prefilling it once per sequence (which
 * would also take its blocks once per sequence): the prefix's whole blocks
 * (as many as this step's budget can compute) are appended to sequence 0,
 * whose item computes them, and the others fork from it, their items
 * starting after the prefix. The forward pass writes every token's K/V
 * before any attention reads it, so their attention in the same step sees
 * the prefix. Nothing touches the KV manager before the whole plan for the
 * group is known to fit (blocks appended and then abandoned would stay in
 * the prefix cache without their K/V). */
static int admit(pgd_scheduler *s, pgd_sched_group *g, int *counts, int *budget, int *seqs_left,
                 pgd_status *err) {
    *err = PGD_OK;
    if (g->preempted_step == s->step_no) return s->wait_why = "preempted", 0;
    if (s->reserved_seqs + g->max_seqs > s->cfg.max_num_seqs) return s->wait_why = "max_num_seqs", 0;
    if (!pgd_pol_may_admit(s, g)) return s->wait_why = "policy", 0;
    s->wait_why = "kv"; /* add_seq finding no blocks; the reasons below replace it */
    int mark = s->plan.num_items, mark_tokens = s->plan.num_tokens, r, bs = s->block_size;
    pgd_sched_seq *q0 = g->seqs[0];
    if ((r = add_seq(s, g, q0, err)) <= 0) return r;
    int c0 = q0->computed, shared = s->kv_caps & PGD_KV_CAN_FORK && g->num_seqs > 1 ? common_prefix(s, g) : 0;
    if (shared > c0 + *budget / bs * bs) { /* share what this step's budget can compute */
        if (*budget / bs == 0 && *budget < s->cfg.max_num_batched_tokens) {
            pgd_sched_release_kv(s, g); /* a later step can share at least a block */
            s->wait_why = "budget";
            return 0;
        }
        shared = c0 + *budget / bs * bs;
    }
    int pre = shared > c0 && *seqs_left > 1 ? shared - c0 : 0;
    if (pre > 0) { /* planned as if forked; the KV manager is only touched once it all fits */
        for (int i = 0; i < g->num_seqs; i++) g->seqs[i]->computed = shared;
    } else {
        for (int i = 1; i < g->num_seqs; i++)
            if ((r = add_seq(s, g, g->seqs[i], err)) <= 0) return r;
    }
    int nsched, total = plan_counts(s, g, pre, *budget - pre, counts, &nsched), need = 0;
    if (pre > 0) { /* the prefix's blocks, then whole new blocks after it (no copy-on-write) */
        for (int i = 0; i < g->num_seqs; i++) s->lens[i] = total > 0 && counts[i] > 0 ? shared + counts[i] : 0;
        need = pgd_kv_group_blocks(s->kv, c0, shared, s->lens, g->num_seqs);
        nsched += counts[0] == 0; /* sequence 0 computes the prefix in any case */
    } else if (total > 0) {
        need = blocks_needed(s, g, counts);
    }
    if (total >= 0 && total + pre > 0 && nsched <= *seqs_left && need > pgd_kv_free_blocks(s->kv) + s->held_blocks &&
        s->n_running == 0 && pgd_pol_len(s, s->swapped) == 0) {
        PGD_ASSERT(pgd_pol_remove(s, s->waiting, g));
        *err = drop(s, g, need - pgd_kv_free_blocks(s->kv));
        return -1;
    }
    if (total < 0 || total + pre <= 0 || nsched > *seqs_left ||
        need + fork_reserve(s, g) > pgd_kv_free_blocks(s->kv)) {
        if (total < 0 && *budget < s->cfg.max_num_batched_tokens) s->starved = g;
        s->wait_why = total < 0 || total + pre <= 0 ? "budget" : nsched > *seqs_left ? "max_num_seqs" : "kv";
        pgd_sched_release_kv(s, g);
        return 0;
    }
    pgd_status st = PGD_OK;
    if (pre > 0) {
        q0->computed = c0;
        st = pgd_kv_append(s->kv, q0->id, q0->tokens + c0, pre);
        if (st == PGD_OK) st = take_copies(s);
        for (int i = 1; i < g->num_seqs && st == PGD_OK; i++) {
            pgd_sched_seq *q = g->seqs[i];
            if ((st = pgd_kv_fork(s->kv, q0->id, q->id)) == PGD_OK) q->in_kv = 1;
        }
        q0->computed = shared;
    }
    if (st != PGD_OK || (st = commit(s, g, counts)) != PGD_OK) {
        s->plan.num_items = mark;
        s->plan.num_tokens = mark_tokens;
        pgd_sched_release_kv(s, g);
        if (st != PGD_ERR_NO_BLOCKS) *err = st;
        return 0;
    }
    if (pre > 0) { /* sequence 0's item starts at its cached prefix, before the shared one */
        if (counts[0] > 0) {
            pgd_sched_item *it = &s->plan.items[mark];
            PGD_ASSERT(it->seq == q0 && it->start == shared);
            it->start = c0;
            it->num_new_tokens += pre;
            s->plan.num_tokens += pre;
        } else {
            q0->computed = c0;
            if ((*err = push_item(s, g, q0, pre)) != PGD_OK) return 0;
            q0->computed = shared;
        }
    }
    /* running first: if that fails (out of memory) the group stays waiting, owned (and freed) there */
    if ((*err = pgd_sched_running_push(s, g)) != PGD_OK) return 0;
    PGD_ASSERT(pgd_pol_pop(s, s->waiting) == g);
    mark_scheduled(s, g, total + pre, nsched, budget, seqs_left);
    s->plan.num_admitted++;
    s->wait_why = NULL;
    if ((*err = pgd_sched_trace_in_push(s, g->id, 0)) != PGD_OK) return 0;
    return 1;
}

static int swap_in_room(const pgd_scheduler *s, const pgd_sched_group *g) {
    int need = 0;
    for (int i = 0; i < g->num_seqs; i++) need += pgd_kv_swap_in_blocks(s->kv, g->seqs[i]->computed);
    return need <= pgd_kv_free_blocks(s->kv);
}

/* Sequences one plan may take. With K batches in flight every group is in
 * at most one of them, so the groups split into K batches whatever we do;
 * left alone the first plan after a landing takes every group that is not
 * in flight, and a pipeline then alternates one full batch with K - 1
 * nearly empty ones (stages idle; measured on the sim's OPT-175B PP 8: 25%
 * busy). So each plan takes at most 1/K of the engine's sequences (running,
 * swapped and waiting), as vLLM's virtual engines each serve their share of
 * the requests; never less than the largest group, which runs whole. */
static int balanced_seqs(pgd_scheduler *s) {
    int K = s->cfg.max_in_flight, cap = s->cfg.max_num_seqs;
    if (K <= 1) return cap;
    int total = s->reserved_seqs + pgd_pol_len(s, s->waiting) + pgd_pol_len(s, s->swapped), largest = 1;
    for (int i = 0; i < s->n_running; i++)
        if (s->running[i]->max_seqs > largest) largest = s->running[i]->max_seqs;
    const pgd_sched_group *g = pgd_pol_peek(s, s->waiting);
    if (g && g->max_seqs > largest) largest = g->max_seqs;
    if ((g = pgd_pol_peek(s, s->swapped)) && g->max_seqs > largest) largest = g->max_seqs;
    int share = (total + K - 1) / K;
    if (share < largest) share = largest;
    return share < cap ? share : cap;
}

pgd_status pgd_scheduler_step(pgd_scheduler *s, const pgd_sched_plan **out) {
    pgd_sched_plan *p = &s->plan;
    p->num_items = p->num_tokens = p->num_ops = p->num_preempted = p->num_dropped = 0;
    p->num_swapped_in = p->num_admitted = 0;
    s->n_tr_pre = s->n_tr_in = 0;
    s->wait_why = NULL;
    s->step_no++;
    int budget = s->cfg.max_num_batched_tokens, seqs_left = balanced_seqs(s);
    int admit_new = !(s->kv_caps & PGD_KV_STATIC_BATCH) || (s->n_running == 0 && pgd_pol_len(s, s->swapped) == 0);
    pgd_status st = PGD_OK;
    int *counts = malloc(sizeof(int) * (size_t)s->cfg.max_num_seqs);
    pgd_sched_group **snap = malloc(sizeof *snap * (size_t)(s->n_running + 1));
    if (!counts || !snap) {
        st = pgd_error(PGD_ERR_OOM, "scheduler: out of memory");
        goto fail;
    }
    int nsnap = s->n_running;
    if (nsnap) memcpy(snap, s->running, sizeof *snap * (size_t)nsnap);
#ifdef PAGODA_PERF_SLOW_SCHED
    { /* the perf gate's self-test (tests/perf/slow_gate.sh) only: deliberate extra work in
         the scheduler loop, a pass over the last 16 tokens of every running sequence */
        int64_t acc = 0;
        for (int i = 0; i < nsnap; i++)
            for (int k = 0; k < snap[i]->num_seqs; k++) {
                const pgd_sched_seq *q = snap[i]->seqs[k];
                for (int t = q->len > 16 ? q->len - 16 : 0; t < q->len; t++) acc += q->tokens[t] ^ t;
            }
        volatile int64_t sink = acc;
        (void)sink;
    }
#endif
    /* A prompt that fits a step's budget but not what the running groups'
     * tokens leave of it (chunked prefill off) would wait until they all
     * finish, and every later arrival behind it (head-of-line blocking;
     * recomputed sequences near max_seq_len hit it): after one such miss it
     * is admitted first, before the running groups take their tokens, as
     * vLLM's prefill-first steps do. */
    pgd_sched_group *g = pgd_pol_peek(s, s->waiting);
    if (g && g == s->starved && admit_new && pgd_pol_len(s, s->swapped) == 0)
        (void)admit(s, g, counts, &budget, &seqs_left, &st);
    s->starved = NULL;
    for (int i = 0; i < nsnap && st == PGD_OK; i++)
        if (snap[i]->state == PGD_SCHED_RUNNING)
            st = schedule_running(s, snap[i], counts, &budget, &seqs_left, 1);
    while (st == PGD_OK && (g = pgd_pol_peek(s, s->swapped))) {
        if (g->preempted_step != s->step_no && s->n_running == 0 && !swap_in_room(s, g)) {
            /* Nothing runs and it still does not fit: swapped out, a forked
             * group's sequences hold private copies of the blocks they shared
             * and may need more than the whole cache to come back. Recompute
             * it instead (admit shares the common prefix again); waiting for
             * room would stall the engine for ever. */
            pgd_sched_release_kv(s, g);
            g->state = PGD_SCHED_WAITING;
            /* waiting first: if that fails (out of memory) the group stays swapped, owned there */
            if ((st = pgd_pol_enqueue(s, s->waiting, g)) != PGD_OK) break;
            PGD_ASSERT(pgd_pol_pop(s, s->swapped) == g);
            continue;
        }
        if (g->preempted_step == s->step_no || s->reserved_seqs + g->max_seqs > s->cfg.max_num_seqs ||
            !swap_in_room(s, g))
            break;
        /* running first: if that fails (out of memory) the group stays swapped, owned there */
        if ((st = pgd_sched_running_push(s, g)) != PGD_OK) break;
        PGD_ASSERT(pgd_pol_pop(s, s->swapped) == g);
        pgd_status si = swap_group(s, g, 0);
        if (si != PGD_OK) { /* partly back: fall back to recomputing the group */
            pgd_sched_release_kv(s, g);
            if (si != PGD_ERR_NO_BLOCKS) { /* the step fails; the group stays running, owned there */
                st = si;
                break;
            }
            pgd_sched_running_remove(s, g);
            g->state = PGD_SCHED_WAITING;
            if ((st = pgd_pol_enqueue(s, s->waiting, g)) != PGD_OK)
                PGD_ASSERT(pgd_sched_running_push(s, g) == PGD_OK); /* room: it just left */
            break;
        }
        p->num_swapped_in++;
        if ((st = pgd_sched_trace_in_push(s, g->id, 1)) != PGD_OK) break;
        st = schedule_running(s, g, counts, &budget, &seqs_left, 0);
    }
    if (admit_new && pgd_pol_len(s, s->swapped) == 0) {
        /* the policy's split of what the running groups left between new prefills and the rest */
        int held = budget - pgd_pol_prefill_budget(s, s->cfg.max_num_batched_tokens, budget);
        budget -= held;
        while (st == PGD_OK && (g = pgd_pol_peek(s, s->waiting)) &&
               admit(s, g, counts, &budget, &seqs_left, &st) != 0) {}
        budget += held;
    } else {
        s->wait_why = admit_new ? "swapped" : "static";
    }
    if (st != PGD_OK) goto fail;
    for (int i = 0; i < p->num_items; i++) {
        pgd_sched_item *it = &p->items[i];
        if ((st = pgd_kv_block_table(s->kv, it->seq->id, &it->block_table, &it->n_blocks)) != PGD_OK) goto fail;
    }
    PGD_ASSERT(p->num_tokens <= s->cfg.max_num_batched_tokens && p->num_items <= s->cfg.max_num_seqs);
    if (s->cfg.trace) pgd_sched_trace_write(s);
    free(counts);
    free(snap);
    *out = p;
    return PGD_OK;
fail:
    free(counts);
    free(snap);
    return st;
}
