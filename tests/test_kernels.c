/* test_kernels.c - CUnit tests for kernels/cpu: every fast kernel against
 * its naive reference, the thread pool, and known answers for the references.
 *
 * Each comparison runs the fast kernel under every ISA this CPU offers
 * ("avx2" and "scalar") and with a NULL pool, a 1-thread and a 2-thread
 * pool, on fresh random inputs from fixed seeds, at sizes chosen to reach
 * every code path and tail: n = 1..3 (decode paths, row-wise for in <= 1024
 * and 4-row tiles above), n > 3 (batched path) not a multiple of its 16- and
 * 8-token tiles, n > 128 (more than one token block), in not a multiple of 8
 * or 16, in > 2048 or n * in > 65536 (K split in panels), out not a multiple
 * of the 4-, 6- and 8-row tiles, W row strides that are multiples of 2 KB.
 * f32 results must be within 1e-5 relative error of the reference (rope too:
 * it uses the same formulas, but compilers may fuse its multiply-adds
 * differently); copies (embedding, kv_write, copy_blocks) and add must match
 * exactly; the NULL-pool and 2-thread results must be bit-identical. The ops
 * with row strides (rope, kv_write, attention's q) run dense (stride 0) and
 * inside fused q | k | v rows with and without padding: the results must
 * equal the dense ones and nothing outside the op's rows may change. */
#include "test_util.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels.h"

#define TOL 1e-5

static pgd_threadpool *g_pool1, *g_pool2;
static const char *g_isas[2];
static int g_n_isas;

static int suite_init(void) {
    g_pool1 = pgd_threadpool_create(1);
    g_pool2 = pgd_threadpool_create(2);
    g_n_isas = 0;
    if (pgd_cpu_set_isa("avx2") == 0) g_isas[g_n_isas++] = "avx2";
    g_isas[g_n_isas++] = "scalar";
    return g_pool1 && g_pool2 ? 0 : 1;
}

static int suite_cleanup(void) {
    pgd_threadpool_destroy(g_pool1);
    pgd_threadpool_destroy(g_pool2);
    pgd_cpu_set_isa(g_isas[0]);
    return 0;
}

/* The (isa, pool) combinations every fast kernel is run under. */
#define N_POOLS 3
static pgd_threadpool *pool_at(int i) { return i == 0 ? NULL : i == 1 ? g_pool1 : g_pool2; }

static void check(double err, double tol, const char *what, const char *isa, int pool,
                  int a, int b, int c) {
    if (!(err < tol))
        fprintf(stderr, "\n  FAIL %s isa=%s pool=%d args=(%d,%d,%d): rel err %g >= %g\n", what,
                isa, pool, a, b, c, err, tol);
    CU_ASSERT(err < tol);
}

static uint64_t g_rng = 88172645463325252ull;
static uint32_t rnd(uint32_t n) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)((g_rng >> 11) % n);
}


/* ---------------------------------------------------------------- matmul */

static void matmul_case(pgd_dtype dt, int n, int in, int out, uint64_t seed) {
    float *x = pgd_test_randf((size_t)n * in, seed, -1.0f, 1.0f);
    void *w = pgd_test_rand_weights((size_t)out * in, dt, seed + 1);
    float *ref = malloc((size_t)n * out * sizeof *ref), *y = malloc((size_t)n * out * sizeof *y);
    float *y0 = malloc((size_t)n * out * sizeof *y0);
    pgd_ref_matmul(ref, x, w, dt, n, in, out);
    for (int ii = 0; ii < g_n_isas; ii++) {
        pgd_cpu_set_isa(g_isas[ii]);
        for (int p = 0; p < N_POOLS; p++) {
            for (size_t i = 0; i < (size_t)n * out; i++) y[i] = NAN; /* every output written */
            pgd_cpu_matmul(pool_at(p), y, x, w, dt, n, in, out);
            check(pgd_test_rel_err(y, ref, (size_t)n * out), TOL, pgd_dtype_name(dt), g_isas[ii],
                  p, n, in, out);
            if (p == 0) memcpy(y0, y, (size_t)n * out * sizeof *y);
            else CU_ASSERT(memcmp(y0, y, (size_t)n * out * sizeof *y) == 0);
        }
    }
    free(x), free(w), free(ref), free(y), free(y0);
}

static void matmul_sweep(pgd_dtype dt) {
    static const int ns[] = {1, 2, 3, 4, 7, 32, 100};
    static const int shapes[][2] = {{8, 4},   {17, 5},   {64, 33},  {768, 12},
                                    {1000, 7}, {1030, 9}, {2053, 6}, {96, 130}};
    uint64_t seed = 100 + 1000 * (uint64_t)dt;
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (size_t b = 0; b < sizeof shapes / sizeof *shapes; b++)
            matmul_case(dt, ns[a], shapes[b][0], shapes[b][1], seed++);
}

static void test_matmul_f32(void) { matmul_sweep(PGD_F32); }
static void test_matmul_f16(void) { matmul_sweep(PGD_F16); }
static void test_matmul_bf16(void) { matmul_sweep(PGD_BF16); }

/* stories110M-like shapes, big enough to split rows across both threads. */
static void test_matmul_model_shapes(void) {
    matmul_case(PGD_F32, 1, 768, 2048, 7);
    matmul_case(PGD_F32, 32, 768, 2048, 8);
    matmul_case(PGD_F32, 3, 2048, 768, 9);
    matmul_case(PGD_F32, 32, 2048, 768, 10);
    matmul_case(PGD_F16, 7, 768, 515, 11);
    matmul_case(PGD_BF16, 5, 2048, 301, 12);
}

/* The batched (n > 3) path: every token-tile tail (tiles of 16 and 8 tokens),
 * row-panel tails (panels of 6 and 8 rows, out not a multiple of 16), K not a
 * multiple of 8, K split in panels (in > 2048, or fewer columns per panel as
 * n grows), more than one token block (n > 128) and W rows whose stride is a
 * multiple of 2 KB (in = 512 f32, 1024 f16/bf16), for every weight dtype. */
static void test_matmul_batched_tails(void) {
    static const int ns[] = {4, 5, 6, 7, 8, 9, 11, 12, 13, 16, 17, 24, 25, 31, 33, 100, 260};
    static const int shapes[][2] = {{7, 13}, {100, 31}, {512, 50}, {1024, 23}, {2053, 19}};
    static const pgd_dtype dts[] = {PGD_F32, PGD_F16, PGD_BF16};
    uint64_t seed = 5000;
    for (size_t d = 0; d < sizeof dts / sizeof *dts; d++)
        for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
            for (size_t b = 0; b < sizeof shapes / sizeof *shapes; b++)
                matmul_case(dts[d], ns[a], shapes[b][0], shapes[b][1], seed++);
}

/* Quantized weights (q8_0, q4_0). The reference dequantizes W and computes
 * in f32; so do the scalar path and the AVX2 batched path when it
 * dequantizes panels (n > 3 with pgd_cpu_set_q_int_max_tokens(0): the f32
 * micro-kernel), held to the f32 tolerance. The AVX2 integer paths (decode,
 * n <= 3, and the register-tiled batched path, run here at every n > 3 by
 * raising pgd_cpu_q_int_max_tokens) round x to int8 per block of 32 (scale d =
 * max|x| / 127), so each output may differ from the reference by at most
 * sum over blocks of (d / 2) * sum |w| of the block (each x within d / 2 of
 * its rounded value), plus f32 rounding: that bound is checked output by
 * output, not a tuned tolerance. */
