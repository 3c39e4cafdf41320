/* emu.h - the GPU emulator's side of compat.h (included from there when
 * PGD_GPU_EMU is defined): what CUDA/HIP provide, for the host compiler.
 *
 * Kernels run on the CPU, one block after another; inside a block every
 * GPU thread is a fiber (its own stack, cooperative switches), so that
 * __syncthreads(), PGD_SYNCWARP() and lane shuffles behave as barriers do
 * on a GPU: a fiber runs until it reaches one, and the barrier releases when
 * every live thread of the block (or of the 32-lane logical warp) is there.
 * A barrier that can never release (threads waiting at different barriers,
 * or a shuffle some lanes skip) aborts with a message: the emulator checks
 * what a GPU would silently get wrong or hang on. Launch limits are checked
 * too (block <= 1024 threads, grid y/z <= 65535, dynamic shared memory
 * <= 48 KiB): a bad configuration fails the launch as on a GPU.
 *
 * Device memory is host memory; copies and launches run to completion when
 * called (a stream is in order anyway). Math is the host's libm (a GPU's
 * expf/sinf may differ by an ulp or two: the emulator checks the kernels'
 * logic, not the device's rounding). All state is thread_local: emulated
 * backends may be used from several host threads at once. */
#ifndef PAGODA_GPU_EMU_H
#define PAGODA_GPU_EMU_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <functional>

extern "C" {
#include "pagoda/dtype.h"
}

#define PGD_GPU_NS pgd_gpuemu
#define PGD_GPU_BACKEND_CREATE pgd_gpuemu_backend_create
#define PGD_GPU_VENDOR "gpu-emu"
#define PGD_GPU_RUNTIME "emulated GPU"
#define PGD_GPU_PAGEABLE_UPLOAD_RETURNS_AFTER_READ 1

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static thread_local

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) float2 { float x, y; };
struct alignas(8) uint2 { unsigned x, y; };

extern thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

static inline unsigned __float_as_uint(float f) {
    unsigned u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float __uint_as_float(unsigned u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }

/* ---- runtime API ---- */
typedef int gpuError_t;
typedef void *gpuStream_t;
typedef void *gpuEvent_t;
typedef struct gpuDeviceProp {
    char name[256];
    int major, minor, multiProcessorCount;
    size_t totalGlobalMem;
} gpuDeviceProp;
enum {
    gpuSuccess = 0,
    gpuErrorInvalidValue = 1,
    gpuErrorMemoryAllocation = 2,
    gpuErrorInvalidConfiguration = 9,
};
enum { gpuMemcpyHostToDevice = 1, gpuMemcpyDeviceToHost = 2, gpuMemcpyDeviceToDevice = 3 };

const char *gpuGetErrorString(gpuError_t e);
gpuError_t gpuGetLastError(void);
gpuError_t gpuGetDeviceCount(int *n);
gpuError_t gpuSetDevice(int d);
gpuError_t gpuGetDeviceProperties(gpuDeviceProp *p, int d);
gpuError_t gpuMemGetInfo(size_t *free_bytes, size_t *total);
gpuError_t gpuMalloc(void **p, size_t n);
gpuError_t gpuFree(void *p);
gpuError_t gpuHostAlloc(void **p, size_t n);
gpuError_t gpuFreeHost(void *p);
gpuError_t gpuMemcpyAsync(void *dst, const void *src, size_t n, int kind, gpuStream_t s);
gpuError_t gpuMemcpy(void *dst, const void *src, size_t n, int kind);
gpuError_t gpuMemsetAsync(void *dst, int v, size_t n, gpuStream_t s);
gpuError_t gpuStreamCreateNonBlocking(gpuStream_t *s);
gpuError_t gpuStreamDestroy(gpuStream_t s);
gpuError_t gpuStreamSynchronize(gpuStream_t s);
gpuError_t gpuDeviceSynchronize(void);
gpuError_t gpuRuntimeGetVersion(int *v);
gpuError_t gpuDriverGetVersion(int *v);

/* ---- fibers, barriers, shuffles (emu.cpp) ---- */
namespace pgd_emu_rt {
/* Run fn once per thread of every block of the grid; returns a launch error
 * (also recorded for gpuGetLastError). */
gpuError_t launch(dim3 grid, dim3 block, size_t smem, const std::function<void()> &fn);
void sync_block(void);
void sync_warp(void);
void *dyn_smem(void);
/* This thread's exchange slot for its next shuffle (double-buffered). */
void *shfl_slot(int lane, int *buf);
void *shfl_peer(int lane, int buf);

template <typename T>
static inline T shfl_xor(T v, int off) {
    static_assert(sizeof(T) <= 8, "shuffle of a value wider than 8 bytes");
    const int lane = (int)(threadIdx.x % 32);
    int buf;
    memcpy(shfl_slot(lane, &buf), &v, sizeof(T));
    sync_warp();
    T r;
    memcpy(&r, shfl_peer(lane ^ off, buf), sizeof(T));
    return r;
}

/* PGD_LAUNCH(...)(args): binds the kernel, runs it when called with args. */
template <typename K>
struct launcher {
    dim3 grid, block;
    size_t smem;
    K *kernel;
    template <typename... A>
    void operator()(A... args) const {
        K *k = kernel;
        launch(grid, block, smem, [&]() { k(args...); });
    }
};
template <typename K>
static inline launcher<K> make_launcher(dim3 g, dim3 b, size_t s, K *k) {
    return launcher<K>{g, b, s, k};
}
} /* namespace pgd_emu_rt */

#define __syncthreads() pgd_emu_rt::sync_block()
#define PGD_SYNCWARP() pgd_emu_rt::sync_warp()
#define PGD_SHFL_XOR(v, off) pgd_emu_rt::shfl_xor((v), (off))
#define PGD_LAUNCH(grid, block, smem, stream, ...) \
    pgd_emu_rt::make_launcher(dim3(grid), dim3(block), (size_t)(smem), &__VA_ARGS__)
#define PGD_DYN_SMEM(type, name) type *name = (type *)pgd_emu_rt::dyn_smem()

static inline float pgd_f16_bits_to_f32(uint16_t h) { return pgd_f16_to_f32(h); }
static inline uint16_t pgd_f32_to_f16_bits(float f) { return pgd_f32_to_f16(f); }

#endif
