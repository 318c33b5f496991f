#!/usr/bin/env bash
# Stop the single-node SLURM cluster started by start-cluster.sh.
# Only the daemons recorded in $PID_DIR are stopped (TERM, wait, KILL), never
# anything found by name.  Idempotent.  PURGE=1 also wipes $STATE_DIR (job
# state, accounting database, logs) and the config files start-cluster.sh wrote.
set -euo pipefail

STATE_DIR=${STATE_DIR:-/var/spool/slurm-local}
PID_DIR=${PID_DIR:-$STATE_DIR/pids}
CONF_DIR=${CONF_DIR:-/etc/slurm}
PURGE=${PURGE:-0}
TERM_WAIT=${TERM_WAIT:-15}            # seconds to wait after TERM before KILL
MARKER="# Written by tests/slurm/start-cluster.sh"

log() { printf '[stop-cluster] %s\n' "$*"; }
[[ $(id -u) -eq 0 ]] || { echo "[stop-cluster] must run as root" >&2; exit 1; }

# stop_group NAME...: TERM all named daemons at once, wait for all, KILL stragglers
stop_group() {
    local name f pid comm i j t0 pids=() names=()
    t0=${EPOCHREALTIME/[.,]/}
    for name; do
        f=$PID_DIR/$name.pid
        [[ -e $f ]] || continue
        pid=$(<"$f")
        if [[ ! $pid =~ ^[0-9]+$ ]] || ! kill -0 "$pid" 2>/dev/null; then
            log "$name: not running (stale pid file)"; rm -f "$f"; continue
        fi
        comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
        if [[ $comm != "$name" ]]; then
            # the pid was reused by an unrelated process: leave it alone
            log "$name: pid $pid is now '$comm', not $name; not touching it"; rm -f "$f"; continue
        fi
        kill -TERM "$pid" 2>/dev/null || true
        pids+=("$pid"); names+=("$name")
    done
    ((${#pids[@]})) || return 0
    for ((i = 0; i < TERM_WAIT * 10; i++)); do
        any_alive "${pids[@]}" || break
        sleep 0.1
    done
    for i in "${!pids[@]}"; do
        if kill -0 "${pids[$i]}" 2>/dev/null; then
            log "${names[$i]} (pid ${pids[$i]}) ignored TERM for ${TERM_WAIT}s; sending KILL"
            kill -KILL "${pids[$i]}" 2>/dev/null || true
            for ((j = 0; j < 50; j++)); do kill -0 "${pids[$i]}" 2>/dev/null || break; sleep 0.1; done
        fi
        log "${names[$i]} (pid ${pids[$i]}) stopped"
        rm -f "$PID_DIR/${names[$i]}.pid"   # munged/mariadbd cannot remove theirs (root-owned dir)
    done
    log "  ... in $(((${EPOCHREALTIME/[.,]/} - t0) / 1000)) ms"
}
any_alive() { local p; for p; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }

# Reverse start order: node and controller first (they still need munge to say
# goodbye), then the accounting daemons, MariaDB and munge last.
stop_group slurmd slurmctld
stop_group slurmdbd
stop_group mariadbd munged

if [[ $PURGE == 1 ]]; then
    # refuse to wipe something that is obviously not ours
    case $STATE_DIR in /|/var|/var/spool|/etc|/usr|"") log "refusing to purge STATE_DIR=$STATE_DIR"; exit 1 ;; esac
    rm -rf "$STATE_DIR"
    for f in slurm.conf gres.conf slurmdbd.conf; do
        if [[ -f $CONF_DIR/$f ]] && grep -qF "$MARKER" "$CONF_DIR/$f"; then rm -f "$CONF_DIR/$f"; fi
    done
    log "purged $STATE_DIR and the generated configs in $CONF_DIR"
fi
log "cluster stopped"
