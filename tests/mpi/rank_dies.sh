#!/usr/bin/env bash
# rank_dies.sh MPIRUN PAGODA DATA MODE - a rank of `mpirun -np 2 pagoda
# generate --tp 2 --comm mpi` fails in its first forward pass (MODE=error:
# its command fails and it aborts the job; MODE=exit: its process exits, as
# a crash would). The job must end quickly with a non-zero status and a
# message that says which rank, never hang. (ctest label mpi)
set -u
mpirun=$1 pagoda=$2 data=$3 mode=$4
log=$(mktemp)
start=$(date +%s)
PAGODA_TEST_FAIL_RANK=1 PAGODA_TEST_FAIL_MODE=$mode timeout 60 "$mpirun" --oversubscribe -np 2 \
  -x PAGODA_TEST_FAIL_RANK -x PAGODA_TEST_FAIL_MODE \
  "$pagoda" generate --model "$data/models/stories260K/stories260K.bin" \
  --tokenizer "$data/models/stories260K/tok512.bin" --prompt "Once upon a time" --max-tokens 20 \
  --tp 2 --comm mpi >"$log" 2>&1
rc=$?
secs=$(( $(date +%s) - start ))
cat "$log"
fail=0
if [[ $rc -eq 0 ]]; then echo "FAIL: the job exited 0"; fail=1; fi
if [[ $rc -eq 124 ]]; then echo "FAIL: the job hung (killed after 60 s)"; fail=1; fi
case $mode in
  error) grep -q "rank 1" "$log" && grep -q "injected failure" "$log" || { echo "FAIL: no message naming rank 1"; fail=1; } ;;
  exit) grep -q "rank 1 exits now" "$log" && grep -qi "exit" "$log" || { echo "FAIL: no report of the dead rank"; fail=1; } ;;
esac
rm -f "$log"
echo "rank_dies $mode: exit $rc after ${secs}s"
exit $fail
