/* test_disagg.c - prefill/decode disaggregation's KV hand-off (engine.h):
 *  - token-exact: each stories260K golden prompt prefilled on engine A
 *    (prefill_only), exported, packed and unpacked (the bytes a
 *    communicator moves), imported into engine B on a separate executor and
 *    decoded gives exactly its golden tokens (f32 weights and KV); with an
 *    async B, a contiguous (orca-max) A that copies its KV out at once, and
 *    a B whose prefix cache already holds part of the prompt; with either
 *    side over tp 2 (and tp 2 x pp 2) ranks of threads;
 *  - seeded sampling: the sampled tokens through A -> B equal one engine's;
 *  - A's blocks are held until the export and free after it;
 *  - bad input: an import into an engine of another block size or model
 *    shape is rejected with a message; export of a request that is not
 *    prefill_only, twice, or one whose first token ended it; a truncated
 *    hand-off buffer;
 *  - f16 and q8 KV caches (rows with their scales) hand over exactly;
 *  - the sim: no data moves, the byte count is the blocks' size. */
#include <stdlib.h>
#include <string.h>

#include "pagoda/engine.h"
#include "pagoda/exec.h"
#include "test_util.h"

#define MODEL "models/stories260K/stories260K.bin"
#define TOKENIZER "models/stories260K/tok512.bin"

static pgd_golden G[8];
static int NG;
static pgd_exec *XA, *XB, *XBA; /* prefill side; decode side; decode side async */
static pgd_tokenizer *TOK;

static int suite_init(void) {
    NG = pgd_test_load_goldens(G, 8);
    pgd_exec_config xc = {.model = pgd_test_data(MODEL), .backend = {.name = "cpu", .num_threads = 1}};
    if (NG == 0 || pgd_exec_create(&xc, &XA) != PGD_OK || pgd_exec_create(&xc, &XB) != PGD_OK) return -1;
    xc.async = 1;
    if (pgd_exec_create(&xc, &XBA) != PGD_OK) return -1;
    return pgd_tokenizer_load_llama2c(pgd_test_data(TOKENIZER), 512, &TOK) == PGD_OK ? 0 : -1;
}

static int suite_clean(void) {
    pgd_tokenizer_destroy(TOK);
    pgd_exec_destroy(XA);
    pgd_exec_destroy(XB);
    pgd_exec_destroy(XBA);
    return 0;
}

static pgd_engine_config ecfg(int block_size) {
    return (pgd_engine_config){.block_size = block_size, .num_blocks = 1 + 4 * 256 / block_size, .max_num_seqs = 8};
}

/* Prefill p on a (prefill_only), hand it over through the wire format. */
static pgd_kv_handoff *prefill(pgd_engine *a, pgd_request_params p) {
    p.prefill_only = 1;
    int64_t id = -1;
    CU_ASSERT_EQUAL_FATAL(pgd_engine_add_request(a, &p, &id), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_engine_run(a), PGD_OK);
    const pgd_request_output *o = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_engine_get_output(a, id, &o), PGD_OK);
    CU_ASSERT(!o->finished && o->num_seqs == 1 && o->seqs[0].n_tokens == 1 && o->first_token >= 0); /* parked */
    pgd_kv_handoff *x = NULL, *y = NULL;
    pgd_status st = pgd_engine_export(a, id, &x);
    if (st != PGD_OK) fprintf(stderr, "export: %s\n", pgd_last_error());
    CU_ASSERT_EQUAL_FATAL(st, PGD_OK);
    void *buf = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(pgd_kv_handoff_pack(x, &buf, &n), PGD_OK);
    CU_ASSERT(n > x->kv_bytes);
    CU_ASSERT_EQUAL_FATAL(pgd_kv_handoff_unpack(buf, n, &y), PGD_OK);
    CU_ASSERT_EQUAL(y->kv_bytes, x->kv_bytes);
    CU_ASSERT(x->kv && y->kv && !memcmp(x->kv, y->kv, x->kv_bytes));
    pgd_kv_handoff *bad = NULL;
    CU_ASSERT_EQUAL(pgd_kv_handoff_unpack(buf, n - 1, &bad), PGD_ERR_FORMAT);
    CU_ASSERT_PTR_NULL(bad);
    free(buf);
    pgd_kv_handoff_free(x);
    pgd_engine_release(a, id);
    return y;
}

