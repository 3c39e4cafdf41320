/* kv_manager.c - the public KV-manager functions: config validation, the
 * registry of kinds, the map from sequence ids to states, argument checks,
 * and dispatch through the kind's ops table. This is the only file that
 * calls through pgd_kv_ops.
 *
 * Invariant of the sequence map (checked by pgd_kv_check): an open-
 * addressing table of power-of-two capacity, at most half full, every
 * state reachable by linear probing from the home slot of its id. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/suggest.h"

#include "kv_manager_impl.h"

#define DEFAULT_HASH_SEED 0x5041474f44414b56ull /* "PAGODAKV" */

/* The KV managers compiled in: one line each (a kind's ops table is
 * `const struct pgd_kv_ops pgd_kv_<name>` in its own file). */
extern const struct pgd_kv_ops pgd_kv_paged, pgd_kv_orca_max, pgd_kv_orca_pow2, pgd_kv_orca_oracle, pgd_kv_static;

static const struct pgd_kv_ops *const registry[] = {
    &pgd_kv_paged, /* first: the default */
    &pgd_kv_orca_max, &pgd_kv_orca_pow2, &pgd_kv_orca_oracle, &pgd_kv_static,
};
#define NUM_KINDS ((int)(sizeof registry / sizeof registry[0]))

static const struct pgd_kv_ops *find_kind(const char *name) {
    if (!name) return registry[0];
    for (int i = 0; i < NUM_KINDS; i++)
        if (!strcmp(registry[i]->name, name)) return registry[i];
    return NULL;
}

static pgd_kv_caps caps_of(const struct pgd_kv_ops *o) {
    return (o->fork ? PGD_KV_CAN_FORK : 0u) | (o->cached_prefix ? PGD_KV_CAN_CACHE_PREFIX : 0u) |
           (o->swap_out && o->swap_in ? PGD_KV_CAN_SWAP : 0u) |
           (o->reserves_at_admission ? PGD_KV_RESERVES_AT_ADMISSION : 0u) |
           (o->static_batch ? PGD_KV_STATIC_BATCH : 0u);
}

const char *const *pgd_kv_manager_names(void) {
    static const char *names[NUM_KINDS + 1];
    for (int i = 0; i < NUM_KINDS; i++) names[i] = registry[i]->name; /* idempotent: same values every call */
    names[NUM_KINDS] = NULL;
    return names;
}

pgd_status pgd_kv_manager_find(const char *name, pgd_kv_caps *caps) {
    const struct pgd_kv_ops *o = find_kind(name);
    if (o) {
        if (caps) *caps = caps_of(o);
        return PGD_OK;
    }
    char all[256], hint[96] = "";
    const char *best = pgd_suggest(name, pgd_kv_manager_names(), (size_t)-1);
    if (best) snprintf(hint, sizeof hint, " (did you mean '%s'?)", best);
    return pgd_error(PGD_ERR_INVALID, "unknown KV manager '%s'%s (choices: %s)", name, hint,
                     pgd_names_join(pgd_kv_manager_names(), ", ", all, sizeof all));
}

const char *pgd_kv_manager_names_with(pgd_kv_caps caps, const char *sep, char *buf, size_t n) {
    const char *names[NUM_KINDS + 1];
    int k = 0;
    for (int i = 0; i < NUM_KINDS; i++)
        if ((caps_of(registry[i]) & caps) == caps) names[k++] = registry[i]->name;
    names[k] = NULL;
    return pgd_names_join(names, sep, buf, n);
}

/* ---- sequence map ---- */

static size_t home_slot(const pgd_kv_manager *m, int64_t id) {
    uint64_t x = (uint64_t)id;
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return (size_t)x & (m->seq_cap - 1);
}

static size_t find_slot(const pgd_kv_manager *m, int64_t id) {
    size_t i = home_slot(m, id);
    while (m->seqs[i] && m->seqs[i]->id != id) i = (i + 1) & (m->seq_cap - 1);
    return i;
}

static pgd_kv_seq *lookup(const pgd_kv_manager *m, int64_t id) {
    return m->seqs[find_slot(m, id)];
}

