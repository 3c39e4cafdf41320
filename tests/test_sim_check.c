/* test_sim_check.c - the sim's fitted GPU cost curves against measured GPU
 * op times (../shared/data/vidur-profiling, Vidur's A100 Llama-3-8B profile
 * and A100/H100 all-reduce):
 *  - the shipped files import with the expected row counts and model;
 *  - bad files (missing column, negative / NaN / non-numeric time, unknown
 *    op, empty grid, unreadable) are refused with the file, line and column;
 *  - the curves are hand-checked on one GEMM and behave (monotone, H100
 *    faster than A100);
 *  - GENERALIZATION: curves fitted on every other measured token count and
 *    attention row predict the held-out ones' steps within the bounds the
 *    shipped presets are held to, and curves fitted at TP 1/2 predict the
 *    TP 4/8 dense layers;
 *  - fits are deterministic; the shipped presets meet the bounds on the
 *    files (decode step median <= 5% / p90 <= 10%, prefill <= 10% / 20%,
 *    TP 2/4/8 dense layers <= 10% median, all-reduce <= 15% median);
 *  - `pagoda profile --import vidur` writes a table the sim prices
 *    measured points from exactly; `pagoda sim-check` ends with its
 *    summary line and exits 2 on a bad file. */
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda/model.h"
#include "sim/sim_check.h"
#include "test_util.h"

#define MLP "vidur-profiling/data/profiling/compute/a100/meta-llama/Meta-Llama-3-8B/mlp.csv"
#define ATTN "vidur-profiling/vidur_attn_a100_llama3-8b_transcribed.csv"
#define AR_A100 "vidur-profiling/data/profiling/network/a100_dgx/all_reduce.csv"
#define AR_H100 "vidur-profiling/data/profiling/network/h100_dgx/all_reduce.csv"

static pgd_vidur g_v;       /* MLP + attention + A100 all-reduce */
static pgd_model_config g_m;

static char *path_of(const char *rel) { return strdup(pgd_test_data(rel)); }

static int suite_init(void) {
    char *a = path_of(MLP), *b = path_of(ATTN), *c = path_of(AR_A100);
    int bad = pgd_model_shape("llama3-8b", &g_m) != PGD_OK || pgd_vidur_read_mlp(&g_v, a) != PGD_OK ||
              pgd_vidur_read_attention(&g_v, b) != PGD_OK || pgd_vidur_read_all_reduce(&g_v, c) != PGD_OK;
    if (bad) fprintf(stderr, "suite init: %s\n", pgd_last_error());
    free(a), free(b), free(c);
    return bad;
}
static int suite_cleanup(void) {
    pgd_vidur_free(&g_v);
    return 0;
}

static int count_kind(const pgd_vidur *v, int kind) {
    int n = 0;
    for (int i = 0; i < v->n; i++) n += v->rows[i].kind == kind;
    return n;
}

/* ------------------------------------------------------------- importing */

