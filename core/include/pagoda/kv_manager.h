/* kv_manager.h - who owns which KV-cache block: the memory-manager
 * interface of the engine, with the paged manager (PagedAttention) and the
 * contiguous-reservation baselines the vLLM paper compares against.
 *
 * Sequences are named by the caller's non-negative int64 ids. A sequence's
 * block table maps its logical blocks (positions p / block_size) to
 * physical block ids in 1..num_blocks-1; block 0 is the reserved null
 * block and is never handed out. The manager never touches KV data itself:
 * operations that need data moved (copy-on-write, swap) return the copies
 * for the caller to run on the backend before the next forward pass.
 *
 * Managers are found by name (pgd_kv_manager_names() lists the registry)
 * and say what they can do as capabilities (pgd_kv_caps), so callers ask
 * "can it fork?" rather than "is it paged?". The ones compiled in:
 *  - "paged": blocks on demand, reference counts, copy-on-write on the first
 *    write into a shared block (after fork), swap to host blocks, and
 *    optional prefix caching: each full block is named by a chained hash
 *    (hash of the parent block's hash and the block's token ids, with a
 *    fixed seed), unreferenced cached blocks stay findable on an LRU list
 *    until their memory is needed. Capabilities: fork, prefix cache, swap.
 *  - "orca-max" / "orca-pow2" / "orca-oracle": at admission reserve one
 *    contiguous run of blocks for max_seq_len tokens, for the prompt plus
 *    its true output length rounded up to a power of two (the paper's
 *    "over-reserves by at most 2x"), or for exactly its true total length
 *    (all capped at max_seq_len). The run comes from a buddy allocator over
 *    blocks 1..num_blocks-1: it takes a free aligned chunk of the run's size
 *    rounded up to a power of two and gives the unused tail back (as Linux's
 *    alloc_pages_exact), so a reservation costs exactly its own blocks but
 *    external fragmentation is real (free blocks in total may exceed a run
 *    that still does not fit), and the longest possible run is the largest
 *    power of two <= num_blocks-1. With block_size 1 this is a
 *    token-granular reservation as in Orca. Appends beyond the reservation
 *    fail (PGD_ERR_INVALID); fork is unsupported; swap moves the blocks that
 *    hold tokens to host blocks and reserves a new run on swap in.
 *    Capabilities: swap, reserves at admission.
 *  - "static": orca-max reservations; the scheduler runs a static batch to
 *    completion before admitting the next (FasterTransformer-style).
 *    Capabilities: swap, reserves at admission, static batch.
 *    Managers that reserve at admission need max_seq_len > 0; prefix_caching
 *    needs PGD_KV_CAN_CACHE_PREFIX.
 *
 * Errors: PGD_ERR_NO_BLOCKS when there is no room right now (never fatal,
 * nothing changed: the caller waits or preempts); PGD_ERR_INVALID for an
 * impossible or inconsistent request, with a message saying why. */
#ifndef PAGODA_KV_MANAGER_H
#define PAGODA_KV_MANAGER_H

#include <stddef.h>
#include <stdint.h>

#include "pagoda/status.h"

typedef struct pgd_kv_manager pgd_kv_manager;

/* Capabilities: what a manager can do, derived from the ops it implements
 * (fork, cached_prefix, swap_out/swap_in) and two it declares. */
typedef unsigned pgd_kv_caps;
enum {
    PGD_KV_CAN_FORK = 1u << 0,              /* fork with copy-on-write: n > 1 samples share the prompt, beams */
    PGD_KV_CAN_CACHE_PREFIX = 1u << 1,      /* prefix_caching may be on */
    PGD_KV_CAN_SWAP = 1u << 2,              /* swap_out / swap_in (preemption = swap) */
    PGD_KV_RESERVES_AT_ADMISSION = 1u << 3, /* add_seq reserves the sequence's whole run (needs max_seq_len) */
    PGD_KV_STATIC_BATCH = 1u << 4,          /* the scheduler admits only into an empty engine (static batching) */
};

typedef struct pgd_kv_manager_config {
    const char *name;     /* a registered manager (pgd_kv_manager_names); NULL = "paged" */
    int block_size;       /* tokens per block; 0 = 16 */
    int num_blocks;       /* device blocks including the null block 0 (>= 2) */
    int num_host_blocks;  /* host (swap) blocks; 0 = swapping unavailable */
    int max_seq_len;      /* the model's context (orca-max reserves this); 0 = none (not for managers
                             that reserve at admission) */
    int prefix_caching;   /* needs PGD_KV_CAN_CACHE_PREFIX (others: PGD_ERR_INVALID) */
    uint64_t hash_seed;   /* prefix-hash seed; 0 = a fixed default */
} pgd_kv_manager_config;

