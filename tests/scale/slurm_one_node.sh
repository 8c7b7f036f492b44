#!/usr/bin/env bash
# A real scheduler in the tests (docs/scale.md): starts a one-node Slurm cluster on this machine
# (slurmctld and slurmd of Debian's slurm-wlm, as the current user, with state, spool, logs and
# ports of their own under a temporary folder, so a Slurm already installed here is left alone),
# submits the array script that `attnbench plan-sweep --scheduler slurm` prints, merges the
# shards' reports and checks that the merge equals the unsharded run record for record (timing
# fields excluded). Stops the daemons on any exit.
#   slurm_one_node.sh ATTNBENCH_BINARY
# Exit 77 (CTest's SKIP_RETURN_CODE), with one line saying why, where Slurm cannot run here.
set -euo pipefail
bin=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)

skip() {
  echo "slurm_one_node: SKIP: $*"
  exit 77
}
for tool in slurmctld slurmd sbatch scontrol sinfo; do
  command -v "$tool" >/dev/null || skip "$tool is not installed (Debian: apt-get install slurm-wlm)"
done

work=$(mktemp -d /tmp/attnbench-slurm.XXXXXX)
chmod 755 "$work"
export SLURM_CONF=$work/slurm.conf
cleanup() {
  local rc=$?
  # scontrol shutdown stops slurmctld and the slurmd it knows; the pid files catch the rest.
  scontrol shutdown >/dev/null 2>&1 || true
  for pidfile in "$work/slurmctld.pid" "$work/slurmd.pid" "$work/munged.pid"; do
    [[ -s $pidfile ]] || continue
    local pid
    pid=$(cat "$pidfile")
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  if ((rc != 0 && rc != 77)); then
    for log in "$work"/log/*.log; do
      [[ -f $log ]] && { echo "--- $log (last lines)"; tail -n 15 "$log"; }
    done
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
mkdir -p "$work"/{state,spool,log,out}

# Two free TCP ports for slurmctld and slurmd.
read -r ctld_port slurmd_port < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
user=$(id -un)
# The node as slurmd sees it (CPUs, memory), named localhost so that the cluster does not depend
# on the machine's host name resolving.
node=$(slurmd -C | head -n 1 | sed 's/^NodeName=[^ ]*/NodeName=localhost/')

write_conf() {  # write_conf AUTH_LINES
  cat >"$SLURM_CONF" <<CONF
ClusterName=attnbench-test
SlurmctldHost=localhost
SlurmUser=$user
SlurmdUser=$user
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
$1
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
$node State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
}

# The controller authenticates with auth/none where this Slurm still has it (it was dropped in
# later releases), else with a munged of our own (own key, socket and pid file).
# ATTNBENCH_SLURM_AUTH=munge skips auth/none, to try the munge path.
start_ctld() {
  slurmctld -c -i >>"$work/log/start.log" 2>&1 || return 1
  for _ in $(seq 50); do
    scontrol ping 2>/dev/null | grep -q UP && return 0
    sleep 0.2
  done
  return 1
}
write_conf $'AuthType=auth/none\nCredType=cred/none'
if [[ ${ATTNBENCH_SLURM_AUTH:-none} != none ]] || ! start_ctld; then
  scontrol shutdown >/dev/null 2>&1 || true
  command -v munged >/dev/null ||
    skip "slurmctld does not start with auth/none and munge is not installed: $(tail -n 1 "$work/log/slurmctld.log" 2>/dev/null)"
  dd if=/dev/urandom of="$work/munge.key" bs=1024 count=1 status=none
  chmod 600 "$work/munge.key"
  munged --force --key-file="$work/munge.key" --socket="$work/munge.socket" \
    --pid-file="$work/munged.pid" --log-file="$work/log/munged.log" \
    --seed-file="$work/munge.seed" >>"$work/log/start.log" 2>&1 ||
    skip "munged does not start here: $(tail -n 1 "$work/log/start.log")"
  write_conf "AuthType=auth/munge
AuthInfo=socket=$work/munge.socket
CredType=cred/munge"
  start_ctld || skip "slurmctld does not start here: $(tail -n 1 "$work/log/slurmctld.log" 2>/dev/null)"
fi
slurmd -N localhost >>"$work/log/start.log" 2>&1 ||
  skip "slurmd does not start here: $(tail -n 1 "$work/log/slurmd.log" 2>/dev/null)"
state=
for _ in $(seq 100); do
  state=$(sinfo -h -n localhost -o %T 2>/dev/null || true)
  [[ $state == idle ]] && break
  sleep 0.2
done
[[ $state == idle ]] ||
  skip "the node did not come up (state '${state:-none}'): $(tail -n 1 "$work/log/slurmd.log" 2>/dev/null)"
echo "slurm_one_node: one-node Slurm $(slurmctld -V | awk '{print $2}') up ($(grep -o 'auth/[a-z]*' "$SLURM_CONF"))"

# ---- The sweep: unsharded in this process, then as a 3-task Slurm array. ----------------------
shards=3
sweep=(--suite niah --lengths 1k --depths 0,0.5,1 --samples 1 --threads 1
       --method dense --method snapkv:keep=0.25 --method h2o:keep=0.25 --method quest:keep=0.25)
"$bin" run "${sweep[@]}" --out "$work/single" >"$work/log/single.log" 2>&1

# The array script exactly as plan-sweep prints it. Its tasks call `attnbench` from PATH; sbatch
# passes this environment on to them.
export PATH=$(dirname "$bin"):$PATH
script=$work/array.sh
"$bin" plan-sweep "${sweep[@]}" --shards "$shards" --scheduler slurm --out "$work/sweep" \
  >"$script" 2>"$work/log/plan-sweep.log"
grep -q "^#SBATCH --array=0-$((shards - 1))$" "$script" ||
  { cat "$script"; echo "slurm_one_node: plan-sweep printed no $shards-task array"; exit 1; }

# --wait: sbatch returns when every task has ended, with the worst exit status.
cd "$work"
if ! timeout 240 sbatch --wait --quiet "$script"; then
  echo "slurm_one_node: the array job failed; its task logs:"
  tail -n 20 "$work"/sweep/slurm-*.out
  exit 1
fi
for ((i = 0; i < shards; ++i)); do
  [[ -s $work/sweep/shard-$i/report.jsonl ]] ||
    { echo "slurm_one_node: task $i left no stream in sweep/shard-$i"; exit 1; }
done
# The merge the script names in its last line.
merge=$(sed -n 's/^# When every task is done: //p' "$script")
[[ $merge == "attnbench merge "* ]] ||
  { cat "$script"; echo "slurm_one_node: the script names no merge command"; exit 1; }
eval "$merge" >"$work/log/merge.log" 2>&1 || { cat "$work/log/merge.log"; exit 1; }
merged=$work/sweep/report.json
python3 "$here/same_records.py" "$work/single/report.json" "$merged"
echo "slurm_one_node: a $shards-task Slurm array's merged report equals the unsharded run"
