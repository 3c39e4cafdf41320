/* forward.c - the Llama forward pass over one ragged batch with a paged KV
 * cache. Host side: validate the batch, derive each token's position and
 * cache slot from the block tables, upload this metadata; then issue the
 * backend ops layer by layer:
 *   x = embed(tokens)                                  (T, dim)
 *   per layer: xb = rmsnorm(x);
 *              qkv = xb Wqkv, one GEMM                 (T, qd + 2*kvd): q | k | v per token
 *              (q, k, v of different dtypes: three GEMMs into dense q, k, v)
 *              rope(q, k) in place in qkv; write k, v from qkv to their cache
 *              slots; xb2 = paged_attention(q read from qkv)   (T, qd)
 *              (the three ops take the row stride qd + 2*kvd)
 *              x += xb2 Wo; xb = rmsnorm(x);
 *              gu = xb W13, one GEMM                   (T, 2*hidden): gate | up per token
 *              (gate, up of different dtypes: two GEMMs, then interleaved)
 *              hb = silu(gate) * up                    (T, hidden)
 *              x += hb W2
 *   logits = rmsnorm(x[last rows]) Wcls                (S or T, vocab)
 * OPT (arch = opt; virtual backends only, for the simulator's cost): x +=
 * embed(positions) from the learned table; no rotary; the norms stand for
 * LayerNorm (same bytes moved); FFN x += act(xb W1) W2, with w13 holding
 * W1 alone: its (T, hidden) output goes to gu and the activation (ReLU in
 * OPT) is issued as silu_mul over (T, hidden) outputs, the same bytes and
 * work; the sim computes nothing, so the values it would read do not
 * matter.
 * Nothing here knows which backend runs the ops.
 *
 * Under tensor/pipeline parallelism (model_impl.h pgd_shard; the ranks and
 * their messages are core/exec/exec_dist.c's) the
 * same pass runs on every rank over its part: local heads and FFN width,
 * an all-reduce of the wo and w2 outputs over the stage's tp group before
 * each residual add, the embedding's column shards all-gathered, the
 * classifier's vocabulary shards all-gathered; a stage that is not the
 * first receives x from the previous stage instead of embedding, and one
 * that is not the last sends x on instead of computing logits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_impl.h"
#include "pagoda/comm.h"

static size_t a256(size_t floats) { return (floats * 4 + 255) & ~(size_t)255; }

/* The next buffer of `floats` floats at *off bytes into base (256-byte
 * aligned); base NULL only counts. */
static float *carve(char *base, size_t *off, size_t floats) {
    float *p = base ? (float *)(base + *off) : NULL;
    *off += a256(floats);
    return p;
}

/* Point the activation buffers into base for ct token rows and cr logits
 * rows (llama2.c's RunState, batched: T = tokens of the step, R = rows
 * whose logits are wanted); returns the bytes they take. */
static size_t carve_acts(pgd_scratch *s, char *base, const pgd_model *m, size_t ct, size_t cr) {
    const pgd_model_config *c = &m->cfg;
    const pgd_shard *sh = &m->sh;
    size_t d = (size_t)c->dim, qd = (size_t)sh->heads * c->head_dim, kvd = (size_t)sh->kv_heads * c->head_dim,
           h = (size_t)sh->hidden, wide = d > qd ? d : qd, vp = (size_t)sh->vocab_part * sh->tp;
    size_t vw = vp > (size_t)c->vocab_size ? vp : (size_t)c->vocab_size;
    size_t g = sh->tp > 1 ? (ct * d > cr * vp ? ct * d : cr * vp) : 1;
    size_t off = 0;
    s->x = carve(base, &off, ct * d);                /* (T, dim): the residual stream */
    s->xb = carve(base, &off, ct * wide);            /* (T, max(dim, qd)): a norm's output, a sublayer's */
    s->xb2 = carve(base, &off, ct * wide);           /* (T, qd): attention's output */
    s->qkv = carve(base, &off, ct * (qd + 2 * kvd)); /* (T, qd + 2 kvd): q | k | v per token */
    s->gu = carve(base, &off, ct * 2 * h);           /* (T, 2 hidden): gate | up per token */
    s->hb = carve(base, &off, ct * h);               /* (T, hidden): silu(gate) * up */
    /* (T, 2 hidden) where a layer's gate and up differ in dtype: T gate rows, then T up rows */
    s->gu2 = m->w13_split_any ? carve(base, &off, ct * 2 * h) : NULL;
    s->last = carve(base, &off, cr * d);             /* (R, dim): the rows whose logits are wanted */
    s->logits = carve(base, &off, cr * vw);          /* (R, vocab, or tp * vocab_part padded) */
    s->gath = carve(base, &off, g);                  /* tp > 1: the all_gather landing area */
    return off;
}

