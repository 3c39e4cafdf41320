/* test_kv_manager.c - CUnit tests for core/mem (KV-cache memory managers):
 *  - config validation, kind names, argument errors naming the numbers;
 *  - paged: null block never handed out, on-demand allocation and free,
 *    NO_BLOCKS changes nothing, fork + copy-on-write copies and sharing,
 *    prefix-cache hits with exact counts, LRU eviction order, cache reuse,
 *    swap out/in round trips with the right copies;
 *  - contiguous kinds: reservation sizes per kind, appends bounded by the
 *    reservation, real buddy fragmentation, swap;
 *  - utilization on one fixed synthetic workload per kind (paper Fig. 2);
 *  - randomized operation sequences (fixed seeds) on every kind that also
 *    simulate the KV data: copies are applied to fake device/host memory,
 *    appended tokens written through the block tables, and every
 *    sequence's tokens read back; pgd_kv_check after every operation and
 *    no leaked block at the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda/kv_manager.h"
#include "test_util.h"

/* ---- helpers ---- */

#define CHECK_OK(m)                                                                 \
    do {                                                                            \
        pgd_status st_ = pgd_kv_check(m);                                           \
        if (st_ != PGD_OK) fprintf(stderr, "\nkv check: %s\n", pgd_last_error());   \
        CU_ASSERT_EQUAL_FATAL(st_, PGD_OK);                                         \
    } while (0)

static pgd_kv_manager *mk(const char *kind, int bs, int nb, int nh, int ctx, int caching) {
    pgd_kv_manager_config c = {.name = kind,
                               .block_size = bs,
                               .num_blocks = nb,
                               .num_host_blocks = nh,
                               .max_seq_len = ctx,
                               .prefix_caching = caching};
    pgd_kv_manager *m = NULL;
    pgd_status st = pgd_kv_manager_create(&c, &m);
    if (st != PGD_OK) fprintf(stderr, "\ncreate: %s\n", pgd_last_error());
    CU_ASSERT_EQUAL_FATAL(st, PGD_OK);
    CHECK_OK(m);
    return m;
}

static pgd_kv_stats stats(const pgd_kv_manager *m) {
    pgd_kv_stats s;
    pgd_kv_get_stats(m, &s);
    return s;
}

static void seq_tokens(int32_t *t, int n, int32_t base) {
    for (int i = 0; i < n; i++) t[i] = base + i;
}

/* add_seq + append the uncomputed part of the prompt; returns cached tokens */
static int add_full(pgd_kv_manager *m, int64_t id, const int32_t *prompt, int n, int max_total,
                    int true_total) {
    int cached = -1;
    CU_ASSERT_EQUAL_FATAL(pgd_kv_add_seq(m, id, prompt, n, max_total, true_total, &cached),
                          PGD_OK);
    CU_ASSERT_FATAL(cached >= 0 && (cached < n || cached == 0));
    CU_ASSERT_EQUAL_FATAL(pgd_kv_append(m, id, prompt + cached, n - cached), PGD_OK);
    CHECK_OK(m);
    return cached;
}

static const int32_t *table(const pgd_kv_manager *m, int64_t id, int *n) {
    const int32_t *t = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_kv_block_table(m, id, &t, n), PGD_OK);
    return t;
}

static int err_has(const char *s) { return strstr(pgd_last_error(), s) != NULL; }

/* ---- config, names, argument errors ---- */

