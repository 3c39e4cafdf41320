/* attention_avx2.c - causal paged attention with AVX2/FMA for one query row
 * and a range of up to PGD_ATTN_MAX_HEADS consecutive heads.
 *
 * The context 0..pos is walked in chunks of PGD_ATTN_CHUNK positions whose
 * scores (per head) live on the stack; within a chunk it goes block by block
 * of the paged cache (a block holds, for each kv head in turn, block_size
 * consecutive positions contiguously), and in each block through the heads
 * in order, so the K and V rows of all the heads are read as one sequential
 * stream per block rather than one 4 KB piece per head at a block's stride
 * (that access pattern defeated the hardware prefetcher and halved the
 * bandwidth at batch 32). Per head: four keys at a time, q . k as four ymm
 * dot products reduced together, then exp(score - max) and o += p * v four
 * rows at a time. Chunks after the first rescale o and the running sum by
 * exp(old_max - new_max) (online softmax), so a context of any length needs
 * no heap scratch.
 * f16 and bf16 caches are converted to f32 in registers as they are read;
 * a q8 cache's int8 values too, and each row's scale is applied once to the
 * row's q . k sum (scores) or folded into its softmax weight (o += p * s * v).
 * Invariants: the output rows are the scratch accumulators; each is divided
 * by its softmax sum at the end. Every head is computed with the same
 * operations in the same order whatever head range it is processed in, so
 * the output does not depend on how heads are grouped. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "fast_impl.h"

static inline __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
    __m256 ab = _mm256_hadd_ps(a, b), cd = _mm256_hadd_ps(c, d);
    __m256 abcd = _mm256_hadd_ps(ab, cd);
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* 8 cached values from value i of row data r (f32, f16, bf16 or q8's int8) as f32. */
ALWAYS_INLINE __m256 ld8(pgd_dtype kt, const void *r, int i) {
    if (kt == PGD_F32) return _mm256_loadu_ps((const float *)r + i);
    if (kt == PGD_Q8) {
        __m128i b = _mm_loadl_epi64((const __m128i *)((const int8_t *)r + i));
        return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
    }
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)r + i));
    if (kt == PGD_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
ALWAYS_INLINE float ld1(pgd_dtype kt, const void *r, int i) {
    if (kt == PGD_F32) return ((const float *)r)[i];
    if (kt == PGD_Q8) return (float)((const int8_t *)r)[i];
    uint16_t h = ((const uint16_t *)r)[i];
    return kt == PGD_F16 ? _cvtsh_ss(h) : pgd_bf16_to_f32(h);
}
/* Row i of nk rows rb bytes apart from `base`: its values, and its scale (1
 * but for q8, whose rows start with an f32 scale). */
ALWAYS_INLINE const char *rowp(pgd_dtype kt, const void *base, int i, size_t rb) {
    return (const char *)base + (size_t)i * rb + (kt == PGD_Q8 ? sizeof(float) : 0);
}
ALWAYS_INLINE float rows(pgd_dtype kt, const void *base, int i, size_t rb) {
    if (kt != PGD_Q8) return 1.0f;
    float f;
    memcpy(&f, (const char *)base + (size_t)i * rb, sizeof f);
    return f;
}

/* sc[i] = scale * q . k_i for nk keys stored contiguously (rows rb bytes apart). */
ALWAYS_INLINE void scores_t(pgd_dtype kt, float *sc, const float *q, const void *k, int nk, int hd, float scale) {
    int i = 0, d8 = hd & ~7;
    size_t rb = pgd_kv_row_bytes(kt, hd);
    for (; i + 4 <= nk; i += 4) {
        const char *k0 = rowp(kt, k, i, rb), *k1 = k0 + rb, *k2 = k1 + rb, *k3 = k2 + rb;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int d = 0; d < d8; d += 8) {
            __m256 qv = _mm256_loadu_ps(q + d);
            a0 = _mm256_fmadd_ps(qv, ld8(kt, k0, d), a0);
            a1 = _mm256_fmadd_ps(qv, ld8(kt, k1, d), a1);
            a2 = _mm256_fmadd_ps(qv, ld8(kt, k2, d), a2);
            a3 = _mm256_fmadd_ps(qv, ld8(kt, k3, d), a3);
        }
        float s[4];
        _mm_storeu_ps(s, hsum4(a0, a1, a2, a3));
        for (int d = d8; d < hd; d++) {
            s[0] += q[d] * ld1(kt, k0, d);
            s[1] += q[d] * ld1(kt, k1, d);
            s[2] += q[d] * ld1(kt, k2, d);
            s[3] += q[d] * ld1(kt, k3, d);
        }
        for (int j = 0; j < 4; j++) sc[i + j] = s[j] * rows(kt, k, i + j, rb) * scale;
    }
    for (; i < nk; i++) {
        const char *k0 = rowp(kt, k, i, rb);
        __m256 a0 = _mm256_setzero_ps();
        for (int d = 0; d < d8; d += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), ld8(kt, k0, d), a0);
        float s = hsum(a0);
        for (int d = d8; d < hd; d++) s += q[d] * ld1(kt, k0, d);
        sc[i] = s * rows(kt, k, i, rb) * scale;
    }
}

