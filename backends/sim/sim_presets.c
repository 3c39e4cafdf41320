/* sim_presets.c - the simulator's device presets (pgd_sim_device_find).
 *
 * GPU presets. Peak FLOP/s, memory bandwidth and multiprocessor counts are
 * datasheet values (../shared/docs/PAPER.md: A100-40GB 1.555 TB/s, A100-80GB
 * 2.039 TB/s, 312 dense bf16 TFLOP/s, 108 SMs; H100 SXM 3.35 TB/s, H200
 * 4.8 TB/s, 989 TFLOP/s, 132 SMs). Kernel times come from FITTED CURVES
 * (sim_curves.h), not from guessed efficiencies:
 *   - a100_kernels: fitted to Vidur's measured A100-80GB kernel times of
 *     Llama-3-8B (MLP ops at TP 1/2/4/8 and 1..32768 tokens, FlashInfer
 *     paged attention); the A100-40GB preset uses them with its own
 *     bandwidth, and the H100 and H200 presets SCALE them by the datasheet
 *     ratios (same achieved shares of peak and bandwidth, same per-kernel
 *     fixed costs, their own SM counts): an assumption, not a measurement,
 *     until a profile of those GPUs is fitted;
 *   - a100_links, h100_links: all-reduce curves fitted to Vidur's NCCL
 *     measurements on A100 and H100 DGX nodes (H200 shares the H100's NVLink).
 * The fit errors below are median and p90 of |predicted / measured - 1|
 * over the points fitted; `pagoda sim-check --fit` refits from the files
 * and prints these blocks (see results/sim/gpu_fidelity.md for the check).
 * Not modelled: the gaps between kernel launches and the host's work
 * (vLLM captures decode steps in CUDA graphs and samples on the GPU): the
 * curves' fixed costs are kernel durations, with no launch charge; PCIe 4.0 x16 at 25 GB/s + 10 us per
 * transfer on A100 (5.0 x16 at 50 GB/s on H100/H200) for swaps; NVLink
 * link_bw / link_lat stand in only where the link curves have no entry.
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
 * achieved ones; it has no curves (the roofline prices it). A profile
 * table (`pagoda profile`) models the CPU far better than any roofline;
 * see experiments/sim_fidelity. */
#include <strings.h>

#include "sim_cost.h"

/* A100 kernels: `pagoda sim-check --model llama3-8b --device a100-80gb --fit` on
 * vidur-profiling's Meta-Llama-3-8B mlp.csv (7296 GEMM points: QKV, O, gate+up
 * and down at TP 1/2/4/8, 1..32768 tokens; 1824-3648 per streaming kind) and
 * the transcribed FlashInfer attention (274 decode rows: batch 1-124 and
 * 472-512, contexts 32-15872; 233 prefill rows: chunks 64-16128 after 0-15488
 * cached tokens), with A100-80GB's datasheet P, BW (2.039 TB/s), 108 SMs and
 * 40 MB of L2. err = {points, median, p90} of |predicted / measured - 1|.
 * What they say: GEMMs reach 0.73 of peak and 0.80 of bandwidth, blended
 * (q = 1.42: between a sum and a max of the two times) after ~4.9 us; a
 * decode-attention CTA streams at ~32 GB/s, a wave costs ~3.8 us, and the
 * whole cache read runs at ~0.98 of BW once the GPU is full; prefill
 * attention reaches 0.51 of peak on long chunks (half of that at 32 tokens)
 * after a ~26 us floor (the fit's weak spot: 64-token chunks with little
 * cached context take 11-33 us measured, +139% at worst). */
static const pgd_sim_kernel_curves a100_kernels = {
    .source = "fitted to Vidur's A100-80GB Llama-3-8B profile (mlp.csv, FlashInfer attention)",
    .gemm = {.t0 = 4.8880e-06, .mm_eff = 0.7346, .bw_eff = 0.7970, .q = 1.4181, .err = {7296, 0.0442, 0.1245}},
    .stream = {
        [PGD_SIM_NORM] = {.t0 = 3.7360e-06, .eff_cache = 0.4979, .eff = 0.3071, .err = {3648, 0.0650, 0.2369}},
        [PGD_SIM_ROPE] = {.t0 = 2.5538e-06, .eff_cache = 0.4700, .eff = 0.3761, .err = {1824, 0.0776, 0.2083}},
        [PGD_SIM_ACT] = {.t0 = 2.7137e-06, .eff_cache = 0.5318, .eff = 0.4758, .err = {1824, 0.0586, 0.1435}},
        [PGD_SIM_ADD] = {.t0 = 1.5360e-06, .eff_cache = 1.1793, .eff = 0.8098, .err = {1824, 0.0370, 0.1576}},
        [PGD_SIM_EMBED] = {.t0 = 3.6582e-06, .eff_cache = 0.1675, .eff = 0.1356, .err = {1824, 0.0427, 0.1308}},
    },
    .decode = {.t0 = 4.0680e-06, .t_split = 0.0000e+00, .t_wave = 3.8279e-06, .cta_bw = 3.2496e+10, .eff = 0.9802,
               .split_per_sm = 2, .resident_per_sm = 3, .err = {274, 0.0564, 0.1369}},
    .prefill = {.t0 = 2.5965e-05, .eff_max = 0.5125, .chunk_half = 32.06, .bw_eff = 0.4420,
                .err = {233, 0.0566, 0.1490}},
};

/* A100 NVLink (and InfiniBand across hosts): fitted to vidur-profiling's
 * a100_dgx/all_reduce.csv (994 sizes of 4 KiB-128 MiB per configuration).
 * Within a host the bus bandwidth is 300-340 GB/s and the latency ~40 us
 * (Vidur's torch.distributed calls; small messages are bimodal, ~20 or ~60
 * us, hence p90s of 20-26% at 4 and 8 ranks). */
