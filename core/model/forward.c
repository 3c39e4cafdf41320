/* forward.c - the Llama forward pass over one ragged batch with a paged KV
 * cache. Host side: validate the batch, derive each token's position and
 * cache slot from the block tables, upload this metadata; then issue the
 * backend ops layer by layer:
 *   x = embed(tokens)                                  (T, dim)
 *   per layer: xb = rmsnorm(x); q,k,v = xb Wq,Wk,Wv; rope(q,k);
 *              write k,v to cache slots; xb2 = paged_attention(q);
 *              x += xb2 Wo; xb = rmsnorm(x); x += (silu(xb W1) * xb W3) W2
 *   logits = rmsnorm(x[last rows]) Wcls                (S or T, vocab)
 * OPT (arch = opt; virtual backends only, for the simulator's cost): x +=
 * embed(positions) from the learned table; no rotary; the norms stand for
 * LayerNorm (same bytes moved); FFN x += act(xb W1) W2 with the activation
 * issued as silu_mul(hb, hb) (an elementwise op; ReLU in OPT).
 * Nothing here knows which backend runs the ops. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_impl.h"

static size_t a256(size_t floats) { return (floats * 4 + 255) & ~(size_t)255; }

static pgd_status ensure_scratch(pgd_model *m, int T, int R, size_t meta) {
    pgd_scratch *s = &m->s;
    const pgd_model_config *c = &m->cfg;
    if (T > s->cap_tokens || R > s->cap_logits) {
        int ct = T > s->cap_tokens ? T : s->cap_tokens;
        int cr = R > s->cap_logits ? R : s->cap_logits;
        if (ct < 16) ct = 16;
        if (cr < 16) cr = 16;
        size_t d = (size_t)c->dim, qd = (size_t)c->n_heads * c->head_dim,
               kvd = (size_t)c->n_kv_heads * c->head_dim, h = (size_t)c->hidden_dim,
               wide = d > qd ? d : qd;
        size_t off[10], total = 0, sz[10] = {
            a256(ct * d), a256(ct * wide), a256(ct * wide), a256(ct * qd), a256(ct * kvd),
            a256(ct * kvd), a256(ct * h), a256(ct * h), a256(cr * d),
            a256((size_t)cr * c->vocab_size)};
        for (int i = 0; i < 10; i++) { off[i] = total; total += sz[i]; }
        pgd_backend_free(m->backend, s->act);
        s->act = NULL;
        s->cap_tokens = s->cap_logits = 0;
        pgd_status st = pgd_backend_alloc(m->backend, total, &s->act);
        if (st != PGD_OK) return st;
        char *b = s->act;
        float **ptrs[10] = {&s->x, &s->xb, &s->xb2, &s->q, &s->k, &s->v, &s->hb, &s->hb2, &s->last, &s->logits};
        for (int i = 0; i < 10; i++) *ptrs[i] = (float *)(b + off[i]);
        s->cap_tokens = ct;
        s->cap_logits = cr;
    }
    if ((int)meta > s->cap_meta) {
        int cm = (int)meta * 2;
        pgd_backend_free(m->backend, s->meta);
        free(s->host_meta);
        s->meta = NULL;
        s->cap_meta = 0;
        s->host_meta = malloc((size_t)cm * sizeof(int32_t));
        if (!s->host_meta) return pgd_error(PGD_ERR_OOM, "forward: out of memory");
        PGD_TRY(pgd_backend_alloc(m->backend, (size_t)cm * sizeof(int32_t), (void **)&s->meta));
        s->cap_meta = cm;
    }
    return PGD_OK;
}

static pgd_status check_batch(const pgd_model *m, const pgd_kv_cache *kv, const pgd_batch *b) {
    const pgd_model_config *c = &m->cfg;
    if (b->num_seqs <= 0 || b->num_tokens <= 0 || !b->tokens || !b->query_start || !b->seq_lens ||
        !b->block_tables || b->max_blocks_per_seq <= 0)
        return pgd_error(PGD_ERR_INVALID, "forward: empty or incomplete batch (%d seqs, %d tokens)",
                         b->num_seqs, b->num_tokens);
    if (b->query_start[0] != 0 || b->query_start[b->num_seqs] != b->num_tokens)
        return pgd_error(PGD_ERR_INVALID, "forward: query_start must run from 0 to num_tokens (%d)", b->num_tokens);
    int bs = pgd_kv_cache_block_size(kv), nb = pgd_kv_cache_num_blocks(kv);
    for (int s = 0; s < b->num_seqs; s++) {
        int q = b->query_start[s + 1] - b->query_start[s], len = b->seq_lens[s];
        if (q <= 0)
            return pgd_error(PGD_ERR_INVALID, "forward: sequence %d has %d new tokens (need >= 1)", s, q);
        if (len < q || len > c->max_seq_len)
            return pgd_error(PGD_ERR_INVALID, "forward: sequence %d has context %d with %d new tokens; "
                             "the model's context is %d", s, len, q, c->max_seq_len);
        int need = (len + bs - 1) / bs;
        if (need > b->max_blocks_per_seq)
            return pgd_error(PGD_ERR_INVALID, "forward: sequence %d needs %d blocks, the block table has %d",
                             s, need, b->max_blocks_per_seq);
        const int32_t *bt = b->block_tables + (size_t)s * b->max_blocks_per_seq;
        for (int i = 0; i < need; i++)
            if (bt[i] < 0 || bt[i] >= nb)
                return pgd_error(PGD_ERR_INVALID, "forward: sequence %d block %d is %d, the cache has %d blocks",
                                 s, i, bt[i], nb);
    }
    for (int i = 0; i < b->num_tokens; i++)
        if (b->tokens[i] < 0 || b->tokens[i] >= c->vocab_size)
            return pgd_error(PGD_ERR_INVALID, "forward: token %d at index %d is outside the vocabulary (0..%d)",
                             b->tokens[i], i, c->vocab_size - 1);
    return PGD_OK;
}

pgd_status pgd_model_forward(pgd_model *m, pgd_kv_cache *kv, const pgd_batch *b, float *logits) {
    if (!m || !kv || !b || !logits) return pgd_error(PGD_ERR_INVALID, "forward: NULL argument");
    PGD_TRY(check_batch(m, kv, b));
    const pgd_model_config *c = &m->cfg;
    pgd_backend *be = m->backend;
    const int T = b->num_tokens, S = b->num_seqs, MB = b->max_blocks_per_seq;
    const int R = b->all_logits ? T : S;
    const int d = c->dim, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim,
              h = c->hidden_dim, bs = pgd_kv_cache_block_size(kv);
    size_t meta = 3 * (size_t)T + 3 * (size_t)S + 1 + (size_t)S * MB;
    PGD_TRY(ensure_scratch(m, T, R, meta));
    pgd_scratch *sc = &m->s;

    /* host metadata: tokens | pos | slots | qstart | lens | tables | rows */
    int32_t *hm = sc->host_meta;
    int32_t *h_tok = hm, *h_pos = hm + T, *h_slot = hm + 2 * T, *h_qs = hm + 3 * T,
            *h_len = h_qs + S + 1, *h_bt = h_len + S, *h_rows = h_bt + (size_t)S * MB;
    memcpy(h_tok, b->tokens, sizeof(int32_t) * T);
    memcpy(h_qs, b->query_start, sizeof(int32_t) * (S + 1));
    memcpy(h_len, b->seq_lens, sizeof(int32_t) * S);
    memcpy(h_bt, b->block_tables, sizeof(int32_t) * (size_t)S * MB);
    int max_len = 0;
    for (int s = 0; s < S; s++) {
        int q0 = b->query_start[s], q = b->query_start[s + 1] - q0, first = b->seq_lens[s] - q;
        const int32_t *bt = b->block_tables + (size_t)s * MB;
        for (int j = 0; j < q; j++) {
            int p = first + j;
            h_pos[q0 + j] = p;
            h_slot[q0 + j] = bt[p / bs] * bs + p % bs;
        }
        h_rows[s] = q0 + q - 1;
        if (b->seq_lens[s] > max_len) max_len = b->seq_lens[s];
    }
    PGD_TRY(pgd_backend_upload(be, sc->meta, hm, meta * sizeof(int32_t)));
    int32_t *d_tok = sc->meta, *d_pos = d_tok + T, *d_slot = d_tok + 2 * T, *d_qs = d_tok + 3 * T,
            *d_len = d_qs + S + 1, *d_bt = d_len + S, *d_rows = d_bt + (size_t)S * MB;

    pgd_dtype wt = c->weight_dtype;
    const int opt = c->arch == PGD_ARCH_OPT;
    if (opt && !pgd_backend_is_virtual(be))
        return pgd_error(PGD_ERR_UNSUPPORTED, "forward: OPT models run on the sim backend only");
    PGD_TRY(pgd_backend_embedding(be, sc->x, m->tok_embd, m->embd_dtype, d_tok, T, d));
    if (opt) {
        PGD_TRY(pgd_backend_embedding(be, sc->xb, m->pos_embd, m->embd_dtype, d_pos, T, d));
        PGD_TRY(pgd_backend_add(be, sc->x, sc->xb, (size_t)T * d));
    }
    for (int l = 0; l < c->n_layers; l++) {
        const pgd_layer_weights *L = &m->layers[l];
        PGD_TRY(pgd_backend_rmsnorm(be, sc->xb, sc->x, L->attn_norm, T, d, c->norm_eps));
        PGD_TRY(pgd_backend_matmul(be, sc->q, sc->xb, L->wq, wt, T, d, qd));
        PGD_TRY(pgd_backend_matmul(be, sc->k, sc->xb, L->wk, wt, T, d, kvd));
        PGD_TRY(pgd_backend_matmul(be, sc->v, sc->xb, L->wv, wt, T, d, kvd));
        if (!opt)
            PGD_TRY(pgd_backend_rope(be, sc->q, sc->k, d_pos, T, c->n_heads, c->n_kv_heads, c->head_dim,
                                     c->rope_theta));
        float *kc = pgd_kv_cache_k(kv, l), *vc = pgd_kv_cache_v(kv, l);
        PGD_TRY(pgd_backend_kv_write(be, kc, vc, sc->k, sc->v, d_slot, T, c->n_kv_heads, c->head_dim, bs));
        pgd_paged_attn a = {
            .out = sc->xb2, .q = sc->q, .k_cache = kc, .v_cache = vc, .query_start = d_qs,
            .seq_lens = d_len, .block_tables = d_bt, .num_seqs = S, .num_tokens = T,
            .max_blocks_per_seq = MB, .max_seq_len = max_len, .n_heads = c->n_heads,
            .n_kv_heads = c->n_kv_heads, .head_dim = c->head_dim, .block_size = bs,
            .scale = 1.0f / sqrtf((float)c->head_dim),
        };
        PGD_TRY(pgd_backend_paged_attention(be, &a));
        PGD_TRY(pgd_backend_matmul(be, sc->xb, sc->xb2, L->wo, wt, T, qd, d));
        PGD_TRY(pgd_backend_add(be, sc->x, sc->xb, (size_t)T * d));
        PGD_TRY(pgd_backend_rmsnorm(be, sc->xb, sc->x, L->ffn_norm, T, d, c->norm_eps));
        PGD_TRY(pgd_backend_matmul(be, sc->hb, sc->xb, L->w1, wt, T, d, h));
        if (!opt) PGD_TRY(pgd_backend_matmul(be, sc->hb2, sc->xb, L->w3, wt, T, d, h));
        PGD_TRY(pgd_backend_silu_mul(be, sc->hb, opt ? sc->hb : sc->hb2, (size_t)T * h));
        PGD_TRY(pgd_backend_matmul(be, sc->xb, sc->hb, L->w2, wt, T, h, d));
        PGD_TRY(pgd_backend_add(be, sc->x, sc->xb, (size_t)T * d));
    }
    float *fin;
    if (b->all_logits) {
        fin = sc->xb;
        PGD_TRY(pgd_backend_rmsnorm(be, fin, sc->x, m->final_norm, T, d, c->norm_eps));
    } else {
        fin = sc->last;
        PGD_TRY(pgd_backend_gather_rows(be, fin, sc->x, d_rows, S, d));
        PGD_TRY(pgd_backend_rmsnorm(be, fin, fin, m->final_norm, S, d, c->norm_eps));
    }
    PGD_TRY(pgd_backend_matmul(be, sc->logits, fin, m->wcls, m->cls_dtype, R, d, c->vocab_size));
    return pgd_backend_download(be, logits, sc->logits, sizeof(float) * (size_t)R * c->vocab_size);
}
