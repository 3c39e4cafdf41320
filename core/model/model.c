/* model.c - model lifetime: format detection, the single weight allocation
 * and its layout, host->device upload with dtype conversion, accessors. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_impl.h"
#include "pagoda/log.h"

static size_t align_up(size_t x) { return (x + 255) & ~(size_t)255; }

pgd_status pgd_model_layout(pgd_model *m, pgd_dtype embd_dtype, pgd_dtype cls_dtype) {
    const pgd_model_config *c = &m->cfg;
    size_t d = (size_t)c->dim, qd = (size_t)c->n_heads * c->head_dim,
           kvd = (size_t)c->n_kv_heads * c->head_dim, h = (size_t)c->hidden_dim,
           v = (size_t)c->vocab_size, ws = pgd_dtype_size(c->weight_dtype);
    size_t off = 0;
    size_t o_embd = off;
    off = align_up(off + v * d * pgd_dtype_size(embd_dtype));
    size_t o_cls = off;
    if (!c->tied_classifier) off = align_up(off + v * d * pgd_dtype_size(cls_dtype));
    size_t o_final = off;
    off = align_up(off + d * 4);
    int opt = c->arch == PGD_ARCH_OPT, ffn_mats = opt ? 2 : 3;
    size_t o_pos = off;
    if (opt) off = align_up(off + (size_t)c->max_seq_len * d * pgd_dtype_size(embd_dtype));
    size_t o_layers = off;
    size_t layer_bytes = align_up(d * 4) * 2 + align_up(qd * d * ws) + 2 * align_up(kvd * d * ws) +
                         align_up(d * qd * ws) + (size_t)ffn_mats * align_up(h * d * ws);
    off += layer_bytes * (size_t)c->n_layers;

    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers) return pgd_error(PGD_ERR_OOM, "model: out of memory");
    pgd_status s = pgd_backend_alloc(m->backend, off, &m->weights);
    if (s != PGD_OK)
        return pgd_error(s, "model %s: cannot allocate %.2f GiB of weights on %s: %s", c->name,
                         off / 1073741824.0, pgd_backend_name(m->backend), pgd_last_error());
    m->weights_bytes = off;
    char *base = m->weights;
    m->tok_embd = base + o_embd;
    m->embd_dtype = embd_dtype;
    m->wcls = c->tied_classifier ? m->tok_embd : (void *)(base + o_cls);
    m->cls_dtype = c->tied_classifier ? embd_dtype : cls_dtype;
    m->final_norm = (float *)(base + o_final);
    m->pos_embd = opt ? (void *)(base + o_pos) : NULL;
    char *p = base + o_layers;
    for (int l = 0; l < c->n_layers; l++) {
        pgd_layer_weights *L = &m->layers[l];
        L->attn_norm = (float *)p; p += align_up(d * 4);
        L->ffn_norm = (float *)p;  p += align_up(d * 4);
        L->wq = p; p += align_up(qd * d * ws);
        L->wk = p; p += align_up(kvd * d * ws);
        L->wv = p; p += align_up(kvd * d * ws);
        L->wo = p; p += align_up(d * qd * ws);
        L->w1 = p; p += align_up(h * d * ws);
        L->w2 = p; p += align_up(h * d * ws);
        if (!opt) { L->w3 = p; p += align_up(h * d * ws); }
    }
    return PGD_OK;
}

pgd_status pgd_model_put(pgd_model *m, void *dst, pgd_dtype dt, const void *src, pgd_dtype st,
                         size_t count) {
    if (dt == st) return pgd_backend_upload(m->backend, dst, src, count * pgd_dtype_size(dt));
    /* convert in chunks through a host staging buffer */
    enum { CHUNK = 1 << 16 };
    void *stage = malloc(CHUNK * 4);
    if (!stage) return pgd_error(PGD_ERR_OOM, "model: out of memory converting weights");
    pgd_status s = PGD_OK;
    for (size_t i0 = 0; i0 < count && s == PGD_OK; i0 += CHUNK) {
        size_t n = count - i0 < CHUNK ? count - i0 : CHUNK;
        for (size_t i = 0; i < n; i++) {
            float f;
            size_t j = i0 + i;
            if (st == PGD_F32) f = ((const float *)src)[j];
            else if (st == PGD_F16) f = pgd_f16_to_f32(((const uint16_t *)src)[j]);
            else f = pgd_bf16_to_f32(((const uint16_t *)src)[j]);
            if (dt == PGD_F32) ((float *)stage)[i] = f;
            else if (dt == PGD_F16) ((uint16_t *)stage)[i] = pgd_f32_to_f16(f);
            else ((uint16_t *)stage)[i] = pgd_f32_to_bf16(f);
        }
        s = pgd_backend_upload(m->backend, (char *)dst + i0 * pgd_dtype_size(dt), stage,
                               n * pgd_dtype_size(dt));
    }
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

pgd_status pgd_model_load(const char *spec, const pgd_model_load_opts *opts, pgd_backend *b,
                          pgd_model **out) {
    static const pgd_model_load_opts defaults = {0};
    if (!spec || !b || !out) return pgd_error(PGD_ERR_INVALID, "pgd_model_load: NULL argument");
    *out = NULL;
    if (!opts) opts = &defaults;
    pgd_model *m = calloc(1, sizeof *m);
    if (!m) return pgd_error(PGD_ERR_OOM, "model: out of memory");
    m->backend = b;
    pgd_status s;
    if (!strncmp(spec, "random:", 7)) {
        m->format = PGD_FORMAT_RANDOM;
        s = pgd_model_load_random(m, spec + 7, opts);
    } else {
        s = detect_format(spec, &m->format);
        if (s == PGD_OK)
            s = m->format == PGD_FORMAT_GGUF ? pgd_model_load_gguf(m, spec)
                                             : pgd_model_load_llama2c(m, spec);
    }
    if (s != PGD_OK) goto fail;
    m->cfg.kv_dtype = pgd_backend_kv_dtype(b);
    PGD_LOG_I("model %s: dim=%d layers=%d heads=%d kv_heads=%d hidden=%d vocab=%d seq=%d %s, "
              "%.1fM params", m->cfg.name, m->cfg.dim, m->cfg.n_layers, m->cfg.n_heads,
              m->cfg.n_kv_heads, m->cfg.hidden_dim, m->cfg.vocab_size, m->cfg.max_seq_len,
              pgd_dtype_name(m->cfg.weight_dtype), pgd_model_config_params(&m->cfg) / 1e6);
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
    free(m->layers);
    pgd_tokenizer_destroy(m->tokenizer);
    free(m);
}

const pgd_model_config *pgd_model_get_config(const pgd_model *m) { return &m->cfg; }
pgd_model_format pgd_model_get_format(const pgd_model *m) { return m->format; }
pgd_backend *pgd_model_backend(const pgd_model *m) { return m->backend; }
const pgd_tokenizer *pgd_model_tokenizer(const pgd_model *m) { return m->tokenizer; }
