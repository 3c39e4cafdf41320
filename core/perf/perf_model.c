/* perf_model.c - the perf gate's compute workloads, on the CPU backend with
 * one thread (no thread pool: counts do not depend on scheduling):
 *   decode_b1      8 decode steps of one sequence at context 128..135
 *   decode_b32     2 decode steps of 32 sequences at context 128..129
 *   prefill_128    one 128-token prompt, one forward pass
 *   attention_long the paged attention kernel alone: 8 sequences decoding
 *                  at contexts 4096..7680, GQA 8/2 heads of 64, scattered blocks
 *   decode_b1_q8_0, decode_b1_q4_0, prefill_128_q8_0
 *                  decode_b1 and prefill_128 with the weights quantized (the
 *                  CPU backend's x8 layouts and their decode kernels, the
 *                  GEMM packing from them)
 * The model is a fixed random shape (PERF_SHAPE, weight seed 1234); the KV
 * cache is filled in the set-up with fixed pseudo-random values, so a
 * decode step attends over a real-looking context without a prefill. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "pagoda/backend.h"
#include "pagoda/model.h"
#include "perf/perf_impl.h"
#include "util/rng.h"

#define PERF_SHAPE "random:dim=256,layers=4,heads=8,kv_heads=4,hidden=768,vocab=4096,seq=1024"
#define PERF_BLOCK 16

typedef struct fwd_state {
    pgd_backend *be;
    pgd_model *m;
    pgd_kv_cache *kv;
    const pgd_model_config *c;
    int nseq, ctx, steps, prefill; /* prefill: one forward of ctx tokens instead of decode steps */
    int mb;                        /* blocks per sequence */
    int32_t *tables, *toks, *qs, *lens;
    float *logits;
} fwd_state;

static void fill_values(float *x, size_t n, uint64_t seed) {
    pgd_rng r;
    pgd_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = (float)(pgd_rng_uniform(&r) - 0.5);
}

static void fwd_teardown(void *p) {
    fwd_state *s = p;
    if (!s) return;
    free(s->tables);
    free(s->toks);
    free(s->qs);
    free(s->lens);
    free(s->logits);
    pgd_kv_cache_destroy(s->kv);
    pgd_model_destroy(s->m);
    pgd_backend_destroy(s->be);
    free(s);
}

static pgd_status fwd_setup(int nseq, int ctx, int steps, int prefill, const char *dtype, void **out) {
    fwd_state *s = calloc(1, sizeof *s);
    if (!s) return pgd_error(PGD_ERR_OOM, "perf: out of memory");
    pgd_status st;
    pgd_backend_config bc = {.name = "cpu", .num_threads = 1};
    pgd_model_load_opts mo = {.seed = 1234};
    (void)pgd_cpu_isa(); /* the ISA is chosen on first use: not in the measured part */
    if ((st = pgd_backend_create(&bc, &s->be)) != PGD_OK) goto fail;
    char spec[160];
    snprintf(spec, sizeof spec, "%s%s%s", PERF_SHAPE, dtype ? ",dtype=" : "", dtype ? dtype : "");
    if ((st = pgd_model_load(spec, &mo, s->be, &s->m)) != PGD_OK) goto fail;
    s->c = pgd_model_get_config(s->m);
    s->nseq = nseq;
    s->ctx = ctx;
    s->steps = steps;
    s->prefill = prefill;
    s->mb = (ctx + steps + PERF_BLOCK - 1) / PERF_BLOCK;
    int rows = prefill ? ctx : nseq;
    s->tables = malloc(sizeof(int32_t) * (size_t)nseq * s->mb);
    s->toks = malloc(sizeof(int32_t) * (size_t)rows);
    s->qs = malloc(sizeof(int32_t) * (size_t)(nseq + 1));
    s->lens = malloc(sizeof(int32_t) * (size_t)nseq);
    s->logits = malloc(sizeof(float) * (size_t)nseq * s->c->vocab_size);
    if (!s->tables || !s->toks || !s->qs || !s->lens || !s->logits) {
        st = pgd_error(PGD_ERR_OOM, "perf: out of memory");
        goto fail;
    }
    /* sequence q's logical block i lives in block 1 + i * nseq + q: interleaved, as after churn */
    for (int q = 0; q < nseq; q++)
        for (int i = 0; i < s->mb; i++) s->tables[q * s->mb + i] = 1 + i * nseq + q;
    int nblocks = nseq * s->mb + 1;
    if ((st = pgd_model_kv_cache_create(s->m, PERF_BLOCK, nblocks, &s->kv)) != PGD_OK) goto fail;
    if (!prefill) { /* a context to attend over: fixed values in every K and V block */
        size_t lf = (size_t)nblocks * s->c->n_kv_heads * PERF_BLOCK * s->c->head_dim;
        float *h = malloc(sizeof(float) * lf);
        if (!h) {
            st = pgd_error(PGD_ERR_OOM, "perf: out of memory");
            goto fail;
        }
        for (int l = 0; l < s->c->n_layers && st == PGD_OK; l++) {
            fill_values(h, lf, 100 + 2 * (uint64_t)l);
            st = pgd_backend_upload(s->be, pgd_kv_cache_k(s->kv, l), h, sizeof(float) * lf);
            fill_values(h, lf, 101 + 2 * (uint64_t)l);
            if (st == PGD_OK) st = pgd_backend_upload(s->be, pgd_kv_cache_v(s->kv, l), h, sizeof(float) * lf);
        }
        free(h);
        if (st != PGD_OK) goto fail;
    }
    *out = s;
    return PGD_OK;
fail:
    fwd_teardown(s);
    return st;
}

