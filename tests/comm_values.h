/* comm_values.h - test data for the communicator suites (test_comm.c over
 * threads, mpi/test_comm_mpi.c under mpirun): a deterministic value per
 * (rank, element, seed), buffers of it in f32/f16/bf16, and the reference
 * all-reduce (a serial sum in rank order, in f32, rounded once), so both
 * transports are checked against the very same expectation. */
#ifndef PAGODA_TEST_COMM_VALUES_H
#define PAGODA_TEST_COMM_VALUES_H

#include <stdint.h>
#include <stdlib.h>

#include "pagoda/dtype.h"

/* Deterministic value of element i on rank r (test `seed`), in [-2, 2). */
static inline float val(int r, size_t i, int seed) {
    uint64_t s = (uint64_t)(r + 1) * 0x9E3779B97F4A7C15ull ^ (uint64_t)i * 0xBF58476D1CE4E5B9ull ^
                 (uint64_t)seed * 0x94D049BB133111EBull;
    s ^= s >> 31;
    s *= 0xD6E8FEB86645D68Bull;
    s ^= s >> 29;
    return (float)((double)(s >> 40) / 16777216.0 * 4.0 - 2.0);
}

static inline void fill(void *buf, size_t count, pgd_dtype dt, int r, int seed) {
    for (size_t i = 0; i < count; i++) {
        float v = val(r, i, seed);
        if (dt == PGD_F32) ((float *)buf)[i] = v;
        else if (dt == PGD_F16) ((uint16_t *)buf)[i] = pgd_f32_to_f16(v);
        else ((uint16_t *)buf)[i] = pgd_f32_to_bf16(v);
    }
}

static inline float elem(const void *buf, size_t i, pgd_dtype dt) {
    if (dt == PGD_F32) return ((const float *)buf)[i];
    uint16_t h = ((const uint16_t *)buf)[i];
    return dt == PGD_F16 ? pgd_f16_to_f32(h) : pgd_bf16_to_f32(h);
}

/* Serial sum over ranks in rank order, in f32, rounded once. */
static inline void ref_sum(void *out, size_t count, pgd_dtype dt, int n, int seed) {
    size_t es = pgd_dtype_size(dt);
    void *tmp = malloc(count * es + 1);
    float *acc = malloc(count * sizeof *acc + 1);
    for (int r = 0; r < n; r++) {
        fill(tmp, count, dt, r, seed);
        for (size_t i = 0; i < count; i++) acc[i] = r == 0 ? elem(tmp, i, dt) : acc[i] + elem(tmp, i, dt);
    }
    for (size_t i = 0; i < count; i++) {
        if (dt == PGD_F32) ((float *)out)[i] = acc[i];
        else if (dt == PGD_F16) ((uint16_t *)out)[i] = pgd_f32_to_f16(acc[i]);
        else ((uint16_t *)out)[i] = pgd_f32_to_bf16(acc[i]);
    }
    free(tmp);
    free(acc);
}

#endif
