/* test_cluster_sessions.c - multi-turn workloads and the decision trace
 * through a cluster ([cluster] replicas > 1; runner_cluster.c driving
 * runner/sessions.c's loop, runner/cluster_trace.c):
 *  - token-exact: greedy conversations on stories260K through 2 replicas
 *    (round-robin, prefix-aware; worker threads) and a 1 prefill + 1 decode
 *    split give every turn the tokens one engine gives it (fingerprint,
 *    each turn's prompt and output lengths); each follow-up arrives think
 *    time after its previous turn finished; prefix-aware finds every
 *    history token one engine finds; per-turn and per-replica figures;
 *  - the sim: 4 replicas, follow-ups at exactly finish + think time on the
 *    cluster's timeline, deterministic, prefix-aware's hit rate above
 *    round-robin's;
 *  - trace_steps: one steps.jsonl, each line the replica's scheduler line
 *    with "replica" first and cluster ids (round-robin's split, every
 *    request admitted; P/D: the prefill replica prefills and the decode
 *    replica decodes each request under the same id); refused over MPI. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda/config.h"
#include "pagoda/metrics.h"
#include "pagoda/runner.h"
#include "test_util.h"

#define MODEL "models/stories260K/stories260K.bin"
#define TOKENIZER "models/stories260K/tok512.bin"

enum { NCONV = 6, TURNS = 3 };
#define THINK 0.01

static const char *MT_INI = "[experiment]\nname = mt\nseed = 3\n%s[model]\npath = %s\ntokenizer = %s\nthreads = 2\n"
                            "[sampling]\ntemperature = 0\n[engine]\nprefix_caching = on\n"
                            "[workload]\nnum_requests = %d\nturns = %d\nthink_time = %g\nrate = 50\n"
                            "input_len = uniform\ninput_min = 4\ninput_max = 30\n"
                            "output_len = uniform\noutput_min = 4\noutput_max = 30\n%s";

static pgd_experiment *load_mt(const char *experiment, const char *cluster) {
    char ini[4096], model[1024];
    snprintf(model, sizeof model, "%s", pgd_test_data(MODEL));
    snprintf(ini, sizeof ini, MT_INI, experiment, model, pgd_test_data(TOKENIZER), NCONV, TURNS, THINK, cluster);
    pgd_experiment *e = NULL;
    if (pgd_experiment_load_string(ini, "mt.ini", &e) != PGD_OK) fprintf(stderr, "\n  %s\n", pgd_last_error());
    return e;
}

static int run(const pgd_run_config *rc, pgd_run_result *res) {
    pgd_status st = pgd_run_execute(rc, NULL, res);
    if (st != PGD_OK) fprintf(stderr, "\n  %s: %s\n", pgd_run_name(rc), pgd_last_error());
    return st == PGD_OK;
}

/* One turn's figures, by (conversation, turn). */
typedef struct turn_rec {
    int seen, prompt, output, cached;
    double arrival, finish;
} turn_rec;

static void turns_of(const pgd_run_result *res, turn_rec *t) {
    memset(t, 0, sizeof *t * NCONV * TURNS);
    for (int64_t i = 0; i < pgd_metrics_num_requests(res->metrics); i++) {
        const pgd_request_record *r = pgd_metrics_request(res->metrics, i);
        CU_ASSERT_EQUAL_FATAL(r->num_turns, TURNS);
        CU_ASSERT_FATAL(r->session >= 0 && r->session < NCONV && r->turn >= 0 && r->turn < TURNS);
        turn_rec *x = &t[r->session * TURNS + r->turn];
        CU_ASSERT_EQUAL(x->seen, 0); /* recorded once */
        *x = (turn_rec){.seen = 1,
                        .prompt = r->prompt_tokens,
                        .output = r->output_tokens,
                        .cached = r->cached_tokens,
                        .arrival = r->arrival,
                        .finish = r->finish};
    }
}

/* Each follow-up arrives think time after its previous turn finished (exact on the sim; on the
 * real clock a turn that finished on another replica than the one it is routed to carries the
 * error of the replicas' measured clock offsets, well under a microsecond, and a late release
 * by at most the loop's pass). */
