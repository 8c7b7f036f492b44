#!/usr/bin/env bash
# The MPI mode (app/mpi_run.hpp) against a single process: `mpirun -n 2 attnbench run` must
# write one report whose records equal those of the same run in one process (timing fields
# excluded), with each rank's stream in DIR/rank-R holding a part of the cases and rank 0 alone
# writing report.json. A small NIAH sweep keeps it to seconds on two cores.
#   mpi_two_ranks.sh ATTNBENCH_BINARY [MPIEXEC]   (MPIEXEC: default mpirun)
set -euo pipefail
bin=$1
mpiexec=${2:-mpirun}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

args=(run --suite niah --lengths 1k --depths 0,0.5,1 --samples 1 --threads 1
      --method dense --method snapkv:keep=0.25 --method h2o:keep=0.25 --method quest:keep=0.25)
"$bin" "${args[@]}" --out "$work/one" >/dev/null 2>&1
# --oversubscribe: two ranks on a machine whose slots Open MPI may count as fewer;
# --allow-run-as-root: CI containers run as root.
"$mpiexec" -n 2 --oversubscribe --allow-run-as-root "$bin" "${args[@]}" --out "$work/two" \
  >"$work/mpi.log" 2>&1 || { cat "$work/mpi.log"; echo "mpi_two_ranks: mpirun failed"; exit 1; }
python3 "$here/same_records.py" "$work/one/report.json" "$work/two/report.json"

# Both ranks ran cases, in their own streams; only the merged report sits at the top.
python3 - "$work/two" <<'PY'
import json, os, sys
top = sys.argv[1]
meta = json.load(open(os.path.join(top, "report.json")))["meta"]
assert meta.get("mpi", {}).get("ranks") == 2, f"meta.mpi is {meta.get('mpi')}"
merged_from = [m["name"] for m in meta.get("merged_from", [])]
assert merged_from == ["rank-0", "rank-1"], f"meta.merged_from names {merged_from}"
for rank in (0, 1):
    stream = os.path.join(top, f"rank-{rank}", "report.jsonl")
    lines = [json.loads(l) for l in open(stream) if l.strip()]
    records = [l for l in lines if "stream_header" not in l]
    assert records, f"{stream} holds no record: rank {rank} ran nothing"
    assert not os.path.exists(os.path.join(top, f"rank-{rank}", "report.json")), \
        f"rank {rank} wrote a report.json of its own"
print("mpi_two_ranks: both ranks ran cases; rank 0 wrote the one report")
PY

# Resumed with another N: 2 ranks run a part of the sweep (--filter; the case selection is no
# part of the configuration), 3 ranks resume the folder and complete it. The report equals the
# single process's, and no case ran twice: the streams hold one record per case.
"$mpiexec" -n 2 --oversubscribe --allow-run-as-root "$bin" "${args[@]}" --filter 'depth=0,' \
  --out "$work/re" >"$work/re.log" 2>&1 || { cat "$work/re.log"; exit 1; }
"$mpiexec" -n 3 --oversubscribe --allow-run-as-root "$bin" "${args[@]}" --resume "$work/re" \
  >"$work/re.log" 2>&1 || { cat "$work/re.log"; echo "mpi_two_ranks: the resume failed"; exit 1; }
python3 "$here/same_records.py" "$work/one/report.json" "$work/re/report.json"
lines=$(cat "$work"/re/rank-*/report.jsonl | grep -vc stream_header)
cases=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["records"]))' \
  "$work/one/report.json")
[[ $lines -eq $cases ]] ||
  { echo "mpi_two_ranks: the rank streams hold $lines records for $cases cases"; exit 1; }
echo "mpi_two_ranks: 2 ranks then 3 resuming ran each case once"

# Bad input fails every rank alike: mpirun exits 2 and the message is printed once, naming the
# ranks, never one line per rank.
status=0
"$mpiexec" -n 2 --oversubscribe --allow-run-as-root "$bin" "${args[@]}" --method nosuch \
  --out "$work/bad" >"$work/bad.log" 2>&1 || status=$?
lines=$(grep -c "unknown method 'nosuch'" "$work/bad.log" || true)
if [[ $status -ne 2 || $lines -ne 1 ]] || ! grep -q "(MPI rank 0, 1 of 2)" "$work/bad.log"; then
  cat "$work/bad.log"
  echo "mpi_two_ranks: bad input under mpirun: exit $status and $lines message line(s), expected 2 and 1"
  exit 1
fi
echo "mpi_two_ranks: bad input exits 2 with one message"
