/* test_disagg_mpi.c - prefill/decode disaggregation over MPI ranks
 * (disagg.h, cluster.h's cfg->comm), run by ctest as `mpirun -np N
 * test_disagg_mpi` with N = 2 or 3 (label mpi).
 *
 * Replica r on rank r; rank 0 routes and checks, the others serve. Layouts:
 * N = 2: 1 prefill + 1 decode with rank 0 the prefill side (its bytes go to
 * rank 1), then the roles swapped (rank 1 exports, rank 0 imports); N = 3:
 * 1 prefill + 2 decode, then 2 prefill + 1 decode (rank 1's bytes go
 * straight to rank 2). In each, the stories260K goldens (greedy) and seeded
 * sampled requests, among fillers, must come out exactly as from one
 * engine; each request is handed off once, with KV bytes a whole number of
 * blocks, and no prefill replica holds blocks afterwards. Failures: decode
 * ranks whose block_size differs refuse the import ("replica R (rank R):
 * ... block_size"), and PAGODA_CLUSTER_FAIL_HANDOFF makes a remote prefill
 * rank's export fail: rank 0's step fails naming the replica and rank, and
 * every rank returns (no hang). Exit 0 when all checks pass. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../test_util.h"
#include "pagoda/cluster.h"
#include "pagoda/comm.h"
#include "pagoda/disagg.h"

static int failures;
#define CHECK(c)                                                                            \
    do {                                                                                    \
        if (!(c)) {                                                                         \
            fprintf(stderr, "rank 0: check failed at %s:%d: %s\n", __FILE__, __LINE__, #c); \
            failures++;                                                                     \
        }                                                                                   \
    } while (0)

#define MODEL "models/stories260K/stories260K.bin"
enum { NSAMP = 4, NFILL = 6, BLOCK = 16 };

static pgd_golden G[8];
static int NG;

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

static pgd_cluster_config cfg_for(int n, const pgd_replica_role *roles, pgd_disagg *d, pgd_comm *comm, int block) {
    pgd_cluster_config cc = {
        .replicas = n, .roles = roles, .handoff = pgd_disagg_handoff, .handoff_ctx = d, .comm = comm};
    cc.exec.model = pgd_test_data(MODEL);
    cc.exec.backend.name = "cpu";
    cc.exec.backend.num_threads = n;
    cc.engine = (pgd_engine_config){
        .block_size = block, .num_blocks = 128, .max_num_batched_tokens = 512, .max_num_seqs = 8, .prefix_caching = 1};
    return cc;
}

/* The sampled requests' tokens from one engine (rank 0). */
static int reference(int32_t want[NSAMP][64], int *nw) {
    pgd_exec *x = NULL;
    pgd_exec_config xc = {.model = pgd_test_data(MODEL), .backend = {.name = "cpu", .num_threads = 1}};
    pgd_engine_config ec = {.block_size = BLOCK, .num_blocks = 64};
    pgd_engine *e = NULL;
    if (pgd_exec_create(&xc, &x) != PGD_OK || pgd_engine_create(&ec, x, NULL, &e) != PGD_OK) return -1;
    for (int i = 0; i < NSAMP; i++) {
        pgd_request_params p = sampled(i);
        if (pgd_engine_add_request(e, &p, NULL) != PGD_OK) return -1;
    }
    if (pgd_engine_run(e) != PGD_OK) return -1;
    for (int i = 0; i < NSAMP; i++) {
        const pgd_request_output *o = NULL;
        if (pgd_engine_get_output(e, i, &o) != PGD_OK) return -1;
        nw[i] = o->seqs[0].n_tokens;
        memcpy(want[i], o->seqs[0].tokens, sizeof(int32_t) * (size_t)nw[i]);
    }
    pgd_engine_destroy(e);
    pgd_exec_destroy(x);
    return 0;
}

static const char *layout(const pgd_replica_role *roles, int n, char *buf) {
    for (int i = 0; i < n; i++) buf[i] = roles[i] == PGD_REPLICA_PREFILL ? 'P' : 'D';
    buf[n] = 0;
    return buf;
}

