/* cache_aware.c - cache-aware orders: the waiting group with the longest
 * cached prefix first ("cache-aware", SGLang's longest-prefix-match), or
 * with the fewest tokens left to compute first ("cache-aware-uncached",
 * TensorRT-LLM's shortest-uncached-first); ties by arrival. Each peek asks
 * the KV manager (pgd_kv_cached_prefix) for the cached prefix of every
 * group in a window of the CA_WINDOW oldest, since what is cached changes
 * every step; pop takes the group the last peek chose. Without prefix
 * caching every group scores 0 cached tokens: "cache-aware" is then fcfs
 * and "cache-aware-uncached" shortest-prompt-first.
 *
 * Starvation bound: the oldest waiting group is taken first once CA_PASSES
 * later arrivals have been taken before it, so no group waits behind more
 * than CA_PASSES + (its position by arrival) admissions. The swapped queue
 * is scored the same way (its groups' whole contexts). The victim is the
 * latest arrival, as with fcfs. */
#include <stdlib.h>

#include "policy.h"

enum { CA_WINDOW = 256, CA_PASSES = 256 };

typedef struct ca_self {
    pgd_kv_manager *kv;
    int uncached; /* 1: fewest uncached tokens first */
} ca_self;

typedef struct ca_queue {
    void *q; /* arrival order */
    const ca_self *self;
    pgd_sched_group *peeked;
    int passes; /* groups taken before the oldest since it became the oldest */
} ca_queue;

static pgd_status ca_init(const pgd_policy_env *env, void **self, int uncached) {
    ca_self *c = calloc(1, sizeof *c);
    if (!c) return pgd_error(PGD_ERR_OOM, "policy: out of memory");
    c->kv = env->kv;
    c->uncached = uncached;
    *self = c;
    return PGD_OK;
}
static pgd_status lpm_init(const pgd_policy_env *env, void **self) { return ca_init(env, self, 0); }
static pgd_status unc_init(const pgd_policy_env *env, void **self) { return ca_init(env, self, 1); }
static void ca_fini(void *self) { free(self); }

static pgd_status ca_create(void *self, void **queue) {
    ca_queue *q = calloc(1, sizeof *q);
    if (!q) return pgd_error(PGD_ERR_OOM, "policy: out of memory");
    q->self = self;
    pgd_status st = pgd_pqueue_create(pgd_group_cmp_arrival, &q->q);
    if (st != PGD_OK) {
        free(q);
        return st;
    }
    *queue = q;
    return PGD_OK;
}

static void ca_destroy(void *queue) {
    ca_queue *q = queue;
    if (!q) return;
    pgd_pqueue_destroy(q->q);
    free(q);
}

static pgd_status ca_enqueue(void *queue, pgd_sched_group *g) { return pgd_pqueue_enqueue(((ca_queue *)queue)->q, g); }

/* Higher is better. */
static long score(const ca_queue *q, const pgd_sched_group *g) {
    const pgd_sched_seq *s0 = g->seqs[0];
    long cached = pgd_kv_cached_prefix(q->self->kv, s0->tokens, s0->len);
    if (!q->self->uncached) return cached;
    long left = 0;
    for (int i = 0; i < g->num_seqs; i++) left += g->seqs[i]->len - cached;
    return -left;
}

static pgd_sched_group *ca_peek(void *queue) {
    ca_queue *q = queue;
    int n = pgd_pqueue_len(q->q);
    q->peeked = NULL;
    if (n == 0) return NULL;
    pgd_sched_group *best = pgd_pqueue_at(q->q, 0);
    if (q->passes < CA_PASSES) {
        long bs = score(q, best);
        for (int i = 1; i < n && i < CA_WINDOW; i++) {
            pgd_sched_group *g = pgd_pqueue_at(q->q, i);
            long sc = score(q, g);
            if (sc > bs) best = g, bs = sc;
        }
    }
    q->peeked = best;
    return best;
}

static pgd_sched_group *ca_pop(void *queue) {
    ca_queue *q = queue;
    pgd_sched_group *g = q->peeked ? q->peeked : ca_peek(q);
    if (!g) return NULL;
    q->passes = g == pgd_pqueue_at(q->q, 0) ? 0 : q->passes + 1;
    pgd_pqueue_remove(q->q, g);
    q->peeked = NULL;
    return g;
}

static int ca_remove(void *queue, pgd_sched_group *g) {
    ca_queue *q = queue;
    if (g == pgd_pqueue_at(q->q, 0)) q->passes = 0;
    if (q->peeked == g) q->peeked = NULL;
    return pgd_pqueue_remove(q->q, g);
}

static int ca_len(const void *queue) { return pgd_pqueue_len(((const ca_queue *)queue)->q); }

static int ca_pick_victim(void *queue, pgd_sched_group *const *running, int n) {
    return pgd_pqueue_pick_last(((ca_queue *)queue)->q, running, n);
}

const struct pgd_policy_ops pgd_policy_cache_aware = {
    .name = "cache-aware",
    .init = lpm_init,
    .fini = ca_fini,
    .create = ca_create,
    .destroy = ca_destroy,
    .enqueue = ca_enqueue,
    .peek = ca_peek,
    .pop = ca_pop,
    .remove = ca_remove,
    .len = ca_len,
    .pick_victim = ca_pick_victim,
};

const struct pgd_policy_ops pgd_policy_cache_aware_uncached = {
    .name = "cache-aware-uncached",
    .init = unc_init,
    .fini = ca_fini,
    .create = ca_create,
    .destroy = ca_destroy,
    .enqueue = ca_enqueue,
    .peek = ca_peek,
    .pop = ca_pop,
    .remove = ca_remove,
    .len = ca_len,
    .pick_victim = ca_pick_victim,
};
