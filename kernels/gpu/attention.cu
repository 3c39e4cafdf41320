/* attention.cu - paged attention over a ragged batch (decode rows and
 * prefill chunks mixed), causal, GQA; f32 cache of layout
 * (num_blocks, n_kv_heads, block_size, head_dim).
 *
 * Work decomposition. One CTA (ATTN_WARPS logical warps of 32 lanes) runs
 * one query row, one KV head and up to HC_MAX of the query heads that share
 * it (GQA: K and V are read once for the whole group), over one partition
 * of the row's context: tokens [part * part_size, min(ctx, ...)) where ctx
 * = the row's position + 1 (the causal limit). The partition is cut in
 * tiles of 32 tokens dealt round-robin to the warps; each warp keeps an
 * online softmax (running max m, sum l, accumulator acc) per head. The
 * row's q (rows q_stride floats apart: in place in the forward pass's
 * fused QKV rows) is staged in shared memory first. At the start of a
 * tile lane i looks up token i's block and stores the row's offset in the
 * cache (K and V share the layout) in shared memory, so the 32 block-table
 * reads of a tile overlap and no K or V load waits behind one. Then:
 *   A. scores: TG lanes per token (TG * VA floats of the K row per step,
 *      coalesced), dot with q (in shared memory), a TG-lane reduction;
 *      scores go to the warp's tile in shared memory;
 *   B. softmax update: lane i owns tile token i: tile max, rescale factor
 *      exp(m_old - m_new), probabilities written back over the scores;
 *   C. P.V: each lane owns VC consecutive dims of the V row per chunk, so a
 *      warp reads whole V rows coalesced, and accumulates for every head.
 * The warps' states merge through shared memory at the end. SINGLE writes
 * the normalised output; SPLIT writes each partition's normalised output
 * and its (m, l) to the workspace and k_attn_reduce merges the partitions.
 *
 * Prefill rows use the same kernel (one CTA per row and head group):
 * correct for any mix, but a long prompt's rows reread K/V from L2 instead
 * of sharing tiles as a flash-attention prefill kernel would.
 *
 * Numerics: f32 throughout, expf (no fast-math); matches the reference to
 * ~1e-6 relative (the order of the sums differs). */
#include <limits.h>

#include "common.cuh"

