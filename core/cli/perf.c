/* perf.c - `pagoda perf`: the performance gate's command (driven by
 * scripts/perf_gate.sh).
 *
 *   pagoda perf list                 the workloads, one per line: name, what it measures
 *   pagoda perf WORKLOAD [--time N]  set up WORKLOAD, run its measured part once
 *                                    (pgd_perf_measure: what valgrind counts), tear
 *                                    down; print one JSON line: workload, check value,
 *                                    build and toolchain. --time N: run set-up, measured
 *                                    part, tear-down N times and add the median wall
 *                                    seconds of the measured part.
 *   pagoda perf collect ...          turn callgrind_annotate outputs into a perf record
 *   pagoda perf compare ...          judge a record against a baseline (exit 0/1/2)
 *   pagoda perf ab ...               judge interleaved `pagoda bench` runs (A/B mode)
 *
 * Exit status: 0 ok, 1 a regression (compare, ab) or a failed workload, 2
 * bad input or a changed toolchain. */
#include <dirent.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "pagoda/perf.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: pagoda perf list\n"
            "       pagoda perf WORKLOAD [--data DIR] [--time N]\n"
            "       pagoda perf collect --dir DIR --binary PATH --valgrind VERSION [--commit C] -o RECORD.json\n"
            "       pagoda perf compare [--config gate.ini] [--top N] [--history FILE.csv] BASELINE.json "
            "CURRENT.json\n"
            "       pagoda perf ab [--config gate.ini] [--threshold PCT] DIR\n"
            "\n"
            "The performance gate's pieces; scripts/perf_gate.sh runs them (README: \"Performance gate\").\n"
            "  WORKLOAD  run one workload's measured part once (count it with valgrind --tool=callgrind\n"
            "            --collect-atstart=no --toggle-collect=pgd_perf_measure); prints a JSON line\n"
            "  collect   DIR/<workload>.annotate (callgrind_annotate --inclusive=no) and .info (the JSON\n"
            "            line above), .wall optional, for every workload -> one record, written whole\n"
            "  compare   instructions per workload against the baseline's, with the functions that moved\n"
            "            most; exit 0 within the limits, 1 a regression, 2 bad input or another toolchain\n"
            "  ab        DIR/ref-N.json and cur-N.json from interleaved `pagoda bench --json` runs: each\n"
            "            metric's ratio with a bootstrap 95%% interval; exit 1 when one lies wholly beyond\n"
            "            the threshold (slower)\n");
}

static void print_workloads(FILE *f) {
    int n;
    const pgd_perf_workload *const *w = pgd_perf_workloads(&n);
    for (int i = 0; i < n; i++) fprintf(f, "%-18s %s\n", w[i]->name, w[i]->what);
}

static int cmd_list(void) {
    print_workloads(stdout);
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmd_workload(int argc, char **argv) {
    const char *data = NULL;
    int reps = 0;
    static const struct option opts[] = {{"data", required_argument, 0, 'd'}, {"time", required_argument, 0, 't'},
                                         {"help", no_argument, 0, 'h'},       {0, 0, 0, 0}};
    optind = 2;
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'd': data = optarg; break;
        case 't': if (!pgd_cli_int("--time", optarg, 1, 1000, &reps)) return 2; break;
        case 'h': usage(stdout); return 0;
        default: return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "pagoda perf: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    const pgd_perf_workload *w = pgd_perf_find(argv[1]);
    if (!w) {
        fprintf(stderr, "pagoda perf: %s\n", pgd_last_error());
        return 2;
    }
    pgd_perf_env env = {.data_dir = data};
    int n = reps > 0 ? reps : 1;
    double *secs = malloc(sizeof(double) * (size_t)n);
    uint64_t check = 0;
    if (!secs) return pgd_cli_fail("perf");
    if (pgd_perf_run(w, &env, n, secs, &check) != PGD_OK) {
        free(secs);
        fprintf(stderr, "pagoda perf: %s\n", pgd_last_error());
        return 1;
    }
    pgd_perf_build b;
    pgd_perf_build_info(&b);
    char hex[24];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)check);
    json_t *o = json_object();
    json_object_set_new(o, "workload", json_string(w->name));
    json_object_set_new(o, "check", json_string(hex));
    if (reps > 0) {
        qsort(secs, (size_t)n, sizeof *secs, cmp_double);
        json_object_set_new(o, "wall_median_s", json_real(n % 2 ? secs[n / 2] : 0.5 * (secs[n / 2 - 1] + secs[n / 2])));
        json_object_set_new(o, "reps", json_integer(n));
    }
    json_object_set_new(o, "isa", json_string(b.isa));
    json_object_set_new(o, "compiler", json_string(b.compiler));
    json_object_set_new(o, "glibc", json_string(b.glibc));
    json_object_set_new(o, "c_flags", json_string(b.c_flags));
    json_object_set_new(o, "build_type", json_string(b.build_type));
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    printf("%s\n", s ? s : "{}");
    free(s);
    json_decref(o);
    free(secs);
    return 0;
}

