/* test_parallel_mpi.c - tensor/pipeline parallel layouts over MPI ranks,
 * run by ctest as `mpirun -np TP*PP test_parallel_mpi TP PP [STAGES]`
 * (label mpi; STAGES: stories260K's layers per stage, e.g. 1,3,1).
 *
 * Every rank loads its part of each model (comm = mpi); rank 0 drives:
 *  1. stories260K through the engine (goldens among fillers, the first
 *     golden with n = 2 forks, a filler aborted, a small block budget and
 *     swap preemption so KV copy and swap commands reach every rank), with
 *     batches in flight (pp of them) and again with async (pp + 1): every
 *     golden sequence must equal its golden tokens exactly;
 *  2. random stories15M: the logits of a ragged batch (prefill chunks, then
 *     decode tokens) against a one-rank copy of the model loaded by rank 0
 *     itself: relative error < 1e-4 and the same greedy token wherever the
 *     top-two gap is larger than that.
 * The other ranks serve. Exit 0 when all checks pass; rank 0 prints each
 * figure. (Runs outside CUnit because every rank must take part.) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda/comm.h"
#include "pagoda/engine.h"
#include "pagoda/exec.h"
#include "pagoda/model.h"
#include "pagoda/parallel.h"
#include "pagoda/tokenizer.h"
#include "../parallel_batch.h"
#include "../test_util.h"

static int failures;
#define CHECK(cond, ...)                                     \
    do {                                                     \
        if (!(cond)) {                                       \
            failures++;                                      \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                    \
            fputc('\n', stderr);                             \
        }                                                    \
    } while (0)

static pgd_status load(const char *spec, int tp, int pp, const char *stages, int async, pgd_exec **x) {
    pgd_exec_config xc = {.model = spec, .backend = {.name = "cpu", .num_threads = 2},
                          .parallel = {.tp = tp, .pp = pp, .comm = "mpi", .stage_layers = stages}, .async = async};
    return pgd_exec_create(&xc, x);
}

static void golden_check(pgd_exec *m, const pgd_tokenizer *tok, const pgd_golden *G, int NG) {
    pgd_engine_config cfg = {.block_size = 16, .num_blocks = 40, .max_num_batched_tokens = 512,
                             .max_num_seqs = 16, .num_host_blocks = 128, .preemption = PGD_PREEMPT_SWAP};
    pgd_engine *e = NULL;
    if (pgd_engine_create(&cfg, m, tok, &e) != PGD_OK) {
        CHECK(0, "engine: %s", pgd_last_error());
        return;
    }
    int32_t buf[128];
    int64_t gid[8];
    int nf = 0;
    for (int g = 0; g < NG; g++) {
        pgd_request_params p = {.prompt = G[g].ptoks, .n_prompt = G[g].np, .max_tokens = G[g].ng,
                                .true_output_len = G[g].ng, .n = g == 0 ? 2 : 1};
        CHECK(pgd_engine_add_request(e, &p, &gid[g]) == PGD_OK, "add golden %d: %s", g, pgd_last_error());
    }
    int64_t aborted = -1;
    while (pgd_engine_has_unfinished(e)) {
        if (nf == 6 && aborted < 0) { /* a filler aborted while running */
            aborted = NG + 2;
            CHECK(pgd_engine_abort(e, aborted) == PGD_OK, "abort: %s", pgd_last_error());
        }
        if (nf < 16) { /* fillers keep the batch full and force preemption */
            int np = 3 + (nf * 37) % 60;
            buf[0] = 1;
            for (int k = 1; k < np; k++) buf[k] = 260 + (nf * 31 + k * 17) % 240;
            int mt = 4 + (nf * 13) % 40;
            pgd_request_params p = {.prompt = buf, .n_prompt = np, .max_tokens = mt, .true_output_len = mt,
                                    .ignore_eos = 1};
            nf++;
            CHECK(pgd_engine_add_request(e, &p, NULL) == PGD_OK, "add filler");
        }
        if (pgd_engine_step(e, NULL) != PGD_OK) {
            CHECK(0, "step: %s", pgd_last_error());
            break;
        }
    }
    int seqs = 0, good = 0;
    for (int g = 0; g < NG; g++) {
        const pgd_request_output *o = NULL;
        if (pgd_engine_get_output(e, gid[g], &o) != PGD_OK) continue;
        for (int k = 0; k < o->num_seqs; k++) {
            seqs++;
            good += o->seqs[k].n_tokens == G[g].ng &&
                    !memcmp(o->seqs[k].tokens, G[g].gtoks, sizeof(int32_t) * (size_t)G[g].ng);
        }
    }
    pgd_engine_stats st;
    pgd_engine_get_stats(e, &st);
    printf("golden: %d of %d sequences exact (%lld steps, %lld preemptions by swap, %d batches in flight)\n", good,
           seqs, (long long)st.steps, (long long)st.preemptions, st.max_in_flight);
    const pgd_request_output *ab = NULL;
    CHECK(pgd_engine_get_output(e, aborted, &ab) == PGD_OK && ab->finished && !strcmp(ab->finish_reason, "abort"),
          "the aborted filler did not finish as aborted");
    CHECK(seqs == NG + 1 && good == seqs, "golden sequences: %d of %d exact", good, seqs);
    CHECK(st.preemptions > 0, "no preemption happened; the swap path was not exercised");
    pgd_engine_destroy(e);
}

