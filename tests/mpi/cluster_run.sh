#!/usr/bin/env bash
# cluster_run.sh MPIRUN PAGODA DATA - `mpirun -np 2 pagoda run` of a
# [cluster] replicas = 2, comm = mpi config (replica r on rank r): every
# router writes its results and gives the token fingerprint of the same
# workload on one engine; a wrong process count is refused; a rank whose
# replica fails (PAGODA_CLUSTER_FAIL_REPLICA=1:3) ends the job quickly with
# a message naming it, never a hang. (ctest label mpi)
set -u
mpirun=$1 pagoda=$2 data=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat >"$dir/c.ini" <<EOF
[experiment]
name = c
seed = 4
[model]
path = $data/models/stories260K/stories260K.bin
tokenizer = $data/models/stories260K/tok512.bin
threads = 2
[engine]
prefix_caching = on
[workload]
num_requests = 24
input_len = uniform
input_min = 4
input_max = 40
output_len = uniform
output_min = 2
output_max = 40
shared_prefix_len = 16
rate = 200
[cluster]
replicas = 2
comm = mpi
[sweep]
cluster.router = round-robin, least-outstanding, least-kv, prefix-aware
EOF
sed -e 's/^replicas = 2$/replicas = 1/' -e 's/^comm = mpi$/comm = threads/' -e 's/^name = c$/name = one/' \
  "$dir/c.ini" >"$dir/one.ini"
fail=0
"$pagoda" run --quiet --output-dir "$dir/out" "$dir/one.ini" >/dev/null 2>&1 || { echo "FAIL: one-engine run"; fail=1; }
want=$(jq -r .token_fingerprint "$dir/out/one/router-round-robin/summary.json")
timeout 120 "$mpirun" --oversubscribe -np 2 "$pagoda" run --quiet --output-dir "$dir/out" "$dir/c.ini" \
  >"$dir/log" 2>&1 || { cat "$dir/log"; echo "FAIL: mpirun -np 2 pagoda run"; fail=1; }
for r in round-robin least-outstanding least-kv prefix-aware; do
  s=$dir/out/c/router-$r/summary.json
  got=$(jq -r '[.token_fingerprint, .completed, .cluster.replicas, (.cluster.per_replica | length)] | @tsv' "$s" 2>/dev/null)
  echo "$r: $got (one engine: $want)"
  [[ $got == "$want	24	2	2" ]] || { echo "FAIL: $r"; fail=1; }
done
grep -q ",cluster_replicas,cluster_router," "$dir/out/c/runs.csv" || { echo "FAIL: runs.csv has no cluster columns"; fail=1; }
# 3 processes for 2 replicas: refused by every rank
timeout 60 "$mpirun" --oversubscribe -np 3 "$pagoda" run --quiet --output-dir "$dir/out3" "$dir/c.ini" >"$dir/log3" 2>&1
rc=$?
grep -q "needs \`mpirun -np 2\`" "$dir/log3" && [[ $rc -ne 0 && $rc -ne 124 ]] ||
  { cat "$dir/log3"; echo "FAIL: -np 3 not refused (exit $rc)"; fail=1; }
# a failing replica on rank 1
start=$(date +%s)
PAGODA_CLUSTER_FAIL_REPLICA=1:3 timeout 60 "$mpirun" --oversubscribe -np 2 -x PAGODA_CLUSTER_FAIL_REPLICA \
  "$pagoda" run --quiet --output-dir "$dir/outf" "$dir/c.ini" >"$dir/logf" 2>&1
rc=$?
secs=$(( $(date +%s) - start ))
if [[ $rc -eq 0 || $rc -eq 124 ]]; then cat "$dir/logf"; echo "FAIL: failing replica: exit $rc"; fail=1; fi
grep -q "replica 1 (rank 1): injected failure" "$dir/logf" || { cat "$dir/logf"; echo "FAIL: no message naming replica 1"; fail=1; }
echo "failing replica: exit $rc after ${secs}s: $(grep -m1 'replica 1 (rank 1)' "$dir/logf")"
# rank 1's process dies mid-run, as a crash would: mpirun ends the job
start=$(date +%s)
PAGODA_CLUSTER_FAIL_REPLICA=1:3 PAGODA_CLUSTER_FAIL_MODE=exit timeout 60 "$mpirun" --oversubscribe -np 2 \
  -x PAGODA_CLUSTER_FAIL_REPLICA -x PAGODA_CLUSTER_FAIL_MODE \
  "$pagoda" run --quiet --output-dir "$dir/oute" "$dir/c.ini" >"$dir/loge" 2>&1
rc=$?
secs=$(( $(date +%s) - start ))
if [[ $rc -eq 0 || $rc -eq 124 ]]; then cat "$dir/loge"; echo "FAIL: dead rank: exit $rc"; fail=1; fi
grep -q "replica 1 (rank 1) exits now" "$dir/loge" && grep -qi "exit" "$dir/loge" ||
  { cat "$dir/loge"; echo "FAIL: no report of the dead rank"; fail=1; }
echo "dead rank: exit $rc after ${secs}s"
exit $fail