/* Decode x on b to the end; its tokens (first one included) into out. */
static int decode(pgd_engine *b, const pgd_kv_handoff *x, int32_t *out, int cap) {
    int64_t id = -1;
    pgd_status st = pgd_engine_import(b, x, &id);
    if (st != PGD_OK) fprintf(stderr, "import: %s\n", pgd_last_error());
    CU_ASSERT_EQUAL_FATAL(st, PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_engine_run(b), PGD_OK);
    const pgd_request_output *o = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_engine_get_output(b, id, &o), PGD_OK);
    CU_ASSERT(o->finished && o->num_seqs == 1 && !o->error);
    int n = o->seqs[0].n_tokens < cap ? o->seqs[0].n_tokens : cap;
    memcpy(out, o->seqs[0].tokens, sizeof(int32_t) * (size_t)n);
    CU_ASSERT(o->first_token >= o->arrival && o->finish >= o->first_token);
    pgd_engine_release(b, id);
    return n;
}

static void goldens_through(pgd_engine_config ca, pgd_exec *xb, pgd_engine_config cb, const char *what) {
    pgd_engine *a = NULL, *b = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_engine_create(&ca, XA, TOK, &a), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_engine_create(&cb, xb, TOK, &b), PGD_OK);
    for (int g = 0; g < NG; g++) {
        if (cb.prefix_caching) { /* b caches the prompt's first block through a request of its own */
            pgd_request_params w = {.prompt = G[g].ptoks, .n_prompt = G[g].np, .max_tokens = 1};
            CU_ASSERT_EQUAL_FATAL(pgd_engine_add_request(b, &w, NULL), PGD_OK);
            CU_ASSERT_EQUAL_FATAL(pgd_engine_run(b), PGD_OK);
        }
        pgd_request_params p = {.prompt = G[g].ptoks, .n_prompt = G[g].np, .max_tokens = G[g].ng};
        pgd_kv_handoff *x = prefill(a, p);
        pgd_engine_stats st;
        pgd_engine_get_stats(a, &st);
        CU_ASSERT_EQUAL(st.kv.used_blocks, 0); /* exported: a's blocks are free */
        int32_t out[1024];
        int n = decode(b, x, out, 1024);
        int ok = n == G[g].ng && !memcmp(out, G[g].gtoks, sizeof(int32_t) * (size_t)n);
        if (!ok) fprintf(stderr, "\n%s: golden %d differs (%d tokens)\n", what, g, n);
        CU_ASSERT(ok);
        pgd_kv_handoff_free(x);
    }
    if (cb.prefix_caching) { /* the imports found their first blocks cached */
        pgd_engine_stats st;
        pgd_engine_get_stats(b, &st);
        CU_ASSERT(st.kv.prefix_hits >= 1); /* "Once upon a time": 5 tokens, one full block */
    }
    pgd_engine_destroy(a);
    pgd_engine_destroy(b);
}

static void test_goldens(void) { goldens_through(ecfg(16), XB, ecfg(16), "sync"); }
static void test_goldens_async_bs8(void) { goldens_through(ecfg(8), XBA, ecfg(8), "async bs8"); }
static void test_goldens_contiguous_prefill(void) {
    pgd_engine_config ca = ecfg(16);
    ca.kv_manager = "orca-max";
    goldens_through(ca, XB, ecfg(16), "orca-max -> paged");
}
static void test_goldens_prefix_cached_decode(void) {
    pgd_engine_config cb = ecfg(4);
    cb.prefix_caching = 1;
    goldens_through(ecfg(4), XB, cb, "prefix-cached b");
}

