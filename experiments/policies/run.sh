#!/usr/bin/env bash
# run.sh - the scheduling-policy study on the sim (Llama-2-7B shape, A100):
#   fcfs vs cache-aware orders on the Mooncake conversation trace
#   (cache_mooncake.ini) and fcfs vs VTC fairness on a two-client Azure mix
#   (fair_azure.ini); writes results/policies/README.md (the results table)
#   and the plots cache_mooncake.{png,svg} and fair_azure.{png,svg}.
#   experiments/policies/run.sh [--pagoda PATH] [--report]
# --report: only rewrite the table and plots from the existing runs.
# Deterministic: the same seed gives the same numbers. Needs jq and gnuplot.
source "$(dirname "$0")/../lib.sh"
pagoda=build/pagoda report=0 out=results/policies
exp_study_args 9 "$@"
exp_needs jq gnuplot
if ((!report)); then
  exp_need_pagoda
  for c in cache_mooncake fair_azure; do "$pagoda" run --quiet "experiments/policies/$c.ini" >/dev/null; done
fi
mkdir -p "$out"
cm=$out/cache_mooncake fa=$out/fair_azure
exp_need_runs "$cm" "$fa"

# cache: policy hit_rate tokens_computed ttft_mean ttft_median ttft_p99 e2e_mean duration
cache_rows() {
  for p in fcfs cache-aware cache-aware-uncached; do
    jq -r --arg p "$p" '[$p, .prefix_hit_rate, .engine.tokens_computed, .total_input_tokens, .ttft.mean, .ttft.median,
        .ttft.p99, .e2e.mean, .duration_s, .engine.preemptions] | @tsv' "$cm/policy-$p/summary.json"
  done
}
# fairness: policy client service_rate ttft_mean ttft_p99 requests jain
fair_rows() {
  for p in fcfs vtc; do
    jq -r --arg p "$p" '.jain_fairness as $j | .clients[] | [$p, .id, .service_rate, .ttft.mean, .ttft.p99,
        .requests, $j] | @tsv' "$fa/policy-$p/summary.json"
  done
}
cache_rows > "$out/cache_mooncake.tsv"
fair_rows > "$out/fair_azure.tsv"

gnuplot <<GP
set datafile separator "\t"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set grid ytics
set key below
set yrange [0:*]
set xtics rotate by -12
do for [fmt in "png svg"] {
  if (fmt eq "png") { set terminal pngcairo noenhanced size 900,460 font ",10" } else { set terminal svg noenhanced size 900,460 font "Helvetica,10" }
  set output "$out/cache_mooncake.".fmt
  set multiplot layout 1,2 title "Mooncake conversation trace, 1500 requests, Llama-2-7B on the sim's A100-80GB"
  set ylabel "TTFT (s)"
  plot "$out/cache_mooncake.tsv" using 5:xtic(1) title "mean", "" using 6 title "median", "" using 7 title "p99"
  set ylabel "share"
  plot "$out/cache_mooncake.tsv" using 2:xtic(1) title "prefix hit rate", "" using (1 - \$3 / \$4) title "prompt tokens not computed"
  unset multiplot
  set output "$out/fair_azure.".fmt
  set multiplot layout 1,2 title "Two clients, Azure conv lengths (client 0: 3x the rate, bursty), Llama-2-7B on the sim's A100-40GB"
  set ylabel "service while requests arrive (prompt + 2 x output tokens/s)"
  plot "< awk -F'\t' '\$2 == 0' $out/fair_azure.tsv" using 3:xtic(1) title "client 0 (bursty, 6 req/s)", \
       "< awk -F'\t' '\$2 == 1' $out/fair_azure.tsv" using 3 title "client 1 (steady, 2 req/s)"
  set ylabel "mean TTFT (s)"
  plot "< awk -F'\t' '\$2 == 0' $out/fair_azure.tsv" using 4:xtic(1) title "client 0", \
       "< awk -F'\t' '\$2 == 1' $out/fair_azure.tsv" using 4 title "client 1"
  unset multiplot
}
GP

