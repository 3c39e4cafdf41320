/* sampling.cu - sampling helpers on the logits rows: argmax, and one draw
 * with temperature, top-k and top-p, one CTA per row.
 *
 * Semantics (those of core/sampler/sampler.c given the row's uniform draw
 * u, except the order in which the final draw walks the kept tokens):
 *  - argmax: ties to the lowest id; NaN never wins; all NaN -> 0
 *    (pgd_argmax). temperature 0 or top_k 1 -> argmax.
 *  - otherwise NaN logits count as -inf; if the largest logit is not
 *    finite the result is the argmax of that mapped row.
 *  - candidates are totally ordered by key = (logit desc, id asc) as one
 *    uint64 (the sampler's cand_key); top-k keeps the k best keys; weights
 *    are expf((l - max) / T) in f32, sums in double; top-p keeps the
 *    shortest best-first prefix of the survivors whose weight reaches
 *    top_p * (their total weight); the draw picks, walking the kept tokens
 *    in id order, the first whose cumulative weight exceeds u * (kept mass).
 * Thresholds are found by bisection on the key (32 passes over the row on
 * the logit bits, 32 more on the id bits only when equal logits straddle
 * the boundary), each pass a deterministic block reduction: the same row
 * gives the same token on every run. */
#include "common.cuh"

namespace PGD_GPU_NS {

enum { SAMPLE_THREADS = 256 };

static __device__ __forceinline__ float mapped(float l) {
    if (isnan(l)) return -INFINITY;
    return l == 0.0f ? 0.0f : l; /* -0 -> +0, so that it ties with +0 */
}
/* Order-preserving map of a (mapped, non-NaN) float to uint32. */
static __device__ __forceinline__ uint32_t ord_bits(float l) {
    uint32_t u = __float_as_uint(l);
    return u ^ ((0u - (u >> 31)) | 0x80000000u);
}
static __device__ __forceinline__ uint64_t cand_key(float l, int i) {
    return ((uint64_t)ord_bits(l) << 32) | (uint64_t)(0xffffffffu - (uint32_t)i);
}

/* ---- argmax ---- */

struct best {
    float val;
    int idx;
    int valid;
};
static __device__ __forceinline__ bool better(const best &a, const best &b) {
    if (a.valid != b.valid) return a.valid > b.valid;
    if (a.valid && a.val != b.val) return a.val > b.val;
    return a.idx < b.idx;
}

/* nan_as_ninf = 0: pgd_argmax; 1: argmax of the row with NaN read as -inf. */
static __device__ int block_argmax(const float *x, int n, int nan_as_ninf) {
    __shared__ best red[SAMPLE_THREADS / PGD_WARP];
    best b = {-INFINITY, 0x7fffffff, 0};
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float v = x[i];
        best c = {v, i, 1};
        if (isnan(v)) {
            if (nan_as_ninf) c.val = -INFINITY;
            else c.valid = 0;
        }
        if (better(c, b)) b = c;
    }
#pragma unroll
    for (int off = PGD_WARP / 2; off > 0; off >>= 1) {
        best o = {PGD_SHFL_XOR(b.val, off), PGD_SHFL_XOR(b.idx, off), PGD_SHFL_XOR(b.valid, off)};
        if (better(o, b)) b = o;
    }
    const int lane = threadIdx.x % PGD_WARP, w = threadIdx.x / PGD_WARP;
    if (lane == 0) red[w] = b;
    __syncthreads();
    best r = red[0];
    for (int i = 1; i < (int)blockDim.x / PGD_WARP; i++)
        if (better(red[i], r)) r = red[i];
    __syncthreads();
    return r.valid ? r.idx : 0;
}

__global__ void __launch_bounds__(SAMPLE_THREADS)
k_argmax(int32_t *out, const float *logits, int vocab) {
    const int r = block_argmax(logits + (size_t)blockIdx.x * vocab, vocab, 0);
    if (threadIdx.x == 0) out[blockIdx.x] = r;
}

gpuError_t argmax_rows(gpuStream_t st, int32_t *out, const float *logits, int n_rows, int vocab) {
    PGD_LAUNCH(n_rows, SAMPLE_THREADS, 0, st, k_argmax)(out, logits, vocab);
    return gpuGetLastError();
}

/* ---- threshold search ---- */

/* Measure of the candidates with key >= cand (and key >= floor): their
 * count (w == NULL) or their weight. */
static __device__ double measure(const float *x, const float *w, int n, uint64_t cand,
                                 uint64_t floor, double *red) {
    const uint64_t lim = cand > floor ? cand : floor;
    double acc = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        if (cand_key(mapped(x[i]), i) >= lim) acc += w ? (double)w[i] : 1.0;
    return block_sum(acc, red);
}

/* Largest key K with measure(K) >= target (keys are distinct, so K is the
 * key of the boundary candidate). The logit half first; the id half only
 * if several candidates (>= floor) share the boundary logit. */
