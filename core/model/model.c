/* model.c - model lifetime: format detection, the single weight allocation
 * and its layout, host->device upload with dtype conversion, accessors. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "format/gguf.h"
#include "model_impl.h"
#include "pagoda/log.h"

static size_t align_up(size_t x) { return (x + 255) & ~(size_t)255; }

pgd_status pgd_model_shard_init(pgd_model *m, int tp, int tp_rank, int pp, int pp_rank,
                                const int *stage_layers) {
    const pgd_model_config *c = &m->cfg;
    pgd_shard *sh = &m->sh;
    memset(sh, 0, sizeof *sh);
    if (tp < 1 || pp < 1 || tp_rank < 0 || tp_rank >= tp || pp_rank < 0 || pp_rank >= pp)
        return pgd_error(PGD_ERR_INVALID, "parallel layout: rank (tp %d of %d, stage %d of %d) is out of range",
                         tp_rank, tp, pp_rank, pp);
    if (c->n_heads % tp || c->n_kv_heads % tp)
        return pgd_error(PGD_ERR_INVALID, "model %s: tensor-parallel degree %d must divide the query heads (%d) "
                         "and the KV heads (%d)", c->name, tp, c->n_heads, c->n_kv_heads);
    if (tp > c->hidden_dim)
        return pgd_error(PGD_ERR_INVALID, "model %s: tensor-parallel degree %d exceeds the FFN width %d",
                         c->name, tp, c->hidden_dim);
    if (pp > c->n_layers)
        return pgd_error(PGD_ERR_INVALID, "model %s: %d pipeline stages but only %d layers (at most one stage "
                         "per layer)", c->name, pp, c->n_layers);
    int begin = 0, end = 0;
    if (stage_layers) {
        int total = 0;
        for (int i = 0; i < pp; i++) {
            if (stage_layers[i] < 1)
                return pgd_error(PGD_ERR_INVALID, "parallel layout: stage %d has %d layers (each stage needs >= 1)",
                                 i, stage_layers[i]);
            if (i < pp_rank) begin += stage_layers[i];
            total += stage_layers[i];
        }
        if (total != c->n_layers)
            return pgd_error(PGD_ERR_INVALID, "parallel layout: the stages' layers add up to %d, the model %s has %d",
                             total, c->name, c->n_layers);
        end = begin + stage_layers[pp_rank];
    } else {
        int base = c->n_layers / pp, extra = c->n_layers % pp;
        for (int i = 0; i < pp_rank; i++) begin += base + (i < extra);
        end = begin + base + (pp_rank < extra);
    }
    sh->tp = tp;
    sh->tp_rank = tp_rank;
    sh->pp = pp;
    sh->pp_rank = pp_rank;
    sh->layer_begin = begin;
    sh->layer_end = end;
    sh->heads = c->n_heads / tp;
    sh->head0 = tp_rank * sh->heads;
    sh->kv_heads = c->n_kv_heads / tp;
    sh->kv_head0 = tp_rank * sh->kv_heads;
    sh->hidden0 = (int)((long long)c->hidden_dim * tp_rank / tp);
    sh->hidden = (int)((long long)c->hidden_dim * (tp_rank + 1) / tp) - sh->hidden0;
    sh->dim_part = c->dim / tp;
    sh->vocab_part = (c->vocab_size + tp - 1) / tp;
    return PGD_OK;
}

static int first_stage(const pgd_shard *sh) { return sh->pp_rank == 0; }
static int last_stage(const pgd_shard *sh) { return sh->pp_rank == sh->pp - 1; }

/* Layer l's matrix dtypes: the loader's, else cfg.weight_dtype for all. */
static pgd_layer_dtypes layer_dtypes(const pgd_model *m, int l) {
    if (m->ldt) return m->ldt[l];
    pgd_dtype w = m->cfg.weight_dtype;
    return (pgd_layer_dtypes){w, w, w, w, w, w, w};
}

