/* matmul_avx2.c - y(n, out) = x(n, in) @ W^T with AVX2/FMA/F16C.
 *
 *  - Decode (n <= 3), pgd_avx2_matmul_rows: one thread's slice r0..r1 of
 *    output rows. For n = 1, and for n = 2, 3 while in <= 1024, row by row:
 *    each W row read once as one sequential stream and dotted with every
 *    token (two accumulators per token, K step 16). This path is
 *    memory-bandwidth bound; a single stream per thread is what the hardware
 *    prefetcher follows best (measured faster than interleaving 4 rows).
 *    Longer rows go 4 at a time: n x 4 dot products in ymm accumulators (K
 *    step 8, f16/bf16 converted in registers), reduced with horizontal adds.
 *    The K tail (in % 8) is summed in scalar.
 *  - Batched (n > 3), pgd_avx2_matmul_batched: the row chunks the caller's
 *    claim function hands out, with an outer-product micro-kernel. x is
 *    packed token-minor (for each k, the values of 16 consecutive tokens, or
 *    8 in a last tile of at most 8 tokens) per block of up to NB tokens and
 *    panel of kc columns of K (at most XP_FLOATS floats: stays in L2). For
 *    each panel of 6 output rows, every 16-token tile computes a 16 x 6 block
 *    of y in 12 ymm accumulators (lane = token, register = row): per k, 2
 *    loads of packed x, 6 broadcasts of W[r][k] and 12 FMAs. A tile of at
 *    most 8 tokens (one register per row) keeps 12 FMA chains by summing even
 *    and odd k in separate accumulators, added at the end; for n <= 8 (a
 *    single such tile) the panels have 8 rows and one accumulator per row
 *    instead, unless the W row stride is a multiple of 2 KB (8 such rows
 *    would thrash one L1 set). f32 W is read in place, never packed: the
 *    first tile over a panel pulls its rows from memory while prefetching
 *    the next panel into L2, the other tiles find them in cache. f16/bf16
 *    panels are first converted to f32 in a stack buffer (rows padded
 *    against set aliasing). Each accumulator block is transposed 8 x 8 so
 *    that a register holds one token's outputs, and stored into y: by the
 *    first K panel, added by the later ones. The packed x and W buffers
 *    take about 330 KB of stack.
 * How each (token, row) output is summed (one FMA per k within a K panel,
 * or even and odd k apart in a tile of at most 8 tokens; K panels added in
 * order) depends only on n, in, wt and the token's tile, never on the row
 * panel or chunk it falls in, so the output does not depend on how rows are
 * split across threads.
 * Invariants: W is (out, in) row-major of dtype wt; x is (n, in); y is
 * (n, out); each call writes only the output rows it owns (its slice, or
 * the chunks it claimed). */
#include <immintrin.h>

#include "fast_impl.h"
#include "quant_avx2.h"

#define MR 4              /* decode: output rows per tile */
#define NT 3              /* decode: most tokens */
#define KC_MAX_WHOLE 1024 /* decode: n = 2, 3 go row by row up to this in */
#define NB 128            /* batched: tokens per block (multiple of 16) */
#define RP 6              /* batched: rows per panel */
#define RP1 8             /* batched: rows per panel when n <= 8 */
#define KC_MAX 2048       /* batched: longest K panel */
#define XP_FLOATS 65536   /* batched: packed x panel, tokens x K (256 KB) */
#define WPAD 16           /* batched: padding of converted W rows, in floats */

