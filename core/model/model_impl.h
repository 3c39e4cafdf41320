/* model_impl.h - the model struct shared by the loaders and the forward pass
 * (internal to core/model).
 *
 * All weights live in one device allocation (`weights`) laid out by
 * pgd_model_layout(); the per-tensor pointers below point into it. Norm
 * weights are always f32; each layer matrix has its own dtype (a loader's
 * pgd_model.ldt; cfg.weight_dtype for all of them when it has none); the
 * token embedding and the classifier have their own dtypes (a tied
 * classifier is the embedding itself). A layer's query, key and value
 * projections are one matrix (wqkv), and its gate and up projections
 * another (w13), so the forward pass runs one GEMM for each group; loaders
 * still hand each tensor over alone (pgd_model_put_tensor places it).
 * Mixed dtypes: a fused group keeps each part's bytes as stored (wqkv: q
 * rows in q_dt, then k rows in k_dt, then v rows in v_dt; w13: gate rows in
 * g_dt, then up rows in u_dt); a layer whose parts differ in dtype runs
 * them as separate matmuls (qkv_split, w13_split; forward.c). */
#ifndef PAGODA_MODEL_IMPL_H
#define PAGODA_MODEL_IMPL_H

#include "pagoda/model.h"

typedef struct pgd_layer_weights {
    float *attn_norm;   /* (dim) */
    float *ffn_norm;    /* (dim) */
    void *wqkv;         /* (qd + 2*kvd, dim): this rank's wq rows (qd = local heads*head_dim),
                           then its wk rows, then its wv rows (kvd = local kv_heads*head_dim),
                           contiguous: row r of the output is q, k or v feature r */
    void *wo;           /* (dim, qd) */
    void *w13;          /* (2*hf, dim): the gate (w1) rows, then the up (w3) rows, contiguous
                           (hf = local FFN width); OPT: fc1 (w1) alone, (hf, dim) */
    void *w2;           /* down (dim, hf); OPT: fc2 */
    void *wk, *wv;      /* inside wqkv: where its k rows and its v rows start */
    void *wup;          /* inside w13: where its up rows start (OPT: NULL) */
    pgd_dtype q_dt, k_dt, v_dt;        /* dtypes of wqkv's q, k and v rows (each part's bytes
                                   start where the previous part's end) */
    pgd_dtype o_dt, g_dt, u_dt, w2_dt; /* wo's; w13's gate and up rows'; w2's */
    int qkv_split;                     /* q_dt, k_dt, v_dt not all equal: q, k, v from three matmuls */
    int w13_split;                     /* g_dt != u_dt: gate and up from two matmuls */
} pgd_layer_weights;

/* The dtypes of one layer's matrices as a loader hands them over. */
typedef struct pgd_layer_dtypes {
    pgd_dtype q, k, v, o, gate, up, down;
} pgd_layer_dtypes;


/* This rank's part of the model under tensor (tp) and pipeline (pp)
 * parallelism; tp = pp = 1 is the whole model. Megatron-style split:
 * query heads, KV heads and the FFN hidden width are divided among the tp
 * ranks of a stage (wq/wk/wv/w1/w3 by output rows, so a rank's wqkv is
 * [its q heads; its k heads; its v heads] and its w13 [its gate rows; its
 * up rows]; wo/w2 by input
 * columns); the token embedding is split by columns (dim / tp each) and the
 * classifier by vocabulary rows (vocab_part each, the last zero-padded);
 * norms are replicated. A stage holds layers [layer_begin, layer_end);
 * stage 0 the embedding, the last stage the final norm and classifier. */
typedef struct pgd_shard {
    int tp, tp_rank, pp, pp_rank;
    int layer_begin, layer_end;
    int heads, head0;       /* local query heads, first global head */
    int kv_heads, kv_head0; /* local KV heads */
    int hidden, hidden0;    /* local FFN width */
    int dim_part;           /* embedding columns per rank (dim / tp) */
    int vocab_part;         /* classifier rows per rank (ceil(vocab / tp)) */
} pgd_shard;