/* Rank 0: goldens, sampled and fillers through the P/D cluster. */
static void goldens(pgd_cluster *c, pgd_disagg *d, const pgd_replica_role *roles, int32_t want[NSAMP][64],
                    const int *nw) {
    int n = pgd_cluster_size(c), nf = 0, total = 0, finished = 0, k0 = 0;
    char name[16];
    layout(roles, n, name);
    int64_t gid[8], sid[NSAMP];
    int32_t buf[64];
    for (int k = 0; k < NG; k++) {
        pgd_request_params p = {.prompt = G[k].ptoks, .n_prompt = G[k].np, .max_tokens = G[k].ng};
        CHECK(pgd_cluster_add_request(c, &p, &gid[k], NULL) == PGD_OK);
        total++;
    }
    for (int i = 0; i < NSAMP; i++) {
        pgd_request_params p = sampled(i);
        CHECK(pgd_cluster_add_request(c, &p, &sid[i], NULL) == PGD_OK);
        total++;
    }
    while (pgd_cluster_busy(c)) {
        if (nf < NFILL) {
            pgd_request_params p = filler(nf++, buf);
            CHECK(pgd_cluster_add_request(c, &p, NULL, NULL) == PGD_OK);
            total++;
        }
        pgd_status st = pgd_cluster_step(c, &k0, NULL);
        if (st != PGD_OK) {
            fprintf(stderr, "rank 0: %s: %s\n", name, pgd_last_error());
            failures++;
            return;
        }
        finished += k0;
    }
    CHECK(finished == total);
    int bad = 0;
    for (int k = 0; k < NG; k++) {
        const pgd_request_output *o = NULL;
        if (pgd_cluster_get_output(c, gid[k], &o) != PGD_OK) {
            bad++;
            continue;
        }
        int r = pgd_cluster_request_replica(c, gid[k]);
        int ok = o->finished && o->num_seqs == 1 && o->seqs[0].n_tokens == G[k].ng &&
                 !memcmp(o->seqs[0].tokens, G[k].gtoks, sizeof(int32_t) * (size_t)G[k].ng) &&
                 roles[r] == PGD_REPLICA_DECODE && o->finish >= o->first_token;
        if (!ok) fprintf(stderr, "rank 0: %s: golden %d differs (finished on replica %d)\n", name, k, r);
        bad += !ok;
    }
    for (int i = 0; i < NSAMP; i++) {
        const pgd_request_output *o = NULL;
        int ok = pgd_cluster_get_output(c, sid[i], &o) == PGD_OK && o->finished && o->seqs[0].n_tokens == nw[i] &&
                 !memcmp(o->seqs[0].tokens, want[i], sizeof(int32_t) * (size_t)nw[i]);
        if (!ok) fprintf(stderr, "rank 0: %s: sampled request %d differs\n", name, i);
        bad += !ok;
    }
    CHECK(bad == 0);
    pgd_disagg_stats ds;
    pgd_disagg_get_stats(d, &ds);
    CHECK(ds.transfers == total); /* no prompt here ends at its first token */
    int remote_ends = 0;
    size_t block_bytes = 5 * 2 * 4 * 8 * BLOCK * sizeof(float); /* stories260K: 5 layers, 4 KV heads x 8, f32 */
    for (int64_t i = 0; i < pgd_disagg_num_transfers(d); i++) {
        const pgd_kv_transfer *t = pgd_disagg_transfer(d, i);
        CHECK(roles[t->from] == PGD_REPLICA_PREFILL && roles[t->to] == PGD_REPLICA_DECODE);
        CHECK(t->kv_bytes > 0 && t->kv_bytes % block_bytes == 0 && t->wire_bytes > t->kv_bytes);
        remote_ends += t->from > 0 && t->to > 0;
    }
    for (int r = 0; r < n; r++) /* the transfers have ended: no prefill replica holds their blocks */
        if (pgd_cluster_engine(c, r)) CHECK(pgd_engine_held_blocks(pgd_cluster_engine(c, r)) == 0);
    printf("%s over %d ranks: %d goldens + %d sampled, %d differ; %lld hand-offs (%d rank to rank), %.0f KV bytes\n",
           name, n, NG, NSAMP, bad, (long long)ds.transfers, remote_ends, ds.kv_bytes);
}

