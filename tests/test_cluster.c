/* test_cluster.c - replicas behind a router (cluster.h):
 *  - token-exact: the stories260K goldens come out identical through 2 and
 *    4 CPU replicas (a worker thread each, and stepped serially) with every
 *    router, among fillers arriving over time;
 *  - routing rules: round-robin's turn, least-outstanding's tie rule,
 *    prefix-aware sends a prompt to the replica holding its prefix and
 *    falls back to the least loaded one;
 *  - the sim's discrete-event loop: 2 replicas finish the same load in
 *    less virtual time than 1, deterministically;
 *  - `pagoda run`'s [cluster]: replicas = 1 is the one-engine run exactly,
 *    2 and 4 replicas give the same token fingerprint, summary.json's
 *    per-replica section and runs.csv's cluster columns;
 *  - bad configs and a failing replica: errors naming the key or replica,
 *    never a hang. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda/cluster.h"
#include "pagoda/config.h"
#include "pagoda/runner.h"
#include "test_util.h"

#define MODEL "models/stories260K/stories260K.bin"
#define TOKENIZER "models/stories260K/tok512.bin"

static pgd_golden G[8];
static int NG;

static int suite_init(void) {
    NG = pgd_test_load_goldens(G, 8);
    return NG > 0 ? 0 : -1;
}

static pgd_cluster_config cpu_cfg(int replicas, const char *router, int serial) {
    pgd_cluster_config cc = {.replicas = replicas, .router = router, .serial = serial};
    cc.exec.model = pgd_test_data(MODEL);
    cc.exec.backend.name = "cpu";
    cc.exec.backend.num_threads = 4;
    cc.engine = (pgd_engine_config){
        .block_size = 16, .num_blocks = 64, .max_num_batched_tokens = 512, .max_num_seqs = 8, .prefix_caching = 1};
    return cc;
}

enum { NFILL = 12 };

static pgd_request_params filler(int i, int32_t *buf) {
    int np = 3 + (i * 37) % 40;
    buf[0] = 1;
    for (int k = 1; k < np; k++) buf[k] = 260 + (i * 31 + k * 17) % 240;
    int mt = 4 + (i * 13) % 30;
    return (pgd_request_params){.prompt = buf, .n_prompt = np, .max_tokens = mt, .ignore_eos = 1};
}

/* Goldens (twice each: the second copy can hit the first's prefix) among
 * fillers joining while the cluster steps; every golden must match. */
static void goldens_through(int replicas, const char *router, int serial) {
    pgd_cluster_config cc = cpu_cfg(replicas, router, serial);
    pgd_cluster *c = NULL;
    pgd_status st = pgd_cluster_create(&cc, &c);
    if (st != PGD_OK) fprintf(stderr, "\n  %s\n", pgd_last_error());
    CU_ASSERT_EQUAL_FATAL(st, PGD_OK);
    CU_ASSERT_EQUAL(pgd_cluster_size(c), replicas);
    CU_ASSERT_FALSE(pgd_cluster_is_virtual(c));
    int64_t gid[16];
    int used[8] = {0}, where;
    int32_t buf[64];
    int nf = 0, finished = 0, k0;
    for (; nf < 4; nf++) {
        pgd_request_params p = filler(nf, buf);
        CU_ASSERT_EQUAL_FATAL(pgd_cluster_add_request(c, &p, NULL, &where), PGD_OK);
        used[where]++;
    }
    for (int s = 0; s < 2; s++, finished += k0) CU_ASSERT_EQUAL_FATAL(pgd_cluster_step(c, &k0, NULL), PGD_OK);
    for (int k = 0; k < 2 * NG; k++) {
        const pgd_golden *g = &G[k % NG];
        pgd_request_params p = {.prompt = g->ptoks, .n_prompt = g->np, .max_tokens = g->ng};
        CU_ASSERT_EQUAL_FATAL(pgd_cluster_add_request(c, &p, &gid[k], &where), PGD_OK);
        CU_ASSERT(where >= 0 && where < replicas);
        used[where]++;
        if (k == NG - 1) /* the second copies come after some steps */
            for (int s = 0; s < 3; s++, finished += k0) CU_ASSERT_EQUAL_FATAL(pgd_cluster_step(c, &k0, NULL), PGD_OK);
    }
    while (pgd_cluster_busy(c)) {
        if (nf < NFILL) {
            pgd_request_params p = filler(nf++, buf);
            CU_ASSERT_EQUAL_FATAL(pgd_cluster_add_request(c, &p, NULL, &where), PGD_OK);
            used[where]++;
        }
        int k = 0;
        st = pgd_cluster_step(c, &k, NULL);
        if (st != PGD_OK) fprintf(stderr, "\n  %s\n", pgd_last_error());
        CU_ASSERT_EQUAL_FATAL(st, PGD_OK);
        finished += k;
    }
    CU_ASSERT_EQUAL(finished, nf + 2 * NG);
    for (int k = 0; k < 2 * NG; k++) {
        const pgd_golden *g = &G[k % NG];
        const pgd_request_output *o = NULL;
        CU_ASSERT_EQUAL_FATAL(pgd_cluster_get_output(c, gid[k], &o), PGD_OK);
        CU_ASSERT_EQUAL(o->id, gid[k]);
        int ok = o->finished && o->num_seqs == 1 && o->seqs[0].n_tokens == g->ng &&
                 !memcmp(o->seqs[0].tokens, g->gtoks, sizeof(int32_t) * (size_t)g->ng);
        if (!ok)
            fprintf(stderr, "\n  %d replicas, %s: golden %d differs on replica %d\n", replicas, router, k % NG,
                    pgd_cluster_request_replica(c, gid[k]));
        CU_ASSERT(ok);
        CU_ASSERT(o->first_token >= o->arrival && o->finish >= o->first_token);
    }
    pgd_replica_load load[8];
    pgd_cluster_loads(c, load);
    for (int r = 0; r < replicas; r++) CU_ASSERT_EQUAL(load[r].outstanding, 0);
    if (!strcmp(router, "round-robin"))
        for (int r = 0; r < replicas; r++) CU_ASSERT(used[r] >= (nf + 2 * NG) / replicas);
    pgd_cluster_destroy(c);
}

