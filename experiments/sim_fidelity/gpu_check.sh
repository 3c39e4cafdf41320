#!/usr/bin/env bash
# gpu_check.sh - the sim's GPU cost model against measured GPU op times
# (../shared/data/vidur-profiling: Vidur's A100-80GB Llama-3-8B kernels and
# A100/H100 NCCL all-reduce), in one command; writes OUT/gpu_fidelity.md:
#   1. the shipped a100-80gb preset (fitted curves): every op, decode and
#      prefill steps, TP 2/4/8 dense layers, all-reduce;
#   2. the same files against the datasheet roofline the presets had before
#      (sim-check --roofline): what the curves fixed;
#   3. the h100 preset's all-reduce against the H100 file;
#   4. the files imported as a calibration table (profile --import vidur) and
#      checked with it (interpolation of the measurements themselves);
#   5. generalization: tests/test_sim_check fits on half the grid (and on TP
#      1/2) and predicts the rest; its figures.
#   experiments/sim_fidelity/gpu_check.sh [--pagoda PATH] [--data DIR] [--out DIR]
# Seconds to run; deterministic (the same files give the same report).
set -euo pipefail
cd "$(dirname "$0")/../.."
pagoda=build/pagoda
data=../shared/data/vidur-profiling
out=results/sim
while (($#)); do
  case "$1" in
    --pagoda) pagoda=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n 2,16p "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ -x $pagoda ]] || { echo "gpu_check.sh: no pagoda binary at $pagoda (build first)" >&2; exit 2; }
mlp=$data/data/profiling/compute/a100/meta-llama/Meta-Llama-3-8B/mlp.csv
attn=$data/vidur_attn_a100_llama3-8b_transcribed.csv
ar_a=$data/data/profiling/network/a100_dgx/all_reduce.csv
ar_h=$data/data/profiling/network/h100_dgx/all_reduce.csv
for f in "$mlp" "$attn" "$ar_a" "$ar_h"; do [[ -f $f ]] || { echo "gpu_check.sh: $f is missing" >&2; exit 2; }; done
tests=$(dirname "$pagoda")/tests/test_sim_check
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"

check=(--model llama3-8b --device a100-80gb --mlp "$mlp" --attention "$attn" --all-reduce "$ar_a")
"$pagoda" sim-check "${check[@]}" >"$tmp/curves.txt"
"$pagoda" sim-check "${check[@]}" --roofline >"$tmp/roofline.txt"
"$pagoda" sim-check --model llama3-8b --device h100 --all-reduce "$ar_h" >"$tmp/h100.txt"
"$pagoda" profile --import vidur --model llama3-8b --mlp "$mlp" --attention "$attn" --all-reduce "$ar_a" \
  -o "$tmp/table.csv" >/dev/null
"$pagoda" sim-check "${check[@]}" --calibration "$tmp/table.csv" >"$tmp/table.txt"
held="(tests/test_sim_check not built)"
if [[ -x $tests ]]; then
  held=$("$tests" 2>&1 | sed -n 's/^ *\(held-out decode.*\|tp4 dense from.*\)passed$/\1/p')
fi

# "label" lines of a sim-check output, as table cells: median / p90
cell() { # FILE LABEL-REGEX
  awk -v re="$2" '$0 ~ re { for (i = 1; i <= NF; i++) { if ($i == "|err|") m = $(i + 1); if ($i == "p90") p = $(i + 1) }
                             printf "%s / %s", m, p; found = 1; exit }
                  END { if (!found) printf "-" }' "$1"
}
row() { # LABEL REGEX
  printf '| %s | %s | %s | %s |\n' "$1" "$(cell "$tmp/roofline.txt" "$2")" "$(cell "$tmp/curves.txt" "$2")" \
    "$(cell "$tmp/table.txt" "$2")"
}
md=$out/gpu_fidelity.md
{
  echo "# The sim's GPU cost model against measured GPU op times"
  echo
  echo "Command: \`experiments/sim_fidelity/gpu_check.sh\` ($(date -u '+%Y-%m-%d %H:%M UTC')). Measurements:"
  echo "\`../shared/data/vidur-profiling\` (Microsoft Vidur's A100-80GB profile of Llama-3-8B: per-op kernel"
  echo "times of one layer at TP 1/2/4/8 and 1-32768 tokens, FlashInfer paged attention transcribed, NCCL"
  echo "all-reduce on A100 and H100 DGX nodes). Errors are predicted / measured - 1; \"median / p90\" of |error|."
  echo "A step is one layer of the measured system's ops (backends/sim/sim_check.h); the layer count scales both."
  echo
  echo "| check | roofline (old presets) | fitted curves (presets now) | calibration table from the files |"
  echo "|---|---|---|---|"
  row "decode steps, batch 1-124 x context 960-3008 (143)" "^decode steps"
  row "prefill steps, chunk 64-4096 x cached 0-15488 (184)" "^prefill steps"
  for tp in 2 4 8; do
    row "TP $tp dense layer, 1-256 tokens (35)" "^dense layer tp$tp \\\\(tokens"
    row "TP $tp dense layer + 2 all-reduces" "^dense layer tp$tp \\\\+"
  done
  row "all-reduce, A100 file, every row (6958)" "^all-reduce, every row"
  row "all-reduce, A100 file, one host (2982)" "^all-reduce, one host"
  printf '| all-reduce, H100 file (2982), h100 preset | - | %s | - |\n' "$(cell "$tmp/h100.txt" "^all-reduce, every row")"
  echo
  echo "Targets (issue 12): decode step median <= 5% (p90 <= 10%), prefill step median <= 10% (p90 <= 20%),"
  echo "TP 2/4/8 dense layer at decode sizes median <= 10%, all-reduce median <= 15%. The roofline column is"
  echo "the same files under the datasheet model the presets had before (\`--roofline\`: 5 us per launch, GEMMs"
  echo "at 0.80 of peak or 0.90 of bandwidth, attention at 0.72, an NVLink ring of 300 GB/s + 5 us per hop)."
  echo "The calibration-table column is not a model check: it interpolates the measurements themselves, and"
  echo "shows what \`pagoda profile --import vidur\` gives a run of this model on this GPU."
  echo
  echo "Generalization (tests/test_sim_check.c, run by CI): curves fitted on every other measured token count"
  echo "and every other attention row, judged on the held-out half only; and curves fitted at TP 1 and 2 only,"
  echo "judged on the TP 4 and 8 shards:"
  echo
  echo '```'
  echo "$held"
  echo '```'
  echo
  echo "Where the curves are weakest (below, per op): small all-reduces (messages under 1 MiB are bimodal in"
  echo "the file, ~20 or ~60 us, so any one prediction misses half of them by 40-60%; this is what keeps the"
  echo "TP 4/8 dense layers with their all-reduces at 13-17%), 64-token prefill chunks with little cached"
  echo "context (measured 11-33 us under a fitted 26 us floor), and norms/rope/activations at a few tokens"
  echo "(single kernels of 2-5 us). Decode attention carries FlashInfer's wave steps (batch 14, 28, 41, 82,"
  echo "122 on 108 SMs) only approximately."
  echo
  echo "## The presets' fitted curves (\`pagoda sim-check ${check[*]}\`)"
  echo
  echo '```'
  cat "$tmp/curves.txt"
  echo '```'
  echo
  echo "## The old datasheet roofline (\`... --roofline\`), steps"
  echo
  echo '```'
  sed -n '/^Steps:/,$p' "$tmp/roofline.txt"
  echo '```'
  echo
  echo "## H100 all-reduce (\`pagoda sim-check --model llama3-8b --device h100 --all-reduce $ar_h\`)"
  echo
  echo '```'
  grep '^all' "$tmp/h100.txt"
  echo '```'
} >"$md"
echo "gpu_check.sh: wrote $md" >&2