/* Rank 0: the first hand-off fails; the step says which replica and rank. */
static void failing(pgd_cluster *c, const char *want1, const char *want2) {
    int32_t buf[64];
    for (int i = 0; i < 6; i++) {
        pgd_request_params p = filler(i, buf);
        CHECK(pgd_cluster_add_request(c, &p, NULL, NULL) == PGD_OK);
    }
    pgd_status st = PGD_OK;
    for (int s = 0; s < 50 && st == PGD_OK && pgd_cluster_busy(c); s++) st = pgd_cluster_step(c, NULL, NULL);
    CHECK(st != PGD_OK);
    int ok = strstr(pgd_last_error(), want1) && strstr(pgd_last_error(), want2);
    if (!ok) fprintf(stderr, "rank 0: wanted '%s' and '%s' in: %s\n", want1, want2, pgd_last_error());
    CHECK(ok);
    printf("failing hand-off: %s\n", pgd_last_error());
}

/* One cluster over every rank: phase 0 goldens, 1 a refused import, 2 a failed export. */
static void run(int phase, const pgd_replica_role *roles, int rank, int n, int32_t want[NSAMP][64], const int *nw) {
    pgd_comm *comm = NULL;
    if (pgd_comm_mpi_create(&comm) != PGD_OK) {
        fprintf(stderr, "rank %d: %s\n", rank, pgd_last_error());
        failures++;
        return;
    }
    pgd_disagg *d = NULL;
    if (pgd_disagg_create(NULL, &d) != PGD_OK) failures++;
    int block = phase == 1 && rank > 0 ? BLOCK / 2 : BLOCK; /* phase 1: the decode ranks' blocks differ */
    pgd_cluster_config cc = cfg_for(n, roles, d, comm, block);
    if (rank > 0) {
        if (pgd_cluster_serve(&cc, comm) != PGD_OK) {
            fprintf(stderr, "rank %d: %s\n", rank, pgd_last_error());
            failures++;
        }
    } else {
        pgd_cluster *c = NULL;
        if (pgd_cluster_create(&cc, &c) != PGD_OK) {
            fprintf(stderr, "rank 0: %s\n", pgd_last_error());
            failures++;
        } else if (phase == 0) {
            goldens(c, d, roles, want, nw);
        } else if (phase == 1) {
            failing(c, "(rank ", "this engine's block_size is 8");
        } else {
            failing(c, "replica 1 (rank 1): injected export failure", "hand-off of request");
        }
        pgd_cluster_destroy(c);
    }
    pgd_disagg_destroy(d);
    pgd_comm_destroy(comm);
}

int main(void) {
    NG = pgd_test_load_goldens(G, 8);
    if (!NG) {
        fprintf(stderr, "cannot read the golden data (%s)\n", pgd_test_data(PGD_GOLDEN_FILE));
        return 2;
    }
    int n = pgd_comm_mpi_world_size(), rank = pgd_comm_mpi_world_rank();
    if (n < 2 || n > 3) {
        fprintf(stderr, "run under mpirun -np 2 or 3\n");
        return 2;
    }
    int32_t want[NSAMP][64] = {{0}};
    int nw[NSAMP] = {0};
    if (rank == 0 && reference(want, nw) != 0) {
        fprintf(stderr, "rank 0: one engine's reference failed: %s\n", pgd_last_error());
        failures++;
    }
    const pgd_replica_role P = PGD_REPLICA_PREFILL, D = PGD_REPLICA_DECODE;
    pgd_replica_role first[3] = {P, D, D}, second[3] = {D, P, D}; /* N = 2: PD then DP */
    if (n == 3) second[0] = P, second[1] = P;                     /* N = 3: PDD then PPD */
    run(0, first, rank, n, want, nw);
    run(0, second, rank, n, want, nw);
    run(1, first, rank, n, want, nw);
    setenv("PAGODA_CLUSTER_FAIL_HANDOFF", "1", 1); /* replica 1 of `second` is a prefill replica */
    run(2, second, rank, n, want, nw);
    unsetenv("PAGODA_CLUSTER_FAIL_HANDOFF");
    if (rank == 0) printf("%s: %d failure%s\n", failures ? "FAILED" : "PASSED", failures, failures == 1 ? "" : "s");
    pgd_comm_mpi_finalize();
    return failures ? 1 : 0;
}
