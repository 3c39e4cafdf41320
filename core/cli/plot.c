/* plot.c - `pagoda plot results/<experiment>`: writes a gnuplot script
 * (plots/plots.gp, generated from runs.csv's header and rows, reading the
 * CSVs in place so users can edit and re-run it) and runs gnuplot to draw
 * PNG and SVG files into plots/:
 *   latency_vs_rate   normalized latency (mean, s/token) vs request rate,
 *                     one line per combination of the other swept values
 *                     (e.g. policy x memory manager)
 *   throughput_vs_rate output tokens/s and requests/s vs request rate
 *   ttft_cdf, tpot_cdf CDFs over requests, one line per run
 *   kv_usage          KV blocks in use (share of the cache) and utilization
 *                     (real tokens / reserved slots) over time, one panel per run
 * The x axis is the swept "rate" key (or the first numeric swept key); runs
 * with rate = inf (all at once) sit right of the largest rate, labelled
 * "inf". Without a numeric sweep key the rate plots show one point per run.
 * In the CDFs a run's color is its series (the other swept values) and its
 * dash pattern its rate, so runs stay apart beyond the palette's 8 colors.
 *
 * Given a file instead (the perf gate's results/perf/history.csv), it draws
 * that history (plot_history.c).
 *
 * Every run runs.csv lists must be complete (results.h: complete.json,
 * requests.csv and timeline.csv matching it, the same sweep_id as its row),
 * and no run may have been cut short while being written (.<run>.partial);
 * otherwise nothing is drawn and each such run is named.
 *
 * Exit status: 0 plots written, 1 gnuplot failed or a run is incomplete or
 * stale, 2 bad input. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "pagoda/results.h"
#include "pagoda/runner.h"

#define MAX_COLS 96
#define MAX_ROWS 4096

typedef struct table {
    int ncols, nrows;
    char *cols[MAX_COLS];
    char **cells; /* (nrows, ncols) */
} table;

static void table_free(table *t) {
    for (int i = 0; i < t->ncols; i++) free(t->cols[i]);
    for (int i = 0; t->cells && i < t->nrows * t->ncols; i++) free(t->cells[i]);
    free(t->cells);
}

/* Split one CSV line (double quotes allowed around a field). */
static int split(char *line, char **out, int max) {
    int n = 0;
    char *p = line;
    while (n < max) {
        char *start = p;
        if (*p == '"') {
            start = ++p;
            while (*p && *p != '"') p++;
            if (*p) *p++ = 0;
        } else {
            while (*p && *p != ',' && *p != '\n' && *p != '\r') p++;
        }
        int end = *p != ',';
        if (*p) *p++ = 0;
        out[n++] = start;
        if (end) break;
    }
    return n;
}

static int load_runs(const char *path, table *t) {
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "pagoda plot: cannot open %s: %s (run 'pagoda run' first)\n", path, strerror(errno));
        return 0;
    }
    char *line = NULL;
    size_t cap = 0;
    char *fields[MAX_COLS];
    int ok = 1, lineno = 0;
    while (ok && getline(&line, &cap, f) > 0) {
        lineno++;
        int n = split(line, fields, MAX_COLS);
        if (lineno == 1) {
            for (int i = 0; i < n; i++) t->cols[i] = strdup(fields[i]);
            t->ncols = n;
            continue;
        }
        if (n == 1 && !fields[0][0]) continue;
        if (n != t->ncols || t->nrows >= MAX_ROWS) {
            fprintf(stderr, "pagoda plot: %s:%d: expected %d fields (got %d)\n", path, lineno, t->ncols, n);
            ok = 0;
            break;
        }
        char **c = realloc(t->cells, sizeof *c * (size_t)(t->nrows + 1) * (size_t)t->ncols);
        if (!c) { ok = 0; break; }
        t->cells = c;
        for (int i = 0; i < n; i++) c[t->nrows * t->ncols + i] = strdup(fields[i]);
        t->nrows++;
    }
    free(line);
    fclose(f);
    if (ok && (t->ncols < 2 || strcmp(t->cols[0], "run") || !t->nrows)) {
        fprintf(stderr, "pagoda plot: %s: not a runs.csv with at least one run\n", path);
        ok = 0;
    }
    return ok;
}

