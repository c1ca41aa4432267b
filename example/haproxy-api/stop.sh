#!/bin/sh
# Stop the example HAProxy gracefully (SIGUSR1 to its master: the workers
# finish the requests they have). Does nothing if it is not running.
set -u
DIR=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd -P) || exit 1
[ -s "$DIR/haproxy.pid" ] || exit 0
pid=$(cat "$DIR/haproxy.pid")
[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = haproxy ] || { rm -f "$DIR/haproxy.pid"; exit 0; }
kill -USR1 "$pid"
i=0
while [ -d "/proc/$pid" ] && [ "$i" -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
rm -f "$DIR/haproxy.pid"
