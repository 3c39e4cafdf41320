/* common.cuh - device helpers shared by the GPU kernels: logical-warp and
 * block reductions, weight loads of any dtype, bf16 rounding. Included by
 * the kernel sources only (after compat.h). */
#ifndef PAGODA_GPU_COMMON_CUH
#define PAGODA_GPU_COMMON_CUH

#include <float.h>
#include <math.h>

#include "gpu_kernels.h"

namespace PGD_GPU_NS {

static inline unsigned ceil_div(size_t a, size_t b) { return (unsigned)((a + b - 1) / b); }

/* Sum / max over the `width` lanes (a power of two <= 32) of an aligned
 * lane group; every lane of the logical warp must take part. */
template <typename T>
static __device__ __forceinline__ T group_sum(T v, int width) {
    for (int off = width >> 1; off > 0; off >>= 1) v += PGD_SHFL_XOR(v, off);
    return v;
}
template <typename T>
static __device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
    for (int off = PGD_WARP / 2; off > 0; off >>= 1) v += PGD_SHFL_XOR(v, off);
    return v;
}
static __device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int off = PGD_WARP / 2; off > 0; off >>= 1) v = fmaxf(v, PGD_SHFL_XOR(v, off));
    return v;
}

/* Sum over the whole block (blockDim.x a multiple of 32, <= 1024) in a
 * fixed order, so the result is deterministic; every thread gets it.
 * `red` is shared scratch of >= 32 elements; the call ends with a barrier
 * so `red` may be reused at once. */
template <typename T>
static __device__ __forceinline__ T block_sum(T v, T *red) {
    const int lane = threadIdx.x % PGD_WARP, w = threadIdx.x / PGD_WARP;
    const int nw = blockDim.x / PGD_WARP;
    v = warp_sum(v);
    if (lane == 0) red[w] = v;
    __syncthreads();
    T t = lane < nw ? red[lane] : (T)0;
    t = warp_sum(t);
    __syncthreads();
    return t;
}
static __device__ __forceinline__ float block_max(float v, float *red) {
    const int lane = threadIdx.x % PGD_WARP, w = threadIdx.x / PGD_WARP;
    const int nw = blockDim.x / PGD_WARP;
    v = warp_max(v);
    if (lane == 0) red[w] = v;
    __syncthreads();
    float t = lane < nw ? red[lane] : -INFINITY;
    t = warp_max(t);
    __syncthreads();
    return t;
}

static __device__ __forceinline__ float bf16_bits_to_f32(uint16_t h) {
    return __uint_as_float((uint32_t)h << 16);
}
/* Round to nearest even, NaN kept quiet: same as pgd_f32_to_bf16(). */
static __device__ __forceinline__ uint16_t f32_to_bf16_bits(float f) {
    uint32_t x = __float_as_uint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

/* Element i of a weight tensor of dtype wt, as f32 (exact). */
static __device__ __forceinline__ float load_weight(const void *w, pgd_dtype wt, size_t i) {
    switch (wt) {
    case PGD_F16: return pgd_f16_bits_to_f32(((const uint16_t *)w)[i]);
    case PGD_BF16: return bf16_bits_to_f32(((const uint16_t *)w)[i]);
    default: return ((const float *)w)[i];
    }
}

/* Largest s with query_start[s] <= row: the sequence owning query row
 * `row` (empty sequences before it are skipped). */
static __device__ __forceinline__ int seq_of_row(const int32_t *query_start, int num_seqs,
                                                 int row) {
    int lo = 0, hi = num_seqs; /* answer in [lo, hi) */
    while (hi - lo > 1) {
        int mid = (lo + hi) >> 1;
        if (query_start[mid] <= row) lo = mid;
        else hi = mid;
    }
    return lo;
}

} /* namespace PGD_GPU_NS */

#endif
