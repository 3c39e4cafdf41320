/* test_golden.c - stories260K (tok512) greedy generation must reproduce the
 * reference llama2.c run.c tokens in ../shared/data/golden exactly:
 *  - through the `pagoda generate` command (JSON output), per golden line;
 *  - through the library with all golden prompts decoding together in one
 *    ragged batch, with shuffled block tables, several block sizes and the
 *    prompts prefilled in small chunks. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda/model.h"
#include "pagoda/sampler.h"
#include "test_util.h"

#define MODEL "models/stories260K/stories260K.bin"
#define TOKENIZER "models/stories260K/tok512.bin"
#define GOLDEN "golden/stories260K_greedy.jsonl"

typedef struct golden {
    char prompt[256];
    int np, ng;
    int32_t ptoks[64];
    int32_t gtoks[1024];
} golden;

static golden G[8];
static int NG;

static int load_golden(void) {
    FILE *f = fopen(pgd_test_data(GOLDEN), "r");
    if (!f) return -1;
    char line[65536];
    NG = 0;
    while (NG < 8 && fgets(line, sizeof line, f)) {
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        if (!o) { fclose(f); return -1; }
        golden *g = &G[NG++];
        snprintf(g->prompt, sizeof g->prompt, "%s", json_string_value(json_object_get(o, "prompt")));
        json_t *pt = json_object_get(o, "prompt_tokens"), *gt = json_object_get(o, "greedy_new_tokens");
        g->np = (int)json_array_size(pt);
        g->ng = (int)json_array_size(gt);
        if (g->np > 64 || g->ng > 1024) { json_decref(o); fclose(f); return -1; }
        for (int i = 0; i < g->np; i++) g->ptoks[i] = (int32_t)json_integer_value(json_array_get(pt, i));
        for (int i = 0; i < g->ng; i++) g->gtoks[i] = (int32_t)json_integer_value(json_array_get(gt, i));
        json_decref(o);
    }
    fclose(f);
    return NG > 0 ? 0 : -1;
}

static int suite_init(void) { return load_golden(); }

static void test_cli_matches_golden(void) {
    for (int gi = 0; gi < NG; gi++) {
        golden *g = &G[gi];
        char args[4096], model[1024], tok[1024];
        snprintf(model, sizeof model, "%s", pgd_test_data(MODEL));
        snprintf(tok, sizeof tok, "%s", pgd_test_data(TOKENIZER));
        snprintf(args, sizeof args, "generate --model '%.1000s' --tokenizer '%.1000s' --prompt '%.255s' --max-tokens %d --output json",
                 model, tok, g->prompt, g->ng);
        char *out = NULL, *err = NULL;
        int rc = pgd_test_run_cli(args, &out, &err);
        CU_ASSERT_EQUAL(rc, 0);
        if (rc != 0) fprintf(stderr, "stderr: %s\n", err ? err : "");
        json_error_t je;
        json_t *o = out ? json_loads(out, 0, &je) : NULL;
        CU_ASSERT_PTR_NOT_NULL_FATAL(o);
        json_t *pt = json_object_get(o, "prompt_tokens"), *gt = json_object_get(o, "tokens");
        CU_ASSERT_EQUAL(json_array_size(pt), (size_t)g->np);
        for (int i = 0; i < g->np && i < (int)json_array_size(pt); i++)
            CU_ASSERT_EQUAL(json_integer_value(json_array_get(pt, i)), g->ptoks[i]);
        CU_ASSERT_EQUAL(json_array_size(gt), (size_t)g->ng);
        int mism = -1;
        for (int i = 0; i < g->ng && i < (int)json_array_size(gt); i++)
            if (json_integer_value(json_array_get(gt, i)) != g->gtoks[i]) { mism = i; break; }
        if (mism >= 0) fprintf(stderr, "prompt '%s': first mismatch at generated token %d\n", g->prompt, mism);
        CU_ASSERT_EQUAL(mism, -1);
        CU_ASSERT_PTR_NOT_NULL(json_string_value(json_object_get(o, "text")));
        json_decref(o);
        free(out);
        free(err);
    }
}

/* All golden prompts in one ragged batch: each step every unfinished
 * sequence contributes either its next prefill chunk or one decode token. */
