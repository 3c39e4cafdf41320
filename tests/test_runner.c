/* test_runner.c - experiment runs: two runs of one config with one seed
 * give identical request sets and identical tokens (all-at-once and
 * Poisson arrivals, greedy and sampled); the clock interface (real and
 * virtual; the engine and the runner on a virtual clock); a run's results
 * directory holds every file with the expected content. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pagoda/clock.h"
#include "pagoda/config.h"
#include "pagoda/runner.h"
#include "test_util.h"

static const char *BASE = "[experiment]\nname = det\nseed = 5\n[model]\npath = random:stories260K\nthreads = 1\n"
                          "[engine]\nblock_size = 8\nnum_blocks = 65\nmax_num_batched_tokens = 512\n"
                          "[workload]\nnum_requests = 12\ninput_len = uniform\ninput_min = 4\ninput_max = 40\n"
                          "output_len = uniform\noutput_min = 2\noutput_max = 40\n";

static pgd_experiment *load(const char *extra) {
    char text[2048];
    snprintf(text, sizeof text, "%s%s", BASE, extra);
    pgd_experiment *e = NULL;
    if (pgd_experiment_load_string(text, "det.ini", &e) != PGD_OK) fprintf(stderr, "\n  %s\n", pgd_last_error());
    return e;
}

static void run_twice(const char *extra) {
    pgd_experiment *e = load(extra);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    for (int i = 0; i < pgd_experiment_num_runs(e); i++) {
        pgd_run_result a, b;
        const pgd_run_config *rc = pgd_experiment_run(e, i);
        CU_ASSERT_EQUAL_FATAL(pgd_run_execute(rc, NULL, &a), PGD_OK);
        CU_ASSERT_EQUAL_FATAL(pgd_run_execute(rc, NULL, &b), PGD_OK);
        CU_ASSERT_EQUAL(a.num_requests, 12);
        CU_ASSERT_EQUAL(a.summary.completed, 12);
        CU_ASSERT_EQUAL(a.workload_fingerprint, b.workload_fingerprint);
        CU_ASSERT_EQUAL(a.token_fingerprint, b.token_fingerprint);
        CU_ASSERT_EQUAL(a.summary.total_output_tokens, b.summary.total_output_tokens);
        CU_ASSERT_EQUAL(a.summary.total_input_tokens, b.summary.total_input_tokens);
        pgd_run_result_free(&a);
        pgd_run_result_free(&b);
    }
    pgd_experiment_destroy(e);
}

static void test_deterministic_all_at_once(void) {
    run_twice("rate = inf\n[sweep]\nengine.kv_manager = paged, orca-max\n");
}

static void test_deterministic_poisson_sampled(void) {
    /* timing differs between the runs; requests and tokens must not */
    run_twice("rate = 400\n[sampling]\ntemperature = 0.8\ntop_k = 40\n");
}

static void test_seed_changes_requests(void) {
    pgd_experiment *e = load("rate = inf\n[sweep]\nexperiment.seed = 1, 2\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    pgd_run_result a, b;
    CU_ASSERT_EQUAL_FATAL(pgd_run_execute(pgd_experiment_run(e, 0), NULL, &a), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_run_execute(pgd_experiment_run(e, 1), NULL, &b), PGD_OK);
    CU_ASSERT_NOT_EQUAL(a.workload_fingerprint, b.workload_fingerprint);
    pgd_run_result_free(&a);
    pgd_run_result_free(&b);
    pgd_experiment_destroy(e);
}

static void test_clock(void) {
    pgd_clock *v = NULL, *r = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_clock_create(PGD_CLOCK_VIRTUAL, &v), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_clock_create(PGD_CLOCK_REAL, &r), PGD_OK);
    CU_ASSERT_STRING_EQUAL(pgd_clock_kind_name(pgd_clock_get_kind(v)), "virtual");
    CU_ASSERT_EQUAL(pgd_clock_now(v), 0.0);
    pgd_clock_advance(v, 1.5);
    pgd_clock_advance(v, -3); /* ignored: time never goes back */
    pgd_clock_advance(v, NAN);
    CU_ASSERT_EQUAL(pgd_clock_now(v), 1.5);
    pgd_clock_sleep_until(v, 1.0); /* past: no change */
    CU_ASSERT_EQUAL(pgd_clock_now(v), 1.5);
    pgd_clock_sleep_until(v, 100.0); /* returns at once */
    CU_ASSERT_EQUAL(pgd_clock_now(v), 100.0);
    double t0 = pgd_clock_now(r);
    pgd_clock_sleep_until(r, t0 + 0.02);
    double t1 = pgd_clock_now(r);
    CU_ASSERT(t1 - t0 >= 0.02);
    CU_ASSERT(t1 - t0 < 1.0);
    pgd_clock_advance(r, 10); /* no-op on a real clock */
    CU_ASSERT(pgd_clock_now(r) - t1 < 1.0);
    pgd_clock_destroy(v);
    pgd_clock_destroy(r);
    pgd_clock_destroy(NULL);
}

