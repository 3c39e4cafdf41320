/* run.c - `pagoda run EXPERIMENT.ini`: validates the whole config (every
 * sweep point) before anything runs, then executes each run in order with
 * a progress bar on a terminal (plain progress lines otherwise), writes
 * <output-dir>/<experiment>/<run>/ (summary.json, requests.csv,
 * timeline.csv, op_times.csv, config.ini, env.json) and, after every run,
 * <output-dir>/<experiment>/runs.csv with one row per finished run.
 *
 * Warnings about runs that are valid but likely not meant (pgd_run_warning)
 * go to stderr first, and into each run's summary.json.
 *
 * Exit status: 0 all runs written, 1 a run failed (the others still run),
 * 2 bad usage or a bad config (nothing ran). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "pagoda/comm.h"
#include "pagoda/log.h"
#include "pagoda/parallel.h"
#include "pagoda/runner.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: pagoda run [--output-dir DIR] [--only NAME] [--dry-run] [--quiet] EXPERIMENT.ini\n"
            "\n"
            "  --output-dir  root of the results (default: [experiment] output_dir, else results)\n"
            "  --only        run only the runs whose name contains NAME\n"
            "  --dry-run     check the config and list the runs, run nothing\n"
            "  --quiet       no progress output\n"
            "Writes DIR/<experiment>/<run>/{summary.json,requests.csv,timeline.csv,op_times.csv,config.ini,\n"
            "env.json} and DIR/<experiment>/runs.csv (one row per run).\n");
}

typedef struct progress {
    int tty, quiet;
    int run, n_runs;
    const char *name;
    double last_print, wall0;
    int last_done;
} progress;

static void on_progress(void *ctx, const pgd_run_progress *p) {
    progress *pr = ctx;
    if (pr->quiet) return;
    double now = pgd_cli_now();
    int final = p->done == p->total;
    if (pr->tty) {
        if (!final && now - pr->last_print < 0.1) return;
        int width = 30, fill = p->total ? (int)((double)width * p->done / p->total) : width;
        char bar[64];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r[%d/%d] %-28.28s [%s] %5d/%-5d req %8.0f tok/s %7.1f s", pr->run, pr->n_runs, pr->name, bar,
                p->done, p->total, p->elapsed > 0 ? (double)p->tokens / p->elapsed : 0.0, p->elapsed);
        fflush(stderr);
    } else {
        /* plain lines: every 10% of the requests or every 10 s */
        int step = p->total >= 10 ? p->total / 10 : 1;
        if (!final && p->done / step == pr->last_done / step && now - pr->last_print < 10) return;
        fprintf(stderr, "pagoda run: [%d/%d] %s: %d/%d requests, %.0f tok/s, %.1f s\n", pr->run, pr->n_runs, pr->name,
                p->done, p->total, p->elapsed > 0 ? (double)p->tokens / p->elapsed : 0.0, p->elapsed);
    }
    pr->last_print = now;
    pr->last_done = p->done;
}

/* Config warnings (pgd_run_warning) of the selected runs, each distinct
 * message once, on stderr before anything runs; summary.json records them
 * per run. */
static void print_warnings(const pgd_experiment *exp, const char *only) {
    int n = pgd_experiment_num_runs(exp);
    for (int i = 0; i < n; i++) {
        const pgd_run_config *r = pgd_experiment_run(exp, i);
        if (only && !strstr(pgd_run_name(r), only)) continue;
        for (int w = 0; w < pgd_run_num_warnings(r); w++) {
            const char *msg = pgd_run_warning(r, w);
            int seen = 0, runs = 0;
            for (int j = 0; j < n; j++) {
                const pgd_run_config *q = pgd_experiment_run(exp, j);
                if (only && !strstr(pgd_run_name(q), only)) continue;
                for (int v = 0; v < pgd_run_num_warnings(q); v++)
                    if (!strcmp(pgd_run_warning(q, v), msg)) {
                        if (j < i) seen = 1;
                        runs++;
                    }
            }
            if (seen) continue;
            if (runs > 1) fprintf(stderr, "pagoda run: WARNING (%d runs): %s\n", runs, msg);
            else fprintf(stderr, "pagoda run: WARNING (run %s): %s\n", pgd_run_name(r), msg);
        }
    }
}

static int join(char *buf, size_t n, const char *a, const char *b) {
    return snprintf(buf, n, "%s/%s", a, b) < (int)n;
}