static pgd_status fwd_run(void *p) {
    fwd_state *s = p;
    int V = s->c->vocab_size;
    if (s->prefill) {
        for (int i = 0; i < s->ctx; i++) s->toks[i] = (i * 7919 + 13) % V;
        int32_t qs[2] = {0, s->ctx}, len = s->ctx;
        pgd_batch b = {.num_seqs = 1, .num_tokens = s->ctx, .tokens = s->toks, .query_start = qs,
                       .seq_lens = &len, .block_tables = s->tables, .max_blocks_per_seq = s->mb};
        return pgd_model_forward(s->m, s->kv, &b, s->logits);
    }
    for (int st = 0; st < s->steps; st++) {
        for (int q = 0; q < s->nseq; q++) {
            s->toks[q] = (q * 31 + st * 17 + 5) % V;
            s->qs[q] = q;
            s->lens[q] = s->ctx + st + 1;
        }
        s->qs[s->nseq] = s->nseq;
        pgd_batch b = {.num_seqs = s->nseq, .num_tokens = s->nseq, .tokens = s->toks, .query_start = s->qs,
                       .seq_lens = s->lens, .block_tables = s->tables, .max_blocks_per_seq = s->mb};
        PGD_TRY(pgd_model_forward(s->m, s->kv, &b, s->logits));
    }
    return PGD_OK;
}

/* The last step's logits (they depend on every earlier step through the cache). */
static uint64_t fwd_check(void *p) {
    fwd_state *s = p;
    return pgd_perf_hash(PGD_PERF_HASH0, s->logits, sizeof(float) * (size_t)s->c->vocab_size * s->nseq);
}

static pgd_status decode_b1_setup(const pgd_perf_env *env, void **out) { return fwd_setup(1, 128, 8, 0, NULL, out); }
static pgd_status decode_b32_setup(const pgd_perf_env *env, void **out) { return fwd_setup(32, 128, 2, 0, NULL, out); }
static pgd_status prefill_setup(const pgd_perf_env *env, void **out) { return fwd_setup(1, 128, 0, 1, NULL, out); }
static pgd_status decode_b1_q8_setup(const pgd_perf_env *env, void **out) {
    return fwd_setup(1, 128, 8, 0, "q8_0", out);
}
static pgd_status decode_b1_q4_setup(const pgd_perf_env *env, void **out) {
    return fwd_setup(1, 128, 8, 0, "q4_0", out);
}
static pgd_status prefill_q8_setup(const pgd_perf_env *env, void **out) { return fwd_setup(1, 128, 0, 1, "q8_0", out); }

const pgd_perf_workload pgd_perf_decode_b1 = {
    .name = "decode_b1",
    .what = "8 decode steps, batch 1, context 128 (random dim-256 4-layer GQA model, 1 thread)",
    .setup = decode_b1_setup, .run = fwd_run, .check = fwd_check, .teardown = fwd_teardown};
const pgd_perf_workload pgd_perf_decode_b32 = {
    .name = "decode_b32",
    .what = "2 decode steps, batch 32, context 128 (same model)",
    .setup = decode_b32_setup, .run = fwd_run, .check = fwd_check, .teardown = fwd_teardown};
const pgd_perf_workload pgd_perf_prefill_128 = {
    .name = "prefill_128",
    .what = "one forward pass over a 128-token prompt (same model)",
    .setup = prefill_setup, .run = fwd_run, .check = fwd_check, .teardown = fwd_teardown};
const pgd_perf_workload pgd_perf_decode_b1_q8_0 = {.name = "decode_b1_q8_0",
                                                   .what =
                                                       "decode_b1 with q8_0 weights (the cpu backend's q8_0x8 layout)",
                                                   .setup = decode_b1_q8_setup,
                                                   .run = fwd_run,
                                                   .check = fwd_check,
                                                   .teardown = fwd_teardown};
const pgd_perf_workload pgd_perf_decode_b1_q4_0 = {.name = "decode_b1_q4_0",
                                                   .what =
                                                       "decode_b1 with q4_0 weights (the cpu backend's q4_0x8 layout)",
                                                   .setup = decode_b1_q4_setup,
                                                   .run = fwd_run,
                                                   .check = fwd_check,
                                                   .teardown = fwd_teardown};
