/* fast_impl.h - private interface between fast.c (dispatch, threading,
 * portable paths) and the AVX2/FMA/F16C kernels in *_avx2.c.
 *
 * Every pgd_avx2_* function is single-threaded and works on the slice it is
 * given; fast.c splits work across the pool and calls them only after
 * checking at run time that the CPU has AVX2, FMA and F16C. The *_avx2.c
 * files are the only ones compiled with -mavx2 -mfma -mf16c, so nothing here
 * may use intrinsic types. */
#ifndef PAGODA_KERNELS_CPU_FAST_IMPL_H
#define PAGODA_KERNELS_CPU_FAST_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

/* Scores per chunk of the attention context kept on the stack; contexts
 * longer than this are handled with an online-softmax rescale per chunk. */
#define PGD_ATTN_CHUNK 1024

/* Rows r0..r1-1 of y(n, out) = x(n, in) @ W^T, for all n tokens. */
void pgd_avx2_matmul_rows(float *y, const float *x, const void *w, pgd_dtype wt, int n, int in,
                          int out, int r0, int r1);

/* One (query row, head) of paged attention: `seq` owns query row `row`,
 * which sits at position `pos`. */
void pgd_avx2_attention_one(const pgd_attn_args *a, int seq, int row, int pos, int h);

/* y(dim) = x * w / sqrt(mean(x^2) + eps) for one row; y may alias x. */
void pgd_avx2_rmsnorm_row(float *y, const float *x, const float *w, int dim, float eps);
void pgd_avx2_silu_mul(float *gate, const float *up, size_t n);
void pgd_avx2_add(float *y, const float *x, size_t n);
/* dst[i] = src[i] converted from f16 / bf16. */
void pgd_avx2_f16_to_f32(float *dst, const uint16_t *src, size_t n);
void pgd_avx2_bf16_to_f32(float *dst, const uint16_t *src, size_t n);
/* x[i] = exp(x[i] - sub); returns the sum of the new x[i]. */
float pgd_avx2_exp_sum(float *x, int n, float sub);

#endif
