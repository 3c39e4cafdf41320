/* test_config.c - experiment configs: every kind of bad config fails at
 * load (before any run) with one message naming the file, the line and the
 * key; sweeps expand into the cartesian product with names from the swept
 * values; the resolved config written as INI loads back to the same values;
 * `pagoda run` on a bad config exits 2 with one line and runs nothing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pagoda/config.h"
#include "test_util.h"

/* Load `text` as file "exp.ini"; expect failure whose message contains
 * every needle (NULL-terminated). */
static void expect_bad(const char *text, const char *const *needles) {
    pgd_experiment *e = NULL;
    pgd_status st = pgd_experiment_load_string(text, "exp.ini", &e);
    CU_ASSERT_NOT_EQUAL(st, PGD_OK);
    CU_ASSERT_PTR_NULL(e);
    const char *msg = pgd_last_error();
    int ok = 1;
    for (const char *const *n = needles; *n; n++) ok &= strstr(msg, *n) != NULL;
    ok &= strchr(msg, '\n') == NULL;
    if (!ok) fprintf(stderr, "\n  config:\n%s\n  message: %s\n", text, msg);
    CU_ASSERT(ok);
    pgd_experiment_destroy(e);
}

#define BAD(text, ...) expect_bad(text, (const char *const[]){__VA_ARGS__, NULL})

static void test_bad_configs(void) {
    BAD("[experiment]\nname = x\n[engine]\nblock_sise = 16\n", "exp.ini:4:", "[engine] block_sise", "unknown key");
    BAD("[experiment]\n[engien]\npolicy = fcfs\n", "exp.ini:3:", "unknown section [engien]", "policy");
    BAD("[engine]\nblock_size = sixteen\n", "exp.ini:2:", "[engine] block_size = 'sixteen'", "integer");
    BAD("[engine]\nblock_size = 0\n", "exp.ini:2:", "block_size", "1..4096");
    BAD("[workload]\nrate = fast\n", "exp.ini:2:", "[workload] rate = 'fast'", "inf");
    BAD("[engine]\nchunked_prefill = maybe\n", "exp.ini:2:", "chunked_prefill", "on or off");
    BAD("[engine]\nkv_memory = lots\n", "exp.ini:2:", "kv_memory = 'lots'", "size");
    BAD("[engine]\npolicy = lifo\n", "exp.ini:2:", "[engine] policy = 'lifo'", "unknown policy", "fcfs");
    BAD("[engine]\nkv_manager = buddy\n", "exp.ini:2:", "[engine] kv_manager = 'buddy'", "unknown KV manager");
    BAD("[model]\npath = random:nosuchshape\n", "exp.ini:2:", "[model] path", "nosuchshape");
    BAD("[model]\npath = /no/such/model.bin\n", "exp.ini:2:", "[model] path = '/no/such/model.bin'", "cannot read");
    BAD("[workload]\nsource = trace\npath = /no/such/trace.csv\n", "exp.ini:3:", "[workload] path = '/no/such/trace.csv'",
        "cannot read");
    BAD("[workload]\nsource = trace\n", "exp.ini:2:", "[workload] source", "needs [workload] path");
    BAD("[workload]\ninput_len = zipf\n", "exp.ini:2:", "input_len = 'zipf'", "sharegpt");
    BAD("[sweep]\nworkload.rate =\n", "exp.ini:2:", "[sweep] workload.rate", "empty sweep");
    BAD("[sweep]\nworkload.rate = 1,,4\n", "exp.ini:2:", "workload.rate", "empty value");
    BAD("[sweep]\nworkload.rate = 1, 2, 1\n", "exp.ini:2:", "workload.rate", "listed twice");
    BAD("[sweep]\nengine.policy = fcfs, lifo\n", "exp.ini:2:", "[sweep] engine.policy = 'lifo'", "unknown policy");
    BAD("[sweep]\nengine.kv_manager = paged, buddy\n", "exp.ini:2:", "engine.kv_manager = 'buddy'", "unknown KV");
    BAD("[sweep]\nengine.block_sise = 8, 16\n", "exp.ini:2:", "engine.block_sise", "unknown key");
    BAD("[sweep]\nrate = 1, 2\n", "exp.ini:2:", "[sweep] rate", "section.key");
    BAD("[sweep]\nexperiment.name = a, b\n", "exp.ini:2:", "experiment.name", "cannot be swept");
    BAD("[engine]\npolicy = fcfs\npolicy = sjf\n", "exp.ini:3:", "[engine] policy = 'sjf'", "set twice", "line 2");
    BAD("policy = fcfs\n[engine]\n", "exp.ini:1:", "policy", "outside a section");
    BAD("[engine]\nthis line has no equals sign\n", "exp.ini:2:", "syntax error");
    BAD("[engine]\nnum_blocks = 100\nkv_memory = 64M\n", "exp.ini:3:", "[engine] kv_memory", "not both");
    /* cross-key rules checked per sweep point, naming the run */
    BAD("[engine]\nprefix_caching = on\n[sweep]\nengine.kv_manager = paged, orca-max\n", "exp.ini:4:",
        "[engine] kv_manager = 'orca-max'", "prefix_caching", "run kv_manager-orca-max");
    BAD("[workload]\narrival = closed-loop\n", "exp.ini:2:", "arrival", "concurrency");
    BAD("[workload]\narrival = poisson\n", "exp.ini:2:", "arrival", "finite rate");
    BAD("[model]\npath = random:stories260K\n[engine]\nmax_num_batched_tokens = 100\n", "exp.ini:4:",
        "max_num_batched_tokens", "context (512)");
    char longline[400];
    snprintf(longline, sizeof longline, "[experiment]\ndescription = %0300d\n", 0);
    BAD(longline, "exp.ini:2:", "longer than");
}

