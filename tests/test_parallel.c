/* test_parallel.c - tensor and pipeline parallel layouts over the threads
 * communicator, against the one-rank model:
 *  - stories260K golden tokens exactly, through the engine, with filler
 *    requests, recompute and swap preemption and n = 2 forks (so the KV
 *    cache's copy and swap commands reach every rank), for TP 2, PP 2,
 *    TP 2 x PP 2, TP 4, PP with uneven stage layers;
 *  - random stories15M-shape logits of a ragged batch (prefill chunks and
 *    decode tokens mixed) within 1e-4 relative error of TP 1, and the same
 *    greedy token wherever the top-two gap exceeds that error;
 *  - bad layouts rejected with a clear message; a rank that fails gives the
 *    driver PGD_ERR_COMM naming it, and nothing hangs.
 * The same layouts over MPI are tests/mpi/test_parallel_mpi.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda/engine.h"
#include "pagoda/model.h"
#include "pagoda/parallel.h"
#include "pagoda/config.h"
#include "pagoda/runner.h"
#include "pagoda/tokenizer.h"
#include "parallel_batch.h"
#include "test_util.h"

#define MODEL "models/stories260K/stories260K.bin"
#define TOKENIZER "models/stories260K/tok512.bin"

static pgd_golden G[8];
static int NG;
static pgd_tokenizer *TOK;

static int suite_init(void) {
    NG = pgd_test_load_goldens(G, 8);
    if (NG == 0) return -1;
    return pgd_tokenizer_load_llama2c(pgd_test_data(TOKENIZER), 512, &TOK) == PGD_OK ? 0 : -1;
}

static int suite_clean(void) {
    pgd_tokenizer_destroy(TOK);
    return 0;
}

/* A loaded layout: the driver's backend and model. */
typedef struct layout {
    pgd_backend *be;
    pgd_model *m;
    pgd_backend_config bc, rank_bc;
    pgd_parallel_config pc;
} layout;

static pgd_status open_layout(layout *L, const char *spec, int tp, int pp, const char *stages, int pin) {
    memset(L, 0, sizeof *L);
    L->pc = (pgd_parallel_config){.tp = tp, .pp = pp, .comm = "threads", .stage_layers = stages, .pin = pin};
    L->bc = (pgd_backend_config){.name = "cpu", .num_threads = 2};
    pgd_model_load_opts mo = {0};
    PGD_TRY(pgd_parallel_prepare(&L->pc, 2, &L->bc, &L->rank_bc, &mo));
    PGD_TRY(pgd_backend_create(&L->bc, &L->be));
    pgd_status s = pgd_model_load(spec, &mo, L->be, &L->m);
    if (s != PGD_OK) {
        pgd_backend_destroy(L->be);
        L->be = NULL;
    }
    return s;
}

static void close_layout(layout *L) {
    pgd_model_destroy(L->m);
    pgd_backend_destroy(L->be);
    memset(L, 0, sizeof *L);
}

static pgd_request_params filler(int i, int32_t *buf) {
    int np = 3 + (i * 37) % 60;
    buf[0] = 1;
    for (int k = 1; k < np; k++) buf[k] = 260 + (i * 31 + k * 17) % 240;
    int mt = 4 + (i * 13) % 40;
    return (pgd_request_params){.prompt = buf, .n_prompt = np, .max_tokens = mt, .true_output_len = mt,
                                .ignore_eos = 1};
}

/* The goldens (the first with n = 2 greedy forks) among fillers under a
 * small block budget; every sequence of every golden must match. */
