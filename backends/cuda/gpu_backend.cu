/* gpu_backend.cu - the GPU backend: device memory, pinned host memory, one
 * stream, and the ops table over the kernels of kernels/gpu. Written once
 * against kernels/gpu/compat.h: nvcc builds it as the "cuda" backend,
 * hipcc (backends/rocm/CMakeLists.txt compiles this same file) as "rocm",
 * the host compiler (kernels/gpu/emu) as "gpu-emu", the CPU emulator the CI
 * tests it on. The only per-vendor piece is the GEMM library (gpu_blas.h).
 *
 * Invariants:
 *  - Device memory comes from gpuMalloc (cudaMalloc / hipMalloc), never
 *    managed memory. Every op is queued on the backend's one non-blocking
 *    stream, in call order; download() and sync() wait for it.
 *  - Every runtime call and kernel launch is checked; an error becomes
 *    PGD_ERR_DEVICE (PGD_ERR_OOM for allocations) with a message naming the
 *    backend, the op and the failing call. Kernels run asynchronously, so a
 *    fault inside one surfaces at the next waiting call; PAGODA_GPU_SYNC=1
 *    waits after every op so that the message names the op that faulted.
 *  - upload() may return before the copy ran: on CUDA the pageable source
 *    has been staged by then (documented), on HIP the glue waits; a source
 *    in pinned memory from host_alloc() is read when the copy runs.
 *  - free() and host_free() wait for the stream first, so memory still used
 *    by queued work is never released under it. Scratch (workspace, RoPE
 *    table) grows by the same rule.
 *  - Matmul: the vendor BLAS when present (cuBLAS; f16/bf16 weights take
 *    the activations converted to the weight type, f32 accumulation), else
 *    or with PAGODA_GPU_GEMM=own the project's GEMM kernel (f32 activations,
 *    exact weight conversion). Attention variant: PAGODA_GPU_ATTN =
 *    auto|single|split (tests force each).
 *  - KV cache storage is f32 (kv_dtype f32), the layout of the CPU backend,
 *    so the engine, KV managers and swap path are shared unchanged. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_blas.h"
#include "gpu_kernels.h"

extern "C" {
#include "backend_impl.h"
}

namespace PGD_GPU_NS {

struct host_range {
    char *p;
    size_t bytes;
};

struct gpu_backend {
    pgd_backend base;
    int device, multi_device, num_sms;
    gpuStream_t stream;
    gpuDeviceProp prop;
    blas *bl;          /* NULL: own GEMM */
    int own_gemm;      /* PAGODA_GPU_GEMM=own (or no BLAS) */
    int attn_mode;     /* ATTN_AUTO / ATTN_SINGLE / ATTN_SPLIT */
    int sync_each_op;  /* PAGODA_GPU_SYNC=1 */
    void *ws;          /* device scratch: attention partitions, GEMM operands, sampling */
    size_t ws_bytes;
    float *rope_freq;  /* (rope_cap) inverse frequencies of (rope_hd, rope_theta) */
    int rope_cap, rope_hd;
    float rope_theta;
    host_range *pinned; /* host_alloc ranges */
    int n_pinned, cap_pinned;
};

static gpu_backend *G(pgd_backend *b) { return (gpu_backend *)b; }

static pgd_status dev_error(const char *op, const char *call, gpuError_t e) {
    return pgd_error(e == gpuErrorMemoryAllocation ? PGD_ERR_OOM : PGD_ERR_DEVICE,
                     PGD_GPU_VENDOR " backend: %s: %s failed: %s", op, call, gpuGetErrorString(e));
}

