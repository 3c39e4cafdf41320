/* compat.h - the one file with vendor #ifs: CUDA (nvcc), HIP (hipcc), or
 * the host emulator (PGD_GPU_EMU: g++ and kernels/gpu/emu).
 *
 * Every GPU source (the .cu files of kernels/gpu, the backend glue, the GPU benchmark)
 * is written once against the neutral names below and compiled by nvcc for
 * the CUDA backend, by hipcc for the ROCm backend and by the host C++
 * compiler for the emulator ("gpu-emu" backend). Here, and only here, they
 * differ:
 *  - runtime API renames (gpuMalloc -> cudaMalloc / hipMalloc, ...);
 *  - the C++ namespace each build's symbols live in (PGD_GPU_NS), so that
 *    both backends can be linked into one program without clashes;
 *  - lane shuffles. Kernels use logical warps of 32 lanes (PGD_WARP) and
 *    only xor-shuffles inside them: on CUDA a warp is 32 lanes; on AMD a
 *    wave64 wavefront holds two logical warps (shuffles with width 32 stay
 *    in their half), a wave32 one holds one. Nothing assumes lockstep
 *    across logical warps; they meet only at __syncthreads().
 *  - f16 bit conversions (hardware instructions on both);
 *  - the launch and dynamic-shared-memory syntax (PGD_LAUNCH, PGD_DYN_SMEM),
 *    which the emulator cannot parse as written for nvcc/hipcc.
 * bf16 is handled as raw uint16_t bits everywhere (no vendor bf16 type:
 * ROCm 5.2 has none usable from both compilers). */
#ifndef PAGODA_GPU_COMPAT_H
#define PAGODA_GPU_COMPAT_H

#include <stddef.h>
#include <stdint.h>

#if defined(PGD_GPU_EMU)
/* ------------------------------------------------------------- emulator */
/* The host compiler runs the kernels on the CPU, one fiber per GPU thread
 * (kernels/gpu/emu): the same sources, tested in CI without a GPU. */
#include "emu/emu.h"

#elif defined(PGD_GPU_HIP) || defined(__HIP__) || defined(__HIPCC__)
/* ------------------------------------------------------------------ HIP */
#ifndef PGD_GPU_HIP
#define PGD_GPU_HIP 1
#endif
#include <hip/hip_fp16.h>
#include <hip/hip_runtime.h>

#define PGD_GPU_NS pgd_rocm
#define PGD_GPU_BACKEND_CREATE pgd_rocm_backend_create
#define PGD_GPU_VENDOR "rocm"
#define PGD_GPU_RUNTIME "HIP"
/* hipMemcpyAsync from pageable host memory is not documented to have
 * consumed the source when it returns: the glue syncs after such uploads. */
#define PGD_GPU_PAGEABLE_UPLOAD_RETURNS_AFTER_READ 0

typedef hipError_t gpuError_t;
typedef hipStream_t gpuStream_t;
typedef hipEvent_t gpuEvent_t;
typedef hipDeviceProp_t gpuDeviceProp;
#define gpuSuccess hipSuccess
#define gpuErrorMemoryAllocation hipErrorOutOfMemory
#define gpuGetErrorString hipGetErrorString
#define gpuGetLastError hipGetLastError
#define gpuGetDeviceCount hipGetDeviceCount
#define gpuSetDevice hipSetDevice
#define gpuGetDeviceProperties hipGetDeviceProperties
#define gpuMemGetInfo hipMemGetInfo
#define gpuMalloc hipMalloc
#define gpuFree hipFree
#define gpuHostAlloc(p, n) hipHostMalloc((p), (n), hipHostMallocDefault)
#define gpuFreeHost hipHostFree
#define gpuMemcpyAsync hipMemcpyAsync
#define gpuMemcpy hipMemcpy
#define gpuMemsetAsync hipMemsetAsync
#define gpuMemcpyHostToDevice hipMemcpyHostToDevice
#define gpuMemcpyDeviceToHost hipMemcpyDeviceToHost
#define gpuMemcpyDeviceToDevice hipMemcpyDeviceToDevice
#define gpuStreamCreateNonBlocking(s) hipStreamCreateWithFlags((s), hipStreamNonBlocking)
#define gpuStreamDestroy hipStreamDestroy
#define gpuStreamSynchronize hipStreamSynchronize
#define gpuStreamWaitEvent(s, e) hipStreamWaitEvent((s), (e), 0)
#define gpuEventCreate hipEventCreate
#define gpuEventDestroy hipEventDestroy
#define gpuEventRecord hipEventRecord
#define gpuEventSynchronize hipEventSynchronize
#define gpuEventElapsedTime hipEventElapsedTime
#define gpuDeviceSynchronize hipDeviceSynchronize
#define gpuRuntimeGetVersion hipRuntimeGetVersion
#define gpuDriverGetVersion hipDriverGetVersion