static void golden_run(int tp, int pp, const char *stages, pgd_preempt_mode mode, const char *what) {
    layout L;
    pgd_status s = open_layout(&L, pgd_test_data(MODEL), tp, pp, stages, 0);
    if (s != PGD_OK) fprintf(stderr, "\n%s: %s\n", what, pgd_last_error());
    CU_ASSERT_EQUAL_FATAL(s, PGD_OK);
    pgd_engine_config cfg = {.block_size = 16, .num_blocks = 40, .max_num_batched_tokens = 512,
                             .max_num_seqs = 16, .num_host_blocks = 128, .preemption = mode};
    pgd_engine *e = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_engine_create(&cfg, L.m, TOK, &e), PGD_OK);
    int32_t buf[128];
    int64_t gid[8];
    int nf = 0;
    for (; nf < 6; nf++) {
        pgd_request_params p = filler(nf, buf);
        CU_ASSERT_EQUAL_FATAL(pgd_engine_add_request(e, &p, NULL), PGD_OK);
    }
    CU_ASSERT_EQUAL_FATAL(pgd_engine_step(e, NULL), PGD_OK);
    for (int g = 0; g < NG; g++) {
        pgd_request_params p = {.prompt = G[g].ptoks, .n_prompt = G[g].np, .max_tokens = G[g].ng,
                                .true_output_len = G[g].ng, .n = g == 0 ? 2 : 1};
        CU_ASSERT_EQUAL_FATAL(pgd_engine_add_request(e, &p, &gid[g]), PGD_OK);
    }
    while (pgd_engine_has_unfinished(e)) {
        if (nf < 20) {
            pgd_request_params p = filler(nf++, buf);
            CU_ASSERT_EQUAL_FATAL(pgd_engine_add_request(e, &p, NULL), PGD_OK);
        }
        pgd_status st = pgd_engine_step(e, NULL);
        if (st != PGD_OK) fprintf(stderr, "\n%s: %s\n", what, pgd_last_error());
        CU_ASSERT_EQUAL_FATAL(st, PGD_OK);
    }
    for (int g = 0; g < NG; g++) {
        const pgd_request_output *o = NULL;
        CU_ASSERT_EQUAL_FATAL(pgd_engine_get_output(e, gid[g], &o), PGD_OK);
        CU_ASSERT_EQUAL(o->num_seqs, g == 0 ? 2 : 1);
        for (int k = 0; k < o->num_seqs; k++) {
            int ok = o->seqs[k].n_tokens == G[g].ng &&
                     !memcmp(o->seqs[k].tokens, G[g].gtoks, sizeof(int32_t) * (size_t)G[g].ng);
            if (!ok) {
                int mism = 0;
                while (mism < o->seqs[k].n_tokens && mism < G[g].ng && o->seqs[k].tokens[mism] == G[g].gtoks[mism])
                    mism++;
                fprintf(stderr, "\n%s: golden %d seq %d differs at token %d\n", what, g, k, mism);
            }
            CU_ASSERT(ok);
        }
    }
    pgd_engine_stats st;
    pgd_engine_get_stats(e, &st);
    CU_ASSERT(st.preemptions > 0); /* the copy / swap commands were exercised */
    CU_ASSERT_EQUAL(st.kv.used_blocks, 0);
    fprintf(stderr, "[%s: %lld steps, %lld preemptions] ", what, (long long)st.steps, (long long)st.preemptions);
    pgd_engine_destroy(e);
    close_layout(&L);
}

static void test_golden_tp2(void) { golden_run(2, 1, NULL, PGD_PREEMPT_RECOMPUTE, "tp2"); }
static void test_golden_pp2(void) { golden_run(1, 2, NULL, PGD_PREEMPT_SWAP, "pp2 swap"); }
static void test_golden_tp2_pp2(void) { golden_run(2, 2, NULL, PGD_PREEMPT_SWAP, "tp2 x pp2 swap"); }
/* every step split into micro-batches (by default only large steps are) */
static void test_golden_tp2_pp2_microbatches(void) {
    setenv("PAGODA_PP_MICROBATCHES", "2", 1);
    golden_run(2, 2, NULL, PGD_PREEMPT_RECOMPUTE, "tp2 x pp2, 2 micro-batches");
    unsetenv("PAGODA_PP_MICROBATCHES");
}
static void test_golden_tp4(void) { golden_run(4, 1, NULL, PGD_PREEMPT_SWAP, "tp4 swap"); }
static void test_golden_pp_uneven(void) {
    setenv("PAGODA_PP_MICROBATCHES", "3", 1);
    golden_run(1, 3, "1,3,1", PGD_PREEMPT_RECOMPUTE, "pp3 1,3,1, 3 micro-batches");
    unsetenv("PAGODA_PP_MICROBATCHES");
}

