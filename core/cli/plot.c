/* plot.c - `pagoda plot results/<experiment>`: writes a gnuplot script
 * (plots/plots.gp, generated from runs.csv's header and rows, or from
 * runs_mean.csv when the experiment has repeats, reading the per-run CSVs
 * in place so users can edit and re-run it) and runs gnuplot to draw PNG
 * and SVG files into plots/:
 *   latency_vs_load    a latency metric and percentile (--metric, --percentile;
 *                      default mean normalized latency) vs the offered load,
 *                      one line per combination of the other swept values;
 *                      95% CI error bars with repeats
 *   COLUMN_vs_load     one more per --y COLUMN (e.g. per-class metrics)
 *   throughput_vs_load output tokens/s and achieved req/s vs the offered load
 *   pareto             output throughput vs the latency, one point per run
 *                      (per sweep point with repeats), the frontier joined
 *   *_cdf              TTFT, TPOT, E2E, normalized latency CDFs over requests
 *                      (requests.csv columns found by name): one panel per
 *                      load level, one line per run
 *   kv_usage           KV blocks in use and utilization over time, one panel
 *                      per run (the first repeat of each sweep point)
 * The x axis is runs.csv's offered_rate when it varies and is finite, else
 * the swept load key (rate, time_scale, or the first numeric swept key; inf
 * sits right of the largest value), or --x. Line styles come from the series'
 * values (each key's value ranked among its sorted values), never from the
 * sweep's order; legends sit outside the data or in a panel of their own.
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
 * stale, 2 bad input (an unknown option, metric or column). */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "pagoda/results.h"
#include "pagoda/runner.h"
#include "util/suggest.h"

#define MAX_COLS 320
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

typedef struct plot_opts {
    const char *metric;     /* ttft, tpot, itl, e2e, norm_latency (default norm_latency) */
    const char *pct;        /* mean, p50, p90, p95, p99 (default mean) */
    const char *xname;      /* --x: a runs.csv column (default offered_rate, else the swept load key) */
    const char *ys[8];      /* --y: extra runs.csv columns, one panel each (per-class metrics) */
    int n_ys;
    int logy;               /* latency axes on a log scale */
    int cdf_linear;         /* CDF x axis linear (default log) */
} plot_opts;

static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                      "#9467bd", "#8c564b", "#e377c2", "#17becf"};

typedef struct points {
    const table *t;   /* runs.csv or runs_mean.csv */
    int mean;         /* rows are means over repeats (NAME_ci95 columns) */
    int xcol, loadcol; /* x column; the swept load key (-1 none) */
    int nswept;       /* swept columns: 1..nswept (repeat excluded in means) */
    int series_of[MAX_ROWS], nseries, series_row[MAX_ROWS];
    char label[MAX_ROWS][256];
} points;

static int is_series_col(const points *P, int c) {
    return c != P->xcol && c != P->loadcol && strcmp(P->t->cols[c], "repeat") && strcmp(P->t->cols[c], "repeats");
}

static int cmp_value(const char *a, const char *b) {
    if (numeric(a) && numeric(b)) {
        double x = atof(a), y = atof(b);
        return (x > y) - (x < y);
    }
    return strcmp(a, b);
}

/* A run's line style from its series values alone, never from the sweep's
 * order: the first series column picks the color, the second the dash
 * pattern, the third the point type, each by the rank of the run's value
 * among that column's distinct values in sorted order (so policy = sjf has
 * the same color whatever order the sweep lists the policies in, and in
 * every plot of the experiment). */
static void style(FILE *f, const points *P, int row, int lines) {
    int rank[3] = {0, 0, 0}, k = 0;
    for (int c = 1; c <= P->nswept && k < 3; c++) {
        if (!is_series_col(P, c)) continue;
        const char *v = cell(P->t, row, c), *seen[MAX_ROWS];
        int ns = 0;
        for (int r = 0; r < P->t->nrows; r++) {
            const char *w = cell(P->t, r, c);
            int dup = 0;
            for (int q = 0; q < ns && !dup; q++) dup = !strcmp(seen[q], w);
            if (dup) continue;
            seen[ns++] = w;
            rank[k] += cmp_value(w, v) < 0;
        }
        k++;
    }
    fprintf(f, " lc rgb \"%s\" dt %d lw 2", palette[rank[0] % 8], rank[1] % 5 + 1);
    if (!lines) fprintf(f, " pt %d ps 1.2", (rank[2] * 2 + rank[1]) % 7 + 5);
}