static void test_import_shipped(void) {
    /* 1824 rows (456 token counts x 4 TP degrees) x 10 ops */
    CU_ASSERT_EQUAL(count_kind(&g_v, PGD_VIDUR_MLP), 18240);
    CU_ASSERT_EQUAL(count_kind(&g_v, PGD_VIDUR_DECODE), 274);
    CU_ASSERT_EQUAL(count_kind(&g_v, PGD_VIDUR_PREFILL), 233);
    CU_ASSERT_EQUAL(count_kind(&g_v, PGD_VIDUR_ALL_REDUCE), 6958);
    CU_ASSERT_EQUAL(g_v.model.dim, 4096);
    CU_ASSERT_EQUAL(g_v.model.heads, 32);
    CU_ASSERT_EQUAL(g_v.model.kv_heads, 8);
    CU_ASSERT_EQUAL(g_v.model.hidden, 14336);
    CU_ASSERT_EQUAL(pgd_sim_check_model(&g_v, &g_m), PGD_OK);
    pgd_model_config other;
    CU_ASSERT_EQUAL_FATAL(pgd_model_shape("llama2-7b", &other), PGD_OK);
    CU_ASSERT_EQUAL(pgd_sim_check_model(&g_v, &other), PGD_ERR_INVALID); /* the files measured another model */
    /* first MLP row: emb of 32768 tokens at TP 1, 1.963 ms */
    CU_ASSERT_STRING_EQUAL(g_v.rows[0].op, "emb");
    CU_ASSERT_EQUAL(g_v.rows[0].tp, 1);
    CU_ASSERT_EQUAL(g_v.rows[0].a, 32768);
    CU_ASSERT(fabs(g_v.rows[0].seconds - 1.963e-3) < 1e-12);
    /* all-reduce sizes are fp16 elements: bytes twice that; 2 workers with 1 device per node = 2 hosts */
    int found = 0;
    for (int i = 0; i < g_v.n; i++) {
        const pgd_vidur_row *r = &g_v.rows[i];
        if (r->kind == PGD_VIDUR_ALL_REDUCE && r->ranks == 2 && r->nodes == 2 && r->a == 4096) found = 1;
    }
    CU_ASSERT(found);
    pgd_vidur h = {0};
    char *p = path_of(AR_H100);
    CU_ASSERT_EQUAL(pgd_vidur_read_all_reduce(&h, p), PGD_OK);
    CU_ASSERT_EQUAL(h.n, 2982);
    pgd_vidur_free(&h);
    free(p);
}

typedef pgd_status (*reader)(pgd_vidur *, const char *);

/* The reader refuses `text` with `code`, naming the file and mentioning `what`. */
static void refused(reader rd, const char *text, pgd_status code, const char *what) {
    char *path = pgd_test_write_temp(text, strlen(text), ".csv");
    pgd_vidur v = {0};
    pgd_status st = rd(&v, path);
    CU_ASSERT_EQUAL(st, code);
    const char *msg = pgd_last_error();
    if (st != code || !strstr(msg, path) || !strstr(msg, what))
        fprintf(stderr, "\n  expected %d mentioning '%s', got %d: %s\n", code, what, st, msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, path));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, what));
    CU_ASSERT_EQUAL(v.n, v.n); /* rows read before the error are the caller's to free */
    pgd_vidur_free(&v);
    remove(path);
    free(path);
}

#define MLP_HEAD "time_stats.add.median,n_head,n_kv_head,n_embd,n_expanded_embd,vocab_size,num_tokens,num_tensor_parallel_workers\n"

static void test_bad_files(void) {
    refused(pgd_vidur_read_mlp, MLP_HEAD, PGD_ERR_FORMAT, "empty grid");
    refused(pgd_vidur_read_mlp, "", PGD_ERR_FORMAT, "empty file");
    refused(pgd_vidur_read_mlp, "time_stats.add.median,n_head,n_kv_head,n_embd,n_expanded_embd,vocab_size,"
                                "num_tensor_parallel_workers\n0.1,32,8,4096,14336,128256,1\n",
            PGD_ERR_FORMAT, "missing column 'num_tokens'");
    refused(pgd_vidur_read_mlp, MLP_HEAD "-0.5,32,8,4096,14336,128256,8,1\n", PGD_ERR_FORMAT,
            "column 'time_stats.add.median'");
    refused(pgd_vidur_read_mlp, MLP_HEAD "nan,32,8,4096,14336,128256,8,1\n", PGD_ERR_FORMAT, "positive finite");
    refused(pgd_vidur_read_mlp, MLP_HEAD "0.1,32,8,4096,14336,128256,8,1\n0,32,8,4096,14336,128256,16,1\n",
            PGD_ERR_FORMAT, ":3:");
    refused(pgd_vidur_read_mlp, MLP_HEAD "fast,32,8,4096,14336,128256,8,1\n", PGD_ERR_FORMAT, "not a number");
    refused(pgd_vidur_read_mlp, MLP_HEAD "0.1,32,8,4096,14336,128256,8\n", PGD_ERR_FORMAT, "columns");
    refused(pgd_vidur_read_mlp, "time_stats.softmax.median,n_head,n_kv_head,n_embd,n_expanded_embd,vocab_size,"
                                "num_tokens,num_tensor_parallel_workers\n0.1,32,8,4096,14336,128256,8,1\n",
            PGD_ERR_FORMAT, "unknown op 'softmax'");
    refused(pgd_vidur_read_mlp, MLP_HEAD "0.1,32,8,4096,14336,128256,8.5,1\n", PGD_ERR_FORMAT, "whole number");
    refused(pgd_vidur_read_attention, "tp,kind,a,b,median_ms\n1,encode,4,100,0.01\n", PGD_ERR_FORMAT,
            "unknown op");
    refused(pgd_vidur_read_attention, "tp,kind,a,b,median_ms\n", PGD_ERR_FORMAT, "empty grid");
    refused(pgd_vidur_read_attention, "tp,kind,a,median_ms\n1,decode,4,0.01\n", PGD_ERR_FORMAT, "missing column 'b'");
    refused(pgd_vidur_read_attention, "tp,kind,a,b,median_ms\n1,decode,4,100,inf\n", PGD_ERR_FORMAT, "median_ms");
    refused(pgd_vidur_read_all_reduce, ",time_stats.all_reduce.median,num_workers,size,collective,devices_per_node\n"
                                       "0,0.04,2,2048,all_gather,2\n", PGD_ERR_FORMAT, "unknown op");
    refused(pgd_vidur_read_all_reduce, ",time_stats.all_reduce.median,num_workers,devices_per_node\n0,0.04,2,2\n",
            PGD_ERR_FORMAT, "missing column 'size'");
    pgd_vidur v = {0};
    CU_ASSERT_EQUAL(pgd_vidur_read_mlp(&v, "/nonexistent/mlp.csv"), PGD_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "/nonexistent/mlp.csv"));
    pgd_vidur_free(&v);
}

