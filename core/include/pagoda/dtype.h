/* dtype.h - element types of weights and caches, and scalar conversions.
 * Activations are always f32; weights may be f32, f16, bf16, or one of the
 * block-quantized formats of GGUF (same byte layout as ggml's):
 *   q8_0: blocks of 32 values {f16 d; int8 q[32]}, value = d * q (34 bytes)
 *   q4_0: blocks of 32 values {f16 d; uint8 q[16]}, value j of the block is
 *         d * ((q[j] & 15) - 8) for j < 16, d * ((q[j-16] >> 4) - 8) after
 *         (18 bytes)
 * A quantized tensor is stored row by row; its row length must be a multiple
 * of 32 (a block never straddles two rows), and every offset into it a
 * multiple of 32 elements. pgd_dtype_bytes gives the bytes of n elements
 * for any weight dtype; pgd_dtype_size only for the element types.
 *
 * q8 is a KV cache dtype only (never a weight's): each cache row, the
 * head_dim values of one token in one KV head, is stored as an f32 scale
 * followed by head_dim int8 values, value = scale * q, scale = max|x| / 127
 * of that row (pgd_kv_row_bytes = head_dim + 4 bytes). One scale per token
 * per head because a row is complete when the token's K/V is written: a
 * scale shared by several tokens would have to re-quantize the earlier ones
 * whenever a later token is larger, and heads differ in magnitude. A row is
 * the unit the attention kernels read, so the scale costs one multiply per
 * row (the q . k score, or p * v's weight).
 *
 * q4_k and q6_k are GGUF's k-quants, kept quantized like q8_0/q4_0 (read
 * from GGUF files, or quantized from f32 by pgd_dtype_from_f32 for random
 * weights), in super-blocks of 256 values:
 *   q4_k: {f16 d; f16 dmin; uint8 scales[12]; uint8 qs[128]} (144 bytes):
 *         8 sub-blocks of 32, each with a 6-bit scale sc and min m packed in
 *         scales[]; value = d * sc * q - dmin * m, q a 4-bit nibble
 *   q6_k: {uint8 ql[128]; uint8 qh[64]; int8 scales[16]; f16 d} (210 bytes):
 *         16 sub-blocks of 16 with an int8 scale each; value =
 *         d * scale * (q - 32), q 6 bits (4 low in ql, 2 high in qh)
 * (pgd_dtype_to_f32 decodes them as ggml's dequantize_row_q4_K/_q6_K do;
 * rows and offsets are whole super-blocks: a k-quant tensor's row length
 * must be a multiple of 256.) pgd_dtype_is_quant is the two 32-value block
 * formats only (their kernels); pgd_dtype_is_blocked covers all four, and
 * pgd_dtype_block gives the values per block. */
#ifndef PAGODA_DTYPE_H
#define PAGODA_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum pgd_dtype {
    PGD_F32 = 0,
    PGD_F16 = 1,
    PGD_BF16 = 2,
    PGD_Q8_0 = 3,
    PGD_Q4_0 = 4,
    PGD_Q8 = 5,
    PGD_Q4_K = 6,
    PGD_Q6_K = 7
} pgd_dtype;
#define PGD_DTYPE_COUNT 8

#define PGD_QBLOCK 32 /* values per quantized block */
typedef struct pgd_block_q8_0 { uint16_t d; int8_t q[PGD_QBLOCK]; } pgd_block_q8_0;
typedef struct pgd_block_q4_0 { uint16_t d; uint8_t q[PGD_QBLOCK / 2]; } pgd_block_q4_0;