#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE __m256 load_w8(pgd_dtype wt, const void *w, size_t i) {
    if (wt == PGD_F32) return _mm256_loadu_ps((const float *)w + i);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + i));
    if (wt == PGD_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

ALWAYS_INLINE float load_w1(pgd_dtype wt, const void *w, size_t i) {
    if (wt == PGD_F32) return ((const float *)w)[i];
    uint16_t h = ((const uint16_t *)w)[i];
    if (wt == PGD_F16) return _cvtsh_ss(h);
    return pgd_bf16_to_f32(h);
}

/* [sum(a), sum(b), sum(c), sum(d)] */
ALWAYS_INLINE __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
    __m256 ab = _mm256_hadd_ps(a, b), cd = _mm256_hadd_ps(c, d);
    __m256 abcd = _mm256_hadd_ps(ab, cd);
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

/* y[t*ldy + r] (=|+=) sum_k w[r*ldw + k] * x[t*ldx + k], t < nt, r < nr.
 * nt, nr and wt are compile-time constants at every call site. */
ALWAYS_INLINE void tile(int nt, int nr, pgd_dtype wt, const float *x, size_t ldx, const void *w,
                        size_t ldw, int k, float *y, size_t ldy, int accumulate) {
    __m256 acc[NT][MR];
#pragma GCC unroll 3
    for (int t = 0; t < NT; t++)
#pragma GCC unroll 4
        for (int r = 0; r < MR; r++) acc[t][r] = _mm256_setzero_ps();
    int kk = 0;
    for (; kk + 8 <= k; kk += 8) {
        __m256 xv[NT];
#pragma GCC unroll 3
        for (int t = 0; t < nt; t++) xv[t] = _mm256_loadu_ps(x + t * ldx + kk);
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++) {
            __m256 wv = load_w8(wt, w, r * ldw + kk);
#pragma GCC unroll 3
            for (int t = 0; t < nt; t++) acc[t][r] = _mm256_fmadd_ps(wv, xv[t], acc[t][r]);
        }
    }
#pragma GCC unroll 3
    for (int t = 0; t < nt; t++) {
        float s[4];
        _mm_storeu_ps(s, hsum4(acc[t][0], acc[t][1], acc[t][2], acc[t][3]));
        for (int r = 0; r < nr; r++) {
            float v = s[r];
            for (int j = kk; j < k; j++) v += load_w1(wt, w, r * ldw + j) * x[t * ldx + j];
            float *dst = y + t * ldy + r;
            *dst = accumulate ? *dst + v : v;
        }
    }
}

#define TILE_CASE(NTV, NRV, WT) tile(NTV, NRV, WT, x, ldx, w, ldw, k, y, ldy, accumulate)

#define TILE_NR(NTV, WT)                          \
    switch (nr) {                                 \
    case 1: TILE_CASE(NTV, 1, WT); break;         \
    case 2: TILE_CASE(NTV, 2, WT); break;         \
    case 3: TILE_CASE(NTV, 3, WT); break;         \
    default: TILE_CASE(NTV, 4, WT); break;        \
    }

/* tile_<dtype>(nt, nr, ...): the tile above with constant nt, nr, wt. */
#define TILE_DISPATCH(WT)                                                                  \
    static void tile_##WT(int nt, int nr, const float *x, size_t ldx, const void *w,       \
                          size_t ldw, int k, float *y, size_t ldy, int accumulate) {       \
        if (nt == 1) { TILE_NR(1, WT) }                                                    \
        else if (nt == 2) { TILE_NR(2, WT) }                                               \
        else { TILE_NR(3, WT) }                                                            \
    }

TILE_DISPATCH(PGD_F32)
TILE_DISPATCH(PGD_F16)
TILE_DISPATCH(PGD_BF16)

typedef void (*tile_fn)(int nt, int nr, const float *x, size_t ldx, const void *w, size_t ldw,
                        int k, float *y, size_t ldy, int accumulate);

static tile_fn tile_for(pgd_dtype wt) {
    return wt == PGD_F16 ? tile_PGD_F16 : wt == PGD_BF16 ? tile_PGD_BF16 : tile_PGD_F32;
}

/* Convert nr rows x kc columns of f16/bf16/q8_0/q4_0 W (row stride in
 * elements) to f32 rows of stride ldd. */
static void convert_panel(float *dst, size_t ldd, const void *w, pgd_dtype wt, size_t in, int nr,
                          int kc) {
    for (int r = 0; r < nr; r++) {
        if (pgd_dtype_is_quant(wt)) { /* panels start and end on block boundaries */
            pgd_avx2_dequant(dst + r * ldd, (const char *)w + r * pgd_dtype_bytes(wt, in), wt, (size_t)kc);
            continue;
        }
        const uint16_t *src = (const uint16_t *)w + r * in;
        if (wt == PGD_F16) pgd_avx2_f16_to_f32(dst + r * ldd, src, (size_t)kc);
        else pgd_avx2_bf16_to_f32(dst + r * ldd, src, (size_t)kc);
    }
}

