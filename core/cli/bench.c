/* bench.c - `pagoda bench`: speed of a model's forward pass on this machine,
 * set against the memory-bandwidth bound measured in the same run.
 *
 * Reports the median over --reps repetitions of: copy bandwidth (memcpy of a
 * buffer far larger than the caches, split over the same number of threads;
 * bytes read + bytes written per second, as STREAM counts Copy), single-sequence
 * decode tokens/s, prefill tokens/s (one --prompt-len prompt), and decode
 * throughput with B sequences decoding together through the paged cache for
 * each B in --batches. The batch-1 bound is copy bandwidth / bytes of weights
 * read per decode step. Only the CPU backend exists today, so the bound
 * is the CPU's.
 *
 * The JSON output also gives each throughput per CPU second of the
 * process (CLOCK_PROCESS_CPUTIME_ID: all its threads, a pool's spinning
 * included): *_cpu_tps. On a shared machine that is the steadier number
 * (time spent waiting for a CPU does not count), which the perf gate's A/B
 * mode compares; with --threads 1 it is the compute thread's own time. */
#include <getopt.h>
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
#include "pagoda/model.h"

typedef struct bench_ctx {
    pgd_model *model;
    pgd_kv_cache *kv;
    const pgd_model_config *c;
    int bs, mb;         /* block size, blocks per sequence */
    int32_t *tables;    /* (max_batch, mb) */
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
        if (pgd_model_forward(x->model, x->kv, &b, x->logits) != PGD_OK) rc = pgd_cli_fail("forward");
        if (s == 0 && secs) *secs = pgd_cli_now() - t0;
        if (s == 0 && cpu) *cpu = cpu_now() - c0;
    }
    free(toks);
    return rc;
}

/* Decode `steps` steps of `nseq` sequences whose contexts start at plen; median step wall
 * seconds, and (cpu_med may be NULL) median step CPU seconds. */
