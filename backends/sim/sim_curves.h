/* sim_curves.h - the simulator's GPU cost curves: kernel times as functions
 * of an op's shapes, with parameters FITTED to measured GPU times (Vidur's
 * published A100/H100 profiles, ../shared/data/vidur-profiling), not
 * datasheet rooflines with guessed efficiencies. The device presets
 * (sim_cost.c) carry one set of curves each; sim_cost.c uses them for every
 * op that a calibration table does not cover.
 *
 * THE CURVES (P = peak dense fp16/bf16 FLOP/s, BW = memory bandwidth and
 * SMS = multiprocessors, all of the device preset; a = bytes per activation,
 * w = bytes per weight element; times in seconds):
 *   GEMM (M tokens, K in, N out)     t0 + (tc^q + tm^q)^(1/q),
 *       tc = 2 M K N / (P mm_eff),  tm = (K N w + M (K + N) a) / (BW bw_eff):
 *       a fixed cost and a smooth maximum of the compute and the memory
 *       time (q = 1: their sum; q -> inf: the roofline's max); measured
 *       GEMMs of 65-512 tokens reach ~0.45 of both limits, which a max()
 *       cannot express.
 *   streaming kernels (norm, rope, activation, residual add, embedding)
 *       t0 + min(bytes, L2) / (BW eff_cache) + max(bytes - L2, 0) / (BW eff),
 *       one (t0, eff_cache, eff) per kind, L2 = the device's L2 cache size;
 *       bytes as the roofline counts them (sim_cost.h): a working set that
 *       fits in L2 (what the previous kernel just wrote) streams faster
 *       than one from device memory.
 *   decode attention (B sequences, mean context L, kvh KV heads of hd)
 *       One CTA per (sequence, KV head, split); the KV of a sequence is split
 *       s = max(1, floor(SMS split_per_sm / kvh / B)) ways when the batch is
 *       too small to fill the GPU, and the CTAs run in waves of
 *       SMS resident_per_sm:
 *         t = t0 + t_split [s > 1] + waves (t_wave + bytes_cta / cta_bw)
 *             + B L kvh hd 2 a / (BW eff),
 *       bytes_cta = ceil(L / s) hd 2 a: per-wave latency (each CTA streams
 *       its keys and values at cta_bw at best) plus the bandwidth time of
 *       the whole cache read. Fitted by non-negative least squares on the
 *       relative error, split_per_sm and resident_per_sm by search.
 *   prefill attention (c new tokens of a sequence after b cached)
 *       t0 + max(F / (P eff_max c / (c + chunk_half)), (b + c) kvh hd 2 a / (BW bw_eff)),
 *       F = 4 heads hd (c b + c (c + 1) / 2) (causal pairs): the matrix
 *       units' share grows with the chunk (small chunks leave them idle).
 *   all-reduce (n ranks on `nodes` hosts, S bytes)
 *       (lat^q + (2 (n - 1) / n S / bus_bw)^q)^(1/q) per measured (n, nodes);
 *       other rank counts take the nearest measured one of the same host
 *       count (bus bandwidth and latency are nearly flat in n on NVLink).
 * Fits weight each octave of token counts alike (a profile samples large
 * batches more densely than the decode sizes that matter as much). Fit
 * errors (median and p90 of |predicted / measured - 1| over the points
 * fitted) are kept with the parameters; `pagoda sim-check --fit` refits and
 * prints them; backends/sim/sim_presets.c documents the shipped ones.
 *
 * Every function here is pure: same device, same shapes, same time. */
#ifndef PAGODA_SIM_CURVES_H
#define PAGODA_SIM_CURVES_H

#include "pagoda/status.h"

enum pgd_sim_stream_kind {
    PGD_SIM_NORM,  /* rmsnorm / layernorm: 2 n dim a */
    PGD_SIM_ROPE,  /* rotary embedding of q and k: 2 n (heads + kv_heads) hd a */
    PGD_SIM_ACT,   /* silu(gate) * up: 3 n hidden a */
    PGD_SIM_ADD,   /* residual add: 3 n dim a (also kv_write, gather, block copies) */
    PGD_SIM_EMBED, /* embedding gather: n dim (w + a) */
    PGD_SIM_N_STREAM
};
const char *pgd_sim_stream_name(int kind);

typedef struct pgd_sim_fit_err {
    int n;           /* points fitted (0: not fitted, scaled or assumed) */
    double median;   /* median |predicted / measured - 1| */
    double p90;      /* 90th percentile of the same */
} pgd_sim_fit_err;

typedef struct pgd_sim_gemm_curve {
    double t0, mm_eff, bw_eff, q;
    pgd_sim_fit_err err;
} pgd_sim_gemm_curve;

typedef struct pgd_sim_stream_curve {
    double t0, eff_cache, eff;
    pgd_sim_fit_err err;
} pgd_sim_stream_curve;