/* The block-quantized weight formats (q8_0, q4_0); q8 (KV only) is not one. */
static inline int pgd_dtype_is_quant(pgd_dtype t) { return t == PGD_Q8_0 || t == PGD_Q4_0; }
#define PGD_QK_K 256 /* values per k-quant super-block */
/* 1 for a GGUF k-quant (q4_k, q6_k): super-blocks of 256 values. */
static inline int pgd_dtype_is_kquant(pgd_dtype t) { return t == PGD_Q4_K || t == PGD_Q6_K; }
/* 1 for any block-stored weight dtype (q8_0, q4_0, q4_k, q6_k). */
static inline int pgd_dtype_is_blocked(pgd_dtype t) { return pgd_dtype_is_quant(t) || pgd_dtype_is_kquant(t); }
/* Values per block of dtype t: 32 (q8_0, q4_0), 256 (q4_k, q6_k), else 1.
 * Rows, and every offset into a tensor, are whole blocks. */
static inline int pgd_dtype_block(pgd_dtype t) {
    return pgd_dtype_is_kquant(t) ? PGD_QK_K : pgd_dtype_is_quant(t) ? PGD_QBLOCK : 1;
}
/* 1 for a dtype weights may run in (every one but the KV-only q8). */
static inline int pgd_dtype_is_weight(pgd_dtype t) { return (unsigned)t < PGD_DTYPE_COUNT && t != PGD_Q8; }
/* 1 for a dtype a KV cache may have: f32, f16, bf16, q8. */
static inline int pgd_dtype_is_kv(pgd_dtype t) { return t == PGD_F32 || t == PGD_F16 || t == PGD_BF16 || t == PGD_Q8; }
/* Bytes of one element of an element type (f32, f16, bf16; q8: its int8
 * values, without the per-row scale: use pgd_kv_row_bytes). */
static inline size_t pgd_dtype_size(pgd_dtype t) { return t == PGD_F32 ? 4 : t == PGD_Q8 ? 1 : 2; }
/* Bytes of one KV cache row (head_dim values) of KV dtype t. */
static inline size_t pgd_kv_row_bytes(pgd_dtype t, int head_dim) {
    return t == PGD_Q8 ? (size_t)head_dim + sizeof(float) : (size_t)head_dim * pgd_dtype_size(t);
}
/* Bytes of n elements; for a quantized type n must be a multiple of 32. */
static inline size_t pgd_dtype_bytes(pgd_dtype t, size_t n) {
    if (t == PGD_Q8_0) return n / PGD_QBLOCK * sizeof(pgd_block_q8_0);
    if (t == PGD_Q4_0) return n / PGD_QBLOCK * sizeof(pgd_block_q4_0);
    if (t == PGD_Q4_K) return n / PGD_QK_K * 144;
    if (t == PGD_Q6_K) return n / PGD_QK_K * 210;
    return n * pgd_dtype_size(t);
}
/* Bytes per element, fractional for the quantized types (34/32, 18/32). */
static inline double pgd_dtype_elem_bytes(pgd_dtype t) {
    if (pgd_dtype_is_kquant(t)) return (double)pgd_dtype_bytes(t, PGD_QK_K) / PGD_QK_K;
    return t == PGD_Q8_0 ? 34.0 / 32 : t == PGD_Q4_0 ? 18.0 / 32 : (double)pgd_dtype_size(t);
}
static inline const char *pgd_dtype_name(pgd_dtype t) {
    static const char *const names[PGD_DTYPE_COUNT] = {"f32", "f16", "bf16", "q8_0", "q4_0", "q8", "q4_k", "q6_k"};
    return (unsigned)t < PGD_DTYPE_COUNT ? names[t] : "unknown";
}
/* The dtype named `name` ("f32", "f16", "bf16", "q8_0", "q4_0", "q8", "q4_k",
 * "q6_k"); 0 when
 * unknown. Callers check pgd_dtype_is_weight / pgd_dtype_is_kv for their use. */
static inline int pgd_dtype_from_name(const char *name, pgd_dtype *out) {
    for (int i = 0; i < PGD_DTYPE_COUNT; i++)
        if (!strcmp(name, pgd_dtype_name((pgd_dtype)i))) return *out = (pgd_dtype)i, 1;
    return 0;
}

