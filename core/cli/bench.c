/* bench.c - `pagoda bench`: speed of a model's forward pass on this machine,
 * set against the memory-bandwidth bound measured in the same run.
 *
 * Reports the median over --reps repetitions of: copy bandwidth (memcpy of a
 * buffer far larger than the caches, split over the same number of threads;
 * bytes read + bytes written per second, as STREAM counts Copy), single-sequence
 * decode tokens/s, prefill tokens/s (one --prompt-len prompt), and decode
 * throughput with B sequences decoding together through the paged cache for
 * each B in --batches. Each decode figure is held to its read bound: read
 * bandwidth (a 256 MiB buffer summed on the same threads: a decode step
 * reads, it hardly writes; the best of several probes, since a bound must
 * hold for the fastest the machine reads) x B / (bytes of weights read per
 * step + B x one sequence's KV bytes at the middle context); "bd". Copy
 * bandwidth (read + write, STREAM's convention) is printed beside it.
 *
 * Paired probes (--dtypes): this VM's read bandwidth moves within minutes,
 * so a figure measured in a slow phase is far from a bound taken in a fast
 * one. Each rep therefore also probes the read bandwidth (64 MiB, median of
 * 3 passes) just before and just after each row's decode b1 and batch
 * measurements (neighbours share the probe between them), and holds each
 * measurement to its paired read bound: the faster of its two probes in
 * place of the run-wide read bandwidth. The run-wide bound stays the
 * headline ("% bd"); a second table gives, beside it, the share of the
 * run-wide read bound alone ("% rd"), the median over reps of the paired
 * shares ("% pr") and the paired probes' range over reps; the JSON has the
 * per-rep probes, bounds and shares (single_decode_paired_read_bound,
 * each batch's paired_read_bound) and what the probes cost.
 *
 * Batches in flight: when the executor takes K > 1 batches at once (pipeline
 * stages, --async), a decode measurement at batch B keeps K batches of B
 * sequences in flight (K x B sequences decode; tokens/s counts all of
 * them), as vLLM's virtual engines each run a batch. The same run also
 * measures, alternating rep by rep, the layout one batch at a time: batches
 * of B (the step's batch without batches in flight) and of K x B (the same
 * sequences in one batch), and prints the ratios. --no-overlap measures
 * only one batch of B at a time.
 *
 * The JSON output also gives each throughput per CPU second of the
 * process (CLOCK_PROCESS_CPUTIME_ID: all its threads, a pool's spinning
 * included): *_cpu_tps. On a shared machine that is the steadier number
 * (time spent waiting for a CPU does not count), which the perf gate's A/B
 * mode compares; with --threads 1 it is the compute thread's own time. */
#include <getopt.h>
#include <hwloc.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "par_opts.h"
#include "pagoda/comm.h"
#include "pagoda/parallel.h"
#include "kernels.h"
#include "pagoda/backend.h"
#include "pagoda/exec.h"
#include "pagoda/model.h"
#include "util/json_text.h"

typedef struct bench_ctx {
    pgd_exec *exec;
    const pgd_model_config *c;
    int bs, mb;         /* block size, blocks per sequence */
    int groups;         /* batches kept in flight while decoding (K, or 1) */
    int32_t *tables;    /* (groups * max_batch, mb) */
    float *logits;      /* (max tokens, vocab) */
} bench_ctx;

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Prefill `nseq` sequences of `plen` tokens (one forward each); wall and CPU seconds of the first. */
static int prefill(bench_ctx *x, int nseq, int plen, double *secs, double *cpu) {
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)plen);
    for (int i = 0; i < plen; i++) toks[i] = (i * 7919 + 13) % x->c->vocab_size;
    int rc = 0;
    for (int s = 0; s < nseq && !rc; s++) {
        int32_t qs[2] = {0, plen}, len = plen;
        pgd_batch b = {.num_seqs = 1, .num_tokens = plen, .tokens = toks, .query_start = qs,
                       .seq_lens = &len, .block_tables = x->tables + (size_t)s * x->mb,
                       .max_blocks_per_seq = x->mb};
        double t0 = pgd_cli_now(), c0 = cpu_now();
        if (pgd_exec_forward(x->exec, &b, x->logits) != PGD_OK) rc = pgd_cli_fail("forward");
        if (s == 0 && secs) *secs = pgd_cli_now() - t0;
        if (s == 0 && cpu) *cpu = cpu_now() - c0;
    }
    free(toks);
    return rc;
}

/* Decode `steps` steps of `groups` batches of `nseq` sequences each whose
 * contexts start at plen, keeping the groups' batches in flight together
 * (each group's sequences have their own blocks); *step_med = median
 * wall seconds per step of all groups, *cpu_med (may be NULL) the median
 * CPU seconds of the process per step. */
static int decode(bench_ctx *x, int nseq, int groups, int plen, int steps, double *step_med, double *cpu_med) {
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)nseq), *qs = malloc(sizeof(int32_t) * (size_t)(nseq + 1)),
            *lens = malloc(sizeof(int32_t) * (size_t)nseq);
    double *t = malloc(sizeof(double) * (size_t)steps), *c = malloc(sizeof(double) * (size_t)steps);
    int rc = 0, tickets[64], n_out = 0, head = 0;
    if (!toks || !qs || !lens || !t || !c) rc = pgd_cli_fail("out of memory");
    for (int st = 0; st < steps && !rc; st++) {
        double t0 = pgd_cli_now(), c0 = cpu_now();
        for (int g = 0; g < groups && !rc; g++) {
            for (int s = 0; s < nseq; s++) {
                toks[s] = ((g * nseq + s) * 31 + st * 17 + 5) % x->c->vocab_size;
                qs[s] = s;
                lens[s] = plen + st + 1;
            }
            qs[nseq] = nseq;
            pgd_batch b = {.num_seqs = nseq, .num_tokens = nseq, .tokens = toks, .query_start = qs,
                           .seq_lens = lens, .block_tables = x->tables + (size_t)g * nseq * x->mb,
                           .max_blocks_per_seq = x->mb};
            const float *l;
            if (n_out == pgd_exec_max_in_flight(x->exec)) { /* the oldest lands first */
                if (pgd_exec_wait(x->exec, tickets[head], &l) != PGD_OK) rc = pgd_cli_fail("forward");
                head = (head + 1) % 64, n_out--;
            }
            if (!rc && pgd_exec_submit(x->exec, &b, &tickets[(head + n_out) % 64]) != PGD_OK) rc = pgd_cli_fail("forward");
            else n_out++;
        }
        if (groups == 1 || st == steps - 1) /* one group: every step lands before the next (no overlap) */
            while (n_out > 0 && !rc) {
                const float *l;
                if (pgd_exec_wait(x->exec, tickets[head], &l) != PGD_OK) rc = pgd_cli_fail("forward");
                head = (head + 1) % 64, n_out--;
            }
        t[st] = pgd_cli_now() - t0;
        c[st] = cpu_now() - c0;
    }
    if (!rc) *step_med = pgd_cli_median(t, steps);
    if (!rc && cpu_med) *cpu_med = pgd_cli_median(c, steps);
    free(toks);
    free(qs);
    free(lens);
    free(t);
    free(c);
    return rc;
}

/* KV bytes one sequence's decode step reads at context ctx: K and V of
 * every layer, in the KV cache's dtype. */
static double bench_kv_bytes(const pgd_model_config *c, int ctx) {
    return 2.0 * c->n_layers * c->n_kv_heads * (double)pgd_kv_row_bytes(c->kv_dtype, c->head_dim) * ctx;
}

/* Multiply-adds of the matmuls per token (every layer's projections and the
 * classifier: what the weights cost in compute). */
static double bench_matmul_macs(const pgd_model_config *c) {
    double d = c->dim, kv = (double)c->n_kv_heads * c->head_dim, qd = (double)c->n_heads * c->head_dim,
           h = c->hidden_dim, ffn = c->arch == PGD_ARCH_OPT ? 2 : 3;
    return c->n_layers * (qd * d + 2 * kv * d + d * qd + ffn * h * d) + (double)c->vocab_size * d;
}

/* f32 flops of attention per decoded token at context ctx (q . k and p . v,
 * 2 flops a multiply-add, every head of every layer): f32 FMAs whatever the
 * KV dtype. */
static double bench_attn_flops(const pgd_model_config *c, int ctx) {
    return 4.0 * c->n_layers * c->n_heads * c->head_dim * (double)ctx;
}

/* The batched matmul alone (bench_batched_alone): tokens per matmul, the
 * last one the prompt length. */
#define BA_N 3
static const int ba_tokens[BA_N - 1] = {8, 32};

/* The FFN-shaped (hidden x dim) matmul of each row's dtype alone, one
 * thread, per second of its CPU time, at 8 and 32 tokens and the prompt
 * length (the prefill): what the batched paths compute at, without the
 * rest of a step. Interleaved: every dtype once per rep, the best of reps. */