static void check_arrivals(const turn_rec *t, double early, double late) {
    for (int c = 0; c < NCONV; c++)
        for (int k = 1; k < TURNS; k++) {
            const turn_rec *p = &t[c * TURNS + k - 1], *x = &t[c * TURNS + k];
            CU_ASSERT(x->arrival >= p->finish + THINK - early);
            CU_ASSERT(x->arrival <= p->finish + THINK + late);
        }
}

static int cached_later_turns(const turn_rec *t) {
    int n = 0;
    for (int i = 0; i < NCONV * TURNS; i++) n += i % TURNS ? t[i].cached : 0;
    return n;
}

/* The per-replica "turns" tables add up to the cluster's. */
static void check_per_replica_turns(const pgd_run_result *res) {
    json_t *all = pgd_metrics_turns_json(res->metrics);
    CU_ASSERT_EQUAL_FATAL(json_array_size(all), (size_t)TURNS);
    json_t *pr = json_object_get(res->cluster, "per_replica");
    for (int k = 0; k < TURNS; k++) {
        json_int_t sum = 0;
        for (size_t r = 0; r < json_array_size(pr); r++) {
            json_t *tt = json_object_get(json_array_get(pr, r), "turns");
            for (size_t j = 0; j < json_array_size(tt); j++)
                if (json_integer_value(json_object_get(json_array_get(tt, j), "turn")) == k)
                    sum += json_integer_value(json_object_get(json_array_get(tt, j), "completed"));
        }
        CU_ASSERT_EQUAL(sum, NCONV);
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_array_get(all, (size_t)k), "completed")), NCONV);
    }
    json_decref(all);
}

static void test_tokens_through_replicas(void) {
    pgd_experiment *one = load_mt("", "");
    pgd_experiment *two = load_mt("", "[cluster]\nreplicas = 2\n[sweep]\ncluster.router = round-robin, prefix-aware\n");
    pgd_experiment *pd = load_mt("", "[cluster]\nprefill = 1\ndecode = 1\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(one);
    CU_ASSERT_PTR_NOT_NULL_FATAL(two);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pd);
    CU_ASSERT_EQUAL_FATAL(pgd_experiment_num_runs(two), 2);
    pgd_run_result r1;
    CU_ASSERT_FATAL(run(pgd_experiment_run(one, 0), &r1));
    CU_ASSERT_EQUAL(r1.summary.completed, NCONV * TURNS);
    turn_rec want[NCONV * TURNS], got[NCONV * TURNS];
    turns_of(&r1, want);
    check_arrivals(want, 1e-9, 1.0);
    int cached_one = cached_later_turns(want), cached_rr = -1;
    CU_ASSERT(cached_one > 0); /* the history is served from the cache */
    const pgd_run_config *runs[3] = {pgd_experiment_run(two, 0), pgd_experiment_run(two, 1), pgd_experiment_run(pd, 0)};
    for (int i = 0; i < 3; i++) {
        pgd_run_result r;
        CU_ASSERT_FATAL(run(runs[i], &r));
        CU_ASSERT_EQUAL(r.replicas, 2);
        CU_ASSERT_EQUAL(r.summary.completed, NCONV * TURNS);
        CU_ASSERT_EQUAL(r.summary.failed, 0);
        CU_ASSERT_EQUAL(r.num_requests, NCONV * TURNS);
        if (r.token_fingerprint != r1.token_fingerprint)
            fprintf(stderr, "\n  %s: tokens differ from one engine's\n", pgd_run_name(runs[i]));
        CU_ASSERT_EQUAL(r.token_fingerprint, r1.token_fingerprint);
        turns_of(&r, got);
        for (int k = 0; k < NCONV * TURNS; k++) {
            CU_ASSERT(got[k].seen);
            CU_ASSERT_EQUAL(got[k].prompt, want[k].prompt); /* the same history: the same earlier outputs */
            CU_ASSERT_EQUAL(got[k].output, want[k].output);
        }
        check_arrivals(got, 1e-6, 1.0);
        check_per_replica_turns(&r);
        json_t *pr = json_object_get(r.cluster, "per_replica");
        json_int_t routed = 0;
        for (size_t k = 0; k < json_array_size(pr); k++)
            routed += json_integer_value(json_object_get(json_array_get(pr, k), "routed"));
        CU_ASSERT_EQUAL(routed, NCONV * TURNS);
        const char *router = pgd_run_get_str(runs[i], "cluster", "router");
        if (i == 0) cached_rr = cached_later_turns(got);
        if (i == 1) { /* prefix-aware: each follow-up goes where its history is cached */
            CU_ASSERT_STRING_EQUAL(router, "prefix-aware");
            CU_ASSERT_EQUAL(cached_later_turns(got), cached_one);
            CU_ASSERT(cached_later_turns(got) >= cached_rr);
        }
        pgd_run_result_free(&r);
    }
    pgd_run_result_free(&r1);
    pgd_experiment_destroy(one);
    pgd_experiment_destroy(two);
    pgd_experiment_destroy(pd);
}