/* Quantized weights are stored in blocks of 32 (k-quants: super-blocks of
 * 256) along each row: every row this rank holds, and every column range it
 * slices out of a row under tensor parallelism, must be whole blocks of the
 * dtype of the tensor it belongs to (the first tensor that is not is named);
 * and the backend must take every dtype. */
static pgd_status check_quant(const pgd_model *m, pgd_dtype embd_dtype, pgd_dtype cls_dtype) {
    const pgd_model_config *c = &m->cfg;
    const pgd_shard *sh = &m->sh;
    int first = sh->pp_rank == 0, last = sh->pp_rank == sh->pp - 1;
    /* every dtype this rank holds: the embedding's, the classifier's, each layer matrix's */
    int used[PGD_DTYPE_COUNT] = {0};
    used[embd_dtype] = used[cls_dtype] = used[c->weight_dtype] = 1;
    for (int l = sh->layer_begin; l < sh->layer_end; l++) {
        pgd_layer_dtypes t = layer_dtypes(m, l);
        used[t.q] = used[t.k] = used[t.v] = used[t.o] = used[t.gate] = used[t.up] = used[t.down] = 1;
    }
    for (int i = 0; i < PGD_DTYPE_COUNT; i++)
        if (used[i] && !pgd_backend_takes_weights(m->backend, (pgd_dtype)i))
            return pgd_error(PGD_ERR_UNSUPPORTED,
                             "model %s: the %s backend has no kernels for %s weights "
                             "(use f32, f16 or bf16 there)",
                             c->name, pgd_backend_name(m->backend), pgd_dtype_name((pgd_dtype)i));
    long hd = c->head_dim;
    /* what must be whole blocks, and of which tensors: rows of dim (q, k, v, gate, up, the
     * embedding and classifier), wo's rows and its column slice, w2's rows and its slice,
     * the embedding's column slice */
    enum { ROW_DIM = 1, WO = 2, W2 = 4, EMBD_SLICE = 8 };
    struct {
        const char *what;
        long v;
        int of;
    } need[] = {
        {"dim", c->dim, ROW_DIM},
        {"this rank's attention width (heads x head_dim)", (long)sh->heads * hd, WO},
        {"this rank's first attention column", (long)sh->head0 * hd, WO},
        {"hidden", c->hidden_dim, W2},
        {"this rank's hidden slice", sh->hidden, W2},
        {"this rank's first hidden column", sh->hidden0, W2},
        {"this rank's embedding slice (dim / tp)", sh->tp > 1 ? sh->dim_part : c->dim, EMBD_SLICE},
    };
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        char name[64] = "";
        pgd_dtype bad = PGD_F32;
#define CHECK(dt, ...)                                     \
    do {                                                   \
        if (!name[0] && need[i].v % pgd_dtype_block(dt)) { \
            bad = (dt);                                    \
            snprintf(name, sizeof name, __VA_ARGS__);      \
        }                                                  \
    } while (0)
        int of = need[i].of;
        if (first && (of & (ROW_DIM | EMBD_SLICE))) CHECK(embd_dtype, "token_embd.weight");
        for (int l = sh->layer_begin; l < sh->layer_end && !name[0]; l++) {
            pgd_layer_dtypes t = layer_dtypes(m, l);
            if (of & ROW_DIM) {
                CHECK(t.q, "blk.%d.attn_q.weight", l);
                CHECK(t.k, "blk.%d.attn_k.weight", l);
                CHECK(t.v, "blk.%d.attn_v.weight", l);
                CHECK(t.gate, "blk.%d.ffn_gate.weight", l);
                if (c->arch != PGD_ARCH_OPT) CHECK(t.up, "blk.%d.ffn_up.weight", l);
            }
            if (of & WO) CHECK(t.o, "blk.%d.attn_output.weight", l);
            if (of & W2) CHECK(t.down, "blk.%d.ffn_down.weight", l);
        }
        if (last && (of & ROW_DIM)) CHECK(c->tied_classifier ? embd_dtype : cls_dtype, "output.weight");
#undef CHECK
        if (name[0]) {
            int blk = pgd_dtype_block(bad);
            return pgd_error(PGD_ERR_UNSUPPORTED,
                             "model %s: tensor '%s': %s weights are stored in blocks of %d along each "
                             "row, but %s is %ld (not a multiple of %d)%s",
                             c->name, name, pgd_dtype_name(bad), blk, need[i].what, need[i].v, blk,
                             sh->tp > 1 ? "; try another tensor-parallel degree" : "");
        }
    }
    return PGD_OK;
}

