/* model.h - Llama-family models: configuration, loading, paged forward pass.
 *
 * One interface for every weight source. pgd_model_load() detects the
 * format: a directory (or a *.safetensors file in one) is a Hugging Face
 * Llama-family checkpoint (config.json + safetensors, tokenizer.json if
 * present), else the file's first bytes (GGUF magic, else a llama2.c
 * checkpoint); or it builds seeded random weights for a spec
 * "random:<shape>" where <shape> is a named shape (stories15M, stories42M,
 * stories110M, llama2-7b, llama3-8b, smollm2-135m (with its real tokenizer),
 * qwen2.5-7b, ...; see pgd_model_shape_names()) or a
 * list "dim=288,layers=6,heads=6,kv_heads=6,hidden=768,vocab=32000,seq=256"
 * (unlisted keys take Llama-like defaults), optionally both:
 * "random:stories15M,layers=2".
 *
 * The forward pass runs one ragged batch (several sequences, each with any
 * number of new tokens: prefill chunks and decode tokens mixed) and reads and
 * writes K/V through block tables in a paged pgd_kv_cache. */
#ifndef PAGODA_MODEL_H
#define PAGODA_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "pagoda/backend.h"
#include "pagoda/dtype.h"
#include "pagoda/status.h"
#include "pagoda/tokenizer.h"

typedef enum pgd_model_format {
    PGD_FORMAT_LLAMA2C = 0,
    PGD_FORMAT_GGUF,
    PGD_FORMAT_RANDOM,
    PGD_FORMAT_SAFETENSORS, /* a Hugging Face checkpoint directory (core/model/safetensors.c) */
} pgd_model_format;

/* Architecture family. OPT (LayerNorm, ReLU FFN of two matrices, learned
 * positions, no rotary, tied classifier) exists for the simulator's cost
 * and memory accounting only: loading it on a backend that computes fails
 * with PGD_ERR_UNSUPPORTED (real OPT weights are out of scope). */
typedef enum pgd_model_arch { PGD_ARCH_LLAMA = 0, PGD_ARCH_OPT } pgd_model_arch;

/* The longest context a model may declare (pgd_model_config_validate). */
#define PGD_MAX_CONTEXT (1 << 22)

typedef struct pgd_model_config {
    char name[64];       /* shape name or file base name */
    pgd_model_arch arch; /* zeroed = Llama */
    int dim;             /* model width */
    int n_layers;
    int n_heads;         /* query heads */
    int n_kv_heads;      /* key/value heads (GQA when < n_heads) */
    int head_dim;        /* dim / n_heads */
    int hidden_dim;      /* feed-forward width */
    int vocab_size;
    int max_seq_len;     /* max positions */
    float rope_theta;    /* 10000 for Llama-2, 500000 for Llama-3 */
    float norm_eps;      /* RMSNorm epsilon */
    int tied_classifier; /* classifier shares the token embedding */
    pgd_dtype weight_dtype; /* dtype of the matmul weights (per-tensor dtypes: see q4_k_m below) */
    pgd_dtype kv_dtype;  /* dtype the KV cache is stored and accounted in (the backend's, set at
                            load: f32 unless asked otherwise; the sim's GPU presets f16) */
    int stop_at_bos;     /* generation also stops at BOS (llama2.c checkpoints, as run.c does) */
    int qkv_bias;        /* q/k/v projections carry biases (Qwen2): counted in the parameters;
                            the forward pass has no biases, so compute backends refuse such a model */
    /* Per-tensor weight dtypes. A GGUF file's layer matrices each run in the dtype the file
     * stores (a Q4_K_M file mixes Q4_K and Q6_K), and random:<shape>,dtype=q4_k_m follows
     * llama.cpp's Q4_K_M recipe (q4_k_m = 1; pgd_model_q4_k_m_dtype). weight_dtype is then
     * the dtype most layer-matrix parameters take; weight_dtypes has bit (1u << dtype) set
     * for each dtype a layer matrix takes (0: weight_dtype alone); stored_weight_bytes is
     * the bytes of every weight as loaded (norms, embedding, classifier, layer matrices;
     * 0: pgd_model_config_weight_bytes computes them from weight_dtype) and
     * stored_embd_bytes the token embedding's. */
    int q4_k_m;
    uint32_t weight_dtypes;
    size_t stored_weight_bytes, stored_embd_bytes;
} pgd_model_config;

