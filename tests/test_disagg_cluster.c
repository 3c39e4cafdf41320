/* test_disagg_cluster.c - P/D disaggregation in a cluster (disagg.h):
 *  - token-exact: the stories260K goldens, among fillers and seeded sampled
 *    requests, come out of 1 prefill + 1 decode replica (and 1 + 2) over
 *    threads exactly as from one engine; every request went through a KV
 *    transfer over the communicator;
 *  - the sim: a transfer takes latency + bytes / bandwidth on the cluster
 *    timeline and the decode replica's first step of a request comes after
 *    its KV arrived; the prefill replica's blocks stay allocated until the
 *    transfer's end on its clock (a request needing them waits);
 *  - `pagoda run` with [cluster] prefill/decode: the token fingerprint of
 *    the one-engine run, summary.json's cluster.disagg section and
 *    kv_transfers.csv, and bad
 *    configurations rejected with the keys named. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda/disagg.h"
#include "test_util.h"

#define MODEL "models/stories260K/stories260K.bin"
#define TOKENIZER "models/stories260K/tok512.bin"

static pgd_golden G[8];
static int NG;

static int suite_init(void) {
    NG = pgd_test_load_goldens(G, 8);
    return NG > 0 ? 0 : -1;
}

enum { NSAMP = 4, NFILL = 6 };

static pgd_request_params sampled(int i) {
    return (pgd_request_params){.prompt = G[i % NG].ptoks,
                                .n_prompt = G[i % NG].np,
                                .max_tokens = 40,
                                .sampling = {.temperature = 0.9f, .top_k = 40, .top_p = 0.9f, .seed = 100 + i}};
}

static pgd_request_params filler(int i, int32_t *buf) {
    int np = 3 + (i * 37) % 40;
    buf[0] = 1;
    for (int k = 1; k < np; k++) buf[k] = 260 + (i * 31 + k * 17) % 240;
    return (pgd_request_params){.prompt = buf, .n_prompt = np, .max_tokens = 4 + (i * 13) % 30, .ignore_eos = 1};
}

/* The sampled requests' tokens from one engine. */
static void reference(int32_t want[NSAMP][64], int *nw) {
    pgd_exec *x = NULL;
    pgd_exec_config xc = {.model = pgd_test_data(MODEL), .backend = {.name = "cpu", .num_threads = 1}};
    CU_ASSERT_EQUAL_FATAL(pgd_exec_create(&xc, &x), PGD_OK);
    pgd_engine_config ec = {.block_size = 16, .num_blocks = 64};
    pgd_engine *e = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_engine_create(&ec, x, NULL, &e), PGD_OK);
    for (int i = 0; i < NSAMP; i++) {
        pgd_request_params p = sampled(i);
        CU_ASSERT_EQUAL_FATAL(pgd_engine_add_request(e, &p, NULL), PGD_OK);
    }
    CU_ASSERT_EQUAL_FATAL(pgd_engine_run(e), PGD_OK);
    for (int i = 0; i < NSAMP; i++) {
        const pgd_request_output *o = NULL;
        CU_ASSERT_EQUAL_FATAL(pgd_engine_get_output(e, i, &o), PGD_OK);
        nw[i] = o->seqs[0].n_tokens;
        memcpy(want[i], o->seqs[0].tokens, sizeof(int32_t) * (size_t)nw[i]);
    }
    pgd_engine_destroy(e);
    pgd_exec_destroy(x);
}

