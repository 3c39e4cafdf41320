/* prefix_cache.h - chained block hashes and the map from hash to the device
 * block holding that prefix block.
 *
 * A full block's chained hash is pgd_prefix_hash(parent, tokens, bs, seed)
 * where parent is the previous block's chained hash (or
 * pgd_prefix_root(seed) for the first block), so equal hashes name equal
 * whole prefixes. The cache also stores each registered block's parent hash
 * and token ids and verifies both on lookup, so a collision of two blocks'
 * 64-bit hashes can never attach wrong KV data (a wrong hit would need two
 * different parent chains with equal 64-bit hashes).
 *
 * Invariants: at most one block per hash and one hash per block; the map is
 * an open-addressing table (linear probing, backward-shift deletion) of
 * capacity >= 2 * num_blocks, so it is at most half full. Lookup, insert
 * and remove are O(1) expected plus O(block_size) for the token compare. */
#ifndef PAGODA_PREFIX_CACHE_H
#define PAGODA_PREFIX_CACHE_H

#include <stdint.h>

#include "pagoda/status.h"

typedef struct pgd_prefix_cache pgd_prefix_cache;

uint64_t pgd_prefix_root(uint64_t seed);
uint64_t pgd_prefix_hash(uint64_t parent, const int32_t *tokens, int n, uint64_t seed);

pgd_status pgd_prefix_cache_create(int num_blocks, int block_size, uint64_t seed,
                                   pgd_prefix_cache **out);
void pgd_prefix_cache_destroy(pgd_prefix_cache *c);

/* The block registered under `hash` whose parent hash and tokens
 * (block_size of them) match, or -1. */
int32_t pgd_prefix_cache_lookup(const pgd_prefix_cache *c, uint64_t hash, uint64_t parent,
                                const int32_t *tokens);
/* Register block b (which has no hash yet) under `hash`. Returns 0 and
 * registers nothing if another block already holds that hash (the existing
 * entry is kept). */
int pgd_prefix_cache_insert(pgd_prefix_cache *c, uint64_t hash, uint64_t parent,
                            const int32_t *tokens, int32_t b);
/* Drop block b's entry (no-op if it has none). */
void pgd_prefix_cache_remove(pgd_prefix_cache *c, int32_t b);
int pgd_prefix_cache_has(const pgd_prefix_cache *c, int32_t b);
/* The hash block b is registered under (b registered). */
uint64_t pgd_prefix_cache_hash_of(const pgd_prefix_cache *c, int32_t b);
int pgd_prefix_cache_count(const pgd_prefix_cache *c);

/* Every entry findable from its home slot, per-block and map views agree,
 * stored hashes recompute from (parent, tokens). */
pgd_status pgd_prefix_cache_check(const pgd_prefix_cache *c);

#endif
