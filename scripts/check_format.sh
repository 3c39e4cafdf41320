#!/usr/bin/env bash
# Fail when C lines changed since BASE are not as clang-format writes them
# (.clang-format); print clang-format's version of them.
#
#   scripts/check_format.sh [BASE]        check (CI: .ci/run)
#   scripts/check_format.sh --fix [BASE]  reformat those lines in place
#
# BASE defaults to where HEAD left main (on main itself: HEAD~1, i.e. the
# last commit or merge). The changes are the committed and uncommitted ones
# (git diff BASE, renames followed: a moved file is not new lines).
#
# Only changed lines are checked: the existing code was wrapped by hand and
# no clang-format options reproduce every wrap (under .clang-format the
# whole tree would change about 5200 of its 57000 lines, nearly all of them
# line breaks), so reformatting it all would bury the history for nothing.
# New and edited lines follow the file; old ones stay as they are.
set -euo pipefail
cd "$(dirname "$0")/.."
fix=0
if [[ ${1:-} == --fix ]]; then fix=1; shift; fi
base=${1:-}
if [[ -z $base ]]; then
  if git rev-parse -q --verify main >/dev/null && [[ $(git merge-base HEAD main) != $(git rev-parse HEAD) ]]; then
    base=$(git merge-base HEAD main)
  else
    base=HEAD~1
  fi
fi
cfd=$(command -v clang-format-diff || command -v clang-format-diff-14 || true)
[[ -n $cfd ]] || { echo "check_format: clang-format-diff not found (scripts/setup.sh installs clang-format)" >&2; exit 2; }
git rev-parse -q --verify "$base^{commit}" >/dev/null || { echo "check_format: unknown base '$base'" >&2; exit 2; }
changes() { git diff -U0 -M --no-color "$base" -- '*.c' '*.h' ':!tests/fuzz/seeds'; }
if ((fix)); then
  changes | "$cfd" -p1 -i
  exit 0
fi
out=$(changes | "$cfd" -p1)
if [[ -z $out ]]; then
  echo "check_format: the C lines changed since $(git rev-parse --short "$base") are formatted"
  exit 0
fi
echo "$out"
echo "check_format: the lines above (changed since $(git rev-parse --short "$base")) are not as clang-format" \
     "writes them; run scripts/check_format.sh --fix${1:+ $1}" >&2
exit 1