/* Make room for one more entry, so that the insert after an op can't fail. */
static pgd_status map_reserve(pgd_kv_manager *m) {
    if ((m->num_seqs + 1) * 2 <= m->seq_cap) return PGD_OK;
    size_t old_cap = m->seq_cap, cap = old_cap ? old_cap * 2 : 16;
    pgd_kv_seq **old = m->seqs, **seqs = calloc(cap, sizeof *seqs);
    if (!seqs) return pgd_error(PGD_ERR_OOM, "KV manager: out of memory for %zu sequences", cap);
    m->seqs = seqs;
    m->seq_cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i]) m->seqs[find_slot(m, old[i]->id)] = old[i];
    free(old);
    return PGD_OK;
}

static void map_insert(pgd_kv_manager *m, pgd_kv_seq *s) {
    size_t i = find_slot(m, s->id);
    PGD_ASSERT(!m->seqs[i] && (m->num_seqs + 1) * 2 <= m->seq_cap);
    m->seqs[i] = s;
    m->num_seqs++;
}

static void map_remove(pgd_kv_manager *m, int64_t id) {
    size_t mask = m->seq_cap - 1, hole = find_slot(m, id), j = hole;
    PGD_ASSERT(m->seqs[hole]);
    for (;;) { /* backward-shift deletion */
        j = (j + 1) & mask;
        if (!m->seqs[j]) break;
        size_t h = home_slot(m, m->seqs[j]->id);
        int stays = hole <= j ? (h > hole && h <= j) : (h > hole || h <= j);
        if (stays) continue;
        m->seqs[hole] = m->seqs[j];
        hole = j;
    }
    m->seqs[hole] = NULL;
    m->num_seqs--;
}

pgd_status pgd_kv_seq_reserve(pgd_kv_seq *s, int n) {
    if (n <= s->cap) return PGD_OK;
    int cap = s->cap ? s->cap : 4;
    while (cap < n) cap = cap > INT_MAX / 2 ? n : cap * 2;
    int32_t *t = realloc(s->table, (size_t)cap * sizeof *t);
    if (!t) return pgd_error(PGD_ERR_OOM, "KV manager: out of memory for a %d-block table", cap);
    s->table = t;
    s->cap = cap;
    return PGD_OK;
}

/* ---- lifecycle ---- */

pgd_status pgd_kv_manager_create(const pgd_kv_manager_config *cfg, pgd_kv_manager **out) {
    static const pgd_kv_manager_config defaults = {0};
    if (!out) return pgd_error(PGD_ERR_INVALID, "pgd_kv_manager_create: out is NULL");
    *out = NULL;
    pgd_kv_manager_config c = cfg ? *cfg : defaults;
    const struct pgd_kv_ops *kind = find_kind(c.name);
    if (!kind) return pgd_kv_manager_find(c.name, NULL);
    c.name = kind->name; /* static storage, not the caller's string */
    if (c.block_size == 0) c.block_size = 16;
    if (c.block_size < 1 || c.block_size > 4096)
        return pgd_error(PGD_ERR_INVALID, "KV manager: block_size %d not in 1..4096",
                         c.block_size);
    if (c.num_blocks < 2)
        return pgd_error(PGD_ERR_INVALID,
                         "KV manager: num_blocks %d (need >= 2: block 0 is the null block)",
                         c.num_blocks);
    if ((int64_t)c.num_blocks * c.block_size > INT32_MAX)
        return pgd_error(PGD_ERR_INVALID, "KV manager: %d blocks of %d tokens overflow int32",
                         c.num_blocks, c.block_size);
    if (c.num_host_blocks < 0)
        return pgd_error(PGD_ERR_INVALID, "KV manager: num_host_blocks %d < 0",
                         c.num_host_blocks);
    if (c.max_seq_len < 0)
        return pgd_error(PGD_ERR_INVALID, "KV manager: max_seq_len %d < 0", c.max_seq_len);
    if (kind->reserves_at_admission && c.max_seq_len == 0)
        return pgd_error(PGD_ERR_INVALID, "KV manager '%s' needs max_seq_len (> 0)", kind->name);
    if (!kind->cached_prefix && c.prefix_caching) {
        char with[128];
        return pgd_error(PGD_ERR_INVALID, "KV manager '%s' cannot cache prefixes: prefix_caching needs %s", kind->name,
                         pgd_kv_manager_names_with(PGD_KV_CAN_CACHE_PREFIX, " or ", with, sizeof with));
    }
    if (c.hash_seed == 0) c.hash_seed = DEFAULT_HASH_SEED;
    pgd_kv_manager *m = NULL;
    PGD_TRY(kind->create(kind, &c, &m));
    m->cfg = c;
    pgd_status st = map_reserve(m);
    if (st != PGD_OK) {
        m->ops->destroy(m);
        return st;
    }
    *out = m;
    return PGD_OK;
}

