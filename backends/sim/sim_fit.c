/* sim_fit.c - fitting the GPU cost curves of sim_curves.h to measured
 * kernel times. Every fit minimises the mean squared relative error
 * (log(predicted / measured), or (predicted / measured - 1) for the linear
 * ones), so a 5 us kernel counts as much as a 5 ms one.
 *   GEMM, prefill attention, all-reduce: Nelder-Mead over the logarithms of
 *     the parameters (all positive; q - 1 for the smooth-max exponents), from
 *     fixed starts, restarted from its own best until it stops improving;
 *   streaming kernels and decode attention: non-negative least squares of
 *     the relative error over their linear coefficients (3 and 5;
 *     coordinate descent on the normal equations); for decode attention
 *     for each split / residency pair in 1..4 x 1..4, keeping the best.
 * Points carry weights (sim_check.c gives each octave of token counts the
 * same total weight).
 * Deterministic: no random starts; the same points give the same curves. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim_curves.h"

void pgd_sim_decode_features(int split_per_sm, int resident_per_sm, int sms, double seqs, double ctx,
                             int kv_heads, int head_dim, double a_bytes, double f[5]);

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

pgd_sim_fit_err pgd_sim_err_stats(double *e, int n) {
    pgd_sim_fit_err r = {.n = n};
    if (n <= 0) return r;
    for (int i = 0; i < n; i++) e[i] = fabs(e[i]);
    qsort(e, (size_t)n, sizeof *e, cmp_dbl);
    r.median = n % 2 ? e[n / 2] : 0.5 * (e[n / 2 - 1] + e[n / 2]);
    /* p90 by linear interpolation between order statistics */
    double pos = 0.9 * (n - 1);
    int i = (int)pos;
    r.p90 = i + 1 < n ? e[i] + (pos - i) * (e[i + 1] - e[i]) : e[n - 1];
    return r;
}

/* ------------------------------------------------------------ Nelder-Mead */

#define NM_MAX 6
typedef double (*nm_fn)(const double *x, void *ctx);

static double nm_run(nm_fn f, void *ctx, double *x, int d, double step, int iters) {
    double s[NM_MAX + 1][NM_MAX], fs[NM_MAX + 1];
    for (int i = 0; i <= d; i++) {
        memcpy(s[i], x, sizeof(double) * d);
        if (i) s[i][i - 1] += step;
        fs[i] = f(s[i], ctx);
    }
    for (int it = 0; it < iters; it++) {
        /* order: best first */
        for (int i = 1; i <= d; i++)
            for (int j = i; j > 0 && fs[j] < fs[j - 1]; j--) {
                double tf = fs[j];
                fs[j] = fs[j - 1], fs[j - 1] = tf;
                double tx[NM_MAX];
                memcpy(tx, s[j], sizeof tx), memcpy(s[j], s[j - 1], sizeof tx), memcpy(s[j - 1], tx, sizeof tx);
            }
        if (fabs(fs[d] - fs[0]) <= 1e-15 + 1e-12 * fabs(fs[0])) break;
        double c[NM_MAX] = {0}, r[NM_MAX], e[NM_MAX], k[NM_MAX];
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++) c[j] += s[i][j] / d;
        for (int j = 0; j < d; j++) r[j] = c[j] + (c[j] - s[d][j]);
        double fr = f(r, ctx);
        if (fr < fs[0]) {
            for (int j = 0; j < d; j++) e[j] = c[j] + 2 * (c[j] - s[d][j]);
            double fe = f(e, ctx);
            if (fe < fr) memcpy(s[d], e, sizeof(double) * d), fs[d] = fe;
            else memcpy(s[d], r, sizeof(double) * d), fs[d] = fr;
        } else if (fr < fs[d - 1]) {
            memcpy(s[d], r, sizeof(double) * d), fs[d] = fr;
        } else {
            int outside = fr < fs[d];
            for (int j = 0; j < d; j++) k[j] = outside ? c[j] + 0.5 * (r[j] - c[j]) : c[j] + 0.5 * (s[d][j] - c[j]);
            double fk = f(k, ctx);
            if (fk < (outside ? fr : fs[d])) {
                memcpy(s[d], k, sizeof(double) * d), fs[d] = fk;
            } else { /* shrink toward the best */
                for (int i = 1; i <= d; i++) {
                    for (int j = 0; j < d; j++) s[i][j] = s[0][j] + 0.5 * (s[i][j] - s[0][j]);
                    fs[i] = f(s[i], ctx);
                }
            }
        }
    }
    int b = 0;
    for (int i = 1; i <= d; i++)
        if (fs[i] < fs[b]) b = i;
    memcpy(x, s[b], sizeof(double) * d);
    return fs[b];
}

