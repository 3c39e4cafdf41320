#!/usr/bin/env bash
# tests/fuzz/run.sh - build the libFuzzer targets with clang, and run one.
#
#   run.sh build BUILD_DIR            configure + build every target (once; then incremental)
#   run.sh run BUILD_DIR TARGET SECS  seed a corpus from the real files and fuzz TARGET for SECS s
#
# ctest runs `build` as the fixture of the fuzz_* smoke tests (label fuzz,
# about 20 s each; tests/CMakeLists.txt). Without clang or libFuzzer
# (scripts/setup.sh installs them) `build` builds nothing and each `run`
# exits 77 (skipped). Memory is capped
# with -rss_limit_mb and -malloc_limit_mb: a reader asking for more fails.
# Seeds come from ../shared/data (or $PAGODA_SHARED_DATA), experiments/ and
# results/baselines/ci/, copied into BUILD_DIR/corpus/TARGET (never into the
# repository), plus the hand-made regression seeds of tests/fuzz/seeds/TARGET;
# a crash leaves its input in BUILD_DIR/artifacts/.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
mode=${1:?usage: run.sh build|run BUILD_DIR [TARGET SECS]}
dir=${2:?usage: run.sh build|run BUILD_DIR [TARGET SECS]}
data=${PAGODA_SHARED_DATA:-$root/../shared/data}
CC=${PAGODA_FUZZ_CC:-clang}

have_libfuzzer() {
  command -v "$CC" >/dev/null 2>&1 || return 1
  local t; t=$(mktemp -d)
  printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }\n' > "$t/f.c"
  "$CC" -fsanitize=fuzzer,address "$t/f.c" -o "$t/f" >/dev/null 2>&1; local rc=$?
  rm -rf "$t"
  return $rc
}

if [[ $mode == build ]]; then
  if ! have_libfuzzer; then
    # exit 0, not 77: the fuzz_* tests that need this build then run and
    # each skips (77) by the marker, naming the reason
    echo "fuzz: $CC with libFuzzer not found (scripts/setup.sh installs clang and libclang-rt-dev): nothing built"
    mkdir -p "$dir" && touch "$dir/NO_LIBFUZZER"
    exit 0
  fi
  rm -f "$dir/NO_LIBFUZZER"
  cmake -S "$root/tests/fuzz" -B "$dir" -DCMAKE_C_COMPILER="$CC" -DCMAKE_BUILD_TYPE=None >/dev/null || exit 1
  exec cmake --build "$dir" -j"$(nproc)"
fi

target=${3:?target}
secs=${4:-20}
if [[ -e $dir/NO_LIBFUZZER ]] || ! have_libfuzzer; then
  echo "fuzz: $CC with libFuzzer not found: skipped"; exit 77
fi
bin="$dir/fuzz_$target"
[[ -x $bin ]] || { echo "fuzz: $bin not built (run.sh build $dir first)"; exit 1; }

corpus="$dir/corpus/$target"
rm -rf "$corpus" && mkdir -p "$corpus" "$dir/artifacts"
seed_file() { [[ -f $1 ]] && cp "$1" "$corpus/$(basename "$1")"; return 0; }
seed_head() { [[ -f $1 ]] && head -c "$2" "$1" > "$corpus/$(basename "$1")"; return 0; }
extra=()
case $target in
  gguf) seed_file "$data/models/tiny-random-gguf/llama-2-tiny-random.gguf"
        head -c 4096 "$data/models/tiny-random-gguf/llama-2-tiny-random.gguf" > "$corpus/gguf_head" 2>/dev/null ;;
  llama2c) seed_file "$data/models/stories260K/stories260K.bin"
           head -c 28 "$data/models/stories260K/stories260K.bin" > "$corpus/header_only" 2>/dev/null ;;
  tokenizer) for f in "$data/models/stories260K/tok512.bin" "$data/tokenizers/llama2_tokenizer.bin"; do
               [[ -f $f ]] || continue
               n=$( [[ $f == *tok512* ]] && echo 512 || echo 32000 )
               { printf "\\x$(printf %02x $(((n - 1) & 255)))\\x$(printf %02x $(((n - 1) >> 8)))"; cat "$f"; } > "$corpus/$(basename "$f")"
             done ;;
  config) for f in "$root"/experiments/*.ini "$root"/experiments/*/*.ini; do
            [[ $f == */perf/* ]] || seed_file "$f"; done ;;
  trace) for f in "$data"/traces/*.csv "$data"/traces/*.jsonl "$data"/traces/*.json; do
           [[ -f $f ]] || continue
           case $f in *.csv) k='\x42' ;; *mooncake*) k='\x43' ;; *.json) k='\x44' ;; *) continue ;; esac
           { printf "$k"; head -n 40 "$f" | head -c 8192; } > "$corpus/$(basename "$f")"
         done
         export PGD_FUZZ_TOKENIZER="$data/models/stories260K/tok512.bin" ;;
  compare) for f in "$root"/results/baselines/ci/*/*/summary.json; do
             [[ -f $f ]] && cp "$f" "$corpus/$(basename "$(dirname "$f")").json"; done
           for f in "$root"/results/baselines/ci/*/*/config.ini; do
             [[ -f $f ]] && cp "$f" "$corpus/$(basename "$(dirname "$f")").ini"; done
           PGD_FUZZ_BASELINE=$(ls "$root"/results/baselines/ci/*/*/summary.json 2>/dev/null | head -n 1)
           export PGD_FUZZ_BASELINE ;;
  shape) ;; # tests/fuzz/seeds/shape only
  safetensors) ;; # tests/fuzz/seeds/safetensors only
  bpe) printf '\x00' > "$corpus/none.json"
       if [[ -f $data/traces/sharegpt_v3_filtered_500.json ]]; then
         { printf '\x01'; head -c 4096 "$data/traces/sharegpt_v3_filtered_500.json"; } > "$corpus/sharegpt"
       fi
       export PGD_FUZZ_BPE="$data/tokenizers/smollm2_tokenizer.json" ;;
  *) echo "fuzz: unknown target '$target'"; exit 2 ;;
esac
# regression seeds kept in the repository (small, made by hand: issue 18's inputs)
[[ -d $root/tests/fuzz/seeds/$target ]] && cp "$root/tests/fuzz/seeds/$target"/* "$corpus/"
echo "fuzz: $target for $secs s from $(ls "$corpus" | wc -l) seeds"
# detect_leaks: the readers must not leak on any input; a 2 GB RSS or a
# single 1 GB allocation is a finding (issue 18: bounded memory on any input).
# A finding exits 3 (a timeout 4): libFuzzer's own default, 77, is ctest's
# skip code here, so a finding read as "Skipped".
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  "$bin" "$corpus" -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
  -seed=1 -error_exitcode=3 -timeout_exitcode=4 -print_final_stats=1 \
  -artifact_prefix="$dir/artifacts/${target}-" "${extra[@]}" 2>&1 | tail -n 40
rc=${PIPESTATUS[0]}
[[ $rc -eq 0 ]] && echo "fuzz: $target: no finding in $secs s" || echo "fuzz: $target: FINDING (exit $rc), input in $dir/artifacts/"
exit $rc