static void test_config(void) {
    pgd_kv_manager *m = NULL;
    pgd_kv_manager_config c = {.num_blocks = 1};
    CU_ASSERT_EQUAL(pgd_kv_manager_create(NULL, &m), PGD_ERR_INVALID);
    CU_ASSERT_EQUAL(pgd_kv_manager_create(&c, &m), PGD_ERR_INVALID);
    CU_ASSERT(err_has("num_blocks 1"));
    c = (pgd_kv_manager_config){.block_size = 5000, .num_blocks = 8};
    CU_ASSERT_EQUAL(pgd_kv_manager_create(&c, &m), PGD_ERR_INVALID);
    CU_ASSERT(err_has("5000"));
    c = (pgd_kv_manager_config){.block_size = -1, .num_blocks = 8};
    CU_ASSERT_EQUAL(pgd_kv_manager_create(&c, &m), PGD_ERR_INVALID);
    c = (pgd_kv_manager_config){.name = "pagd", .num_blocks = 8};
    CU_ASSERT_EQUAL(pgd_kv_manager_create(&c, &m), PGD_ERR_INVALID);
    CU_ASSERT(err_has("unknown KV manager 'pagd' (did you mean 'paged'?)"));
    c = (pgd_kv_manager_config){.name = "orca-max", .num_blocks = 8};
    CU_ASSERT_EQUAL(pgd_kv_manager_create(&c, &m), PGD_ERR_INVALID);
    CU_ASSERT(err_has("max_seq_len"));
    c = (pgd_kv_manager_config){.name = "orca-max", .num_blocks = 8, .max_seq_len = 16, .prefix_caching = 1};
    CU_ASSERT_EQUAL(pgd_kv_manager_create(&c, &m), PGD_ERR_INVALID);
    CU_ASSERT(err_has("'orca-max' cannot cache prefixes: prefix_caching needs paged"));
    c = (pgd_kv_manager_config){.num_blocks = 8, .num_host_blocks = -2};
    CU_ASSERT_EQUAL(pgd_kv_manager_create(&c, &m), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NULL(m);
    c = (pgd_kv_manager_config){.num_blocks = 8};
    CU_ASSERT_EQUAL_FATAL(pgd_kv_manager_create(&c, &m), PGD_OK);
    CU_ASSERT_EQUAL(pgd_kv_manager_block_size(m), 16);
    CU_ASSERT_STRING_EQUAL(pgd_kv_manager_name(m), "paged");
    CU_ASSERT_EQUAL(pgd_kv_manager_caps(m), PGD_KV_CAN_FORK | PGD_KV_CAN_CACHE_PREFIX | PGD_KV_CAN_SWAP);
    pgd_kv_manager_destroy(m);
    pgd_kv_manager_destroy(NULL);

    /* the registry: names in order, capabilities derived from each manager's ops */
    const char *names[] = {"paged", "orca-max", "orca-pow2", "orca-oracle", "static"};
    const pgd_kv_caps reserve = PGD_KV_CAN_SWAP | PGD_KV_RESERVES_AT_ADMISSION;
    const pgd_kv_caps want[] = {PGD_KV_CAN_FORK | PGD_KV_CAN_CACHE_PREFIX | PGD_KV_CAN_SWAP, reserve, reserve, reserve,
                                reserve | PGD_KV_STATIC_BATCH};
    const char *const *reg = pgd_kv_manager_names();
    for (int k = 0; k < 5; k++) {
        pgd_kv_caps caps = 0;
        CU_ASSERT_STRING_EQUAL(reg[k], names[k]);
        CU_ASSERT_EQUAL(pgd_kv_manager_find(names[k], &caps), PGD_OK);
        CU_ASSERT_EQUAL(caps, want[k]);
        c = (pgd_kv_manager_config){.name = names[k], .num_blocks = 8, .max_seq_len = 16};
        CU_ASSERT_EQUAL_FATAL(pgd_kv_manager_create(&c, &m), PGD_OK);
        CU_ASSERT_STRING_EQUAL(pgd_kv_manager_name(m), names[k]);
        CU_ASSERT_EQUAL(pgd_kv_manager_caps(m), want[k]);
        pgd_kv_manager_destroy(m);
    }
    pgd_kv_caps caps = 0;
    CU_ASSERT_EQUAL(pgd_kv_manager_find(NULL, &caps), PGD_OK); /* the default */
    CU_ASSERT_EQUAL(caps, want[0]);
    CU_ASSERT_EQUAL(pgd_kv_manager_find("orca", NULL), PGD_ERR_INVALID);
    CU_ASSERT(err_has("'orca'") && err_has("orca-oracle"));
    /* (a manager registered later may add itself to these lists) */
    char buf[256];
    CU_ASSERT_NSTRING_EQUAL(pgd_kv_manager_names_with(PGD_KV_CAN_FORK, ", ", buf, sizeof buf), "paged", 5);
    CU_ASSERT(!strstr(buf, "orca") && !strstr(buf, "static"));
    pgd_kv_manager_names_with(PGD_KV_RESERVES_AT_ADMISSION, "|", buf, sizeof buf);
    CU_ASSERT(strstr(buf, "orca-max|orca-pow2|orca-oracle|static") && !strstr(buf, "paged"));
}

/* The block arithmetic schedulers ask for instead of counting blocks. */
static void test_block_queries(void) {
    pgd_kv_manager *m = mk("paged", 4, 65, 0, 0, 0);
    CU_ASSERT_EQUAL(pgd_kv_group_blocks(m, 0, 0, (int[]){9}, 1), 3);         /* 9 tokens: 3 blocks */
    CU_ASSERT_EQUAL(pgd_kv_group_blocks(m, 0, 0, (int[]){9, 9, 4}, 3), 7);   /* private prompts */
    CU_ASSERT_EQUAL(pgd_kv_group_blocks(m, 0, 8, (int[]){9, 12, 8}, 3), 4);  /* 2 shared + 1 + 1 + 0 */
    CU_ASSERT_EQUAL(pgd_kv_group_blocks(m, 4, 8, (int[]){13, 0}, 2), 1 + 2); /* 1 held of the 2 shared */
    CU_ASSERT_EQUAL(pgd_kv_group_blocks(m, 0, 0, NULL, 0), 0);
    CU_ASSERT_EQUAL(pgd_kv_group_blocks(m, 8, 4, (int[]){9}, 1), -1); /* held > shared */
    CU_ASSERT_EQUAL(pgd_kv_group_blocks(m, 0, 0, NULL, 2), -1);
    CU_ASSERT_EQUAL(pgd_kv_group_blocks(NULL, 0, 0, (int[]){9}, 1), -1);
    CU_ASSERT_EQUAL(pgd_kv_swap_in_blocks(m, 0), 2);
    CU_ASSERT_EQUAL(pgd_kv_swap_in_blocks(m, 7), 3);
    CU_ASSERT_EQUAL(pgd_kv_swap_in_blocks(m, 8), 4);
    CU_ASSERT_EQUAL(pgd_kv_swap_in_blocks(m, -1), -1);
    pgd_kv_manager_destroy(m);
}

static void test_invalid_requests(void) {
    pgd_kv_manager *m = mk("paged", 4, 9, 4, 64, 0); /* 8 usable blocks = 32 slots */
    int32_t p[64];
    seq_tokens(p, 64, 1);
    CU_ASSERT_EQUAL(pgd_kv_add_seq(m, 1, p, 40, 0, 0, NULL), PGD_ERR_INVALID);
    CU_ASSERT(err_has("10 blocks") && err_has("has 8"));
    CU_ASSERT_EQUAL(pgd_kv_add_seq(m, 1, p, 8, 40, 0, NULL), PGD_ERR_INVALID); /* max_total */
    CU_ASSERT(err_has("max_total_len 40 needs 10 blocks"));
    CU_ASSERT_EQUAL(pgd_kv_add_seq(m, 1, p, 8, 65, 0, NULL), PGD_ERR_INVALID); /* > ctx */
    CU_ASSERT(err_has("65") && err_has("64"));
    CU_ASSERT_EQUAL(pgd_kv_add_seq(m, 1, p, 8, 6, 0, NULL), PGD_ERR_INVALID);  /* prompt > max */
    CU_ASSERT_EQUAL(pgd_kv_add_seq(m, -1, p, 8, 16, 0, NULL), PGD_ERR_INVALID);
    CU_ASSERT_EQUAL(pgd_kv_add_seq(m, 1, NULL, 8, 16, 0, NULL), PGD_ERR_INVALID);
    CU_ASSERT_EQUAL(pgd_kv_add_seq(m, 1, p, 8, 16, 4, NULL), PGD_ERR_INVALID); /* true < prompt */
    CU_ASSERT_EQUAL(pgd_kv_add_seq(m, 1, p, 8, 16, 0, NULL), PGD_OK);
    CU_ASSERT_EQUAL(pgd_kv_add_seq(m, 1, p, 8, 16, 0, NULL), PGD_ERR_INVALID);
    CU_ASSERT(err_has("already exists"));
    CU_ASSERT_EQUAL(pgd_kv_append(m, 1, p, 17), PGD_ERR_INVALID);
    CU_ASSERT(err_has("max_total_len 16"));
    CU_ASSERT_EQUAL(pgd_kv_append(m, 1, p, -1), PGD_ERR_INVALID);
    CU_ASSERT_EQUAL(pgd_kv_append(m, 2, p, 1), PGD_ERR_INVALID);
    CU_ASSERT(err_has("unknown sequence 2"));
    CU_ASSERT_EQUAL(pgd_kv_free(m, 2), PGD_ERR_INVALID);
    CU_ASSERT_EQUAL(pgd_kv_fork(m, 2, 3), PGD_ERR_INVALID);
    CU_ASSERT_EQUAL(pgd_kv_fork(m, 1, 1), PGD_ERR_INVALID);
    pgd_kv_copy cp[8];
    int n = -1;
    CU_ASSERT_EQUAL(pgd_kv_swap_out(m, 2, cp, 8, &n), PGD_ERR_INVALID);
    CU_ASSERT_EQUAL(pgd_kv_swap_in(m, 1, cp, 8, &n), PGD_ERR_INVALID);
    const int32_t *t;
    CU_ASSERT_EQUAL(pgd_kv_block_table(m, 7, &t, &n), PGD_ERR_INVALID);
    CU_ASSERT_EQUAL(pgd_kv_num_tokens(m, 7), -1);
    CU_ASSERT_EQUAL(pgd_kv_blocks_needed(m, 7, 1), -1);
    CU_ASSERT_EQUAL(pgd_kv_blocks_needed(m, 1, 17), -1);
    CHECK_OK(m);
    CU_ASSERT_EQUAL(stats(m).num_seqs, 1);
    pgd_kv_manager_destroy(m);
}

/* ---- paged: allocation ---- */

static void test_paged_alloc_free(void) {
    pgd_kv_manager *m = mk("paged", 4, 9, 0, 0, 0);
    int32_t p[64];
    seq_tokens(p, 64, 1);
    CU_ASSERT_EQUAL(pgd_kv_free_blocks(m), 8);
    CU_ASSERT_EQUAL(add_full(m, 1, p, 6, 0, 0), 0);
    int n, seen[9] = {0};
    const int32_t *t = table(m, 1, &n);
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_EQUAL(pgd_kv_num_tokens(m, 1), 6);
    pgd_kv_stats s = stats(m);
    CU_ASSERT_EQUAL(s.num_blocks, 8);
    CU_ASSERT_EQUAL(s.used_blocks, 2);
    CU_ASSERT_EQUAL(s.free_blocks, 6);
    CU_ASSERT_EQUAL(s.tokens_stored, 6);
    CU_ASSERT_EQUAL(s.slots_reserved, 8);
    CU_ASSERT_DOUBLE_EQUAL(s.utilization, 0.75, 1e-12);
    /* fill the pool: every usable block handed out once, never block 0 */
    CU_ASSERT_EQUAL(add_full(m, 2, p, 24, 0, 0), 0);
    for (int64_t id = 1; id <= 2; id++) {
        t = table(m, id, &n);
        for (int i = 0; i < n; i++) {
            CU_ASSERT(t[i] >= 1 && t[i] <= 8);
            if (t[i] >= 1 && t[i] <= 8) seen[t[i]]++;
        }
    }
    for (int b = 1; b <= 8; b++) CU_ASSERT_EQUAL(seen[b], 1);
    CU_ASSERT_EQUAL(pgd_kv_free_blocks(m), 0);
    /* block 2 of seq 1 has room for 2 more tokens, then the pool is full */
    CU_ASSERT_EQUAL(pgd_kv_blocks_needed(m, 1, 8), 0);
    CU_ASSERT_EQUAL(pgd_kv_blocks_needed(m, 1, 9), 1);
    CU_ASSERT_EQUAL(pgd_kv_append(m, 1, p, 2), PGD_OK);
    pgd_kv_stats before = stats(m);
    int32_t tab_before[2];
    memcpy(tab_before, table(m, 1, &n), sizeof tab_before);
    CU_ASSERT_EQUAL(pgd_kv_append(m, 1, p, 1), PGD_ERR_NO_BLOCKS);
    pgd_kv_stats after = stats(m);
    CU_ASSERT_EQUAL(memcmp(&before, &after, sizeof before), 0);
    CU_ASSERT_EQUAL(pgd_kv_num_tokens(m, 1), 8);
    t = table(m, 1, &n);
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_EQUAL(memcmp(t, tab_before, sizeof tab_before), 0);
    CHECK_OK(m);
    /* free returns every block; the freed blocks are reused */
    CU_ASSERT_EQUAL(pgd_kv_free(m, 2), PGD_OK);
    CHECK_OK(m);
    CU_ASSERT_EQUAL(pgd_kv_free_blocks(m), 6);
    CU_ASSERT_EQUAL(pgd_kv_append(m, 1, p, 1), PGD_OK);
    t = table(m, 1, &n);
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT(t[2] >= 1 && t[2] <= 8 && t[2] != t[0] && t[2] != t[1]);
    CU_ASSERT_EQUAL(pgd_kv_free(m, 1), PGD_OK);
    CU_ASSERT_EQUAL(stats(m).used_blocks, 0);
    CU_ASSERT_EQUAL(stats(m).tokens_stored, 0);
    CU_ASSERT_EQUAL(pgd_kv_free_blocks(m), 8);
    CHECK_OK(m);
    pgd_kv_manager_destroy(m);
}

/* ---- paged: fork and copy-on-write ---- */

static void test_fork_cow(void) {
    pgd_kv_manager *m = mk("paged", 4, 17, 0, 0, 0);
    int32_t p[64];
    seq_tokens(p, 64, 1);
    pgd_kv_copy cp[4];
    int n1, n2;
    add_full(m, 1, p, 6, 0, 0); /* blocks [A, B], B holds 2 tokens */
    CU_ASSERT_EQUAL(pgd_kv_fork(m, 1, 2), PGD_OK);
    CHECK_OK(m);
    const int32_t *t1 = table(m, 1, &n1), *t2 = table(m, 2, &n2);
    CU_ASSERT_EQUAL(n2, 2);
    CU_ASSERT(t1[0] == t2[0] && t1[1] == t2[1]);
    int32_t a = t1[0], b = t1[1];
    pgd_kv_stats s = stats(m);
    CU_ASSERT_EQUAL(s.used_blocks, 2); /* shared, counted once */
    CU_ASSERT_EQUAL(s.tokens_stored, 6);
    CU_ASSERT_EQUAL(pgd_kv_num_tokens(m, 2), 6);
    CU_ASSERT_EQUAL(pgd_kv_take_copies(m, cp, 4), 0);
    CU_ASSERT_EQUAL(pgd_kv_blocks_needed(m, 2, 7), 1); /* the copy */
    CU_ASSERT_EQUAL(pgd_kv_blocks_needed(m, 2, 9), 2); /* the copy + a new block */
    /* the child's first write into the shared partial block copies it */
    CU_ASSERT_EQUAL(pgd_kv_append(m, 2, p, 1), PGD_OK);
    CHECK_OK(m);
    t2 = table(m, 2, &n2);
    CU_ASSERT_EQUAL(n2, 2);
    CU_ASSERT_EQUAL(t2[0], a);
    CU_ASSERT(t2[1] != b && t2[1] != a && t2[1] != 0);
    CU_ASSERT_EQUAL_FATAL(pgd_kv_take_copies(m, cp, 4), 1);
    CU_ASSERT_EQUAL(cp[0].src, b);
    CU_ASSERT_EQUAL(cp[0].dst, t2[1]);
    CU_ASSERT_EQUAL(pgd_kv_take_copies(m, cp, 4), 0); /* cleared */
    s = stats(m);
    CU_ASSERT_EQUAL(s.used_blocks, 3);
    CU_ASSERT_EQUAL(s.tokens_stored, 6 + 3); /* the copy holds 2 + 1 new */
    /* B now has one holder: the parent writes in place */
    CU_ASSERT_EQUAL(pgd_kv_blocks_needed(m, 1, 7), 0);
    CU_ASSERT_EQUAL(pgd_kv_append(m, 1, p, 1), PGD_OK);
    CU_ASSERT_EQUAL(pgd_kv_take_copies(m, cp, 4), 0);
    t1 = table(m, 1, &n1);
    CU_ASSERT(t1[0] == a && t1[1] == b);
    /* a fork at a block boundary never copies */
    add_full(m, 3, p, 8, 0, 0);
    CU_ASSERT_EQUAL(pgd_kv_fork(m, 3, 4), PGD_OK);
    CU_ASSERT_EQUAL(pgd_kv_fork(m, 4, 5), PGD_OK); /* three holders */
    CU_ASSERT_EQUAL(pgd_kv_append(m, 4, p, 3), PGD_OK);
    CU_ASSERT_EQUAL(pgd_kv_append(m, 5, p, 1), PGD_OK);
    CU_ASSERT_EQUAL(pgd_kv_take_copies(m, cp, 4), 0);
    CHECK_OK(m);
    /* copies queue in order and take_copies honours cap */
    CU_ASSERT_EQUAL(pgd_kv_fork(m, 4, 6), PGD_OK);
    CU_ASSERT_EQUAL(pgd_kv_fork(m, 4, 7), PGD_OK);
    CU_ASSERT_EQUAL(pgd_kv_append(m, 6, p, 1), PGD_OK);
    CU_ASSERT_EQUAL(pgd_kv_append(m, 7, p, 1), PGD_OK);
    CU_ASSERT_EQUAL(pgd_kv_take_copies(m, cp, 1), 1);
    CU_ASSERT_EQUAL(cp[0].dst, table(m, 6, &n1)[2]);
    CU_ASSERT_EQUAL(pgd_kv_take_copies(m, cp, 4), 1);
    CU_ASSERT_EQUAL(cp[0].dst, table(m, 7, &n1)[2]);
    CHECK_OK(m);
    /* freeing forked sequences in any order releases shared blocks last */
    int before = pgd_kv_free_blocks(m);
    CU_ASSERT_EQUAL(pgd_kv_free(m, 3), PGD_OK); /* its 2 blocks are shared: nothing freed */
    CU_ASSERT_EQUAL(pgd_kv_free_blocks(m), before);
    CU_ASSERT_EQUAL(pgd_kv_free(m, 1), PGD_OK); /* A still held by 2 */
    CU_ASSERT_EQUAL(pgd_kv_free_blocks(m), before + 1);
    CHECK_OK(m);
    for (int64_t id = 2; id <= 7; id++)
        if (id != 3) CU_ASSERT_EQUAL(pgd_kv_free(m, id), PGD_OK);
    CHECK_OK(m);
    CU_ASSERT_EQUAL(pgd_kv_free_blocks(m), 16);
    CU_ASSERT_EQUAL(stats(m).tokens_stored, 0);
    pgd_kv_manager_destroy(m);
}

/* ---- paged: prefix caching ---- */

static void test_prefix_hits(void) {
    pgd_kv_manager *m = mk("paged", 4, 33, 0, 0, 1);
    int32_t P[16], q[16];
    seq_tokens(P, 16, 100);
    int n1, n2;
    CU_ASSERT_EQUAL(add_full(m, 1, P, 10, 0, 0), 0); /* blocks P0 P1 full, P2 partial */
    pgd_kv_stats s = stats(m);
    CU_ASSERT_EQUAL(s.prefix_queries, 2);
    CU_ASSERT_EQUAL(s.prefix_hits, 0);
    CU_ASSERT_EQUAL(add_full(m, 2, P, 10, 0, 0), 8);
    const int32_t *t1 = table(m, 1, &n1), *t2 = table(m, 2, &n2);
    CU_ASSERT(n2 == 3 && t2[0] == t1[0] && t2[1] == t1[1] && t2[2] != t1[2]);
    s = stats(m);
    CU_ASSERT_EQUAL(s.prefix_queries, 4);
    CU_ASSERT_EQUAL(s.prefix_hits, 2);
    CU_ASSERT_EQUAL(s.used_blocks, 4);
    CU_ASSERT_EQUAL(s.tokens_stored, 12); /* shared blocks once */
    /* only the first block in common */
    memcpy(q, P, sizeof q);
    q[5] = 9999;
    CU_ASSERT_EQUAL(add_full(m, 3, q, 10, 0, 0), 4);
    s = stats(m);
    CU_ASSERT_EQUAL(s.prefix_queries, 6);
    CU_ASSERT_EQUAL(s.prefix_hits, 3);
    /* a fully cached prompt still computes its last block */
    CU_ASSERT_EQUAL(add_full(m, 4, P, 8, 0, 0), 4);
    s = stats(m);
    CU_ASSERT_EQUAL(s.prefix_queries, 8);
    CU_ASSERT_EQUAL(s.prefix_hits, 4);
    /* same block tokens after a different prefix: the chain differs */
    memcpy(q, P + 4, 4 * sizeof *q);
    memcpy(q + 4, P + 4, 4 * sizeof *q);
    q[8] = 1;
    CU_ASSERT_EQUAL(add_full(m, 5, q, 9, 0, 0), 0);
    CU_ASSERT_EQUAL(stats(m).prefix_hits, 4);
    /* shorter than a block: nothing to look up */
    CU_ASSERT_EQUAL(add_full(m, 6, P, 3, 0, 0), 0);
    CU_ASSERT_EQUAL(stats(m).prefix_queries, 10);
    /* a block filled by appends (decode) is found too: P[0..12) now cached */
    CU_ASSERT_EQUAL(pgd_kv_append(m, 1, P + 10, 2), PGD_OK);
    CU_ASSERT_EQUAL(add_full(m, 7, P, 13, 0, 0), 12);
    CHECK_OK(m);
    /* fork shares cached blocks; both copies' later blocks hash alike */
    CU_ASSERT_EQUAL(pgd_kv_fork(m, 7, 8), PGD_OK);
    CU_ASSERT_EQUAL(pgd_kv_append(m, 7, P + 13, 3), PGD_OK);
    CU_ASSERT_EQUAL(pgd_kv_append(m, 8, P + 13, 3), PGD_OK);
    CHECK_OK(m);
    CU_ASSERT_EQUAL(add_full(m, 9, P, 16, 0, 0), 12); /* P3 is cached, dropped as last */
    CU_ASSERT_EQUAL(add_full(m, 10, P, 16, 0, 0), 12);
    for (int64_t id = 1; id <= 10; id++) CU_ASSERT_EQUAL(pgd_kv_free(m, id), PGD_OK);
    CHECK_OK(m);
    s = stats(m);
    CU_ASSERT_EQUAL(s.used_blocks, 0);
    /* registered: P0..P3, q's first two blocks, and q' (3's second block) */
    CU_ASSERT_EQUAL(s.cached_blocks, 7);
    CU_ASSERT_EQUAL(s.free_blocks, 32);
    pgd_kv_manager_destroy(m);
}

static void test_cache_reuse_after_free(void) {
    pgd_kv_manager *m = mk("paged", 4, 9, 0, 0, 1);
    int32_t P[9];
    seq_tokens(P, 9, 7);
    int n;
    add_full(m, 1, P, 9, 0, 0);
    int32_t a = table(m, 1, &n)[0], b = table(m, 1, &n)[1];
    CU_ASSERT_EQUAL(pgd_kv_free(m, 1), PGD_OK);
    CHECK_OK(m);
    pgd_kv_stats s = stats(m);
    CU_ASSERT(s.cached_blocks == 2 && s.used_blocks == 0 && s.free_blocks == 8);
    CU_ASSERT_EQUAL(add_full(m, 2, P, 9, 0, 0), 8);
    const int32_t *t = table(m, 2, &n);
    CU_ASSERT(t[0] == a && t[1] == b);
    s = stats(m);
    CU_ASSERT(s.cached_blocks == 0 && s.used_blocks == 3 && s.tokens_stored == 9);
    CU_ASSERT_EQUAL(s.prefix_hits, 2);
    pgd_kv_manager_destroy(m);
}

static void test_lru_eviction(void) {
    /* 6 usable blocks of 2 tokens; 5-token prompts = 2 full blocks + 1 */
    pgd_kv_manager *m = mk("paged", 2, 7, 0, 0, 1);
    int32_t A[5], B[5], C[6];
    seq_tokens(A, 5, 100);
    seq_tokens(B, 5, 200);
    seq_tokens(C, 6, 300);
    add_full(m, 1, A, 5, 0, 0);
    CU_ASSERT_EQUAL(pgd_kv_free(m, 1), PGD_OK); /* LRU: A1, A0 (tail released first) */
    add_full(m, 2, B, 5, 0, 0);
    CU_ASSERT_EQUAL(pgd_kv_free(m, 2), PGD_OK); /* LRU: A1, A0, B1, B0 */
    CHECK_OK(m);
    CU_ASSERT_EQUAL(stats(m).cached_blocks, 4);
    CU_ASSERT_EQUAL(pgd_kv_free_blocks(m), 6);
    add_full(m, 3, C, 6, 0, 0); /* 3 blocks: 2 free + evicts A1 */
    CU_ASSERT_EQUAL(stats(m).cached_blocks, 3);
    /* A0 and B0, B1 survive; A1 is gone */
    CU_ASSERT_EQUAL(add_full(m, 4, A, 5, 0, 0), 2); /* hits A0 */
    CHECK_OK(m);
    /* seq 4 needed 2 more blocks: evicted B1 then B0 */
    CU_ASSERT_EQUAL(stats(m).cached_blocks, 0);
    CU_ASSERT_EQUAL(pgd_kv_free(m, 4), PGD_OK); /* LRU: A1', A0 (A1 re-registered) */
    CU_ASSERT_EQUAL(add_full(m, 5, B, 5, 0, 0), 0);
    CHECK_OK(m);
    pgd_kv_manager_destroy(m);

    /* a hit takes a block off the LRU; its release puts it at the MRU end */
    m = mk("paged", 2, 7, 0, 0, 1);
    add_full(m, 1, A, 5, 0, 0);
    pgd_kv_free(m, 1);
    add_full(m, 2, B, 5, 0, 0);
    pgd_kv_free(m, 2); /* LRU: A1 A0 B1 B0 */
    CU_ASSERT_EQUAL(add_full(m, 3, A, 3, 0, 0), 2); /* takes A0, computes A1' */
    CU_ASSERT_EQUAL(pgd_kv_free(m, 3), PGD_OK);     /* A1 unchanged; LRU: A1 B1 B0 [A0] */
    CU_ASSERT_EQUAL(stats(m).cached_blocks, 4);
    add_full(m, 4, C, 6, 0, 0); /* 2 free + evicts A1; LRU: B1 B0 A0 */
    CU_ASSERT_EQUAL(stats(m).cached_blocks, 3);
    CU_ASSERT_EQUAL(add_full(m, 5, A, 5, 0, 0), 2); /* A0 survived; evicts B1, B0 */
    CU_ASSERT_EQUAL(stats(m).cached_blocks, 0);
    CU_ASSERT_EQUAL(pgd_kv_free(m, 4), PGD_OK); /* room for B: C's blocks cached */
    CU_ASSERT_EQUAL(add_full(m, 6, B, 5, 0, 0), 0); /* B's were evicted */
    CHECK_OK(m);
    pgd_kv_manager_destroy(m);
}

/* ---- swap ---- */

static void test_swap_paged(void) {
    pgd_kv_manager *m = mk("paged", 4, 17, 8, 0, 0);
    int32_t p[64];
    seq_tokens(p, 64, 1);
    pgd_kv_copy out[16], in[16];
    int n, no, ni;
    add_full(m, 1, p, 10, 0, 0);
    int32_t t[3];
    memcpy(t, table(m, 1, &n), sizeof t);
    CU_ASSERT_EQUAL(pgd_kv_swap_out(m, 1, out, 2, &no), PGD_ERR_INVALID); /* room for 2 of 3 */
    CU_ASSERT_EQUAL(pgd_kv_swap_out(m, 1, out, 16, &no), PGD_OK);
    CHECK_OK(m);
    CU_ASSERT_EQUAL_FATAL(no, 3);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(out[i].src, t[i]);
        CU_ASSERT(out[i].dst >= 0 && out[i].dst < 8);
    }
    CU_ASSERT(out[0].dst != out[1].dst && out[1].dst != out[2].dst && out[0].dst != out[2].dst);
    CU_ASSERT_EQUAL(pgd_kv_is_swapped(m, 1), 1);
    CU_ASSERT_EQUAL(pgd_kv_free_blocks(m), 16);
    CU_ASSERT_EQUAL(stats(m).host_blocks_used, 3);
    CU_ASSERT_EQUAL(stats(m).tokens_stored, 0);
    CU_ASSERT_EQUAL(pgd_kv_num_tokens(m, 1), 10);
    const int32_t *tt;
    CU_ASSERT_EQUAL(pgd_kv_block_table(m, 1, &tt, &n), PGD_ERR_INVALID);
    CU_ASSERT_EQUAL(pgd_kv_append(m, 1, p, 1), PGD_ERR_INVALID);
    CU_ASSERT_EQUAL(pgd_kv_swap_out(m, 1, out, 16, &no), PGD_ERR_INVALID);
    CU_ASSERT_EQUAL(pgd_kv_blocks_needed(m, 1, 10), 3);
    CU_ASSERT_EQUAL(pgd_kv_swap_in(m, 1, in, 16, &ni), PGD_OK);
    CHECK_OK(m);
    CU_ASSERT_EQUAL_FATAL(ni, 3);
    tt = table(m, 1, &n);
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT_EQUAL(pgd_kv_num_tokens(m, 1), 10);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(in[i].src, out[i].dst);
        CU_ASSERT_EQUAL(in[i].dst, tt[i]);
    }
    CU_ASSERT_EQUAL(stats(m).host_blocks_used, 0);
    CU_ASSERT_EQUAL(stats(m).tokens_stored, 10);
    CU_ASSERT_EQUAL(pgd_kv_append(m, 1, p, 2), PGD_OK); /* fills the third block */
    CU_ASSERT_EQUAL(pgd_kv_num_tokens(m, 1), 12);
    /* a forked sequence's shared blocks are copied out, not moved */
    CU_ASSERT_EQUAL(pgd_kv_fork(m, 1, 2), PGD_OK);
    int free0 = pgd_kv_free_blocks(m);
    CU_ASSERT_EQUAL(pgd_kv_swap_out(m, 2, out, 16, &no), PGD_OK);
    CU_ASSERT_EQUAL(no, 3);
    CU_ASSERT_EQUAL(pgd_kv_free_blocks(m), free0);
    CHECK_OK(m);
    CU_ASSERT_EQUAL(pgd_kv_swap_in(m, 2, in, 16, &ni), PGD_OK);
    CU_ASSERT_EQUAL(pgd_kv_free_blocks(m), free0 - 3);
    CHECK_OK(m);
    /* host space short: NO_BLOCKS, nothing changed */
    add_full(m, 3, p, 36, 0, 0); /* 9 blocks > 8 host blocks */
    pgd_kv_stats before = stats(m);
    CU_ASSERT_EQUAL(pgd_kv_swap_out(m, 3, out, 16, &no), PGD_ERR_NO_BLOCKS);
    pgd_kv_stats after = stats(m);
    CU_ASSERT_EQUAL(memcmp(&before, &after, sizeof before), 0);
    CU_ASSERT_EQUAL(pgd_kv_is_swapped(m, 3), 0);
    /* device space short on swap in */
    CU_ASSERT_EQUAL(pgd_kv_swap_out(m, 2, out, 16, &no), PGD_OK);
    CU_ASSERT_EQUAL(pgd_kv_append(m, 3, p, 4 * pgd_kv_free_blocks(m)), PGD_OK);
    CU_ASSERT_EQUAL(pgd_kv_free_blocks(m), 0);
    CU_ASSERT_EQUAL(pgd_kv_swap_in(m, 2, in, 16, &ni), PGD_ERR_NO_BLOCKS);
    CU_ASSERT_EQUAL(pgd_kv_is_swapped(m, 2), 1);
    CHECK_OK(m);
    CU_ASSERT_EQUAL(pgd_kv_free(m, 2), PGD_OK); /* frees host blocks */
    CU_ASSERT_EQUAL(stats(m).host_blocks_used, 0);
    CHECK_OK(m);
    pgd_kv_manager_destroy(m);

    m = mk("paged", 4, 17, 0, 0, 0);
    add_full(m, 1, p, 4, 0, 0);
    CU_ASSERT_EQUAL(pgd_kv_swap_out(m, 1, out, 16, &no), PGD_ERR_UNSUPPORTED);
    CU_ASSERT(err_has("swap space is 0 blocks"));
    pgd_kv_manager_destroy(m);
}

