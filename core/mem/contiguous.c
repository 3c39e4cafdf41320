/* contiguous.c - the contiguous-reservation baselines of the vLLM paper:
 * "orca-max" and "static" reserve max_seq_len tokens per sequence, "orca-pow2"
 * the prompt plus its true output length rounded up to a power of two
 * (the paper's "over-reserves by at most 2x"), "orca-oracle" exactly its true
 * total length; all capped at max_seq_len. The reservation is made once, at
 * add_seq, as one contiguous run of blocks; appends only fill it.
 *
 * Runs come from a binary buddy allocator over the usable block ids
 * 1..num_blocks-1 (offset o = id - 1). A run of n blocks takes a free
 * chunk of 2^ceil(log2 n) blocks and gives the unused tail back as aligned
 * chunks (like Linux's alloc_pages_exact), so a reservation costs exactly
 * its own size, but placement is buddy-constrained and external
 * fragmentation is real: a run needs one free aligned chunk of the rounded
 * size, and the longest run possible is the largest power of two <= the
 * number of usable blocks.
 *
 * Buddy invariants (checked): every free chunk (o, k) has o % 2^k == 0,
 * o + 2^k <= n, sits on list k with head_order[o] == k, and its buddy
 * o ^ 2^k is not a free chunk of order k (free chunks are fully merged);
 * free chunks and reserved runs tile 0..n-1 exactly.
 *
 * Swap is supported: swap_out copies the blocks that hold tokens to host
 * blocks and releases the whole run; swap_in reserves a run of the same
 * size again (PGD_ERR_NO_BLOCKS if none fits now) and copies back. Fork is
 * unsupported (no block sharing). */
#include <stdlib.h>
#include <string.h>

#include "block_pool.h"
#include "kv_manager_impl.h"

#define MAX_ORDER 31

typedef struct buddy {
    int32_t n;          /* usable blocks (offsets 0..n-1) */
    int top;            /* largest order with 2^top <= n */
    int8_t *head_order; /* (n) order of the free chunk starting here, or -1 */
    int32_t *next, *prev; /* (n) free-list links of chunk heads, -1 = end */
    int32_t head[MAX_ORDER + 1];
    int32_t num_free;
} buddy;

typedef struct contig_seq {
    pgd_kv_seq base;
    int32_t start; /* offset of the run, -1 while swapped */
    int32_t run;   /* reserved blocks */
    int limit;     /* tokens it may hold: min(reservation, max_total) */
} contig_seq;

typedef struct contiguous {
    pgd_kv_manager base;
    buddy bd;
    pgd_block_pool *host;
    int32_t reserved_blocks;
    int64_t tokens_stored;
} contiguous;

/* ops->param: how much a sequence reserves (see reservation()) */
enum { RESERVE_MAX, RESERVE_POW2, RESERVE_ORACLE };

/* ---- buddy allocator ---- */

static int ceil_log2(int64_t x) {
    int k = 0;
    while (((int64_t)1 << k) < x) k++;
    return k;
}

static void list_push(buddy *bd, int32_t o, int k) {
    bd->head_order[o] = (int8_t)k;
    bd->prev[o] = -1;
    bd->next[o] = bd->head[k];
    if (bd->head[k] >= 0) bd->prev[bd->head[k]] = o;
    bd->head[k] = o;
}

static void list_remove(buddy *bd, int32_t o) {
    int k = bd->head_order[o];
    if (bd->prev[o] >= 0) bd->next[bd->prev[o]] = bd->next[o];
    else bd->head[k] = bd->next[o];
    if (bd->next[o] >= 0) bd->prev[bd->next[o]] = bd->prev[o];
    bd->head_order[o] = -1;
}

/* Free the aligned chunk (o, k), merging with free buddies. */
static void free_chunk(buddy *bd, int32_t o, int k) {
    bd->num_free += (int32_t)1 << k;
    while (k < bd->top) {
        int32_t b = o ^ ((int32_t)1 << k);
        if (b + ((int32_t)1 << k) > bd->n || bd->head_order[b] != k) break;
        list_remove(bd, b);
        if (b < o) o = b;
        k++;
    }
    list_push(bd, o, k);
}

/* Free [o, o+len) as maximal aligned chunks. */
static void free_range(buddy *bd, int32_t o, int32_t len) {
    int32_t end = o + len;
    while (o < end) {
        int k = 0;
        while (k < bd->top && o % ((int32_t)1 << (k + 1)) == 0 &&
               o + ((int32_t)1 << (k + 1)) <= end)
            k++;
        free_chunk(bd, o, k);
        o += (int32_t)1 << k;
    }
}

