/* test_kquant.c - GGUF's k-quants (q4_k, q6_k) kept quantized: the formats
 * against their reference (pgd_dtype_to_f32, pgd_dtype_get, the quantizer's
 * half-step bound), and pgd_cpu_matmul / pgd_cpu_embedding on every ISA
 * path and thread pool against pgd_ref_matmul (dequantize, then f32 dot
 * products):
 *  - scalar path: W dequantized in pieces, f32 dot products: relative error
 *    under 1e-5 (summation order only);
 *  - AVX2 integer paths (n <= 8, and q4_k's batched GEMM above:
 *    matmul_qgemm_avx2.c): x rounded to int8 per block of 32 (d = max|x| /
 *    127), so each output is within sum over blocks of (d / 2) sum |w| of
 *    the reference, plus 1e-5 of the largest output (checked output by
 *    output);
 *  - AVX2 batched q6_k (n > 8): each chunk dequantized to f32, then the f32
 *    micro-kernel: bit-equal to the f32 matmul on the dequantized W, and
 *    within 1e-5 of the reference.
 * Outputs never depend on the thread pool. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "pagoda/model.h"
#include "test_util.h"

#define TOL 1e-5
#define N_POOLS 3

static pgd_threadpool *g_pool1, *g_pool2;
static pgd_backend *BE;
static const char *g_isas[2];
static int g_n_isas;
static const pgd_dtype KQ[2] = {PGD_Q4_K, PGD_Q6_K};

static int suite_init(void) {
    g_pool1 = pgd_threadpool_create(1);
    g_pool2 = pgd_threadpool_create(2);
    g_n_isas = 0;
    if (pgd_cpu_set_isa("avx2") == 0) g_isas[g_n_isas++] = "avx2";
    g_isas[g_n_isas++] = "scalar";
    pgd_backend_config bc = {.name = "cpu", .num_threads = 2};
    return g_pool1 && g_pool2 && pgd_backend_create(&bc, &BE) == PGD_OK ? 0 : 1;
}

static int suite_cleanup(void) {
    pgd_threadpool_destroy(g_pool1);
    pgd_threadpool_destroy(g_pool2);
    pgd_backend_destroy(BE);
    pgd_cpu_set_isa(g_isas[0]);
    return 0;
}

static pgd_threadpool *pool_at(int i) { return i == 0 ? NULL : i == 1 ? g_pool1 : g_pool2; }

/* Step (value of one quantum) of element i of a k-quant tensor: d sc_j. */
static double kstep(const void *w, pgd_dtype t, size_t i) {
    int j = (int)(i % PGD_QK_K);
    uint16_t dh;
    if (t == PGD_Q4_K) {
        const uint8_t *b = (const uint8_t *)w + i / PGD_QK_K * 144, *q = b + 4;
        int s = j / 32 < 4 ? q[j / 32] & 63 : (q[j / 32 + 4] & 0xF) | ((q[j / 32 - 4] >> 6) << 4);
        memcpy(&dh, b, 2);
        return pgd_f16_to_f32(dh) * s;
    }
    const uint8_t *b = (const uint8_t *)w + i / PGD_QK_K * 210;
    memcpy(&dh, b + 208, 2);
    return pgd_f16_to_f32(dh) * (int8_t)b[192 + j / 16];
}

/* Sizes, names, round trips within half a step, the element reader, an
 * all-zero super-block, and a hand-made block of each format. */
