/* sim_cost.c - device presets and the per-op cost functions of the
 * simulator (the model is documented in sim_cost.h).
 *
 * Preset numbers: peak FLOP/s and memory bandwidth are the datasheet
 * values quoted in ../shared/docs/PAPER.md. ASSUMED efficiency factors,
 * the same for every GPU preset: mm_eff = 0.80 (bf16 GEMM measured at about
 * 790 of 989 TFLOP/s on an H100, PAPER.md), bw_eff = 0.90 (device copy
 * measured at 3.0 of 3.35 TB/s on an H100 and 4.3 of 4.8 on an H200),
 * attn_eff = 0.72 (= 0.90 / 1.25: the paper measures its paged attention
 * kernel 20-26% slower than a contiguous one), launch = 5 us per kernel
 * (no CUDA graphs), PCIe 4.0 x16 at 25 GB/s + 10 us per transfer (5.0 x16
 * at 50 GB/s on H100/H200), NVLink 300 GB/s per direction per A100 (450 on
 * H100/H200) + 5 us.
 *
 * The "cpu" preset is MEASURED on the machine Pagoda is developed on (a
 * 2-vCPU AMD EPYC VM, AVX2/FMA, f32, both threads; `pagoda profile`,
 * 2026-11-21, while no other process ran; the numbers drift by 10% or so
 * with the host's load): peak_flops = the best median matmul call over the
 * profile grids of stories15M and stories42M (155-167 GFLOP/s, n = 320-512
 * tokens); mem_bw = the copy bandwidth pgd_cpu_measure_copy_bandwidth
 * reports (256 MiB memcpy on both threads, bytes read + written: 27-29
 * GB/s in the profiles, 30.5 in results/bench): streaming weights reaches it,
 * a batch-1 decode of stories42M (166 MB) takes 6-7 ms; attn_eff = the best
 * decode attention, 20-24 GB/s of K/V read, over mem_bw; launch = a small
 * op's time (thread-pool dispatch: rope and kv_write of one token 1.2-2.3
 * us, decode attention of one short sequence 3-5 us); host_per_byte = the
 * logits rows' download plus the engine's copy and greedy sampling per
 * byte of logits (0.35-0.42 ns); host "transfers" (swap) are one-way
 * memcpy at half the copy bandwidth. Efficiencies are 1: the rates are
 * achieved ones. A profile table (`pagoda profile`) models the CPU far
 * better than any roofline; see experiments/sim_fidelity. */
#include "sim_cost.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define GB 1e9
#define TF 1e12

static const pgd_sim_device presets[] = {
    {.name = "a100-40gb", .peak_flops = 312 * TF, .mem_bw = 1.555e12, .mem_bytes = 40 * GB, .mm_eff = 0.80,
     .bw_eff = 0.90, .attn_eff = 0.72, .launch = 5e-6, .pcie_bw = 25 * GB, .pcie_lat = 10e-6, .link_bw = 300 * GB,
     .link_lat = 5e-6, .act_bytes = 2, .sample_on_device = 1},
    {.name = "a100-80gb", .peak_flops = 312 * TF, .mem_bw = 2.0e12, .mem_bytes = 80 * GB, .mm_eff = 0.80,
     .bw_eff = 0.90, .attn_eff = 0.72, .launch = 5e-6, .pcie_bw = 25 * GB, .pcie_lat = 10e-6, .link_bw = 300 * GB,
     .link_lat = 5e-6, .act_bytes = 2, .sample_on_device = 1},
    {.name = "h100", .peak_flops = 989 * TF, .mem_bw = 3.35e12, .mem_bytes = 80 * GB, .mm_eff = 0.80,
     .bw_eff = 0.90, .attn_eff = 0.72, .launch = 5e-6, .pcie_bw = 50 * GB, .pcie_lat = 10e-6, .link_bw = 450 * GB,
     .link_lat = 5e-6, .act_bytes = 2, .sample_on_device = 1},
    {.name = "h200", .peak_flops = 989 * TF, .mem_bw = 4.8e12, .mem_bytes = 141 * GB, .mm_eff = 0.80,
     .bw_eff = 0.90, .attn_eff = 0.72, .launch = 5e-6, .pcie_bw = 50 * GB, .pcie_lat = 10e-6, .link_bw = 450 * GB,
     .link_lat = 5e-6, .act_bytes = 2, .sample_on_device = 1},
    /* this machine's CPU (f32 everywhere), measured (see above): achieved rates, so efficiencies are 1 */
    {.name = "cpu", .peak_flops = 160e9, .mem_bw = 28 * GB, .mem_bytes = 16 * GB, .mm_eff = 1.0, .bw_eff = 1.0,
     .attn_eff = 0.75, .launch = 2e-6, .pcie_bw = 14 * GB, .pcie_lat = 1e-6, .link_bw = 14 * GB, .link_lat = 1e-6,
     .act_bytes = 4, .host_per_byte = 0.4e-9},
};
#define N_PRESETS (sizeof presets / sizeof presets[0])

const char *const *pgd_sim_device_names(void) {
    static const char *names[N_PRESETS + 1];
    for (size_t i = 0; i < N_PRESETS; i++) names[i] = presets[i].name;
    names[N_PRESETS] = NULL;
    return names;
}

const char *pgd_sim_device_choices(void) { return "a100-40gb|a100-80gb|h100|h200|cpu"; }