/* Held until the export: a's blocks stay used while the request waits. */
static void test_blocks_held(void) {
    pgd_engine_config c = ecfg(16);
    pgd_engine *a = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_engine_create(&c, XA, TOK, &a), PGD_OK);
    pgd_request_params p = {.prompt = G[0].ptoks, .n_prompt = G[0].np, .max_tokens = 10, .prefill_only = 1};
    int64_t id;
    CU_ASSERT_EQUAL_FATAL(pgd_engine_add_request(a, &p, &id), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_engine_run(a), PGD_OK);
    CU_ASSERT(!pgd_engine_has_unfinished(a));
    const pgd_request_output *o = NULL;
    CU_ASSERT_EQUAL(pgd_engine_get_output(a, id, &o), PGD_OK);
    CU_ASSERT(!o->finished && o->finish_reason == NULL && o->first_token >= 0); /* parked */
    pgd_engine_stats st;
    pgd_engine_get_stats(a, &st);
    CU_ASSERT_EQUAL(st.kv.used_blocks, (G[0].np + 15) / 16);
    pgd_kv_handoff *x = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_engine_export(a, id, &x), PGD_OK);
    CU_ASSERT_EQUAL(x->n_blocks, (G[0].np + 15) / 16);
    CU_ASSERT_EQUAL(x->kv_bytes, x->n_blocks * pgd_exec_kv_block_bytes(XA));
    CU_ASSERT_EQUAL(x->first_token, G[0].gtoks[0]);
    pgd_engine_get_stats(a, &st);
    CU_ASSERT_EQUAL(st.kv.used_blocks, 0);
    CU_ASSERT_EQUAL(pgd_engine_get_output(a, id, &o), PGD_OK);
    CU_ASSERT(o->finished && !strcmp(o->finish_reason, "exported"));
    pgd_kv_handoff *y = NULL;
    CU_ASSERT_EQUAL(pgd_engine_export(a, id, &y), PGD_ERR_INVALID); /* twice */
    CU_ASSERT(strstr(pgd_last_error(), "exported already") != NULL);
    pgd_kv_handoff_free(x);
    /* a parked request released without export frees its blocks */
    CU_ASSERT_EQUAL_FATAL(pgd_engine_add_request(a, &p, &id), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_engine_run(a), PGD_OK);
    pgd_engine_release(a, id);
    pgd_engine_get_stats(a, &st);
    CU_ASSERT_EQUAL(st.kv.used_blocks, 0);
    pgd_engine_destroy(a);
}

/* The tokens request p generates on one engine over executor x (at most 128). */
static int run_one(pgd_exec *x, const pgd_engine_config *c, const pgd_request_params *p, int32_t *want) {
    pgd_engine *one = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_engine_create(c, x, TOK, &one), PGD_OK);
    int64_t id;
    CU_ASSERT_EQUAL_FATAL(pgd_engine_add_request(one, p, &id), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_engine_run(one), PGD_OK);
    const pgd_request_output *o = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_engine_get_output(one, id, &o), PGD_OK);
    int nw = o->seqs[0].n_tokens;
    CU_ASSERT_FATAL(nw <= 128);
    memcpy(want, o->seqs[0].tokens, sizeof(int32_t) * (size_t)nw);
    pgd_engine_destroy(one);
    return nw;
}

static void test_sampled(void) {
    pgd_sampling_params sp[] = {{.temperature = 0.9f, .top_k = 40, .top_p = 0.9f, .seed = 7},
                                {.temperature = 1.0f, .seed = 12345}};
    for (int k = 0; k < 2; k++)
        for (int g = 0; g < NG; g++) {
            pgd_request_params p = {.prompt = G[g].ptoks, .n_prompt = G[g].np, .max_tokens = 80, .sampling = sp[k]};
            pgd_engine_config c = ecfg(16);
            pgd_engine *a = NULL, *b = NULL;
            int32_t want[128], got[128];
            int nw = run_one(XB, &c, &p, want);
            CU_ASSERT_EQUAL_FATAL(pgd_engine_create(&c, XA, TOK, &a), PGD_OK);
            CU_ASSERT_EQUAL_FATAL(pgd_engine_create(&c, XBA, TOK, &b), PGD_OK);
            pgd_kv_handoff *x = prefill(a, p);
            int n = decode(b, x, got, 128);
            CU_ASSERT(nw > 1);
            CU_ASSERT(n == nw && !memcmp(got, want, sizeof(int32_t) * (size_t)n));
            pgd_kv_handoff_free(x);
            pgd_engine_destroy(a);
            pgd_engine_destroy(b);
        }
}