static void test_formats(void) {
    CU_ASSERT_EQUAL(pgd_dtype_bytes(PGD_Q4_K, 512), 288);
    CU_ASSERT_EQUAL(pgd_dtype_bytes(PGD_Q6_K, 512), 420);
    CU_ASSERT_EQUAL(pgd_dtype_block(PGD_Q4_K), 256);
    CU_ASSERT_EQUAL(pgd_dtype_block(PGD_Q8_0), 32);
    CU_ASSERT_EQUAL(pgd_dtype_block(PGD_F16), 1);
    CU_ASSERT(pgd_dtype_is_weight(PGD_Q4_K) && pgd_dtype_is_weight(PGD_Q6_K) && !pgd_dtype_is_weight(PGD_Q8));
    CU_ASSERT(!pgd_dtype_is_quant(PGD_Q4_K) && pgd_dtype_is_blocked(PGD_Q6_K) && !pgd_dtype_is_blocked(PGD_BF16));
    pgd_dtype t;
    CU_ASSERT(pgd_dtype_from_name("q4_k", &t) && t == PGD_Q4_K);
    CU_ASSERT(pgd_dtype_from_name("q6_k", &t) && t == PGD_Q6_K);
    enum { N = 4 * 256 };
    for (int k = 0; k < 2; k++) {
        /* uniform, all positive, all negative, tiny, with an outlier */
        float *x = pgd_test_randf(N, 500 + k, -1.0f, 1.0f), back[N];
        for (int i = 256; i < 512; i++) x[i] = fabsf(x[i]) + 0.5f;
        for (int i = 512; i < 768; i++) x[i] = -fabsf(x[i]) * 3;
        for (int i = 768; i < N; i++) x[i] *= 1e-3f;
        x[800] = 0.5f;
        void *q = malloc(pgd_dtype_bytes(KQ[k], N));
        pgd_dtype_from_f32(q, KQ[k], x, N);
        pgd_dtype_to_f32(back, q, KQ[k], N);
        int bad = 0, exact = 0;
        for (size_t i = 0; i < N; i++) {
            double st = kstep(q, KQ[k], i);
            bad += !(fabs(back[i] - x[i]) <= st / 2 * 1.0001 + 1e-7);
            exact += back[i] == pgd_dtype_get(q, KQ[k], i);
        }
        CU_ASSERT_EQUAL(bad, 0);
        CU_ASSERT_EQUAL(exact, N);
        /* an all-zero super-block: zero scales, values 0 */
        float z[256] = {0}, zb[256];
        pgd_dtype_from_f32(q, KQ[k], z, 256);
        pgd_dtype_to_f32(zb, q, KQ[k], 256);
        for (int i = 0; i < 256; i++) CU_ASSERT_EQUAL(zb[i], 0.0f);
        free(x), free(q);
    }
    /* hand-made q4_k: d = 1, dmin = 0.5, sub-block 5 with sc = 37 (0x25:
     * low nibble 5 in scales[9], high bits 2 in scales[1] >> 6) and m = 3
     * (high nibble of scales[9]); value 64 * 2 + 32 + 7 (chunk 2's high
     * nibbles, l = 7) with q = 11 is 37 * 11 - 0.5 * 3 */
    uint8_t b4[144] = {0};
    uint16_t one = pgd_f32_to_f16(1.0f), half = pgd_f32_to_f16(0.5f);
    memcpy(b4, &one, 2), memcpy(b4 + 2, &half, 2);
    b4[4 + 9] = 0x35, b4[4 + 1] = 2 << 6, b4[16 + 64 + 7] = 11 << 4;
    CU_ASSERT_EQUAL(pgd_dtype_get(b4, PGD_Q4_K, 64 * 2 + 32 + 7), 37.0f * 11 - 1.5f);
    /* hand-made q6_k: d = 0.5, scale of sub-block 13 (half 1, value 80..95) = -3;
     * value 128 + 83 = half 1, group 2, l = 19: high nibble of ql[64 + 19],
     * bits 4-5 of qh[32 + 19]: q = 0x2 | 2 << 4 = 34, value 0.5 * -3 * 2 */
    uint8_t b6[210] = {0};
    uint16_t h5 = pgd_f32_to_f16(0.5f);
    memcpy(b6 + 208, &h5, 2);
    b6[192 + 13] = (uint8_t)-3, b6[64 + 19] = 0x2 << 4, b6[128 + 32 + 19] = 2 << 4;
    CU_ASSERT_EQUAL(pgd_dtype_get(b6, PGD_Q6_K, 128 + 83), -3.0f);
    float all[256];
    pgd_dtype_to_f32(all, b6, PGD_Q6_K, 256);
    CU_ASSERT_EQUAL(all[128 + 83], -3.0f);
}