int pgd_cmd_run(int argc, char **argv) {
    const char *outdir = NULL, *only = NULL;
    int dry = 0, quiet = 0;
    static const struct option opts[] = {{"output-dir", required_argument, 0, 'o'}, {"only", required_argument, 0, 'n'},
                                         {"dry-run", no_argument, 0, 'd'},         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'o': outdir = optarg; break;
        case 'n': only = optarg; break;
        case 'd': dry = 1; break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "pagoda run: expected one EXPERIMENT.ini (got %d arguments)\n", argc - optind);
        usage(stderr);
        return 2;
    }
    pgd_experiment *exp = NULL;
    if (pgd_experiment_load(argv[optind], &exp) != PGD_OK) {
        fprintf(stderr, "pagoda run: %s\n", pgd_last_error());
        return 2;
    }
    int n = pgd_experiment_num_runs(exp), selected = 0;
    for (int i = 0; i < n; i++) selected += !only || strstr(pgd_run_name(pgd_experiment_run(exp, i)), only) != NULL;
    if (!selected) {
        fprintf(stderr, "pagoda run: --only '%s' matches none of the %d runs of %s\n", only, n, argv[optind]);
        pgd_experiment_destroy(exp);
        return 2;
    }
    if (!outdir) outdir = pgd_run_get_str(pgd_experiment_run(exp, 0), "experiment", "output_dir");
    char expdir[4096], rundir[4096], csv[4200];
    if (!join(expdir, sizeof expdir, outdir, pgd_experiment_name(exp))) {
        fprintf(stderr, "pagoda run: --output-dir '%s' is too long\n", outdir);
        pgd_experiment_destroy(exp);
        return 2;
    }
    if (!pgd_parallel_process_serves(NULL)) print_warnings(exp, only);
    if (dry) {
        printf("%s: experiment '%s', %d run%s -> %s/\n", argv[optind], pgd_experiment_name(exp), n, n == 1 ? "" : "s",
               expdir);
        for (int i = 0; i < n; i++) {
            const pgd_run_config *r = pgd_experiment_run(exp, i);
            if (!only || strstr(pgd_run_name(r), only)) printf("  %s\n", pgd_run_name(r));
        }
        pgd_experiment_destroy(exp);
        return 0;
    }
    pgd_runs_csv *table = NULL;
    int failed = 0, done = 0;
    if (pgd_parallel_process_serves(NULL)) {
        /* an mpirun rank other than 0: take part in each run's parallel model, write nothing */
        int rank = pgd_parallel_process_index();
        for (int i = 0; i < n; i++) {
            const pgd_run_config *r = pgd_experiment_run(exp, i);
            if (only && !strstr(pgd_run_name(r), only)) continue;
            pgd_run_options ro = {0};
            pgd_run_result res;
            if (pgd_run_execute(r, &ro, &res) != PGD_OK) {
                fprintf(stderr, "pagoda run (rank %d): %s\n", rank, pgd_last_error());
                failed++;
            }
            pgd_run_result_free(&res);
        }
        pgd_experiment_destroy(exp);
        pgd_comm_mpi_finalize();
        return failed ? 1 : 0;
    }
    if (pgd_mkdir_p(expdir) != PGD_OK || pgd_runs_csv_create(exp, &table) != PGD_OK) {
        fprintf(stderr, "pagoda run: %s\n", pgd_last_error());
        pgd_experiment_destroy(exp);
        return 1;
    }
    snprintf(csv, sizeof csv, "%s/runs.csv", expdir);
    if (only && pgd_runs_csv_merge(table, csv) != PGD_OK) {
        fprintf(stderr, "pagoda run: %s\n", pgd_last_error());
        pgd_runs_csv_destroy(table);
        pgd_experiment_destroy(exp);
        return 1;
    }
    progress pr = {.tty = isatty(STDERR_FILENO), .quiet = quiet, .n_runs = selected};
    for (int i = 0; i < n; i++) {
        const pgd_run_config *r = pgd_experiment_run(exp, i);
        if (only && !strstr(pgd_run_name(r), only)) continue;
        pr.run++;
        pr.name = pgd_run_name(r);
        pr.last_print = 0;
        pr.last_done = -1;
        pr.wall0 = pgd_cli_now();
        pgd_run_options ro = {.on_progress = on_progress, .progress_ctx = &pr};
        pgd_run_result res;
        pgd_status st = pgd_run_execute(r, &ro, &res);
        if (pr.tty && !quiet) fputc('\n', stderr);
        if (st == PGD_OK && join(rundir, sizeof rundir, expdir, pgd_run_name(r)))
            st = pgd_run_write_outputs(r, &res, rundir);
        if (st == PGD_OK) st = pgd_runs_csv_add(table, r, &res);
        if (st == PGD_OK) st = pgd_runs_csv_write(table, csv);
        if (st != PGD_OK) {
            fprintf(stderr, "pagoda run: %s\n", pgd_last_error());
            failed++;
        } else {
            done++;
            const pgd_metrics_summary *s = &res.summary;
            if (!quiet)
                fprintf(stderr, "pagoda run: [%d/%d] %s: %lld/%lld requests in %.1f s, %.1f req/s, %.0f output tok/s, "
                        "normalized latency %.4f s/tok -> %s/\n", pr.run, pr.n_runs, pgd_run_name(r),
                        (long long)s->completed, (long long)s->num_requests, s->duration, s->request_throughput,
                        s->output_throughput, s->norm_latency.mean, rundir);
        }
        pgd_run_result_free(&res);
    }
    pgd_runs_csv_destroy(table);
    printf("pagoda run: %d of %d runs written; results in %s/ (summary: %s)\n", done, selected, expdir, csv);
    pgd_experiment_destroy(exp);
    pgd_comm_mpi_finalize();
    return failed ? 1 : 0;
}