pgd_status pgd_model_layout(pgd_model *m, pgd_dtype embd_dtype, pgd_dtype cls_dtype) {
    const pgd_model_config *c = &m->cfg;
    if (!m->sh.tp) {
        if (m->req_tp)
            PGD_TRY(pgd_model_shard_init(m, m->req_tp, m->req_tp_rank, m->req_pp, m->req_pp_rank,
                                         m->req_stage_layers[0] ? m->req_stage_layers : NULL));
        else
            PGD_TRY(pgd_model_shard_init(m, 1, 0, 1, 0, NULL));
    }
    const pgd_shard *sh = &m->sh;
    PGD_TRY(check_quant(m, embd_dtype, cls_dtype));
    size_t d = (size_t)c->dim, hd = (size_t)c->head_dim, qd = (size_t)sh->heads * hd, kvd = (size_t)sh->kv_heads * hd,
           h = (size_t)sh->hidden, v = (size_t)c->vocab_size;
    /* the classifier shares the embedding's storage only when one rank holds both whole */
    int share_cls = c->tied_classifier && sh->tp == 1 && sh->pp == 1;
    if (c->tied_classifier) cls_dtype = embd_dtype;
    size_t off = 0;
    size_t o_embd = off;
    if (first_stage(sh)) off = align_up(off + pgd_dtype_bytes(embd_dtype, v * (sh->tp > 1 ? (size_t)sh->dim_part : d)));
    size_t o_cls = off;
    if (last_stage(sh) && !share_cls)
        off = align_up(off + pgd_dtype_bytes(cls_dtype, (sh->tp > 1 ? (size_t)sh->vocab_part : v) * d));
    size_t o_final = off;
    if (last_stage(sh)) off = align_up(off + d * 4);
    int opt = c->arch == PGD_ARCH_OPT;
    size_t o_pos = off;
    if (opt && first_stage(sh)) off = align_up(off + pgd_dtype_bytes(embd_dtype, (size_t)c->max_seq_len * d));
    size_t o_layers = off;
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers) return pgd_error(PGD_ERR_OOM, "model: out of memory");
    /* per layer: the norms, wqkv (q, k, v rows back to back, each part in its dtype), wo,
     * w13 (gate and up rows back to back, each in its dtype; OPT: fc1 alone), w2 */
    m->w13_split_any = 0;
    for (int l = sh->layer_begin; l < sh->layer_end; l++) {
        pgd_layer_weights *L = &m->layers[l];
        pgd_layer_dtypes t = layer_dtypes(m, l);
        L->q_dt = t.q, L->k_dt = t.k, L->v_dt = t.v, L->o_dt = t.o;
        L->g_dt = t.gate, L->u_dt = opt ? t.gate : t.up, L->w2_dt = t.down;
        L->qkv_split = t.q != t.k || t.k != t.v;
        L->w13_split = L->g_dt != L->u_dt;
        m->w13_split_any |= L->w13_split;
        off += align_up(d * 4) * 2 +
               align_up(pgd_dtype_bytes(t.q, qd * d) + pgd_dtype_bytes(t.k, kvd * d) + pgd_dtype_bytes(t.v, kvd * d)) +
               align_up(pgd_dtype_bytes(t.o, d * qd)) +
               align_up(pgd_dtype_bytes(L->g_dt, h * d) + (opt ? 0 : pgd_dtype_bytes(L->u_dt, h * d))) +
               align_up(pgd_dtype_bytes(t.down, h * d));
    }
    pgd_status s = pgd_backend_alloc(m->backend, off, &m->weights);
    if (s != PGD_OK)
        return pgd_error(s, "model %s: cannot allocate %.2f GiB of weights on %s: %s", c->name,
                         off / 1073741824.0, pgd_backend_name(m->backend), pgd_last_error());
    m->weights_bytes = off;
    char *base = m->weights;
    m->tok_embd = first_stage(sh) ? base + o_embd : NULL;
    m->embd_dtype = embd_dtype;
    m->wcls = !last_stage(sh) ? NULL : share_cls ? m->tok_embd : (void *)(base + o_cls);
    m->cls_dtype = cls_dtype;
    m->final_norm = last_stage(sh) ? (float *)(base + o_final) : NULL;
    m->pos_embd = opt && first_stage(sh) ? (void *)(base + o_pos) : NULL;
    char *p = base + o_layers;
    for (int l = sh->layer_begin; l < sh->layer_end; l++) {
        pgd_layer_weights *L = &m->layers[l];
        L->attn_norm = (float *)p; p += align_up(d * 4);
        L->ffn_norm = (float *)p;  p += align_up(d * 4);
        L->wqkv = p;
        L->wk = p + pgd_dtype_bytes(L->q_dt, qd * d);
        L->wv = (char *)L->wk + pgd_dtype_bytes(L->k_dt, kvd * d);
        p += align_up(pgd_dtype_bytes(L->q_dt, qd * d) + pgd_dtype_bytes(L->k_dt, kvd * d) +
                      pgd_dtype_bytes(L->v_dt, kvd * d));
        L->wo = p;
        p += align_up(pgd_dtype_bytes(L->o_dt, d * qd));
        L->w13 = p;
        L->wup = opt ? NULL : p + pgd_dtype_bytes(L->g_dt, h * d);
        p += align_up(pgd_dtype_bytes(L->g_dt, h * d) + (opt ? 0 : pgd_dtype_bytes(L->u_dt, h * d)));
        L->w2 = p;
        p += align_up(pgd_dtype_bytes(L->w2_dt, h * d));
    }
    return PGD_OK;
}