/* ---- contiguous kinds ---- */

static void test_orca_reservations(void) {
    /* 256 usable blocks of 16; prompt 100, true total 300, max 2048 */
    const struct {
        const char *kind;
        int blocks, limit;
    } want[] = {
        {"orca-max", 128, 2048},  /* max_seq_len */
        {"orca-pow2", 23, 356},   /* 100 + pow2(200) = 356 tokens */
        {"orca-oracle", 19, 300}, /* exactly 300 tokens */
        {"static", 128, 2048},
    };
    int32_t p[2048];
    seq_tokens(p, 2048, 5);
    for (int k = 0; k < 4; k++) {
        pgd_kv_manager *m = mk(want[k].kind, 16, 257, 0, 2048, 0);
        CU_ASSERT_EQUAL(add_full(m, 1, p, 100, 2048, 300), 0);
        pgd_kv_stats s = stats(m);
        CU_ASSERT_EQUAL(s.used_blocks, want[k].blocks);
        CU_ASSERT_EQUAL(s.free_blocks, 256 - want[k].blocks);
        CU_ASSERT_EQUAL(s.slots_reserved, 16 * want[k].blocks);
        CU_ASSERT_EQUAL(s.tokens_stored, 100);
        int n;
        const int32_t *t = table(m, 1, &n);
        CU_ASSERT_EQUAL(n, 7);
        for (int i = 1; i < n; i++) CU_ASSERT_EQUAL(t[i], t[0] + i); /* contiguous */
        CU_ASSERT(t[0] >= 1);
        CU_ASSERT_EQUAL(pgd_kv_blocks_needed(m, 1, want[k].limit), 0);
        CU_ASSERT_EQUAL(pgd_kv_blocks_needed(m, 1, want[k].limit + 1), -1);
        CU_ASSERT_EQUAL(pgd_kv_append(m, 1, p, want[k].limit - 100), PGD_OK);
        if (want[k].limit < 2048) {
            CU_ASSERT_EQUAL(pgd_kv_append(m, 1, p, 1), PGD_ERR_INVALID);
            CU_ASSERT(err_has("exceeds its reservation"));
        }
        CU_ASSERT_EQUAL(pgd_kv_fork(m, 1, 2), PGD_ERR_UNSUPPORTED);
        CU_ASSERT_EQUAL(pgd_kv_take_copies(m, (pgd_kv_copy[1]){{0, 0}}, 1), 0);
        CHECK_OK(m);
        /* unknown true length: Oracle and Pow2 reserve from max_total_len */
        CU_ASSERT_EQUAL(add_full(m, 2, p, 10, 64, 0), 0);
        s = stats(m);
        int extra = !strcmp(want[k].kind, "orca-oracle") ? 4
                    : !strcmp(want[k].kind, "orca-pow2") ? 5 /* 10 + 64 = 74 tokens */
                                                         : 128;
        CU_ASSERT_EQUAL(s.used_blocks, want[k].blocks + extra);
        CU_ASSERT_EQUAL(pgd_kv_free(m, 1), PGD_OK);
        CU_ASSERT_EQUAL(pgd_kv_free(m, 2), PGD_OK);
        CHECK_OK(m);
        CU_ASSERT_EQUAL(pgd_kv_free_blocks(m), 256);
        pgd_kv_manager_destroy(m);
    }
    /* a run longer than the buddy allocator's longest: 100 usable -> 64 */
    pgd_kv_manager *m = mk("orca-max", 16, 101, 0, 2048, 0);
    CU_ASSERT_EQUAL(pgd_kv_add_seq(m, 1, p, 10, 0, 0, NULL), PGD_ERR_INVALID);
    CU_ASSERT(err_has("128 contiguous blocks") && err_has("64 blocks"));
    pgd_kv_manager_destroy(m);
}

