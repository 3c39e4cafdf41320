/* fast.c - the fast CPU kernels (pgd_cpu_*): run-time ISA dispatch, work
 * splitting across the thread pool, and the portable scalar paths used when
 * the CPU lacks AVX2/FMA/F16C (or PAGODA_CPU_ISA=scalar / pgd_cpu_set_isa).
 *
 * Invariants:
 *  - Only the *_avx2.c files contain intrinsics; they are reached through
 *    fast_impl.h and only when the running CPU has AVX2, FMA and F16C.
 *  - Each thread writes a disjoint part of the output (a slice or claimed
 *    chunks of the rows of y, (query row, head group) items of attention,
 *    byte ranges of blocks), and how an output element is computed never
 *    depends on which part it falls in, so results do not depend on the
 *    thread count: a NULL pool gives the same output.
 *  - Small problems run on the calling thread alone: waking workers costs
 *    more than it saves below a few tens of thousands of elements.
 *  - The batched quantized GEMM's x is packed once per call into the pool's
 *    shared scratch slot: the threads claim disjoint (tile, group) units,
 *    and each reads x only once every unit is packed (share_x); its W
 *    panels live in each thread's own slot (pgd_threadpool_scratch). */
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fast_impl.h"
#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define PGD_BUILD_AVX2 1
#else
#define PGD_BUILD_AVX2 0
#endif

#define PAR_MIN_ELEMS 32768 /* elementwise work below this runs single-threaded */

/* ---------------------------------------------------------------- dispatch */

static atomic_int g_isa = -1; /* -1 unknown, 0 scalar, 1 avx2 */

static int cpu_has_avx2(void) {
#if PGD_BUILD_AVX2
    /* cpuid rather than __builtin_cpu_supports: clang (the fuzz build) does
     * not know the "f16c" feature name. AVX2 also needs the OS to save the
     * YMM state (OSXSAVE, and XCR0 bits 1 and 2). */
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
    if (!fma || !osxsave || !avx || !f16c) return 0;
    unsigned xlo, xhi;
    __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    (void)xhi;
    if ((xlo & 6) != 6) return 0;
    if (__get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b >> 5) & 1; /* AVX2 */
#else
    return 0;
#endif
}

static int use_avx2(void) {
    int isa = atomic_load_explicit(&g_isa, memory_order_relaxed);
    if (isa < 0) {
        const char *env = getenv("PAGODA_CPU_ISA");
        isa = (env && strcmp(env, "scalar") == 0) ? 0 : cpu_has_avx2();
        atomic_store(&g_isa, isa);
    }
    return isa;
}

const char *pgd_cpu_isa(void) { return use_avx2() ? "avx2" : "scalar"; }

int pgd_cpu_set_isa(const char *name) {
    if (strcmp(name, "scalar") == 0) {
        atomic_store(&g_isa, 0);
        return 0;
    }
    if (strcmp(name, "avx2") == 0 && cpu_has_avx2()) {
        atomic_store(&g_isa, 1);
        return 0;
    }
    return -1;
}

/* Contiguous share [*b, *e) of thread i of nt over n items, boundaries
 * rounded to a multiple of align. */
static void split(int n, int i, int nt, int align, int *b, int *e) {
    int per = (n + nt - 1) / nt;
    per = (per + align - 1) / align * align;
    *b = i * per < n ? i * per : n;
    *e = *b + per < n ? *b + per : n;
}

static int nthreads_for(pgd_threadpool *tp, size_t work) {
    return work < PAR_MIN_ELEMS ? 1 : pgd_threadpool_size(tp);
}

/* ---------------------------------------------------------------- matmul */

typedef struct matmul_job {
    float *y;
    const float *x;
    const void *w;
    pgd_dtype wt;
    int n, in, out;
    int batched;     /* pgd_avx2_matmul_batched, rows claimed in chunks */
    int qint;        /* with it: pgd_avx2_matmul_q_batched (integer dot products) instead */
    int qgemm;       /* with it, n > PGD_Q_TILE_MAX_TOKENS: pgd_avx2_matmul_q_gemm (int16 panels) instead */
    int qdec;        /* n <= 3, W q8_0/q4_0: pgd_avx2_matmul_q_decode (x8: pgd_avx2_matmul_x8 up to
                        PGD_X8_MAX_TOKENS), rows claimed in guided chunks */
    int kq;          /* q4_k / q6_k W: pgd_avx2_matmul_k for any n, rows claimed in chunks */
    int x8;          /* q8_0/q4_0 W in the x8 layout (x8.c): qdec/qgemm/batched take its kernels */
    int chunk;       /* rows per claimed chunk (qdec: the most rows a guided chunk takes) */
    int nt;          /* threads running the job */
    atomic_int next; /* first unclaimed row */
    /* qgemm: buffers from the pool (NULL pool: allocated per call), and x
     * packed once into xsh by the threads together (NULL: each packs its own) */
    pgd_threadpool *tp;
    size_t scratch_bytes; /* each thread's pgd_threadpool_scratch slot */
    void *xsh;
    int xunits;       /* units of xsh (pgd_avx2_q_gemm_x_units) */
    atomic_int xnext; /* first unit no thread has claimed */
    atomic_int xdone; /* units packed */
} matmul_job;

/* Batched row chunks of one matmul are claimed first come, first served, so
 * a thread the host deschedules for a while does not hold up the others. */
#define MATMUL_CHUNK 96 /* rows per chunk when x is packed once (multiple of 6, 8) */