/* Restart from the best point until a run no longer improves it. */
static double nm_min(nm_fn f, void *ctx, double *x, int d) {
    double best = nm_run(f, ctx, x, d, 0.5, 4000);
    for (int r = 0; r < 12; r++) {
        double v = nm_run(f, ctx, x, d, 0.1, 4000);
        if (v >= best * (1 - 1e-9)) {
            best = v < best ? v : best;
            break;
        }
        best = v;
    }
    return best;
}

static double sq_log(double pred, double meas) {
    if (!(pred > 0) || !isfinite(pred)) return 1e6;
    double l = log(pred / meas);
    return l * l;
}

/* ------------------------------------------------------------------ GEMM */

typedef struct gemm_ctx {
    const pgd_sim_gemm_point *p;
    int n;
    const pgd_sim_hw *hw;
} gemm_ctx;

static pgd_sim_gemm_curve gemm_of(const double *x) {
    return (pgd_sim_gemm_curve){.t0 = exp(x[0]), .mm_eff = exp(x[1]), .bw_eff = exp(x[2]), .q = 1 + exp(x[3])};
}

static double wt_of(double w) { return w > 0 ? w : 1; }

static double gemm_loss(const double *x, void *v) {
    gemm_ctx *c = v;
    pgd_sim_gemm_curve g = gemm_of(x);
    double s = 0, ws = 0;
    for (int i = 0; i < c->n; i++) {
        const pgd_sim_gemm_point *p = &c->p[i];
        s += wt_of(p->wt) * sq_log(pgd_sim_curve_gemm(&g, c->hw, p->m, p->k, p->n, p->w, p->a), p->t);
        ws += wt_of(p->wt);
    }
    return s / ws;
}

pgd_status pgd_sim_fit_gemm(const pgd_sim_gemm_point *p, int n, const pgd_sim_hw *hw, pgd_sim_gemm_curve *out) {
    if (n < 8) return pgd_error(PGD_ERR_INVALID, "sim fit: %d GEMM points (need at least 8)", n);
    gemm_ctx c = {p, n, hw};
    double x[4] = {log(5e-6), log(0.75), log(0.8), log(1.0)};
    nm_min(gemm_loss, &c, x, 4);
    *out = gemm_of(x);
    double *e = malloc(sizeof(double) * n);
    if (!e) return pgd_error(PGD_ERR_OOM, "sim fit: out of memory");
    for (int i = 0; i < n; i++)
        e[i] = pgd_sim_curve_gemm(out, hw, p[i].m, p[i].k, p[i].n, p[i].w, p[i].a) / p[i].t - 1;
    out->err = pgd_sim_err_stats(e, n);
    free(e);
    return PGD_OK;
}

/* ------------------------------------------------ non-negative least squares */

#define LS_MAX 5
/* x >= 0 minimising sum_i w_i (x . f_i / t_i - 1)^2 (f rows of d <= LS_MAX
 * features, w = NULL: all 1) by cyclic coordinate descent on the normal
 * equations of the column-scaled problem. */
static void nnls(const double *f, int d, const double *t, const double *w, int n, double *x) {
    double A[LS_MAX][LS_MAX] = {{0}}, b[LS_MAX] = {0}, sc[LS_MAX];
    for (int j = 0; j < d; j++) {
        double s = 0;
        for (int i = 0; i < n; i++) s += (w ? w[i] : 1) * (f[i * d + j] / t[i]) * (f[i * d + j] / t[i]);
        sc[j] = s > 0 ? sqrt(s) : 1;
    }
    for (int i = 0; i < n; i++) {
        double g[LS_MAX], wi = w ? w[i] : 1;
        for (int j = 0; j < d; j++) g[j] = f[i * d + j] / t[i] / sc[j];
        for (int j = 0; j < d; j++) {
            b[j] += wi * g[j];
            for (int k = 0; k < d; k++) A[j][k] += wi * g[j] * g[k];
        }
    }
    double y[LS_MAX] = {0};
    for (int it = 0; it < 100000; it++) {
        double moved = 0;
        for (int j = 0; j < d; j++) {
            if (A[j][j] <= 0) continue;
            double r = b[j];
            for (int k = 0; k < d; k++)
                if (k != j) r -= A[j][k] * y[k];
            double v = r / A[j][j];
            if (v < 0) v = 0;
            moved += fabs(v - y[j]);
            y[j] = v;
        }
        if (moved < 1e-15) break;
    }
    for (int j = 0; j < d; j++) x[j] = y[j] / sc[j];
}

/* -------------------------------------------------------------- streaming */

