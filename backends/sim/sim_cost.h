/* sim_cost.h - the simulator's cost model: how long each backend op takes
 * on a named device. Nothing is computed; every op's time comes from its
 * shapes (internal to backends/sim).
 *
 * Three sources, the first that covers an op wins:
 *   1. a calibration table (`[model] profile = FILE`, below): measured times
 *      of that op at that shape, interpolated;
 *   2. the device's FITTED CURVES (sim_curves.h): the GPU presets carry
 *      curves fitted to measured GPU kernel times (sim_presets.c says which
 *      and how well they fit); streaming ops without a curve of their own
 *      (kv_write, gather, copy_blocks) take the residual add's curve over
 *      the bytes they move;
 *   3. the roofline below (the "cpu" preset, which is measured on this
 *      machine rather than fitted, and any preset without curves).
 *
 * THE ROOFLINE (+ launch overhead, per op):
 *   t(op) = launch + max(FLOPs / (peak_flops * mm_eff), bytes / (mem_bw * bw_eff))
 * with e = act_bytes (bytes per activation or KV element: 2 on the GPU
 * presets, fp16 as the paper's OPT runs; 4 on the CPU preset, Pagoda's f32)
 * and w = the weight dtype's size:
 *   matmul (n tokens, in -> out)   FLOPs 2*n*in*out; bytes in*out*w + n*(in+out)*e
 *   embedding / gather (n, dim)     bytes n*dim*(w or e) + n*dim*e
 *   rmsnorm (n, dim)                FLOPs 4*n*dim;    bytes 2*n*dim*e
 *   rope (n, heads, kv_heads, hd)   FLOPs 6*n*(heads+kv_heads)*hd/2; bytes 2*n*(heads+kv_heads)*hd*e
 *   silu_mul (n = rows*hidden outputs) FLOPs 5n; bytes 3n*e (reads gate and up, writes out)
 *   add (n elements)                FLOPs n;   bytes 3n*e
 *   kv_write (n tokens)             bytes 2 (K,V) * 2 (read+write) * n*kv_heads*hd*e
 *   paged_attention                 from the REAL per-sequence lengths (the
 *       metadata is real host memory): for sequence s with q_s new tokens and
 *       context L_s, KV bytes read 2*L_s*kv_heads*hd*e (once per sequence and
 *       layer), Q/O bytes 2*q_s*heads*hd*e, FLOPs 4*heads*hd*pairs_s with
 *       pairs_s = q_s*L_s - q_s*(q_s-1)/2 (causal); bandwidth at attn_eff
 *       instead of bw_eff (the paged kernel's gather costs; paper: 20-26%
 *       slower than a contiguous kernel)
 *   copy_blocks (pairs, floats)     bytes 2*pairs*floats*e (device to device)
 *   upload / download (bytes)       pcie_lat + bytes / pcie_bw (swap, metadata); the logits
 *       download costs pcie_lat only on GPU presets (sampling on the GPU, ids back)
 * Tensor parallel (tp GPUs, Megatron): matmul outputs, heads, KV and the FFN
 * hidden width are split tp ways (their FLOPs and bytes / tp); norms,
 * residual adds and embeddings are replicated; each residual `add` (one
 * after the attention output, one after the FFN: 2 per layer) also pays a
 * all-reduce of its n*e bytes (pgd_sim_cost_all_reduce). That is the
 * analytic `[model] tensor_parallel`; `[parallel] tp` instead runs the real
 * sharded model, whose ops carry their shard's shapes, with the collectives
 * timed by core/parallel/comm_sim.c through the same functions.
 * Host work the engine does around a step (scheduling, sampling) is NOT in
 * the GPU presets (vLLM samples on the GPU; its CPU overhead is not
 * modelled); the CPU preset charges it per downloaded byte (the logits
 * download is followed by a scan of every row), a calibration table
 * measures it (ops meta_upload and logits below). The GPU presets' peak
 * rates are datasheet values and their kernel times come from fitted
 * curves; the "cpu" preset's numbers were measured on the development
 * machine with `pagoda profile` (how, and the spread: sim_presets.c).
 *
 * CALIBRATION TABLES. `pagoda profile` measures the ops on a real backend
 * and writes a CSV table; `[model] profile = FILE` makes the sim use it: an
 * op whose (op, key) is in the table takes the interpolated measured time,
 * anything else the roofline. Only sim_profile.c writes and reads the
 * format:
 *   lines starting with '#' are comments (the writer records the machine,
 *   threads, model, grid, copy bandwidth and matmul peak); the first other
 *   line is the header PGD_SIM_TABLE_HEADER, "op,k1,k2,k3,x,y,seconds";
 *   then one row per measured point: op name, three integer shape keys,
 *   sizes x and y (y = 0 for ops with one size) and the median of the
 *   measured seconds. (op, keys, x, y) are unique. A version-1 table,
 *   header "op,k1,k2,k3,x,seconds", is read with y = 0.
 *     op            k1, k2, k3                  x                   y
 *     matmul        in, out (per GPU), dtype    tokens              0
 *     embedding     dim, table dtype, 0         tokens              0
 *     rmsnorm       dim, 0, 0                   rows                0
 *     rope          heads, kv_heads, head_dim   tokens              0
 *     silu_mul      0, 0, 0                     output elements     0
 *     add           0, 0, 0                     elements            0
 *     kv_write      kv_heads, head_dim, 0       tokens              0
 *     attn_decode   heads, kv_heads, head_dim   decode sequences    their mean context
 *     attn_prefill  heads, kv_heads, head_dim   prefill tokens      mean (query, key) pairs per token
 *     gather        dim, 0, 0                   rows                0
 *     copy_blocks   floats per block, 0, 0      block pairs         0
 *     upload        0, 0, 0                     bytes (swap in)     0
 *     download      0, 0, 0                     bytes (swap out)    0
 *     meta_upload   0, 0, 0                     bytes               0
 *     logits        0, 0, 0                     bytes               0
 *   meta_upload is the forward pass's host work before its first op
 *   (batch checks, positions, slots) plus the metadata upload; logits is
 *   the logits download plus the engine's sampling of every row (copy and
 *   sampler). A mixed attention call costs its decode part plus its prefill
 *   part (if the table lacks either, the roofline prices the whole call).
 *   Lookup among the rows of one (op, key): at each measured x, piecewise
 *   linear in y (below the first y: the first's time; beyond the last:
 *   proportional to y); then piecewise linear in x between the measured x
 *   around the query (below the first: the first; beyond the last:
 *   proportional to x). Exact at measured points, monotone between them
 *   when the measurements are.
 *
 * Invariant: every cost is a pure function of (device, tp, table, shapes,
 * sequence lengths): same run, same timings. */
