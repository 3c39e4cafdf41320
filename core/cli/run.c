/* run.c - `pagoda run EXPERIMENT.ini`: validates the whole config (every
 * sweep point) before anything runs, then executes each run in order with
 * a progress bar on a terminal (plain progress lines otherwise), writes
 * <output-dir>/<experiment>/<run>/ (summary.json, requests.csv,
 * timeline.csv, op_times.csv, config.ini, env.json, complete.json) and,
 * after every run, <output-dir>/<experiment>/runs.csv with one row per
 * finished run.
 *
 * Warnings about runs that are valid but likely not meant (pgd_run_warning)
 * go to stderr first, and into each run's summary.json.
 *
 * Results (results.h): the experiment directory is locked for the whole
 * sweep and checked writable before anything is computed; a full sweep
 * moves the previous results into .previous/ first (with --only, each
 * re-run run's old directory goes there before it is computed); a run is
 * written into .<run>.partial/, sealed and renamed into place. SIGINT,
 * SIGTERM or SIGHUP stop the sweep between engine steps (or after the run
 * being written): the runs written so far stay whole, the one in progress
 * is not written, and the process then dies of the same signal (a second
 * signal kills it at once; what it leaves is a hidden .partial directory).
 *
 * Exit status: 0 all runs written, 1 a run failed (the others still run;
 * a run whose requests failed beyond PGD_RUN_MAX_FAILED_SHARE is written
 * and counts as failed) or the results directory cannot be written or is
 * in use, 2 bad usage or a bad config (nothing ran). */
#include <getopt.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "pagoda/comm.h"
#include "pagoda/log.h"
#include "pagoda/parallel.h"
#include "pagoda/results.h"
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
            "env.json,complete.json} and DIR/<experiment>/runs.csv (one row per run); each run whole or not\n"
            "at all. The previous results of a full sweep move to DIR/<experiment>/.previous/.\n"
            "Exit status: 0 all runs written, 1 a run failed (more than 10%% of its requests failed, or it\n"
            "could not be written) or the results directory is in use or not writable, 2 a bad config.\n");
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

static volatile sig_atomic_t g_stop; /* the signal that asked the sweep to stop */

static void on_signal(int sig) { g_stop = sig; }

/* Catch (on) or restore (off) SIGINT, SIGTERM and SIGHUP; a signal ignored
 * when pagoda started (nohup, a background job of a script) stays ignored. */
static void catch_signals(int on) {
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    static int caught[3];
    for (int i = 0; i < 3; i++) {
        struct sigaction sa, old;
        memset(&sa, 0, sizeof sa);
        sigemptyset(&sa.sa_mask);
        if (on) {
            if (sigaction(sigs[i], NULL, &old) != 0 || old.sa_handler == SIG_IGN) continue;
            sa.sa_handler = on_signal;
            sa.sa_flags = SA_RESETHAND; /* a second signal kills at once */
            caught[i] = sigaction(sigs[i], &sa, NULL) == 0;
        } else if (caught[i]) {
            sa.sa_handler = SIG_DFL;
            sigaction(sigs[i], &sa, NULL);
            caught[i] = 0;
        }
    }
}

