/* test_compare.c - regression checks: an identical summary passes; a run
 * slowed down (throughput -20%, latency +20%) is flagged; improvements are
 * "better", not regressions; fingerprints must match; thresholds come from
 * [compare] sections and options; experiment directories pair runs by
 * name; `pagoda compare` exits 0 / 1 / 2 and writes its JSON report. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pagoda/compare.h"
#include "pagoda/results.h"
#include "pagoda/runner.h"
#include "test_util.h"

static const char *SUMMARY =
    "{\"run\": \"r\", \"completed\": 100, \"failed\": 0, \"request_throughput\": 10.0, \"output_throughput\": 1000.0,"
    " \"goodput\": 9.0, \"ttft\": {\"mean\": 0.2, \"p99\": 0.5, \"count\": 100}, \"tpot\": {\"mean\": 0.02, \"p99\": 0.04},"
    " \"normalized_latency\": {\"mean\": 0.03}, \"preemptions\": 4, \"prefix_hit_rate\": 0.5,"
    " \"batch\": {\"mean_seqs\": 12.5}, \"engine\": {\"steps\": 500, \"tokens_generated\": 10000},"
    " \"token_fingerprint\": \"00ff00ff00ff00ff\", \"model\": \"random:x\", \"wall_time_s\": 12.0}";

static json_t *summary(void) {
    json_error_t err;
    json_t *j = json_loads(SUMMARY, 0, &err);
    PGD_ASSERT(j != NULL);
    return j;
}

static void set_num(json_t *o, const char *path, double factor) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    char *dot = strchr(buf, '.');
    if (dot) {
        *dot = 0;
        o = json_object_get(o, buf);
        path = dot + 1;
    }
    json_t *v = json_object_get(o, dot ? path : buf);
    json_object_set_new(o, dot ? path : buf, json_real(json_number_value(v) * factor));
}

static const pgd_compare_row *row(const pgd_compare_report *r, const char *metric) {
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->rows[i].metric, metric)) return &r->rows[i];
    return NULL;
}

static void test_classify(void) {
    CU_ASSERT_EQUAL(pgd_compare_classify("output_throughput"), PGD_CMP_THROUGHPUT);
    CU_ASSERT_EQUAL(pgd_compare_classify("goodput"), PGD_CMP_THROUGHPUT);
    CU_ASSERT_EQUAL(pgd_compare_classify("ttft.p99"), PGD_CMP_LATENCY);
    CU_ASSERT_EQUAL(pgd_compare_classify("normalized_latency.mean"), PGD_CMP_LATENCY);
    CU_ASSERT_EQUAL(pgd_compare_classify("ttft.count"), PGD_CMP_INFO);
    CU_ASSERT_EQUAL(pgd_compare_classify("engine.steps"), PGD_CMP_COUNT_LOWER);
    CU_ASSERT_EQUAL(pgd_compare_classify("batch.mean_seqs"), PGD_CMP_COUNT_HIGHER);
    CU_ASSERT_EQUAL(pgd_compare_classify("token_fingerprint"), PGD_CMP_EQUAL);
    CU_ASSERT_EQUAL(pgd_compare_classify("wall_time_s"), PGD_CMP_INFO);
}

static void test_identical_passes(void) {
    pgd_compare_thresholds t;
    pgd_compare_thresholds_default(&t);
    pgd_compare_report rep = {0};
    json_t *a = summary(), *b = summary();
    CU_ASSERT_EQUAL(pgd_compare_json(a, b, "r", &t, &rep), PGD_OK);
    CU_ASSERT_EQUAL(rep.regressions, 0);
    CU_ASSERT(rep.compared >= 12);
    for (int i = 0; i < rep.n; i++) CU_ASSERT_STRING_NOT_EQUAL(rep.rows[i].verdict, "REGRESSION");
    pgd_compare_report_free(&rep);
    json_decref(a);
    json_decref(b);
}

static void test_slowed_run_flagged(void) {
    pgd_compare_thresholds t;
    pgd_compare_thresholds_default(&t);
    json_t *a = summary(), *b = summary();
    set_num(b, "output_throughput", 0.8); /* -20% */
    set_num(b, "request_throughput", 0.8);
    set_num(b, "ttft.mean", 1.2); /* +20% */
    set_num(b, "tpot.p99", 1.04); /* +4%: within 10% */
    pgd_compare_report rep = {0};
    CU_ASSERT_EQUAL(pgd_compare_json(a, b, "r", &t, &rep), PGD_OK);
    CU_ASSERT_EQUAL(rep.regressions, 3);
    const pgd_compare_row *r = row(&rep, "output_throughput");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_STRING_EQUAL(r->verdict, "REGRESSION");
    CU_ASSERT_DOUBLE_EQUAL(r->change_pct, -20.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(r->limit_pct, -5.0, 0);
    CU_ASSERT_STRING_EQUAL(row(&rep, "ttft.mean")->verdict, "REGRESSION");
    CU_ASSERT_STRING_EQUAL(row(&rep, "tpot.p99")->verdict, "ok");
    pgd_compare_report_free(&rep);
    /* looser thresholds let it pass */
    t.throughput_pct = 25;
    t.latency_pct = 25;
    CU_ASSERT_EQUAL(pgd_compare_json(a, b, "r", &t, &rep), PGD_OK);
    CU_ASSERT_EQUAL(rep.regressions, 0);
    pgd_compare_report_free(&rep);
    json_decref(a);
    json_decref(b);
}

