#!/usr/bin/env bash
# README command 2: install what is missing, build, and run the whole test
# suite twice: a Release build, and a build with AddressSanitizer +
# UndefinedBehaviorSanitizer. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# the openai npm client for the openai_client test (skips without it; best effort: needs the npm registry)
[[ -d tests/openai/node_modules/openai ]] || scripts/setup_openai_test.sh ||
  echo "test.sh: could not install the openai npm package: the openai_client test will skip"
jobs=$(nproc)
status=0

echo "== build (Release) =="
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
echo "== build (ASan + UBSan) =="
# GPU backends (CUDA, ROCm) compile and link in the Release build only: that
# keeps them from rotting without paying nvcc/hipcc twice on a 2-core CI.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DPAGODA_SANITIZE=ON \
  -DPAGODA_CUDA=OFF -DPAGODA_ROCM=OFF >/dev/null
cmake --build build-asan -j"$jobs"

echo "== tests (ASan + UBSan) =="
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --output-on-failure -j"$jobs" -LE slow) || status=1
echo "== tests (Release) =="
(cd build && ctest --output-on-failure -j"$jobs" -LE slow) || status=1
exit $status