static void test_goldens_all_routers(void) {
    const int sizes[] = {2, 4};
    for (int si = 0; si < 2; si++)
        for (const char *const *r = pgd_router_names(); *r; r++) goldens_through(sizes[si], *r, 0);
}

static void test_goldens_serial(void) {
    goldens_through(2, "least-outstanding", 1);
    goldens_through(4, "prefix-aware", 1);
}

static void test_registry(void) {
    const char *want[] = {"round-robin", "least-outstanding", "least-kv", "prefix-aware"};
    const char *const *n = pgd_router_names();
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(n[i]);
        CU_ASSERT_STRING_EQUAL(n[i], want[i]);
        CU_ASSERT_PTR_NOT_NULL(pgd_router_find(want[i]));
    }
    CU_ASSERT_PTR_NULL(n[4]);
    CU_ASSERT_PTR_NULL(pgd_router_find("random"));
    pgd_cluster_config cc = cpu_cfg(2, "random", 0);
    pgd_cluster *c = NULL;
    CU_ASSERT_EQUAL(pgd_cluster_create(&cc, &c), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "unknown router 'random'"));
    cc = cpu_cfg(0, NULL, 0);
    CU_ASSERT_EQUAL(pgd_cluster_create(&cc, &c), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "replicas must be 1..1024"));
    pgd_replica_role roles[2] = {PGD_REPLICA_DECODE, PGD_REPLICA_DECODE};
    cc = cpu_cfg(2, NULL, 0);
    cc.roles = roles;
    CU_ASSERT_EQUAL(pgd_cluster_create(&cc, &c), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "no replica takes new requests"));
}