static const char *cell(const table *t, int r, int c) { return t->cells[r * t->ncols + c]; }

static int col_of(const table *t, const char *name) {
    for (int i = 0; i < t->ncols; i++)
        if (!strcmp(t->cols[i], name)) return i;
    return -1;
}

static int numeric(const char *s) {
    char *end;
    if (!*s) return 0;
    (void)strtod(s, &end);
    return *end == 0;
}

/* Gnuplot string literal contents: escape quotes and backslashes. */
static void gp_str(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s, f);
    }
}

static double x_of(const table *t, int r, int xcol, double xinf) {
    return !strcmp(cell(t, r, xcol), "inf") ? xinf : atof(cell(t, r, xcol));
}

static void write_script(FILE *f, const table *t, int nswept, int xcol, const char *expname) {
    int lat = col_of(t, "norm_latency_mean"), otp = col_of(t, "output_throughput"),
        rtp = col_of(t, "request_throughput");
    fprintf(f, "# plots.gp - generated by `pagoda plot` from ../runs.csv and the runs' CSVs.\n"
               "# Run from this directory: gnuplot plots.gp. Edit freely; `pagoda plot` overwrites it.\n"
               "set datafile separator comma\nset datafile missing ''\nset grid\nset key outside right top\n"
               "set style data linespoints\nfmts = \"png svg\"\n"
               "term(fmt, w, h) = (fmt eq \"png\") ? sprintf(\"set terminal pngcairo noenhanced size %%d,%%d font ',10'\", w, h) \\\n"
               "                      : sprintf(\"set terminal svg noenhanced size %%d,%%d dynamic font 'Helvetica,10'\", w, h)\n");
    fprintf(f, "expname = \"");
    gp_str(f, expname);
    fprintf(f, "\"\n\n");
    /* series: distinct combinations of the swept columns other than x */
    int series[MAX_ROWS], nseries = 0;
    for (int r = 0; r < t->nrows; r++) {
        int found = 0;
        for (int s = 0; s < nseries && !found; s++) {
            int same = 1;
            for (int c = 1; c <= nswept; c++)
                if (c != xcol && strcmp(cell(t, r, c), cell(t, series[s], c))) same = 0;
            found = same;
        }
        if (!found) series[nseries++] = r;
    }
    const char *xname = xcol > 0 ? t->cols[xcol] : "run";
    /* rate = inf (all at once) sits right of the largest finite rate */
    double xmax = 0;
    int has_inf = 0;
    for (int r = 0; xcol > 0 && r < t->nrows; r++) {
        if (!strcmp(cell(t, r, xcol), "inf")) has_inf = 1;
        else if (atof(cell(t, r, xcol)) > xmax) xmax = atof(cell(t, r, xcol));
    }
    double xinf = xmax > 0 ? xmax * 1.25 : 1;
    /* one datablock per series: x, normalized latency, output tok/s, req/s (from ../runs.csv) */
    for (int s = 0; s < nseries; s++) {
        fprintf(f, "# series %d:", s + 1);
        for (int c = 1; c <= nswept; c++)
            if (c != xcol) fprintf(f, " %s=%s", t->cols[c], cell(t, series[s], c));
        fprintf(f, "\n# columns: %s norm_latency_mean output_throughput request_throughput run\n$s%d << EOD\n", xname,
                s + 1);
        double xs[MAX_ROWS];
        int rows[MAX_ROWS], n = 0;
        for (int r = 0; r < t->nrows; r++) {
            int same = 1;
            for (int c = 1; c <= nswept; c++)
                if (c != xcol && strcmp(cell(t, r, c), cell(t, series[s], c))) same = 0;
            if (!same) continue;
            double x = xcol < 0 ? r : !strcmp(cell(t, r, xcol), "inf") ? xinf : atof(cell(t, r, xcol));
            int at = n++;
            while (at > 0 && xs[at - 1] > x) xs[at] = xs[at - 1], rows[at] = rows[at - 1], at--;
            xs[at] = x;
            rows[at] = r;
        }
        for (int i = 0; i < n; i++)
            fprintf(f, "%.9g %s %s %s %s\n", xs[i], cell(t, rows[i], lat), cell(t, rows[i], otp), cell(t, rows[i], rtp),
                    cell(t, rows[i], 0));
        fprintf(f, "EOD\n");
    }
    fprintf(f, "\nset datafile separator whitespace\n");
    if (has_inf) fprintf(f, "set xtics add (\"inf\" %.9g)\n", xinf);
    if (xcol < 0) fprintf(f, "set xtics rotate by -30\n");
    for (int pass = 0; pass < 2; pass++) {
        fprintf(f, "\n# %s\ndo for [fmt in fmts] {\n", pass == 0 ? "normalized latency vs request rate (paper Fig. 12)"
                                                                 : "throughput vs request rate");
        fprintf(f, "  eval term(fmt, %d, 560)\n  set output sprintf(\"%s.%%s\", fmt)\n", pass ? 1300 : 900,
                pass == 0 ? "latency_vs_rate" : "throughput_vs_rate");
        if (pass == 1) fprintf(f, "  set multiplot layout 1,2 title expname.\": throughput vs %s\"\n", xname);
        for (int panel = 0; panel < (pass ? 2 : 1); panel++) {
            int ycol = pass == 0 ? 2 : panel ? 4 : 3;
            if (pass == 0)
                fprintf(f, "  set title expname.\": normalized latency vs %s\"\n  set ylabel \"mean normalized latency "
                           "(s/token)\"\n", xname);
            else fprintf(f, "  set title \"%s\"\n  set ylabel \"%s\"\n", panel ? "request throughput" : "output token throughput",
                         panel ? "requests/s" : "output tokens/s");
            fprintf(f, "  set xlabel \"%s\"\n  set yrange [0:*]\n  plot ",
                    xcol > 0 ? (strcmp(xname, "rate") ? xname : has_inf ? "request rate (req/s; inf = all at once)"
                                                                        : "request rate (req/s)") : "run");
            for (int s = 0; s < nseries; s++) {
                fprintf(f, "%s\\\n    $s%d using 1:%d%s with linespoints lw 2 pt 7 ps 1.2 title \"", s ? ", " : "", s + 1,
                        ycol, xcol < 0 ? ":xtic(5)" : "");
                int terms = 0;
                for (int c = 1; c <= nswept; c++) {
                    if (c == xcol) continue;
                    fprintf(f, "%s%s=", terms++ ? " " : "", t->cols[c]);
                    gp_str(f, cell(t, series[s], c));
                }
                if (!terms) fprintf(f, "all runs");
                fprintf(f, "\"");
            }
            fprintf(f, "\n");
        }
        if (pass == 1) fprintf(f, "  unset multiplot\n");
        fprintf(f, "  unset output\n}\n");
    }
    fprintf(f, "set yrange [*:*]\nset xtics autofreq norotate\nset datafile separator comma\n\n");
    /* CDFs over requests: requests.csv column 9 = ttft, 10 = tpot */
    for (int k = 0; k < 2; k++) {
        fprintf(f, "# %s CDF over requests, one line per run\ndo for [fmt in fmts] {\n  eval term(fmt, 1100, 600)\n"
                   "  set output sprintf(\"%s_cdf.%%s\", fmt)\n  set title expname.\": %s CDF\"\n  set xlabel \"%s (s)\"\n"
                   "  set ylabel \"fraction of requests\"\n  set yrange [0:1]\n  set logscale x\n  plot ",
                k ? "TPOT" : "TTFT", k ? "tpot" : "ttft", k ? "TPOT" : "TTFT", k ? "TPOT" : "TTFT");
        for (int r = 0; r < t->nrows; r++) {
            int sr = 0, rank = 0;
            for (int q = 0; q < nseries; q++) {
                int same = 1;
                for (int c = 1; c <= nswept; c++)
                    if (c != xcol && strcmp(cell(t, r, c), cell(t, series[q], c))) same = 0;
                if (same) sr = q;
            }
            for (int q = 0; xcol > 0 && q < r; q++) /* distinct x values before this row's */
                if (x_of(t, q, xcol, xinf) < x_of(t, r, xcol, xinf)) {
                    int first = 1;
                    for (int z = 0; z < q; z++) first &= x_of(t, z, xcol, xinf) != x_of(t, q, xcol, xinf);
                    rank += first;
                }
            fprintf(f, "%s\\\n    '../", r ? ", " : "");
            gp_str(f, cell(t, r, 0));
            fprintf(f, "/requests.csv' skip 1 using %d:(1.0) smooth cnormal with lines lw 2 lc %d dt %d title \"",
                    k ? 10 : 9, sr + 1, rank % 5 + 1);
            gp_str(f, cell(t, r, 0));
            fprintf(f, "\"");
        }
        fprintf(f, "\n  unset logscale x\n  set yrange [*:*]\n  unset output\n}\n\n");
    }
    /* KV usage over time: one panel per run */
    int cols = t->nrows < 4 ? t->nrows : 4, rows = (t->nrows + cols - 1) / cols;
    fprintf(f, "# KV cache over time: share of blocks in use and utilization (tokens / reserved slots)\n"
               "do for [fmt in fmts] {\n  eval term(fmt, %d, %d)\n  set output sprintf(\"kv_usage.%%s\", fmt)\n"
               "  set multiplot layout %d,%d title expname.\": KV cache over time\"\n  set yrange [0:1.05]\n"
               "  set key inside bottom right font ',8'\n  set xlabel \"time (s)\"\n  set ylabel \"share\"\n",
            300 * cols + 100, 260 * rows + 60, rows, cols);
    for (int r = 0; r < t->nrows; r++) {
        fprintf(f, "  set title \"");
        gp_str(f, cell(t, r, 0));
        fprintf(f, "\" font ',9'\n  plot '../");
        gp_str(f, cell(t, r, 0));
        fprintf(f, "/timeline.csv' skip 1 using 1:10 with lines lw 2 title \"blocks used\", '../");
        gp_str(f, cell(t, r, 0));
        fprintf(f, "/timeline.csv' skip 1 using 1:11 with lines lw 1 title \"utilization\"\n");
    }
    fprintf(f, "  unset multiplot\n  unset output\n}\n");
}

