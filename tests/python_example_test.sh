#!/bin/sh
# python_example_test.sh BUILD_DIR SOURCE_DIR DATA_DIR SANITIZE - the
# Python example (examples/python/generate.py: ctypes over libpagoda.so,
# standard library only) prints the stories260K golden continuation. Exit
# 77 (skipped) without python3 or in a sanitizer build.
set -eu
build=$1 src=$2 data=$3 sanitize=$4
case "$sanitize" in ON|on|1|TRUE|true) echo "skipped: sanitizer build"; exit 77 ;; esac
command -v python3 >/dev/null || { echo "skipped: no python3"; exit 77; }
lib=$(find "$build" -maxdepth 1 -name 'libpagoda.so*' | head -n 1)
[ -n "$lib" ] || { echo "FAIL: no libpagoda.so in $build (PAGODA_SHARED=OFF?)"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
PAGODA_LIB=$lib python3 "$src/examples/python/generate.py" "$data/models/stories260K/stories260K.bin" \
    "$data/models/stories260K/tok512.bin" "Once upon a time" 252 >"$tmp/out.txt"
python3 - "$data/golden/stories260K_greedy.jsonl" "$tmp/out.txt" <<'PY'
import json, sys
golden = json.loads(open(sys.argv[1]).readline())["text"]
got = open(sys.argv[2]).read().rstrip("\n")
if got != golden:
    sys.exit("FAIL: the Python example's text is not the golden continuation:\n%r\n%r" % (got[:200], golden[:200]))
PY
# a bad model path is a PagodaError with the library's message, exit 1
if PAGODA_LIB=$lib python3 "$src/examples/python/generate.py" /nonexistent.bin x "hi" 4 2>"$tmp/err.txt"; then
    echo "FAIL: a missing model did not fail"; exit 1
fi
grep -q "/nonexistent.bin" "$tmp/err.txt" || { echo "FAIL: the error does not name the file:"; cat "$tmp/err.txt"; exit 1; }
# an experiment config from Python: the rows of its runs.csv
cat >"$tmp/exp.ini" <<EOF2
[experiment]
name = pyexp
[model]
path = random:stories260K
backend = sim
[workload]
num_requests = 5
[sweep]
engine.policy = fcfs, sjf
EOF2
PAGODA_LIB=$lib PYTHONPATH=$src/examples/python python3 - "$tmp/exp.ini" "$tmp/results" <<'PY'
import os, sys
from pagoda import run_experiment
rows = run_experiment(sys.argv[1], sys.argv[2])
assert [r["run"] for r in rows] == ["policy-fcfs", "policy-sjf"], rows
assert all(r["completed"] == "5" for r in rows), rows
assert os.path.exists(os.path.join(sys.argv[2], "pyexp", "policy-sjf", "complete.json"))
PY
echo "ok: examples/python/generate.py printed the golden continuation; run_experiment ran a config"
