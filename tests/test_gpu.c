/* test_gpu.c - conformance of a GPU backend ("cuda", else "rocm"; or
 * PAGODA_GPU_BACKEND) against the CPU reference kernels and the CPU backend.
 *
 * Skipped (exit 77, the reason on stdout) when this build has no GPU backend
 * or no device is present; PAGODA_GPU_REQUIRED=1 turns that into a failure
 * (use it on GPU machines so that a broken driver cannot pass as a skip).
 *
 * Every op runs through the public backend API on fresh random inputs (fixed
 * seeds) at several shapes, uploaded to the device, against the pgd_ref_*
 * kernel on the host: f32 results within 1e-5 relative error (max abs diff
 * over max |ref|), matmul with f16/bf16 weights within 1e-2 on the vendor
 * BLAS (its activations are rounded to the weight type) and 1e-5 on the own
 * GEMM, copies exact. rope, kv_write and attention also run on rows
 * strided as in the forward pass's fused q | k | v rows (with and without
 * padding; NaN outside the op's rows) and must leave the rest of each row
 * untouched. Attention runs under each variant (auto, single pass,
 * split-K) via PAGODA_GPU_ATTN, matmul under the vendor BLAS and the own GEMM
 * via PAGODA_GPU_GEMM, each with its own backend instance. End to end:
 * stories260K greedy tokens in one continuous batch must equal the golden
 * tokens, and random Llama-shape models (f32, bf16) must give the CPU
 * backend's logits through prefill and decode steps. The fused QKV and
 * gate+up projections: the model's logits equal the unfused reference
 * (tests/unfused_forward.h, separate GEMMs on the same weights) on the same
 * backend bit for bit with the own GEMM, which computes each output row
 * alone (gpu-emu, ROCm, PAGODA_GPU_GEMM=own), within 1e-5 with the vendor
 * BLAS (which may pick other kernels for the fused and the separate
 * shapes), and the CPU backend's unfused logits within the logits
 * tolerance. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kernels.h"
#include "pagoda/backend.h"
#include "pagoda/model.h"
#include "pagoda/sampler.h"
#include "unfused_forward.h"

#define TOL 1e-5
#define TOL16 1e-2

/* tests/test_gpu_emu.c includes this file with PGD_TEST_GPU_EMU 1: the same
 * suite on the "gpu-emu" backend (the GPU code run on the CPU). */
#ifndef PGD_TEST_GPU_EMU
#define PGD_TEST_GPU_EMU 0
#endif

static const char *g_name;
static pgd_backend *g_be;       /* defaults: AUTO attention, vendor BLAS if any */
static pgd_backend *g_single;   /* PAGODA_GPU_ATTN=single */
static pgd_backend *g_split;    /* PAGODA_GPU_ATTN=split */
static pgd_backend *g_own;      /* PAGODA_GPU_GEMM=own */
static int g_has_blas;          /* g_be's matmul is the vendor BLAS */

/* ---------------------------------------------------------------- helpers */

#define OK(expr)                                                                     \
    do {                                                                             \
        pgd_status s_ = (expr);                                                      \
        if (s_ != PGD_OK) fprintf(stderr, "\n  %s: %s\n", #expr, pgd_last_error());  \
        CU_ASSERT_EQUAL_FATAL(s_, PGD_OK);                                           \
    } while (0)

static uint64_t g_rng = 0x2545F4914F6CDD1Dull;
static uint32_t rnd(uint32_t n) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)((g_rng >> 11) % n);
}


/* Device copy of host data (bytes may be 0). */
static void *put(pgd_backend *be, const void *host, size_t bytes) {
    void *d = NULL;
    OK(pgd_backend_alloc(be, bytes, &d));
    OK(pgd_backend_upload(be, d, host, bytes));
    return d;
}
static void get(pgd_backend *be, void *host, const void *dev, size_t bytes) {
    OK(pgd_backend_download(be, host, dev, bytes));
}

static void check(double err, double tol, const char *what, int a, int b, int c) {
    if (!(err < tol))
        fprintf(stderr, "\n  FAIL %s (%d, %d, %d): rel err %g >= %g\n", what, a, b, c, err, tol);
    CU_ASSERT(err < tol);
}

/* ---------------------------------------------------------------- setup */

static pgd_backend *make(const char *attn, const char *gemm) {
    if (attn) setenv("PAGODA_GPU_ATTN", attn, 1);
    else unsetenv("PAGODA_GPU_ATTN");
    if (gemm) setenv("PAGODA_GPU_GEMM", gemm, 1);
    else unsetenv("PAGODA_GPU_GEMM");
    pgd_backend_config bc = {.name = g_name};
    pgd_backend *be = NULL;
    if (pgd_backend_create(&bc, &be) != PGD_OK) {
        fprintf(stderr, "cannot create %s backend: %s\n", g_name, pgd_last_error());
        be = NULL;
    }
    unsetenv("PAGODA_GPU_ATTN");
    unsetenv("PAGODA_GPU_GEMM");
    return be;
}

static int suite_init(void) {
    g_be = make(NULL, NULL);
    g_single = make("single", NULL);
    g_split = make("split", NULL);
    g_own = make(NULL, "own");
    if (!g_be || !g_single || !g_split || !g_own) return 1;
    g_has_blas = strstr(pgd_backend_describe(g_be), "own GEMM") == NULL;
    printf("\n  backend: %s\n", pgd_backend_describe(g_be));
    return 0;
}

static int suite_cleanup(void) {
    pgd_backend_destroy(g_be);
    pgd_backend_destroy(g_single);
    pgd_backend_destroy(g_split);
    pgd_backend_destroy(g_own);
    return 0;
}

/* ---------------------------------------------------------------- memory */

static void test_memory(void) {
    size_t n = 1000003;
    float *x = pgd_test_randf(n, 1, -1, 1), *y = malloc(n * 4);
    float *d = put(g_be, x, n * 4);
    get(g_be, y, d, n * 4);
    CU_ASSERT(memcmp(x, y, n * 4) == 0);
    OK(pgd_backend_memset(g_be, d, 0, n * 4));
    get(g_be, y, d, n * 4);
    int zeros = 1;
    for (size_t i = 0; i < n; i++) zeros &= y[i] == 0.0f;
    CU_ASSERT(zeros);
    /* pinned host memory: upload from it, download into it */
    float *h = NULL;
    OK(pgd_backend_host_alloc(g_be, n * 4, (void **)&h));
    memcpy(h, x, n * 4);
    OK(pgd_backend_upload(g_be, d, h, n * 4));
    memset(y, 0, n * 4);
    get(g_be, y, d, n * 4);
    CU_ASSERT(memcmp(x, y, n * 4) == 0);
    memset(h, 0, n * 4);
    get(g_be, h, d, n * 4);
    CU_ASSERT(memcmp(x, h, n * 4) == 0);
    OK(pgd_backend_sync(g_be));
    pgd_backend_host_free(g_be, h);
    pgd_backend_free(g_be, d);
    free(x), free(y);
}

/* ---------------------------------------------------------------- matmul */