static void test_better_and_equal(void) {
    pgd_compare_thresholds t;
    pgd_compare_thresholds_default(&t);
    json_t *a = summary(), *b = summary();
    set_num(b, "ttft.p99", 0.5);     /* faster: better */
    set_num(b, "engine.steps", 1.2); /* 20% more steps: worse count */
    json_object_set_new(b, "token_fingerprint", json_string("1111111111111111"));
    pgd_compare_report rep = {0};
    CU_ASSERT_EQUAL(pgd_compare_json(a, b, "r", &t, &rep), PGD_OK);
    CU_ASSERT_STRING_EQUAL(row(&rep, "ttft.p99")->verdict, "better");
    CU_ASSERT_STRING_EQUAL(row(&rep, "engine.steps")->verdict, "REGRESSION");
    CU_ASSERT_STRING_EQUAL(row(&rep, "token_fingerprint")->verdict, "REGRESSION");
    CU_ASSERT_EQUAL(rep.regressions, 2);
    pgd_compare_report_free(&rep);
    /* metric selection: only latency */
    snprintf(t.metrics, sizeof t.metrics, "ttft.*, tpot.mean");
    CU_ASSERT_EQUAL(pgd_compare_json(a, b, "r", &t, &rep), PGD_OK);
    CU_ASSERT_EQUAL(rep.regressions, 0);
    CU_ASSERT_EQUAL(rep.compared, 3);
    CU_ASSERT_PTR_NULL(row(&rep, "engine.steps"));
    pgd_compare_report_free(&rep);
    json_decref(a);
    json_decref(b);
}

static void test_thresholds_from_ini(void) {
    const char *ini = "[experiment]\nname = x\n[compare]\nthroughput = 2.5\nlatency = 50\nmetrics = a, b,\n  c\n";
    char *p = pgd_test_write_temp(ini, strlen(ini), ".ini");
    pgd_compare_thresholds t;
    pgd_compare_thresholds_default(&t);
    CU_ASSERT_EQUAL(pgd_compare_thresholds_load(p, &t), PGD_OK);
    CU_ASSERT_DOUBLE_EQUAL(t.throughput_pct, 2.5, 0);
    CU_ASSERT_DOUBLE_EQUAL(t.latency_pct, 50, 0);
    CU_ASSERT_DOUBLE_EQUAL(t.counts_pct, 10, 0);
    CU_ASSERT_STRING_EQUAL(t.metrics, "a, b,,c");
    remove(p);
    free(p);
    const char *bad = "[compare]\nthroughput = lots\n";
    p = pgd_test_write_temp(bad, strlen(bad), ".ini");
    CU_ASSERT_EQUAL(pgd_compare_thresholds_load(p, &t), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), ":2: [compare] throughput = 'lots'"));
    remove(p);
    free(p);
}

/* dir/<run>/summary.json for each run, from `j` */
static void write_exp(const char *dir, const char *run, json_t *j) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, run);
    PGD_ASSERT(pgd_mkdir_p(path) == PGD_OK);
    snprintf(path, sizeof path, "%s/%s/summary.json", dir, run);
    PGD_ASSERT(json_dump_file(j, path, 0) == 0);
    /* sealed as pagoda run seals a run (results.h) */
    static const char *const files[] = {"summary.json", NULL};
    snprintf(path, sizeof path, "%s/%s", dir, run);
    PGD_ASSERT(pgd_results_seal(path, run, "test", files) == PGD_OK);
}

