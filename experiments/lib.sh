# experiments/lib.sh - the preamble the experiment scripts share. Source it
# first, from a script one folder below experiments/:
#   source "$(dirname "$0")/../lib.sh"
# It turns on `set -euo pipefail` (errors, unset variables and failed pipes
# stop the script), moves to the repository root and defines:
#   exp_name                the script's file name, the prefix of its messages
#   exp_die CODE MESSAGE    "NAME: MESSAGE" on stderr, exit CODE
#   exp_help LAST [FD]      the script's header comment (lines 2..LAST of it,
#                           its usage) on stdout, or on FD 2 after an error
#   exp_needs TOOL...       exit 2 naming the first TOOL that is not on PATH
#   exp_need_pagoda         exit 2 unless $pagoda is an executable
#   exp_need_runs DIR...    exit 2 unless each DIR has a runs.csv (--report
#                           rewrites tables from runs that must be there)
#   exp_study_args LAST "$@"  the arguments of a sim study (--pagoda PATH,
#                           --report, -h|--help: exp_help LAST); sets pagoda
#                           and report, exits 2 on any other argument
# Nothing else runs here: each script keeps its own defaults and steps.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exp_name=$(basename "$0")

exp_die() {
  echo "$exp_name: $2" >&2
  exit "$1"
}

exp_help() {
  sed -n "2,$1p" "$0" >&"${2:-1}"
}

exp_needs() {
  local tool
  for tool; do
    command -v "$tool" >/dev/null || exp_die 2 "needs $tool (scripts/setup.sh installs it)"
  done
}

exp_need_pagoda() {
  [[ -x $pagoda ]] || exp_die 2 "no pagoda binary at $pagoda (build first, or pass --pagoda)"
}

exp_need_runs() {
  local d
  for d; do
    [[ -f $d/runs.csv ]] || exp_die 2 "no $d/runs.csv (run without --report)"
  done
}

exp_study_args() {
  local last=$1
  shift
  while (($#)); do
    case "$1" in
      --pagoda)
        (($# >= 2)) || exp_die 2 "--pagoda needs a path"
        pagoda=$2
        shift 2
        ;;
      --report) report=1; shift ;;
      -h | --help) exp_help "$last"; exit 0 ;;
      *)
        echo "$exp_name: unknown argument '$1'" >&2
        exp_help "$last" 2
        exit 2
        ;;
    esac
  done
}
