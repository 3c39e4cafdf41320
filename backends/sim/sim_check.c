/* sim_check.c - predictions of measured rows, whole steps and fits (the
 * mapping from the measured system's ops to ours: sim_check.h). */
#include "sim_check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* the ops of one layer in a step (emb runs once per step, not per layer) */
static const char *const layer_ops[] = {"input_layernorm", "attn_pre_proj", "attn_rope", "attn_post_proj",
                                        "post_attention_layernorm", "mlp_up_proj", "mlp_act", "mlp_down_proj",
                                        "add", NULL};

pgd_status pgd_sim_check_model(const pgd_vidur *v, const pgd_model_config *m) {
    const pgd_vidur_model *f = &v->model;
    if (!f->dim) return PGD_OK; /* no MLP file: nothing states the dimensions */
    if (f->dim != m->dim || f->heads != m->n_heads || f->kv_heads != m->n_kv_heads || f->hidden != m->hidden_dim ||
        f->vocab != m->vocab_size)
        return pgd_error(PGD_ERR_INVALID, "the MLP file measures a model of dim %d, %d/%d heads, hidden %d, vocab %d; "
                         "--model %s has dim %d, %d/%d heads, hidden %d, vocab %d", f->dim, f->heads, f->kv_heads,
                         f->hidden, f->vocab, m->name, m->dim, m->n_heads, m->n_kv_heads, m->hidden_dim,
                         m->vocab_size);
    return PGD_OK;
}

static int gated(const pgd_model_config *m) { return m->arch != PGD_ARCH_OPT; }

double pgd_sim_check_predict(const pgd_sim_cost *c, const pgd_model_config *m, const pgd_vidur_row *r) {
    int tp = r->tp > 0 ? r->tp : 1, hd = m->head_dim, n = (int)r->a;
    int h = m->n_heads / tp, kvh = m->n_kv_heads / tp, hid = m->hidden_dim / tp;
    switch (r->kind) {
    case PGD_VIDUR_MLP:
        if (!strcmp(r->op, "attn_pre_proj")) return pgd_sim_cost_matmul(c, n, m->dim, (h + 2 * kvh) * hd, PGD_BF16);
        if (!strcmp(r->op, "attn_post_proj")) return pgd_sim_cost_matmul(c, n, h * hd, m->dim, PGD_BF16);
        if (!strcmp(r->op, "mlp_up_proj")) return pgd_sim_cost_matmul(c, n, m->dim, (gated(m) ? 2 : 1) * hid, PGD_BF16);
        if (!strcmp(r->op, "mlp_down_proj")) return pgd_sim_cost_matmul(c, n, hid, m->dim, PGD_BF16);
        if (!strcmp(r->op, "input_layernorm") || !strcmp(r->op, "post_attention_layernorm"))
            return pgd_sim_cost_rmsnorm(c, n, m->dim);
        if (!strcmp(r->op, "attn_rope")) return pgd_sim_cost_rope(c, n, h, kvh, hd);
        if (!strcmp(r->op, "mlp_act")) return pgd_sim_cost_silu_mul(c, (size_t)n * hid);
        if (!strcmp(r->op, "add")) return pgd_sim_cost_add(c, (size_t)n * m->dim);
        if (!strcmp(r->op, "emb")) return pgd_sim_cost_embedding(c, n, m->dim, PGD_BF16);
        return -1;
    case PGD_VIDUR_DECODE: {
        int32_t *qs = malloc(sizeof(int32_t) * (size_t)(n + 1)), *lens = malloc(sizeof(int32_t) * (size_t)n);
        double t = -1;
        if (qs && lens) {
            for (int s = 0; s <= n; s++) qs[s] = s;
            for (int s = 0; s < n; s++) lens[s] = r->b > 1 ? (int32_t)r->b : 1;
            t = pgd_sim_cost_attention(c, qs, lens, n, h, kvh, hd);
        }
        free(qs), free(lens);
        return t;
    }
    case PGD_VIDUR_PREFILL: {
        int32_t qs[2] = {0, n}, lens[1] = {(int32_t)(r->a + r->b)};
        return pgd_sim_cost_attention(c, qs, lens, 1, h, kvh, hd);
    }
    case PGD_VIDUR_ALL_REDUCE:
        return pgd_sim_cost_all_reduce(c, r->ranks, r->nodes, r->a);
    }
    return -1;
}

/* ---------------------------------------------------------------- fitting */