static void test_buddy_fragmentation(void) {
    int32_t p[256];
    seq_tokens(p, 256, 1);
    pgd_kv_manager *m = mk("orca-oracle", 16, 17, 0, 256, 0); /* 16 usable blocks */
    /* exact runs: a 3-block run gives its 4th block back */
    add_full(m, 100, p, 40, 48, 48);
    CU_ASSERT_EQUAL(stats(m).used_blocks, 3);
    CU_ASSERT_EQUAL(pgd_kv_free_blocks(m), 13);
    for (int64_t id = 0; id < 13; id++) add_full(m, id, p, 8, 16, 16);
    CU_ASSERT_EQUAL(pgd_kv_free_blocks(m), 0);
    CU_ASSERT_EQUAL(pgd_kv_add_seq(m, 50, p, 8, 16, 16, NULL), PGD_ERR_NO_BLOCKS);
    CU_ASSERT_EQUAL(pgd_kv_free(m, 100), PGD_OK);
    add_full(m, 13, p, 8, 16, 16);
    add_full(m, 14, p, 8, 16, 16);
    add_full(m, 15, p, 8, 16, 16);
    CHECK_OK(m);
    /* free every other block: 8 free blocks, no two adjacent buddies */
    int n;
    for (int64_t id = 0; id < 16; id++)
        if (table(m, id, &n)[0] % 2 == 1) CU_ASSERT_EQUAL(pgd_kv_free(m, id), PGD_OK);
    CHECK_OK(m);
    CU_ASSERT_EQUAL(pgd_kv_free_blocks(m), 8);
    pgd_kv_stats before = stats(m);
    CU_ASSERT_EQUAL(pgd_kv_add_seq(m, 50, p, 8, 32, 32, NULL), PGD_ERR_NO_BLOCKS);
    CU_ASSERT(err_has("8 blocks free"));
    pgd_kv_stats after = stats(m);
    CU_ASSERT_EQUAL(memcmp(&before, &after, sizeof before), 0);
    /* freeing one block's buddy makes an aligned pair: now it fits */
    for (int64_t id = 0; id < 16; id++) {
        const int32_t *t = NULL;
        if (pgd_kv_block_table(m, id, &t, &n) == PGD_OK && t[0] == 2) pgd_kv_free(m, id);
    }
    CU_ASSERT_EQUAL(pgd_kv_add_seq(m, 50, p, 8, 32, 32, NULL), PGD_OK);
    CU_ASSERT_EQUAL(pgd_kv_append(m, 50, p, 8), PGD_OK);
    CU_ASSERT_EQUAL(table(m, 50, &n)[0], 1);
    CHECK_OK(m);
    pgd_kv_manager_destroy(m);
}