static void test_cli(void) {
    char base[] = "/tmp/pgd_cmp_XXXXXX";
    PGD_ASSERT(mkdtemp(base));
    char b[600], c[600], s[600], args[2400], json_path[700], *out = NULL, *err = NULL;
    snprintf(b, sizeof b, "%s/base", base);
    snprintf(c, sizeof c, "%s/cur", base);
    snprintf(s, sizeof s, "%s/slow", base);
    json_t *j = summary(), *slow = summary();
    set_num(slow, "output_throughput", 0.8);
    write_exp(b, "run-a", j);
    write_exp(b, "run-b", j);
    write_exp(c, "run-a", j);
    write_exp(c, "run-b", j);
    write_exp(s, "run-a", j);
    write_exp(s, "run-b", slow);
    /* identical experiment dirs: exit 0 */
    snprintf(args, sizeof args, "compare '%s' '%s'", b, c);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "0 regressions"));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "2 runs"));
    free(out);
    free(err);
    /* slowed run: exit 1, named in the table and the JSON report */
    snprintf(json_path, sizeof json_path, "%s/report.json", base);
    snprintf(args, sizeof args, "compare --json '%s' '%s' '%s'", json_path, b, s);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), 1);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "REGRESSION"));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "run-b"));
    free(out);
    free(err);
    json_error_t je;
    json_t *rep = json_load_file(json_path, 0, &je);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(rep, "regressions")), 1);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(rep, "verdict")), "regression");
    json_decref(rep);
    /* single summary files; a threshold option lets the slow one pass */
    snprintf(args, sizeof args, "compare --throughput 30 '%s/run-b/summary.json' '%s/run-b/summary.json'", b, s);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), 0);
    free(out);
    free(err);
    /* bad input: exit 2 with one line naming the path */
    snprintf(args, sizeof args, "compare '%s' /no/such/dir", b);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), 2);
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "/no/such/dir"));
    free(out);
    free(err);
    char junk[700];
    snprintf(junk, sizeof junk, "%s/junk.json", base);
    FILE *f = fopen(junk, "w");
    fputs("{not json", f);
    fclose(f);
    snprintf(args, sizeof args, "compare '%s' '%s/run-a/summary.json'", junk, b);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), 2);
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "junk.json"));
    free(out);
    free(err);
    /* a baseline run missing from the current results */
    snprintf(args, sizeof args, "compare '%s' '%s'", b, c);
    snprintf(json_path, sizeof json_path, "rm -r '%s/run-b'", c);
    CU_ASSERT_EQUAL(system(json_path), 0);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), 1); /* missing is a failure, not bad input */
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "run-b"));
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "MISSING"));
    free(out);
    free(err);
    json_decref(j);
    json_decref(slow);
    snprintf(args, sizeof args, "rm -rf '%s'", base);
    CU_ASSERT_EQUAL(system(args), 0);
}

/* Run `compare BASE CUR`: its exit status; stderr must name `needle`. */
static int compare_names(const char *b, const char *c, const char *needle) {
    char args[2400], *out = NULL, *err = NULL;
    snprintf(args, sizeof args, "compare '%s' '%s'", b, c);
    int rc = pgd_test_run_cli(args, &out, &err);
    if (needle && !(err && strstr(err, needle))) {
        fprintf(stderr, "\ncompare %s %s: stderr lacks '%s':\n%s\n", b, c, needle, err ? err : "");
        CU_FAIL("compare does not name what is missing");
    }
    free(out);
    free(err);
    return rc;
}