/* ---- collect ---- */

static char *jdup(json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return strdup(s ? s : "");
}

static int cmd_collect(int argc, char **argv) {
    const char *dir = NULL, *binary = NULL, *valgrind = NULL, *commit = "unknown", *out = NULL;
    static const struct option opts[] = {{"dir", required_argument, 0, 'd'},      {"binary", required_argument, 0, 'b'},
                                         {"valgrind", required_argument, 0, 'v'}, {"commit", required_argument, 0, 'c'},
                                         {"output", required_argument, 0, 'o'},   {0, 0, 0, 0}};
    optind = 2;
    int ch;
    while ((ch = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
        switch (ch) {
        case 'd': dir = optarg; break;
        case 'b': binary = optarg; break;
        case 'v': valgrind = optarg; break;
        case 'c': commit = optarg; break;
        case 'o': out = optarg; break;
        default: return 2;
        }
    }
    if (!dir || !binary || !valgrind || !out || optind != argc) {
        fprintf(stderr, "usage: pagoda perf collect --dir DIR --binary PATH --valgrind VERSION [--commit C] -o FILE\n");
        return 2;
    }
    int n;
    const pgd_perf_workload *const *w = pgd_perf_workloads(&n);
    pgd_perf_record r = {0};
    r.entries = calloc((size_t)n, sizeof *r.entries);
    int rc = 2;
    if (!r.entries) goto done;
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s.annotate", dir, w[i]->name);
        pgd_perf_entry *e = &r.entries[r.num_entries];
        if (pgd_perf_parse_annotate(path, binary, PGD_PERF_MIN_IR, 400, e) != PGD_OK) {
            fprintf(stderr, "pagoda perf collect: %s\n", pgd_last_error());
            goto done;
        }
        r.num_entries++;
        e->workload = strdup(w[i]->name);
        snprintf(path, sizeof path, "%s/%s.info", dir, w[i]->name);
        json_error_t je;
        json_t *info = json_load_file(path, JSON_DISABLE_EOF_CHECK, &je);
        if (!info) {
            fprintf(stderr, "pagoda perf collect: %s: %s\n", path, je.text);
            goto done;
        }
        e->check = jdup(info, "check");
        /* the toolchain as the measured binary saw it, under valgrind; every workload must agree */
        char *tc[5] = {jdup(info, "compiler"), jdup(info, "glibc"), jdup(info, "isa"), jdup(info, "c_flags"),
                       jdup(info, "build_type")};
        char **dst[5] = {&r.compiler, &r.glibc, &r.isa, &r.c_flags, &r.build_type};
        json_decref(info);
        int bad = 0;
        for (int k = 0; k < 5; k++) {
            if (!*dst[k]) *dst[k] = tc[k];
            else {
                bad |= strcmp(*dst[k], tc[k]) != 0;
                free(tc[k]);
            }
        }
        if (bad) {
            fprintf(stderr, "pagoda perf collect: %s: toolchain or flags differ from the other workloads' "
                            "(not one binary?)\n", path);
            goto done;
        }
        snprintf(path, sizeof path, "%s/%s.wall", dir, w[i]->name);
        json_t *wall = json_load_file(path, JSON_DISABLE_EOF_CHECK, &je);
        if (wall && json_is_number(json_object_get(wall, "wall_median_s")))
            e->wall_median_s = json_number_value(json_object_get(wall, "wall_median_s"));
        json_decref(wall);
    }
    r.valgrind = strdup(valgrind);
    r.commit = strdup(commit);
    char buf[256], cpu[200];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    r.date = strdup(buf);
    pgd_cli_cpu_model(cpu, sizeof cpu);
    snprintf(buf, sizeof buf, "%s, %ld CPUs", cpu, sysconf(_SC_NPROCESSORS_ONLN));
    r.machine = strdup(buf);
    if (pgd_perf_record_write(&r, out) != PGD_OK) {
        fprintf(stderr, "pagoda perf collect: %s\n", pgd_last_error());
        goto done;
    }
    rc = 0;
done:
    pgd_perf_record_free(&r);
    return rc;
}

