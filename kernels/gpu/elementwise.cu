/* elementwise.cu - the GPU kernels of the forward pass that are not matmul
 * or attention: embedding gather, RMSNorm, rotary embedding, SiLU-and-
 * multiply, residual add, row gather, writing K/V into the paged cache
 * (vLLM's reshape_and_cache), block copy (copy-on-write) and f32 -> f16/bf16
 * conversion of activations for the GEMM.
 *
 * Numerics follow kernels/cpu/ref.c: copies are exact; RMSNorm sums squares
 * in f32 (in a different order, so within 1e-6 relative) and uses a
 * correctly rounded 1/sqrtf; RoPE uses the host-computed inverse
 * frequencies and the reference's formulas. Built without fast-math. */
#include "common.cuh"

namespace PGD_GPU_NS {

enum { EW_THREADS = 256 };

/* ---- embedding / gather: one block per row ---- */

__global__ void k_embedding(float *out, const void *table, pgd_dtype tt, const int32_t *tokens,
                            int dim) {
    const size_t row = blockIdx.x;
    const size_t src = (size_t)tokens[row] * dim;
    float *o = out + row * dim;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) o[j] = load_weight(table, tt, src + j);
}

gpuError_t embedding(gpuStream_t st, float *out, const void *table, pgd_dtype tt,
                     const int32_t *tokens, int n, int dim) {
    PGD_LAUNCH(n, EW_THREADS, 0, st, k_embedding)(out, table, tt, tokens, dim);
    return gpuGetLastError();
}

__global__ void k_gather_rows(float *out, const float *x, const int32_t *rows, int dim) {
    const size_t row = blockIdx.x;
    const float *s = x + (size_t)rows[row] * dim;
    float *o = out + row * dim;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) o[j] = s[j];
}

gpuError_t gather_rows(gpuStream_t st, float *out, const float *x, const int32_t *rows, int n,
                       int dim) {
    PGD_LAUNCH(n, EW_THREADS, 0, st, k_gather_rows)(out, x, rows, dim);
    return gpuGetLastError();
}

/* ---- RMSNorm: one block per row; y may alias x ---- */

__global__ void k_rmsnorm(float *y, const float *x, const float *w, int dim, float eps) {
    __shared__ float red[32];
    const float *xr = x + (size_t)blockIdx.x * dim;
    float *yr = y + (size_t)blockIdx.x * dim;
    float ss = 0.0f;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) ss += xr[j] * xr[j];
    ss = block_sum(ss, red);
    ss /= dim;
    ss += eps;
    ss = 1.0f / sqrtf(ss);
    /* each element is read and then written by the same thread: aliasing is safe */
    for (int j = threadIdx.x; j < dim; j += blockDim.x) yr[j] = w[j] * (ss * xr[j]);
}

gpuError_t rmsnorm(gpuStream_t st, float *y, const float *x, const float *w, int n, int dim,
                   float eps) {
    PGD_LAUNCH(n, EW_THREADS, 0, st, k_rmsnorm)(y, x, w, dim, eps);
    return gpuGetLastError();
}

/* ---- rotary embedding on interleaved pairs: one thread per (token, head, pair);
 * token rows qs (q) and ks (k) floats apart ---- */

__global__ void k_rope(float *q, float *k, const int32_t *pos, const float *inv_freq, int n,
                       int n_heads, int n_kv_heads, int head_dim, size_t qs, size_t ks) {
    const int half = head_dim / 2;
    const size_t total = (size_t)n * n_heads * half;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        const int p = (int)(idx % half);
        const int h = (int)((idx / half) % n_heads);
        const size_t t = idx / ((size_t)half * n_heads);
        const int i = 2 * p;
        const float val = (float)pos[t] * inv_freq[p];
        const float fcr = cosf(val), fci = sinf(val);
        float *vq = q + t * qs + (size_t)h * head_dim;
        float v0 = vq[i], v1 = vq[i + 1];
        vq[i] = v0 * fcr - v1 * fci;
        vq[i + 1] = v0 * fci + v1 * fcr;
        if (h < n_kv_heads) { /* k has fewer heads under GQA */
            float *vk = k + t * ks + (size_t)h * head_dim;
            v0 = vk[i];
            v1 = vk[i + 1];
            vk[i] = v0 * fcr - v1 * fci;
            vk[i + 1] = v0 * fci + v1 * fcr;
        }
    }
}

gpuError_t rope(gpuStream_t st, float *q, float *k, const int32_t *pos, const float *inv_freq,
                int n, int n_heads, int n_kv_heads, int head_dim, int stride) {
    size_t total = (size_t)n * n_heads * (head_dim / 2);
    unsigned blocks = ceil_div(total, EW_THREADS);
    if (blocks > 65535u * 8) blocks = 65535u * 8;
    const size_t qs = stride ? (size_t)stride : (size_t)n_heads * head_dim;
    const size_t ks = stride ? (size_t)stride : (size_t)n_kv_heads * head_dim;
    PGD_LAUNCH(blocks, EW_THREADS, 0, st, k_rope)(q, k, pos, inv_freq, n, n_heads, n_kv_heads, head_dim, qs, ks);
    return gpuGetLastError();
}

/* ---- SiLU-and-multiply, residual add: grid-stride loops ---- */

static unsigned grid_for(size_t n) {
    unsigned b = ceil_div(n, EW_THREADS);
    return b < 1 ? 1 : b > 65535u * 16 ? 65535u * 16 : b;
}

/* grid (column blocks, rows), both grid-stride: row r's [gate | up] at
 * gate_up + 2*r*hidden, its output at out + r*hidden */