/* Tensor (tp) x pipeline (pp) parallel layout: tp * pp ranks, rank r being
 * tensor rank r % tp of stage r / tp. Rank 0 (the driver) runs the engine;
 * the others run the commands it sends (an executor's: pagoda/exec.h). */
typedef struct pgd_parallel_config {
    int tp, pp;               /* degrees; 0 = 1 */
    const char *comm;         /* "threads" (default), "mpi" (ranks = mpirun processes), "nccl";
                                 on the sim backend always "sim": one process stands for the
                                 tp identical ranks (core/parallel/comm_sim.c) of each stage,
                                 each stage on its own clock (core/exec/exec_simpipe.c) */
    const char *stage_layers; /* "3,2": layers per stage; NULL or "" = even split */
    int pin;                  /* bind each rank's threads to its own cores (hwloc) */
} pgd_parallel_config;

typedef struct pgd_model_load_opts {
    uint64_t seed;          /* random weights: seed (0 = default 1234) */
    pgd_dtype random_dtype; /* random weights: dtype (zeroed = f32) */
} pgd_model_load_opts;

typedef struct pgd_model pgd_model;
typedef struct pgd_kv_cache pgd_kv_cache;

/* A ragged batch. Sequence s owns tokens[query_start[s] .. query_start[s+1]-1],
 * its new tokens in position order; seq_lens[s] counts its whole context
 * including them, so its first new token sits at position
 * seq_lens[s] - (query_start[s+1] - query_start[s]). block_tables is
 * (num_seqs, max_blocks_per_seq) and must cover seq_lens[s] positions. */
typedef struct pgd_batch {
    int num_seqs;
    int num_tokens;
    const int32_t *tokens;       /* (num_tokens) */
    const int32_t *query_start;  /* (num_seqs + 1), query_start[0] = 0 */
    const int32_t *seq_lens;     /* (num_seqs) */
    const int32_t *block_tables; /* (num_seqs, max_blocks_per_seq) */
    int max_blocks_per_seq;
    int all_logits;              /* 0: logits of each sequence's last token;
                                    1: logits of every token */
} pgd_batch;

/* Resolve a named or key=value shape (the part after "random:"). */
pgd_status pgd_model_shape(const char *spec, pgd_model_config *out);
/* The real tokenizer of named shape `name`: a path relative to the shared
 * data directory (NULL when it has none) and its BOS/EOS ids. */
pgd_status pgd_model_shape_tokenizer(const char *name, const char **rel_path, int *bos, int *eos);
/* The chat template (pagoda/chat.h name) of named shape `name` (options
 * after a ',' ignored): its instruct variant's, e.g. "chatml" for
 * smollm2-135m; NULL when it has none. */
const char *pgd_model_shape_chat_template(const char *name);
/* NULL-terminated list of named shapes. */
const char *const *pgd_model_shape_names(void);
/* Number of parameters and bytes of weights of a configuration (in their
 * stored dtypes where they are mixed). */
size_t pgd_model_config_params(const pgd_model_config *c);
size_t pgd_model_config_weight_bytes(const pgd_model_config *c);
/* Bytes of the token embedding table (in its stored dtype where known). */
size_t pgd_model_config_embd_bytes(const pgd_model_config *c);
/* The layer matrices' dtype for printing: "q4_0", or "mixed (q4_k, q6_k)"
 * when they are mixed; returns buf. */
const char *pgd_model_config_dtype_str(const pgd_model_config *c, char *buf, size_t n);
/* Llama.cpp's Q4_K_M recipe as random:<shape>,dtype=q4_k_m applies it:
 * the dtype of layer `layer`'s matrix `name` ("attn_q", "attn_k", "attn_v",
 * "attn_output", "ffn_gate", "ffn_up", "ffn_down", or "token_embd" /
 * "output" with layer -1) in a model of n_layers layers with the classifier
 * tied or not: Q6_K for attn_v and ffn_down in the layers use_more_bits
 * picks (the first and last eighth of the layers and every third between)
 * and for the classifier (the embedding too when it is the classifier),
 * Q4_K elsewhere. */
pgd_dtype pgd_model_q4_k_m_dtype(const char *name, int layer, int n_layers, int tied);
/* Checks the shape for consistency (dims positive, heads divide dim, ...). */
pgd_status pgd_model_config_validate(const pgd_model_config *c, const char *what);

/* The context length (max_seq_len) of a model spec without loading it:
 * random:<shape>, a safetensors directory's config.json, a llama2.c checkpoint's header or a GGUF file's
 * <arch>.context_length (default 2048, as the loader). For checks made
 * before anything runs (a config's --dry-run). */