static void test_swap_contiguous(void) {
    int32_t p[64];
    seq_tokens(p, 64, 1);
    pgd_kv_manager *m = mk("orca-oracle", 4, 17, 8, 64, 0);
    pgd_kv_copy out[8], in[8];
    int n, no, ni;
    add_full(m, 1, p, 10, 64, 20); /* 5 reserved blocks, 3 with tokens */
    int32_t t[3];
    memcpy(t, table(m, 1, &n), sizeof t);
    CU_ASSERT_EQUAL(pgd_kv_swap_out(m, 1, out, 8, &no), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(no, 3);
    for (int i = 0; i < 3; i++) CU_ASSERT_EQUAL(out[i].src, t[i]);
    CU_ASSERT_EQUAL(pgd_kv_free_blocks(m), 16);
    CU_ASSERT_EQUAL(stats(m).host_blocks_used, 3);
    CHECK_OK(m);
    add_full(m, 2, p, 4, 64, 32); /* takes the low 8 blocks */
    CU_ASSERT_EQUAL(pgd_kv_swap_in(m, 1, in, 8, &ni), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(ni, 3);
    const int32_t *tt = table(m, 1, &n);
    CU_ASSERT_EQUAL(n, 3);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(in[i].src, out[i].dst);
        CU_ASSERT_EQUAL(in[i].dst, tt[i]);
    }
    CU_ASSERT_EQUAL(stats(m).used_blocks, 5 + 8);
    CU_ASSERT_EQUAL(pgd_kv_append(m, 1, p, 10), PGD_OK);
    CU_ASSERT_EQUAL(pgd_kv_append(m, 1, p, 1), PGD_ERR_INVALID);
    CHECK_OK(m);
    pgd_kv_manager_destroy(m);
}

/* ---- utilization on a fixed synthetic workload ---- */

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}
static int rng_int(uint64_t *s, int lo, int hi) { /* [lo, hi] */
    return lo + (int)(rng_next(s) % (uint64_t)(hi - lo + 1));
}