/* Check a runtime call or a launcher's status; the message names the op. */
#define GPU_TRY(op, call)                                          \
    do {                                                           \
        gpuError_t e_ = (call);                                    \
        if (e_ != gpuSuccess) return dev_error((op), #call, e_);   \
    } while (0)

static pgd_status bind(gpu_backend *g, const char *op) {
    if (g->multi_device) GPU_TRY(op, gpuSetDevice(g->device));
    return PGD_OK;
}

/* After an op's launches: in PAGODA_GPU_SYNC mode wait, so a fault names it. */
static pgd_status done(gpu_backend *g, const char *op) {
    if (g->sync_each_op) GPU_TRY(op, gpuStreamSynchronize(g->stream));
    return PGD_OK;
}

static pgd_status ensure_ws(gpu_backend *g, size_t bytes, const char *op) {
    if (bytes <= g->ws_bytes) return PGD_OK;
    size_t want = bytes + bytes / 4;
    if (g->ws) {
        GPU_TRY(op, gpuStreamSynchronize(g->stream)); /* queued work may still use it */
        GPU_TRY(op, gpuFree(g->ws));
        g->ws = NULL;
        g->ws_bytes = 0;
    }
    gpuError_t e = gpuMalloc(&g->ws, want);
    if (e != gpuSuccess) {
        g->ws = NULL;
        return pgd_error(PGD_ERR_OOM, PGD_GPU_VENDOR " backend: %s: cannot allocate %zu bytes of scratch: %s",
                         op, want, gpuGetErrorString(e));
    }
    g->ws_bytes = want;
    return PGD_OK;
}

/* ---- memory ---- */

static void gpu_destroy(pgd_backend *b) {
    gpu_backend *g = G(b);
    if (g->multi_device) (void)gpuSetDevice(g->device);
    if (g->stream) (void)gpuStreamSynchronize(g->stream);
    blas_destroy(g->bl);
    if (g->ws) (void)gpuFree(g->ws);
    if (g->rope_freq) (void)gpuFree(g->rope_freq);
    for (int i = 0; i < g->n_pinned; i++) (void)gpuFreeHost(g->pinned[i].p);
    free(g->pinned);
    if (g->stream) (void)gpuStreamDestroy(g->stream);
    free(g);
}

static pgd_status gpu_alloc(pgd_backend *b, size_t bytes, void **dptr) {
    gpu_backend *g = G(b);
    PGD_TRY(bind(g, "alloc"));
    gpuError_t e = gpuMalloc(dptr, bytes);
    if (e != gpuSuccess) {
        *dptr = NULL;
        size_t fr = 0, tot = 0;
        (void)gpuGetLastError(); /* clear the sticky allocation error */
        (void)gpuMemGetInfo(&fr, &tot);
        return pgd_error(e == gpuErrorMemoryAllocation ? PGD_ERR_OOM : PGD_ERR_DEVICE,
                         PGD_GPU_VENDOR " backend: alloc: cannot allocate %zu bytes (%.2f GiB; %.2f of %.2f GiB free): %s",
                         bytes, bytes / 1073741824.0, fr / 1073741824.0, tot / 1073741824.0,
                         gpuGetErrorString(e));
    }
    return PGD_OK;
}

static void gpu_free(pgd_backend *b, void *dptr) {
    gpu_backend *g = G(b);
    if (g->multi_device) (void)gpuSetDevice(g->device);
    (void)gpuStreamSynchronize(g->stream); /* queued work may still use it */
    (void)gpuFree(dptr);
}

static int is_pinned(const gpu_backend *g, const void *p) {
    const char *c = (const char *)p;
    for (int i = 0; i < g->n_pinned; i++)
        if (c >= g->pinned[i].p && c < g->pinned[i].p + g->pinned[i].bytes) return 1;
    return 0;
}

static pgd_status gpu_upload(pgd_backend *b, void *dst, const void *src, size_t bytes) {
    gpu_backend *g = G(b);
    PGD_TRY(bind(g, "upload"));
    GPU_TRY("upload", gpuMemcpyAsync(dst, src, bytes, gpuMemcpyHostToDevice, g->stream));
    if (!PGD_GPU_PAGEABLE_UPLOAD_RETURNS_AFTER_READ && !is_pinned(g, src))
        GPU_TRY("upload", gpuStreamSynchronize(g->stream));
    return done(g, "upload");
}

static pgd_status gpu_download(pgd_backend *b, void *dst, const void *src, size_t bytes) {
    gpu_backend *g = G(b);
    PGD_TRY(bind(g, "download"));
    GPU_TRY("download", gpuMemcpyAsync(dst, src, bytes, gpuMemcpyDeviceToHost, g->stream));
    GPU_TRY("download", gpuStreamSynchronize(g->stream));
    return PGD_OK;
}

static pgd_status gpu_memset(pgd_backend *b, void *dst, int value, size_t bytes) {
    gpu_backend *g = G(b);
    PGD_TRY(bind(g, "memset"));
    GPU_TRY("memset", gpuMemsetAsync(dst, value, bytes, g->stream));
    return done(g, "memset");
}

static pgd_status gpu_sync(pgd_backend *b) {
    gpu_backend *g = G(b);
    PGD_TRY(bind(g, "sync"));
    GPU_TRY("sync", gpuStreamSynchronize(g->stream));
    return PGD_OK;
}

/* Pinned (page-locked) host memory, up to PIN_MAX bytes per buffer; larger
 * requests, or ones the runtime refuses, get ordinary 64-byte-aligned memory
 * (swaps from it still work, staged by the runtime): pinning tens of GiB up
 * front would take seconds and may exhaust the host's lockable memory. */
static const size_t PIN_MAX = (size_t)16 << 30;

static pgd_status gpu_host_alloc(pgd_backend *b, size_t bytes, void **hptr) {
    gpu_backend *g = G(b);
    PGD_TRY(bind(g, "host_alloc"));
    *hptr = NULL;
    if (bytes <= PIN_MAX && g->n_pinned == g->cap_pinned) {
        int cap = g->cap_pinned ? 2 * g->cap_pinned : 8;
        host_range *r = (host_range *)realloc(g->pinned, sizeof *r * cap);
        if (!r) return pgd_error(PGD_ERR_OOM, PGD_GPU_VENDOR " backend: host_alloc: out of memory");
        g->pinned = r;
        g->cap_pinned = cap;
    }
    if (bytes <= PIN_MAX) {
        if (gpuHostAlloc(hptr, bytes) == gpuSuccess) {
            g->pinned[g->n_pinned++] = host_range{(char *)*hptr, bytes};
            return PGD_OK;
        }
        (void)gpuGetLastError();
        *hptr = NULL;
    }
    *hptr = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!*hptr)
        return pgd_error(PGD_ERR_OOM, PGD_GPU_VENDOR " backend: host_alloc: cannot allocate %zu bytes (%.2f GiB)",
                         bytes, bytes / 1073741824.0);
    return PGD_OK;
}

