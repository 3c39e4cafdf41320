/* gemm.cu - the project's own GEMM, y(n, out) = x(n, in) W^T with W (out, in)
 * row-major in f32, f16 or bf16 and f32 activations, accumulating in f32.
 * The ROCm backend's matmul (Debian's ROCm has no rocBLAS/hipBLAS), and on
 * CUDA a fallback selectable for testing (PAGODA_GPU_GEMM=own).
 *  - n <= GEMV_MAX_N (decode): one logical warp per output row reads the W
 *    row once, coalesced and vectorised, for all n tokens; bound by the
 *    bytes of W like the CPU's row-wise path.
 *  - larger n: 64x64 output tiles, K slices of 16 staged in shared memory
 *    (W converted to f32 on the way in), 4x4 outputs per thread.
 * Weights are converted exactly, so only the order of the f32 sums differs
 * from the reference. */
#include "common.cuh"

namespace PGD_GPU_NS {

enum { GEMV_MAX_N = 8, GEMV_WARPS = 8, BM = 64, BN = 64, BK = 16, GEMM_THREADS = 256 };

/* VEC weights starting at element i (i a multiple of VEC, aligned). */
template <int VEC>
static __device__ __forceinline__ void load_w(const void *w, pgd_dtype wt, size_t i, float *o) {
    if (wt == PGD_F32) {
        if constexpr (VEC == 4) {
            const float4 t = *(const float4 *)((const float *)w + i);
            o[0] = t.x, o[1] = t.y, o[2] = t.z, o[3] = t.w;
        } else {
            for (int v = 0; v < VEC; v++) o[v] = ((const float *)w)[i + v];
        }
    } else {
        const uint16_t *h = (const uint16_t *)w + i;
        if constexpr (VEC == 4) {
            const uint2 t = *(const uint2 *)h;
            const uint16_t b[4] = {(uint16_t)(t.x & 0xffff), (uint16_t)(t.x >> 16),
                                   (uint16_t)(t.y & 0xffff), (uint16_t)(t.y >> 16)};
            for (int v = 0; v < 4; v++)
                o[v] = wt == PGD_BF16 ? bf16_bits_to_f32(b[v]) : pgd_f16_bits_to_f32(b[v]);
        } else {
            for (int v = 0; v < VEC; v++)
                o[v] = wt == PGD_BF16 ? bf16_bits_to_f32(h[v]) : pgd_f16_bits_to_f32(h[v]);
        }
    }
}

template <int VEC>
__global__ void __launch_bounds__(GEMV_WARPS * PGD_WARP)
k_gemv(float *y, const float *x, const void *w, pgd_dtype wt, int n, int in, int out) {
    const int lane = threadIdx.x % PGD_WARP;
    const int o = blockIdx.x * GEMV_WARPS + threadIdx.x / PGD_WARP;
    if (o >= out) return; /* whole logical warps leave together */
    float acc[GEMV_MAX_N];
#pragma unroll
    for (int t = 0; t < GEMV_MAX_N; t++) acc[t] = 0.0f;
    const size_t row = (size_t)o * in;
    for (int j = lane * VEC; j < in; j += PGD_WARP * VEC) {
        float wv[VEC];
        load_w<VEC>(w, wt, row + j, wv);
#pragma unroll
        for (int t = 0; t < GEMV_MAX_N; t++) {
            if (t < n) {
                const float *xt = x + (size_t)t * in + j;
#pragma unroll
                for (int v = 0; v < VEC; v++) acc[t] += wv[v] * xt[v];
            }
        }
    }
#pragma unroll
    for (int t = 0; t < GEMV_MAX_N; t++) {
        if (t < n) {
            const float s = warp_sum(acc[t]);
            if (lane == 0) y[(size_t)t * out + o] = s;
        }
    }
}

__global__ void __launch_bounds__(GEMM_THREADS)
k_gemm(float *y, const float *x, const void *w, pgd_dtype wt, int n, int in, int out) {
    __shared__ float as[BK][BM + 4]; /* x tile, transposed: as[k][token] */
    __shared__ float bs[BK][BN + 4]; /* W tile, transposed: bs[k][row] */
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    float acc[4][4] = {};
    for (int k0 = 0; k0 < in; k0 += BK) {
        /* 64 x 16 elements each: 4 per thread; consecutive threads walk k */
        for (int e = tid; e < BM * BK; e += GEMM_THREADS) {
            const int r = e / BK, k = e % BK;
            const int gm = m0 + r, gn = n0 + r, gk = k0 + k;
            as[k][r] = (gm < n && gk < in) ? x[(size_t)gm * in + gk] : 0.0f;
            bs[k][r] = (gn < out && gk < in) ? load_weight(w, wt, (size_t)gn * in + gk) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < BK; k++) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                a[i] = as[k][ty * 4 + i];
                b[i] = bs[k][tx * 4 + i];
            }
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int gm = m0 + ty * 4 + i;
        if (gm >= n) continue;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int gn = n0 + tx * 4 + j;
            if (gn < out) y[(size_t)gm * out + gn] = acc[i][j];
        }
    }
}

gpuError_t gemm(gpuStream_t st, float *y, const float *x, const void *w, pgd_dtype wt, int n,
                int in, int out) {
    if (n <= GEMV_MAX_N) {
        const unsigned blocks = ceil_div((size_t)out, GEMV_WARPS);
        const size_t align = wt == PGD_F32 ? 16 : 8;
        if (in % 4 == 0 && (uintptr_t)w % align == 0 && (uintptr_t)x % 16 == 0)
            PGD_LAUNCH(blocks, GEMV_WARPS * PGD_WARP, 0, st, k_gemv<4>)(y, x, w, wt, n, in, out);
        else
            PGD_LAUNCH(blocks, GEMV_WARPS * PGD_WARP, 0, st, k_gemv<1>)(y, x, w, wt, n, in, out);
        return gpuGetLastError();
    }
    dim3 grid(ceil_div((size_t)out, BN), ceil_div((size_t)n, BM));
    PGD_LAUNCH(grid, GEMM_THREADS, 0, st, k_gemm)(y, x, w, wt, n, in, out);
    return gpuGetLastError();
}

} /* namespace PGD_GPU_NS */