static float dot_scalar(const float *a, const float *b, int n) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* Rows r0..r1-1; W rows converted to f32 in chunks of 1024 when not f32. */
static void matmul_rows_scalar(const matmul_job *j, int r0, int r1) {
    enum { CH = 1024 };
    float buf[CH];
    for (int r = r0; r < r1; r++) {
        for (int k0 = 0; k0 < j->in; k0 += CH) {
            int kc = j->in - k0 < CH ? j->in - k0 : CH;
            const float *wr;
            if (j->wt == PGD_F32) {
                wr = (const float *)j->w + (size_t)r * j->in + k0;
            } else if (j->x8) { /* in % 256 == 0 and CH % 256 == 0: chunks are whole groups */
                pgd_cpu_x8_row_to_f32(buf, (const char *)j->w + pgd_dtype_bytes(j->wt, (size_t)r * j->in + k0), j->wt,
                                      kc);
                wr = buf;
            } else { /* quantized: in % 32 (k-quants: 256) == 0, so chunks are whole blocks */
                pgd_dtype_to_f32(buf, (const char *)j->w + pgd_dtype_bytes(j->wt, (size_t)r * j->in + k0),
                                 j->wt, (size_t)kc);
                wr = buf;
            }
            for (int t = 0; t < j->n; t++) {
                float v = dot_scalar(wr, j->x + (size_t)t * j->in + k0, kc);
                float *dst = j->y + (size_t)t * j->out + r;
                *dst = k0 ? *dst + v : v;
            }
        }
    }
}

#if PGD_BUILD_AVX2
static int claim_rows(void *ctx, int *r0, int *r1) {
    matmul_job *j = ctx;
    int r = atomic_fetch_add_explicit(&j->next, j->chunk, memory_order_relaxed);
    if (r >= j->out) return 0;
    *r0 = r;
    *r1 = j->out - r < j->chunk ? j->out : r + j->chunk;
    return 1;
}

/* Quantized decode (qdec): guided chunks, a share of the rows still
 * unclaimed (1 / (2 x threads)), 8 to `chunk` rows rounded to 8: large
 * chunks while much is left, small ones at the end, so the threads finish
 * within a few rows of each other. */
static int claim_rows_guided(void *ctx, int *r0, int *r1) {
    matmul_job *j = ctx;
    int r = atomic_load_explicit(&j->next, memory_order_relaxed), c;
    do {
        if (r >= j->out) return 0;
        c = (j->out - r) / (2 * j->nt);
        c = c <= 8 ? 8 : c >= j->chunk ? j->chunk : (c + 7) / 8 * 8;
    } while (!atomic_compare_exchange_weak_explicit(&j->next, &r, r + c, memory_order_relaxed, memory_order_relaxed));
    *r0 = r;
    *r1 = j->out - r < c ? j->out : r + c;
    return 1;
}
#endif

#if PGD_BUILD_AVX2
/* qgemm with shared x: pack the units this thread claims, then wait until
 * every unit is packed (the threads that joined pack them all; the caller
 * always joins). */
static void share_x(matmul_job *j) {
    int u;
    while ((u = atomic_fetch_add_explicit(&j->xnext, 1, memory_order_relaxed)) < j->xunits) {
        pgd_avx2_q_gemm_pack_x(j->xsh, j->wt, j->x, j->n, j->in, u, u + 1);
        atomic_fetch_add_explicit(&j->xdone, 1, memory_order_release);
    }
    for (unsigned k = 1; atomic_load_explicit(&j->xdone, memory_order_acquire) < j->xunits; k++) {
        if (k % 1024 == 0) sched_yield(); /* the packer was descheduled: let it run */
        else __builtin_ia32_pause();
    }
}

/* The GEMM (x8: W in an x8 layout) on thread i's scratch slot, x
 * shared when the job packed it once. */
static void qgemm_task(matmul_job *j, int i) {
    if (j->xsh) share_x(j);
    pgd_avx2_matmul_q_gemm_ex(j->y, j->x, j->w, j->wt, j->n, j->in, j->out, j->xsh ? claim_rows_guided : claim_rows, j,
                              j->x8, j->xsh, pgd_threadpool_scratch(j->tp, i, j->scratch_bytes));
}
#endif

static void matmul_task(void *arg, int i, int nt) {
    matmul_job *j = arg;
#if PGD_BUILD_AVX2
    if (j->x8 && (j->qgemm || j->qdec || j->batched)) {
        if (j->qgemm) qgemm_task(j, i);
        else if (j->qdec) pgd_avx2_matmul_x8(j->y, j->x, j->w, j->wt, j->n, j->in, j->out, claim_rows_guided, j);
        else
            pgd_avx2_matmul_dequant_batched(j->y, j->x, j->w, j->wt, j->n, j->in, j->out, claim_rows, j,
                                            pgd_avx2_x8_row_to_f32);
        return;
    }
    if (j->kq) {
        pgd_avx2_matmul_k(j->y, j->x, j->w, j->wt, j->n, j->in, j->out, claim_rows, j);
        return;
    }
    if (j->batched) {
        if (j->qgemm) qgemm_task(j, i);
        else if (j->qint) pgd_avx2_matmul_q_batched(j->y, j->x, j->w, j->wt, j->n, j->in, j->out, claim_rows, j);
        else pgd_avx2_matmul_batched(j->y, j->x, j->w, j->wt, j->n, j->in, j->out, claim_rows, j);
        return;
    }
    if (j->qdec) {
        pgd_avx2_matmul_q_decode(j->y, j->x, j->w, j->wt, j->n, j->in, j->out, claim_rows_guided, j);
        return;
    }
#endif
    int r0, r1;
    split(j->out, i, nt, 4, &r0, &r1);
    if (r0 >= r1) return;
#if PGD_BUILD_AVX2
    if (use_avx2()) {
        pgd_avx2_matmul_rows(j->y, j->x, j->w, j->wt, j->n, j->in, j->out, r0, r1);
        return;
    }
#endif
    matmul_rows_scalar(j, r0, r1);
}

/* Most tokens a batched quantized matmul runs with integer dot products
 * (more: dequantized panels and the f32 micro-kernel). */
static atomic_int g_q_int_max = PGD_Q_INT_MAX_TOKENS_DEFAULT;

int pgd_cpu_q_int_max_tokens(void) { return atomic_load(&g_q_int_max); }
void pgd_cpu_set_q_int_max_tokens(int n) { atomic_store(&g_q_int_max, n < 0 ? 0 : n); }