/* The engine reads time from a virtual clock: nothing moves unless advanced. */
static void test_engine_virtual_clock(void) {
    pgd_clock *v = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_clock_create(PGD_CLOCK_VIRTUAL, &v), PGD_OK);
    pgd_clock_advance(v, 7.0);
    pgd_backend *be = NULL;
    pgd_model *m = NULL;
    pgd_engine *eng = NULL;
    pgd_backend_config bc = {.num_threads = 1};
    CU_ASSERT_EQUAL_FATAL(pgd_backend_create(&bc, &be), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_model_load("random:stories260K", NULL, be, &m), PGD_OK);
    pgd_engine_config ec = {.num_blocks = 32, .clock = v};
    CU_ASSERT_EQUAL_FATAL(pgd_engine_create(&ec, m, NULL, &eng), PGD_OK);
    CU_ASSERT_EQUAL(pgd_engine_now(eng), 0.0);
    int32_t prompt[] = {1, 50, 60, 70};
    pgd_request_params p = {.prompt = prompt, .n_prompt = 4, .max_tokens = 3, .ignore_eos = 1};
    int64_t id;
    CU_ASSERT_EQUAL_FATAL(pgd_engine_add_request(eng, &p, &id), PGD_OK);
    for (int k = 0; pgd_engine_has_unfinished(eng); k++) {
        pgd_clock_advance(v, 0.5); /* "the step took 0.5 s" */
        CU_ASSERT_EQUAL_FATAL(pgd_engine_step(eng, NULL), PGD_OK);
    }
    const pgd_request_output *o = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_engine_get_output(eng, id, &o), PGD_OK);
    CU_ASSERT_EQUAL(o->seqs[0].n_tokens, 3);
    CU_ASSERT_DOUBLE_EQUAL(o->first_token, 0.5, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(o->seqs[0].token_times[2], 1.5, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(o->finish, 1.5, 1e-12);
    pgd_engine_destroy(eng);
    pgd_model_destroy(m);
    pgd_backend_destroy(be);
    pgd_clock_destroy(v);
}

/* The runner on a virtual clock: idle gaps are skipped, so a workload
 * spanning minutes of arrivals runs at once, and requests arrive exactly
 * at their workload times. */
static void test_runner_virtual_clock(void) {
    pgd_experiment *e = load("rate = 0.05\n"); /* ~4 minutes of arrivals */
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    pgd_clock *v = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_clock_create(PGD_CLOCK_VIRTUAL, &v), PGD_OK);
    pgd_run_options ro = {.clock = v};
    pgd_run_result res;
    double w0 = pgd_clock_now(NULL);
    CU_ASSERT_EQUAL_FATAL(pgd_run_execute(pgd_experiment_run(e, 0), &ro, &res), PGD_OK);
    CU_ASSERT(pgd_clock_now(NULL) - w0 < 30.0);
    CU_ASSERT(pgd_clock_now(v) > 60.0);
    CU_ASSERT_EQUAL(res.summary.completed, 12);
    /* no compute time passes on the virtual clock: every TTFT is 0 */
    CU_ASSERT_DOUBLE_EQUAL(res.summary.ttft.max, 0.0, 1e-12);
    CU_ASSERT(res.summary.duration > 60.0);
    pgd_run_result_free(&res);
    pgd_clock_destroy(v);
    pgd_experiment_destroy(e);
}