static int stream_kind(const char *op) {
    if (!strcmp(op, "input_layernorm") || !strcmp(op, "post_attention_layernorm")) return PGD_SIM_NORM;
    if (!strcmp(op, "attn_rope")) return PGD_SIM_ROPE;
    if (!strcmp(op, "mlp_act")) return PGD_SIM_ACT;
    if (!strcmp(op, "add")) return PGD_SIM_ADD;
    if (!strcmp(op, "emb")) return PGD_SIM_EMBED;
    return -1;
}

/* Bytes a streaming op moves, as sim_cost.c counts them (activations and
 * weights of 2 bytes: the measured system ran fp16/bf16). */
static double stream_bytes(int kind, const pgd_model_config *m, int tp, double tokens) {
    double hd = m->head_dim;
    switch (kind) {
    case PGD_SIM_NORM: return 2.0 * tokens * m->dim * 2;
    case PGD_SIM_ROPE: return 2.0 * tokens * (double)(m->n_heads + m->n_kv_heads) / tp * hd * 2;
    case PGD_SIM_ACT: return 3.0 * tokens * (double)m->hidden_dim / tp * 2;
    case PGD_SIM_ADD: return 3.0 * tokens * m->dim * 2;
    default: return tokens * m->dim * (2.0 + 2.0);
    }
}

/* Weights giving each octave of token counts (floor(log2 tokens)) the same
 * total weight among the n points whose token counts are x[i]. */
static void octave_weights(const double *x, int n, double *w) {
    int count[64] = {0};
    for (int i = 0; i < n; i++) count[(int)floor(log2(x[i] >= 1 ? x[i] : 1)) & 63]++;
    for (int i = 0; i < n; i++) w[i] = 1.0 / count[(int)floor(log2(x[i] >= 1 ? x[i] : 1)) & 63];
}

pgd_status pgd_sim_check_fit(const pgd_vidur *v, const pgd_model_config *m, const pgd_sim_hw *hw,
                             pgd_vidur_filter keep, void *ctx, pgd_sim_kernel_curves *kc, pgd_sim_link_curves *lc,
                             int *have_links) {
    int n = v->n;
    pgd_sim_gemm_point *gp = malloc(sizeof *gp * (size_t)(n + 1));
    pgd_sim_stream_point *sp = malloc(sizeof *sp * (size_t)(n + 1));
    pgd_sim_decode_point *dp = malloc(sizeof *dp * (size_t)(n + 1));
    pgd_sim_prefill_point *pp = malloc(sizeof *pp * (size_t)(n + 1));
    pgd_sim_link_point *lp = malloc(sizeof *lp * (size_t)(n + 1));
    double *xs = calloc((size_t)(n + 1), sizeof(double)), *ws = calloc((size_t)(n + 1), sizeof(double));
    pgd_status st = PGD_OK;
    if (!gp || !sp || !dp || !pp || !lp || !xs || !ws) {
        st = pgd_error(PGD_ERR_OOM, "sim fit: out of memory");
        goto done;
    }
    memset(kc, 0, sizeof *kc);
    *have_links = 0;
    int ng = 0, nd = 0, npf = 0, nl = 0;
    for (int i = 0; i < n; i++) {
        const pgd_vidur_row *r = &v->rows[i];
        if (keep && !keep(r, ctx)) continue;
        int tp = r->tp > 0 ? r->tp : 1, hd = m->head_dim;
        int h = m->n_heads / tp, kvh = m->n_kv_heads / tp, hid = m->hidden_dim / tp;
        if (r->kind == PGD_VIDUR_MLP) {
            double K = 0, N = 0;
            if (!strcmp(r->op, "attn_pre_proj")) K = m->dim, N = (double)(h + 2 * kvh) * hd;
            else if (!strcmp(r->op, "attn_post_proj")) K = (double)h * hd, N = m->dim;
            else if (!strcmp(r->op, "mlp_up_proj")) K = m->dim, N = (gated(m) ? 2.0 : 1.0) * hid;
            else if (!strcmp(r->op, "mlp_down_proj")) K = hid, N = m->dim;
            if (K > 0) gp[ng++] = (pgd_sim_gemm_point){.m = r->a, .k = K, .n = N, .w = 2, .a = 2, .t = r->seconds};
        } else if (r->kind == PGD_VIDUR_DECODE) {
            dp[nd++] = (pgd_sim_decode_point){.seqs = r->a, .ctx = r->b > 1 ? r->b : 1, .t = r->seconds,
                                              .kv_heads = kvh, .head_dim = hd, .a = 2};
        } else if (r->kind == PGD_VIDUR_PREFILL) {
            pp[npf++] = (pgd_sim_prefill_point){.chunk = r->a, .cached = r->b, .t = r->seconds, .heads = h,
                                                .kv_heads = kvh, .head_dim = hd, .a = 2};
        } else if (r->kind == PGD_VIDUR_ALL_REDUCE) {
            lp[nl++] = (pgd_sim_link_point){.ranks = r->ranks, .nodes = r->nodes, .bytes = r->a, .t = r->seconds};
        }
    }
    for (int i = 0; i < ng; i++) xs[i] = gp[i].m;
    octave_weights(xs, ng, ws);
    for (int i = 0; i < ng; i++) gp[i].wt = ws[i];
    if ((st = pgd_sim_fit_gemm(gp, ng, hw, &kc->gemm))) goto done;
    for (int k = 0; k < PGD_SIM_N_STREAM; k++) {
        int ns = 0;
        for (int i = 0; i < n; i++) {
            const pgd_vidur_row *r = &v->rows[i];
            if (r->kind != PGD_VIDUR_MLP || stream_kind(r->op) != k || (keep && !keep(r, ctx))) continue;
            xs[ns] = r->a;
            sp[ns++] = (pgd_sim_stream_point){.bytes = stream_bytes(k, m, r->tp > 0 ? r->tp : 1, r->a),
                                              .t = r->seconds};
        }
        octave_weights(xs, ns, ws);
        for (int i = 0; i < ns; i++) sp[i].wt = ws[i];
        if ((st = pgd_sim_fit_stream(sp, ns, hw, &kc->stream[k]))) goto done;
    }
    if ((st = pgd_sim_fit_decode(dp, nd, hw, &kc->decode))) goto done;
    if ((st = pgd_sim_fit_prefill(pp, npf, hw, &kc->prefill))) goto done;
    if (nl) {
        if ((st = pgd_sim_fit_links(lp, nl, lc))) goto done;
        *have_links = 1;
    }
done:
    free(gp), free(sp), free(dp), free(pp), free(lp), free(xs), free(ws);
    return st;
}