void pgd_model_note_dtypes(pgd_model *m, pgd_dtype embd_dtype, pgd_dtype cls_dtype) {
    pgd_model_config_note_dtypes(&m->cfg, m->ldt, embd_dtype, cls_dtype);
}

/* Upload rows [r0, r0 + nr) x columns [c0, c0 + nc) of a (rows, cols) source
 * tensor into the contiguous (nr, nc) device tensor dst of dtype dt. */
static pgd_status put_slice(pgd_model *m, void *dst, pgd_dtype dt, const pgd_tensor_src *src,
                            size_t cols, size_t r0, size_t nr, size_t c0, size_t nc) {
    if (src->data && pgd_dtype_is_kquant(src->dt) && (c0 % PGD_QK_K || nc % PGD_QK_K))
        return pgd_error(PGD_ERR_UNSUPPORTED,
                         "model: %s%s%sa %s tensor sliced at column %zu (+%zu): its super-blocks "
                         "of %d values would be cut (tensor parallelism with k-quants needs every rank's "
                         "slice a multiple of %d)",
                         src->name ? "tensor '" : "", src->name ? src->name : "", src->name ? "' is " : "",
                         pgd_dtype_name(src->dt), c0, nc, PGD_QK_K, PGD_QK_K);
    if (src->data && c0 == 0 && nc == cols) /* whole rows: one contiguous range */
        return pgd_model_put(m, dst, dt, (const char *)src->data + pgd_dtype_bytes(src->dt, r0 * cols),
                             src->dt, nr * cols);
    if (src->data) {
        for (size_t r = 0; r < nr; r++)
            PGD_TRY(pgd_model_put(m, (char *)dst + pgd_dtype_bytes(dt, r * nc), dt,
                                  (const char *)src->data + pgd_dtype_bytes(src->dt, (r0 + r) * cols + c0),
                                  src->dt, nc));
        return PGD_OK;
    }
    /* generated: ones or the random stream, in chunks of whole row segments when they fit */
    enum { CHUNK = 1 << 16 };
    size_t seg = nc < CHUNK ? nc : CHUNK;
    float *buf = malloc(seg * sizeof(float));
    if (!buf) return pgd_error(PGD_ERR_OOM, "model: out of memory generating weights");
    pgd_status s = PGD_OK;
    for (size_t r = 0; r < nr && s == PGD_OK; r++)
        for (size_t j0 = 0; j0 < nc && s == PGD_OK; j0 += seg) {
            size_t n = nc - j0 < seg ? nc - j0 : seg;
            if (src->ones)
                for (size_t i = 0; i < n; i++) buf[i] = 1.0f;
            else
                pgd_random_stream(src->seed, src->id, src->scale, (r0 + r) * cols + c0 + j0, n, buf);
            s = pgd_model_put(m, (char *)dst + pgd_dtype_bytes(dt, r * nc + j0), dt, buf, PGD_F32, n);
        }
    free(buf);
    return s;
}

