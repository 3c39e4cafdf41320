/* cli_util.c - the helpers every `pagoda` subcommand shares (cli.h): strict
 * option-value parsing, getopt with "did you mean", a monotonic clock,
 * atomic JSON writes, medians, the CPU's name and error printing. Apart from
 * main.c, so that subcommands depend on cli.h and this file, not on the
 * entry point that dispatches to them. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "pagoda/status.h"
#include "util/suggest.h"

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

int pgd_cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts) {
    return pgd_cli_getopt_index(argc, argv, shortopts, longopts, NULL);
}

int pgd_cli_getopt_index(int argc, char **argv, const char *shortopts, const struct option *longopts, int *longindex) {
    char so[96];
    snprintf(so, sizeof so, ":%s", shortopts);
    int saved = opterr;
    opterr = 0;
    optopt = 0;
    int ch = getopt_long(argc, argv, so, longopts, longindex);
    opterr = saved;
    if (ch != '?' && ch != ':') return ch;
    char opt[128];
    const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "";
    if (optopt && optopt != '?' && !(arg[0] == '-' && arg[1] == '-')) snprintf(opt, sizeof opt, "-%c", optopt);
    else snprintf(opt, sizeof opt, "%.*s", (int)strcspn(arg, "="), arg);
    if (ch == ':') {
        fprintf(stderr, "pagoda %s: option '%s' needs a value\n", argv[0], opt);
        return '?';
    }
    const char *names[128];
    size_t n = 0;
    for (const struct option *o = longopts; o && o->name && n < 128; o++) names[n++] = o->name;
    const char *best = opt[0] == '-' && opt[1] == '-' ? pgd_suggest(opt + 2, names, n) : NULL;
    if (best) fprintf(stderr, "pagoda %s: unknown option '%s' (did you mean '--%s'?)\n", argv[0], opt, best);
    else fprintf(stderr, "pagoda %s: unknown option '%s'\n", argv[0], opt);
    return '?';
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