namespace PGD_GPU_NS {

enum { ATTN_WARPS = 4, ATTN_THREADS = ATTN_WARPS * PGD_WARP, HC_MAX = 8, TILE = 32,
       NCH_RT = ATTN_MAX_HEAD_DIM / 32 };

template <int V> struct vecf;
template <> struct vecf<1> { float v[1]; };
template <> struct vecf<2> { float v[2]; };
template <> struct vecf<4> { float v[4]; };

template <int V>
static __device__ __forceinline__ vecf<V> load_vec(const float *p) {
    vecf<V> r;
    if constexpr (V == 4) {
        const float4 t = *(const float4 *)p;
        r.v[0] = t.x, r.v[1] = t.y, r.v[2] = t.z, r.v[3] = t.w;
    } else if constexpr (V == 2) {
        const float2 t = *(const float2 *)p;
        r.v[0] = t.x, r.v[1] = t.y;
    } else {
        r.v[0] = *p;
    }
    return r;
}

/* Floats of shared memory before the row offsets (rounded up to even, so
 * the size_t offsets that follow are 8-byte aligned). */
static __host__ __device__ __forceinline__ size_t attn_smem_floats(int hc_cap, int D) {
    size_t n = (size_t)hc_cap * D * (1 + ATTN_WARPS) + ATTN_WARPS * HC_MAX * TILE + 2 * ATTN_WARPS * HC_MAX;
    return (n + 1) & ~(size_t)1;
}

/* D_CT: head_dim fixed at compile time (64, 128; VA = 4), or 0 = any
 * head_dim <= ATTN_MAX_HEAD_DIM (VA = 2 if it is even, else 1). */
template <int D_CT, int VA>
__global__ void __launch_bounds__(ATTN_THREADS)
k_attn(pgd_paged_attn p, int tg_rt, int n_chunks, int hc_cap, int part_size, int max_parts,
       float *part_out, float *part_ml) {
    constexpr int VC = D_CT >= 128 ? 4 : D_CT == 64 ? 2 : 1; /* phase C vector width */
    constexpr int NCH = D_CT ? (D_CT / (32 * VC) > 0 ? D_CT / (32 * VC) : 1) : NCH_RT;
    const int D = D_CT ? D_CT : p.head_dim;
    const int TG = D_CT ? 8 : tg_rt; /* lanes per token in phase A */
    const int TPW = PGD_WARP / TG;   /* tokens per warp step in phase A */
    [[maybe_unused]] constexpr int UNROLL_A = D_CT ? 8 : 1; /* unused where #pragma unroll is ignored (gpu-emu) */

    const int row = blockIdx.x;
    const int kvh = blockIdx.y / n_chunks, chunk = blockIdx.y % n_chunks;
    const int part = blockIdx.z;
    const int group = p.n_heads / p.n_kv_heads;
    const int h0 = kvh * group + chunk * HC_MAX;
    const int hc = min(HC_MAX, group - chunk * HC_MAX);
    const int tid = threadIdx.x, lane = tid % PGD_WARP, w = tid / PGD_WARP;

    const int s = seq_of_row(p.query_start, p.num_seqs, row);
    const int q0 = p.query_start[s], nq = p.query_start[s + 1] - q0;
    const int ctx = p.seq_lens[s] - nq + (row - q0) + 1; /* causal: positions 0 .. ctx-1 */
    const int t_begin = part * part_size;
    const int t_end = min(ctx, t_begin + part_size);
    if (part_out && t_begin >= ctx && !(part == 0 && ctx <= 0)) return; /* empty partition */
    const int32_t *bt = p.block_tables + (size_t)s * p.max_blocks_per_seq;

    PGD_DYN_SMEM(float, smem);
    float *qs = smem;                                  /* (hc_cap, D) */
    float *wacc = qs + hc_cap * D;                     /* (ATTN_WARPS, hc_cap, D) */
    float *sc = wacc + ATTN_WARPS * hc_cap * D;        /* (ATTN_WARPS, HC_MAX, TILE) */
    float *wm = sc + ATTN_WARPS * HC_MAX * TILE;       /* (ATTN_WARPS, HC_MAX) */
    float *wl = wm + ATTN_WARPS * HC_MAX;              /* (ATTN_WARPS, HC_MAX) */
    float *my_sc = sc + w * HC_MAX * TILE;
    /* (ATTN_WARPS, TILE) row offsets of the warp's tiles, after the floats */
    size_t *my_off = (size_t *)(smem + attn_smem_floats(hc_cap, D)) + w * TILE;

    for (int i = tid; i < hc * D; i += ATTN_THREADS)
        qs[i] = p.q[(size_t)row * p.q_stride + (size_t)h0 * D + i];
    __syncthreads();

    float m[HC_MAX], l[HC_MAX], acc[HC_MAX][NCH][VC];
#pragma unroll
    for (int h = 0; h < HC_MAX; h++) {
        m[h] = -INFINITY;
        l[h] = 0.0f;
#pragma unroll
        for (int c = 0; c < NCH; c++)
#pragma unroll
            for (int v = 0; v < VC; v++) acc[h][c][v] = 0.0f;
    }

    const int gi = lane / TG, gl = lane % TG;
    for (int tile_start = t_begin + w * TILE; tile_start < t_end; tile_start += ATTN_WARPS * TILE) {
        /* row offsets of the tile's tokens, one lookup per lane */
        if (tile_start + lane < t_end) {
            const int t = tile_start + lane;
            my_off[lane] = (((size_t)bt[t / p.block_size] * p.n_kv_heads + kvh) * p.block_size +
                            t % p.block_size) * D;
        }
        PGD_SYNCWARP();
        /* A. scores of the tile's tokens for every head (unrolled: the K loads
         * of several steps are in flight together; D_CT fixes the trip count) */
#pragma unroll UNROLL_A
        for (int i0 = 0; i0 < TILE; i0 += TPW) {
            const int i = i0 + gi, t = tile_start + i;
            const bool valid = t < t_end;
            float part_s[HC_MAX];
#pragma unroll
            for (int h = 0; h < HC_MAX; h++) part_s[h] = 0.0f;
            if (valid) {
                const float *krow = (const float *)p.k_cache + my_off[i];
                const int nstep = D / (TG * VA); /* TG * VA divides D */
                for (int j = 0; j < nstep; j++) {
                    const int c = (j * TG + gl) * VA;
                    const vecf<VA> kv = load_vec<VA>(krow + c);
#pragma unroll
                    for (int h = 0; h < HC_MAX; h++) {
                        if (h < hc) {
                            const vecf<VA> qv = load_vec<VA>(qs + h * D + c);
#pragma unroll
                            for (int v = 0; v < VA; v++) part_s[h] += qv.v[v] * kv.v[v];
                        }
                    }
                }
            }
#pragma unroll
            for (int h = 0; h < HC_MAX; h++) {
                if (h < hc) {
                    const float sum = group_sum(part_s[h], TG);
                    if (gl == 0) my_sc[h * TILE + i] = valid ? sum * p.scale : -INFINITY;
                }
            }
        }
        PGD_SYNCWARP();
        /* B. online softmax update; probabilities replace the scores */
#pragma unroll
        for (int h = 0; h < HC_MAX; h++) {
            if (h < hc) {
                const float sv = my_sc[h * TILE + lane];
                const float mn = fmaxf(m[h], warp_max(sv));
                const float pr = expf(sv - mn);
                const float alpha = expf(m[h] - mn);
                l[h] = l[h] * alpha + warp_sum(pr);
                m[h] = mn;
                my_sc[h * TILE + lane] = pr;
#pragma unroll
                for (int c = 0; c < NCH; c++)
#pragma unroll
                    for (int v = 0; v < VC; v++) acc[h][c][v] *= alpha;
            }
        }
        PGD_SYNCWARP();
        /* C. acc += P V over the tile's tokens */
        const int ntok = min(TILE, t_end - tile_start);
#pragma unroll 8
        for (int i = 0; i < ntok; i++) {
            const float *vrow = (const float *)p.v_cache + my_off[i];
#pragma unroll
            for (int c = 0; c < NCH; c++) {
                const int d = (c * PGD_WARP + lane) * VC;
                if (d < D) {
                    const vecf<VC> vv = load_vec<VC>(vrow + d);
#pragma unroll
                    for (int h = 0; h < HC_MAX; h++) {
                        if (h < hc) {
                            const float pr = my_sc[h * TILE + i];
#pragma unroll
                            for (int v = 0; v < VC; v++) acc[h][c][v] += pr * vv.v[v];
                        }
                    }
                }
            }
        }
        PGD_SYNCWARP(); /* the next tile overwrites my_sc and my_off */
    }

    /* merge the warps' (m, l, acc) */
    if (lane == 0) {
#pragma unroll
        for (int h = 0; h < HC_MAX; h++) {
            wm[w * HC_MAX + h] = m[h];
            wl[w * HC_MAX + h] = l[h];
        }
    }
#pragma unroll
    for (int h = 0; h < HC_MAX; h++) {
        if (h < hc) {
#pragma unroll
            for (int c = 0; c < NCH; c++) {
                const int d = (c * PGD_WARP + lane) * VC;
#pragma unroll
                for (int v = 0; v < VC; v++)
                    if (d + v < D) wacc[(w * hc_cap + h) * D + d + v] = acc[h][c][v];
            }
        }
    }
    __syncthreads();
    for (int idx = tid; idx < hc * D; idx += ATTN_THREADS) {
        const int h = idx / D, d = idx % D;
        float M = -INFINITY;
        for (int ww = 0; ww < ATTN_WARPS; ww++) M = fmaxf(M, wm[ww * HC_MAX + h]);
        float L = 0.0f, O = 0.0f;
        for (int ww = 0; ww < ATTN_WARPS; ww++) {
            const float mw = wm[ww * HC_MAX + h];
            if (mw == -INFINITY) continue; /* this warp saw no token */
            const float f = expf(mw - M);
            L += wl[ww * HC_MAX + h] * f;
            O += wacc[(ww * hc_cap + h) * D + d] * f;
        }
        const float res = L > 0.0f ? O / L : 0.0f;
        const size_t oh = (size_t)row * p.n_heads + h0 + h;
        if (!part_out) {
            p.out[oh * D + d] = res;
        } else {
            part_out[(oh * max_parts + part) * D + d] = res;
            if (d == 0) {
                part_ml[2 * (oh * max_parts + part)] = M;
                part_ml[2 * (oh * max_parts + part) + 1] = L;
            }
        }
    }
}

/* SPLIT, second pass: out = sum_p w_p o_p / sum_p w_p, w_p = l_p exp(m_p - M).
 * grid (num_tokens, n_heads); shared: max_parts floats. */
__global__ void k_attn_reduce(pgd_paged_attn p, int part_size, int max_parts, const float *part_out,
                              const float *part_ml) {
    PGD_DYN_SMEM(float, wts);
    const int row = blockIdx.x, h = blockIdx.y, D = p.head_dim;
    const int s = seq_of_row(p.query_start, p.num_seqs, row);
    const int q0 = p.query_start[s], nq = p.query_start[s + 1] - q0;
    const int ctx = p.seq_lens[s] - nq + (row - q0) + 1;
    int np = ctx > 0 ? (ctx + part_size - 1) / part_size : 1;
    if (np > max_parts) np = max_parts; /* only if max_seq_len understated a context */
    const size_t oh = (size_t)row * p.n_heads + h;
    const float *ml = part_ml + 2 * oh * max_parts;
    float M = -INFINITY;
    for (int i = 0; i < np; i++) M = fmaxf(M, ml[2 * i]);
    for (int i = threadIdx.x; i < np; i += blockDim.x)
        wts[i] = ml[2 * i] == -INFINITY ? 0.0f : ml[2 * i + 1] * expf(ml[2 * i] - M);
    __syncthreads();
    float W = 0.0f;
    for (int i = 0; i < np; i++) W += wts[i];
    const float *po = part_out + oh * max_parts * D;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float o = 0.0f;
        for (int i = 0; i < np; i++) o += wts[i] * po[(size_t)i * D + d];
        p.out[oh * D + d] = W > 0.0f ? o / W : 0.0f;
    }
}

