/* dtype.c - whole-row conversions between f32 and every weight dtype
 * (dtype.h): what loaders and the random-weight generator use to store a
 * tensor in the dtype the model runs in, and what the reference kernels and
 * tests use to read one back. */
#include <math.h>

#include "pagoda/dtype.h"

/* Scale and min j (0..7) of a q4_k super-block: 6 bits each; the first
 * four in the low bits of bytes j and j + 4, the last four split between
 * the low / high nibbles of bytes j + 4 and the top bits of bytes j - 4 / j. */
static void q4_k_scale_min(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static void dequant_q4_k(float *y, const void *src, size_t n) {
    for (size_t b = 0; b < n / PGD_QK_K; b++) {
        const uint8_t *blk = (const uint8_t *)src + b * 144, *sc = blk + 4, *q = blk + 16;
        uint16_t dh, mh;
        memcpy(&dh, blk, 2);
        memcpy(&mh, blk + 2, 2);
        float d = pgd_f16_to_f32(dh), dmin = pgd_f16_to_f32(mh);
        for (int j = 0; j < PGD_QK_K; j += 64, q += 32) { /* 32 low nibbles, then 32 high ones */
            int s1, m1, s2, m2;
            q4_k_scale_min(j / 32, sc, &s1, &m1);
            q4_k_scale_min(j / 32 + 1, sc, &s2, &m2);
            for (int l = 0; l < 32; l++) *y++ = d * (float)s1 * (float)(q[l] & 0xF) - dmin * (float)m1;
            for (int l = 0; l < 32; l++) *y++ = d * (float)s2 * (float)(q[l] >> 4) - dmin * (float)m2;
        }
    }
}

static void dequant_q6_k(float *y, const void *src, size_t n) {
    for (size_t b = 0; b < n / PGD_QK_K; b++) {
        const uint8_t *blk = (const uint8_t *)src + b * 210, *ql = blk, *qh = blk + 128;
        const int8_t *sc = (const int8_t *)(blk + 192);
        uint16_t dh;
        memcpy(&dh, blk + 208, 2);
        float d = pgd_f16_to_f32(dh);
        for (int h = 0; h < PGD_QK_K; h += 128, y += 128, ql += 64, qh += 32, sc += 8)
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * (float)sc[is] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
    }
}

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
    case PGD_Q4_K: dequant_q4_k(dst, src, n); return;
    case PGD_Q6_K: dequant_q6_k(dst, src, n); return;
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
    case PGD_Q4_K:
    case PGD_Q6_K: return; /* read from files only */
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