/* y[t*ldy] = W . x_t for one W row and nt <= 3 tokens, two accumulators each. */
ALWAYS_INLINE void row_tokens(int nt, pgd_dtype wt, const float *x, size_t ldx, const void *w,
                              int k, float *y, size_t ldy) {
    __m256 a[NT][2];
#pragma GCC unroll 3
    for (int t = 0; t < NT; t++) a[t][0] = a[t][1] = _mm256_setzero_ps();
    int kk = 0;
    for (; kk + 16 <= k; kk += 16) {
        __m256 w0 = load_w8(wt, w, kk), w1 = load_w8(wt, w, kk + 8);
#pragma GCC unroll 3
        for (int t = 0; t < nt; t++) {
            a[t][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + t * ldx + kk), a[t][0]);
            a[t][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + t * ldx + kk + 8), a[t][1]);
        }
    }
    for (; kk + 8 <= k; kk += 8) {
        __m256 w0 = load_w8(wt, w, kk);
#pragma GCC unroll 3
        for (int t = 0; t < nt; t++)
            a[t][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + t * ldx + kk), a[t][0]);
    }
    float s[4];
    _mm_storeu_ps(s, hsum4(_mm256_add_ps(a[0][0], a[0][1]), _mm256_add_ps(a[1][0], a[1][1]),
                           _mm256_add_ps(a[2][0], a[2][1]), _mm256_setzero_ps()));
#pragma GCC unroll 3
    for (int t = 0; t < nt; t++) {
        float v = s[t];
        for (int j = kk; j < k; j++) v += load_w1(wt, w, j) * x[t * ldx + j];
        y[t * ldy] = v;
    }
}

/* rows_<dtype>(nt, ...): rows r0..r1-1 of W (row stride in) against nt tokens. */
#define ROWS_DISPATCH(WT)                                                                   \
    static void rows_##WT(int nt, const float *x, int in, const void *w, float *y,          \
                          size_t ldy, int r0, int r1) {                                     \
        for (int r = r0; r < r1; r++) {                                                     \
            const void *wr = (const char *)w + (size_t)r * in * pgd_dtype_size(WT);         \
            if (nt == 1) row_tokens(1, WT, x, (size_t)in, wr, in, y + r, ldy);              \
            else if (nt == 2) row_tokens(2, WT, x, (size_t)in, wr, in, y + r, ldy);         \
            else row_tokens(3, WT, x, (size_t)in, wr, in, y + r, ldy);                      \
        }                                                                                   \
    }

ROWS_DISPATCH(PGD_F32)
ROWS_DISPATCH(PGD_F16)
ROWS_DISPATCH(PGD_BF16)

/* ------------------------------------------------------- batched (n > 3) */

/* Pack tokens 0..nt-1 of x (row stride ldx), columns 0..kc-1, token-minor:
 * tile i (tokens 16i..16i+15, or 8 wide if it is the last tile and holds at
 * most 8 tokens) is stored at xp + 16*kc*i as kc rows of its width; tokens
 * past nt are zero. */
static void pack_x(float *xp, const float *x, size_t ldx, int nt, int kc) {
    for (int g = 0; g * 8 < nt; g++) { /* group of 8 tokens */
        int tw = (g / 2) * 16 + 8 >= nt && g % 2 == 0 ? 8 : 16; /* its tile's width */
        float *dst = xp + (size_t)16 * kc * (g / 2) + (g % 2) * 8;
        const float *src[8];
        for (int j = 0; j < 8; j++) src[j] = g * 8 + j < nt ? x + (size_t)(g * 8 + j) * ldx : NULL;
        int k = 0;
        for (; k + 8 <= kc; k += 8) {
            __m256 r[8];
            for (int j = 0; j < 8; j++)
                r[j] = src[j] ? _mm256_loadu_ps(src[j] + k) : _mm256_setzero_ps();
            pgd_avx2_transpose8_ps(r);
            for (int j = 0; j < 8; j++) _mm256_store_ps(dst + (size_t)(k + j) * tw, r[j]);
        }
        for (; k < kc; k++)
            for (int j = 0; j < 8; j++) dst[(size_t)k * tw + j] = src[j] ? src[j][k] : 0.0f;
    }
}

