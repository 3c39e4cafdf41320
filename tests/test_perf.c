/* test_perf.c - the performance gate's pieces: every workload sets up,
 * runs and gives the same check value twice; callgrind_annotate output is
 * parsed (totals, functions summed over files, objects); records survive a
 * write and read; the comparison passes identical records, flags a
 * workload over its limit naming the function that moved, calls a drop
 * "better", refuses another toolchain or a missing workload (2), reports
 * other build flags but judges them; limits come from the gate config with
 * errors naming file, line and key; the bootstrap interval is
 * deterministic and holds the median; the history CSV grows by whole
 * rewrites and `pagoda plot` draws it; `pagoda perf` list / WORKLOAD /
 * compare / ab exit 0, 1 or 2. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pagoda/perf.h"
#include "test_util.h"
#include "util/rng.h"

static char *data_dir(void) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s", pgd_test_data("x"));
    buf[strlen(buf) - 2] = 0; /* drop "/x" */
    return buf;
}

static void test_workloads_deterministic(void) {
    int n;
    const pgd_perf_workload *const *w = pgd_perf_workloads(&n);
    CU_ASSERT_EQUAL(n, 11);
    pgd_perf_env env = {.data_dir = data_dir(), .root = "."};
    for (int i = 0; i < n; i++) {
        uint64_t a = 0, b = 1;
        double secs[2];
        pgd_status st = pgd_perf_run(w[i], &env, 1, secs, &a);
        if (st != PGD_OK) fprintf(stderr, "%s: %s\n", w[i]->name, pgd_last_error());
        CU_ASSERT_EQUAL_FATAL(st, PGD_OK);
        CU_ASSERT_EQUAL(pgd_perf_run(w[i], &env, 2, secs, &b), PGD_OK);
        CU_ASSERT_EQUAL(a, b);
        CU_ASSERT(secs[0] >= 0 && secs[1] >= 0);
        CU_ASSERT_PTR_EQUAL(pgd_perf_find(w[i]->name), w[i]);
    }
    CU_ASSERT_PTR_NULL(pgd_perf_find("decode_b2"));
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "decode_b1"));
    /* a missing data directory is an error naming the file, not a crash */
    pgd_perf_env bad = {.data_dir = "/nonexistent", .root = "."};
    uint64_t c;
    CU_ASSERT_NOT_EQUAL(pgd_perf_run(pgd_perf_find("tokenize_sharegpt"), &bad, 1, NULL, &c), PGD_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "/nonexistent/tokenizers"));
}

static const char *ANNOTATE =
    "--------------------------------------------------------------------------------\n"
    "Profile data file 'x' (creator: callgrind-3.19.0)\n"
    "Events recorded:  Ir\n"
    "--------------------------------------------------------------------------------\n"
    "Ir                   \n"
    "--------------------------------------------------------------------------------\n"
    "1,000,000 (100.0%)  PROGRAM TOTALS\n"
    "\n"
    "--------------------------------------------------------------------------------\n"
    "Ir                    file:function\n"
    "--------------------------------------------------------------------------------\n"
    "600,000 (60.00%)  ???:pgd_cpu_matmul [/some/dir/pagoda]\n"
    "200,000 (20.00%)  ./string/memmove.S:__memcpy_avx_unaligned_erms [/usr/lib/x86_64-linux-gnu/libc.so.6]\n"
    "100,000 (10.00%)  ./elf/inl.h:helper\n"
    " 99,000 ( 9.90%)  ./elf/main.c:helper [/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2]\n"
    "    900 ( 0.09%)  ???:tiny [/some/dir/pagoda]\n"
    "      .           ./csu/libc-start.c:__libc_start_main [/usr/lib/x86_64-linux-gnu/libc.so.6]\n";

