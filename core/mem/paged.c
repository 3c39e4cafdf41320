/* paged.c - the paged KV manager (PagedAttention): blocks on demand from a
 * block pool, reference counts shared by forked sequences, copy-on-write
 * of a shared partial last block, swap to a second pool of host blocks,
 * and optional prefix caching with chained block hashes and LRU eviction.
 *
 * Invariants (all verified by paged_check):
 *  - ref[b] of a device block == number of table entries naming b over all
 *    sequences on the device; a block with ref 0 is FREE, or CACHED iff it
 *    is registered in the prefix cache; only full blocks are registered;
 *  - fill[b] = tokens written into b; every sequence holding b agrees with
 *    it (a block is only written while its ref count is 1: appends into a
 *    shared partial block copy it first); tokens_stored == sum of fill over
 *    USED blocks, so tokens of shared blocks count once;
 *  - a swapped sequence holds one host block per logical block, each
 *    host block held by exactly one sequence;
 *  - with prefix caching, s->chain is the chained hash of the sequence's
 *    last full block (the root for none) and s->partial holds the tokens of
 *    its partial last block.
 * Cost: O(1) per token plus O(block_size) per block filled or looked up;
 * freeing, forking and swapping are O(blocks of the sequence). Design
 * choices: an identical full block that is already cached keeps the
 * existing cache entry (the new block stays unregistered and is freed, not
 * cached, at ref 0); blocks brought back by swap_in are not re-registered;
 * free releases a sequence's blocks last first, so the LRU evicts the ends
 * of cached prefixes before their starts. */
#include <stdlib.h>
#include <string.h>

#include "block_pool.h"
#include "kv_manager_impl.h"
#include "prefix_cache.h"

typedef struct paged_seq {
    pgd_kv_seq base;
    uint64_t chain;   /* chained hash of the last full block */
    int32_t *partial; /* (block_size) tokens of the partial last block; prefix caching only */
} paged_seq;

typedef struct paged {
    pgd_kv_manager base;
    pgd_block_pool *pool, *host; /* host NULL without swap space */
    pgd_prefix_cache *cache;     /* NULL without prefix caching */
    int32_t *fill;               /* (num_blocks) tokens written per device block */
    pgd_kv_copy *copies;         /* pending copy-on-write copies */
    int n_copies, cap_copies;
    uint64_t root;
    int64_t tokens_stored, prefix_queries, prefix_hits;
    int64_t logical;             /* block-table entries of device-resident sequences */
} paged;


static int bsz(const paged *p) { return p->base.cfg.block_size; }
static int usable(const paged *p) { return p->pool->num_free + p->pool->num_cached; }

/* A fresh USED block (fill 0), evicting the oldest cached block if the free
 * list is empty. The caller has checked usable() first. */
static int32_t take_block(paged *p) {
    int32_t b = pgd_block_pool_alloc(p->pool);
    if (b < 0) {
        int32_t victim = pgd_block_pool_lru_oldest(p->pool);
        PGD_ASSERT(victim > 0 && p->cache);
        pgd_prefix_cache_remove(p->cache, victim);
        pgd_block_pool_uncache(p->pool, victim);
        b = pgd_block_pool_alloc(p->pool);
    }
    PGD_ASSERT(b > 0);
    p->fill[b] = 0;
    return b;
}

/* Drop one reference; at 0 the block is cached if registered, else freed. */
static void drop_block(paged *p, int32_t b) {
    if (pgd_block_pool_ref(p->pool, b) == 1) p->tokens_stored -= p->fill[b];
    pgd_block_pool_decref(p->pool, b, p->cache && pgd_prefix_cache_has(p->cache, b));
}

static paged_seq *new_seq(paged *p, int64_t id, int max_total, int table_cap) {
    paged_seq *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->base.id = id;
    s->base.max_total = max_total;
    s->chain = p->root;
    if ((p->cache && !(s->partial = malloc((size_t)bsz(p) * sizeof *s->partial))) ||
        pgd_kv_seq_reserve(&s->base, table_cap > 0 ? table_cap : 1) != PGD_OK) {
        free(s->partial);
        free(s);
        return NULL;
    }
    return s;
}

static void delete_seq(paged_seq *s) {
    free(s->base.table);
    free(s->partial);
    free(s);
}

/* ---- lifecycle ---- */