/* ---- logits of a random stories15M-shape model vs one rank ---- */

/* logits[step] for both steps; returns rows of step 0 in *rows0. */
static void run_logits(int tp, int pp, float **out, int *rows0) {
    layout L;
    char spec[] = "random:stories15M";
    pgd_status s = open_layout(&L, spec, tp, pp, NULL, 0);
    if (s != PGD_OK) fprintf(stderr, "\ntp %d pp %d: %s\n", tp, pp, pgd_last_error());
    CU_ASSERT_EQUAL_FATAL(s, PGD_OK);
    pgd_kv_cache *kv = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_model_kv_cache_create(L.m, PB_BS, PB_BLOCKS, &kv), PGD_OK);
    int V = pgd_model_get_config(L.m)->vocab_size;
    int32_t tok[128], qs[PB_NS + 1], lens[PB_NS], bt[PB_NS * PB_MBS];
    for (int step = 0; step < 2; step++) {
        pgd_batch b;
        pgd_parallel_batch(&b, tok, qs, lens, bt, step);
        int rows = b.all_logits ? b.num_tokens : b.num_seqs;
        if (step == 0) *rows0 = rows;
        out[step] = malloc(sizeof(float) * (size_t)rows * V);
        s = pgd_model_forward(L.m, kv, &b, out[step]);
        if (s != PGD_OK) fprintf(stderr, "\nforward tp %d pp %d: %s\n", tp, pp, pgd_last_error());
        CU_ASSERT_EQUAL_FATAL(s, PGD_OK);
    }
    pgd_kv_cache_destroy(kv);
    close_layout(&L);
}

static void compare_logits(int tp, int pp) {
    float *ref[2], *got[2];
    int r0, r1;
    run_logits(1, 1, ref, &r0);
    run_logits(tp, pp, got, &r1);
    CU_ASSERT_EQUAL_FATAL(r0, r1);
    const int V = 32000;
    for (int step = 0; step < 2; step++) {
        int rows = step == 0 ? r0 : PB_NS, checked, same;
        double err = pgd_parallel_compare(ref[step], got[step], rows, V, &checked, &same);
        fprintf(stderr, "[tp %d pp %d step %d: rel err %.2e, greedy same %d/%d] ", tp, pp, step, err, same, checked);
        CU_ASSERT(err < 1e-4);
        CU_ASSERT(checked > 0);
        CU_ASSERT_EQUAL(same, checked);
        free(ref[step]);
        free(got[step]);
    }
}

static void test_logits_tp2(void) { compare_logits(2, 1); }
static void test_logits_pp2(void) { compare_logits(1, 2); }
static void test_logits_tp2_pp2(void) { compare_logits(2, 2); }
static void test_logits_pp2_microbatches(void) {
    setenv("PAGODA_PP_MICROBATCHES", "2", 1);
    compare_logits(1, 2);
    setenv("PAGODA_PP_MICROBATCHES", "4", 1); /* more than stages: 4 in flight through 2 */
    compare_logits(2, 2);
    unsetenv("PAGODA_PP_MICROBATCHES");
}
static void test_logits_tp3(void) { compare_logits(3, 1); } /* 6 heads / 3; FFN 768 / 3 */

/* ---- bad layouts and failing ranks ---- */

static void expect_bad(const char *spec, int tp, int pp, const char *stages, const char *want) {
    layout L;
    pgd_status s = open_layout(&L, spec, tp, pp, stages, 0);
    CU_ASSERT_NOT_EQUAL(s, PGD_OK);
    const char *msg = pgd_last_error();
    int ok = strstr(msg, want) != NULL;
    if (!ok) fprintf(stderr, "\nexpected '%s' in: %s\n", want, msg);
    CU_ASSERT(ok);
    if (s == PGD_OK) close_layout(&L);
}

