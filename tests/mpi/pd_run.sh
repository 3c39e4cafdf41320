#!/usr/bin/env bash
# pd_run.sh MPIRUN PAGODA DATA - `mpirun -np 2 pagoda run` of a [cluster]
# prefill = 1, decode = 1, comm = mpi config (the prefill replica on rank
# 0, the decode one on rank 1, the KV bytes sent between the ranks): the
# token fingerprint of the same workload on one engine, summary.json's
# cluster.disagg section, and kv_transfers.csv with one row per request
# whose request, replicas and KV bytes are those of the same P/D run over
# threads; a decode rank whose import fails (PAGODA_CLUSTER_FAIL_HANDOFF=1)
# and one that dies mid-transfer (PAGODA_CLUSTER_FAIL_MODE=exit) end the
# job quickly with a message naming replica 1 and rank 1, never a hang.
# (ctest label mpi)
set -u
mpirun=$1 pagoda=$2 data=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat >"$dir/pd.ini" <<EOF
[experiment]
name = pd
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
rate = 200
[sampling]
temperature = 0.8
top_p = 0.9
[cluster]
prefill = 1
decode = 1
comm = mpi
EOF
sed -e 's/^prefill = 1$/replicas = 1/' -e '/^decode = 1$/d' -e 's/^comm = mpi$/comm = threads/' \
  -e 's/^name = pd$/name = one/' "$dir/pd.ini" >"$dir/one.ini"
sed -e 's/^comm = mpi$/comm = threads/' -e 's/^name = pd$/name = pdt/' "$dir/pd.ini" >"$dir/pdt.ini"
fail=0
for c in one pdt; do
  "$pagoda" run --quiet --output-dir "$dir/out" "$dir/$c.ini" >"$dir/log_$c" 2>&1 ||
    { cat "$dir/log_$c"; echo "FAIL: $c run"; fail=1; }
done
want=$(jq -r .token_fingerprint "$dir/out/one/run/summary.json")
timeout 120 "$mpirun" --oversubscribe -np 2 "$pagoda" run --quiet --output-dir "$dir/out" "$dir/pd.ini" \
  >"$dir/log" 2>&1 || { cat "$dir/log"; echo "FAIL: mpirun -np 2 pagoda run"; fail=1; }
s=$dir/out/pd/run/summary.json
got=$(jq -r '[.token_fingerprint, .completed, .cluster.replicas, .cluster.disagg.transfers] | @tsv' "$s" 2>/dev/null)
echo "P/D over MPI: $got (one engine: $want)"
[[ $got == "$want	24	2	24" ]] || { echo "FAIL: fingerprint, completed, replicas or transfers"; fail=1; }
# the transfers: one per request, 0 -> 1, the KV bytes of the threads run (whole 20480-byte blocks)
csv=$dir/out/pd/run/kv_transfers.csv
head -1 "$csv" | grep -qx "request,from,to,kv_bytes,start,ready" || { echo "FAIL: kv_transfers.csv header"; fail=1; }
cut -d, -f1-4 "$csv" | tail -n +2 | sort -n >"$dir/mpi.rows"
cut -d, -f1-4 "$dir/out/pdt/run/kv_transfers.csv" | tail -n +2 | sort -n >"$dir/threads.rows"
rows=$(wc -l <"$dir/mpi.rows")
bad=$(awk -F, '$2 != 0 || $3 != 1 || $4 <= 0 || $4 % 20480 != 0' "$dir/mpi.rows" | wc -l)
echo "kv_transfers.csv: $rows rows, $(awk -F, '{s += $4} END {print s}' "$dir/mpi.rows") KV bytes, $bad bad"
[[ $rows -eq 24 && $bad -eq 0 ]] || { cat "$csv"; echo "FAIL: kv_transfers.csv rows"; fail=1; }
cmp -s "$dir/mpi.rows" "$dir/threads.rows" || { diff "$dir/mpi.rows" "$dir/threads.rows"; echo "FAIL: bytes differ from the threads run"; fail=1; }
# the decode rank's import fails: the job ends with an error naming it
start=$(date +%s)
PAGODA_CLUSTER_FAIL_HANDOFF=1 timeout 60 "$mpirun" --oversubscribe -np 2 -x PAGODA_CLUSTER_FAIL_HANDOFF \
  "$pagoda" run --quiet --output-dir "$dir/outf" "$dir/pd.ini" >"$dir/logf" 2>&1
rc=$?
secs=$(( $(date +%s) - start ))
if [[ $rc -eq 0 || $rc -eq 124 ]]; then cat "$dir/logf"; echo "FAIL: failing import: exit $rc"; fail=1; fi
grep -q "replica 1 (rank 1): injected import failure" "$dir/logf" || { cat "$dir/logf"; echo "FAIL: no message naming replica 1"; fail=1; }
echo "failing import: exit $rc after ${secs}s: $(grep -m1 'replica 1 (rank 1)' "$dir/logf")"
# the decode rank's process dies mid-transfer, as a crash would: mpirun ends the job
start=$(date +%s)
PAGODA_CLUSTER_FAIL_HANDOFF=1 PAGODA_CLUSTER_FAIL_MODE=exit timeout 60 "$mpirun" --oversubscribe -np 2 \
  -x PAGODA_CLUSTER_FAIL_HANDOFF -x PAGODA_CLUSTER_FAIL_MODE \
  "$pagoda" run --quiet --output-dir "$dir/oute" "$dir/pd.ini" >"$dir/loge" 2>&1
rc=$?
secs=$(( $(date +%s) - start ))
if [[ $rc -eq 0 || $rc -eq 124 ]]; then cat "$dir/loge"; echo "FAIL: dead rank: exit $rc"; fail=1; fi
grep -q "replica 1 (rank 1) exits now in its import" "$dir/loge" && grep -qi "exit" "$dir/loge" ||
  { cat "$dir/loge"; echo "FAIL: no report of the dead rank"; fail=1; }
echo "dead rank mid-transfer: exit $rc after ${secs}s"
[[ -e $dir/outf/pd/run/summary.json || -e $dir/oute/pd/run/summary.json ]] && { echo "FAIL: a failed run wrote results"; fail=1; }
exit $fail