/* One (dtype, n, in, out) case on every ISA and pool. */
static void matmul_k_case(pgd_dtype dt, int n, int in, int out, uint64_t seed) {
    float *x = pgd_test_randf((size_t)n * in, seed, -1.0f, 1.0f);
    void *w = pgd_test_rand_weights((size_t)out * in, dt, seed + 1);
    size_t no = (size_t)n * out;
    float *ref = malloc(no * sizeof *ref), *y = malloc(no * sizeof *y), *y0 = malloc(no * sizeof *y0);
    float *yf = malloc(no * sizeof *yf), *wf = malloc((size_t)out * in * sizeof *wf);
    pgd_ref_matmul(ref, x, w, dt, n, in, out);
    pgd_dtype_to_f32(wf, w, dt, (size_t)out * in);
    double *bound = pgd_test_int8_bounds(x, wf, ref, n, in, out, TOL);
    for (int ii = 0; ii < g_n_isas; ii++) {
        pgd_cpu_set_isa(g_isas[ii]);
        int avx2 = !strcmp(g_isas[ii], "avx2");
        int int8 = avx2 && (n <= 8 || dt == PGD_Q4_K); /* q4_k above 8 tokens: the batched GEMM, in integers too */
        CU_ASSERT_EQUAL(pgd_cpu_matmul_uses_int8(dt, n), int8);
        if (avx2 && !int8) pgd_cpu_matmul(NULL, yf, x, wf, PGD_F32, n, in, out);
        for (int p = 0; p < N_POOLS; p++) {
            for (size_t i = 0; i < no; i++) y[i] = NAN;
            pgd_cpu_matmul(pool_at(p), y, x, w, dt, n, in, out);
            if (int8) {
                size_t bad = 0;
                for (size_t i = 0; i < no; i++) bad += !(fabs(y[i] - ref[i]) <= bound[i]);
                if (bad)
                    fprintf(stderr, "\n  FAIL %s int8 n=%d in=%d out=%d pool=%d: %zu outputs beyond the bound\n",
                            pgd_dtype_name(dt), n, in, out, p, bad);
                CU_ASSERT_EQUAL(bad, 0);
            } else {
                double e = pgd_test_rel_err(y, ref, no);
                if (!(e < TOL))
                    fprintf(stderr, "\n  FAIL %s %s n=%d in=%d out=%d pool=%d: rel err %g\n", pgd_dtype_name(dt),
                            g_isas[ii], n, in, out, p, e);
                CU_ASSERT(e < TOL);
                if (avx2) CU_ASSERT(memcmp(y, yf, no * sizeof *y) == 0); /* the f32 kernel on the same values */
            }
            if (p == 0) memcpy(y0, y, no * sizeof *y);
            else CU_ASSERT(memcmp(y0, y, no * sizeof *y) == 0);
        }
    }
    pgd_cpu_set_isa(g_isas[0]);
    free(x), free(w), free(ref), free(y), free(y0), free(yf), free(wf), free(bound);
}

static void matmul_k_sweep(pgd_dtype dt) {
    static const int ns[] = {1, 2, 3, 4, 7, 8, 9, 17, 40};
    static const int shapes[][2] = {{256, 3}, {512, 33}, {768, 20}, {2048, 9}, {1280, 130}};
    uint64_t seed = 77000 + 1000 * (uint64_t)dt;
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (size_t b = 0; b < sizeof shapes / sizeof *shapes; b++)
            matmul_k_case(dt, ns[a], shapes[b][0], shapes[b][1], seed++);
    /* the decode path's heap buffer for long rows (n * in / 32 > 1536 blocks) */
    matmul_k_case(dt, 3, 16640, 5, seed++);
}

static void test_matmul_q4_k(void) { matmul_k_sweep(PGD_Q4_K); }
static void test_matmul_q6_k(void) { matmul_k_sweep(PGD_Q6_K); }

/* Embedding rows from a k-quant table: exactly the dequantized rows. */
static void test_embedding_k(void) {
    const int V = 20, dim = 512, n = 6;
    int32_t tok[6] = {0, 19, 3, 3, 11, 1};
    for (int k = 0; k < 2; k++) {
        void *tab = pgd_test_rand_weights((size_t)V * dim, KQ[k], 90 + k);
        float *ref = malloc(sizeof(float) * n * dim), *y = malloc(sizeof(float) * n * dim), row[512];
        pgd_ref_embedding(ref, tab, KQ[k], tok, n, dim);
        pgd_dtype_to_f32(row, (const char *)tab + pgd_dtype_bytes(KQ[k], (size_t)19 * dim), KQ[k], dim);
        CU_ASSERT(memcmp(ref + dim, row, sizeof row) == 0);
        for (int ii = 0; ii < g_n_isas; ii++) {
            pgd_cpu_set_isa(g_isas[ii]);
            for (int p = 0; p < N_POOLS; p++) {
                pgd_cpu_embedding(pool_at(p), y, tab, KQ[k], tok, n, dim);
                CU_ASSERT(memcmp(y, ref, sizeof(float) * n * dim) == 0);
            }
        }
        pgd_cpu_set_isa(g_isas[0]);
        free(tab), free(ref), free(y);
    }
}