/* o += sum_i p[i] * v_i for nk values stored contiguously (rows rb bytes apart). */
ALWAYS_INLINE void accumulate_t(pgd_dtype kt, float *o, const float *p, const void *v, int nk, int hd) {
    int i = 0, d8 = hd & ~7;
    size_t rb = pgd_kv_row_bytes(kt, hd);
    for (; i + 4 <= nk; i += 4) {
        const char *v0 = rowp(kt, v, i, rb), *v1 = v0 + rb, *v2 = v1 + rb, *v3 = v2 + rb;
        float w0 = p[i] * rows(kt, v, i, rb), w1 = p[i + 1] * rows(kt, v, i + 1, rb);
        float w2 = p[i + 2] * rows(kt, v, i + 2, rb), w3 = p[i + 3] * rows(kt, v, i + 3, rb);
        __m256 p0 = _mm256_set1_ps(w0), p1 = _mm256_set1_ps(w1);
        __m256 p2 = _mm256_set1_ps(w2), p3 = _mm256_set1_ps(w3);
        for (int d = 0; d < d8; d += 8) {
            __m256 acc = _mm256_loadu_ps(o + d);
            acc = _mm256_fmadd_ps(p0, ld8(kt, v0, d), acc);
            acc = _mm256_fmadd_ps(p1, ld8(kt, v1, d), acc);
            acc = _mm256_fmadd_ps(p2, ld8(kt, v2, d), acc);
            acc = _mm256_fmadd_ps(p3, ld8(kt, v3, d), acc);
            _mm256_storeu_ps(o + d, acc);
        }
        for (int d = d8; d < hd; d++)
            o[d] += w0 * ld1(kt, v0, d) + w1 * ld1(kt, v1, d) + w2 * ld1(kt, v2, d) + w3 * ld1(kt, v3, d);
    }
    for (; i < nk; i++) {
        const char *v0 = rowp(kt, v, i, rb);
        float w0 = p[i] * rows(kt, v, i, rb);
        __m256 p0 = _mm256_set1_ps(w0);
        for (int d = 0; d < d8; d += 8)
            _mm256_storeu_ps(o + d, _mm256_fmadd_ps(p0, ld8(kt, v0, d), _mm256_loadu_ps(o + d)));
        for (int d = d8; d < hd; d++) o[d] += w0 * ld1(kt, v0, d);
    }
}

static void scores(pgd_dtype kt, float *sc, const float *q, const void *k, int nk, int hd, float scale) {
    if (kt == PGD_F32) scores_t(PGD_F32, sc, q, k, nk, hd, scale);
    else if (kt == PGD_F16) scores_t(PGD_F16, sc, q, k, nk, hd, scale);
    else if (kt == PGD_Q8) scores_t(PGD_Q8, sc, q, k, nk, hd, scale);
    else scores_t(PGD_BF16, sc, q, k, nk, hd, scale);
}

static void accumulate(pgd_dtype kt, float *o, const float *p, const void *v, int nk, int hd) {
    if (kt == PGD_F32) accumulate_t(PGD_F32, o, p, v, nk, hd);
    else if (kt == PGD_F16) accumulate_t(PGD_F16, o, p, v, nk, hd);
    else if (kt == PGD_Q8) accumulate_t(PGD_Q8, o, p, v, nk, hd);
    else accumulate_t(PGD_BF16, o, p, v, nk, hd);
}