#ifndef PAGODA_SIM_COST_H
#define PAGODA_SIM_COST_H

#include <stddef.h>
#include <stdint.h>

#include "pagoda/dtype.h"
#include "pagoda/status.h"
#include "sim_curves.h"

typedef struct pgd_sim_device {
    const char *name;
    int sms;             /* multiprocessors (the curves' wave counts) */
    double l2_bytes;     /* L2 cache (the streaming curves' cache-resident share) */
    const pgd_sim_kernel_curves *kernels; /* fitted kernel curves, NULL: roofline */
    const pgd_sim_link_curves *links;     /* fitted all-reduce curves, NULL: link_bw / link_lat */
    double peak_flops;   /* dense fp16/bf16 matrix FLOP/s (datasheet) */
    double mem_bw;       /* device memory bandwidth, bytes/s (datasheet) */
    double mem_bytes;    /* memory of one device */
    double mm_eff;       /* achieved share of peak_flops in GEMMs */
    double bw_eff;       /* achieved share of mem_bw in streaming kernels */
    double attn_eff;     /* achieved share of mem_bw in paged attention */
    double launch;       /* seconds per kernel launch */
    double pcie_bw, pcie_lat; /* host <-> device */
    double link_bw, link_lat; /* device <-> device (NVLink) per GPU, for all-reduce */
    int act_bytes;       /* bytes per activation / KV element */
    int sample_on_device; /* results (logits) into host memory cost one transfer latency only:
                             vLLM samples on the GPU and copies back token ids */
    double host_per_byte; /* host seconds per byte downloaded (CPU preset: memcpy + scan) */
} pgd_sim_device;

/* Device presets; NULL-terminated names and a "a|b|c" list for messages. */
const char *const *pgd_sim_device_names(void);
const char *pgd_sim_device_choices(void);
/* Find a preset by name (case-insensitive); PGD_ERR_INVALID naming the
 * known presets when there is none. */
pgd_status pgd_sim_device_find(const char *name, pgd_sim_device *out);

/* A calibration table (sim_profile.c; format above). */
#define PGD_SIM_TABLE_HEADER "op,k1,k2,k3,x,y,seconds"
#define PGD_SIM_OP_MAX 24 /* op names: 1..23 characters of a-z, 0-9, _ */
typedef struct pgd_sim_table pgd_sim_table;
pgd_status pgd_sim_table_new(pgd_sim_table **out);
/* Add a measured point (PGD_ERR_INVALID for a bad name or a negative or
 * non-finite number). */