pgd_status pgd_model_put_tensor(pgd_model *m, pgd_tensor_kind k, int l, const pgd_tensor_src *src) {
    const pgd_model_config *c = &m->cfg;
    const pgd_shard *sh = &m->sh;
    size_t d = (size_t)c->dim, hd = (size_t)c->head_dim, V = (size_t)c->vocab_size,
           qd = (size_t)c->n_heads * hd, H = (size_t)c->hidden_dim;
    int in_stage = l >= sh->layer_begin && l < sh->layer_end;
    pgd_layer_weights *L = in_stage ? &m->layers[l] : NULL;
    switch (k) {
    case PGD_T_EMBD:
        if (!m->tok_embd) return PGD_OK;
        if (sh->tp == 1) return put_slice(m, m->tok_embd, m->embd_dtype, src, d, 0, V, 0, d);
        return put_slice(m, m->tok_embd, m->embd_dtype, src, d, 0, V, (size_t)sh->tp_rank * sh->dim_part,
                         (size_t)sh->dim_part);
    case PGD_T_CLS: {
        if (!m->wcls || m->wcls == m->tok_embd) return PGD_OK;
        if (sh->tp == 1) return put_slice(m, m->wcls, m->cls_dtype, src, d, 0, V, 0, d);
        size_t vp = (size_t)sh->vocab_part, r0 = (size_t)sh->tp_rank * vp;
        size_t nr = r0 >= V ? 0 : (V - r0 < vp ? V - r0 : vp);
        if (nr < vp) /* zero rows past the vocabulary: their logits are dropped */
            PGD_TRY(pgd_backend_memset(m->backend, (char *)m->wcls + pgd_dtype_bytes(m->cls_dtype, nr * d), 0,
                                       pgd_dtype_bytes(m->cls_dtype, (vp - nr) * d)));
        return nr ? put_slice(m, m->wcls, m->cls_dtype, src, d, r0, nr, 0, d) : PGD_OK;
    }
    case PGD_T_FINAL_NORM:
        return m->final_norm ? put_slice(m, m->final_norm, PGD_F32, src, d, 0, 1, 0, d) : PGD_OK;
    case PGD_T_POS:
        return m->pos_embd ? put_slice(m, m->pos_embd, m->embd_dtype, src, d, 0, (size_t)c->max_seq_len, 0, d)
                           : PGD_OK;
    default: break;
    }
    if (!L) return PGD_OK;
    size_t h0 = (size_t)sh->head0 * hd, nq = (size_t)sh->heads * hd, k0 = (size_t)sh->kv_head0 * hd,
           nk = (size_t)sh->kv_heads * hd, f0 = (size_t)sh->hidden0, nf = (size_t)sh->hidden;
    /* this rank's q rows, then k rows, then v rows; its gate rows, then its up rows (not
     * OPT): each part in its own dtype, starting where the previous part's bytes end
     * (pgd_model_layout's wk, wv, wup) */
    switch (k) {
    case PGD_T_ATTN_NORM: return put_slice(m, L->attn_norm, PGD_F32, src, d, 0, 1, 0, d);
    case PGD_T_FFN_NORM: return put_slice(m, L->ffn_norm, PGD_F32, src, d, 0, 1, 0, d);
    case PGD_T_WQ: return put_slice(m, L->wqkv, L->q_dt, src, d, h0, nq, 0, d);
    case PGD_T_WK: return put_slice(m, L->wk, L->k_dt, src, d, k0, nk, 0, d);
    case PGD_T_WV: return put_slice(m, L->wv, L->v_dt, src, d, k0, nk, 0, d);
    case PGD_T_WO: return put_slice(m, L->wo, L->o_dt, src, qd, 0, d, h0, nq);
    case PGD_T_W1: return put_slice(m, L->w13, L->g_dt, src, d, f0, nf, 0, d);
    case PGD_T_W3: /* OPT has no up projection */
        return c->arch == PGD_ARCH_OPT ? PGD_OK : put_slice(m, L->wup, L->u_dt, src, d, f0, nf, 0, d);
    case PGD_T_W2: return put_slice(m, L->w2, L->w2_dt, src, H, 0, d, f0, nf);
    default: break;
    }
    return pgd_error(PGD_ERR_INVALID, "model: unknown tensor kind %d", (int)k);
}