static __device__ uint64_t bisect(const float *x, const float *w, int n, uint64_t floor,
                                  double target, double *red) {
    uint32_t hi = 0;
    for (int b = 31; b >= 0; b--) {
        const uint32_t c = hi | (1u << b);
        if (measure(x, w, n, (uint64_t)c << 32, floor, red) >= target) hi = c;
    }
    uint64_t k = (uint64_t)hi << 32;
    /* candidates (>= floor) whose logit bits equal hi */
    double ties = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const uint64_t key = cand_key(mapped(x[i]), i);
        if ((uint32_t)(key >> 32) == hi && key >= floor) ties += 1.0;
    }
    ties = block_sum(ties, red);
    if (ties <= 1.0) return k > floor ? k : floor;
    for (int b = 31; b >= 0; b--) {
        const uint64_t c = k | (1ull << b);
        if (measure(x, w, n, c, floor, red) >= target) k = c;
    }
    return k > floor ? k : floor;
}

/* ---- one draw per row ---- */

__global__ void __launch_bounds__(SAMPLE_THREADS)
k_sample(int32_t *out, const float *logits, const sample_row *params, int n, float *work) {
    __shared__ double red[32];
    __shared__ float fred[32];
    __shared__ double csum[SAMPLE_THREADS];
    __shared__ int clast[SAMPLE_THREADS];
    const size_t row = blockIdx.x;
    const float *x = logits + row * n;
    float *w = work + row * n;
    const sample_row sp = params[row];
    const int top_k = (sp.top_k <= 0 || sp.top_k >= n) ? 0 : sp.top_k;
    const float top_p = (sp.top_p <= 0.0f || sp.top_p >= 1.0f) ? 1.0f : sp.top_p;
    const float t = sp.temperature;

    if (t == 0.0f || top_k == 1) {
        const int r = block_argmax(x, n, 0);
        if (threadIdx.x == 0) out[row] = r;
        return;
    }
    float mx = -INFINITY;
    for (int i = threadIdx.x; i < n; i += blockDim.x) mx = fmaxf(mx, mapped(x[i]));
    mx = block_max(mx, fred);
    if (!isfinite(mx)) { /* all -inf / NaN, or a +inf */
        const int r = block_argmax(x, n, 1);
        if (threadIdx.x == 0) out[row] = r;
        return;
    }
    /* top-k: the k best keys are those >= kth */
    const uint64_t kth = top_k ? bisect(x, NULL, n, 0, (double)top_k, red) : 0;
    double sum = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float l = mapped(x[i]);
        const float wi = cand_key(l, i) >= kth ? expf((l - mx) / t) : 0.0f;
        w[i] = wi;
        sum += wi;
    }
    sum = block_sum(sum, red); /* also orders the w[] stores before the reads below */
    const int m = top_k ? top_k : n;
    uint64_t thr = kth;
    double mass = sum;
    if (top_p < 1.0f && m > 1) {
        thr = bisect(x, w, n, kth, (double)top_p * sum, red);
        mass = measure(x, w, n, thr, kth, red);
    }
    /* draw in id order: per-thread contiguous chunks, then one thread walks */
    const double r = (double)sp.uniform * mass;
    const int chunk = (n + SAMPLE_THREADS - 1) / SAMPLE_THREADS;
    const int lo = threadIdx.x * chunk, hi = min(n, lo + chunk);
    double cs = 0.0;
    int last = -1;
    for (int i = lo; i < hi; i++) {
        if (w[i] > 0.0f && cand_key(mapped(x[i]), i) >= thr) {
            cs += w[i];
            last = i;
        }
    }
    csum[threadIdx.x] = cs;
    clast[threadIdx.x] = last;
    __syncthreads();
    if (threadIdx.x == 0) {
        double cum = 0.0;
        int pick = -1, last_any = -1;
        for (int c = 0; c < SAMPLE_THREADS && pick < 0; c++) {
            if (clast[c] < 0) continue;
            if (cum + csum[c] > r) { /* the draw lands in chunk c */
                const int clo = c * chunk, chi = min(n, clo + chunk);
                for (int i = clo; i < chi; i++) {
                    if (w[i] > 0.0f && cand_key(mapped(x[i]), i) >= thr) {
                        cum += w[i];
                        if (r < cum) {
                            pick = i;
                            break;
                        }
                    }
                }
                if (pick < 0) last_any = clast[c]; /* rounding inside the chunk */
            } else {
                cum += csum[c];
                last_any = clast[c];
            }
        }
        if (pick < 0) pick = last_any; /* rounding: r at the very end of the mass */
        if (pick < 0) pick = 0; /* unreachable: the best token (weight 1) is always kept */
        out[row] = pick;
    }
}

gpuError_t sample_rows(gpuStream_t st, int32_t *out, const float *logits, const sample_row *params,
                       int n_rows, int vocab, float *work) {
    PGD_LAUNCH(n_rows, SAMPLE_THREADS, 0, st, k_sample)(out, logits, params, vocab, work);
    return gpuGetLastError();
}

} /* namespace PGD_GPU_NS */