static void matmul_q_case(pgd_dtype dt, int n, int in, int out, uint64_t seed, int x8) {
    float *x = pgd_test_randf((size_t)n * in, seed, -1.0f, 1.0f);
    void *w = pgd_test_rand_weights((size_t)out * in, dt, seed + 1);
    size_t no = (size_t)n * out, wb = pgd_dtype_bytes(dt, (size_t)out * in);
    float *ref = malloc(no * sizeof *ref), *y = malloc(no * sizeof *y), *y0 = malloc(no * sizeof *y0);
    float *wf = malloc((size_t)out * in * sizeof *wf), *row = malloc((size_t)in * sizeof *row);
    char *wx = malloc(wb); /* x8: the packed copy the matmul runs on */
    pgd_ref_matmul(ref, x, w, dt, n, in, out);
    pgd_dtype_to_f32(wf, w, dt, (size_t)out * in);
    if (x8) { /* every packed row converts to the plain row's values, bit for bit */
        memcpy(wx, w, wb);
        CU_ASSERT_FATAL(pgd_cpu_x8_pack(wx, dt, (size_t)out, in));
        CU_ASSERT(memcmp(wx, w, wb) != 0);
        for (int r = 0; r < out; r++) {
            pgd_cpu_x8_row_to_f32(row, wx + pgd_dtype_bytes(dt, (size_t)r * in), dt, in);
            CU_ASSERT(memcmp(row, wf + (size_t)r * in, (size_t)in * sizeof *row) == 0);
        }
    }
    double *bound = pgd_test_int8_bounds(x, wf, ref, n, in, out, TOL);
    int qmax = pgd_cpu_q_int_max_tokens();
    for (int ii = 0; ii < 2 * g_n_isas; ii++) {
        pgd_cpu_set_isa(g_isas[ii / 2]);
        pgd_cpu_set_q_int_max_tokens(ii % 2 ? 0 : 1 << 20); /* both batched paths, at every n */
        if (ii % 2 && n <= 3) continue;
        int int8_path = pgd_cpu_matmul_uses_int8(dt, n);
        CU_ASSERT_EQUAL(int8_path, !strcmp(g_isas[ii / 2], "avx2") && (n <= 3 || ii % 2 == 0));
        for (int p = 0; p < N_POOLS; p++) {
            for (size_t i = 0; i < no; i++) y[i] = NAN;
            if (x8) pgd_cpu_matmul_x8(pool_at(p), y, x, wx, dt, n, in, out);
            else pgd_cpu_matmul(pool_at(p), y, x, w, dt, n, in, out);
            if (int8_path) {
                size_t bad = 0;
                for (size_t i = 0; i < no; i++) bad += !(fabs(y[i] - ref[i]) <= bound[i]);
                if (bad)
                    fprintf(stderr,
                            "\n  FAIL %s%s int8 path n=%d in=%d out=%d pool=%d: %zu outputs beyond the "
                            "activation-rounding bound\n",
                            pgd_dtype_name(dt), x8 ? "x8" : "", n, in, out, p, bad);
                CU_ASSERT_EQUAL(bad, 0);
            } else {
                check(pgd_test_rel_err(y, ref, no), TOL, pgd_dtype_name(dt), g_isas[ii / 2], p, n, in, out);
            }
            if (p == 0) memcpy(y0, y, no * sizeof *y);
            else CU_ASSERT(memcmp(y0, y, no * sizeof *y) == 0);
        }
    }
    pgd_cpu_set_q_int_max_tokens(qmax);
    pgd_cpu_set_isa(g_isas[0]);
    free(x), free(w), free(wx), free(ref), free(y), free(y0), free(wf), free(row), free(bound);
}

static void matmul_q_sweep(pgd_dtype dt) {
    static const int ns[] = {1, 2, 3, 4, 7, 9, 17, 32, 100, 260};
    static const int shapes[][2] = {{32, 4},    {64, 33},   {96, 7},   {512, 50}, {768, 12},
                                    {1024, 23}, {2080, 19}, {4096, 5}, {288, 130}};
    uint64_t seed = 9000 + 1000 * (uint64_t)dt;
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (size_t b = 0; b < sizeof shapes / sizeof *shapes; b++)
            matmul_q_case(dt, ns[a], shapes[b][0], shapes[b][1], seed++, 0);
    /* the decode path's heap buffer for long rows (n * in / 32 > 1536 blocks) */
    matmul_q_case(dt, 3, 16416, 9, seed++, 0);
    /* the batched GEMM's token blocks: 600 x 4128 values of packed x (4.9 MB) exceed its 4 MB block, so x is
     * packed per block of tokens for every chunk (and 4128 / 32 = 129 blocks: a last group of one block) */
    matmul_q_case(dt, 600, 4128, 3, seed++, 0);
}

static void test_matmul_q8_0(void) { matmul_q_sweep(PGD_Q8_0); }
static void test_matmul_q4_0(void) { matmul_q_sweep(PGD_Q4_0); }

/* The CPU backend's x8 layouts of q8_0 and q4_0 (kernels.h): pgd_cpu_x8_pack
 * keeps every value (a packed row converts to the same f32 values, bit for
 * bit, as the plain row, on both the portable and the AVX2 conversion),
 * refuses rows that are not whole groups of 256, other dtypes and q8_0
 * weights of -128 (leaving w untouched), and pgd_cpu_matmul_x8 on the
 * packed copy meets the same bounds as the plain layout's paths: the
 * activation-rounding bound output by output on the integer paths (its own
 * kernel up to PGD_X8_MAX_TOKENS tokens, the GEMM above), 1e-5 on the f32
 * ones (scalar ISA, dequantized panels), pool results bit-identical. */
static void matmul_x8_sweep(pgd_dtype dt) {
    static const int ns[] = {1, 2, 3, 4, 5, 7, 8, 9, 14, 15, 17, 32, 100};
    static const int shapes[][2] = {{256, 9}, {768, 33}, {2048, 17}, {5632, 5}};
    uint64_t seed = 31000 + 1000 * (uint64_t)dt;
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (size_t b = 0; b < sizeof shapes / sizeof *shapes; b++)
            matmul_q_case(dt, ns[a], shapes[b][0], shapes[b][1], seed++, 1);
    matmul_q_case(dt, 3, 16384, 3, seed++, 1); /* quantized x beyond the kernel's stack buffer */
    /* refusals leave w as it was */
    void *w = pgd_test_rand_weights(96 * 8, dt, 5);
    size_t wb = pgd_dtype_bytes(dt, 96 * 8);
    char *c = malloc(wb);
    memcpy(c, w, wb);
    CU_ASSERT_FALSE(pgd_cpu_x8_fits(96));
    CU_ASSERT_TRUE(pgd_cpu_x8_fits(512));
    CU_ASSERT_FALSE(pgd_cpu_x8_pack(c, dt, 8, 96)); /* rows of 96: not whole groups */
    CU_ASSERT(memcmp(c, w, wb) == 0);
    CU_ASSERT_FALSE(pgd_cpu_x8_pack(c, PGD_F16, 3, 256));
    CU_ASSERT_FALSE(pgd_cpu_x8_pack(c, PGD_Q4_K, 3, 256));
    CU_ASSERT(memcmp(c, w, wb) == 0);
    if (dt == PGD_Q8_0) {
        ((pgd_block_q8_0 *)c)[20].q[7] = -128; /* as (768 values) 3 rows of 256: a -128 in row 2 */
        memcpy(w, c, wb);
        CU_ASSERT_FALSE(pgd_cpu_x8_pack(c, dt, 3, 256));
        CU_ASSERT(memcmp(c, w, wb) == 0);
    }
    free(w), free(c);
}

static void test_matmul_q8_0x8(void) { matmul_x8_sweep(PGD_Q8_0); }
static void test_matmul_q4_0x8(void) { matmul_x8_sweep(PGD_Q4_0); }

/* The embedding lookup of an x8 table: the plain table's rows, bit for bit. */
static void test_embedding_x8(void) {
    static const pgd_dtype dts[] = {PGD_Q8_0, PGD_Q4_0};
    const int V = 40, dim = 512, n = 6;
    int32_t tok[6] = {0, 39, 7, 7, 20, 1};
    for (int d = 0; d < 2; d++) {
        void *tab = pgd_test_rand_weights((size_t)V * dim, dts[d], 91);
        size_t tb = pgd_dtype_bytes(dts[d], (size_t)V * dim);
        char *tx = malloc(tb);
        memcpy(tx, tab, tb);
        CU_ASSERT_FATAL(pgd_cpu_x8_pack(tx, dts[d], (size_t)V, dim));
        float *ref = malloc(sizeof(float) * n * dim), *y = malloc(sizeof(float) * n * dim);
        pgd_ref_embedding(ref, tab, dts[d], tok, n, dim);
        pgd_cpu_embedding_x8(y, tx, dts[d], tok, n, dim);
        CU_ASSERT(memcmp(y, ref, sizeof(float) * n * dim) == 0);
        free(tab), free(tx), free(ref), free(y);
    }
}