static void test_missing_file(void) {
    pgd_experiment *e = NULL;
    CU_ASSERT_EQUAL(pgd_experiment_load("/no/such/exp.ini", &e), PGD_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "/no/such/exp.ini"));
}

static void test_sweep_expansion(void) {
    const char *text = "[experiment]\nname = sw\nseed = 3\n[engine]\npolicy = fcfs\n[workload]\nrate = 5\n"
                       "[sweep]\nworkload.rate = 1, 2,\n    4\nengine.policy = fcfs, sjf\n"
                       "engine.kv_manager = paged, orca-max\n";
    pgd_experiment *e = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_experiment_load_string(text, "sw.ini", &e), PGD_OK);
    CU_ASSERT_STRING_EQUAL(pgd_experiment_name(e), "sw");
    CU_ASSERT_EQUAL(pgd_experiment_num_runs(e), 12);
    CU_ASSERT_EQUAL(pgd_experiment_num_swept(e), 3);
    CU_ASSERT_STRING_EQUAL(pgd_experiment_swept_key(e, 0), "workload.rate");
    const pgd_run_config *r0 = pgd_experiment_run(e, 0), *r5 = pgd_experiment_run(e, 5),
                         *r11 = pgd_experiment_run(e, 11);
    CU_ASSERT_STRING_EQUAL(pgd_run_name(r0), "rate-1_policy-fcfs_kv_manager-paged");
    CU_ASSERT_STRING_EQUAL(pgd_run_name(r5), "rate-2_policy-fcfs_kv_manager-orca-max");
    CU_ASSERT_STRING_EQUAL(pgd_run_name(r11), "rate-4_policy-sjf_kv_manager-orca-max");
    CU_ASSERT_DOUBLE_EQUAL(pgd_run_get_num(r5, "workload", "rate"), 2.0, 0);
    CU_ASSERT_STRING_EQUAL(pgd_run_get_str(r11, "engine", "policy"), "sjf");
    CU_ASSERT_STRING_EQUAL(pgd_run_swept_value(r11, 2), "orca-max");
    CU_ASSERT_EQUAL(pgd_run_get_u64(r0, "experiment", "seed"), 3);
    /* defaults */
    CU_ASSERT_EQUAL(pgd_run_get_int(r0, "engine", "block_size"), 16);
    CU_ASSERT_EQUAL(pgd_run_is_set(r0, "engine", "block_size"), 0);
    CU_ASSERT_EQUAL(pgd_run_is_set(r0, "workload", "rate"), 1);
    CU_ASSERT_EQUAL(pgd_run_get_bool(r0, "engine", "prefix_caching"), 0);
    /* all names distinct */
    for (int i = 0; i < 12; i++)
        for (int j = i + 1; j < 12; j++)
            CU_ASSERT_STRING_NOT_EQUAL(pgd_run_name(pgd_experiment_run(e, i)), pgd_run_name(pgd_experiment_run(e, j)));
    char where[256];
    pgd_run_where(r5, "workload", "rate", where, sizeof where);
    CU_ASSERT_PTR_NOT_NULL(strstr(where, "sw.ini:9: [workload] rate = '2'"));
    pgd_experiment_destroy(e);
    /* no sweep: one run named "run"; name from the file */
    CU_ASSERT_EQUAL_FATAL(pgd_experiment_load_string("[workload]\nrate = inf\n", "dir/plain.ini", &e), PGD_OK);
    CU_ASSERT_EQUAL(pgd_experiment_num_runs(e), 1);
    CU_ASSERT_STRING_EQUAL(pgd_run_name(pgd_experiment_run(e, 0)), "run");
    CU_ASSERT_STRING_EQUAL(pgd_experiment_name(e), "plain");
    CU_ASSERT(isinf(pgd_run_get_num(pgd_experiment_run(e, 0), "workload", "rate")));
    pgd_experiment_destroy(e);
}