static void goldens_pd(int np, int nd, int serial) {
    int32_t want[NSAMP][64];
    int nw[NSAMP];
    reference(want, nw);
    pgd_replica_role roles[8];
    CU_ASSERT_EQUAL_FATAL(pgd_disagg_roles(np, nd, roles), PGD_OK);
    pgd_disagg *d = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_disagg_create(NULL, &d), PGD_OK);
    pgd_cluster_config cc = {
        .replicas = np + nd, .serial = serial, .roles = roles, .handoff = pgd_disagg_handoff, .handoff_ctx = d};
    cc.exec.model = pgd_test_data(MODEL);
    cc.exec.backend.name = "cpu";
    cc.exec.backend.num_threads = np + nd;
    cc.engine = (pgd_engine_config){.block_size = 16, .num_blocks = 64, .max_num_seqs = 8, .prefix_caching = 1};
    pgd_cluster *c = NULL;
    pgd_status st = pgd_cluster_create(&cc, &c);
    if (st != PGD_OK) fprintf(stderr, "\n  %s\n", pgd_last_error());
    CU_ASSERT_EQUAL_FATAL(st, PGD_OK);
    int64_t gid[8], sid[NSAMP];
    int32_t buf[64];
    int where, nf = 0, total = 0;
    for (int k = 0; k < NG; k++) {
        pgd_request_params p = {.prompt = G[k].ptoks, .n_prompt = G[k].np, .max_tokens = G[k].ng};
        CU_ASSERT_EQUAL_FATAL(pgd_cluster_add_request(c, &p, &gid[k], &where), PGD_OK);
        CU_ASSERT(where < np); /* new requests go to prefill replicas */
        total++;
    }
    for (int i = 0; i < NSAMP; i++) {
        pgd_request_params p = sampled(i);
        CU_ASSERT_EQUAL_FATAL(pgd_cluster_add_request(c, &p, &sid[i], NULL), PGD_OK);
        total++;
    }
    int finished = 0;
    while (pgd_cluster_busy(c)) {
        if (nf < NFILL) {
            pgd_request_params p = filler(nf++, buf);
            CU_ASSERT_EQUAL_FATAL(pgd_cluster_add_request(c, &p, NULL, NULL), PGD_OK);
            total++;
        }
        int k = 0;
        st = pgd_cluster_step(c, &k, NULL);
        if (st != PGD_OK) fprintf(stderr, "\n  %s\n", pgd_last_error());
        CU_ASSERT_EQUAL_FATAL(st, PGD_OK);
        finished += k;
    }
    CU_ASSERT_EQUAL(finished, total);
    for (int k = 0; k < NG; k++) {
        const pgd_request_output *o = NULL;
        CU_ASSERT_EQUAL_FATAL(pgd_cluster_get_output(c, gid[k], &o), PGD_OK);
        int ok = o->finished && o->seqs[0].n_tokens == G[k].ng &&
                 !memcmp(o->seqs[0].tokens, G[k].gtoks, sizeof(int32_t) * (size_t)G[k].ng);
        if (!ok) fprintf(stderr, "\n  %dP+%dD: golden %d differs\n", np, nd, k);
        CU_ASSERT(ok);
        CU_ASSERT(pgd_cluster_request_replica(c, gid[k]) >= np); /* it finished on a decode replica */
        CU_ASSERT(o->first_token >= o->arrival && o->finish >= o->first_token);
    }
    for (int i = 0; i < NSAMP; i++) {
        const pgd_request_output *o = NULL;
        CU_ASSERT_EQUAL_FATAL(pgd_cluster_get_output(c, sid[i], &o), PGD_OK);
        CU_ASSERT(o->seqs[0].n_tokens == nw[i] && !memcmp(o->seqs[0].tokens, want[i], sizeof(int32_t) * (size_t)nw[i]));
    }
    pgd_disagg_stats ds;
    pgd_disagg_get_stats(d, &ds);
    CU_ASSERT_EQUAL(ds.transfers, total); /* no prompt here ends at its first token */
    CU_ASSERT(ds.kv_bytes > 0);
    const pgd_kv_transfer *t = pgd_disagg_transfer(d, 0);
    CU_ASSERT(t && t->from < np && t->to >= np && t->wire_bytes > t->kv_bytes && t->ready >= t->start);
    for (int r = 0; r < np; r++) /* real clocks: an export's blocks are freed once its bytes are sent */
        CU_ASSERT_EQUAL(pgd_engine_held_blocks(pgd_cluster_engine(c, r)), 0);
    pgd_cluster_destroy(c);
    pgd_disagg_destroy(d);
}