/* The formats themselves: round trips and known encodings. */
static void test_quant_formats(void) {
    CU_ASSERT_EQUAL(sizeof(pgd_block_q8_0), 34);
    CU_ASSERT_EQUAL(sizeof(pgd_block_q4_0), 18);
    CU_ASSERT_EQUAL(pgd_dtype_bytes(PGD_Q8_0, 64), 68);
    CU_ASSERT_EQUAL(pgd_dtype_bytes(PGD_Q4_0, 64), 36);
    float x[64], back[64];
    for (int i = 0; i < 64; i++) x[i] = (float)(i - 20) * 0.25f; /* block 0: -5 .. 2.75; block 1: 3 .. 10.75 */
    pgd_block_q8_0 q8[2];
    pgd_dtype_from_f32(q8, PGD_Q8_0, x, 64);
    CU_ASSERT_DOUBLE_EQUAL(pgd_f16_to_f32(q8[0].d), 5.0 / 127, 1e-5);
    CU_ASSERT_EQUAL(q8[0].q[0], -127);        /* the largest magnitude maps to +-127 */
    CU_ASSERT_EQUAL(q8[1].q[31], 127);
    pgd_dtype_to_f32(back, q8, PGD_Q8_0, 64);
    for (int i = 0; i < 64; i++) {
        double d = pgd_f16_to_f32(q8[i / 32].d);
        CU_ASSERT(fabs(back[i] - x[i]) <= d / 2 * 1.0001 + 1e-7); /* within half a step */
        CU_ASSERT_EQUAL(back[i], pgd_dtype_get(q8, PGD_Q8_0, (size_t)i));
    }
    pgd_block_q4_0 q4[2];
    pgd_dtype_from_f32(q4, PGD_Q4_0, x, 64);
    CU_ASSERT_DOUBLE_EQUAL(pgd_f16_to_f32(q4[0].d), 5.0 / 8, 1e-4); /* -5 maps to -8 */
    CU_ASSERT_EQUAL(q4[0].q[0] & 15, 0);
    CU_ASSERT_DOUBLE_EQUAL(pgd_f16_to_f32(q4[1].d), -10.75 / 8, 1e-3); /* +10.75 maps to -8 */
    pgd_dtype_to_f32(back, q4, PGD_Q4_0, 64);
    for (int i = 0; i < 64; i++) {
        double d = fabs(pgd_f16_to_f32(q4[i / 32].d));
        CU_ASSERT(fabs(back[i] - x[i]) <= d / 2 * 1.0001 + 1e-6);
        CU_ASSERT_EQUAL(back[i], pgd_dtype_get(q4, PGD_Q4_0, (size_t)i));
    }
    /* an all-zero block: scale 0, values 0, no division by zero */
    float z[32] = {0}, zb[32];
    pgd_dtype_from_f32(q8, PGD_Q8_0, z, 32);
    pgd_dtype_from_f32(q4, PGD_Q4_0, z, 32);
    pgd_dtype_to_f32(zb, q8, PGD_Q8_0, 32);
    for (int i = 0; i < 32; i++) CU_ASSERT_EQUAL(zb[i], 0.0f);
    pgd_dtype_to_f32(zb, q4, PGD_Q4_0, 32);
    for (int i = 0; i < 32; i++) CU_ASSERT_EQUAL(zb[i], 0.0f);
    pgd_dtype t;
    CU_ASSERT(pgd_dtype_from_name("q4_0", &t) && t == PGD_Q4_0);
    CU_ASSERT(!pgd_dtype_from_name("q5_1", &t));
}

/* Embedding rows from a quantized table: exactly the dequantized rows. */
static void test_embedding_quant(void) {
    static const pgd_dtype dts[] = {PGD_Q8_0, PGD_Q4_0};
    const int V = 50, dim = 96, n = 7;
    int32_t tok[7] = {0, 49, 3, 3, 17, 48, 1};
    for (int d = 0; d < 2; d++) {
        void *tab = pgd_test_rand_weights((size_t)V * dim, dts[d], 77 + d);
        float *ref = malloc(sizeof(float) * n * dim), *y = malloc(sizeof(float) * n * dim);
        pgd_ref_embedding(ref, tab, dts[d], tok, n, dim);
        for (int ii = 0; ii < g_n_isas; ii++) {
            pgd_cpu_set_isa(g_isas[ii]);
            for (int p = 0; p < N_POOLS; p++) {
                pgd_cpu_embedding(pool_at(p), y, tab, dts[d], tok, n, dim);
                CU_ASSERT(memcmp(y, ref, sizeof(float) * n * dim) == 0);
            }
        }
        free(tab), free(ref), free(y);
    }
}

/* Known answer for the reference: W = [[1,2],[3,4],[5,6]], x = [1,-1]. */
static void test_matmul_ref_known(void) {
    float w[6] = {1, 2, 3, 4, 5, 6}, x[4] = {1, -1, 2, 0.5f}, y[6];
    pgd_ref_matmul(y, x, w, PGD_F32, 2, 2, 3);
    float want[6] = {-1, -1, -1, 3, 8, 13};
    CU_ASSERT(memcmp(y, want, sizeof want) == 0);
}

/* ------------------------------------------------------------- elementwise */

static void test_embedding(void) {
    static const int dims[] = {1, 7, 64, 771};
    for (int dt = 0; dt < 3; dt++) {
        for (size_t di = 0; di < 4; di++) {
            int dim = dims[di], vocab = 53, n = 70;
            void *table = pgd_test_rand_weights((size_t)vocab * dim, (pgd_dtype)dt, 40 + di);
            int32_t tokens[70];
            for (int i = 0; i < n; i++) tokens[i] = (int32_t)rnd((uint32_t)vocab);
            float *ref = malloc((size_t)n * dim * sizeof *ref);
            float *y = malloc((size_t)n * dim * sizeof *y);
            pgd_ref_embedding(ref, table, (pgd_dtype)dt, tokens, n, dim);
            CU_ASSERT(dt != PGD_F32 || memcmp(ref + (size_t)3 * dim,
                                              (float *)table + (size_t)tokens[3] * dim,
                                              (size_t)dim * sizeof(float)) == 0);
            for (int ii = 0; ii < g_n_isas; ii++) {
                pgd_cpu_set_isa(g_isas[ii]);
                for (int p = 0; p < N_POOLS; p++) {
                    memset(y, 0xff, (size_t)n * dim * sizeof *y);
                    pgd_cpu_embedding(pool_at(p), y, table, (pgd_dtype)dt, tokens, n, dim);
                    CU_ASSERT(memcmp(y, ref, (size_t)n * dim * sizeof *y) == 0);
                }
            }
            free(table), free(ref), free(y);
        }
    }
}

static void test_rmsnorm(void) {
    static const int cases[][2] = {{1, 7}, {3, 64}, {17, 768}, {5, 1001}, {64, 768}};
    for (size_t c = 0; c < 5; c++) {
        int n = cases[c][0], dim = cases[c][1];
        size_t sz = (size_t)n * dim;
        float *x = pgd_test_randf(sz, 200 + c, -2.0f, 2.0f), *w = pgd_test_randf((size_t)dim, 300 + c, 0.5f, 1.5f);
        float *ref = malloc(sz * sizeof *ref), *y = malloc(sz * sizeof *y);
        pgd_ref_rmsnorm(ref, x, w, n, dim, 1e-5f);
        for (int ii = 0; ii < g_n_isas; ii++) {
            pgd_cpu_set_isa(g_isas[ii]);
            for (int p = 0; p < N_POOLS; p++) {
                pgd_cpu_rmsnorm(pool_at(p), y, x, w, n, dim, 1e-5f);
                check(pgd_test_rel_err(y, ref, sz), TOL, "rmsnorm", g_isas[ii], p, n, dim, 0);
                memcpy(y, x, sz * sizeof *y); /* in place: y aliases x */
                pgd_cpu_rmsnorm(pool_at(p), y, y, w, n, dim, 1e-5f);
                check(pgd_test_rel_err(y, ref, sz), TOL, "rmsnorm alias", g_isas[ii], p, n, dim, 0);
            }
        }
        free(x), free(w), free(ref), free(y);
    }
}

static void test_rmsnorm_ref_known(void) {
    float x[2] = {3, 4}, w[2] = {1, 2}, y[2];
    pgd_ref_rmsnorm(y, x, w, 1, 2, 0.0f); /* rms = sqrt(12.5) */
    CU_ASSERT(fabsf(y[0] - 3 / sqrtf(12.5f)) < 1e-6f && fabsf(y[1] - 8 / sqrtf(12.5f)) < 1e-6f);
}

/* Fused rows (the forward pass's QKV buffer): the n dense rows of `width`
 * floats of src go to dst + t * stride + off; to_dense reads them back. */
static void to_rows(float *dst, size_t stride, size_t off, const float *src, int n, size_t width) {
    for (int t = 0; t < n; t++) memcpy(dst + (size_t)t * stride + off, src + (size_t)t * width, width * 4);
}
static void to_dense(float *dst, const float *src, size_t stride, size_t off, int n, size_t width) {
    for (int t = 0; t < n; t++) memcpy(dst + (size_t)t * width, src + (size_t)t * stride + off, width * 4);
}

/* A (n, stride) buffer of NaNs (a kernel reading a float outside its rows
 * poisons its output; one writing there is caught by memcmp). */
static float *nan_rows(int n, size_t stride) {
    float *b = malloc((size_t)n * stride * 4);
    for (size_t i = 0; i < (size_t)n * stride; i++) b[i] = NAN;
    return b;
}