static void bench_batched_alone(int nd, const pgd_dtype *dts, const int *deq, const int *plain, char label[][32],
                                const pgd_model_config *c, int plen, int reps, int qint_default, double rate[][BA_N]) {
    for (int r = 0; r < reps; r++)
        for (int i = 0; i < BA_N; i++)
            for (int d = 0; d < nd; d++) {
                pgd_cpu_set_q_int_max_tokens(deq[d] ? 0 : qint_default);
                pgd_cpu_set_x8(!plain[d]);
                double g =
                    pgd_cpu_measure_matmul_batch(dts[d], i < BA_N - 1 ? ba_tokens[i] : plen, c->dim, c->hidden_dim, 1);
                pgd_cpu_set_x8(1);
                rate[d][i] = g > rate[d][i] ? g : rate[d][i];
            }
    pgd_cpu_set_q_int_max_tokens(qint_default);
    printf("\nthe batched matmul alone (n tokens, %d x %d matrices, one thread, the best of %d interleaved reps):\n\n"
           "| weights | %d tokens GMAC/s | vs %s | %d tokens GMAC/s | vs %s | %d tokens (prefill) GMAC/s | vs %s |\n"
           "|---|---|---|---|---|---|---|\n",
           c->hidden_dim, c->dim, reps, ba_tokens[0], label[0], ba_tokens[1], label[0], plen, label[0]);
    for (int d = 0; d < nd; d++) {
        printf("| %s |", label[d]);
        for (int i = 0; i < BA_N; i++)
            printf(" %.1f | %.2fx |", rate[d][i] / 1e9, rate[0][i] > 0 ? rate[d][i] / rate[0][i] : 0);
        printf("\n");
    }
}

/* Tokens/s compute bound of a decode step of B sequences: every token's
 * matmul multiply-adds at the rate of the operation the kernel uses for B
 * tokens (pgd_cpu_matmul_probe: the int16 madd probe for q8_0, the u8
 * maddubs probe for q4_0/q4_k, the int8 dot probe for q6_k's integer path,
 * or the f32 FMA probe at 2 flops each), plus attention's flops at the FMA
 * rate; 0 when the probes have nothing (scalar path): no compute bound. */
static double bench_compute_bound(const pgd_model_config *c, int ctx, int b, double fma, double i8, double m16,
                                  double mub) {
    if (fma <= 0) return 0;
    pgd_cpu_probe k = pgd_cpu_matmul_probe(c->weight_dtype, b);
    double rate = k == PGD_PROBE_INT8_DOT && i8 > 0      ? i8
                  : k == PGD_PROBE_INT16_MADD && m16 > 0 ? m16
                  : k == PGD_PROBE_U8_MADDUBS && mub > 0 ? mub
                                                         : fma / 2;
    double t = bench_matmul_macs(c) / rate + bench_attn_flops(c, ctx) / fma;
    return 1.0 / t;
}

/* The bound a figure is held to: the lower of the read bound (unless the
 * step's bytes fit in cache: then none) and the compute bound (unless
 * unknown); *which is "read", "compute" or "" (no bound). */
static double bench_min_bound(double read, int cached, double compute, const char **which) {
    double b = 0;
    *which = "";
    if (!cached && read > 0) b = read, *which = "read";
    if (compute > 0 && (b == 0 || compute < b)) b = compute, *which = "compute";
    return b;
}

/* The median of v[0..n) (n <= 1000, --reps' limit) without reordering v:
 * pgd_cli_median sorts in place, and the per-rep rows must keep their rep
 * order for the same-rep ratios taken after. */
static double median_of(const double *v, int n) {
    double c[1000];
    if (n > 1000) n = 1000;
    memcpy(c, v, sizeof(double) * (size_t)n);
    return pgd_cli_median(c, n);
}

/* Tokens/s bound of a decode step of B sequences: B x read bandwidth /
 * (weight bytes + B x KV bytes). */
static double bench_bound(double rbw, double wbytes, double kvseq, int b) {
    return b * rbw / (wbytes + b * kvseq);
}

static int parse_batches(const char *s, int *out, int max) {
    int n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == max || !pgd_cli_int("--batches", t, 1, 4096, &out[n])) return -1;
        n++;
    }
    return n;
}

/* The best of n read-bandwidth probes (256 MiB each): a bound must hold for
 * the fastest the machine reads, and neighbours only ever slow a probe. */
static double best_read_bw(pgd_threadpool *tp, int n) {
    double best = 0;
    for (int i = 0; i < n; i++) {
        double b = pgd_cpu_measure_read_bandwidth(tp, (size_t)256 << 20, 1);
        best = b > best ? b : best;
    }
    return best;
}

/* The read probe taken beside each --dtypes decode measurement (just before
 * and just after it, neighbours sharing one): 64 MiB (twice the 32 MiB L3 of
 * the VM this was written on, where it read a median 1.05x what the 256 MiB
 * probe read, interleaved), the median of 3 timed passes after the buffer is faulted in and read once,
 * on the same threads as the run-wide probe. Short, so that it sees the
 * bandwidth the measurement had; *secs accumulates its wall time. */
#define PAIR_PROBE_MIB 64
#define PAIR_PROBE_PASSES 3
static double paired_probe(pgd_threadpool *tp, double *secs) {
    double t0 = pgd_cli_now();
    double b = pgd_cpu_measure_read_bandwidth(tp, (size_t)PAIR_PROBE_MIB << 20, PAIR_PROBE_PASSES);
    *secs += pgd_cli_now() - t0;
    return b;
}

/* Measurement m (0: decode b1, 1 + i: the i-th batch) of a --dtypes row
 * against its paired probes: for each rep r, bw[r] is the faster of the
 * probes just before and just after it (pr + r * (nb + 2): probes m and
 * m + 1), bound[r] the read bound at that bandwidth (B sequences, wb weight
 * bytes and kvb KV bytes per sequence a step) and share[r] = tps[r] /
 * bound[r]. Returns the median of share (in rep order otherwise kept). */
static double paired_shares(const double *pr, int nb, int reps, int m, int b, double wb, double kvb, const double *tps,
                            double *bw, double *bound, double *share) {
    for (int r = 0; r < reps; r++) {
        const double *p = pr + (size_t)r * (nb + 2) + m;
        bw[r] = p[0] > p[1] ? p[0] : p[1];
        bound[r] = bench_bound(bw[r], wb, kvb, b);
        share[r] = bound[r] > 0 ? tps[r] / bound[r] : 0;
    }
    return median_of(share, reps);
}

/* The JSON object of measurement m's paired probes (paired_shares), named
 * for what each array holds, one element per rep. */
static json_t *paired_json(const double *pr, int nb, int reps, int m, int b, double wb, double kvb, const double *tps,
                           double run_bound) {
    double *bw = calloc((size_t)reps * 3, sizeof(double));
    if (!bw) return json_null();
    double *bound = bw + reps, *share = bw + 2 * reps,
           med = paired_shares(pr, nb, reps, m, b, wb, kvb, tps, bw, bound, share);
    json_t *o = json_object(), *a[6];
    for (int k = 0; k < 6; k++) a[k] = json_array();
    double lo = bw[0], hi = bw[0];
    for (int r = 0; r < reps; r++) {
        const double *p = pr + (size_t)r * (nb + 2) + m;
        json_array_append_new(a[0], json_real(p[0]));
        json_array_append_new(a[1], json_real(p[1]));
        json_array_append_new(a[2], json_real(bw[r]));
        json_array_append_new(a[3], json_real(tps[r]));
        json_array_append_new(a[4], json_real(bound[r]));
        json_array_append_new(a[5], json_real(share[r]));
        lo = bw[r] < lo ? bw[r] : lo, hi = bw[r] > hi ? bw[r] : hi;
    }
    json_object_set_new(o, "probe_before_Bps", a[0]);
    json_object_set_new(o, "probe_after_Bps", a[1]);
    json_object_set_new(o, "paired_read_bw_Bps", a[2]); /* the faster of the two */
    json_object_set_new(o, "measured_tps", a[3]);
    json_object_set_new(o, "paired_bound_tps", a[4]);
    json_object_set_new(o, "paired_share", a[5]); /* measured_tps / paired_bound_tps */
    json_object_set_new(o, "median_paired_share", json_real(med));
    json_object_set_new(o, "paired_read_bw_min_Bps", json_real(lo));
    json_object_set_new(o, "paired_read_bw_max_Bps", json_real(hi));
    /* the median measurement over the run-wide read bound (the headline's read side) */
    json_object_set_new(o, "run_read_bound_share", json_real(run_bound > 0 ? median_of(tps, reps) / run_bound : 0));
    free(bw);
    return o;
}

/* Bytes of last-level cache on this machine (all L3 caches, hwloc); 0 if unknown. */
static double llc_bytes(void) {
    hwloc_topology_t t;
    double sum = 0;
    if (hwloc_topology_init(&t) != 0) return 0;
    if (hwloc_topology_load(t) == 0) {
        int n = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_L3CACHE);
        for (int i = 0; i < n; i++) {
            hwloc_obj_t o = hwloc_get_obj_by_type(t, HWLOC_OBJ_L3CACHE, i);
            if (o && o->attr) sum += (double)o->attr->cache.size;
        }
    }
    hwloc_topology_destroy(t);
    return sum;
}

