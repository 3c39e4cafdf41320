/* test_cpu_batch.c - CUnit tests for the batched decode step's shared
 * buffers on the CPU: the pool's scratch slots (pgd_threadpool_scratch) and
 * the batched quantized GEMM that packs x once per call into the pool's
 * shared slot, each thread packing the (tile, group) units it claims, and
 * keeps its W panels in its own slot.
 *
 * The GEMM's outputs must be bit for bit the same with a NULL pool (every
 * thread, here the only one, packs its own x into memory it allocates), a
 * 2-thread and a 4-thread pool (x packed by whichever threads claim its
 * units; 4 threads on fewer cores: units packed late or by a thread that
 * then waits), across calls that grow and shrink the slots, for q8_0, q4_0
 * and q4_k weights, at token counts from 6 (one tile) to past the one-pass
 * limit (x packed per block of tokens by every thread, not shared). */
#include "test_util.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

static pgd_threadpool *g_pool2, *g_pool4;
static int g_avx2; /* the GEMM runs on AVX2 CPUs only: elsewhere its tests pass vacuously */

static int suite_init(void) {
    g_pool2 = pgd_threadpool_create(2);
    g_pool4 = pgd_threadpool_create(4);
    g_avx2 = pgd_cpu_set_isa("avx2") == 0;
    return g_pool2 && g_pool4 ? 0 : 1;
}

static int suite_cleanup(void) {
    pgd_threadpool_destroy(g_pool2);
    pgd_threadpool_destroy(g_pool4);
    return 0;
}

/* ---------------------------------------------------------- scratch slots */

typedef struct slot_probe {
    pgd_threadpool *tp;
    size_t bytes;
    void *got[8];
    int bad;
} slot_probe;

/* Each thread writes its index over its whole slot; distinct slots keep
 * their bytes. */
static void slot_fn(void *arg, int i, int n) {
    slot_probe *p = arg;
    (void)n;
    unsigned char *b = pgd_threadpool_scratch(p->tp, i, p->bytes);
    p->got[i] = b;
    if (!b || (uintptr_t)b % 64) {
        p->bad = 1;
        return;
    }
    memset(b, i + 1, p->bytes);
}

static void test_scratch_slots(void) {
    CU_ASSERT_PTR_NULL(pgd_threadpool_scratch(NULL, 0, 100)); /* no pool: the caller allocates */
    CU_ASSERT_PTR_NULL(pgd_threadpool_scratch(g_pool2, -1, 100));
    CU_ASSERT_PTR_NULL(pgd_threadpool_scratch(g_pool2, 3, 100)); /* slots 0..size */
    /* the shared slot (index size): aligned, kept while not grown */
    unsigned char *s = pgd_threadpool_scratch(g_pool2, 2, 5000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL((uintptr_t)s % 64, 0);
    memset(s, 0x5a, 5000);
    CU_ASSERT_PTR_EQUAL(pgd_threadpool_scratch(g_pool2, 2, 100), s); /* smaller: the same buffer, same bytes */
    CU_ASSERT_EQUAL(s[4999], 0x5a);
    CU_ASSERT_PTR_EQUAL(pgd_threadpool_scratch(g_pool2, 2, 0), s);
    unsigned char *big = pgd_threadpool_scratch(g_pool2, 2, (size_t)3 << 20);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    big[((size_t)3 << 20) - 1] = 1; /* the whole size is usable (ASan checks) */
    /* per-thread slots from inside jobs: every thread its own buffer */
    slot_probe p = {.tp = g_pool4, .bytes = 4096};
    pgd_threadpool_run(g_pool4, slot_fn, &p);
    CU_ASSERT_EQUAL(p.bad, 0);
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(p.got[i]);
        for (int k = 0; k < i; k++) CU_ASSERT_PTR_NOT_EQUAL(p.got[i], p.got[k]);
    }
    for (int i = 0; i < 4; i++) {
        const unsigned char *b = p.got[i];
        CU_ASSERT(b[0] == i + 1 && b[4095] == i + 1); /* no other thread wrote into it */
    }
    p.bytes = 1 << 16; /* grown: new buffers, written whole */
    pgd_threadpool_run(g_pool4, slot_fn, &p);
    CU_ASSERT_EQUAL(p.bad, 0);
}

/* ------------------------------------------------------ the batched GEMM */

/* y for every pool, then each result against the NULL pool's bit for bit
 * and, loosely, against the reference (the tight int8 bound is
 * test_kernels'; this catches a buffer of the wrong token or block). */
static void gemm_run(pgd_threadpool *tp, float *y, const float *x, const void *w, pgd_dtype dt, int x8, int n, int in,
                     int out) {
    if (x8) pgd_cpu_matmul_x8(tp, y, x, w, dt, n, in, out);
    else pgd_cpu_matmul(tp, y, x, w, dt, n, in, out);
}

/* x8: q8_0 / q4_0 W regrouped to its x8 layout (the cpu backend's) first,
 * the reference on the plain bytes. */
