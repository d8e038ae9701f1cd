#!/usr/bin/env bash
# A one-node Slurm for the deployment tests (crates/gridflow-deploy/tests/slurm.rs), without
# systemd: installs Debian's slurmctld, slurmd, slurm-client and munge when missing (as root),
# writes a slurm.conf for this machine (one node, "localhost", with its real CPUs and memory;
# one partition, "debug"), a munge key, and starts munged, slurmctld and slurmd with their
# state, sockets and logs under target/slurm. Writes target/slurm/env (SLURM_CONF and the
# test variables) for the tests to source.
#
#   scripts/slurm-setup.sh start   # (default) install if needed, configure, start, wait
#   scripts/slurm-setup.sh stop    # stop the daemons started here (by their pid files)
set -euo pipefail
cd "$(dirname "$0")/.."
dir="$PWD/target/slurm"
action="${1:-start}"

stop() {
  for d in slurmd slurmctld munged; do
    if [[ -f "$dir/$d.pid" ]]; then
      pid="$(cat "$dir/$d.pid")"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$dir/$d.pid"
    fi
  done
}

if [[ "$action" == stop ]]; then
  stop
  exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
  || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  if [[ "$(id -u)" != 0 ]]; then
    echo "slurm-setup: slurmctld/slurmd/sbatch/munged missing and not root: cannot install them" >&2
    exit 1
  fi
  echo "slurm-setup: installing slurmctld slurmd slurm-client munge (Debian packages)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    slurmctld slurmd slurm-client munge
fi

stop
rm -rf "$dir"
mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
chmod 700 "$dir/munge"

# A free TCP port on 127.0.0.1 (the default Slurm ports may be taken by a real Slurm).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
ctld_port="$(free_port)"
slurmd_port="$(free_port)"
while [[ "$slurmd_port" == "$ctld_port" ]]; do slurmd_port="$(free_port)"; done

# munge: its own key, socket and files (not the system's /etc/munge, /run/munge).
dd if=/dev/urandom bs=1 count=1024 of="$dir/munge/munge.key" status=none
chmod 400 "$dir/munge/munge.key"
munged --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
  --pid-file="$dir/munged.pid" --log-file="$dir/munge/munged.log" \
  --seed-file="$dir/munge/munged.seed" --force

cpus="$(nproc)"
# RealMemory in MiB, a little under the machine's so that slurmd accepts it.
mem="$(awk '/MemTotal/ {print int($2/1024*0.9)}' /proc/meminfo)"
host="$(hostname -s)"
cat >"$dir/slurm.conf" <<EOF
# One-node Slurm for gridflow's deployment tests (written by scripts/slurm-setup.sh).
ClusterName=gridflow-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
# Start jobs quickly: the tests wait for worker jobs to start.
SchedulerType=sched/backfill
SchedulerParameters=sched_min_interval=100000,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
KillWait=2
MinJobAge=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=localhost NodeAddr=127.0.0.1 NodeHostname=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
# Up to 2 jobs per CPU: worker jobs mostly wait, and a 1-CPU machine still runs two.
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:2
EOF

export SLURM_CONF="$dir/slurm.conf"
# -c: start from a clean state (no jobs of an earlier run); -D with & keeps them ours.
slurmctld -D -c -f "$SLURM_CONF" >"$dir/slurmctld.out" 2>&1 &
echo $! >"$dir/slurmctld.pid"
slurmd -D -N localhost -f "$SLURM_CONF" >"$dir/slurmd.out" 2>&1 &
echo $! >"$dir/slurmd.pid"

# Wait for the node to be idle (up to 60 s).
for i in $(seq 120); do
  state="$(sinfo -h -N -n localhost -o %t 2>/dev/null || true)"
  if [[ "$state" == idle* ]]; then
    break
  fi
  if [[ "$state" == down* || "$state" == drain* ]]; then
    scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true
  fi
  if [[ "$i" == 120 ]]; then
    echo "slurm-setup: the node did not become idle (state: '${state:-none}')" >&2
    tail -20 "$dir/slurmctld.log" "$dir/slurmd.log" "$dir/slurmctld.out" "$dir/slurmd.out" >&2 || true
    stop
    exit 1
  fi
  sleep 0.5
done

cat >"$dir/env" <<EOF
export SLURM_CONF=$dir/slurm.conf
export GRIDFLOW_TEST_SLURM_PARTITION=debug
EOF
sinfo
echo "slurm-setup: one-node Slurm up ($cpus CPUs, $mem MiB); source $dir/env"