static void test_bad_layouts(void) {
    const char *m = pgd_test_data(MODEL);
    expect_bad(m, 3, 1, NULL, "must divide the query heads (8)"); /* 8 heads, 4 KV heads */
    expect_bad(m, 8, 1, NULL, "KV heads (4)");
    expect_bad(m, 1, 6, NULL, "6 pipeline stages but only 5 layers");
    expect_bad(m, 1, 2, "2,2", "add up to 4");
    expect_bad(m, 1, 2, "3", "must list 2 positive layer counts");
    expect_bad(m, 1, 2, "5,0", "must list 2 positive layer counts");
    expect_bad("random:stories15M", 4, 1, NULL, "must divide the query heads (6)");
    /* mpi without mpirun: a clear message, not a hang */
    pgd_parallel_config pc = {.tp = 2, .comm = "mpi"};
    pgd_backend_config bc = {.name = "cpu", .num_threads = 1}, rbc;
    pgd_model_load_opts mo = {0};
    pgd_backend *be = NULL;
    pgd_model *mm = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_parallel_prepare(&pc, 1, &bc, &rbc, &mo), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_backend_create(&bc, &be), PGD_OK);
    pgd_status s = pgd_model_load(m, &mo, be, &mm);
    CU_ASSERT_NOT_EQUAL(s, PGD_OK);
    fprintf(stderr, "[mpi without mpirun: %s] ", pgd_last_error());
    pgd_model_destroy(mm);
    pgd_backend_destroy(be);
    pc.comm = "carrier-pigeon";
    CU_ASSERT_NOT_EQUAL(pgd_parallel_prepare(&pc, 1, &bc, &rbc, &mo), PGD_OK);
    CU_ASSERT(strstr(pgd_last_error(), "carrier-pigeon") != NULL);
}

static void fail_rank_run(int tp, int pp, const char *rank) {
    setenv("PAGODA_TEST_FAIL_RANK", rank, 1);
    layout L;
    CU_ASSERT_EQUAL_FATAL(open_layout(&L, pgd_test_data(MODEL), tp, pp, NULL, 0), PGD_OK);
    pgd_kv_cache *kv = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_model_kv_cache_create(L.m, 16, 8, &kv), PGD_OK);
    int32_t tok[3] = {1, 403, 407}, qs[2] = {0, 3}, lens[1] = {3}, bt[1] = {1};
    pgd_batch b = {.num_seqs = 1, .num_tokens = 3, .tokens = tok, .query_start = qs, .seq_lens = lens,
                   .block_tables = bt, .max_blocks_per_seq = 1};
    float *logits = malloc(sizeof(float) * 512);
    pgd_status s = pgd_model_forward(L.m, kv, &b, logits);
    CU_ASSERT_NOT_EQUAL(s, PGD_OK);
    char want[64];
    snprintf(want, sizeof want, "rank %s", rank);
    const char *msg = pgd_last_error();
    fprintf(stderr, "[tp %d pp %d, rank %s fails: %s] ", tp, pp, rank, msg);
    CU_ASSERT(strstr(msg, want) != NULL && strstr(msg, "injected failure") != NULL);
    /* the model is dead now: further calls fail at once, destroy returns */
    CU_ASSERT_NOT_EQUAL(pgd_model_forward(L.m, kv, &b, logits), PGD_OK);
    free(logits);
    pgd_kv_cache_destroy(kv);
    close_layout(&L);
    unsetenv("PAGODA_TEST_FAIL_RANK");
}

static void test_failing_rank(void) {
    fail_rank_run(2, 1, "1");
    fail_rank_run(1, 2, "1");
    fail_rank_run(2, 2, "3");
    fail_rank_run(2, 2, "0");
}

static void test_pinning(void) {
    layout L;
    CU_ASSERT_EQUAL_FATAL(open_layout(&L, pgd_test_data(MODEL), 2, 1, NULL, 1), PGD_OK);
    const char *d = pgd_backend_describe(L.be);
    fprintf(stderr, "[%s; %s] ", d, pgd_model_layout_str(L.m));
    CU_ASSERT(strstr(d, "pinned to core") != NULL);
    close_layout(&L);
}

/* ---- the simulator: a sharded tensor-parallel engine run vs the analytic split ---- */

