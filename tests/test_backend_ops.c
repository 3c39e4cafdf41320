/* test_backend_ops.c - conformance of every op (pagoda/backend_ops.h) on
 * every backend this build has, against the CPU reference kernels
 * (kernels/cpu, pgd_ref_*), in the shape of ggml's test-backend-ops.
 *
 * One CUnit test per op of the list, generated from the list itself: an op
 * added to backend_ops.h without a case below fails its test ("no
 * conformance case"). Each case runs on every built backend ("cpu", "sim",
 * "gpu-emu", "cuda", "rocm": a backend that cannot be created here, a GPU
 * without a device, is reported and left out) and, for the ops that touch
 * the KV cache, once per KV dtype the backend stores (f32, f16, bf16, q8);
 * matmul and embedding run for every weight dtype the backend takes.
 *   - A backend that computes must match the reference: copies and
 *     gathers exactly, f32 arithmetic within 1e-5 relative error (max abs
 *     diff over max |ref|), matmul with half-precision weights within 1e-2
 *     (a vendor BLAS rounds the activations to the weight type) and with
 *     q8_0/q4_0 weights within 2e-2 (the CPU's int8 path quantizes the
 *     activations per block of 32 to int8: a relative step of 1/254 per
 *     value, summed over the dot product).
 *   - A backend that only prices (the sim) must accept the same call.
 *   - An optional op a backend lacks must fail with PGD_ERR_UNSUPPORTED
 *     naming the op, and pgd_backend_supports_op must say so. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "pagoda/backend.h"
#include "pagoda/sampler.h"

#define TOL 1e-5
#define TOL16 1e-2
#define TOLQ 2e-2

#define OK(expr)                                                                     \
    do {                                                                             \
        pgd_status s_ = (expr);                                                      \
        if (s_ != PGD_OK) fprintf(stderr, "\n  %s: %s\n", #expr, pgd_last_error());  \
        CU_ASSERT_EQUAL_FATAL(s_, PGD_OK);                                           \
    } while (0)

/* ------------------------------------------------------------ the backends */

typedef struct inst {
    char label[48];  /* "cpu", "cpu kv=f16", ... */
    pgd_backend *b;
    int kv_variant;  /* 1: created with a non-default KV dtype (only the KV ops run on it) */
} inst;
static inst g_inst[32];
static int g_n;

static int suite_init(void) {
    static const char *const kvs[] = {NULL, "f16", "bf16", "q8"};
    for (const char *const *name = pgd_backend_list(); *name; name++)
        for (int k = 0; k < 4; k++) {
            pgd_backend_config bc = {.name = *name, .num_threads = 2, .kv_dtype = kvs[k]};
            pgd_backend *b = NULL;
            if (pgd_backend_create(&bc, &b) != PGD_OK) {
                printf("\n  %s%s%s: not here (%s)", *name, kvs[k] ? " kv=" : "", kvs[k] ? kvs[k] : "",
                       pgd_last_error());
                if (!k) break; /* no instance at all: no KV variants either */
                continue;
            }
            if (g_n == (int)(sizeof g_inst / sizeof g_inst[0])) return 1;
            inst *in = &g_inst[g_n++];
            snprintf(in->label, sizeof in->label, "%s%s%s", *name, kvs[k] ? " kv=" : "", kvs[k] ? kvs[k] : "");
            in->b = b;
            in->kv_variant = k > 0;
        }
    printf("\n  backends:");
    for (int i = 0; i < g_n; i++) printf(" [%s]", g_inst[i].label);
    printf("\n");
    return g_n ? 0 : 1;
}
static int suite_cleanup(void) {
    for (int i = 0; i < g_n; i++) pgd_backend_destroy(g_inst[i].b);
    g_n = 0;
    return 0;
}