int pgd_cpu_matmul_uses_int8(pgd_dtype wt, int n) {
    if (pgd_dtype_is_kquant(wt)) /* matmul_k_avx2.c; larger q4_k batches: matmul_qgemm_avx2.c */
        return use_avx2() && (n <= PGD_K_INT_MAX_TOKENS || (wt == PGD_Q4_K && n <= atomic_load(&g_q_int_max)));
    if (!pgd_dtype_is_quant(wt) || !use_avx2()) return 0;
    return n <= 3 || n <= atomic_load(&g_q_int_max);
}

pgd_cpu_probe pgd_cpu_matmul_probe(pgd_dtype wt, int n) {
    if (!pgd_cpu_matmul_uses_int8(wt, n)) return PGD_PROBE_F32_FMA;
#if PGD_BUILD_AVX2
    /* 4-bit weights: every integer path (decode, tiles, GEMM) could run at
     * one vpmaddubsw per 32 multiply-adds at best, so that bounds them all */
    if (wt == PGD_Q4_0 || wt == PGD_Q4_K) return PGD_PROBE_U8_MADDUBS;
    /* 8-bit weights: every path needs a vpmaddubsw and a vpmaddwd (or two
     * vpmaddwd) per 32 multiply-adds, the int16 probe's rate at best (the x8
     * kernel's 3 slots came within 3% of the int8 dot probe: no bound) */
    if (wt == PGD_Q8_0) return PGD_PROBE_INT16_MADD;
#endif
    return PGD_PROBE_INT8_DOT;
}

static void matmul_run(pgd_threadpool *tp, float *y, const float *x, const void *w, pgd_dtype wt, int n, int in,
                       int out, int x8) {
    matmul_job j = {.y = y, .x = x, .w = w, .wt = wt, .n = n, .in = in, .out = out, .x8 = x8};
    atomic_init(&j.next, 0);
    int nt = (size_t)n * in * out < PAR_MIN_ELEMS ? 1 : pgd_threadpool_size(tp);
    j.nt = nt;
#if PGD_BUILD_AVX2
    j.batched = n > 3 && use_avx2();
    j.qint = j.batched && pgd_cpu_matmul_uses_int8(wt, n);
    j.qgemm = j.qint && (pgd_dtype_is_quant(wt) ? n > (x8 ? PGD_X8_MAX_TOKENS(wt) : PGD_Q_TILE_MAX_TOKENS)
                                                : n > PGD_K_INT_MAX_TOKENS);
    j.kq = pgd_dtype_is_kquant(wt) && use_avx2() && !j.qgemm;
    j.qdec = !j.kq && !j.batched && use_avx2() && (wt == PGD_Q8_0 || wt == PGD_Q4_0);
    if (x8) /* x8 layouts: their own kernel for n <= PGD_X8_MAX_TOKENS (integer), rows claimed as qdec's */
        j.qdec = use_avx2() && !j.qgemm && (!j.batched || j.qint);
    if (j.kq) { /* chunks of whole 8-row groups, about 4 per thread */
        int per = (out + 4 * nt - 1) / (4 * nt);
        j.chunk = per > MATMUL_CHUNK ? MATMUL_CHUNK : (per + 7) / 8 * 8;
    } else if (j.qdec) { /* guided chunks of at most 256 rows: claimed as threads get to them */
        j.chunk = 256;
    } else if (j.qgemm) { /* x packed once per call: chunks of whole 8-row groups, at most 64 rows */
        int per = (out + 2 * nt - 1) / (2 * nt);
        j.chunk = per > 64 ? 64 : (per + 7) / 8 * 8;
        /* with x shared, a chunk costs no packing of its own: guided chunks
         * (64 rows while much is left, down to 8 at the end), so the threads
         * finish within a few rows of each other (a batch-32 step's caller
         * waited 1-2% of its samples for the last 64-row chunk) */
        /* x packed once into the pool's shared slot by all the threads, and
         * each thread's W panels in its own slot: nothing allocated per call */
        size_t xb = nt > 1 ? pgd_avx2_q_gemm_shared_x_bytes(wt, n, in) : 0;
        j.tp = tp;
        j.xsh = xb ? pgd_threadpool_scratch(tp, pgd_threadpool_size(tp), xb) : NULL;
        j.xunits = j.xsh ? pgd_avx2_q_gemm_x_units(n, in) : 0;
        atomic_init(&j.xnext, 0);
        atomic_init(&j.xdone, 0);
        j.scratch_bytes = pgd_avx2_q_gemm_scratch_bytes(wt, n, in, j.xsh != NULL);
        if (j.xsh) j.chunk = 64;
    } else if (j.qint) { /* x quantized once per thread: small chunks cost nothing extra */
        int per = (out + nt - 1) / nt;
        j.chunk = per > MATMUL_CHUNK ? MATMUL_CHUNK : (per + 1) / 2 * 2;
    } else if (j.batched) {
        /* x packed once: small chunks; else about one chunk per thread */
        int per = (out + nt - 1) / nt;
        j.chunk = pgd_avx2_matmul_one_pass(n, in) && per > MATMUL_CHUNK ? MATMUL_CHUNK
                                                                        : (per + 7) / 8 * 8;
    }
#endif
    if (nt == 1) matmul_task(&j, 0, 1);
    else if (j.qdec || j.kq ||
             j.batched) /* every AVX2 path but n <= 3 f32 claims its rows: a late worker is not waited for */
        pgd_threadpool_run_claimed(tp, matmul_task, &j);
    else pgd_threadpool_run(tp, matmul_task, &j);
}

static atomic_int g_x8 = 1;
int pgd_cpu_x8_enabled(void) { return atomic_load(&g_x8) && use_avx2(); }
void pgd_cpu_set_x8(int on) { atomic_store(&g_x8, on != 0); }

void pgd_cpu_matmul_x8(pgd_threadpool *tp, float *y, const float *x, const void *w, pgd_dtype wt, int n, int in,
                       int out) {
    matmul_run(tp, y, x, w, wt, n, in, out, 1);
}