typedef struct pgd_sim_decode_curve {
    double t0, t_split, t_wave, cta_bw, eff;
    int split_per_sm, resident_per_sm;
    pgd_sim_fit_err err;
} pgd_sim_decode_curve;

typedef struct pgd_sim_prefill_curve {
    double t0, eff_max, chunk_half, bw_eff;
    pgd_sim_fit_err err;
} pgd_sim_prefill_curve;

#define PGD_SIM_MAX_LINKS 8
typedef struct pgd_sim_link_curve {
    int ranks, nodes;
    double lat, bus_bw, q;
    pgd_sim_fit_err err;
} pgd_sim_link_curve;

/* The kernels of one device family (compute and memory efficiencies are
 * shares of the preset's own P and BW, so one fit serves several presets). */
typedef struct pgd_sim_kernel_curves {
    const char *source;  /* what the curves were fitted to */
    pgd_sim_gemm_curve gemm;
    pgd_sim_stream_curve stream[PGD_SIM_N_STREAM];
    pgd_sim_decode_curve decode;
    pgd_sim_prefill_curve prefill;
} pgd_sim_kernel_curves;

/* The all-reduce curves of one interconnect. */
typedef struct pgd_sim_link_curves {
    const char *source;
    int n;
    pgd_sim_link_curve c[PGD_SIM_MAX_LINKS];
} pgd_sim_link_curves;

/* The device numbers the curves scale with. */
typedef struct pgd_sim_hw {
    double peak_flops, mem_bw, l2_bytes;
    int sms;
} pgd_sim_hw;

double pgd_sim_curve_gemm(const pgd_sim_gemm_curve *g, const pgd_sim_hw *hw, double m, double k, double n,
                          double w_bytes, double a_bytes);
double pgd_sim_curve_stream(const pgd_sim_stream_curve *s, const pgd_sim_hw *hw, double bytes);
/* Decode attention of `seqs` sequences of mean context `ctx`. */
double pgd_sim_curve_decode(const pgd_sim_decode_curve *d, const pgd_sim_hw *hw, double seqs, double ctx,
                            int kv_heads, int head_dim, double a_bytes);
/* Prefill attention: `tokens` new tokens in `seqs` sequences with `pairs`
 * causal (query, key) pairs in all and `kv_tokens` cached + new positions. */
double pgd_sim_curve_prefill(const pgd_sim_prefill_curve *p, const pgd_sim_hw *hw, double tokens, double seqs,
                             double pairs, double kv_tokens, int heads, int kv_heads, int head_dim, double a_bytes);
/* All-reduce of `bytes` over `ranks` ranks on `nodes` hosts; a negative
 * value when the curves have no entry for that host count. */
double pgd_sim_curve_all_reduce(const pgd_sim_link_curves *l, int ranks, int nodes, double bytes);

/* ---- fitting (sim_fit.c) ---- */

/* One measured GEMM: M tokens, K in, N out, weight and activation bytes. */
/* wt: the point's weight in the fit (0 counts as 1). */
typedef struct pgd_sim_gemm_point {
    double m, k, n, w, a, t, wt;
} pgd_sim_gemm_point;
typedef struct pgd_sim_stream_point {
    double bytes, t, wt;
} pgd_sim_stream_point;
typedef struct pgd_sim_decode_point {
    double seqs, ctx, t;
    int kv_heads, head_dim;
    double a;
} pgd_sim_decode_point;
typedef struct pgd_sim_prefill_point {
    double chunk, cached, t;
    int heads, kv_heads, head_dim;
    double a;
} pgd_sim_prefill_point;
typedef struct pgd_sim_link_point {
    int ranks, nodes;
    double bytes, t;
} pgd_sim_link_point;

/* Least squares on log(predicted / measured) (relative error); each sets
 * the curve and its err. PGD_ERR_INVALID when there are too few points. */
pgd_status pgd_sim_fit_gemm(const pgd_sim_gemm_point *p, int n, const pgd_sim_hw *hw, pgd_sim_gemm_curve *out);
pgd_status pgd_sim_fit_stream(const pgd_sim_stream_point *p, int n, const pgd_sim_hw *hw,
                              pgd_sim_stream_curve *out);
pgd_status pgd_sim_fit_decode(const pgd_sim_decode_point *p, int n, const pgd_sim_hw *hw,
                              pgd_sim_decode_curve *out);
pgd_status pgd_sim_fit_prefill(const pgd_sim_prefill_point *p, int n, const pgd_sim_hw *hw,
                               pgd_sim_prefill_curve *out);
/* One curve per (ranks, nodes) group present in the points (at most
 * PGD_SIM_MAX_LINKS groups). */
pgd_status pgd_sim_fit_links(const pgd_sim_link_point *p, int n, pgd_sim_link_curves *out);

/* Median and 90th percentile of |e| over e[0..n-1] (reorders e). */
pgd_sim_fit_err pgd_sim_err_stats(double *e, int n);

#endif