static const char *SIM_INI = "[experiment]\nname = mts\nseed = 2\n[model]\npath = random:stories15M\nbackend = sim\n"
                             "[engine]\nprefix_caching = on\nnum_blocks = 256\n"
                             "[workload]\nnum_requests = %d\nturns = %d\nthink_time = %g\nrate = 40\n"
                             "input_len = uniform\ninput_min = 20\ninput_max = 80\n"
                             "output_len = uniform\noutput_min = 10\noutput_max = 60\n"
                             "[cluster]\nreplicas = 4\nrouter = %s\n";

static void sim_run(const char *router, pgd_run_result *res, turn_rec *t) {
    char ini[2048];
    snprintf(ini, sizeof ini, SIM_INI, NCONV, TURNS, THINK, router);
    pgd_experiment *e = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_experiment_load_string(ini, "mts.ini", &e), PGD_OK);
    CU_ASSERT_FATAL(run(pgd_experiment_run(e, 0), res));
    pgd_experiment_destroy(e);
    CU_ASSERT_EQUAL(res->summary.completed, NCONV * TURNS);
    turns_of(res, t);
    check_arrivals(t, 1e-12, 1e-12); /* exactly finish + think time on the cluster's timeline */
    check_per_replica_turns(res);
}

static void test_sim(void) {
    pgd_run_result pa, pa2, rr;
    turn_rec tpa[NCONV * TURNS], tpa2[NCONV * TURNS], trr[NCONV * TURNS];
    sim_run("prefix-aware", &pa, tpa);
    sim_run("prefix-aware", &pa2, tpa2);
    sim_run("round-robin", &rr, trr);
    CU_ASSERT_EQUAL(pa.summary.ttft.mean, pa2.summary.ttft.mean); /* deterministic */
    CU_ASSERT_EQUAL(pa.summary.duration, pa2.summary.duration);
    CU_ASSERT_EQUAL(memcmp(tpa, tpa2, sizeof tpa), 0);
    CU_ASSERT(pa.summary.prefix_hit_rate > rr.summary.prefix_hit_rate);
    CU_ASSERT(cached_later_turns(tpa) > cached_later_turns(trr));
    pgd_run_result_free(&pa);
    pgd_run_result_free(&pa2);
    pgd_run_result_free(&rr);
}

/* ---- trace_steps ---- */

static const char *TR_INI = "[experiment]\nname = tr\nseed = 3\ntrace_steps = on\n[model]\npath = %s\ntokenizer = %s\n"
                            "threads = 2\n[engine]\nprefix_caching = on\nnum_blocks = 24\nmax_num_seqs = 6\n"
                            "[workload]\nnum_requests = %d\ninput_len = uniform\ninput_min = 4\ninput_max = 60\n"
                            "output_len = uniform\noutput_min = 20\noutput_max = 80\n%s";

enum { NTR = 24 };

