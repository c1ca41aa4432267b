#!/bin/sh
# Start the example nginx, or reload it if it is already running.
#
# rolld runs this (after_start) once a new workset is up and upstream.conf has
# been regenerated. The nginx instance uses this script's directory as prefix
# (nginx.conf, nginx.pid, error.log and temp dirs all live here) and never
# touches the system nginx. Exit status is non-zero on failure, which makes
# rolld roll the new workset back.
#
# Environment: NGINX_BINARY  nginx binary to use (default: nginx from PATH, then
# /usr/sbin). Note that nginx itself reads a variable named NGINX (sockets
# inherited during a binary upgrade), so this script unsets it.

set -u
unset NGINX

DIR=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd -P) || exit 1
PIDFILE=$DIR/nginx.pid

find_nginx() {
    if [ -n "${NGINX_BINARY:-}" ]; then
        printf '%s\n' "$NGINX_BINARY"
        return 0
    fi
    command -v nginx 2>/dev/null && return 0
    for n in /usr/sbin/nginx /usr/local/sbin/nginx /usr/local/nginx/sbin/nginx; do
        [ -x "$n" ] && { printf '%s\n' "$n"; return 0; }
    done
    return 1
}

if ! NGINX_BIN=$(find_nginx); then
    echo "reload.sh: nginx is not installed; not starting a front end (the backends still run)" >&2
    exit 0
fi

ngx() {
    "$NGINX_BIN" -p "$DIR/" -e "$DIR/error.log" -c nginx.conf "$@"
}

# Prints the master pid and succeeds if the nginx of this prefix is running.
master_pid() {
    [ -s "$PIDFILE" ] || return 1
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    case $pid in '' | *[!0-9]*) return 1 ;; esac
    if [ -r "/proc/$pid/comm" ]; then
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = nginx ] || return 1
    else
        kill -0 "$pid" 2>/dev/null || return 1
    fi
    printf '%s\n' "$pid"
}

# Worker pids of the master (empty if pgrep is unavailable).
workers() {
    command -v pgrep >/dev/null 2>&1 && pgrep -P "$1" | sort
}

# Succeeds once the old worker $1 no longer accepts connections: it has exited
# or retitled itself "worker process is shutting down" (it closes its
# listening sockets right after that).
retired() {
    [ -r "/proc/$1/cmdline" ] || return 0
    case $(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) in
        '' | *"shutting down"*) return 0 ;;
    esac
    return 1
}

# Sleep a tenth of a second where sleep accepts fractions, else a second.
nap() {
    sleep 0.1 2>/dev/null || sleep 1
}

if pid=$(master_pid); then
    ngx -t -q || { echo "reload.sh: nginx config test failed, not reloading" >&2; exit 1; }
    before=$(workers "$pid")
    ngx -s reload || exit 1
    if [ -z "$before" ]; then
        sleep 1 # cannot observe the workers: give the reload a moment
        exit 0
    fi
    # The master starts new workers only once it has applied the new config
    # (if applying fails, it keeps the old workers and logs the reason in
    # error.log). About 100 ms later it tells the old workers to finish their
    # requests and exit. Wait for both, so that success here means all new
    # connections get the new upstream.
    i=0
    while :; do
        now=$(workers "$pid")
        started=no
        for w in $now; do
            case " $(echo $before) " in *" $w "*) ;; *) started=yes ;; esac
        done
        if [ "$started" = yes ]; then
            all_retired=yes
            for w in $before; do
                retired "$w" || all_retired=no
            done
            [ "$all_retired" = yes ] && exit 0
        fi
        i=$((i + 1))
        if [ "$i" -ge 100 ]; then
            echo "reload.sh: nginx did not switch to new workers within 10 s; see $DIR/error.log" >&2
            exit 1
        fi
        nap
    done
fi

rm -f "$PIDFILE"
ngx || { echo "reload.sh: starting nginx failed; see $DIR/error.log" >&2; exit 1; }
# nginx daemonizes before writing its pid file; wait for it so that the next
# run of this script (or stop.sh) finds the running instance.
i=0
until master_pid >/dev/null; do
    i=$((i + 1))
    if [ "$i" -ge 100 ]; then
        echo "reload.sh: nginx started but wrote no pid file; see $DIR/error.log" >&2
        exit 1
    fi
    nap
done
exit 0
