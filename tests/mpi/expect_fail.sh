#!/usr/bin/env bash
# expect_fail.sh SECONDS REGEX COMMAND...: run COMMAND (an mpirun job that
# must fail) and pass only if it exits non-zero within SECONDS (no hang) and
# its output matches the extended regex REGEX (the failure is explained).
set -u
limit=$1 regex=$2
shift 2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
start=$(date +%s%N)
timeout -k 5 "$limit" "$@" >"$out" 2>&1
rc=$?
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
cat "$out"
echo "expect_fail: exit status $rc after ${elapsed} ms"
if [[ $rc -eq 124 || $elapsed -ge $((limit * 1000)) ]]; then
  echo "expect_fail: FAIL: still running after ${limit}s (a hang)"
  exit 1
fi
if [[ $rc -eq 0 ]]; then
  echo "expect_fail: FAIL: the job succeeded but should have failed"
  exit 1
fi
if ! grep -Eq "$regex" "$out"; then
  echo "expect_fail: FAIL: output does not match: $regex"
  exit 1
fi
echo "expect_fail: ok (failed as expected, with the expected message)"