typedef struct trace_seen {
    int lines[2], admitted[NTR], wrong_replica, preempted;
    int prefill_on[NTR];  /* the replica of its first prefill line (-1 = none) */
    int decode_mask[NTR]; /* bit r: decoded on replica r */
} trace_seen;

/* Parse steps.jsonl: every line {"replica":R,"step":N,...}, steps rising per replica, ids in 0..NTR-1. */
static void parse_trace(const pgd_run_result *res, int rr_split, trace_seen *s) {
    memset(s, 0, sizeof *s);
    for (int i = 0; i < NTR; i++) s->prefill_on[i] = -1;
    CU_ASSERT_PTR_NOT_NULL_FATAL(res->steps_trace);
    int64_t last_step[2] = {0, 0};
    char *text = strndup(res->steps_trace, res->steps_trace_len), *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        CU_ASSERT_EQUAL(strncmp(l, "{\"replica\":", 11), 0);
        json_error_t je;
        json_t *o = json_loads(l, 0, &je);
        CU_ASSERT_PTR_NOT_NULL_FATAL(o);
        int r = (int)json_integer_value(json_object_get(o, "replica"));
        CU_ASSERT_FATAL(r == 0 || r == 1);
        int64_t step = json_integer_value(json_object_get(o, "step"));
        CU_ASSERT(step > last_step[r]);
        last_step[r] = step;
        s->lines[r]++;
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(o, "batch"), i, v) {
            int64_t id = json_integer_value(json_array_get(v, 0));
            CU_ASSERT_FATAL(id >= 0 && id < NTR);
            if (rr_split && id % 2 != r) s->wrong_replica++;
            const char *kind = json_string_value(json_array_get(v, 4));
            if (!strcmp(kind, "prefill") && s->prefill_on[id] < 0) s->prefill_on[id] = r;
            if (!strcmp(kind, "decode")) s->decode_mask[id] |= 1 << r;
        }
        json_array_foreach(json_object_get(o, "admitted"), i, v) {
            int64_t id = json_integer_value(v);
            CU_ASSERT_FATAL(id >= 0 && id < NTR);
            s->admitted[id]++;
        }
        json_array_foreach(json_object_get(o, "preempted"), i, v) {
            s->preempted++;
            const char *why = json_string_value(json_array_get(v, 2));
            long long victim_of = -1;
            if (why && sscanf(why, "victim: request %lld", &victim_of) == 1)
                CU_ASSERT(victim_of >= 0 && victim_of < NTR && (!rr_split || victim_of % 2 == r));
        }
        json_decref(o);
    }
    free(text);
}

static pgd_experiment *trace_run(const char *cluster, pgd_run_result *res) {
    char ini[4096], model[1024];
    snprintf(model, sizeof model, "%s", pgd_test_data(MODEL));
    snprintf(ini, sizeof ini, TR_INI, model, pgd_test_data(TOKENIZER), NTR, cluster);
    pgd_experiment *e = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_experiment_load_string(ini, "tr.ini", &e), PGD_OK);
    CU_ASSERT_FATAL(run(pgd_experiment_run(e, 0), res));
    CU_ASSERT_EQUAL(res->summary.completed, NTR);
    return e;
}

