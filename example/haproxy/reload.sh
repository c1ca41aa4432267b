#!/bin/sh
# Check the new HAProxy config, install it, and start HAProxy or reload it.
#
# rolld runs this (after_start) once a new workset is up and haproxy.cfg.new
# has been rendered from haproxy.cfg.templ:
#
#   1. `haproxy -c` checks haproxy.cfg.new. If it is invalid, it is kept as
#      haproxy.cfg.rejected, haproxy.cfg and the running HAProxy are left as
#      they are, and this script fails: rolld rolls the new workset back.
#   2. haproxy.cfg.new is renamed to haproxy.cfg (the previous one is kept
#      as haproxy.cfg.prev).
#   3. HAProxy is started (master-worker mode, daemonized, pid file
#      haproxy.pid, master CLI master.sock) if it is not running; otherwise the
#      master gets SIGUSR2 and re-executes itself with the new config.
#   4. It waits until the switch is complete: a new worker holds the listening
#      sockets and no old worker does any more, so every new connection gets
#      the new config. Old workers finish their requests in the background.
#      If HAProxy cannot apply the config (a port it cannot bind, say), the
#      old worker keeps serving, the new config is moved to
#      haproxy.cfg.rejected, haproxy.cfg.prev back to haproxy.cfg, and this
#      script fails.
#
# Without haproxy.cfg.new (run by hand), it checks and (re)loads haproxy.cfg.
# Everything lives in this script's directory; the system HAProxy is never
# touched. Exit status is non-zero on failure.
#
# Environment: HAPROXY_BINARY  haproxy binary to use (default: haproxy from
# PATH, then /usr/sbin and /usr/local/sbin).
#
# Uses pgrep (procps) and ss (iproute2) to watch the workers, and socat or
# python3, where installed, to read the master CLI: a reload that HAProxy
# could not apply (a port it cannot bind, say) is then reported within a
# second or two instead of after the 10 s wait.

set -u

DIR=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd -P) || exit 1
CFG=$DIR/haproxy.cfg
NEW=$DIR/haproxy.cfg.new
PREV=$DIR/haproxy.cfg.prev
PIDFILE=$DIR/haproxy.pid
SOCK=$DIR/master.sock
WAIT_TENTHS=100 # how long to wait for a start or a reload: 10 s

say() { echo "reload.sh: $*" >&2; }

find_haproxy() {
    if [ -n "${HAPROXY_BINARY:-}" ]; then
        printf '%s\n' "$HAPROXY_BINARY"
        return 0
    fi
    command -v haproxy 2>/dev/null && return 0
    for h in /usr/sbin/haproxy /usr/local/sbin/haproxy; do
        [ -x "$h" ] && { printf '%s\n' "$h"; return 0; }
    done
    return 1
}

# Prints the master pid and succeeds if the HAProxy of this directory runs.
master_pid() {
    [ -s "$PIDFILE" ] || return 1
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    case $pid in '' | *[!0-9]*) return 1 ;; esac
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = haproxy ] || return 1
    printf '%s\n' "$pid"
}

# running PID: the process exists and is not a zombie.
running() {
    state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
    case $state in '' | Z*) return 1 ;; esac
}

# Worker pids of master $1, sorted.
workers() {
    pgrep -P "$1" | sort -n
}

# Pids holding a listening TCP socket, one per line as " PID ".
listeners() {
    ss -Htlnp 2>/dev/null | grep -o 'pid=[0-9]*' | sed 's/^pid=\(.*\)$/ \1 /' | sort -u
}

# Sends a command to the master CLI and prints the answer; fails if no client
# (socat or python3) is installed or the master does not answer.
cli() {
    if command -v socat >/dev/null 2>&1; then
        printf '%s\n' "$1" | socat -t 1 - "UNIX-CONNECT:$SOCK" 2>/dev/null
    elif command -v python3 >/dev/null 2>&1; then
        python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(1)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
s.shutdown(socket.SHUT_WR)
while True:
    d = s.recv(65536)
    if not d:
        break
    sys.stdout.write(d.decode(errors="replace"))
' "$SOCK" "$1" 2>/dev/null
    else
        return 1
    fi
}

