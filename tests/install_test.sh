#!/bin/sh
# install_test.sh BUILD_DIR SOURCE_DIR DATA_DIR SANITIZE - the installed
# library works for a program outside the tree: `cmake --install` into a
# temporary prefix, build examples/c/hello_pagoda.c with
# `pkg-config --cflags --libs pagoda` only, run it on stories260K and
# check its greedy text against `pagoda generate` and, when python3 is
# there to read the JSONL, the golden continuation. Exit 77 (skipped) in a
# sanitizer build (an ASan library cannot be loaded by a plain program) or
# without pkg-config / a C compiler.
set -eu
build=$1 src=$2 data=$3 sanitize=$4
case "$sanitize" in ON|on|1|TRUE|true) echo "skipped: sanitizer build"; exit 77 ;; esac
command -v pkg-config >/dev/null || { echo "skipped: no pkg-config"; exit 77; }
cc=${CC:-cc}
command -v "$cc" >/dev/null || { echo "skipped: no C compiler"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; exit 1; }
pc=$(find "$tmp/prefix" -name pagoda.pc | head -n 1)
[ -n "$pc" ] || { echo "FAIL: cmake --install wrote no pagoda.pc"; exit 1; }
PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_PATH
flags=$(pkg-config --cflags --libs pagoda)
echo "pkg-config --cflags --libs pagoda: $flags"
# shellcheck disable=SC2086
"$cc" -std=c11 -Wall -Wextra -Werror "$src/examples/c/hello_pagoda.c" $flags -o "$tmp/hello_pagoda"
libdir=$(pkg-config --variable=libdir pagoda)
model=$data/models/stories260K/stories260K.bin tok=$data/models/stories260K/tok512.bin
LD_LIBRARY_PATH=$libdir "$tmp/hello_pagoda" "$model" "$tok" "Once upon a time" 252 >"$tmp/out.txt"
# the library it ran is the installed one
LD_LIBRARY_PATH=$libdir ldd "$tmp/hello_pagoda" | grep -q "$libdir/libpagoda.so" ||
    { echo "FAIL: hello_pagoda did not load $libdir/libpagoda.so"; exit 1; }
"$build/pagoda" generate --model "$model" --tokenizer "$tok" --prompt "Once upon a time" --max-tokens 252 \
    >"$tmp/want.txt" 2>/dev/null
cmp -s "$tmp/out.txt" "$tmp/want.txt" || { echo "FAIL: hello_pagoda differs from pagoda generate:";
    diff "$tmp/out.txt" "$tmp/want.txt" | head; exit 1; }
if command -v python3 >/dev/null; then
    python3 - "$data/golden/stories260K_greedy.jsonl" "$tmp/out.txt" <<'PY'
import json, sys
golden = json.loads(open(sys.argv[1]).readline())["text"]
got = open(sys.argv[2]).read().rstrip("\n")
sys.exit(0 if got == golden else "FAIL: hello_pagoda's text is not the golden continuation")
PY
fi
echo "ok: installed libpagoda + pkg-config built examples/c/hello_pagoda.c; it printed the golden continuation"