/* A block move for the caller to perform: copy block `src` to block `dst`
 * (device->device for copy-on-write; device->host for swap out, with dst a
 * host block id in 0..num_host_blocks-1; host->device for swap in, with src
 * a host block id). Copies must run in the order the manager produced them,
 * before the next forward pass: a caller that runs pending take_copies
 * copies before each swap_out/swap_in and each batch as it gets it is
 * always correct. */
typedef struct pgd_kv_copy {
    int32_t src, dst;
} pgd_kv_copy;

typedef struct pgd_kv_stats {
    int num_blocks;          /* usable device blocks (excludes the null block) */
    int free_blocks;         /* on the free list, plus evictable cached blocks
                                (contiguous kinds: free in total, maybe fragmented) */
    int used_blocks;         /* referenced by at least one sequence (or reserved) */
    int cached_blocks;       /* unreferenced but kept for prefix reuse */
    int64_t tokens_stored;   /* KV entries holding real tokens (shared counted once);
                                device only: swapped sequences do not count */
    int64_t slots_reserved;  /* slots in used blocks (used_blocks * block_size) */
    double utilization;      /* tokens_stored / slots_reserved: real tokens' share (paper Fig. 2) */
    int64_t prefix_queries;  /* full prompt blocks at add_seq (all of them, also past a miss) */
    int64_t prefix_hits;     /* of those, attached from the cache (after dropping a
                                fully cached prompt's last block) */
    int host_blocks_used;
    int num_seqs;
    int64_t logical_blocks;  /* entries of the device sequences' block tables: a block shared
                                by k sequences counts k times (used_blocks without sharing;
                                contiguous kinds: = used_blocks) */
} pgd_kv_stats;

pgd_status pgd_kv_manager_create(const pgd_kv_manager_config *cfg, pgd_kv_manager **out);
void pgd_kv_manager_destroy(pgd_kv_manager *m);
int pgd_kv_manager_block_size(const pgd_kv_manager *m);
/* The manager's registry name (static storage) and capabilities. */
const char *pgd_kv_manager_name(const pgd_kv_manager *m);
pgd_kv_caps pgd_kv_manager_caps(const pgd_kv_manager *m);
/* Look a manager up by name: PGD_OK and its capabilities in *caps (may be
 * NULL), or PGD_ERR_INVALID naming the bad value, the closest name and the
 * choices. NULL = "paged". */
pgd_status pgd_kv_manager_find(const char *name, pgd_kv_caps *caps);
/* The registry's names in order, NULL-terminated (help and errors read them). */
const char *const *pgd_kv_manager_names(void);
/* The names of the managers having every capability in `caps`, joined by
 * sep into buf (truncated to n bytes); returns buf. For error messages. */
const char *pgd_kv_manager_names_with(pgd_kv_caps caps, const char *sep, char *buf, size_t n);

/* Register sequence `seq` (an id >= 0 not in use) with its prompt. The
 * sequence then holds *num_cached_tokens tokens; the caller appends the
 * rest of the prompt (prompt + *num_cached_tokens ..) with pgd_kv_append.
 * max_total_len is the most tokens it may ever hold (prompt + max new
 * tokens, at most max_seq_len; <= 0 = max_seq_len, or unbounded when that
 * is 0); true_total_len is its real final length where known (orca-oracle
 * and orca-pow2 reserve from it; <= 0 = unknown, then max_total_len is
 * used). Contiguous kinds reserve their whole run here (PGD_ERR_NO_BLOCKS
 * if it does not fit now; PGD_ERR_INVALID if it could never fit); paged
 * allocates nothing here but rejects (PGD_ERR_INVALID) a prompt or a
 * max_total_len needing more blocks than the pool has. With prefix
 * caching, the longest run of the prompt's full blocks found in the cache
 * is attached to the sequence and *num_cached_tokens says how many prompt
 * tokens need no computing (always < n_prompt, so the last prompt token
 * is computed; 0 without caching). num_cached_tokens may be NULL. */
pgd_status pgd_kv_add_seq(pgd_kv_manager *m, int64_t seq, const int32_t *prompt, int n_prompt,
                          int max_total_len, int true_total_len, int *num_cached_tokens);

/* Blocks the sequence would need to grow to `total_tokens` positions now
 * (0 if it already has them; a copy-on-write counts), or to come back on
 * the device with that many when it is swapped out. An append or swap_in
 * succeeds iff this is <= pgd_kv_free_blocks() (paged) and then takes
 * exactly that many. -1 for an unknown sequence or a length it can never
 * reach (beyond its max_total_len or its contiguous reservation). */
int pgd_kv_blocks_needed(const pgd_kv_manager *m, int64_t seq, int total_tokens);
int pgd_kv_free_blocks(const pgd_kv_manager *m);