static void matmul_case(pgd_backend *be, pgd_dtype dt, int n, int in, int out, uint64_t seed) {
    size_t xs = (size_t)n * in, ws = (size_t)out * in, ys = (size_t)n * out;
    float *x = pgd_test_randf(xs, seed, -1, 1), *ref = malloc(ys * 4), *y = malloc(ys * 4);
    void *w = pgd_test_rand_weights(ws, dt, seed + 1);
    pgd_ref_matmul(ref, x, w, dt, n, in, out);
    float *dx = put(be, x, xs * 4), *dy = NULL;
    void *dw = put(be, w, ws * pgd_dtype_size(dt));
    OK(pgd_backend_alloc(be, ys * 4, (void **)&dy));
    OK(pgd_backend_memset(be, dy, 0xff, ys * 4)); /* NaN: every output must be written */
    OK(pgd_backend_matmul(be, dy, dx, dw, dt, n, in, out));
    get(be, y, dy, ys * 4);
    int blas16 = dt != PGD_F32 && be != g_own && g_has_blas;
    check(pgd_test_rel_err(y, ref, ys), blas16 ? TOL16 : TOL, be == g_own ? "matmul own" : "matmul",
          n, in, out * 10 + (int)dt);
    pgd_backend_free(be, dx), pgd_backend_free(be, dy), pgd_backend_free(be, dw);
    free(x), free(ref), free(y), free(w);
}

static void matmul_sweep(pgd_backend *be) {
    static const int ns[] = {1, 2, 5, 8, 9, 64, 130};
    static const int shapes[][2] = {{8, 4}, {17, 5}, {64, 33}, {768, 12}, {1030, 9},
                                    {2053, 6}, {96, 130}, {512, 257}};
    uint64_t seed = 100;
    for (int dt = 0; dt < 3; dt++)
        for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
            for (size_t b = 0; b < sizeof shapes / sizeof *shapes; b++)
                matmul_case(be, (pgd_dtype)dt, ns[a], shapes[b][0], shapes[b][1], seed++);
    /* model-like shapes */
    matmul_case(be, PGD_F32, 1, 4096, 1024, 7);
    matmul_case(be, PGD_BF16, 3, 4096, 1024, 8);
    matmul_case(be, PGD_BF16, 200, 1024, 3000, 9);
    matmul_case(be, PGD_F16, 77, 2048, 768, 10);
}

static void test_matmul(void) { matmul_sweep(g_be); }
static void test_matmul_own_gemm(void) {
    if (!g_has_blas) return; /* then g_be's matmul is the own GEMM: done above */
    matmul_sweep(g_own);
}

/* ------------------------------------------------------------- elementwise */

static void test_embedding_gather(void) {
    static const int dims[] = {1, 7, 64, 771};
    for (int dt = 0; dt < 3; dt++) {
        for (int di = 0; di < 4; di++) {
            int dim = dims[di], vocab = 53, n = 70;
            size_t ts = (size_t)vocab * dim * pgd_dtype_size((pgd_dtype)dt);
            void *table = pgd_test_rand_weights((size_t)vocab * dim, (pgd_dtype)dt, 40 + (uint64_t)di);
            int32_t tokens[70];
            for (int i = 0; i < n; i++) tokens[i] = (int32_t)rnd((uint32_t)vocab);
            float *ref = malloc((size_t)n * dim * 4), *y = malloc((size_t)n * dim * 4);
            pgd_ref_embedding(ref, table, (pgd_dtype)dt, tokens, n, dim);
            void *dt_ = put(g_be, table, ts);
            int32_t *dtok = put(g_be, tokens, sizeof tokens);
            float *dy = NULL, *dg = NULL;
            OK(pgd_backend_alloc(g_be, (size_t)n * dim * 4, (void **)&dy));
            OK(pgd_backend_embedding(g_be, dy, dt_, (pgd_dtype)dt, dtok, n, dim));
            get(g_be, y, dy, (size_t)n * dim * 4);
            CU_ASSERT(memcmp(y, ref, (size_t)n * dim * 4) == 0);
            /* gather rows of the embedded block back in another order */
            int32_t rows[9];
            for (int i = 0; i < 9; i++) rows[i] = (int32_t)rnd((uint32_t)n);
            int32_t *drows = put(g_be, rows, sizeof rows);
            OK(pgd_backend_alloc(g_be, (size_t)9 * dim * 4, (void **)&dg));
            OK(pgd_backend_gather_rows(g_be, dg, dy, drows, 9, dim));
            float *g = malloc((size_t)9 * dim * 4);
            get(g_be, g, dg, (size_t)9 * dim * 4);
            for (int i = 0; i < 9; i++)
                CU_ASSERT(memcmp(g + (size_t)i * dim, ref + (size_t)rows[i] * dim, (size_t)dim * 4) == 0);
            pgd_backend_free(g_be, dt_), pgd_backend_free(g_be, dtok), pgd_backend_free(g_be, dy);
            pgd_backend_free(g_be, drows), pgd_backend_free(g_be, dg);
            free(table), free(ref), free(y), free(g);
        }
    }
}

static void test_rmsnorm(void) {
    static const int cases[][2] = {{1, 7}, {3, 64}, {17, 768}, {5, 1001}, {64, 4096}, {2, 8192}};
    for (int c = 0; c < 6; c++) {
        int n = cases[c][0], dim = cases[c][1];
        size_t sz = (size_t)n * dim;
        float *x = pgd_test_randf(sz, 200 + (uint64_t)c, -2, 2), *w = pgd_test_randf((size_t)dim, 300 + (uint64_t)c, 0.5f, 1.5f);
        float *ref = malloc(sz * 4), *y = malloc(sz * 4);
        pgd_ref_rmsnorm(ref, x, w, n, dim, 1e-5f);
        float *dx = put(g_be, x, sz * 4), *dw = put(g_be, w, (size_t)dim * 4), *dy = NULL;
        OK(pgd_backend_alloc(g_be, sz * 4, (void **)&dy));
        OK(pgd_backend_rmsnorm(g_be, dy, dx, dw, n, dim, 1e-5f));
        get(g_be, y, dy, sz * 4);
        check(pgd_test_rel_err(y, ref, sz), TOL, "rmsnorm", n, dim, 0);
        OK(pgd_backend_rmsnorm(g_be, dx, dx, dw, n, dim, 1e-5f)); /* in place */
        get(g_be, y, dx, sz * 4);
        check(pgd_test_rel_err(y, ref, sz), TOL, "rmsnorm in place", n, dim, 0);
        pgd_backend_free(g_be, dx), pgd_backend_free(g_be, dw), pgd_backend_free(g_be, dy);
        free(x), free(w), free(ref), free(y);
    }
}

/* Fused rows: n dense rows of `width` floats of src at dst + t * stride + off,
 * and back; nan_rows: a (n, stride) host buffer of NaNs. */
static void to_rows(float *dst, size_t stride, size_t off, const float *src, int n, size_t width) {
    for (int t = 0; t < n; t++) memcpy(dst + (size_t)t * stride + off, src + (size_t)t * width, width * 4);
}
static void to_dense(float *dst, const float *src, size_t stride, size_t off, int n, size_t width) {
    for (int t = 0; t < n; t++) memcpy(dst + (size_t)t * width, src + (size_t)t * stride + off, width * 4);
}
static float *nan_rows(int n, size_t stride) {
    float *b = malloc((size_t)n * stride * 4);
    for (size_t i = 0; i < (size_t)n * stride; i++) b[i] = NAN;
    return b;
}