static void test_parse_annotate(void) {
    char *path = pgd_test_write_temp(ANNOTATE, strlen(ANNOTATE), ".annotate");
    pgd_perf_entry e;
    CU_ASSERT_EQUAL_FATAL(pgd_perf_parse_annotate(path, "/some/dir/pagoda", 1000, 60, &e), PGD_OK);
    CU_ASSERT_EQUAL(e.instructions, 1000000);
    CU_ASSERT_EQUAL(e.num_fns, 3); /* tiny is under 1000 */
    CU_ASSERT_STRING_EQUAL(e.fns[0].name, "pgd_cpu_matmul");
    CU_ASSERT_STRING_EQUAL(e.fns[0].obj, "");
    CU_ASSERT_STRING_EQUAL(e.fns[1].name, "__memcpy_avx_unaligned_erms");
    CU_ASSERT_STRING_EQUAL(e.fns[1].obj, "libc.so.6");
    CU_ASSERT_STRING_EQUAL(e.fns[2].name, "helper"); /* its two files summed, the object from the one naming it */
    CU_ASSERT_EQUAL(e.fns[2].ir, 199000);
    CU_ASSERT_STRING_EQUAL(e.fns[2].obj, "ld-linux-x86-64.so.2");
    pgd_perf_entry_free(&e);
    CU_ASSERT_EQUAL_FATAL(pgd_perf_parse_annotate(path, "pagoda", 0, 2, &e), PGD_OK);
    CU_ASSERT_EQUAL(e.num_fns, 2);
    pgd_perf_entry_free(&e);
    unlink(path);
    free(path);

    const char *bad = "Ir file:function\n12 (1%) no-colon-here\n";
    path = pgd_test_write_temp(bad, strlen(bad), ".annotate");
    CU_ASSERT_EQUAL(pgd_perf_parse_annotate(path, "pagoda", 0, 60, &e), PGD_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), ":2:"));
    unlink(path);
    free(path);
    const char *none = "nothing here\n";
    path = pgd_test_write_temp(none, strlen(none), ".annotate");
    CU_ASSERT_EQUAL(pgd_perf_parse_annotate(path, "pagoda", 0, 60, &e), PGD_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "PROGRAM TOTALS"));
    unlink(path);
    free(path);
    CU_ASSERT_EQUAL(pgd_perf_parse_annotate("/nonexistent.annotate", "pagoda", 0, 60, &e), PGD_ERR_IO);
}

/* A record of two workloads; fn counts are the workload total split 80/20. */
static void make_record(pgd_perf_record *r, int64_t a, int64_t b) {
    memset(r, 0, sizeof *r);
    r->compiler = strdup("gcc-compatible 12.2.0");
    r->glibc = strdup("2.36");
    r->valgrind = strdup("valgrind-3.19.0");
    r->isa = strdup("avx2");
    r->c_flags = strdup(" -O3 sanitize=OFF native=OFF");
    r->build_type = strdup("Release");
    r->commit = strdup("0123456789abcdef");
    r->date = strdup("2024-01-01T00:00:00Z");
    r->machine = strdup("test \"machine\", 2 CPUs");
    r->num_entries = 2;
    r->entries = calloc(2, sizeof *r->entries);
    const char *names[2] = {"decode_b1", "config_load"};
    int64_t tot[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        pgd_perf_entry *e = &r->entries[i];
        e->workload = strdup(names[i]);
        e->instructions = tot[i];
        e->check = strdup("00ff");
        e->wall_median_s = i ? -1 : 0.25;
        e->num_fns = 2;
        e->fns = calloc(2, sizeof *e->fns);
        e->fns[0] = (pgd_perf_fn){.name = strdup(i ? "ini_parse" : "rows_PGD_F32"), .obj = strdup(""), .ir = tot[i] * 8 / 10};
        e->fns[1] = (pgd_perf_fn){.name = strdup("__strcmp_avx2"), .obj = strdup("libc.so.6"), .ir = tot[i] * 2 / 10};
    }
}

static char *compare_report(const pgd_perf_record *b, const pgd_perf_record *c, const pgd_perf_limits *l, int *rc) {
    char *path = pgd_test_write_temp("", 0, ".txt");
    FILE *f = fopen(path, "w");
    *rc = pgd_perf_compare(b, c, l, 5, f);
    fclose(f);
    char *text = pgd_test_read_file(path, NULL);
    unlink(path);
    free(path);
    return text;
}