static void test_rope(void) {
    /* (n, n_heads, n_kv_heads, head_dim) */
    static const int cases[][4] = {{1, 4, 4, 8}, {5, 8, 2, 64}, {13, 6, 1, 6}, {300, 12, 12, 64}};
    for (size_t c = 0; c < 4; c++) {
        int n = cases[c][0], nh = cases[c][1], nkv = cases[c][2], hd = cases[c][3];
        size_t qd = (size_t)nh * hd, kvd = (size_t)nkv * hd, qs = (size_t)n * qd, ks = (size_t)n * kvd;
        float *q0 = pgd_test_randf(qs, 400 + c, -1, 1), *k0 = pgd_test_randf(ks, 500 + c, -1, 1);
        float *qr = malloc(qs * 4), *kr = malloc(ks * 4), *q = malloc(qs * 4), *k = malloc(ks * 4);
        int32_t *pos = malloc((size_t)n * sizeof *pos);
        for (int i = 0; i < n; i++) pos[i] = (int32_t)rnd(5000);
        memcpy(qr, q0, qs * 4), memcpy(kr, k0, ks * 4);
        pgd_ref_rope(qr, kr, pos, n, nh, nkv, hd, 10000.0f, 0);
        CU_ASSERT(memcmp(qr, q0, qs * 4) != 0); /* it did rotate */
        /* row strides: dense, fused q | k | v rows, and those padded by 5 floats */
        const int strides[3] = {0, (int)(qd + 2 * kvd), (int)(qd + 2 * kvd + 5)};
        for (int si = 0; si < 3; si++) {
            size_t st = (size_t)strides[si];
            float *rows0 = st ? nan_rows(n, st) : NULL, *rows = st ? malloc((size_t)n * st * 4) : NULL;
            if (st) { /* q at 0, k at qd of every row; v and padding stay NaN */
                to_rows(rows0, st, 0, q0, n, qd), to_rows(rows0, st, qd, k0, n, kvd);
                memcpy(rows, rows0, (size_t)n * st * 4);
                pgd_ref_rope(rows, rows + qd, pos, n, nh, nkv, hd, 10000.0f, strides[si]);
                to_dense(q, rows, st, 0, n, qd), to_dense(k, rows, st, qd, n, kvd);
                CU_ASSERT(memcmp(q, qr, qs * 4) == 0 && memcmp(k, kr, ks * 4) == 0);
            }
            for (int ii = 0; ii < g_n_isas; ii++) {
                pgd_cpu_set_isa(g_isas[ii]);
                for (int p = 0; p < N_POOLS; p++) {
                    if (st) {
                        memcpy(rows, rows0, (size_t)n * st * 4);
                        pgd_cpu_rope(pool_at(p), rows, rows + qd, pos, n, nh, nkv, hd, 10000.0f, strides[si]);
                        for (int t = 0; t < n; t++) /* v and padding untouched (NaN bits compare equal) */
                            CU_ASSERT(memcmp(rows + t * st + qd + kvd, rows0 + t * st + qd + kvd,
                                             (st - qd - kvd) * 4) == 0);
                        to_dense(q, rows, st, 0, n, qd), to_dense(k, rows, st, qd, n, kvd);
                    } else {
                        memcpy(q, q0, qs * 4), memcpy(k, k0, ks * 4);
                        pgd_cpu_rope(pool_at(p), q, k, pos, n, nh, nkv, hd, 10000.0f, 0);
                    }
                    check(pgd_test_rel_err(q, qr, qs), TOL, "rope q", g_isas[ii], p, n, nh, strides[si]);
                    check(pgd_test_rel_err(k, kr, ks), TOL, "rope k", g_isas[ii], p, n, nkv, strides[si]);
                }
            }
            free(rows0), free(rows);
        }
        free(q0), free(k0), free(qr), free(kr), free(q), free(k), free(pos);
    }
}

static void test_rope_ref_known(void) {
    /* pos 1, head_dim 2: pair 0 rotates by 1 radian; pos 0 is the identity. */
    float q[2] = {1, 0}, k[2] = {0, 2};
    int32_t pos = 1;
    pgd_ref_rope(q, k, &pos, 1, 1, 1, 2, 10000.0f, 0);
    CU_ASSERT(fabsf(q[0] - cosf(1)) < 1e-6f && fabsf(q[1] - sinf(1)) < 1e-6f);
    CU_ASSERT(fabsf(k[0] + 2 * sinf(1)) < 1e-6f && fabsf(k[1] - 2 * cosf(1)) < 1e-6f);
}

/* silu_mul on (rows, hidden) from [gate | up] rows: hidden not a multiple of
 * 8 (row tails), a single long row, enough elements to split the rows
 * across threads mid-row (the split must not change a result: NULL-pool
 * and 2-thread outputs bit-identical). */
static void test_silu_mul(void) {
    static const int cases[][2] = {{1, 1}, {1, 7}, {3, 8}, {5, 172}, {1, 100003}, {7, 14336}, {33, 2049}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int rows = cases[c][0], h = cases[c][1];
        size_t n = (size_t)rows * h;
        float *gu = pgd_test_randf(2 * n, 600 + c, -12, 12);
        for (size_t i = 0; i < 2 * n; i++) /* up in [-2, 2) */
            if (i / h % 2) gu[i] /= 6;
        float *ref = malloc(n * 4), *y = malloc(n * 4), *y0 = malloc(n * 4);
        pgd_ref_silu_mul(ref, gu, rows, h);
        for (int ii = 0; ii < g_n_isas; ii++) {
            pgd_cpu_set_isa(g_isas[ii]);
            for (int p = 0; p < N_POOLS; p++) {
                for (size_t i = 0; i < n; i++) y[i] = NAN; /* every output written */
                pgd_cpu_silu_mul(pool_at(p), y, gu, rows, h);
                check(pgd_test_rel_err(y, ref, n), TOL, "silu_mul", g_isas[ii], p, rows, h, 0);
                if (p == 0) memcpy(y0, y, n * 4);
                else CU_ASSERT(memcmp(y0, y, n * 4) == 0);
            }
        }
        free(gu), free(ref), free(y), free(y0);
    }
}

static void test_add(void) {
    static const size_t ns[] = {1, 7, 8, 1000, 100003};
    for (size_t c = 0; c < 5; c++) {
        size_t n = ns[c];
        float *g0 = pgd_test_randf(n, 650 + c, -12, 12), *up = pgd_test_randf(n, 750 + c, -2, 2);
        float *y = malloc(n * 4), *refa = malloc(n * 4);
        memcpy(refa, g0, n * 4);
        pgd_ref_add(refa, up, n);
        CU_ASSERT(refa[0] == g0[0] + up[0]);
        for (int ii = 0; ii < g_n_isas; ii++) {
            pgd_cpu_set_isa(g_isas[ii]);
            for (int p = 0; p < N_POOLS; p++) {
                memcpy(y, g0, n * 4);
                pgd_cpu_add(pool_at(p), y, up, n);
                CU_ASSERT(memcmp(y, refa, n * 4) == 0);
            }
        }
        free(g0), free(up), free(y), free(refa);
    }
}

static void test_silu_ref_known(void) {
    /* two rows of [gate | up], hidden 3 */
    float gu[12] = {0, 1, -30, 5, 2, 1, /* row 1: */ 2, -1, 0, 0.5f, 3, 7}, out[6];
    pgd_ref_silu_mul(out, gu, 2, 3);
    CU_ASSERT(out[0] == 0.0f);
    CU_ASSERT(fabsf(out[1] - 2.0f / (1.0f + expf(-1.0f))) < 1e-6f);
    CU_ASSERT(fabsf(out[2]) < 1e-10f);
    CU_ASSERT(fabsf(out[3] - 0.5f * 2.0f / (1.0f + expf(-2.0f))) < 1e-6f);
    CU_ASSERT(fabsf(out[4] + 3.0f / (1.0f + expf(1.0f))) < 1e-6f);
    CU_ASSERT(out[5] == 0.0f);
}

/* ------------------------------------------------------------- KV cache */