static void test_rope(void) {
    /* (n, heads, kv_heads, head_dim, theta, max pos) */
    static const struct { int n, nh, nkv, hd; float theta; int maxpos; } cs[] = {
        {1, 6, 6, 48, 10000.0f, 10},     {7, 8, 2, 64, 10000.0f, 300},
        {33, 32, 8, 128, 500000.0f, 8191}, {5, 8, 4, 8, 10000.0f, 511},
        {3, 4, 1, 2, 10000.0f, 70},      {64, 4, 4, 256, 1e6f, 4000},
    };
    for (size_t c = 0; c < sizeof cs / sizeof *cs; c++) {
        int n = cs[c].n, nh = cs[c].nh, nkv = cs[c].nkv, hd = cs[c].hd;
        size_t qs = (size_t)n * nh * hd, ks = (size_t)n * nkv * hd;
        float *q = pgd_test_randf(qs, 400 + c, -1, 1), *k = pgd_test_randf(ks, 500 + c, -1, 1);
        float *qr = malloc(qs * 4), *kr = malloc(ks * 4), *qg = malloc(qs * 4), *kg = malloc(ks * 4);
        int32_t *pos = malloc((size_t)n * 4);
        for (int i = 0; i < n; i++) pos[i] = i == n - 1 ? cs[c].maxpos : (int32_t)rnd((uint32_t)cs[c].maxpos + 1);
        memcpy(qr, q, qs * 4), memcpy(kr, k, ks * 4);
        pgd_ref_rope(qr, kr, pos, n, nh, nkv, hd, cs[c].theta, 0);
        float *dq = put(g_be, q, qs * 4), *dk = put(g_be, k, ks * 4);
        int32_t *dp = put(g_be, pos, (size_t)n * 4);
        OK(pgd_backend_rope(g_be, dq, dk, dp, n, nh, nkv, hd, cs[c].theta, 0));
        get(g_be, qg, dq, qs * 4), get(g_be, kg, dk, ks * 4);
        check(pgd_test_rel_err(qg, qr, qs), TOL, "rope q", n, nh, hd);
        check(pgd_test_rel_err(kg, kr, ks), TOL, "rope k", n, nkv, hd);
        /* in fused q | k | v rows, exact and padded by 3 floats: the same
         * results, v and the padding untouched */
        size_t qd = (size_t)nh * hd, kvd = (size_t)nkv * hd;
        for (int pad = 0; pad <= 3; pad += 3) {
            size_t st = qd + 2 * kvd + (size_t)pad;
            float *rows = nan_rows(n, st), *back = malloc((size_t)n * st * 4);
            to_rows(rows, st, 0, q, n, qd), to_rows(rows, st, qd, k, n, kvd);
            float *dr = put(g_be, rows, (size_t)n * st * 4);
            OK(pgd_backend_rope(g_be, dr, dr + qd, dp, n, nh, nkv, hd, cs[c].theta, (int)st));
            get(g_be, back, dr, (size_t)n * st * 4);
            to_dense(qg, back, st, 0, n, qd), to_dense(kg, back, st, qd, n, kvd);
            check(pgd_test_rel_err(qg, qr, qs), TOL, "rope q strided", n, nh, (int)st);
            check(pgd_test_rel_err(kg, kr, ks), TOL, "rope k strided", n, nkv, (int)st);
            for (int t = 0; t < n; t++)
                CU_ASSERT(memcmp(back + t * st + qd + kvd, rows + t * st + qd + kvd, (st - qd - kvd) * 4) == 0);
            pgd_backend_free(g_be, dr);
            free(rows), free(back);
        }
        pgd_backend_free(g_be, dq), pgd_backend_free(g_be, dk), pgd_backend_free(g_be, dp);
        free(q), free(k), free(qr), free(kr), free(qg), free(kg), free(pos);
    }
}

static void test_silu_mul_add(void) {
    /* silu_mul: (rows, hidden) from [gate | up] rows; then add on n = rows * hidden */
    /* the last: more rows than a grid's y dimension takes (fewer on the slow emulator) */
    static const int cs[][2] = {{1, 1}, {1, 3}, {4, 250}, {1, 65536 + 3}, {3, 14336},
                                {PGD_TEST_GPU_EMU ? 300 : 70000, 2}};
    for (size_t c = 0; c < sizeof cs / sizeof *cs; c++) {
        int rows = cs[c][0], h = cs[c][1];
        size_t n = (size_t)rows * h;
        float *gu = pgd_test_randf(2 * n, 600 + c, -6, 6), *u = pgd_test_randf(n, 700 + c, -2, 2);
        for (int r = 0; r < rows; r++) /* up in [-2, 2) (u's values) */
            memcpy(gu + (2 * (size_t)r + 1) * h, u + (size_t)r * h, (size_t)h * 4);
        float *ref = malloc(n * 4), *y = malloc(n * 4);
        pgd_ref_silu_mul(ref, gu, rows, h);
        float *dgu = put(g_be, gu, 2 * n * 4), *du = put(g_be, u, n * 4), *dg = NULL;
        OK(pgd_backend_alloc(g_be, n * 4, (void **)&dg));
        OK(pgd_backend_memset(g_be, dg, 0xff, n * 4));
        OK(pgd_backend_silu_mul(g_be, dg, dgu, rows, h));
        get(g_be, y, dg, n * 4);
        check(pgd_test_rel_err(y, ref, n), TOL, "silu_mul", rows, h, 0);
        /* add: exact; also from an offset that breaks 16-byte alignment. It
         * starts from the reference's silu_mul result: the device's expf may
         * differ from the host's in the last bit (CUDA's does), and add must
         * be compared on equal inputs */
        OK(pgd_backend_upload(g_be, dg, ref, n * 4));
        pgd_ref_add(ref, u, n);
        OK(pgd_backend_add(g_be, dg, du, n));
        get(g_be, y, dg, n * 4);
        CU_ASSERT(memcmp(y, ref, n * 4) == 0);
        if (n > 1) {
            pgd_ref_add(ref + 1, u, n - 1);
            OK(pgd_backend_add(g_be, dg + 1, du, n - 1));
            get(g_be, y, dg, n * 4);
            CU_ASSERT(memcmp(y, ref, n * 4) == 0);
        }
        pgd_backend_free(g_be, dg), pgd_backend_free(g_be, du), pgd_backend_free(g_be, dgu);
        free(gu), free(u), free(ref), free(y);
    }
}