static void test_record_roundtrip(void) {
    pgd_perf_record r, back;
    make_record(&r, 1000000, 2000);
    char *path = pgd_test_write_temp("old content", 11, ".json");
    CU_ASSERT_EQUAL_FATAL(pgd_perf_record_write(&r, path), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_perf_record_read(path, &back), PGD_OK);
    CU_ASSERT_STRING_EQUAL(back.machine, r.machine);
    CU_ASSERT_STRING_EQUAL(back.c_flags, r.c_flags);
    CU_ASSERT_EQUAL(back.num_entries, 2);
    CU_ASSERT_EQUAL(back.entries[1].instructions, 2000);
    CU_ASSERT_DOUBLE_EQUAL(back.entries[0].wall_median_s, 0.25, 1e-12);
    CU_ASSERT(back.entries[1].wall_median_s < 0);
    CU_ASSERT_STRING_EQUAL(back.entries[0].fns[1].obj, "libc.so.6");
    CU_ASSERT_PTR_NOT_NULL(pgd_perf_record_find(&back, "config_load"));
    CU_ASSERT_PTR_NULL(pgd_perf_record_find(&back, "nope"));
    int rc;
    pgd_perf_limits lim;
    CU_ASSERT_EQUAL(pgd_perf_limits_load(NULL, &lim), PGD_OK);
    char *rep = compare_report(&r, &back, &lim, &rc);
    CU_ASSERT_EQUAL(rc, 0);
    free(rep);
    pgd_perf_record_free(&back);
    /* no temporary file left behind next to it */
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "ls '%s'.tmp.* >/dev/null 2>&1", path);
    CU_ASSERT_NOT_EQUAL(system(cmd), 0);
    /* not a record */
    FILE *f = fopen(path, "w");
    fputs("{\"format\": \"other\"}", f);
    fclose(f);
    CU_ASSERT_EQUAL(pgd_perf_record_read(path, &back), PGD_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), path));
    f = fopen(path, "w");
    fputs("{\"format\": ", f);
    fclose(f);
    CU_ASSERT_EQUAL(pgd_perf_record_read(path, &back), PGD_ERR_FORMAT);
    CU_ASSERT_EQUAL(pgd_perf_record_read("/nonexistent/x.json", &back), PGD_ERR_IO);
    unlink(path);
    free(path);
    pgd_perf_record_free(&r);
}

