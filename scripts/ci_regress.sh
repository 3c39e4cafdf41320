#!/usr/bin/env bash
# ci_regress.sh - the CI regression suite: runs every experiments/ci/*.ini
# (deterministic: all requests at t = 0, machine-independent metrics) and
# checks each against its committed baseline in results/baselines/ci/<name>/
# with `pagoda compare` (thresholds from the config's [compare] section).
#   scripts/ci_regress.sh [--pagoda PATH] [--update]
# --update re-runs the suite and rewrites the baselines (summary.json, config.ini
# and the run's complete.json marker; commit them).
# Exit status: 0 no regression, 1 a regression, 2 bad input or a failed run.
set -uo pipefail
cd "$(dirname "$0")/.."
pagoda=build/pagoda
update=0
while (($#)); do
  case "$1" in
    --pagoda) pagoda=$2; shift 2 ;;
    --update) update=1; shift ;;
    *) echo "usage: $0 [--pagoda PATH] [--update]" >&2; exit 2 ;;
  esac
done
[[ -x $pagoda ]] || { echo "ci_regress: no pagoda binary at $pagoda (build first)" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
for ini in experiments/ci/*.ini; do
  name=$(basename "$ini" .ini)
  if ! "$pagoda" run --quiet --output-dir "$out" "$ini" >/dev/null; then
    echo "ci_regress: $ini failed to run" >&2
    exit 2
  fi
  base=results/baselines/ci/$name
  if ((update)); then
    rm -rf "$base"
    for run in "$out/$name"/*/; do
      r=$(basename "$run")
      mkdir -p "$base/$r"
      cp "$run/summary.json" "$run/config.ini" "$run/complete.json" "$base/$r/"
    done
    echo "ci_regress: baseline $base updated"
    continue
  fi
  echo "== $ini vs $base =="
  "$pagoda" compare "$base" "$out/$name"
  rc=$?
  ((rc > status)) && status=$rc
done
exit $status