/* dst[0..nr-1] (=|+=) the first nr lanes of v; nr is a compile-time constant. */
ALWAYS_INLINE void store_row(float *dst, __m256 v, int nr, int accumulate) {
    if (nr == 8) {
        _mm256_storeu_ps(dst, accumulate ? _mm256_add_ps(v, _mm256_loadu_ps(dst)) : v);
        return;
    }
    __m128 lo = _mm256_castps256_ps128(v);
    int i = 0;
    if (nr >= 4) {
        _mm_storeu_ps(dst, accumulate ? _mm_add_ps(lo, _mm_loadu_ps(dst)) : lo);
        lo = _mm256_extractf128_ps(v, 1);
        i = 4;
    }
    if (nr - i >= 2) {
        __m128 d = lo;
        if (accumulate) d = _mm_add_ps(d, _mm_loadl_pi(_mm_setzero_ps(), (const __m64 *)(dst + i)));
        _mm_storel_pi((__m64 *)(dst + i), d);
        lo = _mm_movehl_ps(lo, lo);
        i += 2;
    }
    if (nr - i == 1) _mm_store_ss(dst + i, accumulate ? _mm_add_ss(lo, _mm_load_ss(dst + i)) : lo);
}

/* y[t*ldy + r] (=|+=) sum_k w[r*ldw + k] * xp[k*8*nv + t] for t < nt, r < nr:
 * an (8*nv tokens) x (nr rows) block of y in ymm accumulators, one lane per
 * (token, row). With ks = 1 each is summed over k in order, one FMA per k;
 * with ks = 2 (nv = 1 only) even and odd k go to two accumulators added at
 * the end (twice the independent FMA chains for few rows). pf, if not NULL:
 * prefetch row r of pf (stride ldpf) into L2, pfstep bytes per 16 k. nv, nr
 * and ks are compile-time constants at every call site. */
ALWAYS_INLINE void ukern(int nv, int nr, int ks, const float *xp, const float *w, size_t ldw,
                         int kc, float *y, size_t ldy, int nt, int accumulate, const char *pf,
                         size_t ldpf, size_t pfstep) {
    __m256 acc[2][RP1];
#pragma GCC unroll 2
    for (int v = 0; v < 2; v++)
#pragma GCC unroll 8
        for (int r = 0; r < RP1; r++) acc[v][r] = _mm256_setzero_ps();
#define UK_STEP(K)                                                                  \
    do {                                                                            \
        __m256 x0 = _mm256_load_ps(xp + (size_t)(K) * 8 * nv);                      \
        __m256 x1 = nv > 1 ? _mm256_load_ps(xp + (size_t)(K) * 16 + 8)              \
                    : ks > 1 ? _mm256_load_ps(xp + (size_t)(K) * 8 + 8)             \
                             : x0;                                                  \
        _Pragma("GCC unroll 8") for (int r = 0; r < nr; r++) {                     \
            __m256 b = _mm256_broadcast_ss(w + r * ldw + (K));                      \
            acc[0][r] = _mm256_fmadd_ps(x0, b, acc[0][r]);                          \
            if (nv > 1) acc[1][r] = _mm256_fmadd_ps(x1, b, acc[1][r]);              \
            if (ks > 1)                                                             \
                acc[1][r] = _mm256_fmadd_ps(                                        \
                    x1, _mm256_broadcast_ss(w + r * ldw + (K) + 1), acc[1][r]);     \
        }                                                                           \
    } while (0)
    int k = 0;
    if (pf) {
        for (; k + 16 <= kc; k += 16) {
#pragma GCC unroll 8
            for (int r = 0; r < nr; r++)
                _mm_prefetch(pf + r * ldpf + (size_t)(k / 16) * pfstep, _MM_HINT_T1);
#pragma GCC unroll 16
            for (int kk = k; kk < k + 16; kk += ks) UK_STEP(kk);
        }
    }
    for (; k + ks <= kc; k += ks) UK_STEP(k);
#undef UK_STEP
    if (ks > 1) {
#pragma GCC unroll 8
        for (int r = 0; r < nr; r++) {
            if (k < kc) /* odd kc: the last k */
                acc[0][r] = _mm256_fmadd_ps(_mm256_load_ps(xp + (size_t)k * 8),
                                            _mm256_broadcast_ss(w + r * ldw + k), acc[0][r]);
            acc[0][r] = _mm256_add_ps(acc[0][r], acc[1][r]);
        }
    }
    /* Transpose each block of 8 tokens x 8 rows so that a register holds one
     * token's consecutive outputs, and store those. */
#pragma GCC unroll 2
    for (int v = 0; v < nv; v++) {
        int tv = nt - 8 * v < 8 ? nt - 8 * v : 8;
#pragma GCC unroll 2
        for (int g = 0; g < nr; g += 8) {
            __m256 b[8];
#pragma GCC unroll 8
            for (int r = 0; r < 8; r++) b[r] = g + r < nr ? acc[v][g + r] : _mm256_setzero_ps();
            pgd_avx2_transpose8_ps(b);
#pragma GCC unroll 8
            for (int t = 0; t < 8; t++)
                if (t < tv)
                    store_row(y + (size_t)(8 * v + t) * ldy + g, b[t], nr - g < 8 ? nr - g : 8,
                              accumulate);
        }
    }
}