static void test_rejected(void) {
    pgd_engine_config c16 = ecfg(16), c8 = ecfg(8);
    pgd_engine *a = NULL, *b8 = NULL, *other = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_engine_create(&c16, XA, TOK, &a), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_engine_create(&c8, XB, TOK, &b8), PGD_OK);
    pgd_request_params p = {.prompt = G[0].ptoks, .n_prompt = G[0].np, .max_tokens = 10};
    pgd_kv_handoff *x = prefill(a, p);
    int64_t id = -1;
    CU_ASSERT_EQUAL(pgd_engine_import(b8, x, &id), PGD_ERR_INVALID);
    CU_ASSERT(strstr(pgd_last_error(), "block_size") != NULL);
    pgd_exec *xo = NULL;
    pgd_exec_config oc = {.model = "random:dim=64,layers=2,heads=4,kv_heads=2,hidden=96,vocab=512,seq=256",
                          .backend = {.name = "cpu", .num_threads = 1}};
    CU_ASSERT_EQUAL_FATAL(pgd_exec_create(&oc, &xo), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_engine_create(&c16, xo, NULL, &other), PGD_OK);
    CU_ASSERT_EQUAL(pgd_engine_import(other, x, &id), PGD_ERR_INVALID);
    CU_ASSERT(strstr(pgd_last_error(), "different model") != NULL);
    pgd_engine_destroy(other);
    pgd_exec_destroy(xo);
    pgd_kv_handoff_free(x);
    /* not prefill_only; n > 1 */
    CU_ASSERT_EQUAL_FATAL(pgd_engine_add_request(a, &p, &id), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_engine_run(a), PGD_OK);
    CU_ASSERT_EQUAL(pgd_engine_export(a, id, &x), PGD_ERR_INVALID);
    CU_ASSERT(strstr(pgd_last_error(), "prefill_only") != NULL);
    pgd_request_params p2 = p;
    p2.prefill_only = 1;
    p2.n = 2;
    CU_ASSERT_EQUAL(pgd_engine_add_request(a, &p2, &id), PGD_ERR_UNSUPPORTED);
    /* the first token ends it (max_tokens 1): exported as finished, nothing to import */
    p2.n = 1;
    p2.max_tokens = 1;
    CU_ASSERT_EQUAL_FATAL(pgd_engine_add_request(a, &p2, &id), PGD_OK);
    CU_ASSERT_EQUAL(pgd_engine_export(a, id, &x), PGD_ERR_INVALID); /* not finished yet */
    CU_ASSERT_EQUAL_FATAL(pgd_engine_run(a), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_engine_export(a, id, &x), PGD_OK);
    CU_ASSERT_STRING_EQUAL(x->finish_reason, "length");
    CU_ASSERT_EQUAL(x->kv_bytes, 0);
    pgd_engine_destroy(b8); /* one KV cache per executor */
    b8 = NULL;
    pgd_engine *b16 = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_engine_create(&c16, XB, TOK, &b16), PGD_OK);
    CU_ASSERT_EQUAL(pgd_engine_import(b16, x, &id), PGD_ERR_INVALID);
    CU_ASSERT(strstr(pgd_last_error(), "nothing to decode") != NULL);
    pgd_kv_handoff_free(x);
    pgd_engine_destroy(b16);
    pgd_engine_destroy(a);
    pgd_engine_destroy(b8);
}

/* The sim moves no data; the hand-off's size is its blocks' (what the link prices). */
static void test_sim(void) {
    pgd_exec *xa = NULL, *xb = NULL;
    pgd_exec_config xc = {.model = "random:stories260K",
                          .backend = {.name = "sim", .options = (const char *const[]){"device=cpu", NULL}}};
    CU_ASSERT_EQUAL_FATAL(pgd_exec_create(&xc, &xa), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_exec_create(&xc, &xb), PGD_OK);
    pgd_engine_config c = ecfg(16);
    c.clock = pgd_exec_clock(xa);
    pgd_engine *a = NULL, *b = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_engine_create(&c, xa, NULL, &a), PGD_OK);
    c.clock = pgd_exec_clock(xb);
    CU_ASSERT_EQUAL_FATAL(pgd_engine_create(&c, xb, NULL, &b), PGD_OK);
    int32_t prompt[40];
    for (int i = 0; i < 40; i++) prompt[i] = 1 + i;
    pgd_request_params p = {.prompt = prompt, .n_prompt = 40, .max_tokens = 9, .ignore_eos = 1, .prefill_only = 1};
    int64_t id;
    CU_ASSERT_EQUAL_FATAL(pgd_engine_add_request(a, &p, &id), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_engine_run(a), PGD_OK);
    pgd_kv_handoff *x = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_engine_export(a, id, &x), PGD_OK);
    CU_ASSERT_PTR_NULL(x->kv);
    CU_ASSERT_EQUAL(x->n_blocks, 3);
    CU_ASSERT_EQUAL(x->kv_bytes, 3 * pgd_exec_kv_block_bytes(xa));
    CU_ASSERT(x->kv_bytes > 0);
    /* the KV arrives 0.25 s after the prefill ended: b (idle, its clock at 0) waits for it */
    x->ready_time = pgd_clock_now(pgd_exec_clock(xa)) + 0.25;
    pgd_status ist = pgd_engine_import(b, x, &id);
    if (ist != PGD_OK) fprintf(stderr, "import: %s\n", pgd_last_error());
    CU_ASSERT_EQUAL_FATAL(ist, PGD_OK);
    CU_ASSERT(pgd_engine_has_unfinished(b));
    CU_ASSERT_EQUAL_FATAL(pgd_engine_run(b), PGD_OK);
    const pgd_request_output *o = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_engine_get_output(b, id, &o), PGD_OK);
    CU_ASSERT_EQUAL(o->seqs[0].n_tokens, 9);
    CU_ASSERT(o->seqs[0].token_times[1] > x->ready_time); /* its first decode ran after the KV arrived */
    CU_ASSERT(o->seqs[0].token_times[0] < x->ready_time);
    pgd_kv_handoff_free(x);
    pgd_engine_destroy(a);
    pgd_engine_destroy(b);
    pgd_exec_destroy(xa);
    pgd_exec_destroy(xb);
}