pgd_status pgd_sim_fit_stream(const pgd_sim_stream_point *p, int n, const pgd_sim_hw *hw,
                              pgd_sim_stream_curve *out) {
    if (n < 3) return pgd_error(PGD_ERR_INVALID, "sim fit: %d points of a streaming kernel (need at least 3)", n);
    double *f = malloc(sizeof(double) * 3 * n), *t = malloc(sizeof(double) * n), *w = malloc(sizeof(double) * n);
    if (!f || !t || !w) {
        free(f), free(t), free(w);
        return pgd_error(PGD_ERR_OOM, "sim fit: out of memory");
    }
    for (int i = 0; i < n; i++) {
        double cached = p[i].bytes < hw->l2_bytes ? p[i].bytes : hw->l2_bytes;
        f[3 * i] = 1, f[3 * i + 1] = cached, f[3 * i + 2] = p[i].bytes - cached;
        t[i] = p[i].t, w[i] = wt_of(p[i].wt);
    }
    double x[3];
    nnls(f, 3, t, w, n, x);
    /* a cost with no weight (nothing measured beyond L2, say) keeps the other's rate */
    if (x[1] <= 0) x[1] = x[2];
    if (x[2] <= 0) x[2] = x[1];
    out->t0 = x[0];
    out->eff_cache = x[1] > 0 ? 1.0 / (x[1] * hw->mem_bw) : 1e30;
    out->eff = x[2] > 0 ? 1.0 / (x[2] * hw->mem_bw) : out->eff_cache;
    for (int i = 0; i < n; i++) t[i] = pgd_sim_curve_stream(out, hw, p[i].bytes) / p[i].t - 1;
    out->err = pgd_sim_err_stats(t, n);
    free(f), free(t), free(w);
    return PGD_OK;
}

/* ------------------------------------------------------- decode attention */

pgd_status pgd_sim_fit_decode(const pgd_sim_decode_point *p, int n, const pgd_sim_hw *hw,
                              pgd_sim_decode_curve *out) {
    if (n < 8) return pgd_error(PGD_ERR_INVALID, "sim fit: %d decode attention points (need at least 8)", n);
    double *f = malloc(sizeof(double) * 5 * n), *t = malloc(sizeof(double) * n), *e = malloc(sizeof(double) * n);
    if (!f || !t || !e) {
        free(f), free(t), free(e);
        return pgd_error(PGD_ERR_OOM, "sim fit: out of memory");
    }
    double best = INFINITY;
    for (int sp = 1; sp <= 4; sp++)
        for (int rp = 1; rp <= 4; rp++) {
            for (int i = 0; i < n; i++) {
                pgd_sim_decode_features(sp, rp, hw->sms, p[i].seqs, p[i].ctx, p[i].kv_heads, p[i].head_dim,
                                        p[i].a, f + 5 * i);
                t[i] = p[i].t;
            }
            double x[5];
            nnls(f, 5, t, NULL, n, x);
            pgd_sim_decode_curve d = {.t0 = x[0], .t_split = x[1], .t_wave = x[2],
                                      .cta_bw = x[3] > 0 ? 1 / x[3] : 1e30,
                                      .eff = x[4] > 0 ? 1 / (x[4] * hw->mem_bw) : 1e30,
                                      .split_per_sm = sp, .resident_per_sm = rp};
            double loss = 0;
            for (int i = 0; i < n; i++)
                loss += sq_log(pgd_sim_curve_decode(&d, hw, p[i].seqs, p[i].ctx, p[i].kv_heads, p[i].head_dim,
                                                    p[i].a), p[i].t);
            if (loss < best * (1 - 1e-12)) best = loss, *out = d;
        }
    for (int i = 0; i < n; i++)
        e[i] = pgd_sim_curve_decode(out, hw, p[i].seqs, p[i].ctx, p[i].kv_heads, p[i].head_dim, p[i].a) / p[i].t - 1;
    out->err = pgd_sim_err_stats(e, n);
    free(f), free(t), free(e);
    return PGD_OK;
}

/* ------------------------------------------------------ prefill attention */

typedef struct prefill_ctx {
    const pgd_sim_prefill_point *p;
    int n;
    const pgd_sim_hw *hw;
} prefill_ctx;

static pgd_sim_prefill_curve prefill_of(const double *x) {
    return (pgd_sim_prefill_curve){.t0 = exp(x[0]), .eff_max = exp(x[1]), .chunk_half = exp(x[2]),
                                   .bw_eff = exp(x[3])};
}

static double prefill_time(const pgd_sim_prefill_curve *c, const pgd_sim_hw *hw, const pgd_sim_prefill_point *p) {
    double pairs = p->chunk * p->cached + p->chunk * (p->chunk + 1) / 2;
    return pgd_sim_curve_prefill(c, hw, p->chunk, 1, pairs, p->cached + p->chunk, p->heads, p->kv_heads,
                                 p->head_dim, p->a);
}