#define PGD_SHFL_XOR(v, off) __shfl_xor((v), (off), 32)
/* Lanes of a wavefront run in lockstep: order shared-memory accesses only. */
#define PGD_SYNCWARP()                                              \
    do {                                                            \
        __builtin_amdgcn_fence(__ATOMIC_RELEASE, "wavefront");      \
        __builtin_amdgcn_wave_barrier();                            \
        __builtin_amdgcn_fence(__ATOMIC_ACQUIRE, "wavefront");      \
    } while (0)

static __device__ __forceinline__ float pgd_f16_bits_to_f32(uint16_t h) {
    return __half2float(__ushort_as_half(h));
}
static __device__ __forceinline__ uint16_t pgd_f32_to_f16_bits(float f) {
    return __half_as_ushort(__float2half_rn(f));
}

#else
/* ----------------------------------------------------------------- CUDA */
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#define PGD_GPU_NS pgd_cuda
#define PGD_GPU_BACKEND_CREATE pgd_cuda_backend_create
#define PGD_GPU_VENDOR "cuda"
#define PGD_GPU_RUNTIME "CUDA"
/* CUDA documents that cudaMemcpyAsync from pageable memory returns once the
 * source has been copied to staging memory, so the caller may reuse it. */
#define PGD_GPU_PAGEABLE_UPLOAD_RETURNS_AFTER_READ 1

typedef cudaError_t gpuError_t;
typedef cudaStream_t gpuStream_t;
typedef cudaEvent_t gpuEvent_t;
typedef cudaDeviceProp gpuDeviceProp;
#define gpuSuccess cudaSuccess
#define gpuErrorMemoryAllocation cudaErrorMemoryAllocation
#define gpuGetErrorString cudaGetErrorString
#define gpuGetLastError cudaGetLastError
#define gpuGetDeviceCount cudaGetDeviceCount
#define gpuSetDevice cudaSetDevice
#define gpuGetDeviceProperties cudaGetDeviceProperties
#define gpuMemGetInfo cudaMemGetInfo
#define gpuMalloc cudaMalloc
#define gpuFree cudaFree
#define gpuHostAlloc(p, n) cudaHostAlloc((p), (n), cudaHostAllocDefault)
#define gpuFreeHost cudaFreeHost
#define gpuMemcpyAsync cudaMemcpyAsync
#define gpuMemcpy cudaMemcpy
#define gpuMemsetAsync cudaMemsetAsync
#define gpuMemcpyHostToDevice cudaMemcpyHostToDevice
#define gpuMemcpyDeviceToHost cudaMemcpyDeviceToHost
#define gpuMemcpyDeviceToDevice cudaMemcpyDeviceToDevice
#define gpuStreamCreateNonBlocking(s) cudaStreamCreateWithFlags((s), cudaStreamNonBlocking)
#define gpuStreamDestroy cudaStreamDestroy
#define gpuStreamSynchronize cudaStreamSynchronize
#define gpuStreamWaitEvent(s, e) cudaStreamWaitEvent((s), (e), 0)
#define gpuEventCreate cudaEventCreate
#define gpuEventDestroy cudaEventDestroy
#define gpuEventRecord cudaEventRecord
#define gpuEventSynchronize cudaEventSynchronize
#define gpuEventElapsedTime cudaEventElapsedTime
#define gpuDeviceSynchronize cudaDeviceSynchronize
#define gpuRuntimeGetVersion cudaRuntimeGetVersion
#define gpuDriverGetVersion cudaDriverGetVersion

#define PGD_SHFL_XOR(v, off) __shfl_xor_sync(0xffffffffu, (v), (off), 32)
#define PGD_SYNCWARP() __syncwarp()

static __device__ __forceinline__ float pgd_f16_bits_to_f32(uint16_t h) {
    return __half2float(__ushort_as_half(h));
}
static __device__ __forceinline__ uint16_t pgd_f32_to_f16_bits(float f) {
    return __half_as_ushort(__float2half_rn(f));
}
#endif

#if !defined(PGD_GPU_EMU)
/* Kernel launch, written PGD_LAUNCH(grid, block, smem, stream, kernel)(args)
 * (the kernel last: a template-id may contain commas). */
#define PGD_LAUNCH(grid, block, smem, stream, ...) __VA_ARGS__<<<(grid), (block), (smem), (stream)>>>
/* The launch's dynamic shared memory as `type *name`. */
#define PGD_DYN_SMEM(type, name) extern __shared__ type name[]
#endif

/* Logical warp: 32 lanes on every vendor (see above). */
#define PGD_WARP 32

#endif
