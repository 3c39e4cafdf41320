/* test_sched_trace.c - the scheduler's decision trace end to end, and
 * client mixes in runs:
 *  - a CPU run and the same run on the sim (stories260K shape, every
 *    request at t = 0, a KV cache small enough to preempt) write identical
 *    decision traces (steps.jsonl), for recompute and swap preemption,
 *    several policies, chunked prefill and prefix caching;
 *  - `pagoda explain` on a preempted request names its preemptions and
 *    their reasons, and rejects a missing trace and a bad id with a message
 *    a person can act on;
 *  - a two-client mix on the sim: per-client figures and Jain's index in
 *    the summary and summary.json, each client's requests as its rate
 *    says; bad client lists fail naming the key. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pagoda/config.h"
#include "pagoda/runner.h"
#include "pagoda/workload.h"
#include "test_util.h"

static const char *BASE =
    "[experiment]\nname = tr\nseed = 11\ntrace_steps = on\n[model]\npath = random:stories260K\nthreads = 1\n"
    "[workload]\nnum_requests = 24\nrate = inf\ninput_len = uniform\ninput_min = 8\ninput_max = 64\n"
    "output_len = uniform\noutput_min = 4\noutput_max = 96\n"
    "[engine]\nblock_size = 8\nnum_blocks = 40\nmax_num_seqs = 16\n";

static pgd_experiment *load(const char *extra) {
    char text[4096];
    snprintf(text, sizeof text, "%s%s", BASE, extra);
    pgd_experiment *e = NULL;
    if (pgd_experiment_load_string(text, "tr.ini", &e) != PGD_OK) fprintf(stderr, "\n  %s\n", pgd_last_error());
    return e;
}

/* Run `extra` on the cpu and on the sim; the traces must be equal. Returns
 * the cpu run's trace (malloc'd). */
static char *same_decisions(const char *extra) {
    char *trace[2] = {NULL, NULL};
    for (int b = 0; b < 2; b++) {
        pgd_experiment *e = NULL;
        char full[4096];
        snprintf(full, sizeof full, "%s", BASE);
        char *m = strstr(full, "threads = 1\n");
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        snprintf(m, sizeof full - (size_t)(m - full), "threads = 1\nbackend = %s\n%s%s", b ? "sim" : "cpu",
                 strstr(BASE, "[workload]"), extra);
        if (pgd_experiment_load_string(full, "tr.ini", &e) != PGD_OK) fprintf(stderr, "\n  %s\n", pgd_last_error());
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        pgd_run_result r;
        CU_ASSERT_EQUAL_FATAL(pgd_run_execute(pgd_experiment_run(e, 0), NULL, &r), PGD_OK);
        CU_ASSERT_EQUAL(r.summary.completed, 24);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r.steps_trace);
        trace[b] = strdup(r.steps_trace);
        pgd_run_result_free(&r);
        pgd_experiment_destroy(e);
    }
    int same = !strcmp(trace[0], trace[1]);
    if (!same) {
        size_t i = 0;
        while (trace[0][i] && trace[0][i] == trace[1][i]) i++;
        fprintf(stderr, "\n[%s] traces differ at byte %zu:\ncpu: %.200s\nsim: %.200s\n", extra, i,
                trace[0] + (i > 80 ? i - 80 : 0), trace[1] + (i > 80 ? i - 80 : 0));
    }
    CU_ASSERT(same);
    free(trace[1]);
    return trace[0];
}

static void test_cpu_and_sim_same_trace(void) {
    static const char *const cases[] = {
        "policy = fcfs\n",
        "policy = fcfs\npreemption = swap\n",
        "policy = sjf\nkv_manager = orca-oracle\n",
        "policy = sarathi\nchunked_prefill = on\nmax_num_batched_tokens = 64\n",
        "policy = cache-aware\nprefix_caching = on\n",
        "policy = vtc\npreemption = swap\nchunked_prefill = on\n",
        "policy = mlfq\n",
    };
    int preempted = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *t = same_decisions(cases[i]);
        if (t && strstr(t, "\"preempted\":")) preempted++;
        free(t);
    }
    CU_ASSERT(preempted >= 5); /* the cache is small enough to preempt */
}

