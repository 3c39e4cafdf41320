/* main.c - entry point of the `pagoda` command: dispatches subcommands. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "parallel/comm_bench.h"
#include "pagoda/status.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: pagoda <command> [options]\n"
            "\n"
            "commands:\n"
            "  generate   run prompts through a model and print the continuation\n"
            "  serve      an OpenAI-compatible HTTP server (completions, chat, SSE streams, /metrics)\n"
            "  bench      measure decode/prefill speed of a model on this machine\n"
            "  bench serve  replay an experiment's workload against an OpenAI-compatible server (HTTP)\n"
            "  profile    time every backend op over a grid of shapes: the sim's calibration table\n"
            "  run        run an experiment config (every sweep point) and write its results\n"
            "  plot       draw an experiment's results with gnuplot (PNG and SVG)\n"
            "  compare    compare two results against regression thresholds\n"
            "  sim-check  hold the sim's GPU cost model against measured op times (Vidur files)\n"
            "  perf       the performance gate's workloads and verdicts (scripts/perf_gate.sh)\n"
            "  comm-bench communicator microbenchmark (all-reduce, send/recv; threads or mpi)\n"
            "  version    print the version\n"
            "\n"
            "Run 'pagoda <command> --help' for the options of a command.\n");
}

int pgd_cli_int(const char *opt, const char *v, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "pagoda: %s must be an integer in %ld..%ld (got '%s')\n", opt, lo, hi, v);
        return 0;
    }
    *out = (int)x;
    return 1;
}

int pgd_cli_u64(const char *opt, const char *v, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-') {
        fprintf(stderr, "pagoda: %s must be a non-negative integer (got '%s')\n", opt, v);
        return 0;
    }
    *out = x;
    return 1;
}

int pgd_cli_float(const char *opt, const char *v, float *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(x)) {
        fprintf(stderr, "pagoda: %s must be a finite number (got '%s')\n", opt, v);
        return 0;
    }
    *out = (float)x;
    return 1;
}

double pgd_cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int pgd_cli_write_json(json_t *o, const char *path) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        fprintf(stderr, "pagoda: output path too long: %s\n", path);
        return -1;
    }
    if (json_dump_file(o, tmp, JSON_INDENT(2)) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "pagoda: cannot write %s: %s\n", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}

double pgd_cli_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void pgd_cli_cpu_model(char *buf, size_t n) {
    snprintf(buf, n, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *c = strchr(line, ':');
        if (!strncmp(line, "model name", 10) && c) {
            c += 2;
            c[strcspn(c, "\n")] = 0;
            snprintf(buf, n, "%s", c);
            break;
        }
    }
    fclose(f);
}

int pgd_cli_fail(const char *what) {
    if (what) fprintf(stderr, "pagoda: %s: %s\n", what, pgd_last_error());
    else fprintf(stderr, "pagoda: %s\n", pgd_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "generate")) return pgd_cmd_generate(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench") && argc > 2 && !strcmp(argv[2], "serve")) return pgd_cmd_bench_serve(argc - 2, argv + 2);
    if (!strcmp(cmd, "serve")) return pgd_cmd_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return pgd_cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "profile")) return pgd_cmd_profile(argc - 1, argv + 1);
    if (!strcmp(cmd, "run")) return pgd_cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "plot")) return pgd_cmd_plot(argc - 1, argv + 1);
    if (!strcmp(cmd, "compare")) return pgd_cmd_compare(argc - 1, argv + 1);
    if (!strcmp(cmd, "sim-check")) return pgd_cmd_sim_check(argc - 1, argv + 1);
    if (!strcmp(cmd, "perf")) return pgd_cmd_perf(argc - 1, argv + 1);
    if (!strcmp(cmd, "comm-bench")) return pgd_comm_bench_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("pagoda %s\n", PAGODA_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "pagoda: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