void pgd_cpu_embedding_x8(float *out, const void *table, pgd_dtype wt, const int32_t *tokens, int n, int dim) {
    for (int i = 0; i < n; i++)
        pgd_cpu_x8_row_to_f32(out + (size_t)i * dim, (const char *)table + pgd_dtype_bytes(wt, (size_t)tokens[i] * dim),
                              wt, dim);
}

void pgd_cpu_matmul(pgd_threadpool *tp, float *y, const float *x, const void *w, pgd_dtype wt,
                    int n, int in, int out) {
    matmul_run(tp, y, x, w, wt, n, in, out, 0);
#ifdef PAGODA_PERF_SLOW_MATMUL
    /* the perf gate's A/B self-test (tests/perf/ab_trials.sh) only: a known
     * slowdown, the first PAGODA_PERF_SLOW_MATMUL percent of the output
     * columns computed a second time (into a scratch buffer) */
    int extra = (int)((long)out * PAGODA_PERF_SLOW_MATMUL / 100);
    float *scratch = extra > 0 ? malloc(sizeof(float) * (size_t)n * (size_t)extra) : NULL;
    if (scratch) {
        matmul_run(tp, scratch, x, w, wt, n, in, extra, 0);
        free(scratch);
    }
#endif
}

/* ------------------------------------------------------------- attention */

typedef struct attn_job {
    const pgd_paged_attn *a;
    atomic_int next; /* next unclaimed (row, head group) item */
    int row0, items, grain;
    int groups; /* head groups per row: group g is heads [g*H/groups, (g+1)*H/groups) */
} attn_job;

/* Row `row` (hd values) of a cache as f32: in place for f32, else
 * converted into buf (hd <= 512: the forward pass's head dims are far
 * below). */
static const float *cache_row(const void *cache, pgd_dtype kt, size_t row, int hd, float *buf) {
    if (kt == PGD_F32) return (const float *)cache + row * hd;
    pgd_kv_row_to_f32(buf, (const char *)cache + row * pgd_kv_row_bytes(kt, hd), kt, hd);
    return buf;
}

/* Scalar version of pgd_avx2_attention_heads for one head: same chunked
 * online softmax. */
static void attention_one_scalar(const pgd_paged_attn *a, int seq, int row, int pos, int h) {
    int hd = a->head_dim, bs = a->block_size, kvh = h / (a->n_heads / a->n_kv_heads);
    size_t qst = a->q_stride ? (size_t)a->q_stride : (size_t)a->n_heads * hd;
    const float *q = a->q + (size_t)row * qst + (size_t)h * hd;
    float *o = a->out + ((size_t)row * a->n_heads + h) * hd;
    const int32_t *bt = a->block_tables + (size_t)seq * a->max_blocks_per_seq;
    float sc[PGD_ATTN_CHUNK];
    float m = -INFINITY, l = 0.0f;
    memset(o, 0, (size_t)hd * sizeof(float));
    float kbuf[512];
    for (int c0 = 0; c0 <= pos; c0 += PGD_ATTN_CHUNK) {
        int c1 = pos + 1 - c0 < PGD_ATTN_CHUNK ? pos + 1 : c0 + PGD_ATTN_CHUNK;
        float cm = -INFINITY;
        for (int p = c0; p < c1; p++) {
            size_t off = ((size_t)bt[p / bs] * a->n_kv_heads + kvh) * bs + p % bs;
            float s = dot_scalar(q, cache_row(a->k_cache, a->kv_dtype, off, hd, kbuf), hd) * a->scale;
            sc[p - c0] = s;
            cm = s > cm ? s : cm;
        }
        if (cm > m) {
            if (c0 > 0) {
                float corr = expf(m - cm);
                for (int d = 0; d < hd; d++) o[d] *= corr;
                l *= corr;
            }
            m = cm;
        }
        for (int p = c0; p < c1; p++) {
            float e = expf(sc[p - c0] - m);
            l += e;
            const float *v =
                cache_row(a->v_cache, a->kv_dtype, ((size_t)bt[p / bs] * a->n_kv_heads + kvh) * bs + p % bs, hd, kbuf);
            for (int d = 0; d < hd; d++) o[d] += e * v[d];
        }
    }
    float inv = 1.0f / l;
    for (int d = 0; d < hd; d++) o[d] *= inv;
}