static void scale_row(float *o, float f, int hd) {
    __m256 vf = _mm256_set1_ps(f);
    int d = 0;
    for (; d + 8 <= hd; d += 8) _mm256_storeu_ps(o + d, _mm256_mul_ps(vf, _mm256_loadu_ps(o + d)));
    for (; d < hd; d++) o[d] *= f;
}

/* Walk positions c0..c1-1 of sequence seq block by block; in each block run,
 * for heads h0..h1-1 in order (their kv heads ascend, so the run's K or V
 * rows are read in memory order), call scores (is_v == 0) or accumulate
 * (is_v == 1). Head h's scores are sc + (h - h0) * PGD_ATTN_CHUNK; its query
 * and output rows are those of query row `row` (q rows a->q_stride floats
 * apart, 0 = dense; out always dense). */
static void walk(const pgd_paged_attn *a, int seq, int row, int h0, int h1, int c0, int c1,
                 float *sc, int is_v) {
    int bs = a->block_size, hd = a->head_dim, grp = a->n_heads / a->n_kv_heads;
    const int32_t *bt = a->block_tables + (size_t)seq * a->max_blocks_per_seq;
    const char *cache = is_v ? a->v_cache : a->k_cache;
    size_t rb = pgd_kv_row_bytes(a->kv_dtype, hd);
    const float *q = a->q + (size_t)row * (a->q_stride ? (size_t)a->q_stride : (size_t)a->n_heads * hd);
    for (int p = c0; p < c1;) {
        int off = p % bs, run = bs - off;
        if (run > c1 - p) run = c1 - p;
        const char *blk = cache + (size_t)bt[p / bs] * a->n_kv_heads * bs * rb;
        for (int h = h0; h < h1; h++) {
            const char *base = blk + ((size_t)(h / grp) * bs + off) * rb;
            float *s = sc + (size_t)(h - h0) * PGD_ATTN_CHUNK + (p - c0);
            if (is_v) accumulate(a->kv_dtype, a->out + ((size_t)row * a->n_heads + h) * hd, s, base, run, hd);
            else scores(a->kv_dtype, s, q + (size_t)h * hd, base, run, hd, a->scale);
        }
        p += run;
    }
}

void pgd_avx2_attention_heads(const pgd_paged_attn *a, int seq, int row, int pos, int h0, int h1) {
    int hd = a->head_dim;
    /* (head, chunk) scores */
    float sc[PGD_ATTN_MAX_HEADS * PGD_ATTN_CHUNK] __attribute__((aligned(32)));
    float m[PGD_ATTN_MAX_HEADS], l[PGD_ATTN_MAX_HEADS];
    float *out = a->out + ((size_t)row * a->n_heads + h0) * hd;
    memset(out, 0, (size_t)(h1 - h0) * hd * sizeof(float));
    for (int h = 0; h < h1 - h0; h++) m[h] = -INFINITY, l[h] = 0.0f;
    for (int c0 = 0; c0 <= pos; c0 += PGD_ATTN_CHUNK) {
        int c1 = pos + 1 - c0 < PGD_ATTN_CHUNK ? pos + 1 : c0 + PGD_ATTN_CHUNK;
        walk(a, seq, row, h0, h1, c0, c1, sc, 0);
        for (int h = 0; h < h1 - h0; h++) {
            float *s = sc + (size_t)h * PGD_ATTN_CHUNK, *o = out + (size_t)h * hd;
            float cm = s[0];
            for (int i = 1; i < c1 - c0; i++) cm = s[i] > cm ? s[i] : cm;
            if (cm > m[h]) {
                if (c0 > 0) {
                    float corr = expf(m[h] - cm);
                    scale_row(o, corr, hd);
                    l[h] *= corr;
                }
                m[h] = cm;
            }
            l[h] += pgd_avx2_exp_sum(s, c1 - c0, m[h]);
#ifdef PAGODA_PERF_SLOW_KERNEL
            { /* the perf gate's self-test (tests/perf/slow_gate.sh) only: deliberate extra work,
                 a second scan of the chunk's scores (about 7% more instructions here) */
                float acc = 0;
                for (int i = 0; i < c1 - c0; i++) acc += s[i] * 0.5f;
                volatile float sink = acc;
                (void)sink;
            }
#endif
        }
        walk(a, seq, row, h0, h1, c0, c1, sc, 1);
    }
    for (int h = 0; h < h1 - h0; h++) scale_row(out + (size_t)h * hd, 1.0f / l[h], hd);
}
