/* gpu_bench_emu.cpp - gpu_bench.cu built for the "gpu-emu" backend (the GPU
 * code emulated on the CPU, tiny sizes): lets experiments/gpu/run.sh and the
 * benchmark itself be exercised on a machine without a GPU
 * (PAGODA_GPU_BACKEND=gpu-emu experiments/gpu/run.sh --quick --skip-e2e). */
#include "gpu_bench.cu"
