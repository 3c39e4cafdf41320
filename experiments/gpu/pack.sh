#!/usr/bin/env bash
# experiments/gpu/pack.sh - build the CUDA binaries HERE and stage everything
# experiments/gpu/run.sh needs into .gpu-carry/, for a GPU machine that has
# the driver and CUDA but not Pagoda's build dependencies (jansson, inih,
# hwloc, CUnit) and cannot install them (the lent machines of the device
# tool: no package registry). .gpu-carry/ holds
#   build/   pagoda, tests/test_gpu, experiments/gpu/pagoda_gpu_bench (a
#            CUDA-only Release build: no MPI, NCCL, ROCm or emulator, so the
#            only CUDA libraries they need are the runtime and cuBLAS)
#   lib/     the shared libraries they link that a CUDA image may lack
#            (everything but glibc's and the compiler's runtime, the driver
#            and cuBLAS, which is dlopen()ed and found there by device.sh;
#            device.sh uses a carried one only where the machine has none)
#   data/    the shared files the GPU tests read (stories260K + goldens), in
#            ../shared/data's layout (PAGODA_SHARED_DATA points there)
# Then, on the GPU machine, from the repository root:
#   experiments/gpu/device.sh          (sets the paths, runs run.sh --prebuilt)
# With --ab, the benchmark staged before (the last pack) is kept as
# build/experiments/gpu/pagoda_gpu_bench_prev, and device.sh times the
# previous and the new kernels against each other in the same lease.
# Usage: experiments/gpu/pack.sh [--arch 90] [--ab]
set -euo pipefail
cd "$(dirname "$0")/../.."
arch=90 ab=""
while (($#)); do
  case $1 in
    --arch) arch=$2; shift ;;
    --ab) ab=1 ;;
    *) sed -n '2,21p' "$0"; exit 2 ;;
  esac
  shift
done
data=${PAGODA_SHARED_DATA:-../shared/data}
for f in models/stories260K/stories260K.bin models/stories260K/tok512.bin golden/stories260K_greedy.jsonl; do
  [[ -f $data/$f ]] || { echo "pack.sh: $data/$f is missing" >&2; exit 1; }
done
build=build-gpu-pack
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DPAGODA_CUDA=ON -DPAGODA_ROCM=OFF -DPAGODA_MPI=OFF \
  -DPAGODA_NCCL=OFF -DPAGODA_GPU_EMU=OFF -DCMAKE_CUDA_ARCHITECTURES="$arch" >/dev/null
cmake --build "$build" -j"$(nproc)" --target pagoda test_gpu pagoda_gpu_bench

out=.gpu-carry
prev=""
if [[ -n $ab ]]; then
  [[ -x $out/build/experiments/gpu/pagoda_gpu_bench ]] || { echo "pack.sh: --ab: nothing packed before" >&2; exit 1; }
  prev=$(mktemp)
  cp "$out/build/experiments/gpu/pagoda_gpu_bench" "$prev"
fi
rm -rf "$out"
mkdir -p "$out/build/tests" "$out/build/experiments/gpu" "$out/lib"
if [[ -n $prev ]]; then
  mv "$prev" "$out/build/experiments/gpu/pagoda_gpu_bench_prev"
  chmod 755 "$out/build/experiments/gpu/pagoda_gpu_bench_prev"
fi
bins=(pagoda tests/test_gpu experiments/gpu/pagoda_gpu_bench)
for b in "${bins[@]}"; do cp "$build/$b" "$out/build/$b"; done
# shared libraries: all but the C library's own and the driver
for b in "${bins[@]}"; do ldd "$build/$b"; done | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
  while read -r lib; do
    case $(basename "$lib") in
      libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*|libcuda.so*|libstdc++.so*|libgcc_s.so*) ;;
      *) cp -L "$lib" "$out/lib/" ;;
    esac
  done
for f in models/stories260K/stories260K.bin models/stories260K/tok512.bin golden/stories260K_greedy.jsonl; do
  mkdir -p "$out/data/$(dirname "$f")"
  cp "$data/$f" "$out/data/$f"
done
grep -qxF '/.gpu-carry/' .git/info/exclude 2>/dev/null || echo '/.gpu-carry/' >>.git/info/exclude
echo "pack.sh: staged $(du -sh "$out" | cut -f1) in $out/ (sm_$arch):"
ls "$out/lib"
