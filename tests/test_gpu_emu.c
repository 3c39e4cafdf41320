/* test_gpu_emu.c - the GPU conformance suite (test_gpu.c) on the "gpu-emu"
 * backend: the single-source GPU kernels and backend glue compiled for the
 * host and run by the fiber emulator of kernels/gpu/emu, so that their logic
 * (indexing, reductions, barriers, shuffles, split-K merging, sampling
 * thresholds, launch limits) is checked on every CI run without a GPU.
 * It says nothing about a real device's compiler, memory model or speed.
 * Skipped (77) in builds without the emulator (sanitizer builds). */
#define PGD_TEST_GPU_EMU 1
#include "test_gpu.c"