static int exists(const char *dir, const char *file) {
    char p[1024];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, file);
    return stat(p, &st) == 0 && st.st_size > 0;
}

static void test_outputs(void) {
    pgd_experiment *e = load("rate = inf\n[sweep]\nengine.policy = fcfs, sjf\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    char dir[] = "/tmp/pgd_runner_XXXXXX", rundir[512], csv[512];
    PGD_ASSERT(mkdtemp(dir));
    pgd_runs_csv *t = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_runs_csv_create(e, &t), PGD_OK);
    snprintf(csv, sizeof csv, "%s/runs.csv", dir);
    for (int i = 1; i >= 0; i--) { /* out of order: rows still come out in run order */
        const pgd_run_config *rc = pgd_experiment_run(e, i);
        pgd_run_result res;
        CU_ASSERT_EQUAL_FATAL(pgd_run_execute(rc, NULL, &res), PGD_OK);
        snprintf(rundir, sizeof rundir, "%s/%s", dir, pgd_run_name(rc));
        CU_ASSERT_EQUAL(pgd_run_write_outputs(rc, &res, rundir), PGD_OK);
        CU_ASSERT_EQUAL(pgd_runs_csv_add(t, rc, &res), PGD_OK);
        pgd_run_result_free(&res);
        const char *files[] = {"summary.json", "requests.csv", "timeline.csv", "config.ini", "env.json"};
        for (int k = 0; k < 5; k++) CU_ASSERT(exists(rundir, files[k]));
    }
    CU_ASSERT_EQUAL(pgd_runs_csv_write(t, csv), PGD_OK);
    pgd_runs_csv_destroy(t);
    char *text = pgd_test_read_file(csv, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_EQUAL(strncmp(text, "run,policy,completed,", 21), 0);
    char *l2 = strchr(text, '\n') + 1, *l3 = strchr(l2, '\n') + 1;
    CU_ASSERT_EQUAL(strncmp(l2, "policy-fcfs,fcfs,12,", 20), 0);
    CU_ASSERT_EQUAL(strncmp(l3, "policy-sjf,sjf,12,", 18), 0);
    free(text);
    snprintf(rundir, sizeof rundir, "%s/policy-sjf/summary.json", dir);
    json_error_t je;
    json_t *s = json_load_file(rundir, 0, &je);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(s, "completed")), 12);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(s, "run")), "policy-sjf");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_object_get(s, "swept"), "engine.policy")), "sjf");
    CU_ASSERT(json_integer_value(json_object_get(json_object_get(s, "engine"), "steps")) > 0);
    json_decref(s);
    snprintf(rundir, sizeof rundir, "%s/policy-sjf/env.json", dir);
    json_t *env = json_load_file(rundir, 0, &je);
    CU_ASSERT_PTR_NOT_NULL_FATAL(env);
    CU_ASSERT_PTR_NOT_NULL(json_object_get(json_object_get(env, "topology"), "cores"));
    CU_ASSERT_PTR_NOT_NULL(json_object_get(env, "git_revision"));
    json_decref(env);
    /* the written config.ini loads back as one run with the swept value */
    snprintf(rundir, sizeof rundir, "%s/policy-sjf/config.ini", dir);
    pgd_experiment *back = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_experiment_load(rundir, &back), PGD_OK);
    CU_ASSERT_STRING_EQUAL(pgd_run_get_str(pgd_experiment_run(back, 0), "engine", "policy"), "sjf");
    pgd_experiment_destroy(back);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
    pgd_experiment_destroy(e);
}

static CU_TestInfo tests[] = {
    {"same seed, all at once: same requests and tokens", test_deterministic_all_at_once},
    {"same seed, Poisson + sampling: same requests and tokens", test_deterministic_poisson_sampled},
    {"another seed: other requests", test_seed_changes_requests},
    {"real and virtual clocks", test_clock},
    {"engine on a virtual clock", test_engine_virtual_clock},
    {"runner on a virtual clock", test_runner_virtual_clock},
    {"results directory and runs.csv", test_outputs},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "runner", .pTests = tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
