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

/* A scale that is at least v / div once stored in f16 (v >= 0): the
 * nearest f16, one step up where rounding went below. */
static uint16_t f16_scale_up(float v, float div) {
    uint16_t h = pgd_f32_to_f16(v / div);
    if (pgd_f16_to_f32(h) * div < v && h < 0x7bff) h++;
    return h;
}

/* ceil(v / s) clamped to 0..hi (0 when s is 0). */
static int ceil_div(float v, float s, int hi) {
    if (!(s > 0)) return 0;
    int q = (int)ceilf(v / s);
    return q < 0 ? 0 : q > hi ? hi : q;
}

/* q4_k: per sub-block j of 32, the min m_j = -min(x, 0) and the range
 * (max - offset) / 15; d and dmin = the largest of them / 63 (rounded up
 * in f16), the 6-bit sc_j and m_j rounded up, the offset taken as stored
 * (-dmin m_j), and each value q = round((x + dmin m_j) / (d sc_j)) in 0..15. */
static void quantize_q4_k(void *dst, const float *x, size_t n) {
    for (size_t b = 0; b < n / PGD_QK_K; b++, x += PGD_QK_K) {
        uint8_t *blk = (uint8_t *)dst + b * 144, *sc = blk + 4, *qs = blk + 16;
        float lo[8], hi[8], mn = 0;
        for (int j = 0; j < 8; j++) {
            lo[j] = 0, hi[j] = 0;
            for (int l = 0; l < 32; l++) lo[j] = fminf(lo[j], x[32 * j + l]), hi[j] = fmaxf(hi[j], x[32 * j + l]);
            mn = fmaxf(mn, -lo[j]);
        }
        uint16_t mh = f16_scale_up(mn, 63.0f);
        float dmin = pgd_f16_to_f32(mh), off[8], rmax = 0;
        int m[8], s[8];
        for (int j = 0; j < 8; j++) {
            m[j] = ceil_div(-lo[j], dmin, 63);
            off[j] = dmin * (float)m[j];
            rmax = fmaxf(rmax, (hi[j] + off[j]) / 15.0f);
        }
        uint16_t dh = f16_scale_up(rmax, 63.0f);
        float d = pgd_f16_to_f32(dh);
        memcpy(blk, &dh, 2);
        memcpy(blk + 2, &mh, 2);
        memset(sc, 0, 12);
        for (int j = 0; j < 8; j++) {
            s[j] = ceil_div((hi[j] + off[j]) / 15.0f, d, 63);
            if (j < 4) {
                sc[j] = (uint8_t)s[j];
                sc[j + 4] = (uint8_t)m[j];
            } else { /* the layout q4_k_scale_min reads */
                sc[j + 4] = (uint8_t)((s[j] & 0xF) | (m[j] & 0xF) << 4);
                sc[j - 4] |= (uint8_t)((s[j] >> 4) << 6);
                sc[j] |= (uint8_t)((m[j] >> 4) << 6);
            }
        }
        uint8_t q[PGD_QK_K];
        for (int j = 0; j < 8; j++) {
            float step = d * (float)s[j], is = step > 0 ? 1.0f / step : 0.0f;
            for (int l = 0; l < 32; l++) {
                int v = (int)lrintf((x[32 * j + l] + off[j]) * is);
                q[32 * j + l] = (uint8_t)(v < 0 ? 0 : v > 15 ? 15 : v);
            }
        }
        for (int c = 0; c < 4; c++) /* chunk c of 64: 32 low nibbles, then 32 high ones */
            for (int l = 0; l < 32; l++) qs[32 * c + l] = (uint8_t)(q[64 * c + l] | q[64 * c + 32 + l] << 4);
    }
}

/* q6_k: per sub-block i of 16, the step s_i = max|x| / 31; d = the largest
 * / 127 (rounded up in f16), the int8 sc_i = s_i / d rounded up, and each
 * value q = round(x / (d sc_i)) in -31..31, stored + 32. */
static void quantize_q6_k(void *dst, const float *x, size_t n) {
    for (size_t b = 0; b < n / PGD_QK_K; b++, x += PGD_QK_K) {
        uint8_t *blk = (uint8_t *)dst + b * 210, *ql = blk, *qh = blk + 128;
        int8_t *sc = (int8_t *)(blk + 192);
        float amax[16], smax = 0;
        for (int i = 0; i < 16; i++) {
            amax[i] = 0;
            for (int l = 0; l < 16; l++) amax[i] = fmaxf(amax[i], fabsf(x[16 * i + l]));
            smax = fmaxf(smax, amax[i] / 31.0f);
        }
        uint16_t dh = f16_scale_up(smax, 127.0f);
        float d = pgd_f16_to_f32(dh);
        memcpy(blk + 208, &dh, 2);
        uint8_t q[PGD_QK_K];
        for (int i = 0; i < 16; i++) {
            int s = ceil_div(amax[i] / 31.0f, d, 127);
            sc[i] = (int8_t)s;
            float step = d * (float)s, is = step > 0 ? 1.0f / step : 0.0f;
            for (int l = 0; l < 16; l++) {
                int v = (int)lrintf(x[16 * i + l] * is);
                q[16 * i + l] = (uint8_t)((v < -32 ? -32 : v > 31 ? 31 : v) + 32);
            }
        }
        memset(qh, 0, 64);
        for (int h = 0; h < 2; h++) /* the layout dequant_q6_k reads */
            for (int l = 0; l < 32; l++) {
                const uint8_t *v = q + 128 * h + l;
                ql[64 * h + l] = (uint8_t)((v[0] & 0xF) | (v[64] & 0xF) << 4);
                ql[64 * h + l + 32] = (uint8_t)((v[32] & 0xF) | (v[96] & 0xF) << 4);
                qh[32 * h + l] = (uint8_t)((v[0] >> 4) | (v[32] >> 4) << 2 | (v[64] >> 4) << 4 | (v[96] >> 4) << 6);
            }
    }
}

float pgd_kquant_get(const void *w, pgd_dtype t, size_t i) {
    int j = (int)(i % PGD_QK_K);
    uint16_t dh;
    if (t == PGD_Q4_K) {
        const uint8_t *blk = (const uint8_t *)w + i / PGD_QK_K * 144;
        uint16_t mh;
        int s, m;
        memcpy(&dh, blk, 2);
        memcpy(&mh, blk + 2, 2);
        q4_k_scale_min(j / 32, blk + 4, &s, &m);
        uint8_t byte = blk[16 + 32 * (j / 64) + j % 32];
        int q = j % 64 < 32 ? byte & 0xF : byte >> 4;
        return pgd_f16_to_f32(dh) * (float)s * (float)q - pgd_f16_to_f32(mh) * (float)m;
    }
    const uint8_t *blk = (const uint8_t *)w + i / PGD_QK_K * 210;
    int h = j / 128, v = j % 128, g = v / 32, l = v % 32;
    uint8_t lb = blk[64 * h + l + (g & 1) * 32];
    int q = ((g < 2 ? lb & 0xF : lb >> 4) | ((blk[128 + 32 * h + l] >> (2 * g)) & 3) << 4) - 32;
    memcpy(&dh, blk + 208, 2);
    return pgd_f16_to_f32(dh) * (float)(int8_t)blk[192 + 8 * h + v / 16] * (float)q;
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
    case PGD_Q4_K: quantize_q4_k(dst, src, n); return;
    case PGD_Q6_K: quantize_q6_k(dst, src, n); return;
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