/* No room on b (max_num_seqs 1, busy): the import waits and is admitted
 * when the other request finishes; its tokens are still the golden ones. */
static void test_import_waits_for_room(void) {
    pgd_engine_config ca = ecfg(16), cb = ecfg(16);
    cb.max_num_seqs = 1;
    pgd_engine *a = NULL, *b = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_engine_create(&ca, XA, TOK, &a), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_engine_create(&cb, XB, TOK, &b), PGD_OK);
    pgd_request_params busy = {.prompt = G[0].ptoks, .n_prompt = G[0].np, .max_tokens = 30, .ignore_eos = 1};
    int64_t bid, id;
    CU_ASSERT_EQUAL_FATAL(pgd_engine_add_request(b, &busy, &bid), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_engine_step(b, NULL), PGD_OK);
    pgd_request_params p = {.prompt = G[0].ptoks, .n_prompt = G[0].np, .max_tokens = G[0].ng};
    pgd_kv_handoff *x = prefill(a, p);
    CU_ASSERT_EQUAL_FATAL(pgd_engine_import(b, x, &id), PGD_OK);
    pgd_kv_handoff_free(x); /* b kept its own copy */
    const pgd_request_output *o = NULL, *ob = NULL;
    int waited = 0;
    while (pgd_engine_has_unfinished(b)) {
        CU_ASSERT_EQUAL_FATAL(pgd_engine_step(b, NULL), PGD_OK);
        CU_ASSERT_EQUAL_FATAL(pgd_engine_get_output(b, id, &o), PGD_OK);
        CU_ASSERT_EQUAL_FATAL(pgd_engine_get_output(b, bid, &ob), PGD_OK);
        if (!ob->finished) {
            CU_ASSERT_EQUAL(o->seqs[0].n_tokens, 1); /* not admitted while b is full */
            waited++;
        }
    }
    CU_ASSERT(waited > 10);
    CU_ASSERT_EQUAL_FATAL(pgd_engine_get_output(b, id, &o), PGD_OK);
    CU_ASSERT(o->finished && o->seqs[0].n_tokens == G[0].ng &&
              !memcmp(o->seqs[0].tokens, G[0].gtoks, sizeof(int32_t) * (size_t)G[0].ng));
    pgd_engine_destroy(a);
    pgd_engine_destroy(b);
}

/* One side over tensor/pipeline-parallel ranks (threads): each rank's part
 * of the blocks gathered to (scattered from) the driver. */