void pgd_kv_manager_destroy(pgd_kv_manager *m) {
    if (!m) return;
    for (size_t i = 0; i < m->seq_cap; i++)
        if (m->seqs[i]) m->ops->free_seq(m, m->seqs[i]);
    free(m->seqs);
    m->seqs = NULL;
    m->ops->destroy(m);
}

int pgd_kv_manager_block_size(const pgd_kv_manager *m) { return m ? m->cfg.block_size : 0; }
const char *pgd_kv_manager_name(const pgd_kv_manager *m) { return m ? m->ops->name : registry[0]->name; }
pgd_kv_caps pgd_kv_manager_caps(const pgd_kv_manager *m) { return m ? caps_of(m->ops) : 0; }

/* ---- sequences ---- */

#define CHECK_M(fn) \
    if (!m) return pgd_error(PGD_ERR_INVALID, fn ": manager is NULL")

/* The sequence `id`, or NULL with an error recorded. */
static pgd_kv_seq *get_seq(const pgd_kv_manager *m, int64_t id, const char *fn) {
    pgd_kv_seq *s = id >= 0 ? lookup(m, id) : NULL;
    if (!s) pgd_error(PGD_ERR_INVALID, "%s: unknown sequence %lld", fn, (long long)id);
    return s;
}

pgd_status pgd_kv_add_seq(pgd_kv_manager *m, int64_t seq, const int32_t *prompt, int n_prompt,
                          int max_total_len, int true_total_len, int *num_cached_tokens) {
    CHECK_M("add_seq");
    if (num_cached_tokens) *num_cached_tokens = 0;
    if (seq < 0) return pgd_error(PGD_ERR_INVALID, "add_seq: sequence id %lld < 0", (long long)seq);
    if (lookup(m, seq))
        return pgd_error(PGD_ERR_INVALID, "add_seq: sequence %lld already exists", (long long)seq);
    if (n_prompt < 0 || (n_prompt > 0 && !prompt))
        return pgd_error(PGD_ERR_INVALID, "add_seq: bad prompt (%d tokens%s)", n_prompt,
                         prompt ? "" : ", NULL");
    int ctx = m->cfg.max_seq_len;
    int max_total = max_total_len > 0 ? max_total_len : ctx > 0 ? ctx : INT32_MAX;
    if (ctx > 0 && max_total > ctx)
        return pgd_error(PGD_ERR_INVALID,
                         "add_seq: sequence %lld max_total_len %d exceeds max_seq_len %d",
                         (long long)seq, max_total, ctx);
    if (n_prompt > max_total)
        return pgd_error(PGD_ERR_INVALID,
                         "add_seq: sequence %lld prompt of %d tokens exceeds max_total_len %d",
                         (long long)seq, n_prompt, max_total);
    if (true_total_len > 0 && (true_total_len < n_prompt || true_total_len > max_total))
        return pgd_error(PGD_ERR_INVALID,
                         "add_seq: sequence %lld true_total_len %d not in [%d, %d]",
                         (long long)seq, true_total_len, n_prompt, max_total);
    PGD_TRY(map_reserve(m));
    pgd_kv_seq *s = NULL;
    int cached = 0;
    PGD_TRY(m->ops->add_seq(m, seq, prompt, n_prompt, max_total,
                            true_total_len > 0 ? true_total_len : 0, &s, &cached));
    PGD_ASSERT(s && s->id == seq && cached >= 0 && (cached < n_prompt || cached == 0));
    map_insert(m, s);
    if (num_cached_tokens) *num_cached_tokens = cached;
    return PGD_OK;
}

int pgd_kv_blocks_needed(const pgd_kv_manager *m, int64_t seq, int total_tokens) {
    if (!m) return -1;
    const pgd_kv_seq *s = seq >= 0 ? lookup(m, seq) : NULL;
    if (!s || total_tokens > s->max_total) return -1;
    return m->ops->blocks_needed(m, s, total_tokens);
}

int pgd_kv_free_blocks(const pgd_kv_manager *m) { return m ? m->ops->free_blocks(m) : 0; }