static void test_explain(void) {
    pgd_experiment *e = load("policy = fcfs\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    pgd_run_result r;
    CU_ASSERT_EQUAL_FATAL(pgd_run_execute(pgd_experiment_run(e, 0), NULL, &r), PGD_OK);
    char dir[] = "/tmp/pgd_explain_XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    CU_ASSERT_EQUAL_FATAL(pgd_run_write_outputs(pgd_experiment_run(e, 0), &r, dir), PGD_OK);
    const char *pre = strstr(r.steps_trace, "\"preempted\":[[");
    CU_ASSERT_PTR_NOT_NULL_FATAL(pre);
    long long id = atoll(pre + strlen("\"preempted\":[["));
    char args[256], *out = NULL, *err = NULL;
    snprintf(args, sizeof args, "explain %s --request %lld", dir, id);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "PREEMPTED (recompute): victim: request "));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "admitted again"));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "prefill (recomputing)"));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "decode step"));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "summary: admitted "));
    if (getenv("PGD_SHOW_EXPLAIN")) fprintf(stderr, "\n%s", out);
    free(out);
    free(err);
    snprintf(args, sizeof args, "explain %s --request 9999", dir);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, NULL, &err), 1);
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "request 9999 does not appear"));
    free(err);
    snprintf(args, sizeof args, "explain %s --request x1", dir);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, NULL, &err), 2);
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "want a request id"));
    free(err);
    CU_ASSERT_EQUAL(pgd_test_run_cli("explain /nonexistent_pgd_dir --request 1", NULL, &err), 1);
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "trace_steps = on"));
    free(err);
    pgd_run_result_free(&r);
    pgd_experiment_destroy(e);
    char path[512];
    snprintf(path, sizeof path, "rm -rf %s", dir);
    CU_ASSERT_EQUAL(system(path), 0);
}

static void test_client_mix(void) {
    const char *text = "[experiment]\nname = mix\nseed = 3\n[model]\npath = random:stories260K\nbackend = sim\n"
                       "[engine]\nblock_size = 8\nnum_blocks = 200\npolicy = vtc\n"
                       "[workload]\nnum_requests = 200\ninput_len = uniform\ninput_min = 8\ninput_max = 64\n"
                       "output_len = uniform\noutput_min = 4\noutput_max = 64\n"
                       "client_rates = 300, 100\nclient_burstiness = 1, 0.2\nclient_classes = 1, 0\n"
                       "[slo]\nclass_ttft = 0.5, 1e-9\n";
    pgd_experiment *e = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_experiment_load_string(text, "mix.ini", &e), PGD_OK);
    pgd_run_result r;
    CU_ASSERT_EQUAL_FATAL(pgd_run_execute(pgd_experiment_run(e, 0), NULL, &r), PGD_OK);
    const pgd_metrics_summary *s = &r.summary;
    CU_ASSERT_EQUAL(s->num_clients, 2);
    CU_ASSERT_EQUAL(s->num_classes, 2);
    CU_ASSERT_EQUAL(s->clients[0].requests + s->clients[1].requests, 200);
    CU_ASSERT_EQUAL(s->classes[1].requests, s->clients[0].requests); /* client 0 is class 1 */
    fprintf(stderr, "[client 0: %lld requests, client 1: %lld; Jain %.3f; attainment %.3f / %.3f] ",
            (long long)s->clients[0].requests, (long long)s->clients[1].requests, s->jain_fairness,
            s->classes[0].slo_attainment, s->classes[1].slo_attainment);
    CU_ASSERT(s->clients[0].requests > 2 * s->clients[1].requests); /* rates 300 : 100 */
    CU_ASSERT(s->jain_fairness > 0.5 && s->jain_fairness <= 1.0);
    CU_ASSERT(s->clients[0].service_rate > 0 && s->clients[1].service_rate > 0);
    CU_ASSERT(s->classes[1].slo_attainment < s->classes[0].slo_attainment); /* a 1 ns TTFT target is never met */
    json_t *j = pgd_metrics_summary_to_json(s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "clients")), 2);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "classes")), 2);
    CU_ASSERT(json_is_real(json_object_get(j, "jain_fairness")));
    CU_ASSERT(json_is_object(json_object_get(json_array_get(json_object_get(j, "clients"), 1), "ttft")));
    json_decref(j);
    /* requests.csv ends each row with its client and SLO class: client 0's rows are class 1, client 1's class 0 */
    char *path = pgd_test_write_temp("", 0, ".csv");
    CU_ASSERT_PTR_NOT_NULL_FATAL(path);
    CU_ASSERT_EQUAL(pgd_metrics_write_requests_csv(r.metrics, path), PGD_OK);
    char *csv = pgd_test_read_file(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(csv);
    CU_ASSERT_PTR_NOT_NULL(strstr(csv, ",prefix_hit_rate,client,slo_class\n"));
    long long per_client[2] = {0, 0}, other = 0;
    char *save = NULL;
    for (char *line = strtok_r(strchr(csv, '\n') + 1, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *c = strrchr(line, ',');
        *c = 0;
        const char *k = strrchr(line, ',') + 1;
        if (!strcmp(k, "0") && !strcmp(c + 1, "1")) per_client[0]++;
        else if (!strcmp(k, "1") && !strcmp(c + 1, "0")) per_client[1]++;
        else other++;
    }
    CU_ASSERT_EQUAL(per_client[0], s->clients[0].requests);
    CU_ASSERT_EQUAL(per_client[1], s->clients[1].requests);
    CU_ASSERT_EQUAL(other, 0);
    free(csv);
    remove(path);
    free(path);
    pgd_run_result_free(&r);
    pgd_experiment_destroy(e);
    /* bad lists fail naming the key */
    static const char *const bad[][2] = {
        {"client_rates = 1, x\n", "[workload] client_rates = '1, x': 'x' is not a number"},
        {"client_rates = 1, 2\nclient_burstiness = 1\n", "client_burstiness = '1' has 1 values"},
        {"client_rates = 1, 2\nclient_classes = 0, 1.5\n", "class 1.5 is not an integer"},
        {"client_rates = 1, 0\n", "client 1's rate 0 must be > 0"},
        {"client_rates = 1\narrival = all-at-once\n", "arrival 'all-at-once' conflicts"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char t[1024];
        snprintf(t, sizeof t, "[model]\npath = random:stories260K\nbackend = sim\n[workload]\nnum_requests = 4\n%s",
                 bad[i][0]);
        CU_ASSERT_EQUAL_FATAL(pgd_experiment_load_string(t, "bad.ini", &e), PGD_OK);
        pgd_status st = pgd_run_execute(pgd_experiment_run(e, 0), NULL, &r);
        CU_ASSERT_EQUAL(st, PGD_ERR_INVALID);
        if (!strstr(pgd_last_error(), bad[i][1])) fprintf(stderr, "\n  got: %s\n", pgd_last_error());
        CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), bad[i][1]));
        CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "[workload]"));
        if (st == PGD_OK) pgd_run_result_free(&r);
        pgd_experiment_destroy(e);
    }
}