static void test_compare_verdicts(void) {
    pgd_perf_record b, c;
    pgd_perf_limits lim;
    CU_ASSERT_EQUAL(pgd_perf_limits_load(NULL, &lim), PGD_OK);
    CU_ASSERT_DOUBLE_EQUAL(pgd_perf_limit_for(&lim, "decode_b1"), 1.0, 1e-12);
    int rc;
    make_record(&b, 1000000, 2000);
    /* +0.5%: within 1% */
    make_record(&c, 1005000, 2000);
    char *rep = compare_report(&b, &c, &lim, &rc);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep, "passed"));
    free(rep);
    pgd_perf_record_free(&c);
    /* +2% in decode_b1, all of it in one function */
    make_record(&c, 1000000, 2000);
    c.entries[0].instructions = 1020000;
    c.entries[0].fns[0].ir += 20000;
    rep = compare_report(&b, &c, &lim, &rc);
    CU_ASSERT_EQUAL(rc, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep, "REGRESSION decode_b1: +2.00%"));
    char *movers = strstr(rep, "functions that moved most");
    CU_ASSERT_PTR_NOT_NULL_FATAL(movers);
    CU_ASSERT_PTR_NOT_NULL(strstr(movers, "+20,000"));
    CU_ASSERT_PTR_NOT_NULL(strstr(movers, "rows_PGD_F32"));
    CU_ASSERT_PTR_NOT_NULL(strstr(rep, "FAILED: 1 workload over the limit: decode_b1"));
    free(rep);
    /* a per-workload limit of 3% lets it pass */
    const char *ini = "[gate]\nthreshold = 1\n[workload.decode_b1]\nthreshold = 3 ; loose\n[ab]\nthreshold = 4\n";
    char *ipath = pgd_test_write_temp(ini, strlen(ini), ".ini");
    pgd_perf_limits l3;
    CU_ASSERT_EQUAL_FATAL(pgd_perf_limits_load(ipath, &l3), PGD_OK);
    CU_ASSERT_DOUBLE_EQUAL(pgd_perf_limit_for(&l3, "decode_b1"), 3.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(pgd_perf_limit_for(&l3, "config_load"), 1.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(l3.ab_pct, 4.0, 1e-12);
    rep = compare_report(&b, &c, &l3, &rc);
    CU_ASSERT_EQUAL(rc, 0);
    free(rep);
    pgd_perf_limits_free(&l3);
    unlink(ipath);
    free(ipath);
    pgd_perf_record_free(&c);
    /* -5%: better, exit 0, a hint to update */
    make_record(&c, 950000, 2000);
    rep = compare_report(&b, &c, &lim, &rc);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep, "better"));
    CU_ASSERT_PTR_NOT_NULL(strstr(rep, "update the baselines"));
    free(rep);
    pgd_perf_record_free(&c);
    /* other build flags: said, and judged all the same */
    make_record(&c, 1000000, 2100);
    free(c.c_flags);
    c.c_flags = strdup("-DSLOW -O3 sanitize=OFF native=OFF");
    rep = compare_report(&b, &c, &lim, &rc);
    CU_ASSERT_EQUAL(rc, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep, "NOT the baseline's build flags"));
    CU_ASSERT_PTR_NOT_NULL(strstr(rep, "REGRESSION config_load: +5.00%"));
    free(rep);
    pgd_perf_record_free(&c);
    /* another compiler: 2, nothing judged */
    make_record(&c, 2000000, 2000);
    free(c.compiler);
    c.compiler = strdup("gcc-compatible 13.1.0");
    rep = compare_report(&b, &c, &lim, &rc);
    CU_ASSERT_EQUAL(rc, 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep, "toolchain changed"));
    CU_ASSERT_PTR_NOT_NULL(strstr(rep, "13.1.0"));
    CU_ASSERT_PTR_NULL(strstr(rep, "REGRESSION"));
    free(rep);
    pgd_perf_record_free(&c);
    /* the kernels' ISA counts as toolchain */
    make_record(&c, 1000000, 2000);
    free(c.isa);
    c.isa = strdup("scalar");
    rep = compare_report(&b, &c, &lim, &rc);
    CU_ASSERT_EQUAL(rc, 2);
    free(rep);
    pgd_perf_record_free(&c);
    /* a workload without a baseline */
    make_record(&c, 1000000, 2000);
    free(c.entries[1].workload);
    c.entries[1].workload = strdup("tokenize_sharegpt");
    rep = compare_report(&b, &c, &lim, &rc);
    CU_ASSERT_EQUAL(rc, 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep, "tokenize_sharegpt has no baseline"));
    CU_ASSERT_PTR_NOT_NULL(strstr(rep, "config_load of the baseline was not measured"));
    free(rep);
    pgd_perf_record_free(&c);
    pgd_perf_record_free(&b);
    pgd_perf_limits_free(&lim);
}

static void test_limits_errors(void) {
    struct { const char *text, *want; } cases[] = {
        {"[gate]\nthreshold = 1\nthreshhold = 2\n", ":3: [gate] threshhold = '2': unknown key"},
        {"[gate]\nthreshold = -1\n", ":2: [gate] threshold = '-1': must be a non-negative number"},
        {"[gate]\nthreshold = lots\n", "threshold = 'lots'"},
        {"[workload.decode_b2]\nthreshold = 1\n", ":2: [workload.decode_b2] threshold = '1': unknown perf workload"},
        {"[gates]\nthreshold = 1\n", "unknown section"},
        {"[gate]\nthis is not ini\n", ":2: syntax error"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = pgd_test_write_temp(cases[i].text, strlen(cases[i].text), ".ini");
        pgd_perf_limits l;
        CU_ASSERT_EQUAL(pgd_perf_limits_load(p, &l), PGD_ERR_INVALID);
        if (!strstr(pgd_last_error(), cases[i].want) || !strstr(pgd_last_error(), p))
            fprintf(stderr, "\ncase %zu: got '%s'\n", i, pgd_last_error());
        CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), cases[i].want));
        CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), p));
        unlink(p);
        free(p);
    }
    pgd_perf_limits l;
    CU_ASSERT_EQUAL(pgd_perf_limits_load("/nonexistent/gate.ini", &l), PGD_ERR_IO);
    /* the shipped config loads */
    CU_ASSERT_EQUAL(pgd_perf_limits_load("experiments/perf/gate.ini", &l), PGD_OK);
    pgd_perf_limits_free(&l);
}