/* ---- compare ---- */

static int cmd_compare(int argc, char **argv) {
    const char *config = NULL, *history = NULL;
    int top = 5;
    static const struct option opts[] = {{"config", required_argument, 0, 'c'}, {"top", required_argument, 0, 't'},
                                         {"history", required_argument, 0, 'H'}, {0, 0, 0, 0}};
    optind = 2;
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': config = optarg; break;
        case 't': if (!pgd_cli_int("--top", optarg, 1, 1000, &top)) return 2; break;
        case 'H': history = optarg; break;
        default: return 2;
        }
    }
    if (argc - optind != 2) {
        fprintf(stderr, "usage: pagoda perf compare [--config gate.ini] [--top N] [--history FILE.csv] "
                        "BASELINE.json CURRENT.json\n");
        return 2;
    }
    pgd_perf_limits lim;
    pgd_perf_record b = {0}, c = {0};
    int rc = 2;
    if (pgd_perf_limits_load(config, &lim) != PGD_OK) {
        fprintf(stderr, "pagoda perf compare: %s\n", pgd_last_error());
        return 2;
    }
    if (pgd_perf_record_read(argv[optind], &b) != PGD_OK || pgd_perf_record_read(argv[optind + 1], &c) != PGD_OK) {
        fprintf(stderr, "pagoda perf compare: %s\n", pgd_last_error());
        goto done;
    }
    rc = pgd_perf_compare(&b, &c, &lim, top, stdout);
    if (history && rc != 2) {
        if (pgd_perf_history_append(history, &c) != PGD_OK) {
            fprintf(stderr, "pagoda perf compare: %s\n", pgd_last_error());
            rc = 2;
        } else printf("perf gate: %d rows appended to %s\n", c.num_entries, history);
    }
done:
    pgd_perf_record_free(&b);
    pgd_perf_record_free(&c);
    pgd_perf_limits_free(&lim);
    return rc;
}

/* ---- A/B ---- */

#define AB_MAX_METRICS 32

typedef struct ab_metrics {
    int n;
    char name[AB_MAX_METRICS][40];
    double tps[AB_MAX_METRICS];
    int cpu[AB_MAX_METRICS]; /* 1: tokens per CPU second (*_cpu_tps), 0: per wall second */
} ab_metrics;

static void ab_add(ab_metrics *m, const char *name, int cpu, json_t *v) {
    if (!json_is_number(v) || m->n == AB_MAX_METRICS) return;
    snprintf(m->name[m->n], sizeof m->name[0], "%s%s", name, cpu ? " cpu" : "");
    m->cpu[m->n] = cpu;
    m->tps[m->n++] = json_number_value(v);
}

/* Throughputs of one `pagoda bench --json` file: prefill, single-sequence
 * decode, decode at each batch; per wall second, and per CPU second where
 * the bench reports it (older builds do not). */
