/* bench_serve.c - `pagoda bench serve --url URL EXP.ini`: replays each run's
 * [workload] (the same request list `pagoda run` builds: arrivals, lengths,
 * traces, datasets, priorities, multi-turn conversations) against an
 * OpenAI-compatible server with the HTTP load generator (pagoda/loadgen.h)
 * and writes what the client measured as the same results `pagoda run`
 * writes (DIR/<experiment>/<run>/ with summary.json, requests.csv,
 * timeline.csv (the client's: requests in flight every 0.1 s), op_times.csv,
 * config.ini, env.json, complete.json, and runs.csv), so `pagoda plot` and
 * `pagoda compare` read them. The engine keys of the config ([engine],
 * [parallel], the backend) are the server's business and are not used;
 * [model] path gives the vocabulary and context the workload is built for
 * (random:<shape> needs no weights; a file's header is read) and [model]
 * tokenizer the tokenizer of datasets and of multi-turn histories.
 *
 * Exit status: 0 every run written, 1 a run failed (more than 10% of its
 * requests failed), the server could not be reached, or the results
 * directory is in use; 2 bad usage or config. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "pagoda/exec.h"
#include "pagoda/loadgen.h"
#include "pagoda/model.h"
#include "pagoda/results.h"
#include "pagoda/runner.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: pagoda bench serve --url URL [--model-name NAME] [--out DIR] [--only NAME] [--timeout S]\n"
            "                          [--token-ids] [--quiet] EXPERIMENT.ini\n"
            "\n"
            "  --url         the server's root, e.g. http://127.0.0.1:8000 (POST /v1/completions, streamed)\n"
            "  --model-name  the \"model\" of every request (default: the first id of GET /v1/models)\n"
            "  --out         root of the results (default: [experiment] output_dir, else results)\n"
            "  --only        replay only the runs whose name contains NAME\n"
            "  --timeout     seconds one request may take (default 600)\n"
            "  --token-ids   ask for the output's token ids (\"return_token_ids\": true, vLLM >= 0.10)\n"
            "  --quiet       no progress output\n"
            "Replays each run's [workload] and writes DIR/<experiment>/<run>/ as `pagoda run` does, with the\n"
            "client's TTFT, TPOT, ITL (every streamed event) and E2E. Exit status: 0 all runs written, 1 a run\n"
            "failed or the server cannot be reached, 2 bad usage or config.\n");
}

typedef struct prog {
    int quiet, tty, run, n_runs;
    const char *name;
    double last;
} prog;

static void on_progress(void *ctx, const pgd_loadgen_progress *p) {
    prog *pr = ctx;
    if (pr->quiet) return;
    double now = pgd_cli_now();
    int final = p->done == p->total;
    if (!pr->tty && !final && now - pr->last < 5) return;
    pr->last = now;
    fprintf(stderr, "%spagoda bench serve: [%d/%d] %s: %d/%d requests (%d failed), %.0f output tok/s, %.1f s%s",
            pr->tty ? "\r" : "", pr->run, pr->n_runs, pr->name, p->done, p->total, p->failed,
            p->elapsed > 0 ? (double)p->tokens / p->elapsed : 0.0, p->elapsed, pr->tty ? "   " : "\n");
    fflush(stderr);
}

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) { g_stop = sig; }

/* The vocabulary and context of the config's model without loading
 * random weights; *ex (a loaded file model) when the model is a file. */
static pgd_status model_dims(const pgd_run_config *rc, int *vocab, int *ctx, pgd_exec **ex) {
    const char *path = pgd_run_get_str(rc, "model", "path");
    *ex = NULL;
    if (!strncmp(path, "random:", 7)) {
        pgd_model_config c;
        PGD_TRY(pgd_model_shape(path + 7, &c));
        *vocab = c.vocab_size, *ctx = c.max_seq_len;
        return PGD_OK;
    }
    pgd_exec_config xc = {.model = path, .backend = {.name = "cpu", .num_threads = 1}};
    PGD_TRY(pgd_exec_create(&xc, ex));
    *vocab = pgd_exec_model_config(*ex)->vocab_size;
    *ctx = pgd_exec_model_config(*ex)->max_seq_len;
    return PGD_OK;
}

