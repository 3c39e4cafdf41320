/* gguf_model.c - builds a Llama-family model from a GGUF file: config from
 * the "<arch>.*" metadata, tensors by their llama.cpp names (token_embd,
 * blk.N.attn_{norm,q,k,v,output}, blk.N.ffn_{norm,gate,up,down},
 * output_norm, output [absent = tied]), every shape checked against the
 * config, every tensor in the dtype the file stores it in (each layer
 * matrix its own: a Q4_K_M file's Q4_K and Q6_K side by side, layer_dtypes),
 * F32/F16/BF16 as they are, Q8_0/Q4_0/Q4_K/Q6_K kept quantized where the
 * backend has kernels for them (the CPU, the sim), else dequantised to f32;
 * the tokenizer from metadata. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/gguf.h"
#include "model_impl.h"

static pgd_status meta_int(const pgd_gguf *g, const char *arch, const char *key, int required,
                           int64_t dflt, int *out) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    int64_t v = dflt;
    if (pgd_gguf_has_key(g, k)) {
        PGD_TRY(pgd_gguf_get_int(g, k, &v));
    } else if (required) {
        return pgd_error(PGD_ERR_FORMAT, "%s: required metadata key '%s' is missing", pgd_gguf_path(g), k);
    }
    if (v <= 0 || v > (1LL << 30))
        return pgd_error(PGD_ERR_FORMAT, "%s: metadata '%s' = %lld is out of range", pgd_gguf_path(g), k, (long long)v);
    *out = (int)v;
    return PGD_OK;
}

static pgd_status meta_f32(const pgd_gguf *g, const char *arch, const char *key, float dflt, float *out) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    *out = dflt;
    if (pgd_gguf_has_key(g, k)) PGD_TRY(pgd_gguf_get_f32(g, k, out));
    return PGD_OK;
}

/* The dtype tensor t's bytes are in (as stored). */
static pgd_status dtype_of(const pgd_gguf *g, const pgd_gguf_tensor *t, pgd_dtype *dt) {
    switch (t->type) {
    case PGD_GGML_F32: *dt = PGD_F32; return PGD_OK;
    case PGD_GGML_F16: *dt = PGD_F16; return PGD_OK;
    case PGD_GGML_BF16: *dt = PGD_BF16; return PGD_OK;
    case PGD_GGML_Q8_0: *dt = PGD_Q8_0; return PGD_OK;
    case PGD_GGML_Q4_0: *dt = PGD_Q4_0; return PGD_OK;
    case PGD_GGML_Q4_K: *dt = PGD_Q4_K; return PGD_OK;
    case PGD_GGML_Q6_K: *dt = PGD_Q6_K; return PGD_OK;
    }
    return pgd_error(PGD_ERR_UNSUPPORTED, "%s: tensor '%s' has unsupported type %d", pgd_gguf_path(g), t->name, t->type);
}

/* Find tensor `name` with shape (ne0, ne1) (ne1 = 0 for a vector) and
 * upload it to dst as dtype dt. */
static pgd_status put_tensor(pgd_model *m, const pgd_gguf *g, const char *name, int64_t ne0,
                             int64_t ne1, pgd_tensor_kind kind, int layer) {
    const pgd_gguf_tensor *t = pgd_gguf_find_tensor(g, name);
    if (!t) return pgd_error(PGD_ERR_FORMAT, "%s: tensor '%s' is missing", pgd_gguf_path(g), name);
    int want_dims = ne1 ? 2 : 1;
    int64_t got1 = t->n_dims >= 2 ? t->ne[1] : 0;
    int extra = 0;
    for (int i = 2; i < t->n_dims; i++) extra |= t->ne[i] != 1;
    if (t->ne[0] != ne0 || (ne1 && got1 != ne1) || (!ne1 && t->n_dims > 1 && got1 != 1) || extra)
        return pgd_error(PGD_ERR_FORMAT, "%s: tensor '%s' has shape [%lld, %lld] (%d dims), expected [%lld, %lld] from the model metadata",
                         pgd_gguf_path(g), name, (long long)t->ne[0], (long long)got1, t->n_dims,
                         (long long)ne0, (long long)ne1);
    (void)want_dims;
    pgd_dtype st = PGD_F32;
    PGD_TRY(dtype_of(g, t, &st));
    return pgd_model_put_tensor(m, kind, layer, &(pgd_tensor_src){.name = name, .data = t->data, .dt = st});
}

