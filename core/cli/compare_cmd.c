/* compare_cmd.c - `pagoda compare BASELINE CURRENT`: per metric the change
 * and a verdict against thresholds, a table on stdout, optionally a JSON
 * report. Thresholds: defaults, then the [compare] section of the
 * current results' config.ini (or --config FILE), then the options.
 *
 * Exit status: 0 no regression, 1 a regression or a metric or run missing
 * from the current results, or a run directory that is not complete
 * (results.h; named on stderr), 2 bad input or usage. */
#include <dirent.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "pagoda/compare.h"
#include "pagoda/results.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: pagoda compare [--config FILE] [--throughput PCT] [--latency PCT] [--counts PCT]\n"
            "                      [--metrics LIST] [--json FILE] [--all] BASELINE CURRENT\n"
            "\n"
            "  BASELINE, CURRENT  summary.json files, run directories or experiment directories\n"
            "                     (runs paired by name)\n"
            "  --config      read thresholds from this file's [compare] section (default: the\n"
            "                current results' config.ini, if any)\n"
            "  --throughput  max %% drop of throughput/goodput (default 5)\n"
            "  --latency     max %% rise of TTFT/TPOT/ITL/E2E/normalized latency (default 10)\n"
            "  --counts      max %% change for the worse of counts and ratios (default 10)\n"
            "  --metrics     compare only these metrics (comma list of names or globs: ttft.*,engine.steps)\n"
            "  --json        also write the report as JSON to FILE\n"
            "  --all         also list information-only metrics in the table\n"
            "Run directories must be complete (complete.json, written last by pagoda run).\n"
            "Exit status: 0 no regression, 1 regression or something missing or incomplete, 2 bad input.\n");
}

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* config.ini next to the current results: CUR/config.ini, dirname(CUR)/config.ini
 * for a file, or the first CUR/<run>/config.ini (by name). */
static int find_config(const char *cur, char *buf, size_t n) {
    struct stat st;
    if (stat(cur, &st) != 0) return 0;
    if (S_ISREG(st.st_mode)) {
        const char *slash = strrchr(cur, '/');
        if (!slash) snprintf(buf, n, "config.ini");
        else snprintf(buf, n, "%.*s/config.ini", (int)(slash - cur), cur);
        return exists(buf);
    }
    snprintf(buf, n, "%s/config.ini", cur);
    if (exists(buf)) return 1;
    struct dirent **list = NULL;
    int k = scandir(cur, &list, NULL, alphasort), found = 0;
    for (int i = 0; i < k; i++) {
        if (!found && list[i]->d_name[0] != '.') {
            snprintf(buf, n, "%s/%s/config.ini", cur, list[i]->d_name);
            found = exists(buf);
        }
        free(list[i]);
    }
    free(list);
    return found;
}

static int pct(const char *opt, const char *v, double *out) {
    float f;
    if (!pgd_cli_float(opt, v, &f)) return 0;
    if (f < 0) {
        fprintf(stderr, "pagoda: %s must be >= 0 (got '%s')\n", opt, v);
        return 0;
    }
    *out = f;
    return 1;
}

int pgd_cmd_compare(int argc, char **argv) {
    const char *config = NULL, *json_path = NULL, *metrics = NULL;
    double tp = -1, lat = -1, cnt = -1;
    int all = 0;
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'},  {"throughput", required_argument, 0, 't'},
        {"latency", required_argument, 0, 'l'}, {"counts", required_argument, 0, 'n'},
        {"metrics", required_argument, 0, 'm'}, {"json", required_argument, 0, 'j'},
        {"all", no_argument, 0, 'a'},           {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    optind = 1;
    int ch;
    while ((ch = pgd_cli_getopt(argc, argv, "", opts)) != -1) {
        switch (ch) {
        case 'c': config = optarg; break;
        case 't': if (!pct("--throughput", optarg, &tp)) return 2; break;
        case 'l': if (!pct("--latency", optarg, &lat)) return 2; break;
        case 'n': if (!pct("--counts", optarg, &cnt)) return 2; break;
        case 'm': metrics = optarg; break;
        case 'j': json_path = optarg; break;
        case 'a': all = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (argc - optind != 2) {
        fprintf(stderr, "pagoda compare: expected BASELINE and CURRENT (got %d arguments)\n", argc - optind);
        usage(stderr);
        return 2;
    }
    const char *base = argv[optind], *cur = argv[optind + 1];
    pgd_compare_thresholds t;
    pgd_compare_thresholds_default(&t);
    char found[4200];
    if (!config && find_config(cur, found, sizeof found)) config = found;
    if (config && pgd_compare_thresholds_load(config, &t) != PGD_OK) {
        fprintf(stderr, "pagoda compare: %s\n", pgd_last_error());
        return 2;
    }
    if (tp >= 0) t.throughput_pct = tp;
    if (lat >= 0) t.latency_pct = lat;
    if (cnt >= 0) t.counts_pct = cnt;
    if (metrics) snprintf(t.metrics, sizeof t.metrics, "%s", metrics);
    pgd_compare_report rep = {0};
    if (pgd_compare_paths(base, cur, &t, &rep) != PGD_OK) {
        fprintf(stderr, "pagoda compare: %s\n", pgd_last_error());
        pgd_compare_report_free(&rep);
        return 2;
    }
    for (int i = 0; i < rep.n; i++) /* missing, incomplete, stale: one line each, naming it */
        if (rep.rows[i].note[0]) fprintf(stderr, "pagoda compare: %s: %s\n", rep.rows[i].verdict, rep.rows[i].note);
    if (rep.compared == 0 && rep.missing == 0) {
        fprintf(stderr, "pagoda compare: no metric to compare between %s and %s%s%s\n", base, cur,
                t.metrics[0] ? " (--metrics / [compare] metrics = " : "", t.metrics[0] ? t.metrics : "");
        if (t.metrics[0]) fputs(")\n", stderr);
        pgd_compare_report_free(&rep);
        return 2;
    }
    printf("baseline: %s\ncurrent:  %s\nthresholds: throughput -%g%%, latency +%g%%, counts %g%%%s%s%s\n\n", base, cur,
           t.throughput_pct, t.latency_pct, t.counts_pct, config ? " (from " : "", config ? config : "",
           config ? " and options)" : "");
    pgd_compare_print(&rep, all, stdout);
    int rc = rep.regressions || rep.missing ? 1 : 0;
    if (json_path) {
        json_t *j = pgd_compare_report_json(&rep, &t, base, cur);
        if (!j || pgd_results_write_json(j, JSON_INDENT(2), json_path) != PGD_OK) { /* whole or absent */
            fprintf(stderr, "pagoda compare: cannot write --json %s%s%s\n", json_path, j ? ": " : "",
                    j ? pgd_last_error() : "");
            rc = 2;
        }
        json_decref(j);
    }
    pgd_compare_report_free(&rep);
    return rc;
}