static void test_bootstrap(void) {
    double x[31];
    pgd_rng r;
    pgd_rng_seed(&r, 3);
    for (int i = 0; i < 31; i++) x[i] = 1.10 + 0.05 * pgd_rng_normal(&r);
    pgd_perf_interval a, b;
    CU_ASSERT_EQUAL_FATAL(pgd_perf_bootstrap_median(x, 31, 2000, 0.95, 7, &a), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_perf_bootstrap_median(x, 31, 2000, 0.95, 7, &b), PGD_OK);
    CU_ASSERT_DOUBLE_EQUAL(a.lo, b.lo, 0); /* deterministic for a seed */
    CU_ASSERT_DOUBLE_EQUAL(a.hi, b.hi, 0);
    CU_ASSERT(a.lo <= a.median && a.median <= a.hi);
    CU_ASSERT(a.lo > 1.05 && a.hi < 1.15); /* a 10% effect under 5% noise stands clear of 5% */
    CU_ASSERT(a.hi - a.lo < 0.06);
    /* constant data: a point */
    double c[5] = {2, 2, 2, 2, 2};
    CU_ASSERT_EQUAL(pgd_perf_bootstrap_median(c, 5, 100, 0.95, 1, &a), PGD_OK);
    CU_ASSERT_DOUBLE_EQUAL(a.lo, 2, 0);
    CU_ASSERT_DOUBLE_EQUAL(a.hi, 2, 0);
    /* coverage: over 200 samples of 25 from a known median, the 95% interval holds it >= 88% of the time */
    int hold = 0;
    for (int t = 0; t < 200; t++) {
        double s[25];
        for (int i = 0; i < 25; i++) s[i] = 1.0 + 0.1 * pgd_rng_normal(&r);
        CU_ASSERT_EQUAL(pgd_perf_bootstrap_median(s, 25, 1000, 0.95, (uint64_t)t, &a), PGD_OK);
        hold += a.lo <= 1.0 && 1.0 <= a.hi;
    }
    CU_ASSERT(hold >= 176);
    CU_ASSERT_EQUAL(pgd_perf_bootstrap_median(x, 0, 100, 0.95, 1, &a), PGD_ERR_INVALID);
    CU_ASSERT_EQUAL(pgd_perf_bootstrap_median(x, 5, 100, 1.5, 1, &a), PGD_ERR_INVALID);
}