static void test_kv_write_copy_blocks(void) {
    static const int cs[][4] = {{16, 4, 64, 40}, {8, 2, 7, 33}, {1, 8, 128, 5}, {32, 1, 256, 70}};
    for (size_t c = 0; c < sizeof cs / sizeof *cs; c++) {
        int bs = cs[c][0], nkv = cs[c][1], hd = cs[c][2], n = cs[c][3];
        int nblocks = (n + bs - 1) / bs + 4;
        size_t bf = (size_t)nkv * bs * hd, cs_ = (size_t)nblocks * bf, ts = (size_t)n * nkv * hd;
        float *kc = pgd_test_randf(cs_, 800 + c, -1, 1), *vc = pgd_test_randf(cs_, 900 + c, -1, 1);
        float *k = pgd_test_randf(ts, 1000 + c, -1, 1), *v = pgd_test_randf(ts, 1100 + c, -1, 1);
        int32_t *slots = malloc((size_t)n * 4);
        int32_t *perm = malloc((size_t)nblocks * bs * 4);
        for (int i = 0; i < nblocks * bs; i++) perm[i] = i;
        for (int i = nblocks * bs - 1; i > 0; i--) {
            int j = (int)rnd((uint32_t)i + 1), t = perm[i];
            perm[i] = perm[j], perm[j] = t;
        }
        for (int i = 0; i < n; i++) slots[i] = i % 7 == 3 ? -1 : perm[i]; /* some padding tokens */
        float *dkc = put(g_be, kc, cs_ * 4), *dvc = put(g_be, vc, cs_ * 4);
        float *dk = put(g_be, k, ts * 4), *dv = put(g_be, v, ts * 4);
        float *kc0 = malloc(cs_ * 4), *vc0 = malloc(cs_ * 4); /* the caches before the writes */
        memcpy(kc0, kc, cs_ * 4), memcpy(vc0, vc, cs_ * 4);
        int32_t *ds = put(g_be, slots, (size_t)n * 4);
        pgd_ref_kv_write(kc, vc, PGD_F32, k, v, slots, n, nkv, hd, bs, 0);
        OK(pgd_backend_kv_write(g_be, dkc, dvc, dk, dv, ds, n, nkv, hd, bs, 0));
        float *kg = malloc(cs_ * 4), *vg = malloc(cs_ * 4);
        get(g_be, kg, dkc, cs_ * 4), get(g_be, vg, dvc, cs_ * 4);
        CU_ASSERT(memcmp(kg, kc, cs_ * 4) == 0);
        CU_ASSERT(memcmp(vg, vc, cs_ * 4) == 0);
        /* from q | k | v rows (q of 2 heads) padded by 5 floats: the same cache */
        size_t kvd = (size_t)nkv * hd, st = 2 * (size_t)hd + 2 * kvd + 5, ko = 2 * (size_t)hd;
        float *rows = nan_rows(n, st);
        to_rows(rows, st, ko, k, n, kvd), to_rows(rows, st, ko + kvd, v, n, kvd);
        float *dr = put(g_be, rows, (size_t)n * st * 4);
        OK(pgd_backend_upload(g_be, dkc, kc0, cs_ * 4));
        OK(pgd_backend_upload(g_be, dvc, vc0, cs_ * 4));
        OK(pgd_backend_kv_write(g_be, dkc, dvc, dr + ko, dr + ko + kvd, ds, n, nkv, hd, bs, (int)st));
        get(g_be, kg, dkc, cs_ * 4), get(g_be, vg, dvc, cs_ * 4);
        CU_ASSERT(memcmp(kg, kc, cs_ * 4) == 0);
        CU_ASSERT(memcmp(vg, vc, cs_ * 4) == 0);
        pgd_backend_free(g_be, dr);
        free(rows), free(kc0), free(vc0);
        /* copy-on-write pairs: distinct destinations, no destination is a source */
        int32_t pairs[6] = {0, nblocks - 1, 2, nblocks - 2, 1, nblocks - 3};
        int np = nblocks >= 6 ? 3 : 1;
        int32_t *dpairs = put(g_be, pairs, sizeof pairs);
        pgd_ref_copy_blocks(kc, pairs, np, bf);
        OK(pgd_backend_copy_blocks(g_be, dkc, dpairs, np, bf));
        get(g_be, kg, dkc, cs_ * 4);
        CU_ASSERT(memcmp(kg, kc, cs_ * 4) == 0);
        pgd_backend_free(g_be, dkc), pgd_backend_free(g_be, dvc), pgd_backend_free(g_be, dk);
        pgd_backend_free(g_be, dv), pgd_backend_free(g_be, ds), pgd_backend_free(g_be, dpairs);
        free(kc), free(vc), free(k), free(v), free(slots), free(perm), free(kg), free(vg);
    }
}

/* ------------------------------------------------------------- attention */

/* A ragged batch of ns sequences, nq[s] new tokens of a context of len[s],
 * blocks scattered over the cache; run on `be` and compared with the
 * reference (and, run twice, bit for bit with itself). q is dense (qpad < 0)
 * or read from rows of nh*hd + qpad floats (q_stride; NaN padding). */
