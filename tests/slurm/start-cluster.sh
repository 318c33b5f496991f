#!/usr/bin/env bash
# Start a real single-node SLURM cluster on this (Debian 12, root, no systemd)
# machine, for tests and CI.  Idempotent: running it again while the cluster is
# up only checks it (and restarts the daemons whose config changed).
#
#   sudo tests/slurm/start-cluster.sh            # defaults below
#   WITH_ACCOUNTING=0 NCPUS=4 tests/slurm/start-cluster.sh
#   tests/slurm/stop-cluster.sh                  # PURGE=1 also wipes state
#
# What it gives you: munged, MariaDB (unix socket only) + slurmdbd (accounting,
# so `sacct` works exactly as on a real cluster), slurmctld and slurmd, one node
# with $NCPUS CPUs and $NGPUS fake GPUs of type $GPU_TYPE (char devices, so
# CUDA_VISIBLE_DEVICES is set in jobs), partitions $PARTITION (default) and
# $GPU_PARTITION, and account $ACCOUNT with root in it.  See README.md.
set -euo pipefail

# ---------------------------------------------------------------- settings
STATE_DIR=${STATE_DIR:-/var/spool/slurm-local}   # everything we own lives here
PID_DIR=${PID_DIR:-$STATE_DIR/pids}               # one <daemon>.pid per daemon
LOG_DIR=${LOG_DIR:-$STATE_DIR/log}
CONF_DIR=${CONF_DIR:-/etc/slurm}                  # Debian's compiled-in default
WITH_ACCOUNTING=${WITH_ACCOUNTING:-1}             # 0: no slurmdbd/MariaDB, sacct won't work
ACCOUNT=${ACCOUNT:-trainability}
CLUSTER_NAME=${CLUSTER_NAME:-localcluster}
PARTITION=${PARTITION:-debug}                     # default partition (CPU jobs)
GPU_PARTITION=${GPU_PARTITION:-gpu}               # second partition on the same node
NCPUS=${NCPUS:-8}                                 # advertised CPUs (config_overrides)
NGPUS=${NGPUS:-2}
GPU_TYPE=${GPU_TYPE:-a100}                        # "" for untyped GPUs
MEM_FRACTION=${MEM_FRACTION:-95}                  # % of `slurmd -C` RealMemory
GPU_DEVICES=${GPU_DEVICES:-auto}                  # auto (mknod, else symlinks) | mknod | symlink
WAIT_SECONDS=${WAIT_SECONDS:-60}                  # per wait loop
NODE=${NODE:-$(hostname -s)}

MARKER="# Written by tests/slurm/start-cluster.sh -- regenerated on every start"
DB_DIR=$STATE_DIR/mysql
DB_SOCKET=/run/mysqld/mysqld.sock                 # libmariadb's default; slurmdbd has no socket option
FAKEGPU_DIR=$STATE_DIR/fakegpu

now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }
secs() { printf '%d.%d' $(($1 / 1000)) $((($1 % 1000) / 100)); }   # ms -> "12.3"
T_START=$(now_ms)
T_PHASE=$T_START
CURRENT_PHASE=init
CURRENT_LOG=

log()   { printf '[start-cluster] %s\n' "$*"; }
phase() { # phase NAME LOGFILE: end the previous phase (print its time), start a new one
    local now; now=$(now_ms)
    [[ $CURRENT_PHASE == init ]] || printf '[start-cluster] phase %-12s %6s s\n' "$CURRENT_PHASE" "$(secs $((now - T_PHASE)))"
    T_PHASE=$now; CURRENT_PHASE=$1; CURRENT_LOG=${2:-}
}
show_log() {
    local f=$1
    if [[ -n $f && -r $f ]]; then
        echo "----- last 30 lines of $f -----" >&2
        tail -n 30 "$f" >&2
        echo "-----" >&2
    fi
}
die() { # die MESSAGE [LOGFILE]
    echo "[start-cluster] ERROR in phase '$CURRENT_PHASE': $1" >&2
    show_log "${2:-$CURRENT_LOG}"
    exit 1
}
# shellcheck disable=SC2317  # invoked via the ERR trap
on_err() { # any command failing outside die(): say where, show the daemon log
    echo "[start-cluster] FAILED (rc=$1) in phase '$CURRENT_PHASE', line $2: $3" >&2
    show_log "$CURRENT_LOG"
}
trap 'on_err $? $LINENO "$BASH_COMMAND"' ERR