/* Offset of a free run of exactly len blocks, or -1. O(log n). */
static int32_t alloc_run(buddy *bd, int32_t len) {
    int k = ceil_log2(len), j = k;
    while (j <= bd->top && bd->head[j] < 0) j++;
    if (j > bd->top) return -1;
    int32_t o = bd->head[j];
    list_remove(bd, o);
    bd->num_free -= (int32_t)1 << j;
    while (j > k) { /* split: the upper halves stay free */
        j--;
        list_push(bd, o + ((int32_t)1 << j), j);
        bd->num_free += (int32_t)1 << j;
    }
    free_range(bd, o + len, ((int32_t)1 << k) - len); /* the tail beyond len */
    return o;
}

static pgd_status buddy_init(buddy *bd, int32_t n) {
    bd->n = n;
    bd->top = 0;
    while (bd->top < MAX_ORDER - 1 && ((int32_t)1 << (bd->top + 1)) <= n) bd->top++;
    for (int k = 0; k <= MAX_ORDER; k++) bd->head[k] = -1;
    bd->head_order = malloc((size_t)n);
    bd->next = malloc((size_t)n * sizeof *bd->next);
    bd->prev = malloc((size_t)n * sizeof *bd->prev);
    if (!bd->head_order || !bd->next || !bd->prev)
        return pgd_error(PGD_ERR_OOM, "buddy allocator: out of memory for %d blocks", n);
    memset(bd->head_order, 0xff, (size_t)n);
    bd->num_free = 0;
    free_range(bd, 0, n);
    return PGD_OK;
}

static pgd_status buddy_check(const buddy *bd, uint8_t *mark) {
    int32_t total = 0;
    for (int k = 0; k <= bd->top; k++) {
        int32_t prev = -1, size = (int32_t)1 << k;
        for (int32_t o = bd->head[k]; o >= 0; prev = o, o = bd->next[o]) {
            if (o >= bd->n || o % size || o + size > bd->n || bd->head_order[o] != k ||
                bd->prev[o] != prev || total > bd->n)
                return pgd_error(PGD_ERR_INVALID, "buddy: bad free chunk at %d order %d", o, k);
            int32_t b = o ^ size;
            if (k < bd->top && b + size <= bd->n && bd->head_order[b] == k)
                return pgd_error(PGD_ERR_INVALID, "buddy: chunks %d and %d of order %d not "
                                 "merged", o, b, k);
            for (int32_t i = o; i < o + size; i++)
                if (mark[i]++)
                    return pgd_error(PGD_ERR_INVALID, "buddy: block %d free twice", i + 1);
            total += size;
        }
    }
    if (total != bd->num_free)
        return pgd_error(PGD_ERR_INVALID, "buddy: %d blocks on lists, count says %d", total,
                         bd->num_free);
    return PGD_OK;
}

/* ---- manager ---- */

static pgd_status contig_create(const struct pgd_kv_ops *ops, const pgd_kv_manager_config *cfg, pgd_kv_manager **out) {
    contiguous *c = calloc(1, sizeof *c);
    if (!c) return pgd_error(PGD_ERR_OOM, "contiguous KV manager: out of memory");
    c->base.ops = ops;
    c->base.cfg = *cfg;
    pgd_status st = buddy_init(&c->bd, cfg->num_blocks - 1);
    if (st == PGD_OK && cfg->num_host_blocks > 0)
        st = pgd_block_pool_create(cfg->num_host_blocks, 0, &c->host);
    if (st != PGD_OK) {
        c->base.ops->destroy(&c->base);
        return st;
    }
    *out = &c->base;
    return PGD_OK;
}

static void contig_destroy(pgd_kv_manager *m) {
    contiguous *c = (contiguous *)m;
    free(c->bd.head_order);
    free(c->bd.next);
    free(c->bd.prev);
    pgd_block_pool_destroy(c->host);
    free(c);
}

/* Tokens to reserve for a sequence (see the file comment). */
static int reservation(const pgd_kv_manager *m, int n_prompt, int max_total, int true_total) {
    int ctx = m->cfg.max_seq_len, total = true_total > 0 ? true_total : max_total;
    int out = total - n_prompt;
    int64_t r = ctx; /* RESERVE_MAX: orca-max, static */
    if (m->ops->param == RESERVE_POW2) r = n_prompt + (out > 0 ? (int64_t)1 << ceil_log2(out) : 0);
    if (m->ops->param == RESERVE_ORACLE) r = total;
    return (int)(r < ctx ? r : ctx);
}

static void fill_table(contig_seq *s) {
    for (int32_t i = 0; i < s->run; i++) s->base.table[i] = s->start + 1 + i;
}