static void gpu_host_free(pgd_backend *b, void *hptr) {
    gpu_backend *g = G(b);
    if (g->multi_device) (void)gpuSetDevice(g->device);
    (void)gpuStreamSynchronize(g->stream); /* an upload from it may be queued */
    for (int i = 0; i < g->n_pinned; i++) {
        if (g->pinned[i].p == (char *)hptr) {
            g->pinned[i] = g->pinned[--g->n_pinned];
            (void)gpuFreeHost(hptr);
            return;
        }
    }
    free(hptr); /* the unpinned fallback */
}

/* ---- ops ---- */

static pgd_status gpu_embedding(pgd_backend *b, float *out, const void *table, pgd_dtype tt,
                                const int32_t *tokens, int n, int dim) {
    gpu_backend *g = G(b);
    PGD_TRY(bind(g, "embedding"));
    GPU_TRY("embedding", embedding(g->stream, out, table, tt, tokens, n, dim));
    return done(g, "embedding");
}

static pgd_status gpu_matmul(pgd_backend *b, float *y, const float *x, const void *w,
                             pgd_dtype wt, int n, int in, int out) {
    gpu_backend *g = G(b);
    PGD_TRY(bind(g, "matmul"));
    if (g->own_gemm) {
        GPU_TRY("matmul", gemm(g->stream, y, x, w, wt, n, in, out));
        return done(g, "matmul");
    }
    const void *xop = x;
    if (wt != PGD_F32) { /* BLAS operands share one type: x in the weights' type */
        PGD_TRY(ensure_ws(g, (size_t)n * in * 2, "matmul"));
        GPU_TRY("matmul", convert_from_f32(g->stream, g->ws, wt, x, (size_t)n * in));
        xop = g->ws;
    }
    char msg[256];
    if (blas_gemm(g->bl, y, xop, w, wt, n, in, out, msg, sizeof msg))
        return pgd_error(PGD_ERR_DEVICE, PGD_GPU_VENDOR " backend: matmul: %s", msg);
    GPU_TRY("matmul", gpuGetLastError());
    return done(g, "matmul");
}