static int bench_metrics(const char *path, ab_metrics *m) {
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je);
    memset(m, 0, sizeof *m);
    if (!o) return 0;
    for (int cpu = 0; cpu < 2; cpu++) {
        ab_add(m, "prefill", cpu, json_object_get(o, cpu ? "prefill_cpu_tps" : "prefill_tps"));
        ab_add(m, "decode_single", cpu, json_object_get(o, cpu ? "single_decode_cpu_tps" : "single_decode_tps"));
        json_t *d = json_object_get(o, "decode");
        for (size_t i = 0; i < json_array_size(d); i++) {
            json_t *e = json_array_get(d, i), *b = json_object_get(e, "batch");
            char name[32];
            if (!json_is_integer(b)) continue;
            snprintf(name, sizeof name, "decode_b%lld", (long long)json_integer_value(b));
            ab_add(m, name, cpu, json_object_get(e, cpu ? "decode_cpu_tps" : "decode_tps"));
        }
    }
    json_decref(o);
    for (int i = 0; i < m->n; i++)
        if (!(m->tps[i] > 0) || !isfinite(m->tps[i])) return 0;
    return m->n > 0;
}

/* The throughput named `name` in m, or -1. */
static double metric_of(const ab_metrics *m, const char *name) {
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->name[i], name)) return m->tps[i];
    return -1;
}

