/* prefix_cache.c - chained 64-bit block hashes (xxHash64-style mixing) and
 * the verified hash -> block map of the prefix cache (see prefix_cache.h
 * for the invariants). */
#include "prefix_cache.h"

#include <stdlib.h>
#include <string.h>

#define P1 0x9E3779B185EBCA87ull
#define P2 0xC2B2AE3D27D4EB4Full
#define P3 0x165667B19E3779F9ull
#define P4 0x85EBCA77C2B2AE63ull
#define P5 0x27D4EB2F165667C5ull

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static inline uint64_t round64(uint64_t acc, uint64_t in) {
    return rotl64(acc + in * P2, 31) * P1;
}
static inline uint64_t mix_word(uint64_t h, uint64_t w) {
    return rotl64(h ^ round64(0, w), 27) * P1 + P4;
}
static inline uint64_t avalanche(uint64_t h) {
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

uint64_t pgd_prefix_root(uint64_t seed) { return avalanche(seed ^ P5) ^ P4; }

uint64_t pgd_prefix_hash(uint64_t parent, const int32_t *tokens, int n, uint64_t seed) {
    uint64_t h = round64(seed + P5, parent) + (uint64_t)n * 4u;
    int i = 0;
    for (; i + 1 < n; i += 2)
        h = mix_word(h, (uint64_t)(uint32_t)tokens[i] | (uint64_t)(uint32_t)tokens[i + 1] << 32);
    if (i < n) h = rotl64(h ^ (uint64_t)(uint32_t)tokens[i] * P1, 23) * P2 + P3;
    return avalanche(h);
}

struct pgd_prefix_cache {
    int num_blocks, block_size;
    uint64_t seed;
    /* map: keys[i] is a hash when vals[i] >= 0; vals[i] == -1 marks empty */
    uint64_t *keys;
    int32_t *vals;
    size_t mask;
    /* per block */
    uint8_t *has;     /* (num_blocks) registered? */
    uint64_t *hash;   /* (num_blocks) its chained hash */
    uint64_t *parent; /* (num_blocks) its parent's chained hash */
    int32_t *tokens;  /* (num_blocks, block_size) its token ids */
    int count;
};

pgd_status pgd_prefix_cache_create(int num_blocks, int block_size, uint64_t seed,
                                   pgd_prefix_cache **out) {
    *out = NULL;
    pgd_prefix_cache *c = calloc(1, sizeof *c);
    if (!c) return pgd_error(PGD_ERR_OOM, "prefix cache: out of memory");
    size_t cap = 16;
    while (cap < 2 * (size_t)num_blocks) cap *= 2;
    c->num_blocks = num_blocks;
    c->block_size = block_size;
    c->seed = seed;
    c->mask = cap - 1;
    c->keys = calloc(cap, sizeof *c->keys);
    c->vals = malloc(cap * sizeof *c->vals);
    c->has = calloc((size_t)num_blocks, sizeof *c->has);
    c->hash = calloc((size_t)num_blocks, sizeof *c->hash);
    c->parent = calloc((size_t)num_blocks, sizeof *c->parent);
    c->tokens = calloc((size_t)num_blocks * (size_t)block_size, sizeof *c->tokens);
    if (!c->keys || !c->vals || !c->has || !c->hash || !c->parent || !c->tokens) {
        pgd_prefix_cache_destroy(c);
        return pgd_error(PGD_ERR_OOM, "prefix cache: out of memory for %d blocks of %d tokens",
                         num_blocks, block_size);
    }
    memset(c->vals, 0xff, cap * sizeof *c->vals);
    *out = c;
    return PGD_OK;
}

void pgd_prefix_cache_destroy(pgd_prefix_cache *c) {
    if (!c) return;
    free(c->keys);
    free(c->vals);
    free(c->has);
    free(c->hash);
    free(c->parent);
    free(c->tokens);
    free(c);
}

/* Slot holding `hash`, or the empty slot where it would go. */
static size_t find_slot(const pgd_prefix_cache *c, uint64_t hash) {
    size_t i = (size_t)hash & c->mask;
    while (c->vals[i] >= 0 && c->keys[i] != hash) i = (i + 1) & c->mask;
    return i;
}

int32_t pgd_prefix_cache_lookup(const pgd_prefix_cache *c, uint64_t hash, uint64_t parent,
                                const int32_t *tokens) {
    int32_t b = c->vals[find_slot(c, hash)];
    if (b < 0 || c->parent[b] != parent ||
        memcmp(c->tokens + (size_t)b * (size_t)c->block_size, tokens,
               (size_t)c->block_size * sizeof *tokens))
        return -1;
    return b;
}

int pgd_prefix_cache_insert(pgd_prefix_cache *c, uint64_t hash, uint64_t parent,
                            const int32_t *tokens, int32_t b) {
    PGD_ASSERT(b >= 0 && b < c->num_blocks && !c->has[b]);
    size_t i = find_slot(c, hash);
    if (c->vals[i] >= 0) return 0;
    PGD_ASSERT((size_t)c->count < c->mask / 2 + 1);
    c->keys[i] = hash;
    c->vals[i] = b;
    c->has[b] = 1;
    c->hash[b] = hash;
    c->parent[b] = parent;
    memcpy(c->tokens + (size_t)b * (size_t)c->block_size, tokens,
           (size_t)c->block_size * sizeof *tokens);
    c->count++;
    return 1;
}

void pgd_prefix_cache_remove(pgd_prefix_cache *c, int32_t b) {
    if (!c->has[b]) return;
    size_t i = find_slot(c, c->hash[b]);
    PGD_ASSERT(c->vals[i] == b);
    c->has[b] = 0;
    c->count--;
    /* backward-shift deletion: pull later entries of the probe run into the
     * hole unless their home slot lies cyclically in (hole, j] */
    size_t hole = i, j = i;
    for (;;) {
        j = (j + 1) & c->mask;
        if (c->vals[j] < 0) break;
        size_t home = (size_t)c->keys[j] & c->mask;
        int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (stays) continue;
        c->keys[hole] = c->keys[j];
        c->vals[hole] = c->vals[j];
        hole = j;
    }
    c->vals[hole] = -1;
}

int pgd_prefix_cache_has(const pgd_prefix_cache *c, int32_t b) { return c->has[b]; }
uint64_t pgd_prefix_cache_hash_of(const pgd_prefix_cache *c, int32_t b) {
    PGD_ASSERT(c->has[b]);
    return c->hash[b];
}
int pgd_prefix_cache_count(const pgd_prefix_cache *c) { return c->count; }

pgd_status pgd_prefix_cache_check(const pgd_prefix_cache *c) {
    int in_map = 0, registered = 0;
    for (size_t i = 0; i <= c->mask; i++) {
        int32_t b = c->vals[i];
        if (b < 0) continue;
        in_map++;
        if (b >= c->num_blocks || !c->has[b] || c->hash[b] != c->keys[i])
            return pgd_error(PGD_ERR_INVALID, "prefix cache: slot %zu names block %d wrongly",
                             i, b);
        if (find_slot(c, c->keys[i]) != i)
            return pgd_error(PGD_ERR_INVALID, "prefix cache: block %d unreachable by probing",
                             b);
    }
    for (int32_t b = 0; b < c->num_blocks; b++) {
        if (!c->has[b]) continue;
        registered++;
        uint64_t h = pgd_prefix_hash(c->parent[b], c->tokens + (size_t)b * (size_t)c->block_size,
                                     c->block_size, c->seed);
        if (h != c->hash[b])
            return pgd_error(PGD_ERR_INVALID, "prefix cache: block %d hash does not match its "
                             "tokens", b);
    }
    if (in_map != c->count || registered != c->count)
        return pgd_error(PGD_ERR_INVALID, "prefix cache: %d entries, %d in map, %d blocks",
                         c->count, in_map, registered);
    return PGD_OK;
}