pgd_status pgd_sim_table_add(pgd_sim_table *t, const char *op, long k1, long k2, long k3, double x, double y,
                             double seconds);
/* Write the table (sorted; PGD_ERR_FORMAT if a point repeats) to path via
 * a temporary file; each line of `comment` (may be NULL) becomes a '#'
 * line before the header. */
pgd_status pgd_sim_table_save(pgd_sim_table *t, const char *path, const char *comment);
/* Read a table; PGD_ERR_IO / PGD_ERR_FORMAT with the file and line. */
pgd_status pgd_sim_table_load(const char *path, pgd_sim_table **out);
void pgd_sim_table_destroy(pgd_sim_table *t);
/* Interpolated time of op at shape key (k1, k2, k3) and sizes (x, y);
 * returns 0 (and leaves *out) when the table has no row for that op and
 * key (or has not been saved or loaded yet). */
int pgd_sim_table_lookup(const pgd_sim_table *t, const char *op, long k1, long k2, long k3, double x, double y,
                         double *out);
int pgd_sim_table_rows(const pgd_sim_table *t);

typedef struct pgd_sim_cost {
    pgd_sim_device dev;
    int tp;                      /* >= 1 */
    const pgd_sim_table *table;  /* borrowed; may be NULL */
    double kv_bytes;             /* bytes per KV cache element (its dtype); 0 = dev.act_bytes */
    double kv_row_extra;         /* bytes per KV cache row (head_dim elements) beyond those: q8's
                                    f32 scale (4); kv_write and attention price it, copy_blocks
                                    (no head_dim there) does not */
} pgd_sim_cost;

/* Seconds per op (see the model above). */
double pgd_sim_cost_roofline(const pgd_sim_cost *c, double flops, double bytes, double eff_bw);
double pgd_sim_cost_matmul(const pgd_sim_cost *c, int n, int in, int out, pgd_dtype wt);
double pgd_sim_cost_embedding(const pgd_sim_cost *c, int n, int dim, pgd_dtype tt);
double pgd_sim_cost_rmsnorm(const pgd_sim_cost *c, int n, int dim);
double pgd_sim_cost_rope(const pgd_sim_cost *c, int n, int heads, int kv_heads, int head_dim);
/* n: output elements (rows * hidden). */
double pgd_sim_cost_silu_mul(const pgd_sim_cost *c, size_t n);
double pgd_sim_cost_add(const pgd_sim_cost *c, size_t n);
double pgd_sim_cost_kv_write(const pgd_sim_cost *c, int n, int kv_heads, int head_dim);
/* q_lens[s] new tokens and seq_lens[s] context of each of num_seqs sequences. */
double pgd_sim_cost_attention(const pgd_sim_cost *c, const int32_t *query_start, const int32_t *seq_lens,
                              int num_seqs, int heads, int kv_heads, int head_dim);
double pgd_sim_cost_gather(const pgd_sim_cost *c, int n, int dim);
double pgd_sim_cost_copy_blocks(const pgd_sim_cost *c, int n_pairs, size_t block_floats);
/* Collectives over `ranks` GPUs on `nodes` hosts: the link curves (or the
 * table's all_reduce rows: k1 = ranks, k2 = hosts, x = bytes) when there
 * are some, else a ring over link_bw and link_lat:
 *   all-reduce 2 (n-1) link_lat + 2 (n-1)/n bytes / link_bw
 *   all-gather (n-1) link_lat + (n-1)/n bytes_total / link_bw */
double pgd_sim_cost_all_reduce(const pgd_sim_cost *c, int ranks, int nodes, double bytes);
double pgd_sim_cost_all_gather(const pgd_sim_cost *c, int ranks, double bytes_total);
/* One device sends `bytes` to another (pipeline stages' activations): the
 * all-gather of 2 ranks that moves the same bytes each way (its latency and
 * bus bandwidth from the link curves, else link_lat + bytes / link_bw). */
double pgd_sim_cost_send(const pgd_sim_cost *c, double bytes);
/* host <-> device transfer of `bytes` (download = device to host; result =
 * to or from ordinary host memory, i.e. the forward pass's metadata up and
 * its logits down, not KV swap space). */
double pgd_sim_cost_transfer(const pgd_sim_cost *c, size_t bytes, int download, int result);

#endif