static double prefill_loss(const double *x, void *v) {
    prefill_ctx *c = v;
    pgd_sim_prefill_curve pc = prefill_of(x);
    double s = 0;
    for (int i = 0; i < c->n; i++) s += sq_log(prefill_time(&pc, c->hw, &c->p[i]), c->p[i].t);
    return s / c->n;
}

pgd_status pgd_sim_fit_prefill(const pgd_sim_prefill_point *p, int n, const pgd_sim_hw *hw,
                               pgd_sim_prefill_curve *out) {
    if (n < 6) return pgd_error(PGD_ERR_INVALID, "sim fit: %d prefill attention points (need at least 6)", n);
    prefill_ctx c = {p, n, hw};
    double x[4] = {log(1e-5), log(0.5), log(100), log(0.5)};
    nm_min(prefill_loss, &c, x, 4);
    *out = prefill_of(x);
    double *e = malloc(sizeof(double) * n);
    if (!e) return pgd_error(PGD_ERR_OOM, "sim fit: out of memory");
    for (int i = 0; i < n; i++) e[i] = prefill_time(out, hw, &p[i]) / p[i].t - 1;
    out->err = pgd_sim_err_stats(e, n);
    free(e);
    return PGD_OK;
}

/* ------------------------------------------------------------ all-reduce */

typedef struct link_ctx {
    const pgd_sim_link_point *p;
    int n, ranks, nodes;
} link_ctx;

static pgd_sim_link_curve link_of(const double *x, int ranks, int nodes) {
    return (pgd_sim_link_curve){.ranks = ranks, .nodes = nodes, .lat = exp(x[0]), .bus_bw = exp(x[1]),
                                .q = 1 + exp(x[2])};
}

static double link_time(const pgd_sim_link_curve *c, const pgd_sim_link_point *p) {
    pgd_sim_link_curves one = {.n = 1, .c = {*c}};
    return pgd_sim_curve_all_reduce(&one, p->ranks, p->nodes, p->bytes);
}

static double link_loss(const double *x, void *v) {
    link_ctx *c = v;
    pgd_sim_link_curve lc = link_of(x, c->ranks, c->nodes);
    double s = 0;
    int m = 0;
    for (int i = 0; i < c->n; i++) {
        if (c->p[i].ranks != c->ranks || c->p[i].nodes != c->nodes) continue;
        s += sq_log(link_time(&lc, &c->p[i]), c->p[i].t);
        m++;
    }
    return m ? s / m : 0;
}

pgd_status pgd_sim_fit_links(const pgd_sim_link_point *p, int n, pgd_sim_link_curves *out) {
    memset(out, 0, sizeof *out);
    double *e = malloc(sizeof(double) * (n > 0 ? n : 1));
    if (!e) return pgd_error(PGD_ERR_OOM, "sim fit: out of memory");
    for (int i = 0; i < n; i++) {
        int seen = 0;
        for (int g = 0; g < out->n; g++) seen |= out->c[g].ranks == p[i].ranks && out->c[g].nodes == p[i].nodes;
        if (seen) continue;
        if (out->n == PGD_SIM_MAX_LINKS) {
            free(e);
            return pgd_error(PGD_ERR_INVALID, "sim fit: more than %d (ranks, hosts) groups of all-reduce points",
                             PGD_SIM_MAX_LINKS);
        }
        link_ctx c = {p, n, p[i].ranks, p[i].nodes};
        int m = 0;
        for (int j = 0; j < n; j++) m += p[j].ranks == c.ranks && p[j].nodes == c.nodes;
        if (m < 3) {
            free(e);
            return pgd_error(PGD_ERR_INVALID, "sim fit: %d all-reduce points of %d ranks on %d hosts (need at "
                             "least 3)", m, c.ranks, c.nodes);
        }
        double x[3] = {log(20e-6), log(100e9), log(1.0)};
        nm_min(link_loss, &c, x, 3);
        pgd_sim_link_curve lc = link_of(x, c.ranks, c.nodes);
        m = 0;
        for (int j = 0; j < n; j++)
            if (p[j].ranks == c.ranks && p[j].nodes == c.nodes) e[m++] = link_time(&lc, &p[j]) / p[j].t - 1;
        lc.err = pgd_sim_err_stats(e, m);
        out->c[out->n++] = lc;
    }
    free(e);
    if (!out->n) return pgd_error(PGD_ERR_INVALID, "sim fit: no all-reduce points");
    /* order by hosts, then ranks (stable, readable presets) */
    for (int i = 1; i < out->n; i++)
        for (int j = i; j > 0; j--) {
            pgd_sim_link_curve *a = &out->c[j - 1], *b = &out->c[j];
            if (a->nodes < b->nodes || (a->nodes == b->nodes && a->ranks <= b->ranks)) break;
            pgd_sim_link_curve t = *a;
            *a = *b, *b = t;
        }
    return PGD_OK;
}
