/* kv_manager_impl.h - what a KV-manager kind implements (not a public
 * header; only core/mem/ includes it).
 *
 * A kind fills one `const struct pgd_kv_ops` (designated initializers,
 * .name first) and adds one line to the registry in kv_manager.c; its
 * capabilities follow from the ops it fills (fork, cached_prefix,
 * swap_out + swap_in) and the two flags it declares, and nothing outside
 * core/mem names it. Its create allocates a struct whose first member is
 * `pgd_kv_manager base` and sets base.ops to the table it was called
 * with. kv_manager.c owns the map from sequence ids to sequence states and does every argument check that does
 * not depend on the kind (unknown or duplicate ids, NULL pointers, swapped
 * state, lengths against max_seq_len), so the ops only see valid calls:
 *  - each sequence state starts with `pgd_kv_seq` (allocated by the kind's
 *    add_seq/fork, released by its free_seq);
 *  - an op that fails with PGD_ERR_NO_BLOCKS or PGD_ERR_OOM has changed
 *    nothing;
 *  - optional ops (fork, take_copies, swap_out, swap_in, cached_prefix)
 *    may be NULL: the wrappers then answer PGD_ERR_UNSUPPORTED (or 0
 *    copies, 0 cached tokens), and the capability is absent.
 *
 * Invariants of pgd_kv_seq: table[0..n_blocks) are device block ids
 * (1..num_blocks-1) or, while swapped, host block ids; for a sequence on
 * the device n_blocks == ceil(num_tokens / block_size); num_tokens <=
 * max_total. */
#ifndef PAGODA_KV_MANAGER_IMPL_H
#define PAGODA_KV_MANAGER_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "pagoda/kv_manager.h"

typedef struct pgd_kv_seq {
    int64_t id;
    int num_tokens; /* positions held (cached prefix + appended) */
    int max_total;  /* most tokens it may ever hold (INT32_MAX: unbounded) */
    int swapped;    /* 1: table holds host block ids */
    int n_blocks;   /* entries of table in use */
    int cap;        /* entries allocated */
    int32_t *table; /* (cap) block ids, logical block i -> physical id */
} pgd_kv_seq;

struct pgd_kv_ops {
    const char *name;
    /* cfg is validated, defaults filled in (block_size, hash_seed); sets
     * base.ops = ops and base.cfg. Several tables may share one create and
     * tell themselves apart by ops->param. */
    pgd_status (*create)(const struct pgd_kv_ops *ops, const pgd_kv_manager_config *cfg, pgd_kv_manager **out);
    int param;                          /* the kind's own constant (contiguous: its reservation rule) */
    int reserves_at_admission;          /* 1: add_seq reserves the whole run (PGD_KV_RESERVES_AT_ADMISSION) */
    int static_batch;                   /* 1: PGD_KV_STATIC_BATCH */
    void (*destroy)(pgd_kv_manager *m); /* every sequence is already freed */
    /* lengths are checked: 0 <= n_prompt <= max_total, true_total in
     * [n_prompt, max_total] or <= 0 */
    pgd_status (*add_seq)(pgd_kv_manager *m, int64_t id, const int32_t *prompt, int n_prompt,
                          int max_total, int true_total, pgd_kv_seq **out, int *num_cached);
    int (*blocks_needed)(const pgd_kv_manager *m, const pgd_kv_seq *s, int total_tokens);
    int (*free_blocks)(const pgd_kv_manager *m);
    /* s is on the device; num_tokens + n <= max_total; n >= 1 */
    pgd_status (*append)(pgd_kv_manager *m, pgd_kv_seq *s, const int32_t *tokens, int n);
    pgd_status (*fork)(pgd_kv_manager *m, const pgd_kv_seq *parent, int64_t child,
                       pgd_kv_seq **out);
    void (*free_seq)(pgd_kv_manager *m, pgd_kv_seq *s);
    int (*take_copies)(pgd_kv_manager *m, pgd_kv_copy *out, int cap);
    /* s is on the device (swap_out) or swapped (swap_in); cap >= n_blocks */
    pgd_status (*swap_out)(pgd_kv_manager *m, pgd_kv_seq *s, pgd_kv_copy *copies, int *n);
    pgd_status (*swap_in)(pgd_kv_manager *m, pgd_kv_seq *s, pgd_kv_copy *copies, int *n);
    /* fills everything but num_seqs and utilization */
    void (*get_stats)(const pgd_kv_manager *m, pgd_kv_stats *out);
    pgd_status (*check)(const pgd_kv_manager *m);
    /* optional: tokens of the prompt add_seq would find cached (0 if NULL) */
    int (*cached_prefix)(const pgd_kv_manager *m, const int32_t *prompt, int n_prompt);
};

struct pgd_kv_manager {
    const struct pgd_kv_ops *ops;
    pgd_kv_manager_config cfg; /* resolved copy */
    /* open-addressing map id -> state: linear probing, NULL = empty slot,
     * power-of-two capacity, at most half full */
    pgd_kv_seq **seqs;
    size_t seq_cap, num_seqs;
};


/* Grow s->table to hold at least n entries (PGD_ERR_OOM; s unchanged). */
pgd_status pgd_kv_seq_reserve(pgd_kv_seq *s, int n);

static inline int pgd_kv_div_up(int64_t a, int b) { return (int)((a + b - 1) / b); }

#endif