/* ------------------------------------------------------------------ helpers */

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(uint32_t n) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)((g_rng >> 11) % n);
}
static void *put(pgd_backend *b, const void *host, size_t bytes) {
    void *d = NULL;
    OK(pgd_backend_alloc(b, bytes, &d));
    OK(pgd_backend_upload(b, d, host, bytes));
    return d;
}
static void *get(pgd_backend *b, const void *dev, size_t bytes) {
    void *h = malloc(bytes ? bytes : 1);
    OK(pgd_backend_download(b, h, dev, bytes));
    return h;
}
static void check(const inst *in, double err, double tol, const char *what) {
    if (!(err < tol)) fprintf(stderr, "\n  FAIL %s on %s: rel err %g >= %g\n", what, in->label, err, tol);
    CU_ASSERT(err < tol);
}
static void check_same(const inst *in, const void *a, const void *b, size_t n, const char *what) {
    int same = memcmp(a, b, n) == 0;
    if (!same) fprintf(stderr, "\n  FAIL %s on %s: differs from the reference\n", what, in->label);
    CU_ASSERT(same);
}
static int computes(const inst *in) { return pgd_backend_computes(in->b); }
static pgd_dtype kvt(const inst *in) { return pgd_backend_kv_dtype(in->b); }

/* ------------------------------------------------------------------- cases */

static void case_upload(const inst *in) {
    unsigned char h[1001];
    for (size_t i = 0; i < sizeof h; i++) h[i] = (unsigned char)rnd(256);
    void *d = put(in->b, h, sizeof h);
    unsigned char *back = get(in->b, d, sizeof h);
    if (computes(in)) check_same(in, back, h, sizeof h, "upload + download");
    free(back);
    pgd_backend_free(in->b, d);
}
static void case_download(const inst *in) { case_upload(in); }
static void case_memset(const inst *in) {
    void *d = NULL;
    OK(pgd_backend_alloc(in->b, 257, &d));
    OK(pgd_backend_memset(in->b, d, 0x5a, 257));
    unsigned char *back = get(in->b, d, 257), want[257];
    memset(want, 0x5a, sizeof want);
    if (computes(in)) check_same(in, back, want, sizeof want, "memset");
    free(back);
    pgd_backend_free(in->b, d);
}
static void case_sync(const inst *in) { OK(pgd_backend_sync(in->b)); }

static const pgd_dtype wdts[] = {PGD_F32, PGD_F16, PGD_BF16, PGD_Q8_0, PGD_Q4_0};
static double wtol(pgd_dtype t) { return t == PGD_F32 ? TOL : pgd_dtype_is_quant(t) ? TOLQ : TOL16; }

static void case_embedding(const inst *in) {
    const int V = 37, dim = 64, n = 9;
    int32_t tok[9];
    for (int i = 0; i < n; i++) tok[i] = (int32_t)rnd(V);
    tok[0] = 0, tok[1] = V - 1;
    for (int t = 0; t < 5; t++) {
        if (!pgd_backend_takes_weights(in->b, wdts[t])) continue;
        void *tab = pgd_test_rand_weights((size_t)V * dim, wdts[t], 11 + t);
        float ref[9 * 64];
        pgd_ref_embedding(ref, tab, wdts[t], tok, n, dim);
        void *dt = put(in->b, tab, pgd_dtype_bytes(wdts[t], (size_t)V * dim)), *dk = put(in->b, tok, sizeof tok);
        float *dout = NULL;
        OK(pgd_backend_alloc(in->b, sizeof ref, (void **)&dout));
        OK(pgd_backend_embedding(in->b, dout, dt, wdts[t], dk, n, dim));
        float *y = get(in->b, dout, sizeof ref);
        if (computes(in)) check(in, pgd_test_rel_err(y, ref, (size_t)n * dim), 1e-7, pgd_dtype_name(wdts[t]));
        free(y), free(tab);
        pgd_backend_free(in->b, dt), pgd_backend_free(in->b, dk), pgd_backend_free(in->b, dout);
    }
}