static pgd_status contig_add_seq(pgd_kv_manager *m, int64_t id, const int32_t *prompt,
                                 int n_prompt, int max_total, int true_total, pgd_kv_seq **out,
                                 int *num_cached) {
    contiguous *c = (contiguous *)m;
    int bs = m->cfg.block_size, tokens = reservation(m, n_prompt, max_total, true_total);
    int32_t run = pgd_kv_div_up(tokens, bs);
    (void)prompt;
    if (run < 1) run = 1;
    if (ceil_log2(run) > c->bd.top)
        return pgd_error(PGD_ERR_INVALID,
                         "add_seq: sequence %lld reserves %d tokens = %d contiguous blocks of "
                         "%d; the buddy allocator's longest run is %d blocks", (long long)id,
                         tokens, run, bs, (int32_t)1 << c->bd.top);
    contig_seq *s = calloc(1, sizeof *s);
    if (!s || pgd_kv_seq_reserve(&s->base, run) != PGD_OK) {
        free(s);
        return pgd_error(PGD_ERR_OOM, "add_seq: out of memory");
    }
    s->start = alloc_run(&c->bd, run);
    if (s->start < 0) {
        free(s->base.table);
        free(s);
        return pgd_error(PGD_ERR_NO_BLOCKS, "add_seq: no free run of %d blocks (%d blocks free "
                         "in total)", run, c->bd.num_free);
    }
    s->base.id = id;
    s->base.max_total = max_total;
    s->run = run;
    s->limit = tokens < max_total ? tokens : max_total;
    fill_table(s);
    c->reserved_blocks += run;
    *num_cached = 0;
    *out = &s->base;
    return PGD_OK;
}

static int contig_blocks_needed(const pgd_kv_manager *m, const pgd_kv_seq *base, int total) {
    const contig_seq *s = (const contig_seq *)base;
    (void)m;
    if (total > s->limit) return -1;
    return s->base.swapped ? s->run : 0;
}

static int contig_free_blocks(const pgd_kv_manager *m) { return ((const contiguous *)m)->bd.num_free; }

static pgd_status contig_append(pgd_kv_manager *m, pgd_kv_seq *base, const int32_t *tokens,
                                int n) {
    contiguous *c = (contiguous *)m;
    contig_seq *s = (contig_seq *)base;
    (void)tokens;
    if (base->num_tokens + n > s->limit)
        return pgd_error(PGD_ERR_INVALID, "append: sequence %lld exceeds its reservation (%d "
                         "tokens held + %d > %d reserved)", (long long)base->id,
                         base->num_tokens, n, s->limit);
    base->num_tokens += n;
    base->n_blocks = pgd_kv_div_up(base->num_tokens, m->cfg.block_size);
    c->tokens_stored += n;
    return PGD_OK;
}

static void contig_free_seq(pgd_kv_manager *m, pgd_kv_seq *base) {
    contiguous *c = (contiguous *)m;
    contig_seq *s = (contig_seq *)base;
    if (base->swapped) {
        for (int i = 0; i < base->n_blocks; i++) pgd_block_pool_decref(c->host, base->table[i], 0);
    } else {
        free_range(&c->bd, s->start, s->run);
        c->reserved_blocks -= s->run;
        c->tokens_stored -= base->num_tokens;
    }
    free(base->table);
    free(s);
}

static pgd_status contig_swap_out(pgd_kv_manager *m, pgd_kv_seq *base, pgd_kv_copy *copies,
                                  int *n_copies) {
    contiguous *c = (contiguous *)m;
    contig_seq *s = (contig_seq *)base;
    if (c->host->num_free < base->n_blocks)
        return pgd_error(PGD_ERR_NO_BLOCKS, "swap_out: sequence %lld needs %d host blocks, %d "
                         "free", (long long)base->id, base->n_blocks, c->host->num_free);
    for (int i = 0; i < base->n_blocks; i++) {
        int32_t hb = pgd_block_pool_alloc(c->host);
        copies[i] = (pgd_kv_copy){.src = base->table[i], .dst = hb};
        base->table[i] = hb;
    }
    free_range(&c->bd, s->start, s->run);
    c->reserved_blocks -= s->run;
    c->tokens_stored -= base->num_tokens;
    s->start = -1;
    base->swapped = 1;
    *n_copies = base->n_blocks;
    return PGD_OK;
}

static pgd_status contig_swap_in(pgd_kv_manager *m, pgd_kv_seq *base, pgd_kv_copy *copies,
                                 int *n_copies) {
    contiguous *c = (contiguous *)m;
    contig_seq *s = (contig_seq *)base;
    int32_t start = alloc_run(&c->bd, s->run);
    if (start < 0)
        return pgd_error(PGD_ERR_NO_BLOCKS, "swap_in: no free run of %d blocks (%d free in "
                         "total)", s->run, c->bd.num_free);
    s->start = start;
    for (int i = 0; i < base->n_blocks; i++) {
        copies[i] = (pgd_kv_copy){.src = base->table[i], .dst = start + 1 + i};
        pgd_block_pool_decref(c->host, base->table[i], 0);
    }
    fill_table(s);
    c->reserved_blocks += s->run;
    c->tokens_stored += base->num_tokens;
    base->swapped = 0;
    *n_copies = base->n_blocks;
    return PGD_OK;
}