{
  echo "# Scheduling policies on the sim"
  echo
  echo "Written by \`experiments/policies/run.sh\` (configs in experiments/policies/; the runs are in"
  echo "this directory's run folders, not committed). Sim backend, Llama-2-7B shape in f16."
  echo
  echo "## Cache-aware order vs fcfs: Mooncake conversation trace (cache_mooncake.ini)"
  echo
  echo "| policy | prefix hit rate | prompt tokens computed | TTFT mean (s) | TTFT median (s) | TTFT p99 (s) | E2E mean (s) | duration (s) | preemptions |"
  echo "|---|---|---|---|---|---|---|---|---|"
  awk -F'\t' '{ printf "| %s | %.3f | %d of %d (%.1f%%) | %.1f | %.1f | %.1f | %.1f | %.1f | %d |\n", $1, $2, $3, $4, 100 * $3 / $4, $5, $6, $7, $8, $9, $10 }' "$out/cache_mooncake.tsv"
  echo
  echo "![cache](cache_mooncake.png)"
  echo
  awk -F'\t' 'NR == 1 { f5 = $5; f3 = $3; f10 = $10 } NR == 2 { printf "Longest-cached-prefix-first (cache-aware) computes %.1f%% fewer prompt tokens than fcfs and cuts the mean TTFT by %.1f%% (%.1f s to %.1f s): with hundreds of requests queued it serves first those whose prefix blocks are in the cache (in this trace, turns sharing blocks with earlier ones), most likely before LRU evicts those blocks.", 100 * (f3 - $3) / f3, 100 * (f5 - $5) / f5, f5, $5 }
    NR == 3 { printf " Fewest-uncached-tokens-first (cache-aware-uncached) saves the most computation (%.1f%% fewer tokens) but, since it also favours short prompts, it preempts %d times (fcfs: %d) and its TTFT gain is smaller (%.1f s mean).\n", 100 * (f3 - $3) / f3, $10, f10, $5 }' "$out/cache_mooncake.tsv"
  echo
  echo "## VTC fairness vs fcfs: two-client Azure mix (fair_azure.ini)"
  echo
  echo "| policy | client | requests | service while arriving (tok/s, VTC weights) | TTFT mean (s) | TTFT p99 (s) | Jain's index |"
  echo "|---|---|---|---|---|---|---|"
  awk -F'\t' '{ printf "| %s | %d | %d | %.0f | %.1f | %.1f | %.3f |\n", $1, $2, $6, $3, $4, $5, $7 }' "$out/fair_azure.tsv"
  echo
  echo "![fairness](fair_azure.png)"
  echo
  awk -F'\t' '$1 == "fcfs" { s[$2] = $3; t[$2] = $4; j = $7 } $1 == "vtc" { v[$2] = $3; u[$2] = $4; k = $7 }
    END { printf "Under fcfs the bursty client (6 req/s against the steady client'"'"'s 2) gets %.1fx the steady client'"'"'s service while requests arrive, the engine overloaded (Jain %.3f); VTC serves the least-served client first and brings the two within %.0f%% of each other (Jain %.3f), cutting the steady client'"'"'s mean TTFT from %.1f s to %.1f s at the cost of the bursty one'"'"'s (%.1f s to %.1f s). The randomized scheduler test holds VTC to its bound: over any interval in which two clients stay backlogged their services differ by at most 2U (U = max(longest context, 2 x KV capacity in tokens)).\n",
      s[0] / s[1], j, 100 * (v[0] > v[1] ? v[0] - v[1] : v[1] - v[0]) / (v[0] > v[1] ? v[1] : v[0]), k, t[1], u[1], t[0], u[0] }' "$out/fair_azure.tsv"
} > "$out/README.md"
echo "run.sh: wrote $out/README.md, $out/cache_mooncake.{png,svg}, $out/fair_azure.{png,svg}"