/* Which tensor a loader is handing over (pgd_model_put_tensor slices it). */
typedef enum pgd_tensor_kind {
    PGD_T_EMBD, PGD_T_CLS, PGD_T_FINAL_NORM, PGD_T_POS, PGD_T_ATTN_NORM, PGD_T_FFN_NORM,
    PGD_T_WQ, PGD_T_WK, PGD_T_WV, PGD_T_WO, PGD_T_W1, PGD_T_W2, PGD_T_W3,
} pgd_tensor_kind;

/* Where a whole (unsharded) tensor's elements come from: row-major host
 * data of dtype `dt`, or (data == NULL) the seeded random stream of
 * random_weights.c, uniform in +-scale, which can be entered at any element
 * so a rank generates only its part. `ones` fills with 1.0. */
typedef struct pgd_tensor_src {
    const char *name; /* the file's name for it (errors), or NULL */
    const void *data;
    pgd_dtype dt;
    uint64_t seed, id;
    float scale;
    int ones;
} pgd_tensor_src;

typedef struct pgd_scratch {
    int cap_tokens;     /* rows the activation buffers hold */
    int cap_logits;     /* rows the logits buffer holds */
    int cap_meta;       /* int32 entries the metadata buffer holds */
    void *act;          /* one device allocation for all activations (forward.c: carve_acts) */
    float *x;           /* (cap_tokens, dim): the residual stream */
    float *xb, *xb2;    /* (cap_tokens, max(dim, qd)): a norm's or a sublayer's output; attention's */
    float *last;        /* (cap_logits, dim): the rows whose logits are wanted */
    float *logits;      /* (cap_logits, vocab or tp * vocab_part) */
    float *qkv;         /* (cap_tokens, qd + 2*kvd): per token q | k | v, the fused GEMM's output */
    float *gu;          /* (cap_tokens, 2*hidden): per token gate | up, the fused GEMM's output */
    float *hb;          /* (cap_tokens, hidden): silu(gate) * up */
    float *gu2;         /* (cap_tokens, 2*hidden) when a layer's w13_split: gate rows, then up rows,
                           before they are interleaved into gu; else NULL */
    float *gath;        /* tensor parallel: all_gather landing area */
    float *host_logits; /* host staging when logits need unpadding or sending */
    size_t cap_host_logits;
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
    pgd_layer_dtypes *ldt;     /* (n_layers), owned: each layer matrix's dtype, set by a loader
                                  before pgd_model_layout; NULL = cfg.weight_dtype for all */
    int w13_split_any;         /* some layer of this rank has w13_split (forward.c's gu2) */
    pgd_tokenizer *tokenizer;  /* owned: GGUF metadata, a safetensors dir's tokenizer.json, random:smollm2-135m */
    pgd_scratch s;
    pgd_shard sh;              /* this rank's part (tp = pp = 1: everything) */
    int req_tp, req_tp_rank, req_pp, req_pp_rank; /* layout asked for before loading (0 = whole) */
    int req_stage_layers[64];  /* per-stage layer counts; [0] == 0: even split */
};

/* Allocate the model struct and the weight buffer for m->cfg with the given
 * embedding/classifier dtypes, and point every tensor into it. */
pgd_status pgd_model_layout(pgd_model *m, pgd_dtype embd_dtype, pgd_dtype cls_dtype);

/* Upload `count` elements from host `src` of dtype `st` into device tensor
 * `dst` of dtype `dt`, converting if they differ. */
pgd_status pgd_model_put(pgd_model *m, void *dst, pgd_dtype dt, const void *src, pgd_dtype st,
                         size_t count);

/* Hand over a whole tensor of kind k (layer l for per-layer kinds); uploads
 * only this rank's shard of it (nothing if the rank holds no part). */
pgd_status pgd_model_put_tensor(pgd_model *m, pgd_tensor_kind k, int l, const pgd_tensor_src *src);

