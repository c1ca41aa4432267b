#!/bin/sh
# Start the example HAProxy from this directory (master-worker, daemonized,
# pid file haproxy.pid, master CLI master.sock); reload it if it runs. A
# reload keeps rolld's server states: they are in ./server-state.
set -eu
DIR=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd -P)
cd "$DIR"
HAPROXY=${HAPROXY_BINARY:-$(command -v haproxy || echo /usr/sbin/haproxy)}
"$HAPROXY" -c -q -f haproxy.cfg
if [ -s haproxy.pid ] && [ "$(cat "/proc/$(cat haproxy.pid)/comm" 2>/dev/null)" = haproxy ]; then
    kill -USR2 "$(cat haproxy.pid)"
else
    "$HAPROXY" -W -D -p haproxy.pid -S "$DIR/master.sock,mode,600" -f haproxy.cfg </dev/null
fi