static void contig_get_stats(const pgd_kv_manager *m, pgd_kv_stats *out) {
    const contiguous *c = (const contiguous *)m;
    out->num_blocks = c->bd.n;
    out->free_blocks = c->bd.num_free;
    out->used_blocks = c->reserved_blocks;
    out->tokens_stored = c->tokens_stored;
    out->slots_reserved = (int64_t)c->reserved_blocks * m->cfg.block_size;
    out->host_blocks_used = c->host ? c->host->num_used : 0;
}

static pgd_status contig_check(const pgd_kv_manager *m) {
    const contiguous *c = (const contiguous *)m;
    int nh = m->cfg.num_host_blocks;
    uint8_t *mark = calloc((size_t)c->bd.n + 1, 1);
    int32_t *host_refs = calloc((size_t)nh + 1, sizeof *host_refs);
    pgd_status st = PGD_OK;
    int64_t tokens = 0, reserved = 0;
    if (!mark || !host_refs) {
        st = pgd_error(PGD_ERR_OOM, "contiguous check: out of memory");
        goto done;
    }
    if ((st = buddy_check(&c->bd, mark)) != PGD_OK) goto done;
    for (size_t k = 0; k < m->seq_cap; k++) {
        const contig_seq *s = (const contig_seq *)m->seqs[k];
        if (!s) continue;
        const pgd_kv_seq *b = &s->base;
        if (b->num_tokens > s->limit || s->limit > s->run * m->cfg.block_size || b->cap < s->run ||
            b->swapped != (s->start < 0)) {
            st = pgd_error(PGD_ERR_INVALID, "contiguous check: sequence %lld: %d tokens, limit "
                           "%d, run %d", (long long)b->id, b->num_tokens, s->limit, s->run);
            goto done;
        }
        for (int i = 0; b->swapped && i < b->n_blocks; i++)
            if (b->table[i] < 0 || b->table[i] >= nh || host_refs[b->table[i]]++) {
                st = pgd_error(PGD_ERR_INVALID, "contiguous check: host block %d bad or shared",
                               b->table[i]);
                goto done;
            }
        if (b->swapped) continue;
        for (int32_t i = 0; i < s->run; i++)
            if (s->start + i >= c->bd.n || b->table[i] != s->start + 1 + i ||
                mark[s->start + i]++) {
                st = pgd_error(PGD_ERR_INVALID, "contiguous check: sequence %lld run at %d "
                               "overlaps or leaves the pool", (long long)b->id, s->start + 1);
                goto done;
            }
        tokens += b->num_tokens;
        reserved += s->run;
    }
    for (int32_t i = 0; i < c->bd.n; i++)
        if (mark[i] != 1) {
            st = pgd_error(PGD_ERR_INVALID, "contiguous check: block %d neither free nor "
                           "reserved", i + 1);
            goto done;
        }
    if (tokens != c->tokens_stored || reserved != c->reserved_blocks) {
        st = pgd_error(PGD_ERR_INVALID, "contiguous check: counts tokens %lld/%lld blocks "
                       "%lld/%d", (long long)tokens, (long long)c->tokens_stored,
                       (long long)reserved, c->reserved_blocks);
        goto done;
    }
    if (c->host) st = pgd_block_pool_check(c->host, host_refs, "host pool");
done:
    free(mark);
    free(host_refs);
    return st;
}

#define CONTIG_OPS(var, kname, rule, is_static) \
    const struct pgd_kv_ops var = {             \
        .name = kname,                          \
        .create = contig_create,                \
        .param = rule,                          \
        .reserves_at_admission = 1,             \
        .static_batch = is_static,              \
        .destroy = contig_destroy,              \
        .add_seq = contig_add_seq,              \
        .blocks_needed = contig_blocks_needed,  \
        .free_blocks = contig_free_blocks,      \
        .append = contig_append,                \
        .fork = NULL,                           \
        .free_seq = contig_free_seq,            \
        .take_copies = NULL,                    \
        .swap_out = contig_swap_out,            \
        .swap_in = contig_swap_in,              \
        .get_stats = contig_get_stats,          \
        .check = contig_check,                  \
    }
CONTIG_OPS(pgd_kv_orca_max, "orca-max", RESERVE_MAX, 0);
CONTIG_OPS(pgd_kv_orca_pow2, "orca-pow2", RESERVE_POW2, 0);
CONTIG_OPS(pgd_kv_orca_oracle, "orca-oracle", RESERVE_ORACLE, 0);
CONTIG_OPS(pgd_kv_static, "static", RESERVE_MAX, 1);