static void test_kv_write(void) {
    /* (block_size, tokens, n_kv_heads, head_dim, blocks); the last is big
     * enough to be split across threads */
    static const int cases[][5] = {{8, 70, 3, 20, 9}, {16, 70, 3, 20, 9}, {32, 300, 4, 32, 12}};
    for (int b = 0; b < 3; b++) {
        int bs = cases[b][0], n = cases[b][1], nkv = cases[b][2], hd = cases[b][3];
        int nblocks = cases[b][4];
        size_t cs = (size_t)nblocks * nkv * bs * hd;
        float *k = pgd_test_randf((size_t)n * nkv * hd, 800 + b, -1, 1);
        float *v = pgd_test_randf((size_t)n * nkv * hd, 900 + b, -1, 1);
        float *kc0 = pgd_test_randf(cs, 1000 + b, -1, 1), *vc0 = pgd_test_randf(cs, 1100 + b, -1, 1);
        float *kr = malloc(cs * 4), *vr = malloc(cs * 4);
        float *kc = malloc(cs * 4), *vc = malloc(cs * 4);
        /* distinct shuffled slots, every fifth token skipped */
        int32_t *perm = malloc((size_t)nblocks * bs * sizeof *perm), slots[300];
        for (int i = 0; i < nblocks * bs; i++) perm[i] = i;
        for (int i = nblocks * bs - 1; i > 0; i--) {
            int j = (int)rnd((uint32_t)i + 1);
            int32_t t = perm[i];
            perm[i] = perm[j], perm[j] = t;
        }
        for (int i = 0; i < n; i++) slots[i] = i % 5 == 4 ? -1 : perm[i];
        memcpy(kr, kc0, cs * 4), memcpy(vr, vc0, cs * 4);
        pgd_ref_kv_write(kr, vr, PGD_F32, k, v, slots, n, nkv, hd, bs, 0);
        size_t s0 = ((size_t)(slots[0] / bs) * nkv * bs + slots[0] % bs) * hd;
        CU_ASSERT(memcmp(kr + s0, k, (size_t)hd * 4) == 0);
        /* row strides: dense, k | v rows (as in the fused q | k | v rows, no
         * q here), the same with 3 floats of padding, and a wide q | k | v row */
        size_t kvd = (size_t)nkv * hd;
        const int strides[4] = {0, (int)(2 * kvd), (int)(2 * kvd + 3), (int)(5 * kvd)};
        for (int si = 0; si < 4; si++) {
            size_t st = (size_t)strides[si], ko = si == 3 ? 3 * kvd : 0; /* k's offset in a row */
            float *rows = st ? nan_rows(n, st) : NULL;
            if (st) {
                to_rows(rows, st, ko, k, n, kvd), to_rows(rows, st, ko + kvd, v, n, kvd);
                memcpy(kc, kc0, cs * 4), memcpy(vc, vc0, cs * 4);
                pgd_ref_kv_write(kc, vc, PGD_F32, rows + ko, rows + ko + kvd, slots, n, nkv, hd, bs, strides[si]);
                CU_ASSERT(memcmp(kc, kr, cs * 4) == 0 && memcmp(vc, vr, cs * 4) == 0);
            }
            const float *ks = st ? rows + ko : k, *vs = st ? rows + ko + kvd : v;
            for (int ii = 0; ii < g_n_isas; ii++) {
                pgd_cpu_set_isa(g_isas[ii]);
                for (int p = 0; p < N_POOLS; p++) {
                    memcpy(kc, kc0, cs * 4), memcpy(vc, vc0, cs * 4);
                    pgd_cpu_kv_write(pool_at(p), kc, vc, PGD_F32, ks, vs, slots, n, nkv, hd, bs, strides[si]);
                    CU_ASSERT(memcmp(kc, kr, cs * 4) == 0);
                    CU_ASSERT(memcmp(vc, vr, cs * 4) == 0);
                }
            }
            free(rows);
        }
        free(k), free(v), free(kc0), free(vc0), free(kr), free(vr), free(kc), free(vc), free(perm);
    }
}

static void test_copy_blocks(void) {
    static const size_t bfs[] = {5, 1536, 40960}; /* the last is large enough to thread */
    /* chained: block 2 is written by the first pair and read by the second */
    static const int32_t pairs[] = {1, 2, 2, 5, 0, 3, 4, 4, 6, 0};
    for (int c = 0; c < 3; c++) {
        size_t bf = bfs[c], cs = 7 * bf;
        float *c0 = pgd_test_randf(cs, 1200 + c, -1, 1), *ref = malloc(cs * 4), *y = malloc(cs * 4);
        memcpy(ref, c0, cs * 4);
        pgd_ref_copy_blocks(ref, pairs, 5, bf);
        CU_ASSERT(memcmp(ref + 5 * bf, c0 + 1 * bf, bf * 4) == 0);
        for (int p = 0; p < N_POOLS; p++) {
            memcpy(y, c0, cs * 4);
            pgd_cpu_copy_blocks(pool_at(p), y, pairs, 5, bf);
            CU_ASSERT(memcmp(y, ref, cs * 4) == 0);
        }
        free(c0), free(ref), free(y);
    }
}

/* ------------------------------------------------------------- attention */

static pgd_dtype g_kvt = PGD_F32; /* the caches' dtype in attention_case_q */

/* A ragged batch: nq[s] new tokens of a context of len[s]; q dense
 * (qpad < 0) or in rows of nh*hd + qpad floats (q_stride; the padding NaN). */
