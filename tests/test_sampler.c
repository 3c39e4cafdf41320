/* test_sampler.c - CUnit tests for core/sampler (greedy, temperature, top-k,
 * top-p, determinism, parameter validation).
 *
 * Statistical tests use fixed seeds, so they are deterministic; their
 * tolerances (chi-square far beyond the 1e-6 tail, plus an absolute bound
 * per token) are loose enough that a correct sampler passes for any seed. */
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda/sampler.h"

/* ---- helpers ---- */

static pgd_sampler *mk(float temperature, int top_k, float top_p, uint64_t seed, int vocab) {
    pgd_sampling_params p = {.temperature = temperature, .top_k = top_k, .top_p = top_p,
                             .seed = seed};
    pgd_sampler *s = NULL;
    pgd_status st = pgd_sampler_create(&p, vocab, &s);
    CU_ASSERT_EQUAL_FATAL(st, PGD_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    return s;
}

/* Sample `draws` times from a fresh copy of `logits` each time; counts[i]++. */
static void histogram(pgd_sampler *s, const float *logits, int n, int draws, long *counts) {
    float *tmp = malloc((size_t)n * sizeof *tmp);
    memset(counts, 0, (size_t)n * sizeof *counts);
    int bad = 0;
    for (int d = 0; d < draws; d++) {
        memcpy(tmp, logits, (size_t)n * sizeof *tmp);
        int t = pgd_sampler_sample(s, tmp);
        if (t >= 0 && t < n) counts[t]++;
        else bad++;
    }
    free(tmp);
    CU_ASSERT_EQUAL(bad, 0);
}

/* softmax(logits / T) in double. */
static void ref_softmax(const float *logits, int n, double t, double *p) {
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < n; i++)
        if (logits[i] > mx) mx = logits[i];
    for (int i = 0; i < n; i++) sum += p[i] = exp((logits[i] - mx) / t);
    for (int i = 0; i < n; i++) p[i] /= sum;
}

/* Chi-square of counts against expected probabilities (only cells with
 * p > 0; a count in a p == 0 cell makes it infinite), and max |freq - p|. */
static double chi_square(const long *counts, const double *p, int n, long draws,
                         double *max_abs) {
    double chi = 0, ma = 0;
    for (int i = 0; i < n; i++) {
        double f = (double)counts[i] / (double)draws;
        if (fabs(f - p[i]) > ma) ma = fabs(f - p[i]);
        if (p[i] > 0) {
            double e = p[i] * (double)draws, d = (double)counts[i] - e;
            chi += d * d / e;
        } else if (counts[i] > 0) {
            chi = INFINITY;
        }
    }
    *max_abs = ma;
    return chi;
}

/* 1e-6 upper tail of chi-square with `dof` degrees of freedom: a table for
 * small dof, the Wilson-Hilferty approximation (z = 4.75) beyond. */
static double chi_crit(int dof) {
    static const double c[] = {0, 24.0, 27.7, 30.7, 33.4, 35.9};
    if (dof >= 1 && dof <= 5) return c[dof];
    double a = 2.0 / (9.0 * dof), b = 1.0 - a + 4.75 * sqrt(a);
    return dof * b * b * b;
}