static void sh(const char *fmt, const char *a, const char *b) {
    char cmd[2400];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

/* Defects 2-4 of issue 18: an empty or cut summary, a run without its
 * marker, an interrupted write, a stale run and a missing metric or run
 * all fail (exit 1) naming what is wrong; none of them passes as "0
 * regressions". */
static void test_missing_and_incomplete(void) {
    char base[] = "/tmp/pgd_cmp_XXXXXX";
    PGD_ASSERT(mkdtemp(base));
    char b[600], c[600], p[700];
    snprintf(b, sizeof b, "%s/base", base);
    snprintf(c, sizeof c, "%s/cur", base);
    json_t *j = summary(), *empty = json_object(), *partial = summary();
    write_exp(b, "run-a", j);
    write_exp(b, "run-b", j);
    write_exp(c, "run-a", j);
    write_exp(c, "run-b", j);
    CU_ASSERT_EQUAL(compare_names(b, c, NULL), 0);
    /* a current summary.json of {} (sealed, so whole): every judged metric is missing */
    write_exp(c, "run-b", empty);
    CU_ASSERT_EQUAL(compare_names(b, c, "metric output_throughput is missing from the current results of run run-b"), 1);
    snprintf(p, sizeof p, "%s/run-b/summary.json", c);
    char pb[700];
    snprintf(pb, sizeof pb, "%s/run-b/summary.json", b);
    CU_ASSERT_EQUAL(compare_names(pb, p, "metric ttft.mean is missing"), 1); /* files too */
    /* one judged metric gone */
    json_object_del(partial, "goodput");
    write_exp(c, "run-b", partial);
    CU_ASSERT_EQUAL(compare_names(b, c, "metric goodput is missing"), 1);
    write_exp(c, "run-b", j);
    CU_ASSERT_EQUAL(compare_names(b, c, NULL), 0);
    /* a 0-byte summary.json (written whole once, cut since) */
    sh(": > '%s/run-b/summary.json'%s", c, "");
    CU_ASSERT_EQUAL(compare_names(b, c, "summary.json has 0 bytes"), 1);
    /* no marker: the run's writing was cut short */
    write_exp(c, "run-b", j);
    sh("rm '%s/run-b/complete.json'%s", c, "");
    CU_ASSERT_EQUAL(compare_names(b, c, "incomplete run"), 1);
    snprintf(p, sizeof p, "%s/run-b", c);
    char pr[700];
    snprintf(pr, sizeof pr, "%s/run-b", b);
    CU_ASSERT_EQUAL(compare_names(pr, p, "run-b"), 1); /* run directory against run directory */
    /* an empty run directory */
    sh("rm -rf '%s/run-b' && mkdir '%s/run-b'", c, c);
    CU_ASSERT_EQUAL(compare_names(pr, p, "run-b"), 1);
    CU_ASSERT_EQUAL(compare_names(b, c, "run-b"), 1);
    /* a run interrupted while being written: only its .partial directory */
    sh("rm -rf '%s/run-b' && mkdir '%s/.run-b.partial'", c, c);
    CU_ASSERT_EQUAL(compare_names(b, c, "interrupted while being written"), 1);
    /* an incomplete run only in the current results is named too */
    sh("rm -rf '%s/.run-b.partial' && mkdir '%s/run-c'", c, c);
    write_exp(c, "run-b", j);
    CU_ASSERT_EQUAL(compare_names(b, c, "run-c"), 1);
    sh("rmdir '%s/run-c'%s", c, "");
    CU_ASSERT_EQUAL(compare_names(b, c, NULL), 0);
    /* stale: runs.csv lists another sweep for run-b, or does not list run-a */
    sh("printf 'run,completed,sweep_id\\nrun-b,1,other\\n' > '%s/runs.csv'%s", c, "");
    CU_ASSERT_EQUAL(compare_names(b, c, "lists sweep other"), 1);
    CU_ASSERT_EQUAL(compare_names(b, c, "run-a is not in"), 1);
    sh("printf 'run,completed,sweep_id\\nrun-a,1,test\\nrun-b,1,test\\n' > '%s/runs.csv'%s", c, "");
    CU_ASSERT_EQUAL(compare_names(b, c, NULL), 0);
    /* an empty current experiment directory: every baseline run is missing */
    sh("rm -rf '%s' && mkdir '%s'", c, c);
    CU_ASSERT_EQUAL(compare_names(b, c, "run 'run-a' of the baseline is missing"), 1);
    /* an incomplete baseline is named as well */
    write_exp(c, "run-a", j);
    write_exp(c, "run-b", j);
    sh("rm '%s/run-a/complete.json'%s", b, "");
    CU_ASSERT_EQUAL(compare_names(b, c, "baseline: incomplete run"), 1);
    json_decref(j);
    json_decref(empty);
    json_decref(partial);
    sh("rm -rf '%s'%s", base, "");
}

static CU_TestInfo tests[] = {
    {"metric classes", test_classify},
    {"identical summaries pass", test_identical_passes},
    {"a slowed run is a regression", test_slowed_run_flagged},
    {"improvements, counts, fingerprints, metric selection", test_better_and_equal},
    {"thresholds from [compare]", test_thresholds_from_ini},
    {"pagoda compare: exit status, table, JSON report", test_cli},
    {"missing, empty, incomplete, interrupted and stale runs fail by name", test_missing_and_incomplete},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "compare", .pTests = tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
