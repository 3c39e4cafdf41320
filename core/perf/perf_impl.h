/* perf_impl.h - shared by the perf gate's workload files: the workload
 * definitions of each file and a hash for check values. */
#ifndef PAGODA_PERF_IMPL_H
#define PAGODA_PERF_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "pagoda/perf.h"

/* FNV-1a over bytes, continuing from h (start with PGD_PERF_HASH0). */
#define PGD_PERF_HASH0 1469598103934665603ull
static inline uint64_t pgd_perf_hash(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* perf_model.c: forward passes and the attention kernel on the CPU (1 thread) */
extern const pgd_perf_workload pgd_perf_decode_b1, pgd_perf_decode_b32, pgd_perf_prefill_128, pgd_perf_attention_long,
    pgd_perf_decode_b1_q8_0, pgd_perf_decode_b1_q4_0, pgd_perf_prefill_128_q8_0;
/* perf_serving.c: scheduler on the sim, tokenizer, a sim run, a config load */
extern const pgd_perf_workload pgd_perf_sched_preempt, pgd_perf_tokenize_sharegpt, pgd_perf_run_sim,
    pgd_perf_config_load;

#endif