/* ------------------------------------------------------------------ steps */

/* Measured time of an MLP op at (tp, tokens), interpolated between the
 * nearest measured token counts (several rows at one count: their mean). */
static int mlp_measured(const pgd_vidur *v, const char *op, int tp, double tokens, double *out) {
    double lo = -1, hi = -1, slo = 0, shi = 0, sx = 0;
    int nlo = 0, nhi = 0, nx = 0;
    for (int i = 0; i < v->n; i++) {
        const pgd_vidur_row *r = &v->rows[i];
        if (r->kind != PGD_VIDUR_MLP || r->tp != tp || strcmp(r->op, op)) continue;
        if (r->a == tokens) {
            sx += r->seconds, nx++;
        } else if (r->a < tokens) {
            if (r->a > lo) lo = r->a, slo = 0, nlo = 0;
            if (r->a == lo) slo += r->seconds, nlo++;
        } else {
            if (hi < 0 || r->a < hi) hi = r->a, shi = 0, nhi = 0;
            if (r->a == hi) shi += r->seconds, nhi++;
        }
    }
    if (nx) {
        *out = sx / nx;
        return 1;
    }
    if (!nlo || !nhi) return 0;
    double w = (tokens - lo) / (hi - lo);
    *out = slo / nlo * (1 - w) + shi / nhi * w;
    return 1;
}

/* Measured all-reduce of `bytes` over ranks on one host, interpolated in size. */
static int ar_measured(const pgd_vidur *v, int ranks, double bytes, double *out) {
    double lo = -1, hi = -1, slo = 0, shi = 0, sx = 0;
    int nlo = 0, nhi = 0, nx = 0;
    for (int i = 0; i < v->n; i++) {
        const pgd_vidur_row *r = &v->rows[i];
        if (r->kind != PGD_VIDUR_ALL_REDUCE || r->ranks != ranks || r->nodes != 1) continue;
        if (r->a == bytes) sx += r->seconds, nx++;
        else if (r->a < bytes) {
            if (r->a > lo) lo = r->a, slo = 0, nlo = 0;
            if (r->a == lo) slo += r->seconds, nlo++;
        } else {
            if (hi < 0 || r->a < hi) hi = r->a, shi = 0, nhi = 0;
            if (r->a == hi) shi += r->seconds, nhi++;
        }
    }
    if (nx) *out = sx / nx;
    else if (nlo && nhi) *out = slo / nlo + (shi / nhi - slo / nlo) * (bytes - lo) / (hi - lo);
    else if (nlo) *out = slo / nlo; /* beyond the measured sizes: the nearest (small messages are latency) */
    else if (nhi) *out = shi / nhi;
    else return 0;
    return 1;
}

static int have_all_reduce(const pgd_vidur *v, int ranks) {
    for (int i = 0; i < v->n; i++)
        if (v->rows[i].kind == PGD_VIDUR_ALL_REDUCE && v->rows[i].ranks == ranks && v->rows[i].nodes == 1) return 1;
    return 0;
}