__global__ void k_silu_mul(float *out, const float *gate_up, int n_rows, int hidden) {
    for (int r = blockIdx.y; r < n_rows; r += gridDim.y) {
        const float *gate = gate_up + (size_t)r * 2 * hidden, *up = gate + hidden;
        float *o = out + (size_t)r * hidden;
        for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < hidden; i += gridDim.x * blockDim.x) {
            float val = gate[i];
            val *= (1.0f / (1.0f + expf(-val)));
            o[i] = val * up[i];
        }
    }
}

gpuError_t silu_mul(gpuStream_t st, float *out, const float *gate_up, int n_rows, int hidden) {
    unsigned cols = ceil_div((size_t)hidden, EW_THREADS);
    if (cols > 1024u) cols = 1024u;
    dim3 grid(cols, (unsigned)(n_rows < 65535 ? n_rows : 65535));
    PGD_LAUNCH(grid, EW_THREADS, 0, st, k_silu_mul)(out, gate_up, n_rows, hidden);
    return gpuGetLastError();
}

__global__ void k_add4(float4 *y, const float4 *x, size_t n4) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n4;
         i += (size_t)gridDim.x * blockDim.x) {
        float4 a = y[i];
        const float4 b = x[i];
        a.x += b.x;
        a.y += b.y;
        a.z += b.z;
        a.w += b.w;
        y[i] = a;
    }
}
__global__ void k_add(float *y, const float *x, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] += x[i];
}

gpuError_t add(gpuStream_t st, float *y, const float *x, size_t n) {
    if (((uintptr_t)y | (uintptr_t)x) % 16 == 0 && n >= 4) {
        size_t n4 = n / 4;
        PGD_LAUNCH(grid_for(n4), EW_THREADS, 0, st, k_add4)((float4 *)y, (const float4 *)x, n4);
        gpuError_t e = gpuGetLastError();
        if (e != gpuSuccess || n4 * 4 == n) return e;
        y += n4 * 4;
        x += n4 * 4;
        n -= n4 * 4;
    }
    PGD_LAUNCH(grid_for(n), EW_THREADS, 0, st, k_add)(y, x, n);
    return gpuGetLastError();
}

/* ---- K/V into the paged cache: one block per token; k, v rows ld floats apart ---- */

__global__ void k_kv_write(float *k_cache, float *v_cache, const float *k, const float *v,
                           const int32_t *slot_mapping, int n_kv_heads, int head_dim,
                           int block_size, size_t ld) {
    const size_t t = blockIdx.x;
    const int32_t slot = slot_mapping[t];
    if (slot < 0) return; /* padding token: skip */
    const size_t blk = (size_t)slot / block_size, off = (size_t)slot % block_size;
    const int row = n_kv_heads * head_dim;
    for (int e = threadIdx.x; e < row; e += blockDim.x) {
        const int h = e / head_dim, d = e % head_dim;
        const size_t dst = ((blk * n_kv_heads + h) * block_size + off) * head_dim + d;
        k_cache[dst] = k[t * ld + e];
        v_cache[dst] = v[t * ld + e];
    }
}

gpuError_t kv_write(gpuStream_t st, float *k_cache, float *v_cache, const float *k,
                    const float *v, const int32_t *slot_mapping, int n, int n_kv_heads,
                    int head_dim, int block_size, int stride) {
    int row = n_kv_heads * head_dim;
    int threads = row >= EW_THREADS ? EW_THREADS : ((row + 31) / 32) * 32;
    const size_t ld = stride ? (size_t)stride : (size_t)row;
    PGD_LAUNCH(n, threads, 0, st, k_kv_write)(k_cache, v_cache, k, v, slot_mapping, n_kv_heads, head_dim,
                                      block_size, ld);
    return gpuGetLastError();
}

/* ---- block copy (copy-on-write): grid (pairs, chunks of a block) ---- */

enum { COPY_CHUNK = EW_THREADS * 16 };

template <typename T>
__global__ void k_copy_blocks(T *cache, const int32_t *pairs, size_t block_elems) {
    const size_t src = (size_t)pairs[2 * blockIdx.x] * block_elems;
    const size_t dst = (size_t)pairs[2 * blockIdx.x + 1] * block_elems;
    const size_t begin = (size_t)blockIdx.y * COPY_CHUNK;
    size_t end = begin + COPY_CHUNK;
    if (end > block_elems) end = block_elems;
    for (size_t j = begin + threadIdx.x; j < end; j += blockDim.x) cache[dst + j] = cache[src + j];
}

gpuError_t copy_blocks(gpuStream_t st, float *cache, const int32_t *pairs, int n_pairs,
                       size_t block_floats) {
    if (block_floats % 4 == 0 && (uintptr_t)cache % 16 == 0) {
        size_t e = block_floats / 4;
        dim3 grid((unsigned)n_pairs, ceil_div(e, COPY_CHUNK));
        PGD_LAUNCH(grid, EW_THREADS, 0, st, k_copy_blocks<float4>)((float4 *)cache, pairs, e);
    } else {
        dim3 grid((unsigned)n_pairs, ceil_div(block_floats, COPY_CHUNK));
        PGD_LAUNCH(grid, EW_THREADS, 0, st, k_copy_blocks<float>)(cache, pairs, block_floats);
    }
    return gpuGetLastError();
}

/* ---- activations to the GEMM's operand type ---- */

__global__ void k_convert(uint16_t *dst, pgd_dtype dt, const float *src, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = dt == PGD_BF16 ? f32_to_bf16_bits(src[i]) : pgd_f32_to_f16_bits(src[i]);
}

gpuError_t convert_from_f32(gpuStream_t st, void *dst, pgd_dtype dt, const float *src, size_t n) {
    PGD_LAUNCH(grid_for(n), EW_THREADS, 0, st, k_convert)((uint16_t *)dst, dt, src, n);
    return gpuGetLastError();
}

} /* namespace PGD_GPU_NS */
