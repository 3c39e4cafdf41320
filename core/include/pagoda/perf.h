/* perf.h - the performance gate's pieces: a suite of fixed, deterministic
 * workloads whose measured part runs inside one function that valgrind can
 * count alone, the instruction-count records (baseline and current) and
 * their comparison, and the statistics of the wall-clock A/B mode.
 *
 * Workloads. Each has a set-up (load a model, fill a cache, queue
 * requests, read a dataset: not counted), a measured part, and a
 * tear-down. pgd_perf_measure() calls the measured part and nothing else,
 * so `valgrind --tool=callgrind --collect-atstart=no
 * --toggle-collect=pgd_perf_measure` counts exactly that work. Everything
 * is fixed: shapes, seeds, inputs, one CPU thread; a check value (a hash
 * of what the measured part computed, taken after it) shows that two runs
 * did the same work.
 *
 * Records. A perf record (JSON) holds, per workload, the instructions of
 * the measured part and the functions they were spent in (exclusive
 * instructions, from callgrind_annotate), plus what makes counts
 * comparable: the toolchain (compiler, glibc, valgrind, the CPU kernels'
 * ISA) and the build flags, commit, date and machine. Counts are compared
 * only under the same toolchain; different build flags are reported and
 * judged like any other change.
 *
 * A/B. pgd_perf_bootstrap_median() gives the median of paired ratios with
 * a percentile-bootstrap confidence interval (fixed seed, so a report is
 * reproducible). */
#ifndef PAGODA_PERF_H
#define PAGODA_PERF_H

#include <stdint.h>
#include <stdio.h>

#include "pagoda/status.h"

/* ---- workloads --------------------------------------------------------- */

typedef struct pgd_perf_env {
    const char *data_dir; /* shared data (tokenizers, traces); NULL = "../shared/data" */
    const char *root;     /* repository root (holds experiments/perf); NULL = "." */
} pgd_perf_env;

typedef struct pgd_perf_workload {
    const char *name;
    const char *what; /* one line: what the measured part does */
    pgd_status (*setup)(const pgd_perf_env *env, void **state);
    /* The measured part: deterministic, single-threaded. */
    pgd_status (*run)(void *state);
    /* After run, not measured: a hash of what it computed. */
    uint64_t (*check)(void *state);
    void (*teardown)(void *state);
} pgd_perf_workload;

/* The suite, in a fixed order; *n gets its length. */
const pgd_perf_workload *const *pgd_perf_workloads(int *n);
/* By name; NULL (and an error naming the choices) if unknown. */
const pgd_perf_workload *pgd_perf_find(const char *name);
/* Run w's measured part on a state from its setup. Never inlined: the
 * callgrind toggle function of the gate. */
pgd_status pgd_perf_measure(const pgd_perf_workload *w, void *state);

/* Set up, measure (timing it), check and tear down w `reps` times, each
 * time on a new thread: the thread gets its own malloc arena and stack, so
 * the workload's memory sits at the same offsets whatever ran before it in
 * this process (libstdc++'s or CUDA's start-up allocations, the length of
 * argv). String and copy routines cost instructions by how their operands
 * meet page and cache-line boundaries, so without this the same code
 * counts differently in binaries linked with other libraries. Also fixes
 * glibc's mmap threshold at its default (no dynamic adjustment) and, when
 * no JSON value exists yet, jansson's hash seed (random by default: the
 * order in which a parsed file is freed, so the heap, varied). secs
 * (may be NULL) gets each repetition's measured seconds; *check the last
 * check value. */
pgd_status pgd_perf_run(const pgd_perf_workload *w, const pgd_perf_env *env, int reps, double *secs,
                        uint64_t *check);

/* The build this library was compiled as (strings live as long as the
 * program): compiler (__VERSION__), C flags as CMake passed them (build
 * type's flags included, plus sanitize= and native=), build type, glibc
 * version, and the CPU kernels' ISA on this machine (avx2 or scalar). */
typedef struct pgd_perf_build {
    const char *compiler, *c_flags, *build_type, *glibc, *isa;
} pgd_perf_build;
void pgd_perf_build_info(pgd_perf_build *out);

/* ---- records and the instruction gate ----------------------------------- */

typedef struct pgd_perf_fn {
    char *name;     /* function ("pgd_cpu_matmul", "__memcpy_avx_unaligned_erms") */
    char *obj;      /* its shared library's file name ("libc.so.6"), "" for the measured binary
                       or when callgrind_annotate does not say */
    int64_t ir;     /* exclusive instructions */
} pgd_perf_fn;