static pgd_status paged_create(const struct pgd_kv_ops *ops, const pgd_kv_manager_config *cfg, pgd_kv_manager **out) {
    paged *p = calloc(1, sizeof *p);
    if (!p) return pgd_error(PGD_ERR_OOM, "paged KV manager: out of memory");
    p->base.ops = ops;
    p->base.cfg = *cfg;
    p->root = pgd_prefix_root(cfg->hash_seed);
    pgd_status st = pgd_block_pool_create(cfg->num_blocks, 1, &p->pool);
    if (st == PGD_OK && cfg->num_host_blocks > 0)
        st = pgd_block_pool_create(cfg->num_host_blocks, 0, &p->host);
    if (st == PGD_OK && cfg->prefix_caching)
        st = pgd_prefix_cache_create(cfg->num_blocks, cfg->block_size, cfg->hash_seed, &p->cache);
    if (st == PGD_OK && !(p->fill = calloc((size_t)cfg->num_blocks, sizeof *p->fill)))
        st = pgd_error(PGD_ERR_OOM, "paged KV manager: out of memory for %d blocks",
                       cfg->num_blocks);
    if (st != PGD_OK) {
        p->base.ops->destroy(&p->base);
        return st;
    }
    *out = &p->base;
    return PGD_OK;
}

static void paged_destroy(pgd_kv_manager *m) {
    paged *p = (paged *)m;
    pgd_block_pool_destroy(p->pool);
    pgd_block_pool_destroy(p->host);
    pgd_prefix_cache_destroy(p->cache);
    free(p->fill);
    free(p->copies);
    free(p);
}

/* ---- sequences ---- */

static pgd_status paged_add_seq(pgd_kv_manager *m, int64_t id, const int32_t *prompt,
                                int n_prompt, int max_total, int true_total, pgd_kv_seq **out,
                                int *num_cached) {
    paged *p = (paged *)m;
    int bs = bsz(p), usable_blocks = m->cfg.num_blocks - 1;
    (void)true_total;
    if (pgd_kv_div_up(n_prompt, bs) > usable_blocks)
        return pgd_error(PGD_ERR_INVALID, "add_seq: sequence %lld prompt of %d tokens needs %d "
                         "blocks of %d; the pool has %d", (long long)id, n_prompt,
                         pgd_kv_div_up(n_prompt, bs), bs, usable_blocks);
    if (max_total < INT32_MAX && pgd_kv_div_up(max_total, bs) > usable_blocks)
        return pgd_error(PGD_ERR_INVALID, "add_seq: sequence %lld max_total_len %d needs %d "
                         "blocks of %d; the pool has %d", (long long)id, max_total,
                         pgd_kv_div_up(max_total, bs), bs, usable_blocks);
    int nfull = p->cache ? n_prompt / bs : 0;
    paged_seq *s = new_seq(p, id, max_total, nfull);
    if (!s) return pgd_error(PGD_ERR_OOM, "add_seq: out of memory");
    /* longest cached prefix: walk the chain until the first miss */
    uint64_t parent = p->root, before_last = p->root;
    int hits = 0;
    while (hits < nfull) {
        const int32_t *t = prompt + (size_t)hits * (size_t)bs;
        uint64_t h = pgd_prefix_hash(parent, t, bs, m->cfg.hash_seed);
        int32_t b = pgd_prefix_cache_lookup(p->cache, h, parent, t);
        if (b < 0) break;
        s->base.table[hits++] = b;
        before_last = parent;
        parent = h;
    }
    if (hits > 0 && hits * bs == n_prompt) { /* compute the last prompt token */
        hits--;
        parent = before_last;
    }
    for (int i = 0; i < hits; i++) {
        int32_t b = s->base.table[i];
        if (p->pool->state[b] == PGD_BLOCK_CACHED) {
            pgd_block_pool_take_cached(p->pool, b);
            p->tokens_stored += p->fill[b];
        } else {
            pgd_block_pool_incref(p->pool, b);
        }
    }
    s->base.n_blocks = hits;
    p->logical += hits;
    s->base.num_tokens = hits * bs;
    s->chain = parent;
    p->prefix_queries += nfull;
    p->prefix_hits += hits;
    *num_cached = hits * bs;
    *out = &s->base;
    return PGD_OK;
}

static int paged_cached_prefix(const pgd_kv_manager *m, const int32_t *prompt, int n_prompt) {
    const paged *p = (const paged *)m;
    if (!p->cache) return 0;
    int bs = bsz(p), nfull = n_prompt / bs, hits = 0;
    uint64_t parent = p->root;
    while (hits < nfull) { /* the same walk as add_seq's */
        const int32_t *t = prompt + (size_t)hits * (size_t)bs;
        uint64_t h = pgd_prefix_hash(parent, t, bs, m->cfg.hash_seed);
        if (pgd_prefix_cache_lookup(p->cache, h, parent, t) < 0) break;
        hits++;
        parent = h;
    }
    if (hits > 0 && hits * bs == n_prompt) hits--; /* the last prompt token is computed */
    return hits * bs;
}