static void case_matmul(const inst *in) {
    static const int shapes[][3] = {{1, 64, 48}, {3, 96, 33}, {17, 128, 70}};
    for (int t = 0; t < 5; t++) {
        if (!pgd_backend_takes_weights(in->b, wdts[t])) continue;
        for (int s = 0; s < 3; s++) {
            int n = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
            float *x = pgd_test_randf((size_t)n * K, 100 + s, -1, 1), *ref = malloc(sizeof(float) * n * N);
            void *w = pgd_test_rand_weights((size_t)N * K, wdts[t], 200 + s);
            pgd_ref_matmul(ref, x, w, wdts[t], n, K, N);
            float *dx = put(in->b, x, sizeof(float) * n * K), *dy = NULL;
            void *dw = put(in->b, w, pgd_dtype_bytes(wdts[t], (size_t)N * K));
            OK(pgd_backend_alloc(in->b, sizeof(float) * n * N, (void **)&dy));
            OK(pgd_backend_matmul(in->b, dy, dx, dw, wdts[t], n, K, N));
            float *y = get(in->b, dy, sizeof(float) * n * N);
            char what[48];
            snprintf(what, sizeof what, "matmul %s %dx%dx%d", pgd_dtype_name(wdts[t]), n, K, N);
            if (computes(in)) check(in, pgd_test_rel_err(y, ref, (size_t)n * N), wtol(wdts[t]), what);
            free(x), free(ref), free(w), free(y);
            pgd_backend_free(in->b, dx), pgd_backend_free(in->b, dw), pgd_backend_free(in->b, dy);
        }
    }
}

static void case_rmsnorm(const inst *in) {
    const int n = 5, dim = 96;
    float *x = pgd_test_randf((size_t)n * dim, 7, -2, 2), *w = pgd_test_randf(dim, 8, 0.5f, 1.5f), ref[5 * 96];
    pgd_ref_rmsnorm(ref, x, w, n, dim, 1e-5f);
    float *dx = put(in->b, x, sizeof ref), *dw = put(in->b, w, sizeof(float) * dim), *dy = NULL;
    OK(pgd_backend_alloc(in->b, sizeof ref, (void **)&dy));
    OK(pgd_backend_rmsnorm(in->b, dy, dx, dw, n, dim, 1e-5f));
    float *y = get(in->b, dy, sizeof ref);
    if (computes(in)) check(in, pgd_test_rel_err(y, ref, (size_t)n * dim), TOL, "rmsnorm");
    free(x), free(w), free(y);
    pgd_backend_free(in->b, dx), pgd_backend_free(in->b, dw), pgd_backend_free(in->b, dy);
}

/* rope on dense rows, and in place inside fused q | k | v rows (stride =
 * the fused width): v must come back untouched. */
static void case_rope(const inst *in) {
    const int n = 6, nh = 4, nkv = 2, hd = 16, qd = nh * hd, kd = nkv * hd, fw = qd + 2 * kd;
    int32_t pos[6];
    for (int i = 0; i < n; i++) pos[i] = (int32_t)rnd(500);
    for (int fused = 0; fused < 2; fused++) {
        size_t rows = (size_t)n * (fused ? fw : qd + kd);
        float *h = pgd_test_randf(rows, 30 + fused, -1, 1), *want = malloc(sizeof(float) * rows);
        memcpy(want, h, sizeof(float) * rows);
        /* the reference on dense copies of q and k */
        float *q = malloc(sizeof(float) * n * qd), *k = malloc(sizeof(float) * n * kd);
        const int stride = fused ? fw : 0;
        float *hq = h, *hk = fused ? h + qd : h + (size_t)n * qd;
        for (int t = 0; t < n; t++) {
            memcpy(q + (size_t)t * qd, hq + (size_t)t * (fused ? fw : qd), sizeof(float) * qd);
            memcpy(k + (size_t)t * kd, hk + (size_t)t * (fused ? fw : kd), sizeof(float) * kd);
        }
        pgd_ref_rope(q, k, pos, n, nh, nkv, hd, 10000.0f, 0);
        float *wq = want, *wk = fused ? want + qd : want + (size_t)n * qd;
        for (int t = 0; t < n; t++) {
            memcpy(wq + (size_t)t * (fused ? fw : qd), q + (size_t)t * qd, sizeof(float) * qd);
            memcpy(wk + (size_t)t * (fused ? fw : kd), k + (size_t)t * kd, sizeof(float) * kd);
        }
        float *d = put(in->b, h, sizeof(float) * rows);
        int32_t *dp = put(in->b, pos, sizeof pos);
        OK(pgd_backend_rope(in->b, d, fused ? d + qd : d + (size_t)n * qd, dp, n, nh, nkv, hd, 10000.0f, stride));
        float *y = get(in->b, d, sizeof(float) * rows);
        if (computes(in)) check(in, pgd_test_rel_err(y, want, rows), TOL, fused ? "rope (fused rows)" : "rope");
        free(h), free(want), free(q), free(k), free(y);
        pgd_backend_free(in->b, d), pgd_backend_free(in->b, dp);
    }
}

