/* test_runner.c - experiment runs: two runs of one config with one seed
 * give identical request sets and identical tokens (all-at-once and
 * Poisson arrivals, greedy and sampled); the clock interface (real and
 * virtual; the engine and the runner on a virtual clock); a run's results
 * directory holds every file with the expected content; op_times.csv of a
 * cpu and a sim run of stories260K (matmul count per forward, the step rows
 * partition the run, on the sim the ops sum to schedule + forward). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pagoda/clock.h"
#include "pagoda/config.h"
#include "pagoda/engine.h"
#include "pagoda/exec.h"
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
    pgd_exec *m = NULL;
    pgd_engine *eng = NULL;
    pgd_exec_config xc = {.model = "random:stories260K", .backend = {.num_threads = 1}};
    CU_ASSERT_EQUAL_FATAL(pgd_exec_create(&xc, &m), PGD_OK);
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
    pgd_exec_destroy(m);
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
        const char *files[] = {"summary.json", "requests.csv", "timeline.csv", "op_times.csv", "config.ini",
                               "env.json"};
        for (int k = 0; k < 6; k++) CU_ASSERT(exists(rundir, files[k]));
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

/* ---- op_times.csv ---- */

typedef struct op_row {
    char kind[8], name[32];
    long long calls; /* -1 = empty field */
    double seconds, share;
} op_row;

/* Split `line` in place at commas into exactly n fields; 0 if the count differs. */
static int split(char *line, char **f, int n) {
    int k = 0;
    for (char *p = line; p; k++) {
        if (k == n) return 0;
        f[k] = p;
        p = strchr(p, ',');
        if (p) *p++ = '\0';
    }
    return k == n;
}

/* Parse op_times.csv; returns the row count (-1 on a malformed file). */
static int read_op_times(const char *path, op_row *rows, int cap) {
    char *text = pgd_test_read_file(path, NULL);
    if (!text) return -1;
    const char *header = "kind,name,calls,seconds,share\n";
    int n = strncmp(text, header, strlen(header)) ? -1 : 0;
    for (char *l = text + strlen(header), *end; n >= 0 && *l && n < cap; n++, l = end + 1) {
        char *f[5];
        if ((end = strchr(l, '\n'))) *end = '\0';
        if (!end || !split(l, f, 5)) {
            n = -1;
            break;
        }
        op_row *r = &rows[n];
        snprintf(r->kind, sizeof r->kind, "%s", f[0]);
        snprintf(r->name, sizeof r->name, "%s", f[1]);
        r->calls = *f[2] ? atoll(f[2]) : -1;
        r->seconds = *f[3] ? strtod(f[3], NULL) : NAN;
        r->share = *f[4] ? strtod(f[4], NULL) : NAN;
    }
    free(text);
    return n;
}

static const op_row *find_row(const op_row *rows, int n, const char *kind, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(rows[i].kind, kind) && !strcmp(rows[i].name, name)) return &rows[i];
    return NULL;
}

/* One run of stories260K (../shared/data) on `backend`, all requests at once
 * and KV space for all of them (no preemption): op_times.csv has the header,
 * one row per op, the four step rows; matmul calls are 7 per layer + 1
 * (classifier) per forward pass; the step rows partition the run time. */