static pgd_status gpu_rmsnorm(pgd_backend *b, float *y, const float *x, const float *w, int n,
                              int dim, float eps) {
    gpu_backend *g = G(b);
    PGD_TRY(bind(g, "rmsnorm"));
    GPU_TRY("rmsnorm", rmsnorm(g->stream, y, x, w, n, dim, eps));
    return done(g, "rmsnorm");
}

static pgd_status gpu_rope(pgd_backend *b, float *q, float *k, const int32_t *pos, int n,
                           int n_heads, int n_kv_heads, int head_dim, float theta, int stride) {
    gpu_backend *g = G(b);
    PGD_TRY(bind(g, "rope"));
    if (head_dim != g->rope_hd || theta != g->rope_theta) {
        /* the reference's frequencies, computed with the host's powf */
        int half = head_dim / 2;
        float *f = (float *)malloc(sizeof(float) * half);
        if (!f) return pgd_error(PGD_ERR_OOM, PGD_GPU_VENDOR " backend: rope: out of memory");
        for (int i = 0; i < head_dim; i += 2) f[i / 2] = 1.0f / powf(theta, (float)i / (float)head_dim);
        gpuError_t e = gpuStreamSynchronize(g->stream); /* queued ropes read the old table */
        if (e == gpuSuccess && half > g->rope_cap) {
            if (g->rope_freq) e = gpuFree(g->rope_freq);
            g->rope_freq = NULL;
            g->rope_cap = 0;
            if (e == gpuSuccess) e = gpuMalloc((void **)&g->rope_freq, sizeof(float) * half);
            if (e == gpuSuccess) g->rope_cap = half;
        }
        if (e == gpuSuccess)
            e = gpuMemcpyAsync(g->rope_freq, f, sizeof(float) * half, gpuMemcpyHostToDevice, g->stream);
        if (e == gpuSuccess) e = gpuStreamSynchronize(g->stream);
        free(f);
        if (e != gpuSuccess) {
            g->rope_hd = 0;
            return dev_error("rope", "uploading the frequency table", e);
        }
        g->rope_hd = head_dim;
        g->rope_theta = theta;
    }
    GPU_TRY("rope", rope(g->stream, q, k, pos, g->rope_freq, n, n_heads, n_kv_heads, head_dim, stride));
    return done(g, "rope");
}

static pgd_status gpu_silu_mul(pgd_backend *b, float *out, const float *gate_up, int n_rows,
                               int hidden) {
    gpu_backend *g = G(b);
    PGD_TRY(bind(g, "silu_mul"));
    GPU_TRY("silu_mul", silu_mul(g->stream, out, gate_up, n_rows, hidden));
    return done(g, "silu_mul");
}

static pgd_status gpu_add(pgd_backend *b, float *y, const float *x, size_t n) {
    gpu_backend *g = G(b);
    PGD_TRY(bind(g, "add"));
    GPU_TRY("add", add(g->stream, y, x, n));
    return done(g, "add");
}