/* random:<shape>,dtype=q4_k|q6_k: kept in the dtype; rows that are not
 * whole super-blocks refused with the reason, under TP too. */
static void test_random_kquant(void) {
    for (int k = 0; k < 2; k++) {
        char spec[160];
        snprintf(spec, sizeof spec, "random:dim=256,layers=2,heads=2,hidden=512,vocab=300,seq=64,dtype=%s",
                 pgd_dtype_name(KQ[k]));
        pgd_model *m = NULL;
        CU_ASSERT_EQUAL_FATAL(pgd_model_load(spec, NULL, BE, &m), PGD_OK);
        const pgd_model_config *c = pgd_model_get_config(m);
        CU_ASSERT_EQUAL(c->weight_dtype, KQ[k]);
        CU_ASSERT_EQUAL(pgd_model_config_weight_bytes(c),
                        256 * 5 * 4 + pgd_dtype_bytes(KQ[k], pgd_model_config_params(c) - 256 * 5));
        pgd_model_destroy(m);
    }
    /* the sim prices a weight at its stored bytes: 144/256, 210/256 */
    CU_ASSERT_EQUAL(pgd_dtype_elem_bytes(PGD_Q4_K), 144.0 / 256);
    CU_ASSERT_EQUAL(pgd_dtype_elem_bytes(PGD_Q6_K), 210.0 / 256);
    pgd_backend *sim = NULL;
    pgd_backend_config sc = {.name = "sim", .options = (const char *const[]){"device=a100-40gb", NULL}};
    CU_ASSERT_EQUAL_FATAL(pgd_backend_create(&sc, &sim), PGD_OK);
    pgd_model *m = NULL;
    CU_ASSERT_EQUAL(pgd_model_load("random:llama-7b,dtype=q4_k", NULL, sim, &m), PGD_OK);
    if (m) CU_ASSERT_EQUAL(pgd_model_get_config(m)->weight_dtype, PGD_Q4_K);
    pgd_model_destroy(m);
    pgd_backend_destroy(sim);
    m = NULL;
    CU_ASSERT_NOT_EQUAL(pgd_model_load("random:stories15M,dtype=q4_k", NULL, BE, &m), PGD_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "tensor 'token_embd.weight': q4_k weights are stored in blocks "
                                                    "of 256 along each row, but dim is 288 (not a multiple of 256)"));
    CU_ASSERT_NOT_EQUAL(
        pgd_model_load("random:dim=512,layers=1,heads=4,hidden=640,vocab=300,seq=64,dtype=q6_k", NULL, BE, &m), PGD_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "tensor 'blk.0.ffn_down.weight': q6_k weights"));
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "hidden is 640 (not a multiple of 256)"));
    CU_ASSERT_NOT_EQUAL(pgd_model_load("random:stories15M,dtype=q5_k", NULL, BE, &m), PGD_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "q4_k, q6_k or q4_k_m"));
}

/* random:<shape>,dtype=q4_k_m: each tensor in the dtype llama.cpp's Q4_K_M
 * recipe gives it (pgd_model_q4_k_m_dtype: Q6_K for attn_v and ffn_down in
 * layers 0, 3, 6 and 7 of 8, and for the classifier; Q4_K elsewhere), the
 * byte count of those dtypes, the printed dtype; on the sim too. */