static void test_history(void) {
    char *path = pgd_test_write_temp("", 0, ".csv");
    unlink(path); /* a new file */
    pgd_perf_record r;
    make_record(&r, 1000, 20);
    CU_ASSERT_EQUAL_FATAL(pgd_perf_history_append(path, &r), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_perf_history_append(path, &r), PGD_OK);
    char *text = pgd_test_read_file(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_EQUAL(strncmp(text, "commit,date,machine,workload,instructions,wall_median_s,c_flags\n", 64), 0);
    int lines = 0;
    for (char *p = text; *p; p++) lines += *p == '\n';
    CU_ASSERT_EQUAL(lines, 5);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "0123456789abcdef,2024-01-01T00:00:00Z,\"test \"\"machine\"\", 2 CPUs\","
                                        "decode_b1,1000,0.25, -O3 sanitize=OFF native=OFF\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, ",config_load,20,,"));
    free(text);
    FILE *f = fopen(path, "w");
    fputs("a,b\n1,2\n", f);
    fclose(f);
    CU_ASSERT_EQUAL(pgd_perf_history_append(path, &r), PGD_ERR_FORMAT);
    text = pgd_test_read_file(path, NULL);
    CU_ASSERT_STRING_EQUAL(text, "a,b\n1,2\n"); /* untouched */
    free(text);
    unlink(path);
    free(path);
    pgd_perf_record_free(&r);
}

/* A `pagoda bench --json` file with the given throughputs; cpu > 0: also per CPU second
 * (cpu x the wall-clock ones), as benches since the perf gate report. */
static void write_bench(const char *path, double prefill, double single, double b1, double b16, double cpu) {
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"machine\": \"x\", \"prefill_tps\": %.6f, \"single_decode_tps\": %.6f, ", prefill, single);
    if (cpu > 0) fprintf(f, "\"prefill_cpu_tps\": %.6f, \"single_decode_cpu_tps\": %.6f, ", prefill * cpu, single * cpu);
    fprintf(f, "\"decode\": [{\"batch\": 1, \"decode_tps\": %.6f", b1);
    if (cpu > 0) fprintf(f, ", \"decode_cpu_tps\": %.6f", b1 * cpu);
    fprintf(f, "}, {\"batch\": 16, \"decode_tps\": %.6f", b16);
    if (cpu > 0) fprintf(f, ", \"decode_cpu_tps\": %.6f", b16 * cpu);
    fprintf(f, "}]}\n");
    fclose(f);
}

static void test_cli(void) {
    char *out = NULL, *err = NULL, args[4600];
    CU_ASSERT_EQUAL(pgd_test_run_cli("perf list", &out, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "decode_b32"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "config_load"));
    free(out);
    free(err);
    CU_ASSERT_EQUAL(pgd_test_run_cli("perf decode_b7", &out, &err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown perf workload 'decode_b7' (choices: decode_b1,"));
    free(out);
    free(err);
    CU_ASSERT_EQUAL(pgd_test_run_cli("perf config_load --time 3", &out, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "{\"workload\":\"config_load\",\"check\":\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"wall_median_s\":"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"c_flags\":"));
    free(out);
    free(err);
    /* compare: 0 / 1 / 2 */
    pgd_perf_record b, c;
    make_record(&b, 1000000, 20000);
    make_record(&c, 1000000, 25000);
    char *bp = pgd_test_write_temp("", 0, ".json"), *cp = pgd_test_write_temp("", 0, ".json");
    CU_ASSERT_EQUAL(pgd_perf_record_write(&b, bp), PGD_OK);
    CU_ASSERT_EQUAL(pgd_perf_record_write(&c, cp), PGD_OK);
    snprintf(args, sizeof args, "perf compare --config experiments/perf/gate.ini '%s' '%s'", bp, bp);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), 0);
    free(out);
    free(err);
    snprintf(args, sizeof args, "perf compare '%s' '%s'", bp, cp);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "REGRESSION config_load: +25.00%"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "ini_parse"));
    free(out);
    free(err);
    snprintf(args, sizeof args, "perf compare '%s' /nonexistent.json", bp);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent.json"));
    free(out);
    free(err);
    unlink(bp);
    unlink(cp);
    free(bp);
    free(cp);
    pgd_perf_record_free(&b);
    pgd_perf_record_free(&c);
    /* ab: 15 noisy pairs, current 10% slower in every metric -> 1; equal -> 0. Judged per CPU
     * second; per wall second when REF's bench predates the CPU numbers (old = 1) */
    char dir[] = "/tmp/pagoda_test_ab.XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    pgd_rng r;
    pgd_rng_seed(&r, 11);
    for (int old = 0; old < 2; old++)
        for (int slow = 1; slow >= 0; slow--) {
            for (int i = 1; i <= 15; i++) {
                char p[4200];
                double n1 = 1 + 0.03 * pgd_rng_normal(&r), n2 = 1 + 0.03 * pgd_rng_normal(&r), f = slow ? 1.1 : 1.0;
                snprintf(p, sizeof p, "%s/ref-%d.json", dir, i);
                write_bench(p, 5000 * n1, 400 * n1, 410 * n1, 3000 * n1, old ? 0 : 1.01);
                snprintf(p, sizeof p, "%s/cur-%d.json", dir, i);
                write_bench(p, 5000 * n2 / f, 400 * n2 / f, 410 * n2 / f, 3000 * n2 / f, 1.01);
            }
            snprintf(args, sizeof args, "perf ab --config experiments/perf/gate.ini '%s'", dir);
            CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), slow ? 1 : 0);
            CU_ASSERT_PTR_NOT_NULL(strstr(out, "decode_b16"));
            CU_ASSERT_PTR_NOT_NULL(strstr(out, slow ? "REGRESSION" : "no metric slower beyond 5%"));
            CU_ASSERT_PTR_NOT_NULL(strstr(out, old ? "judged: the wall-clock metrics" : "judged: the per-CPU-second"));
            CU_ASSERT_EQUAL(strstr(out, "decode_b16 cpu") != NULL, !old);
            free(out);
            free(err);
        }
    /* too few pairs, or a broken file -> 2 */
    snprintf(args, sizeof args, "rm -f '%s'/ref-*.json '%s'/cur-*.json", dir, dir);
    CU_ASSERT_EQUAL(system(args), 0);
    char p[4200];
    snprintf(p, sizeof p, "%s/ref-1.json", dir);
    write_bench(p, 1, 1, 1, 1, 0);
    snprintf(p, sizeof p, "%s/cur-1.json", dir);
    write_bench(p, 1, 1, 1, 1, 0);
    snprintf(args, sizeof args, "perf ab '%s'", dir);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "1 pairs"));
    free(out);
    free(err);
    snprintf(p, sizeof p, "%s/ref-2.json", dir);
    FILE *f = fopen(p, "w");
    fputs("{}", f);
    fclose(f);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "pair 2"));
    free(out);
    free(err);
    snprintf(args, sizeof args, "rm -rf '%s'", dir);
    CU_ASSERT_EQUAL(system(args), 0);
}