static void case_silu_mul(const inst *in) {
    const int rows = 7, hid = 40;
    float *gu = pgd_test_randf((size_t)rows * 2 * hid, 40, -4, 4), ref[7 * 40];
    pgd_ref_silu_mul(ref, gu, rows, hid);
    float *dg = put(in->b, gu, sizeof(float) * rows * 2 * hid), *dy = NULL;
    OK(pgd_backend_alloc(in->b, sizeof ref, (void **)&dy));
    OK(pgd_backend_silu_mul(in->b, dy, dg, rows, hid));
    float *y = get(in->b, dy, sizeof ref);
    if (computes(in)) check(in, pgd_test_rel_err(y, ref, (size_t)rows * hid), TOL, "silu_mul");
    free(gu), free(y);
    pgd_backend_free(in->b, dg), pgd_backend_free(in->b, dy);
}

static void case_add(const inst *in) {
    const size_t n = 1001;
    float *x = pgd_test_randf(n, 50, -1, 1), *y0 = pgd_test_randf(n, 51, -1, 1), *ref = malloc(sizeof(float) * n);
    memcpy(ref, y0, sizeof(float) * n);
    pgd_ref_add(ref, x, n);
    float *dx = put(in->b, x, sizeof(float) * n), *dy = put(in->b, y0, sizeof(float) * n);
    OK(pgd_backend_add(in->b, dy, dx, n));
    float *y = get(in->b, dy, sizeof(float) * n);
    if (computes(in)) check(in, pgd_test_rel_err(y, ref, n), TOL, "add");
    free(x), free(y0), free(ref), free(y);
    pgd_backend_free(in->b, dx), pgd_backend_free(in->b, dy);
}

/* The KV geometry the KV ops share. */
enum { NKV = 2, HD = 16, BS = 4, NBLK = 8, NH = 4 };
static size_t cache_elems(void) { return (size_t)NBLK * NKV * BS * HD; }
/* Bytes of such a cache in KV dtype t (q8 rows are HD + 4 bytes). */
static size_t cache_bytes(pgd_dtype t) { return (size_t)NBLK * NKV * BS * pgd_kv_row_bytes(t, HD); }

/* k and v rows at distinct random slots, dense and strided (fused rows
 * with q in front); the whole caches compared byte for byte. */