int pgd_kv_group_blocks(const pgd_kv_manager *m, int held, int shared, const int *lens, int n) {
    if (!m || n < 0 || (n > 0 && !lens) || held < 0 || shared < held) return -1;
    int bs = m->cfg.block_size, need = shared / bs - held / bs;
    for (int i = 0; i < n; i++)
        if (lens[i] > shared) need += pgd_kv_div_up(lens[i], bs) - shared / bs;
    return need;
}

int pgd_kv_swap_in_blocks(const pgd_kv_manager *m, int tokens) {
    return m && tokens >= 0 ? tokens / m->cfg.block_size + 2 : -1;
}

int pgd_kv_cached_prefix(const pgd_kv_manager *m, const int32_t *prompt, int n_prompt) {
    if (!m || !prompt || n_prompt <= 0 || !m->ops->cached_prefix) return 0;
    return m->ops->cached_prefix(m, prompt, n_prompt);
}

pgd_status pgd_kv_append(pgd_kv_manager *m, int64_t seq, const int32_t *tokens, int n) {
    CHECK_M("append");
    pgd_kv_seq *s = get_seq(m, seq, "append");
    if (!s) return PGD_ERR_INVALID;
    if (n < 0) return pgd_error(PGD_ERR_INVALID, "append: n = %d < 0", n);
    if (s->swapped)
        return pgd_error(PGD_ERR_INVALID, "append: sequence %lld is swapped out", (long long)seq);
    if ((int64_t)s->num_tokens + n > s->max_total)
        return pgd_error(PGD_ERR_INVALID,
                         "append: sequence %lld would hold %lld tokens, over its max_total_len %d",
                         (long long)seq, (long long)s->num_tokens + n, s->max_total);
    if (n == 0) return PGD_OK;
    return m->ops->append(m, s, tokens, n);
}

int pgd_kv_num_tokens(const pgd_kv_manager *m, int64_t seq) {
    const pgd_kv_seq *s = m && seq >= 0 ? lookup(m, seq) : NULL;
    return s ? s->num_tokens : -1;
}

pgd_status pgd_kv_block_table(const pgd_kv_manager *m, int64_t seq, const int32_t **table,
                              int *n_blocks) {
    CHECK_M("block_table");
    if (!table || !n_blocks) return pgd_error(PGD_ERR_INVALID, "block_table: NULL output");
    *table = NULL;
    *n_blocks = 0;
    const pgd_kv_seq *s = get_seq(m, seq, "block_table");
    if (!s) return PGD_ERR_INVALID;
    if (s->swapped)
        return pgd_error(PGD_ERR_INVALID, "block_table: sequence %lld is swapped out",
                         (long long)seq);
    *table = s->table;
    *n_blocks = s->n_blocks;
    return PGD_OK;
}

pgd_status pgd_kv_fork(pgd_kv_manager *m, int64_t parent, int64_t child) {
    CHECK_M("fork");
    if (!m->ops->fork)
        return pgd_error(PGD_ERR_UNSUPPORTED, "fork: the '%s' KV manager cannot share blocks",
                         m->ops->name);
    const pgd_kv_seq *p = get_seq(m, parent, "fork");
    if (!p) return PGD_ERR_INVALID;
    if (p->swapped)
        return pgd_error(PGD_ERR_INVALID, "fork: sequence %lld is swapped out",
                         (long long)parent);
    if (child < 0 || lookup(m, child))
        return pgd_error(PGD_ERR_INVALID, "fork: child id %lld %s", (long long)child,
                         child < 0 ? "< 0" : "already exists");
    PGD_TRY(map_reserve(m));
    pgd_kv_seq *c = NULL;
    PGD_TRY(m->ops->fork(m, p, child, &c));
    PGD_ASSERT(c && c->id == child);
    map_insert(m, c);
    return PGD_OK;
}

pgd_status pgd_kv_free(pgd_kv_manager *m, int64_t seq) {
    CHECK_M("free");
    pgd_kv_seq *s = get_seq(m, seq, "free");
    if (!s) return PGD_ERR_INVALID;
    map_remove(m, seq);
    m->ops->free_seq(m, s);
    return PGD_OK;
}