static void test_random_q4_k_m(void) {
    static const int more[8] = {1, 0, 0, 1, 0, 0, 1, 1}; /* use_more_bits(l, 8) */
    for (int l = 0; l < 8; l++) {
        pgd_dtype want = more[l] ? PGD_Q6_K : PGD_Q4_K;
        CU_ASSERT_EQUAL(pgd_model_q4_k_m_dtype("attn_v", l, 8, 0), want);
        CU_ASSERT_EQUAL(pgd_model_q4_k_m_dtype("ffn_down", l, 8, 0), want);
        CU_ASSERT_EQUAL(pgd_model_q4_k_m_dtype("attn_q", l, 8, 0), PGD_Q4_K);
        CU_ASSERT_EQUAL(pgd_model_q4_k_m_dtype("ffn_up", l, 8, 0), PGD_Q4_K);
    }
    CU_ASSERT_EQUAL(pgd_model_q4_k_m_dtype("output", -1, 8, 0), PGD_Q6_K);
    CU_ASSERT_EQUAL(pgd_model_q4_k_m_dtype("token_embd", -1, 8, 0), PGD_Q4_K);
    CU_ASSERT_EQUAL(pgd_model_q4_k_m_dtype("token_embd", -1, 8, 1), PGD_Q6_K); /* it is the classifier */
    const char *spec = "random:dim=256,layers=8,heads=2,hidden=512,vocab=300,seq=64,tied=0,dtype=q4_k_m";
    pgd_model *m = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_model_load(spec, NULL, BE, &m), PGD_OK);
    const pgd_model_config *c = pgd_model_get_config(m);
    CU_ASSERT_EQUAL(c->weight_dtype, PGD_Q4_K);
    CU_ASSERT_EQUAL(c->weight_dtypes, (1u << PGD_Q4_K) | (1u << PGD_Q6_K));
    char buf[64];
    CU_ASSERT_STRING_EQUAL(pgd_model_config_dtype_str(c, buf, sizeof buf), "mixed (q4_k, q6_k)");
    /* per layer: q, k, v, o of 256 x 256, gate, up, down of 512 x 256; 4 of 8 layers have
     * Q6_K attn_v and ffn_down; embedding Q4_K, classifier Q6_K; norms f32 */
    size_t d = 256, h = 512, V = 300;
    size_t want = d * 17 * 4 + pgd_dtype_bytes(PGD_Q4_K, V * d) + pgd_dtype_bytes(PGD_Q6_K, V * d) +
                  8 * pgd_dtype_bytes(PGD_Q4_K, 3 * d * d + 2 * h * d) + 4 * pgd_dtype_bytes(PGD_Q6_K, d * d + h * d) +
                  4 * pgd_dtype_bytes(PGD_Q4_K, d * d + h * d);
    CU_ASSERT_EQUAL(pgd_model_config_weight_bytes(c), want);
    CU_ASSERT_EQUAL(pgd_model_config_embd_bytes(c), pgd_dtype_bytes(PGD_Q4_K, V * d));
    /* the shape alone says the same */
    pgd_model_config sc;
    CU_ASSERT_EQUAL_FATAL(pgd_model_shape(spec + 7, &sc), PGD_OK);
    CU_ASSERT_EQUAL(pgd_model_config_weight_bytes(&sc), want);
    pgd_model_destroy(m);
    /* the sim: between all-q4_k and all-q6_k */
    pgd_backend *sim = NULL;
    pgd_backend_config bc = {.name = "sim", .options = (const char *const[]){"device=a100-40gb", NULL}};
    CU_ASSERT_EQUAL_FATAL(pgd_backend_create(&bc, &sim), PGD_OK);
    size_t b[3];
    const char *ds[3] = {"random:llama-7b,dtype=q4_k", "random:llama-7b,dtype=q4_k_m", "random:llama-7b,dtype=q6_k"};
    for (int i = 0; i < 3; i++) {
        m = NULL;
        CU_ASSERT_EQUAL_FATAL(pgd_model_load(ds[i], NULL, sim, &m), PGD_OK);
        b[i] = pgd_model_config_weight_bytes(pgd_model_get_config(m));
        pgd_model_destroy(m);
    }
    fprintf(stderr, "[llama-7b weights: q4_k %.2f GB, q4_k_m %.2f GB, q6_k %.2f GB] ", b[0] / 1e9, b[1] / 1e9,
            b[2] / 1e9);
    CU_ASSERT(b[0] < b[1] && b[1] < b[2]);
    pgd_backend_destroy(sim);
}

static CU_TestInfo tests[] = {
    {"q4_k, q6_k formats: round trip within half a step", test_formats},
    {"matmul q4_k vs reference, every path", test_matmul_q4_k},
    {"matmul q6_k vs reference, every path", test_matmul_q6_k},
    {"embedding from k-quant tables", test_embedding_k},
    {"random dtype=q4_k/q6_k, rows not whole super-blocks refused", test_random_kquant},
    {"random dtype=q4_k_m: per-tensor dtypes of the recipe", test_random_q4_k_m},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "kquant", .pInitFunc = suite_init, .pCleanupFunc = suite_cleanup, .pTests = tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