[[ $(id -u) -eq 0 ]] || die "must run as root (installs packages, starts daemons)"
[[ $WITH_ACCOUNTING == 0 || $WITH_ACCOUNTING == 1 ]] || die "WITH_ACCOUNTING must be 0 or 1"
[[ $NCPUS =~ ^[1-9][0-9]*$ && $NGPUS =~ ^[0-9]+$ ]] || die "NCPUS/NGPUS must be integers"

# wait_for DESCRIPTION LOGFILE CMD...: poll CMD every 0.2 s up to WAIT_SECONDS
wait_for() {
    local what=$1 logf=$2; shift 2
    local deadline=$((SECONDS + WAIT_SECONDS))
    until "$@" >/dev/null 2>&1; do
        if [[ -n ${WATCH_PID:-} ]] && ! kill -0 "$WATCH_PID" 2>/dev/null; then
            die "the daemon exited while waiting for $what" "$logf"
        fi
        ((SECONDS < deadline)) || die "timed out after ${WAIT_SECONDS}s waiting for $what" "$logf"
        sleep 0.2
    done
}

# alive NAME: the pid in $PID_DIR/NAME.pid is running and really is NAME
# (guards against a stale pid file whose pid was reused by something else)
alive() {
    local f=$PID_DIR/$1.pid pid
    [[ -s $f ]] || return 1
    pid=$(<"$f")
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$1" ]]
}

# stop_one NAME WHY: TERM, wait, KILL (a config changed, or accounting was turned off)
stop_one() {
    local name=$1 why=$2 pid i
    alive "$name" || { rm -f "$PID_DIR/$name.pid"; return 0; }
    pid=$(<"$PID_DIR/$name.pid")
    log "stopping $name (pid $pid): $why"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    rm -f "$PID_DIR/$name.pid"
}

# install_conf SRC DEST OWNER MODE: move SRC to DEST if different; return 0 if changed
install_conf() {
    local src=$1 dst=$2 owner=$3 mode=$4
    if [[ -f $dst ]] && cmp -s "$src" "$dst"; then
        rm -f "$src"; chown "$owner" "$dst"; chmod "$mode" "$dst"; return 1
    fi
    if [[ -f $dst ]] && ! grep -qF "$MARKER" "$dst"; then
        cp -p "$dst" "$dst.orig-$(date +%s)"   # never silently destroy someone's config
        log "saved pre-existing $dst as $dst.orig-*"
    fi
    install -o "${owner%%:*}" -g "${owner##*:}" -m "$mode" "$src" "$dst"
    rm -f "$src"
    return 0
}