/* 24 requests, ShareGPT-like lengths, each caught part-way through its
 * output; returns the utilization of the snapshot. */
static double workload_utilization(const char *kind) {
    pgd_kv_manager *m = mk(kind, 16, 4097, 0, 2048, 0);
    static int32_t tok[2048];
    seq_tokens(tok, 2048, 3);
    uint64_t r = 0x1234567ull;
    for (int64_t id = 0; id < 24; id++) {
        int prompt = rng_int(&r, 16, 320), out = rng_int(&r, 16, 640);
        int done = rng_int(&r, 1, out); /* output tokens generated so far */
        add_full(m, id, tok, prompt, 2048, prompt + out);
        CU_ASSERT_EQUAL(pgd_kv_append(m, id, tok, done), PGD_OK);
    }
    CHECK_OK(m);
    pgd_kv_stats s = stats(m);
    printf("\n    %-12s tokens %6lld slots %7lld utilization %.3f", kind, (long long)s.tokens_stored,
           (long long)s.slots_reserved, s.utilization);
    pgd_kv_manager_destroy(m);
    return s.utilization;
}

static void test_utilization(void) {
    double paged = workload_utilization("paged");
    double max = workload_utilization("orca-max");
    double pow2 = workload_utilization("orca-pow2");
    double oracle = workload_utilization("orca-oracle");
    double stat = workload_utilization("static");
    printf("\n    ");
    CU_ASSERT(paged > 0.9);
    CU_ASSERT(max < 0.3);
    CU_ASSERT_DOUBLE_EQUAL(stat, max, 1e-12);
    CU_ASSERT(max < pow2 && pow2 < oracle && oracle < paged);
}

