#!/usr/bin/env bash
# experiments/gpu/device.sh - run experiments/gpu/run.sh on a GPU machine
# with the binaries experiments/gpu/pack.sh staged in .gpu-carry/ (the
# device tool's lent machines: CUDA and a driver, no build dependencies, no
# network). Finds cuBLAS wherever the machine keeps it, points the loader at
# .gpu-carry/lib and the GPU tests at .gpu-carry/data, records the machine,
# and copies the reports to $OUT (when set) as they are written.
# Usage: experiments/gpu/device.sh [run.sh options]
# Environment: PAGODA_GPU_STEP_TIMEOUT (run.sh's, default here 240 s),
#   PAGODA_GPU_BUDGET=S stops run.sh after S seconds in all (set it under the
#   device call's own limit, so that the reports are still copied to $OUT).
set -uo pipefail
cd "$(dirname "$0")/../.."
carry=$PWD/.gpu-carry
[[ -x $carry/build/pagoda ]] || { echo "device.sh: run experiments/gpu/pack.sh first" >&2; exit 2; }
t0=$(date +%s)
echo "== machine =="
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem,power.limit --format=csv || true
nproc; grep -m1 'model name' /proc/cpuinfo || true
# cuBLAS: the toolkit's, else a Python wheel's (torch images keep it there)
cublas=$(ldconfig -p 2>/dev/null | awk '/libcublas\.so\.13 /{print $NF; exit}')
[[ -n $cublas ]] || cublas=$(find /usr/local/cuda*/ /usr/lib /opt -name 'libcublas.so.13' 2>/dev/null | head -1)
echo "cuBLAS: ${cublas:-not found (the own GEMM will be used)}"
# the carried libraries only where the machine lacks them (its own are newer)
libpath=/tmp/pagoda-libs
rm -rf "$libpath" && mkdir -p "$libpath"
for f in "$carry"/lib/*; do
  ldconfig -p 2>/dev/null | grep -q "^[[:space:]]*$(basename "$f") " || ln -s "$f" "$libpath/"
done
echo "carried libraries used: $(ls "$libpath" | paste -sd' ')"
[[ -n $cublas ]] && libpath=$(dirname "$cublas"):$libpath
export LD_LIBRARY_PATH=$libpath${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PAGODA_SHARED_DATA=$carry/data
export PAGODA_GPU_STEP_TIMEOUT=${PAGODA_GPU_STEP_TIMEOUT:-240}
ldd "$carry/build/pagoda" | grep -i 'not found' && echo "device.sh: libraries missing (above)"
bdir=$carry/build/experiments/gpu
if [[ -x $bdir/pagoda_gpu_bench_prev ]]; then
  # previous vs new kernels (pack.sh --ab), alternated, attention and ceilings only
  echo "== A/B: the previous pack's benchmark against this one's =="
  for r in 1 2; do
    for v in prev new; do
      b=$bdir/pagoda_gpu_bench; [[ $v == prev ]] && b=$bdir/pagoda_gpu_bench_prev
      timeout 120 "$b" --skip-model --out "/tmp/ab/$v$r" >/dev/null 2>&1 || echo "A/B: $v run $r failed"
      md=$(ls /tmp/ab/$v$r/*.md 2>/dev/null | head -1)
      [[ -n $md && -n ${OUT:-} ]] && cp "$md" "$OUT/ab_$v$r.md"
    done
  done
fi
log=${OUT:-/tmp}/run.log # under $OUT it comes back even if the call is cut short
budget=${PAGODA_GPU_BUDGET:-0}
if [[ $budget != 0 ]]; then
  timeout --kill-after=5 "$budget" experiments/gpu/run.sh --prebuilt "$carry/build" "$@" 2>&1 | tee "$log"
else
  experiments/gpu/run.sh --prebuilt "$carry/build" "$@" 2>&1 | tee "$log"
fi
status=${PIPESTATUS[0]}
echo "device.sh: run.sh exit $status after $(( $(date +%s) - t0 )) s"
if [[ -n ${OUT:-} ]]; then
  cp results/gpu/*.md results/gpu/*.csv "$OUT/" 2>/dev/null
  for d in results/gpu/e2e-*/; do
    [[ -d $d ]] && tar -C results/gpu -czf "$OUT/$(basename "$d").tgz" "$(basename "$d")"
  done
fi
exit "$status"
