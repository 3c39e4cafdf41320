/* ref.c - naive reference kernels (pgd_ref_*), the ground truth for tests.
 *
 * Plain single-threaded loops in the style of llama2.c's run.c: float
 * accumulators summed in index order, libm expf/powf/cosf/sinf. They favour
 * being obviously right over being fast; contracts are in kernels.h. */
#include "kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float weight_at(const void *w, pgd_dtype wt, size_t i) { return pgd_dtype_get(w, wt, i); }

/* A k-quant W (q4_k, q6_k): each row dequantized (pgd_dtype_to_f32), then
 * the same f32 dot products, summed in index order. */
static void ref_matmul_kquant(float *y, const float *x, const void *w, pgd_dtype wt, int n, int in, int out) {
    float *row = malloc((size_t)in * sizeof(float));
    if (!row) {
        fprintf(stderr, "pgd_ref_matmul: out of memory\n");
        abort();
    }
    for (int i = 0; i < out; i++) {
        pgd_dtype_to_f32(row, (const char *)w + pgd_dtype_bytes(wt, (size_t)i * in), wt, (size_t)in);
        for (int t = 0; t < n; t++) {
            const float *xt = x + (size_t)t * in;
            float val = 0.0f;
            for (int j = 0; j < in; j++) val += row[j] * xt[j];
            y[(size_t)t * out + i] = val;
        }
    }
    free(row);
}

void pgd_ref_matmul(float *y, const float *x, const void *w, pgd_dtype wt, int n, int in,
                    int out) {
    if (pgd_dtype_is_kquant(wt)) {
        ref_matmul_kquant(y, x, w, wt, n, in, out);
        return;
    }
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * in;
        for (int i = 0; i < out; i++) {
            float val = 0.0f;
            for (int j = 0; j < in; j++) val += weight_at(w, wt, (size_t)i * in + j) * xt[j];
            y[(size_t)t * out + i] = val;
        }
    }
}

void pgd_ref_embedding(float *out, const void *table, pgd_dtype tt, const int32_t *tokens, int n,
                       int dim) {
    for (int t = 0; t < n; t++)
        for (int j = 0; j < dim; j++)
            out[(size_t)t * dim + j] = weight_at(table, tt, (size_t)tokens[t] * dim + j);
}

void pgd_ref_rmsnorm(float *y, const float *x, const float *w, int n, int dim, float eps) {
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * dim;
        float *yt = y + (size_t)t * dim;
        float ss = 0.0f;
        for (int j = 0; j < dim; j++) ss += xt[j] * xt[j];
        ss /= dim;
        ss += eps;
        ss = 1.0f / sqrtf(ss);
        for (int j = 0; j < dim; j++) yt[j] = w[j] * (ss * xt[j]);
    }
}

void pgd_ref_rope(float *q, float *k, const int32_t *pos, int n, int n_heads, int n_kv_heads,
                  int head_dim, float theta, int stride) {
    size_t qs = stride ? (size_t)stride : (size_t)n_heads * head_dim;
    size_t ks = stride ? (size_t)stride : (size_t)n_kv_heads * head_dim;
    for (int t = 0; t < n; t++) {
        for (int h = 0; h < n_heads; h++) {
            for (int i = 0; i < head_dim; i += 2) {
                float freq = 1.0f / powf(theta, (float)i / (float)head_dim);
                float val = (float)pos[t] * freq;
                float fcr = cosf(val), fci = sinf(val);
                int rotn = h < n_kv_heads ? 2 : 1; /* k has fewer heads under GQA */
                for (int v = 0; v < rotn; v++) {
                    float *vec = v == 0 ? q + (size_t)t * qs + (size_t)h * head_dim
                                        : k + (size_t)t * ks + (size_t)h * head_dim;
                    float v0 = vec[i], v1 = vec[i + 1];
                    vec[i] = v0 * fcr - v1 * fci;
                    vec[i + 1] = v0 * fci + v1 * fcr;
                }
            }
        }
    }
}

void pgd_ref_silu_mul(float *out, const float *gate_up, int n_rows, int hidden) {
    for (int r = 0; r < n_rows; r++) {
        const float *gate = gate_up + (size_t)r * 2 * hidden, *up = gate + hidden;
        float *o = out + (size_t)r * hidden;
        for (int i = 0; i < hidden; i++) {
            float val = gate[i];
            val *= (1.0f / (1.0f + expf(-val)));
            o[i] = val * up[i];
        }
    }
}