static pgd_status gpu_kv_write(pgd_backend *b, float *k_cache, float *v_cache, const float *k,
                               const float *v, const int32_t *slot_mapping, int n,
                               int n_kv_heads, int head_dim, int block_size, int stride) {
    gpu_backend *g = G(b);
    PGD_TRY(bind(g, "kv_write"));
    GPU_TRY("kv_write", kv_write(g->stream, k_cache, v_cache, k, v, slot_mapping, n, n_kv_heads,
                                 head_dim, block_size, stride));
    return done(g, "kv_write");
}

static pgd_status gpu_paged_attention(pgd_backend *b, const pgd_paged_attn *a) {
    gpu_backend *g = G(b);
    PGD_TRY(bind(g, "paged_attention"));
    if (a->head_dim > ATTN_MAX_HEAD_DIM)
        return pgd_error(PGD_ERR_UNSUPPORTED,
                         PGD_GPU_VENDOR " backend: paged_attention: head_dim %d (at most %d)",
                         a->head_dim, (int)ATTN_MAX_HEAD_DIM);
    if (a->num_tokens <= 0) return PGD_OK;
    if (a->kv_dtype != PGD_F32)
        return pgd_error(PGD_ERR_UNSUPPORTED, PGD_GPU_VENDOR " backend: paged_attention: KV cache of %s (f32 only)",
                         pgd_dtype_name(a->kv_dtype));
    pgd_paged_attn p = *a;
    if (!p.q_stride) p.q_stride = p.n_heads * p.head_dim;
    attn_plan plan = attention_plan(&p, g->attn_mode, g->num_sms);
    if (plan.workspace) PGD_TRY(ensure_ws(g, plan.workspace, "paged_attention"));
    GPU_TRY("paged_attention", paged_attention(g->stream, &p, &plan, g->ws));
    return done(g, "paged_attention");
}

static pgd_status gpu_gather_rows(pgd_backend *b, float *out, const float *x,
                                  const int32_t *rows, int n, int dim) {
    gpu_backend *g = G(b);
    PGD_TRY(bind(g, "gather_rows"));
    GPU_TRY("gather_rows", gather_rows(g->stream, out, x, rows, n, dim));
    return done(g, "gather_rows");
}

static pgd_status gpu_copy_blocks(pgd_backend *b, float *cache, const int32_t *pairs,
                                  int n_pairs, size_t block_floats) {
    gpu_backend *g = G(b);
    PGD_TRY(bind(g, "copy_blocks"));
    GPU_TRY("copy_blocks", copy_blocks(g->stream, cache, pairs, n_pairs, block_floats));
    return done(g, "copy_blocks");
}

static pgd_status gpu_argmax(pgd_backend *b, int32_t *out, const float *logits, int n, int vocab) {
    gpu_backend *g = G(b);
    PGD_TRY(bind(g, "argmax"));
    GPU_TRY("argmax", argmax_rows(g->stream, out, logits, n, vocab));
    return done(g, "argmax");
}

static_assert(sizeof(sample_row) == sizeof(pgd_sample_row), "sample_row layout");

static pgd_status gpu_sample(pgd_backend *b, int32_t *out, const float *logits,
                             const pgd_sample_row *rows, int n, int vocab) {
    gpu_backend *g = G(b);
    PGD_TRY(bind(g, "sample"));
    PGD_TRY(ensure_ws(g, sizeof(float) * (size_t)n * vocab, "sample"));
    GPU_TRY("sample", sample_rows(g->stream, out, logits, (const sample_row *)rows, n, vocab,
                                  (float *)g->ws));
    return done(g, "sample");
}

static const struct pgd_backend_ops gpu_ops = {
    .name = PGD_GPU_VENDOR,
    .destroy = gpu_destroy,
    .alloc = gpu_alloc,
    .free = gpu_free,
    .host_alloc = gpu_host_alloc,
    .host_free = gpu_host_free,
    .control = NULL, /* no requests (pgd_backend_control) */
    .upload = gpu_upload,
    .download = gpu_download,
    .memset = gpu_memset,
    .sync = gpu_sync,
    .embedding = gpu_embedding,
    .matmul = gpu_matmul,
    .rmsnorm = gpu_rmsnorm,
    .rope = gpu_rope,
    .silu_mul = gpu_silu_mul,
    .add = gpu_add,
    .kv_write = gpu_kv_write,
    .paged_attention = gpu_paged_attention,
    .gather_rows = gpu_gather_rows,
    .copy_blocks = gpu_copy_blocks,
    .argmax = gpu_argmax,
    .sample = gpu_sample,
};