/* Offer one matrix to the backend ("prepare_weight"); a backend that does not
 * know the request keeps it as it is. */
static pgd_status offer_weight(pgd_model *m, void *w, pgd_dtype dt, size_t rows, size_t in, int *arranged) {
    if (!w || !rows || !in) return PGD_OK;
    pgd_backend_weight pw = {.w = w, .dtype = dt, .rows = rows, .in = (int)in};
    pgd_status s = pgd_backend_control(m->backend, "prepare_weight", &pw);
    if (s == PGD_ERR_UNSUPPORTED) return PGD_OK;
    *arranged += pw.arranged;
    return s;
}

/* After loading: every matmul weight this rank holds, and the embedding
 * table, offered to the backend to rearrange for its kernels. */
static pgd_status prepare_weights(pgd_model *m) {
    const pgd_model_config *c = &m->cfg;
    const pgd_shard *sh = &m->sh;
    size_t d = (size_t)c->dim, hd = (size_t)c->head_dim, qd = (size_t)sh->heads * hd, kvd = (size_t)sh->kv_heads * hd,
           h = (size_t)sh->hidden, v = (size_t)c->vocab_size;
    int n = 0;
    PGD_TRY(offer_weight(m, m->tok_embd, m->embd_dtype, v, sh->tp > 1 ? (size_t)sh->dim_part : d, &n));
    if (m->wcls != m->tok_embd)
        PGD_TRY(offer_weight(m, m->wcls, m->cls_dtype, sh->tp > 1 ? (size_t)sh->vocab_part : v, d, &n));
    for (int l = sh->layer_begin; l < sh->layer_end; l++) {
        pgd_layer_weights *L = &m->layers[l];
        PGD_TRY(offer_weight(m, L->wqkv, L->q_dt, qd, d, &n));
        PGD_TRY(offer_weight(m, L->wk, L->k_dt, kvd, d, &n));
        PGD_TRY(offer_weight(m, L->wv, L->v_dt, kvd, d, &n));
        PGD_TRY(offer_weight(m, L->wo, L->o_dt, d, qd, &n));
        PGD_TRY(offer_weight(m, L->w13, L->g_dt, h, d, &n));
        PGD_TRY(offer_weight(m, L->wup, L->u_dt, h, d, &n)); /* OPT: NULL, skipped */
        PGD_TRY(offer_weight(m, L->w2, L->w2_dt, d, h, &n));
    }
    if (n)
        PGD_LOG_I("model %s: %d weight matrices rearranged for the %s backend's kernels", c->name, n,
                  pgd_backend_name(m->backend));
    return PGD_OK;
}