#define UK(NV, NR, KS) ukern(NV, NR, KS, xp, w, ldw, kc, y, ldy, nt, accumulate, pf, ldpf, pfstep)

/* ukern with run-time shape: nv = 2: nr 1..6; nv = 1, ks = 1: nr 1..8;
 * nv = 1, ks = 2: nr 1..6. */
static void ukern_any(int nv, int nr, int ks, const float *xp, const float *w, size_t ldw,
                      int kc, float *y, size_t ldy, int nt, int accumulate, const char *pf,
                      size_t ldpf, size_t pfstep) {
    if (nv == 2) {
        switch (nr) {
        case 1: UK(2, 1, 1); break;
        case 2: UK(2, 2, 1); break;
        case 3: UK(2, 3, 1); break;
        case 4: UK(2, 4, 1); break;
        case 5: UK(2, 5, 1); break;
        default: UK(2, 6, 1); break;
        }
    } else if (ks == 2) {
        switch (nr) {
        case 1: UK(1, 1, 2); break;
        case 2: UK(1, 2, 2); break;
        case 3: UK(1, 3, 2); break;
        case 4: UK(1, 4, 2); break;
        case 5: UK(1, 5, 2); break;
        default: UK(1, 6, 2); break;
        }
    } else {
        switch (nr) {
        case 1: UK(1, 1, 1); break;
        case 2: UK(1, 2, 1); break;
        case 3: UK(1, 3, 1); break;
        case 4: UK(1, 4, 1); break;
        case 5: UK(1, 5, 1); break;
        case 6: UK(1, 6, 1); break;
        case 7: UK(1, 7, 1); break;
        default: UK(1, 8, 1); break;
        }
    }
}

/* How the batched path blocks a problem: token blocks of nb tokens, K
 * panels of kc0 columns, row panels of rp rows (rp1 when a tile holds at
 * most 8 tokens); all depend only on n, in and wt. */
typedef struct plan {
    int nb, kc0, rp, rp1, copy, alias;
    size_t ldpf; /* bytes per W row */
} plan;

static plan make_plan(pgd_dtype wt, int n, int in) {
    plan p;
    p.ldpf = pgd_dtype_bytes(wt, (size_t)in);
    p.nb = n < NB ? (n + 7) / 8 * 8 : NB;
    int kc_max = XP_FLOATS / p.nb < KC_MAX ? XP_FLOATS / p.nb / 8 * 8 : KC_MAX;
    int kal = pgd_dtype_is_quant(wt) ? PGD_QBLOCK : 8; /* quantized: whole blocks */
    kc_max = kc_max / kal * kal;
    int npan = (in + kc_max - 1) / kc_max;
    p.kc0 = ((in + npan - 1) / npan + kal - 1) / kal * kal;
    p.copy = wt != PGD_F32;
    /* W rows read in place whose stride is a multiple of 2 KB fall into at
     * most two L1 sets: 8 of them would thrash the 8-way L1, 6 do not. */
    p.alias = !p.copy && p.ldpf % 2048 == 0;
    p.rp1 = p.alias ? RP : RP1;
    p.rp = p.nb <= 8 ? p.rp1 : RP;
    return p;
}

int pgd_avx2_matmul_one_pass(int n, int in) {
    plan p = make_plan(PGD_F32, n, in);
    return n <= NB && in <= p.kc0;
}

/* Rows r0..r1-1 of tokens t0..t0+nt-1 over K panel k0..k0+kc-1, whose x is
 * packed in xp; wbuf holds converted W panels. */
