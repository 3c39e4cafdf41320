/* cuda_blas.cu - cuBLAS GEMM for the CUDA backend (see gpu_blas.h).
 *
 * libcublas is opened with dlopen() at backend creation (first the
 * toolkit's directory seen at build time, PGD_CUBLAS_DIR, then the loader's
 * search path), never linked: loading cuBLAS maps hundreds of MB and costs
 * ~0.1 s per process, which every CPU-only run would otherwise pay.
 * GEMMs use cublasGemmEx: f32 operands with CUBLAS_COMPUTE_32F and the
 * default math mode (no TF32), or f16/bf16 operands with f32 accumulation
 * and f32 output. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include <cublas_api.h>

#include "gpu_blas.h"

#ifndef PGD_CUBLAS_DIR
#define PGD_CUBLAS_DIR ""
#endif
#define PGD_STR2(x) #x
#define PGD_STR(x) PGD_STR2(x)

namespace PGD_GPU_NS {

typedef cublasStatus_t (*create_fn)(cublasHandle_t *);
typedef cublasStatus_t (*destroy_fn)(cublasHandle_t);
typedef cublasStatus_t (*set_stream_fn)(cublasHandle_t, cudaStream_t);
typedef cublasStatus_t (*set_math_fn)(cublasHandle_t, cublasMath_t);
typedef cublasStatus_t (*get_version_fn)(cublasHandle_t, int *);
typedef const char *(*status_string_fn)(cublasStatus_t);
typedef cublasStatus_t (*gemm_ex_fn)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int,
                                     int, const void *, const void *, cudaDataType, int,
                                     const void *, cudaDataType, int, const void *, void *,
                                     cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);

struct blas {
    void *lib;
    cublasHandle_t h;
    destroy_fn destroy;
    status_string_fn status_string;
    gemm_ex_fn gemm_ex;
    char desc[64];
};

static const char *status_str(const blas *b, cublasStatus_t s) {
    return b->status_string ? b->status_string(s) : "cuBLAS error";
}

int blas_create(gpuStream_t stream, blas **out, char *msg, size_t msg_size) {
    *out = NULL;
    const char *soname = "libcublas.so." PGD_STR(CUBLAS_VER_MAJOR);
    char path[1024];
    void *lib = NULL;
    if (PGD_CUBLAS_DIR[0]) {
        snprintf(path, sizeof path, "%s/%s", PGD_CUBLAS_DIR, soname);
        lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    }
    if (!lib) lib = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(msg, msg_size, "cannot load %s: %s", soname, dlerror());
        return -1;
    }
    blas *b = (blas *)calloc(1, sizeof *b);
    if (!b) {
        dlclose(lib);
        snprintf(msg, msg_size, "out of memory");
        return -1;
    }
    b->lib = lib;
    create_fn create = (create_fn)dlsym(lib, "cublasCreate_v2");
    set_stream_fn set_stream = (set_stream_fn)dlsym(lib, "cublasSetStream_v2");
    set_math_fn set_math = (set_math_fn)dlsym(lib, "cublasSetMathMode");
    get_version_fn get_version = (get_version_fn)dlsym(lib, "cublasGetVersion_v2");
    b->destroy = (destroy_fn)dlsym(lib, "cublasDestroy_v2");
    b->status_string = (status_string_fn)dlsym(lib, "cublasGetStatusString");
    b->gemm_ex = (gemm_ex_fn)dlsym(lib, "cublasGemmEx");
    if (!create || !set_stream || !set_math || !b->destroy || !b->gemm_ex) {
        snprintf(msg, msg_size, "%s lacks a needed symbol (cublasCreate_v2, cublasGemmEx, ...)", soname);
        dlclose(lib);
        free(b);
        return -1;
    }
    cublasStatus_t s = create(&b->h);
    if (s == CUBLAS_STATUS_SUCCESS) s = set_stream(b->h, stream);
    if (s == CUBLAS_STATUS_SUCCESS) s = set_math(b->h, CUBLAS_DEFAULT_MATH); /* no TF32 */
    if (s != CUBLAS_STATUS_SUCCESS) {
        snprintf(msg, msg_size, "cuBLAS initialisation failed: %s", status_str(b, s));
        if (b->h) b->destroy(b->h);
        dlclose(lib);
        free(b);
        return -1;
    }
    int ver = 0;
    if (get_version) get_version(b->h, &ver);
    snprintf(b->desc, sizeof b->desc, "cuBLAS %d.%d.%d", ver / 10000, ver / 100 % 100, ver % 100);
    *out = b;
    return 0;
}

void blas_destroy(blas *b) {
    if (!b) return;
    if (b->h) b->destroy(b->h);
    /* the library stays mapped: unloading cuBLAS while the CUDA runtime
     * still holds its modules is not supported */
    free(b);
}

const char *blas_describe(const blas *b) { return b ? b->desc : "none"; }

int blas_gemm(blas *b, float *y, const void *x, const void *w, pgd_dtype dt, int n, int in,
              int out, char *msg, size_t msg_size) {
    const float alpha = 1.0f, beta = 0.0f;
    const cudaDataType t = dt == PGD_F32 ? CUDA_R_32F : dt == PGD_F16 ? CUDA_R_16F : CUDA_R_16BF;
    /* column-major: Y^T (out x n) = op(A) B with A = W viewed as (in x out), op = T,
     * B = X viewed as (in x n) */
    cublasStatus_t s = b->gemm_ex(b->h, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &alpha, w, t, in, x,
                                  t, in, &beta, y, CUDA_R_32F, out, CUBLAS_COMPUTE_32F,
                                  CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS) {
        snprintf(msg, msg_size, "cublasGemmEx(%s, n=%d in=%d out=%d): %s", pgd_dtype_name(dt), n, in,
                 out, status_str(b, s));
        return -1;
    }
    return 0;
}

} /* namespace PGD_GPU_NS */