/* Fill m->sh for (tp, tp_rank, pp, pp_rank) with an optional per-stage
 * layer count list (NULL = even split, earlier stages take the remainder);
 * checks the layout against m->cfg. */
pgd_status pgd_model_shard_init(pgd_model *m, int tp, int tp_rank, int pp, int pp_rank,
                                const int *stage_layers);

/* Fill cfg.weight_dtype (the dtype of most layer-matrix parameters),
 * cfg.weight_dtypes and cfg.stored_weight_bytes / stored_embd_bytes from
 * m->ldt and the embedding's and classifier's dtypes (whole model). */
void pgd_model_note_dtypes(pgd_model *m, pgd_dtype embd_dtype, pgd_dtype cls_dtype);
/* The same for a configuration and its layers' dtypes ldt (n_layers; NULL:
 * cfg.weight_dtype for all). */
void pgd_model_config_note_dtypes(pgd_model_config *c, const pgd_layer_dtypes *ldt, pgd_dtype embd_dtype,
                                  pgd_dtype cls_dtype);
/* The Q4_K_M recipe's dtypes for every layer of c (a new array of
 * n_layers, NULL when out of memory) and for the embedding and classifier. */
pgd_layer_dtypes *pgd_model_q4_k_m_layers(const pgd_model_config *c, pgd_dtype *embd_dtype, pgd_dtype *cls_dtype);

/* Random weights: element i of the stream of tensor `id` (used by
 * pgd_model_put_tensor for sources with data == NULL). */
void pgd_random_stream(uint64_t seed, uint64_t id, float scale, size_t first, size_t n, float *out);

/* Scale of each random tensor kind (uniform +-scale). */
float pgd_random_scale(const pgd_model_config *c, pgd_tensor_kind k);

/* How one pass of this rank's stage talks to the other ranks (NULL for a
 * model that runs whole on one rank). */
typedef struct pgd_pass_io {
    struct pgd_comm *tp;    /* the stage's tensor-parallel group (tp > 1) */
    struct pgd_comm *world; /* every rank, backend memory: stage-to-stage activations */
    struct pgd_comm *ctrl;  /* every rank, host memory: logits to the driver */
    int prev, next;         /* world ranks of the previous / next stage's same tp rank; -1 = none */
    int logits_to;          /* world rank that receives the logits; -1 = write them here */
    int tag;                /* micro-batch tag for point-to-point messages */
} pgd_pass_io;

/* Validate a batch against the model and a cache of nb blocks of bs. */
pgd_status pgd_model_check_batch(const pgd_model *m, int bs, int nb, const pgd_batch *b);
/* One pass of a (validated) batch through this rank's stage: embedding or
 * receive, its layers, then classifier or send. `logits` (host) is written
 * when this rank delivers them (io == NULL or io->logits_to == -1 on the
 * last stage's tp rank 0). */
pgd_status pgd_model_pass(pgd_model *m, pgd_kv_cache *kv, const pgd_batch *b, float *logits,
                          const pgd_pass_io *io);

/* Load one rank's part: `req` (may be NULL = whole model) carries the
 * req_* layout fields. */
pgd_status pgd_model_load_part(const char *spec, const pgd_model_load_opts *opts, pgd_backend *b,
                               const pgd_model *req, pgd_model **out);

pgd_status pgd_model_load_llama2c(pgd_model *m, const char *path);
pgd_status pgd_model_load_gguf(pgd_model *m, const char *path);
pgd_status pgd_model_load_safetensors(pgd_model *m, const char *spec);
/* 1 when spec names a directory or a *.safetensors file (the safetensors loader's). */
int pgd_model_is_safetensors(const char *spec);
pgd_status pgd_model_peek_safetensors_context(const char *spec, int *max_seq_len);
pgd_status pgd_model_load_random(pgd_model *m, const char *shape, const pgd_model_load_opts *o);

#endif
