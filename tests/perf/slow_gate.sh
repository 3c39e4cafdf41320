#!/usr/bin/env bash
# slow_gate.sh - the perf gate's self-test (ctest perf_gate_slow, label slow:
# two extra builds, a few minutes). For each compile-time switch that adds
# work to one hot path it builds a copy of the working tree with that switch
# (build-perf/slow-*: Release, CPU only), runs scripts/perf_gate.sh on it,
# and checks that the gate fails (exit 1), that the workload on that path is
# a REGRESSION, and that the function it lists first is the one holding the
# extra work:
#   -DPAGODA_PERF_SLOW_KERNEL  a second scan of the scores in the AVX2 paged
#                              attention kernel  -> attention_long, pgd_avx2_attention_heads
#   -DPAGODA_PERF_SLOW_SCHED   a pass over the running sequences' last tokens
#                              in every scheduler step -> sched_preempt, pgd_scheduler_step
# Exit 0 when both hold, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/../.."
fail=0

check() { # DEFINE WORKLOAD FUNCTION
    local def=$1 wl=$2 fn=$3 dir=build-perf/slow-${1#PAGODA_PERF_SLOW_}
    echo "== $def: expect a regression in $wl, first function $fn =="
    if ! cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DPAGODA_CUDA=OFF -DPAGODA_ROCM=OFF \
           -DPAGODA_GPU_EMU=OFF "-DCMAKE_C_FLAGS=-D$def" >/dev/null ||
       ! cmake --build "$dir" -j"$(nproc)" --target pagoda >/dev/null; then
        echo "slow_gate: building $dir failed"
        fail=1
        return
    fi
    local out rc top
    out=$(scripts/perf_gate.sh --pagoda "$dir/pagoda" 2>&1)
    rc=$?
    echo "$out"
    if [[ $rc -ne 1 ]]; then
        echo "slow_gate: $def: the gate exited $rc, want 1 (a regression)"
        fail=1
    fi
    # the first function listed under "REGRESSION <workload>:"
    top=$(awk -v w="REGRESSION $wl:" 'index($0, w) == 1 {f = 1; next} f && /^ +[+-][0-9]/ {print $2; exit}' <<<"$out")
    if [[ $top != "$fn" ]]; then
        echo "slow_gate: $def: the function that moved most in $wl is '$top', want $fn"
        fail=1
    else
        echo "slow_gate: $def: $wl is a regression and the report names $fn first: ok"
    fi
}

check PAGODA_PERF_SLOW_KERNEL attention_long pgd_avx2_attention_heads
check PAGODA_PERF_SLOW_SCHED sched_preempt pgd_scheduler_step
exit $fail