void pgd_ref_add(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

void pgd_ref_kv_write(void *k_cache, void *v_cache, pgd_dtype kt, const float *k, const float *v,
                      const int32_t *slot_mapping, int n, int n_kv_heads, int head_dim,
                      int block_size, int stride) {
    size_t rs = stride ? (size_t)stride : (size_t)n_kv_heads * head_dim, rb = pgd_kv_row_bytes(kt, head_dim);
    for (int t = 0; t < n; t++) {
        int32_t slot = slot_mapping[t];
        if (slot < 0) continue;
        size_t blk = (size_t)slot / block_size, off = (size_t)slot % block_size;
        for (int h = 0; h < n_kv_heads; h++) {
            size_t dst = (blk * n_kv_heads + h) * block_size + off; /* row index */
            size_t src = (size_t)t * rs + (size_t)h * head_dim;
            pgd_kv_row_from_f32((char *)k_cache + dst * rb, kt, k + src, head_dim);
            pgd_kv_row_from_f32((char *)v_cache + dst * rb, kt, v + src, head_dim);
        }
    }
}

/* The cached row (head_dim values) of (sequence s, position p, kv head kvh). */
static const void *cache_vec(const pgd_paged_attn *a, const void *cache, int s, int p, int kvh) {
    int32_t blk = a->block_tables[(size_t)s * a->max_blocks_per_seq + p / a->block_size];
    int off = p % a->block_size;
    size_t row = ((size_t)blk * a->n_kv_heads + kvh) * a->block_size + off;
    return (const char *)cache + row * pgd_kv_row_bytes(a->kv_dtype, a->head_dim);
}

void pgd_ref_paged_attention(const pgd_paged_attn *a) {
    int hd = a->head_dim, group = a->n_heads / a->n_kv_heads;
    size_t qst = a->q_stride ? (size_t)a->q_stride : (size_t)a->n_heads * hd;
    int max_len = 1;
    for (int s = 0; s < a->num_seqs; s++)
        if (a->seq_lens[s] > max_len) max_len = a->seq_lens[s];
    float *att = malloc((size_t)max_len * sizeof(float)); /* (max_len) scores */
    if (!att) {
        fprintf(stderr, "pgd_ref_paged_attention: out of memory\n");
        abort();
    }
    for (int s = 0; s < a->num_seqs; s++) {
        int q0 = a->query_start[s], nq = a->query_start[s + 1] - q0;
        for (int j = 0; j < nq; j++) {
            int pos = a->seq_lens[s] - nq + j;
            for (int h = 0; h < a->n_heads; h++) {
                const float *q = a->q + (size_t)(q0 + j) * qst + (size_t)h * hd;
                float *o = a->out + ((size_t)(q0 + j) * a->n_heads + h) * hd;
                int kvh = h / group;
                for (int t = 0; t <= pos; t++) {
                    const void *kv = cache_vec(a, a->k_cache, s, t, kvh);
                    float score = 0.0f;
                    for (int d = 0; d < hd; d++) score += q[d] * pgd_kv_row_get(kv, a->kv_dtype, d);
                    att[t] = score * a->scale;
                }
                float max_val = att[0];
                for (int t = 1; t <= pos; t++)
                    if (att[t] > max_val) max_val = att[t];
                float sum = 0.0f;
                for (int t = 0; t <= pos; t++) {
                    att[t] = expf(att[t] - max_val);
                    sum += att[t];
                }
                for (int t = 0; t <= pos; t++) att[t] /= sum;
                memset(o, 0, (size_t)hd * sizeof(float));
                for (int t = 0; t <= pos; t++) {
                    const void *vv = cache_vec(a, a->v_cache, s, t, kvh);
                    for (int d = 0; d < hd; d++) o[d] += att[t] * pgd_kv_row_get(vv, a->kv_dtype, d);
                }
            }
        }
    }
    free(att);
}

void pgd_ref_copy_blocks(float *cache, const int32_t *pairs, int n_pairs, size_t block_floats) {
    for (int i = 0; i < n_pairs; i++) {
        const float *src = cache + (size_t)pairs[2 * i] * block_floats;
        float *dst = cache + (size_t)pairs[2 * i + 1] * block_floats;
        for (size_t j = 0; j < block_floats; j++) dst[j] = src[j];
    }
}