static pgd_status write_run(const char *expdir, const pgd_run_config *r, const pgd_run_result *res) {
    char partial[4200], rundir[4200];
    snprintf(partial, sizeof partial, "%s/.%s%s", expdir, pgd_run_name(r), PGD_RESULTS_PARTIAL_SUFFIX);
    snprintf(rundir, sizeof rundir, "%s/%s", expdir, pgd_run_name(r));
    PGD_TRY(pgd_results_remove_tree(partial));
    pgd_status st = pgd_run_write_outputs(r, res, partial);
    if (st == PGD_OK) st = pgd_results_remove_tree(rundir);
    if (st == PGD_OK && rename(partial, rundir) != 0)
        st = pgd_error(PGD_ERR_IO, "cannot rename %s to %s: %s", partial, rundir, strerror(errno));
    if (st != PGD_OK) pgd_results_remove_tree(partial);
    return st;
}

/* One run: workload, replay, results. *failed_run set when its requests failed beyond the limit. */
static int one_run(const pgd_run_config *r, const char *url, const char *model_name, double timeout, int token_ids,
                   prog *pr, const char *expdir, const char *sweep_id, pgd_runs_csv *table, const char *csv) {
    pgd_exec *ex = NULL;
    pgd_tokenizer *own_tok = NULL;
    pgd_workload *wl = NULL;
    pgd_loadgen_result lr = {0};
    json_t *extra = NULL;
    int vocab = 0, ctx = 0, n_sent = 0, rc = 1;
    if (model_dims(r, &vocab, &ctx, &ex) != PGD_OK) {
        fprintf(stderr, "pagoda bench serve: run %s: [model]: %s\n", pgd_run_name(r), pgd_last_error());
        goto done;
    }
    const pgd_tokenizer *tok = ex ? pgd_exec_tokenizer(ex) : NULL;
    const char *tokpath = pgd_run_get_str(r, "model", "tokenizer");
    if (*tokpath) {
        if (pgd_tokenizer_load_file(tokpath, vocab, &own_tok) != PGD_OK) {
            fprintf(stderr, "pagoda bench serve: run %s: [model] tokenizer: %s\n", pgd_run_name(r), pgd_last_error());
            goto done;
        }
        tok = own_tok;
    }
    if (pgd_run_workload_create(r, vocab, ctx, tok, &wl, &n_sent) != PGD_OK) {
        fprintf(stderr, "pagoda bench serve: %s\n", pgd_last_error());
        goto done;
    }
    pgd_loadgen_config lc = {.url = url, .model = model_name, .timeout = timeout,
                             .temperature = pgd_run_get_num(r, "sampling", "temperature"),
                             .top_p = pgd_run_get_num(r, "sampling", "top_p"),
                             .top_k = pgd_run_get_int(r, "sampling", "top_k"),
                             .seed = pgd_run_get_u64(r, "experiment", "seed"),
                             .send_priority = pgd_run_get_int(r, "workload", "num_priorities") > 1,
                             .return_token_ids = token_ids, .num_requests = n_sent, .tokenizer = tok,
                             .on_progress = on_progress, .progress_ctx = pr, .stop = &g_stop};
    pr->name = pgd_run_name(r);
    pr->last = 0;
    double w0 = pgd_cli_now();
    pgd_status st = pgd_loadgen_run(&lc, wl, &lr);
    if (pr->tty && !pr->quiet) fputc('\n', stderr);
    if (st != PGD_OK) {
        fprintf(stderr, "pagoda bench serve: %s\n", pgd_last_error());
        goto done;
    }
    pgd_run_result res;
    memset(&res, 0, sizeof res);
    pgd_slo slo = {.ttft = pgd_run_get_num(r, "slo", "ttft"), .tpot = pgd_run_get_num(r, "slo", "tpot"),
                   .e2e = pgd_run_get_num(r, "slo", "e2e")};
    if (pgd_metrics_summarize(lr.metrics, &slo, &res.summary) != PGD_OK) {
        fprintf(stderr, "pagoda bench serve: %s\n", pgd_last_error());
        goto done;
    }
    res.metrics = lr.metrics;
    res.num_requests = lr.num_requests;
    res.workload_fingerprint = pgd_workload_fingerprint(wl);
    res.token_fingerprint = lr.output_fingerprint;
    res.wall_time = pgd_cli_now() - w0;
    res.run_time = lr.end - lr.start;
    snprintf(res.model_desc, sizeof res.model_desc, "%.60s at %.90s", lr.model, url);
    snprintf(res.backend_desc, sizeof res.backend_desc, "http client (pagoda bench serve)");
    snprintf(res.layout_desc, sizeof res.layout_desc, "server");
    pgd_workload_format(wl, res.workload_desc, sizeof res.workload_desc);
    snprintf(res.sweep_id, sizeof res.sweep_id, "%s", sweep_id);
    extra = json_pack("{s:{s:s,s:s,s:s,s:b}}", "client", "tool", "pagoda bench serve", "url", url, "model", lr.model,
                      "return_token_ids", token_ids);
    res.extra = extra;
    if ((st = write_run(expdir, r, &res)) != PGD_OK || (st = pgd_runs_csv_add(table, r, &res)) != PGD_OK ||
        (st = pgd_runs_csv_write(table, csv)) != PGD_OK) {
        fprintf(stderr, "pagoda bench serve: %s (run %s not written)\n", pgd_last_error(), pgd_run_name(r));
        goto done;
    }
    char why[1400];
    int bad = pgd_run_failed(r, &res, why, sizeof why);
    const pgd_metrics_summary *s = &res.summary;
    if (!pr->quiet)
        fprintf(stderr, "pagoda bench serve: [%d/%d] %s: %lld/%lld requests in %.1f s, %.1f req/s, %.0f output tok/s, "
                "TTFT mean %.4f s, E2E mean %.4f s -> %s/%s/\n", pr->run, pr->n_runs, pgd_run_name(r),
                (long long)s->completed, (long long)s->num_requests, s->duration, s->request_throughput,
                s->output_throughput, s->ttft.mean, s->e2e.mean, expdir, pgd_run_name(r));
    if (bad) fprintf(stderr, "pagoda bench serve: FAILED: %s\n", why);
    else if (why[0]) fprintf(stderr, "pagoda bench serve: WARNING: %s\n", why);
    rc = bad ? 1 : 0;
done:
    json_decref(extra);
    pgd_loadgen_result_free(&lr);
    pgd_workload_destroy(wl);
    pgd_tokenizer_destroy(own_tok);
    pgd_exec_destroy(ex);
    return rc;
}