static int decode(bench_ctx *x, int nseq, int plen, int steps, double *step_med, double *cpu_med) {
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)nseq), *qs = malloc(sizeof(int32_t) * (size_t)(nseq + 1)),
            *lens = malloc(sizeof(int32_t) * (size_t)nseq);
    double *t = malloc(sizeof(double) * (size_t)steps), *c = malloc(sizeof(double) * (size_t)steps);
    int rc = 0;
    for (int st = 0; st < steps && !rc; st++) {
        for (int s = 0; s < nseq; s++) {
            toks[s] = (s * 31 + st * 17 + 5) % x->c->vocab_size;
            qs[s] = s;
            lens[s] = plen + st + 1;
        }
        qs[nseq] = nseq;
        pgd_batch b = {.num_seqs = nseq, .num_tokens = nseq, .tokens = toks, .query_start = qs,
                       .seq_lens = lens, .block_tables = x->tables, .max_blocks_per_seq = x->mb};
        double t0 = pgd_cli_now(), c0 = cpu_now();
        if (pgd_model_forward(x->model, x->kv, &b, x->logits) != PGD_OK) rc = pgd_cli_fail("forward");
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

int pgd_cmd_bench(int argc, char **argv) {
    const char *model_path = "random:stories110M", *json_path = NULL, *batches_s = "1,8,32";
    int threads = 0, plen = 128, steps = 16, reps = 5, block_size = 16;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},      {"threads", required_argument, 0, 'j'},
        {"batches", required_argument, 0, 'B'},    {"prompt-len", required_argument, 0, 'p'},
        {"decode-steps", required_argument, 0, 'd'}, {"reps", required_argument, 0, 'r'},
        {"block-size", required_argument, 0, 'b'}, {"json", required_argument, 0, 'J'},
        {"help", no_argument, 0, 'h'},             PGD_PAR_LONGOPTS, {0, 0, 0, 0}};
    pgd_parallel_config par = {0};
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'm': model_path = optarg; break;
        case 'j': if (!pgd_cli_int("--threads", optarg, 0, 1024, &threads)) return 2; break;
        case 'B': batches_s = optarg; break;
        case 'p': if (!pgd_cli_int("--prompt-len", optarg, 1, 1 << 20, &plen)) return 2; break;
        case 'd': if (!pgd_cli_int("--decode-steps", optarg, 1, 1 << 20, &steps)) return 2; break;
        case 'r': if (!pgd_cli_int("--reps", optarg, 1, 1000, &reps)) return 2; break;
        case 'b': if (!pgd_cli_int("--block-size", optarg, 1, 4096, &block_size)) return 2; break;
        case 'J': json_path = optarg; break;
        case 'h':
            printf("usage: pagoda bench [--model random:stories110M] [--threads N] [--batches 1,8,32]\n"
                   "                    [--prompt-len 128] [--decode-steps 16] [--reps 5] [--json FILE]\n"
                   "                    [--tp N] [--pp M] [--comm threads|mpi|nccl] [--stage-layers A,B] [--pin]\n"
                   PGD_PAR_USAGE);
            return 0;
        default: {
            int r = pgd_par_opt(ch, optarg, &par);
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

    int rc = 1;
    pgd_backend *be = NULL;
    bench_ctx x = {0};
    double *share = NULL;
    pgd_backend_config bc = {.name = "cpu", .num_threads = threads}, rank_bc;
    pgd_model_load_opts mo = {0};
    if (pgd_parallel_prepare(&par, threads, &bc, &rank_bc, &mo) != PGD_OK) return pgd_cli_fail(NULL);
    if (pgd_backend_create(&bc, &be) != PGD_OK) return pgd_cli_fail("backend");
    int worker = pgd_par_is_worker_process(&par);
    if (!worker) fprintf(stderr, "pagoda bench: loading %s ...\n", model_path);
    if (pgd_model_load(model_path, &mo, be, &x.model) != PGD_OK) { rc = pgd_cli_fail(NULL); goto done; }
    if (!pgd_model_is_driver(x.model)) {
        rc = pgd_model_serve(x.model) == PGD_OK ? 0 : pgd_cli_fail(NULL);
        goto done;
    }
    x.c = pgd_model_get_config(x.model);
    if (plen + steps > x.c->max_seq_len) {
        fprintf(stderr, "pagoda bench: --prompt-len + --decode-steps (%d) exceeds the model's context (%d)\n",
                plen + steps, x.c->max_seq_len);
        goto done;
    }
    x.bs = block_size;
    x.mb = (plen + steps + block_size - 1) / block_size;
    int prefill_rows = plen > max_batch ? plen : max_batch;
    x.tables = malloc(sizeof(int32_t) * (size_t)max_batch * x.mb);
    x.logits = malloc(sizeof(float) * (size_t)prefill_rows * x.c->vocab_size);
    if (!x.tables || !x.logits) { fprintf(stderr, "pagoda bench: out of memory\n"); goto done; }
    for (int i = 0; i < max_batch * x.mb; i++) x.tables[i] = i + 1;
    if (pgd_model_kv_cache_create(x.model, block_size, max_batch * x.mb + 1, &x.kv) != PGD_OK) { rc = pgd_cli_fail(NULL); goto done; }

    /* bytes read per decode step: every weight except the embedding table
     * (only a few rows are gathered) unless it doubles as the classifier */
    size_t wbytes = pgd_model_config_weight_bytes(x.c);
    if (!x.c->tied_classifier)
        wbytes -= (size_t)x.c->vocab_size * x.c->dim * pgd_dtype_size(x.c->weight_dtype);

    fprintf(stderr, "pagoda bench: measuring copy bandwidth ...\n");
    pgd_threadpool *tp = pgd_threadpool_create(threads);
    double bw = pgd_cpu_measure_copy_bandwidth(tp, (size_t)256 << 20, 2 * reps + 1);
    pgd_threadpool_destroy(tp);
    double bound = bw / (double)wbytes;

    double *tmp = malloc(sizeof(double) * (size_t)reps), *ctmp = malloc(sizeof(double) * (size_t)reps);
    double t_pref[1], c_pref[1], single = 0, pref_tps = 0, single_cpu = 0, pref_cpu = 0;
    double *bt = calloc((size_t)nb, sizeof(double)), *bcpu = calloc((size_t)nb, sizeof(double));
    /* warm-up */
    if (prefill(&x, 1, plen, NULL, NULL) || decode(&x, 1, plen, 2, &single, NULL)) goto done;
    fprintf(stderr, "pagoda bench: prefill and single-sequence decode ...\n");
    /* communication share: the driver's seconds inside communicator calls
     * (waiting for the other ranks included) over the phase's wall time */
    share = calloc((size_t)nb + 2, sizeof(double));
    if (!share) goto done;
    double c0 = pgd_model_comm_seconds(x.model), w0 = pgd_cli_now();
    for (int r = 0; r < reps; r++) {
        if (prefill(&x, 1, plen, t_pref, c_pref)) goto done;
        tmp[r] = plen / t_pref[0];
        ctmp[r] = plen / c_pref[0];
    }
    pref_tps = pgd_cli_median(tmp, reps);
    pref_cpu = pgd_cli_median(ctmp, reps);
    share[0] = (pgd_model_comm_seconds(x.model) - c0) / (pgd_cli_now() - w0);
    c0 = pgd_model_comm_seconds(x.model), w0 = pgd_cli_now();
    for (int r = 0; r < reps; r++) {
        double st, sc;
        if (prefill(&x, 1, plen, NULL, NULL) || decode(&x, 1, plen, steps, &st, &sc)) goto done;
        tmp[r] = 1.0 / st;
        ctmp[r] = 1.0 / sc;
    }
    single = pgd_cli_median(tmp, reps);
    single_cpu = pgd_cli_median(ctmp, reps);
    share[1] = (pgd_model_comm_seconds(x.model) - c0) / (pgd_cli_now() - w0);
    for (int i = 0; i < nb; i++) {
        fprintf(stderr, "pagoda bench: decode at batch %d ...\n", batches[i]);
        if (prefill(&x, batches[i], plen, NULL, NULL)) goto done;
        c0 = pgd_model_comm_seconds(x.model), w0 = pgd_cli_now();
        for (int r = 0; r < reps; r++) {
            double st, sc;
            if (decode(&x, batches[i], plen, steps, &st, &sc)) goto done;
            tmp[r] = batches[i] / st;
            ctmp[r] = batches[i] / sc;
        }
        bt[i] = pgd_cli_median(tmp, reps);
        bcpu[i] = pgd_cli_median(ctmp, reps);
        share[2 + i] = (pgd_model_comm_seconds(x.model) - c0) / (pgd_cli_now() - w0);
    }

    char cpu[256];
    pgd_cli_cpu_model(cpu, sizeof cpu);
    printf("machine      : %s, %s\n", cpu, pgd_backend_describe(be));
    printf("model        : %s (%s), %.1fM params, %s weights, %.1f MB read per decode step\n",
           model_path, x.c->name, pgd_model_config_params(x.c) / 1e6, pgd_dtype_name(x.c->weight_dtype),
           wbytes / 1e6);
    printf("copy bw      : %.2f GB/s (256 MiB memcpy on the same threads, bytes read + written,\n"
           "               median of %d)\n", bw / 1e9, 2 * reps + 1);
    printf("bound        : %.1f tok/s batch-1 decode (copy bw / weight bytes per step)\n", bound);
    printf("settings     : prompt %d tokens, %d decode steps, block size %d, median of %d reps\n",
           plen, steps, block_size, reps);
    printf("layout       : %s\n\n", pgd_model_layout_str(x.model));
    printf("| %-28s | %12s | %10s | %10s |\n", "measurement", "tokens/s", "ratio", "comm share");
    printf("|------------------------------|--------------|------------|------------|\n");
    printf("| %-28s | %12.1f | %9.0f%% | %9.1f%% |\n", "single-sequence decode", single, 100 * single / bound,
           100 * share[1]);
    printf("| %-28s | %12.1f | %10s | %9.1f%% |\n", "prefill", pref_tps, "", 100 * share[0]);
    double b1 = 0;
    for (int i = 0; i < nb; i++) if (batches[i] == 1) b1 = bt[i];
    for (int i = 0; i < nb; i++) {
        char name[64], ratio[32];
        snprintf(name, sizeof name, "decode batch %d", batches[i]);
        if (batches[i] == 1) snprintf(ratio, sizeof ratio, "%.0f%% bound", 100 * bt[i] / bound);
        else if (b1 > 0) snprintf(ratio, sizeof ratio, "%.2fx b1", bt[i] / b1);
        else ratio[0] = 0;
        printf("| %-28s | %12.1f | %10s | %9.1f%% |\n", name, bt[i], ratio, 100 * share[2 + i]);
    }
    if (json_path) {
        json_t *o = json_object(), *arr = json_array();
        json_object_set_new(o, "machine", json_string(cpu));
        json_object_set_new(o, "backend", json_string(pgd_backend_describe(be)));
        json_object_set_new(o, "model", json_string(model_path));
        json_object_set_new(o, "weight_bytes_per_step", json_integer((json_int_t)wbytes));
        json_object_set_new(o, "copy_bandwidth_Bps", json_real(bw));
        json_object_set_new(o, "bound_decode_tps", json_real(bound));
        json_object_set_new(o, "single_decode_tps", json_real(single));
        json_object_set_new(o, "prefill_tps", json_real(pref_tps));
        json_object_set_new(o, "single_decode_cpu_tps", json_real(single_cpu));
        json_object_set_new(o, "prefill_cpu_tps", json_real(pref_cpu));
        json_object_set_new(o, "layout", json_string(pgd_model_layout_str(x.model)));
        json_object_set_new(o, "prefill_comm_share", json_real(share[0]));
        for (int i = 0; i < nb; i++) {
            json_t *e = json_object();
            json_object_set_new(e, "batch", json_integer(batches[i]));
            json_object_set_new(e, "decode_tps", json_real(bt[i]));
            json_object_set_new(e, "decode_cpu_tps", json_real(bcpu[i]));
            json_object_set_new(e, "comm_share", json_real(share[2 + i]));
            json_array_append_new(arr, e);
        }
        json_object_set_new(o, "decode", arr);
        if (json_dump_file(o, json_path, JSON_INDENT(2)) != 0)
            fprintf(stderr, "pagoda bench: cannot write %s\n", json_path);
        json_decref(o);
    }
    free(tmp);
    free(ctmp);
    free(bt);
    free(bcpu);
    rc = 0;
done:
    free(share);
    free(x.tables);
    free(x.logits);
    pgd_kv_cache_destroy(x.kv);
    pgd_model_destroy(x.model);
    pgd_backend_destroy(be);
    pgd_comm_mpi_finalize();
    return rc;
}