static void logits_check(pgd_exec *m, int tp, int pp) {
    /* the reference: the whole model on this rank alone */
    pgd_backend_config bc = {.name = "cpu", .num_threads = 1};
    pgd_backend *rb = NULL;
    pgd_model *ref = NULL;
    pgd_kv_cache *rkv = NULL;
    if (pgd_backend_create(&bc, &rb) != PGD_OK || pgd_model_load("random:stories15M", NULL, rb, &ref) != PGD_OK ||
        pgd_model_kv_cache_create(ref, PB_BS, PB_BLOCKS, &rkv) != PGD_OK ||
        pgd_exec_kv_create(m, PB_BS, PB_BLOCKS, 0) != PGD_OK) {
        CHECK(0, "setup: %s", pgd_last_error());
        goto out;
    }
    const int V = pgd_exec_model_config(m)->vocab_size;
    int32_t tok[128], qs[PB_NS + 1], lens[PB_NS], bt[PB_NS * PB_MBS];
    for (int step = 0; step < 2; step++) {
        pgd_batch b;
        pgd_parallel_batch(&b, tok, qs, lens, bt, step);
        int rows = b.all_logits ? b.num_tokens : b.num_seqs;
        float *a = malloc(sizeof(float) * (size_t)rows * V), *g = malloc(sizeof(float) * (size_t)rows * V);
        CHECK(pgd_model_forward(ref, rkv, &b, a) == PGD_OK, "reference forward: %s", pgd_last_error());
        CHECK(pgd_exec_forward(m, &b, g) == PGD_OK, "parallel forward: %s", pgd_last_error());
        int checked, same;
        double err = pgd_parallel_compare(a, g, rows, V, &checked, &same);
        printf("logits tp %d pp %d step %d: rel err %.2e, greedy same %d/%d\n", tp, pp, step, err, same, checked);
        CHECK(err < 1e-4, "relative error %.2e >= 1e-4", err);
        CHECK(checked > 0 && same == checked, "greedy tokens differ: %d of %d", same, checked);
        free(a);
        free(g);
    }
out:
    pgd_kv_cache_destroy(rkv);
    pgd_model_destroy(ref);
    pgd_backend_destroy(rb);
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: mpirun -np TP*PP %s TP PP [STAGE_LAYERS of stories260K]\n", argv[0]);
        return 2;
    }
    int tp = atoi(argv[1]), pp = atoi(argv[2]);
    const char *stages = argc == 4 ? argv[3] : NULL;
    pgd_golden G[8];
    int NG = pgd_test_load_goldens(G, 8);
    pgd_tokenizer *tok = NULL;
    if (!NG || pgd_tokenizer_load_llama2c(pgd_test_data("models/stories260K/tok512.bin"), 512, &tok) != PGD_OK) {
        fprintf(stderr, "cannot read the golden data (%s)\n", pgd_test_data(PGD_GOLDEN_FILE));
        return 2;
    }
    pgd_exec *m = NULL;
    int driver = 0;
    /* 1: goldens, then again with async */
    for (int async = 0; async < 2; async++) {
        if (load(pgd_test_data("models/stories260K/stories260K.bin"), tp, pp, stages, async, &m) != PGD_OK) {
            fprintf(stderr, "rank %d: %s\n", pgd_comm_mpi_world_rank(), pgd_last_error());
            return 1;
        }
        driver = pgd_exec_is_driver(m);
        if (driver) {
            printf("layout: %s\n", pgd_exec_describe(m));
            golden_check(m, tok, G, NG);
        } else if (pgd_exec_serve(m) != PGD_OK) {
            fprintf(stderr, "rank %d: %s\n", pgd_comm_mpi_world_rank(), pgd_last_error());
            failures++;
        }
        pgd_exec_destroy(m);
    }
    /* 2: logits */
    if (load("random:stories15M", tp, pp, NULL, 0, &m) != PGD_OK) { /* 6 layers: an even split */
        fprintf(stderr, "rank %d: %s\n", pgd_comm_mpi_world_rank(), pgd_last_error());
        return 1;
    }
    if (pgd_exec_is_driver(m)) logits_check(m, tp, pp);
    else if (pgd_exec_serve(m) != PGD_OK) {
        fprintf(stderr, "rank %d: %s\n", pgd_comm_mpi_world_rank(), pgd_last_error());
        failures++;
    }
    pgd_exec_destroy(m);
    pgd_tokenizer_destroy(tok);
    if (driver) printf("%s: %d failure%s\n", failures ? "FAILED" : "PASSED", failures, failures == 1 ? "" : "s");
    pgd_comm_mpi_finalize();
    return failures ? 1 : 0;
}