static int greedy_ref(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* ---- argmax / greedy ---- */

static void test_argmax(void) {
    float a[] = {0.5f, 2.0f, -1.0f, 2.0f, 1.9f};
    CU_ASSERT_EQUAL(pgd_argmax(a, 5), 1);
    float b[] = {3.0f, 3.0f, 3.0f};
    CU_ASSERT_EQUAL(pgd_argmax(b, 3), 0);
    float c[] = {-INFINITY, -5.0f, -INFINITY};
    CU_ASSERT_EQUAL(pgd_argmax(c, 3), 1);
    float d[] = {NAN, 1.0f, 4.0f, NAN, 4.0f};
    CU_ASSERT_EQUAL(pgd_argmax(d, 5), 2);
    float e[] = {7.0f};
    CU_ASSERT_EQUAL(pgd_argmax(e, 1), 0);
}

static void test_greedy(void) {
    enum { N = 1000 };
    pgd_sampler *s = mk(0.0f, 0, 1.0f, 42, N);
    float x[N], y[N];
    for (int r = 0; r < 50; r++) {
        pgd_test_fill_uniform(x, N, 100 + (uint64_t)r, -5.0f, 5.0f);
        memcpy(y, x, sizeof x);
        CU_ASSERT_EQUAL(pgd_sampler_sample(s, y), greedy_ref(x, N));
    }
    /* ties: lowest index wins */
    for (int i = 0; i < N; i++) x[i] = 0.0f;
    x[700] = x[300] = x[900] = 3.0f;
    CU_ASSERT_EQUAL(pgd_sampler_sample(s, x), 300);
    pgd_sampler_destroy(s);
}

/* ---- determinism ---- */

static void run_sequence(pgd_sampler *s, int n, int steps, int *out) {
    float *x = malloc((size_t)n * sizeof *x);
    for (int t = 0; t < steps; t++) {
        pgd_test_fill_uniform(x, (size_t)n, 7000 + (uint64_t)t, -3.0f, 3.0f);
        out[t] = pgd_sampler_sample(s, x);
    }
    free(x);
}

static void test_determinism(void) {
    enum { N = 32000, STEPS = 300 };
    static int a[STEPS], b[STEPS], c[STEPS];
    const struct { float t; int k; float p; } cfg[] = {
        {1.0f, 0, 1.0f}, {0.8f, 40, 1.0f}, {1.0f, 0, 0.9f}, {1.3f, 50, 0.95f}};
    for (size_t q = 0; q < sizeof cfg / sizeof cfg[0]; q++) {
        pgd_sampler *s1 = mk(cfg[q].t, cfg[q].k, cfg[q].p, 1234, N);
        pgd_sampler *s2 = mk(cfg[q].t, cfg[q].k, cfg[q].p, 1234, N);
        pgd_sampler *s3 = mk(cfg[q].t, cfg[q].k, cfg[q].p, 1235, N);
        run_sequence(s1, N, STEPS, a);
        run_sequence(s2, N, STEPS, b);
        run_sequence(s3, N, STEPS, c);
        CU_ASSERT_EQUAL(memcmp(a, b, sizeof a), 0);
        int diff = 0;
        for (int t = 0; t < STEPS; t++) diff += a[t] != c[t];
        CU_ASSERT(diff > STEPS / 2); /* high-entropy rows: nearly all differ */
        pgd_sampler_destroy(s1);
        pgd_sampler_destroy(s2);
        pgd_sampler_destroy(s3);
    }
    /* a request's stream does not depend on an interleaved other request */
    pgd_sampler *x1 = mk(1.0f, 0, 1.0f, 99, N), *x2 = mk(1.0f, 0, 1.0f, 99, N);
    pgd_sampler *other = mk(1.0f, 0, 1.0f, 5, N);
    float *row = malloc(N * sizeof *row);
    int same = 1;
    for (int t = 0; t < 100; t++) {
        pgd_test_fill_uniform(row, N, 500 + (uint64_t)t, -2.0f, 2.0f);
        int u = pgd_sampler_sample(x1, row);
        pgd_test_fill_uniform(row, N, 9999 + (uint64_t)t, -2.0f, 2.0f);
        (void)pgd_sampler_sample(other, row);
        pgd_test_fill_uniform(row, N, 500 + (uint64_t)t, -2.0f, 2.0f);
        same &= u == pgd_sampler_sample(x2, row);
    }
    CU_ASSERT(same);
    free(row);
    pgd_sampler_destroy(x1);
    pgd_sampler_destroy(x2);
    pgd_sampler_destroy(other);
}

/* ---- top-k = 1 and tiny top-p reduce to greedy ---- */

static void check_equals_greedy(int top_k, float top_p) {
    enum { N = 32000 };
    const float temps[] = {0.05f, 0.7f, 1.0f, 3.0f, 100.0f};
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    for (size_t q = 0; q < sizeof temps / sizeof temps[0]; q++) {
        pgd_sampler *s = mk(temps[q], top_k, top_p, 77 + q, N);
        for (int r = 0; r < 40; r++) {
            pgd_test_fill_uniform(x, N, 300 + (uint64_t)r, -4.0f, 4.0f);
            if (r % 4 == 0) { /* planted tie: the lower id must win */
                int g = greedy_ref(x, N);
                x[g / 2] = x[g];
            }
            if (r % 4 == 1) { /* a near-tie whose weights round equal at high T */
                int g = greedy_ref(x, N);
                x[g / 2] = nextafterf(x[g], -INFINITY);
            }
            int want = greedy_ref(x, N);
            memcpy(y, x, N * sizeof *x);
            CU_ASSERT_EQUAL(pgd_sampler_sample(s, y), want);
        }
        pgd_sampler_destroy(s);
    }
    free(x);
    free(y);
}

static void test_top_k1_is_greedy(void) { check_equals_greedy(1, 1.0f); }
static void test_top_p_tiny_is_greedy(void) { check_equals_greedy(0, 1e-7f); }

/* Flat rows: the top token's share is below (1 - p) / (n - 1), which a naive
 * llama2.c-style prefilter would drop, leaving an empty nucleus. */
static void test_top_p_flat(void) {
    float x[4];
    pgd_sampler *s = mk(1.0f, 0, 0.01f, 3, 4);
    for (int r = 0; r < 100; r++) {
        for (int i = 0; i < 4; i++) x[i] = 1.5f;
        CU_ASSERT_EQUAL(pgd_sampler_sample(s, x), 0);
    }
    pgd_sampler_destroy(s);
    s = mk(1.0f, 0, 0.4f, 3, 4); /* nucleus = 2 tokens of a flat 4 */
    long cnt[4] = {0};
    for (int r = 0; r < 20000; r++) {
        for (int i = 0; i < 4; i++) x[i] = -0.25f;
        cnt[pgd_sampler_sample(s, x)]++;
    }
    CU_ASSERT(cnt[2] == 0 && cnt[3] == 0);
    CU_ASSERT(fabs((double)cnt[0] / 20000.0 - 0.5) < 0.02);
    pgd_sampler_destroy(s);
}

/* ---- empirical distributions ---- */

static void test_distribution_t1(void) {
    enum { N = 5, D = 200000 };
    const float logits[N] = {1.0f, 2.0f, 0.5f, -1.0f, 1.5f};
    double p[N], ma;
    long cnt[N];
    ref_softmax(logits, N, 1.0, p);
    pgd_sampler *s = mk(1.0f, 0, 1.0f, 2024, N);
    histogram(s, logits, N, D, cnt);
    double chi = chi_square(cnt, p, N, D, &ma);
    CU_ASSERT(chi < chi_crit(N - 1));
    CU_ASSERT(ma < 0.005);
    pgd_sampler_destroy(s);

    /* top_k == vocab and top_p == 0 (zeroed config) both mean "no limit" */
    s = mk(1.0f, N, 0.0f, 2025, N);
    histogram(s, logits, N, D, cnt);
    chi = chi_square(cnt, p, N, D, &ma);
    CU_ASSERT(chi < chi_crit(N - 1));
    CU_ASSERT(ma < 0.005);
    pgd_sampler_destroy(s);
}

static void test_temperature_scaling(void) {
    enum { N = 5, D = 200000 };
    const float logits[N] = {1.0f, 2.0f, 0.5f, -1.0f, 1.5f};
    double p1[N], ph[N], p2[N], ma;
    long c1[N], ch[N], c2[N];
    ref_softmax(logits, N, 1.0, p1);
    ref_softmax(logits, N, 0.5, ph);
    ref_softmax(logits, N, 2.0, p2);
    pgd_sampler *s1 = mk(1.0f, 0, 1.0f, 11, N);
    pgd_sampler *sh = mk(0.5f, 0, 1.0f, 12, N);
    pgd_sampler *s2 = mk(2.0f, 0, 1.0f, 13, N);
    histogram(s1, logits, N, D, c1);
    histogram(sh, logits, N, D, ch);
    histogram(s2, logits, N, D, c2);
    CU_ASSERT(chi_square(ch, ph, N, D, &ma) < chi_crit(N - 1));
    CU_ASSERT(ma < 0.005);
    CU_ASSERT(chi_square(c2, p2, N, D, &ma) < chi_crit(N - 1));
    CU_ASSERT(ma < 0.005);
    /* T = 0.5 sharpens: the top token gains, the tail loses; T = 2 flattens */
    CU_ASSERT(ch[1] > c1[1] + D / 20);
    CU_ASSERT(ch[3] < c1[3]);
    CU_ASSERT(c2[1] < c1[1] - D / 20);
    CU_ASSERT(c2[3] > c1[3]);
    pgd_sampler_destroy(s1);
    pgd_sampler_destroy(sh);
    pgd_sampler_destroy(s2);
}

static void test_top_k2(void) {
    enum { N = 6, D = 200000 };
    const float logits[N] = {0.3f, 1.7f, -0.2f, 1.1f, 0.9f, 1.0f};
    long cnt[N];
    const float temps[] = {1.0f, 0.6f, 2.5f};
    for (int q = 0; q < 3; q++) {
        pgd_sampler *s = mk(temps[q], 2, 1.0f, 31 + (uint64_t)q, N);
        histogram(s, logits, N, D, cnt);
        CU_ASSERT_EQUAL(cnt[0] + cnt[2] + cnt[4] + cnt[5], 0);
        CU_ASSERT_EQUAL(cnt[1] + cnt[3], D);
        /* P(1) / (P(1) + P(3)) = 1 / (1 + exp((1.1 - 1.7) / T)) */
        double want = 1.0 / (1.0 + exp((1.1 - 1.7) / temps[q]));
        double got = (double)cnt[1] / D;
        double p[N] = {0, want, 0, 1 - want, 0, 0}, ma;
        CU_ASSERT(fabs(got - want) < 0.005);
        CU_ASSERT(chi_square(cnt, p, N, D, &ma) < chi_crit(1));
        pgd_sampler_destroy(s);
    }
}

/* top-k on a full-size vocabulary: every draw lies in the true top k (ties
 * ranked by lower id), for small k (heap) and large k (quickselect). */
static void test_top_k_large_vocab(void) {
    enum { N = 32000 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    const int ks[] = {2, 5, 40, 1000, 20000, N - 1};
    for (size_t q = 0; q < sizeof ks / sizeof ks[0]; q++) {
        int k = ks[q];
        pgd_sampler *s = mk(1.5f, k, 1.0f, 600 + q, N);
        for (int r = 0; r < 30; r++) {
            pgd_test_fill_uniform(x, N, 40 + (uint64_t)r, 0.0f, 1.0f);
            if (r % 2) /* coarse logits: ties everywhere, the lower id ranks first */
                for (int i = 0; i < N; i++) x[i] = floorf(x[i] * 16.0f) / 4.0f;
            memcpy(y, x, N * sizeof *x);
            int t = pgd_sampler_sample(s, y);
            /* count strictly larger logits, plus equal ones at lower ids */
            int rank = 0;
            for (int i = 0; i < N; i++) rank += x[i] > x[t] || (x[i] == x[t] && i < t);
            CU_ASSERT(rank < k);
        }
        pgd_sampler_destroy(s);
    }
    free(x);
    free(y);
}

static void test_top_p07(void) {
    enum { N = 6, D = 200000 };
    /* probabilities 0.06 0.25 0.04 0.40 0.10 0.15 (shuffled ids); sorted mass
     * 0.40, 0.65, 0.80 -> nucleus {3, 1, 5}, renormalised 0.5, 0.3125, 0.1875 */
    const double prob[N] = {0.06, 0.25, 0.04, 0.40, 0.10, 0.15};
    float logits[N];
    for (int i = 0; i < N; i++) logits[i] = (float)log(prob[i]) + 3.0f;
    const double want[N] = {0, 0.3125, 0, 0.5, 0, 0.1875};
    long cnt[N];
    double ma;
    pgd_sampler *s = mk(1.0f, 0, 0.7f, 8080, N);
    histogram(s, logits, N, D, cnt);
    CU_ASSERT_EQUAL(cnt[0] + cnt[2] + cnt[4], 0);
    CU_ASSERT(chi_square(cnt, want, N, D, &ma) < chi_crit(2));
    CU_ASSERT(ma < 0.005);
    pgd_sampler_destroy(s);

    /* top_p = 0.3: only the single top token */
    s = mk(1.0f, 0, 0.3f, 8081, N);
    histogram(s, logits, N, D, cnt);
    CU_ASSERT_EQUAL(cnt[3], D);
    pgd_sampler_destroy(s);

    /* top_p = 0.85 -> mass 0.40 0.65 0.80 0.90: four tokens */
    s = mk(1.0f, 0, 0.85f, 8082, N);
    histogram(s, logits, N, D, cnt);
    CU_ASSERT_EQUAL(cnt[0] + cnt[2], 0);
    const double want4[N] = {0, 0.25 / 0.9, 0, 0.40 / 0.9, 0.10 / 0.9, 0.15 / 0.9};
    CU_ASSERT(chi_square(cnt, want4, N, D, &ma) < chi_crit(3));
    CU_ASSERT(ma < 0.005);
    pgd_sampler_destroy(s);
}

/* top-k first, then top-p on the renormalised survivors. */
static void test_top_k_then_p(void) {
    enum { N = 5, D = 200000 };
    /* 0.1 0.3 0.1 0.2 0.3: top-3 = {1, 4, 3} renormalised 0.375 0.375 0.25;
     * top_p 0.7 over those -> {1, 4} (0.75), equal halves. Without top-k,
     * top_p 0.7 would need {1, 4, 3} (0.3 + 0.3 = 0.6 < 0.7). */
    const double prob[N] = {0.1, 0.3, 0.1, 0.2, 0.3};
    float logits[N];
    for (int i = 0; i < N; i++) logits[i] = (float)log(prob[i]);
    long cnt[N];
    double ma;
    pgd_sampler *s = mk(1.0f, 3, 0.7f, 4242, N);
    histogram(s, logits, N, D, cnt);
    CU_ASSERT_EQUAL(cnt[0] + cnt[2] + cnt[3], 0);
    const double want[N] = {0, 0.5, 0, 0, 0.5};
    CU_ASSERT(chi_square(cnt, want, N, D, &ma) < chi_crit(1));
    pgd_sampler_destroy(s);

    s = mk(1.0f, 0, 0.7f, 4243, N);
    histogram(s, logits, N, D, cnt);
    CU_ASSERT_EQUAL(cnt[0] + cnt[2], 0);
    CU_ASSERT(cnt[3] > 0);
    pgd_sampler_destroy(s);
}

/* top-p on a full-size vocabulary against a brute-force nucleus. */
static const float *g_vals;
static int cmp_by_val_desc(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (g_vals[i] > g_vals[j]) return -1;
    if (g_vals[i] < g_vals[j]) return 1;
    return (i > j) - (i < j);
}

static void test_top_p_large_vocab(void) {
    enum { N = 32000 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    int *order = malloc(N * sizeof *order);
    double *p = malloc(N * sizeof *p);
    char *in = malloc(N);
    const float tops[] = {0.5f, 0.9f, 0.99f};
    for (int q = 0; q < 3; q++) {
        pgd_sampler *s = mk(0.8f, 0, tops[q], 900 + (uint64_t)q, N);
        for (int r = 0; r < 10; r++) {
            pgd_test_fill_uniform(x, N, 70 + (uint64_t)r, -2.0f, 2.0f);
            if (r % 2) /* coarse logits: ties everywhere, the lower id ranks first */
                for (int i = 0; i < N; i++) x[i] = floorf(x[i] * 4.0f) / 4.0f;
            for (int i = 0; i < 40; i++) x[(i * 797) % N] += 6.0f; /* a peaked head */
            ref_softmax(x, N, 0.8, p);
            for (int i = 0; i < N; i++) order[i] = i;
            g_vals = x;
            qsort(order, N, sizeof *order, cmp_by_val_desc);
            memset(in, 0, N);
            double cum = 0;
            /* nucleus plus a little slack for float-vs-double rounding */
            for (int j = 0; j < N && cum < tops[q] + 1e-6; j++) {
                in[order[j]] = 1;
                cum += p[order[j]];
            }
            for (int d = 0; d < 100; d++) {
                memcpy(y, x, N * sizeof *x);
                int t = pgd_sampler_sample(s, y);
                CU_ASSERT(t >= 0 && t < N && in[t]);
            }
        }
        pgd_sampler_destroy(s);
    }
    free(x);
    free(y);
    free(order);
    free(p);
    free(in);
}

/* Exact distributions on a mid-size vocabulary, where the selections run
 * their quickselect paths: top-k = 300 of 2000 and top-p = 0.8. */
static void test_mid_vocab_distributions(void) {
    enum { N = 2000, D = 100000 };
    float x[N];
    double p[N], ma;
    static long cnt[N];
    pgd_test_fill_uniform(x, N, 4321, -2.0f, 2.0f);
    x[17] = x[1717] = x[999]; /* a few ties */
    int order[N];
    for (int i = 0; i < N; i++) order[i] = i;
    g_vals = x;
    qsort(order, N, sizeof *order, cmp_by_val_desc);

    /* top-k 300 at T = 1 */
    pgd_sampler *s = mk(1.0f, 300, 1.0f, 55, N);
    histogram(s, x, N, D, cnt);
    double sum = 0;
    for (int i = 0; i < N; i++) p[i] = 0;
    for (int j = 0; j < 300; j++) sum += p[order[j]] = exp((double)x[order[j]] - x[order[0]]);
    for (int i = 0; i < N; i++) p[i] /= sum;
    double chi = chi_square(cnt, p, N, D, &ma);
    CU_ASSERT(chi < chi_crit(299));
    CU_ASSERT(ma < 0.005);
    pgd_sampler_destroy(s);

    /* top-p 0.8 at T = 0.5 */
    s = mk(0.5f, 0, 0.8f, 56, N);
    histogram(s, x, N, D, cnt);
    ref_softmax(x, N, 0.5, p);
    double cum = 0;
    int len = 0;
    while (cum < 0.8) cum += p[order[len++]];
    for (int j = len; j < N; j++) p[order[j]] = 0;
    for (int i = 0; i < N; i++) p[i] /= cum;
    chi = chi_square(cnt, p, N, D, &ma);
    CU_ASSERT(chi < chi_crit(len - 1));
    CU_ASSERT(ma < 0.005);
    pgd_sampler_destroy(s);
}

/* ---- odd logits ---- */

static void test_nonfinite_logits(void) {
    enum { N = 8 };
    pgd_sampler *s = mk(1.0f, 0, 1.0f, 5, N);
    pgd_sampler *sk = mk(1.0f, 3, 0.9f, 6, N);
    float x[N];
    for (int r = 0; r < 5000; r++) {
        const float base[N] = {NAN, 0.0f, -INFINITY, 1.0f, NAN, -INFINITY, 0.5f, -INFINITY};
        memcpy(x, base, sizeof x);
        int t = pgd_sampler_sample(s, x);
        CU_ASSERT(t == 1 || t == 3 || t == 6);
        memcpy(x, base, sizeof x);
        t = pgd_sampler_sample(sk, x);
        CU_ASSERT(t == 1 || t == 3 || t == 6);
    }
    for (int i = 0; i < N; i++) x[i] = -INFINITY;
    CU_ASSERT_EQUAL(pgd_sampler_sample(s, x), 0);
    for (int i = 0; i < N; i++) x[i] = 0.0f;
    x[5] = INFINITY;
    CU_ASSERT_EQUAL(pgd_sampler_sample(s, x), 5);
    pgd_sampler_destroy(s);
    pgd_sampler_destroy(sk);
}

/* ---- validation ---- */

static void expect_invalid(pgd_sampling_params p, int vocab, const char *name,
                           const char *value) {
    pgd_clear_error();
    CU_ASSERT_EQUAL(pgd_sampling_params_validate(&p, vocab), PGD_ERR_INVALID);
    const char *msg = pgd_last_error();
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, name));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, value));
    pgd_sampler *s = (pgd_sampler *)&p; /* must be reset to NULL */
    CU_ASSERT_EQUAL(pgd_sampler_create(&p, vocab, &s), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NULL(s);
}