/* --------------------------------------------------------------- curves */

static pgd_sim_cost cost_of(const char *dev) {
    pgd_sim_cost c = {.tp = 1};
    CU_ASSERT_EQUAL_FATAL(pgd_sim_device_find(dev, &c.dev), PGD_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.dev.kernels);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.dev.links);
    return c;
}

static void test_curve_math(void) {
    pgd_sim_gemm_curve g = {.t0 = 5e-6, .mm_eff = 0.5, .bw_eff = 0.8, .q = 2};
    pgd_sim_hw hw = {.peak_flops = 100e12, .mem_bw = 1e12, .l2_bytes = 1e6, .sms = 100};
    /* M = 1000, K = N = 1000, 2-byte operands: tc = 2e9 / 50e12 = 40 us; tm = (2e6 + 4e6) / 0.8e12 = 7.5 us */
    double tc = 40e-6, tm = 7.5e-6;
    CU_ASSERT(fabs(pgd_sim_curve_gemm(&g, &hw, 1000, 1000, 1000, 2, 2) - (5e-6 + sqrt(tc * tc + tm * tm))) < 1e-12);
    /* streaming: 3 MB with 1 MB of L2: 1 MB at eff_cache, 2 MB at eff */
    pgd_sim_stream_curve s = {.t0 = 1e-6, .eff_cache = 1.0, .eff = 0.5};
    CU_ASSERT(fabs(pgd_sim_curve_stream(&s, &hw, 3e6) - (1e-6 + 1e6 / 1e12 + 2e6 / 0.5e12)) < 1e-15);
    /* all-reduce: the nearest measured rank count of the same host count; none for another host count */
    pgd_sim_link_curves l = {.n = 2, .c = {{.ranks = 2, .nodes = 1, .lat = 1e-5, .bus_bw = 1e11, .q = 1},
                                           {.ranks = 8, .nodes = 1, .lat = 3e-5, .bus_bw = 1e11, .q = 1}}};
    CU_ASSERT(fabs(pgd_sim_curve_all_reduce(&l, 2, 1, 1e6) - (1e-5 + 1e6 / 1e11)) < 1e-15);
    CU_ASSERT(fabs(pgd_sim_curve_all_reduce(&l, 6, 1, 1e6) - (3e-5 + 2.0 * 5 / 6 * 1e6 / 1e11)) < 1e-15);
    CU_ASSERT(pgd_sim_curve_all_reduce(&l, 4, 2, 1e6) < 0);
    CU_ASSERT_EQUAL(pgd_sim_curve_all_reduce(&l, 1, 1, 1e6), 0);
    /* the presets: monotone in tokens and context; an H100 beats an A100 on every op */
    pgd_sim_cost a = cost_of("a100-80gb"), h = cost_of("h100");
    double prev = 0;
    for (int n = 1; n <= 32768; n *= 2) {
        double t = pgd_sim_cost_matmul(&a, n, 4096, 6144, PGD_BF16);
        CU_ASSERT(t > prev);
        CU_ASSERT(pgd_sim_cost_matmul(&h, n, 4096, 6144, PGD_BF16) < t);
        prev = t;
    }
    prev = 0;
    for (int L = 16; L <= 16384; L *= 2) {
        int32_t qs[65], lens[64];
        for (int q = 0; q <= 64; q++) qs[q] = q;
        for (int q = 0; q < 64; q++) lens[q] = L;
        double t = pgd_sim_cost_attention(&a, qs, lens, 64, 32, 8, 128);
        CU_ASSERT(t > prev);
        CU_ASSERT(pgd_sim_cost_attention(&h, qs, lens, 64, 32, 8, 128) < t);
        prev = t;
    }
    /* the analytic tensor-parallel add pays the fitted all-reduce */
    pgd_sim_cost a2 = a;
    a2.tp = 4;
    CU_ASSERT(fabs(pgd_sim_cost_add(&a2, 4096) - pgd_sim_cost_add(&a, 4096) -
                   pgd_sim_curve_all_reduce(a.dev.links, 4, 1, 4096.0 * 2)) < 1e-15);
}