static void test_routing_rules(void) {
    int32_t a[48], b[48], u[48];
    for (int i = 0; i < 48; i++) a[i] = 1 + (i * 7) % 400, b[i] = i < 32 ? a[i] : 450 + i, u[i] = 300 + (i * 5) % 200;
    a[0] = b[0] = u[0] = 1;
    /* round-robin: in turn */
    pgd_cluster_config cc = cpu_cfg(3, "round-robin", 0);
    pgd_cluster *c = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_cluster_create(&cc, &c), PGD_OK);
    pgd_request_params p = {.prompt = a, .n_prompt = 20, .max_tokens = 2, .ignore_eos = 1};
    for (int i = 0; i < 7; i++) {
        int w = -1;
        CU_ASSERT_EQUAL(pgd_cluster_add_request(c, &p, NULL, &w), PGD_OK);
        CU_ASSERT_EQUAL(w, i % 3);
    }
    while (pgd_cluster_busy(c)) CU_ASSERT_EQUAL_FATAL(pgd_cluster_step(c, NULL, NULL), PGD_OK);
    pgd_cluster_destroy(c);
    /* least-outstanding: fewest unfinished, ties to the lowest index */
    cc = cpu_cfg(2, "least-outstanding", 0);
    CU_ASSERT_EQUAL_FATAL(pgd_cluster_create(&cc, &c), PGD_OK);
    int w[4];
    CU_ASSERT_EQUAL(pgd_cluster_add_request_to(c, 0, &p, NULL), PGD_OK);
    CU_ASSERT_EQUAL(pgd_cluster_add_request_to(c, 0, &p, NULL), PGD_OK);
    for (int i = 0; i < 4; i++) CU_ASSERT_EQUAL(pgd_cluster_add_request(c, &p, NULL, &w[i]), PGD_OK);
    CU_ASSERT(w[0] == 1 && w[1] == 1 && w[2] == 0 && w[3] == 1);
    CU_ASSERT_EQUAL(pgd_cluster_add_request_to(c, 2, &p, NULL), PGD_ERR_INVALID);
    while (pgd_cluster_busy(c)) CU_ASSERT_EQUAL_FATAL(pgd_cluster_step(c, NULL, NULL), PGD_OK);
    pgd_cluster_destroy(c);
    /* prefix-aware: b shares a's first 32 tokens (2 blocks); a served on replica 1 */
    cc = cpu_cfg(2, "prefix-aware", 0);
    CU_ASSERT_EQUAL_FATAL(pgd_cluster_create(&cc, &c), PGD_OK);
    pgd_request_params pa = {.prompt = a, .n_prompt = 48, .max_tokens = 2, .ignore_eos = 1};
    int64_t ida;
    CU_ASSERT_EQUAL(pgd_cluster_add_request_to(c, 1, &pa, &ida), PGD_OK);
    while (pgd_cluster_busy(c)) CU_ASSERT_EQUAL_FATAL(pgd_cluster_step(c, NULL, NULL), PGD_OK);
    pgd_cluster_release(c, ida);
    CU_ASSERT_EQUAL(pgd_cluster_cached_prefix(c, 1, b, 48), 32);
    CU_ASSERT_EQUAL(pgd_cluster_cached_prefix(c, 0, b, 48), 0);
    pgd_request_params pb = {.prompt = b, .n_prompt = 48, .max_tokens = 2, .ignore_eos = 1};
    int wb = -1, wu = -1;
    int64_t idb;
    CU_ASSERT_EQUAL(pgd_cluster_add_request(c, &pb, &idb, &wb), PGD_OK);
    CU_ASSERT_EQUAL(wb, 1); /* its prefix is there */
    pgd_request_params pu = {.prompt = u, .n_prompt = 48, .max_tokens = 2, .ignore_eos = 1};
    CU_ASSERT_EQUAL(pgd_cluster_add_request(c, &pu, NULL, &wu), PGD_OK);
    CU_ASSERT_EQUAL(wu, 0); /* no match: the least loaded */
    while (pgd_cluster_busy(c)) CU_ASSERT_EQUAL_FATAL(pgd_cluster_step(c, NULL, NULL), PGD_OK);
    const pgd_request_output *o;
    CU_ASSERT_EQUAL_FATAL(pgd_cluster_get_output(c, idb, &o), PGD_OK);
    CU_ASSERT_EQUAL(o->num_cached_tokens, 32);
    CU_ASSERT_EQUAL(pgd_cluster_get_output(c, 999, &o), PGD_ERR_INVALID);
    pgd_cluster_destroy(c);
}

