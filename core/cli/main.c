/* main.c - entry point of the `pagoda` command: dispatches subcommands. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "parallel/comm_bench.h"
#include "pagoda/status.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: pagoda <command> [options]\n"
            "\n"
            "commands:\n"
            "  generate   run prompts through a model and print the continuation\n"
            "  bench      measure decode/prefill speed of a model on this machine\n"
            "  profile    time every backend op over a grid of shapes: the sim's calibration table\n"
            "  run        run an experiment config (every sweep point) and write its results\n"
            "  plot       draw an experiment's results with gnuplot (PNG and SVG)\n"
            "  compare    compare two results against regression thresholds\n"
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
    if (!strcmp(cmd, "bench")) return pgd_cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "profile")) return pgd_cmd_profile(argc - 1, argv + 1);
    if (!strcmp(cmd, "run")) return pgd_cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "plot")) return pgd_cmd_plot(argc - 1, argv + 1);
    if (!strcmp(cmd, "compare")) return pgd_cmd_compare(argc - 1, argv + 1);
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
