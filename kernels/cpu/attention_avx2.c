/* attention_avx2.c - one (query row, head) of causal paged attention with
 * AVX2/FMA.
 *
 * The context 0..pos is walked in chunks of PGD_ATTN_CHUNK positions whose
 * scores live on the stack; within a chunk it goes block by block of the
 * paged cache (a block holds block_size consecutive positions of one kv head
 * contiguously), four keys at a time: q . k as four ymm dot products reduced
 * together, then exp(score - max) and o += p * v four rows at a time. Chunks
 * after the first rescale o and the running sum by exp(old_max - new_max)
 * (online softmax), so a context of any length needs no heap scratch.
 * Invariant: the output row is the scratch accumulator; it is divided by the
 * softmax sum at the end. */
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

/* sc[i] = scale * q . k_i for nk keys stored contiguously (stride hd). */
static void scores(float *sc, const float *q, const float *k, int nk, int hd, float scale) {
    int i = 0, d8 = hd & ~7;
    for (; i + 4 <= nk; i += 4) {
        const float *k0 = k + (size_t)i * hd, *k1 = k0 + hd, *k2 = k1 + hd, *k3 = k2 + hd;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int d = 0; d < d8; d += 8) {
            __m256 qv = _mm256_loadu_ps(q + d);
            a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + d), a0);
            a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k1 + d), a1);
            a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k2 + d), a2);
            a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k3 + d), a3);
        }
        float s[4];
        _mm_storeu_ps(s, hsum4(a0, a1, a2, a3));
        for (int d = d8; d < hd; d++) {
            s[0] += q[d] * k0[d];
            s[1] += q[d] * k1[d];
            s[2] += q[d] * k2[d];
            s[3] += q[d] * k3[d];
        }
        for (int j = 0; j < 4; j++) sc[i + j] = s[j] * scale;
    }
    for (; i < nk; i++) {
        const float *k0 = k + (size_t)i * hd;
        __m256 a0 = _mm256_setzero_ps();
        for (int d = 0; d < d8; d += 8)
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(k0 + d), a0);
        float s = hsum(a0);
        for (int d = d8; d < hd; d++) s += q[d] * k0[d];
        sc[i] = s * scale;
    }
}

/* o += sum_i p[i] * v_i for nk values stored contiguously (stride hd). */
static void accumulate(float *o, const float *p, const float *v, int nk, int hd) {
    int i = 0, d8 = hd & ~7;
    for (; i + 4 <= nk; i += 4) {
        const float *v0 = v + (size_t)i * hd, *v1 = v0 + hd, *v2 = v1 + hd, *v3 = v2 + hd;
        __m256 p0 = _mm256_set1_ps(p[i]), p1 = _mm256_set1_ps(p[i + 1]);
        __m256 p2 = _mm256_set1_ps(p[i + 2]), p3 = _mm256_set1_ps(p[i + 3]);
        for (int d = 0; d < d8; d += 8) {
            __m256 acc = _mm256_loadu_ps(o + d);
            acc = _mm256_fmadd_ps(p0, _mm256_loadu_ps(v0 + d), acc);
            acc = _mm256_fmadd_ps(p1, _mm256_loadu_ps(v1 + d), acc);
            acc = _mm256_fmadd_ps(p2, _mm256_loadu_ps(v2 + d), acc);
            acc = _mm256_fmadd_ps(p3, _mm256_loadu_ps(v3 + d), acc);
            _mm256_storeu_ps(o + d, acc);
        }
        for (int d = d8; d < hd; d++)
            o[d] += p[i] * v0[d] + p[i + 1] * v1[d] + p[i + 2] * v2[d] + p[i + 3] * v3[d];
    }
    for (; i < nk; i++) {
        const float *v0 = v + (size_t)i * hd;
        __m256 p0 = _mm256_set1_ps(p[i]);
        for (int d = 0; d < d8; d += 8)
            _mm256_storeu_ps(o + d, _mm256_fmadd_ps(p0, _mm256_loadu_ps(v0 + d),
                                                    _mm256_loadu_ps(o + d)));
        for (int d = d8; d < hd; d++) o[d] += p[i] * v0[d];
    }
}

static void scale_row(float *o, float f, int hd) {
    __m256 vf = _mm256_set1_ps(f);
    int d = 0;
    for (; d + 8 <= hd; d += 8) _mm256_storeu_ps(o + d, _mm256_mul_ps(vf, _mm256_loadu_ps(o + d)));
    for (; d < hd; d++) o[d] *= f;
}

/* Walk positions c0..c1-1 of sequence seq block by block, calling
 * scores (is_v == 0) or accumulate (is_v == 1) on each contiguous run. */
static void walk(const pgd_attn_args *a, int seq, int kvh, int c0, int c1, const float *q,
                 float *sc, float *o, int is_v) {
    int bs = a->block_size, hd = a->head_dim;
    const int32_t *bt = a->block_tables + (size_t)seq * a->max_blocks_per_seq;
    const float *cache = is_v ? a->v_cache : a->k_cache;
    for (int p = c0; p < c1;) {
        int off = p % bs, run = bs - off;
        if (run > c1 - p) run = c1 - p;
        const float *base =
            cache + (((size_t)bt[p / bs] * a->n_kv_heads + kvh) * bs + off) * hd;
        if (is_v) accumulate(o, sc + (p - c0), base, run, hd);
        else scores(sc + (p - c0), q, base, run, hd, a->scale);
        p += run;
    }
}

void pgd_avx2_attention_one(const pgd_attn_args *a, int seq, int row, int pos, int h) {
    int hd = a->head_dim, kvh = h / (a->n_heads / a->n_kv_heads);
    const float *q = a->q + ((size_t)row * a->n_heads + h) * hd;
    float *o = a->out + ((size_t)row * a->n_heads + h) * hd;
    float sc[PGD_ATTN_CHUNK] __attribute__((aligned(32))); /* (chunk) scores */
    float m = -INFINITY, l = 0.0f;
    memset(o, 0, (size_t)hd * sizeof(float));
    for (int c0 = 0; c0 <= pos; c0 += PGD_ATTN_CHUNK) {
        int c1 = pos + 1 - c0 < PGD_ATTN_CHUNK ? pos + 1 : c0 + PGD_ATTN_CHUNK;
        walk(a, seq, kvh, c0, c1, q, sc, o, 0);
        float cm = sc[0];
        for (int i = 1; i < c1 - c0; i++) cm = sc[i] > cm ? sc[i] : cm;
        if (cm > m) {
            if (c0 > 0) {
                float corr = expf(m - cm);
                scale_row(o, corr, hd);
                l *= corr;
            }
            m = cm;
        }
        l += pgd_avx2_exp_sum(sc, c1 - c0, m);
        walk(a, seq, kvh, c0, c1, q, sc, o, 1);
    }
    scale_row(o, 1.0f / l, hd);
}