/* ---- randomized operations with simulated KV data ---- */

#define RMAX 48 /* live sequence slots */

typedef struct rseq {
    int64_t id;
    int live, swapped, n, max_total, true_total;
    int32_t toks[96];
} rseq;

typedef struct rsim {
    pgd_kv_manager *m;
    int bs, nb, nh, paged;
    int32_t *dev, *host; /* fake KV memory: one token id per slot */
    rseq seq[RMAX];
    int64_t next_id;
    uint64_t rng;
    long ops_ok, no_blocks, hits;
} rsim;

static void apply(rsim *s, const pgd_kv_copy *c, int n, int32_t *dst_mem, const int32_t *src_mem) {
    for (int i = 0; i < n; i++)
        memcpy(dst_mem + (size_t)c[i].dst * s->bs, src_mem + (size_t)c[i].src * s->bs,
               (size_t)s->bs * sizeof *dst_mem);
}

static void run_cow_copies(rsim *s) {
    pgd_kv_copy c[8];
    int n;
    while ((n = pgd_kv_take_copies(s->m, c, 8)) > 0) apply(s, c, n, s->dev, s->dev);
}

/* Write positions [from, q->n) through the block table; check all of it. */
static void write_and_verify(rsim *s, rseq *q, int from) {
    int nb;
    const int32_t *t = table(s->m, q->id, &nb);
    CU_ASSERT_EQUAL_FATAL(nb, (q->n + s->bs - 1) / s->bs);
    CU_ASSERT_EQUAL_FATAL(pgd_kv_num_tokens(s->m, q->id), q->n);
    for (int p = from; p < q->n; p++) s->dev[(size_t)t[p / s->bs] * s->bs + p % s->bs] = q->toks[p];
    int bad = 0;
    for (int p = 0; p < q->n; p++)
        bad += s->dev[(size_t)t[p / s->bs] * s->bs + p % s->bs] != q->toks[p];
    CU_ASSERT_EQUAL_FATAL(bad, 0);
}

static void gen_prompt(rsim *s, int32_t *t, int n) {
    int family = rng_int(&s->rng, 0, 3), shared = rng_int(&s->rng, 0, n);
    for (int i = 0; i < n; i++)
        t[i] = i < shared ? 1000 * family + i : rng_int(&s->rng, 0, 50000);
}

static void op_add(rsim *s, rseq *q) {
    int32_t prompt[96];
    int n = rng_int(&s->rng, 1, 40), max_total = rng_int(&s->rng, n + 1, 96);
    int true_total = rng_int(&s->rng, n, max_total);
    gen_prompt(s, prompt, n);
    int cached = -1;
    pgd_status st = pgd_kv_add_seq(s->m, s->next_id, prompt, n, max_total, true_total, &cached);
    if (st == PGD_ERR_NO_BLOCKS) {
        CU_ASSERT_FATAL(!s->paged);
        s->no_blocks++;
        return;
    }
    CU_ASSERT_EQUAL_FATAL(st, PGD_OK);
    CU_ASSERT_FATAL(cached >= 0 && cached % s->bs == 0 && (cached < n || cached == 0));
    s->hits += cached > 0;
    *q = (rseq){.id = s->next_id++, .live = 1, .n = cached, .max_total = max_total,
                .true_total = true_total};
    memcpy(q->toks, prompt, (size_t)n * sizeof *prompt);
    if (cached) write_and_verify(s, q, cached); /* the hit blocks hold the prompt */
    st = pgd_kv_append(s->m, q->id, q->toks + cached, n - cached);
    if (st == PGD_ERR_NO_BLOCKS) { /* no room for the prompt: give up on it */
        s->no_blocks++;
        CU_ASSERT_EQUAL_FATAL(pgd_kv_num_tokens(s->m, q->id), cached);
        CU_ASSERT_EQUAL(pgd_kv_free(s->m, q->id), PGD_OK);
        q->live = 0;
        return;
    }
    CU_ASSERT_EQUAL_FATAL(st, PGD_OK);
    run_cow_copies(s);
    q->n = n;
    write_and_verify(s, q, cached);
}

static void op_append(rsim *s, rseq *q) {
    int k = rng_int(&s->rng, 1, s->bs + 3);
    int32_t t[64];
    for (int i = 0; i < k; i++) t[i] = rng_int(&s->rng, 0, 50000);
    int free0 = pgd_kv_free_blocks(s->m), need = pgd_kv_blocks_needed(s->m, q->id, q->n + k);
    pgd_status st = pgd_kv_append(s->m, q->id, t, k);
    /* blocks_needed predicts the outcome and the cost exactly */
    if (q->n + k > q->max_total) CU_ASSERT_EQUAL_FATAL(need, -1);
    if (s->paged && st == PGD_OK) CU_ASSERT_EQUAL_FATAL(pgd_kv_free_blocks(s->m), free0 - need);
    if (s->paged && st == PGD_ERR_NO_BLOCKS) CU_ASSERT_FATAL(need > free0);
    if (!s->paged) CU_ASSERT_EQUAL_FATAL(need, st == PGD_OK ? 0 : -1);
    if (q->n + k > q->max_total || (!s->paged && q->n + k > q->true_total)) {
        /* beyond max_total always fails; beyond the true length only the
         * reservations of Oracle (exact) and Pow2 (rounded) may refuse */
        if (q->n + k > q->max_total) CU_ASSERT_EQUAL_FATAL(st, PGD_ERR_INVALID);
        if (st != PGD_OK) CU_ASSERT_EQUAL_FATAL(st, PGD_ERR_INVALID);
        if (st != PGD_OK) return;
    } else if (st == PGD_ERR_NO_BLOCKS) {
        CU_ASSERT_FATAL(s->paged);
        CU_ASSERT_EQUAL_FATAL(pgd_kv_num_tokens(s->m, q->id), q->n);
        CU_ASSERT_EQUAL_FATAL(pgd_kv_free_blocks(s->m), free0);
        s->no_blocks++;
        return;
    }
    CU_ASSERT_EQUAL_FATAL(st, PGD_OK);
    run_cow_copies(s);
    memcpy(q->toks + q->n, t, (size_t)k * sizeof *t);
    q->n += k;
    write_and_verify(s, q, q->n - k);
}