static void parallel_side(int tp, int pp, int prefill_side) {
    pgd_exec *xp = NULL;
    pgd_exec_config xc = {.model = pgd_test_data(MODEL),
                          .backend = {.name = "cpu", .num_threads = tp * pp},
                          .parallel = {.tp = tp, .pp = pp, .comm = "threads"}};
    pgd_status st = pgd_exec_create(&xc, &xp);
    if (st != PGD_OK) fprintf(stderr, "\n  %s\n", pgd_last_error());
    CU_ASSERT_EQUAL_FATAL(st, PGD_OK);
    pgd_engine_config c = ecfg(16);
    pgd_engine *a = NULL, *b = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_engine_create(&c, prefill_side ? xp : XA, TOK, &a), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_engine_create(&c, prefill_side ? XB : xp, TOK, &b), PGD_OK);
    for (int g = 0; g < NG; g++) {
        pgd_request_params p = {.prompt = G[g].ptoks, .n_prompt = G[g].np, .max_tokens = G[g].ng};
        pgd_kv_handoff *x = prefill(a, p);
        int32_t out[1024];
        int n = decode(b, x, out, 1024);
        int ok = n == G[g].ng && !memcmp(out, G[g].gtoks, sizeof(int32_t) * (size_t)n);
        if (!ok)
            fprintf(stderr, "\n  tp %d pp %d on the %s side: golden %d differs\n", tp, pp,
                    prefill_side ? "prefill" : "decode", g);
        CU_ASSERT(ok);
        pgd_kv_handoff_free(x);
    }
    pgd_engine_destroy(a);
    pgd_engine_destroy(b);
    pgd_exec_destroy(xp);
}

static void test_tp2_prefill(void) { parallel_side(2, 1, 1); }
static void test_tp2_decode(void) { parallel_side(2, 1, 0); }
static void test_tp2_pp2_both_ways(void) {
    parallel_side(2, 2, 1);
    parallel_side(2, 2, 0);
}

/* Rounded KV caches (f16, q8: rows with their scales) hand over as stored:
 * A -> B gives exactly the tokens one engine with that cache gives. */
static void test_rounded_kv(void) {
    static const char *kts[] = {"f16", "q8"};
    for (int k = 0; k < 2; k++) {
        pgd_exec *xa = NULL, *xb = NULL;
        pgd_exec_config xc = {.model = pgd_test_data(MODEL),
                              .backend = {.name = "cpu", .num_threads = 1, .kv_dtype = kts[k]}};
        pgd_status st = pgd_exec_create(&xc, &xa);
        if (st != PGD_OK) fprintf(stderr, "\n  %s: %s\n", kts[k], pgd_last_error());
        CU_ASSERT_EQUAL_FATAL(st, PGD_OK);
        CU_ASSERT_EQUAL_FATAL(pgd_exec_create(&xc, &xb), PGD_OK);
        pgd_engine_config c = ecfg(16);
        for (int g = 0; g < NG; g++) {
            pgd_request_params p = {.prompt = G[g].ptoks, .n_prompt = G[g].np, .max_tokens = 120};
            pgd_engine *a = NULL, *b = NULL;
            int32_t want[128], got[128];
            int nw = run_one(xb, &c, &p, want);
            CU_ASSERT_EQUAL_FATAL(pgd_engine_create(&c, xa, TOK, &a), PGD_OK);
            CU_ASSERT_EQUAL_FATAL(pgd_engine_create(&c, xb, TOK, &b), PGD_OK);
            pgd_kv_handoff *x = prefill(a, p);
            CU_ASSERT_EQUAL(x->block_bytes, pgd_exec_kv_block_bytes(xa));
            int n = decode(b, x, got, 128);
            int ok = n == nw && !memcmp(got, want, sizeof(int32_t) * (size_t)n);
            if (!ok) fprintf(stderr, "\n  %s KV: golden prompt %d differs from one engine\n", kts[k], g);
            CU_ASSERT(ok);
            pgd_kv_handoff_free(x);
            pgd_engine_destroy(a);
            pgd_engine_destroy(b);
        }
        pgd_exec_destroy(xa);
        pgd_exec_destroy(xb);
    }
}

static CU_TestInfo tests[] = {
    {"f16 and q8 KV: A -> B = one engine", test_rounded_kv},
    {"goldens: tp 2 prefill side", test_tp2_prefill},
    {"goldens: tp 2 decode side", test_tp2_decode},
    {"goldens: tp 2 x pp 2 either side", test_tp2_pp2_both_ways},
    {"import waits for room", test_import_waits_for_room},
    {"goldens: prefill on A, decode on B", test_goldens},
    {"goldens: async B, block size 8", test_goldens_async_bs8},
    {"goldens: contiguous A (staged KV)", test_goldens_contiguous_prefill},
    {"goldens: B's prefix cache holds part", test_goldens_prefix_cached_decode},
    {"blocks held until export", test_blocks_held},
    {"seeded sampling equals one engine", test_sampled},
    {"bad input rejected", test_rejected},
    {"sim: byte count only", test_sim},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "disagg", .pInitFunc = suite_init, .pCleanupFunc = suite_clean, .pTests = tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
