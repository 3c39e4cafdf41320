/* policy_call.c - every call from the scheduler into its policy, with the
 * default behaviour of each optional op (policy.h): a policy without queue
 * ops is a sorted queue (pgd_pqueue) in its .order. Nothing else in
 * core/sched calls through the ops table. */
#include "sched_impl.h"

/* The policy's queues are pgd_pqueue's in its .order (it has no queue ops). */
static int sorted(const pgd_scheduler *s) { return !s->pol->create; }

pgd_status pgd_pol_init(pgd_scheduler *s) {
    pgd_policy_env env = {.kv = s->kv, .block_size = s->block_size,
                          .max_num_batched_tokens = s->cfg.max_num_batched_tokens,
                          .max_num_seqs = s->cfg.max_num_seqs, .chunked_prefill = s->cfg.chunked_prefill};
    const struct pgd_policy_ops *p = s->pol;
    /* the queue ops: all of them, or none and an order */
    PGD_ASSERT(sorted(s) ? p->order && !p->destroy && !p->enqueue && !p->peek && !p->pop && !p->remove && !p->len &&
                               !p->pick_victim
                         : p->destroy && p->enqueue && p->peek && p->pop && p->remove && p->len && p->pick_victim);
    s->pol_self = NULL;
    if (p->init) PGD_TRY(p->init(&env, &s->pol_self));
    if (sorted(s)) {
        PGD_TRY(pgd_pqueue_create(p->order, &s->waiting));
        return pgd_pqueue_create(p->order, &s->swapped);
    }
    PGD_TRY(p->create(s->pol_self, &s->waiting));
    return p->create(s->pol_self, &s->swapped);
}

void pgd_pol_fini(pgd_scheduler *s) {
    void (*destroy)(void *) = sorted(s) ? pgd_pqueue_destroy : s->pol->destroy;
    if (s->waiting) destroy(s->waiting);
    if (s->swapped) destroy(s->swapped);
    if (s->pol->fini && s->pol_self) s->pol->fini(s->pol_self);
    s->waiting = s->swapped = s->pol_self = NULL;
}

pgd_status pgd_pol_enqueue(pgd_scheduler *s, void *q, pgd_sched_group *g) {
    return sorted(s) ? pgd_pqueue_enqueue(q, g) : s->pol->enqueue(q, g);
}
pgd_sched_group *pgd_pol_peek(pgd_scheduler *s, void *q) { return sorted(s) ? pgd_pqueue_peek(q) : s->pol->peek(q); }
pgd_sched_group *pgd_pol_pop(pgd_scheduler *s, void *q) { return sorted(s) ? pgd_pqueue_pop(q) : s->pol->pop(q); }
int pgd_pol_remove(pgd_scheduler *s, void *q, pgd_sched_group *g) {
    return sorted(s) ? pgd_pqueue_remove(q, g) : s->pol->remove(q, g);
}
int pgd_pol_len(const pgd_scheduler *s, const void *q) { return sorted(s) ? pgd_pqueue_len(q) : s->pol->len(q); }

int pgd_pol_pick_victim(pgd_scheduler *s, pgd_sched_group *const *running, int n) {
    int v = sorted(s) ? pgd_pqueue_pick_last(s->waiting, running, n) : s->pol->pick_victim(s->waiting, running, n);
    PGD_ASSERT(v >= 0 && v < n);
    return v;
}

void pgd_pol_arrival(pgd_scheduler *s, pgd_sched_group *g) {
    if (s->pol->on_arrival) s->pol->on_arrival(s->pol_self, g);
}

void pgd_pol_scheduled(pgd_scheduler *s, pgd_sched_group *g, int new_tokens, int prefill) {
    if (s->pol->on_scheduled) s->pol->on_scheduled(s->pol_self, g, new_tokens, prefill);
}

void pgd_pol_removed(pgd_scheduler *s, pgd_sched_group *g) {
    if (s->pol->on_removed) s->pol->on_removed(s->pol_self, g);
}

int pgd_pol_may_admit(pgd_scheduler *s, const pgd_sched_group *g) {
    if (!s->pol->may_admit || (s->n_running == 0 && pgd_pol_len(s, s->swapped) == 0)) return 1;
    pgd_policy_view v = {.running = s->running,
                         .n_running = s->n_running,
                         .n_waiting = pgd_pol_len(s, s->waiting),
                         .n_swapped = pgd_pol_len(s, s->swapped)};
    return s->pol->may_admit(s->pol_self, g, &v);
}

int pgd_pol_prefill_budget(pgd_scheduler *s, int total, int left) {
    if (!s->pol->prefill_budget || !s->cfg.chunked_prefill) return left;
    int b = s->pol->prefill_budget(s->pol_self, total, left);
    return b < 0 ? 0 : b > left ? left : b;
}

int pgd_pol_chunk_limit(pgd_scheduler *s, const pgd_sched_group *g, int left) {
    if (!s->pol->chunk_limit || left <= 0) return left;
    int c = s->pol->chunk_limit(s->pol_self, g, left);
    return c < 1 ? 1 : c > left ? left : c;
}