static int cmd_ab(int argc, char **argv) {
    const char *config = NULL;
    float thr = -1;
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"threshold", required_argument, 0, 't'}, {0, 0, 0, 0}};
    optind = 2;
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': config = optarg; break;
        case 't': if (!pgd_cli_float("--threshold", optarg, &thr) || thr < 0) return 2; break;
        default: return 2;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "usage: pagoda perf ab [--config gate.ini] [--threshold PCT] DIR\n");
        return 2;
    }
    const char *dir = argv[optind];
    pgd_perf_limits lim;
    if (pgd_perf_limits_load(config, &lim) != PGD_OK) {
        fprintf(stderr, "pagoda perf ab: %s\n", pgd_last_error());
        return 2;
    }
    double pct = thr >= 0 ? thr : lim.ab_pct;
    pgd_perf_limits_free(&lim);
    /* pairs ref-N / cur-N, N = 1, 2, ... */
    int np = 0, cap = 0, rc = 2;
    ab_metrics *ref = NULL, *cur = NULL;
    for (int i = 1;; i++) {
        char pa[PATH_MAX], pb[PATH_MAX];
        snprintf(pa, sizeof pa, "%s/ref-%d.json", dir, i);
        snprintf(pb, sizeof pb, "%s/cur-%d.json", dir, i);
        if (access(pa, F_OK) != 0 && access(pb, F_OK) != 0) break;
        if (np == cap) {
            cap = cap ? 2 * cap : 32;
            ab_metrics *r2 = realloc(ref, sizeof *r2 * (size_t)cap), *c2 = r2 ? realloc(cur, sizeof *c2 * (size_t)cap) : NULL;
            if (r2) ref = r2;
            if (c2) cur = c2;
            if (!r2 || !c2) goto done;
        }
        if (!bench_metrics(pa, &ref[np]) || !bench_metrics(pb, &cur[np])) {
            fprintf(stderr, "pagoda perf ab: pair %d: %s or %s is missing or not a pagoda bench --json file\n", i, pa, pb);
            goto done;
        }
        np++;
    }
    if (np < 3) {
        fprintf(stderr, "pagoda perf ab: %s holds %d pairs of ref-N.json / cur-N.json (need at least 3)\n", dir, np);
        goto done;
    }
    /* the metrics every file of both builds reports (a REF older than the bench's per-CPU-second
     * numbers has the wall-clock ones only); ref[0] is rewritten to hold just those */
    ab_metrics common = {0};
    for (int k = 0; k < ref[0].n; k++) {
        int all = 1;
        for (int i = 0; i < np && all; i++)
            all = metric_of(&ref[i], ref[0].name[k]) > 0 && metric_of(&cur[i], ref[0].name[k]) > 0;
        if (!all) continue;
        snprintf(common.name[common.n], sizeof common.name[0], "%s", ref[0].name[k]);
        common.cpu[common.n++] = ref[0].cpu[k];
    }
    if (!common.n) {
        fprintf(stderr, "pagoda perf ab: no metric is in every pair's files (the two builds' benches measured "
                        "different things)\n");
        goto done;
    }
    /* judged: the per-CPU-second metrics when both builds report them (waiting for a CPU on a
     * busy machine does not count there), else the wall-clock ones */
    int have_cpu = 0;
    for (int k = 0; k < common.n; k++) have_cpu |= common.cpu[k];
    printf("A/B: %d interleaved pairs (ref, cur); time ratio = ref throughput / cur throughput per pair\n"
           "(> 1: the current build is slower); median over pairs, percentile bootstrap 95%% interval\n"
           "(10000 resamples); judged: the %s metrics, flagged only when the whole interval lies\n"
           "beyond %g%%.\n\n", np, have_cpu ? "per-CPU-second (cpu)" : "wall-clock", pct);
    printf("| %-18s | %12s | %12s | %10s | %-19s | %-10s |\n", "metric", "ref tok/s", "cur tok/s", "time ratio",
           "95% interval", "verdict");
    printf("|--------------------|--------------|--------------|------------|---------------------|------------|\n");
    double *x = malloc(sizeof(double) * (size_t)np), *a = malloc(sizeof(double) * (size_t)np),
           *b = malloc(sizeof(double) * (size_t)np);
    if (!x || !a || !b) {
        free(x);
        free(a);
        free(b);
        goto done;
    }
    int flagged = 0;
    for (int k = 0; k < common.n; k++) {
        for (int i = 0; i < np; i++) {
            a[i] = metric_of(&ref[i], common.name[k]);
            b[i] = metric_of(&cur[i], common.name[k]);
            x[i] = a[i] / b[i];
        }
        pgd_perf_interval ci;
        if (pgd_perf_bootstrap_median(x, np, 10000, 0.95, 20240601 + (uint64_t)k, &ci) != PGD_OK) {
            fprintf(stderr, "pagoda perf ab: %s\n", pgd_last_error());
            goto done_x;
        }
        double bound = 1 + pct / 100;
        int judged = common.cpu[k] == have_cpu;
        const char *verdict = !judged ? "(info)" : ci.lo > bound ? "REGRESSION" : ci.hi < 1 / bound ? "faster" : "ok";
        flagged += judged && ci.lo > bound;
        char iv[40];
        snprintf(iv, sizeof iv, "[%.3f, %.3f]", ci.lo, ci.hi);
        printf("| %-18s | %12.1f | %12.1f | %10.3f | %-19s | %-10s |\n", common.name[k], pgd_cli_median(a, np),
               pgd_cli_median(b, np), ci.median, iv, verdict);
    }
    printf("\n");
    if (flagged) printf("perf gate (A/B): REGRESSION: %d metric%s slower beyond %g%% with 95%% confidence\n", flagged,
                        flagged > 1 ? "s" : "", pct);
    else printf("perf gate (A/B): no metric slower beyond %g%% with 95%% confidence\n", pct);
    rc = flagged ? 1 : 0;
done_x:
    free(x);
    free(a);
    free(b);
done:
    free(ref);
    free(cur);
    return rc;
}

int pgd_cmd_perf(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        if (argc < 2) {
            fprintf(stderr, "\nworkloads:\n");
            print_workloads(stderr);
        }
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "list")) return cmd_list();
    if (!strcmp(argv[1], "collect")) return cmd_collect(argc, argv);
    if (!strcmp(argv[1], "compare")) return cmd_compare(argc, argv);
    if (!strcmp(argv[1], "ab")) return cmd_ab(argc, argv);
    return cmd_workload(argc, argv);
}
