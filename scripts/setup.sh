#!/usr/bin/env bash
# Install what Pagoda needs to build and test on Debian (run as root, or
# with sudo available). Installs only packages that are missing, so it is
# fast and offline-safe on a machine that already has them.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libcunit1-dev libjansson-dev libinih-dev libpcre2-dev libhwloc-dev gnuplot-nox jq
      openmpi-bin libopenmpi-dev
      libmicrohttpd-dev libcurl4-openssl-dev  # pagoda serve (HTTP); its tests' HTTP client
      valgrind  # the perf gate counts instructions with callgrind (scripts/perf_gate.sh)
      clang libclang-rt-dev  # libFuzzer: the fuzz smoke runs (tests/fuzz/run.sh, ctest label fuzz)
      clang-format  # scripts/check_format.sh (.clang-format; .ci/run): changed lines must be formatted
      hipcc libamdhip64-dev)  # ROCm 5.2 (Debian): the ROCm backend compiles and links in CI
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all build dependencies present"
fi