/* ---------------------------------------------------------- generalization */

/* Rows of a held-out half: every other distinct token count of the MLP
 * file, every other attention row of each kind (in file order). */
typedef struct split {
    double tokens[1024];
    int ntok;
    int train; /* 1: keep the training half, 0: the held-out half */
} split;

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void split_init(split *s) {
    s->ntok = 0;
    for (int i = 0; i < g_v.n; i++) {
        const pgd_vidur_row *r = &g_v.rows[i];
        if (r->kind != PGD_VIDUR_MLP) continue;
        int seen = 0;
        for (int j = 0; j < s->ntok && !seen; j++) seen = s->tokens[j] == r->a;
        if (!seen && s->ntok < 1024) s->tokens[s->ntok++] = r->a;
    }
    qsort(s->tokens, (size_t)s->ntok, sizeof(double), cmp_d);
}

static int in_train_half(const split *s, const pgd_vidur_row *r) {
    if (r->kind == PGD_VIDUR_MLP) {
        for (int j = 0; j < s->ntok; j++)
            if (s->tokens[j] == r->a) return j % 2 == 0;
        return 0;
    }
    if (r->kind == PGD_VIDUR_ALL_REDUCE) return 1; /* the link curves are not what this split tests */
    int idx = 0; /* index among the rows of its kind */
    for (const pgd_vidur_row *q = g_v.rows; q < r; q++) idx += q->kind == r->kind;
    return idx % 2 == 0;
}

static int keep_half(const pgd_vidur_row *r, void *ctx) {
    const split *s = ctx;
    return in_train_half(s, r) == s->train;
}

static pgd_sim_fit_err steps_err(const pgd_sim_cost *c, int kind, int tp, pgd_vidur_filter keep, void *ctx, int *n) {
    pgd_sim_step *st = NULL;
    CU_ASSERT_EQUAL(pgd_sim_check_steps(&g_v, &g_m, c, kind, tp, keep, ctx, &st, n), PGD_OK);
    pgd_sim_fit_err e = pgd_sim_check_step_err(st, *n);
    free(st);
    return e;
}