/* The sim: one virtual clock per replica, the earliest busy one steps. */
static double sim_makespan(int replicas, const char *router) {
    pgd_cluster_config cc = {.replicas = replicas, .router = router};
    cc.exec.model = "random:stories15M";
    cc.exec.backend.name = "sim";
    cc.exec.backend.options = (const char *const[]){"device=a100-40gb", NULL};
    cc.engine = (pgd_engine_config){.block_size = 16, .num_blocks = 512, .max_num_seqs = 8};
    pgd_cluster *c = NULL;
    pgd_status st = pgd_cluster_create(&cc, &c);
    if (st != PGD_OK) fprintf(stderr, "\n  %s\n", pgd_last_error());
    CU_ASSERT_EQUAL_FATAL(st, PGD_OK);
    CU_ASSERT_TRUE(pgd_cluster_is_virtual(c));
    int32_t buf[64];
    for (int i = 0; i < 32; i++) {
        pgd_request_params p = filler(i, buf);
        CU_ASSERT_EQUAL_FATAL(pgd_cluster_add_request(c, &p, NULL, NULL), PGD_OK);
    }
    int *stepped = calloc((size_t)replicas, sizeof *stepped);
    double last = 0;
    int fin = 0;
    while (pgd_cluster_busy(c)) {
        double before = pgd_cluster_now(c);
        CU_ASSERT(before >= last); /* the event time never goes back */
        last = before;
        int nf = 0;
        CU_ASSERT_EQUAL_FATAL(pgd_cluster_step(c, &nf, stepped), PGD_OK);
        fin += nf;
        int n = 0;
        for (int r = 0; r < replicas; r++) n += stepped[r];
        CU_ASSERT_EQUAL(n, 1); /* one replica per event */
    }
    CU_ASSERT_EQUAL(fin, 32);
    free(stepped);
    double end = 0;
    for (int r = 0; r < replicas; r++) {
        double t = pgd_cluster_to_cluster_time(c, r, pgd_engine_now(pgd_cluster_engine(c, r)));
        if (t > end) end = t;
    }
    pgd_cluster_destroy(c);
    return end;
}

static void test_sim_event_loop(void) {
    double one = sim_makespan(1, NULL), two = sim_makespan(2, "round-robin"),
           two_again = sim_makespan(2, "round-robin");
    CU_ASSERT(one > 0 && two > 0);
    CU_ASSERT(two < 0.75 * one);     /* the replicas run side by side in virtual time */
    CU_ASSERT_EQUAL(two, two_again); /* deterministic */
}

static const char *RUN_INI = "[experiment]\nname = cl\nseed = 3\n[model]\npath = %s\ntokenizer = %s\nthreads = 4\n"
                             "[engine]\nprefix_caching = on\n"
                             "[workload]\nnum_requests = 24\ninput_len = uniform\ninput_min = 4\ninput_max = 40\n"
                             "output_len = uniform\noutput_min = 2\noutput_max = 40\n%s"
                             "%s";

static pgd_experiment *load(const char *cluster, const char *extra) {
    char ini[4096], model[1024];
    snprintf(model, sizeof model, "%s", pgd_test_data(MODEL));
    snprintf(ini, sizeof ini, RUN_INI, model, pgd_test_data(TOKENIZER), extra, cluster);
    pgd_experiment *e = NULL;
    if (pgd_experiment_load_string(ini, "cl.ini", &e) != PGD_OK) fprintf(stderr, "\n  %s\n", pgd_last_error());
    return e;
}

static void test_run_replicas(void) {
    /* one engine, then replicas = 1 (today's run), 2 and 4 with two routers: same tokens */
    pgd_experiment *e = load("[sweep]\ncluster.replicas = 1, 2, 4\ncluster.router = round-robin, prefix-aware\n",
                             "shared_prefix_len = 20\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL_FATAL(pgd_experiment_num_runs(e), 6);
    uint64_t fp = 0;
    for (int i = 0; i < 6; i++) {
        const pgd_run_config *rc = pgd_experiment_run(e, i);
        pgd_run_result res;
        pgd_status st = pgd_run_execute(rc, NULL, &res);
        if (st != PGD_OK) fprintf(stderr, "\n  %s\n", pgd_last_error());
        CU_ASSERT_EQUAL_FATAL(st, PGD_OK);
        int nr = pgd_run_get_int(rc, "cluster", "replicas");
        CU_ASSERT_EQUAL(res.summary.completed, 24);
        if (i == 0) fp = res.token_fingerprint;
        CU_ASSERT_EQUAL(res.token_fingerprint, fp);
        if (nr == 1) {
            CU_ASSERT_PTR_NULL(res.cluster);
        } else {
            CU_ASSERT_EQUAL(res.replicas, nr);
            CU_ASSERT_STRING_EQUAL(res.router, pgd_run_get_str(rc, "cluster", "router"));
            json_t *pr = json_object_get(res.cluster, "per_replica");
            CU_ASSERT_EQUAL(json_array_size(pr), (size_t)nr);
            int64_t sum = 0;
            for (int r = 0; r < nr; r++) {
                json_t *o = json_array_get(pr, (size_t)r);
                CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "replica")), r);
                sum += json_integer_value(json_object_get(json_object_get(o, "summary"), "completed"));
            }
            CU_ASSERT_EQUAL(sum, 24);
            CU_ASSERT(res.replica_requests_min <= res.replica_requests_max);
            CU_ASSERT(res.summary.timeline_samples > 0);
            /* write the results: summary.json's cluster section, runs.csv's columns */
            char dir[] = "/tmp/pgd_cluster_runXXXXXX";
            CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
            CU_ASSERT_EQUAL(pgd_run_write_outputs(rc, &res, dir), PGD_OK);
            char path[256];
            snprintf(path, sizeof path, "%s/summary.json", dir);
            json_error_t je;
            json_t *sj = json_load_file(path, 0, &je);
            CU_ASSERT_PTR_NOT_NULL_FATAL(sj);
            CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_object_get(sj, "cluster"), "replicas")), nr);
            json_decref(sj);
            pgd_runs_csv *t = NULL;
            CU_ASSERT_EQUAL_FATAL(pgd_runs_csv_create(e, &t), PGD_OK);
            CU_ASSERT_EQUAL(pgd_runs_csv_add(t, rc, &res), PGD_OK);
            snprintf(path, sizeof path, "%s/runs.csv", dir);
            CU_ASSERT_EQUAL(pgd_runs_csv_write(t, path), PGD_OK);
            pgd_runs_csv_destroy(t);
            char *csv = pgd_test_read_file(path, NULL);
            CU_ASSERT_PTR_NOT_NULL_FATAL(csv);
            CU_ASSERT_PTR_NOT_NULL(
                strstr(csv, ",cluster_replicas,cluster_router,replica_requests_min,replica_requests_max,"));
            char want[64];
            snprintf(want, sizeof want, ",%d,%s,", nr, res.router);
            CU_ASSERT_PTR_NOT_NULL(strstr(csv, want));
            free(csv);
            char cmd[300];
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
            CU_ASSERT_EQUAL(system(cmd), 0);
        }
        pgd_run_result_free(&res);
    }
    pgd_experiment_destroy(e);
}