/* Write one run's results whole: into .<run>.partial/, sealed, renamed to <run>/. */
static pgd_status write_run(const char *expdir, const pgd_run_config *r, const pgd_run_result *res, char *rundir,
                            size_t n) {
    char partial[4200];
    if (snprintf(partial, sizeof partial, "%s/.%s%s", expdir, pgd_run_name(r), PGD_RESULTS_PARTIAL_SUFFIX) >=
            (int)sizeof partial ||
        !join(rundir, n, expdir, pgd_run_name(r)))
        return pgd_error(PGD_ERR_INVALID, "path too long: %s/%s", expdir, pgd_run_name(r));
    PGD_TRY(pgd_results_remove_tree(partial));
    pgd_status st = pgd_run_write_outputs(r, res, partial);
    if (st == PGD_OK) st = pgd_results_remove_tree(rundir); /* moved aside already; a leftover is stale */
    if (st == PGD_OK && rename(partial, rundir) != 0)
        st = pgd_error(PGD_ERR_IO, "cannot rename %s to %s: %s", partial, rundir, strerror(errno));
    if (st != PGD_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", pgd_last_error());
        pgd_results_remove_tree(partial);
        return pgd_error(st, "%s (run %s not written)", msg, pgd_run_name(r));
    }
    return PGD_OK;
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
    /* the results directory: locked for the sweep and writable before anything is computed */
    int lock = -1, moved = 0;
    if (pgd_results_lock(expdir, &lock) != PGD_OK || pgd_results_begin_sweep(expdir, !only, &moved) != PGD_OK ||
        pgd_runs_csv_create(exp, &table) != PGD_OK) {
        fprintf(stderr, "pagoda run: %s\n", pgd_last_error());
        pgd_results_unlock(lock);
        pgd_experiment_destroy(exp);
        return 1;
    }
    if (moved && !quiet)
        fprintf(stderr, "pagoda run: moved the previous results of %s into %s/%s/\n", expdir, expdir,
                PGD_RESULTS_PREVIOUS);
    snprintf(csv, sizeof csv, "%s/runs.csv", expdir);
    if (only && pgd_runs_csv_merge(table, csv) != PGD_OK) {
        fprintf(stderr, "pagoda run: %s\n", pgd_last_error());
        pgd_runs_csv_destroy(table);
        pgd_results_unlock(lock);
        pgd_experiment_destroy(exp);
        return 1;
    }
    char sweep_id[64];
    pgd_results_new_sweep_id(sweep_id, sizeof sweep_id);
    g_stop = 0;
    catch_signals(1);
    const char *stopped_at = NULL;
    progress pr = {.tty = isatty(STDERR_FILENO), .quiet = quiet, .n_runs = selected};
    for (int i = 0; i < n && !g_stop; i++) {
        const pgd_run_config *r = pgd_experiment_run(exp, i);
        if (only && !strstr(pgd_run_name(r), only)) continue;
        pr.run++;
        pr.name = pgd_run_name(r);
        pr.last_print = 0;
        pr.last_done = -1;
        pr.wall0 = pgd_cli_now();
        pgd_status st = PGD_OK;
        if (only) { /* the old results of this run must not pass for the new ones */
            pgd_runs_csv_remove(table, i);
            st = pgd_results_move_aside(expdir, pgd_run_name(r));
            if (st == PGD_OK) st = pgd_runs_csv_write(table, csv);
            if (st != PGD_OK) {
                fprintf(stderr, "pagoda run: %s\n", pgd_last_error());
                failed++;
                continue;
            }
        }
        pgd_run_options ro = {.on_progress = on_progress, .progress_ctx = &pr, .stop = &g_stop};
        pgd_run_result res;
        st = pgd_run_execute(r, &ro, &res);
        if (pr.tty && !quiet) fputc('\n', stderr);
        if (st != PGD_OK && g_stop) { /* interrupted: this run is not written */
            stopped_at = pgd_run_name(r);
            pgd_run_result_free(&res);
            break;
        }
        snprintf(res.sweep_id, sizeof res.sweep_id, "%s", sweep_id);
        if (st == PGD_OK) st = write_run(expdir, r, &res, rundir, sizeof rundir);
        if (st == PGD_OK) st = pgd_runs_csv_add(table, r, &res);
        if (st == PGD_OK) st = pgd_runs_csv_write(table, csv);
        char why[1400];
        int bad = st == PGD_OK && pgd_run_failed(r, &res, why, sizeof why);
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
            /* failures are loud whatever --quiet says */
            if (bad) {
                fprintf(stderr, "pagoda run: FAILED: %s\n", why);
                failed++;
            } else if (why[0]) {
                fprintf(stderr, "pagoda run: WARNING: %s\n", why);
            }
        }
        pgd_run_result_free(&res);
    }
    int sig = g_stop;
    catch_signals(0);
    pgd_runs_csv_destroy(table);
    printf("pagoda run: %d of %d runs written; results in %s/ (summary: %s)\n", done, selected, expdir, csv);
    if (sig) {
        fprintf(stderr, "pagoda run: interrupted by signal %d%s%s%s: %d run%s written whole; the rest not written\n",
                sig, stopped_at ? " during run " : "", stopped_at ? stopped_at : "",
                stopped_at ? "" : " (after the run being written)", done, done == 1 ? "" : "s");
        fflush(stdout);
        fflush(stderr);
        pgd_results_unlock(lock);
        pgd_experiment_destroy(exp);
        signal(sig, SIG_DFL); /* die of it, so the caller (a shell loop, make) sees the interrupt */
        raise(sig);
        return 128 + sig;
    }
    pgd_results_unlock(lock);
    if (failed)
        fprintf(stderr, "pagoda run: %d of %d runs failed (see the messages above)\n", failed, selected);
    pgd_experiment_destroy(exp);
    pgd_comm_mpi_finalize();
    return failed ? 1 : 0;
}