/* Sequence owning query row r: the last s with query_start[s] <= r. */
static int seq_of_row(const pgd_paged_attn *a, int r) {
    int lo = 0, hi = a->num_seqs - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (a->query_start[mid] <= r) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

static void attention_heads(const pgd_paged_attn *a, int seq, int row, int pos, int h0, int h1) {
#if PGD_BUILD_AVX2
    if (use_avx2()) {
        pgd_avx2_attention_heads(a, seq, row, pos, h0, h1);
        return;
    }
#endif
    for (int h = h0; h < h1; h++) attention_one_scalar(a, seq, row, pos, h);
}

static void attn_task(void *arg, int ithread, int nt) {
    attn_job *j = arg;
    const pgd_paged_attn *a = j->a;
    for (;;) {
        int i0 = atomic_fetch_add_explicit(&j->next, j->grain, memory_order_relaxed);
        if (i0 >= j->items) break;
        int i1 = i0 + j->grain < j->items ? i0 + j->grain : j->items;
        for (int i = i0; i < i1; i++) {
            int row = j->row0 + i / j->groups, g = i % j->groups;
            int s = seq_of_row(a, row);
            int nq = a->query_start[s + 1] - a->query_start[s];
            int pos = a->seq_lens[s] - nq + (row - a->query_start[s]);
            attention_heads(a, s, row, pos, g * a->n_heads / j->groups,
                            (g + 1) * a->n_heads / j->groups);
        }
    }
}

void pgd_cpu_paged_attention(pgd_threadpool *tp, const pgd_paged_attn *a) {
    if (a->num_seqs <= 0) return;
    attn_job j;
    j.a = a;
    j.row0 = a->query_start[0];
    int rows = a->query_start[a->num_seqs] - j.row0;
    if (rows <= 0 || a->n_heads <= 0) return;
    int nt = pgd_threadpool_size(tp);
    /* Items are (row, group of consecutive heads): whole rows when there are
     * enough of them (one sequential pass over each cache block), else the
     * heads split into groups so that every thread gets several items. */
    int groups = (nt * 8 + rows - 1) / rows;
    if (groups > a->n_heads) groups = a->n_heads;
    if (groups < (a->n_heads + PGD_ATTN_MAX_HEADS - 1) / PGD_ATTN_MAX_HEADS)
        groups = (a->n_heads + PGD_ATTN_MAX_HEADS - 1) / PGD_ATTN_MAX_HEADS;
    j.groups = groups;
    j.items = rows * groups;
    j.grain = j.items / (nt * 16) > 1 ? j.items / (nt * 16) : 1;
    atomic_init(&j.next, 0);
    if (j.items == 1) attn_task(&j, 0, 1);
    else pgd_threadpool_run_claimed(tp, attn_task, &j); /* items are claimed: a late worker is not waited for */
}

/* ----------------------------------------------------------- elementwise */

typedef struct ew_job {
    float *y;
    const float *x;
    const float *w;
    const void *table;
    pgd_dtype tt;
    const int32_t *idx; /* tokens, positions or slots */
    float *k;
    void *k_cache, *v_cache;
    pgd_dtype kt;
    const float *kc, *vc;
    size_t n;
    int rows, dim, n_heads, n_kv_heads, head_dim, block_size;
    size_t ld, ld2; /* row strides in floats (rope: of q and k; kv_write: of k and v) */
    float f;        /* eps or theta */
} ew_job;

static void rmsnorm_task(void *arg, int i, int nt) {
    const ew_job *j = arg;
    int r0, r1;
    split(j->rows, i, nt, 1, &r0, &r1);
    for (int r = r0; r < r1; r++) {
        float *y = j->y + (size_t)r * j->dim;
        const float *x = j->x + (size_t)r * j->dim;
#if PGD_BUILD_AVX2
        if (use_avx2()) {
            pgd_avx2_rmsnorm_row(y, x, j->w, j->dim, j->f);
            continue;
        }
#endif
        float ss = dot_scalar(x, x, j->dim);
        ss /= j->dim;
        ss += j->f;
        ss = 1.0f / sqrtf(ss);
        for (int d = 0; d < j->dim; d++) y[d] = j->w[d] * (ss * x[d]);
    }
}

void pgd_cpu_rmsnorm(pgd_threadpool *tp, float *y, const float *x, const float *w, int n, int dim,
                     float eps) {
    ew_job j = {.y = y, .x = x, .w = w, .rows = n, .dim = dim, .f = eps};
    if (nthreads_for(tp, (size_t)n * dim) == 1) rmsnorm_task(&j, 0, 1);
    else pgd_threadpool_run(tp, rmsnorm_task, &j);
}

static void rope_task(void *arg, int i, int nt) {
    const ew_job *j = arg;
    int r0, r1, hd = j->head_dim;
    split(j->rows, i, nt, 1, &r0, &r1);
    /* the reference's formulas exactly: freq once per pair (the same value
     * for every token), cos and sin once per (token, pair) */
    float freqs[256];
    int nf = hd / 2 <= 256 ? (hd + 1) / 2 : 0;
    for (int d = 0; d < 2 * nf; d += 2) freqs[d / 2] = 1.0f / powf(j->f, (float)d / (float)hd);
    for (int t = r0; t < r1; t++) {
        float *q = j->y + (size_t)t * j->ld, *k = j->k + (size_t)t * j->ld2;
        for (int d = 0; d < hd; d += 2) {
            float freq = d / 2 < nf ? freqs[d / 2] : 1.0f / powf(j->f, (float)d / (float)hd);
            float val = (float)j->idx[t] * freq;
            float fcr = cosf(val), fci = sinf(val);
            for (int h = 0; h < j->n_heads; h++) {
                float *v = q + (size_t)h * hd + d, v0 = v[0], v1 = v[1];
                v[0] = v0 * fcr - v1 * fci;
                v[1] = v0 * fci + v1 * fcr;
            }
            for (int h = 0; h < j->n_kv_heads; h++) {
                float *v = k + (size_t)h * hd + d, v0 = v[0], v1 = v[1];
                v[0] = v0 * fcr - v1 * fci;
                v[1] = v0 * fci + v1 * fcr;
            }
        }
    }
}

void pgd_cpu_rope(pgd_threadpool *tp, float *q, float *k, const int32_t *pos, int n, int n_heads,
                  int n_kv_heads, int head_dim, float theta, int stride) {
    ew_job j = {.y = q, .k = k, .idx = pos, .rows = n, .n_heads = n_heads,
                .n_kv_heads = n_kv_heads, .head_dim = head_dim, .f = theta,
                .ld = stride ? (size_t)stride : (size_t)n_heads * head_dim,
                .ld2 = stride ? (size_t)stride : (size_t)n_kv_heads * head_dim};
    if (nthreads_for(tp, (size_t)n * (n_heads + n_kv_heads) * head_dim) == 1) rope_task(&j, 0, 1);
    else pgd_threadpool_run(tp, rope_task, &j);
}

/* Element range [*b, *e) of thread i, aligned to 16 floats (64 bytes). */
static void split_elems(size_t n, int i, int nt, size_t *b, size_t *e) {
    size_t per = ((n + (size_t)nt - 1) / (size_t)nt + 15) / 16 * 16;
    *b = (size_t)i * per < n ? (size_t)i * per : n;
    *e = *b + per < n ? *b + per : n;
}

/* Output elements [b, e) of the (rows, dim) out, row segment by row
 * segment (gate and up of row r at x + 2*r*dim and x + (2*r + 1)*dim). */
static void silu_task(void *arg, int i, int nt) {
    const ew_job *j = arg;
    size_t b, e, h = (size_t)j->dim;
    split_elems(j->n, i, nt, &b, &e);
    while (b < e) {
        size_t r = b / h, c = b % h, len = h - c < e - b ? h - c : e - b;
        const float *gate = j->x + 2 * r * h + c, *up = gate + h;
        float *out = j->y + b;
#if PGD_BUILD_AVX2
        if (use_avx2()) {
            pgd_avx2_silu_mul(out, gate, up, len);
            b += len;
            continue;
        }
#endif
        for (size_t k = 0; k < len; k++) { /* the reference's formula */
            float val = gate[k];
            val *= (1.0f / (1.0f + expf(-val)));
            out[k] = val * up[k];
        }
        b += len;
    }
}

void pgd_cpu_silu_mul(pgd_threadpool *tp, float *out, const float *gate_up, int n_rows, int hidden) {
    ew_job j = {.y = out, .x = gate_up, .rows = n_rows, .dim = hidden, .n = (size_t)n_rows * hidden};
    if (nthreads_for(tp, j.n) == 1) silu_task(&j, 0, 1);
    else pgd_threadpool_run(tp, silu_task, &j);
}

static void add_task(void *arg, int i, int nt) {
    const ew_job *j = arg;
    size_t b, e;
    split_elems(j->n, i, nt, &b, &e);
#if PGD_BUILD_AVX2
    if (use_avx2()) {
        pgd_avx2_add(j->y + b, j->x + b, e - b);
        return;
    }
#endif
    for (size_t k = b; k < e; k++) j->y[k] += j->x[k];
}

void pgd_cpu_add(pgd_threadpool *tp, float *y, const float *x, size_t n) {
    ew_job j = {.y = y, .x = x, .n = n};
    if (nthreads_for(tp, n) == 1) add_task(&j, 0, 1);
    else pgd_threadpool_run(tp, add_task, &j);
}

static void embedding_task(void *arg, int i, int nt) {
    const ew_job *j = arg;
    int r0, r1;
    size_t dim = (size_t)j->dim;
    split(j->rows, i, nt, 1, &r0, &r1);
    for (int r = r0; r < r1; r++) {
        float *dst = j->y + (size_t)r * dim;
        size_t base = (size_t)j->idx[r] * dim;
        if (j->tt == PGD_F32) {
            memcpy(dst, (const float *)j->table + base, dim * sizeof(float));
            continue;
        }
        if (pgd_dtype_is_blocked(j->tt)) { /* a row is whole blocks: dim % 32 (k-quants: 256) == 0 */
            pgd_dtype_to_f32(dst, (const char *)j->table + pgd_dtype_bytes(j->tt, base), j->tt, dim);
            continue;
        }
        const uint16_t *src = (const uint16_t *)j->table + base;
#if PGD_BUILD_AVX2
        if (use_avx2()) {
            if (j->tt == PGD_F16) pgd_avx2_f16_to_f32(dst, src, dim);
            else pgd_avx2_bf16_to_f32(dst, src, dim);
            continue;
        }
#endif
        for (size_t d = 0; d < dim; d++)
            dst[d] = j->tt == PGD_F16 ? pgd_f16_to_f32(src[d]) : pgd_bf16_to_f32(src[d]);
    }
}

void pgd_cpu_embedding(pgd_threadpool *tp, float *out, const void *table, pgd_dtype tt,
                       const int32_t *tokens, int n, int dim) {
    ew_job j = {.y = out, .table = table, .tt = tt, .idx = tokens, .rows = n, .dim = dim};
    if (nthreads_for(tp, (size_t)n * dim) == 1) embedding_task(&j, 0, 1);
    else pgd_threadpool_run(tp, embedding_task, &j);
}

static void kv_write_task(void *arg, int i, int nt) {
    const ew_job *j = arg;
    int r0, r1, hd = j->head_dim, bs = j->block_size, nkv = j->n_kv_heads;
    split(j->rows, i, nt, 1, &r0, &r1);
    for (int t = r0; t < r1; t++) {
        int32_t slot = j->idx[t];
        if (slot < 0) continue;
        size_t blk = (size_t)slot / bs, off = (size_t)slot % bs;
        for (int h = 0; h < nkv; h++) {
            size_t dst = (blk * nkv + h) * bs + off, src = (size_t)t * j->ld + (size_t)h * hd; /* dst: row */
            size_t rb = pgd_kv_row_bytes(j->kt, hd);
            char *kd = (char *)j->k_cache + dst * rb, *vd = (char *)j->v_cache + dst * rb;
            if (j->kt == PGD_F32) {
                memcpy(kd, j->kc + src, (size_t)hd * sizeof(float));
                memcpy(vd, j->vc + src, (size_t)hd * sizeof(float));
                continue;
            }
#if PGD_BUILD_AVX2
            if (use_avx2() && j->kt == PGD_F16) {
                pgd_avx2_f32_to_f16((uint16_t *)kd, j->kc + src, (size_t)hd);
                pgd_avx2_f32_to_f16((uint16_t *)vd, j->vc + src, (size_t)hd);
                continue;
            }
#endif
            pgd_kv_row_from_f32(kd, j->kt, j->kc + src, hd);
            pgd_kv_row_from_f32(vd, j->kt, j->vc + src, hd);
        }
    }
}

void pgd_cpu_kv_write(pgd_threadpool *tp, void *k_cache, void *v_cache, pgd_dtype kt, const float *k,
                      const float *v, const int32_t *slot_mapping, int n, int n_kv_heads,
                      int head_dim, int block_size, int stride) {
    ew_job j = {.k_cache = k_cache, .v_cache = v_cache, .kt = kt, .kc = k, .vc = v, .idx = slot_mapping,
                .rows = n, .n_kv_heads = n_kv_heads, .head_dim = head_dim,
                .block_size = block_size,
                .ld = stride ? (size_t)stride : (size_t)n_kv_heads * head_dim};
    if (nthreads_for(tp, (size_t)n * n_kv_heads * head_dim * 2) == 1) kv_write_task(&j, 0, 1);
    else pgd_threadpool_run(tp, kv_write_task, &j);
}

/* Each thread copies the same float range [b, e) of every pair, in pair
 * order, so chained pairs (a block both written and later read) behave as
 * the sequential reference does. */
static void copy_blocks_task(void *arg, int i, int nt) {
    const ew_job *j = arg;
    size_t b, e;
    split_elems(j->n, i, nt, &b, &e);
    if (b >= e) return;
    for (int p = 0; p < j->rows; p++) {
        const float *src = j->y + (size_t)j->idx[2 * p] * j->n;
        float *dst = j->y + (size_t)j->idx[2 * p + 1] * j->n;
        if (src != dst) memcpy(dst + b, src + b, (e - b) * sizeof(float));
    }
}

void pgd_cpu_copy_blocks(pgd_threadpool *tp, float *cache, const int32_t *pairs, int n_pairs,
                         size_t block_floats) {
    ew_job j = {.y = cache, .idx = pairs, .rows = n_pairs, .n = block_floats};
    if (nthreads_for(tp, (size_t)n_pairs * block_floats) == 1) copy_blocks_task(&j, 0, 1);
    else pgd_threadpool_run(tp, copy_blocks_task, &j);
}

/* ------------------------------------------------------------- bandwidth */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct copy_job {
    char *dst;
    const char *src;
    size_t bytes;
} copy_job;

static void copy_slice(void *arg, int ith, int nth) {
    const copy_job *j = arg;
    size_t per = (j->bytes / (size_t)nth + 63) & ~(size_t)63;
    size_t lo = per * (size_t)ith, hi = lo + per < j->bytes ? lo + per : j->bytes;
    if (lo < hi) memcpy(j->dst + lo, j->src + lo, hi - lo);
}

double pgd_cpu_measure_copy_bandwidth(pgd_threadpool *tp, size_t bytes, int reps) {
    if (bytes == 0) return 0.0;
    if (reps < 1) reps = 1;
    char *src = pgd_cpu_alloc_pages(bytes), *dst = pgd_cpu_alloc_pages(bytes);
    double *bw = malloc((size_t)reps * sizeof(double));
    double med = 0.0;
    if (!src || !dst || !bw) goto done;
    memset(src, 1, bytes); /* fault the pages in before timing */
    memset(dst, 2, bytes);
    copy_job job = {dst, src, bytes};
    pgd_threadpool_run(tp, copy_slice, &job);
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        pgd_threadpool_run(tp, copy_slice, &job);
        double dt = now_s() - t0;
        /* STREAM convention: a copy moves its bytes twice (read + write) */
        bw[r] = dt > 0 ? 2.0 * (double)bytes / dt : 0.0;
        src[r % bytes] ^= dst[(r * 4099) % bytes]; /* keep the copies observable */
    }
    qsort(bw, (size_t)reps, sizeof(double), cmp_double);
    med = reps % 2 ? bw[reps / 2] : 0.5 * (bw[reps / 2 - 1] + bw[reps / 2]);
done:
    free(bw);
    free(dst);
    free(src);
    return med;
}