static void series_name(const points *P, int r, char *buf, size_t n) {
    buf[0] = 0;
    for (int c = 1; c <= P->nswept; c++) {
        if (!is_series_col(P, c)) continue;
        size_t len = strlen(buf);
        snprintf(buf + len, n - len, "%s%s=%s", len ? " " : "", P->t->cols[c], cell(P->t, r, c));
    }
    if (!buf[0]) snprintf(buf, n, "all runs");
}

static void group_series(points *P) {
    P->nseries = 0;
    for (int r = 0; r < P->t->nrows; r++) {
        char name[256];
        series_name(P, r, name, sizeof name);
        int s = 0;
        while (s < P->nseries && strcmp(P->label[s], name)) s++;
        if (s == P->nseries) {
            snprintf(P->label[s], sizeof P->label[s], "%s", name);
            P->series_row[s] = r;
            P->nseries++;
        }
        P->series_of[r] = s;
    }
}

static double xval(const points *P, int r) {
    if (P->xcol < 0) return r;
    const char *v = cell(P->t, r, P->xcol);
    return strstr(v, "inf") ? INFINITY : atof(v);
}

/* One datablock per series, sorted by x: x y yerr run (yerr 0 without repeats). */
static void datablocks(FILE *f, const points *P, const char *tag, int ycol, double xinf) {
    char ci[300];
    snprintf(ci, sizeof ci, "%s_ci95", P->t->cols[ycol]);
    int cic = P->mean ? col_of(P->t, ci) : -1;
    for (int s = 0; s < P->nseries; s++) {
        fprintf(f, "# %s, series %s\n$%s_%d << EOD\n", P->t->cols[ycol], P->label[s], tag, s);
        double xs[MAX_ROWS];
        int rows[MAX_ROWS], n = 0;
        for (int r = 0; r < P->t->nrows; r++) {
            if (P->series_of[r] != s) continue;
            double x = xval(P, r);
            if (isinf(x)) x = xinf;
            int at = n++;
            while (at > 0 && xs[at - 1] > x) xs[at] = xs[at - 1], rows[at] = rows[at - 1], at--;
            xs[at] = x;
            rows[at] = r;
        }
        for (int i = 0; i < n; i++) {
            const char *y = cell(P->t, rows[i], ycol), *e = cic >= 0 ? cell(P->t, rows[i], cic) : "";
            fprintf(f, "%.9g %s %s %s\n", xs[i], *y ? y : "NaN", *e ? e : "0", cell(P->t, rows[i], 0));
        }
        fprintf(f, "EOD\n");
    }
}

static void plot_series(FILE *f, const points *P, const char *tag, int errbars) {
    fprintf(f, "  plot ");
    for (int s = 0; s < P->nseries; s++) {
        fprintf(f, "%s\\\n    $%s_%d using 1:2%s with %s", s ? ", " : "", tag, s, errbars ? ":3" : "",
                errbars ? "yerrorlines" : "linespoints");
        style(f, P, P->series_row[s], 0);
        fprintf(f, " title \"");
        gp_str(f, P->label[s]);
        fprintf(f, "\"");
    }
    fprintf(f, "\n");
}

static const char *ylabel_of(const char *col) {
    if (strstr(col, "throughput")) return strstr(col, "request") ? "requests/s" : "tokens/s";
    if (strstr(col, "norm_latency")) return "s/token";
    if (strstr(col, "rate")) return "requests/s";
    return "s";
}