static void run_batched(int block_size, int chunk, int threads) {
    pgd_backend *be = NULL;
    pgd_backend_config bc = {.name = "cpu", .num_threads = threads};
    CU_ASSERT_EQUAL_FATAL(pgd_backend_create(&bc, &be), PGD_OK);
    pgd_model *m = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_model_load(pgd_test_data(MODEL), NULL, be, &m), PGD_OK);
    const pgd_model_config *c = pgd_model_get_config(m);
    int max_len = 0;
    for (int i = 0; i < NG; i++)
        if (G[i].np + G[i].ng > max_len) max_len = G[i].np + G[i].ng;
    int mb = (max_len + block_size - 1) / block_size;
    int nblocks = NG * mb + 1;
    pgd_kv_cache *kv = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_kv_cache_create(be, c, block_size, nblocks, &kv), PGD_OK);
    /* interleave the sequences' blocks in a scrambled order: block j of seq s */
    int32_t *tables = calloc((size_t)NG * mb, sizeof(int32_t));
    for (int s = 0; s < NG; s++)
        for (int j = 0; j < mb; j++) {
            int lin = j * NG + s;
            tables[s * mb + j] = 1 + (int)(((long)lin * 7 + 3) % (NG * mb));
        }
    int done_prefill[8] = {0}, ngen[8] = {0}, finished[8] = {0};
    int32_t gen[8][1024];
    int32_t *toks = malloc(sizeof(int32_t) * 4096), qs[9], lens[8], bt[8 * 512];
    float *logits = malloc(sizeof(float) * 8 * c->vocab_size);
    int seq_of[8];
    for (int step = 0; step < 4096; step++) {
        int S = 0, T = 0;
        for (int s = 0; s < NG; s++) {
            golden *g = &G[s];
            if (finished[s]) continue;
            qs[S] = T;
            if (done_prefill[s] < g->np) {
                int n = g->np - done_prefill[s] < chunk ? g->np - done_prefill[s] : chunk;
                memcpy(toks + T, g->ptoks + done_prefill[s], sizeof(int32_t) * n);
                T += n;
                lens[S] = done_prefill[s] + n;
                done_prefill[s] += n;
            } else {
                toks[T++] = gen[s][ngen[s] - 1];
                lens[S] = g->np + ngen[s];
            }
            memcpy(bt + S * mb, tables + s * mb, sizeof(int32_t) * mb);
            seq_of[S++] = s;
        }
        if (!S) break;
        qs[S] = T;
        pgd_batch b = {.num_seqs = S, .num_tokens = T, .tokens = toks, .query_start = qs,
                       .seq_lens = lens, .block_tables = bt, .max_blocks_per_seq = mb};
        CU_ASSERT_EQUAL_FATAL(pgd_model_forward(m, kv, &b, logits), PGD_OK);
        for (int i = 0; i < S; i++) {
            int s = seq_of[i];
            if (done_prefill[s] < G[s].np) continue; /* mid-prefill: logits unused */
            gen[s][ngen[s]++] = pgd_argmax(logits + (size_t)i * c->vocab_size, c->vocab_size);
            if (ngen[s] == G[s].ng || gen[s][ngen[s] - 1] == 1) finished[s] = 1;
        }
    }
    for (int s = 0; s < NG; s++) {
        CU_ASSERT_EQUAL(ngen[s], G[s].ng);
        int mism = -1;
        for (int i = 0; i < ngen[s] && i < G[s].ng; i++)
            if (gen[s][i] != G[s].gtoks[i]) { mism = i; break; }
        if (mism >= 0)
            fprintf(stderr, "batched (bs=%d chunk=%d): prompt %d first mismatch at %d\n", block_size, chunk, s, mism);
        CU_ASSERT_EQUAL(mism, -1);
    }
    free(toks);
    free(logits);
    free(tables);
    pgd_kv_cache_destroy(kv);
    pgd_model_destroy(m);
    pgd_backend_destroy(be);
}

static void test_batched_bs16(void) { run_batched(16, 512, 0); }
static void test_batched_bs8_chunked(void) { run_batched(8, 2, 0); }
static void test_batched_bs32_single_thread(void) { run_batched(32, 3, 1); }

static CU_TestInfo tests[] = {
    {"cli_generate_matches_golden", test_cli_matches_golden},
    {"batched_block16", test_batched_bs16},
    {"batched_block8_chunked_prefill", test_batched_bs8_chunked},
    {"batched_block32_one_thread", test_batched_bs32_single_thread},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "golden", .pInitFunc = suite_init, .pTests = tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