# Number of failed reloads the master counts ("[failed: N]" in show proc);
# empty if the master CLI cannot be read.
failed_reloads() {
    cli 'show proc' | sed -n 's/.*master.*\[failed: *\([0-9]*\)\].*/\1/p'
}

# Sleep a tenth of a second where sleep accepts fractions, else a second.
nap() {
    sleep 0.1 2>/dev/null || sleep 1
}

if ! HAPROXY=$(find_haproxy); then
    say "haproxy is not installed; not starting a front end (the backends still run)"
    exit 0
fi

# 1-2. Check the candidate config, then install it.
if [ -e "$NEW" ]; then
    if ! out=$("$HAPROXY" -c -f "$NEW" 2>&1); then
        printf '%s\n' "$out" >&2
        mv -f "$NEW" "$DIR/haproxy.cfg.rejected"
        say "haproxy config check failed (kept as haproxy.cfg.rejected); haproxy.cfg and the running haproxy are unchanged"
        exit 1
    fi
    # Keep the config HAProxy runs, to put it back if the reload fails.
    if [ -e "$CFG" ]; then
        cp -p "$CFG" "$PREV" || exit 1
    else
        rm -f "$PREV"
    fi
    mv -f "$NEW" "$CFG" || exit 1
else
    if ! out=$("$HAPROXY" -c -f "$CFG" 2>&1); then
        printf '%s\n' "$out" >&2
        say "haproxy config check failed; not (re)loading"
        exit 1
    fi
fi

can_watch=yes
command -v pgrep >/dev/null 2>&1 && command -v ss >/dev/null 2>&1 || can_watch=no

# 3-4. Reload a running HAProxy.
if pid=$(master_pid); then
    before=$(workers "$pid" | tr '\n' ' ')
    failed0=$(failed_reloads)
    kill -USR2 "$pid" || exit 1
    if [ "$can_watch" = no ]; then
        sleep 1 # cannot observe the workers: give the reload a moment
        exit 0
    fi
    i=0
    while :; do
        held=$(listeners)
        switched=no
        for w in $(workers "$pid"); do
            case " $before " in *" $w "*) continue ;; esac
            case $held in *" $w "*) switched=yes ;; esac
        done
        for w in $before; do
            case $held in *" $w "*) switched=no ;; esac
        done
        [ "$switched" = yes ] && exit 0
        if ! running "$pid"; then
            say "the haproxy master (pid $pid) exited during the reload"
            exit 1
        fi
        # A reload takes a fraction of a second. The master CLI is asked only
        # if it takes longer, twice a second: while the master re-executes
        # itself, its CLI answers late.
        if [ -n "$failed0" ] && [ "$i" -ge 5 ] && [ $((i % 5)) -eq 0 ]; then
            failed=$(failed_reloads)
            if [ -n "$failed" ] && [ "$failed" -gt "$failed0" ]; then
                if [ -e "$PREV" ]; then
                    mv -f "$CFG" "$DIR/haproxy.cfg.rejected"
                    mv -f "$PREV" "$CFG"
                fi
                say "haproxy failed to load the new config (kept as haproxy.cfg.rejected); the old worker keeps serving with haproxy.cfg; master CLI:"
                cli 'show proc' >&2
                exit 1
            fi
        fi
        i=$((i + 1))
        if [ "$i" -ge "$WAIT_TENTHS" ]; then
            say "haproxy did not switch to a new worker within 10 s"
            cli 'show proc' >&2
            exit 1
        fi
        nap
    done
fi

# Start.
rm -f "$PIDFILE"
"$HAPROXY" -W -D -p "$PIDFILE" -S "$SOCK,mode,600" -f "$CFG" </dev/null ||
    { say "starting haproxy failed"; exit 1; }
i=0
while :; do
    if pid=$(master_pid); then
        [ "$can_watch" = no ] && exit 0
        held=$(listeners)
        for w in $(workers "$pid"); do
            case $held in *" $w "*) exit 0 ;; esac
        done
    fi
    i=$((i + 1))
    if [ "$i" -ge "$WAIT_TENTHS" ]; then
        say "haproxy started but no worker is listening after 10 s"
        exit 1
    fi
    nap
done