static void attention_case_q(pgd_backend *be, int bs, int nh, int nkv, int hd, int ns,
                             const int *len, const int *nq, uint64_t seed, int qpad) {
    int maxb = 0, total_blocks = 0, ntok = 0, max_len = 0;
    for (int s = 0; s < ns; s++) {
        int nb = (len[s] + bs - 1) / bs;
        maxb = nb > maxb ? nb : maxb;
        total_blocks += nb;
        ntok += nq[s];
        max_len = len[s] > max_len ? len[s] : max_len;
    }
    total_blocks += 3;
    size_t cs = (size_t)total_blocks * nkv * bs * hd, qs = (size_t)ntok * nh * hd;
    float *kc = pgd_test_randf(cs, seed, -1, 1), *vc = pgd_test_randf(cs, seed + 1, -1, 1);
    float *q = pgd_test_randf(qs, seed + 2, -1, 1);
    float *ref = malloc(qs * 4), *out = malloc(qs * 4), *out2 = malloc(qs * 4);
    int32_t *bt = malloc((size_t)ns * maxb * 4), *perm = malloc((size_t)total_blocks * 4);
    int32_t *qstart = malloc((size_t)(ns + 1) * 4), *lens = malloc((size_t)ns * 4);
    for (int i = 0; i < total_blocks; i++) perm[i] = i;
    for (int i = total_blocks - 1; i > 0; i--) {
        int j = (int)rnd((uint32_t)i + 1), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    int next = 0;
    qstart[0] = 0;
    for (int s = 0; s < ns; s++) {
        for (int b = 0; b < maxb; b++) bt[s * maxb + b] = b < (len[s] + bs - 1) / bs ? perm[next++] : -1;
        qstart[s + 1] = qstart[s] + nq[s];
        lens[s] = len[s];
    }
    pgd_paged_attn a = {.out = ref, .q = q, .k_cache = kc, .v_cache = vc, .query_start = qstart,
                       .seq_lens = lens, .block_tables = bt, .num_seqs = ns,
                       .max_blocks_per_seq = maxb, .n_heads = nh, .n_kv_heads = nkv,
                       .head_dim = hd, .block_size = bs, .scale = 1.0f / sqrtf((float)hd)};
    pgd_ref_paged_attention(&a);
    size_t qst = (size_t)nh * hd + (size_t)(qpad > 0 ? qpad : 0);
    float *qrows = nan_rows(ntok, qst);
    to_rows(qrows, qst, 0, q, ntok, (size_t)nh * hd);
    pgd_paged_attn g = {.q = put(be, qpad < 0 ? q : qrows, qpad < 0 ? qs * 4 : (size_t)ntok * qst * 4),
                        .q_stride = qpad < 0 ? 0 : (int)qst, .k_cache = put(be, kc, cs * 4),
                        .v_cache = put(be, vc, cs * 4), .query_start = put(be, qstart, (size_t)(ns + 1) * 4),
                        .seq_lens = put(be, lens, (size_t)ns * 4), .block_tables = put(be, bt, (size_t)ns * maxb * 4),
                        .num_seqs = ns, .num_tokens = ntok, .max_blocks_per_seq = maxb,
                        .max_seq_len = max_len, .n_heads = nh, .n_kv_heads = nkv, .head_dim = hd,
                        .block_size = bs, .scale = a.scale};
    OK(pgd_backend_alloc(be, qs * 4, (void **)&g.out));
    OK(pgd_backend_memset(be, g.out, 0xff, qs * 4));
    OK(pgd_backend_paged_attention(be, &g));
    get(be, out, g.out, qs * 4);
    const char *what = be == g_single ? "attention single" : be == g_split ? "attention split" : "attention auto";
    check(pgd_test_rel_err(out, ref, qs), TOL, what, bs, nh * 100 + nkv, hd * 1000 + qpad);
    OK(pgd_backend_paged_attention(be, &g));
    get(be, out2, g.out, qs * 4);
    CU_ASSERT(memcmp(out, out2, qs * 4) == 0); /* deterministic */
    pgd_backend_free(be, g.out), pgd_backend_free(be, (void *)g.q);
    pgd_backend_free(be, (void *)g.k_cache), pgd_backend_free(be, (void *)g.v_cache);
    pgd_backend_free(be, (void *)g.query_start), pgd_backend_free(be, (void *)g.seq_lens);
    pgd_backend_free(be, (void *)g.block_tables);
    free(kc), free(vc), free(q), free(ref), free(out), free(out2), free(bt), free(perm);
    free(qstart), free(lens), free(qrows);
}

static void attention_case(pgd_backend *be, int bs, int nh, int nkv, int hd, int ns,
                           const int *len, const int *nq, uint64_t seed) {
    attention_case_q(be, bs, nh, nkv, hd, ns, len, nq, seed, -1);
}

/* every variant; on the emulator (slow) only auto, plus the forced
 * variants where `all` is set */
static void attention_all(int bs, int nh, int nkv, int hd, int ns, const int *len, const int *nq,
                          uint64_t seed, int all) {
    attention_case(g_be, bs, nh, nkv, hd, ns, len, nq, seed);
    if (PGD_TEST_GPU_EMU && !all) return;
    attention_case(g_single, bs, nh, nkv, hd, ns, len, nq, seed + 100);
    attention_case(g_split, bs, nh, nkv, hd, ns, len, nq, seed + 200);
}

static void test_attention_decode(void) {
    static const int len[] = {1, 9, 33, 200, 17, 640, 129, 2}, nq[] = {1, 1, 1, 1, 1, 1, 1, 1};
    attention_all(16, 32, 8, 128, 8, len, nq, 1300, 1); /* Llama-3 heads, GQA 4 */
    attention_all(16, 12, 12, 64, 8, len, nq, 1310, 1);
    attention_all(8, 8, 2, 48, 8, len, nq, 1320, 1);
    attention_all(32, 8, 4, 8, 8, len, nq, 1330, 1); /* stories260K heads */
}

static void test_attention_ragged(void) {
    /* fresh prefill, decode, chunked prefill after a cached prefix, decode */
    static const int len[] = {37, 64, 90, 1, 130}, nq[] = {37, 1, 20, 1, 5};
    static const int bss[] = {1, 8, 16, 32};
    static const int heads[][2] = {{4, 4}, {8, 2}, {6, 1}, {24, 2}};
    static const int hds[] = {64, 20, 7, 128, 256};
    for (int b = 0; b < 4; b++)
        for (int h = 0; h < 4; h++)
            attention_all(bss[b], heads[h][0], heads[h][1], hds[(b + h) % 5], 5, len, nq,
                          1400 + 1000 * (uint64_t)(b * 4 + h), b == h);
}

static void test_attention_long(void) {
    /* split-K territory: long contexts, few sequences; a 9000-token one (> 8192);
     * the emulator gets shorter ones (still several partitions) */
    const int e = PGD_TEST_GPU_EMU;
    const int len1[] = {e ? 1500 : 4097}, nq1[] = {1};
    attention_all(16, 32, 8, 128, 1, len1, nq1, 1700, 1);
    const int len2[] = {e ? 2100 : 9000, 513, e ? 700 : 3000}, nq2[] = {1, 1, 2};
    attention_all(16, 8, 1, 64, 3, len2, nq2, 1710, 1);
    const int len3[] = {e ? 400 : 2000, e ? 300 : 1500}, nq3[] = {e ? 60 : 300, 1}; /* long prefill chunk */
    attention_all(32, 4, 2, 128, 2, len3, nq3, 1720, 1);
}

/* q read in place from strided rows (the forward pass's fused q | k | v
 * rows): q_stride = the row itself, fused rows, fused rows padded by 5
 * floats (row starts not 16-byte aligned); head dims 128 and 64 (the
 * vectorised kernels) and 20; decode and prefill rows; every variant on the
 * first shape. */
static void test_attention_q_stride(void) {
    static const int len[] = {37, 64, 90, 1, 130}, nq[] = {37, 1, 20, 1, 5};
    static const int heads[][3] = {{8, 2, 128}, {4, 4, 64}, {6, 1, 20}};
    for (int h = 0; h < 3; h++) {
        int nh = heads[h][0], nkv = heads[h][1], hd = heads[h][2], fused = 2 * nkv * hd;
        const int pads[3] = {0, fused, fused + 5};
        for (int pi = 0; pi < 3; pi++) {
            uint64_t seed = 1900 + 10 * (uint64_t)(h * 3 + pi);
            attention_case_q(g_be, 16, nh, nkv, hd, 5, len, nq, seed, pads[pi]);
            if (h == 0 && pi == 2) {
                attention_case_q(g_single, 16, nh, nkv, hd, 5, len, nq, seed + 1, pads[pi]);
                attention_case_q(g_split, 16, nh, nkv, hd, 5, len, nq, seed + 2, pads[pi]);
            }
        }
    }
}

/* Errors name the backend and the op; PAGODA_GPU_SYNC=1 (wait after every
 * op) gives the same results. */
static void test_errors_and_sync_mode(void) {
    pgd_paged_attn a = {.num_seqs = 1, .num_tokens = 1, .max_blocks_per_seq = 1, .max_seq_len = 1,
                        .n_heads = 2, .n_kv_heads = 1, .head_dim = 300, .block_size = 16, .scale = 1};
    CU_ASSERT_EQUAL(pgd_backend_paged_attention(g_be, &a), PGD_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "paged_attention"));
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), g_name));
    void *p = NULL;
    CU_ASSERT_EQUAL(pgd_backend_alloc(g_be, (size_t)1 << 62, &p), PGD_ERR_OOM);
    CU_ASSERT_PTR_NULL(p);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "alloc"));
    setenv("PAGODA_GPU_SYNC", "1", 1);
    pgd_backend *sync_be = make(NULL, NULL);
    unsetenv("PAGODA_GPU_SYNC");
    CU_ASSERT_PTR_NOT_NULL_FATAL(sync_be);
    static const int len[] = {70, 3}, nq[] = {5, 1};
    attention_case(sync_be, 16, 8, 2, 64, 2, len, nq, 2100);
    matmul_case(sync_be, PGD_BF16, 4, 96, 40, 2110);
    pgd_backend_destroy(sync_be);
}