static void test_resolved_ini_round_trip(void) {
    const char *text = "[experiment]\nname = rt\n[engine]\nkv_memory = 32M\nprefix_caching = on\n[compare]\n"
                       "metrics = engine.steps, engine.preemptions, completed, total_input_tokens, total_output_tokens,\n"
                       "  batch.mean_seqs, batch.mean_tokens, kv.mean_utilization, prefix_hit_rate, token_fingerprint\n"
                       "[sweep]\nworkload.rate = 2, 8\n";
    pgd_experiment *e = NULL, *e2 = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_experiment_load_string(text, "rt.ini", &e), PGD_OK);
    const pgd_run_config *r = pgd_experiment_run(e, 1);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CU_ASSERT_EQUAL(pgd_run_write_ini(r, f), PGD_OK);
    fclose(f);
    CU_ASSERT_EQUAL_FATAL(pgd_experiment_load_string(buf, "config.ini", &e2), PGD_OK);
    CU_ASSERT_EQUAL(pgd_experiment_num_runs(e2), 1);
    const pgd_run_config *r2 = pgd_experiment_run(e2, 0);
    for (const pgd_cfg_key *k = pgd_config_schema(); k->section; k++) {
        const char *a = pgd_run_get_str(r, k->section, k->key), *b = pgd_run_get_str(r2, k->section, k->key);
        if (!strcmp(k->key, "name")) continue;
        if (k->type == PGD_CFG_LIST) {
            CU_ASSERT_PTR_NOT_NULL(strstr(b, "token_fingerprint"));
            CU_ASSERT_PTR_NOT_NULL(strstr(b, "engine.steps"));
            continue;
        }
        if (strcmp(a, b)) fprintf(stderr, "\n  [%s] %s: '%s' vs '%s'\n", k->section, k->key, a, b);
        CU_ASSERT_STRING_EQUAL(a, b);
    }
    CU_ASSERT_STRING_EQUAL(pgd_experiment_name(e2), "rt");
    free(buf);
    pgd_experiment_destroy(e2);
    pgd_experiment_destroy(e);
}

static void test_schema_defaults_valid(void) {
    for (const pgd_cfg_key *k = pgd_config_schema(); k->section; k++) {
        if (!*k->def) continue; /* "" = unset */
        pgd_status st = pgd_config_check_value(k, k->def);
        if (st != PGD_OK) fprintf(stderr, "\n  default of [%s] %s: %s\n", k->section, k->key, pgd_last_error());
        CU_ASSERT_EQUAL(st, PGD_OK);
        CU_ASSERT_PTR_NOT_NULL(k->help);
    }
}

static void test_cli_bad_config(void) {
    const char *text = "[experiment]\nname = pgd_cfg_cli_test\n[engine]\npolicy = lifo\n";
    char *ini = pgd_test_write_temp(text, strlen(text), ".ini");
    CU_ASSERT_PTR_NOT_NULL_FATAL(ini);
    char args[1024], *out = NULL, *err = NULL;
    snprintf(args, sizeof args, "run --output-dir /tmp/pgd_cfg_cli_out '%s'", ini);
    int rc = pgd_test_run_cli(args, &out, &err);
    CU_ASSERT_EQUAL(rc, 2);
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, ini));
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, ":4: [engine] policy = 'lifo'"));
    CU_ASSERT(err && strchr(err, '\n') == strrchr(err, '\n')); /* one line */
    struct stat st;
    CU_ASSERT_NOT_EQUAL(stat("/tmp/pgd_cfg_cli_out/pgd_cfg_cli_test", &st), 0); /* nothing ran */
    free(out);
    free(err);
    /* --dry-run lists the runs of a good config */
    FILE *f = fopen(ini, "w");
    fputs("[experiment]\nname = pgd_cfg_cli_test\n[sweep]\nengine.policy = fcfs, sjf\n", f);
    fclose(f);
    snprintf(args, sizeof args, "run --dry-run '%s'", ini);
    rc = pgd_test_run_cli(args, &out, &err);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "2 runs"));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "policy-sjf"));
    free(out);
    free(err);
    remove(ini);
    free(ini);
}

static CU_TestInfo tests[] = {
    {"bad configs name file, line and key", test_bad_configs},
    {"missing config file", test_missing_file},
    {"sweep expansion and names", test_sweep_expansion},
    {"resolved config.ini round trip", test_resolved_ini_round_trip},
    {"schema defaults pass their checks", test_schema_defaults_valid},
    {"pagoda run: bad config exits 2, runs nothing", test_cli_bad_config},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "config", .pTests = tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