static void test_generalize_grid(void) {
    static split s;
    split_init(&s);
    CU_ASSERT_FATAL(s.ntok > 400);
    s.train = 1;
    pgd_sim_cost c = {.tp = 1};
    CU_ASSERT_EQUAL_FATAL(pgd_sim_device_find("a100-80gb", &c.dev), PGD_OK);
    pgd_sim_hw hw = {.peak_flops = c.dev.peak_flops, .mem_bw = c.dev.mem_bw, .l2_bytes = c.dev.l2_bytes,
                     .sms = c.dev.sms};
    pgd_sim_kernel_curves kc;
    pgd_sim_link_curves lc;
    int have_links = 0;
    CU_ASSERT_EQUAL_FATAL(pgd_sim_check_fit(&g_v, &g_m, &hw, keep_half, &s, &kc, &lc, &have_links), PGD_OK);
    c.dev.kernels = &kc;
    c.dev.links = &lc;
    s.train = 0; /* judge on the held-out half only */
    int n;
    pgd_sim_fit_err d = steps_err(&c, PGD_STEP_DECODE, 1, keep_half, &s, &n);
    printf("\n  held-out decode steps: %d, median %.1f%%, p90 %.1f%%", n, 100 * d.median, 100 * d.p90);
    CU_ASSERT(n >= 60);
    CU_ASSERT(d.median <= 0.05);
    CU_ASSERT(d.p90 <= 0.10);
    pgd_sim_fit_err p = steps_err(&c, PGD_STEP_PREFILL, 1, keep_half, &s, &n);
    printf("; prefill steps: %d, median %.1f%%, p90 %.1f%%", n, 100 * p.median, 100 * p.p90);
    CU_ASSERT(n >= 60);
    CU_ASSERT(p.median <= 0.10);
    CU_ASSERT(p.p90 <= 0.20);
    for (int tp = 2; tp <= 8; tp *= 2) {
        pgd_sim_fit_err e = steps_err(&c, PGD_STEP_DENSE, tp, keep_half, &s, &n);
        printf("; tp%d dense: %d, median %.1f%%", tp, n, 100 * e.median);
        CU_ASSERT(n >= 15);
        CU_ASSERT(e.median <= 0.10);
    }
}

static int keep_tp12(const pgd_vidur_row *r, void *ctx) {
    (void)ctx;
    return r->kind == PGD_VIDUR_ALL_REDUCE || r->tp <= 2;
}

/* Fitted at TP 1 and 2 only (every MLP row of those, the attention), the
 * curves predict the TP 4 and 8 shards' dense layers at decode sizes. */
static void test_generalize_tp(void) {
    pgd_sim_cost c = {.tp = 1};
    CU_ASSERT_EQUAL_FATAL(pgd_sim_device_find("a100-80gb", &c.dev), PGD_OK);
    pgd_sim_hw hw = {.peak_flops = c.dev.peak_flops, .mem_bw = c.dev.mem_bw, .l2_bytes = c.dev.l2_bytes,
                     .sms = c.dev.sms};
    pgd_sim_kernel_curves kc;
    pgd_sim_link_curves lc;
    int have_links = 0;
    CU_ASSERT_EQUAL_FATAL(pgd_sim_check_fit(&g_v, &g_m, &hw, keep_tp12, NULL, &kc, &lc, &have_links), PGD_OK);
    c.dev.kernels = &kc;
    for (int tp = 4; tp <= 8; tp *= 2) {
        int n;
        pgd_sim_fit_err e = steps_err(&c, PGD_STEP_DENSE, tp, NULL, NULL, &n);
        printf("%s tp%d dense from a TP 1/2 fit: %d, median %.1f%%, p90 %.1f%%", tp == 4 ? "\n " : ";", tp, n,
               100 * e.median, 100 * e.p90);
        CU_ASSERT(n >= 30);
        CU_ASSERT(e.median <= 0.10);
    }
}

