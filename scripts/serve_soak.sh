#!/usr/bin/env bash
# serve_soak.sh - by hand, not in CI: many concurrent streaming clients
# against `pagoda serve` for a while, plus clients that hang up mid-stream.
# Reports requests completed, errors, aborts seen in /metrics, KV blocks in
# use after the run (must be 0), and the server's RSS over time; with an
# ASan build (build-asan/pagoda) also whether ASan reported anything (its
# reports go to files that must not exist at the end).
#
#   scripts/serve_soak.sh [--pagoda BIN] [--clients N] [--hangups N] [--seconds S] [--max-tokens N]
# defaults: build-asan/pagoda, 64 clients, 4 hang-up clients, 120 s, 64 tokens; stories260K.
set -euo pipefail
bin=build-asan/pagoda clients=64 hangups=4 seconds=120 maxtok=64
while (($#)); do
  case $1 in
    --pagoda) bin=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --hangups) hangups=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --max-tokens) maxtok=$2; shift 2 ;;
    *) echo "serve_soak: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[[ -x $bin ]] || { echo "serve_soak: no executable '$bin' (build it first)" >&2; exit 2; }
data=${PAGODA_SHARED_DATA:-$(cd "$(dirname "$0")/.." && pwd)/../shared/data}
dir=$(mktemp -d /tmp/serve_soak.XXXXXX)
: > "$dir/server.log"
ASAN_OPTIONS="log_path=$dir/asan:detect_leaks=1" "$bin" serve --port 0 --max-queue 4096 \
  --model "$data/models/stories260K/stories260K.bin" --tokenizer "$data/models/stories260K/tok512.bin" \
  > "$dir/server.log" 2>&1 &
pid=$!
port=
for _ in $(seq 1 300); do
  port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$dir/server.log")
  [[ -n $port ]] && break
  sleep 0.1
done
[[ -n $port ]] || { echo "serve_soak: the server did not start:"; cat "$dir/server.log"; kill $pid; exit 1; }
url=http://127.0.0.1:$port
rss() { awk '/VmRSS/ {print $2}' /proc/$pid/status; }
echo "serve_soak: server pid $pid on $url, $clients streaming clients + $hangups hanging up, ${seconds}s, logs in $dir"
end=$(($(date +%s) + seconds))
client() { # $1 = index: stream requests until the end, count complete streams and errors
  local ok=0 err=0 i=0 out
  while (($(date +%s) < end)); do
    i=$((i + 1))
    out=$(curl -sN --max-time 120 "$url/v1/completions" -H 'Content-Type: application/json' \
      -d "{\"prompt\": \"Once upon a time $1 $i\", \"max_tokens\": $maxtok, \"temperature\": 0.8, \"seed\": $i,
           \"stream\": true, \"stream_options\": {\"include_usage\": true}}") || true
    if [[ $out == *'"usage"'*'data: [DONE]'* ]]; then ok=$((ok + 1)); else err=$((err + 1)); fi
  done
  echo "$ok $err" > "$dir/client.$1"
}
hangup() { # long streams cut after 0.3 s: each must be aborted by the server
  local n=0
  while (($(date +%s) < end)); do
    curl -sN --max-time 0.3 "$url/v1/completions" -H 'Content-Type: application/json' \
      -d '{"prompt": "Once upon a time", "max_tokens": 400, "ignore_eos": true, "stream": true}' > /dev/null || true
    n=$((n + 1))
  done
  echo "$n" > "$dir/hangup.$1"
}
sleep 1
rss0=$(rss)
for c in $(seq 1 "$clients"); do client "$c" & done
for h in $(seq 1 "$hangups"); do hangup "$h" & done
samples="$rss0"
while (($(date +%s) < end)); do sleep 10; samples="$samples $(rss)"; done
wait $(jobs -p | grep -v "^$pid\$") 2> /dev/null || true
sleep 2
rss1=$(rss)
metrics=$(curl -s "$url/metrics")
kill -TERM $pid
wait $pid 2> /dev/null; rc=$?
ok=0 err=0 cut=0
for f in "$dir"/client.*; do read -r a b < "$f"; ok=$((ok + a)); err=$((err + b)); done
for f in "$dir"/hangup.*; do [[ -f $f ]] && cut=$((cut + $(cat "$f"))); done
m() { echo "$metrics" | grep "^$1" | awk '{print $NF}' | head -1; }
echo "serve_soak: streams completed $ok, errors $err, hang-ups sent $cut"
echo "serve_soak: /metrics: success stop $(m 'vllm:request_success_total{.*"stop"'), length $(m 'vllm:request_success_total{.*"length"'), abort $(m 'vllm:request_success_total{.*"abort"'), kv blocks used after $(m 'pagoda:kv_blocks_used'), in flight $(m 'pagoda:requests_in_flight'), rejected $(m 'pagoda:requests_rejected_total')"
echo "serve_soak: server RSS KiB: start $rss0, end $rss1; every 10 s: $samples"
echo "serve_soak: server exit status $rc after SIGTERM"
if ls "$dir"/asan.* > /dev/null 2>&1; then
  echo "serve_soak: ASan/UBSan REPORTED problems:"; cat "$dir"/asan.*; exit 1
fi
echo "serve_soak: no sanitizer reports"
grep -i "runtime error" "$dir/server.log" && exit 1
[[ $err -eq 0 && $rc -eq 0 ]]