static void test_trace_steps(void) {
    pgd_run_result res;
    trace_seen s;
    /* round-robin: cluster id i (workload order) on replica i % 2 */
    pgd_experiment *e = trace_run("[cluster]\nreplicas = 2\nrouter = round-robin\n", &res);
    parse_trace(&res, 1, &s);
    CU_ASSERT(s.lines[0] > 0 && s.lines[1] > 0);
    CU_ASSERT_EQUAL(s.wrong_replica, 0);
    CU_ASSERT(s.preempted > 0); /* 24 blocks per replica: the victims' reasons are mapped too */
    for (int i = 0; i < NTR; i++) {
        CU_ASSERT(s.admitted[i] >= 1);
        CU_ASSERT_EQUAL(s.prefill_on[i], i % 2);
    }
    /* written as steps.jsonl */
    char dir[] = "/tmp/pgd_cluster_traceXXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    CU_ASSERT_EQUAL(pgd_run_write_outputs(pgd_experiment_run(e, 0), &res, dir), PGD_OK);
    char path[256];
    snprintf(path, sizeof path, "%s/steps.jsonl", dir);
    size_t n = 0;
    char *file = pgd_test_read_file(path, &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(file);
    CU_ASSERT_EQUAL(n, res.steps_trace_len);
    CU_ASSERT_EQUAL(memcmp(file, res.steps_trace, n), 0);
    free(file);
    /* pagoda explain follows request 3 on its replica (1) */
    char args[400], *out = NULL;
    snprintf(args, sizeof args, "explain %s --request 3", dir);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "\n  on replica 1 (its steps):\n  step 1           admitted\n"));
    CU_ASSERT_PTR_NULL(out ? strstr(out, "on replica 0") : NULL);
    free(out);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
    pgd_experiment_destroy(e);
    pgd_run_result_free(&res);
    /* P/D: replica 0 prefills, replica 1 decodes, each request under its one cluster id */
    e = trace_run("[cluster]\nprefill = 1\ndecode = 1\n", &res);
    parse_trace(&res, 0, &s);
    for (int i = 0; i < NTR; i++) {
        CU_ASSERT_EQUAL(s.prefill_on[i], 0);
        CU_ASSERT_EQUAL(s.decode_mask[i], 2); /* (a preempted one may prefill again on replica 1) */
    }
    /* pagoda explain tells the hand-off */
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(strcpy(dir, "/tmp/pgd_cluster_traceXXXXXX")));
    CU_ASSERT_EQUAL(pgd_run_write_outputs(pgd_experiment_run(e, 0), &res, dir), PGD_OK);
    snprintf(args, sizeof args, "explain %s --request 5", dir);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &out, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "on replica 0 (its steps):\n  step 1           admitted\n"));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "\n  on replica 1 now (its steps):\n"));
    free(out);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
    pgd_run_result_free(&res);
    pgd_experiment_destroy(e);
}

/* Multi-turn conversations with the trace on, on the sim: a line per step of each replica. */
static void test_trace_sim_sessions(void) {
    char ini[2048];
    snprintf(ini, sizeof ini, SIM_INI, NCONV, TURNS, THINK, "least-outstanding");
    strcat(ini, "[experiment]\ntrace_steps = on\n");
    pgd_experiment *e = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_experiment_load_string(ini, "mts.ini", &e), PGD_OK);
    pgd_run_result res;
    CU_ASSERT_FATAL(run(pgd_experiment_run(e, 0), &res));
    CU_ASSERT_EQUAL(res.summary.completed, NCONV * TURNS);
    CU_ASSERT_PTR_NOT_NULL_FATAL(res.steps_trace);
    int64_t lines = 0;
    for (size_t i = 0; i < res.steps_trace_len; i++) lines += res.steps_trace[i] == '\n';
    CU_ASSERT(lines > 0);
    CU_ASSERT(lines <= res.stats.steps); /* at most one per replica step (idle-free steps write none) */
    pgd_run_result_free(&res);
    pgd_experiment_destroy(e);
}

static void test_trace_refused_over_mpi(void) {
    pgd_experiment *e = load_mt("trace_steps = on\n", "[cluster]\nreplicas = 2\ncomm = mpi\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    pgd_run_result res;
    CU_ASSERT_EQUAL(pgd_run_execute(pgd_experiment_run(e, 0), NULL, &res), PGD_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "trace_steps with [cluster] comm = mpi"));
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "[experiment]"));
    pgd_experiment_destroy(e);
}

static CU_TestInfo tests[] = {
    {"multi-turn through 2 replicas and P/D: one engine's tokens", test_tokens_through_replicas},
    {"multi-turn on the sim: finish + think time, prefix-aware hits", test_sim},
    {"trace_steps: one file, replica member, cluster ids", test_trace_steps},
    {"trace_steps with multi-turn on the sim", test_trace_sim_sessions},
    {"trace_steps over MPI is refused", test_trace_refused_over_mpi},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "cluster_sessions", .pTests = tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