/* 1 when the bytes a step reads fit within twice the L3 caches: part of them
 * then comes from cache, and a DRAM read bound does not bound that step's
 * figures (they are printed as "cache", not as a share of it). */
static int fits_cache(double step_bytes, double llc) { return llc > 0 && step_bytes < 2 * llc; }

static void note_cache(double step_bytes, double llc) {
    if (fits_cache(step_bytes, llc))
        printf("note         : %.1f MB read per step is within 2x the %.1f MB of L3 cache here: part of it\n"
               "               comes from cache, so such figures are not held to the DRAM read bound (\"cache\")\n",
               step_bytes / 1e6, llc / 1e6);
}

/* "NN%" of bound, or "cache" when the step's bytes fit in the caches. */
static const char *of_bound(char *buf, size_t n, double tps, double bound, int cached) {
    if (cached) snprintf(buf, n, "cache");
    else snprintf(buf, n, "%.0f%%", 100 * tps / bound);
    return buf;
}

/* "NN% r" of the read bound or "NN% c" of the compute bound, whichever is
 * lower ("NN% c$" when the read bound does not apply: cache), "-" if none. */
static const char *of_min_bound(char *buf, size_t n, double tps, double read, int cached, double compute) {
    const char *which;
    double b = bench_min_bound(read, cached, compute, &which);
    if (b <= 0) snprintf(buf, n, cached ? "cache" : "-");
    else snprintf(buf, n, "%.0f%% %c%s", 100 * tps / b, which[0], cached ? "$" : "");
    return buf;
}

/* Bytes of weights a decode step reads: all but the embedding table (a few
 * rows are gathered) unless it doubles as the classifier. */
static size_t bench_weight_bytes(const pgd_model_config *c) {
    size_t w = pgd_model_config_weight_bytes(c); /* each tensor in its stored dtype */
    if (!c->tied_classifier) w -= pgd_model_config_embd_bytes(c);
    return w;
}

/* Set up x for decoding up to nseqs sequences of plen + steps tokens. */
static int bench_ctx_init(bench_ctx *x, int block_size, int nseqs, int plen, int steps, int prefill_rows) {
    x->bs = block_size;
    x->mb = (plen + steps + block_size - 1) / block_size;
    x->tables = malloc(sizeof(int32_t) * (size_t)nseqs * x->mb);
    x->logits = malloc(sizeof(float) * (size_t)prefill_rows * x->c->vocab_size);
    if (!x->tables || !x->logits) return pgd_cli_fail("out of memory");
    for (int i = 0; i < nseqs * x->mb; i++) x->tables[i] = i + 1;
    if (pgd_exec_kv_create(x->exec, block_size, nseqs * x->mb + 1, 0) != PGD_OK) return pgd_cli_fail(NULL);
    return 0;
}

/* `pagoda bench --dtypes a,b,...`: the same random shape in each weight
 * dtype, measured in one run, interleaved: each rep measures every dtype
 * once (prefill, single-sequence decode, each batch), starting with a
 * different dtype each rep, so drift and neighbours hit all of them alike.
 * Each figure is held to its own read bound (its bytes per step), and
 * prefill and batch-1 decode are also given as the median of the per-rep
 * ratios to the first dtype. */
