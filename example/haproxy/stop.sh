#!/bin/sh
# Stop the example HAProxy (the one whose pid file is in this directory)
# gracefully: SIGUSR1 to the master makes every worker stop accepting and
# finish the requests in flight; the master exits after the last worker.
# Does nothing if it is not running.

set -u

DIR=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd -P) || exit 1
PIDFILE=$DIR/haproxy.pid
SOCK=$DIR/master.sock

[ -s "$PIDFILE" ] || { echo "stop.sh: haproxy is not running (no $PIDFILE)" >&2; exit 0; }
pid=$(cat "$PIDFILE")
case $pid in '' | *[!0-9]*) echo "stop.sh: bad pid file $PIDFILE" >&2; exit 1 ;; esac
if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != haproxy ]; then
    echo "stop.sh: haproxy is not running (stale $PIDFILE)" >&2
    rm -f "$PIDFILE" "$SOCK"
    exit 0
fi

# running PID: the process exists and is not a zombie.
running() {
    state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
    case $state in '' | Z*) return 1 ;; esac
}

kill -USR1 "$pid" || exit 1

# Wait up to 30 s for the master to exit (hard-stop-after in haproxy.cfg
# bounds how long a worker may take).
i=0
while running "$pid"; do
    i=$((i + 1))
    if [ "$i" -ge 300 ]; then
        echo "stop.sh: haproxy (pid $pid) still running after 30 s" >&2
        exit 1
    fi
    sleep 0.1 2>/dev/null || sleep 1
done
rm -f "$PIDFILE" "$SOCK"
exit 0