/* replicas = 1 is today's one-engine run: on the sim (deterministic) every
 * figure is the same with and without the [cluster] section. */
static void test_run_one_replica_is_today(void) {
    const char *base = "[experiment]\nname = one\nseed = 5\n[model]\npath = random:stories15M\nbackend = sim\n"
                       "[workload]\nnum_requests = 40\nrate = 20\n";
    char with[1024];
    snprintf(with, sizeof with, "%s[cluster]\nreplicas = 1\nrouter = prefix-aware\n", base);
    pgd_experiment *a = NULL, *b = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_experiment_load_string(base, "a.ini", &a), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_experiment_load_string(with, "b.ini", &b), PGD_OK);
    pgd_run_result ra, rb;
    CU_ASSERT_EQUAL_FATAL(pgd_run_execute(pgd_experiment_run(a, 0), NULL, &ra), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_run_execute(pgd_experiment_run(b, 0), NULL, &rb), PGD_OK);
    CU_ASSERT_EQUAL(ra.token_fingerprint, rb.token_fingerprint);
    CU_ASSERT_EQUAL(ra.summary.duration, rb.summary.duration);
    CU_ASSERT_EQUAL(ra.summary.ttft.mean, rb.summary.ttft.mean);
    CU_ASSERT_EQUAL(ra.summary.tpot.p99, rb.summary.tpot.p99);
    CU_ASSERT_EQUAL(ra.stats.steps, rb.stats.steps);
    CU_ASSERT_EQUAL(ra.summary.timeline_samples, rb.summary.timeline_samples);
    pgd_run_result_free(&ra);
    pgd_run_result_free(&rb);
    pgd_experiment_destroy(a);
    pgd_experiment_destroy(b);
}

static void expect_config_error(const char *cluster, const char *extra, const char *want) {
    char ini[4096], model[1024];
    snprintf(model, sizeof model, "%s", pgd_test_data(MODEL));
    snprintf(ini, sizeof ini, RUN_INI, model, pgd_test_data(TOKENIZER), extra, cluster);
    pgd_experiment *e = NULL;
    pgd_status st = pgd_experiment_load_string(ini, "bad.ini", &e);
    if (st == PGD_OK) {
        pgd_run_result res;
        st = pgd_run_execute(pgd_experiment_run(e, 0), NULL, &res);
        if (st == PGD_OK) pgd_run_result_free(&res);
        pgd_experiment_destroy(e);
    }
    CU_ASSERT_NOT_EQUAL(st, PGD_OK);
    if (!strstr(pgd_last_error(), want)) fprintf(stderr, "\n  want '%s' in: %s\n", want, pgd_last_error());
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), want));
}

