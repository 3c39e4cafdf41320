/* sim_curves.c - evaluation of the fitted GPU cost curves (the model and
 * its parameters are documented in sim_curves.h). */
#include "sim_curves.h"

#include <math.h>
#include <stdlib.h>

const char *pgd_sim_stream_name(int kind) {
    static const char *const names[PGD_SIM_N_STREAM] = {"norm", "rope", "act", "add", "embed"};
    return kind >= 0 && kind < PGD_SIM_N_STREAM ? names[kind] : "?";
}

/* (x^q + y^q)^(1/q) without overflow: max * (1 + (min/max)^q)^(1/q). */
static double smooth_max(double x, double y, double q) {
    double hi = x > y ? x : y, lo = x > y ? y : x;
    if (hi <= 0) return 0;
    return hi * pow(1.0 + pow(lo / hi, q), 1.0 / q);
}

double pgd_sim_curve_gemm(const pgd_sim_gemm_curve *g, const pgd_sim_hw *hw, double m, double k, double n,
                          double w_bytes, double a_bytes) {
    double tc = 2.0 * m * k * n / (hw->peak_flops * g->mm_eff);
    double tm = (k * n * w_bytes + m * (k + n) * a_bytes) / (hw->mem_bw * g->bw_eff);
    return g->t0 + smooth_max(tc, tm, g->q);
}

double pgd_sim_curve_stream(const pgd_sim_stream_curve *s, const pgd_sim_hw *hw, double bytes) {
    double cached = bytes < hw->l2_bytes ? bytes : hw->l2_bytes;
    return s->t0 + cached / (hw->mem_bw * s->eff_cache) + (bytes - cached) / (hw->mem_bw * s->eff);
}

/* The decode curve's features; the time is their dot product with
 * (t0, t_split, t_wave, 1 / cta_bw, 1 / (BW eff)). */
void pgd_sim_decode_features(int split_per_sm, int resident_per_sm, int sms, double seqs, double ctx,
                             int kv_heads, int head_dim, double a_bytes, double f[5]);
void pgd_sim_decode_features(int split_per_sm, int resident_per_sm, int sms, double seqs, double ctx,
                             int kv_heads, int head_dim, double a_bytes, double f[5]) {
    double kvh = kv_heads > 0 ? kv_heads : 1, b = seqs > 1 ? seqs : 1;
    double per_seq = floor((double)sms * split_per_sm / kvh); /* CTAs a sequence may get */
    double s = floor(per_seq / b);
    if (s < 1) s = 1;
    double ctas = b * kvh * s;
    double waves = ceil(ctas / ((double)sms * resident_per_sm));
    double bytes_cta = ceil(ctx / s) * head_dim * 2.0 * a_bytes;
    f[0] = 1;
    f[1] = s > 1;
    f[2] = waves;
    f[3] = waves * bytes_cta;
    f[4] = b * ctx * kvh * head_dim * 2.0 * a_bytes;
}

double pgd_sim_curve_decode(const pgd_sim_decode_curve *d, const pgd_sim_hw *hw, double seqs, double ctx,
                            int kv_heads, int head_dim, double a_bytes) {
    double f[5];
    pgd_sim_decode_features(d->split_per_sm, d->resident_per_sm, hw->sms, seqs, ctx, kv_heads, head_dim,
                            a_bytes, f);
    return d->t0 * f[0] + d->t_split * f[1] + d->t_wave * f[2] + f[3] / d->cta_bw + f[4] / (hw->mem_bw * d->eff);
}

double pgd_sim_curve_prefill(const pgd_sim_prefill_curve *p, const pgd_sim_hw *hw, double tokens, double seqs,
                             double pairs, double kv_tokens, int heads, int kv_heads, int head_dim, double a_bytes) {
    double c = seqs > 0 ? tokens / seqs : tokens;
    double eff = p->eff_max * c / (c + p->chunk_half);
    double tc = 4.0 * heads * head_dim * pairs / (hw->peak_flops * eff);
    double tm = kv_tokens * kv_heads * head_dim * 2.0 * a_bytes / (hw->mem_bw * p->bw_eff);
    return p->t0 + (tc > tm ? tc : tm);
}

double pgd_sim_curve_all_reduce(const pgd_sim_link_curves *l, int ranks, int nodes, double bytes) {
    if (ranks <= 1) return 0;
    const pgd_sim_link_curve *best = NULL;
    for (int i = 0; l && i < l->n; i++) {
        const pgd_sim_link_curve *c = &l->c[i];
        if (c->nodes != nodes) continue;
        if (!best || abs(c->ranks - ranks) < abs(best->ranks - ranks) ||
            (abs(c->ranks - ranks) == abs(best->ranks - ranks) && c->ranks > best->ranks))
            best = c;
    }
    if (!best) return -1;
    double ring = 2.0 * (ranks - 1) / ranks * bytes / best->bus_bw;
    return smooth_max(best->lat, ring, best->q);
}
