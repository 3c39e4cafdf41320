/* block_pool.h - a fixed set of block ids with reference counts, an
 * intrusive free list and an LRU list of unreferenced cached blocks.
 *
 * Every id in first..num_blocks-1 is in exactly one state:
 *  FREE   (ref 0, on the free list: a LIFO stack threaded through next[]),
 *  USED   (ref >= 1, held by sequences),
 *  CACHED (ref 0, on the LRU list threaded through next[]/prev[]: oldest at
 *          the head, most recently released at the tail; the owner keeps
 *          its content findable, e.g. by prefix hash, until it is evicted).
 * With reserve_null, id 0 is the null block: state NULLBLK, never handed
 * out. num_free + num_used + num_cached == num_blocks - first. Every
 * operation is O(1). The pool knows nothing about hashes: eviction is the
 * owner's pgd_block_pool_lru_oldest() + pgd_block_pool_uncache(). */
#ifndef PAGODA_BLOCK_POOL_H
#define PAGODA_BLOCK_POOL_H

#include <stdint.h>

#include "pagoda/status.h"

enum { PGD_BLOCK_FREE = 0, PGD_BLOCK_USED, PGD_BLOCK_CACHED, PGD_BLOCK_NULLBLK };

typedef struct pgd_block_pool {
    int32_t num_blocks; /* ids 0..num_blocks-1 */
    int32_t first;      /* 1 with a reserved null block 0, else 0 */
    int32_t *ref;       /* (num_blocks) reference counts */
    int32_t *next;      /* (num_blocks) free-list / LRU successor, -1 = end */
    int32_t *prev;      /* (num_blocks) LRU predecessor, -1 = none */
    uint8_t *state;     /* (num_blocks) PGD_BLOCK_* */
    int32_t free_head, num_free;
    int32_t lru_head, lru_tail, num_cached;
    int32_t num_used;
} pgd_block_pool;

pgd_status pgd_block_pool_create(int num_blocks, int reserve_null, pgd_block_pool **out);
void pgd_block_pool_destroy(pgd_block_pool *p);

/* Pop a FREE block (ref 1, USED), or -1 if the free list is empty. */
int32_t pgd_block_pool_alloc(pgd_block_pool *p);
/* ref +1 of a USED block. */
void pgd_block_pool_incref(pgd_block_pool *p, int32_t b);
/* ref -1 of a USED block; at 0 it goes to the LRU tail if `cache`, else
 * to the free list. Returns the new count. */
int32_t pgd_block_pool_decref(pgd_block_pool *p, int32_t b, int cache);
/* CACHED -> USED with ref 1 (a prefix-cache hit). */
void pgd_block_pool_take_cached(pgd_block_pool *p, int32_t b);
/* The least recently released CACHED block, or -1. */
int32_t pgd_block_pool_lru_oldest(const pgd_block_pool *p);
/* CACHED -> FREE (eviction; the caller has dropped its hash entry). */
void pgd_block_pool_uncache(pgd_block_pool *p, int32_t b);

static inline int32_t pgd_block_pool_ref(const pgd_block_pool *p, int32_t b) { return p->ref[b]; }

/* Walk both lists and check the state counts; if `expected_refs` is not
 * NULL, also that ref[b] == expected_refs[b] for every block. */
pgd_status pgd_block_pool_check(const pgd_block_pool *p, const int32_t *expected_refs,
                                const char *what);

#endif