static void op_swap(rsim *s, rseq *q) {
    pgd_kv_copy c[32];
    int n = -1, out = !q->swapped;
    int need = pgd_kv_blocks_needed(s->m, q->id, q->n), free0 = pgd_kv_free_blocks(s->m);
    pgd_status st = out ? pgd_kv_swap_out(s->m, q->id, c, 32, &n)
                        : pgd_kv_swap_in(s->m, q->id, c, 32, &n);
    if (st == PGD_ERR_NO_BLOCKS) {
        s->no_blocks++;
        CU_ASSERT_EQUAL_FATAL(pgd_kv_is_swapped(s->m, q->id), q->swapped);
        if (!out && s->paged) CU_ASSERT_FATAL(need > free0);
        return;
    }
    if (!out) CU_ASSERT_EQUAL_FATAL(pgd_kv_free_blocks(s->m), free0 - need);
    CU_ASSERT_EQUAL_FATAL(st, PGD_OK);
    CU_ASSERT_EQUAL_FATAL(n, (q->n + s->bs - 1) / s->bs);
    if (out) apply(s, c, n, s->host, s->dev);
    else apply(s, c, n, s->dev, s->host);
    q->swapped = out;
    CU_ASSERT_EQUAL_FATAL(pgd_kv_is_swapped(s->m, q->id), out);
    if (!out) write_and_verify(s, q, q->n);
}

static rseq *pick(rsim *s, int want_live) {
    int start = rng_int(&s->rng, 0, RMAX - 1);
    for (int i = 0; i < RMAX; i++) {
        rseq *q = &s->seq[(start + i) % RMAX];
        if (q->live == want_live) return q;
    }
    return NULL;
}

static void random_run(const char *kind, int caching, uint64_t seed, int ops) {
    rsim *s = calloc(1, sizeof *s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    s->bs = 4;
    pgd_kv_caps caps = 0;
    CU_ASSERT_EQUAL_FATAL(pgd_kv_manager_find(kind, &caps), PGD_OK);
    s->nb = caps & PGD_KV_RESERVES_AT_ADMISSION ? 257 : 65;
    s->nh = 48;
    s->paged = (caps & PGD_KV_CAN_FORK) != 0; /* forks succeed */
    s->rng = seed;
    s->m = mk(kind, s->bs, s->nb, s->nh, 96, caching);
    s->dev = calloc((size_t)s->nb * s->bs, sizeof *s->dev);
    s->host = calloc((size_t)s->nh * s->bs, sizeof *s->host);
    CU_ASSERT_FATAL(s->dev && s->host);
    int free_start = pgd_kv_free_blocks(s->m);
    for (int it = 0; it < ops; it++) {
        int r = rng_int(&s->rng, 0, 99);
        rseq *q = pick(s, 1);
        if (r < 22 || !q) {
            rseq *slot = pick(s, 0);
            if (slot) op_add(s, slot);
        } else if (r < 60) {
            if (q->swapped) op_swap(s, q);
            else op_append(s, q);
        } else if (r < 72) {
            rseq *slot = pick(s, 0);
            if (!slot || q->swapped) continue;
            pgd_status st = pgd_kv_fork(s->m, q->id, s->next_id);
            if (!s->paged) {
                CU_ASSERT_EQUAL_FATAL(st, PGD_ERR_UNSUPPORTED);
                continue;
            }
            CU_ASSERT_EQUAL_FATAL(st, PGD_OK);
            *slot = *q;
            slot->id = s->next_id++;
            write_and_verify(s, slot, slot->n);
        } else if (r < 86) {
            CU_ASSERT_EQUAL_FATAL(pgd_kv_free(s->m, q->id), PGD_OK);
            q->live = 0;
        } else {
            op_swap(s, q);
        }
        CHECK_OK(s->m);
        pgd_kv_stats st = stats(s->m);
        CU_ASSERT_EQUAL_FATAL(st.used_blocks + st.free_blocks, st.num_blocks);
        s->ops_ok++;
    }
    /* every sequence still reads back its tokens (swapped ones after swap in) */
    for (int i = 0; i < RMAX; i++) {
        rseq *q = &s->seq[i];
        if (!q->live) continue;
        if (q->swapped) op_swap(s, q);
        if (!q->swapped) write_and_verify(s, q, q->n);
        CU_ASSERT_EQUAL(pgd_kv_free(s->m, q->id), PGD_OK);
        CHECK_OK(s->m);
    }
    pgd_kv_stats st = stats(s->m);
    CU_ASSERT_EQUAL(pgd_kv_free_blocks(s->m), free_start);
    CU_ASSERT_EQUAL(st.used_blocks, 0);
    CU_ASSERT_EQUAL(st.tokens_stored, 0);
    CU_ASSERT_EQUAL(st.host_blocks_used, 0);
    CU_ASSERT_EQUAL(st.num_seqs, 0);
    CU_ASSERT(s->no_blocks > 0); /* the pool was under pressure */
    if (caching) CU_ASSERT(s->hits > 0 && st.prefix_hits > 0);
    printf("\n    %-12s caching %d seed %llu: %ld ops, %ld NO_BLOCKS, %ld prefix hits", kind, caching,
           (unsigned long long)seed, s->ops_ok, s->no_blocks, s->hits);
    pgd_kv_manager_destroy(s->m);
    free(s->dev);
    free(s->host);
    free(s);
}

/* Every registered manager: ones that can fork as paged (with prefix
 * caching where they can cache), the others as reservations. */
static void test_random_every_manager(void) {
    int k = 0;
    for (const char *const *kind = pgd_kv_manager_names(); *kind; kind++, k++) {
        pgd_kv_caps caps = 0;
        CU_ASSERT_EQUAL_FATAL(pgd_kv_manager_find(*kind, &caps), PGD_OK);
        if (caps & PGD_KV_CAN_FORK) {
            random_run(*kind, 0, 1, 5000);
            if (caps & PGD_KV_CAN_CACHE_PREFIX) {
                random_run(*kind, 1, 2, 5000);
                random_run(*kind, 1, 3, 5000);
            }
        } else {
            random_run(*kind, 0, 10 + (uint64_t)k, 4000);
        }
    }
    printf("\n    ");
}

/* ---- registration ---- */

static CU_TestInfo kv_tests[] = {
    {"config validation, registry and capabilities", test_config},
    {"invalid requests name the numbers", test_invalid_requests},
    {"paged: allocate, NO_BLOCKS changes nothing, free", test_paged_alloc_free},
    {"paged: fork shares, copy-on-write copies", test_fork_cow},
    {"paged: prefix-cache hits with exact counts", test_prefix_hits},
    {"paged: cached blocks reused after free", test_cache_reuse_after_free},
    {"paged: LRU eviction order", test_lru_eviction},
    {"paged: swap out/in round trip", test_swap_paged},
    {"contiguous: reservation per kind", test_orca_reservations},
    {"contiguous: buddy fragmentation", test_buddy_fragmentation},
    {"contiguous: swap out/in round trip", test_swap_contiguous},
    {"utilization on a fixed workload", test_utilization},
    {"block queries for the scheduler", test_block_queries},
    {"random operations: every registered manager", test_random_every_manager},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "kv_manager", .pTests = kv_tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