# ---------------------------------------------------------------- packages
phase packages
PKGS=(slurmctld slurmd slurm-client munge)
((WITH_ACCOUNTING)) && PKGS+=(slurmdbd slurm-wlm-mysql-plugin mariadb-server)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if ((${#missing[@]})); then
    log "installing: ${missing[*]}"
    # Keep the packages' maintainer scripts from starting daemons (on a host
    # with init scripts they would grab our ports); Docker images already
    # ship such a policy-rc.d.
    added_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && added_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt_log=$(mktemp /tmp/start-cluster-apt.XXXXXX)
    CURRENT_LOG=$apt_log
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$apt_log" 2>&1 \
        || { ((added_policy)) && rm -f /usr/sbin/policy-rc.d; die "apt-get failed" "$apt_log"; }
    ((added_policy)) && rm -f /usr/sbin/policy-rc.d
    rm -f "$apt_log"; CURRENT_LOG=
else
    log "packages already installed"
fi
id slurm >/dev/null 2>&1 || die "user 'slurm' missing (should come from the slurm packages)"
id munge >/dev/null 2>&1 || die "user 'munge' missing (should come from the munge package)"

mkdir -p "$STATE_DIR" "$PID_DIR" "$LOG_DIR" "$STATE_DIR/ctld" "$STATE_DIR/d" "$FAKEGPU_DIR" "$CONF_DIR"
chmod 755 "$STATE_DIR" "$PID_DIR"
chown slurm:slurm "$STATE_DIR/ctld"
# Log dir owned by root (munged refuses a log dir owned by another user); each
# daemon gets a pre-created log file it owns.  Same for pid files: the pid dir
# stays root-only, daemons that drop privileges get a pre-created file.
chown root:root "$LOG_DIR" && chmod 755 "$LOG_DIR"
precreate() { # precreate OWNER FILE...
    local o=$1 f; shift
    for f; do [[ -e $f ]] || touch "$f"; chown "$o" "$f"; done
}
precreate slurm:slurm "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmdbd.log" "$LOG_DIR/jobcomp.log"
precreate root:root "$LOG_DIR/slurmd.log"
precreate munge:munge "$LOG_DIR/munged.log"

# ---------------------------------------------------------------- munge
phase munged "$LOG_DIR/munged.log"
mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
[[ -s /etc/munge/munge.key ]] || {
    log "creating /etc/munge/munge.key"
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
}
if alive munged; then
    log "munged already running (pid $(<"$PID_DIR/munged.pid"))"
elif munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    die "a munged not started by this script is already running (socket /run/munge); stop it first"
else
    precreate munge:munge "$PID_DIR/munged.pid"
    # -f: start even if a stale socket from a killed munged is left over
    su -s /bin/sh munge -c "/usr/sbin/munged -f --log-file=$LOG_DIR/munged.log --pid-file=$PID_DIR/munged.pid" \
        || die "munged failed to start"
    wait_for "munged pid file" "$LOG_DIR/munged.log" alive munged
fi
wait_for "munge credential round trip" "$LOG_DIR/munged.log" bash -c 'munge -n | unmunge'

# ---------------------------------------------------------------- fake GPUs
phase fake-gpus
# gres.conf File= must name *character devices*: without File= slurmd drops the
# GPUs and the node drains; with plain files CUDA_VISIBLE_DEVICES stays empty.
rm -f "$FAKEGPU_DIR"/nvidia*
fallback=(/dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty /dev/ptmx)
case $GPU_DEVICES in auto | mknod | symlink) ;; *) die "GPU_DEVICES must be auto, mknod or symlink" ;; esac
gpu_kind=mknod
[[ $GPU_DEVICES == symlink ]] && gpu_kind=symlink
for ((i = 0; i < NGPUS; i++)); do
    if [[ $gpu_kind == mknod ]]; then
        # major 195 = the NVIDIA driver's; nothing opens these, Slurm only stat()s them
        mknod "$FAKEGPU_DIR/nvidia$i" c 195 "$i" 2>/dev/null && continue
        [[ $GPU_DEVICES == auto ]] || die "mknod failed and GPU_DEVICES=mknod"
        # mknod not permitted (unprivileged container): start over with symlinks
        gpu_kind=symlink; rm -f "$FAKEGPU_DIR"/nvidia*; i=-1; continue
    fi
    # symlinks to *distinct* existing char devices (Slurm stat()s through the link)
    ((i < ${#fallback[@]})) || die "cannot fake more than ${#fallback[@]} GPUs with symlinks"
    ln -s "${fallback[$i]}" "$FAKEGPU_DIR/nvidia$i"
done
[[ $gpu_kind == symlink ]] && for ((i = 0; i < NGPUS; i++)); do [[ -c $FAKEGPU_DIR/nvidia$i ]] || die "fake GPU $i is not a char device"; done
log "$NGPUS fake GPUs ($gpu_kind) in $FAKEGPU_DIR"

# ---------------------------------------------------------------- config files
phase config
real_mem=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -n1)
[[ -n $real_mem ]] || real_mem=$(awk '/^MemTotal:/ {print int($2/1024)}' /proc/meminfo)
real_mem=$((real_mem * MEM_FRACTION / 100))   # above what slurmd detects -> node drains "Low RealMemory"
if ((NGPUS > 0)); then
    gres_type=${GPU_TYPE:+$GPU_TYPE:}
    node_gres="Gres=gpu:${gres_type}$NGPUS"
    gpu_files="$FAKEGPU_DIR/nvidia[0-$((NGPUS - 1))]"
    ((NGPUS == 1)) && gpu_files="$FAKEGPU_DIR/nvidia0"
else
    node_gres=""
fi

tmp=$(mktemp)
cat >"$tmp" <<EOF
$MARKER
ClusterName=$CLUSTER_NAME
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=$PID_DIR/slurmctld.pid
SlurmdPidFile=$PID_DIR/slurmd.pid
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE_DIR/ctld
SlurmdSpoolDir=$STATE_DIR/d
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without DefMemPerCPU a job without --mem takes the whole node's memory.
DefMemPerCPU=1024
# Trust the NodeName line below instead of the hardware (advertise NCPUS CPUs).
SlurmdParameters=config_overrides
GresTypes=gpu
InactiveLimit=0
KillWait=5
# Keep finished jobs in slurmctld for 5 min: squeue-based status polling needs
# MinJobAge >= 3 x the plugin's init interval.
MinJobAge=300
SlurmctldTimeout=120
SlurmdTimeout=300
Waittime=0
EOF
if ((WITH_ACCOUNTING)); then
    cat >>"$tmp" <<EOF
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
AccountingStorageTRES=gres/gpu${GPU_TYPE:+,gres/gpu:$GPU_TYPE}
# As on real clusters: jobs must name an existing account (a literal
# "\$TRAINABILITY_SLURM_ACCOUNT" is rejected at submit time).
AccountingStorageEnforce=associations
# Store sbatch --comment (Snakemake puts rule and wildcards there), so sacct
# can tell which job computed which shard (tests/slurm/test_slurm.py).
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
EOF
else
    cat >>"$tmp" <<EOF
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log
EOF
fi
cat >>"$tmp" <<EOF
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$NCPUS Boards=1 SocketsPerBoard=1 CoresPerSocket=$NCPUS ThreadsPerCore=1 RealMemory=$real_mem $node_gres State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
[[ $GPU_PARTITION != "$PARTITION" ]] && echo "PartitionName=$GPU_PARTITION Nodes=$NODE Default=NO MaxTime=INFINITE State=UP" >>"$tmp"
slurm_conf_changed=0
install_conf "$tmp" "$CONF_DIR/slurm.conf" root:root 644 && slurm_conf_changed=1

tmp=$(mktemp)
{ echo "$MARKER"; ((NGPUS > 0)) && echo "NodeName=$NODE Name=gpu${GPU_TYPE:+ Type=$GPU_TYPE} File=$gpu_files"; } >"$tmp" || true
install_conf "$tmp" "$CONF_DIR/gres.conf" root:root 644 && slurm_conf_changed=1

dbd_conf_changed=0
if ((WITH_ACCOUNTING)); then
    tmp=$(mktemp)
    cat >"$tmp" <<EOF
$MARKER
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=slurm
DebugLevel=info
LogFile=$LOG_DIR/slurmdbd.log
PidFile=$PID_DIR/slurmdbd.pid
StorageType=accounting_storage/mysql
# localhost = MariaDB's unix socket ($DB_SOCKET); the DB user 'slurm' is
# authenticated by unix_socket (slurmdbd runs as OS user slurm): no password.
StorageHost=localhost
StorageUser=slurm
StorageLoc=slurm_acct_db
EOF
    install_conf "$tmp" "$CONF_DIR/slurmdbd.conf" slurm:slurm 600 && dbd_conf_changed=1
fi
log "node $NODE: CPUs=$NCPUS RealMemory=${real_mem}M ${node_gres:-no GPUs}; partitions $PARTITION(default),$GPU_PARTITION; accounting=$WITH_ACCOUNTING"

# ---------------------------------------------------------------- accounting
if ((WITH_ACCOUNTING)); then
    phase mariadb "$LOG_DIR/mariadb.log"
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    if [[ ! -d $DB_DIR/mysql ]]; then
        rm -rf "$DB_DIR"; mkdir -p "$DB_DIR"; chown mysql:mysql "$DB_DIR"
        mariadb-install-db --user=mysql --datadir="$DB_DIR" --auth-root-authentication-method=socket \
            --skip-test-db >"$LOG_DIR/mariadb-install.log" 2>&1 \
            || die "mariadb-install-db failed" "$LOG_DIR/mariadb-install.log"
    fi
    if alive mariadbd; then
        log "mariadbd already running (pid $(<"$PID_DIR/mariadbd.pid"))"
    else
        [[ -S $DB_SOCKET ]] && mariadb-admin --socket="$DB_SOCKET" ping >/dev/null 2>&1 \
            && die "a MariaDB not started by this script already listens on $DB_SOCKET; stop it first"
        precreate mysql:mysql "$LOG_DIR/mariadb.log" "$PID_DIR/mariadbd.pid"
        # mariadbd does not daemonize; setsid detaches it from our session.
        # Settings: no TCP at all; the InnoDB values slurmdbd recommends.
        setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$DB_DIR" \
            --socket="$DB_SOCKET" --pid-file="$PID_DIR/mariadbd.pid" --skip-networking \
            --log-error="$LOG_DIR/mariadb.log" --innodb-buffer-pool-size=1024M \
            --innodb-log-file-size=64M --innodb-lock-wait-timeout=900 \
            </dev/null >>"$LOG_DIR/mariadb.log" 2>&1 &
        WATCH_PID=$!
        disown
        wait_for "MariaDB socket" "$LOG_DIR/mariadb.log" mariadb-admin --socket="$DB_SOCKET" ping
        WATCH_PID=
        wait_for "mariadbd pid file" "$LOG_DIR/mariadb.log" alive mariadbd
    fi
    mariadb --socket="$DB_SOCKET" -e "
        CREATE DATABASE IF NOT EXISTS slurm_acct_db;
        CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED VIA unix_socket;
        GRANT ALL PRIVILEGES ON slurm_acct_db.* TO 'slurm'@'localhost';" \
        || die "could not create the slurm database/user"

    phase slurmdbd "$LOG_DIR/slurmdbd.log"
    ((dbd_conf_changed)) && stop_one slurmdbd "slurmdbd.conf changed, restarting"
    if alive slurmdbd; then
        log "slurmdbd already running (pid $(<"$PID_DIR/slurmdbd.pid"))"
    else
        /usr/sbin/slurmdbd || die "slurmdbd failed to start"
        wait_for "slurmdbd pid file" "$LOG_DIR/slurmdbd.log" alive slurmdbd
    fi
    # sacctmgr talks to slurmdbd directly (slurmctld need not be up yet)
    wait_for "slurmdbd to answer sacctmgr" "$LOG_DIR/slurmdbd.log" sacctmgr -n list cluster
    # Register cluster, account and user *before* slurmctld starts, so that
    # slurmctld loads the associations at startup (enforced: associations).
    if ! sacctmgr -n -P list cluster format=cluster%64 | grep -qx "$CLUSTER_NAME"; then
        sacctmgr -i add cluster "$CLUSTER_NAME" >/dev/null || die "sacctmgr add cluster failed"
    fi
    if ! sacctmgr -n -P list account "$ACCOUNT" format=account%64 | grep -qx "$ACCOUNT"; then
        sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER_NAME" Description="local test account" \
            Organization=local >/dev/null || die "sacctmgr add account $ACCOUNT failed"
    fi
    if ! sacctmgr -n -P list association cluster="$CLUSTER_NAME" account="$ACCOUNT" user=root format=user%64 | grep -qx root; then
        sacctmgr -i add user root Account="$ACCOUNT" DefaultAccount="$ACCOUNT" Cluster="$CLUSTER_NAME" >/dev/null \
            || die "sacctmgr add user root failed"
    fi
fi

if ((!WITH_ACCOUNTING)); then   # left over from an earlier start with accounting
    phase accounting-off
    stop_one slurmdbd "WITH_ACCOUNTING=0"
    stop_one mariadbd "WITH_ACCOUNTING=0"
fi

# ---------------------------------------------------------------- slurmctld + slurmd
phase slurmctld "$LOG_DIR/slurmctld.log"
if ((slurm_conf_changed)); then
    stop_one slurmd "slurm.conf/gres.conf changed, restarting"
    stop_one slurmctld "slurm.conf/gres.conf changed, restarting"
fi
if alive slurmctld; then
    log "slurmctld already running (pid $(<"$PID_DIR/slurmctld.pid"))"
else
    /usr/sbin/slurmctld || die "slurmctld failed to start"
    wait_for "slurmctld pid file" "$LOG_DIR/slurmctld.log" alive slurmctld
fi
wait_for "slurmctld to answer (scontrol ping)" "$LOG_DIR/slurmctld.log" bash -c 'scontrol ping | grep -q UP'

phase slurmd "$LOG_DIR/slurmd.log"
if alive slurmd; then
    log "slurmd already running (pid $(<"$PID_DIR/slurmd.pid"))"
else
    /usr/sbin/slurmd || die "slurmd failed to start"
    wait_for "slurmd pid file" "$LOG_DIR/slurmd.log" alive slurmd
fi

phase node-idle "$LOG_DIR/slurmd.log"
node_state() { sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n1; }
deadline=$((SECONDS + WAIT_SECONDS)); resumed=0
while :; do
    st=$(node_state)
    case $st in
        idle | mixed | allocated) break ;;
        drain* | down* | inval* | fail*)
            # drained by an earlier start (e.g. different config): try once to resume
            if ((!resumed)); then
                log "node is '$st' ($(sinfo -h -n "$NODE" -o %E)); resuming"
                scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true
                resumed=1
            fi ;;
    esac
    ((SECONDS < deadline)) || {
        scontrol show node "$NODE" >&2 || true
        show_log "$LOG_DIR/slurmctld.log"
        die "node $NODE is '$st', not idle, after ${WAIT_SECONDS}s (reason: $(sinfo -h -n "$NODE" -o %E))"
    }
    sleep 0.2
done

if ((WITH_ACCOUNTING)); then
    phase sacct "$LOG_DIR/slurmdbd.log"
    wait_for "sacct to answer" "$LOG_DIR/slurmdbd.log" sacct -n -X --starttime now-1minute
fi

phase finished
log "cluster '$CLUSTER_NAME' is up; total $(secs $(($(now_ms) - T_START))) s"
sinfo
for d in munged mariadbd slurmdbd slurmctld slurmd; do
    [[ -s $PID_DIR/$d.pid ]] && printf '[start-cluster] pid %-10s %s\n' "$d" "$(<"$PID_DIR/$d.pid")"
done
log "pid files: $PID_DIR   logs: $LOG_DIR   config: $CONF_DIR"
((WITH_ACCOUNTING)) && log "account: $ACCOUNT (root is a member)"
exit 0
