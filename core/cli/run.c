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
 * One config per results folder: with --only or --resume the runs not re-run
 * keep their results, so each kept run's summary.json config_hash must be
 * this config's (pgd_run_config_hash); otherwise nothing runs. --resume
 * skips the runs written whole (marker checked, listed in runs.csv with its
 * sweep id) and runs the rest. With [experiment] repeats, runs_mean.csv
 * (csv_table.h) is rewritten from runs.csv at the end of the sweep.
 *
 * Exit status: 0 all runs written, 1 a run failed (the others still run;
 * a run whose requests failed beyond PGD_RUN_MAX_FAILED_SHARE is written
 * and counts as failed) or the results directory cannot be written or is
 * in use, 2 bad usage, a bad config or kept results of another config
 * (nothing ran). */
#include <getopt.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "csv_table.h"
#include "pagoda/cluster.h"
#include "pagoda/comm.h"
#include "pagoda/kv_manager.h"
#include "pagoda/log.h"
#include "pagoda/parallel.h"
#include "pagoda/results.h"
#include "pagoda/runner.h"
#include "pagoda/scheduler.h"
#include "util/suggest.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: pagoda run [--output-dir DIR] [--only NAME[,NAME..]].. [--resume] [--set SECTION.KEY=VALUE]..\n"
            "                  [--dry-run] [--quiet] EXPERIMENT.ini\n"
            "\n"
            "  --output-dir  root of the results (default: [experiment] output_dir, else results)\n"
            "  --only        run only the runs whose name contains one of the NAMEs (repeatable; a\n"
            "                comma list); the other runs' results stay\n"
            "  --resume      finish an interrupted sweep: runs already written whole by this config are\n"
            "                kept, the rest are run (refused when a kept run came from another config)\n"
            "  --set         override a config key (repeatable), checked like a line of the file, e.g.\n"
            "                --set workload.num_requests=20 --set engine.policy=sjf\n"
            "  --dry-run     check the config and list the runs, run nothing\n"
            "  --quiet       no progress output\n"
            "Writes DIR/<experiment>/<run>/{summary.json,requests.csv,timeline.csv,op_times.csv,config.ini,\n"
            "env.json,complete.json} and DIR/<experiment>/runs.csv (one row per run); each run whole or not\n"
            "at all. The previous results of a full sweep move to DIR/<experiment>/.previous/.\n"
            "With [experiment] repeats = N each run is repeated N times (run names end _repeat-K) and\n"
            "DIR/<experiment>/runs_mean.csv holds each configuration's mean and 95%% CI (NAME_ci95).\n"
            "Exit status: 0 all runs written, 1 a run failed (more than 10%% of its requests failed, or it\n"
            "could not be written) or the results directory is in use or not writable, 2 a bad config.\n");
    char names[512];
    fprintf(f, "Policies ([engine] policy): %s\n", pgd_names_join(pgd_policy_names(), ", ", names, sizeof names));
    fprintf(f, "KV managers ([engine] kv_manager): %s\n",
            pgd_names_join(pgd_kv_manager_names(), ", ", names, sizeof names));
    fprintf(f, "Routers ([cluster] router, with replicas > 1): %s\n",
            pgd_names_join(pgd_router_names(), ", ", names, sizeof names));
}

/* --only: run names containing any of the patterns (NULL list = every run). */
#define MAX_ONLY 64
typedef struct only_list {
    char *pat[MAX_ONLY];
    int n;
} only_list;

static int only_add(only_list *o, const char *arg) {
    for (const char *p = arg;;) {
        size_t len = strcspn(p, ",");
        if (len) {
            if (o->n == MAX_ONLY) {
                fprintf(stderr, "pagoda run: more than %d --only patterns\n", MAX_ONLY);
                return 0;
            }
            if (!(o->pat[o->n++] = strndup(p, len))) return 0;
        }
        if (!p[len]) break;
        p += len + 1;
    }
    if (!o->n) {
        fprintf(stderr, "pagoda run: --only '%s': no pattern\n", arg);
        return 0;
    }
    return 1;
}