static void op_times_run(const char *backend) {
    char ini[1024];
    snprintf(ini, sizeof ini,
             "[experiment]\nname = optimes\nseed = 9\n[model]\npath = %s\nbackend = %s\nthreads = 1\n"
             "[engine]\nblock_size = 8\nnum_blocks = 257\nmax_num_batched_tokens = 512\n"
             "[workload]\nnum_requests = 10\nrate = inf\ninput_len = uniform\ninput_min = 4\ninput_max = 40\n"
             "output_len = uniform\noutput_min = 2\noutput_max = 30\n",
             pgd_test_data("models/stories260K/stories260K.bin"), backend);
    pgd_experiment *e = NULL;
    if (pgd_experiment_load_string(ini, "optimes.ini", &e) != PGD_OK) fprintf(stderr, "\n  %s\n", pgd_last_error());
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    /* the model's layer count, from the file */
    pgd_backend *be = NULL;
    pgd_model *m = NULL;
    pgd_backend_config bc = {.name = "cpu", .num_threads = 1};
    CU_ASSERT_EQUAL_FATAL(pgd_backend_create(&bc, &be), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_model_load(pgd_test_data("models/stories260K/stories260K.bin"), NULL, be, &m), PGD_OK);
    const int layers = pgd_model_get_config(m)->n_layers;
    pgd_model_destroy(m);
    pgd_backend_destroy(be);

    const pgd_run_config *rc = pgd_experiment_run(e, 0);
    pgd_run_result res;
    pgd_status st = pgd_run_execute(rc, NULL, &res);
    if (st != PGD_OK) fprintf(stderr, "\n  %s\n", pgd_last_error());
    CU_ASSERT_EQUAL_FATAL(st, PGD_OK);
    CU_ASSERT_EQUAL(res.summary.completed, 10);
    CU_ASSERT_EQUAL_FATAL(res.stats.preemptions, 0);
    char dir[] = "/tmp/pgd_optimes_XXXXXX", path[600];
    PGD_ASSERT(mkdtemp(dir));
    CU_ASSERT_EQUAL_FATAL(pgd_run_write_outputs(rc, &res, dir), PGD_OK);
    snprintf(path, sizeof path, "%s/op_times.csv", dir);
    op_row rows[64];
    int n = read_op_times(path, rows, 64);
    CU_ASSERT_FATAL(n > 4);

    /* steps with a batch, from the timeline (one sample per step) */
    int64_t batch_steps = 0;
    for (int64_t i = 0; i < pgd_metrics_num_samples(res.metrics); i++)
        batch_steps += pgd_metrics_sample(res.metrics, i)->batch_seqs > 0;
    CU_ASSERT(batch_steps > 0);
    CU_ASSERT_EQUAL(res.stats.forward_steps, batch_steps);
    const op_row *mm = find_row(rows, n, "op", "matmul");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mm);
    /* per layer wqkv and w13 (fused GEMMs), wo, w2; then the classifier */
    CU_ASSERT_EQUAL(mm->calls, batch_steps * (4 * layers + 1));
    const char *every[] = {"upload", "download", "embedding", "rmsnorm", "rope", "silu_mul", "add",
                           "kv_write", "paged_attention", "gather_rows"};
    for (int i = 0; i < 10; i++) CU_ASSERT_PTR_NOT_NULL(find_row(rows, n, "op", every[i]));
    CU_ASSERT_EQUAL(find_row(rows, n, "op", "paged_attention")->calls, batch_steps * layers);

    /* rows: ops first (as the API lists them), then the four step rows */
    CU_ASSERT_EQUAL(n, res.num_op_times + 4);
    double ops = 0, step_sec = 0, step_share = 0;
    for (int i = 0; i < n; i++) {
        const op_row *r = &rows[i];
        CU_ASSERT(isfinite(r->seconds) && r->seconds >= 0);
        CU_ASSERT(isfinite(r->share) && r->share >= 0);
        if (i < res.num_op_times) {
            CU_ASSERT_STRING_EQUAL(r->kind, "op");
            CU_ASSERT_STRING_EQUAL(r->name, res.op_times[i].op);
            CU_ASSERT_EQUAL(r->calls, res.op_times[i].calls);
            CU_ASSERT(r->calls > 0);
            ops += res.op_times[i].seconds;
        } else {
            static const char *steps[] = {"schedule", "forward", "logits", "idle"};
            CU_ASSERT_STRING_EQUAL(r->kind, "step");
            CU_ASSERT_STRING_EQUAL(r->name, steps[i - res.num_op_times]);
            step_sec += r->seconds;
            step_share += r->share;
        }
    }
    CU_ASSERT_EQUAL(find_row(rows, n, "step", "forward")->calls, batch_steps);
    CU_ASSERT_EQUAL(find_row(rows, n, "step", "schedule")->calls, res.stats.steps);
    CU_ASSERT_EQUAL(find_row(rows, n, "step", "idle")->calls, -1);
    CU_ASSERT(res.run_time > 0);
    CU_ASSERT_DOUBLE_EQUAL(step_share, 1.0, 1e-6);
    CU_ASSERT(fabs(step_sec - res.run_time) <= 1e-6 * res.run_time);
    const pgd_engine_stats *s = &res.stats;
    CU_ASSERT(s->forward_seconds > 0);
    if (!strcmp(backend, "sim")) {
        /* The virtual clock moves only inside backend ops (and the runner's
         * idle sleeps, outside steps); every op of a step runs in its schedule
         * phase (copies/swaps) or forward phase, none while handling logits.
         * So the ops' seconds sum to schedule + forward, and logits is 0. */
        double phases = s->schedule_seconds + s->forward_seconds;
        CU_ASSERT(fabs(ops - phases) <= 1e-9 * phases);
        CU_ASSERT_EQUAL(s->logits_seconds, 0.0);
        /* no swaps or copies in this run: scheduling took no virtual time */
        CU_ASSERT_EQUAL(s->schedule_seconds, 0.0);
    } else {
        /* real clock: the op intervals are disjoint and lie inside the phases */
        CU_ASSERT(ops <= s->schedule_seconds + s->forward_seconds + 1e-9);
    }
    fprintf(stderr, "[%s: %lld forward steps, matmul %.6f s, forward %.6f s of %.6f s] ", backend,
            (long long)batch_steps, mm->seconds, s->forward_seconds, res.run_time);
    pgd_run_result_free(&res);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
    pgd_experiment_destroy(e);
}