/* ------------------------------------------------------------- sampling */


static void test_argmax_sample(void) {
    enum { R = 24 };
    const int vocabs[] = {1, 7, 512, 32000, 128256};
    for (int vi = 0; vi < 5; vi++) {
        int n = vocabs[vi];
        float *l = pgd_test_randf((size_t)R * n, 3000 + (uint64_t)vi, -8, 8);
        /* special rows: ties, NaNs, all NaN, -inf, +inf, quantised logits (many ties) */
        for (int i = 0; i < n; i++) {
            l[0 * (size_t)n + i] = (float)(i % 3);
            l[1 * (size_t)n + i] = i % 5 == 0 ? NAN : l[1 * (size_t)n + i];
            l[2 * (size_t)n + i] = NAN;
            l[3 * (size_t)n + i] = i % 2 ? -INFINITY : NAN;
            l[5 * (size_t)n + i] = roundf(l[5 * (size_t)n + i]);
            l[6 * (size_t)n + i] = roundf(l[6 * (size_t)n + i] * 0.25f);
        }
        l[4 * (size_t)n + n / 2] = INFINITY;
        pgd_sample_row rows[R];
        for (int r = 0; r < R; r++) {
            static const float temps[] = {0.0f, 1.0f, 0.7f, 1.3f};
            static const int ks[] = {0, 1, 5, 40, 1000};
            static const float ps[] = {1.0f, 0.9f, 0.5f, 0.05f, 0.0f};
            rows[r].temperature = r < 7 ? 0.9f : temps[r % 4];
            rows[r].top_k = ks[(r / 2) % 5];
            rows[r].top_p = ps[(r / 3) % 5];
            rows[r].uniform = (float)((r * 7919 + 17) % 1000) / 1000.0f;
        }
        float *dl = put(g_be, l, (size_t)R * n * 4);
        pgd_sample_row *dr = put(g_be, rows, sizeof rows);
        int32_t *dout = NULL, got[R];
        OK(pgd_backend_alloc(g_be, sizeof got, (void **)&dout));
        OK(pgd_backend_argmax(g_be, dout, dl, R, n));
        get(g_be, got, dout, sizeof got);
        for (int r = 0; r < R; r++) CU_ASSERT_EQUAL(got[r], pgd_argmax(l + (size_t)r * n, n));
        OK(pgd_backend_sample(g_be, dout, dl, dr, R, n));
        get(g_be, got, dout, sizeof got);
        for (int r = 0; r < R; r++) {
            double margin;
            int want = pgd_test_ref_sample(l + (size_t)r * n, n, rows[r], &margin);
            if (got[r] != want && margin > 1e-5) {
                fprintf(stderr, "\n  FAIL sample vocab %d row %d (T=%g k=%d p=%g u=%g): got %d want %d\n",
                        n, r, rows[r].temperature, rows[r].top_k, rows[r].top_p, rows[r].uniform,
                        got[r], want);
                CU_FAIL("sample");
            }
        }
        pgd_backend_free(g_be, dl), pgd_backend_free(g_be, dr), pgd_backend_free(g_be, dout);
        free(l);
    }
}

/* ------------------------------------------------------------- end to end */

#define MODEL "models/stories260K/stories260K.bin"
#define GOLDEN "golden/stories260K_greedy.jsonl"

/* All golden prompts decode in one continuous batch, prompts prefilled in
 * chunks of 5, blocks of 8 in a scrambled order; greedy on the host from
 * the GPU's logits. */
static void test_golden_stories260k(void) {
    FILE *f = fopen(pgd_test_data(GOLDEN), "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    enum { MAXG = 8 };
    static int32_t ptok[MAXG][64], gtok[MAXG][1024], gen[MAXG][1024];
    int np[MAXG], ng[MAXG], NG = 0;
    static char line[65536];
    const int max_prompts = PGD_TEST_GPU_EMU ? 3 : MAXG; /* the emulator is slow */
    while (NG < max_prompts && fgets(line, sizeof line, f)) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        CU_ASSERT_PTR_NOT_NULL_FATAL(o);
        json_t *pt = json_object_get(o, "prompt_tokens"), *gt = json_object_get(o, "greedy_new_tokens");
        np[NG] = (int)json_array_size(pt);
        ng[NG] = (int)json_array_size(gt);
        if (PGD_TEST_GPU_EMU && ng[NG] > 40) ng[NG] = 40; /* a prefix of the golden tokens */
        CU_ASSERT_FATAL(np[NG] <= 64 && ng[NG] <= 1024);
        for (int i = 0; i < np[NG]; i++) ptok[NG][i] = (int32_t)json_integer_value(json_array_get(pt, i));
        for (int i = 0; i < ng[NG]; i++) gtok[NG][i] = (int32_t)json_integer_value(json_array_get(gt, i));
        json_decref(o);
        NG++;
    }
    fclose(f);
    CU_ASSERT_FATAL(NG > 0);
    pgd_model *m = NULL;
    OK(pgd_model_load(pgd_test_data(MODEL), NULL, g_be, &m));
    const pgd_model_config *c = pgd_model_get_config(m);
    const int bs = 8, chunk = 5;
    int mb = (c->max_seq_len + bs - 1) / bs, nblocks = NG * mb + 1;
    pgd_kv_cache *kv = NULL;
    OK(pgd_kv_cache_create(g_be, c, bs, nblocks, &kv));
    int32_t *tables = malloc(sizeof(int32_t) * (size_t)NG * mb);
    for (int s = 0; s < NG; s++) /* interleaved, reversed: block j of s -> 1 + (mb-1-j)*NG + s */
        for (int j = 0; j < mb; j++) tables[s * mb + j] = 1 + (mb - 1 - j) * NG + s;
    int done_p[MAXG] = {0}, ngen[MAXG] = {0}, fin[MAXG] = {0}, seq_of[MAXG];
    int32_t toks[MAXG * 8], qs[MAXG + 1], lens[MAXG], *bt = malloc(sizeof(int32_t) * (size_t)NG * mb);
    float *logits = malloc(sizeof(float) * MAXG * c->vocab_size);
    for (int step = 0; step < 4096; step++) {
        int S = 0, T = 0;
        for (int s = 0; s < NG; s++) {
            if (fin[s]) continue;
            qs[S] = T;
            if (done_p[s] < np[s]) {
                int n = np[s] - done_p[s] < chunk ? np[s] - done_p[s] : chunk;
                memcpy(toks + T, ptok[s] + done_p[s], sizeof(int32_t) * n);
                T += n;
                done_p[s] += n;
                lens[S] = done_p[s];
            } else {
                toks[T++] = gen[s][ngen[s] - 1];
                lens[S] = np[s] + ngen[s];
            }
            memcpy(bt + S * mb, tables + s * mb, sizeof(int32_t) * mb);
            seq_of[S++] = s;
        }
        if (!S) break;
        qs[S] = T;
        pgd_batch b = {.num_seqs = S, .num_tokens = T, .tokens = toks, .query_start = qs,
                       .seq_lens = lens, .block_tables = bt, .max_blocks_per_seq = mb};
        OK(pgd_model_forward(m, kv, &b, logits));
        for (int i = 0; i < S; i++) {
            int s = seq_of[i];
            if (done_p[s] < np[s]) continue;
            gen[s][ngen[s]++] = pgd_argmax(logits + (size_t)i * c->vocab_size, c->vocab_size);
            if (ngen[s] == ng[s]) fin[s] = 1;
        }
    }
    for (int s = 0; s < NG; s++) {
        int mism = -1;
        for (int i = 0; i < ng[s]; i++)
            if (gen[s][i] != gtok[s][i]) {
                mism = i;
                break;
            }
        if (mism >= 0) fprintf(stderr, "\n  golden prompt %d: first mismatch at token %d\n", s, mism);
        CU_ASSERT_EQUAL(mism, -1);
    }
    free(tables), free(bt), free(logits);
    pgd_kv_cache_destroy(kv);
    pgd_model_destroy(m);
}

