/* policy_queue.c - a sorted array of sequence groups shared by the
 * policies: insertion keeps the array sorted by the policy's comparison
 * (stable: equal keys keep arrival order), the head is index 0.
 * Invariant: items[0..n-1] sorted, no group twice. */
#include <stdlib.h>
#include <string.h>

#include "policy.h"

typedef struct pqueue {
    pgd_group_cmp cmp;
    pgd_sched_group **items;
    int n, cap;
} pqueue;

int pgd_group_cmp_arrival(const pgd_sched_group *a, const pgd_sched_group *b) {
    if (a->arrival != b->arrival) return a->arrival < b->arrival ? -1 : 1;
    return (a->order > b->order) - (a->order < b->order);
}

pgd_status pgd_pqueue_create(pgd_group_cmp cmp, void **state) {
    pqueue *q = calloc(1, sizeof *q);
    if (!q) return pgd_error(PGD_ERR_OOM, "policy: out of memory");
    q->cmp = cmp;
    *state = q;
    return PGD_OK;
}

void pgd_pqueue_destroy(void *state) {
    pqueue *q = state;
    if (!q) return;
    free(q->items);
    free(q);
}

pgd_status pgd_pqueue_enqueue(void *state, pgd_sched_group *g) {
    pqueue *q = state;
    if (q->n == q->cap) {
        int cap = q->cap ? 2 * q->cap : 16;
        pgd_sched_group **p = realloc(q->items, sizeof *p * (size_t)cap);
        if (!p) return pgd_error(PGD_ERR_OOM, "policy: out of memory");
        q->items = p;
        q->cap = cap;
    }
    int i = q->n; /* insert after every item that does not sort after g */
    while (i > 0 && q->cmp(q->items[i - 1], g) > 0) i--;
    memmove(q->items + i + 1, q->items + i, sizeof *q->items * (size_t)(q->n - i));
    q->items[i] = g;
    q->n++;
    return PGD_OK;
}

pgd_sched_group *pgd_pqueue_peek(void *state) {
    pqueue *q = state;
    return q->n ? q->items[0] : NULL;
}

pgd_sched_group *pgd_pqueue_pop(void *state) {
    pqueue *q = state;
    if (!q->n) return NULL;
    pgd_sched_group *g = q->items[0];
    memmove(q->items, q->items + 1, sizeof *q->items * (size_t)(q->n - 1));
    q->n--;
    return g;
}

int pgd_pqueue_remove(void *state, pgd_sched_group *g) {
    pqueue *q = state;
    for (int i = 0; i < q->n; i++)
        if (q->items[i] == g) {
            memmove(q->items + i, q->items + i + 1, sizeof *q->items * (size_t)(q->n - i - 1));
            q->n--;
            return 1;
        }
    return 0;
}

int pgd_pqueue_pick_last(void *state, pgd_sched_group *const *running, int n) {
    pqueue *q = state;
    int v = 0;
    for (int i = 1; i < n; i++)
        if (q->cmp(running[i], running[v]) >= 0) v = i;
    return v;
}

int pgd_pqueue_len(const void *state) { return ((const pqueue *)state)->n; }

pgd_sched_group *pgd_pqueue_at(const void *state, int i) {
    const pqueue *q = state;
    return i >= 0 && i < q->n ? q->items[i] : NULL;
}