static pgd_status ensure_scratch(pgd_model *m, int T, int R, size_t meta) {
    pgd_scratch *s = &m->s;
    if (T > s->cap_tokens || R > s->cap_logits) {
        int ct = T > s->cap_tokens ? T : s->cap_tokens;
        int cr = R > s->cap_logits ? R : s->cap_logits;
        if (ct < 16) ct = 16;
        if (cr < 16) cr = 16;
        pgd_backend_free(m->backend, s->act);
        s->act = NULL;
        s->cap_tokens = s->cap_logits = 0;
        pgd_status st = pgd_backend_alloc(m->backend, carve_acts(s, NULL, m, (size_t)ct, (size_t)cr), &s->act);
        if (st != PGD_OK) return st;
        carve_acts(s, s->act, m, (size_t)ct, (size_t)cr);
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

pgd_status pgd_model_check_batch(const pgd_model *m, int bs, int nb, const pgd_batch *b) {
    return pgd_model_check_config_batch(&m->cfg, bs, nb, b);
}

pgd_status pgd_model_check_config_batch(const pgd_model_config *c, int bs, int nb, const pgd_batch *b) {
    if (b->num_seqs <= 0 || b->num_tokens <= 0 || !b->tokens || !b->query_start || !b->seq_lens ||
        !b->block_tables || b->max_blocks_per_seq <= 0)
        return pgd_error(PGD_ERR_INVALID, "forward: empty or incomplete batch (%d seqs, %d tokens)",
                         b->num_seqs, b->num_tokens);
    if (b->query_start[0] != 0 || b->query_start[b->num_seqs] != b->num_tokens)
        return pgd_error(PGD_ERR_INVALID, "forward: query_start must run from 0 to num_tokens (%d)", b->num_tokens);
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
    PGD_TRY(pgd_model_check_batch(m, pgd_kv_cache_block_size(kv), pgd_kv_cache_num_blocks(kv), b));
    return pgd_model_pass(m, kv, b, logits, NULL);
}

/* Sum the stage's partial results over its tensor-parallel group. */
static pgd_status tp_sum(pgd_model *m, const pgd_pass_io *io, float *buf, size_t n) {
    if (m->sh.tp == 1) return PGD_OK;
    PGD_TRY(pgd_backend_sync(m->backend));
    return pgd_comm_all_reduce_sum(io->tp, buf, n, PGD_F32);
}

pgd_status pgd_model_pass(pgd_model *m, pgd_kv_cache *kv, const pgd_batch *b, float *logits,
                          const pgd_pass_io *io) {
    const pgd_model_config *c = &m->cfg;
    const pgd_shard *sh = &m->sh;
    pgd_backend *be = m->backend;
    const pgd_dtype kvt = pgd_backend_kv_dtype(be); /* the KV cache's, for attention */
    const int T = b->num_tokens, S = b->num_seqs, MB = b->max_blocks_per_seq;
    const int R = b->all_logits ? T : S, P = sh->tp;
    const int first = sh->pp_rank == 0, last = sh->pp_rank == sh->pp - 1;
    const int d = c->dim, hd = c->head_dim, qd = sh->heads * hd, kvd = sh->kv_heads * hd,
              qkvd = qd + 2 * kvd, h = sh->hidden, bs = pgd_kv_cache_block_size(kv);
    const int V = c->vocab_size, VP = P > 1 ? sh->vocab_part : V;
    if ((P > 1 || sh->pp > 1) && !io)
        return pgd_error(PGD_ERR_INVALID, "forward: a model shard needs its communicators");
    size_t meta = 3 * (size_t)T + 3 * (size_t)S + 1 + (size_t)S * MB;
    size_t meta_g = P > 1 ? (size_t)P * ((size_t)T + (size_t)R) : 0;
    size_t meta_il = m->w13_split_any ? 2 * (size_t)T : 0; /* gu2's rows, interleaved into gu */
    PGD_TRY(ensure_scratch(m, T, R, meta + meta_g + meta_il));
    pgd_scratch *sc = &m->s;

    /* host metadata: tokens | pos | slots | qstart | lens | tables | rows | [gather rows] */
    int32_t *hm = sc->host_meta;
    int32_t *h_tok = hm, *h_pos = hm + T, *h_slot = hm + 2 * T, *h_qs = hm + 3 * T,
            *h_len = h_qs + S + 1, *h_bt = h_len + S, *h_rows = h_bt + (size_t)S * MB;
    memcpy(h_tok, b->tokens, sizeof(int32_t) * T);
    memcpy(h_qs, b->query_start, sizeof(int32_t) * (S + 1));
    memcpy(h_len, b->seq_lens, sizeof(int32_t) * S);
    memcpy(h_bt, b->block_tables, sizeof(int32_t) * (size_t)S * MB);
    int max_len = 0;
    for (int s = 0; s < S; s++) {
        int q0 = b->query_start[s], q = b->query_start[s + 1] - q0, first_pos = b->seq_lens[s] - q;
        const int32_t *bt = b->block_tables + (size_t)s * MB;
        for (int j = 0; j < q; j++) {
            int p = first_pos + j;
            h_pos[q0 + j] = p;
            h_slot[q0 + j] = bt[p / bs] * bs + p % bs;
        }
        h_rows[s] = q0 + q - 1;
        if (b->seq_lens[s] > max_len) max_len = b->seq_lens[s];
    }
    int32_t *h_ge = hm + meta, *h_gl = h_ge + (size_t)P * T;
    if (P > 1) {
        /* all_gather lands rank-major (P, rows, part); row r of rank p goes to r * P + p */
        for (int t = 0; t < T; t++)
            for (int p = 0; p < P; p++) h_ge[t * P + p] = p * T + t;
        for (int r = 0; r < R; r++)
            for (int p = 0; p < P; p++) h_gl[r * P + p] = p * R + r;
    }
    int32_t *h_il = hm + meta + meta_g;
    for (size_t t = 0; t < meta_il / 2; t++) h_il[2 * t] = (int32_t)t, h_il[2 * t + 1] = (int32_t)(T + t);
    PGD_TRY(pgd_backend_upload(be, sc->meta, hm, (meta + meta_g + meta_il) * sizeof(int32_t)));
    int32_t *d_tok = sc->meta, *d_pos = d_tok + T, *d_slot = d_tok + 2 * T, *d_qs = d_tok + 3 * T,
            *d_len = d_qs + S + 1, *d_bt = d_len + S, *d_rows = d_bt + (size_t)S * MB, *d_ge = sc->meta + meta,
            *d_gl = d_ge + (size_t)P * T, *d_il = sc->meta + meta + meta_g;

    const int opt = c->arch == PGD_ARCH_OPT;
    if (opt && pgd_backend_computes(be))
        return pgd_error(PGD_ERR_UNSUPPORTED, "forward: OPT models run on the sim backend only");
    if (!first) {
        PGD_TRY(pgd_comm_recv(io->world, sc->x, sizeof(float) * (size_t)T * d, io->prev, io->tag));
    } else if (P == 1) {
        PGD_TRY(pgd_backend_embedding(be, sc->x, m->tok_embd, m->embd_dtype, d_tok, T, d));
    } else {
        const int dp = sh->dim_part;
        PGD_TRY(pgd_backend_embedding(be, sc->xb, m->tok_embd, m->embd_dtype, d_tok, T, dp));
        PGD_TRY(pgd_backend_sync(be));
        PGD_TRY(pgd_comm_all_gather(io->tp, sc->xb, sc->gath, (size_t)T * dp, PGD_F32));
        PGD_TRY(pgd_backend_gather_rows(be, sc->x, sc->gath, d_ge, T * P, dp));
    }
    if (first && opt) {
        PGD_TRY(pgd_backend_embedding(be, sc->xb, m->pos_embd, m->embd_dtype, d_pos, T, d));
        PGD_TRY(pgd_backend_add(be, sc->x, sc->xb, (size_t)T * d));
    }
    for (int l = sh->layer_begin; l < sh->layer_end; l++) {
        const pgd_layer_weights *L = &m->layers[l];
        PGD_TRY(pgd_backend_rmsnorm(be, sc->xb, sc->x, L->attn_norm, T, d, c->norm_eps));
        /* q | k | v of every token from one GEMM; the ops below read them in place (row
         * stride qkvd). A layer whose q, k and v rows differ in dtype (a Q4_K_M file's
         * Q6_K attn_v) runs three GEMMs, each on its part's bytes as stored, into dense
         * q, k and v rows (stride 0) in the same buffer */
        float *q = sc->qkv, *k = sc->qkv + qd, *v = sc->qkv + qd + kvd;
        int qs = qkvd;
        if (!L->qkv_split) {
            PGD_TRY(pgd_backend_matmul(be, sc->qkv, sc->xb, L->wqkv, L->q_dt, T, d, qkvd));
        } else {
            k = q + (size_t)T * qd, v = k + (size_t)T * kvd, qs = 0;
            PGD_TRY(pgd_backend_matmul(be, q, sc->xb, L->wqkv, L->q_dt, T, d, qd));
            PGD_TRY(pgd_backend_matmul(be, k, sc->xb, L->wk, L->k_dt, T, d, kvd));
            PGD_TRY(pgd_backend_matmul(be, v, sc->xb, L->wv, L->v_dt, T, d, kvd));
        }
        if (!opt) PGD_TRY(pgd_backend_rope(be, q, k, d_pos, T, sh->heads, sh->kv_heads, hd, c->rope_theta, qs));
        float *kc = pgd_kv_cache_k(kv, l - sh->layer_begin), *vc = pgd_kv_cache_v(kv, l - sh->layer_begin);
        PGD_TRY(pgd_backend_kv_write(be, kc, vc, k, v, d_slot, T, sh->kv_heads, hd, bs, qs));
        pgd_paged_attn a = {
            .out = sc->xb2,
            .q = q,
            .k_cache = kc,
            .v_cache = vc,
            .query_start = d_qs,
            .seq_lens = d_len,
            .block_tables = d_bt,
            .num_seqs = S,
            .num_tokens = T,
            .max_blocks_per_seq = MB,
            .max_seq_len = max_len,
            .n_heads = sh->heads,
            .n_kv_heads = sh->kv_heads,
            .head_dim = hd,
            .block_size = bs,
            .scale = 1.0f / sqrtf((float)hd),
            .q_stride = qs,
            .kv_dtype = kvt,
        };
        PGD_TRY(pgd_backend_paged_attention(be, &a));
        PGD_TRY(pgd_backend_matmul(be, sc->xb, sc->xb2, L->wo, L->o_dt, T, qd, d));
        PGD_TRY(tp_sum(m, io, sc->xb, (size_t)T * d));
        PGD_TRY(pgd_backend_add(be, sc->x, sc->xb, (size_t)T * d));
        PGD_TRY(pgd_backend_rmsnorm(be, sc->xb, sc->x, L->ffn_norm, T, d, c->norm_eps));
        /* gate | up of every token from one GEMM (OPT: fc1 alone, see the top); gate and
         * up of different dtypes: two GEMMs on their bytes as stored into gu2 (T gate
         * rows, then T up rows), interleaved into gu's [gate | up] rows */
        if (!L->w13_split) {
            PGD_TRY(pgd_backend_matmul(be, sc->gu, sc->xb, L->w13, L->g_dt, T, d, opt ? h : 2 * h));
        } else {
            PGD_TRY(pgd_backend_matmul(be, sc->gu2, sc->xb, L->w13, L->g_dt, T, d, h));
            PGD_TRY(pgd_backend_matmul(be, sc->gu2 + (size_t)T * h, sc->xb, L->wup, L->u_dt, T, d, h));
            PGD_TRY(pgd_backend_gather_rows(be, sc->gu, sc->gu2, d_il, 2 * T, h));
        }
        PGD_TRY(pgd_backend_silu_mul(be, sc->hb, sc->gu, T, h));
        PGD_TRY(pgd_backend_matmul(be, sc->xb, sc->hb, L->w2, L->w2_dt, T, h, d));
        PGD_TRY(tp_sum(m, io, sc->xb, (size_t)T * d));
        PGD_TRY(pgd_backend_add(be, sc->x, sc->xb, (size_t)T * d));
    }
    if (!last) {
        PGD_TRY(pgd_backend_sync(be));
        return pgd_comm_send(io->world, sc->x, sizeof(float) * (size_t)T * d, io->next, io->tag);
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
    PGD_TRY(pgd_backend_matmul(be, sc->logits, fin, m->wcls, m->cls_dtype, R, d, VP));
    if (P > 1) {
        PGD_TRY(pgd_backend_sync(be));
        PGD_TRY(pgd_comm_all_gather(io->tp, sc->logits, sc->gath, (size_t)R * VP, PGD_F32));
        if (sh->tp_rank != 0) return PGD_OK; /* tp rank 0 delivers */
        PGD_TRY(pgd_backend_gather_rows(be, sc->logits, sc->gath, d_gl, R * P, VP));
    }
    const size_t row = (size_t)VP * P; /* floats per logits row on the device (padded) */
    int send = io && io->logits_to >= 0;
    if (row == (size_t)V && !send)
        return pgd_backend_download(be, logits, sc->logits, sizeof(float) * (size_t)R * V);
    size_t need = (size_t)R * row;
    if (need > sc->cap_host_logits) {
        free(sc->host_logits);
        sc->host_logits = malloc(need * sizeof(float));
        sc->cap_host_logits = sc->host_logits ? need : 0;
        if (!sc->host_logits) return pgd_error(PGD_ERR_OOM, "forward: out of memory for logits");
    }
    PGD_TRY(pgd_backend_download(be, sc->host_logits, sc->logits, sizeof(float) * need));
    float *dst = send ? sc->host_logits : logits;
    for (int r = 0; r < R; r++) /* drop the padding rows of the last vocabulary shard */
        memmove(dst + (size_t)r * V, sc->host_logits + (size_t)r * row, sizeof(float) * V);
    if (send)
        return pgd_comm_send(io->ctrl, sc->host_logits, sizeof(float) * (size_t)R * V, io->logits_to, io->tag);
    return PGD_OK;
}