int pgd_cmd_bench_serve(int argc, char **argv) {
    const char *url = NULL, *model_name = NULL, *outdir = NULL, *only = NULL;
    double timeout = 600;
    int quiet = 0, token_ids = 0;
    static const struct option opts[] = {{"url", required_argument, 0, 'u'},     {"model-name", required_argument, 0, 'm'},
                                         {"out", required_argument, 0, 'o'},     {"output-dir", required_argument, 0, 'o'},
                                         {"only", required_argument, 0, 'n'},    {"timeout", required_argument, 0, 't'},
                                         {"token-ids", no_argument, 0, 'i'},     {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'u': url = optarg; break;
        case 'm': model_name = optarg; break;
        case 'o': outdir = optarg; break;
        case 'n': only = optarg; break;
        case 't': {
            char *end;
            errno = 0;
            timeout = strtod(optarg, &end);
            if (errno || *end || !(timeout > 0) || timeout > 1e6) {
                fprintf(stderr, "pagoda bench serve: --timeout must be seconds in (0, 1e6] (got '%s')\n", optarg);
                return 2;
            }
            break;
        }
        case 'i': token_ids = 1; break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!url || (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))) {
        fprintf(stderr, "pagoda bench serve: --url http://HOST:PORT is required (got %s)\n", url ? url : "none");
        return 2;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "pagoda bench serve: expected one EXPERIMENT.ini (got %d arguments)\n", argc - optind);
        usage(stderr);
        return 2;
    }
    pgd_experiment *exp = NULL;
    if (pgd_experiment_load(argv[optind], &exp) != PGD_OK) {
        fprintf(stderr, "pagoda bench serve: %s\n", pgd_last_error());
        return 2;
    }
    int n = pgd_experiment_num_runs(exp), selected = 0;
    for (int i = 0; i < n; i++) selected += !only || strstr(pgd_run_name(pgd_experiment_run(exp, i)), only) != NULL;
    if (!selected) {
        fprintf(stderr, "pagoda bench serve: --only '%s' matches none of the %d runs of %s\n", only, n, argv[optind]);
        pgd_experiment_destroy(exp);
        return 2;
    }
    /* a server that is not there: one line, before any results directory is touched */
    char probe_model[256];
    if (pgd_loadgen_probe(url, 10, probe_model, sizeof probe_model) != PGD_OK) {
        fprintf(stderr, "pagoda bench serve: %s\n", pgd_last_error());
        pgd_experiment_destroy(exp);
        return 1;
    }
    if (!outdir) outdir = pgd_run_get_str(pgd_experiment_run(exp, 0), "experiment", "output_dir");
    char expdir[4096], csv[4200];
    snprintf(expdir, sizeof expdir, "%s/%s", outdir, pgd_experiment_name(exp));
    snprintf(csv, sizeof csv, "%s/runs.csv", expdir);
    int lock = -1, moved = 0;
    pgd_runs_csv *table = NULL;
    if (pgd_results_lock(expdir, &lock) != PGD_OK || pgd_results_begin_sweep(expdir, !only, &moved) != PGD_OK ||
        pgd_runs_csv_create(exp, &table) != PGD_OK || (only && pgd_runs_csv_merge(table, csv) != PGD_OK)) {
        fprintf(stderr, "pagoda bench serve: %s\n", pgd_last_error());
        pgd_runs_csv_destroy(table);
        pgd_results_unlock(lock);
        pgd_experiment_destroy(exp);
        return 1;
    }
    char sweep_id[64];
    pgd_results_new_sweep_id(sweep_id, sizeof sweep_id);
    g_stop = 0;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    prog pr = {.quiet = quiet, .tty = isatty(STDERR_FILENO), .n_runs = selected};
    int failed = 0, done = 0;
    for (int i = 0; i < n && !g_stop; i++) {
        const pgd_run_config *r = pgd_experiment_run(exp, i);
        if (only && !strstr(pgd_run_name(r), only)) continue;
        pr.run++;
        if (only) {
            pgd_runs_csv_remove(table, i);
            if (pgd_results_move_aside(expdir, pgd_run_name(r)) != PGD_OK) {
                fprintf(stderr, "pagoda bench serve: %s\n", pgd_last_error());
                failed++;
                continue;
            }
        }
        int bad = one_run(r, url, model_name ? model_name : probe_model, timeout, token_ids, &pr, expdir, sweep_id,
                          table, csv);
        failed += bad;
        done += !bad;
    }
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    pgd_runs_csv_destroy(table);
    pgd_results_unlock(lock);
    printf("pagoda bench serve: %d of %d runs written whole without failing; results in %s/\n", done, selected, expdir);
    pgd_experiment_destroy(exp);
    if (g_stop) {
        fprintf(stderr, "pagoda bench serve: interrupted by signal %d\n", (int)g_stop);
        return 128 + (int)g_stop;
    }
    return failed ? 1 : 0;
}
