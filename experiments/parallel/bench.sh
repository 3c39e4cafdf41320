#!/usr/bin/env bash
# bench.sh - TP 1 vs TP 2 vs PP 2 (threads and MPI), batches in flight and
# async scheduling, on this machine: `pagoda bench` decode throughput at
# batch 1, 8 and 32 and prefill, plus the communication share of step time
# (the driver's seconds inside communicator calls, waiting included, over
# wall time). Writes results/parallel/bench_cpu.md (raw JSON and text under
# results/parallel/raw/).
#   experiments/parallel/bench.sh [--model random:stories42M] [--reps 5] [--rounds 3]
#
# Noise: the layouts run in ROUNDS interleaved rounds (every layout once per
# round, in the same order), each cell is the median over the rounds of each
# run's own median of REPS. "in flight / 1 at a time" is measured inside one
# run, the two alternating rep by rep (pagoda bench), so it is the ratio the
# machine's noise disturbs least.
source "$(dirname "$0")/../lib.sh"
model=random:stories42M reps=5 rounds=3 pagoda=build/pagoda
while (($#)); do
  case $1 in
    --model) model=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --pagoda) pagoda=$2; shift 2 ;;
    *) exp_die 2 "unknown option $1 (--model SPEC --reps N --rounds N --pagoda PATH)" ;;
  esac
done
exp_need_pagoda
exp_needs jq
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
out=results/parallel
mkdir -p "$out/raw"
md=$out/bench_cpu.md
common=(bench --model "$model" --batches 1,8,32 --prompt-len 64 --decode-steps 16 --reps "$reps")
layouts=(
  "tp1|"
  "tp1-async|--async"
  "tp2-threads|--tp 2"
  "tp2-mpi|--tp 2 --comm mpi|mpi"
  "pp2-threads|--pp 2"
  "pp2-threads-7,1|--pp 2 --stage-layers 7,1"
  "pp2-threads-7,1-async|--pp 2 --stage-layers 7,1 --async"
  "pp2-threads-7,1-pin|--pp 2 --stage-layers 7,1 --pin"
  "pp2-mpi-7,1|--pp 2 --stage-layers 7,1 --comm mpi|mpi"
)
for ((r = 1; r <= rounds; r++)); do
  for entry in "${layouts[@]}"; do
    IFS='|' read -r name flags launcher <<<"$entry"
    echo "bench.sh: round $r/$rounds: $name ..." >&2
    json=$out/raw/$name.$r.json
    # shellcheck disable=SC2086
    if [[ ${launcher:-} == mpi ]]; then
      mpirun --oversubscribe -np 2 "$pagoda" "${common[@]}" $flags --json "$json" >"$out/raw/$name.$r.txt" 2>/dev/null
    else
      "$pagoda" "${common[@]}" $flags --json "$json" >"$out/raw/$name.$r.txt" 2>/dev/null
    fi
  done
done

# median over the rounds of a jq expression on a layout's JSON files
med() {
  local name=$1 expr=$2
  for ((r = 1; r <= rounds; r++)); do jq -r "$expr // empty" "$out/raw/$name.$r.json"; done |
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
per_round() {
  local name=$1 expr=$2 s=
  for ((r = 1; r <= rounds; r++)); do s+="${s:+ / }$(jq -r "$expr" "$out/raw/$name.$r.json" | xargs printf '%.0f')"; done
  echo "$s"
}
dec() { echo ".decode[] | select(.batch == $1) | $2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2fx", a / b }'; }
fmt() { awk -v a="$1" -v f="$2" 'BEGIN { if (a == "") print "-"; else printf f, a }'; }

ref1=$(med tp1 "$(dec 1 .decode_tps)") ref8=$(med tp1 "$(dec 8 .decode_tps)") ref32=$(med tp1 "$(dec 32 .decode_tps)")
{
  echo "# Tensor / pipeline parallel, batches in flight, async: $model on the CPU"
  echo
  echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, $(date -u +%Y-%m-%d)."
  echo "Command: \`experiments/parallel/bench.sh --model $model --reps $reps --rounds $rounds\` (each run:"
  echo "\`pagoda ${common[*]} LAYOUT\`). Every layout ran once per round, $rounds interleaved rounds; each cell is"
  echo "the median over the rounds of the run's median of $reps reps."
  echo
  echo "Batches in flight: with K > 1 (PP 2: 2; --async: one more) a decode at batch B keeps K batches of B"
  echo "sequences in flight (K x B sequences; each forward step is a batch of B, as each of vLLM's virtual"
  echo "engines runs its own batch). The same run also decodes one batch at a time, alternating rep by rep:"
  echo "batches of B (the layout without batches in flight: the issue's comparison) and of K x B (the same"
  echo "sequences as one batch); the ratios are the medians of the per-rep ratios. \"vs TP 1\": at the same"
  echo "batch per step. comm: the driver's time inside communicator calls (waiting included) / wall time."
  echo
  echo "Stages: stories42M has 8 layers of 12.6 MB (f32) and a 65.5 MB classifier on the last stage, so an even"
  echo "4,4 split streams about 50 : 116 MB per step on its two stages and 7,1 about 88 : 78 MB. Were a step's"
  echo "time only its bytes streamed, a pipeline that stays full would gain (50 + 116) / 116 = 1.4x over one"
  echo "batch at a time with 4,4 and 1.9x with 7,1. That is an estimate, not a bound: one batch at a time also"
  echo "pays every hand-off between the stages (a thread waking, activations passed on: comm 0.45 at 4,4),"
  echo "which batches in flight hide, so 4,4 measures above 1.4x."
  echo
  echo "| layout | prefill tok/s | decode b1 tok/s | b8 tok/s | b32 tok/s | b8 comm | b8 / b32 vs TP 1 | b8 / b32 in flight / 1 batch of B | b8 / b32 in flight / 1 batch of K x B | b8 per round |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for entry in "${layouts[@]}"; do
    IFS='|' read -r name _ <<<"$entry"
    p=$(med "$name" .prefill_tps) d1=$(med "$name" "$(dec 1 .decode_tps)")
    d8=$(med "$name" "$(dec 8 .decode_tps)") d32=$(med "$name" "$(dec 32 .decode_tps)")
    c8=$(med "$name" "$(dec 8 .comm_share)")
    f8=$(med "$name" "$(dec 8 .in_flight_ratio)") f32=$(med "$name" "$(dec 32 .in_flight_ratio)")
    k8=$(med "$name" "$(dec 8 .in_flight_ratio_same_seqs)") k32=$(med "$name" "$(dec 32 .in_flight_ratio_same_seqs)")
    fl="-" fk="-"
    [[ -n $f8 ]] && fl="$(fmt "$f8" %.2fx) / $(fmt "$f32" %.2fx)" && fk="$(fmt "$k8" %.2fx) / $(fmt "$k32" %.2fx)"
    echo "| $name | $(fmt "$p" %.0f) | $(fmt "$d1" %.1f) | $(fmt "$d8" %.1f) | $(fmt "$d32" %.1f) | $(fmt "$c8" %.2f) |" \
         "$(ratio "$d8" "$ref8") / $(ratio "$d32" "$ref32") | $fl | $fk | $(per_round "$name" "$(dec 8 .decode_tps)") |"
  done
  echo
  echo "Layouts:"
  for entry in "${layouts[@]}"; do
    IFS='|' read -r name _ <<<"$entry"
    echo "- $name: $(jq -r .layout "$out/raw/$name.1.json"); $(jq -r .backend "$out/raw/$name.1.json")"
  done
} >"$md"
echo "bench.sh: wrote $md" >&2