static int hc_cap_of(const pgd_paged_attn *p) {
    int group = p->n_heads / p->n_kv_heads;
    return group < HC_MAX ? group : HC_MAX;
}
static int chunks_of(const pgd_paged_attn *p) {
    int group = p->n_heads / p->n_kv_heads;
    return (group + HC_MAX - 1) / HC_MAX;
}

attn_plan attention_plan(const pgd_paged_attn *p, int mode, int num_sms) {
    attn_plan pl = {ATTN_SINGLE, 0, 1, 0};
    const int max_len = p->max_seq_len > 0 ? p->max_seq_len : 1;
    const long base = (long)p->num_tokens * p->n_kv_heads * chunks_of(p); /* CTAs per partition */
    const int min_part = ATTN_WARPS * TILE;
    int part = ATTN_MAX_PARTITION;
    if (mode == ATTN_AUTO) {
        if (max_len <= min_part) return pl;
        /* aim at >= 4 CTAs per multiprocessor */
        long want = 4L * (num_sms > 0 ? num_sms : 1);
        if (base >= want && max_len <= 8192) return pl;
        long parts = (want + base - 1) / base;
        long ps = (max_len + parts - 1) / parts;
        ps = (ps + TILE - 1) / TILE * TILE;
        part = (int)(ps < min_part ? (long)min_part : ps > ATTN_MAX_PARTITION ? (long)ATTN_MAX_PARTITION : ps);
        if ((max_len + part - 1) / part <= 1) return pl;
    } else if (mode == ATTN_SINGLE) {
        return pl;
    } else if (max_len <= ATTN_MAX_PARTITION) {
        /* forced split of short contexts: several partitions of the minimum size */
        part = min_part;
    }
    pl.variant = ATTN_SPLIT;
    pl.part_size = part;
    pl.max_parts = (max_len + part - 1) / part;
    size_t rows = (size_t)p->num_tokens * p->n_heads * pl.max_parts;
    pl.workspace = rows * (size_t)p->head_dim * sizeof(float) + rows * 2 * sizeof(float);
    return pl;
}