static void test_goldens_1p1d(void) { goldens_pd(1, 1, 0); }
static void test_goldens_1p2d_serial(void) { goldens_pd(1, 2, 1); }

/* The sim: the link's price and the decode replica waiting for the KV. */
static void test_sim_link(void) {
    pgd_replica_role roles[2];
    CU_ASSERT_EQUAL_FATAL(pgd_disagg_roles(1, 1, roles), PGD_OK);
    pgd_kv_link_config lc = {.gbps = 0.1, .latency_us = 1000}; /* slow: 40 KB take ~3 ms */
    pgd_disagg *d = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_disagg_create(&lc, &d), PGD_OK);
    pgd_cluster_config cc = {.replicas = 2, .roles = roles, .handoff = pgd_disagg_handoff, .handoff_ctx = d};
    cc.exec.model = "random:stories260K";
    cc.exec.backend.name = "sim";
    cc.exec.backend.options = (const char *const[]){"device=cpu", NULL};
    cc.engine = (pgd_engine_config){.block_size = 16, .num_blocks = 64};
    pgd_cluster *c = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_cluster_create(&cc, &c), PGD_OK);
    CU_ASSERT(pgd_cluster_is_virtual(c));
    int32_t prompt[40];
    for (int i = 0; i < 40; i++) prompt[i] = 1 + i;
    int64_t id[3];
    for (int k = 0; k < 3; k++) {
        pgd_request_params p = {.prompt = prompt, .n_prompt = 10 + 10 * k, .max_tokens = 8, .ignore_eos = 1};
        CU_ASSERT_EQUAL_FATAL(pgd_cluster_add_request(c, &p, &id[k], NULL), PGD_OK);
    }
    while (pgd_cluster_busy(c)) CU_ASSERT_EQUAL_FATAL(pgd_cluster_step(c, NULL, NULL), PGD_OK);
    CU_ASSERT_EQUAL(pgd_disagg_num_transfers(d), 3);
    for (int64_t i = 0; i < pgd_disagg_num_transfers(d); i++) {
        const pgd_kv_transfer *t = pgd_disagg_transfer(d, i);
        double want = 1e-3 + (double)t->kv_bytes * 8 / 0.1e9;
        CU_ASSERT(t->ready - t->start > want * 0.999 && t->ready - t->start < want * 1.001);
        const pgd_request_output *o = NULL;
        CU_ASSERT_EQUAL_FATAL(pgd_cluster_get_output(c, t->request, &o), PGD_OK);
        CU_ASSERT_EQUAL(o->seqs[0].n_tokens, 8);
        CU_ASSERT(o->seqs[0].token_times[1] > t->ready); /* decoded after the KV arrived */
        CU_ASSERT(o->seqs[0].token_times[0] <= t->start + 1e-9);
    }
    pgd_cluster_destroy(c);
    pgd_disagg_destroy(d);
}

/* The sim: a prefill replica's blocks stay allocated while its transfer is
 * in flight (freed at the KV's arrival on its own clock), so a request that
 * needs them waits for the transfer's end, as DistServe models it. */