static void test_bad_configs(void) {
    expect_config_error("[cluster]\nreplicas = 0\n", "", "[cluster] replicas");
    expect_config_error("[cluster]\nreplicas = 0\n", "", "expected an integer in 1..1024");
    expect_config_error("[cluster]\nreplicas = two\n", "", "expected an integer");
    expect_config_error("[cluster]\nreplicas = 2\nrouter = round-robbin\n", "", "did you mean 'round-robin'?");
    expect_config_error("[cluster]\nreplicas = 2\nrouter = random\n", "",
                        "choices: round-robin|least-outstanding|least-kv|prefix-aware");
    expect_config_error("[cluster]\nreplica = 2\n", "", "did you mean 'replicas'");
    expect_config_error("[clustr]\nreplicas = 2\n", "", "did you mean [cluster]");
    expect_config_error("[cluster]\nreplicas = 2\ncomm = mpi\n[experiment]\ntrace_steps = on\n", "",
                        "trace_steps with [cluster] comm = mpi");
    expect_config_error("[cluster]\nreplicas = 2\n[parallel]\ntp = 2\ncomm = mpi\n", "", "comm = mpi");
    expect_config_error("[cluster]\nreplicas = 2\ncomm = mpi\n", "", "needs `mpirun -np 2` (this job has 1 process)");
    expect_config_error("[cluster]\nreplicas = 2\ncomm = ucx\n", "", "expected one of threads|mpi");
}

/* A replica that fails mid-run: the step returns an error naming it (the
 * other replicas' steps of that round finish: no hang), through the API
 * and through `pagoda run`. */
static void test_failing_replica(void) {
    setenv("PAGODA_CLUSTER_FAIL_REPLICA", "1:3", 1);
    pgd_cluster_config cc = cpu_cfg(3, "round-robin", 0);
    pgd_cluster *c = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_cluster_create(&cc, &c), PGD_OK);
    int32_t buf[64];
    for (int i = 0; i < 6; i++) {
        pgd_request_params p = filler(i, buf);
        p.max_tokens = 20;
        CU_ASSERT_EQUAL_FATAL(pgd_cluster_add_request(c, &p, NULL, NULL), PGD_OK);
    }
    pgd_status st = PGD_OK;
    for (int s = 0; s < 10 && st == PGD_OK; s++) st = pgd_cluster_step(c, NULL, NULL);
    CU_ASSERT_EQUAL(st, PGD_ERR_DEVICE);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "replica 1: injected failure"));
    pgd_cluster_destroy(c);
    /* the whole run */
    char ini[4096], model[1024];
    snprintf(model, sizeof model, "%s", pgd_test_data(MODEL));
    snprintf(ini, sizeof ini, RUN_INI, model, pgd_test_data(TOKENIZER), "", "[cluster]\nreplicas = 2\n");
    char *path = pgd_test_write_temp(ini, strlen(ini), ".ini");
    CU_ASSERT_PTR_NOT_NULL_FATAL(path);
    char args[2048], *out = NULL, *err = NULL;
    snprintf(args, sizeof args, "run --output-dir /tmp/pgd_cluster_fail '%s'", path);
    int rc = pgd_test_run_cli(args, &out, &err);
    CU_ASSERT_NOT_EQUAL(rc, 0);
    if (!err || !strstr(err, "replica 1: injected failure")) fprintf(stderr, "\n  stderr: %s\n", err ? err : "");
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "replica 1: injected failure"));
    unsetenv("PAGODA_CLUSTER_FAIL_REPLICA");
    free(out);
    free(err);
    remove(path);
    free(path);
    CU_ASSERT_EQUAL(system("rm -rf /tmp/pgd_cluster_fail"), 0);
}

static CU_TestInfo tests[] = {
    {"router registry and bad cluster configs", test_registry},
    {"goldens through 2 and 4 replicas (threads), every router", test_goldens_all_routers},
    {"goldens through replicas stepped serially", test_goldens_serial},
    {"routing rules: round-robin, least-outstanding ties, prefix-aware", test_routing_rules},
    {"sim: discrete-event loop over replica clocks", test_sim_event_loop},
    {"pagoda run: replicas 1/2/4 same tokens, per-replica results", test_run_replicas},
    {"pagoda run: replicas = 1 is the one-engine run", test_run_one_replica_is_today},
    {"bad [cluster] configs", test_bad_configs},
    {"a failing replica is named, no hang", test_failing_replica},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "cluster", .pInitFunc = suite_init, .pTests = tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