static void test_validate(void) {
    const pgd_sampling_params ok = {.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .seed = 1};
    pgd_sampling_params p;

    p = ok, p.temperature = -1.0f;
    expect_invalid(p, 100, "temperature", "-1");
    p = ok, p.temperature = NAN;
    expect_invalid(p, 100, "temperature", "nan");
    p = ok, p.temperature = INFINITY;
    expect_invalid(p, 100, "temperature", "inf");
    p = ok, p.temperature = -INFINITY;
    expect_invalid(p, 100, "temperature", "-inf");
    p = ok, p.top_p = 1.5f;
    expect_invalid(p, 100, "top-p", "1.5");
    p = ok, p.top_p = -0.25f;
    expect_invalid(p, 100, "top-p", "-0.25");
    p = ok, p.top_p = NAN;
    expect_invalid(p, 100, "top-p", "nan");
    p = ok, p.top_k = 101;
    expect_invalid(p, 100, "top-k", "101");
    p = ok, p.top_k = -3;
    expect_invalid(p, 100, "top-k", "-3");
    p = ok;
    expect_invalid(p, 0, "vocab", "0");

    const struct { float t; int k; float p; } good[] = {
        {0.0f, 0, 0.0f}, {0.0f, 0, 1.0f}, {1.0f, 100, 1.0f}, {0.7f, 1, 0.9f},
        {1e-6f, 50, 1e-6f}, {1000.0f, 0, 0.5f}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        p = (pgd_sampling_params){.temperature = good[i].t, .top_k = good[i].k,
                                  .top_p = good[i].p, .seed = 9};
        CU_ASSERT_EQUAL(pgd_sampling_params_validate(&p, 100), PGD_OK);
        pgd_sampler *s = NULL;
        CU_ASSERT_EQUAL(pgd_sampler_create(&p, 100, &s), PGD_OK);
        CU_ASSERT_PTR_NOT_NULL(s);
        pgd_sampler_destroy(s);
    }
    pgd_sampler_destroy(NULL);
}

/* ---- registration ---- */

static CU_TestInfo sampler_tests[] = {
    {"argmax", test_argmax},
    {"greedy picks argmax, lowest id on ties", test_greedy},
    {"same seed same tokens, other seed differs", test_determinism},
    {"top_k=1 equals greedy at any temperature", test_top_k1_is_greedy},
    {"tiny top_p equals greedy", test_top_p_tiny_is_greedy},
    {"top_p on flat rows keeps the top token", test_top_p_flat},
    {"T=1 empirical distribution matches softmax", test_distribution_t1},
    {"temperature sharpens / flattens", test_temperature_scaling},
    {"top_k=2 support and ratio", test_top_k2},
    {"top_k on a 32000 vocabulary", test_top_k_large_vocab},
    {"top_p=0.7 nucleus and weights", test_top_p07},
    {"top_k then top_p", test_top_k_then_p},
    {"top_p on a 32000 vocabulary", test_top_p_large_vocab},
    {"top_k=300 and top_p=0.8 exact on 2000 tokens", test_mid_vocab_distributions},
    {"NaN and inf logits", test_nonfinite_logits},
    {"parameter validation", test_validate},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "sampler", .pTests = sampler_tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