static void test_fit_deterministic(void) {
    pgd_sim_cost c = {.tp = 1};
    CU_ASSERT_EQUAL_FATAL(pgd_sim_device_find("a100-80gb", &c.dev), PGD_OK);
    pgd_sim_hw hw = {.peak_flops = c.dev.peak_flops, .mem_bw = c.dev.mem_bw, .l2_bytes = c.dev.l2_bytes,
                     .sms = c.dev.sms};
    pgd_sim_kernel_curves k1, k2;
    pgd_sim_link_curves l1, l2;
    int h1 = 0, h2 = 0;
    memset(&k1, 0, sizeof k1), memset(&k2, 0, sizeof k2), memset(&l1, 0, sizeof l1), memset(&l2, 0, sizeof l2);
    CU_ASSERT_EQUAL_FATAL(pgd_sim_check_fit(&g_v, &g_m, &hw, NULL, NULL, &k1, &l1, &h1), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_sim_check_fit(&g_v, &g_m, &hw, NULL, NULL, &k2, &l2, &h2), PGD_OK);
    CU_ASSERT(!memcmp(&k1.gemm, &k2.gemm, sizeof k1.gemm));
    CU_ASSERT(!memcmp(&k1.decode, &k2.decode, sizeof k1.decode));
    CU_ASSERT(!memcmp(&k1.prefill, &k2.prefill, sizeof k1.prefill));
    CU_ASSERT(!memcmp(k1.stream, k2.stream, sizeof k1.stream));
    CU_ASSERT(h1 && h2 && l1.n == l2.n && !memcmp(l1.c, l2.c, sizeof l1.c));
    /* the shipped preset is this fit (to the printed precision) */
    const pgd_sim_kernel_curves *p = c.dev.kernels;
    CU_ASSERT(fabs(p->gemm.mm_eff - k1.gemm.mm_eff) < 1e-3 && fabs(p->gemm.q - k1.gemm.q) < 1e-3);
    CU_ASSERT(fabs(p->decode.eff - k1.decode.eff) < 1e-3 && p->decode.resident_per_sm == k1.decode.resident_per_sm);
    CU_ASSERT(fabs(p->prefill.eff_max - k1.prefill.eff_max) < 1e-3);
}

/* ----------------------------------------------- the shipped presets hold */

static void test_presets_hold(void) {
    pgd_sim_cost c = cost_of("a100-80gb");
    int n;
    pgd_sim_fit_err d = steps_err(&c, PGD_STEP_DECODE, 1, NULL, NULL, &n);
    CU_ASSERT(n == 143 && d.median <= 0.05 && d.p90 <= 0.10);
    pgd_sim_fit_err p = steps_err(&c, PGD_STEP_PREFILL, 1, NULL, NULL, &n);
    CU_ASSERT(n == 184 && p.median <= 0.10 && p.p90 <= 0.20);
    for (int tp = 2; tp <= 8; tp *= 2) {
        pgd_sim_fit_err e = steps_err(&c, PGD_STEP_DENSE, tp, NULL, NULL, &n);
        CU_ASSERT(n == 35 && e.median <= 0.10);
    }
    /* all-reduce: every row of each file (NVLink within a host, the network across hosts) */
    for (int f = 0; f < 2; f++) {
        pgd_vidur v = {0};
        char *path = path_of(f ? AR_H100 : AR_A100);
        CU_ASSERT_EQUAL_FATAL(pgd_vidur_read_all_reduce(&v, path), PGD_OK);
        pgd_sim_cost cc = cost_of(f ? "h100" : "a100-80gb");
        double *e = malloc(sizeof(double) * (size_t)v.n);
        int m = 0;
        for (int i = 0; i < v.n; i++) {
            double t = pgd_sim_check_predict(&cc, &g_m, &v.rows[i]);
            CU_ASSERT(t > 0);
            e[m++] = t / v.rows[i].seconds - 1;
        }
        pgd_sim_fit_err fe = pgd_sim_err_stats(e, m);
        CU_ASSERT(fe.median <= 0.15);
        free(e);
        free(path);
        pgd_vidur_free(&v);
    }
    /* the same run twice, the same numbers */
    pgd_sim_step *s1 = NULL, *s2 = NULL;
    int n1, n2;
    CU_ASSERT_EQUAL(pgd_sim_check_steps(&g_v, &g_m, &c, PGD_STEP_DECODE, 1, NULL, NULL, &s1, &n1), PGD_OK);
    CU_ASSERT_EQUAL(pgd_sim_check_steps(&g_v, &g_m, &c, PGD_STEP_DECODE, 1, NULL, NULL, &s2, &n2), PGD_OK);
    CU_ASSERT(n1 == n2 && !memcmp(s1, s2, sizeof *s1 * (size_t)n1));
    free(s1), free(s2);
}