static int paged_blocks_needed(const pgd_kv_manager *m, const pgd_kv_seq *s, int total) {
    const paged *p = (const paged *)m;
    int bs = bsz(p);
    if (total < s->num_tokens) total = s->num_tokens;
    if (s->swapped) return pgd_kv_div_up(total, bs);
    if (total == s->num_tokens) return 0;
    int cow = s->num_tokens % bs && pgd_block_pool_ref(p->pool, s->table[s->n_blocks - 1]) > 1;
    return pgd_kv_div_up(total, bs) - s->n_blocks + cow;
}

static int paged_free_blocks(const pgd_kv_manager *m) { return usable((const paged *)m); }

static pgd_status paged_append(pgd_kv_manager *m, pgd_kv_seq *base, const int32_t *tokens,
                               int n) {
    paged *p = (paged *)m;
    paged_seq *s = (paged_seq *)base;
    int bs = bsz(p), end = base->num_tokens + n;
    if (p->cache && !tokens)
        return pgd_error(PGD_ERR_INVALID, "append: prefix caching needs the token ids");
    int need = paged_blocks_needed(m, base, end);
    int cow = need > pgd_kv_div_up(end, bs) - base->n_blocks;
    if (need > usable(p))
        return pgd_error(PGD_ERR_NO_BLOCKS, "append: sequence %lld needs %d blocks, %d free",
                         (long long)base->id, need, usable(p));
    PGD_TRY(pgd_kv_seq_reserve(base, pgd_kv_div_up(end, bs)));
    if (cow && p->n_copies == p->cap_copies) {
        int cap = p->cap_copies ? 2 * p->cap_copies : 16;
        pgd_kv_copy *c = realloc(p->copies, (size_t)cap * sizeof *c);
        if (!c) return pgd_error(PGD_ERR_OOM, "append: out of memory for copies");
        p->copies = c;
        p->cap_copies = cap;
    }
    if (cow) { /* the last block is shared and partial: write into a copy */
        int32_t old = base->table[base->n_blocks - 1], b = take_block(p);
        p->fill[b] = p->fill[old];
        p->tokens_stored += p->fill[b];
        p->copies[p->n_copies++] = (pgd_kv_copy){.src = old, .dst = b};
        drop_block(p, old);
        base->table[base->n_blocks - 1] = b;
    }
    for (int i = 0; i < n; i++) {
        int pos = base->num_tokens, off = pos % bs;
        if (off == 0) {
            base->table[base->n_blocks++] = take_block(p);
            p->logical++;
        }
        int32_t b = base->table[base->n_blocks - 1];
        PGD_ASSERT(pgd_block_pool_ref(p->pool, b) == 1 && p->fill[b] == off);
        p->fill[b]++;
        p->tokens_stored++;
        base->num_tokens++;
        if (!p->cache) continue;
        s->partial[off] = tokens[i];
        if (off == bs - 1) { /* block full: name it by its chained hash */
            uint64_t h = pgd_prefix_hash(s->chain, s->partial, bs, m->cfg.hash_seed);
            pgd_prefix_cache_insert(p->cache, h, s->chain, s->partial, b);
            s->chain = h;
        }
    }
    return PGD_OK;
}

static pgd_status paged_fork(pgd_kv_manager *m, const pgd_kv_seq *parent, int64_t child,
                             pgd_kv_seq **out) {
    paged *p = (paged *)m;
    const paged_seq *ps = (const paged_seq *)parent;
    paged_seq *c = new_seq(p, child, parent->max_total, parent->n_blocks);
    if (!c) return pgd_error(PGD_ERR_OOM, "fork: out of memory");
    for (int i = 0; i < parent->n_blocks; i++) {
        c->base.table[i] = parent->table[i];
        pgd_block_pool_incref(p->pool, parent->table[i]);
    }
    c->base.n_blocks = parent->n_blocks;
    p->logical += parent->n_blocks;
    c->base.num_tokens = parent->num_tokens;
    c->chain = ps->chain;
    if (p->cache) memcpy(c->partial, ps->partial, (size_t)bsz(p) * sizeof *c->partial);
    *out = &c->base;
    return PGD_OK;
}

