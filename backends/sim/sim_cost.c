/* sim_cost.c - the per-op cost functions of the simulator: a calibration
 * table's row, else the device's fitted curves, else the roofline (the
 * model: sim_cost.h; the curves: sim_curves.h; the presets and where their
 * numbers come from: sim_presets.c). */
#include "sim_cost.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <strings.h>

double pgd_sim_cost_roofline(const pgd_sim_cost *c, double flops, double bytes, double eff_bw) {
    double tc = flops / (c->dev.peak_flops * c->dev.mm_eff), tm = bytes / (c->dev.mem_bw * eff_bw);
    return c->dev.launch + (tc > tm ? tc : tm);
}

static double rl(const pgd_sim_cost *c, double flops, double bytes) {
    return pgd_sim_cost_roofline(c, flops, bytes, c->dev.bw_eff);
}

static int tab(const pgd_sim_cost *c, const char *op, long k1, long k2, long k3, double x, double *t) {
    return c->table && pgd_sim_table_lookup(c->table, op, k1, k2, k3, x, 0, t);
}

static pgd_sim_hw hw_of(const pgd_sim_cost *c) {
    return (pgd_sim_hw){.peak_flops = c->dev.peak_flops, .mem_bw = c->dev.mem_bw, .l2_bytes = c->dev.l2_bytes,
                        .sms = c->dev.sms};
}

/* A streaming op of `bytes` (and `flops` for the roofline): its curve when
 * the device has curves, else the roofline. */
static double stream(const pgd_sim_cost *c, int kind, double flops, double bytes) {
    if (c->dev.kernels) {
        pgd_sim_hw hw = hw_of(c);
        return pgd_sim_curve_stream(&c->dev.kernels->stream[kind], &hw, bytes);
    }
    return rl(c, flops, bytes);
}

double pgd_sim_cost_matmul(const pgd_sim_cost *c, int n, int in, int out, pgd_dtype wt) {
    int o = out / c->tp > 0 ? out / c->tp : 1;
    double t, e = c->dev.act_bytes, w = pgd_dtype_elem_bytes(wt);
    if (tab(c, "matmul", in, o, (long)wt, n, &t)) return t;
    if (c->dev.kernels) {
        pgd_sim_hw hw = hw_of(c);
        return pgd_sim_curve_gemm(&c->dev.kernels->gemm, &hw, n, in, o, w, e);
    }
    return rl(c, 2.0 * n * in * o, (double)in * o * w + (double)n * (in + o) * e);
}

double pgd_sim_cost_embedding(const pgd_sim_cost *c, int n, int dim, pgd_dtype tt) {
    double t;
    if (tab(c, "embedding", dim, (long)tt, 0, n, &t)) return t;
    return stream(c, PGD_SIM_EMBED, 0, (double)n * dim * (pgd_dtype_elem_bytes(tt) + c->dev.act_bytes));
}

double pgd_sim_cost_rmsnorm(const pgd_sim_cost *c, int n, int dim) {
    double t;
    if (tab(c, "rmsnorm", dim, 0, 0, n, &t)) return t;
    return stream(c, PGD_SIM_NORM, 4.0 * n * dim, 2.0 * n * dim * c->dev.act_bytes);
}

double pgd_sim_cost_rope(const pgd_sim_cost *c, int n, int heads, int kv_heads, int head_dim) {
    double t, h = (double)(heads + kv_heads) / c->tp;
    if (tab(c, "rope", heads, kv_heads, head_dim, n, &t)) return t;
    return stream(c, PGD_SIM_ROPE, 3.0 * n * h * head_dim, 2.0 * n * h * head_dim * c->dev.act_bytes);
}

double pgd_sim_cost_silu_mul(const pgd_sim_cost *c, size_t n) {
    double t, m = (double)n / c->tp;
    if (tab(c, "silu_mul", 0, 0, 0, m, &t)) return t;
    return stream(c, PGD_SIM_ACT, 5.0 * m, 3.0 * m * c->dev.act_bytes);
}

double pgd_sim_cost_all_reduce(const pgd_sim_cost *c, int ranks, int nodes, double bytes) {
    if (ranks <= 1) return 0;
    double t;
    if (c->table && pgd_sim_table_lookup(c->table, "all_reduce", ranks, nodes, 0, bytes, 0, &t)) return t;
    if (c->dev.links && (t = pgd_sim_curve_all_reduce(c->dev.links, ranks, nodes, bytes)) >= 0) return t;
    return 2.0 * (ranks - 1) * c->dev.link_lat + 2.0 * (ranks - 1) / ranks * bytes / c->dev.link_bw;
}

double pgd_sim_cost_all_gather(const pgd_sim_cost *c, int ranks, double bytes_total) {
    if (ranks <= 1) return 0;
    const pgd_sim_link_curve *best = NULL;
    for (int i = 0; c->dev.links && i < c->dev.links->n; i++) {
        const pgd_sim_link_curve *l = &c->dev.links->c[i];
        if (l->nodes == 1 && (!best || abs(l->ranks - ranks) < abs(best->ranks - ranks))) best = l;
    }
    double share = (double)(ranks - 1) / ranks * bytes_total;
    if (best) { /* half an all-reduce's traffic at the same bus bandwidth and latency */
        double ring = share / best->bus_bw, hi = ring > best->lat ? ring : best->lat,
               lo = ring > best->lat ? best->lat : ring;
        return hi * pow(1.0 + pow(lo / hi, best->q), 1.0 / best->q);
    }
    return (ranks - 1) * c->dev.link_lat + share / c->dev.link_bw;
}