pgd_status pgd_model_put(pgd_model *m, void *dst, pgd_dtype dt, const void *src, pgd_dtype st,
                         size_t count) {
    if (dt == st) return pgd_backend_upload(m->backend, dst, src, pgd_dtype_bytes(dt, count));
    /* convert in chunks (whole quantized blocks) through f32 and a host staging buffer */
    enum { CHUNK = 1 << 16 };
    float *f = malloc(CHUNK * sizeof(float));
    void *stage = malloc(CHUNK * sizeof(float));
    pgd_status s = f && stage ? PGD_OK : pgd_error(PGD_ERR_OOM, "model: out of memory converting weights");
    for (size_t i0 = 0; i0 < count && s == PGD_OK; i0 += CHUNK) {
        size_t n = count - i0 < CHUNK ? count - i0 : CHUNK;
        pgd_dtype_to_f32(f, (const char *)src + pgd_dtype_bytes(st, i0), st, n);
        pgd_dtype_from_f32(stage, dt, f, n);
        s = pgd_backend_upload(m->backend, (char *)dst + pgd_dtype_bytes(dt, i0), stage, pgd_dtype_bytes(dt, n));
    }
    free(f);
    free(stage);
    return s;
}

static pgd_status detect_format(const char *path, pgd_model_format *fmt) {
    FILE *f = fopen(path, "rb");
    if (!f) return pgd_error(PGD_ERR_IO, "cannot open model '%s': %s", path, strerror(errno));
    unsigned char magic[4] = {0};
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    if (got < 4) return pgd_error(PGD_ERR_FORMAT, "%s: file too short to be a model (%zu bytes)", path, got);
    *fmt = memcmp(magic, "GGUF", 4) == 0 ? PGD_FORMAT_GGUF : PGD_FORMAT_LLAMA2C;
    return PGD_OK;
}

pgd_status pgd_model_peek_context(const char *spec, int *max_seq_len) {
    if (!spec || !max_seq_len) return pgd_error(PGD_ERR_INVALID, "pgd_model_peek_context: NULL argument");
    pgd_model_config c;
    if (!strncmp(spec, "random:", 7)) {
        PGD_TRY(pgd_model_shape(spec + 7, &c));
        *max_seq_len = c.max_seq_len;
        return PGD_OK;
    }
    if (pgd_model_is_safetensors(spec)) return pgd_model_peek_safetensors_context(spec, max_seq_len);
    struct stat sb; /* only a regular file: a FIFO or a device named in a config must not block a --dry-run */
    if (stat(spec, &sb) != 0 || !S_ISREG(sb.st_mode))
        return pgd_error(PGD_ERR_IO, "model '%s' is not a readable regular file", spec);
    pgd_model_format fmt;
    PGD_TRY(detect_format(spec, &fmt));
    if (fmt == PGD_FORMAT_GGUF) {
        pgd_gguf *g = NULL;
        PGD_TRY(pgd_gguf_open(spec, &g));
        const char *arch = NULL;
        size_t alen = 0;
        char key[128];
        int64_t v = 2048;
        pgd_status s = pgd_gguf_get_str(g, "general.architecture", &arch, &alen);
        if (s == PGD_OK) {
            snprintf(key, sizeof key, "%.*s.context_length", (int)(alen < 63 ? alen : 63), arch);
            if (pgd_gguf_has_key(g, key)) s = pgd_gguf_get_int(g, key, &v);
        }
        pgd_gguf_close(g);
        PGD_TRY(s);
        if (v <= 0 || v > (1 << 22)) return pgd_error(PGD_ERR_FORMAT, "%s: context length %lld", spec, (long long)v);
        *max_seq_len = (int)v;
        return PGD_OK;
    }
    FILE *f = fopen(spec, "rb");
    if (!f) return pgd_error(PGD_ERR_IO, "cannot open model '%s': %s", spec, strerror(errno));
    int32_t h[7];
    size_t got = fread(h, sizeof *h, 7, f);
    fclose(f);
    if (got != 7 || h[6] <= 0 || h[6] > (1 << 22))
        return pgd_error(PGD_ERR_FORMAT, "%s: not a llama2.c checkpoint header", spec);
    *max_seq_len = h[6];
    return PGD_OK;
}