static int env_is(const char *name, const char *value) {
    const char *v = getenv(name);
    return v && !strcmp(v, value);
}

static pgd_status create(const pgd_backend_config *cfg, pgd_backend **out) {
    int count = 0;
    gpuError_t e = gpuGetDeviceCount(&count);
    if (e != gpuSuccess || count == 0) {
        (void)gpuGetLastError();
        return pgd_error(PGD_ERR_UNSUPPORTED, PGD_GPU_VENDOR " backend: no usable " PGD_GPU_RUNTIME
                         " device (%s)", e != gpuSuccess ? gpuGetErrorString(e) : "device count is 0");
    }
    if (cfg->device < 0 || cfg->device >= count)
        return pgd_error(PGD_ERR_INVALID, PGD_GPU_VENDOR " backend: device %d does not exist (%d device%s)",
                         cfg->device, count, count == 1 ? "" : "s");
    gpu_backend *g = (gpu_backend *)calloc(1, sizeof *g);
    if (!g) return pgd_error(PGD_ERR_OOM, PGD_GPU_VENDOR " backend: out of memory");
    g->base.ops = &gpu_ops;
    g->device = cfg->device;
    g->multi_device = count > 1;
    g->attn_mode = env_is("PAGODA_GPU_ATTN", "single") ? ATTN_SINGLE
                   : env_is("PAGODA_GPU_ATTN", "split") ? ATTN_SPLIT : ATTN_AUTO;
    g->sync_each_op = env_is("PAGODA_GPU_SYNC", "1");
    pgd_status st = PGD_OK;
    char msg[256] = "";
#define CREATE_TRY(call)                                           \
    do {                                                           \
        gpuError_t e_ = (call);                                    \
        if (e_ != gpuSuccess) {                                    \
            st = dev_error("create", #call, e_);                   \
            goto fail;                                             \
        }                                                          \
    } while (0)
    CREATE_TRY(gpuSetDevice(g->device));
    CREATE_TRY(gpuGetDeviceProperties(&g->prop, g->device));
    g->num_sms = g->prop.multiProcessorCount;
    CREATE_TRY(gpuStreamCreateNonBlocking(&g->stream));
#undef CREATE_TRY
    if (env_is("PAGODA_GPU_GEMM", "own") || blas_create(g->stream, &g->bl, msg, sizeof msg)) {
        g->bl = NULL;
        g->own_gemm = 1;
        if (env_is("PAGODA_GPU_GEMM", "blas")) {
            st = pgd_error(PGD_ERR_UNSUPPORTED, PGD_GPU_VENDOR " backend: PAGODA_GPU_GEMM=blas: %s", msg);
            goto fail;
        }
    }
    snprintf(g->base.description, sizeof g->base.description,
             PGD_GPU_VENDOR ": %.48s (cc %d.%d, %d SMs, %.1f GiB), %s", g->prop.name,
             g->prop.major, g->prop.minor, g->num_sms, g->prop.totalGlobalMem / 1073741824.0,
             g->own_gemm ? "own GEMM" : blas_describe(g->bl));
    *out = &g->base;
    return PGD_OK;
fail:
    gpu_destroy(&g->base);
    return st;
}

} /* namespace PGD_GPU_NS */

/* The registry entry: pgd_cuda_backend_create or pgd_rocm_backend_create. */
extern "C" pgd_status PGD_GPU_BACKEND_CREATE(const pgd_backend_config *cfg, pgd_backend **out) {
    return PGD_GPU_NS::create(cfg, out);
}