int pgd_kv_take_copies(pgd_kv_manager *m, pgd_kv_copy *out, int cap) {
    if (!m || !m->ops->take_copies || cap <= 0 || !out) return 0;
    return m->ops->take_copies(m, out, cap);
}

typedef pgd_status (*swap_fn)(pgd_kv_manager *, pgd_kv_seq *, pgd_kv_copy *, int *);

static pgd_status do_swap(pgd_kv_manager *m, int64_t seq, pgd_kv_copy *copies, int cap,
                          int *n_copies, int out) {
    const char *fn = out ? "swap_out" : "swap_in";
    if (n_copies) *n_copies = 0;
    if (!m) return pgd_error(PGD_ERR_INVALID, "%s: manager is NULL", fn);
    swap_fn op = out ? m->ops->swap_out : m->ops->swap_in;
    if (!op)
        return pgd_error(PGD_ERR_UNSUPPORTED, "%s: the '%s' KV manager cannot swap", fn,
                         m->ops->name);
    pgd_kv_seq *s = get_seq(m, seq, fn);
    if (!s) return PGD_ERR_INVALID;
    if (m->cfg.num_host_blocks == 0)
        return pgd_error(PGD_ERR_UNSUPPORTED, "%s: swap space is 0 blocks", fn);
    if (s->swapped == out)
        return pgd_error(PGD_ERR_INVALID, "%s: sequence %lld is %s", fn, (long long)seq,
                         out ? "already swapped out" : "not swapped out");
    if (!n_copies || (s->n_blocks > 0 && !copies) || cap < s->n_blocks)
        return pgd_error(PGD_ERR_INVALID, "%s: sequence %lld needs %d copies, room for %d", fn,
                         (long long)seq, s->n_blocks, copies && n_copies ? cap : 0);
    return op(m, s, copies, n_copies);
}

pgd_status pgd_kv_swap_out(pgd_kv_manager *m, int64_t seq, pgd_kv_copy *copies, int cap,
                           int *n_copies) {
    return do_swap(m, seq, copies, cap, n_copies, 1);
}

pgd_status pgd_kv_swap_in(pgd_kv_manager *m, int64_t seq, pgd_kv_copy *copies, int cap,
                          int *n_copies) {
    return do_swap(m, seq, copies, cap, n_copies, 0);
}

int pgd_kv_is_swapped(const pgd_kv_manager *m, int64_t seq) {
    const pgd_kv_seq *s = m && seq >= 0 ? lookup(m, seq) : NULL;
    return s ? s->swapped : 0;
}

void pgd_kv_get_stats(const pgd_kv_manager *m, pgd_kv_stats *out) {
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!m) return;
    m->ops->get_stats(m, out);
    out->num_seqs = (int)m->num_seqs;
    if (!out->logical_blocks) out->logical_blocks = out->used_blocks;
    out->utilization =
        out->slots_reserved > 0 ? (double)out->tokens_stored / (double)out->slots_reserved : 0.0;
}

pgd_status pgd_kv_check(const pgd_kv_manager *m) {
    CHECK_M("check");
    size_t n = 0;
    if (m->seq_cap & (m->seq_cap - 1) || m->num_seqs * 2 > m->seq_cap)
        return pgd_error(PGD_ERR_INVALID, "KV check: sequence map capacity %zu for %zu entries",
                         m->seq_cap, m->num_seqs);
    for (size_t i = 0; i < m->seq_cap; i++) {
        const pgd_kv_seq *s = m->seqs[i];
        if (!s) continue;
        n++;
        if (find_slot(m, s->id) != i)
            return pgd_error(PGD_ERR_INVALID, "KV check: sequence %lld unreachable in the map",
                             (long long)s->id);
        int bs = m->cfg.block_size;
        if (s->num_tokens < 0 || s->num_tokens > s->max_total || s->n_blocks > s->cap ||
            (!s->swapped && s->n_blocks != pgd_kv_div_up(s->num_tokens, bs)))
            return pgd_error(PGD_ERR_INVALID,
                             "KV check: sequence %lld holds %d tokens (max %d) in %d blocks "
                             "(capacity %d)", (long long)s->id, s->num_tokens, s->max_total,
                             s->n_blocks, s->cap);
    }
    if (n != m->num_seqs)
        return pgd_error(PGD_ERR_INVALID, "KV check: map holds %zu sequences, count says %zu", n,
                         m->num_seqs);
    return m->ops->check(m);
}
