/* model_impl.h - the model struct shared by the loaders and the forward pass
 * (internal to core/model).
 *
 * All weights live in one device allocation (`weights`) laid out by
 * pgd_model_layout(); the per-tensor pointers below point into it. Norm
 * weights are always f32; matmul weights are cfg.weight_dtype; the token
 * embedding and the classifier have their own dtypes (a tied classifier is
 * the embedding itself). */
#ifndef PAGODA_MODEL_IMPL_H
#define PAGODA_MODEL_IMPL_H

#include "pagoda/model.h"

typedef struct pgd_layer_weights {
    float *attn_norm;   /* (dim) */
    float *ffn_norm;    /* (dim) */
    void *wq;           /* (n_heads*head_dim, dim) */
    void *wk;           /* (n_kv_heads*head_dim, dim) */
    void *wv;           /* (n_kv_heads*head_dim, dim) */
    void *wo;           /* (dim, n_heads*head_dim) */
    void *w1;           /* gate (hidden, dim) */
    void *w2;           /* down (dim, hidden) */
    void *w3;           /* up (hidden, dim); NULL for OPT (fc1 = w1, fc2 = w2) */
} pgd_layer_weights;

typedef struct pgd_scratch {
    int cap_tokens;     /* rows the activation buffers hold */
    int cap_logits;     /* rows the logits buffer holds */
    int cap_meta;       /* int32 entries the metadata buffer holds */
    void *act;          /* one device allocation for all activations */
    float *x, *xb, *xb2, *q, *k, *v, *hb, *hb2, *last, *logits;
    int32_t *meta;      /* device metadata: tokens, pos, slots, qstart, lens, tables, rows */
    int32_t *host_meta; /* host staging for meta */
} pgd_scratch;

struct pgd_model {
    pgd_model_config cfg;
    pgd_model_format format;
    pgd_backend *backend;      /* borrowed */
    void *weights;             /* device allocation holding every tensor */
    size_t weights_bytes;
    void *tok_embd;            /* (vocab, dim) of embd_dtype */
    pgd_dtype embd_dtype;
    float *final_norm;         /* (dim) */
    void *pos_embd;            /* OPT: learned positions (max_seq_len, dim) of embd_dtype; else NULL */
    void *wcls;                /* (vocab, dim) of cls_dtype; == tok_embd when tied */
    pgd_dtype cls_dtype;
    pgd_layer_weights *layers; /* (n_layers) */
    pgd_tokenizer *tokenizer;  /* owned; GGUF only */
    pgd_scratch s;
};

/* Allocate the model struct and the weight buffer for m->cfg with the given
 * embedding/classifier dtypes, and point every tensor into it. */
pgd_status pgd_model_layout(pgd_model *m, pgd_dtype embd_dtype, pgd_dtype cls_dtype);

/* Upload `count` elements from host `src` of dtype `st` into device tensor
 * `dst` of dtype `dt`, converting if they differ. */
pgd_status pgd_model_put(pgd_model *m, void *dst, pgd_dtype dt, const void *src, pgd_dtype st,
                         size_t count);

pgd_status pgd_model_load_llama2c(pgd_model *m, const char *path);
pgd_status pgd_model_load_gguf(pgd_model *m, const char *path);
pgd_status pgd_model_load_random(pgd_model *m, const char *shape, const pgd_model_load_opts *o);

#endif