static void write_script(FILE *f, const table *runs, const table *means, const plot_opts *o, const char *expname,
                         const int *req_cols) {
    points P = {.t = means ? means : runs, .mean = means != NULL, .xcol = -1, .loadcol = -1};
    const table *t = P.t;
    P.nswept = col_of(t, means ? "repeats" : "completed") - 1;
    /* the load key: a swept rate, else time_scale, else the first numeric swept column */
    for (int c = 1; c <= P.nswept && P.loadcol < 0; c++)
        if (!strcmp(t->cols[c], "rate")) P.loadcol = c;
    for (int c = 1; c <= P.nswept && P.loadcol < 0; c++)
        if (!strcmp(t->cols[c], "time_scale")) P.loadcol = c;
    for (int c = 1; c <= P.nswept && P.loadcol < 0; c++) {
        int all = strcmp(t->cols[c], "repeat") != 0;
        for (int r = 0; r < t->nrows; r++) all &= numeric(cell(t, r, c));
        if (all) P.loadcol = c;
    }
    /* x: --x, else the offered rate when it varies and is finite, else the load key */
    if (o->xname) P.xcol = col_of(t, o->xname);
    else {
        int oc = col_of(t, "offered_rate"), ok = oc >= 0 && P.loadcol >= 0;
        for (int r = 0; ok && r < t->nrows; r++) ok = numeric(cell(t, r, oc)) && isfinite(atof(cell(t, r, oc)));
        P.xcol = ok ? oc : P.loadcol;
    }
    group_series(&P);
    const char *xname = P.xcol >= 0 ? t->cols[P.xcol] : "run";
    double xmax = 0;
    int has_inf = 0;
    for (int r = 0; P.xcol >= 0 && r < t->nrows; r++) {
        double x = xval(&P, r);
        if (isinf(x)) has_inf = 1;
        else if (x > xmax) xmax = x;
    }
    double xinf = xmax > 0 ? xmax * 1.25 : 1;
    char ycol_name[128];
    snprintf(ycol_name, sizeof ycol_name, "%s_%s", o->metric, o->pct);
    int ycol = col_of(t, ycol_name);
    fprintf(f, "# plots.gp - generated by `pagoda plot` from ../%s and the runs' CSVs.\n"
               "# Run from this directory: gnuplot plots.gp. Edit freely; `pagoda plot` overwrites it.\n"
               "# Line styles come from each series' name (not the sweep order).\n"
               "set datafile missing 'NaN'\nset grid\nset key outside right top Left reverse\n"
               "fmts = \"png svg\"\n"
               "term(fmt, w, h) = (fmt eq \"png\") ? sprintf(\"set terminal pngcairo noenhanced size %%d,%%d font ',10'\", w, h) \\\n"
               "                      : sprintf(\"set terminal svg noenhanced size %%d,%%d dynamic font 'Helvetica,10'\", w, h)\n",
            means ? "runs_mean.csv" : "runs.csv");
    fprintf(f, "expname = \"");
    gp_str(f, expname);
    fprintf(f, "\"\n\n");
    int keyw = 0; /* the legend's width beside the plot */
    for (int s = 0; s < P.nseries; s++) keyw = (int)strlen(P.label[s]) > keyw ? (int)strlen(P.label[s]) : keyw;
    int W = 700 + 7 * keyw;
    const char *xlabel = P.xcol < 0 ? "run"
                         : !strcmp(xname, "offered_rate") ? "offered load (requests/s)"
                         : !strcmp(xname, "rate") ? (has_inf ? "request rate (req/s; inf = all at once)" : "request rate (req/s)")
                                                  : xname;
    /* latency vs load: the chosen metric and percentile, then each --y column */
    int ycols[10], ny = 0;
    ycols[ny++] = ycol;
    for (int i = 0; i < o->n_ys; i++) ycols[ny++] = col_of(t, o->ys[i]);
    datablocks(f, &P, "lat", ycols[0], xinf);
    int otp = col_of(t, "output_throughput"), atp = col_of(t, "achieved_rate");
    if (atp < 0) atp = col_of(t, "request_throughput");
    datablocks(f, &P, "otp", otp, xinf);
    datablocks(f, &P, "atp", atp, xinf);
    fprintf(f, "\nset datafile separator whitespace\n");
    if (has_inf) fprintf(f, "set xtics add (\"inf\" %.9g)\n", xinf);
    /* one image per y column; the first is latency_vs_load */
    for (int i = 0; i < ny; i++) {
        /* each --y panel has its own datablocks: regenerate under a unique tag */
        char tag[16];
        snprintf(tag, sizeof tag, "y%d", i);
        if (i > 0) {
            fprintf(f, "set datafile separator whitespace\n");
            datablocks(f, &P, tag, ycols[i], xinf);
        }
        fprintf(f, "\n# %s vs load%s\ndo for [fmt in fmts] {\n  eval term(fmt, %d, 560)\n  set output sprintf(\"%s%s.%%s\", fmt)\n",
                t->cols[ycols[i]], P.mean ? " (mean and 95% CI over repeats)" : "", W,
                i ? t->cols[ycols[i]] : "latency", i ? "_vs_load" : "_vs_load");
        fprintf(f, "  set title expname.\": %s vs %s%s\"\n  set xlabel \"%s\"\n  set ylabel \"%s (%s)\"\n",
                t->cols[ycols[i]], P.xcol >= 0 ? xname : "run", P.mean ? " (error bars: 95% CI)" : "", xlabel,
                t->cols[ycols[i]], ylabel_of(t->cols[ycols[i]]));
        fprintf(f, o->logy ? "  set logscale y\n" : "  set yrange [0:*]\n");
        plot_series(f, &P, i ? tag : "lat", P.mean);
        fprintf(f, "  unset logscale y\n  set yrange [*:*]\n  unset output\n}\n");
    }
    /* throughput vs load */
    fprintf(f, "\n# throughput vs load\ndo for [fmt in fmts] {\n  eval term(fmt, %d, 560)\n"
               "  set output sprintf(\"throughput_vs_load.%%s\", fmt)\n"
               "  set multiplot layout 1,3 title expname.\": throughput vs %s%s\"\n  unset key\n",
            3 * 460, xname, P.mean ? " (error bars: 95% CI)" : "");
    for (int panel = 0; panel < 2; panel++) {
        fprintf(f, "  set title \"%s\"\n  set xlabel \"%s\"\n  set ylabel \"%s\"\n  set yrange [0:*]\n",
                panel ? "achieved request rate" : "output token throughput", xlabel, panel ? "requests/s" : "tokens/s");
        plot_series(f, &P, panel ? "atp" : "otp", P.mean);
    }
    /* the legend: a panel of its own */
    fprintf(f, "  set title \"\"\n  unset border\n  unset tics\n  unset xlabel\n  unset ylabel\n  unset grid\n"
               "  set xrange [0:1]\n  set yrange [0:1]\n  set key inside left center vertical Left reverse font ',9'\n"
               "  plot ");
    for (int s = 0; s < P.nseries; s++) {
        fprintf(f, "%sNaN with linespoints", s ? ", \\\n    " : "");
        style(f, &P, P.series_row[s], 0);
        fprintf(f, " title \"");
        gp_str(f, P.label[s]);
        fprintf(f, "\"");
    }
    fprintf(f, "\n  set border\n  set tics\n  set grid\n  set xrange [*:*]\n  set yrange [*:*]\n"
               "  unset multiplot\n  set key outside right top\n  unset output\n}\n");
    /* Pareto: output throughput vs the chosen latency, one point per run (or
     * mean over repeats), the non-dominated ones joined */
    if (ycol >= 0 && otp >= 0) {
        fprintf(f, "\n# Pareto frontier: higher throughput at lower latency is better\n");
        for (int s = 0; s < P.nseries; s++) {
            fprintf(f, "$par_%d << EOD\n", s);
            for (int r = 0; r < t->nrows; r++)
                if (P.series_of[r] == s)
                    fprintf(f, "%s %s %s\n", *cell(t, r, ycol) ? cell(t, r, ycol) : "NaN", cell(t, r, otp), cell(t, r, 0));
            fprintf(f, "EOD\n");
        }
        fprintf(f, "$frontier << EOD\n");
        /* non-dominated: no other point has <= latency and >= throughput, one strictly */
        double lx[MAX_ROWS];
        int fr[MAX_ROWS], nf = 0;
        for (int r = 0; r < t->nrows; r++) {
            double lr = atof(cell(t, r, ycol)), tr = atof(cell(t, r, otp));
            int dom = !numeric(cell(t, r, ycol));
            for (int q = 0; q < t->nrows && !dom; q++) {
                double lq = atof(cell(t, q, ycol)), tq = atof(cell(t, q, otp));
                if (q != r && numeric(cell(t, q, ycol)) && lq <= lr && tq >= tr && (lq < lr || tq > tr)) dom = 1;
            }
            if (dom) continue;
            int at = nf++;
            while (at > 0 && lx[at - 1] > lr) lx[at] = lx[at - 1], fr[at] = fr[at - 1], at--;
            lx[at] = lr;
            fr[at] = r;
        }
        for (int i = 0; i < nf; i++) fprintf(f, "%s %s\n", cell(t, fr[i], ycol), cell(t, fr[i], otp));
        fprintf(f, "EOD\ndo for [fmt in fmts] {\n  eval term(fmt, %d, 600)\n  set output sprintf(\"pareto.%%s\", fmt)\n"
                   "  set title expname.\": output throughput vs %s%s\"\n"
                   "  set xlabel \"%s (%s, log scale)\"\n  set ylabel \"output throughput (tokens/s)\"\n  set yrange [0:*]\n"
                   "  set key outside right top vertical%s\n  set logscale x\n"
                   "  plot $frontier using 1:2 with lines lc rgb \"#888888\" lw 3 dt 1 title \"Pareto frontier\"",
                W, ycol_name, P.mean ? " (means over repeats)" : "", ycol_name, ylabel_of(ycol_name),
                "");
        for (int s = 0; s < P.nseries; s++) {
            fprintf(f, ", \\\n    $par_%d using 1:2 with points", s);
            style(f, &P, P.series_row[s], 0);
            fprintf(f, " title \"");
            gp_str(f, P.label[s]);
            fprintf(f, "\"");
        }
        fprintf(f, "\n  unset logscale x\n  set yrange [*:*]\n  unset output\n}\n");
    }
    /* CDFs over requests (requests.csv of every run): one panel per load
     * level, one line style per series; the repeats of a series share its
     * style and its legend entry */
    const points *R = &P;
    points PR = {.t = runs, .xcol = -1, .loadcol = -1};
    PR.nswept = col_of(runs, "completed") - 1;
    for (int c = 1; c <= PR.nswept; c++)
        if (P.loadcol >= 0 && !strcmp(runs->cols[c], t->cols[P.loadcol])) PR.loadcol = c;
    group_series(&PR);
    R = &PR;
    double levels[MAX_ROWS];
    int nl = 0;
    for (int r = 0; r < runs->nrows; r++) {
        double v = R->loadcol >= 0 ? (strstr(cell(runs, r, R->loadcol), "inf") ? INFINITY : atof(cell(runs, r, R->loadcol))) : 0;
        int k = 0;
        while (k < nl && levels[k] != v) k++;
        if (k == nl) {
            int at = nl++;
            while (at > 0 && levels[at - 1] > v) levels[at] = levels[at - 1], at--;
            levels[at] = v;
        }
    }
    static const char *const cdfs[] = {"ttft", "tpot", "e2e", "normalized_latency"};
    static const char *const cdf_names[] = {"TTFT", "TPOT", "E2E latency", "normalized latency"};
    /* the legend gets a panel of its own after the load panels, so it never
     * covers data nor shrinks one panel */
    int legend = PR.nseries > 1, cells = nl + legend, cols_n = cells < 4 ? cells : 4,
        rows_n = (cells + cols_n - 1) / cols_n;
    fprintf(f, "\nset datafile separator comma\n");
    for (int k = 0; k < 4; k++) {
        if (req_cols[k] < 0) continue;
        fprintf(f, "\n# %s CDF over requests: one panel per load level, one line per run\n"
                   "do for [fmt in fmts] {\n  eval term(fmt, %d, %d)\n  set output sprintf(\"%s_cdf.%%s\", fmt)\n"
                   "  set multiplot layout %d,%d title expname.\": %s CDF over requests%s\"\n"
                   "  set xlabel \"%s (%s)\"\n  set ylabel \"fraction of requests\"\n  set yrange [0:1]\n%s",
                k == 3 ? "normalized latency" : cdf_names[k], 440 * cols_n + 40, 420 * rows_n + 60,
                k == 3 ? "norm_latency" : cdfs[k], rows_n, cols_n, cdf_names[k],
                "", cdf_names[k], k == 3 ? "s/token" : "s",
                o->cdf_linear ? "" : "  set logscale x\n");
        for (int l = 0; l < nl; l++) {
            char lv[64];
            if (isinf(levels[l])) snprintf(lv, sizeof lv, "inf");
            else snprintf(lv, sizeof lv, "%g", levels[l]);
            fprintf(f, "  set title \"%s%s%s\"\n", R->loadcol >= 0 ? runs->cols[R->loadcol] : "all runs",
                    R->loadcol >= 0 ? " = " : "", R->loadcol >= 0 ? lv : "");
            fprintf(f, legend ? "  unset key\n" : "  set key inside bottom right font ',8'\n");
            fprintf(f, "  plot ");
            int first = 1, titled[MAX_ROWS] = {0};
            for (int r = 0; r < runs->nrows; r++) {
                double v = R->loadcol >= 0 ? (strstr(cell(runs, r, R->loadcol), "inf") ? INFINITY
                                                                                        : atof(cell(runs, r, R->loadcol))) : 0;
                if (v != levels[l]) continue;
                int s = R->series_of[r];
                fprintf(f, "%s\\\n    '../", first ? "" : ", ");
                gp_str(f, cell(runs, r, 0));
                fprintf(f, "/requests.csv' skip 1 using ($%d >= 0 ? $%d : NaN):(1.0) smooth cnormal with lines",
                        req_cols[k] + 1, req_cols[k] + 1);
                style(f, R, r, 1);
                if (titled[s]) fprintf(f, " notitle");
                else {
                    fprintf(f, " title \"");
                    gp_str(f, R->label[s]);
                    fprintf(f, "\"");
                }
                titled[s] = 1;
                first = 0;
            }
            fprintf(f, "\n");
        }
        if (legend) { /* the legend panel: invisible lines, one entry per series */
            fprintf(f, "  set title \"\"\n  unset border\n  unset tics\n  unset xlabel\n  unset ylabel\n  unset grid\n"
                       "  unset logscale x\n  set xrange [0:1]\n  set yrange [0:1]\n"
                       "  set key inside left center vertical Left reverse font ',9' samplen 4\n  plot ");
            for (int s = 0; s < PR.nseries; s++) {
                fprintf(f, "%sNaN with lines", s ? ", \\\n    " : "");
                style(f, &PR, PR.series_row[s], 1);
                fprintf(f, " title \"");
                gp_str(f, PR.label[s]);
                fprintf(f, "\"");
            }
            fprintf(f, "\n  set border\n  set tics\n  set grid\n  set xrange [*:*]\n");
        }
        fprintf(f, "  unset multiplot\n  unset logscale x\n  set yrange [*:*]\n  set key outside right top font ',10'\n"
                   "  unset output\n}\n");
    }
    /* KV usage over time: one panel per run (the first repeat only: the
     * others look alike), titled by its load and series; colors named in
     * the title instead of a legend over the data */
    int rep = col_of(runs, "repeat"), kv_rows[MAX_ROWS], nkv = 0;
    for (int r = 0; r < runs->nrows; r++)
        if (rep < 0 || !strcmp(cell(runs, r, rep), "1")) kv_rows[nkv++] = r;
    int cols = nkv < 4 ? nkv : 4, rows = (nkv + cols - 1) / cols;
    fprintf(f, "\n# KV cache over time: share of blocks in use and utilization (tokens / reserved slots)\n"
               "do for [fmt in fmts] {\n  eval term(fmt, %d, %d)\n  set output sprintf(\"kv_usage.%%s\", fmt)\n"
               "  set multiplot layout %d,%d title expname.\": KV cache over time%s (purple: share of blocks used; "
               "green: utilization, tokens / reserved slots)\"\n  set yrange [0:1.05]\n"
               "  unset key\n  set xlabel \"time (s)\"\n  set ylabel \"share\"\n",
            380 * cols + 100, 280 * rows + 80, rows, cols, rep >= 0 ? ", first repeat of each" : "");
    for (int i = 0; i < nkv; i++) {
        int r = kv_rows[i];
        char title[512] = "";
        if (PR.loadcol >= 0) snprintf(title, sizeof title, "%s=%s ", runs->cols[PR.loadcol], cell(runs, r, PR.loadcol));
        snprintf(title + strlen(title), sizeof title - strlen(title), "%s",
                 PR.nseries > 1 || PR.loadcol < 0 ? PR.label[PR.series_of[r]] : "");
        if (PR.loadcol < 0 && PR.nseries <= 1) snprintf(title, sizeof title, "%s", cell(runs, r, 0));
        fprintf(f, "  set title \"");
        gp_str(f, title);
        fprintf(f, "\" font ',8'\n  plot '../");
        gp_str(f, cell(runs, r, 0));
        fprintf(f, "/timeline.csv' skip 1 using 1:10 with lines lw 2 lc rgb \"#9400d3\", '../");
        gp_str(f, cell(runs, r, 0));
        fprintf(f, "/timeline.csv' skip 1 using 1:11 with lines lw 1 lc rgb \"#009e73\"\n");
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

static void plot_usage(FILE *f) {
    fprintf(f,
            "usage: pagoda plot [--metric M] [--percentile P] [--x COLUMN] [--y COLUMN].. [--logy]\n"
            "                   [--cdf-scale log|linear] results/<experiment>\n"
            "       pagoda plot results/perf/history.csv\n"
            "\n"
            "  --metric      latency metric of latency_vs_load and pareto: norm_latency (default), ttft,\n"
            "                tpot, itl, e2e\n"
            "  --percentile  mean (default), p50, p90, p95, p99\n"
            "  --x           the x axis column of runs.csv (default: offered_rate when the load varies)\n"
            "  --y           one more image COLUMN_vs_load per runs.csv column (repeatable; e.g. a\n"
            "                per-class metric of a priority study)\n"
            "  --logy        latency on a log scale (latency_vs_load, pareto's x)\n"
            "  --cdf-scale   x axis of the CDFs (default log)\n"
            "Writes results/<experiment>/plots/{plots.gp, latency_vs_load, throughput_vs_load, pareto,\n"
            "ttft_cdf, tpot_cdf, e2e_cdf, norm_latency_cdf, kv_usage}.{png,svg} with gnuplot. With\n"
            "repeats (runs_mean.csv) the load plots show means with 95%% confidence intervals. Line\n"
            "styles follow each series' name; CDFs have one panel per load level.\n"
            "For the perf gate's history CSV: plots/{perf_history.gp,.png,.svg} next to it.\n");
}

int pgd_cmd_plot(int argc, char **argv) {
    plot_opts o = {.metric = "norm_latency", .pct = "mean"};
    static const struct option opts[] = {{"metric", required_argument, 0, 'm'}, {"percentile", required_argument, 0, 'p'},
                                         {"x", required_argument, 0, 'x'},      {"y", required_argument, 0, 'y'},
                                         {"logy", no_argument, 0, 'l'},         {"cdf-scale", required_argument, 0, 'c'},
                                         {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    static const char *const metrics[] = {"norm_latency", "ttft", "tpot", "itl", "e2e", NULL};
    static const char *const pcts[] = {"mean", "p50", "p90", "p95", "p99", NULL};
    optind = 1;
    int ch;
    while ((ch = pgd_cli_getopt(argc, argv, "h", opts)) != -1) {
        switch (ch) {
        case 'm': o.metric = optarg; break;
        case 'p': o.pct = optarg; break;
        case 'x': o.xname = optarg; break;
        case 'y':
            if (o.n_ys == 8) {
                fprintf(stderr, "pagoda plot: at most 8 --y columns\n");
                return 2;
            }
            o.ys[o.n_ys++] = optarg;
            break;
        case 'l': o.logy = 1; break;
        case 'c':
            if (strcmp(optarg, "log") && strcmp(optarg, "linear")) {
                fprintf(stderr, "pagoda plot: --cdf-scale must be log or linear (got '%s')\n", optarg);
                return 2;
            }
            o.cdf_linear = !strcmp(optarg, "linear");
            break;
        case 'h': plot_usage(stdout); return 0;
        default: plot_usage(stderr); return 2;
        }
    }
    int ok_m = 0, ok_p = 0;
    for (int i = 0; metrics[i]; i++) ok_m |= !strcmp(metrics[i], o.metric);
    for (int i = 0; pcts[i]; i++) ok_p |= !strcmp(pcts[i], o.pct);
    if (!ok_m || !ok_p) {
        const char *bad = ok_m ? o.pct : o.metric, *best = pgd_suggest(bad, ok_m ? pcts : metrics, (size_t)-1);
        fprintf(stderr, "pagoda plot: unknown %s '%s'%s%s%s (choices: %s)\n", ok_m ? "--percentile" : "--metric", bad,
                best ? " (did you mean '" : "", best ? best : "", best ? "'?)" : "",
                ok_m ? "mean, p50, p90, p95, p99" : "norm_latency, ttft, tpot, itl, e2e");
        return 2;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "pagoda plot: expected one results/<experiment> directory or history CSV (got %d)\n",
                argc - optind);
        plot_usage(stderr);
        return 2;
    }
    const char *exp = argv[optind];
    struct stat sb;
    if (stat(exp, &sb) == 0 && S_ISREG(sb.st_mode)) return pgd_plot_history(exp);
    char path[4400], dir[4200];
    snprintf(path, sizeof path, "%s/runs.csv", exp);
    table t, tm;
    int have_means = 0;
    if (!load_runs(path, &t)) {
        table_free(&t);
        return 2;
    }
    int nswept = col_of(&t, "completed") - 1;
    if (nswept < 0) {
        fprintf(stderr, "pagoda plot: %s: no 'completed' column (not written by pagoda run?)\n", path);
        table_free(&t);
        return 2;
    }
    if (!runs_whole(exp, &t)) {
        table_free(&t);
        return 1;
    }
    if (col_of(&t, "repeat") >= 0) {
        snprintf(path, sizeof path, "%s/runs_mean.csv", exp);
        if (!load_runs(path, &tm)) {
            table_free(&t);
            table_free(&tm);
            return 2;
        }
        have_means = 1;
    }
    const table *pt = have_means ? &tm : &t;
    /* every column asked for must exist (a metric of an older runs.csv, a typo) */
    char ycol[128];
    snprintf(ycol, sizeof ycol, "%s_%s", o.metric, o.pct);
    const char *need[10] = {ycol, o.xname};
    int nneed = 2;
    for (int i = 0; i < o.n_ys; i++) need[nneed++] = o.ys[i];
    for (int i = 0; i < nneed; i++) {
        if (!need[i] || col_of(pt, need[i]) >= 0) continue;
        const char *best = pgd_suggest(need[i], (const char *const *)pt->cols, (size_t)pt->ncols);
        fprintf(stderr, "pagoda plot: %s/%s has no column '%s'%s%s%s (re-run the experiment with this pagoda, or "
                "see its header for the columns)\n", exp, have_means ? "runs_mean.csv" : "runs.csv", need[i],
                best ? " (did you mean '" : "", best ? best : "", best ? "'?)" : "");
        table_free(&t);
        if (have_means) table_free(&tm);
        return 2;
    }
    /* requests.csv columns, by name from the first run's header */
    int req_cols[4] = {-1, -1, -1, -1};
    {
        static const char *const names[] = {"ttft", "tpot", "e2e", "normalized_latency"};
        snprintf(path, sizeof path, "%s/%s/requests.csv", exp, cell(&t, 0, 0));
        FILE *rf = fopen(path, "r");
        char line[2048];
        if (rf && fgets(line, sizeof line, rf)) {
            char *fields[MAX_COLS];
            int n = split(line, fields, MAX_COLS);
            for (int k = 0; k < 4; k++)
                for (int c = 0; c < n; c++)
                    if (!strcmp(fields[c], names[k])) req_cols[k] = c;
        }
        if (rf) fclose(rf);
    }
    snprintf(dir, sizeof dir, "%s/plots", exp);
    if (pgd_mkdir_p(dir) != PGD_OK) {
        fprintf(stderr, "pagoda plot: %s\n", pgd_last_error());
        table_free(&t);
        if (have_means) table_free(&tm);
        return 1;
    }
    snprintf(path, sizeof path, "%s/plots.gp", dir);
    char tmp[4500];
    FILE *f;
    if (pgd_results_open(path, tmp, sizeof tmp, &f) != PGD_OK) {
        fprintf(stderr, "pagoda plot: %s\n", pgd_last_error());
        table_free(&t);
        if (have_means) table_free(&tm);
        return 1;
    }
    const char *base = strrchr(exp, '/');
    char name[256];
    snprintf(name, sizeof name, "%s", base && base[1] ? base + 1 : exp);
    size_t nl = strlen(name);
    while (nl > 1 && name[nl - 1] == '/') name[--nl] = 0;
    write_script(f, &t, have_means ? &tm : NULL, &o, name, req_cols);
    table_free(&t);
    if (have_means) table_free(&tm);
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
    printf("pagoda plot: wrote %s/{latency_vs_load,throughput_vs_load,pareto,ttft_cdf,tpot_cdf,e2e_cdf,"
           "norm_latency_cdf,kv_usage}.{png,svg} (script: %s)\n", dir, path);
    return 0;
}