/* A random Llama-shape model on the GPU and on the CPU backend: logits of
 * every token of a ragged prefill, then of decode steps (fixed tokens). */
static void logits_case(const char *spec, pgd_dtype dt, double tol) {
    pgd_backend *cpu = NULL;
    pgd_backend_config cc = {.name = "cpu"};
    OK(pgd_backend_create(&cc, &cpu));
    pgd_model_load_opts mo = {.seed = 77, .random_dtype = dt};
    pgd_model *mg = NULL, *mc = NULL;
    OK(pgd_model_load(spec, &mo, g_be, &mg));
    OK(pgd_model_load(spec, &mo, cpu, &mc));
    const pgd_model_config *c = pgd_model_get_config(mg);
    enum { S = 3 };
    const int plen[S] = {5, 17, 40}, bs = 16, steps = 4;
    int mb = (plen[S - 1] + steps + bs - 1) / bs;
    pgd_kv_cache *kg = NULL, *kc = NULL;
    OK(pgd_kv_cache_create(g_be, c, bs, S * mb + 1, &kg));
    OK(pgd_kv_cache_create(cpu, pgd_model_get_config(mc), bs, S * mb + 1, &kc));
    int32_t bt[S * 8], qs[S + 1], lens[S], toks[64];
    CU_ASSERT_FATAL(mb <= 8);
    for (int s = 0; s < S; s++)
        for (int j = 0; j < mb; j++) bt[s * mb + j] = 1 + j * S + (S - 1 - s);
    int T = 0;
    for (int s = 0; s < S; s++) {
        qs[s] = T;
        for (int i = 0; i < plen[s]; i++) toks[T++] = (s * 131 + i * 71 + 3) % c->vocab_size;
        lens[s] = plen[s];
    }
    qs[S] = T;
    float *lg = malloc(sizeof(float) * 64 * c->vocab_size), *lc = malloc(sizeof(float) * 64 * c->vocab_size);
    pgd_batch b = {.num_seqs = S, .num_tokens = T, .tokens = toks, .query_start = qs, .seq_lens = lens,
                   .block_tables = bt, .max_blocks_per_seq = mb, .all_logits = 1};
    OK(pgd_model_forward(mg, kg, &b, lg));
    OK(pgd_model_forward(mc, kc, &b, lc));
    check(pgd_test_rel_err(lg, lc, (size_t)T * c->vocab_size), tol, spec, 0, T, (int)dt);
    for (int st = 0; st < steps; st++) {
        for (int s = 0; s < S; s++) {
            qs[s] = s;
            toks[s] = (st * 37 + s * 11 + 1) % c->vocab_size;
            lens[s] = plen[s] + st + 1;
        }
        qs[S] = S;
        pgd_batch d = {.num_seqs = S, .num_tokens = S, .tokens = toks, .query_start = qs,
                       .seq_lens = lens, .block_tables = bt, .max_blocks_per_seq = mb};
        OK(pgd_model_forward(mg, kg, &d, lg));
        OK(pgd_model_forward(mc, kc, &d, lc));
        check(pgd_test_rel_err(lg, lc, (size_t)S * c->vocab_size), tol, spec, st + 1, S, (int)dt);
    }
    free(lg), free(lc);
    pgd_kv_cache_destroy(kg), pgd_kv_cache_destroy(kc);
    pgd_model_destroy(mg), pgd_model_destroy(mc);
    pgd_backend_destroy(cpu);
}

static void test_llama_logits(void) {
    /* head_dim 128 (GQA 4) and 32 (GQA 2) */
    logits_case("random:dim=512,layers=3,heads=4,kv_heads=1,hidden=1376,vocab=3000,seq=256", PGD_F32, 1e-4);
    logits_case("random:dim=256,layers=2,heads=8,kv_heads=4,hidden=688,vocab=1000,seq=128", PGD_F32, 1e-4);
    /* bf16 weights: the vendor BLAS rounds activations to bf16 */
    logits_case("random:dim=512,layers=3,heads=4,kv_heads=1,hidden=1376,vocab=3000,seq=256", PGD_BF16,
                g_has_blas ? 5e-2 : 1e-4);
}

/* Prefill (all logits) then decode steps of 3 sequences: the fused pass on
 * `be` against the unfused reference on `be` (exact, or within 1e-5 on the
 * vendor BLAS) and on the CPU backend (within cpu_tol). */
static void fused_case(pgd_backend *be, const char *spec, pgd_dtype dt, int exact, double cpu_tol) {
    enum { S = 3, STEPS = 2, BS = 16 };
    const int plen[S] = {5, 17, 30};
    pgd_backend *cpu = NULL;
    pgd_backend_config cc = {.name = "cpu"};
    OK(pgd_backend_create(&cc, &cpu));
    pgd_model_load_opts mo = {.seed = 21, .random_dtype = dt};
    pgd_model *mg = NULL, *mc = NULL;
    OK(pgd_model_load(spec, &mo, be, &mg));
    OK(pgd_model_load(spec, &mo, cpu, &mc));
    const pgd_model_config *c = pgd_model_get_config(mg);
    const int mb = (plen[S - 1] + STEPS + BS - 1) / BS, V = c->vocab_size;
    pgd_kv_cache *kf = NULL, *ku = NULL, *kc = NULL;
    OK(pgd_kv_cache_create(be, c, BS, S * mb + 1, &kf));
    OK(pgd_kv_cache_create(be, c, BS, S * mb + 1, &ku));
    OK(pgd_kv_cache_create(cpu, pgd_model_get_config(mc), BS, S * mb + 1, &kc));
    int32_t bt[S * 4], qs[S + 1], lens[S], toks[64];
    CU_ASSERT_FATAL(mb <= 4);
    for (int s = 0; s < S; s++)
        for (int j = 0; j < mb; j++) bt[s * mb + j] = 1 + j * S + (S - 1 - s);
    int T = 0;
    for (int s = 0; s < S; s++) {
        qs[s] = T;
        for (int i = 0; i < plen[s]; i++) toks[T++] = (s * 131 + i * 71 + 3) % V;
        lens[s] = plen[s];
    }
    qs[S] = T;
    float *lf = malloc(sizeof(float) * 64 * V), *lu = malloc(sizeof(float) * 64 * V),
          *lc = malloc(sizeof(float) * 64 * V);
    pgd_batch b = {.num_seqs = S, .num_tokens = T, .tokens = toks, .query_start = qs, .seq_lens = lens,
                   .block_tables = bt, .max_blocks_per_seq = mb, .all_logits = 1};
    for (int st = 0; st <= STEPS; st++) {
        if (st > 0) {
            for (int s = 0; s < S; s++) {
                qs[s] = s;
                toks[s] = (st * 37 + s * 11 + 1) % V;
                lens[s] = plen[s] + st;
            }
            qs[S] = S;
            b.num_tokens = S;
            b.all_logits = 0;
        }
        size_t n = (size_t)b.num_tokens * V;
        OK(pgd_model_forward(mg, kf, &b, lf));
        OK(pgd_test_unfused_forward(mg, ku, &b, lu));
        OK(pgd_test_unfused_forward(mc, kc, &b, lc));
        double e = pgd_test_rel_err(lf, lu, n);
        if (exact) {
            if (memcmp(lf, lu, n * 4) != 0)
                fprintf(stderr, "\n  FAIL %s %s step %d: fused != unfused on %s (rel err %g)\n", spec,
                        pgd_dtype_name(dt), st, pgd_backend_describe(be), e);
            CU_ASSERT(memcmp(lf, lu, n * 4) == 0);
        } else {
            check(e, TOL, "fused vs unfused (BLAS)", st, b.num_tokens, (int)dt);
        }
        check(pgd_test_rel_err(lf, lc, n), cpu_tol, "fused vs CPU unfused", st, b.num_tokens, (int)dt);
    }
    free(lf), free(lu), free(lc);
    pgd_kv_cache_destroy(kf), pgd_kv_cache_destroy(ku), pgd_kv_cache_destroy(kc);
    pgd_model_destroy(mg), pgd_model_destroy(mc);
    pgd_backend_destroy(cpu);
}

