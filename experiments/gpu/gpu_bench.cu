/* gpu_bench.cu - GPU benchmarks of the CUDA / ROCm backend, each set against
 * ceilings measured in the same run, written as a Markdown report.
 *
 *  1. Ceilings: device-to-device copy bandwidth (gpuMemcpyAsync of a 1 GiB
 *     buffer; bytes read + written per second, the STREAM "Copy" convention
 *     of `pagoda bench`) and the vendor BLAS bf16 GEMM rate (8192^3, f32
 *     accumulation; the own GEMM kernel where there is no BLAS).
 *  2. Paged decode attention (Llama-3-8B heads: 32 query / 8 KV heads of
 *     128, block size 16, f32 cache) at batch 1/32/256 and contexts
 *     512..8192: achieved bandwidth = K+V bytes read / time, as a share of
 *     the copy bandwidth (target: >= 70% at large batch). Every variant:
 *     auto (what the engine gets), single pass, split-K.
 *  3. Decode step of a random Llama-3-8B-shape model (bf16 weights) at
 *     batch 1/32/128 against the roofline (weight bytes + KV bytes read) /
 *     copy bandwidth.
 * Single source like the backend: built by nvcc as pagoda_gpu_bench and by
 * hipcc as pagoda_gpu_bench_rocm. Timings are wall clock around queued ops
 * and a sync (medians of repetitions), so launch overhead counts, as it
 * does for the engine. experiments/gpu/run.sh runs this and `pagoda run`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpu_blas.h"
#include "gpu_kernels.h"

extern "C" {
#include "pagoda/backend.h"
#include "pagoda/model.h"
}

using namespace PGD_GPU_NS;

/* Sizes; the "gpu-emu" build (the emulator, used to test this program on a
 * CPU) scales everything down. */
