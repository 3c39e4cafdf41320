/* sim_check.h - the sim's cost model held against measured GPU op times
 * (Vidur-format files, sim_vidur.h): predictions of each measured op,
 * whole-step sums, and fitting the curves of sim_curves.h to the files.
 * `pagoda sim-check` (core/cli/sim_check_cmd.c) prints what this computes;
 * tests/test_sim_check.c fits on part of a grid and predicts the rest.
 *
 * A measured row is predicted by the sim's own cost functions (sim_cost.h)
 * at the shapes the measured system ran, one GPU's shard of a layer:
 *   attn_pre_proj   matmul (tokens, dim -> (heads + 2 kv_heads) head_dim / tp)
 *   attn_post_proj  matmul (tokens, heads head_dim / tp -> dim)
 *   mlp_up_proj     matmul (tokens, dim -> 2 hidden / tp) (hidden / tp ungated)
 *   mlp_down_proj   matmul (tokens, hidden / tp -> dim)
 *   input_layernorm, post_attention_layernorm   rmsnorm (tokens, dim)
 *   attn_rope       rope (tokens, heads / tp, kv_heads / tp, head_dim)
 *   mlp_act         silu_mul of tokens x hidden / tp outputs
 *   add             add of tokens x dim (no collective)
 *   emb             embedding (tokens, dim)
 *   attn_decode     paged attention of `batch` sequences of context b
 *   attn_prefill    paged attention of one sequence: a new tokens after b
 *   all_reduce      ring all-reduce of the bytes over ranks / hosts
 * A STEP is one layer's ops as the measured system runs them (the nine
 * MLP-file ops but emb, the attention, and at tp > 1 two all-reduces of
 * tokens x dim fp16 values) - times the layer count, which leaves the
 * relative error as it is. Measured MLP times at a token count the file
 * lacks are interpolated linearly between its neighbours (the MLP grid
 * steps by 8 tokens up to 512), all-reduce times likewise in size. */
#ifndef PAGODA_SIM_CHECK_H
#define PAGODA_SIM_CHECK_H

#include "pagoda/model.h"
#include "sim_cost.h"
#include "sim_curves.h"
#include "sim_vidur.h"

/* Checks that the files' model dimensions are the model's. */
pgd_status pgd_sim_check_model(const pgd_vidur *v, const pgd_model_config *m);

/* Predicted seconds of a measured row under cost model c (c->tp must be 1:
 * shapes are the row's shard); a negative value when the model has no
 * prediction (an all-reduce on a device without link curves). */
double pgd_sim_check_predict(const pgd_sim_cost *c, const pgd_model_config *m, const pgd_vidur_row *r);

/* Which rows a fit or a check uses (NULL = all). */
typedef int (*pgd_vidur_filter)(const pgd_vidur_row *r, void *ctx);

/* Fit the kernel curves (and the link curves when there are all-reduce
 * rows: *have_links = 1) to the rows `keep` accepts. */
pgd_status pgd_sim_check_fit(const pgd_vidur *v, const pgd_model_config *m, const pgd_sim_hw *hw,
                             pgd_vidur_filter keep, void *ctx, pgd_sim_kernel_curves *kc, pgd_sim_link_curves *lc,
                             int *have_links);

/* DENSE: the layer's MLP-file ops alone; DENSE_AR: with its two all-reduces */
enum { PGD_STEP_DECODE, PGD_STEP_PREFILL, PGD_STEP_DENSE, PGD_STEP_DENSE_AR };
typedef struct pgd_sim_step {
    int kind, tp;
    double a, b;            /* decode: batch, context; prefill: chunk, cached; dense: tokens, 0 */
    double measured, predicted;
} pgd_sim_step;

/* Steps of one kind at tensor-parallel degree tp: decode steps at the
 * attention file's decode rows with context 128-4096 and batch <= 256,
 * prefill steps at its prefill rows with chunks of 64-4096 tokens, dense
 * layers (no attention) at the MLP file's token counts <= 256; only rows
 * `keep` accepts (the attention row, or for dense layers the MLP rows),
 * only where the files measure every op. *out is malloc'd. */
pgd_status pgd_sim_check_steps(const pgd_vidur *v, const pgd_model_config *m, const pgd_sim_cost *c, int kind,
                               int tp, pgd_vidur_filter keep, void *ctx, pgd_sim_step **out, int *n);

/* Median and p90 of |predicted / measured - 1| over steps. */
pgd_sim_fit_err pgd_sim_check_step_err(const pgd_sim_step *s, int n);

#endif
