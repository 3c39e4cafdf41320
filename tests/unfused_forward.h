/* unfused_forward.h - the forward pass as it was before the fused
 * projections, for tests (test_model.c on the CPU, test_gpu.c on a GPU
 * backend and gpu-emu): separate q, k and v GEMMs on the row blocks of the
 * model's own wqkv, separate gate and up GEMMs on those of its w13, and
 * rope, kv_write and paged attention on dense rows (stride 0). Everything
 * else is the same sequence of backend ops as core/model/forward.c, so on a
 * backend whose GEMM computes each output row independently of the others
 * (the CPU kernels, the project's own GPU GEMM) the logits must be bit for
 * bit the model's.
 *
 * Limits: a whole Llama model on one rank (no tensor/pipeline split, not
 * OPT); logits of every token (b->all_logits, or one token per sequence). */
#ifndef PAGODA_TEST_UNFUSED_FORWARD_H
#define PAGODA_TEST_UNFUSED_FORWARD_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_impl.h"
#include "pagoda/backend.h"
#include "pagoda/model.h"

#define UF_TRY(call)                 \
    do {                             \
        st = (call);                 \
        if (st != PGD_OK) goto done; \
    } while (0)

/* logits: (num_tokens, vocab) on the host. */
static inline pgd_status pgd_test_unfused_forward(pgd_model *m, pgd_kv_cache *kv, const pgd_batch *b,
                                                  float *logits) {
    const pgd_model_config *c = &m->cfg;
    pgd_backend *be = m->backend;
    const int T = b->num_tokens, S = b->num_seqs, MB = b->max_blocks_per_seq;
    const int d = c->dim, hd = c->head_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd,
              h = c->hidden_dim, V = c->vocab_size, bs = pgd_kv_cache_block_size(kv);
    const size_t row = (size_t)d * pgd_dtype_size(c->weight_dtype); /* bytes per weight row */
    if (m->sh.tp != 1 || m->sh.pp != 1 || c->arch != PGD_ARCH_LLAMA || (!b->all_logits && T != S))
        return pgd_error(PGD_ERR_UNSUPPORTED, "unfused forward: one rank, Llama, logits of every token");
    /* metadata: tokens | pos | slots | query_start | seq_lens | tables | interleave (2T) */
    size_t nm = 3 * (size_t)T + 2 * (size_t)S + 1 + (size_t)S * MB + 2 * (size_t)T;
    int32_t *hm = malloc(nm * sizeof *hm), *dm = NULL;
    float *act = NULL;
    pgd_status st = PGD_OK;
    if (!hm) return pgd_error(PGD_ERR_OOM, "unfused forward: out of memory");
    int32_t *tok = hm, *pos = hm + T, *slot = hm + 2 * T, *qs = hm + 3 * T, *len = qs + S + 1,
            *bt = len + S, *ilv = bt + (size_t)S * MB;
    memcpy(tok, b->tokens, sizeof(int32_t) * T);
    memcpy(qs, b->query_start, sizeof(int32_t) * (S + 1));
    memcpy(len, b->seq_lens, sizeof(int32_t) * S);
    memcpy(bt, b->block_tables, sizeof(int32_t) * (size_t)S * MB);
    int max_len = 0;
    for (int s = 0; s < S; s++) {
        int q0 = qs[s], q = qs[s + 1] - q0;
        for (int j = 0; j < q; j++) {
            int p = len[s] - q + j;
            pos[q0 + j] = p;
            slot[q0 + j] = bt[(size_t)s * MB + p / bs] * bs + p % bs;
        }
        if (len[s] > max_len) max_len = len[s];
    }
    for (int t = 0; t < T; t++) ilv[2 * t] = t, ilv[2 * t + 1] = T + t; /* [g; u] rows -> [g | u] rows */
    /* activations: x, xb (T, max(d, qd)), xb2 (T, qd), q, k, v, g|u stacked (2T, h), gu (T, 2h),
     * hb (T, h), logits (T, V) */
    size_t w = (size_t)(d > qd ? d : qd);
    size_t n_act[10] = {(size_t)T * d, T * w, (size_t)T * qd, (size_t)T * qd, (size_t)T * kvd,
                        (size_t)T * kvd, 2 * (size_t)T * h, 2 * (size_t)T * h, (size_t)T * h, (size_t)T * V};
    size_t tot = 0, off[10];
    for (int i = 0; i < 10; i++) off[i] = tot, tot += (n_act[i] + 63) & ~(size_t)63;
    UF_TRY(pgd_backend_alloc(be, tot * sizeof(float), (void **)&act));
    UF_TRY(pgd_backend_alloc(be, nm * sizeof(int32_t), (void **)&dm));
    UF_TRY(pgd_backend_upload(be, dm, hm, nm * sizeof(int32_t)));
    float *x = act + off[0], *xb = act + off[1], *xb2 = act + off[2], *q = act + off[3], *k = act + off[4],
          *v = act + off[5], *gus = act + off[6], *gu = act + off[7], *hb = act + off[8], *lg = act + off[9];
    int32_t *d_tok = dm, *d_pos = dm + T, *d_slot = dm + 2 * T, *d_qs = dm + 3 * T, *d_len = d_qs + S + 1,
            *d_bt = d_len + S, *d_ilv = d_bt + (size_t)S * MB;
    pgd_dtype wt = c->weight_dtype;
    UF_TRY(pgd_backend_embedding(be, x, m->tok_embd, m->embd_dtype, d_tok, T, d));
    for (int l = 0; l < c->n_layers; l++) {
        const pgd_layer_weights *L = &m->layers[l];
        const char *wqkv = L->wqkv, *w13 = L->w13;
        UF_TRY(pgd_backend_rmsnorm(be, xb, x, L->attn_norm, T, d, c->norm_eps));
        UF_TRY(pgd_backend_matmul(be, q, xb, wqkv, wt, T, d, qd));
        UF_TRY(pgd_backend_matmul(be, k, xb, wqkv + (size_t)qd * row, wt, T, d, kvd));
        UF_TRY(pgd_backend_matmul(be, v, xb, wqkv + (size_t)(qd + kvd) * row, wt, T, d, kvd));
        UF_TRY(pgd_backend_rope(be, q, k, d_pos, T, c->n_heads, c->n_kv_heads, hd, c->rope_theta, 0));
        float *kc = pgd_kv_cache_k(kv, l), *vc = pgd_kv_cache_v(kv, l);
        UF_TRY(pgd_backend_kv_write(be, kc, vc, k, v, d_slot, T, c->n_kv_heads, hd, bs, 0));
        pgd_paged_attn a = {
            .out = xb2, .q = q, .k_cache = kc, .v_cache = vc, .query_start = d_qs, .seq_lens = d_len,
            .block_tables = d_bt, .num_seqs = S, .num_tokens = T, .max_blocks_per_seq = MB,
            .max_seq_len = max_len, .n_heads = c->n_heads, .n_kv_heads = c->n_kv_heads, .head_dim = hd,
            .block_size = bs, .scale = 1.0f / sqrtf((float)hd),
        };
        UF_TRY(pgd_backend_paged_attention(be, &a));
        UF_TRY(pgd_backend_matmul(be, xb, xb2, L->wo, wt, T, qd, d));
        UF_TRY(pgd_backend_add(be, x, xb, (size_t)T * d));
        UF_TRY(pgd_backend_rmsnorm(be, xb, x, L->ffn_norm, T, d, c->norm_eps));
        UF_TRY(pgd_backend_matmul(be, gus, xb, w13, wt, T, d, h));                                /* gate */
        UF_TRY(pgd_backend_matmul(be, gus + (size_t)T * h, xb, w13 + (size_t)h * row, wt, T, d, h)); /* up */
        UF_TRY(pgd_backend_gather_rows(be, gu, gus, d_ilv, 2 * T, h)); /* exact copies */
        UF_TRY(pgd_backend_silu_mul(be, hb, gu, T, h));
        UF_TRY(pgd_backend_matmul(be, xb, hb, L->w2, wt, T, h, d));
        UF_TRY(pgd_backend_add(be, x, xb, (size_t)T * d));
    }
    UF_TRY(pgd_backend_rmsnorm(be, xb, x, m->final_norm, T, d, c->norm_eps));
    UF_TRY(pgd_backend_matmul(be, lg, xb, m->wcls, m->cls_dtype, T, d, V));
    UF_TRY(pgd_backend_download(be, logits, lg, sizeof(float) * (size_t)T * V));
done:
    pgd_backend_free(be, act);
    pgd_backend_free(be, dm);
    free(hm);
    return st;
}

#undef UF_TRY

#endif