static void test_sim_held_blocks(void) {
    pgd_replica_role roles[2];
    CU_ASSERT_EQUAL_FATAL(pgd_disagg_roles(1, 1, roles), PGD_OK);
    pgd_kv_link_config lc = {.gbps = 0.1, .latency_us = 1000}; /* slow: milliseconds per transfer */
    pgd_disagg *d = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_disagg_create(&lc, &d), PGD_OK);
    pgd_cluster_config cc = {.replicas = 2, .roles = roles, .handoff = pgd_disagg_handoff, .handoff_ctx = d};
    cc.exec.model = "random:stories260K";
    cc.exec.backend.name = "sim";
    cc.exec.backend.options = (const char *const[]){"device=cpu", NULL};
    cc.engine = (pgd_engine_config){.block_size = 16, .num_blocks = 8}; /* A's 7 blocks + B's 4 do not fit */
    pgd_cluster *c = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_cluster_create(&cc, &c), PGD_OK);
    int32_t prompt[100];
    for (int i = 0; i < 100; i++) prompt[i] = 1 + i;
    int64_t a, b;
    pgd_request_params pa = {.prompt = prompt, .n_prompt = 100, .max_tokens = 4, .ignore_eos = 1};
    pgd_request_params pb = {.prompt = prompt, .n_prompt = 60, .max_tokens = 4, .ignore_eos = 1};
    CU_ASSERT_EQUAL_FATAL(pgd_cluster_add_request(c, &pa, &a, NULL), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_cluster_add_request(c, &pb, &b, NULL), PGD_OK);
    pgd_engine *pe = pgd_cluster_engine(c, 0);
    int seen = 0;
    while (pgd_cluster_busy(c)) {
        CU_ASSERT_EQUAL_FATAL(pgd_cluster_step(c, NULL, NULL), PGD_OK);
        if (pgd_disagg_num_transfers(d) == 1 && !seen) { /* A's transfer is in flight */
            const pgd_kv_transfer *t = pgd_disagg_transfer(d, 0);
            pgd_engine_stats es;
            pgd_engine_get_stats(pe, &es);
            CU_ASSERT_EQUAL(t->request, a);
            CU_ASSERT(pgd_cluster_replica_now(c, 0) < t->ready);
            CU_ASSERT_EQUAL(pgd_engine_held_blocks(pe), 7);
            CU_ASSERT(es.kv.used_blocks >= 7); /* in the prefill replica's KV usage */
            seen = 1;
        }
    }
    CU_ASSERT(seen);
    CU_ASSERT_EQUAL(pgd_disagg_num_transfers(d), 2);
    CU_ASSERT_EQUAL(pgd_engine_held_blocks(pe), 4); /* B's: freed by the idle prefill replica's next step */
    const pgd_kv_transfer *ta = pgd_disagg_transfer(d, 0);
    const pgd_request_output *o = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_cluster_get_output(c, b, &o), PGD_OK);
    CU_ASSERT(o->finished && o->seqs[0].n_tokens == 4);
    CU_ASSERT(o->first_scheduled >= ta->ready - 1e-9); /* B waited for A's blocks to be sent */
    pgd_cluster_destroy(c);
    pgd_disagg_destroy(d);
}

static char *write_ini(const char *cluster_keys) {
    char ini[4096], model[1024], tok[1024];
    snprintf(model, sizeof model, "%s", pgd_test_data(MODEL)); /* one static buffer: copy each */
    snprintf(tok, sizeof tok, "%s", pgd_test_data(TOKENIZER));
    snprintf(ini, sizeof ini,
             "[experiment]\nname = pd\nseed = 5\noutput_dir = %s\n[model]\npath = %s\ntokenizer = %s\nthreads = 2\n"
             "[workload]\nsource = synthetic\nnum_requests = 12\ninput_len = uniform\ninput_min = 4\ninput_max = 40\n"
             "output_len = uniform\noutput_min = 10\noutput_max = 60\nrate = 40\n[slo]\nttft = 1\ntpot = 0.5\n"
             "[cluster]\n%s\n",
             "/tmp", model, tok, cluster_keys);
    return pgd_test_write_temp(ini, strlen(ini), ".ini");
}