static int bench_dtypes(const char *model, const char *dtypes_s, const char *kv_s, int threads, int plen, int steps,
                        int reps, int block_size, const int *batches, int nb, const char *json_path) {
    enum { MAXD = 16 };
    pgd_dtype dts[MAXD], kvs[MAXD], wl[MAXD], kl[MAXD];
    int deq[MAXD], wdeq[MAXD]; /* 1: "q8_0:deq", batched matmuls on dequantized panels */
    int plain[MAXD], wplain[MAXD]; /* 1: "q8_0:plain", kept in GGUF's block layout (not the cpu backend's x8) */
    int nd = 0, nw = 0, nk = 0, rc = 1, max_batch = 1, qint_default = pgd_cpu_q_int_max_tokens();
    char buf[128];
    snprintf(buf, sizeof buf, "%s", dtypes_s);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(t, ':');
        wdeq[nw] = colon && !strcmp(colon, ":deq");
        wplain[nw] = colon && !strcmp(colon, ":plain");
        if (wdeq[nw] || wplain[nw]) *colon = 0;
        if (nw == 8 || !pgd_dtype_from_name(t, &wl[nw]) || !pgd_dtype_is_weight(wl[nw]) ||
            (colon && !wdeq[nw] && !wplain[nw]) || (wdeq[nw] && !pgd_dtype_is_quant(wl[nw])) ||
            (wplain[nw] && !pgd_dtype_is_quant(wl[nw]))) {
            fprintf(stderr,
                    "pagoda bench: --dtypes takes up to 8 of f32, f16, bf16, q8_0, q4_0, q4_k, q6_k, q8_0:deq, "
                    "q4_0:deq, q8_0:plain, q4_0:plain "
                    "(got '%s%s')\n",
                    t,
                    wdeq[nw]     ? ":deq"
                    : wplain[nw] ? ":plain"
                    : colon      ? colon
                                 : "");
            return 2;
        }
        nw++;
    }
    snprintf(buf, sizeof buf, "%s", kv_s ? kv_s : "f32");
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (nk == 4 || !pgd_dtype_from_name(t, &kl[nk]) || !pgd_dtype_is_kv(kl[nk])) {
            fprintf(stderr, "pagoda bench: --kv-dtypes takes up to 4 of f32, f16, bf16, q8 (got '%s')\n", t);
            return 2;
        }
        nk++;
    }
    if (nw * nk > MAXD) {
        fprintf(stderr, "pagoda bench: --dtypes x --kv-dtypes gives %d rows (at most %d)\n", nw * nk, MAXD);
        return 2;
    }
    for (int w = 0; w < nw; w++) /* rows: each weight dtype with each KV dtype */
        for (int k = 0; k < nk; k++) dts[nd] = wl[w], kvs[nd] = kl[k], deq[nd] = wdeq[w], plain[nd] = wplain[w], nd++;
    char label[MAXD][32];
    for (int d = 0; d < nd; d++)
        snprintf(label[d], sizeof label[d], nk > 1 ? "%s%s, kv %s" : "%s%s", pgd_dtype_name(dts[d]),
                 deq[d]     ? ":deq"
                 : plain[d] ? ":plain"
                            : "",
                 pgd_dtype_name(kvs[d]));
    if (strncmp(model, "random:", 7) || strstr(model, "dtype=")) {
        fprintf(stderr, "pagoda bench: --dtypes needs a random: model without a dtype= key (got '%s'): each dtype\n"
                        "  is the same shape and seed stored another way\n", model);
        return 2;
    }
    for (int i = 0; i < nb; i++) if (batches[i] > max_batch) max_batch = batches[i];
    bench_ctx xs[MAXD];
    memset(xs, 0, sizeof xs);
    pgd_threadpool *tp = NULL;
    double *rbws = NULL;
    /* paired probes: per row and rep, nb + 2 probes around decode b1 and each batch
     * (probe m before measurement m, m + 1 after it) */
    double *prb = NULL, probe_s = 0, reps_s = 0;
    size_t wb[MAXD];
    double *pre = calloc((size_t)nd * reps, sizeof(double)), *one = calloc((size_t)nd * reps, sizeof(double));
    double *bat = calloc((size_t)nd * reps * nb, sizeof(double)), *tmp = calloc((size_t)reps, sizeof(double));
    /* the same per second of the process's CPU time (what a busy machine's neighbours do not take) */
    double *cpre = calloc((size_t)nd * reps, sizeof(double)), *cone = calloc((size_t)nd * reps, sizeof(double));
    double *cbat = calloc((size_t)nd * reps * nb, sizeof(double));
    double *med_pre = calloc((size_t)nd, sizeof(double)), *med_one = calloc((size_t)nd, sizeof(double));
    double *med_bat = calloc((size_t)nd * nb, sizeof(double)), *r_pre = calloc((size_t)nd, sizeof(double));
    double *r_one = calloc((size_t)nd, sizeof(double)), *r_bat = calloc((size_t)nd * nb, sizeof(double));
    if (!pre || !one || !bat || !cpre || !cone || !cbat || !tmp || !med_pre || !med_one || !med_bat || !r_pre ||
        !r_one || !r_bat) {
        rc = pgd_cli_fail("out of memory");
        goto done;
    }
    for (int d = 0; d < nd; d++) {
        char spec[600];
        snprintf(spec, sizeof spec, "%s,dtype=%s", model, pgd_dtype_name(dts[d]));
        fprintf(stderr, "pagoda bench: loading %s ...\n", spec);
        pgd_exec_config xc = {.model = spec,
                              .backend = {.name = "cpu", .num_threads = threads, .kv_dtype = pgd_dtype_name(kvs[d])}};
        pgd_cpu_set_x8(!plain[d]); /* the layout is chosen as the model loads */
        pgd_status cst = pgd_exec_create(&xc, &xs[d].exec);
        pgd_cpu_set_x8(1);
        if (cst != PGD_OK) {
            rc = pgd_cli_fail(NULL);
            goto done;
        }
        xs[d].c = pgd_exec_model_config(xs[d].exec);
        xs[d].groups = 1;
        if (plen + steps > xs[d].c->max_seq_len) {
            fprintf(stderr, "pagoda bench: --prompt-len + --decode-steps (%d) exceeds the model's context (%d)\n",
                    plen + steps, xs[d].c->max_seq_len);
            rc = 2;
            goto done;
        }
        if (bench_ctx_init(&xs[d], block_size, max_batch, plen, steps, plen > max_batch ? plen : max_batch)) goto done;
        wb[d] = bench_weight_bytes(xs[d].c);
        /* every sequence's prompt once (its KV is then in place for all decodes), and a warm-up */
        double st;
        pgd_cpu_set_q_int_max_tokens(deq[d] ? 0 : qint_default);
        if (prefill(&xs[d], max_batch, plen, NULL, NULL) || decode(&xs[d], 1, 1, plen, 2, &st, NULL)) goto done;
    }
    fprintf(stderr, "pagoda bench: measuring copy bandwidth ...\n");
    tp = pgd_threadpool_create(threads);
    double bw = pgd_cpu_measure_copy_bandwidth(tp, (size_t)256 << 20, 2 * reps + 1);
    double kvb[MAXD]; /* KV bytes per sequence and step, in each row's KV dtype */
    double fma = 0, int8 = 0, m16 = 0, mub = 0; /* the compute probes: the best of one per rep */
    /* the decode matmul alone on an FFN-shaped (hidden, dim) matrix: streamed from DRAM on the pool
     * (256 MiB, the best over reps) and one thread in L2 (CPU time), per row's weight dtype */
    double mm_dram[MAXD] = {0}, mm_l2[MAXD] = {0};
    double ba_rate[MAXD][BA_N] = {{0}}; /* bench_batched_alone's figures */
    for (int d = 0; d < nd; d++) kvb[d] = bench_kv_bytes(xs[d].c, plen + steps / 2);
    rbws = calloc((size_t)reps, sizeof(double));
    prb = calloc((size_t)nd * reps * (nb + 2), sizeof(double));
    if (!tp || !rbws || !prb) {
        rc = pgd_cli_fail("out of memory");
        goto done;
    }
    double reps_t0 = pgd_cli_now();
    for (int r = 0; r < reps; r++) {
        fprintf(stderr, "pagoda bench: rep %d/%d ...\n", r + 1, reps);
        /* the read bandwidth in every rep, beside the figures it bounds */
        rbws[r] = best_read_bw(tp, 3);
        double f = pgd_cpu_measure_compute(tp, PGD_PROBE_F32_FMA, 1),
               i8 = pgd_cpu_measure_compute(tp, PGD_PROBE_INT8_DOT, 1),
               i16 = pgd_cpu_measure_compute(tp, PGD_PROBE_INT16_MADD, 1),
               u8 = pgd_cpu_measure_compute(tp, PGD_PROBE_U8_MADDUBS, 1);
        fma = f > fma ? f : fma, int8 = i8 > int8 ? i8 : int8, m16 = i16 > m16 ? i16 : m16, mub = u8 > mub ? u8 : mub;
        for (int d = 0; d < nd; d++) {
            const pgd_model_config *c = xs[d].c;
            pgd_cpu_set_x8(!plain[d]);
            double m = pgd_cpu_measure_matmul(tp, c->weight_dtype, c->dim, c->hidden_dim, (size_t)256 << 20, 2);
            pgd_cpu_set_x8(1);
            mm_dram[d] = m > mm_dram[d] ? m : mm_dram[d];
        }
        for (int k = 0; k < nd; k++) {
            int d = (k + r) % nd; /* a different dtype first each rep */
            double t, st, ct, cs;
            pgd_cpu_set_q_int_max_tokens(deq[d] ? 0 : qint_default);
            if (prefill(&xs[d], 1, plen, &t, &ct)) goto done;
            pre[d * reps + r] = plen / t, cpre[d * reps + r] = ct > 0 ? plen / ct : 0;
            double *pr = prb + ((size_t)d * reps + r) * (nb + 2);
            pr[0] = paired_probe(tp, &probe_s);
            if (decode(&xs[d], 1, 1, plen, steps, &st, &cs)) goto done;
            one[d * reps + r] = 1.0 / st, cone[d * reps + r] = cs > 0 ? 1.0 / cs : 0;
            pr[1] = paired_probe(tp, &probe_s);
            for (int i = 0; i < nb; i++) {
                if (decode(&xs[d], batches[i], 1, plen, steps, &st, &cs)) goto done;
                bat[((size_t)d * nb + i) * reps + r] = batches[i] / st;
                cbat[((size_t)d * nb + i) * reps + r] = cs > 0 ? batches[i] / cs : 0;
                pr[2 + i] = paired_probe(tp, &probe_s);
            }
        }
    }
    reps_s = pgd_cli_now() - reps_t0;
    double rbw = 0;
    for (int r = 0; r < reps; r++) rbw = rbws[r] > rbw ? rbws[r] : rbw;
    /* A bound must hold for every read the run saw: where a measurement from
     * DRAM (the matmul alone, or a decode step of a row not held in cache) read
     * faster than the best probe (this VM's bandwidth moves with its
     * neighbours between a probe and a measurement), the bound is that rate. */
    double rprobe = rbw, llc0 = llc_bytes();
    const char *raised_by = NULL;
    for (int d = 0; d < nd; d++) {
        if (mm_dram[d] > rbw) rbw = mm_dram[d], raised_by = "the decode matmul alone";
        if (fits_cache((double)wb[d], llc0)) continue;
        for (int r = 0; r < reps; r++) {
            double got = one[d * reps + r] * ((double)wb[d] + kvb[d]);
            if (got > rbw) rbw = got, raised_by = "a decode b1 step";
            for (int i = 0; i < nb; i++) { /* a batch of B reads the weights and B sequences' KV a step */
                double b = batches[i], step = bat[((size_t)d * nb + i) * reps + r] / b;
                if (step * ((double)wb[d] + b * kvb[d]) > rbw)
                    rbw = step * ((double)wb[d] + b * kvb[d]), raised_by = "a batched decode step";
            }
        }
    }
    int mid = plen + steps / 2;
    for (int d = 0; d < nd; d++) { /* L2: 256 KB of rows, 100 passes */
        const pgd_model_config *c = xs[d].c;
        size_t rowb = pgd_dtype_bytes(c->weight_dtype, (size_t)c->dim);
        int rows = (int)(((size_t)256 << 10) / rowb);
        pgd_cpu_set_x8(!plain[d]);
        mm_l2[d] = pgd_cpu_measure_matmul(NULL, c->weight_dtype, c->dim, rows > 8 ? rows : 8, 0, 100);
        pgd_cpu_set_x8(1);
    }
    double cb1[MAXD], cbb[MAXD][32]; /* compute bounds: decode b1, each batch (row's own path) */
    for (int d = 0; d < nd; d++) {
        pgd_cpu_set_q_int_max_tokens(deq[d] ? 0 : qint_default);
        cb1[d] = bench_compute_bound(xs[d].c, mid, 1, fma, int8, m16, mub);
        for (int i = 0; i < nb && i < 32; i++)
            cbb[d][i] = bench_compute_bound(xs[d].c, mid, batches[i], fma, int8, m16, mub);
    }
    pgd_cpu_set_q_int_max_tokens(qint_default);
    for (int d = 0; d < nd; d++) {
        med_pre[d] = median_of(pre + (size_t)d * reps, reps);
        med_one[d] = median_of(one + (size_t)d * reps, reps);
        for (int i = 0; i < nb; i++) med_bat[d * nb + i] = median_of(bat + ((size_t)d * nb + i) * reps, reps);
        for (int r = 0; r < reps; r++) tmp[r] = pre[d * reps + r] / pre[r];
        r_pre[d] = pgd_cli_median(tmp, reps);
        for (int r = 0; r < reps; r++) tmp[r] = one[d * reps + r] / one[r];
        r_one[d] = pgd_cli_median(tmp, reps);
        for (int i = 0; i < nb; i++) {
            for (int r = 0; r < reps; r++)
                tmp[r] = bat[((size_t)d * nb + i) * reps + r] / bat[(size_t)i * reps + r];
            r_bat[d * nb + i] = pgd_cli_median(tmp, reps);
        }
    }
    char cpu[256];
    pgd_cli_cpu_model(cpu, sizeof cpu);
    printf("machine      : %s, %s\n", cpu, pgd_backend_describe(pgd_exec_backend(xs[0].exec)));
    printf("model        : %s (%s), %.1fM params, weights in %s\n", model, xs[0].c->name,
           pgd_model_config_params(xs[0].c) / 1e6, dtypes_s);
    printf("bandwidth    : read %.2f GB/s (256 MiB on the same threads, the best of 3 probes in each of the\n"
           "               %d reps), copy %.2f GB/s (median of %d before the reps)\n",
           rprobe / 1e9, reps, bw / 1e9, 2 * reps + 1);
    if (raised_by)
        printf("read bound   : %.2f GB/s, above the probe: %s read that fast from DRAM in this run (the VM's\n"
               "               bandwidth moved between probe and measurement), so the bound is that rate\n",
               rbw / 1e9, raised_by);
    printf("compute      : f32 FMA %.1f GFLOP/s, int8 dot %.1f GMAC/s, int16 madd %.1f GMAC/s, u8 maddubs %.1f\n"
           "               GMAC/s (in registers on the same threads, the best of one probe in each rep)\n",
           fma / 1e9, int8 / 1e9, m16 / 1e9, mub / 1e9);
    printf("settings     : prompt %d tokens, %d decode steps, block size %d, median of %d interleaved reps\n",
           plen, steps, block_size, reps);
    printf("read bound   : B x read bw / (weight bytes + B x KV bytes per sequence: %.2f MB in f32)\n",
           2.0 * xs[0].c->n_layers * xs[0].c->n_kv_heads * xs[0].c->head_dim * 4.0 * mid / 1e6);
    printf("compute bound: 1 / (matmul MACs per token (%.1fM) / the kernel's rate (int16 madd for q8_0, u8\n"
           "               maddubs for q4_0 / q4_k, int8 dot for q6_k's integer path, else FMA flops / 2)\n"
           "               + attention flops / FMA flops)\n"
           "%% bd         : of the lower bound, r (read) or c (compute); $: the step fits in cache, so only\n"
           "               the compute bound applies\n\n",
           bench_matmul_macs(xs[0].c) / 1e6);
    double smallest = (double)wb[0], llc = llc_bytes();
    for (int d = 1; d < nd; d++) smallest = (double)wb[d] < smallest ? (double)wb[d] : smallest;
    note_cache(smallest, llc);
    printf("| weights | MB/step | prefill tok/s | vs %s | decode b1 tok/s | %% bd | vs %s |", label[0], label[0]);
    for (int i = 0; i < nb; i++) printf(" batch %d tok/s | %% bd |", batches[i]);
    printf("\n|---|---|---|---|---|---|---|");
    for (int i = 0; i < nb; i++) printf("---|---|");
    printf("\n");
    for (int d = 0; d < nd; d++) {
        int cached = fits_cache((double)wb[d], llc);
        char pct[16];
        printf("| %s | %.1f | %.1f | %.2fx | %.1f | %s | %.2fx |", label[d], wb[d] / 1e6, med_pre[d], r_pre[d],
               med_one[d],
               of_min_bound(pct, sizeof pct, med_one[d], bench_bound(rbw, (double)wb[d], kvb[d], 1), cached, cb1[d]),
               r_one[d]);
        for (int i = 0; i < nb; i++)
            printf(" %.1f | %s |", med_bat[d * nb + i],
                   of_min_bound(pct, sizeof pct, med_bat[d * nb + i],
                                bench_bound(rbw, (double)wb[d], kvb[d], batches[i]), cached, i < 32 ? cbb[d][i] : 0));
        printf("\n");
    }
    /* the same figures against the read probes taken beside each measurement in its rep: this
     * VM's bandwidth moves within minutes, so the run-wide bound (the best of the run) can sit
     * far above what a measurement had */
    printf("\nagainst the read probes beside each measurement (%d MiB, just before and just after it):\n\n| weights |"
           " decode b1 %% bd | %% rd | %% pr | probe GB/s |",
           PAIR_PROBE_MIB);
    for (int i = 0; i < nb; i++) printf(" batch %d %% bd | %% rd | %% pr | probe GB/s |", batches[i]);
    printf("\n|---|---|---|---|---|");
    for (int i = 0; i < nb; i++) printf("---|---|---|---|");
    printf("\n");
    double *pbw = calloc((size_t)reps * 3, sizeof(double));
    if (!pbw) {
        rc = pgd_cli_fail("out of memory");
        goto done;
    }
    for (int d = 0; d < nd; d++) {
        int cached = fits_cache((double)wb[d], llc);
        printf("| %s |", label[d]);
        for (int m = 0; m <= nb; m++) {
            int b = m ? batches[m - 1] : 1;
            const double *tps = m ? bat + ((size_t)d * nb + m - 1) * reps : one + (size_t)d * reps;
            double med = m ? med_bat[d * nb + m - 1] : med_one[d], cb = m ? (m - 1 < 32 ? cbb[d][m - 1] : 0) : cb1[d];
            double ps = paired_shares(prb + (size_t)d * reps * (nb + 2), nb, reps, m, b, (double)wb[d], kvb[d], tps,
                                      pbw, pbw + reps, pbw + 2 * reps);
            double lo = pbw[0], hi = pbw[0];
            for (int r = 1; r < reps; r++) lo = pbw[r] < lo ? pbw[r] : lo, hi = pbw[r] > hi ? pbw[r] : hi;
            char pct[16], rd[16], pp[16];
            double rbound = bench_bound(rbw, (double)wb[d], kvb[d], b);
            if (cached) snprintf(pp, sizeof pp, "cache");
            else snprintf(pp, sizeof pp, "%.0f%%", 100 * ps);
            printf(" %s | %s | %s | %.1f-%.1f |", of_min_bound(pct, sizeof pct, med, rbound, cached, cb),
                   of_bound(rd, sizeof rd, med, rbound, cached), pp, lo / 1e9, hi / 1e9);
        }
        printf("\n");
    }
    free(pbw);
    int nprobes = nd * reps * (nb + 2);
    printf("\n%% bd       : as above: the median tok/s / the lower of the run-wide read and compute bounds\n"
           "%% rd       : the median tok/s / the run-wide read bound alone (B x %.2f GB/s / bytes a step reads)\n"
           "%% pr       : the median over reps of (that rep's tok/s / its paired read bound: B x the faster of the\n"
           "             two probes just before and just after that measurement / bytes a step reads); over\n"
           "             100%%: the decode read faster than both probes beside it\n"
           "probe GB/s : the lowest and highest over reps of that faster probe (a wide range: the machine's\n"
           "             read bandwidth moved during the run)\n"
           "probes     : %d (%d MiB, median of %d passes, each after faulting the buffer in and reading it\n"
           "             once), %.1f s in all (%.0f ms each) of the reps' %.1f s\n",
           rbw / 1e9, nprobes, PAIR_PROBE_MIB, PAIR_PROBE_PASSES, probe_s, nprobes ? 1e3 * probe_s / nprobes : 0,
           reps_s);
    double pmax = 0;
    for (int k = 0; k < nprobes; k++) pmax = prb[k] > pmax ? prb[k] : pmax;
    if (pmax > rbw)
        printf("note       : the fastest paired probe read %.2f GB/s, above the run-wide read bound's %.2f GB/s;\n"
               "             the machine's read bandwidth moved during the run. The run-wide bound is not raised\n"
               "             by these shorter probes (%d MiB against %.1f MB of L3 here: a pass may partly hit\n"
               "             the cache)\n",
               pmax / 1e9, rbw / 1e9, PAIR_PROBE_MIB, llc / 1e6);
    /* the bounds themselves, and what the largest batch may gain over batch 1 */
    int bl = nb - 1;
    printf("\nthe bounds (tok/s) and the largest batch against batch 1:\n\n| weights | b1 read | b1 compute |"
           " batch %d read | batch %d compute | batch %d binds | batch %d / b1 measured | bound / b1 bound |\n"
           "|---|---|---|---|---|---|---|---|\n",
           batches[bl], batches[bl], batches[bl], batches[bl]);
    for (int d = 0; d < nd; d++) {
        int cached = fits_cache((double)wb[d], llc);
        double r1 = bench_bound(rbw, (double)wb[d], kvb[d], 1),
               rb = bench_bound(rbw, (double)wb[d], kvb[d], batches[bl]);
        const char *w1, *wb_;
        double b1 = bench_min_bound(r1, cached, cb1[d], &w1), bb = bench_min_bound(rb, cached, cbb[d][bl], &wb_);
        printf("| %s | %.1f%s | %.1f | %.1f%s | %.1f | %s | %.2fx | %.2fx |\n", label[d], r1, cached ? " $" : "",
               cb1[d], rb, cached ? " $" : "", cbb[d][bl], wb_, med_bat[d * nb + bl] / med_one[d],
               b1 > 0 ? bb / b1 : 0);
    }
    /* where decode b1's share of the read bound goes: the kernel alone against the read probe */
    printf("\nthe decode matmul alone (one token, %d x %d matrices, pgd_cpu_matmul), against the read bound:\n\n"
           "| weights | alone from DRAM GB/s | %% of read bound | decode b1 GB/s read | %% of read bound | decode b1 / "
           "alone | one thread in L2 GB/s (CPU time) |\n|---|---|---|---|---|---|---|\n",
           xs[0].c->hidden_dim, xs[0].c->dim);
    for (int d = 0; d < nd; d++) {
        double got = med_one[d] * ((double)wb[d] + kvb[d]);
        printf("| %s | %.2f | %.0f%% | %.2f | %.0f%% | %.2f | %.2f |\n", label[d], mm_dram[d] / 1e9,
               rbw > 0 ? 100 * mm_dram[d] / rbw : 0, got / 1e9, rbw > 0 ? 100 * got / rbw : 0,
               mm_dram[d] > 0 ? got / mm_dram[d] : 0, mm_l2[d] / 1e9);
    }
    bench_batched_alone(nd, dts, deq, plain, label, xs[0].c, plen, reps, qint_default, ba_rate);
    printf("\nthe same, as ratios to %s measured in the same rep (median over reps):\n\n| weights | prefill | "
           "decode b1 |", label[0]);
    for (int i = 0; i < nb; i++) printf(" batch %d |", batches[i]);
    printf("\n|---|---|---|");
    for (int i = 0; i < nb; i++) printf("---|");
    printf("\n");
    for (int d = 0; d < nd; d++) {
        printf("| %s | %.2fx | %.2fx |", label[d], r_pre[d], r_one[d]);
        for (int i = 0; i < nb; i++) printf(" %.2fx |", r_bat[d * nb + i]);
        printf("\n");
    }
    printf("\n'vs %s': median over reps of the ratio to %s measured in the same rep\n", label[0], label[0]);
    /* per CPU second: on a shared machine the wall-clock ratios carry the neighbours' bursts; these
     * do not (a pool thread's spinning counts, so --threads 1 gives the cleanest) */
    printf("\nper CPU second of the process (tok/s per CPU-s, then the median ratio to %s within a rep):\n\n"
           "| weights | prefill | vs %s | decode b1 | vs %s |",
           label[0], label[0], label[0]);
    for (int i = 0; i < nb; i++) printf(" batch %d | vs %s |", batches[i], label[0]);
    printf("\n|---|---|---|---|---|");
    for (int i = 0; i < nb; i++) printf("---|---|");
    printf("\n");
    for (int d = 0; d < nd; d++) {
        for (int r = 0; r < reps; r++) tmp[r] = cpre[r] > 0 ? cpre[d * reps + r] / cpre[r] : 0;
        double rp = pgd_cli_median(tmp, reps);
        for (int r = 0; r < reps; r++) tmp[r] = cone[r] > 0 ? cone[d * reps + r] / cone[r] : 0;
        double ro = pgd_cli_median(tmp, reps);
        printf("| %s | %.1f | %.2fx | %.1f | %.2fx |", label[d], median_of(cpre + (size_t)d * reps, reps), rp,
               median_of(cone + (size_t)d * reps, reps), ro);
        for (int i = 0; i < nb; i++) {
            for (int r = 0; r < reps; r++)
                tmp[r] = cbat[(size_t)i * reps + r] > 0
                             ? cbat[((size_t)d * nb + i) * reps + r] / cbat[(size_t)i * reps + r]
                             : 0;
            printf(" %.1f | %.2fx |", median_of(cbat + ((size_t)d * nb + i) * reps, reps), pgd_cli_median(tmp, reps));
        }
        printf("\n");
    }
    if (json_path) {
        json_t *o = json_object(), *arr = json_array();
        json_object_set_new(o, "machine", json_string(cpu));
        json_object_set_new(o, "backend", json_string(pgd_backend_describe(pgd_exec_backend(xs[0].exec))));
        json_object_set_new(o, "model", json_string(model));
        json_object_set_new(o, "copy_bandwidth_Bps", json_real(bw));
        json_object_set_new(o, "read_bandwidth_Bps", json_real(rbw));
        json_object_set_new(o, "read_probe_Bps", json_real(rprobe));
        json_object_set_new(o, "fma_flops_per_s", json_real(fma));
        json_object_set_new(o, "int8_dot_macs_per_s", json_real(int8));
        json_object_set_new(o, "int16_madd_macs_per_s", json_real(m16));
        json_object_set_new(o, "u8_maddubs_macs_per_s", json_real(mub));
        json_object_set_new(o, "q_int_max_tokens", json_integer(qint_default));
        /* the probes beside each measurement (per row: single_decode_paired_read_bound, and each
         * batch's paired_read_bound) and what they cost */
        json_object_set_new(o, "paired_probe_bytes", json_integer((json_int_t)PAIR_PROBE_MIB << 20));
        json_object_set_new(o, "paired_probe_passes", json_integer(PAIR_PROBE_PASSES));
        json_object_set_new(o, "paired_probes", json_integer(nd * reps * (nb + 2)));
        json_object_set_new(o, "paired_probe_seconds", json_real(probe_s));
        json_object_set_new(o, "reps_seconds", json_real(reps_s));
        for (int d = 0; d < nd; d++) {
            json_t *e = json_object(), *ba = json_array();
            json_object_set_new(e, "dtype", json_string(pgd_dtype_name(dts[d])));
            json_object_set_new(e, "batched_dequantized", json_boolean(deq[d]));
            json_object_set_new(e, "plain_layout", json_boolean(plain[d]));
            json_object_set_new(e, "fits_cache", json_boolean(fits_cache((double)wb[d], llc)));
            json_object_set_new(e, "kv_dtype", json_string(pgd_dtype_name(kvs[d])));
            json_object_set_new(e, "kv_bytes_per_seq_step", json_real(kvb[d]));
            json_object_set_new(e, "weight_bytes_per_step", json_integer((json_int_t)wb[d]));
            json_object_set_new(e, "prefill_tps", json_real(med_pre[d]));
            json_object_set_new(e, "prefill_ratio_to_first", json_real(r_pre[d]));
            json_object_set_new(e, "single_decode_tps", json_real(med_one[d]));
            json_object_set_new(e, "single_decode_ratio_to_first", json_real(r_one[d]));
            json_object_set_new(e, "bound_decode_tps", json_real(bench_bound(rbw, (double)wb[d], kvb[d], 1)));
            json_object_set_new(e, "compute_bound_decode_tps", json_real(cb1[d]));
            json_object_set_new(e, "matmul_alone_dram_Bps", json_real(mm_dram[d]));
            json_object_set_new(e, "matmul_alone_l2_one_thread_Bps", json_real(mm_l2[d]));
            json_t *bal = json_array();
            for (int i = 0; i < BA_N; i++) {
                json_t *b = json_object();
                json_object_set_new(b, "tokens", json_integer(i < BA_N - 1 ? ba_tokens[i] : plen));
                json_object_set_new(b, "macs_per_s_one_thread", json_real(ba_rate[d][i]));
                json_array_append_new(bal, b);
            }
            json_object_set_new(e, "batched_matmul_alone", bal);
            json_object_set_new(e, "single_decode_paired_read_bound",
                                paired_json(prb + (size_t)d * reps * (nb + 2), nb, reps, 0, 1, (double)wb[d], kvb[d],
                                            one + (size_t)d * reps, bench_bound(rbw, (double)wb[d], kvb[d], 1)));
            for (int i = 0; i < nb; i++) {
                json_t *b = json_object();
                json_object_set_new(b, "batch", json_integer(batches[i]));
                json_object_set_new(b, "decode_tps", json_real(med_bat[d * nb + i]));
                json_object_set_new(b, "bound_tps", json_real(bench_bound(rbw, (double)wb[d], kvb[d], batches[i])));
                json_object_set_new(b, "compute_bound_tps", json_real(i < 32 ? cbb[d][i] : 0));
                json_object_set_new(b, "ratio_to_first", json_real(r_bat[d * nb + i]));
                json_object_set_new(b, "paired_read_bound",
                                    paired_json(prb + (size_t)d * reps * (nb + 2), nb, reps, 1 + i, batches[i],
                                                (double)wb[d], kvb[d], bat + ((size_t)d * nb + i) * reps,
                                                bench_bound(rbw, (double)wb[d], kvb[d], batches[i])));
                json_array_append_new(ba, b);
            }
            json_object_set_new(e, "decode", ba);
            json_array_append_new(arr, e);
        }
        json_object_set_new(o, "dtypes", arr);
        if (pgd_cli_write_json(o, json_path) != 0) { json_decref(o); goto done; }
        json_decref(o);
    }
    rc = 0;