static int only_match(const only_list *o, const char *name) {
    if (!o || !o->n) return 1;
    for (int i = 0; i < o->n; i++)
        if (strstr(name, o->pat[i])) return 1;
    return 0;
}

typedef struct progress {
    int tty, quiet;
    int run, n_runs;
    const char *name;
    char label[256]; /* the part of the run name that differs between the selected runs */
    double last_print, wall0, sweep0;
    int last_done;
} progress;

/* The terminal's width (stderr), else $COLUMNS, else 80. */
static int term_width(void) {
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    const char *c = getenv("COLUMNS");
    int w = c ? atoi(c) : 0;
    return w > 0 ? w : 80;
}

static void fmt_eta(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 360000) snprintf(buf, n, "--");
    else if (s >= 3600) snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else if (s >= 60) snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else snprintf(buf, n, "%ds", (int)s);
}

/* "rate=2 policy=sjf": the swept values that differ between the selected
 * runs (the run name when none differ). */
static void run_label(const pgd_experiment *e, const only_list *only, const pgd_run_config *r, char *buf, size_t n) {
    buf[0] = 0;
    int ns = pgd_experiment_num_swept(e);
    for (int k = 0; k < ns; k++) {
        int differs = 0;
        for (int j = 0; j < pgd_experiment_num_runs(e) && !differs; j++) {
            const pgd_run_config *q = pgd_experiment_run(e, j);
            if (only_match(only, pgd_run_name(q)))
                differs = strcmp(pgd_run_swept_value(q, k), pgd_run_swept_value(r, k)) != 0;
        }
        if (!differs) continue;
        const char *key = strchr(pgd_experiment_swept_key(e, k), '.') + 1;
        size_t len = strlen(buf);
        snprintf(buf + len, n - len, "%s%s=%s", len ? " " : "", key, pgd_run_swept_value(r, k));
    }
    if (!buf[0]) snprintf(buf, n, "%s", pgd_run_name(r));
}

/* The live line: "[3/24] rate=2 policy=sjf  45/200 req  q 12 run 8 kv 63%  1234 tok/s  ETA 1m20s",
 * cut to the terminal's width (the label gives way first). ETA: the sweep's
 * wall time so far over its share done (runs done plus this run's share of
 * requests). */
static void on_progress(void *ctx, const pgd_run_progress *p) {
    progress *pr = ctx;
    if (pr->quiet) return;
    double now = pgd_cli_now();
    int final = p->done == p->total;
    double frac = ((pr->run - 1) + (p->total ? (double)p->done / p->total : 1.0)) / (pr->n_runs ? pr->n_runs : 1);
    char eta[32];
    fmt_eta(eta, sizeof eta, frac > 0 ? (now - pr->sweep0) * (1 - frac) / frac : -1);
    double tps = p->elapsed > 0 ? (double)p->tokens / p->elapsed : 0.0;
    if (pr->tty) {
        if (!final && now - pr->last_print < 0.1) return;
        char head[32], tail[160];
        snprintf(head, sizeof head, "[%d/%d] ", pr->run, pr->n_runs);
        snprintf(tail, sizeof tail, "  %d/%d req  q %d run %d kv %.0f%%  %.0f tok/s  ETA %s", p->done, p->total,
                 p->waiting, p->running, 100 * p->kv_usage, tps, eta);
        int width = term_width() - 1, room = width - (int)strlen(head) - (int)strlen(tail);
        if (room < 8) { /* narrow: the label and counts only */
            snprintf(tail, sizeof tail, " %d/%d ETA %s", p->done, p->total, eta);
            room = width - (int)strlen(head) - (int)strlen(tail);
        }
        if (room < 1) room = 1;
        int ll = (int)strlen(pr->label);
        char line[1024];
        if (ll <= room) snprintf(line, sizeof line, "%s%s%s", head, pr->label, tail);
        else snprintf(line, sizeof line, "%s%.*s~%s", head, room > 1 ? room - 1 : 0, pr->label, tail);
        if ((int)strlen(line) > width) line[width > 0 ? width : 0] = 0;
        fprintf(stderr, "\r%s\033[K", line);
        fflush(stderr);
    } else {
        /* plain lines: every 10% of the requests or every 10 s */
        int step = p->total >= 10 ? p->total / 10 : 1;
        if (!final && p->done / step == pr->last_done / step && now - pr->last_print < 10) return;
        fprintf(stderr, "pagoda run: [%d/%d] %s: %d/%d requests, queue %d, running %d, KV %.0f%%, %.0f tok/s, "
                "%.1f s, ETA %s\n", pr->run, pr->n_runs, pr->name, p->done, p->total, p->waiting, p->running,
                100 * p->kv_usage, tps, p->elapsed, eta);
    }
    pr->last_print = now;
    pr->last_done = p->done;
}

