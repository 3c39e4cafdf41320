/* test_cluster_mpi.c - replicas on MPI ranks (cluster.h, cfg->comm), run
 * by ctest as `mpirun -np N test_cluster_mpi` (label mpi).
 *
 * Replica r on rank r; rank 0 routes and checks, the others serve
 * (pgd_cluster_serve). For every router: the stories260K goldens (twice
 * each, among fillers arriving while the cluster steps) must come out
 * exactly; every request finishes once; round-robin spreads the requests
 * over every rank. Then PAGODA_CLUSTER_FAIL_REPLICA=N-1:3 makes the last
 * rank's replica fail at its 4th step: rank 0's step must fail with
 * "replica N-1 (rank N-1): injected failure" and every rank must return
 * (no hang). Exit 0 when all checks pass. (Outside CUnit: every rank must
 * take part.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../test_util.h"
#include "pagoda/cluster.h"
#include "pagoda/comm.h"

static int failures;
#define CHECK(c)                                                                            \
    do {                                                                                    \
        if (!(c)) {                                                                         \
            fprintf(stderr, "rank 0: check failed at %s:%d: %s\n", __FILE__, __LINE__, #c); \
            failures++;                                                                     \
        }                                                                                   \
    } while (0)

static pgd_cluster_config cfg_for(int n, const char *router, pgd_comm *comm) {
    pgd_cluster_config cc = {.replicas = n, .router = router, .comm = comm};
    cc.exec.model = pgd_test_data("models/stories260K/stories260K.bin");
    cc.exec.backend.name = "cpu";
    cc.exec.backend.num_threads = n;
    cc.engine = (pgd_engine_config){
        .block_size = 16, .num_blocks = 64, .max_num_batched_tokens = 512, .max_num_seqs = 8, .prefix_caching = 1};
    return cc;
}

static pgd_request_params filler(int i, int32_t *buf) {
    int np = 3 + (i * 37) % 40;
    buf[0] = 1;
    for (int k = 1; k < np; k++) buf[k] = 260 + (i * 31 + k * 17) % 240;
    int mt = 4 + (i * 13) % 30;
    return (pgd_request_params){.prompt = buf, .n_prompt = np, .max_tokens = mt, .ignore_eos = 1};
}

static void goldens(pgd_cluster *c, const pgd_golden *G, int NG, const char *router) {
    int n = pgd_cluster_size(c), used[64] = {0}, where, nf = 0, finished = 0, k0 = 0;
    int64_t gid[16];
    int32_t buf[64];
    for (; nf < 4; nf++) {
        pgd_request_params p = filler(nf, buf);
        CHECK(pgd_cluster_add_request(c, &p, NULL, &where) == PGD_OK);
        used[where]++;
    }
    CHECK(pgd_cluster_step(c, &k0, NULL) == PGD_OK);
    finished += k0;
    for (int k = 0; k < 2 * NG; k++) {
        pgd_request_params p = {.prompt = G[k % NG].ptoks, .n_prompt = G[k % NG].np, .max_tokens = G[k % NG].ng};
        CHECK(pgd_cluster_add_request(c, &p, &gid[k], &where) == PGD_OK);
        used[where]++;
        if (k == NG - 1)
            for (int s = 0; s < 3; s++, finished += k0) CHECK(pgd_cluster_step(c, &k0, NULL) == PGD_OK);
    }
    while (pgd_cluster_busy(c)) {
        if (nf < 12) {
            pgd_request_params p = filler(nf++, buf);
            CHECK(pgd_cluster_add_request(c, &p, NULL, &where) == PGD_OK);
            used[where]++;
        }
        pgd_status st = pgd_cluster_step(c, &k0, NULL);
        if (st != PGD_OK) {
            fprintf(stderr, "rank 0: %s\n", pgd_last_error());
            failures++;
            return;
        }
        finished += k0;
    }
    CHECK(finished == nf + 2 * NG);
    int bad = 0;
    for (int k = 0; k < 2 * NG; k++) {
        const pgd_request_output *o = NULL;
        if (pgd_cluster_get_output(c, gid[k], &o) != PGD_OK) {
            bad++;
            continue;
        }
        const pgd_golden *g = &G[k % NG];
        int ok = o->finished && o->num_seqs == 1 && o->seqs[0].n_tokens == g->ng &&
                 !memcmp(o->seqs[0].tokens, g->gtoks, sizeof(int32_t) * (size_t)g->ng) &&
                 o->first_token >= o->arrival && o->finish >= o->first_token;
        if (!ok)
            fprintf(stderr, "rank 0: %s: golden %d differs on replica %d\n", router, k % NG,
                    pgd_cluster_request_replica(c, gid[k]));
        bad += !ok;
        pgd_cluster_release(c, gid[k]);
    }
    CHECK(bad == 0);
    if (!strcmp(router, "round-robin"))
        for (int r = 0; r < n; r++) CHECK(used[r] > 0);
    printf("%s over %d ranks: %d goldens exact, requests per replica:", router, n, 2 * NG - bad);
    for (int r = 0; r < n; r++) printf(" %d", used[r]);
    printf("\n");
}

int main(void) {
    pgd_golden G[8];
    int NG = pgd_test_load_goldens(G, 8);
    if (!NG) {
        fprintf(stderr, "cannot read the golden data (%s)\n", pgd_test_data(PGD_GOLDEN_FILE));
        return 2;
    }
    int n = pgd_comm_mpi_world_size(), rank = pgd_comm_mpi_world_rank();
    if (n < 2) {
        fprintf(stderr, "run under mpirun -np N (N >= 2)\n");
        return 2;
    }
    for (const char *const *router = pgd_router_names(); *router; router++) {
        pgd_comm *comm = NULL;
        if (pgd_comm_mpi_create(&comm) != PGD_OK) {
            fprintf(stderr, "rank %d: %s\n", rank, pgd_last_error());
            return 1;
        }
        pgd_cluster_config cc = cfg_for(n, *router, comm);
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
            } else {
                goldens(c, G, NG, *router);
                pgd_cluster_destroy(c);
            }
        }
        pgd_comm_destroy(comm);
    }
    /* the last rank's replica fails at its 4th step */
    char fail[32];
    snprintf(fail, sizeof fail, "%d:3", n - 1);
    setenv("PAGODA_CLUSTER_FAIL_REPLICA", fail, 1);
    pgd_comm *comm = NULL;
    if (pgd_comm_mpi_create(&comm) != PGD_OK) return 1;
    pgd_cluster_config cc = cfg_for(n, "round-robin", comm);
    if (rank > 0) {
        pgd_status st = pgd_cluster_serve(&cc, comm);
        if (rank == n - 1 && (st == PGD_OK || !strstr(pgd_last_error(), "injected failure"))) {
            fprintf(stderr, "rank %d: its failure was not reported\n", rank);
            failures++;
        }
        if (rank != n - 1 && st != PGD_OK) failures++;
    } else {
        pgd_cluster *c = NULL;
        if (pgd_cluster_create(&cc, &c) != PGD_OK) {
            failures++;
        } else {
            int32_t buf[64];
            for (int i = 0; i < 3 * n; i++) {
                pgd_request_params p = filler(i, buf);
                p.max_tokens = 20;
                CHECK(pgd_cluster_add_request(c, &p, NULL, NULL) == PGD_OK);
            }
            pgd_status st = PGD_OK;
            for (int s = 0; s < 10 && st == PGD_OK; s++) st = pgd_cluster_step(c, NULL, NULL);
            char want[64];
            snprintf(want, sizeof want, "replica %d (rank %d): injected failure", n - 1, n - 1);
            CHECK(st == PGD_ERR_DEVICE);
            CHECK(strstr(pgd_last_error(), want) != NULL);
            printf("failing replica: %s\n", pgd_last_error());
            pgd_cluster_destroy(c);
        }
    }
    pgd_comm_destroy(comm);
    if (rank == 0) printf("%s: %d failure%s\n", failures ? "FAILED" : "PASSED", failures, failures == 1 ? "" : "s");
    pgd_comm_mpi_finalize();
    return failures ? 1 : 0;
}
