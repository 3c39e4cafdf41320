/* block_pool.c - fixed set of block ids: ref counts, intrusive LIFO free
 * list, LRU list of unreferenced cached blocks (see block_pool.h for the
 * states and invariants). Every operation but the check is O(1); misuse
 * (wrong state) is an internal bug and hits PGD_ASSERT. */
#include "block_pool.h"

#include <stdlib.h>

pgd_status pgd_block_pool_create(int num_blocks, int reserve_null, pgd_block_pool **out) {
    *out = NULL;
    if (num_blocks < 0 || (reserve_null && num_blocks < 1))
        return pgd_error(PGD_ERR_INVALID, "block pool: bad size %d", num_blocks);
    pgd_block_pool *p = calloc(1, sizeof *p);
    if (!p) return pgd_error(PGD_ERR_OOM, "block pool: out of memory");
    size_t n = (size_t)num_blocks + 1; /* +1: never calloc(0) */
    p->ref = calloc(n, sizeof *p->ref);
    p->next = calloc(n, sizeof *p->next);
    p->prev = calloc(n, sizeof *p->prev);
    p->state = calloc(n, sizeof *p->state);
    if (!p->ref || !p->next || !p->prev || !p->state) {
        pgd_block_pool_destroy(p);
        return pgd_error(PGD_ERR_OOM, "block pool: out of memory for %d blocks", num_blocks);
    }
    p->num_blocks = num_blocks;
    p->first = reserve_null ? 1 : 0;
    if (reserve_null) p->state[0] = PGD_BLOCK_NULLBLK;
    /* free list in ascending order, so fresh pools hand out first, first+1, ... */
    p->free_head = -1;
    for (int32_t b = num_blocks - 1; b >= p->first; b--) {
        p->next[b] = p->free_head;
        p->prev[b] = -1;
        p->free_head = b;
    }
    p->num_free = num_blocks - p->first;
    p->lru_head = p->lru_tail = -1;
    *out = p;
    return PGD_OK;
}

void pgd_block_pool_destroy(pgd_block_pool *p) {
    if (!p) return;
    free(p->ref);
    free(p->next);
    free(p->prev);
    free(p->state);
    free(p);
}

int32_t pgd_block_pool_alloc(pgd_block_pool *p) {
    int32_t b = p->free_head;
    if (b < 0) return -1;
    PGD_ASSERT(p->state[b] == PGD_BLOCK_FREE && p->ref[b] == 0);
    p->free_head = p->next[b];
    p->next[b] = -1;
    p->state[b] = PGD_BLOCK_USED;
    p->ref[b] = 1;
    p->num_free--;
    p->num_used++;
    return b;
}

void pgd_block_pool_incref(pgd_block_pool *p, int32_t b) {
    PGD_ASSERT(b >= p->first && b < p->num_blocks && p->state[b] == PGD_BLOCK_USED);
    p->ref[b]++;
}

static void push_free(pgd_block_pool *p, int32_t b) {
    p->state[b] = PGD_BLOCK_FREE;
    p->next[b] = p->free_head;
    p->prev[b] = -1;
    p->free_head = b;
    p->num_free++;
}

int32_t pgd_block_pool_decref(pgd_block_pool *p, int32_t b, int cache) {
    PGD_ASSERT(b >= p->first && b < p->num_blocks && p->state[b] == PGD_BLOCK_USED &&
               p->ref[b] > 0);
    if (--p->ref[b]) return p->ref[b];
    p->num_used--;
    if (!cache) {
        push_free(p, b);
        return 0;
    }
    p->state[b] = PGD_BLOCK_CACHED;
    p->next[b] = -1;
    p->prev[b] = p->lru_tail;
    if (p->lru_tail >= 0) p->next[p->lru_tail] = b;
    else p->lru_head = b;
    p->lru_tail = b;
    p->num_cached++;
    return 0;
}

static void lru_unlink(pgd_block_pool *p, int32_t b) {
    PGD_ASSERT(b >= p->first && b < p->num_blocks && p->state[b] == PGD_BLOCK_CACHED);
    if (p->prev[b] >= 0) p->next[p->prev[b]] = p->next[b];
    else p->lru_head = p->next[b];
    if (p->next[b] >= 0) p->prev[p->next[b]] = p->prev[b];
    else p->lru_tail = p->prev[b];
    p->next[b] = p->prev[b] = -1;
    p->num_cached--;
}

void pgd_block_pool_take_cached(pgd_block_pool *p, int32_t b) {
    lru_unlink(p, b);
    p->state[b] = PGD_BLOCK_USED;
    p->ref[b] = 1;
    p->num_used++;
}

int32_t pgd_block_pool_lru_oldest(const pgd_block_pool *p) { return p->lru_head; }

void pgd_block_pool_uncache(pgd_block_pool *p, int32_t b) {
    lru_unlink(p, b);
    push_free(p, b);
}

pgd_status pgd_block_pool_check(const pgd_block_pool *p, const int32_t *expected_refs,
                                const char *what) {
    int32_t n = p->num_blocks, nfree = 0, ncached = 0, nused = 0;
    if (p->first && (p->state[0] != PGD_BLOCK_NULLBLK || p->ref[0] != 0))
        return pgd_error(PGD_ERR_INVALID, "%s: null block 0 is in use", what);
    for (int32_t b = p->free_head; b >= 0; b = p->next[b]) {
        if (b < p->first || b >= n || p->state[b] != PGD_BLOCK_FREE || p->ref[b] != 0 ||
            ++nfree > n)
            return pgd_error(PGD_ERR_INVALID, "%s: free list corrupt at block %d", what, b);
    }
    int32_t prev = -1;
    for (int32_t b = p->lru_head; b >= 0; prev = b, b = p->next[b]) {
        if (b < p->first || b >= n || p->state[b] != PGD_BLOCK_CACHED || p->ref[b] != 0 ||
            p->prev[b] != prev || ++ncached > n)
            return pgd_error(PGD_ERR_INVALID, "%s: LRU list corrupt at block %d", what, b);
    }
    if (prev != p->lru_tail)
        return pgd_error(PGD_ERR_INVALID, "%s: LRU tail is %d, list ends at %d", what,
                         p->lru_tail, prev);
    for (int32_t b = p->first; b < n; b++) {
        if (p->state[b] == PGD_BLOCK_USED) {
            nused++;
            if (p->ref[b] <= 0)
                return pgd_error(PGD_ERR_INVALID, "%s: used block %d has ref %d", what, b,
                                 p->ref[b]);
        } else if (p->state[b] != PGD_BLOCK_FREE && p->state[b] != PGD_BLOCK_CACHED) {
            return pgd_error(PGD_ERR_INVALID, "%s: block %d in bad state %d", what, b,
                             p->state[b]);
        }
        if (expected_refs && p->ref[b] != expected_refs[b])
            return pgd_error(PGD_ERR_INVALID, "%s: block %d has ref %d but %d holders", what,
                             b, p->ref[b], expected_refs[b]);
    }
    if (nfree != p->num_free || ncached != p->num_cached || nused != p->num_used ||
        nfree + ncached + nused != n - p->first)
        return pgd_error(PGD_ERR_INVALID,
                         "%s: counts free %d/%d cached %d/%d used %d/%d of %d blocks", what,
                         nfree, p->num_free, ncached, p->num_cached, nused, p->num_used,
                         n - p->first);
    return PGD_OK;
}