typedef struct pgd_perf_entry {
    char *workload;
    int64_t instructions; /* of the measured part */
    char *check;          /* the measured part's check value, hex */
    double wall_median_s; /* native wall-clock median of the measured part; < 0 = not measured */
    int num_fns;
    pgd_perf_fn *fns;     /* sorted by ir, largest first */
} pgd_perf_entry;

typedef struct pgd_perf_record {
    /* toolchain: counts compare only when all of these are equal */
    char *compiler, *glibc, *valgrind, *isa;
    /* provenance */
    char *c_flags, *build_type, *commit, *date, *machine;
    int num_entries;
    pgd_perf_entry *entries;
} pgd_perf_record;

void pgd_perf_record_free(pgd_perf_record *r);
/* Read / write the JSON form. Writing is whole or not at all (a temporary
 * file next to `path`, then rename). */
pgd_status pgd_perf_record_read(const char *path, pgd_perf_record *out);
pgd_status pgd_perf_record_write(const pgd_perf_record *r, const char *path);
const pgd_perf_entry *pgd_perf_record_find(const pgd_perf_record *r, const char *workload);

/* Parse callgrind_annotate's output (run with --inclusive=no) into an
 * entry: the PROGRAM TOTALS line gives the instructions, each function
 * line ("IR (PCT%)  FILE:FUNCTION [OBJECT]") its exclusive instructions;
 * lines of one function (inlined code from several files) are summed.
 * `binary` is the measured executable's path: its functions get obj "".
 * Code without a symbol (an address such as PLT stubs) is "(no symbol)".
 * The max_fns largest functions with at least min_ir instructions are kept
 * (an absolute cut, so that a function's presence does not depend on the
 * workload's total; the total stays exact). */
pgd_status pgd_perf_parse_annotate(const char *path, const char *binary, int64_t min_ir, int max_fns,
                                   pgd_perf_entry *out);
void pgd_perf_entry_free(pgd_perf_entry *e);
/* Records keep the functions with at least this many instructions. */
#define PGD_PERF_MIN_IR 1000

/* Per-workload limits: pct_default, or `threshold` of section
 * [workload.<name>] in an INI file (`[gate] threshold` sets the default). */
typedef struct pgd_perf_limits {
    double pct_default;   /* % an instruction count may rise; 1 unless the config says */
    int n;
    char **names;
    double *pct;
    double ab_pct;        /* % a wall-clock ratio's interval must lie beyond (A/B) */
} pgd_perf_limits;
pgd_status pgd_perf_limits_load(const char *path, pgd_perf_limits *out);
void pgd_perf_limits_free(pgd_perf_limits *l);
double pgd_perf_limit_for(const pgd_perf_limits *l, const char *workload);

typedef enum pgd_perf_verdict {
    PGD_PERF_OK = 0,     /* within the limit either way */
    PGD_PERF_BETTER,     /* fewer instructions by more than the limit */
    PGD_PERF_REGRESSION, /* more instructions by more than the limit */
} pgd_perf_verdict;

/* Compare current against baseline and print the report to f (NULL: no
 * report). Returns 0 when every workload is within its limit, 1 on a
 * regression, 2 on bad input (a workload missing on either side) or a
 * changed toolchain (nothing is judged then). top = functions listed per
 * changed workload. */
int pgd_perf_compare(const pgd_perf_record *baseline, const pgd_perf_record *current,
                     const pgd_perf_limits *limits, int top, FILE *f);

/* Append one row per workload of `current` to a history CSV (header
 * commit,date,machine,workload,instructions,wall_median_s,c_flags written
 * when the file is new); the file is rewritten whole (temporary + rename). */
pgd_status pgd_perf_history_append(const char *path, const pgd_perf_record *current);

/* ---- A/B statistics ------------------------------------------------------ */

typedef struct pgd_perf_interval {
    double median, lo, hi; /* the sample median and its bootstrap percentile interval */
} pgd_perf_interval;

/* Percentile bootstrap of the median of x[0..n-1] (n >= 1): `resamples`
 * resamples drawn with xoshiro256** seeded by `seed`, interval
 * [(1-level)/2, (1+level)/2]. */
pgd_status pgd_perf_bootstrap_median(const double *x, int n, int resamples, double level, uint64_t seed,
                                     pgd_perf_interval *out);

#endif
