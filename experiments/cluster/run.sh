#!/usr/bin/env bash
# run.sh - the router study on the sim (cluster of 4 replicas, Llama-2-7B
#   shape, A100-80GB each): round-robin, least-outstanding, least-kv and
#   prefix-aware on the Mooncake conversation trace at three loads
#   (routers_mooncake.ini); writes results/cluster/README.md (the table and
#   a sentence per comparison), routers_mooncake.tsv and the plot
#   routers_mooncake.{png,svg}.
#   experiments/cluster/run.sh [--pagoda PATH] [--report]
# --report: only rewrite the table and plots from the existing runs.
# Deterministic: the same seed gives the same numbers. Needs jq and gnuplot.
source "$(dirname "$0")/../lib.sh"
pagoda=build/pagoda report=0 out=results/cluster
exp_study_args 10 "$@"
exp_needs jq gnuplot
if ((!report)); then
  exp_need_pagoda
  "$pagoda" run --quiet experiments/cluster/routers_mooncake.ini >/dev/null
fi
mkdir -p "$out"
rm=$out/routers_mooncake
exp_need_runs "$rm"

routers="round-robin least-outstanding least-kv prefix-aware"
# time_scale router offered hit_rate tokens_computed input_tokens ttft_mean ttft_median ttft_p90 ttft_p99
#   throughput req_min req_max hit_min hit_max preemptions
for ts in 0.3 0.25 0.2; do
  for r in $routers; do
    jq -r --arg ts "$ts" --arg r "$r" '[$ts, $r, .workload.offered_rate, .prefix_hit_rate, .engine.tokens_computed,
        .total_input_tokens, .ttft.mean, .ttft.median, .ttft.p90, .ttft.p99, .request_throughput,
        ([.cluster.per_replica[].routed] | min), ([.cluster.per_replica[].routed] | max),
        ([.cluster.per_replica[].prefix_hit_rate] | min), ([.cluster.per_replica[].prefix_hit_rate] | max),
        .engine.preemptions] | @tsv' "$rm/time_scale-${ts}_router-$r/summary.json"
  done
done > "$out/routers_mooncake.tsv"

gnuplot <<GP
set datafile separator "\t"
set grid ytics
set key below
set yrange [0:*]
do for [fmt in "png svg"] {
  if (fmt eq "png") { set terminal pngcairo noenhanced size 1000,460 font ",10" } else { set terminal svg noenhanced size 1000,460 font "Helvetica,10" }
  set output "$out/routers_mooncake.".fmt
  set multiplot layout 1,2 title "4 replicas (Llama-2-7B, sim A100-80GB each), Mooncake conversation trace, 3000 requests"
  set xlabel "offered load (req/s)"
  set ylabel "prefix hit rate (cluster)"
  plot for [r in "$routers"] "< awk -F'\t' '\$2 == \"".r."\"' $out/routers_mooncake.tsv" using 3:4 with linespoints title r
  set ylabel "mean TTFT (s)"
  set logscale y
  set yrange [*:*]
  plot for [r in "$routers"] "< awk -F'\t' '\$2 == \"".r."\"' $out/routers_mooncake.tsv" using 3:7 with linespoints title r
  unset logscale y
  set yrange [0:*]
  unset multiplot
}
GP

{
  echo "# Routers across replicas on the sim"
  echo
  echo "Written by \`experiments/cluster/run.sh\` (config: experiments/cluster/routers_mooncake.ini; the runs are in"
  echo "this directory's run folders, not committed). A cluster of 4 replicas (\`[cluster] replicas = 4\`), each"
  echo "Llama-2-7B shape in f16 on its own simulated A100-80GB with 48 GiB of KV cache, prefix caching and chunked"
  echo "prefill on, all on one discrete-event timeline; the first 3000 requests of the Mooncake conversation trace"
  echo "(prompts clipped to the 4096-token context) at three arrival speed-ups."
  echo
  echo "| offered (req/s) | router | prefix hit rate | prompt tokens computed | TTFT mean (s) | TTFT median (s) | TTFT p90 (s) | TTFT p99 (s) | achieved (req/s) | requests per replica | hit rate per replica |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  awk -F'\t' '{ printf "| %.1f | %s | %.3f | %.1f%% | %.2f | %.2f | %.2f | %.2f | %.2f | %d-%d | %.3f-%.3f |\n", $3, $2, $4, 100 * $5 / $6, $7, $8, $9, $10, $11, $12, $13, $14, $15 }' "$out/routers_mooncake.tsv"
  echo
  echo "![routers](routers_mooncake.png)"
  echo
  awk -F'\t' '{ h[$1, $2] = $4; t[$1, $2] = $7; p[$1, $2] = $10; o[$1] = $3 }
    END {
      split("0.3 0.25 0.2", L, " ")
      for (i = 1; i <= 3; i++) { l = L[i]
        printf "At %.1f req/s prefix-aware reaches a prefix hit rate of %.3f against round-robin'"'"'s %.3f and least-outstanding'"'"'s %.3f, with a mean TTFT of %.2f s (round-robin %.2f s, least-outstanding %.2f s; p99 %.2f / %.2f / %.2f s).\n\n",
          o[l], h[l, "prefix-aware"], h[l, "round-robin"], h[l, "least-outstanding"], t[l, "prefix-aware"], t[l, "round-robin"],
          t[l, "least-outstanding"], p[l, "prefix-aware"], p[l, "round-robin"], p[l, "least-outstanding"] }
      printf "least-kv is the worst router here (mean TTFT %.2f s at %.1f req/s): a request takes KV blocks only once it is scheduled, so the replica that looks emptiest keeps getting the requests that are still queued on it (its per-replica request counts are the most uneven of the four).\n", t["0.25", "least-kv"], o["0.25"]
    }' "$out/routers_mooncake.tsv"
  echo
  echo "Why the prefix-aware gain is small: the trace's block-level reuse with an unbounded cache is 0.42 of the clipped"
  echo "prompt blocks, 0.15 of it the one system-prompt block every request shares (which every replica caches, so"
  echo "round-robin gets it too). The rest are follow-up turns, which arrive a median of 26 s (at the 4x speed-up)"
  echo "after the turn they extend, while 48 GiB holds about 98k tokens of Llama-2-7B KV, about 10 s of one replica's"
  echo "share of the prompts: most follow-ups find their prefix evicted wherever they go, and the router can only win"
  echo "the ones still cached. SGLang's and Preble's reports of large cache-aware routing gains are on workloads whose"
  echo "shared prefixes stay resident (few-shot and agent prompts reused within seconds); with more KV memory per"
  echo "replica, or a slower conversation rate, the gap would widen."
} > "$out/README.md"
echo "run.sh: wrote $out/README.md, $out/routers_mooncake.tsv, $out/routers_mooncake.{png,svg}"
