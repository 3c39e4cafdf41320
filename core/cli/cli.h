/* cli.h - subcommands of the `pagoda` command and shared argument parsing. */
#ifndef PAGODA_CLI_H
#define PAGODA_CLI_H

#include <stddef.h>
#include <stdint.h>

int pgd_cmd_generate(int argc, char **argv);
int pgd_cmd_bench(int argc, char **argv);
int pgd_cmd_bench_serve(int argc, char **argv); /* bench serve (bench_serve.c) */
int pgd_cmd_profile(int argc, char **argv);
int pgd_cmd_profile_import(int argc, char **argv); /* profile --import */
int pgd_cmd_run(int argc, char **argv);
int pgd_cmd_plot(int argc, char **argv);
int pgd_cmd_table(int argc, char **argv);
int pgd_cmd_compare(int argc, char **argv);
int pgd_cmd_sim_check(int argc, char **argv);
int pgd_cmd_perf(int argc, char **argv);
int pgd_cmd_explain(int argc, char **argv); /* explain.c */
int pgd_cmd_serve(int argc, char **argv);

/* Strict number parsing for option values: print "pagoda: <opt> must be ..."
 * and return 0 on failure. */
int pgd_cli_int(const char *opt, const char *v, long lo, long hi, int *out);
int pgd_cli_u64(const char *opt, const char *v, uint64_t *out);
int pgd_cli_float(const char *opt, const char *v, float *out);
/* getopt_long that names a bad option itself: "pagoda CMD: unknown option
 * '--onyl' (did you mean '--only'?)" or "option '--only' needs a value"
 * (CMD = argv[0]) on stderr, then '?' (the caller prints its usage). */
struct option;
int pgd_cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts);
/* The same with getopt_long's longindex (may be NULL). */
int pgd_cli_getopt_index(int argc, char **argv, const char *shortopts, const struct option *longopts,
                         int *longindex);
/* Monotonic clock in seconds. */
double pgd_cli_now(void);
/* Median of v[0..n-1] (n >= 1; mean of the middle two for even n); sorts v. */
double pgd_cli_median(double *v, int n);
/* The CPU's "model name" from /proc/cpuinfo, or "unknown CPU". */
void pgd_cli_cpu_model(char *buf, size_t n);

/* Run gnuplot on `script` in directory dir; its exit status (127: no gnuplot, -1: no process). */
int pgd_cli_gnuplot(const char *dir, const char *script);
/* `pagoda plot FILE.csv`: the perf gate's history (plot_history.c). */
int pgd_plot_history(const char *csv);

/* Write o to path whole or not at all (a temporary file beside it, then
 * rename); on failure print why and return -1. */
struct json_t;
int pgd_cli_write_json(struct json_t *o, const char *path);

/* Print "pagoda: <message>" from pgd_last_error() and return exit code 1. */
int pgd_cli_fail(const char *what);

#endif