/* Block arithmetic for schedulers, so they never count blocks themselves.
 *
 * Blocks n sequences take to hold lens[i] tokens each when the first
 * `shared` tokens (whole blocks) are held once by all of them (forked from
 * one) and the first `held` of those (whole blocks) are held already: what
 * admitting a group whose common prefix is shared costs, or what a group
 * would hold once recomputed with its prefix shared again. A sequence of
 * <= shared tokens adds nothing of its own; held = shared = 0 counts n
 * private sequences (what their prompts take at admission). -1 on bad
 * arguments. */
int pgd_kv_group_blocks(const pgd_kv_manager *m, int held, int shared, const int *lens, int n);
/* Free blocks a swapped-out sequence holding `tokens` tokens should find
 * before it is swapped in: its blocks back plus room to grow
 * (tokens / block_size + 2). */
int pgd_kv_swap_in_blocks(const pgd_kv_manager *m, int tokens);

/* Tokens of `prompt` a sequence added now would find cached: what
 * pgd_kv_add_seq would report in *num_cached_tokens, without adding it or
 * touching the cache's LRU order (0 without prefix caching, or for kinds
 * that cache nothing). For cache-aware scheduling policies. */
int pgd_kv_cached_prefix(const pgd_kv_manager *m, const int32_t *prompt, int n_prompt);

/* Record `n` new tokens of the sequence (positions num_tokens(seq) ..
 * +n-1) and make sure it has slots for them: allocates blocks as needed,
 * and if the block being written is shared (ref count > 1) replaces it by
 * a fresh copy (copy-on-write; the copy is queued, see take_copies). All
 * or nothing: on PGD_ERR_NO_BLOCKS nothing changed. With prefix caching,
 * blocks that become full get their chained hash and enter the cache
 * (if an identical block is already cached, that entry is kept); tokens
 * may be NULL only without prefix caching. PGD_ERR_INVALID beyond
 * max_total_len, the reservation (contiguous kinds), or while swapped. */
pgd_status pgd_kv_append(pgd_kv_manager *m, int64_t seq, const int32_t *tokens, int n);

/* Tokens the sequence holds (cached prefix + appended); -1 if unknown. */
int pgd_kv_num_tokens(const pgd_kv_manager *m, int64_t seq);

/* The sequence's block table (borrowed until the next call that changes
 * this sequence) and its length in blocks, ceil(num_tokens / block_size)
 * (contiguous kinds: the run's first blocks, consecutive ids).
 * PGD_ERR_INVALID while the sequence is swapped out. */
pgd_status pgd_kv_block_table(const pgd_kv_manager *m, int64_t seq, const int32_t **table,
                              int *n_blocks);

/* Child shares every block of parent (ref counts +1); the child's next
 * append into the shared last block copies it first. Needs
 * PGD_KV_CAN_FORK (others: PGD_ERR_UNSUPPORTED). */
pgd_status pgd_kv_fork(pgd_kv_manager *m, int64_t parent, int64_t child);

/* Drop the sequence (swapped or not): ref counts -1; blocks reaching 0
 * return to the free list, or to the cached LRU list if they carry a prefix
 * hash, last block first (so eviction takes prefix ends before starts). */
pgd_status pgd_kv_free(pgd_kv_manager *m, int64_t seq);

/* Pending device->device copies from copy-on-write since the last call:
 * up to `cap` are moved into `out`; returns how many. */
int pgd_kv_take_copies(pgd_kv_manager *m, pgd_kv_copy *out, int cap);

/* Swap the sequence's blocks to host memory: on success *n_copies device->host
 * copies are written to `copies` (cap entries; PGD_ERR_INVALID if too few)
 * and its device blocks are released. PGD_ERR_NO_BLOCKS if host space is
 * short; PGD_ERR_UNSUPPORTED if num_host_blocks is 0. Blocks shared with
 * other sequences are copied, not moved (ref -1). Copy i is logical block
 * i. Blocks brought back by swap_in are not re-registered in the prefix
 * cache. */
pgd_status pgd_kv_swap_out(pgd_kv_manager *m, int64_t seq, pgd_kv_copy *copies, int cap,
                           int *n_copies);
/* The reverse: allocate device blocks and return host->device copies. */
pgd_status pgd_kv_swap_in(pgd_kv_manager *m, int64_t seq, pgd_kv_copy *copies, int cap,
                          int *n_copies);
int pgd_kv_is_swapped(const pgd_kv_manager *m, int64_t seq);

void pgd_kv_get_stats(const pgd_kv_manager *m, pgd_kv_stats *out);

/* Debug check of every internal invariant (ref counts match the block
 * tables, free list + cached + used = all blocks, no block in two places,
 * host blocks likewise). Returns PGD_OK or PGD_ERR_INVALID with a message. */
pgd_status pgd_kv_check(const pgd_kv_manager *m);

#endif
