#!/usr/bin/env bash
# A real single-node Slurm on this machine, for mtkit's Slurm tests (and for trying --slurm).
#   scripts/slurm-local.sh start    install slurm-wlm and munge (Debian) when absent, write a
#                                   slurm.conf for this machine, start munged, slurmctld and
#                                   slurmd, wait until the node is idle; prints the
#                                   `export SLURM_CONF=...` that the client commands need
#   scripts/slurm-local.sh stop     stop them again
#   scripts/slurm-local.sh env      print the export line only
# State, spool and logs live under $MTKIT_CACHE/slurm. Runs as root (as Debian's daemons do
# in a container); non-default ports, so that a cluster's own daemons are not disturbed.
# Settings measured on this machine kind with Debian's slurm-wlm 22.05: proctrack/linuxproc,
# task/none, select/cons_tres, no accounting, no cgroup.conf (22.05 does not know
# CgroupPlugin=disabled, and slurmd then refuses to start).
set -euo pipefail
cache="${MTKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mtkit}"
state="$cache/slurm"
conf="$state/etc/slurm.conf"
log() { echo "slurm-local: $*" >&2; }

install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
     && command -v sbatch >/dev/null; then
    return
  fi
  if [ "$(id -u)" != 0 ]; then
    log "slurm-wlm and munge are not installed and this is not root: install them (apt-get install slurm-wlm munge)"
    exit 1
  fi
  log "installing slurm-wlm and munge from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null; }
}

write_conf() {
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
  mkdir -p "$state/etc" "$state/ctld" "$state/spool" "$state/log"
  cat > "$conf.part" <<CONF
# Written by mtkit's scripts/slurm-local.sh: one node, this machine.
ClusterName=mtkit-local
SlurmctldHost=$host
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
SlurmdTimeout=300
InactiveLimit=0
MinJobAge=300
KillWait=5
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  mv "$conf.part" "$conf"
}

start_munge() {
  if pgrep -x munged >/dev/null; then return; fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --force >/dev/null 2>&1 || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null
    chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
  fi
  if id munge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
  else
    /usr/sbin/munged --force
  fi
}

case "${1:-start}" in
  start)
    install
    write_conf
    start_munge
    export SLURM_CONF="$conf"
    if ! pgrep -f "slurmctld -f $conf" >/dev/null; then slurmctld -f "$conf"; fi
    if ! pgrep -f "slurmd -f $conf" >/dev/null; then slurmd -f "$conf"; fi
    for _ in $(seq 1 60); do
      st=$(sinfo -h -o %T 2>/dev/null | head -1 || true)
      case "$st" in
        idle|mixed|allocated) log "node $(hostname -s) is $st (SLURM_CONF=$conf)"; echo "export SLURM_CONF=$conf"; exit 0 ;;
        down*|drain*) scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true ;;
      esac
      sleep 1
    done
    log "the node did not become idle within 60 s; logs in $state/log"
    tail -5 "$state/log/slurmctld.log" "$state/log/slurmd.log" >&2 || true
    exit 1
    ;;
  stop)
    export SLURM_CONF="$conf"
    scontrol shutdown >/dev/null 2>&1 || true
    pkill -f "slurmd -f $conf" 2>/dev/null || true
    pkill -f "slurmctld -f $conf" 2>/dev/null || true
    pkill -x munged 2>/dev/null || true
    log "stopped"
    ;;
  env)
    echo "export SLURM_CONF=$conf"
    ;;
  *)
    echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