static const pgd_sim_link_curves a100_links = {
    .source = "fitted to Vidur's A100 DGX NCCL all-reduce profile",
    .n = 7,
    .c = {
        {.ranks = 2, .nodes = 1, .lat = 4.4204e-05, .bus_bw = 3.4057e+11, .q = 1.0000, .err = {994, 0.0192, 0.1103}},
        {.ranks = 4, .nodes = 1, .lat = 3.7948e-05, .bus_bw = 3.1933e+11, .q = 1.0000, .err = {994, 0.0938, 0.2629}},
        {.ranks = 8, .nodes = 1, .lat = 4.3329e-05, .bus_bw = 3.0312e+11, .q = 1.0000, .err = {994, 0.1036, 0.2103}},
        {.ranks = 2, .nodes = 2, .lat = 7.7882e-05, .bus_bw = 1.1843e+10, .q = 1.0000, .err = {994, 0.0065, 0.0309}},
        {.ranks = 4, .nodes = 2, .lat = 7.3746e-05, .bus_bw = 1.4582e+10, .q = 1.0000, .err = {994, 0.1797, 0.4794}},
        {.ranks = 8, .nodes = 2, .lat = 1.8837e-04, .bus_bw = 4.1482e+10, .q = 1.0000, .err = {994, 0.0585, 0.1980}},
        {.ranks = 16, .nodes = 2, .lat = 2.7094e-04, .bus_bw = 2.6463e+10, .q = 1.0000, .err = {994, 0.3254, 0.3739}},
    },
};

/* H100 NVLink: fitted to vidur-profiling's h100_dgx/all_reduce.csv (one host). */
static const pgd_sim_link_curves h100_links = {
    .source = "fitted to Vidur's H100 DGX NCCL all-reduce profile",
    .n = 3,
    .c = {
        {.ranks = 2, .nodes = 1, .lat = 2.9940e-05, .bus_bw = 5.6077e+11, .q = 1.4217, .err = {994, 0.0286, 0.2651}},
        {.ranks = 4, .nodes = 1, .lat = 3.8271e-05, .bus_bw = 6.3841e+11, .q = 1.6006, .err = {994, 0.0121, 0.1214}},
        {.ranks = 8, .nodes = 1, .lat = 2.9728e-05, .bus_bw = 6.8276e+11, .q = 1.0000, .err = {994, 0.0450, 0.0950}},
    },
};

#define GB 1e9
#define TF 1e12

/* mm_eff, bw_eff, attn_eff and launch (5 us per kernel) are the roofline's,
 * the datasheet model these presets had before the curves: a preset with
 * curves uses them for no op today (`pagoda sim-check --roofline` shows how
 * that model fares against the measurements). */
static const pgd_sim_device presets[] = {
    {.name = "a100-40gb", .kernels = &a100_kernels, .links = &a100_links, .sms = 108, .l2_bytes = 40e6,
     .peak_flops = 312 * TF, .mem_bw = 1.555e12, .mem_bytes = 40 * GB, .mm_eff = 0.80, .bw_eff = 0.90,
     .attn_eff = 0.72, .launch = 5e-6, .pcie_bw = 25 * GB, .pcie_lat = 10e-6, .link_bw = 300 * GB, .link_lat = 5e-6,
     .act_bytes = 2, .sample_on_device = 1},
    {.name = "a100-80gb", .kernels = &a100_kernels, .links = &a100_links, .sms = 108, .l2_bytes = 40e6,
     .peak_flops = 312 * TF, .mem_bw = 2.039e12, .mem_bytes = 80 * GB, .mm_eff = 0.80, .bw_eff = 0.90,
     .attn_eff = 0.72, .launch = 5e-6, .pcie_bw = 25 * GB, .pcie_lat = 10e-6, .link_bw = 300 * GB, .link_lat = 5e-6,
     .act_bytes = 2, .sample_on_device = 1},
    /* H100 / H200: the A100 kernel curves scaled by the datasheet ratios (an assumption) */
    {.name = "h100", .kernels = &a100_kernels, .links = &h100_links, .sms = 132, .l2_bytes = 50e6,
     .peak_flops = 989 * TF, .mem_bw = 3.35e12, .mem_bytes = 80 * GB, .mm_eff = 0.80, .bw_eff = 0.90,
     .attn_eff = 0.72, .launch = 5e-6, .pcie_bw = 50 * GB, .pcie_lat = 10e-6, .link_bw = 450 * GB, .link_lat = 5e-6,
     .act_bytes = 2, .sample_on_device = 1},
    {.name = "h200", .kernels = &a100_kernels, .links = &h100_links, .sms = 132, .l2_bytes = 60e6,
     .peak_flops = 989 * TF, .mem_bw = 4.8e12, .mem_bytes = 141 * GB, .mm_eff = 0.80, .bw_eff = 0.90,
     .attn_eff = 0.72, .launch = 5e-6, .pcie_bw = 50 * GB, .pcie_lat = 10e-6, .link_bw = 450 * GB, .link_lat = 5e-6,
     .act_bytes = 2, .sample_on_device = 1},
    /* this machine's CPU (f32 everywhere), measured (see above): achieved rates, so efficiencies are 1 */
    {.name = "cpu", .sms = 2, .l2_bytes = 1e6, .peak_flops = 160e9, .mem_bw = 28 * GB, .mem_bytes = 16 * GB,
     .mm_eff = 1.0, .bw_eff = 1.0, .attn_eff = 0.75, .launch = 2e-6, .pcie_bw = 14 * GB, .pcie_lat = 1e-6,
     .link_bw = 14 * GB, .link_lat = 1e-6, .act_bytes = 4, .host_per_byte = 0.4e-9},
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