template <int D_CT, int VA>
static void launch_attn(gpuStream_t st, const pgd_paged_attn *p, dim3 grid, size_t smem, int tg,
                        int part_size, int max_parts, float *po, float *pml) {
    PGD_LAUNCH(grid, ATTN_THREADS, smem, st, k_attn<D_CT, VA>)(*p, tg, chunks_of(p), hc_cap_of(p), part_size,
                                                    max_parts, po, pml);
}

gpuError_t paged_attention(gpuStream_t st, const pgd_paged_attn *p, const attn_plan *plan,
                           void *workspace) {
    const int D = p->head_dim, hc_cap = hc_cap_of(p);
    const bool split = plan->variant == ATTN_SPLIT;
    const int part_size = split ? plan->part_size : INT_MAX / 2; /* SINGLE: the whole context */
    const int max_parts = split ? plan->max_parts : 1;
    float *po = split ? (float *)workspace : NULL;
    float *pml = split ? po + (size_t)p->num_tokens * p->n_heads * max_parts * D : NULL;
    dim3 grid((unsigned)p->num_tokens, (unsigned)(p->n_kv_heads * chunks_of(p)), (unsigned)max_parts);
    size_t smem = sizeof(float) * attn_smem_floats(hc_cap, D) + sizeof(size_t) * ATTN_WARPS * TILE;
    const bool aligned = ((uintptr_t)p->q | (uintptr_t)p->k_cache | (uintptr_t)p->v_cache) % 16 == 0;
    if (D == 128 && aligned) {
        launch_attn<128, 4>(st, p, grid, smem, 8, part_size, max_parts, po, pml);
    } else if (D == 64 && aligned) {
        launch_attn<64, 4>(st, p, grid, smem, 8, part_size, max_parts, po, pml);
    } else {
        const int va = D % 2 == 0 && aligned ? 2 : 1;
        int tg = 1; /* lanes per token: the largest power of two <= 8 dividing D / va */
        while (tg < 8 && (D / va) % (tg * 2) == 0) tg *= 2;
        if (va == 2) launch_attn<0, 2>(st, p, grid, smem, tg, part_size, max_parts, po, pml);
        else launch_attn<0, 1>(st, p, grid, smem, tg, part_size, max_parts, po, pml);
    }
    gpuError_t e = gpuGetLastError();
    if (e != gpuSuccess || !split) return e;
    dim3 rgrid((unsigned)p->num_tokens, (unsigned)p->n_heads);
    PGD_LAUNCH(rgrid, 128, sizeof(float) * max_parts, st, k_attn_reduce)(*p, part_size, max_parts, po, pml);
    return gpuGetLastError();
}

} /* namespace PGD_GPU_NS */
