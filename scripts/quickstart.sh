#!/usr/bin/env bash
# README command 1: install what is missing, build (Release), and run the
# main job: greedy generation with the real stories260K model from
# ../shared/data (no download), a short speed benchmark on a random
# stories15M-shape model, then a small experiment end to end
# (experiments/quickstart.ini: 6 runs, seconds) with its plots.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
DATA=${PAGODA_DATA:-../shared/data}
echo
echo "== pagoda generate (stories260K, greedy) =="
./build/pagoda generate --model "$DATA/models/stories260K/stories260K.bin" \
  --tokenizer "$DATA/models/stories260K/tok512.bin" --prompt "Once upon a time" --max-tokens 120
echo
echo "== pagoda bench (random stories15M shape) =="
./build/pagoda bench --model random:stories15M --batches 1,8 --reps 3 --decode-steps 8
echo
echo "== pagoda run experiments/quickstart.ini (6 runs: 3 request rates x 2 KV managers) =="
./build/pagoda run experiments/quickstart.ini
./build/pagoda plot results/quickstart
echo
echo "results: results/quickstart/runs.csv (one row per run) and results/quickstart/<run>/"
echo "         {summary.json, requests.csv, timeline.csv, op_times.csv, config.ini, env.json, complete.json}"
echo "plots:   results/quickstart/plots/*.png and *.svg (script: results/quickstart/plots/plots.gp)"