/* The dtype a tensor stored as st runs in on this backend. */
static pgd_dtype run_dtype(const pgd_model *m, pgd_dtype st) {
    return pgd_backend_takes_weights(m->backend, st) ? st : PGD_F32;
}

/* Each layer matrix's dtype: as the file stores it (run_dtype), so a file
 * mixing them (Q4_K_M: Q6_K attn_v and ffn_down in some layers, Q4_K
 * elsewhere) keeps every tensor's bytes; a tensor that is missing takes
 * dflt (put_tensor then reports it). */
static pgd_status layer_dtypes(pgd_model *m, const pgd_gguf *g, pgd_dtype dflt) {
    int L = m->cfg.n_layers;
    m->ldt = calloc((size_t)L, sizeof *m->ldt);
    if (!m->ldt) return pgd_error(PGD_ERR_OOM, "%s: out of memory", pgd_gguf_path(g));
    for (int l = 0; l < L; l++) {
        pgd_layer_dtypes *t = &m->ldt[l];
        struct {
            const char *name;
            pgd_dtype *dt;
        } mats[] = {
            {"attn_q", &t->q},      {"attn_k", &t->k},  {"attn_v", &t->v},      {"attn_output", &t->o},
            {"ffn_gate", &t->gate}, {"ffn_up", &t->up}, {"ffn_down", &t->down},
        };
        for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) {
            char n[96];
            snprintf(n, sizeof n, "blk.%d.%s.weight", l, mats[i].name);
            const pgd_gguf_tensor *te = pgd_gguf_find_tensor(g, n);
            pgd_dtype st = dflt;
            if (te) PGD_TRY(dtype_of(g, te, &st));
            *mats[i].dt = run_dtype(m, st);
        }
    }
    return PGD_OK;
}

