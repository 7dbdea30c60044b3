#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, from Debian's packages (slurm-wlm, munge), for trying
# out histae's submitit_slurm launcher and for its tests. No systemd, no cgroups, no accounting.
#
#   scripts/slurm-local.sh start    # start (or find running) munged, slurmctld, slurmd; wait idle
#   scripts/slurm-local.sh status   # sinfo, or exit 1 when the cluster is not up
#   scripts/slurm-local.sh stop     # cancel jobs, stop the daemons by their pid files
#   scripts/slurm-local.sh env      # the line to eval so sbatch/squeue/histae find the cluster
#
# Everything lives in $HISTAE_SLURM_DIR (default /tmp/histae-slurm): the munge key and socket,
# slurm.conf, state, logs, and jobcomp.txt (one line per finished job, with start and end times).
# SLURM's client commands find this cluster through SLURM_CONF, which `start` and `env` print:
#   eval "$(scripts/slurm-local.sh start)"
set -euo pipefail

DIR="${HISTAE_SLURM_DIR:-/tmp/histae-slurm}"
CTLD_PORT="${HISTAE_SLURM_CTLD_PORT:-6817}"
SLURMD_PORT="${HISTAE_SLURM_SLURMD_PORT:-6818}"
PARTITION="${HISTAE_SLURM_PARTITION:-local}"
CONF="$DIR/slurm.conf"
NODE="" # this machine's short host name, once the packages are known to be there
export SLURM_CONF="$CONF"

say() { echo "slurm-local: $*" >&2; }
die() {
    say "error: $*"
    exit 1
}

need_packages() {
    local missing=()
    command -v munged >/dev/null || missing+=(munge)
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sbatch >/dev/null || missing+=(slurm-client)
    if ((${#missing[@]})); then
        die "missing ${missing[*]}; install with: apt-get install -y slurm-wlm munge"
    fi
}

alive() { # alive PIDFILE: the process in PIDFILE exists
    [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

write_conf() {
    local cpus mem_total mem
    cpus="$(nproc)"
    # What `free -m` calls total, read where it reads it (procps is not on every minimal image).
    mem_total="$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)"
    # slurmd drains a node that has less memory than it claims: leave a margin for the system.
    mem=$((mem_total - (mem_total / 10 > 512 ? mem_total / 10 : 512)))
    ((mem > 0)) || die "only ${mem_total} MiB of memory"
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
    cat >"$CONF.tmp" <<EOF
# Written by scripts/slurm-local.sh for $NODE: ${cpus} CPUs (nproc), ${mem} MiB (total memory minus a margin).
ClusterName=histae
SlurmctldHost=${NODE}(127.0.0.1)
SlurmctldPort=${CTLD_PORT}
SlurmdPort=${SLURMD_PORT}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire is also how long a requeued job waits before it may start again (default 120 s).
AuthInfo=socket=${DIR}/munge.socket,cred_expire=10
StateSaveLocation=${DIR}/state
SlurmdSpoolDir=${DIR}/spool
SlurmctldPidFile=${DIR}/slurmctld.pid
SlurmdPidFile=${DIR}/slurmd.pid
SlurmctldLogFile=${DIR}/log/slurmctld.log
SlurmdLogFile=${DIR}/log/slurmd.log
# A container without systemd or a writable cgroup tree: track processes by /proc, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=${DIR}/jobcomp.txt
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$((mem / cpus))
ReturnToService=2
# A job that ignores SIGTERM gets SIGKILL this many seconds later (default 30).
KillWait=5
# Finished jobs stay visible to squeue/scontrol for this long (seconds).
MinJobAge=600
SchedulerParameters=sched_interval=2
NodeName=${NODE} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem} State=UNKNOWN
PartitionName=${PARTITION} Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
}

node_state() {
    sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n1 || true
}

wait_idle() {
    local state=""
    for _ in $(seq 1 120); do
        state="$(node_state)"
        case "$state" in
        idle | mixed | allocated) return 0 ;;
        down* | drain*) scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
        esac
        sleep 0.5
    done
    local reason
    reason="$(sinfo -h -R -o %E 2>/dev/null | head -n1 || true)"
    die "node $NODE is '${state:-unreachable}'${reason:+ ($reason)} after 60 s; see $DIR/log/"
}

start() {
    if alive "$DIR/munged.pid" && alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid"; then
        wait_idle
        say "already running: partition $PARTITION on $NODE ($DIR)"
        echo "export SLURM_CONF=$CONF"
        return 0
    fi
    stop_daemons # a half-started cluster: start over from a known state
    write_conf
    if [[ ! -s "$DIR/munge.key" ]]; then
        (umask 077 && dd if=/dev/urandom of="$DIR/munge.key" bs=1024 count=1 status=none)
    fi
    chmod 0700 "$DIR"
    chmod 0400 "$DIR/munge.key"
    munged --force --key-file="$DIR/munge.key" --socket="$DIR/munge.socket" \
        --pid-file="$DIR/munged.pid" --log-file="$DIR/log/munged.log" \
        --seed-file="$DIR/munged.seed" ||
        die "munged did not start; see $DIR/log/munged.log"
    # -c: a fresh controller state; jobs of an earlier local cluster are gone anyway.
    slurmctld -c -f "$CONF" || die "slurmctld did not start; see $DIR/log/slurmctld.log"
    slurmd -f "$CONF" || die "slurmd did not start; see $DIR/log/slurmd.log"
    wait_idle
    say "ready: partition $PARTITION on $NODE, $(sinfo -h -o '%c CPUs, %m MiB' | head -n1) ($DIR)"
    echo "export SLURM_CONF=$CONF"
}

stop_pid() { # stop_pid PIDFILE: TERM, wait up to 10 s, then KILL
    local pidfile="$1" pid
    [[ -s "$pidfile" ]] || return 0
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

stop_daemons() {
    stop_pid "$DIR/slurmd.pid"
    stop_pid "$DIR/slurmctld.pid"
    stop_pid "$DIR/munged.pid"
}

stop() {
    if alive "$DIR/slurmctld.pid"; then
        # Jobs first, so no job step outlives the cluster that ran it.
        scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
        for _ in $(seq 1 100); do
            [[ -z "$(squeue -h -o %i 2>/dev/null | head -n1)" ]] && break
            sleep 0.1
        done
    fi
    stop_daemons
    say "stopped ($DIR)"
}

status() {
    if alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid" && [[ -n "$(node_state)" ]]; then
        sinfo
        return 0
    fi
    say "not running ($DIR)"
    return 1
}

case "${1:-}" in
start)
    need_packages
    NODE="$(hostname -s)"
    start
    ;;
stop)
    NODE="$(hostname -s)"
    stop
    ;;
status)
    NODE="$(hostname -s)"
    status
    ;;
env) echo "export SLURM_CONF=$CONF" ;;
*)
    echo "usage: $0 start|stop|status|env" >&2
    exit 2
    ;;
esac