static json_t *run_summary(const char *cluster_keys, const char *outdir) {
    char *ini = write_ini(cluster_keys);
    char args[2048];
    snprintf(args, sizeof args, "run '%s' --output-dir '%s'", ini, outdir);
    char *err = NULL;
    int rc = pgd_test_run_cli(args, NULL, &err);
    if (rc != 0) fprintf(stderr, "\n  %s\n", err ? err : "");
    CU_ASSERT_EQUAL(rc, 0);
    free(err);
    char path[1024];
    snprintf(path, sizeof path, "%s/pd/run/summary.json", outdir);
    json_error_t je;
    json_t *s = json_load_file(path, 0, &je);
    if (!s) fprintf(stderr, "\n  %s: %s\n", path, je.text);
    remove(ini);
    free(ini);
    return s;
}

static void test_run_cli(void) {
    char dir[] = "/tmp/pgd_disagg_XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    char d1[600], d2[600];
    snprintf(d1, sizeof d1, "%s/one", dir);
    snprintf(d2, sizeof d2, "%s/pd", dir);
    json_t *one = run_summary("replicas = 1", d1), *pd = run_summary("prefill = 1\ndecode = 1", d2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(one);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pd);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(one, "token_fingerprint")),
                           json_string_value(json_object_get(pd, "token_fingerprint")));
    json_t *dg = json_object_get(json_object_get(pd, "cluster"), "disagg");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dg);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(dg, "prefill")), 1);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(dg, "decode")), 1);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(dg, "transfers")), 12);
    char csv[700];
    snprintf(csv, sizeof csv, "%s/pd/run/kv_transfers.csv", d2);
    char *text = pgd_test_read_file(csv, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    int lines = 0;
    for (char *q = text; *q; q++) lines += *q == '\n';
    CU_ASSERT_EQUAL(lines, 13); /* the header and one row per request */
    CU_ASSERT(!strncmp(text, "request,from,to,kv_bytes,start,ready\n0,0,1,", 43));
    free(text);
    snprintf(csv, sizeof csv, "%s/pd/run/kv_transfers.csv", d1);
    CU_ASSERT_PTR_NULL(fopen(csv, "r")); /* one engine: no hand-offs */
    CU_ASSERT(json_real_value(json_object_get(dg, "kv_link_gbps")) == 2400.0);
    CU_ASSERT_PTR_NOT_NULL(json_object_get(pd, "goodput"));
    json_decref(one);
    json_decref(pd);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

static void bad_config(const char *keys, const char *want) {
    char *ini = write_ini(keys);
    char args[1024];
    snprintf(args, sizeof args, "run '%s' --output-dir /tmp/pgd_disagg_never", ini);
    char *err = NULL;
    int rc = pgd_test_run_cli(args, NULL, &err);
    CU_ASSERT_NOT_EQUAL(rc, 0);
    int ok = err && strstr(err, want);
    if (!ok) fprintf(stderr, "\n  [cluster] %s: wanted '%s' in: %s\n", keys, want, err ? err : "");
    CU_ASSERT(ok);
    free(err);
    remove(ini);
    free(ini);
}

static void test_bad_configs(void) {
    bad_config("prefill = 1", "decode = 0");
    bad_config("prefill = 1\ndecode = 1\nreplicas = 3", "replicas = 3 but prefill = 1 + decode = 1");
    bad_config("prefill = 1\ndecode = 1\nkv_link_gbps = 0", "kv_link_gbps");
    bad_config("prefill = 1\ndecode = 1\ncomm = mpi", "needs `mpirun -np 2` (this job has 1 process)");
}

static CU_TestInfo tests[] = {
    {"goldens + sampled through 1 prefill + 1 decode (threads)", test_goldens_1p1d},
    {"goldens + sampled through 1 prefill + 2 decode (serial)", test_goldens_1p2d_serial},
    {"sim: the KV link's price, decode waits for it", test_sim_link},
    {"sim: prefill blocks held while the transfer is in flight", test_sim_held_blocks},
    {"pagoda run: P/D fingerprint = one engine's, summary", test_run_cli},
    {"bad P/D configs", test_bad_configs},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "disagg_cluster", .pInitFunc = suite_init, .pTests = tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