typedef struct read_job {
    const char *src;
    size_t bytes;
    _Atomic uint64_t sink;
} read_job;

static void read_slice(void *arg, int ith, int nth) {
    read_job *j = arg;
    size_t per = (j->bytes / (size_t)nth + 63) & ~(size_t)63;
    size_t lo = per * (size_t)ith, hi = lo + per < j->bytes ? lo + per : j->bytes;
    if (lo >= hi) return;
    uint64_t s = 0;
#if PGD_BUILD_AVX2
    if (use_avx2()) s = pgd_avx2_read_sum(j->src + lo, hi - lo);
    else
#endif
    {
        const uint64_t *v = (const uint64_t *)(j->src + lo);
        uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        size_t n = (hi - lo) / 32;
        for (size_t i = 0; i < n; i++, v += 4) a0 += v[0], a1 += v[1], a2 += v[2], a3 += v[3];
        s = a0 + a1 + a2 + a3;
    }
    atomic_fetch_add_explicit(&j->sink, s, memory_order_relaxed);
}

double pgd_cpu_measure_read_bandwidth(pgd_threadpool *tp, size_t bytes, int reps) {
    if (bytes == 0) return 0.0;
    if (reps < 1) reps = 1;
    char *src = pgd_cpu_alloc_pages(bytes);
    double *bw = malloc((size_t)reps * sizeof(double));
    double med = 0.0;
    if (!src || !bw) goto done;
    memset(src, 1, bytes); /* fault the pages in before timing */
    read_job job = {.src = src, .bytes = bytes};
    atomic_init(&job.sink, 0);
    pgd_threadpool_run(tp, read_slice, &job);
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        pgd_threadpool_run(tp, read_slice, &job);
        double dt = now_s() - t0;
        bw[r] = dt > 0 ? (double)bytes / dt : 0.0; /* bytes read, nothing written */
    }
    if (atomic_load(&job.sink) == 42) src[0] = 0; /* the sums are used */
    qsort(bw, (size_t)reps, sizeof(double), cmp_double);
    med = reps % 2 ? bw[reps / 2] : 0.5 * (bw[reps / 2 - 1] + bw[reps / 2]);