static void paged_free_seq(pgd_kv_manager *m, pgd_kv_seq *s) {
    paged *p = (paged *)m;
    if (!s->swapped) p->logical -= s->n_blocks;
    for (int i = s->n_blocks - 1; i >= 0; i--) {
        if (s->swapped) pgd_block_pool_decref(p->host, s->table[i], 0);
        else drop_block(p, s->table[i]);
    }
    delete_seq((paged_seq *)s);
}

static int paged_take_copies(pgd_kv_manager *m, pgd_kv_copy *out, int cap) {
    paged *p = (paged *)m;
    int n = p->n_copies < cap ? p->n_copies : cap;
    if (n == 0) return 0;
    memcpy(out, p->copies, (size_t)n * sizeof *out);
    memmove(p->copies, p->copies + n, (size_t)(p->n_copies - n) * sizeof *p->copies);
    p->n_copies -= n;
    return n;
}

static pgd_status paged_swap_out(pgd_kv_manager *m, pgd_kv_seq *s, pgd_kv_copy *copies,
                                 int *n_copies) {
    paged *p = (paged *)m;
    if (p->host->num_free < s->n_blocks)
        return pgd_error(PGD_ERR_NO_BLOCKS, "swap_out: sequence %lld needs %d host blocks, %d "
                         "free", (long long)s->id, s->n_blocks, p->host->num_free);
    for (int i = s->n_blocks - 1; i >= 0; i--) {
        int32_t b = s->table[i], hb = pgd_block_pool_alloc(p->host);
        copies[i] = (pgd_kv_copy){.src = b, .dst = hb};
        drop_block(p, b); /* shared: ref-1 (a copy); private: released */
        s->table[i] = hb;
    }
    s->swapped = 1;
    p->logical -= s->n_blocks;
    *n_copies = s->n_blocks;
    return PGD_OK;
}

static pgd_status paged_swap_in(pgd_kv_manager *m, pgd_kv_seq *s, pgd_kv_copy *copies,
                                int *n_copies) {
    paged *p = (paged *)m;
    int bs = bsz(p);
    if (usable(p) < s->n_blocks)
        return pgd_error(PGD_ERR_NO_BLOCKS, "swap_in: sequence %lld needs %d blocks, %d free",
                         (long long)s->id, s->n_blocks, usable(p));
    for (int i = 0; i < s->n_blocks; i++) {
        int32_t hb = s->table[i], b = take_block(p);
        int f = s->num_tokens - i * bs;
        p->fill[b] = f < bs ? f : bs;
        p->tokens_stored += p->fill[b];
        copies[i] = (pgd_kv_copy){.src = hb, .dst = b};
        pgd_block_pool_decref(p->host, hb, 0);
        s->table[i] = b;
    }
    s->swapped = 0;
    p->logical += s->n_blocks;
    *n_copies = s->n_blocks;
    return PGD_OK;
}

static void paged_get_stats(const pgd_kv_manager *m, pgd_kv_stats *out) {
    const paged *p = (const paged *)m;
    out->num_blocks = m->cfg.num_blocks - 1;
    out->free_blocks = usable(p);
    out->used_blocks = p->pool->num_used;
    out->cached_blocks = p->pool->num_cached;
    out->tokens_stored = p->tokens_stored;
    out->slots_reserved = (int64_t)p->pool->num_used * bsz(p);
    out->prefix_queries = p->prefix_queries;
    out->prefix_hits = p->prefix_hits;
    out->host_blocks_used = p->host ? p->host->num_used : 0;
    out->logical_blocks = p->logical;
}

/* ---- invariants ---- */

static pgd_status check_seqs(const paged *p, int32_t *refs, int32_t *host_refs, int32_t *fill) {
    const pgd_kv_manager *m = &p->base;
    int bs = bsz(p), nb = m->cfg.num_blocks, nh = m->cfg.num_host_blocks;
    for (size_t k = 0; k < m->seq_cap; k++) {
        const paged_seq *s = (const paged_seq *)m->seqs[k];
        if (!s) continue;
        long long id = (long long)s->base.id;
        if (s->base.n_blocks != pgd_kv_div_up(s->base.num_tokens, bs))
            return pgd_error(PGD_ERR_INVALID, "paged check: sequence %lld has %d blocks for %d "
                             "tokens", id, s->base.n_blocks, s->base.num_tokens);
        for (int i = 0; i < s->base.n_blocks; i++) {
            int32_t b = s->base.table[i];
            int f = s->base.num_tokens - i * bs < bs ? s->base.num_tokens - i * bs : bs;
            if (s->base.swapped) {
                if (b < 0 || b >= nh || host_refs[b]++)
                    return pgd_error(PGD_ERR_INVALID, "paged check: sequence %lld host block "
                                     "%d bad or shared", id, b);
                continue;
            }
            if (b < 1 || b >= nb)
                return pgd_error(PGD_ERR_INVALID, "paged check: sequence %lld names block %d",
                                 id, b);
            if (refs[b]++ && fill[b] != f)
                return pgd_error(PGD_ERR_INVALID, "paged check: block %d shared with fill %d "
                                 "and %d", b, fill[b], f);
            fill[b] = f;
        }
        if (p->cache && !s->base.swapped && s->base.num_tokens >= bs) {
            /* a registered last full block was registered under the chain */
            int32_t b = s->base.table[s->base.num_tokens / bs - 1];
            if (pgd_prefix_cache_has(p->cache, b) &&
                pgd_prefix_cache_hash_of(p->cache, b) != s->chain)
                return pgd_error(PGD_ERR_INVALID, "paged check: sequence %lld chain hash "
                                 "differs from its last full block %d", id, b);
        }
    }
    return PGD_OK;
}