/* Clients from a trace's columns; a client mix is deterministic and gives
 * each client about its share of the rates. */
static void test_workload_clients(void) {
    const char *csv = "TIMESTAMP,ContextTokens,GeneratedTokens,client,slo_class\n"
                      "2023-11-16 18:15:46.0,10,5,0,1\n2023-11-16 18:15:47.0,12,5,3,0\n"
                      "2023-11-16 18:15:48.0,14,5,,\n";
    char *path = pgd_test_write_temp(csv, strlen(csv), ".csv");
    pgd_workload_config c = {.source = PGD_WL_TRACE, .path = path, .num_classes = 2,
                             .class_ttft_slo = {0.5, 4}};
    pgd_workload *w = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_workload_create(&c, &w), PGD_OK);
    CU_ASSERT_EQUAL(pgd_workload_get(w, 0)->client, 0);
    CU_ASSERT_EQUAL(pgd_workload_get(w, 0)->slo_class, 1);
    CU_ASSERT_EQUAL(pgd_workload_get(w, 0)->ttft_slo, 4);
    CU_ASSERT_EQUAL(pgd_workload_get(w, 1)->client, 3);
    CU_ASSERT_EQUAL(pgd_workload_get(w, 1)->ttft_slo, 0.5);
    CU_ASSERT_EQUAL(pgd_workload_get(w, 2)->client, 0); /* empty = 0 */
    pgd_request_params p = {0};
    pgd_workload_fill_params(w, 1, 0, &p);
    CU_ASSERT(p.client == 3 && p.slo_class == 0 && p.ttft_slo == 0.5);
    pgd_workload_destroy(w);
    const char *bad = "TIMESTAMP,ContextTokens,GeneratedTokens,client\n2023-11-16 18:15:46.0,10,5,16\n";
    FILE *f = fopen(path, "w");
    fputs(bad, f);
    fclose(f);
    CU_ASSERT_EQUAL(pgd_workload_create(&c, &w), PGD_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), ":2: client 16 is out of range (0..15)"));
    unlink(path);
    free(path);
    /* a client mix: 3 : 1 rates, deterministic */
    pgd_workload_config m = {.num_requests = 400, .seed = 5, .num_clients = 2, .client_rate = {3, 1},
                             .client_burstiness = {0.2, 1}, .client_class = {1, 0}};
    pgd_workload *a = NULL, *b = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_workload_create(&m, &a), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_workload_create(&m, &b), PGD_OK);
    CU_ASSERT_EQUAL(pgd_workload_fingerprint(a), pgd_workload_fingerprint(b));
    int n[2] = {0, 0};
    double last = 0;
    for (int i = 0; i < pgd_workload_count(a); i++) {
        const pgd_workload_request *r = pgd_workload_get(a, i);
        n[r->client]++;
        CU_ASSERT(r->arrival >= last);
        CU_ASSERT_EQUAL(r->slo_class, r->client ? 0 : 1);
        last = r->arrival;
    }
    fprintf(stderr, "[client mix 3:1 -> %d : %d requests over %.1f s] ", n[0], n[1], last);
    CU_ASSERT(n[0] > 2 * n[1] && n[0] < 4 * n[1]);
    pgd_workload_destroy(a);
    pgd_workload_destroy(b);
}

static CU_TestInfo tests[] = {
    {"workload_clients_from_traces_and_mixes", test_workload_clients},
    {"cpu_and_sim_write_the_same_decision_trace", test_cpu_and_sim_same_trace},
    {"explain_a_preempted_request", test_explain},
    {"client_mix_per_client_metrics", test_client_mix},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "sched_trace", .pTests = tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