pgd_status pgd_model_load_gguf(pgd_model *m, const char *path) {
    pgd_gguf *g = NULL;
    pgd_status s = pgd_gguf_open(path, &g);
    if (s != PGD_OK) return s;
    pgd_model_config *c = &m->cfg;
    memset(c, 0, sizeof *c);
    const char *arch = NULL;
    size_t alen = 0;
    char archbuf[64];
    s = pgd_gguf_get_str(g, "general.architecture", &arch, &alen);
    if (s != PGD_OK) goto fail;
    snprintf(archbuf, sizeof archbuf, "%.*s", (int)(alen < 63 ? alen : 63), arch);
    if (strcmp(archbuf, "llama")) {
        s = pgd_error(PGD_ERR_UNSUPPORTED, "%s: architecture '%s' is not supported (only 'llama')", path, archbuf);
        goto fail;
    }
    const char *base = strrchr(path, '/');
    snprintf(c->name, sizeof c->name, "%s", base ? base + 1 : path);
    if ((s = meta_int(g, archbuf, "embedding_length", 1, 0, &c->dim)) ||
        (s = meta_int(g, archbuf, "block_count", 1, 0, &c->n_layers)) ||
        (s = meta_int(g, archbuf, "attention.head_count", 1, 0, &c->n_heads)) ||
        (s = meta_int(g, archbuf, "attention.head_count_kv", 0, c->n_heads, &c->n_kv_heads)) ||
        (s = meta_int(g, archbuf, "feed_forward_length", 1, 0, &c->hidden_dim)) ||
        (s = meta_int(g, archbuf, "context_length", 0, 2048, &c->max_seq_len)) ||
        (s = meta_f32(g, archbuf, "rope.freq_base", 10000.f, &c->rope_theta)) ||
        (s = meta_f32(g, archbuf, "attention.layer_norm_rms_epsilon", 1e-5f, &c->norm_eps)))
        goto fail;
    const pgd_gguf_tensor *te = pgd_gguf_find_tensor(g, "token_embd.weight");
    const pgd_gguf_tensor *tq = pgd_gguf_find_tensor(g, "blk.0.attn_q.weight");
    const pgd_gguf_tensor *to = pgd_gguf_find_tensor(g, "output.weight");
    if (!te || !tq) {
        s = pgd_error(PGD_ERR_FORMAT, "%s: tensor '%s' is missing", path, !te ? "token_embd.weight" : "blk.0.attn_q.weight");
        goto fail;
    }
    if (te->n_dims < 2 || te->ne[1] <= 0 || te->ne[1] > (1 << 22)) {
        s = pgd_error(PGD_ERR_FORMAT, "%s: token_embd.weight must be 2-D [dim, vocab]", path);
        goto fail;
    }
    c->vocab_size = (int)te->ne[1];
    c->tied_classifier = to == NULL;
    pgd_dtype edt, cdt = PGD_F32;
    if ((s = dtype_of(g, tq, &c->weight_dtype)) || (s = dtype_of(g, te, &edt)) ||
        (to && (s = dtype_of(g, to, &cdt))))
        goto fail;
    c->weight_dtype = run_dtype(m, c->weight_dtype);
    edt = run_dtype(m, edt);
    cdt = run_dtype(m, cdt);
    if ((s = pgd_model_config_validate(c, path))) goto fail;
    c->head_dim = c->dim / c->n_heads;
    if ((s = layer_dtypes(m, g, c->weight_dtype))) goto fail;
    pgd_model_note_dtypes(m, edt, to ? cdt : edt);
    if ((s = pgd_model_layout(m, edt, cdt))) goto fail;

    int64_t d = c->dim, qd = (int64_t)c->n_heads * c->head_dim,
            kvd = (int64_t)c->n_kv_heads * c->head_dim, h = c->hidden_dim, V = c->vocab_size;
    /* a tied classifier is the embedding tensor handed over as the classifier too */
    if ((s = put_tensor(m, g, "token_embd.weight", d, V, PGD_T_EMBD, 0)) ||
        (s = put_tensor(m, g, "output_norm.weight", d, 0, PGD_T_FINAL_NORM, 0)) ||
        (s = put_tensor(m, g, to ? "output.weight" : "token_embd.weight", d, V, PGD_T_CLS, 0)))
        goto fail;
    for (int l = 0; l < c->n_layers; l++) {
        char n[96];
#define PUT(suffix, a, b, kind)                                      \
    snprintf(n, sizeof n, "blk.%d.%s.weight", l, suffix);            \
    if ((s = put_tensor(m, g, n, a, b, kind, l))) goto fail;
        PUT("attn_norm", d, 0, PGD_T_ATTN_NORM)
        PUT("attn_q", d, qd, PGD_T_WQ)
        PUT("attn_k", d, kvd, PGD_T_WK)
        PUT("attn_v", d, kvd, PGD_T_WV)
        PUT("attn_output", qd, d, PGD_T_WO)
        PUT("ffn_norm", d, 0, PGD_T_FFN_NORM)
        PUT("ffn_gate", d, h, PGD_T_W1)
        PUT("ffn_down", h, d, PGD_T_W2)
        PUT("ffn_up", d, h, PGD_T_W3)
#undef PUT
    }
    if (pgd_gguf_has_key(g, "tokenizer.ggml.tokens")) {
        s = pgd_tokenizer_from_gguf(g, &m->tokenizer);
        if (s != PGD_OK) goto fail;
        if (pgd_tokenizer_vocab_size(m->tokenizer) != c->vocab_size) {
            s = pgd_error(PGD_ERR_FORMAT, "%s: tokenizer has %d tokens but token_embd.weight has %d rows",
                          path, pgd_tokenizer_vocab_size(m->tokenizer), c->vocab_size);
            goto fail;
        }
    }
fail:
    pgd_gguf_close(g);
    return s;
}