pgd_status pgd_model_load(const char *spec, const pgd_model_load_opts *opts, pgd_backend *b,
                          pgd_model **out) {
    static const pgd_model_load_opts defaults = {0};
    if (!spec || !b || !out) return pgd_error(PGD_ERR_INVALID, "pgd_model_load: NULL argument");
    *out = NULL;
    if (!opts) opts = &defaults;
    return pgd_model_load_part(spec, opts, b, NULL, out);
}

pgd_status pgd_model_load_part(const char *spec, const pgd_model_load_opts *opts, pgd_backend *b,
                               const pgd_model *req, pgd_model **out) {
    *out = NULL;
    pgd_model *m = calloc(1, sizeof *m);
    if (!m) return pgd_error(PGD_ERR_OOM, "model: out of memory");
    m->backend = b;
    if (req) {
        m->req_tp = req->req_tp;
        m->req_tp_rank = req->req_tp_rank;
        m->req_pp = req->req_pp;
        m->req_pp_rank = req->req_pp_rank;
        memcpy(m->req_stage_layers, req->req_stage_layers, sizeof m->req_stage_layers);
    }
    pgd_status s;
    if (!strncmp(spec, "random:", 7)) {
        m->format = PGD_FORMAT_RANDOM;
        s = pgd_model_load_random(m, spec + 7, opts);
    } else if (pgd_model_is_safetensors(spec)) {
        m->format = PGD_FORMAT_SAFETENSORS;
        s = pgd_model_load_safetensors(m, spec);
    } else {
        s = detect_format(spec, &m->format);
        if (s == PGD_OK)
            s = m->format == PGD_FORMAT_GGUF ? pgd_model_load_gguf(m, spec)
                                             : pgd_model_load_llama2c(m, spec);
    }
    if (s == PGD_OK) s = prepare_weights(m);
    if (s != PGD_OK) goto fail;
    m->cfg.kv_dtype = pgd_backend_kv_dtype(b);
    char dts[64];
    PGD_LOG_I("model %s: dim=%d layers=%d heads=%d kv_heads=%d hidden=%d vocab=%d seq=%d %s, "
              "%.1fM params",
              m->cfg.name, m->cfg.dim, m->cfg.n_layers, m->cfg.n_heads, m->cfg.n_kv_heads, m->cfg.hidden_dim,
              m->cfg.vocab_size, m->cfg.max_seq_len, pgd_model_config_dtype_str(&m->cfg, dts, sizeof dts),
              pgd_model_config_params(&m->cfg) / 1e6);
    *out = m;
    return PGD_OK;
fail:
    pgd_model_destroy(m);
    return s;
}

void pgd_model_destroy(pgd_model *m) {
    if (!m) return;
    pgd_backend_free(m->backend, m->weights);
    pgd_backend_free(m->backend, m->s.act);
    pgd_backend_free(m->backend, m->s.meta);
    free(m->s.host_meta);
    free(m->s.host_logits);
    free(m->layers);
    free(m->ldt);
    pgd_tokenizer_destroy(m->tokenizer);
    free(m);
}

const pgd_model_config *pgd_model_get_config(const pgd_model *m) { return &m->cfg; }
pgd_model_format pgd_model_get_format(const pgd_model *m) { return m->format; }
pgd_backend *pgd_model_backend(const pgd_model *m) { return m->backend; }
const pgd_tokenizer *pgd_model_tokenizer(const pgd_model *m) { return m->tokenizer; }