double pgd_sim_cost_send(const pgd_sim_cost *c, double bytes) {
    if (bytes <= 0) return 0;
    return pgd_sim_cost_all_gather(c, 2, 2.0 * bytes); /* each of 2 ranks receives `bytes` */
}

double pgd_sim_cost_add(const pgd_sim_cost *c, size_t n) {
    double t, bytes = (double)n * c->dev.act_bytes;
    if (!tab(c, "add", 0, 0, 0, (double)n, &t)) t = stream(c, PGD_SIM_ADD, (double)n, 3.0 * bytes);
    /* the analytic split: an all-reduce of the row-parallel matmul's output before the residual add */
    if (c->tp > 1) t += pgd_sim_cost_all_reduce(c, c->tp, 1, bytes);
    return t;
}

static double kv_e(const pgd_sim_cost *c) { return c->kv_bytes > 0 ? c->kv_bytes : c->dev.act_bytes; }
/* Bytes per KV element with the row's share of a per-row scale (q8). */
static double kv_e_hd(const pgd_sim_cost *c, int head_dim) {
    return kv_e(c) + (head_dim > 0 ? c->kv_row_extra / head_dim : 0);
}

double pgd_sim_cost_kv_write(const pgd_sim_cost *c, int n, int kv_heads, int head_dim) {
    double t;
    if (tab(c, "kv_write", kv_heads, head_dim, 0, n, &t)) return t;
    /* k and v read in activations' dtype, written in the cache's */
    return stream(c, PGD_SIM_ADD, 0,
                  2.0 * n * ((double)kv_heads / c->tp) * head_dim * (c->dev.act_bytes + kv_e_hd(c, head_dim)));
}

double pgd_sim_cost_attention(const pgd_sim_cost *c, const int32_t *qs, const int32_t *lens, int num_seqs, int heads,
                              int kv_heads, int head_dim) {
    double e = kv_e_hd(c, head_dim), h = (double)heads / c->tp, kvh = (double)kv_heads / c->tp;
    double kv_pos = 0, q_tok = 0, pairs = 0, dec_seqs = 0, dec_pos = 0, pre_tok = 0, pre_pairs = 0, pre_seqs = 0,
           pre_pos = 0;
    for (int s = 0; s < num_seqs; s++) {
        double q = qs[s + 1] - qs[s], L = lens[s], p = q * L - q * (q - 1) / 2;
        kv_pos += L;
        q_tok += q;
        pairs += p;
        if (q == 1) dec_seqs++, dec_pos += L;
        else pre_tok += q, pre_pairs += p, pre_seqs++, pre_pos += L;
    }
    if (c->table) { /* decode part (sequences, mean context) + prefill part (tokens, mean pairs) */
        double td = 0, tp = 0;
        int ok = 1;
        if (dec_seqs > 0)
            ok &= pgd_sim_table_lookup(c->table, "attn_decode", heads, kv_heads, head_dim, dec_seqs,
                                       dec_pos / dec_seqs, &td);
        if (pre_tok > 0)
            ok &= pgd_sim_table_lookup(c->table, "attn_prefill", heads, kv_heads, head_dim, pre_tok,
                                       pre_pairs / pre_tok, &tp);
        if (ok) return td + tp;
    }
    if (c->dev.kernels) { /* the same split, priced by the curves */
        pgd_sim_hw hw = hw_of(c);
        int lh = (int)h > 0 ? (int)h : 1, lkv = (int)kvh > 0 ? (int)kvh : 1;
        double t = 0;
        if (dec_seqs > 0)
            t += pgd_sim_curve_decode(&c->dev.kernels->decode, &hw, dec_seqs, dec_pos / dec_seqs, lkv, head_dim, e);
        if (pre_tok > 0)
            t += pgd_sim_curve_prefill(&c->dev.kernels->prefill, &hw, pre_tok, pre_seqs, pre_pairs, pre_pos, lh, lkv,
                                       head_dim, e);
        return t;
    }
    double bytes = 2.0 * kv_pos * kvh * head_dim * e + 2.0 * q_tok * h * head_dim * c->dev.act_bytes;
    return pgd_sim_cost_roofline(c, 4.0 * h * head_dim * pairs, bytes, c->dev.attn_eff);
}

double pgd_sim_cost_gather(const pgd_sim_cost *c, int n, int dim) {
    double t;
    if (tab(c, "gather", dim, 0, 0, n, &t)) return t;
    return stream(c, PGD_SIM_ADD, 0, 2.0 * n * dim * c->dev.act_bytes);
}

double pgd_sim_cost_copy_blocks(const pgd_sim_cost *c, int n_pairs, size_t block_floats) {
    double t;
    if (tab(c, "copy_blocks", (long)block_floats, 0, 0, n_pairs, &t)) return t;
    return stream(c, PGD_SIM_ADD, 0, 2.0 * n_pairs * (double)block_floats / c->tp * kv_e(c));
}

double pgd_sim_cost_transfer(const pgd_sim_cost *c, size_t bytes, int download, int result) {
    double t;
    const char *op = result ? (download ? "logits" : "meta_upload") : (download ? "download" : "upload");
    if (tab(c, op, 0, 0, 0, (double)bytes, &t)) return t;
    if (download && result && c->dev.sample_on_device) return c->dev.pcie_lat;
    return c->dev.pcie_lat + (double)bytes / c->dev.pcie_bw + (download ? (double)bytes * c->dev.host_per_byte : 0);
}