/* -------------------------------------------------------- the commands */

static void test_import_and_cli(void) {
    char *mlp = path_of(MLP), *attn = path_of(ATTN), *ar = path_of(AR_A100);
    char *table = pgd_test_write_temp("", 0, ".csv");
    char args[8192], *out = NULL, *err = NULL;
    snprintf(args, sizeof args, "profile --import vidur --model llama3-8b --mlp '%s' --attention '%s' "
             "--all-reduce '%s' -o '%s'", mlp, attn, ar, table);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), 0);
    free(out), free(err);
    pgd_sim_table *t = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_sim_table_load(table, &t), PGD_OK);
    pgd_sim_cost c = cost_of("a100-80gb");
    c.table = t;
    /* a measured GEMM (mlp_up_proj, TP 2, 1024 tokens: 0.555 ms) and a measured decode attention
     * (batch 12, context 960: 0.046 ms) come back exactly */
    CU_ASSERT(fabs(pgd_sim_cost_matmul(&c, 1024, 4096, 14336, PGD_BF16) - 0.555e-3) < 1e-9);
    int32_t qs[13], lens[12];
    for (int s = 0; s <= 12; s++) qs[s] = s;
    for (int s = 0; s < 12; s++) lens[s] = 960;
    CU_ASSERT(fabs(pgd_sim_cost_attention(&c, qs, lens, 12, 32, 8, 128) - 0.046e-3) < 1e-9);
    CU_ASSERT(fabs(pgd_sim_cost_all_reduce(&c, 2, 2, 4096) - 0.043e-3) < 1e-9);
    pgd_sim_table_destroy(t);
    /* sim-check ends with the summary line */
    snprintf(args, sizeof args, "sim-check --model llama3-8b --device a100-80gb --mlp '%s' --attention '%s'", mlp,
             attn);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), 0);
    const char *last = out ? out + strlen(out) : NULL;
    while (last && last > out && last[-1] == '\n') last--;
    while (last && last > out && last[-1] != '\n') last--;
    regex_t re;
    CU_ASSERT_EQUAL_FATAL(regcomp(&re, "^decode step median \\|err\\| [0-9]+\\.[0-9]%, p90 [0-9]+\\.[0-9]%; prefill "
                                       "step median \\|err\\| [0-9]+\\.[0-9]%, p90 [0-9]+\\.[0-9]%\n?$",
                                  REG_EXTENDED | REG_NOSUB), 0);
    CU_ASSERT(last && regexec(&re, last, 0, NULL, 0) == 0);
    regfree(&re);
    free(out), free(err);
    /* a bad file: exit 2, one line naming it */
    const char *bad = MLP_HEAD "0.1,32,8,4096,14336,128256,8,1\n-1,32,8,4096,14336,128256,16,1\n";
    char *bp = pgd_test_write_temp(bad, strlen(bad), ".csv");
    snprintf(args, sizeof args, "sim-check --model llama3-8b --device a100-80gb --mlp '%s'", bp);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), 2);
    CU_ASSERT(err && strstr(err, bp) && strchr(err, '\n') == err + strlen(err) - 1);
    free(out), free(err);
    snprintf(args, sizeof args, "sim-check --model llama3-8b --device b200 --mlp '%s'", mlp);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), 2);
    CU_ASSERT(err && strstr(err, "unknown device 'b200'"));
    free(out), free(err);
    remove(bp), remove(table);
    free(bp), free(table), free(mlp), free(attn), free(ar);
}

static CU_TestInfo tests[] = {
    {"import of the shipped Vidur files", test_import_shipped},
    {"bad files refused with file, line and column", test_bad_files},
    {"curve math and the presets' behaviour", test_curve_math},
    {"fit on half the grid, predict the other half", test_generalize_grid},
    {"fit at TP 1/2, predict TP 4/8", test_generalize_tp},
    {"fits are deterministic and the presets are the fit", test_fit_deterministic},
    {"the shipped presets meet the bounds", test_presets_hold},
    {"profile --import vidur and the sim-check command", test_import_and_cli},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "sim_check", .pInitFunc = suite_init, .pCleanupFunc = suite_cleanup, .pTests = tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
