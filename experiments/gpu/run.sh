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
#      the same file;
#   5. `pagoda profile` of the Llama-3-8B shape (bf16) on the GPU ->
#      results/gpu/profile_<device>_llama3-8b.csv, the sim's calibration
#      table for this device (check the GPU presets against it).
# Usage: experiments/gpu/run.sh [--quick] [--skip-tests] [--skip-e2e] [--skip-profile]
#                               [--prebuilt DIR]
#   --quick: small attention/decode grid, 50 requests, coarse profile (a smoke run).
#   --prebuilt DIR: use the binaries already built in DIR (a build tree, or the
#     same layout: DIR/pagoda, DIR/tests/test_gpu, DIR/experiments/gpu/...);
#     nothing is built (experiments/gpu/pack.sh makes one to carry to a GPU
#     machine that lacks the build dependencies).
# Environment: CMAKE_CUDA_ARCHITECTURES (e.g. 90), PAGODA_GPU_BACKEND (cuda|rocm;
#   gpu-emu runs it all on the CPU emulator at tiny sizes, to test this script);
#   PAGODA_GPU_STEP_TIMEOUT=S stops any one step after S seconds (a failure:
#   the rest still runs), so a hung step cannot eat a lease.
set -euo pipefail
cd "$(dirname "$0")/../.."
quick="" skip_tests="" skip_e2e="" skip_profile="" prebuilt=""
while (($#)); do
  case $1 in
    --quick) quick=--quick ;;
    --skip-tests) skip_tests=1 ;;
    --skip-e2e) skip_e2e=1 ;;
    --skip-profile) skip_profile=1 ;;
    --prebuilt) [[ $# -ge 2 ]] || { echo "run.sh: --prebuilt needs a directory" >&2; exit 2; }
                prebuilt=$2; shift ;;
    *) sed -n '2,30p' "$0"; exit 2 ;;
  esac
  shift
done
step_timeout=${PAGODA_GPU_STEP_TIMEOUT:-0}
# run a step under the step timeout (0 = none); 124 = it was stopped
step() { if [[ $step_timeout != 0 ]]; then timeout --kill-after=10 "$step_timeout" "$@"; else "$@"; fi; }
vendor=${PAGODA_GPU_BACKEND:-}
if [[ -z $vendor ]]; then
  if command -v nvidia-smi >/dev/null 2>&1; then vendor=cuda
  elif [[ -e /dev/kfd ]]; then vendor=rocm
  else echo "run.sh: no NVIDIA or AMD GPU found (nvidia-smi, /dev/kfd)" >&2; exit 1; fi
fi
bench=pagoda_gpu_bench
[[ $vendor == rocm ]] && bench=pagoda_gpu_bench_rocm
[[ $vendor == gpu-emu ]] && bench=pagoda_gpu_bench_emu # tests this script without a GPU
if [[ -n $prebuilt ]]; then
  build=$prebuilt
  for f in pagoda "experiments/gpu/$bench"; do
    [[ -x $build/$f ]] || { echo "run.sh: --prebuilt $build has no $f" >&2; exit 2; }
  done
  echo "== prebuilt binaries in $build ($vendor) =="
else
  build=build-gpu
  cmake_args=(-DCMAKE_BUILD_TYPE=Release)
  [[ $vendor == cuda ]] && cmake_args+=(-DPAGODA_CUDA=ON)
  [[ $vendor == rocm ]] && cmake_args+=(-DPAGODA_ROCM=ON)
  [[ -n ${CMAKE_CUDA_ARCHITECTURES:-} ]] && cmake_args+=(-DCMAKE_CUDA_ARCHITECTURES="$CMAKE_CUDA_ARCHITECTURES")
  echo "== build ($vendor, $build) =="
  cmake -S . -B "$build" "${cmake_args[@]}" >/dev/null
  cmake --build "$build" -j"$(nproc)"
fi
[[ $vendor == cuda ]] && { nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader || true; }

status=0
if [[ -z $skip_tests ]]; then
  echo "== GPU conformance and golden tests =="
  if [[ $vendor == gpu-emu ]]; then step "$build/tests/test_gpu_emu" || status=1
  else PAGODA_GPU_REQUIRED=1 PAGODA_GPU_BACKEND=$vendor step "$build/tests/test_gpu" || status=1; fi
fi

echo "== benchmarks =="
mkdir -p results/gpu
log=$(mktemp)
step "$build/experiments/gpu/$bench" $quick --out results/gpu | tee "$log" || status=1
md=$(sed -n 's/^wrote //p' "$log")
rm -f "$log"
[[ -n $md ]] || { echo "run.sh: the benchmark wrote no report" >&2; exit 1; }

if [[ -z $skip_e2e ]]; then
  echo "== end to end: pagoda run, 500 ShareGPT-like requests =="
  ini=$(mktemp --suffix=.ini)
  sed "s/^backend = .*/backend = $vendor/" experiments/gpu/e2e_sharegpt.ini >"$ini"
  [[ -n $quick ]] && sed -i 's/^num_requests = .*/num_requests = 50/' "$ini"
  if [[ $vendor == gpu-emu ]]; then # the emulator: a tiny model, a few short requests
    sed -i -e 's/^path = .*/path = random:stories260K/' -e 's/^num_requests = .*/num_requests = 8/' \
      -e 's/^kv_memory = .*/kv_memory = 64M/' -e 's/^swap_blocks = .*/swap_blocks = 16/' \
      -e 's/^max_num_batched_tokens = .*/max_num_batched_tokens = 512/' \
      -e 's/^input_len = .*/input_len = fixed/' -e 's/^output_len = .*/output_len = fixed/' "$ini"
    printf 'input_mean = 20\noutput_mean = 8\n' >>"$ini"
  fi
  dev=$(basename "$md" .md)
  out=results/gpu/e2e-$dev
  if ! "$build/pagoda" run --dry-run "$ini" >/dev/null 2>"$ini.err"; then
    cat "$ini.err" >&2
    echo "run.sh: pagoda run rejects this config (does model.backend accept '$vendor'?" \
         "core/config/config_schema.c lists the backend choices)" >&2
    status=1
  elif step "$build/pagoda" run --output-dir "$out" "$ini"; then
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

if [[ -z $skip_profile ]]; then
  echo "== pagoda profile: the sim's calibration table for this device =="
  dev=$(basename "$md" .md)
  # steps of up to 4096 tokens, 2 rounds: about 3 minutes on an H200
  pmodel=random:llama3-8b pargs=(--kv-memory 32G --max-seqs 256 --max-context 4096 --max-tokens 4096 --reps 2)
  [[ -n $quick ]] && pargs=(--quick --kv-memory 8G)
  [[ $vendor == gpu-emu ]] && pmodel=random:stories260K pargs=(--quick --max-seqs 4 --max-context 64 --max-tokens 64 --reps 1)
  prof=results/gpu/profile_${dev}_${pmodel#random:}.csv
  if step "$build/pagoda" profile --backend "$vendor" --model "$pmodel" --dtype bf16 "${pargs[@]}" \
       -o "$prof"; then
    printf '## `pagoda profile` on this device\n\nThe sim calibration table `%s` (%s rows): ' "$prof" \
      "$(grep -vc '^#' "$prof")" >>"$md"
    grep '^# \(copy\|matmul\|noise\|grid\)' "$prof" | sed 's/^# //' | paste -sd';' >>"$md"
    echo >>"$md"
  else
    status=1
  fi
fi
echo "== report: $md =="
cat "$md"
exit $status