done:
    free(bw);
    free(src);
    return med;
}

/* ------------------------------------------------------------- compute */

typedef struct probe_job {
    pgd_cpu_probe kind;
    long iters;
    double rate[64]; /* per thread: operations per second of that thread's CPU time */
} probe_job;

static double thread_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void probe_slice(void *arg, int ith, int nth) {
    probe_job *j = arg;
    (void)nth;
#if PGD_BUILD_AVX2
    double c0 = thread_cpu_s();
    double ops = j->kind == PGD_PROBE_F32_FMA      ? pgd_avx2_probe_fma(j->iters)
                 : j->kind == PGD_PROBE_INT8_DOT   ? pgd_avx2_probe_int8(j->iters)
                 : j->kind == PGD_PROBE_INT16_MADD ? pgd_avx2_probe_madd16(j->iters)
                                                   : pgd_avx2_probe_maddubs(j->iters);
    double dt = thread_cpu_s() - c0;
    if (ith < 64) j->rate[ith] = dt > 0 ? ops / dt : 0;
#else
    (void)j, (void)ith;
#endif
}

double pgd_cpu_measure_compute(pgd_threadpool *tp, pgd_cpu_probe kind, int reps) {
#if PGD_BUILD_AVX2
    if (!use_avx2()) return 0.0;
    if (reps < 1) reps = 1;
    double *rate = malloc((size_t)reps * sizeof(double)), med = 0.0;
    if (!rate) return 0.0;
    probe_job job = {.kind = kind, .iters = 1000};
    /* calibrate: iterations for about 20 ms of one thread's CPU time */
    for (;;) {
        double t0 = thread_cpu_s();
        probe_slice(&job, 0, 1);
        double dt = thread_cpu_s() - t0;
        if (dt > 0.005 || job.iters > (1L << 40)) {
            job.iters = (long)((double)job.iters * 0.02 / (dt > 0 ? dt : 1e-9)) + 1;
            break;
        }
        job.iters *= 4;
    }
    for (int r = 0; r < reps; r++) {
        memset(job.rate, 0, sizeof job.rate);
        pgd_threadpool_run(tp, probe_slice, &job);
        rate[r] = 0;
        for (int i = 0; i < 64; i++) rate[r] += job.rate[i];
    }
    qsort(rate, (size_t)reps, sizeof(double), cmp_double);
    med = reps % 2 ? rate[reps / 2] : 0.5 * (rate[reps / 2 - 1] + rate[reps / 2]);
    free(rate);
    return med;
#else
    (void)tp, (void)kind, (void)reps;
    return 0.0;
#endif
}