static void gemm_case_w(pgd_dtype dt, int x8, int n, int in, int out, uint64_t seed) {
    float *x = pgd_test_randf((size_t)n * in, seed, -1.0f, 1.0f);
    void *w = pgd_test_rand_weights((size_t)out * in, dt, seed + 1);
    size_t no = (size_t)n * out;
    float *ref = malloc(no * sizeof *ref), *y0 = malloc(no * sizeof *y0), *y = malloc(no * sizeof *y);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ref && y0 && y);
    CU_ASSERT_FATAL(pgd_cpu_matmul_uses_int8(dt, n));
    pgd_ref_matmul(ref, x, w, dt, n, in, out);
    if (x8) CU_ASSERT_FATAL(pgd_cpu_x8_pack(w, dt, (size_t)out, in));
    gemm_run(NULL, y0, x, w, dt, x8, n, in, out);
    double err = pgd_test_rel_err(y0, ref, no);
    if (!(err < 0.05))
        fprintf(stderr, "\n  FAIL %s%s n=%d in=%d out=%d: rel err %g against the reference\n", pgd_dtype_name(dt),
                x8 ? "x8" : "", n, in, out, err);
    CU_ASSERT(err < 0.05);
    pgd_threadpool *pools[2] = {g_pool2, g_pool4};
    for (int p = 0; p < 2; p++)
        for (int rep = 0; rep < 3; rep++) { /* again: the slots as the last call left them */
            for (size_t i = 0; i < no; i++) y[i] = NAN;
            gemm_run(pools[p], y, x, w, dt, x8, n, in, out);
            int same = memcmp(y, y0, no * sizeof *y) == 0;
            if (!same)
                fprintf(stderr, "\n  FAIL %s%s n=%d in=%d out=%d pool of %d, call %d: not the NULL pool's outputs\n",
                        pgd_dtype_name(dt), x8 ? "x8" : "", n, in, out, pgd_threadpool_size(pools[p]), rep);
            CU_ASSERT(same);
        }
    free(x), free(w), free(ref), free(y0), free(y);
}

static void gemm_case(pgd_dtype dt, int n, int in, int out, uint64_t seed) {
    gemm_case_w(dt, 0, n, in, out, seed);
    /* the x8 layouts' GEMM (its batches start past 14 tokens for q8_0x8, 12 for q4_0x8; in % 256 == 0) */
    if ((dt == PGD_Q8_0 || dt == PGD_Q4_0) && n > 14 && pgd_cpu_x8_fits(in) && pgd_cpu_x8_enabled())
        gemm_case_w(dt, 1, n, in, out, seed + 50);
}

static void gemm_sweep(pgd_dtype dt) {
    if (!g_avx2) return;
    /* n from one tile to several, in from one group (q4_k: one super-block) to a last partial group
     * (q8_0/q4_0: 4128 = 129 blocks), out not a multiple of 8; small after large: the slots shrink in use */
    int kq = dt == PGD_Q4_K;
    int first = kq ? 9 : 6; /* the GEMM's smallest batch (q4_k: past the integer tiles) */
    const int cases[][3] = {{32, 768, 200}, {first, 256, 37}, {32, 2048, 64}, {17, kq ? 4096 : 4128, 24},
                            {100, 768, 9},  {first, 768, 8}};
    uint64_t seed = 7000 + 100 * (uint64_t)dt;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
        gemm_case(dt, cases[c][0], cases[c][1], cases[c][2], seed++);
    /* packed x past the GEMM's 4 MB block: packed per block of tokens by every thread (not shared) */
    if (kq) gemm_case(dt, 1100, 4096, 3, seed++);
    else gemm_case(dt, 600, 4128, 3, seed++);
    gemm_case(dt, 32, 768, 40, seed++); /* and shared again after it */
}

static void test_gemm_q8_0(void) { /* and q8_0x8 */
    gemm_sweep(PGD_Q8_0);
    if (g_avx2) gemm_case_w(PGD_Q8_0, 1, 40, 4096, 16, 77); /* x8 with in = 4096 */
}
static void test_gemm_q4_0(void) { /* and q4_0x8 */
    gemm_sweep(PGD_Q4_0);
    if (g_avx2) gemm_case_w(PGD_Q4_0, 1, 40, 4096, 16, 78);
}
static void test_gemm_q4_k(void) { gemm_sweep(PGD_Q4_K); }

static CU_TestInfo tests[] = {
    {"pool scratch slots: per thread, shared, kept, grown", test_scratch_slots},
    {"batched q8_0 / q8_0x8 GEMM: shared packed x = per-thread packing", test_gemm_q8_0},
    {"batched q4_0 / q4_0x8 GEMM: shared packed x = per-thread packing", test_gemm_q4_0},
    {"batched q4_k GEMM: shared packed x = per-thread packing", test_gemm_q4_k},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"cpu_batch", suite_init, suite_cleanup, NULL, NULL, tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
