#!/usr/bin/env bash
# experiments/gpu/run.sh - every GPU check and benchmark in one command, on a
# machine with an NVIDIA (CUDA) or AMD (ROCm) GPU:
#   1. build Release into build-gpu/ (CUDA for sm_90 unless
#      CMAKE_CUDA_ARCHITECTURES is given; ROCm for PAGODA_ROCM_ARCHS);
#   2. the GPU conformance + golden tests (tests/test_gpu.c) with
#      PAGODA_GPU_REQUIRED=1, so a missing device fails instead of skipping;
#   3. the benchmarks (experiments/gpu/gpu_bench.cu) -> results/gpu/<device>.md;
#   4. `pagoda run experiments/gpu/e2e_sharegpt.ini` (500 ShareGPT-like
#      requests, random Llama-3-8B shape, bf16), its throughput appended to
#      the same file.
# Usage: experiments/gpu/run.sh [--quick] [--skip-tests] [--skip-e2e]
#   --quick: small attention/decode grid and 50 requests (a smoke run).
# Environment: CMAKE_CUDA_ARCHITECTURES (e.g. 90), PAGODA_GPU_BACKEND (cuda|rocm;
#   gpu-emu runs it all on the CPU emulator at tiny sizes, to test this script).
set -euo pipefail
cd "$(dirname "$0")/../.."
quick="" skip_tests="" skip_e2e=""
for a in "$@"; do
  case $a in
    --quick) quick=--quick ;;
    --skip-tests) skip_tests=1 ;;
    --skip-e2e) skip_e2e=1 ;;
    *) sed -n '2,18p' "$0"; exit 2 ;;
  esac
done
vendor=${PAGODA_GPU_BACKEND:-}
if [[ -z $vendor ]]; then
  if command -v nvidia-smi >/dev/null 2>&1; then vendor=cuda
  elif [[ -e /dev/kfd ]]; then vendor=rocm
  else echo "run.sh: no NVIDIA or AMD GPU found (nvidia-smi, /dev/kfd)" >&2; exit 1; fi
fi
bench=pagoda_gpu_bench
[[ $vendor == rocm ]] && bench=pagoda_gpu_bench_rocm
[[ $vendor == gpu-emu ]] && bench=pagoda_gpu_bench_emu # tests this script without a GPU
build=build-gpu
cmake_args=(-DCMAKE_BUILD_TYPE=Release)
[[ $vendor == cuda ]] && cmake_args+=(-DPAGODA_CUDA=ON)
[[ $vendor == rocm ]] && cmake_args+=(-DPAGODA_ROCM=ON)
[[ -n ${CMAKE_CUDA_ARCHITECTURES:-} ]] && cmake_args+=(-DCMAKE_CUDA_ARCHITECTURES="$CMAKE_CUDA_ARCHITECTURES")

echo "== build ($vendor, $build) =="
cmake -S . -B "$build" "${cmake_args[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)"
[[ $vendor == cuda ]] && { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true; }

status=0
if [[ -z $skip_tests ]]; then
  echo "== GPU conformance and golden tests =="
  if [[ $vendor == gpu-emu ]]; then "$build/tests/test_gpu_emu" || status=1
  else PAGODA_GPU_REQUIRED=1 PAGODA_GPU_BACKEND=$vendor "$build/tests/test_gpu" || status=1; fi
fi

echo "== benchmarks =="
mkdir -p results/gpu
log=$(mktemp)
"$build/experiments/gpu/$bench" $quick --out results/gpu | tee "$log"
md=$(sed -n 's/^wrote //p' "$log")
rm -f "$log"
[[ -n $md ]] || { echo "run.sh: the benchmark wrote no report" >&2; exit 1; }

if [[ -z $skip_e2e ]]; then
  echo "== end to end: pagoda run, 500 ShareGPT-like requests =="
  ini=$(mktemp --suffix=.ini)
  sed "s/^backend = .*/backend = $vendor/" experiments/gpu/e2e_sharegpt.ini >"$ini"
  [[ -n $quick ]] && sed -i 's/^num_requests = .*/num_requests = 50/' "$ini"
  dev=$(basename "$md" .md)
  out=results/gpu/e2e-$dev
  if ! "$build/pagoda" run --dry-run "$ini" >/dev/null 2>"$ini.err"; then
    cat "$ini.err" >&2
    echo "run.sh: pagoda run rejects this config (does model.backend accept '$vendor'?" \
         "core/config/config_schema.c lists the backend choices)" >&2
    status=1
  elif "$build/pagoda" run --output-dir "$out" "$ini"; then
    summary=$(ls "$out"/*/*/summary.json | head -1)
    python3 - "$summary" "$md" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
with open(sys.argv[2], "a") as f:
    f.write("## End to end: `pagoda run experiments/gpu/e2e_sharegpt.ini`\n\n")
    f.write(f"{s['workload']['description']}; backend {s['backend']}; model {s['model']}.\n\n")
    f.write("| requests | completed | wall s | output tok/s | total tok/s | req/s | TTFT p50 s | TPOT p50 ms | mean batch |\n")
    f.write("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    f.write(f"| {s['num_requests']} | {s['completed']} | {s['duration_s']:.1f} | {s['output_throughput']:.0f} | "
            f"{s['total_token_throughput']:.0f} | {s['request_throughput']:.2f} | {s['ttft']['median']:.2f} | "
            f"{1e3 * s['tpot']['median']:.1f} | {s['batch']['mean_seqs']:.1f} |\n\n")
    f.write(f"Full results: `{sys.argv[1].rsplit('/', 1)[0]}/`.\n")
PY
  else
    status=1
  fi
  rm -f "$ini" "$ini.err"
fi
echo "== report: $md =="
cat "$md"
exit $status