/* IEEE half -> float (handles subnormals, inf, nan). */
static inline float pgd_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do { man <<= 1; e++; } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* float -> IEEE half, round to nearest even. */
static inline uint16_t pgd_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t man = x & 0x7fffff;
    if (((x >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
    if (exp >= 31) return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)exp << 10) | (man >> 13);
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++;
    return (uint16_t)half;
}

static inline float pgd_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline uint16_t pgd_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40); /* quiet nan */
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* Element i of a q4_k / q6_k tensor as f32 (in super-block i / 256). */
float pgd_kquant_get(const void *w, pgd_dtype t, size_t i);

/* Element i of a tensor of dtype t as f32 (reference path: one element at a
 * time; a quantized tensor's element i sits in block i / 32, or i / 256). */
static inline float pgd_dtype_get(const void *w, pgd_dtype t, size_t i) {
    switch (t) {
    case PGD_Q4_K:
    case PGD_Q6_K: return pgd_kquant_get(w, t, i);
    case PGD_F16: return pgd_f16_to_f32(((const uint16_t *)w)[i]);
    case PGD_BF16: return pgd_bf16_to_f32(((const uint16_t *)w)[i]);
    case PGD_Q8_0: {
        const pgd_block_q8_0 *b = (const pgd_block_q8_0 *)w + i / PGD_QBLOCK;
        return pgd_f16_to_f32(b->d) * (float)b->q[i % PGD_QBLOCK];
    }
    case PGD_Q4_0: {
        const pgd_block_q4_0 *b = (const pgd_block_q4_0 *)w + i / PGD_QBLOCK;
        int j = (int)(i % PGD_QBLOCK);
        int q = j < PGD_QBLOCK / 2 ? b->q[j] & 15 : b->q[j - PGD_QBLOCK / 2] >> 4;
        return pgd_f16_to_f32(b->d) * (float)(q - 8);
    }
    default: return ((const float *)w)[i];
    }
}

/* dst[0..n) = src's first n elements as f32; for a quantized src, n is a
 * multiple of 32 and src points at a block. */
void pgd_dtype_to_f32(float *dst, const void *src, pgd_dtype t, size_t n);
/* dst (n elements of dtype t) = src converted: round to nearest for f16 and
 * bf16; for q8_0 and q4_0 (n a multiple of 32) each block's scale is
 * max|x| / 127 (q8_0) or, as ggml does, the value of largest magnitude / -8
 * (q4_0), stored in f16, and each value rounded to the nearest step. For
 * q4_k and q6_k (n a multiple of 256; Pagoda's own simple quantizer, not
 * ggml's search for the best scales) every sub-block's scale (and q4_k's
 * min) is rounded up so that its range covers the sub-block: each value is
 * then within half a step (d * sc) of its input. */
void pgd_dtype_from_f32(void *dst, pgd_dtype t, const float *src, size_t n);

/* One KV cache row of head_dim values: store src in dtype t (f32, f16, bf16
 * rounded to nearest; q8: scale = max|src| / 127 in f32, each value rounded
 * to the nearest step, 0 scale for an all-zero row), or read it back as f32.
 * dst / src hold pgd_kv_row_bytes(t, head_dim) bytes. */
void pgd_kv_row_from_f32(void *dst, pgd_dtype t, const float *src, int head_dim);
void pgd_kv_row_to_f32(float *dst, const void *src, pgd_dtype t, int head_dim);
/* Value d of a KV cache row of dtype t (reference path). */
static inline float pgd_kv_row_get(const void *row, pgd_dtype t, int d) {
    if (t == PGD_Q8) {
        float s;
        memcpy(&s, row, sizeof s);
        return s * (float)((const int8_t *)row + sizeof(float))[d];
    }
    return pgd_dtype_get(row, t, (size_t)d);
}

#endif
