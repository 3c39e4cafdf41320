/* paged_attn.h - the arguments of one paged-attention call: the one struct
 * the backend API (backend.h), the CPU kernels (kernels/cpu/kernels.h) and
 * the GPU kernels (kernels/gpu/gpu_kernels.h) share. Plain data, C and C++.
 *
 * Layout and semantics (ragged batches, causal positions, the paged cache
 * cache[num_blocks][n_kv_heads][block_size][head_dim]): kernels/cpu/kernels.h.
 * Through the backend API every pointer is a device pointer of that backend. */
#ifndef PAGODA_PAGED_ATTN_H
#define PAGODA_PAGED_ATTN_H

#include <stdint.h>

#include "pagoda/dtype.h"

typedef struct pgd_paged_attn {
    float *out;                  /* (num_tokens, n_heads, head_dim), dense */
    const float *q;              /* (num_tokens, n_heads, head_dim), already rotated; token rows
                                    q_stride floats apart */
    const void *k_cache;         /* this layer's K cache, of kv_dtype */
    const void *v_cache;         /* this layer's V cache */
    const int32_t *query_start;  /* (num_seqs + 1) */
    const int32_t *seq_lens;     /* (num_seqs) */
    const int32_t *block_tables; /* (num_seqs, max_blocks_per_seq) */
    int num_seqs;
    int num_tokens;              /* query_start[num_seqs] (host-side copy) */
    int max_blocks_per_seq;
    int max_seq_len;             /* >= every seq_lens[s] (host-side hint; GPU split planning) */
    int n_heads, n_kv_heads, head_dim, block_size;
    float scale;                 /* usually 1/sqrt(head_dim) */
    int q_stride;                /* floats between consecutive rows of q: 0 = dense
                                    (n_heads*head_dim), else >= n_heads*head_dim (the forward
                                    pass reads q from its fused QKV rows) */
    pgd_dtype kv_dtype;          /* of the caches: f32 (zeroed), f16, bf16, q8 (rows of an f32
                                    scale + head_dim int8: pagoda/dtype.h); through the backend
                                    API it must be the backend's (pgd_backend_kv_dtype) */
} pgd_paged_attn;

#endif