/* Every run of runs.csv complete and of its row's sweep, no .partial run
 * left: 1, else 0 after naming each offender on stderr. */
static int runs_whole(const char *exp, const table *t) {
    static const char *const need[] = {"requests.csv", "timeline.csv", NULL};
    int ok = 1, sc = col_of(t, "sweep_id");
    char dir[4400], sid[80];
    for (int r = 0; r < t->nrows; r++) {
        snprintf(dir, sizeof dir, "%s/%s", exp, cell(t, r, 0));
        if (pgd_results_check_run(dir, need, sid, sizeof sid) != PGD_OK) {
            fprintf(stderr, "pagoda plot: %s\n", pgd_last_error());
            ok = 0;
        } else if (sc >= 0 && strcmp(sid, cell(t, r, sc))) {
            fprintf(stderr, "pagoda plot: stale run %s: written by sweep %s, but runs.csv's row is from sweep %s; "
                    "re-run it\n", dir, sid[0] ? sid : "(none)", cell(t, r, sc));
            ok = 0;
        }
    }
    DIR *d = opendir(exp);
    size_t sl = strlen(PGD_RESULTS_PARTIAL_SUFFIX);
    for (struct dirent *de; d && (de = readdir(d));) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' && len > 1 + sl && !strcmp(de->d_name + len - sl, PGD_RESULTS_PARTIAL_SUFFIX)) {
            fprintf(stderr, "pagoda plot: incomplete run %s/%.*s: it was interrupted while being written (%s/%s); "
                    "re-run it\n", exp, (int)(len - 1 - sl), de->d_name + 1, exp, de->d_name);
            ok = 0;
        }
    }
    if (d) closedir(d);
    if (!ok) fprintf(stderr, "pagoda plot: %s: incomplete or stale runs; nothing drawn\n", exp);
    return ok;
}

