/* gpu_blas.h - the vendor GEMM behind the GPU backend's matmul, one
 * implementation per backend directory: backends/cuda/cuda_blas.cu (cuBLAS,
 * loaded with dlopen when the backend is created, so programs that never
 * use the GPU do not pay cuBLAS's start-up cost) and
 * backends/rocm/rocm_blas.cu (none in Debian's ROCm: blas_create() fails
 * and the backend uses the project's own GEMM kernel, kernels/gpu/gemm.cu).
 * y(n, out) = x(n, in) W^T, W (out, in) row-major; column-major BLAS sees
 * this as Y^T = W^T' X^T. */
#ifndef PAGODA_GPU_BLAS_H
#define PAGODA_GPU_BLAS_H

#include "gpu_kernels.h"

namespace PGD_GPU_NS {

typedef struct blas blas;

/* 0 and *out on success; else -1 with a reason in msg (the caller falls back
 * to the own GEMM). Work is queued on `stream`. */
int blas_create(gpuStream_t stream, blas **out, char *msg, size_t msg_size);
void blas_destroy(blas *b);
/* e.g. "cuBLAS 13.0.2" */
const char *blas_describe(const blas *b);
/* y (f32) = x W^T with x and W both of dtype dt (f32: f32 compute without
 * TF32; f16/bf16: f32 accumulation). 0 on success, else -1 and msg. */
int blas_gemm(blas *b, float *y, const void *x, const void *w, pgd_dtype dt, int n, int in,
              int out, char *msg, size_t msg_size);

} /* namespace PGD_GPU_NS */

#endif
