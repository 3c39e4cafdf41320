#!/usr/bin/env bash
# run.sh PAGODA_BIN - start `pagoda serve` (stories260K) on a free port, run
# the openai-package client (client.mjs) against it, stop the server.
# Exit 77 (ctest skip) when node or the openai package is missing
# (scripts/setup_openai_test.sh installs the package).
set -u
bin=${1:?usage: run.sh PAGODA_BIN}
here=$(cd "$(dirname "$0")" && pwd)
data=${PAGODA_SHARED_DATA:-$here/../../../shared/data}
command -v node > /dev/null || { echo "run.sh: node not found: skipping"; exit 77; }
[[ -d $here/node_modules/openai ]] || { echo "run.sh: openai package missing (scripts/setup_openai_test.sh): skipping"; exit 77; }
log=$(mktemp)
"$bin" serve --model "$data/models/stories260K/stories260K.bin" --tokenizer "$data/models/stories260K/tok512.bin" \
  --port 0 --served-model-name stories260K > "$log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
port=
for _ in $(seq 1 300); do
  port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$log")
  [[ -n $port ]] && break
  kill -0 $pid 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
[[ -n $port ]] || { echo "run.sh: the server did not start"; cat "$log"; exit 1; }
node "$here/client.mjs" "http://127.0.0.1:$port/v1"