static void test_op_times_cpu(void) { op_times_run("cpu"); }
static void test_op_times_sim(void) { op_times_run("sim"); }

/* Swaps on the sim: the scheduling phase charges exactly the swap
 * transfers' (upload/download) virtual seconds, and the ops still sum to
 * schedule + forward. */
static void test_op_times_sim_swaps(void) {
    char ini[1024];
    snprintf(ini, sizeof ini,
             "[experiment]\nname = optimes\nseed = 9\n[model]\npath = %s\nbackend = sim\n"
             "[engine]\nblock_size = 8\nnum_blocks = 24\nswap_blocks = 256\npreemption = swap\n"
             "max_num_batched_tokens = 512\n"
             "[workload]\nnum_requests = 16\nrate = inf\ninput_len = uniform\ninput_min = 8\ninput_max = 40\n"
             "output_len = uniform\noutput_min = 20\noutput_max = 60\n",
             pgd_test_data("models/stories260K/stories260K.bin"));
    pgd_experiment *e = NULL;
    if (pgd_experiment_load_string(ini, "optimes.ini", &e) != PGD_OK) fprintf(stderr, "\n  %s\n", pgd_last_error());
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    pgd_run_result res;
    pgd_status st = pgd_run_execute(pgd_experiment_run(e, 0), NULL, &res);
    if (st != PGD_OK) fprintf(stderr, "\n  %s\n", pgd_last_error());
    CU_ASSERT_EQUAL_FATAL(st, PGD_OK);
    CU_ASSERT_EQUAL(res.summary.completed, 16);
    CU_ASSERT(res.stats.preemptions > 0);
    const pgd_engine_stats *s = &res.stats;
    double ops = 0;
    for (int i = 0; i < res.num_op_times; i++) ops += res.op_times[i].seconds;
    CU_ASSERT(s->schedule_seconds > 0); /* the swaps */
    CU_ASSERT(fabs(ops - (s->schedule_seconds + s->forward_seconds)) <= 1e-9 * ops);
    CU_ASSERT_EQUAL(s->logits_seconds, 0.0);
    pgd_run_result_free(&res);
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
    {"op_times.csv: cpu run of stories260K", test_op_times_cpu},
    {"op_times.csv: sim run of stories260K, ops sum to schedule + forward", test_op_times_sim},
    {"op times on the sim with swaps: schedule holds the swaps", test_op_times_sim_swaps},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "runner", .pTests = tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
