#!/usr/bin/env bash
# cluster_sessions_run.sh MPIRUN PAGODA DATA - multi-turn conversations
# through `mpirun -np 2 pagoda run` of a [cluster] replicas = 2, comm = mpi
# config: with round-robin and prefix-aware, every turn of every
# conversation completes with the tokens one engine gives it (the token
# fingerprint), summary.json's per-turn table and each replica's; and
# trace_steps over MPI is refused with a message naming the key. (ctest label mpi)
set -u
mpirun=$1 pagoda=$2 data=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat >"$dir/c.ini" <<EOF2
[experiment]
name = c
seed = 3
[model]
path = $data/models/stories260K/stories260K.bin
tokenizer = $data/models/stories260K/tok512.bin
threads = 2
[sampling]
temperature = 0
[engine]
prefix_caching = on
[workload]
num_requests = 6
turns = 3
think_time = 0.01
rate = 50
input_len = uniform
input_min = 4
input_max = 30
output_len = uniform
output_min = 4
output_max = 30
[cluster]
replicas = 2
comm = mpi
[sweep]
cluster.router = round-robin, prefix-aware
EOF2
sed -e 's/^replicas = 2$/replicas = 1/' -e 's/^comm = mpi$/comm = threads/' -e 's/^name = c$/name = one/' \
  "$dir/c.ini" >"$dir/one.ini"
fail=0
"$pagoda" run --quiet --output-dir "$dir/out" "$dir/one.ini" >/dev/null 2>&1 || { echo "FAIL: one-engine run"; fail=1; }
want=$(jq -r .token_fingerprint "$dir/out/one/router-round-robin/summary.json")
timeout 120 "$mpirun" --oversubscribe -np 2 "$pagoda" run --quiet --output-dir "$dir/out" "$dir/c.ini" \
  >"$dir/log" 2>&1 || { cat "$dir/log"; echo "FAIL: mpirun -np 2 pagoda run"; fail=1; }
for r in round-robin prefix-aware; do
  s=$dir/out/c/router-$r/summary.json
  got=$(jq -r '[.token_fingerprint, .completed, (.turns | length), ([.cluster.per_replica[].turns[]?.completed] | add)]
    | @tsv' "$s" 2>/dev/null)
  echo "$r: $got (one engine: $want)"
  [[ $got == "$want	18	3	18" ]] || { echo "FAIL: $r"; fail=1; }
done
# the decision trace is per process: refused over MPI
printf '[experiment]\ntrace_steps = on\n' >>"$dir/c.ini"
timeout 60 "$mpirun" --oversubscribe -np 2 "$pagoda" run --quiet --output-dir "$dir/outt" "$dir/c.ini" >"$dir/logt" 2>&1
rc=$?
grep -q "trace_steps with \[cluster\] comm = mpi" "$dir/logt" && [[ $rc -ne 0 && $rc -ne 124 ]] ||
  { cat "$dir/logt"; echo "FAIL: trace_steps over MPI not refused (exit $rc)"; fail=1; }
exit $fail