/* Config warnings (pgd_run_warning) of the selected runs, each distinct
 * message once, on stderr before anything runs; summary.json records them
 * per run. */
static void print_warnings(const pgd_experiment *exp, const only_list *only) {
    int n = pgd_experiment_num_runs(exp);
    for (int i = 0; i < n; i++) {
        const pgd_run_config *r = pgd_experiment_run(exp, i);
        if (!only_match(only, pgd_run_name(r))) continue;
        for (int w = 0; w < pgd_run_num_warnings(r); w++) {
            const char *msg = pgd_run_warning(r, w);
            int seen = 0, runs = 0;
            for (int j = 0; j < n; j++) {
                const pgd_run_config *q = pgd_experiment_run(exp, j);
                if (!only_match(only, pgd_run_name(q))) continue;
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

/* The config_hash summary.json of a written run records ("" when none). */
static void stored_hash(const char *rundir, char *buf, size_t n) {
    char path[4200];
    buf[0] = 0;
    snprintf(path, sizeof path, "%s/summary.json", rundir);
    json_t *j = json_load_file(path, 0, NULL);
    const char *h = j ? json_string_value(json_object_get(j, "config_hash")) : NULL;
    if (h) snprintf(buf, n, "%s", h);
    json_decref(j);
}

/* A run directory written whole (its marker checks) and listed in runs.csv
 * with the sweep id of its marker. */
static int run_complete(const char *expdir, const char *rundir, const char *name) {
    char sid[64], rsid[64];
    struct stat sb;
    if (stat(rundir, &sb) != 0) return 0;
    if (pgd_results_check_run(rundir, NULL, sid, sizeof sid) != PGD_OK) return 0;
    return pgd_results_runs_csv_sweep(expdir, name, rsid, sizeof rsid) == 1 && !strcmp(sid, rsid);
}

/* runs_mean.csv beside runs.csv when the experiment repeats its runs. */
static int write_means(const char *expdir, const char *csv) {
    char out[4300];
    snprintf(out, sizeof out, "%s/runs_mean.csv", expdir);
    return csv_runs_aggregate("run", csv, out) >= 0;
}

int pgd_cmd_run(int argc, char **argv) {
    const char *outdir = NULL;
    only_list only_pats = {0}, *only = NULL;
    const char **sets = NULL;
    int n_sets = 0, dry = 0, quiet = 0, resume = 0, rc_exit = 2;
    static const struct option opts[] = {{"output-dir", required_argument, 0, 'o'}, {"only", required_argument, 0, 'n'},
                                         {"dry-run", no_argument, 0, 'd'},         {"quiet", no_argument, 0, 'q'},
                                         {"resume", no_argument, 0, 'r'},          {"set", required_argument, 0, 's'},
                                         {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
    optind = 1;
    int ch;
    pgd_experiment *exp = NULL;
    while ((ch = pgd_cli_getopt(argc, argv, "", opts)) != -1) {
        switch (ch) {
        case 'o': outdir = optarg; break;
        case 'n':
            if (!only_add(&only_pats, optarg)) goto out;
            only = &only_pats;
            break;
        case 'd': dry = 1; break;
        case 'q': quiet = 1; break;
        case 'r': resume = 1; break;
        case 's': {
            const char **v = realloc(sets, sizeof *v * (size_t)(n_sets + 1));
            if (!v) goto out;
            sets = v;
            sets[n_sets++] = optarg;
            break;
        }
        case 'h': usage(stdout); rc_exit = 0; goto out;
        default: usage(stderr); goto out;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "pagoda run: expected one EXPERIMENT.ini (got %d arguments)\n", argc - optind);
        usage(stderr);
        goto out;
    }
    if (resume && only) {
        fprintf(stderr, "pagoda run: --resume finishes the whole sweep; give it without --only\n");
        goto out;
    }
    if (pgd_experiment_load_overrides(argv[optind], sets, n_sets, &exp) != PGD_OK) {
        fprintf(stderr, "pagoda run: %s\n", pgd_last_error());
        goto out;
    }
    int n = pgd_experiment_num_runs(exp), selected = 0;
    for (int i = 0; i < n; i++) selected += only_match(only, pgd_run_name(pgd_experiment_run(exp, i)));
    if (!selected) {
        char pats[512] = "";
        for (int i = 0; i < only->n; i++)
            snprintf(pats + strlen(pats), sizeof pats - strlen(pats), "%s'%s'", i ? ", " : "", only->pat[i]);
        fprintf(stderr, "pagoda run: --only %s matches none of the %d runs of %s (e.g. %s)\n", pats, n, argv[optind],
                pgd_run_name(pgd_experiment_run(exp, 0)));
        goto out;
    }
    if (!outdir) outdir = pgd_run_get_str(pgd_experiment_run(exp, 0), "experiment", "output_dir");
    char expdir[4096], rundir[4096], csv[4200];
    if (!join(expdir, sizeof expdir, outdir, pgd_experiment_name(exp))) {
        fprintf(stderr, "pagoda run: --output-dir '%s' is too long\n", outdir);
        goto out;
    }
    if (!pgd_parallel_process_serves(NULL)) print_warnings(exp, only);
    if (dry) {
        printf("%s: experiment '%s', %d run%s -> %s/\n", argv[optind], pgd_experiment_name(exp), n, n == 1 ? "" : "s",
               expdir);
        for (int i = 0; i < n; i++) {
            const pgd_run_config *r = pgd_experiment_run(exp, i);
            if (only_match(only, pgd_run_name(r))) printf("  %s\n", pgd_run_name(r));
        }
        rc_exit = 0;
        goto out;
    }
    pgd_runs_csv *table = NULL;
    int failed = 0, done = 0;
    if (pgd_parallel_process_serves(NULL)) {
        /* an mpirun rank other than 0: take part in each run's parallel model, write nothing */
        int rank = pgd_parallel_process_index();
        for (int i = 0; i < n; i++) {
            const pgd_run_config *r = pgd_experiment_run(exp, i);
            if (!only_match(only, pgd_run_name(r))) continue;
            pgd_run_options ro = {0};
            pgd_run_result res;
            if (pgd_run_execute(r, &ro, &res) != PGD_OK) {
                fprintf(stderr, "pagoda run (rank %d): %s\n", rank, pgd_last_error());
                failed++;
            }
            pgd_run_result_free(&res);
        }
        pgd_comm_mpi_finalize();
        rc_exit = failed ? 1 : 0;
        goto out;
    }
    int keep = only || resume; /* the runs not re-run now keep their results */
    /* the results directory: locked for the sweep and writable before anything is computed */
    int lock = -1, moved = 0;
    if (pgd_results_lock(expdir, &lock) != PGD_OK || pgd_results_begin_sweep(expdir, !keep, &moved) != PGD_OK ||
        pgd_runs_csv_create(exp, &table) != PGD_OK) {
        fprintf(stderr, "pagoda run: %s\n", pgd_last_error());
        pgd_results_unlock(lock);
        rc_exit = 1;
        goto out;
    }
    if (moved && !quiet)
        fprintf(stderr, "pagoda run: moved the previous results of %s into %s/%s/\n", expdir, expdir,
                PGD_RESULTS_PREVIOUS);
    snprintf(csv, sizeof csv, "%s/runs.csv", expdir);
    if (keep && pgd_runs_csv_merge(table, csv) != PGD_OK) {
        fprintf(stderr, "pagoda run: %s\n", pgd_last_error());
        pgd_runs_csv_destroy(table);
        pgd_results_unlock(lock);
        rc_exit = 1;
        goto out;
    }
    /* Results of one folder come from one config: a kept run written by
     * another config (its summary.json's config_hash) stops the sweep before
     * anything runs. --resume skips the runs already complete. */
    char *skip = calloc((size_t)n + 1, 1);
    int mixed = 0, skipped = 0;
    for (int i = 0; keep && skip && i < n; i++) {
        const pgd_run_config *r = pgd_experiment_run(exp, i);
        if (only && only_match(only, pgd_run_name(r))) continue; /* about to be replaced */
        if (!join(rundir, sizeof rundir, expdir, pgd_run_name(r)) || !run_complete(expdir, rundir, pgd_run_name(r)))
            continue;
        char want[32], have[64];
        snprintf(want, sizeof want, "%016llx", (unsigned long long)pgd_run_config_hash(r));
        stored_hash(rundir, have, sizeof have);
        if (strcmp(want, have)) {
            if (mixed++ < 3)
                fprintf(stderr, "pagoda run: %s/ was written by another config (config_hash %s, this config's %s)\n",
                        rundir, have[0] ? have : "none", want);
            continue;
        }
        if (resume) skip[i] = 1, skipped++;
    }
    if (mixed || !skip) {
        if (mixed)
            fprintf(stderr, "pagoda run: %d run%s of %s came from another config; refusing to mix them with this "
                    "one's (run the whole sweep without --only/--resume: the old results move to %s/)\n", mixed,
                    mixed == 1 ? "" : "s", expdir, PGD_RESULTS_PREVIOUS);
        free(skip);
        pgd_runs_csv_destroy(table);
        pgd_results_unlock(lock);
        rc_exit = mixed ? 2 : 1;
        goto out;
    }
    if (resume && !quiet)
        fprintf(stderr, "pagoda run: --resume: %d of %d runs already written whole; running the other %d\n", skipped,
                n, n - skipped);
    selected -= skipped;
    char sweep_id[64];
    pgd_results_new_sweep_id(sweep_id, sizeof sweep_id);
    g_stop = 0;
    catch_signals(1);
    const char *stopped_at = NULL;
    progress pr = {.tty = isatty(STDERR_FILENO), .quiet = quiet, .n_runs = selected, .sweep0 = pgd_cli_now()};
    for (int i = 0; i < n && !g_stop; i++) {
        const pgd_run_config *r = pgd_experiment_run(exp, i);
        if (!only_match(only, pgd_run_name(r)) || skip[i]) continue;
        pr.run++;
        pr.name = pgd_run_name(r);
        run_label(exp, only, r, pr.label, sizeof pr.label);
        pr.last_print = 0;
        pr.last_done = -1;
        pr.wall0 = pgd_cli_now();
        pgd_status st = PGD_OK;
        if (keep) { /* the old results of this run must not pass for the new ones */
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
                fprintf(stderr, "pagoda run: [%d/%d] %s: %lld/%lld requests in %.1f s, offered %.3g req/s, achieved "
                        "%.3g req/s, %.0f output tok/s, normalized latency %.4f s/tok -> %s/\n", pr.run, pr.n_runs,
                        pgd_run_name(r), (long long)s->completed, (long long)s->num_requests, s->duration,
                        res.offered_rate, s->request_throughput, s->output_throughput, s->norm_latency.mean, rundir);
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
    free(skip);
    int sig = g_stop;
    catch_signals(0);
    pgd_runs_csv_destroy(table);
    if (done && !write_means(expdir, csv)) failed++;
    printf("pagoda run: %d of %d runs written; results in %s/ (summary: %s)\n", done, selected, expdir, csv);
    if (sig) {
        fprintf(stderr, "pagoda run: interrupted by signal %d%s%s%s: %d run%s written whole; the rest not written "
                "(pagoda run --resume finishes the sweep)\n",
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
    pgd_comm_mpi_finalize();
    rc_exit = failed ? 1 : 0;
out:
    for (int i = 0; i < only_pats.n; i++) free(only_pats.pat[i]);
    free(sets);
    pgd_experiment_destroy(exp);
    return rc_exit;
}