/* ------------------------------------------------------------- decode matmul alone */

double pgd_cpu_measure_matmul_batch(pgd_dtype wt, int n, int in, int out, int reps) {
    if (n <= 0 || in <= 0 || out <= 0 || (pgd_dtype_is_blocked(wt) && in % pgd_dtype_block(wt))) return 0.0;
    if (reps < 1) reps = 1;
    size_t mb = pgd_dtype_bytes(wt, (size_t)in * out);
    char *w = pgd_cpu_alloc_pages(mb); /* as the backend allocates weights */
    float *f = malloc(sizeof(float) * (size_t)in * out), *x = malloc(sizeof(float) * (size_t)n * in),
          *y = malloc(sizeof(float) * (size_t)n * out);
    double best = 0.0;
    if (!w || !f || !x || !y) goto done;
    uint32_t s = 12345;
    for (size_t i = 0; i < (size_t)in * out; i++)
        s = s * 1664525u + 1013904223u, f[i] = (float)(s >> 8) / (1 << 23) - 1;
    for (size_t i = 0; i < (size_t)n * in; i++) x[i] = f[i % ((size_t)in * out)];
    pgd_dtype_from_f32(w, wt, f, (size_t)in * out);
    int x8 = pgd_cpu_x8_enabled() && pgd_cpu_x8_pack(w, wt, (size_t)out, in); /* as the backend */
    for (int r = 0; r <= reps; r++) {
        double t0 = thread_cpu_s();
        if (x8) pgd_cpu_matmul_x8(NULL, y, x, w, wt, n, in, out);
        else pgd_cpu_matmul(NULL, y, x, w, wt, n, in, out);
        double dt = thread_cpu_s() - t0, rate = dt > 0 ? (double)n * in * out / dt : 0.0;
        if (r > 0 && rate > best) best = rate; /* pass 0 warms up */
    }
done:
    free(w), free(f), free(x), free(y);
    return best;
}

double pgd_cpu_measure_matmul(pgd_threadpool *tp, pgd_dtype wt, int in, int out, size_t bytes, int reps) {
    if (in <= 0 || out <= 0 || (pgd_dtype_is_quant(wt) && in % PGD_QBLOCK)) return 0.0;
    if (reps < 1) reps = 1;
    size_t mb = pgd_dtype_bytes(wt, (size_t)in * out), nm = bytes / mb ? bytes / mb : 1;
    char *w = pgd_cpu_alloc_pages(mb * nm); /* as the backend allocates weights */
    float *f = malloc(sizeof(float) * (size_t)in * out), *x = malloc(sizeof(float) * (size_t)in),
          *y = malloc(sizeof(float) * (size_t)out);
    double best = 0.0;
    if (!w || !f || !x || !y) goto done;
    uint32_t s = 12345; /* weights in [-1, 1), x in [-1, 1): values do not change the speed */
    for (size_t i = 0; i < (size_t)in * out; i++)
        s = s * 1664525u + 1013904223u, f[i] = (float)(s >> 8) / (1 << 23) - 1;
    for (int i = 0; i < in; i++) x[i] = f[i];
    pgd_dtype_from_f32(w, wt, f, (size_t)in * out);
    int x8 = pgd_cpu_x8_enabled() && pgd_cpu_x8_pack(w, wt, (size_t)out, in); /* as the backend */
    for (size_t m = 1; m < nm; m++) memcpy(w + m * mb, w, mb); /* faults every page in */
    for (int r = 0; r <= reps; r++) {
        double t0 = tp ? now_s() : thread_cpu_s();
        for (size_t m = 0; m < nm; m++)
            if (x8) pgd_cpu_matmul_x8(tp, y, x, w + m * mb, wt, 1, in, out);
            else pgd_cpu_matmul(tp, y, x, w + m * mb, wt, 1, in, out);
        double dt = (tp ? now_s() : thread_cpu_s()) - t0, rate = dt > 0 ? (double)(mb * nm) / dt : 0.0;
        if (r > 0 && rate > best) best = rate; /* pass 0 warms up */
    }
done:
    free(w), free(f), free(x), free(y);
    return best;
}