int pgd_cli_gnuplot(const char *dir, const char *script) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (chdir(dir) != 0) _exit(127);
        execlp("gnuplot", "gnuplot", script, (char *)NULL);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int pgd_cmd_plot(int argc, char **argv) {
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: pagoda plot results/<experiment>\n"
               "       pagoda plot results/perf/history.csv\n"
               "Writes results/<experiment>/plots/{plots.gp, latency_vs_rate, throughput_vs_rate, ttft_cdf,\n"
               "tpot_cdf, kv_usage}.{png,svg} with gnuplot; for the perf gate's history CSV,\n"
               "plots/{perf_history.gp, perf_history.png, perf_history.svg} next to it.\n");
        return 0;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: pagoda plot results/<experiment> | results/perf/history.csv\n");
        return 2;
    }
    struct stat sb;
    if (stat(argv[1], &sb) == 0 && S_ISREG(sb.st_mode)) return pgd_plot_history(argv[1]);
    char path[4400], dir[4200];
    const char *exp = argv[1];
    snprintf(path, sizeof path, "%s/runs.csv", exp);
    table t;
    if (!load_runs(path, &t)) {
        table_free(&t);
        return 2;
    }
    int nswept = col_of(&t, "completed") - 1, xcol = -1;
    if (nswept < 0) {
        fprintf(stderr, "pagoda plot: %s: no 'completed' column (not written by pagoda run?)\n", path);
        table_free(&t);
        return 2;
    }
    if (!runs_whole(exp, &t)) {
        table_free(&t);
        return 1;
    }
    for (int c = 1; c <= nswept && xcol < 0; c++)
        if (!strcmp(t.cols[c], "rate")) xcol = c;
    for (int c = 1; c <= nswept && xcol < 0; c++) {
        int all = 1;
        for (int r = 0; r < t.nrows; r++) all &= numeric(cell(&t, r, c));
        if (all) xcol = c;
    }
    snprintf(dir, sizeof dir, "%s/plots", exp);
    if (pgd_mkdir_p(dir) != PGD_OK) {
        fprintf(stderr, "pagoda plot: %s\n", pgd_last_error());
        table_free(&t);
        return 1;
    }
    snprintf(path, sizeof path, "%s/plots.gp", dir);
    char tmp[4500];
    FILE *f;
    if (pgd_results_open(path, tmp, sizeof tmp, &f) != PGD_OK) {
        fprintf(stderr, "pagoda plot: %s\n", pgd_last_error());
        table_free(&t);
        return 1;
    }
    const char *base = strrchr(exp, '/');
    char name[256];
    snprintf(name, sizeof name, "%s", base && base[1] ? base + 1 : exp);
    size_t nl = strlen(name);
    while (nl > 1 && name[nl - 1] == '/') name[--nl] = 0;
    write_script(f, &t, nswept, xcol, name);
    table_free(&t);
    if (pgd_results_commit(f, tmp, path) != PGD_OK) {
        fprintf(stderr, "pagoda plot: %s\n", pgd_last_error());
        return 1;
    }
    int rc = pgd_cli_gnuplot(dir, "plots.gp");
    if (rc != 0) {
        fprintf(stderr, "pagoda plot: gnuplot failed (%s); the script is %s\n",
                rc == 127 ? "is gnuplot installed? scripts/setup.sh installs gnuplot-nox" : "see its messages above", path);
        return 1;
    }
    printf("pagoda plot: wrote %s/{latency_vs_rate,throughput_vs_rate,ttft_cdf,tpot_cdf,kv_usage}.{png,svg} "
           "(script: %s)\n", dir, path);
    return 0;
}