pgd_status pgd_model_peek_context(const char *spec, int *max_seq_len);

pgd_status pgd_model_load(const char *spec, const pgd_model_load_opts *opts, pgd_backend *b,
                          pgd_model **out);
void pgd_model_destroy(pgd_model *m);
const pgd_model_config *pgd_model_get_config(const pgd_model *m);
pgd_model_format pgd_model_get_format(const pgd_model *m);
pgd_backend *pgd_model_backend(const pgd_model *m);
/* Tokenizer embedded in the model file (GGUF), or NULL. Borrowed. */
const pgd_tokenizer *pgd_model_tokenizer(const pgd_model *m);

/* A batch checked against a model configuration and a cache of nb blocks
 * of bs tokens (every index in range), before any work is done. */
pgd_status pgd_model_check_config_batch(const pgd_model_config *c, int bs, int nb, const pgd_batch *b);

/* Run the batch; writes logits to host memory `logits`: (num_seqs, vocab),
 * or (num_tokens, vocab) when batch->all_logits. Every index in the batch
 * is checked against the model and the cache before any work is done. */
pgd_status pgd_model_forward(pgd_model *m, pgd_kv_cache *kv, const pgd_batch *batch,
                             float *logits);

/* The KV cache for a (one-rank) model: pgd_kv_cache_create on its backend.
 * A parallel layout's cache is its executor's (pagoda/exec.h). */
pgd_status pgd_model_kv_cache_create(pgd_model *m, int block_size, int num_blocks,
                                     pgd_kv_cache **out);

/* Paged KV cache storage on the model's backend: per layer K and V of
 * (num_blocks, n_kv_heads, block_size, head_dim) values in c->kv_dtype (q8:
 * rows of head_dim + 4 bytes, pgd_kv_row_bytes; a q8 block must be a
 * multiple of 4 bytes). Which block belongs to
 * which sequence is the caller's business (the KV manager's). */
pgd_status pgd_kv_cache_create(pgd_backend *b, const pgd_model_config *c, int block_size,
                               int num_blocks, pgd_kv_cache **out);
void pgd_kv_cache_destroy(pgd_kv_cache *kv);
int pgd_kv_cache_block_size(const pgd_kv_cache *kv);
int pgd_kv_cache_num_blocks(const pgd_kv_cache *kv);
/* Bytes one block takes over all layers (K and V) in c->kv_dtype. */
size_t pgd_kv_cache_block_bytes(const pgd_model_config *c, int block_size);
/* Data movement the KV manager asks for. `pairs` is (n, 2) of {src, dst}
 * block ids (layout-compatible with pgd_kv_copy). copy_blocks copies
 * device blocks (copy-on-write); swap_out copies device block src to host
 * block dst, swap_in host block src to device block dst, over every layer's
 * K and V. Host blocks live in a host buffer sized by set_host_blocks. */
pgd_status pgd_kv_cache_copy_blocks(pgd_kv_cache *kv, const int32_t *pairs, int n);
pgd_status pgd_kv_cache_set_host_blocks(pgd_kv_cache *kv, int num_host_blocks);
pgd_status pgd_kv_cache_swap_out(pgd_kv_cache *kv, const int32_t *pairs, int n);
pgd_status pgd_kv_cache_swap_in(pgd_kv_cache *kv, const int32_t *pairs, int n);

/* Device pointers of one layer's caches (storage of the backend's KV dtype). */
float *pgd_kv_cache_k(pgd_kv_cache *kv, int layer);
float *pgd_kv_cache_v(pgd_kv_cache *kv, int layer);

/* The KV hand-off of prefill/decode disaggregation: read n device blocks
 * into host memory, or write them from it, laid out per listed block as
 * every layer's K then V (2 * n_layers, n_kv_heads, block_size) rows of
 * pgd_kv_row_bytes (q8: a row's scale with it): io_block_bytes bytes a block
 * (= pgd_kv_cache_block_bytes of the model config). Only on a computing
 * backend (the sim stores nothing). */
size_t pgd_kv_cache_io_block_bytes(const pgd_kv_cache *kv);
pgd_status pgd_kv_cache_read_blocks(pgd_kv_cache *kv, const int32_t *blocks, int n, void *host);
pgd_status pgd_kv_cache_write_blocks(pgd_kv_cache *kv, const int32_t *blocks, int n, const void *host);

#endif
