#!/usr/bin/env bash
# perf_gate.sh - the performance gate (README "Performance gate").
#
#   scripts/perf_gate.sh [--pagoda PATH] [--history] [--jobs N] [--keep DIR]
#       Count the instructions of every `pagoda perf` workload's measured
#       part under valgrind (callgrind, collecting only inside
#       pgd_perf_measure; one CPU thread, so counts are deterministic), and
#       compare them with results/baselines/perf/instructions.json under the
#       limits of experiments/perf/gate.ini. Prints baseline, current,
#       change and the functions that moved most. --history also times each
#       workload natively (median of 5) and appends one row per workload to
#       results/perf/history.csv (`pagoda plot results/perf/history.csv`).
#   scripts/perf_gate.sh --update
#       Make the baselines: build HEAD from scratch (a git worktree, Release,
#       CPU only) and measure it; the tree must have no uncommitted changes.
#   scripts/perf_gate.sh --vs REF [--pagoda PATH] [--pairs N]
#       Wall-clock A/B: build REF (a git worktree) and the working tree (or
#       take PATH), run `pagoda bench` on both interleaved (ref, cur, ref,
#       cur, ...) N times, and report each metric's time ratio with a
#       bootstrap 95% interval; flag a regression only when the whole
#       interval lies beyond the [ab] threshold.
#
# --pagoda PATH measures that binary instead of build/pagoda (against the
# same baselines; other build flags are reported and judged like any
# other change).
# Exit status: 0 every workload within its limit, 1 a regression, 2 bad
# input, a failed measurement or a changed toolchain (nothing judged).
set -uo pipefail
cd "$(dirname "$0")/.."
pagoda=""
update=0
vs=""
history=0
pairs=30
jobs=$(nproc)
keep=""
config=experiments/perf/gate.ini
baseline=results/baselines/perf/instructions.json
history_file=results/perf/history.csv
# what the A/B mode runs: the perf workloads' small model (5.2M parameters:
# a run takes about 1.5 s, most of it the bench's copy-bandwidth probe), one
# thread, medians of 5 repetitions inside each run; `pagoda perf ab` judges
# the throughputs per CPU second when both builds report them
ab_bench=(bench --model "random:dim=256,layers=4,heads=8,kv_heads=4,hidden=768,vocab=4096,seq=1024"
          --threads 1 --batches 1,16 --reps 5 --decode-steps 32 --prompt-len 128)
# the builds this script makes: Release, CPU only. The GPU backends add no
# CPU code path: CI's build with CUDA and ROCm counts the same as this one
# (config_load aside: see experiments/perf/gate.ini), and nvcc/hipcc are slow.
build_opts=(-DCMAKE_BUILD_TYPE=Release -DPAGODA_CUDA=OFF -DPAGODA_ROCM=OFF -DPAGODA_GPU_EMU=OFF)

usage() {
    sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'
}
die() { echo "perf_gate: $*" >&2; exit 2; }