static void case_kv_write(const inst *in) {
    const int n = 9, kd = NKV * HD, fw = NH * HD + 2 * kd;
    int32_t slots[9];
    int used[NBLK * BS] = {0};
    for (int i = 0; i < n; i++) {
        int s;
        do s = (int)rnd(NBLK * BS);
        while (used[s]);
        used[s] = 1, slots[i] = s;
    }
    size_t cb = cache_bytes(kvt(in));
    for (int fused = 0; fused < 2; fused++) {
        size_t rows = (size_t)n * (fused ? fw : 2 * kd);
        float *h = pgd_test_randf(rows, 60 + fused, -3, 3);
        const float *k = fused ? h + NH * HD : h, *v = fused ? h + NH * HD + kd : h + (size_t)n * kd;
        unsigned char *rk = calloc(1, cb), *rv = calloc(1, cb);
        /* the reference on dense rows */
        float *kk = malloc(sizeof(float) * n * kd), *vv = malloc(sizeof(float) * n * kd);
        for (int t = 0; t < n; t++) {
            memcpy(kk + (size_t)t * kd, k + (size_t)t * (fused ? fw : kd), sizeof(float) * kd);
            memcpy(vv + (size_t)t * kd, v + (size_t)t * (fused ? fw : kd), sizeof(float) * kd);
        }
        pgd_ref_kv_write(rk, rv, kvt(in), kk, vv, slots, n, NKV, HD, BS, 0);
        float *d = put(in->b, h, sizeof(float) * rows), *dk = NULL, *dv = NULL;
        int32_t *ds = put(in->b, slots, sizeof slots);
        OK(pgd_backend_alloc(in->b, cb, (void **)&dk));
        OK(pgd_backend_alloc(in->b, cb, (void **)&dv));
        OK(pgd_backend_memset(in->b, dk, 0, cb));
        OK(pgd_backend_memset(in->b, dv, 0, cb));
        OK(pgd_backend_kv_write(in->b, dk, dv, fused ? d + NH * HD : d, fused ? d + NH * HD + kd : d + (size_t)n * kd,
                                ds, n, NKV, HD, BS, fused ? fw : 0));
        unsigned char *gk = get(in->b, dk, cb), *gv = get(in->b, dv, cb);
        if (computes(in)) {
            check_same(in, gk, rk, cb, fused ? "kv_write K (fused rows)" : "kv_write K");
            check_same(in, gv, rv, cb, fused ? "kv_write V (fused rows)" : "kv_write V");
        }
        free(h), free(rk), free(rv), free(kk), free(vv), free(gk), free(gv);
        pgd_backend_free(in->b, d), pgd_backend_free(in->b, ds);
        pgd_backend_free(in->b, dk), pgd_backend_free(in->b, dv);
    }
}

/* A ragged batch: a decode row at context 13, a whole 5-token prompt, a
 * 3-token chunk after 8 cached tokens; blocks scattered over the cache. */