/* One layer without attention at (tp, tokens): measured and predicted. */
static int dense(const pgd_vidur *v, const pgd_model_config *m, const pgd_sim_cost *c, int tp, double tokens,
                 int with_ar, double *meas, double *pred) {
    *meas = *pred = 0;
    for (int k = 0; layer_ops[k]; k++) {
        double t;
        if (!mlp_measured(v, layer_ops[k], tp, tokens, &t)) return 0;
        pgd_vidur_row r = {.kind = PGD_VIDUR_MLP, .tp = tp, .a = tokens};
        strcpy(r.op, layer_ops[k]);
        *meas += t;
        *pred += pgd_sim_check_predict(c, m, &r);
    }
    if (tp > 1 && with_ar) {
        double bytes = tokens * m->dim * 2.0, t;
        pgd_vidur_row r = {.kind = PGD_VIDUR_ALL_REDUCE, .ranks = tp, .nodes = 1, .a = bytes};
        double p = pgd_sim_check_predict(c, m, &r);
        if (p < 0 || !ar_measured(v, tp, bytes, &t)) return 0;
        *meas += 2 * t;
        *pred += 2 * p;
    }
    return 1;
}

static pgd_status push_step(pgd_sim_step **s, int *n, int *cap, pgd_sim_step st) {
    if (*n == *cap) {
        int c2 = *cap ? 2 * *cap : 256;
        pgd_sim_step *p = realloc(*s, sizeof *p * (size_t)c2);
        if (!p) return pgd_error(PGD_ERR_OOM, "sim check: out of memory");
        *s = p, *cap = c2;
    }
    (*s)[(*n)++] = st;
    return PGD_OK;
}

pgd_status pgd_sim_check_steps(const pgd_vidur *v, const pgd_model_config *m, const pgd_sim_cost *c, int kind,
                               int tp, pgd_vidur_filter keep, void *ctx, pgd_sim_step **out, int *n) {
    *out = NULL;
    *n = 0;
    int cap = 0;
    if (kind == PGD_STEP_DENSE || kind == PGD_STEP_DENSE_AR) {
        if (kind == PGD_STEP_DENSE_AR && !have_all_reduce(v, tp)) return PGD_OK;
        /* the distinct measured token counts <= 256 */
        double seen[1024];
        int ns = 0;
        for (int i = 0; i < v->n; i++) {
            const pgd_vidur_row *r = &v->rows[i];
            if (r->kind != PGD_VIDUR_MLP || r->tp != tp || r->a > 256 || strcmp(r->op, "attn_pre_proj")) continue;
            if (keep && !keep(r, ctx)) continue;
            int dup = 0;
            for (int j = 0; j < ns && !dup; j++) dup = seen[j] == r->a;
            if (dup || ns == 1024) continue;
            seen[ns++] = r->a;
            double meas, pred;
            if (!dense(v, m, c, tp, r->a, kind == PGD_STEP_DENSE_AR, &meas, &pred)) continue;
            PGD_TRY(push_step(out, n, &cap, (pgd_sim_step){.kind = kind, .tp = tp, .a = r->a, .measured = meas,
                                                           .predicted = pred}));
        }
        return PGD_OK;
    }
    for (int i = 0; i < v->n; i++) {
        const pgd_vidur_row *r = &v->rows[i];
        if (r->tp != tp || (keep && !keep(r, ctx))) continue;
        if (kind == PGD_STEP_DECODE && (r->kind != PGD_VIDUR_DECODE || r->b < 128 || r->b > 4096 || r->a > 256))
            continue;
        if (kind == PGD_STEP_PREFILL && (r->kind != PGD_VIDUR_PREFILL || r->a < 64 || r->a > 4096)) continue;
        double meas, pred;
        if (!dense(v, m, c, tp, r->a, tp > 1 && have_all_reduce(v, tp), &meas, &pred)) continue;
        double pa = pgd_sim_check_predict(c, m, r);
        if (pa < 0) continue;
        PGD_TRY(push_step(out, n, &cap, (pgd_sim_step){.kind = kind, .tp = tp, .a = r->a, .b = r->b,
                                                       .measured = meas + r->seconds, .predicted = pred + pa}));
    }
    return PGD_OK;
}

pgd_sim_fit_err pgd_sim_check_step_err(const pgd_sim_step *s, int n) {
    double *e = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    pgd_sim_fit_err r = {0};
    if (!e) return r;
    for (int i = 0; i < n; i++) e[i] = s[i].predicted / s[i].measured - 1;
    r = pgd_sim_err_stats(e, n);
    free(e);
    return r;
}