while (($#)); do
    case "$1" in
        --pagoda) [[ $# -ge 2 ]] || die "--pagoda needs a path"; pagoda=$2; shift 2 ;;
        --update) update=1; shift ;;
        --vs) [[ $# -ge 2 ]] || die "--vs needs a git ref"; vs=$2; shift 2 ;;
        --history) history=1; shift ;;
        --pairs) [[ $# -ge 2 && $2 =~ ^[0-9]+$ && $2 -ge 3 ]] || die "--pairs needs a number >= 3"; pairs=$2; shift 2 ;;
        --jobs) [[ $# -ge 2 && $2 =~ ^[0-9]+$ && $2 -ge 1 ]] || die "--jobs needs a number >= 1"; jobs=$2; shift 2 ;;
        --keep) [[ $# -ge 2 ]] || die "--keep needs a directory"; keep=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument '$1'" ;;
    esac
done
((update)) && [[ -n $pagoda ]] && die "--update makes the baselines from a clean build of HEAD; it takes no --pagoda"
((update)) && [[ -n $vs ]] && die "--update and --vs do not go together"

tmp=$(mktemp -d /tmp/perf_gate.XXXXXX)
worktree=""
cleanup() {
    [[ -n $worktree ]] && git worktree remove --force "$worktree" >/dev/null 2>&1
    if [[ -n $keep ]]; then mkdir -p "$keep" && cp -r "$tmp"/. "$keep"/; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# build_tree SRC BUILD: configure and build the pagoda target of SRC in BUILD
build_tree() {
    local log=$tmp/build.log
    if ! cmake -S "$1" -B "$2" "${build_opts[@]}" >"$log" 2>&1 ||
       ! cmake --build "$2" -j"$(nproc)" --target pagoda >>"$log" 2>&1; then
        tail -20 "$log" >&2
        die "building $1 in $2 failed (log above)"
    fi
}

# build_ref SHA: build commit SHA from a git worktree into build-perf/ref-SHA
# (kept: a later run against the same commit reuses it); sets ref_bin
build_ref() {
    local sha=$1 out=build-perf/ref-$1
    ref_bin=$out/pagoda
    [[ -x $ref_bin ]] && return
    rm -rf "$out"
    worktree=$tmp/src-$sha
    git worktree add --detach "$worktree" "$sha" >/dev/null 2>&1 || die "cannot check out $sha in a worktree"
    echo "perf_gate: building $sha (git worktree, Release, CPU only) ..." >&2
    build_tree "$worktree" "$out"
    git worktree remove --force "$worktree" >/dev/null 2>&1
    worktree=""
}

# ---------------------------------------------------------------- A/B mode
if [[ -n $vs ]]; then
    sha=$(git rev-parse --verify --quiet "$vs^{commit}") || die "--vs '$vs': not a commit in this repository"
    build_ref "$sha"
    if [[ -z $pagoda ]]; then
        echo "perf_gate: building the working tree (build-perf/cur, Release, CPU only) ..." >&2
        build_tree . build-perf/cur
        pagoda=build-perf/cur/pagoda
    fi
    [[ -x $pagoda ]] || die "no pagoda binary at $pagoda"
    echo "perf_gate: A/B $sha (ref) vs $pagoda (cur): $pairs interleaved pairs of pagoda ${ab_bench[*]}" >&2
    t0=$(date +%s)
    for ((i = 1; i <= pairs; i++)); do
        "$ref_bin" "${ab_bench[@]}" --json "$tmp/ref-$i.json" >/dev/null 2>"$tmp/bench.log" ||
            { cat "$tmp/bench.log" >&2; die "pagoda bench failed on $ref_bin"; }
        "$pagoda" "${ab_bench[@]}" --json "$tmp/cur-$i.json" >/dev/null 2>"$tmp/bench.log" ||
            { cat "$tmp/bench.log" >&2; die "pagoda bench failed on $pagoda"; }
    done
    "$pagoda" perf ab --config "$config" "$tmp"
    rc=$?
    echo "perf_gate: A/B took $(( $(date +%s) - t0 )) s of measurements"
    exit $rc
fi

# -------------------------------------------------------- instruction gate
command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null ||
    die "valgrind (callgrind) not found: scripts/setup.sh installs Debian's valgrind package"
vg_version=$(valgrind --version)
if ((update)); then
    dirty=$(git status --porcelain --untracked-files=no -- . ":(exclude)$baseline")
    [[ -z $dirty ]] || die "uncommitted changes (below); baselines are made from HEAD: commit first
$dirty"
    sha=$(git rev-parse HEAD)
    rm -rf "build-perf/ref-$sha" # a fresh build, not a cached one
    build_ref "$sha"
    pagoda=$ref_bin
    commit=$sha
else
    pagoda=${pagoda:-build/pagoda}
    [[ -x $pagoda ]] || die "no pagoda binary at $pagoda (build first, or pass --pagoda PATH)"
    commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
    [[ -n $(git status --porcelain --untracked-files=no 2>/dev/null) ]] && commit="$commit+dirty"
    [[ -r $baseline ]] || die "no baseline at $baseline (scripts/perf_gate.sh --update makes one)"
fi
workloads=$("$pagoda" perf list | awk '{print $1}') || die "$pagoda has no working 'perf' command"
[[ -n $workloads ]] || die "$pagoda perf list printed no workloads"

# The measured runs see no PAGODA_* settings (log level, ISA override, ...):
# the same inputs every time.
unset_env=()
for v in $(compgen -e | grep '^PAGODA_' || true); do unset_env+=(-u "$v"); done

measure() { # WORKLOAD: callgrind counts of its measured part, then the function table
    local w=$1
    # LD_BIND_NOW: library symbols resolved at start-up, not on a first call
    # inside the measured part (that cost grows with the libraries linked in)
    env "${unset_env[@]}" LD_BIND_NOW=1 valgrind --tool=callgrind --callgrind-out-file="$tmp/$w.callgrind" \
        --collect-atstart=no --toggle-collect=pgd_perf_measure \
        "$pagoda" perf "$w" >"$tmp/$w.info" 2>"$tmp/$w.log" &&
    callgrind_annotate --inclusive=no --threshold=100 --auto=no "$tmp/$w.callgrind" >"$tmp/$w.annotate" 2>>"$tmp/$w.log"
}

t0=$(date +%s)
echo "perf_gate: counting instructions of $(echo $workloads | wc -w) workloads with callgrind ($pagoda, $jobs at a time) ..." >&2
declare -A pid_of
failed=()
for w in $workloads; do
    while (($(jobs -rp | wc -l) >= jobs)); do wait -n; done
    measure "$w" &
    pid_of[$w]=$!
done
for w in $workloads; do
    wait "${pid_of[$w]}" || failed+=("$w")
done
if ((${#failed[@]})); then
    for w in "${failed[@]}"; do echo "== $w ==" >&2; tail -15 "$tmp/$w.log" >&2; done
    die "measuring ${failed[*]} failed (logs above)"
fi
if ((history)); then
    echo "perf_gate: timing each workload natively (median of 5) for the history ..." >&2
    for w in $workloads; do
        env "${unset_env[@]}" "$pagoda" perf "$w" --time 5 >"$tmp/$w.wall" 2>>"$tmp/$w.log" ||
            die "timing $w failed: $(tail -3 "$tmp/$w.log")"
    done
fi
if ((update)); then
    old=$tmp/old_baseline.json
    [[ -r $baseline ]] && cp "$baseline" "$old"
    mkdir -p "$(dirname "$baseline")"
    # written whole or not at all (collect writes a temporary file next to it, then renames)
    "$pagoda" perf collect --dir "$tmp" --binary "$pagoda" --valgrind "$vg_version" --commit "$commit" -o "$baseline" ||
        die "could not write $baseline"
    echo "perf_gate: measured in $(( $(date +%s) - t0 )) s; baselines of commit $commit written to $baseline"
    if [[ -r $old ]]; then
        echo "perf_gate: what changed against the previous baselines (review it, then commit $baseline):"
        "$pagoda" perf compare --config "$config" "$old" "$baseline"
    fi
    exit 0
fi
current=$tmp/current.json
"$pagoda" perf collect --dir "$tmp" --binary "$pagoda" --valgrind "$vg_version" --commit "$commit" -o "$current" ||
    die "could not read the measurements"
echo "perf_gate: measured in $(( $(date +%s) - t0 )) s" >&2
hist_args=()
if ((history)); then
    mkdir -p "$(dirname "$history_file")"
    hist_args=(--history "$history_file")
fi
echo "perf gate: instructions of each workload's measured part (callgrind), $pagoda vs $baseline"
"$pagoda" perf compare --config "$config" "${hist_args[@]}" "$baseline" "$current"
