/* sim_vidur.h - reading measured GPU op times in the formats Microsoft's
 * Vidur simulator publishes (its profiling/ folder), for calibrating and
 * checking the sim's cost model (`pagoda profile --import vidur`,
 * `pagoda sim-check`):
 *   MLP file (compute/<gpu>/<model>/mlp.csv): one row per (num_tokens,
 *     num_tensor_parallel_workers) with time_stats.<op>.{min,max,mean,
 *     median,std} in ms for the ops of ONE transformer layer on ONE GPU
 *     holding a 1/TP shard (emb, input_layernorm, attn_pre_proj = fused QKV
 *     GEMM, attn_rope, attn_post_proj, post_attention_layernorm,
 *     mlp_up_proj = fused gate+up GEMM, mlp_act, mlp_down_proj, add), and
 *     the model's n_head, n_kv_head, n_embd, n_expanded_embd, vocab_size;
 *   attention file: Vidur's attention.csv (time_stats.attn_prefill /
 *     attn_decode medians, batch_size, prefill_chunk_size, kv_cache_size,
 *     is_prefill, num_tensor_parallel_workers) or the transcribed form
 *     `tp,kind,a,b,median_ms[,...]` (kind decode: a = batch, b = context;
 *     prefill: a = chunk tokens, b = tokens already cached; '#' comments);
 *   all-reduce file (network/<node>/all_reduce.csv): time_stats.all_reduce
 *     median (ms) by size (fp16 ELEMENTS), num_workers, devices_per_node.
 * Only the medians are read. A file that is not one of these (a missing
 * column, a time that is not a positive finite number, an op this reader
 * does not know, no rows) is an error naming the file, line and column:
 * PGD_ERR_FORMAT (PGD_ERR_IO if it cannot be read). */
#ifndef PAGODA_SIM_VIDUR_H
#define PAGODA_SIM_VIDUR_H

#include "pagoda/status.h"

enum pgd_vidur_kind { PGD_VIDUR_MLP, PGD_VIDUR_DECODE, PGD_VIDUR_PREFILL, PGD_VIDUR_ALL_REDUCE };

typedef struct pgd_vidur_row {
    int kind;        /* pgd_vidur_kind */
    char op[32];     /* MLP: the op's name (attn_pre_proj, ...); else "attn_decode", "attn_prefill", "all_reduce" */
    int tp;          /* tensor-parallel degree measured at (MLP, attention) */
    double a;        /* MLP: tokens; decode: batch size; prefill: chunk tokens; all-reduce: bytes (fp16) */
    double b;        /* decode: KV context per sequence; prefill: tokens already cached */
    int ranks, nodes; /* all-reduce: workers and hosts */
    double seconds;  /* the median */
} pgd_vidur_row;

/* The model dimensions an MLP file states (0 where no MLP file was read). */
typedef struct pgd_vidur_model {
    int heads, kv_heads, dim, hidden, vocab, gated;
} pgd_vidur_model;

typedef struct pgd_vidur {
    pgd_vidur_row *rows;
    int n, cap;
    pgd_vidur_model model;
} pgd_vidur;

pgd_status pgd_vidur_read_mlp(pgd_vidur *v, const char *path);
pgd_status pgd_vidur_read_attention(pgd_vidur *v, const char *path);
pgd_status pgd_vidur_read_all_reduce(pgd_vidur *v, const char *path);
void pgd_vidur_free(pgd_vidur *v);

/* The MLP ops this reader knows, in a layer's order (NULL-terminated). */
const char *const *pgd_vidur_mlp_ops(void);

#endif
