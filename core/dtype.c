/* dtype.c - whole-row conversions between f32 and every weight dtype
 * (dtype.h): what loaders and the random-weight generator use to store a
 * tensor in the dtype the model runs in, and what the reference kernels and
 * tests use to read one back. */
#include <math.h>

#include "pagoda/dtype.h"

void pgd_dtype_to_f32(float *dst, const void *src, pgd_dtype t, size_t n) {
    switch (t) {
    case PGD_F32: memcpy(dst, src, n * sizeof(float)); return;
    case PGD_F16:
        for (size_t i = 0; i < n; i++) dst[i] = pgd_f16_to_f32(((const uint16_t *)src)[i]);
        return;
    case PGD_BF16:
        for (size_t i = 0; i < n; i++) dst[i] = pgd_bf16_to_f32(((const uint16_t *)src)[i]);
        return;
    case PGD_Q8_0:
        for (size_t b = 0; b < n / PGD_QBLOCK; b++) {
            const pgd_block_q8_0 *blk = (const pgd_block_q8_0 *)src + b;
            float d = pgd_f16_to_f32(blk->d);
            for (int j = 0; j < PGD_QBLOCK; j++) dst[b * PGD_QBLOCK + j] = d * (float)blk->q[j];
        }
        return;
    case PGD_Q4_0:
        for (size_t b = 0; b < n / PGD_QBLOCK; b++) {
            const pgd_block_q4_0 *blk = (const pgd_block_q4_0 *)src + b;
            float d = pgd_f16_to_f32(blk->d);
            for (int j = 0; j < PGD_QBLOCK / 2; j++) {
                dst[b * PGD_QBLOCK + j] = d * (float)((blk->q[j] & 15) - 8);
                dst[b * PGD_QBLOCK + j + PGD_QBLOCK / 2] = d * (float)((blk->q[j] >> 4) - 8);
            }
        }
        return;
    case PGD_Q8: return; /* KV rows only: pgd_kv_row_to_f32 */
    }
}

static void quantize_q8_0(pgd_block_q8_0 *dst, const float *x, size_t n) {
    for (size_t b = 0; b < n / PGD_QBLOCK; b++, x += PGD_QBLOCK) {
        float amax = 0;
        for (int j = 0; j < PGD_QBLOCK; j++) amax = fmaxf(amax, fabsf(x[j]));
        /* the scale is stored in f16: quantize against the stored value */
        uint16_t dh = pgd_f32_to_f16(amax / 127.0f);
        float d = pgd_f16_to_f32(dh), id = d > 0 ? 1.0f / d : 0.0f;
        dst[b].d = dh;
        for (int j = 0; j < PGD_QBLOCK; j++) {
            float q = roundf(x[j] * id);
            dst[b].q[j] = (int8_t)(q > 127 ? 127 : q < -127 ? -127 : q);
        }
    }
}

static void quantize_q4_0(pgd_block_q4_0 *dst, const float *x, size_t n) {
    for (size_t b = 0; b < n / PGD_QBLOCK; b++, x += PGD_QBLOCK) {
        float amax = 0, m = 0; /* the value of largest magnitude, with its sign */
        for (int j = 0; j < PGD_QBLOCK; j++)
            if (fabsf(x[j]) > amax) amax = fabsf(x[j]), m = x[j];
        /* m maps to -8 exactly, the other values into -8..7 */
        uint16_t dh = pgd_f32_to_f16(m / -8.0f);
        float d = pgd_f16_to_f32(dh), id = d != 0 ? 1.0f / d : 0.0f;
        dst[b].d = dh;
        for (int j = 0; j < PGD_QBLOCK / 2; j++) {
            int lo = (int)floorf(x[j] * id + 8.5f), hi = (int)floorf(x[j + PGD_QBLOCK / 2] * id + 8.5f);
            lo = lo < 0 ? 0 : lo > 15 ? 15 : lo;
            hi = hi < 0 ? 0 : hi > 15 ? 15 : hi;
            dst[b].q[j] = (uint8_t)(lo | hi << 4);
        }
    }
}

void pgd_dtype_from_f32(void *dst, pgd_dtype t, const float *src, size_t n) {
    switch (t) {
    case PGD_F32: memcpy(dst, src, n * sizeof(float)); return;
    case PGD_F16:
        for (size_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = pgd_f32_to_f16(src[i]);
        return;
    case PGD_BF16:
        for (size_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = pgd_f32_to_bf16(src[i]);
        return;
    case PGD_Q8_0: quantize_q8_0(dst, src, n); return;
    case PGD_Q4_0: quantize_q4_0(dst, src, n); return;
    case PGD_Q8: return; /* KV rows only: pgd_kv_row_from_f32 */
    }
}

void pgd_kv_row_from_f32(void *dst, pgd_dtype t, const float *src, int head_dim) {
    if (t != PGD_Q8) {
        pgd_dtype_from_f32(dst, t, src, (size_t)head_dim);
        return;
    }
    float amax = 0;
    for (int d = 0; d < head_dim; d++) amax = fmaxf(amax, fabsf(src[d]));
    float s = amax / 127.0f, is = s > 0 ? 1.0f / s : 0.0f;
    memcpy(dst, &s, sizeof s);
    int8_t *q = (int8_t *)dst + sizeof s;
    for (int d = 0; d < head_dim; d++) {
        float v = roundf(src[d] * is);
        q[d] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
    }
}

void pgd_kv_row_to_f32(float *dst, const void *src, pgd_dtype t, int head_dim) {
    if (t != PGD_Q8) {
        pgd_dtype_to_f32(dst, src, t, (size_t)head_dim);
        return;
    }
    float s;
    memcpy(&s, src, sizeof s);
    const int8_t *q = (const int8_t *)src + sizeof s;
    for (int d = 0; d < head_dim; d++) dst[d] = s * (float)q[d];
}
