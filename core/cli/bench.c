/* bench.c - `pagoda bench`: speed of a model's forward pass on this machine,
 * set against the memory-bandwidth bound measured in the same run.
 *
 * Reports the median over --reps repetitions of: copy bandwidth (memcpy of a
 * buffer far larger than the caches, split over the same number of threads;
 * bytes read + bytes written per second, as STREAM counts Copy), single-sequence
 * decode tokens/s, prefill tokens/s (one --prompt-len prompt), and decode
 * throughput with B sequences decoding together through the paged cache for
 * each B in --batches. The batch-1 bound is copy bandwidth / bytes of weights
 * read per decode step, the CPU's (the bench runs on the CPU backend).
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
        {"no-overlap", no_argument, 0, 'O'},       {"help", no_argument, 0, 'h'},
        PGD_PAR_LONGOPTS, {0, 0, 0, 0}};
    pgd_parallel_config par = {0};
    int async = 0, no_overlap = 0;
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
        case 'O': no_overlap = 1; break;
        case 'h':
            printf("usage: pagoda bench [--model random:stories110M] [--threads N] [--batches 1,8,32]\n"
                   "                    [--prompt-len 128] [--decode-steps 16] [--reps 5] [--json FILE]\n"
                   "                    [--tp N] [--pp M] [--comm threads|mpi|nccl] [--stage-layers A,B] [--pin]\n"
                   "                    [--async] [--no-overlap]\n"
                   PGD_PAR_USAGE
                   "  --no-overlap   decode one batch at a time even when the layout takes several\n");
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

    int rc = 1;
    bench_ctx x = {0};
    double *share = NULL, *tmp = NULL, *bt = NULL, *bt1 = NULL, *bratio = NULL, *one = NULL, *rat = NULL;
    double *btk = NULL, *bratiok = NULL, *onek = NULL, *ratk = NULL, *ctmp = NULL, *bcpu = NULL;
    int worker = pgd_parallel_process_serves(&par);
    if (!worker) fprintf(stderr, "pagoda bench: loading %s ...\n", model_path);
    pgd_exec_config xc = {.model = model_path, .backend = {.name = "cpu", .num_threads = threads}, .parallel = par,
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
    x.bs = block_size;
    x.mb = (plen + steps + block_size - 1) / block_size;
    int prefill_rows = plen > max_batch ? plen : max_batch;
    int nseqs = x.groups * max_batch;
    x.tables = malloc(sizeof(int32_t) * (size_t)nseqs * x.mb);
    x.logits = malloc(sizeof(float) * (size_t)prefill_rows * x.c->vocab_size);
    if (!x.tables || !x.logits) { fprintf(stderr, "pagoda bench: out of memory\n"); goto done; }
    for (int i = 0; i < nseqs * x.mb; i++) x.tables[i] = i + 1;
    if (pgd_exec_kv_create(x.exec, block_size, nseqs * x.mb + 1, 0) != PGD_OK) { rc = pgd_cli_fail(NULL); goto done; }

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
    printf("model        : %s (%s), %.1fM params, %s weights, %.1f MB read per decode step\n",
           model_path, x.c->name, pgd_model_config_params(x.c) / 1e6, pgd_dtype_name(x.c->weight_dtype),
           wbytes / 1e6);
    printf("copy bw      : %.2f GB/s (256 MiB memcpy on the same threads, bytes read + written,\n"
           "               median of %d)\n", bw / 1e9, 2 * reps + 1);
    printf("bound        : %.1f tok/s batch-1 decode (copy bw / weight bytes per step)\n", bound);
    printf("settings     : prompt %d tokens, %d decode steps, block size %d, median of %d reps\n",
           plen, steps, block_size, reps);
    printf("layout       : %s\n", pgd_exec_describe(x.exec));
    if (x.groups > 1)
        printf("in flight    : %d batches of B sequences decode together (%d x B sequences; --no-overlap: 1)\n\n",
               x.groups, x.groups);
    else
        printf("in flight    : 1 batch at a time\n\n");
    printf("| %-30s | %12s | %10s | %10s |\n", "measurement", "tokens/s", "ratio", "comm share");
    printf("|--------------------------------|--------------|------------|------------|\n");
    printf("| %-30s | %12.1f | %9.0f%% | %9.1f%% |\n", "single-sequence decode", single, 100 * single / bound,
           100 * share[1]);
    printf("| %-30s | %12.1f | %10s | %9.1f%% |\n", "prefill", pref_tps, "", 100 * share[0]);
    double b1 = 0;
    for (int i = 0; i < nb; i++) if (batches[i] == 1) b1 = bt[i];
    for (int i = 0; i < nb; i++) {
        char name[64], ratio[32];
        if (x.groups > 1) snprintf(name, sizeof name, "decode %d x batch %d in flight", x.groups, batches[i]);
        else snprintf(name, sizeof name, "decode batch %d", batches[i]);
        if (batches[i] == 1 && x.groups == 1) snprintf(ratio, sizeof ratio, "%.0f%% bound", 100 * bt[i] / bound);
        else if (b1 > 0 && x.groups == 1) snprintf(ratio, sizeof ratio, "%.2fx b1", bt[i] / b1);
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
            if (x.groups > 1) { /* tokens/s of K batches of B in flight; one batch of B, of K x B at a time */
                json_object_set_new(e, "decode_tps_one_at_a_time", json_real(bt1[i]));
                json_object_set_new(e, "in_flight_ratio", json_real(bratio[i]));
                json_object_set_new(e, "decode_tps_one_batch_of_all", json_real(btk[i]));
                json_object_set_new(e, "in_flight_ratio_same_seqs", json_real(bratiok[i]));
            }
            json_array_append_new(arr, e);
        }
        json_object_set_new(o, "decode", arr);
        if (json_dump_file(o, json_path, JSON_INDENT(2)) != 0)
            fprintf(stderr, "pagoda bench: cannot write %s\n", json_path);
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