done:
    for (int d = 0; d < nd; d++) {
        free(xs[d].tables);
        free(xs[d].logits);
        pgd_exec_destroy(xs[d].exec);
    }
    pgd_threadpool_destroy(tp);
    free(rbws);
    free(prb);
    free(cpre), free(cone), free(cbat);
    free(pre), free(one), free(bat), free(tmp), free(med_pre), free(med_one), free(med_bat), free(r_pre), free(r_one);
    free(r_bat);
    return rc;
}

int pgd_cmd_bench(int argc, char **argv) {
    const char *model_path = "random:stories110M", *json_path = NULL, *batches_s = "1,8,32", *dtypes_s = NULL,
               *kv_dtypes_s = NULL, *kv_dtype = NULL;
    int threads = 0, plen = 128, steps = 16, reps = 5, block_size = 16;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"threads", required_argument, 0, 'j'},
                                         {"batches", required_argument, 0, 'B'},
                                         {"prompt-len", required_argument, 0, 'p'},
                                         {"decode-steps", required_argument, 0, 'd'},
                                         {"reps", required_argument, 0, 'r'},
                                         {"block-size", required_argument, 0, 'b'},
                                         {"json", required_argument, 0, 'J'},
                                         {"no-overlap", no_argument, 0, 'O'},
                                         {"help", no_argument, 0, 'h'},
                                         {"dtypes", required_argument, 0, 'D'},
                                         {"kv-dtypes", required_argument, 0, 'K'},
                                         {"kv-dtype", required_argument, 0, 'V'},
                                         {"q-int-max", required_argument, 0, 'Q'},
                                         PGD_PAR_LONGOPTS,
                                         {0, 0, 0, 0}};
    pgd_parallel_config par = {0};
    int async = 0, no_overlap = 0;
    optind = 1;
    int ch;
    while ((ch = pgd_cli_getopt(argc, argv, "", opts)) != -1) {
        switch (ch) {
        case 'm': model_path = optarg; break;
        case 'j': if (!pgd_cli_int("--threads", optarg, 0, 1024, &threads)) return 2; break;
        case 'B': batches_s = optarg; break;
        case 'p': if (!pgd_cli_int("--prompt-len", optarg, 1, 1 << 20, &plen)) return 2; break;
        case 'd': if (!pgd_cli_int("--decode-steps", optarg, 1, 1 << 20, &steps)) return 2; break;
        case 'r': if (!pgd_cli_int("--reps", optarg, 1, 1000, &reps)) return 2; break;
        case 'b': if (!pgd_cli_int("--block-size", optarg, 1, 4096, &block_size)) return 2; break;
        case 'J': json_path = optarg; break;
        case 'O': no_overlap = 1; break;
        case 'D': dtypes_s = optarg; break;
        case 'K': kv_dtypes_s = optarg; break;
        case 'V': kv_dtype = optarg; break;
        case 'Q': {
            int q;
            if (!pgd_cli_int("--q-int-max", optarg, 0, 1 << 20, &q)) return 2;
            pgd_cpu_set_q_int_max_tokens(q);
            break;
        }
        case 'h':
            printf("usage: pagoda bench [--model random:stories110M] [--threads N] [--batches 1,8,32]\n"
                   "                    [--prompt-len 128] [--decode-steps 16] [--reps 5] [--json FILE]\n"
                   "                    [--tp N] [--pp M] [--comm threads|mpi|nccl] [--stage-layers A,B] [--pin]\n"
                   "                    [--async] [--no-overlap] [--kv-dtype f32|f16|bf16|q8]\n"
                   "                    [--dtypes f32,f16,bf16,q8_0,q4_0,q8_0:deq [--kv-dtypes "
                   "f32,f16,q8]]\n" PGD_PAR_USAGE
                   "  --no-overlap   decode one batch at a time even when the layout takes several\n"
                   "  --dtypes LIST  the random --model shape in each of these weight dtypes, measured\n"
                   "                 interleaved in one run, each against its own read and compute bounds\n"
                   "                 (one process); q8_0:deq / q4_0:deq: batched matmuls on dequantized f32\n"
                   "                 panels instead of integer dot products (same-run comparison of the paths)\n"
                   "  --kv-dtypes L  with --dtypes: every weight dtype with each of these KV cache dtypes\n"
                   "  --q-int-max N  batched quantized matmuls of up to N tokens take integer dot products\n"
                   "                 (default %d, measured; 0: never), e.g. to measure the switch\n",
                   pgd_cpu_q_int_max_tokens());
            return 0;
        default: {
            int r = pgd_par_opt(ch, optarg, &par, &async);
            if (r == 1) break;
            return 2;
        }
        }
    }
    int batches[32];
    int nb = parse_batches(batches_s, batches, 32);
    if (nb <= 0) return 2;
    int max_batch = 1;
    for (int i = 0; i < nb; i++) if (batches[i] > max_batch) max_batch = batches[i];
    if (kv_dtypes_s && !dtypes_s) {
        fprintf(stderr, "pagoda bench: --kv-dtypes goes with --dtypes (one KV dtype alone: --kv-dtype)\n");
        return 2;
    }
    if (dtypes_s) {
        if (par.tp > 1 || par.pp > 1 || async || par.comm) {
            fprintf(stderr, "pagoda bench: --dtypes measures one process on the CPU backend; drop --tp/--pp/--comm/--async\n");
            return 2;
        }
        return bench_dtypes(model_path, dtypes_s, kv_dtypes_s ? kv_dtypes_s : kv_dtype, threads, plen, steps, reps,
                            block_size, batches, nb, json_path);
    }

    int rc = 1;
    bench_ctx x = {0};
    double *share = NULL, *tmp = NULL, *bt = NULL, *bt1 = NULL, *bratio = NULL, *one = NULL, *rat = NULL;
    double *btk = NULL, *bratiok = NULL, *onek = NULL, *ratk = NULL, *ctmp = NULL, *bcpu = NULL;
    int worker = pgd_parallel_process_serves(&par);
    if (!worker) fprintf(stderr, "pagoda bench: loading %s ...\n", model_path);
    pgd_exec_config xc = {.model = model_path, .backend = {.name = "cpu", .num_threads = threads, .kv_dtype = kv_dtype},
                          .parallel = par,
                          .async = async};
    if (pgd_exec_create(&xc, &x.exec) != PGD_OK) { rc = pgd_cli_fail(NULL); goto done; }
    if (!pgd_exec_is_driver(x.exec)) {
        rc = pgd_exec_serve(x.exec) == PGD_OK ? 0 : pgd_cli_fail(NULL);
        goto done;
    }
    pgd_backend *be = pgd_exec_backend(x.exec);
    x.c = pgd_exec_model_config(x.exec);
    x.groups = no_overlap ? 1 : pgd_exec_max_in_flight(x.exec);
    if (plen + steps > x.c->max_seq_len) {
        fprintf(stderr, "pagoda bench: --prompt-len + --decode-steps (%d) exceeds the model's context (%d)\n",
                plen + steps, x.c->max_seq_len);
        goto done;
    }
    if (bench_ctx_init(&x, block_size, x.groups * max_batch, plen, steps, plen > max_batch ? plen : max_batch))
        goto done;
    size_t wbytes = bench_weight_bytes(x.c);

    fprintf(stderr, "pagoda bench: measuring copy and read bandwidth ...\n");
    pgd_threadpool *tp = pgd_threadpool_create(threads);
    double bw = pgd_cpu_measure_copy_bandwidth(tp, (size_t)256 << 20, 2 * reps + 1);
    double rbw = best_read_bw(tp, 2 * reps + 1);
    pgd_threadpool_destroy(tp);
    /* a decode step at batch B reads the weights once and each sequence's
     * KV cache (at the middle of the measured steps); the read bound */
    double kvseq = bench_kv_bytes(x.c, plen + steps / 2);
    double bound = rbw / ((double)wbytes + kvseq);

    tmp = malloc(sizeof(double) * (size_t)reps), ctmp = malloc(sizeof(double) * (size_t)reps);
    bcpu = calloc((size_t)nb, sizeof(double));
    double t_pref[1], c_pref[1], single = 0, pref_tps = 0, single_cpu = 0, pref_cpu = 0;
    bt = calloc((size_t)nb, sizeof(double)), bt1 = calloc((size_t)nb, sizeof(double));
    bratio = calloc((size_t)nb, sizeof(double)), one = malloc(sizeof(double) * (size_t)reps);
    rat = malloc(sizeof(double) * (size_t)reps);
    btk = calloc((size_t)nb, sizeof(double)), bratiok = calloc((size_t)nb, sizeof(double));
    onek = malloc(sizeof(double) * (size_t)reps), ratk = malloc(sizeof(double) * (size_t)reps);
    if (!tmp || !ctmp || !bcpu || !bt || !bt1 || !bratio || !one || !rat || !btk || !bratiok || !onek || !ratk)
        goto done;
    /* warm-up */
    if (prefill(&x, 1, plen, NULL, NULL) || decode(&x, 1, 1, plen, 2, &single, NULL)) goto done;
    fprintf(stderr, "pagoda bench: prefill and single-sequence decode ...\n");
    /* communication share: the driver's seconds inside communicator calls
     * (waiting for the other ranks included) over the phase's wall time */
    share = calloc((size_t)nb + 2, sizeof(double));
    if (!share) goto done;
    double c0 = pgd_exec_comm_seconds(x.exec), w0 = pgd_cli_now();
    for (int r = 0; r < reps; r++) {
        if (prefill(&x, 1, plen, t_pref, c_pref)) goto done;
        tmp[r] = plen / t_pref[0];
        ctmp[r] = plen / c_pref[0];
    }
    pref_tps = pgd_cli_median(tmp, reps);
    pref_cpu = pgd_cli_median(ctmp, reps);
    share[0] = (pgd_exec_comm_seconds(x.exec) - c0) / (pgd_cli_now() - w0);
    c0 = pgd_exec_comm_seconds(x.exec), w0 = pgd_cli_now();
    for (int r = 0; r < reps; r++) {
        double st, sc;
        if (prefill(&x, 1, plen, NULL, NULL) || decode(&x, 1, 1, plen, steps, &st, &sc)) goto done;
        tmp[r] = 1.0 / st;
        ctmp[r] = 1.0 / sc;
    }
    single = pgd_cli_median(tmp, reps);
    single_cpu = pgd_cli_median(ctmp, reps);
    share[1] = (pgd_exec_comm_seconds(x.exec) - c0) / (pgd_cli_now() - w0);
    for (int i = 0; i < nb; i++) {
        fprintf(stderr, "pagoda bench: decode at batch %d ...\n", batches[i]);
        if (prefill(&x, batches[i] * x.groups, plen, NULL, NULL)) goto done;
        double comm = 0, wall = 0;
        for (int r = 0; r < reps; r++) {
            double st, sc, st1, stk;
            c0 = pgd_exec_comm_seconds(x.exec), w0 = pgd_cli_now();
            if (decode(&x, batches[i], x.groups, plen, steps, &st, &sc)) goto done;
            comm += pgd_exec_comm_seconds(x.exec) - c0, wall += pgd_cli_now() - w0;
            tmp[r] = (double)batches[i] * x.groups / st;
            ctmp[r] = (double)batches[i] * x.groups / sc;
            if (x.groups > 1) { /* interleaved: one batch at a time, of B and of K x B */
                if (decode(&x, batches[i], 1, plen, steps, &st1, NULL) ||
                    decode(&x, batches[i] * x.groups, 1, plen, steps, &stk, NULL))
                    goto done;
                one[r] = (double)batches[i] / st1;
                rat[r] = tmp[r] / one[r];
                onek[r] = (double)batches[i] * x.groups / stk;
                ratk[r] = tmp[r] / onek[r];
            }
        }
        bt[i] = pgd_cli_median(tmp, reps);
        bcpu[i] = pgd_cli_median(ctmp, reps);
        if (x.groups > 1) {
            bt1[i] = pgd_cli_median(one, reps);
            bratio[i] = pgd_cli_median(rat, reps);
            btk[i] = pgd_cli_median(onek, reps);
            bratiok[i] = pgd_cli_median(ratk, reps);
        }
        share[2 + i] = comm / wall;
    }

    char cpu[256];
    pgd_cli_cpu_model(cpu, sizeof cpu);
    printf("machine      : %s, %s\n", cpu, pgd_backend_describe(be));
    char dts[64];
    printf("model        : %s (%s), %.1fM params, %s weights, %.1f MB read per decode step\n", model_path, x.c->name,
           pgd_model_config_params(x.c) / 1e6, pgd_model_config_dtype_str(x.c, dts, sizeof dts), wbytes / 1e6);
    printf("copy bw      : %.2f GB/s (256 MiB memcpy on the same threads, bytes read + written,\n"
           "               median of %d)\n", bw / 1e9, 2 * reps + 1);
    printf("read bw      : %.2f GB/s (256 MiB read on the same threads, the best of %d)\n", rbw / 1e9,
           2 * reps + 1);
    printf("bound        : %.1f tok/s batch-1 decode (read bw / bytes read per step: weights + %.2f MB\n"
           "               of KV per sequence); batch B: B x read bw / (weights + B x KV)\n",
           bound, kvseq / 1e6);
    printf("settings     : prompt %d tokens, %d decode steps, block size %d, median of %d reps\n",
           plen, steps, block_size, reps);
    double llc = llc_bytes();
    int cached = fits_cache((double)wbytes, llc);
    char pct[16];
    note_cache((double)wbytes, llc);
    printf("layout       : %s\n", pgd_exec_describe(x.exec));
    if (x.groups > 1)
        printf("in flight    : %d batches of B sequences decode together (%d x B sequences; --no-overlap: 1)\n\n",
               x.groups, x.groups);
    else
        printf("in flight    : 1 batch at a time\n\n");
    printf("| %-30s | %12s | %10s | %10s |\n", "measurement", "tokens/s", "ratio", "comm share");
    printf("|--------------------------------|--------------|------------|------------|\n");
    char ratio0[32];
    snprintf(ratio0, sizeof ratio0, cached ? "%s" : "%s bd", of_bound(pct, sizeof pct, single, bound, cached));
    printf("| %-30s | %12.1f | %10s | %9.1f%% |\n", "single-sequence decode", single, ratio0, 100 * share[1]);
    printf("| %-30s | %12.1f | %10s | %9.1f%% |\n", "prefill", pref_tps, "", 100 * share[0]);
    for (int i = 0; i < nb; i++) {
        char name[64], ratio[32];
        if (x.groups > 1) snprintf(name, sizeof name, "decode %d x batch %d in flight", x.groups, batches[i]);
        else snprintf(name, sizeof name, "decode batch %d", batches[i]);
        double bbound = bench_bound(rbw, wbytes, kvseq, batches[i] * x.groups);
        if (x.groups == 1)
            snprintf(ratio, sizeof ratio, cached ? "%s" : "%s bd", of_bound(pct, sizeof pct, bt[i], bbound, cached));
        else ratio[0] = 0;
        printf("| %-30s | %12.1f | %10s | %9.1f%% |\n", name, bt[i], ratio, 100 * share[2 + i]);
        if (x.groups > 1) {
            snprintf(name, sizeof name, "  1 batch of %d at a time", batches[i]);
            snprintf(ratio, sizeof ratio, "%.2fx", bratio[i]);
            printf("| %-30s | %12.1f | %10s | %10s |\n", name, bt1[i], ratio, "");
            snprintf(name, sizeof name, "  1 batch of %d at a time", batches[i] * x.groups);
            snprintf(ratio, sizeof ratio, "%.2fx", bratiok[i]);
            printf("| %-30s | %12.1f | %10s | %10s |\n", name, btk[i], ratio, "");
        }
    }
    if (x.groups > 1)
        printf("\nratio of a '1 batch at a time' row: the in-flight row / it, the median of the per-rep ratios\n"
               "(measured alternately in each rep)\n");
    if (json_path) {
        json_t *o = json_object(), *arr = json_array();
        json_object_set_new(o, "machine", pgd_json_text(cpu));
        json_object_set_new(o, "backend", pgd_json_text(pgd_backend_describe(be)));
        json_object_set_new(o, "model", pgd_json_text(model_path));
        json_object_set_new(o, "weight_bytes_per_step", json_integer((json_int_t)wbytes));
        json_object_set_new(o, "copy_bandwidth_Bps", json_real(bw));
        json_object_set_new(o, "read_bandwidth_Bps", json_real(rbw));
        json_object_set_new(o, "kv_bytes_per_seq_step", json_real(kvseq));
        json_object_set_new(o, "bound_decode_tps", json_real(bound));
        json_object_set_new(o, "single_decode_tps", json_real(single));
        json_object_set_new(o, "prefill_tps", json_real(pref_tps));
        json_object_set_new(o, "single_decode_cpu_tps", json_real(single_cpu));
        json_object_set_new(o, "prefill_cpu_tps", json_real(pref_cpu));
        json_object_set_new(o, "layout", pgd_json_text(pgd_exec_describe(x.exec)));
        json_object_set_new(o, "batches_in_flight", json_integer(x.groups));
        json_object_set_new(o, "prefill_comm_share", json_real(share[0]));
        for (int i = 0; i < nb; i++) {
            json_t *e = json_object();
            json_object_set_new(e, "batch", json_integer(batches[i]));
            json_object_set_new(e, "decode_tps", json_real(bt[i]));
            json_object_set_new(e, "decode_cpu_tps", json_real(bcpu[i]));
            json_object_set_new(e, "comm_share", json_real(share[2 + i]));
            json_object_set_new(e, "bound_tps", json_real(bench_bound(rbw, wbytes, kvseq, batches[i] * x.groups)));
            if (x.groups > 1) { /* tokens/s of K batches of B in flight; one batch of B, of K x B at a time */
                json_object_set_new(e, "decode_tps_one_at_a_time", json_real(bt1[i]));
                json_object_set_new(e, "in_flight_ratio", json_real(bratio[i]));
                json_object_set_new(e, "decode_tps_one_batch_of_all", json_real(btk[i]));
                json_object_set_new(e, "in_flight_ratio_same_seqs", json_real(bratiok[i]));
            }
            json_array_append_new(arr, e);
        }
        json_object_set_new(o, "decode", arr);
        if (pgd_cli_write_json(o, json_path) != 0) {
            json_decref(o);
            goto done;
        }
        json_decref(o);
    }
    rc = 0;
done:
    free(tmp), free(bt), free(bt1), free(bratio), free(one), free(rat);
    free(btk), free(bratiok), free(onek), free(ratk), free(ctmp), free(bcpu);
    free(share);
    free(x.tables);
    free(x.logits);
    pgd_exec_destroy(x.exec);
    pgd_comm_mpi_finalize();
    return rc;
}
