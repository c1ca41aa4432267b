#!/bin/sh
# Stop the example nginx (the one whose prefix is this directory) gracefully:
# it finishes the requests in flight, then exits. Does nothing if it is not
# running.
#
# Environment: NGINX_BINARY  nginx binary to use (default: nginx from PATH, then
# /usr/sbin). Note that nginx itself reads a variable named NGINX (sockets
# inherited during a binary upgrade), so this script unsets it.

set -u
unset NGINX

DIR=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd -P) || exit 1
PIDFILE=$DIR/nginx.pid

NGINX_BIN=${NGINX_BINARY:-}
if [ -z "$NGINX_BIN" ]; then
    NGINX_BIN=$(command -v nginx 2>/dev/null) ||
        for n in /usr/sbin/nginx /usr/local/sbin/nginx /usr/local/nginx/sbin/nginx; do
            [ -x "$n" ] && { NGINX_BIN=$n; break; }
        done
fi

[ -s "$PIDFILE" ] || { echo "stop.sh: nginx is not running (no $PIDFILE)" >&2; exit 0; }
pid=$(cat "$PIDFILE")
case $pid in '' | *[!0-9]*) echo "stop.sh: bad pid file $PIDFILE" >&2; exit 1 ;; esac
if ! kill -0 "$pid" 2>/dev/null; then
    echo "stop.sh: nginx is not running (stale $PIDFILE)" >&2
    rm -f "$PIDFILE"
    exit 0
fi

if [ -n "$NGINX_BIN" ]; then
    "$NGINX_BIN" -p "$DIR/" -e "$DIR/error.log" -c nginx.conf -s quit || exit 1
else
    kill -QUIT "$pid" || exit 1
fi

# Wait up to 30 s for the master to exit.
i=0
while kill -0 "$pid" 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -ge 300 ]; then
        echo "stop.sh: nginx (pid $pid) still running after 30 s" >&2
        exit 1
    fi
    sleep 0.1 2>/dev/null || sleep 1
done
exit 0