static pgd_status paged_check(const pgd_kv_manager *m) {
    const paged *p = (const paged *)m;
    int nb = m->cfg.num_blocks, nh = m->cfg.num_host_blocks, bs = bsz(p);
    int32_t *refs = calloc((size_t)nb, sizeof *refs), *fill = calloc((size_t)nb, sizeof *fill);
    int32_t *host_refs = calloc((size_t)nh + 1, sizeof *host_refs);
    pgd_status st = PGD_OK;
    if (!refs || !fill || !host_refs) {
        st = pgd_error(PGD_ERR_OOM, "paged check: out of memory");
        goto done;
    }
    if ((st = check_seqs(p, refs, host_refs, fill)) != PGD_OK) goto done;
    if ((st = pgd_block_pool_check(p->pool, refs, "device pool")) != PGD_OK) goto done;
    if (p->host && (st = pgd_block_pool_check(p->host, host_refs, "host pool")) != PGD_OK)
        goto done;
    int64_t tokens = 0;
    for (int32_t b = 1; b < nb; b++) {
        int state = p->pool->state[b], reg = p->cache && pgd_prefix_cache_has(p->cache, b);
        if (state == PGD_BLOCK_USED) {
            tokens += p->fill[b];
            if (p->fill[b] != fill[b]) {
                st = pgd_error(PGD_ERR_INVALID, "paged check: block %d fill %d, tables say %d",
                               b, p->fill[b], fill[b]);
                goto done;
            }
        }
        if ((state == PGD_BLOCK_CACHED) != (reg && state != PGD_BLOCK_USED) ||
            (reg && p->fill[b] != bs)) {
            st = pgd_error(PGD_ERR_INVALID, "paged check: block %d state %d, registered %d, "
                           "fill %d", b, state, reg, p->fill[b]);
            goto done;
        }
    }
    if (tokens != p->tokens_stored) {
        st = pgd_error(PGD_ERR_INVALID, "paged check: tokens_stored %lld, blocks hold %lld",
                       (long long)p->tokens_stored, (long long)tokens);
        goto done;
    }
    if (p->cache && (st = pgd_prefix_cache_check(p->cache)) != PGD_OK) goto done;
    if (p->prefix_hits > p->prefix_queries || p->n_copies > p->cap_copies) {
        st = pgd_error(PGD_ERR_INVALID, "paged check: hits %lld > queries %lld",
                       (long long)p->prefix_hits, (long long)p->prefix_queries);
        goto done;
    }
    for (int i = 0; i < p->n_copies; i++)
        if (p->copies[i].src < 1 || p->copies[i].src >= nb || p->copies[i].dst < 1 ||
            p->copies[i].dst >= nb || p->copies[i].src == p->copies[i].dst) {
            st = pgd_error(PGD_ERR_INVALID, "paged check: bad pending copy %d -> %d",
                           p->copies[i].src, p->copies[i].dst);
            goto done;
        }
done:
    free(refs);
    free(fill);
    free(host_refs);
    return st;
}

const struct pgd_kv_ops pgd_kv_paged = {
    .name = "paged",
    .create = paged_create,
    .destroy = paged_destroy,
    .add_seq = paged_add_seq,
    .blocks_needed = paged_blocks_needed,
    .free_blocks = paged_free_blocks,
    .append = paged_append,
    .fork = paged_fork,
    .free_seq = paged_free_seq,
    .take_copies = paged_take_copies,
    .swap_out = paged_swap_out,
    .swap_in = paged_swap_in,
    .get_stats = paged_get_stats,
    .check = paged_check,
    .cached_prefix = paged_cached_prefix,
};