static void case_paged_attention(const inst *in) {
    enum { S = 3 };
    const int q_len[S] = {1, 5, 3}, ctx[S] = {13, 5, 11}, MB = 4;
    int32_t qs[S + 1] = {0}, lens[S], tables[S * 4];
    int32_t perm[NBLK - 1];
    for (int i = 0; i < NBLK - 1; i++) perm[i] = i + 1;
    for (int i = NBLK - 2; i > 0; i--) {
        int j = (int)rnd((uint32_t)i + 1), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    int next = 0;
    for (int s = 0; s < S; s++) {
        qs[s + 1] = qs[s] + q_len[s];
        lens[s] = ctx[s];
        for (int b = 0; b < MB; b++) tables[s * MB + b] = b * BS < ctx[s] ? perm[next++ % (NBLK - 1)] : 0;
    }
    const int T = qs[S], qd = NH * HD;
    size_t ce = cache_elems(), cb = cache_bytes(kvt(in)), rb = pgd_kv_row_bytes(kvt(in), HD);
    float *kf = pgd_test_randf(ce, 70, -1, 1), *vf = pgd_test_randf(ce, 71, -1, 1);
    void *kc = malloc(cb), *vc = malloc(cb);
    for (size_t r = 0; r < ce / HD; r++) {
        pgd_kv_row_from_f32((char *)kc + r * rb, kvt(in), kf + r * HD, HD);
        pgd_kv_row_from_f32((char *)vc + r * rb, kvt(in), vf + r * HD, HD);
    }
    float *q = pgd_test_randf((size_t)T * qd, 72, -1, 1), *ref = malloc(sizeof(float) * T * qd);
    pgd_paged_attn a = {.out = ref, .q = q, .k_cache = kc, .v_cache = vc, .query_start = qs, .seq_lens = lens,
                        .block_tables = tables, .num_seqs = S, .num_tokens = T, .max_blocks_per_seq = MB,
                        .max_seq_len = 13, .n_heads = NH, .n_kv_heads = NKV, .head_dim = HD, .block_size = BS,
                        .scale = 0.25f, .kv_dtype = kvt(in)};
    pgd_ref_paged_attention(&a);
    pgd_paged_attn d = a;
    d.q = put(in->b, q, sizeof(float) * T * qd);
    d.k_cache = put(in->b, kc, cb);
    d.v_cache = put(in->b, vc, cb);
    d.query_start = put(in->b, qs, sizeof qs);
    d.seq_lens = put(in->b, lens, sizeof lens);
    d.block_tables = put(in->b, tables, sizeof tables);
    OK(pgd_backend_alloc(in->b, sizeof(float) * T * qd, (void **)&d.out));
    OK(pgd_backend_paged_attention(in->b, &d));
    float *y = get(in->b, d.out, sizeof(float) * T * qd);
    if (computes(in)) check(in, pgd_test_rel_err(y, ref, (size_t)T * qd), TOL, "paged_attention");
    /* the KV dtype must be the backend's */
    pgd_paged_attn wrong = d;
    wrong.kv_dtype = kvt(in) == PGD_F32 ? PGD_F16 : PGD_F32;
    CU_ASSERT_EQUAL(pgd_backend_paged_attention(in->b, &wrong), PGD_ERR_INVALID);
    free(kf), free(vf), free(kc), free(vc), free(q), free(ref), free(y);
    pgd_backend_free(in->b, (void *)d.q), pgd_backend_free(in->b, (void *)d.k_cache);
    pgd_backend_free(in->b, (void *)d.v_cache), pgd_backend_free(in->b, (void *)d.query_start);
    pgd_backend_free(in->b, (void *)d.seq_lens), pgd_backend_free(in->b, (void *)d.block_tables);
    pgd_backend_free(in->b, d.out);
}

static void case_gather_rows(const inst *in) {
    const int R = 10, dim = 24, n = 6;
    int32_t rows[6] = {9, 0, 3, 3, 7, 1};
    float *x = pgd_test_randf((size_t)R * dim, 80, -1, 1), ref[6 * 24];
    for (int i = 0; i < n; i++) memcpy(ref + (size_t)i * dim, x + (size_t)rows[i] * dim, sizeof(float) * dim);
    float *dx = put(in->b, x, sizeof(float) * R * dim), *dy = NULL;
    int32_t *dr = put(in->b, rows, sizeof rows);
    OK(pgd_backend_alloc(in->b, sizeof ref, (void **)&dy));
    OK(pgd_backend_gather_rows(in->b, dy, dx, dr, n, dim));
    float *y = get(in->b, dy, sizeof ref);
    if (computes(in)) check_same(in, y, ref, sizeof ref, "gather_rows");
    free(x), free(y);
    pgd_backend_free(in->b, dx), pgd_backend_free(in->b, dr), pgd_backend_free(in->b, dy);
}

/* Blocks of the backend's KV dtype: block_floats counts 4-byte words. */
static void case_copy_blocks(const inst *in) {
    size_t bf = (size_t)NKV * BS * pgd_kv_row_bytes(kvt(in), HD) / 4, words = bf * NBLK;
    int32_t pairs[6] = {1, 5, 2, 6, 1, 7}; /* one source copied twice */
    float *h = pgd_test_randf(words, 90, -1, 1), *ref = malloc(sizeof(float) * words);
    memcpy(ref, h, sizeof(float) * words);
    pgd_ref_copy_blocks(ref, pairs, 3, bf);
    float *d = put(in->b, h, sizeof(float) * words);
    int32_t *dp = put(in->b, pairs, sizeof pairs);
    OK(pgd_backend_copy_blocks(in->b, d, dp, 3, bf));
    float *y = get(in->b, d, sizeof(float) * words);
    if (computes(in)) check_same(in, y, ref, sizeof(float) * words, "copy_blocks");
    free(h), free(ref), free(y);
    pgd_backend_free(in->b, d), pgd_backend_free(in->b, dp);
}

enum { SR = 6, SV = 300 };
static float *sample_logits(void) {
    float *l = pgd_test_randf((size_t)SR * SV, 95, -6, 6);
    for (int i = 0; i < SV; i++) l[i] = (float)(i % 3); /* ties: the lowest id wins */
    return l;
}
static void case_argmax(const inst *in) {
    float *l = sample_logits(), *dl = put(in->b, l, sizeof(float) * SR * SV);
    int32_t *dout = NULL;
    OK(pgd_backend_alloc(in->b, sizeof(int32_t) * SR, (void **)&dout));
    OK(pgd_backend_argmax(in->b, dout, dl, SR, SV));
    int32_t *got = get(in->b, dout, sizeof(int32_t) * SR);
    if (computes(in))
        for (int r = 0; r < SR; r++) CU_ASSERT_EQUAL(got[r], pgd_argmax(l + (size_t)r * SV, SV));
    free(l), free(got);
    pgd_backend_free(in->b, dl), pgd_backend_free(in->b, dout);
}
static void case_sample(const inst *in) {
    float *l = sample_logits(), *dl = put(in->b, l, sizeof(float) * SR * SV);
    pgd_sample_row rows[SR];
    for (int r = 0; r < SR; r++)
        rows[r] = (pgd_sample_row){.temperature = r ? 0.8f : 0.0f, .top_k = (int32_t)(r * 20), .top_p = r % 2 ? 0.9f : 1,
                                   .uniform = (float)((r * 7919 + 17) % 1000) / 1000.0f};
    pgd_sample_row *dr = put(in->b, rows, sizeof rows);
    int32_t *dout = NULL;
    OK(pgd_backend_alloc(in->b, sizeof(int32_t) * SR, (void **)&dout));
    OK(pgd_backend_sample(in->b, dout, dl, dr, SR, SV));
    int32_t *got = get(in->b, dout, sizeof(int32_t) * SR);
    if (computes(in))
        for (int r = 0; r < SR; r++) {
            double margin;
            int want = pgd_test_ref_sample(l + (size_t)r * SV, SV, rows[r], &margin);
            CU_ASSERT(got[r] == want || margin <= 1e-5);
        }
    free(l), free(got);
    pgd_backend_free(in->b, dl), pgd_backend_free(in->b, dr), pgd_backend_free(in->b, dout);
}

/* ------------------------------------------------------------- the harness */

typedef void (*case_fn)(const inst *);
/* Which ops touch the KV cache (run on every KV dtype variant too). */
static const struct {
    case_fn fn;
    int kv;
} cases[PGD_OP_COUNT] = {
    [PGD_OP_UPLOAD] = {case_upload},           [PGD_OP_DOWNLOAD] = {case_download},
    [PGD_OP_MEMSET] = {case_memset},           [PGD_OP_SYNC] = {case_sync},
    [PGD_OP_EMBEDDING] = {case_embedding},     [PGD_OP_MATMUL] = {case_matmul},
    [PGD_OP_RMSNORM] = {case_rmsnorm},         [PGD_OP_ROPE] = {case_rope},
    [PGD_OP_SILU_MUL] = {case_silu_mul},       [PGD_OP_ADD] = {case_add},
    [PGD_OP_KV_WRITE] = {case_kv_write, 1},    [PGD_OP_PAGED_ATTENTION] = {case_paged_attention, 1},
    [PGD_OP_GATHER_ROWS] = {case_gather_rows}, [PGD_OP_COPY_BLOCKS] = {case_copy_blocks, 1},
    [PGD_OP_ARGMAX] = {case_argmax},           [PGD_OP_SAMPLE] = {case_sample},
};

/* An op the backend lacks: refused by name, never crashes. */
static void lacks(const inst *in, pgd_backend_op op) {
    pgd_status st = PGD_OK;
    switch (op) {
    case PGD_OP_ARGMAX: st = pgd_backend_argmax(in->b, NULL, NULL, 1, 1); break;
    case PGD_OP_SAMPLE: st = pgd_backend_sample(in->b, NULL, NULL, NULL, 1, 1); break;
    default:
        fprintf(stderr, "\n  FAIL %s lacks the required op %s\n", in->label, pgd_backend_op_name(op));
        CU_FAIL("a required op is missing");
        return;
    }
    CU_ASSERT_EQUAL(st, PGD_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), pgd_backend_op_name(op)));
}