static int g_emu;
static size_t copy_bytes(void) { return g_emu ? (size_t)16 << 20 : (size_t)1 << 30; }

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#define CK(call)                                                                    \
    do {                                                                            \
        gpuError_t e_ = (call);                                                     \
        if (e_ != gpuSuccess) {                                                     \
            fprintf(stderr, "gpu_bench: %s: %s\n", #call, gpuGetErrorString(e_));   \
            exit(1);                                                                \
        }                                                                           \
    } while (0)
#define PK(call)                                                                    \
    do {                                                                            \
        if ((call) != PGD_OK) {                                                     \
            fprintf(stderr, "gpu_bench: %s: %s\n", #call, pgd_last_error());        \
            exit(1);                                                                \
        }                                                                           \
    } while (0)

/* ---- ceilings ---- */

static double copy_bandwidth(gpuStream_t st) {
    const size_t bytes = copy_bytes();
    void *a, *b;
    CK(gpuMalloc(&a, bytes));
    CK(gpuMalloc(&b, bytes));
    CK(gpuMemsetAsync(a, 1, bytes, st));
    CK(gpuMemsetAsync(b, 2, bytes, st));
    double t[9];
    for (int r = 0; r < 10; r++) {
        CK(gpuStreamSynchronize(st));
        double t0 = now();
        for (int i = 0; i < 4; i++) CK(gpuMemcpyAsync(b, a, bytes, gpuMemcpyDeviceToDevice, st));
        CK(gpuStreamSynchronize(st));
        if (r) t[r - 1] = (now() - t0) / 4; /* the first is a warm-up */
    }
    CK(gpuFree(a));
    CK(gpuFree(b));
    return 2.0 * bytes / median(t, 9);
}

/* FLOP/s of y(n, n) = x(n, n) W^T with bf16 operands (vendor BLAS) or f32 x
 * and bf16 W (own GEMM); *what names which. */
static double gemm_rate(gpuStream_t st, const char **what) {
    const int n = g_emu ? 128 : 8192;
    void *x, *w, *y;
    CK(gpuMalloc(&x, (size_t)n * n * 4));
    CK(gpuMalloc(&w, (size_t)n * n * 2));
    CK(gpuMalloc(&y, (size_t)n * n * 4));
    CK(gpuMemsetAsync(x, 0, (size_t)n * n * 4, st));
    CK(gpuMemsetAsync(w, 0, (size_t)n * n * 2, st));
    blas *bl = NULL;
    char msg[256];
    int have = blas_create(st, &bl, msg, sizeof msg) == 0;
    static char name[96];
    snprintf(name, sizeof name, "%s bf16 GEMM %d^3 (f32 accumulation)", have ? blas_describe(bl) : "own", n);
    *what = name;
    double t[5];
    for (int r = 0; r < 6; r++) {
        CK(gpuStreamSynchronize(st));
        double t0 = now();
        if (have) {
            if (blas_gemm(bl, (float *)y, x, w, PGD_BF16, n, n, n, msg, sizeof msg)) {
                fprintf(stderr, "gpu_bench: %s\n", msg);
                exit(1);
            }
        } else {
            CK(gemm(st, (float *)y, (const float *)x, w, PGD_BF16, n, n, n));
        }
        CK(gpuStreamSynchronize(st));
        if (r) t[r - 1] = now() - t0;
    }
    blas_destroy(bl);
    CK(gpuFree(x));
    CK(gpuFree(w));
    CK(gpuFree(y));
    return 2.0 * n * (double)n * n / median(t, 5);
}

/* ---- paged decode attention ---- */

typedef struct attn_result {
    double secs, bytes;
} attn_result;

static attn_result bench_attention(pgd_backend *be, int batch, int ctx, int reps) {
    const int nh = 32, nkv = 8, hd = 128, bs = 16;
    const int mb = (ctx + bs - 1) / bs, nblocks = batch * mb;
    const size_t cache = (size_t)nblocks * nkv * bs * hd * sizeof(float);
    float *kc, *vc, *q, *out;
    int32_t *meta;
    PK(pgd_backend_alloc(be, cache, (void **)&kc));
    PK(pgd_backend_alloc(be, cache, (void **)&vc));
    PK(pgd_backend_alloc(be, (size_t)batch * nh * hd * 4, (void **)&q));
    PK(pgd_backend_alloc(be, (size_t)batch * nh * hd * 4, (void **)&out));
    PK(pgd_backend_memset(be, kc, 0, cache));
    PK(pgd_backend_memset(be, vc, 0, cache));
    PK(pgd_backend_memset(be, q, 0, (size_t)batch * nh * hd * 4));
    /* metadata: query_start | seq_lens | block tables (blocks of a sequence interleaved
     * with the others', as the block pool hands them out) */
    size_t nmeta = (size_t)batch + 1 + batch + (size_t)batch * mb;
    int32_t *h = (int32_t *)malloc(nmeta * 4);
    for (int s = 0; s <= batch; s++) h[s] = s;
    for (int s = 0; s < batch; s++) h[batch + 1 + s] = ctx;
    for (int s = 0; s < batch; s++)
        for (int j = 0; j < mb; j++) h[2 * batch + 1 + (size_t)s * mb + j] = j * batch + s;
    PK(pgd_backend_alloc(be, nmeta * 4, (void **)&meta));
    PK(pgd_backend_upload(be, meta, h, nmeta * 4));
    pgd_paged_attn a = {};
    a.out = out, a.q = q, a.k_cache = kc, a.v_cache = vc, a.query_start = meta;
    a.seq_lens = meta + batch + 1, a.block_tables = meta + 2 * batch + 1;
    a.num_seqs = batch, a.num_tokens = batch, a.max_blocks_per_seq = mb, a.max_seq_len = ctx;
    a.n_heads = nh, a.n_kv_heads = nkv, a.head_dim = hd, a.block_size = bs, a.scale = 0.088388f;
    const int inner = 20;
    double t[64];
    for (int r = 0; r <= reps; r++) {
        PK(pgd_backend_sync(be));
        double t0 = now();
        for (int i = 0; i < inner; i++) PK(pgd_backend_paged_attention(be, &a));
        PK(pgd_backend_sync(be));
        if (r) t[r - 1] = (now() - t0) / inner;
    }
    attn_result res;
    res.secs = median(t, reps);
    res.bytes = 2.0 * batch * (double)ctx * nkv * hd * 4 + 2.0 * batch * nh * hd * 4;
    pgd_backend_free(be, kc), pgd_backend_free(be, vc), pgd_backend_free(be, q);
    pgd_backend_free(be, out), pgd_backend_free(be, meta);
    free(h);
    return res;
}

/* ---- decode step of a whole model ---- */

typedef struct step_result {
    double secs, roofline_secs, weight_bytes, kv_bytes;
} step_result;

static step_result bench_decode_step(pgd_model *m, pgd_kv_cache *kv, int batch, int ctx, int steps,
                                     double copy_bw) {
    const pgd_model_config *c = pgd_model_get_config(m);
    const int bs = pgd_kv_cache_block_size(kv), mb = (ctx + steps + bs - 1) / bs;
    int32_t *bt = (int32_t *)malloc(sizeof(int32_t) * (size_t)batch * mb);
    for (int s = 0; s < batch; s++)
        for (int j = 0; j < mb; j++) bt[(size_t)s * mb + j] = 1 + j * batch + s;
    float *logits = (float *)malloc(sizeof(float) * (size_t)batch * c->vocab_size);
    /* prefill the contexts, a few sequences per forward */
    const int per = 4096 / ctx > 0 ? 4096 / ctx : 1;
    int32_t *toks = (int32_t *)malloc(sizeof(int32_t) * (size_t)per * ctx);
    int32_t *qs = (int32_t *)malloc(sizeof(int32_t) * (size_t)(batch + 1));
    int32_t *lens = (int32_t *)malloc(sizeof(int32_t) * (size_t)batch);
    for (size_t i = 0; i < (size_t)per * ctx; i++) toks[i] = (int32_t)((i * 7919 + 13) % c->vocab_size);
    for (int s0 = 0; s0 < batch; s0 += per) {
        int n = batch - s0 < per ? batch - s0 : per;
        for (int i = 0; i <= n; i++) qs[i] = i * ctx;
        for (int i = 0; i < n; i++) lens[i] = ctx;
        pgd_batch b = {};
        b.num_seqs = n, b.num_tokens = n * ctx, b.tokens = toks, b.query_start = qs;
        b.seq_lens = lens, b.block_tables = bt + (size_t)s0 * mb, b.max_blocks_per_seq = mb;
        PK(pgd_model_forward(m, kv, &b, logits));
    }
    double *t = (double *)malloc(sizeof(double) * steps);
    for (int st = 0; st < steps; st++) {
        for (int s = 0; s < batch; s++) {
            toks[s] = (s * 31 + st * 17 + 5) % c->vocab_size;
            qs[s] = s;
            lens[s] = ctx + st + 1;
        }
        qs[batch] = batch;
        pgd_batch b = {};
        b.num_seqs = batch, b.num_tokens = batch, b.tokens = toks, b.query_start = qs;
        b.seq_lens = lens, b.block_tables = bt, b.max_blocks_per_seq = mb;
        double t0 = now();
        PK(pgd_model_forward(m, kv, &b, logits)); /* ends with the logits download: synchronous */
        t[st] = now() - t0;
    }
    step_result r;
    r.secs = median(t, steps);
    r.weight_bytes = (double)pgd_model_config_weight_bytes(c);
    r.kv_bytes = 2.0 * c->n_layers * (double)batch * (ctx + steps / 2) * c->n_kv_heads * c->head_dim * 4;
    r.roofline_secs = (r.weight_bytes + r.kv_bytes) / copy_bw;
    free(bt), free(logits), free(toks), free(qs), free(lens), free(t);
    return r;
}

/* ---- main ---- */

static pgd_backend *make_backend(const char *name, const char *attn) {
    if (attn) setenv("PAGODA_GPU_ATTN", attn, 1);
    else unsetenv("PAGODA_GPU_ATTN");
    pgd_backend_config bc = {};
    bc.name = name;
    pgd_backend *be = NULL;
    PK(pgd_backend_create(&bc, &be));
    unsetenv("PAGODA_GPU_ATTN");
    return be;
}

int main(int argc, char **argv) {
    const char *out_dir = "results/gpu", *model = "random:llama3-8b";
    int quick = 0, skip_model = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc) out_dir = argv[++i];
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--skip-model")) skip_model = 1;
        else {
            printf("usage: %s [--out results/gpu] [--model random:llama3-8b] [--quick] [--skip-model]\n"
                   "writes OUT/<device>.md (ceilings, paged decode attention, decode step)\n", argv[0]);
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    const char *vendor = PGD_GPU_VENDOR;
    g_emu = !strcmp(vendor, "gpu-emu");
    if (g_emu && !strcmp(model, "random:llama3-8b")) model = "random:stories260K";
    int count = 0;
    if (gpuGetDeviceCount(&count) != gpuSuccess || count == 0) {
        fprintf(stderr, "gpu_bench: no %s device\n", PGD_GPU_RUNTIME);
        return 77;
    }
    gpuDeviceProp prop;
    CK(gpuGetDeviceProperties(&prop, 0));
    char dev[256], path[1024];
    snprintf(dev, sizeof dev, "%s", prop.name);
    for (char *p = dev; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-'))
            *p = '_';
    snprintf(path, sizeof path, "%s/%s.md", out_dir, dev);
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", out_dir);
    if (system(cmd) != 0) return 1;
    FILE *md = fopen(path, "w");
    if (!md) {
        perror(path);
        return 1;
    }
    gpuStream_t st;
    CK(gpuStreamCreateNonBlocking(&st));
    int rt = 0, drv = 0;
    (void)gpuRuntimeGetVersion(&rt);
    (void)gpuDriverGetVersion(&drv);

    /* 1. ceilings */
    const double bw = copy_bandwidth(st);
    const char *gemm_what = "";
    const double flops = gemm_rate(st, &gemm_what);
    time_t tnow = time(NULL);
    fprintf(md, "# Pagoda GPU benchmarks: %s\n\n", prop.name);
    fprintf(md, "Run %s by `experiments/gpu/run.sh` (`%s`). Backend `%s`, %s runtime %d, driver %d, %d SMs, %.1f GiB.\n\n",
            strtok(ctime(&tnow), "\n"), argv[0], vendor, PGD_GPU_RUNTIME, rt, drv, prop.multiProcessorCount,
            prop.totalGlobalMem / 1073741824.0);
    fprintf(md, "## Ceilings measured in this run\n\n| ceiling | value |\n|---|---|\n");
    fprintf(md, "| device-to-device copy bandwidth (read + write) | %.0f GB/s |\n", bw / 1e9);
    fprintf(md, "| %s | %.1f TFLOP/s |\n\n", gemm_what, flops / 1e12);
    printf("copy bandwidth %.0f GB/s, %s %.1f TFLOP/s\n", bw / 1e9, gemm_what, flops / 1e12);
    fflush(md);

    /* 2. paged decode attention */
    static const int batches_full[] = {1, 32, 256}, ctxs_full[] = {512, 1024, 2048, 4096, 8192};
    static const int batches_emu[] = {1, 2, 4}, ctxs_emu[] = {64, 128, 160, 200, 300};
    const int *batches = g_emu ? batches_emu : batches_full, *ctxs = g_emu ? ctxs_emu : ctxs_full;
    static const char *modes[] = {NULL, "single", "split"};
    pgd_backend *bes[3];
    for (int m = 0; m < 3; m++) bes[m] = make_backend(vendor, modes[m]);
    fprintf(md, "## Paged decode attention\n\nLlama-3-8B heads (32 query, 8 KV heads of 128), block size 16, f32 KV "
                "cache, one query per sequence; bandwidth = K+V bytes read / time; %% = of the copy bandwidth "
                "above. Variants: auto (the engine's choice), single pass (vLLM v1-like), split-K (v2-like).\n\n");
    fprintf(md, "| batch | context | KV MiB | auto us | auto GB/s | auto %% | single GB/s | split GB/s |\n"
                "|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int bi = 0; bi < 3; bi++) {
        for (int ci = 0; ci < 5; ci++) {
            int b = batches[bi], c = ctxs[ci];
            if (quick && (ci > 2 || bi > 1)) continue;
            attn_result r[3];
            for (int m = 0; m < 3; m++) r[m] = bench_attention(bes[m], b, c, quick || g_emu ? 3 : 9);
            fprintf(md, "| %d | %d | %.0f | %.1f | %.0f | %.0f%% | %.0f | %.0f |\n", b, c, r[0].bytes / 1048576.0,
                    r[0].secs * 1e6, r[0].bytes / r[0].secs / 1e9, 100.0 * r[0].bytes / r[0].secs / bw,
                    r[1].bytes / r[1].secs / 1e9, r[2].bytes / r[2].secs / 1e9);
            printf("attention batch %d ctx %d: %.1f us, %.0f GB/s (%.0f%% of copy)\n", b, c, r[0].secs * 1e6,
                   r[0].bytes / r[0].secs / 1e9, 100.0 * r[0].bytes / r[0].secs / bw);
            fflush(md);
        }
    }
    fprintf(md, "\n");
    for (int m = 1; m < 3; m++) pgd_backend_destroy(bes[m]);

    /* 3. decode step of a Llama-3-8B-shape model */
    if (!skip_model) {
        pgd_backend *be = bes[0];
        pgd_model_load_opts mo = {};
        mo.random_dtype = PGD_BF16;
        pgd_model *m = NULL;
        double t0 = now();
        PK(pgd_model_load(model, &mo, be, &m));
        printf("loaded %s (bf16) in %.1f s\n", model, now() - t0);
        const pgd_model_config *c = pgd_model_get_config(m);
        static const int sbatch_full[] = {1, 32, 128}, sbatch_emu[] = {1, 2, 4};
        const int *sbatch = g_emu ? sbatch_emu : sbatch_full;
        const int ctx = g_emu ? 32 : 512, steps = quick || g_emu ? 4 : 12, bs = 16;
        const int maxb = g_emu ? 4 : quick ? 32 : 128;
        int mb = (ctx + steps + bs - 1) / bs;
        pgd_kv_cache *kv = NULL;
        PK(pgd_kv_cache_create(be, c, bs, maxb * mb + 1, &kv));
        fprintf(md, "## Decode step, %s (bf16 weights, f32 KV cache)\n\n`batch` sequences with a %d-token "
                    "context each decode together; median of %d steps; roofline = (weight bytes + KV bytes read) / "
                    "copy bandwidth.\n\n", model, ctx, steps);
        fprintf(md, "| batch | step ms | tokens/s | roofline ms | %% of roofline | weights GB | KV read GB |\n"
                    "|---:|---:|---:|---:|---:|---:|---:|\n");
        for (int i = 0; i < 3; i++) {
            int b = sbatch[i];
            if (b > maxb) continue;
            step_result r = bench_decode_step(m, kv, b, ctx, steps, bw);
            fprintf(md, "| %d | %.2f | %.0f | %.2f | %.0f%% | %.2f | %.2f |\n", b, r.secs * 1e3, b / r.secs,
                    r.roofline_secs * 1e3, 100.0 * r.roofline_secs / r.secs, r.weight_bytes / 1e9, r.kv_bytes / 1e9);
            printf("decode step batch %d: %.2f ms (%.0f tok/s), roofline %.2f ms (%.0f%%)\n", b, r.secs * 1e3,
                   b / r.secs, r.roofline_secs * 1e3, 100.0 * r.roofline_secs / r.secs);
            fflush(md);
        }
        fprintf(md, "\n");
        pgd_kv_cache_destroy(kv);
        pgd_model_destroy(m);
    }
    pgd_backend_destroy(bes[0]);
    CK(gpuStreamDestroy(st));
    fclose(md);
    printf("wrote %s\n", path);
    return 0;
}
