/* rocm_blas.cu - the ROCm backend's vendor GEMM slot (see
 * backends/cuda/gpu_blas.h). Debian's ROCm 5.2 packages have neither
 * rocBLAS nor hipBLAS, so there is none: blas_create() says so and the
 * backend runs every matmul on the project's own GEMM kernel
 * (kernels/gpu/gemm.cu). A hipBLAS implementation (hipblasGemmEx with
 * f32 accumulation) belongs here once a packaged hipBLAS is available. */
#include <stdio.h>

#include "gpu_blas.h"

namespace PGD_GPU_NS {

struct blas {
    int unused;
};

int blas_create(gpuStream_t stream, blas **out, char *msg, size_t msg_size) {
    *out = NULL;
    snprintf(msg, msg_size, "no rocBLAS/hipBLAS in this build");
    return -1;
}
void blas_destroy(blas *b) {}
const char *blas_describe(const blas *b) { return "none"; }
int blas_gemm(blas *b, float *y, const void *x, const void *w, pgd_dtype dt, int n, int in,
              int out, char *msg, size_t msg_size) {
    snprintf(msg, msg_size, "no rocBLAS/hipBLAS in this build");
    return -1;
}

} /* namespace PGD_GPU_NS */
