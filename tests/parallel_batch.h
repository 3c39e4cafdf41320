/* parallel_batch.h - the ragged two-step batch the parallel-layout tests
 * (test_parallel.c over threads, mpi/test_parallel_mpi.c over MPI) compare
 * against one rank: step 0 prefills chunks of 23, 7, 40, 1 and 12 tokens of
 * five sequences (all logits), step 1 decodes one token each (last
 * logits); block tables are scrambled. */
#ifndef PAGODA_TEST_PARALLEL_BATCH_H
#define PAGODA_TEST_PARALLEL_BATCH_H

#include "pagoda/model.h"
#include "test_util.h"

enum { PB_NS = 5, PB_MBS = 8, PB_BS = 16, PB_BLOCKS = 1 + PB_NS * PB_MBS };

static inline void pgd_parallel_batch(pgd_batch *b, int32_t *tok, int32_t *qs, int32_t *lens, int32_t *bt,
                                      int step) {
    static const int chunk[PB_NS] = {23, 7, 40, 1, 12};
    int t = 0;
    qs[0] = 0;
    for (int s = 0; s < PB_NS; s++) {
        int q = step == 0 ? chunk[s] : 1;
        for (int j = 0; j < q; j++) tok[t + j] = 1 + (s * 977 + j * 131 + step * 7) % 31999;
        t += q;
        qs[s + 1] = t;
        lens[s] = chunk[s] + step;
        for (int k = 0; k < PB_MBS; k++) bt[s * PB_MBS + k] = 1 + s * PB_MBS + (k * 5 + s) % PB_MBS;
    }
    *b = (pgd_batch){.num_seqs = PB_NS, .num_tokens = t, .tokens = tok, .query_start = qs, .seq_lens = lens,
                     .block_tables = bt, .max_blocks_per_seq = PB_MBS, .all_logits = step == 0};
}

/* Compare row-major logits (rows, vocab) `got` with reference `ref`: the
 * relative error pgd_test_rel_err (max|got - ref| / max|ref|), and among the
 * rows whose reference top-two gap exceeds 1e-4 of its largest magnitude (a
 * clear winner) how many keep the same greedy token. */
static inline double pgd_parallel_compare(const float *ref, const float *got, int rows, int vocab, int *checked,
                                          int *same) {
    *checked = *same = 0;
    for (int r = 0; r < rows; r++) {
        const float *x = ref + (size_t)r * vocab, *y = got + (size_t)r * vocab;
        int ix = 0, iy = 0;
        float top = x[0], second = -3.4e38f, amax = 0;
        for (int v = 0; v < vocab; v++) {
            float a = x[v] < 0 ? -x[v] : x[v];
            if (a > amax) amax = a;
            if (v && x[v] > top) { second = top; top = x[v]; ix = v; }
            else if (v && x[v] > second) second = x[v];
            if (y[v] > y[iy]) iy = v;
        }
        if (top - second > 1e-4 * amax) {
            (*checked)++;
            *same += ix == iy;
        }
    }
    return pgd_test_rel_err(got, ref, (size_t)rows * vocab);
}

#endif
