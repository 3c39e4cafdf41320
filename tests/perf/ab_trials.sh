#!/usr/bin/env bash
# ab_trials.sh - how well the perf gate's wall-clock A/B mode separates a
# real slowdown from noise on this machine (ctest perf_ab_trials, label
# slow: about 20 minutes on 2 cores). Runs `scripts/perf_gate.sh --vs HEAD`
# TRIALS times with no change (HEAD's build against the working tree's,
# built separately: commit first so that they hold the same code) and TRIALS
# times against a build of the working tree with -DPAGODA_PERF_SLOW_MATMUL=13
# (13% of every matmul's output columns computed twice: about 10% slower
# prefill and decode), the two kinds alternating so both see the same load.
# Counts the trials the gate flagged (exit 1) and passes when it flagged at
# least 9 in 10 of the slowed ones and at most 1 in 10 of the unchanged.
#   tests/perf/ab_trials.sh [--trials N] [--pairs N]
# Logs: build-perf/ab_trials/{clean,slow}-N.txt.
set -uo pipefail
cd "$(dirname "$0")/../.."
trials=10
pairs=30
while (($#)); do
    case "$1" in
        --trials) trials=$2; shift 2 ;;
        --pairs) pairs=$2; shift 2 ;;
        *) echo "usage: $0 [--trials N] [--pairs N]" >&2; exit 2 ;;
    esac
done
[[ -z $(git status --porcelain --untracked-files=no) ]] ||
    echo "ab_trials: warning: uncommitted changes: the 'no change' trials compare HEAD with a different tree" >&2
logs=build-perf/ab_trials
mkdir -p "$logs"
slow=build-perf/slow-MATMUL13
cmake -S . -B "$slow" -DCMAKE_BUILD_TYPE=Release -DPAGODA_CUDA=OFF -DPAGODA_ROCM=OFF -DPAGODA_GPU_EMU=OFF \
    -DCMAKE_C_FLAGS=-DPAGODA_PERF_SLOW_MATMUL=13 >/dev/null &&
    cmake --build "$slow" -j"$(nproc)" --target pagoda >/dev/null || { echo "ab_trials: building $slow failed"; exit 2; }
t0=$(date +%s)
flag_clean=0
flag_slow=0
for ((t = 1; t <= trials; t++)); do
    for kind in clean slow; do
        args=(--vs HEAD --pairs "$pairs")
        [[ $kind == slow ]] && args+=(--pagoda "$slow/pagoda")
        scripts/perf_gate.sh "${args[@]}" >"$logs/$kind-$t.txt" 2>&1
        rc=$?
        if ((rc == 2)); then
            cat "$logs/$kind-$t.txt"
            echo "ab_trials: the A/B run failed (exit 2)"
            exit 2
        fi
        ((rc == 1)) && { [[ $kind == slow ]] && flag_slow=$((flag_slow + 1)) || flag_clean=$((flag_clean + 1)); }
        echo "trial $t $kind: $( ((rc == 1)) && echo FLAGGED || echo not flagged) ($(grep -E '^\| [a-z_0-9]+ cpu' "$logs/$kind-$t.txt" | awk -F'|' '{gsub(/ /,"",$2); gsub(/ /,"",$5); printf "%s %s ", $2, $5}'))"
    done
done
secs=$(( $(date +%s) - t0 ))
echo "ab_trials: slowed build flagged in $flag_slow of $trials trials, unchanged build in $flag_clean of $trials" \
     "($pairs pairs each; $((secs / 60)) min $((secs % 60)) s in all, $((secs / (2 * trials))) s per trial)"
if ((flag_slow * 10 >= 9 * trials && flag_clean * 10 <= trials)); then
    echo "ab_trials: ok"
    exit 0
fi
echo "ab_trials: FAILED (want >= 90% of the slowed trials flagged and <= 10% of the unchanged)"
exit 1