static void panel_rows(const plan *p, float *y, const void *w, pgd_dtype wt, int in, int out,
                       int t0, int nt, int k0, int kc, const float *xp, float *wbuf, int r0,
                       int r1) {
    size_t ldpf = p->ldpf, pfstep = pgd_dtype_bytes(wt, PGD_QBLOCK) / 2; /* bytes per 16 k */
    for (int r = r0; r < r1; r += p->rp) {
        int nr = r1 - r < p->rp ? r1 - r : p->rp;
        const char *src = (const char *)w + (size_t)r * ldpf + pgd_dtype_bytes(wt, (size_t)k0);
        const char *pf = src + (size_t)nr * ldpf; /* the next panel: into L2 meanwhile */
        const float *wp;
        size_t ldw;
        if (!p->copy) {
            wp = (const float *)src;
            ldw = (size_t)in;
        } else {
            ldw = (size_t)(kc + 7) / 8 * 8 + WPAD; /* rows stay 32-byte aligned */
            convert_panel(wbuf, ldw, src, wt, (size_t)in, nr, kc);
            wp = wbuf;
        }
        for (int t = 0; t < nt; t += 16) {
            int tn = nt - t < 16 ? nt - t : 16;
            int nv = tn > 8 ? 2 : 1;
            int rstep = nv == 2 ? RP : p->rp1;
            int ks = nv == 1 && p->rp <= RP ? 2 : 1; /* 1 x 6: twice the FMA chains */
            for (int rr = 0; rr < nr; rr += rstep)
                ukern_any(nv, nr - rr < rstep ? nr - rr : rstep, ks, xp + (size_t)t * kc,
                          wp + rr * ldw, ldw, kc, y + (size_t)(t0 + t) * out + r + rr,
                          (size_t)out, tn, k0 > 0, t == 0 ? pf + rr * ldpf : NULL, ldpf,
                          pfstep);
        }
    }
}

void pgd_avx2_matmul_batched(float *y, const float *x, const void *w, pgd_dtype wt, int n,
                             int in, int out, pgd_claim_fn claim, void *ctx) {
    float xp[XP_FLOATS] __attribute__((aligned(32)));
    float wbuf[RP1 * (KC_MAX + WPAD)] __attribute__((aligned(32)));
    plan p = make_plan(wt, n, in);
    int r0, r1;
    if (n <= NB && in <= p.kc0) { /* one token block, one K panel: pack x once */
        if (!claim(ctx, &r0, &r1)) return;
        pack_x(xp, x, (size_t)in, n, in);
        do panel_rows(&p, y, w, wt, in, out, 0, n, 0, in, xp, wbuf, r0, r1);
        while (claim(ctx, &r0, &r1));
        return;
    }
    while (claim(ctx, &r0, &r1)) {
        for (int t0 = 0; t0 < n; t0 += NB) {
            int nt = n - t0 < NB ? n - t0 : NB;
            for (int k0 = 0; k0 < in; k0 += p.kc0) {
                int kc = in - k0 < p.kc0 ? in - k0 : p.kc0;
                pack_x(xp, x + (size_t)t0 * in + k0, (size_t)in, nt, kc);
                panel_rows(&p, y, w, wt, in, out, t0, nt, k0, kc, xp, wbuf, r0, r1);
            }
        }
    }
}

void pgd_avx2_matmul_rows(float *y, const float *x, const void *w, pgd_dtype wt, int n, int in,
                          int out, int r0, int r1) {
    if (pgd_dtype_is_quant(wt)) {
        pgd_avx2_matmul_q_rows(y, x, w, wt, n, in, out, r0, r1);
        return;
    }
    if (n == 1 || in <= KC_MAX_WHOLE) { /* one stream per thread */
        if (wt == PGD_F32) rows_PGD_F32(n, x, in, w, y, (size_t)out, r0, r1);
        else if (wt == PGD_F16) rows_PGD_F16(n, x, in, w, y, (size_t)out, r0, r1);
        else rows_PGD_BF16(n, x, in, w, y, (size_t)out, r0, r1);
        return;
    }
    tile_fn f = tile_for(wt); /* long rows: 4 rows at a time, W streamed once */
    size_t es = pgd_dtype_size(wt);
    for (int r = r0; r < r1; r += MR) {
        int nr = r1 - r < MR ? r1 - r : MR;
        const void *wr = (const char *)w + (size_t)r * in * es;
        f(n, nr, x, (size_t)in, wr, (size_t)in, in, y + r, (size_t)out, 0);
    }
}
