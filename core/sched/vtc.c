/* vtc.c - Virtual Token Counter fairness (Sheng et al., "Fairness in
 * Serving Large Language Models", OSDI'24).
 *
 * Every client u has a counter c_u of the service it got: each token
 * computed for one of its requests adds VTC_W_IN for a prompt (prefill or
 * recomputed) token and VTC_W_OUT for a generated (decode) token (the
 * paper's w_p = 1, w_q = 2). The waiting request served next is the oldest
 * request of the backlogged client (one with a request in the waiting
 * queue) whose counter is smallest. Counter lift: a client that becomes
 * backlogged starts at no less than the smallest counter of the clients
 * already backlogged (or, if none are, the counter of the last client that
 * left the backlog), so idling earns no credit.
 *
 * Bound (the paper's Theorem 4.3, with our scheduler's constants): over
 * any interval in which two clients are both continuously backlogged,
 * their services differ by at most 2 * U, U = max(VTC_W_IN * the longest
 * prompt, VTC_W_OUT * M), M = the KV cache's capacity in tokens. The
 * randomized scheduler test holds every run to it. The swapped queue is in
 * arrival order and the victim is the running group of the client with
 * the largest counter (latest arrival among its requests). */
#include <stdlib.h>
#include <string.h>

#include "policy.h"

enum { VTC_W_IN = 1, VTC_W_OUT = 2 };

typedef struct vtc_self {
    double *counter;
    int *backlog; /* requests in the waiting queue, per client */
    int n, cap;
    double last_left;
    void *waiting; /* the first queue created is the waiting queue */
} vtc_self;

typedef struct vtc_queue {
    void *q; /* arrival order */
    vtc_self *self;
    int waiting;
    pgd_sched_group *peeked;
} vtc_queue;

static pgd_status vtc_init(const pgd_policy_env *env, void **self) {
    (void)env;
    vtc_self *v = calloc(1, sizeof *v);
    if (!v) return pgd_error(PGD_ERR_OOM, "policy: out of memory");
    *self = v;
    return PGD_OK;
}

static void vtc_fini(void *self) {
    vtc_self *v = self;
    free(v->counter);
    free(v->backlog);
    free(v);
}

static int grow(vtc_self *v, int client) {
    if (client < v->n) return 1;
    if (client >= v->cap) {
        int cap = v->cap ? v->cap : 8;
        while (cap <= client) cap *= 2;
        double *c = realloc(v->counter, sizeof *c * (size_t)cap);
        if (!c) return 0;
        v->counter = c;
        int *b = realloc(v->backlog, sizeof *b * (size_t)cap);
        if (!b) return 0;
        v->backlog = b;
        v->cap = cap;
    }
    for (int i = v->n; i <= client; i++) v->counter[i] = 0, v->backlog[i] = 0;
    v->n = client + 1;
    return 1;
}

static pgd_status vtc_create(void *self, void **queue) {
    vtc_self *v = self;
    vtc_queue *q = calloc(1, sizeof *q);
    if (!q) return pgd_error(PGD_ERR_OOM, "policy: out of memory");
    q->self = v;
    q->waiting = v->waiting == NULL;
    if (q->waiting) v->waiting = q;
    pgd_status st = pgd_pqueue_create(pgd_group_cmp_arrival, &q->q);
    if (st != PGD_OK) {
        free(q);
        return st;
    }
    *queue = q;
    return PGD_OK;
}

static void vtc_destroy(void *queue) {
    vtc_queue *q = queue;
    if (!q) return;
    pgd_pqueue_destroy(q->q);
    free(q);
}

static void leave(vtc_queue *q, const pgd_sched_group *g) {
    if (!q->waiting) return;
    vtc_self *v = q->self;
    if (--v->backlog[g->client] == 0) v->last_left = v->counter[g->client];
}

static pgd_status vtc_enqueue(void *queue, pgd_sched_group *g) {
    vtc_queue *q = queue;
    if (!grow(q->self, g->client)) return pgd_error(PGD_ERR_OOM, "policy: out of memory");
    PGD_TRY(pgd_pqueue_enqueue(q->q, g));
    if (q->waiting) q->self->backlog[g->client]++;
    return PGD_OK;
}

/* Counter lift for a new request (before it is queued). */
static void vtc_on_arrival(void *self, pgd_sched_group *g) {
    vtc_self *v = self;
    if (!grow(v, g->client) || v->backlog[g->client] > 0) return; /* out of memory: enqueue reports it */
    double lift = -1;
    for (int c = 0; c < v->n; c++)
        if (v->backlog[c] > 0 && (lift < 0 || v->counter[c] < lift)) lift = v->counter[c];
    if (lift < 0) lift = v->last_left;
    if (v->counter[g->client] < lift) v->counter[g->client] = lift;
}

static void vtc_on_scheduled(void *self, pgd_sched_group *g, int new_tokens, int prefill) {
    vtc_self *v = self;
    if (!grow(v, g->client)) return;
    v->counter[g->client] += (double)VTC_W_IN * prefill + (double)VTC_W_OUT * (new_tokens - prefill);
}

static pgd_sched_group *vtc_peek(void *queue) {
    vtc_queue *q = queue;
    int n = pgd_pqueue_len(q->q);
    q->peeked = NULL;
    if (n == 0) return NULL;
    pgd_sched_group *best = pgd_pqueue_at(q->q, 0);
    if (q->waiting)
        for (int i = 1; i < n; i++) { /* the oldest request of the least-served client */
            pgd_sched_group *g = pgd_pqueue_at(q->q, i);
            if (q->self->counter[g->client] < q->self->counter[best->client]) best = g;
        }
    q->peeked = best;
    return best;
}

static pgd_sched_group *vtc_pop(void *queue) {
    vtc_queue *q = queue;
    pgd_sched_group *g = q->peeked ? q->peeked : vtc_peek(q);
    if (!g) return NULL;
    pgd_pqueue_remove(q->q, g);
    q->peeked = NULL;
    leave(q, g);
    return g;
}

static int vtc_remove(void *queue, pgd_sched_group *g) {
    vtc_queue *q = queue;
    if (q->peeked == g) q->peeked = NULL;
    if (!pgd_pqueue_remove(q->q, g)) return 0;
    leave(q, g);
    return 1;
}

static int vtc_len(const void *queue) { return pgd_pqueue_len(((const vtc_queue *)queue)->q); }

static int vtc_pick_victim(void *queue, pgd_sched_group *const *running, int n) {
    const vtc_self *v = ((vtc_queue *)queue)->self;
    int best = 0;
    for (int i = 1; i < n; i++) {
        double ci = running[i]->client < v->n ? v->counter[running[i]->client] : 0;
        double cb = running[best]->client < v->n ? v->counter[running[best]->client] : 0;
        if (ci > cb || (ci == cb && pgd_group_cmp_arrival(running[i], running[best]) >= 0)) best = i;
    }
    return best;
}

const struct pgd_policy_ops pgd_policy_vtc = {
    .name = "vtc",
    .init = vtc_init,
    .fini = vtc_fini,
    .create = vtc_create,
    .destroy = vtc_destroy,
    .enqueue = vtc_enqueue,
    .peek = vtc_peek,
    .pop = vtc_pop,
    .remove = vtc_remove,
    .len = vtc_len,
    .pick_victim = vtc_pick_victim,
    .on_scheduled = vtc_on_scheduled,
    .on_arrival = vtc_on_arrival,
};