static void run_case(pgd_backend_op op) {
    if (!cases[op].fn) {
        fprintf(stderr, "\n  FAIL no conformance case for op %s (tests/test_backend_ops.c)\n",
                pgd_backend_op_name(op));
        CU_FAIL("no conformance case");
        return;
    }
    for (int i = 0; i < g_n; i++) {
        const inst *in = &g_inst[i];
        if (in->kv_variant && !cases[op].kv) continue;
        if (!pgd_backend_supports_op(in->b, op)) {
            lacks(in, op);
            continue;
        }
        int64_t before = 0;
        pgd_op_time t[PGD_BACKEND_NUM_OPS];
        int nt = pgd_backend_op_times(in->b, t, PGD_BACKEND_NUM_OPS);
        for (int j = 0; j < nt; j++)
            if (!strcmp(t[j].op, pgd_backend_op_name(op))) before = t[j].calls;
        cases[op].fn(in);
        /* the op went through the counted wrapper */
        int64_t after = 0;
        nt = pgd_backend_op_times(in->b, t, PGD_BACKEND_NUM_OPS);
        for (int j = 0; j < nt; j++)
            if (!strcmp(t[j].op, pgd_backend_op_name(op))) after = t[j].calls;
        CU_ASSERT(after > before);
    }
}