pgd_status pgd_sim_device_find(const char *name, pgd_sim_device *out) {
    if (!name || !*name) name = "a100-40gb";
    for (size_t i = 0; i < N_PRESETS; i++)
        if (!strcasecmp(presets[i].name, name)) {
            *out = presets[i];
            return PGD_OK;
        }
    return pgd_error(PGD_ERR_INVALID, "sim backend: unknown device '%s' (known: a100-40gb, a100-80gb, h100, h200, cpu)",
                     name);
}

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

double pgd_sim_cost_matmul(const pgd_sim_cost *c, int n, int in, int out, pgd_dtype wt) {
    int o = out / c->tp > 0 ? out / c->tp : 1;
    double t, e = c->dev.act_bytes;
    if (tab(c, "matmul", in, o, (long)wt, n, &t)) return t;
    return rl(c, 2.0 * n * in * o, (double)in * o * (double)pgd_dtype_size(wt) + (double)n * (in + o) * e);
}

double pgd_sim_cost_embedding(const pgd_sim_cost *c, int n, int dim, pgd_dtype tt) {
    double t;
    if (tab(c, "embedding", dim, (long)tt, 0, n, &t)) return t;
    return rl(c, 0, (double)n * dim * ((double)pgd_dtype_size(tt) + c->dev.act_bytes));
}

double pgd_sim_cost_rmsnorm(const pgd_sim_cost *c, int n, int dim) {
    double t;
    if (tab(c, "rmsnorm", dim, 0, 0, n, &t)) return t;
    return rl(c, 4.0 * n * dim, 2.0 * n * dim * c->dev.act_bytes);
}

double pgd_sim_cost_rope(const pgd_sim_cost *c, int n, int heads, int kv_heads, int head_dim) {
    double t, h = (double)(heads + kv_heads) / c->tp;
    if (tab(c, "rope", heads, kv_heads, head_dim, n, &t)) return t;
    return rl(c, 3.0 * n * h * head_dim, 2.0 * n * h * head_dim * c->dev.act_bytes);
}

double pgd_sim_cost_silu_mul(const pgd_sim_cost *c, size_t n) {
    double t, m = (double)n / c->tp;
    if (tab(c, "silu_mul", 0, 0, 0, m, &t)) return t;
    return rl(c, 5.0 * m, 3.0 * m * c->dev.act_bytes);
}

double pgd_sim_cost_add(const pgd_sim_cost *c, size_t n) {
    double t, bytes = (double)n * c->dev.act_bytes;
    if (!tab(c, "add", 0, 0, 0, (double)n, &t)) t = rl(c, (double)n, 3.0 * bytes);
    if (c->tp > 1) /* ring all-reduce of the row-parallel matmul's output before the residual add */
        t += 2.0 * (c->tp - 1) * c->dev.link_lat + 2.0 * (c->tp - 1) / c->tp * bytes / c->dev.link_bw;
    return t;
}

double pgd_sim_cost_kv_write(const pgd_sim_cost *c, int n, int kv_heads, int head_dim) {
    double t;
    if (tab(c, "kv_write", kv_heads, head_dim, 0, n, &t)) return t;
    return rl(c, 0, 4.0 * n * ((double)kv_heads / c->tp) * head_dim * c->dev.act_bytes);
}

double pgd_sim_cost_attention(const pgd_sim_cost *c, const int32_t *qs, const int32_t *lens, int num_seqs, int heads,
                              int kv_heads, int head_dim) {
    double e = c->dev.act_bytes, h = (double)heads / c->tp, kvh = (double)kv_heads / c->tp;
    double kv_pos = 0, q_tok = 0, pairs = 0, dec_seqs = 0, dec_pos = 0, pre_tok = 0, pre_pairs = 0;
    for (int s = 0; s < num_seqs; s++) {
        double q = qs[s + 1] - qs[s], L = lens[s], p = q * L - q * (q - 1) / 2;
        kv_pos += L;
        q_tok += q;
        pairs += p;
        if (q == 1) dec_seqs++, dec_pos += L;
        else pre_tok += q, pre_pairs += p;
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
    double bytes = 2.0 * kv_pos * kvh * head_dim * e + 2.0 * q_tok * h * head_dim * e;
    return pgd_sim_cost_roofline(c, 4.0 * h * head_dim * pairs, bytes, c->dev.attn_eff);
}

double pgd_sim_cost_gather(const pgd_sim_cost *c, int n, int dim) {
    double t;
    if (tab(c, "gather", dim, 0, 0, n, &t)) return t;
    return rl(c, 0, 2.0 * n * dim * c->dev.act_bytes);
}

double pgd_sim_cost_copy_blocks(const pgd_sim_cost *c, int n_pairs, size_t block_floats) {
    double t;
    if (tab(c, "copy_blocks", (long)block_floats, 0, 0, n_pairs, &t)) return t;
    return rl(c, 0, 2.0 * n_pairs * (double)block_floats / c->tp * c->dev.act_bytes);
}

double pgd_sim_cost_transfer(const pgd_sim_cost *c, size_t bytes, int download, int result) {
    double t;
    const char *op = result ? (download ? "logits" : "meta_upload") : (download ? "download" : "upload");
    if (tab(c, op, 0, 0, 0, (double)bytes, &t)) return t;
    if (download && result && c->dev.sample_on_device) return c->dev.pcie_lat;
    return c->dev.pcie_lat + (double)bytes / c->dev.pcie_bw + (download ? (double)bytes * c->dev.host_per_byte : 0);
}