static void sim_run(const char *par, pgd_run_result *res) {
    char text[1024];
    snprintf(text, sizeof text,
             "[experiment]\nname = simtp\nseed = 3\n[model]\npath = random:opt-66b\ndtype = f16\nbackend = sim\n"
             "device = a100-40gb\n%s\n[engine]\nkv_memory = 21G\n[workload]\nnum_requests = 150\n"
             "input_len = sharegpt\noutput_len = sharegpt\nrate = 1\n", par);
    pgd_experiment *e = NULL;
    pgd_status s = pgd_experiment_load_string(text, "simtp.ini", &e);
    if (s != PGD_OK) fprintf(stderr, "\n%s\n", pgd_last_error());
    CU_ASSERT_EQUAL_FATAL(s, PGD_OK);
    s = pgd_run_execute(pgd_experiment_run(e, 0), NULL, res);
    if (s != PGD_OK) fprintf(stderr, "\n%s\n", pgd_last_error());
    CU_ASSERT_EQUAL_FATAL(s, PGD_OK);
    pgd_experiment_destroy(e);
}

static void test_sim_sharded_matches_analytic(void) {
    pgd_run_result one, ana, shard;
    sim_run("", &one);
    sim_run("tensor_parallel = 4", &ana);
    sim_run("[parallel]\ntp = 4", &shard);
    double t1 = one.summary.output_throughput, ta = ana.summary.output_throughput,
           ts = shard.summary.output_throughput;
    fprintf(stderr, "[OPT-66B ShareGPT 1 req/s: 1 GPU %.1f tok/s, 4 analytic %.1f, 4 sharded %.1f; %s] ", t1, ta,
            ts, shard.layout_desc);
    /* the same requests and tokens scheduled the same way; the sharded run
     * also pays the embedding and logits all-gathers the analytic one skips */
    CU_ASSERT_EQUAL(ana.summary.completed, shard.summary.completed);
    CU_ASSERT_EQUAL(ana.stats.tokens_generated, shard.stats.tokens_generated);
    CU_ASSERT(fabs(ts / ta - 1) < 0.01);
    CU_ASSERT(fabs(shard.summary.e2e.mean / ana.summary.e2e.mean - 1) < 0.02);
    CU_ASSERT(ts > 1.5 * t1); /* four GPUs do serve more */
    CU_ASSERT(strstr(shard.layout_desc, "over sim") != NULL);
    pgd_run_result_free(&one);
    pgd_run_result_free(&ana);
    pgd_run_result_free(&shard);
    /* pipeline stages are not simulated: a clear refusal */
    pgd_experiment *e = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_experiment_load_string("[model]\npath = random:opt-13b\nbackend = sim\n[parallel]\npp = 2\n"
                                                     "[workload]\nnum_requests = 2\n", "pp.ini", &e), PGD_OK);
    pgd_run_result r;
    CU_ASSERT_NOT_EQUAL(pgd_run_execute(pgd_experiment_run(e, 0), NULL, &r), PGD_OK);
    CU_ASSERT(strstr(pgd_last_error(), "pipeline") != NULL);
    pgd_run_result_free(&r);
    pgd_experiment_destroy(e);
}

static CU_TestInfo tests[] = {
    {"golden_tp2", test_golden_tp2},
    {"golden_pp2_swap", test_golden_pp2},
    {"golden_tp2_pp2_swap", test_golden_tp2_pp2},
    {"golden_tp2_pp2_microbatches", test_golden_tp2_pp2_microbatches},
    {"golden_tp4_swap", test_golden_tp4},
    {"golden_pp3_uneven_stages_microbatches", test_golden_pp_uneven},
    {"logits_tp2_vs_tp1", test_logits_tp2},
    {"logits_pp2_vs_tp1", test_logits_pp2},
    {"logits_tp2_pp2_vs_tp1", test_logits_tp2_pp2},
    {"logits_pp_microbatches_vs_tp1", test_logits_pp2_microbatches},
    {"logits_tp3_vs_tp1", test_logits_tp3},
    {"bad_layouts_rejected", test_bad_layouts},
    {"failing_rank_no_hang", test_failing_rank},
    {"pinning", test_pinning},
    {"sim_sharded_tp_matches_analytic", test_sim_sharded_matches_analytic},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "parallel", .pInitFunc = suite_init, .pCleanupFunc = suite_clean, .pTests = tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
