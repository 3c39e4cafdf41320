#!/usr/bin/env bash
# bench.sh - TP 1 vs TP 2 (threads and MPI) vs PP 2, with and without hwloc
# pinning, on this machine: `pagoda bench` decode (batch 1 and 8) and
# prefill throughput plus the communication share of step time (the
# driver's seconds inside communicator calls, waiting included, over wall
# time). Writes results/parallel/bench_<host>.md (and the raw tables).
#   experiments/parallel/bench.sh [--model random:stories42M] [--reps 5]
set -euo pipefail
cd "$(dirname "$0")/../.."
model=random:stories42M reps=5 pagoda=build/pagoda
while (($#)); do
  case $1 in
    --model) model=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --pagoda) pagoda=$2; shift 2 ;;
    *) echo "bench.sh: unknown option $1 (--model SPEC --reps N --pagoda PATH)" >&2; exit 2 ;;
  esac
done
[[ -x $pagoda ]] || { echo "bench.sh: $pagoda not built (cmake --build build)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
out=results/parallel
mkdir -p "$out/raw"
host=$(hostname -s)
md=$out/bench_cpu.md
common=(bench --model "$model" --batches 1,8 --prompt-len 64 --decode-steps 16 --reps "$reps")
layouts=(
  "tp1|"
  "tp1-1thread|--threads 1"
  "tp2-threads|--tp 2"
  "tp2-threads-pin|--tp 2 --pin"
  "tp2-mpi|--tp 2 --comm mpi|mpi"
  "tp2-mpi-pin|--tp 2 --comm mpi --pin|mpi"
  "pp2-threads|--pp 2"
  "pp2-threads-pin|--pp 2 --pin"
  "pp2-mpi|--pp 2 --comm mpi|mpi"
  "pp2-threads-mb2|--pp 2||PAGODA_PP_MICROBATCHES=2"
  "pp2-threads-5,3|--pp 2 --stage-layers 5,3"
)
{
  echo "# Tensor / pipeline parallel on the CPU: $model"
  echo
  echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, $(date -u +%Y-%m-%d)."
  echo "Command: \`experiments/parallel/bench.sh --model $model --reps $reps\` (each row: \`pagoda ${common[*]} LAYOUT\`, medians of $reps)."
  echo "comm share = the driver's time inside communicator calls (waiting for the other ranks included) / wall time of the phase."
  echo "pp2-threads-mb2 forces 2 micro-batches per step (PAGODA_PP_MICROBATCHES=2); by default a step is split only"
  echo "with >= 64 tokens per micro-batch. pp2-threads-5,3 moves a layer off the last stage, which also holds the classifier."
  echo
  echo "| layout | prefill tok/s | comm | decode b1 tok/s | comm | decode b8 tok/s | comm | b1 vs TP1 | b8 vs TP1 |"
  echo "|---|---|---|---|---|---|---|---|---|"
} >"$md"
b1_ref= b8_ref=
for entry in "${layouts[@]}"; do
  IFS='|' read -r name flags launcher envs <<<"$entry"
  echo "bench.sh: $name ..." >&2
  json=$out/raw/$name.json
  # shellcheck disable=SC2086
  if [[ ${launcher:-} == mpi ]]; then
    env $envs mpirun --oversubscribe -np 2 "$pagoda" "${common[@]}" $flags --json "$json" >"$out/raw/$name.txt" 2>/dev/null
  else
    env $envs "$pagoda" "${common[@]}" $flags --json "$json" >"$out/raw/$name.txt" 2>/dev/null
  fi
  row=$(python3 - "$json" "$name" "${b1_ref:-0}" "${b8_ref:-0}" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); name = sys.argv[2]; r1 = float(sys.argv[3]); r8 = float(sys.argv[4])
dec = {e["batch"]: e for e in d["decode"]}
b1, b8 = dec[1]["decode_tps"], dec[8]["decode_tps"]
rel = lambda x, r: f"{x / r:.2f}x" if r > 0 else "1.00x"
print(f"| {name} | {d['prefill_tps']:.0f} | {100 * d['prefill_comm_share']:.0f}% | {b1:.1f} | "
      f"{100 * dec[1]['comm_share']:.0f}% | {b8:.1f} | {100 * dec[8]['comm_share']:.0f}% | {rel(b1, r1)} | {rel(b8, r8)} |")
print(f"REF {b1} {b8}", file=sys.stderr)
PY
  )
  if [[ -z $b1_ref ]]; then
    b1_ref=$(python3 -c "import json;d=json.load(open('$json'));print({e['batch']:e for e in d['decode']}[1]['decode_tps'])")
    b8_ref=$(python3 -c "import json;d=json.load(open('$json'));print({e['batch']:e for e in d['decode']}[8]['decode_tps'])")
  fi
  echo "$row" >>"$md"
done
echo >>"$md"
echo "Layouts: $(grep -h '^layout' $out/raw/*.txt | sort -u | sed 's/^layout *: //' | paste -sd ';' -)" >>"$md"
echo "bench.sh: wrote $md" >&2
cat "$md"