static void attention_case_q(int bs, int nh, int nkv, int hd, int ns, const int *len, const int *nq,
                             float qrange, uint64_t seed, int qpad) {
    int maxb = 0, total_blocks = 0, ntok = 0;
    for (int s = 0; s < ns; s++) {
        int nb = (len[s] + bs - 1) / bs;
        maxb = nb > maxb ? nb : maxb;
        total_blocks += nb;
        ntok += nq[s];
    }
    total_blocks += 3; /* spare blocks never referenced */
    size_t cs = (size_t)total_blocks * nkv * bs * hd, qs = (size_t)ntok * nh * hd;
    float *kc = pgd_test_randf(cs, seed, -1, 1), *vc = pgd_test_randf(cs, seed + 1, -1, 1);
    if (g_kvt != PGD_F32) { /* the caches in f16/bf16/q8, converted in place (the buffer's start),
                               row by row (q8 rows are hd + 4 bytes) */
        float *t = malloc(cs * 4);
        size_t rb = pgd_kv_row_bytes(g_kvt, hd);
        memcpy(t, kc, cs * 4);
        for (size_t r = 0; r < cs / hd; r++) pgd_kv_row_from_f32((char *)kc + r * rb, g_kvt, t + r * hd, hd);
        memcpy(t, vc, cs * 4);
        for (size_t r = 0; r < cs / hd; r++) pgd_kv_row_from_f32((char *)vc + r * rb, g_kvt, t + r * hd, hd);
        free(t);
    }
    float *q = pgd_test_randf(qs, seed + 2, -qrange, qrange);
    float *ref = malloc(qs * 4), *out = malloc(qs * 4), *out0 = malloc(qs * 4);
    int32_t *bt = malloc((size_t)ns * maxb * sizeof *bt), *perm = malloc((size_t)total_blocks * 4);
    int32_t qstart[16], lens[16];
    for (int i = 0; i < total_blocks; i++) perm[i] = i;
    for (int i = total_blocks - 1; i > 0; i--) { /* shuffled physical blocks */
        int j = (int)rnd((uint32_t)i + 1);
        int32_t t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    int next = 0;
    qstart[0] = 0;
    for (int s = 0; s < ns; s++) {
        for (int b = 0; b < maxb; b++)
            bt[s * maxb + b] = b < (len[s] + bs - 1) / bs ? perm[next++] : -1;
        qstart[s + 1] = qstart[s] + nq[s];
        lens[s] = len[s];
    }
    pgd_paged_attn a = {.out = ref, .q = q, .k_cache = kc, .v_cache = vc, .query_start = qstart,
                       .seq_lens = lens, .block_tables = bt, .num_seqs = ns,
                       .max_blocks_per_seq = maxb, .n_heads = nh, .n_kv_heads = nkv,
                       .head_dim = hd, .block_size = bs, .scale = 1.0f / sqrtf((float)hd),
                       .kv_dtype = g_kvt};
    pgd_ref_paged_attention(&a);
    float *qrows = NULL;
    if (qpad >= 0) { /* the same queries in strided rows: the reference's output must not change */
        size_t qw = (size_t)nh * hd, st = qw + (size_t)qpad;
        qrows = nan_rows(ntok, st);
        to_rows(qrows, st, 0, q, ntok, qw);
        a.q = qrows;
        a.q_stride = (int)st;
        a.out = out;
        pgd_ref_paged_attention(&a);
        CU_ASSERT(memcmp(out, ref, qs * 4) == 0);
    }
    a.out = out;
    for (int ii = 0; ii < g_n_isas; ii++) {
        pgd_cpu_set_isa(g_isas[ii]);
        for (int p = 0; p < N_POOLS; p++) {
            for (size_t i = 0; i < qs; i++) out[i] = NAN;
            pgd_cpu_paged_attention(pool_at(p), &a);
            check(pgd_test_rel_err(out, ref, qs), TOL, "attention", g_isas[ii], p, bs,
                  nh * 100 + nkv, hd * 1000 + qpad);
            if (p == 0) memcpy(out0, out, qs * 4);
            else CU_ASSERT(memcmp(out0, out, qs * 4) == 0);
        }
    }
    free(kc), free(vc), free(q), free(ref), free(out), free(out0), free(bt), free(perm), free(qrows);
}

static void attention_case(int bs, int nh, int nkv, int hd, int ns, const int *len, const int *nq,
                           float qrange, uint64_t seed) {
    attention_case_q(bs, nh, nkv, hd, ns, len, nq, qrange, seed, -1);
}

/* q read in place from strided rows: q_stride = the q row itself, fused
 * q | k | v rows, and those padded by 5 floats; decode and ragged prefill,
 * GQA, head dims that are and are not multiples of 8. */
static void test_attention_q_stride(void) {
    static const int len[] = {37, 64, 90, 1, 130}, nq[] = {37, 1, 20, 1, 5};
    static const int dlen[] = {1, 9, 33, 200, 17}, dnq[] = {1, 1, 1, 1, 1};
    static const int heads[][3] = {{4, 4, 64}, {8, 2, 20}, {6, 1, 7}};
    for (int h = 0; h < 3; h++) {
        int nh = heads[h][0], nkv = heads[h][1], hd = heads[h][2], fused = 2 * nkv * hd;
        const int pads[3] = {0, fused, fused + 5};
        for (int pi = 0; pi < 3; pi++) {
            attention_case_q(16, nh, nkv, hd, 5, len, nq, 1.0f, 1700 + 10 * (uint64_t)(h * 3 + pi), pads[pi]);
            attention_case_q(8, nh, nkv, hd, 5, dlen, dnq, 1.0f, 1800 + 10 * (uint64_t)(h * 3 + pi), pads[pi]);
        }
    }
}

static void test_attention_decode(void) {
    static const int len[] = {1, 9, 33, 200, 17}, nq[] = {1, 1, 1, 1, 1};
    attention_case(16, 4, 4, 64, 5, len, nq, 1.0f, 1300);
    attention_case(8, 8, 2, 64, 5, len, nq, 1.0f, 1310);
}

static void test_attention_ragged(void) {
    /* fresh prefill, decode, chunked prefill after a cached prefix, decode */
    static const int len[] = {37, 64, 90, 1, 130}, nq[] = {37, 1, 20, 1, 5};
    static const int bss[] = {8, 16, 32};
    static const int heads[][2] = {{4, 4}, {8, 2}, {6, 1}};
    static const int hds[] = {64, 20, 7};
    for (int b = 0; b < 3; b++)
        for (int h = 0; h < 3; h++)
            attention_case(bss[b], heads[h][0], heads[h][1], hds[(b + h) % 3], 5, len, nq, 1.0f,
                           1400 + 10 * (uint64_t)(b * 3 + h));
}

/* More heads than one multi-head call takes (16): rows split in head groups
 * whatever the row count; GQA groups that straddle a head group. */
static void test_attention_many_heads(void) {
    static const int len[] = {40, 70, 5}, nq[] = {40, 1, 5};
    attention_case(16, 20, 4, 16, 3, len, nq, 1.0f, 1600);
    attention_case(8, 36, 12, 8, 3, len, nq, 1.0f, 1610);
}

/* Contexts longer than one score chunk (1024): the online-softmax rescale. */
static void test_attention_long(void) {
    static const int len[] = {2500, 1100, 3}, nq[] = {2, 3, 3};
    attention_case(16, 4, 2, 64, 3, len, nq, 4.0f, 1500);
    attention_case(32, 2, 1, 24, 3, len, nq, 0.5f, 1510);
}

/* f16 and bf16 caches: the fast kernels (converting in registers) against
 * the reference reading the same stored values, decode, ragged prefill and
 * long contexts, head dims that are and are not multiples of 8. */
static void test_attention_half(void) {
    static const pgd_dtype kts[] = {PGD_F16, PGD_BF16};
    static const int len[] = {37, 64, 90, 1, 130}, nq[] = {37, 1, 20, 1, 5};
    static const int llen[] = {2500, 1100, 3}, lnq[] = {2, 3, 3};
    for (int i = 0; i < 2; i++) {
        g_kvt = kts[i];
        attention_case(16, 4, 4, 64, 5, len, nq, 1.0f, 2100 + (uint64_t)i);
        attention_case(8, 8, 2, 20, 5, len, nq, 1.0f, 2110 + (uint64_t)i);
        attention_case(16, 6, 1, 7, 5, len, nq, 1.0f, 2120 + (uint64_t)i);
        attention_case(32, 4, 2, 64, 3, llen, lnq, 4.0f, 2130 + (uint64_t)i);
        attention_case_q(16, 4, 2, 32, 5, len, nq, 1.0f, 2140 + (uint64_t)i, 2 * 2 * 32 + 5);
    }
    g_kvt = PGD_F32;
}

/* q8 caches: the fast kernels (int8 converted in registers, the row scale
 * applied to each score and softmax weight) against the reference reading
 * the same stored rows, at f32's 1e-5: the stored values are exact in f32,
 * only the order of the sums differs. Same shapes as the half caches. */
static void test_attention_q8(void) {
    static const int len[] = {37, 64, 90, 1, 130}, nq[] = {37, 1, 20, 1, 5};
    static const int llen[] = {2500, 1100, 3}, lnq[] = {2, 3, 3};
    g_kvt = PGD_Q8;
    attention_case(16, 4, 4, 64, 5, len, nq, 1.0f, 2150);
    attention_case(8, 8, 2, 20, 5, len, nq, 1.0f, 2160);
    attention_case(16, 6, 1, 7, 5, len, nq, 1.0f, 2170);
    attention_case(32, 4, 2, 64, 3, llen, lnq, 4.0f, 2180);
    attention_case_q(16, 4, 2, 32, 5, len, nq, 1.0f, 2190, 2 * 2 * 32 + 5);
    g_kvt = PGD_F32;
}

/* A q8 cache against the f32 reference on the unquantized values: each value
 * is off by at most half a step, max|row| / 254, so with values uniform in
 * [-1, 1] the attention output is within 1% relative error (the tolerance
 * here; measured 0.38% and 0.41%). Decode and prefill, GQA,
 * head dim 64 and 20, contexts up to 2500. */
static void test_attention_q8_vs_f32(void) {
    const int nh = 8, nkv = 2, bs = 16, ns = 3;
    static const int len[] = {70, 2500, 33}, nq[] = {70, 1, 4};
    static const int hds[] = {64, 20};
    for (int hi = 0; hi < 2; hi++) {
        int hd = hds[hi], maxb = (2500 + bs - 1) / bs, nblk = 0;
        int32_t qs[4] = {0}, lens[3], *bt = malloc(sizeof(int32_t) * ns * maxb);
        for (int s = 0; s < ns; s++) {
            qs[s + 1] = qs[s] + nq[s], lens[s] = len[s];
            for (int b = 0; b < maxb; b++) bt[s * maxb + b] = b < (len[s] + bs - 1) / bs ? nblk++ : 0;
        }
        size_t rows = (size_t)nblk * nkv * bs, cs = rows * hd, qn = (size_t)qs[ns] * nh * hd;
        float *kc = pgd_test_randf(cs, 2300 + (uint64_t)hi, -1, 1),
              *vc = pgd_test_randf(cs, 2310 + (uint64_t)hi, -1, 1);
        float *q = pgd_test_randf(qn, 2320 + (uint64_t)hi, -1, 1), *ref = malloc(qn * 4), *out = malloc(qn * 4);
        char *k8 = malloc(rows * (hd + 4)), *v8 = malloc(rows * (hd + 4));
        for (size_t r = 0; r < rows; r++) {
            pgd_kv_row_from_f32(k8 + r * (hd + 4), PGD_Q8, kc + r * hd, hd);
            pgd_kv_row_from_f32(v8 + r * (hd + 4), PGD_Q8, vc + r * hd, hd);
        }
        pgd_paged_attn a = {.out = ref,
                            .q = q,
                            .k_cache = kc,
                            .v_cache = vc,
                            .query_start = qs,
                            .seq_lens = lens,
                            .block_tables = bt,
                            .num_seqs = ns,
                            .num_tokens = qs[ns],
                            .max_blocks_per_seq = maxb,
                            .n_heads = nh,
                            .n_kv_heads = nkv,
                            .head_dim = hd,
                            .block_size = bs,
                            .scale = 1.0f / sqrtf((float)hd),
                            .kv_dtype = PGD_F32};
        pgd_ref_paged_attention(&a);
        a.k_cache = k8, a.v_cache = v8, a.kv_dtype = PGD_Q8, a.out = out;
        pgd_ref_paged_attention(&a);
        double e = pgd_test_rel_err(out, ref, qn);
        check(e, 1e-2, "attention q8 vs f32", "ref", 0, hd, 0, 0);
        for (int ii = 0; ii < g_n_isas; ii++) {
            pgd_cpu_set_isa(g_isas[ii]);
            pgd_cpu_paged_attention(g_pool2, &a);
            check(pgd_test_rel_err(out, ref, qn), 1e-2, "attention q8 vs f32", g_isas[ii], 2, hd, 0, 0);
        }
        CU_ASSERT(e > 0); /* it is lossy */
        free(bt), free(kc), free(vc), free(q), free(ref), free(out), free(k8), free(v8);
    }
}

/* kv_write into a q8 cache: each row an f32 scale max|x| / 127 then the
 * values rounded to nearest, within half a step of the input; the fast
 * kernel byte for byte equal to the reference. */
static void test_kv_write_q8(void) {
    const int bs = 16, n = 70, nkv = 3, hd = 20, nblocks = 9;
    size_t rb = (size_t)hd + 4, cb = (size_t)nblocks * nkv * bs * rb, kvd = (size_t)nkv * hd;
    CU_ASSERT_EQUAL(pgd_kv_row_bytes(PGD_Q8, hd), rb);
    float *k = pgd_test_randf((size_t)n * kvd, 2400, -3, 3), *v = pgd_test_randf((size_t)n * kvd, 2401, -3, 3);
    int32_t slots[70];
    for (int i = 0; i < n; i++) slots[i] = i % 7 == 6 ? -1 : (i * 37) % (nblocks * bs);
    char *kr = calloc(cb, 1), *vr = calloc(cb, 1), *kc = calloc(cb, 1), *vc = calloc(cb, 1);
    pgd_ref_kv_write(kr, vr, PGD_Q8, k, v, slots, n, nkv, hd, bs, 0);
    for (int t = 0; t < n; t += 5) {
        if (slots[t] < 0) continue;
        for (int h = 0; h < nkv; h++) {
            const char *row = kr + (((size_t)(slots[t] / bs) * nkv + h) * bs + slots[t] % bs) * rb;
            const float *x = k + t * kvd + (size_t)h * hd;
            float amax = 0, s, back[20];
            for (int d = 0; d < hd; d++) amax = fmaxf(amax, fabsf(x[d]));
            memcpy(&s, row, 4);
            CU_ASSERT_EQUAL(s, amax / 127.0f);
            pgd_kv_row_to_f32(back, row, PGD_Q8, hd);
            for (int d = 0; d < hd; d++) CU_ASSERT(fabsf(back[d] - x[d]) <= 0.5f * s * 1.0001f);
        }
    }
    for (int ii = 0; ii < g_n_isas; ii++) {
        pgd_cpu_set_isa(g_isas[ii]);
        for (int p = 0; p < N_POOLS; p++) {
            memset(kc, 0, cb), memset(vc, 0, cb);
            pgd_cpu_kv_write(pool_at(p), kc, vc, PGD_Q8, k, v, slots, n, nkv, hd, bs, 0);
            CU_ASSERT(memcmp(kc, kr, cb) == 0 && memcmp(vc, vr, cb) == 0);
        }
    }
    float zero[20] = {0}, back[20];
    char zr[24];
    pgd_kv_row_from_f32(zr, PGD_Q8, zero, hd); /* an all-zero row: scale 0, values 0 */
    pgd_kv_row_to_f32(back, zr, PGD_Q8, hd);
    CU_ASSERT(memcmp(back, zero, sizeof zero) == 0);
    free(k), free(v), free(kr), free(vr), free(kc), free(vc);
}

/* kv_write into f16/bf16 caches: each value rounded to nearest even, the
 * fast kernel (F16C where present) byte for byte equal to the reference. */
static void test_kv_write_half(void) {
    static const pgd_dtype kts[] = {PGD_F16, PGD_BF16};
    const int bs = 16, n = 70, nkv = 3, hd = 20, nblocks = 9;
    size_t cs = (size_t)nblocks * nkv * bs * hd, kvd = (size_t)nkv * hd;
    float *k = pgd_test_randf((size_t)n * kvd, 2200, -3, 3), *v = pgd_test_randf((size_t)n * kvd, 2201, -3, 3);
    int32_t slots[70];
    for (int i = 0; i < n; i++) slots[i] = i % 7 == 6 ? -1 : (i * 37) % (nblocks * bs);
    uint16_t *kr = calloc(cs, 2), *vr = calloc(cs, 2), *kc = calloc(cs, 2), *vc = calloc(cs, 2);
    for (int d = 0; d < 2; d++) {
        memset(kr, 0, cs * 2), memset(vr, 0, cs * 2);
        pgd_ref_kv_write(kr, vr, kts[d], k, v, slots, n, nkv, hd, bs, 0);
        int t = 3; /* token 3's first value, where it landed */
        size_t at = ((size_t)(slots[t] / bs) * nkv * bs + slots[t] % bs) * hd;
        CU_ASSERT_EQUAL(kr[at], kts[d] == PGD_F16 ? pgd_f32_to_f16(k[t * kvd]) : pgd_f32_to_bf16(k[t * kvd]));
        for (int ii = 0; ii < g_n_isas; ii++) {
            pgd_cpu_set_isa(g_isas[ii]);
            for (int p = 0; p < N_POOLS; p++) {
                memset(kc, 0, cs * 2), memset(vc, 0, cs * 2);
                pgd_cpu_kv_write(pool_at(p), kc, vc, kts[d], k, v, slots, n, nkv, hd, bs, 0);
                CU_ASSERT(memcmp(kc, kr, cs * 2) == 0 && memcmp(vc, vr, cs * 2) == 0);
            }
        }
    }
    free(k), free(v), free(kr), free(vr), free(kc), free(vc);
}

/* One key: the output is its value row, whatever the score. */
static void test_attention_ref_known(void) {
    float q[4] = {1, 2, 3, 4}, kc[4] = {5, 6, 7, 8}, vc[4] = {0.5f, -1, 2, 3}, out[4];
    int32_t qs[2] = {0, 1}, len = 1, bt = 0;
    pgd_paged_attn a = {.out = out, .q = q, .k_cache = kc, .v_cache = vc, .query_start = qs,
                       .seq_lens = &len, .block_tables = &bt, .num_seqs = 1,
                       .max_blocks_per_seq = 1, .n_heads = 1, .n_kv_heads = 1, .head_dim = 4,
                       .block_size = 1, .scale = 0.5f};
    pgd_ref_paged_attention(&a);
    CU_ASSERT(memcmp(out, vc, sizeof vc) == 0);
}

/* ------------------------------------------------------------ threadpool */

typedef struct pool_probe {
    atomic_int calls[8];
    atomic_int bad_n;
    atomic_long sum;
    int expect_n;
} pool_probe;

static void probe_fn(void *arg, int i, int n) {
    pool_probe *p = arg;
    if (n != p->expect_n || i < 0 || i >= n) atomic_fetch_add(&p->bad_n, 1);
    else atomic_fetch_add(&p->calls[i], 1);
    atomic_fetch_add(&p->sum, i + 1);
}

static void pool_check(pgd_threadpool *tp, int n, int runs, int sleep_us) {
    pool_probe p = {.expect_n = n};
    for (int r = 0; r < runs; r++) {
        pgd_threadpool_run(tp, probe_fn, &p);
        if (sleep_us) usleep((useconds_t)sleep_us);
    }
    CU_ASSERT_EQUAL(atomic_load(&p.bad_n), 0);
    for (int i = 0; i < n; i++) CU_ASSERT_EQUAL(atomic_load(&p.calls[i]), runs);
    CU_ASSERT_EQUAL(atomic_load(&p.sum), (long)runs * n * (n + 1) / 2);
}

typedef struct slow_probe {
    atomic_int done;
} slow_probe;

static void slow_fn(void *arg, int i, int n) {
    slow_probe *p = arg;
    if (i == 1) {
        usleep(8000);
        atomic_fetch_add(&p->done, 1); /* must be visible when run returns */
    }
}

static void test_threadpool(void) {
    CU_ASSERT_EQUAL(pgd_threadpool_size(NULL), 1);
    CU_ASSERT_EQUAL(pgd_threadpool_size(g_pool1), 1);
    CU_ASSERT_EQUAL(pgd_threadpool_size(g_pool2), 2);
    pool_check(NULL, 1, 10, 0);
    pool_check(g_pool1, 1, 1000, 0);
    pool_check(g_pool2, 2, 20000, 0); /* back to back: the spinning path */
    pool_check(g_pool2, 2, 5, 6000);  /* gaps past the 2 ms spin: workers sleep */
    /* no spinning at all: every job wakes a sleeping worker (lost-wake-up races) */
    setenv("PAGODA_POOL_SPIN_US", "0", 1);
    pgd_threadpool *tp0 = pgd_threadpool_create(2);
    unsetenv("PAGODA_POOL_SPIN_US");
    CU_ASSERT_PTR_NOT_NULL_FATAL(tp0);
    pool_check(tp0, 2, 3000, 0);
    pgd_threadpool_destroy(tp0);
    /* a worker slower than the caller's 5 ms wait spin: the caller sleeps */
    slow_probe sp = {0};
    for (int r = 0; r < 3; r++) pgd_threadpool_run(g_pool2, slow_fn, &sp);
    CU_ASSERT_EQUAL(atomic_load(&sp.done), 3);
    pgd_threadpool *tp4 = pgd_threadpool_create(4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tp4);
    pool_check(tp4, 4, 2000, 0);
    pgd_threadpool_destroy(tp4);
    pgd_threadpool *tpd = pgd_threadpool_create(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tpd);
    CU_ASSERT_EQUAL(pgd_threadpool_size(tpd), (int)sysconf(_SC_NPROCESSORS_ONLN));
    pgd_threadpool_destroy(tpd);
    pgd_threadpool_destroy(NULL);
}

/* pgd_threadpool_run_claimed: items claimed from a counter, each done
 * exactly once per run whoever joins; runs of both kinds interleaved, on
 * pools whose workers spin, sleep (no spin: a worker often wakes after the
 * caller has done everything and closed the job, and must skip it) or are
 * four. */
typedef struct claim_probe {
    atomic_int next;
    int items;
    atomic_int done[64];
    atomic_int bad;
} claim_probe;

static void claim_fn(void *arg, int i, int n) {
    claim_probe *p = arg;
    if (i < 0 || i >= n) atomic_fetch_add(&p->bad, 1);
    for (int k; (k = atomic_fetch_add(&p->next, 1)) < p->items;) {
        if (k % 8 == 0) usleep(1); /* now and then long enough for a worker to join */
        atomic_fetch_add(&p->done[k], 1);
    }
}

static void claimed_check(pgd_threadpool *tp, int n, int runs) {
    pool_probe pp = {.expect_n = n};
    int bad = 0;
    for (int r = 0; r < runs; r++) {
        claim_probe cp = {.items = 1 + r % 64};
        pgd_threadpool_run_claimed(tp, claim_fn, &cp);
        for (int k = 0; k < 64; k++) bad += atomic_load(&cp.done[k]) != (k < cp.items);
        bad += atomic_load(&cp.bad);
        if (r % 3 == 0) pgd_threadpool_run(tp, probe_fn, &pp); /* every worker, every time */
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(atomic_load(&pp.bad_n), 0);
    for (int i = 0; i < n; i++) CU_ASSERT_EQUAL(atomic_load(&pp.calls[i]), (runs + 2) / 3);
}

static void test_threadpool_claimed(void) {
    claimed_check(NULL, 1, 10);
    claimed_check(g_pool1, 1, 100);
    claimed_check(g_pool2, 2, 3000);
    setenv("PAGODA_POOL_SPIN_US", "0", 1);
    pgd_threadpool *tp0 = pgd_threadpool_create(2);
    unsetenv("PAGODA_POOL_SPIN_US");
    CU_ASSERT_PTR_NOT_NULL_FATAL(tp0);
    claimed_check(tp0, 2, 3000);
    pgd_threadpool_destroy(tp0);
    pgd_threadpool *tp4 = pgd_threadpool_create(4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tp4);
    claimed_check(tp4, 4, 2000);
    pgd_threadpool_destroy(tp4);
}

static void test_isa(void) {
    const char *isa = pgd_cpu_isa();
    CU_ASSERT(strcmp(isa, "avx2") == 0 || strcmp(isa, "scalar") == 0);
    CU_ASSERT_EQUAL(pgd_cpu_set_isa("sse9"), -1);
    CU_ASSERT_EQUAL(pgd_cpu_set_isa("scalar"), 0);
    CU_ASSERT_STRING_EQUAL(pgd_cpu_isa(), "scalar");
    CU_ASSERT_EQUAL(pgd_cpu_set_isa(g_isas[0]), 0);
}

/* The compute probes: a positive rate on AVX2 (printed: f32 GFLOP/s and
 * int8 GMAC/s on 1 and 2 threads), 0 on the scalar path (no such kernel). */
static void test_compute_probe(void) {
    for (int ii = 0; ii < g_n_isas; ii++) {
        pgd_cpu_set_isa(g_isas[ii]);
        double f1 = pgd_cpu_measure_compute(g_pool1, PGD_PROBE_F32_FMA, 3);
        double i1 = pgd_cpu_measure_compute(g_pool1, PGD_PROBE_INT8_DOT, 3);
        double f2 = pgd_cpu_measure_compute(g_pool2, PGD_PROBE_F32_FMA, 3);
        double i2 = pgd_cpu_measure_compute(NULL, PGD_PROBE_INT8_DOT, 1);
        if (!strcmp(g_isas[ii], "scalar")) {
            CU_ASSERT(f1 == 0 && i1 == 0 && f2 == 0 && i2 == 0);
            continue;
        }
        CU_ASSERT(f1 > 1e9 && i1 > 1e9 && f2 > 1e9 && i2 > 1e9);
        fprintf(stderr, "[%s: f32 fma %.1f GFLOP/s (1 thread) %.1f (2), int8 dot %.1f GMAC/s (1)] ", g_isas[ii],
                f1 / 1e9, f2 / 1e9, i1 / 1e9);
    }
    pgd_cpu_set_isa(g_isas[0]);
}

/* The decode matmul probe (pgd_cpu_measure_matmul): a positive rate for
 * every weight dtype, on a pool and on the calling thread, on every ISA
 * path; 0 for shapes the kernels do not take. */
static void test_matmul_probe(void) {
    static const pgd_dtype dts[] = {PGD_F32, PGD_F16, PGD_Q8_0, PGD_Q4_0};
    for (int ii = 0; ii < g_n_isas; ii++) {
        pgd_cpu_set_isa(g_isas[ii]);
        for (size_t d = 0; d < sizeof dts / sizeof *dts; d++) {
            double a = pgd_cpu_measure_matmul(g_pool2, dts[d], 256, 96, (size_t)1 << 20, 2);
            double b = pgd_cpu_measure_matmul(NULL, dts[d], 288, 40, 0, 3);
            CU_ASSERT(a > 1e6 && a < 1e13);
            CU_ASSERT(b > 1e6 && b < 1e13);
        }
    }
    pgd_cpu_set_isa(g_isas[0]);
    CU_ASSERT_EQUAL(pgd_cpu_measure_matmul(NULL, PGD_Q8_0, 48, 8, 0, 1), 0.0); /* not whole blocks */
    CU_ASSERT_EQUAL(pgd_cpu_measure_matmul(NULL, PGD_F32, 0, 8, 0, 1), 0.0);
    CU_ASSERT_EQUAL(pgd_cpu_measure_matmul(NULL, PGD_F32, 8, -1, 0, 1), 0.0);
}

/* pgd_cpu_alloc_pages: 64-byte aligned below 2 MB, 2 MB aligned from there
 * (where transparent huge pages can back it), writable end to end, freed
 * with free(). */
static void test_alloc_pages(void) {
    static const size_t sizes[] = {1, 100, 4096, ((size_t)2 << 20) - 1, (size_t)2 << 20, ((size_t)5 << 20) + 3};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        char *p = pgd_cpu_alloc_pages(sizes[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        CU_ASSERT_EQUAL((uintptr_t)p % (sizes[i] >= ((size_t)2 << 20) ? ((size_t)2 << 20) : 64), 0);
        memset(p, 0x5a, sizes[i]);
        CU_ASSERT_EQUAL(p[sizes[i] - 1], 0x5a);
        free(p);
    }
}

static void test_copy_bandwidth(void) {
    double bw = pgd_cpu_measure_copy_bandwidth(NULL, (size_t)4 << 20, 3);
    CU_ASSERT(bw > 1e8 && bw < 1e13);
}

/* ---- registration ---- */

static CU_TestInfo kernel_tests[] = {
    {"reference known answers: matmul", test_matmul_ref_known},
    {"reference known answers: rmsnorm", test_rmsnorm_ref_known},
    {"reference known answers: rope", test_rope_ref_known},
    {"reference known answers: silu", test_silu_ref_known},
    {"reference known answers: attention", test_attention_ref_known},
    {"matmul f32 vs reference", test_matmul_f32},
    {"matmul f16 vs reference", test_matmul_f16},
    {"matmul bf16 vs reference", test_matmul_bf16},
    {"matmul model shapes", test_matmul_model_shapes},
    {"matmul batched tails", test_matmul_batched_tails},
    {"quantized formats q8_0, q4_0", test_quant_formats},
    {"matmul q8_0 vs reference (int8 bound)", test_matmul_q8_0},
    {"matmul q4_0 vs reference (int8 bound)", test_matmul_q4_0},
    {"embedding from quantized tables", test_embedding_quant},
    {"matmul q8_0x8 (the cpu backend's layout) vs reference", test_matmul_q8_0x8},
    {"matmul q4_0x8 (the cpu backend's layout) vs reference", test_matmul_q4_0x8},
    {"embedding from x8 tables", test_embedding_x8},
    {"attention over f16 and bf16 caches", test_attention_half},
    {"attention over q8 caches", test_attention_q8},
    {"attention q8 cache vs f32", test_attention_q8_vs_f32},
    {"kv_write q8", test_kv_write_q8},
    {"kv_write into f16 and bf16 caches", test_kv_write_half},
    {"embedding f32/f16/bf16", test_embedding},
    {"rmsnorm (and in place)", test_rmsnorm},
    {"rope incl. GQA, dense and strided rows", test_rope},
    {"silu_mul on [gate | up] rows", test_silu_mul},
    {"add", test_add},
    {"kv_write shuffled slots, block sizes 8/16/32, strided rows", test_kv_write},
    {"copy_blocks incl. chained pairs", test_copy_blocks},
    {"paged attention decode incl. GQA", test_attention_decode},
    {"paged attention ragged prefill+decode", test_attention_ragged},
    {"paged attention long context", test_attention_long},
    {"paged attention many heads", test_attention_many_heads},
    {"paged attention strided q rows", test_attention_q_stride},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo runtime_tests[] = {
    {"thread pool 1, 2, 4 threads and NULL", test_threadpool},
    {"thread pool: claimed runs (late workers skip)", test_threadpool_claimed},
    {"isa selection", test_isa},
    {"copy bandwidth measurement", test_copy_bandwidth},
    {"large buffers on huge pages (alignment)", test_alloc_pages},
    {"compute probes", test_compute_probe},
    {"decode matmul probe", test_matmul_probe},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "kernels", .pInitFunc = suite_init, .pCleanupFunc = suite_cleanup,
     .pTests = kernel_tests},
    {.pName = "kernel runtime", .pInitFunc = suite_init, .pCleanupFunc = suite_cleanup,
     .pTests = runtime_tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