static void test_fused_equals_unfused(void) {
    const char *spec = "random:dim=128,layers=2,heads=4,kv_heads=2,hidden=344,vocab=500,seq=128";
    fused_case(g_own, spec, PGD_F32, 1, 1e-4);
    fused_case(g_own, spec, PGD_BF16, 1, 1e-4);
    if (g_has_blas) { /* the default backend's vendor BLAS */
        fused_case(g_be, spec, PGD_F32, 0, 1e-4);
        fused_case(g_be, spec, PGD_BF16, 0, 5e-2);
    }
}

/* KV swap through pinned host memory: out, clobber, back in. */
static void test_kv_swap(void) {
    pgd_model_config c;
    OK(pgd_model_shape("dim=64,layers=2,heads=4,kv_heads=2,hidden=128,vocab=100,seq=64", &c));
    const int bs = 16, nb = 6;
    pgd_kv_cache *kv = NULL;
    OK(pgd_kv_cache_create(g_be, &c, bs, nb, &kv));
    size_t bf = (size_t)c.n_kv_heads * bs * c.head_dim, lf = bf * nb;
    float *x = pgd_test_randf(lf, 4000, -1, 1), *y = malloc(lf * 4);
    for (int l = 0; l < c.n_layers; l++) {
        OK(pgd_backend_upload(g_be, pgd_kv_cache_k(kv, l), x, lf * 4));
        OK(pgd_backend_upload(g_be, pgd_kv_cache_v(kv, l), x, lf * 4));
    }
    OK(pgd_kv_cache_set_host_blocks(kv, 3));
    int32_t out[4] = {2, 0, 4, 1}, in[4] = {0, 4, 1, 2}; /* device 2,4 -> host 0,1 -> device 4,2 */
    OK(pgd_kv_cache_swap_out(kv, out, 2));
    OK(pgd_backend_memset(g_be, pgd_kv_cache_k(kv, 1), 0, lf * 4));
    OK(pgd_kv_cache_swap_in(kv, in, 2));
    get(g_be, y, pgd_kv_cache_k(kv, 1), lf * 4);
    CU_ASSERT(memcmp(y + 4 * bf, x + 2 * bf, bf * 4) == 0);
    CU_ASSERT(memcmp(y + 2 * bf, x + 4 * bf, bf * 4) == 0);
    get(g_be, y, pgd_kv_cache_v(kv, 0), lf * 4);
    CU_ASSERT(memcmp(y + 4 * bf, x + 2 * bf, bf * 4) == 0);
    pgd_kv_cache_destroy(kv);
    free(x), free(y);
}

static CU_TestInfo tests[] = {
    {"memory_and_pinned_host", test_memory},
    {"matmul", test_matmul},
    {"matmul_own_gemm", test_matmul_own_gemm},
    {"embedding_gather_rows", test_embedding_gather},
    {"rmsnorm", test_rmsnorm},
    {"rope", test_rope},
    {"silu_mul_add", test_silu_mul_add},
    {"kv_write_copy_blocks", test_kv_write_copy_blocks},
    {"attention_decode", test_attention_decode},
    {"attention_ragged", test_attention_ragged},
    {"attention_long_split", test_attention_long},
    {"attention_q_stride", test_attention_q_stride},
    {"argmax_sample", test_argmax_sample},
    {"errors_and_sync_mode", test_errors_and_sync_mode},
    {"kv_swap_pinned", test_kv_swap},
    {"golden_stories260k", test_golden_stories260k},
    {"llama_logits_vs_cpu", test_llama_logits},
    {"fused_projections_equal_unfused", test_fused_equals_unfused},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "gpu", .pInitFunc = suite_init, .pCleanupFunc = suite_cleanup, .pTests = tests},
    CU_SUITE_INFO_NULL,
};

/* The GPU backend to test, or NULL with the reason in `why`. */
static const char *pick_backend(char *why, size_t n) {
    const char *want = PGD_TEST_GPU_EMU ? "gpu-emu" : getenv("PAGODA_GPU_BACKEND");
    why[0] = 0;
    for (const char *const *b = pgd_backend_list(); *b; b++) {
        if (strcmp(*b, "cuda") && strcmp(*b, "rocm") && strcmp(*b, "gpu-emu")) continue;
        if (!want && !strcmp(*b, "gpu-emu")) continue; /* real devices only, unless asked */
        if (want && strcmp(*b, want)) continue;
        pgd_backend_config bc = {.name = *b};
        pgd_backend *be = NULL;
        if (pgd_backend_create(&bc, &be) == PGD_OK) {
            pgd_backend_destroy(be);
            return *b;
        }
        size_t l = strlen(why);
        snprintf(why + l, n - l, "%s%s", l ? "; " : "", pgd_last_error());
    }
    if (!why[0])
        snprintf(why, n, "this build has no %s backend (%s)", want ? want : "GPU",
                 PGD_TEST_GPU_EMU ? "PAGODA_GPU_EMU is off, as in sanitizer builds"
                                  : "nvcc/hipcc not found at configure time");
    return NULL;
}

int main(void) {
    char why[512];
    g_name = pick_backend(why, sizeof why);
    if (!g_name) {
        int required = !PGD_TEST_GPU_EMU && getenv("PAGODA_GPU_REQUIRED") &&
                       !strcmp(getenv("PAGODA_GPU_REQUIRED"), "1");
        printf("%s: %s: %s\n", PGD_TEST_GPU_EMU ? "test_gpu_emu" : "test_gpu",
               required ? "FAIL (PAGODA_GPU_REQUIRED=1)" : "SKIP", why);
        return required ? 1 : 77;
    }
    return pgd_test_main(suites);
}