#define OP_TEST_(op, ID, req, params, args) \
    static void test_##op(void) { run_case(PGD_OP_##ID); }
PGD_BACKEND_OPS(OP_TEST_)
#undef OP_TEST_

/* The list and its queries agree: names, supports_op, out of range ids. */
static void test_op_list(void) {
    CU_ASSERT_EQUAL(PGD_BACKEND_NUM_OPS, PGD_OP_COUNT);
    CU_ASSERT_STRING_EQUAL(pgd_backend_op_name(PGD_OP_MATMUL), "matmul");
    CU_ASSERT_STRING_EQUAL(pgd_backend_op_name(PGD_OP_PAGED_ATTENTION), "paged_attention");
    CU_ASSERT_PTR_NULL(pgd_backend_op_name(PGD_OP_COUNT));
    CU_ASSERT_PTR_NULL(pgd_backend_op_name((pgd_backend_op)-1));
    for (int i = 0; i < g_n; i++) {
        CU_ASSERT(!pgd_backend_supports_op(g_inst[i].b, PGD_OP_COUNT));
        CU_ASSERT(pgd_backend_supports_op(g_inst[i].b, PGD_OP_MATMUL));
    }
    CU_ASSERT(!pgd_backend_supports_op(NULL, PGD_OP_MATMUL));
}

static CU_TestInfo tests[] = {
    {"the op list and its queries", test_op_list},
#define OP_ENTRY_(op, ID, req, params, args) {#op, test_##op},
    PGD_BACKEND_OPS(OP_ENTRY_)
#undef OP_ENTRY_
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "backend ops: every op on every built backend against the CPU reference",
     .pInitFunc = suite_init, .pCleanupFunc = suite_cleanup, .pTests = tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