/* `pagoda plot` on a history CSV: the script and both images; a file that is no history: 2. */
static void test_plot_history(void) {
    char dir[] = "/tmp/pagoda_test_hist.XXXXXX", path[4200], args[4400];
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/history.csv", dir);
    pgd_perf_record r;
    make_record(&r, 1000, 20);
    CU_ASSERT_EQUAL(pgd_perf_history_append(path, &r), PGD_OK);
    free(r.date);
    r.date = strdup("2024-01-02T00:00:00Z");
    r.entries[0].instructions = 1030;
    CU_ASSERT_EQUAL(pgd_perf_history_append(path, &r), PGD_OK);
    pgd_perf_record_free(&r);
    char *out = NULL, *err = NULL;
    snprintf(args, sizeof args, "plot '%s'", path);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "2 gate runs, 2 workloads"));
    free(out);
    free(err);
    const char *files[] = {"perf_history.gp", "perf_history.png", "perf_history.svg"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/plots/%s", dir, files[i]);
        CU_ASSERT_EQUAL(access(path, R_OK), 0);
    }
    snprintf(path, sizeof path, "%s/other.csv", dir);
    FILE *f = fopen(path, "w");
    fputs("a,b\n1,2\n", f);
    fclose(f);
    snprintf(args, sizeof args, "plot '%s'", path);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), 2);
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "not a perf history"));
    free(out);
    free(err);
    snprintf(args, sizeof args, "rm -rf '%s'", dir);
    CU_ASSERT_EQUAL(system(args), 0);
}

static CU_TestInfo tests[] = {
    {"every workload runs and repeats its check value", test_workloads_deterministic},
    {"callgrind_annotate output parsed", test_parse_annotate},
    {"records: write whole, read back", test_record_roundtrip},
    {"verdicts: limits, regressions, better, flags, toolchain", test_compare_verdicts},
    {"gate config errors name file, line and key", test_limits_errors},
    {"bootstrap interval of the median", test_bootstrap},
    {"history CSV", test_history},
    {"pagoda plot draws the history", test_plot_history},
    {"pagoda perf: list, workload, compare, ab", test_cli},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "perf", .pTests = tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