const pgd_perf_workload pgd_perf_prefill_128_q8_0 = {.name = "prefill_128_q8_0",
                                                     .what = "prefill_128 with q8_0 weights (the integer GEMM)",
                                                     .setup = prefill_q8_setup,
                                                     .run = fwd_run,
                                                     .check = fwd_check,
                                                     .teardown = fwd_teardown};

/* ---- the paged attention kernel at a long context ---- */

#define ATT_SEQS 8
#define ATT_HEADS 8
#define ATT_KV_HEADS 2
#define ATT_HEAD_DIM 64

typedef struct att_state {
    float *kc, *vc, *q, *out;
    int32_t qs[ATT_SEQS + 1], lens[ATT_SEQS];
    int32_t *tables;
    int mb;
} att_state;

static void att_teardown(void *p) {
    att_state *s = p;
    if (!s) return;
    free(s->kc);
    free(s->vc);
    free(s->q);
    free(s->out);
    free(s->tables);
    free(s);
}

static pgd_status att_setup(const pgd_perf_env *env, void **out) {
    att_state *s = calloc(1, sizeof *s);
    if (!s) return pgd_error(PGD_ERR_OOM, "perf: out of memory");
    (void)pgd_cpu_isa();
    int total_blocks = 0;
    for (int q = 0; q < ATT_SEQS; q++) {
        s->lens[q] = 4096 + 512 * q;
        s->qs[q] = q;
        int nb = (s->lens[q] + PERF_BLOCK - 1) / PERF_BLOCK;
        if (nb > s->mb) s->mb = nb;
        total_blocks += nb;
    }
    s->qs[ATT_SEQS] = ATT_SEQS;
    size_t bf = (size_t)ATT_KV_HEADS * PERF_BLOCK * ATT_HEAD_DIM, cache = (size_t)(total_blocks + 1) * bf;
    s->kc = malloc(sizeof(float) * cache);
    s->vc = malloc(sizeof(float) * cache);
    s->q = malloc(sizeof(float) * ATT_SEQS * ATT_HEADS * ATT_HEAD_DIM);
    s->out = malloc(sizeof(float) * ATT_SEQS * ATT_HEADS * ATT_HEAD_DIM);
    s->tables = calloc((size_t)ATT_SEQS * s->mb, sizeof(int32_t));
    int *perm = malloc(sizeof(int) * (size_t)total_blocks);
    if (!s->kc || !s->vc || !s->q || !s->out || !s->tables || !perm) {
        free(perm);
        att_teardown(s);
        return pgd_error(PGD_ERR_OOM, "perf: out of memory");
    }
    fill_values(s->kc, cache, 7);
    fill_values(s->vc, cache, 8);
    fill_values(s->q, (size_t)ATT_SEQS * ATT_HEADS * ATT_HEAD_DIM, 9);
    /* blocks 1..total in a fixed shuffled order (Fisher-Yates, seed 10) */
    pgd_rng r;
    pgd_rng_seed(&r, 10);
    for (int i = 0; i < total_blocks; i++) perm[i] = i + 1;
    for (int i = total_blocks - 1; i > 0; i--) {
        int j = (int)pgd_rng_range(&r, 0, i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int q = 0, k = 0; q < ATT_SEQS; q++)
        for (int i = 0; i < (s->lens[q] + PERF_BLOCK - 1) / PERF_BLOCK; i++) s->tables[q * s->mb + i] = perm[k++];
    free(perm);
    *out = s;
    return PGD_OK;
}

static pgd_status att_run(void *p) {
    att_state *s = p;
    pgd_paged_attn a = {.out = s->out, .q = s->q, .k_cache = s->kc, .v_cache = s->vc, .query_start = s->qs,
                       .seq_lens = s->lens, .block_tables = s->tables, .num_seqs = ATT_SEQS,
                       .max_blocks_per_seq = s->mb, .n_heads = ATT_HEADS, .n_kv_heads = ATT_KV_HEADS,
                       .head_dim = ATT_HEAD_DIM, .block_size = PERF_BLOCK, .scale = 0.125f};
    pgd_cpu_paged_attention(NULL, &a);
    return PGD_OK;
}

static uint64_t att_check(void *p) {
    att_state *s = p;
    return pgd_perf_hash(PGD_PERF_HASH0, s->out, sizeof(float) * ATT_SEQS * ATT_HEADS * ATT_HEAD_DIM);
}

const pgd_perf_workload pgd_perf_attention_long = {
    .name = "attention_long",
    .what = "paged attention kernel: 8 sequences decoding at contexts 4096..7680, 8 query / 2 KV heads of 64",
    .setup = att_setup, .run = att_run, .check = att_check, .teardown = att_teardown};
