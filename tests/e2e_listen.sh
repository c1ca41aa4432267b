#!/usr/bin/env bash
# End-to-end test of `listen:`: rolld holds the public port, no load
# balancer at all, under wrk aimed straight at the port.
#
#   tests/e2e_listen.sh [PATH_TO_ROLLD]            # as the user running it
#   E2E_USER=nobody tests/e2e_listen.sh [ROLLD]    # rolld (and so its
#                                                  # backends) as that user
#   APP=gunicorn tests/e2e_listen.sh [ROLLD]       # the backends: a real
#   APP=uvicorn tests/e2e_listen.sh [ROLLD]        # app server
#
# APP (default listen_backend) picks the backends, 4 of them on
# 127.0.0.1:15190 (check ports from 15700), each serving on the socket
# rolld hands it and answering with its release:
#
#   listen_backend  tests/listen_backend.py {fd}, drain_signal USR1 (it
#                   answers each next request with `Connection: close`)
#   gunicorn        gunicorn (2 workers of GUNICORN_WORKER, gthread or
#                   sync; default gthread) serving tests/listen_app.py's
#                   WSGI app; no --bind: it takes fd 3 from LISTEN_FDS
#                   (with --bind fd://3 as well it uses the descriptor
#                   twice, closes it after the first, and dies of EBADF)
#   uvicorn         uvicorn --fd {fd} serving tests/listen_app.py's ASGI
#                   app, drain_signal USR1 (the app answers each next
#                   request with `Connection: close`)
#
# gunicorn and uvicorn ($PY_PINS) are installed with pip, when missing,
# into a virtualenv kept for the next runs in target/e2e-listen-venv/.
# Two wrk run for the whole test, one with keep-alive and one with
# `Connection: close`:
#
#   1. 5 releases, each `rolld reload --wait` exit 0, each followed by every
#      new connection answered by the new release and by no process of the
#      old set left; a 4 s request started before the first switch
#      completes, answered by the old release;
#   2. a release that answers 500 fails its smoke test: exit 1, and no
#      public request is ever answered by it (a sampler of new connections
#      runs across that rollout);
#   3. wrk: 0 non-2xx, 0 socket errors; a drain that should end by itself
#      (every APP but gunicorn gthread, whose keep-alive connections end
#      with its graceful stop) never reached drain_timeout;
#   4. a live backend (the process rolld started) SIGKILLed under a second
#      pair of wrk: at most the requests it was serving fail (one per wrk
#      connection at most), it is restarted on the same socket, and every
#      answer after names the release;
#   5. SIGTERM: exit 0, nothing left, the port closed.
#
# While the first and the last release serve: the port has rolld's 9
# listening sockets and no other; every process of a backend (a gunicorn
# master and its workers alike) holds the socket of its slot, and no other
# listening socket; each slot's socket is its own; the workers are in the
# process group of the process rolld started.

set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
APP=${APP:-listen_backend}
GUNICORN_WORKER=${GUNICORN_WORKER:-gthread}
case $APP:$GUNICORN_WORKER in
listen_backend:*) APP_TAG= ;;
gunicorn:gthread | gunicorn:sync) APP_TAG=-gunicorn-$GUNICORN_WORKER ;;
uvicorn:*) APP_TAG=-uvicorn ;;
*)
    echo "e2e-listen: APP is listen_backend, gunicorn (GUNICORN_WORKER gthread or sync) or uvicorn, not '$APP' ($GUNICORN_WORKER)" >&2
    exit 2
    ;;
esac
LIB_NAME=e2e-listen$APP_TAG${E2E_USER:+-$E2E_USER}
# shellcheck source=tests/lib.sh
source "$REPO/tests/lib.sh"

LB_PORT=15190
CHECK_FROM=15700
SET_A=($CHECK_FROM $((CHECK_FROM + 1)) $((CHECK_FROM + 2)) $((CHECK_FROM + 3)))
SET_B=($((CHECK_FROM + 4)) $((CHECK_FROM + 5)) $((CHECK_FROM + 6)) $((CHECK_FROM + 7)))
PASSED=0
SAMPLER_PID=
KA_PID=

e2e_cleanup_hook() {
    [[ -n $TMP && -d $TMP ]] && touch "$TMP/stop"
    [[ -n $SAMPLER_PID ]] && stop_pid "$SAMPLER_PID" 3
    [[ -n $KA_PID ]] && stop_pid "$KA_PID" 3 INT
    return 0
}
# The app servers and their dependencies, as pip installs them.
PY_PINS=(gunicorn==27.0.1 uvicorn==0.55.0 click==8.5.1 h11==0.16.0)
WORKERS=2 # per gunicorn master

# app_venv: sets VENV, a virtualenv holding PY_PINS, made when missing (and
# kept, shared by the next runs: its path names the pins).
app_venv() {
    local py=python3 t0 lock
    [[ -x /usr/bin/python3 ]] && py=/usr/bin/python3
    VENV=$REPO/target/e2e-listen-venv/$(printf '%s-' "${PY_PINS[@]/==/-}")${py##*/}
    mkdir -p "${VENV%/*}"
    exec {lock}>"$VENV.lock"
    flock -w 600 "$lock" || fail "could not lock $VENV.lock"
    if [[ ! -e $VENV/complete ]] || ! "$VENV/bin/python" -c 'import gunicorn, uvicorn' 2>/dev/null; then
        say "installing ${PY_PINS[*]} into $VENV"
        t0=$(now_ms)
        rm -rf -- "$VENV"
        (umask 022 && "$py" -m venv "$VENV") || fail "$py -m venv failed (on Debian: apt-get install python3-venv)"
        (umask 022 && timeout 300 "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PY_PINS[@]}") \
            >"$TMP/pip.out" 2>&1 || fail "pip install ${PY_PINS[*]} failed: $(tail -n 5 "$TMP/pip.out")"
        touch "$VENV/complete"
        say "installed in $(ms_to_secs $(($(now_ms) - t0)))s"
    fi
    exec {lock}>&-
}

E2E_LB=none
T0=$(now_ms)
e2e_begin listen "${1:-}"
echo r1 >"$TMP/release"
# APP_CMD: the group's cmd; APP_MATCH: a pattern (pgrep -f) of its
# processes' command lines; APP_PROCS: processes per slot; APP_DRAIN: the
# group's drain settings; START_TIMEOUT: its start_timeout (a release that
# answers 500 takes all of it to fail); DRAIN_ENDS_QUIET: 1 when every
# drain must end by itself (no connection left), before drain_timeout.
case $APP in
listen_backend)
    cp "$REPO/tests/listen_backend.py" "$TMP/"
    APP_CMD="python3 $TMP/listen_backend.py {fd}"
    APP_MATCH="$TMP/listen_backend.py"
    APP_PROCS=1
    APP_DRAIN=$'drain_signal: USR1\n  drain_timeout: 30\n  stop_timeout: 5'
    DRAIN_ENDS_QUIET=1
    START_TIMEOUT=10
    ;;
gunicorn)
    app_venv
    cp "$REPO/tests/listen_app.py" "$TMP/"
    # No --bind: gunicorn takes the socket rolld hands it from LISTEN_FDS,
    # as from systemd. No control socket: the masters of a group (two sets
    # while it rolls) would share one path ($HOME/.gunicorn/gunicorn.ctl).
    APP_CMD="$VENV/bin/gunicorn --no-control-socket --worker-class $GUNICORN_WORKER --workers $WORKERS"
    [[ $GUNICORN_WORKER == gthread ]] && APP_CMD+=" --threads 4"
    APP_CMD+=" --graceful-timeout 20 --chdir $TMP/ listen_app:wsgi"
    APP_MATCH="--chdir $TMP/ listen_app:wsgi"
    APP_PROCS=$((1 + WORKERS))
    START_TIMEOUT=15
    if [[ $GUNICORN_WORKER == gthread ]]; then
        # Its keep-alive connections stay with the old set until it stops:
        # on SIGTERM each worker stops accepting, answers each next request
        # with `Connection: close` (for 2 s, then closes the idle ones) and
        # finishes those in flight (--graceful-timeout, < stop_timeout).
        APP_DRAIN=$'drain_timeout: 3\n  stop_timeout: 25'
        DRAIN_ENDS_QUIET=0
    else
        # The sync worker closes each connection after its answer.
        APP_DRAIN=$'drain_timeout: 30\n  stop_timeout: 25'
        DRAIN_ENDS_QUIET=1
    fi
    ;;
uvicorn)
    app_venv
    cp "$REPO/tests/listen_app.py" "$TMP/"
    APP_CMD="$VENV/bin/uvicorn --fd {fd} --no-access-log --timeout-graceful-shutdown 20 --app-dir $TMP/ listen_app:asgi"
    APP_MATCH="--app-dir $TMP/ listen_app:asgi"
    APP_PROCS=1
    START_TIMEOUT=15
    # uvicorn closes its idle keep-alive connections at once on SIGTERM; the
    # app answers with `Connection: close` from drain_signal on, so that
    # none is left by then.
    APP_DRAIN=$'drain_signal: USR1\n  drain_timeout: 30\n  stop_timeout: 25'
    DRAIN_ENDS_QUIET=1
    ;;
esac
cat >"$TMP/rolld.yml" <<EOF2
# rolld end-to-end test of listen: (generated by tests/e2e_listen.sh)
web:
  cmd: '$APP_CMD'
  listen: '127.0.0.1:$LB_PORT'
  procs: 4
  check_from: $CHECK_FROM
  stderr: 'logs/{numproc}.err'
  smoke_test:
    - check_all_http_ports: {ports: numprocs, path: /health}
  start_timeout: $START_TIMEOUT
  drain_quiet: 0.5
  $APP_DRAIN
EOF2
wrapper=()
if [[ -n ${E2E_USER:-} ]]; then
    chown -R "$E2E_USER" "$TMP"
    wrapper=(setpriv --reuid="$E2E_USER" --regid="$(id -g "$E2E_USER")" --clear-groups)
fi

# get PATH: one GET on a new connection; its status and body, on one line.
get() { curl -s --max-time 10 -o - -w ' %{http_code}' "http://127.0.0.1:$LB_PORT$1" 2>/dev/null | tr -d '\n' || true; }
# all_answer RELEASE: 20 new connections, each answered 200 by RELEASE.
all_answer() {
    local i got
    for ((i = 0; i < 20; i++)); do
        got=$(get /)
        [[ $got == "$1 200" ]] || return 1
    done
}
reload_wait() { # reload_wait WANT_RC
    local rc=0
    timeout 120 "${wrapper[@]}" "$ROLLD" reload --run-dir "$TMP/run" "$TMP/rolld.yml" --wait >"$TMP/reload.out" 2>&1 || rc=$?
    [[ $rc == "$1" ]] || fail "rolld reload --wait exited $rc, expected $1: $(cat "$TMP/reload.out")"
}
# ka_start OUT: wrk with keep-alive (its own connections reused).
ka_start() {
    KA_OUT=$1
    wrk -t1 -c16 -d600s --timeout 10s "http://127.0.0.1:$LB_PORT/" >"$KA_OUT" 2>&1 &
    KA_PID=$!
    sleep 0.5
    alive "$KA_PID" || fail "wrk (keep-alive) did not start: $(cat "$KA_OUT")"
}
ka_stop() { # ka_stop: stops it; KA_REQUESTS and KA_ERRORS/KA_NON2XX/KA_SOCKERR
    kill -INT "$KA_PID"
    wait_for "wrk (keep-alive) to exit" 15 gone "$KA_PID"
    wait "$KA_PID" || fail "wrk (keep-alive) failed: $(cat "$KA_OUT")"
    KA_PID=
    wrk_parse "$KA_OUT"
    KA_REQUESTS=$WRK_REQUESTS KA_NON2XX=$WRK_NON2XX KA_SOCKERR=$WRK_SOCKERR KA_ERRORS=$WRK_ERRORS
}

# app_pids: the live processes of the backends (masters and workers).
app_pids() { pids_matching "$APP_MATCH"; }
# app_leaders: those rolld started.
app_leaders() {
    local p
    for p in $(app_pids); do
        [[ $(proc_ppid "$p") == "$ROLLD_PID" ]] && echo "$p"
    done
    return 0
}
# app_count_is N: N processes of the backends.
app_count_is() { [[ $(app_pids | wc -l) == "$1" ]]; }
# socket_inodes PID: the inodes of the sockets PID holds, one a line.
socket_inodes() { find "/proc/$1/fd" -lname 'socket:*' -printf '%l\n' 2>/dev/null | tr -dc '0-9\n' | sort -u; }
# listening_inodes [FILTER]: the inodes of the listening TCP sockets (ss FILTER).
listening_inodes() { ss -Htlne "$@" | grep -oE 'ino:[0-9]+' | cut -d: -f2 | sort -u; }
# check_app_sockets: the port has rolld's 2N+1 listening sockets and no
# other; each slot's processes (the one rolld started, and its workers in
# its process group) hold its socket and no other listening socket, and
# no two slots hold the same.
check_app_sockets() {
    local port ours all p pgid held leaders=() n
    port=$(listening_inodes "sport = :$LB_PORT")
    n=$(grep -c . <<<"$port")
    ((n == 9)) || fail "$n listening sockets on :$LB_PORT, expected rolld's 9"
    ours=$(socket_inodes "$ROLLD_PID")
    [[ -z $(comm -23 <(echo "$port") <(echo "$ours")) ]] || fail "a listening socket on :$LB_PORT is not rolld's"
    all=$(listening_inodes)
    declare -A slot=()
    for p in $(app_pids); do
        held=$(comm -12 <(socket_inodes "$p") <(echo "$all"))
        [[ -n $held && $held != *$'\n'* ]] ||
            fail "process $p ($(tr '\0' ' ' <"/proc/$p/cmdline")) holds the listening sockets '${held//$'\n'/ }', expected one"
        grep -qx "$held" <<<"$port" || fail "process $p listens on socket $held, not one of rolld's on :$LB_PORT"
        pgid=$(proc_pgid "$p")
        [[ $(proc_ppid "$pgid") == "$ROLLD_PID" ]] || fail "process $p is in process group $pgid, not one that rolld started"
        [[ -z ${slot[$pgid]:-} || ${slot[$pgid]} == "$held" ]] ||
            fail "the processes of group $pgid hold different sockets: ${slot[$pgid]} and $held"
        slot[$pgid]=$held
    done
    for p in "${!slot[@]}"; do leaders+=("${slot[$p]}"); done
    ((${#slot[@]} == 4)) || fail "${#slot[@]} process groups of backends, expected 4"
    [[ $(printf '%s\n' "${leaders[@]}" | sort -u | wc -l) == 4 ]] || fail "two slots hold the same socket: ${leaders[*]}"
}

say "rolld: $ROLLD; work dir: $TMP${E2E_USER:+; as $E2E_USER}"
if [[ ${#wrapper[@]} -gt 0 ]]; then
    # setpriv execs rolld: it is rolld, with no child of its own to find.
    (cd "$TMP" && exec "${wrapper[@]}" "$ROLLD" --run-dir "$TMP/run" "$TMP/rolld.yml" </dev/null >>"$TMP/rolld.out" 2>>"$LOG") &
    RUN_PID=$!
    ROLLD_PID=$RUN_PID
    EXPECT_ROLLD=1
else
    rolld_spawn
fi
wait_for "the first set to go live" 30 log_has " live on $(IFS=,; echo "${SET_A[*]}")"
wait_for "release r1 to answer on :$LB_PORT" 10 all_answer r1
wait_for "$((4 * APP_PROCS)) processes of backends" 10 app_count_is $((4 * APP_PROCS))
check_app_sockets
if [[ -n ${E2E_USER:-} ]]; then
    for p in $(app_pids); do
        [[ $(stat -c %U "/proc/$p") == "$E2E_USER" ]] || fail "backend $p does not run as $E2E_USER"
    done
fi
wrk_start "http://127.0.0.1:$LB_PORT/" "$TMP/wrk.out"
ka_start "$TMP/wrk-ka.out"

# --- 1. five releases, a long request across the first switch ------------------------
get /sleep?4 >"$TMP/long.out" &
LONG_PID=$!
BG_PIDS+=("$LONG_PID")
sleep 0.3
for r in r2 r3 r4 r5 r6; do
    echo "$r" >"$TMP/release"
    reload_wait 0
    wait_for "every new connection to be answered by $r" 5 all_answer "$r"
    app_count_is $((4 * APP_PROCS)) || fail "$(app_pids | wc -l) processes of backends once $r rolled, expected $((4 * APP_PROCS)): $(procs_of_dir "$TMP" | tr '\n' ';')"
done
wait "$LONG_PID" || true
[[ $(cat "$TMP/long.out") == "r1 200" ]] || fail "the long request across the switch got: $(cat "$TMP/long.out")"
check_app_sockets
say "5 releases, each served by the next new connection; the 4 s request across a switch completed"

# --- 2. a release that fails its smoke test answers nobody -----------------------------
(
    while [[ ! -e $TMP/stop-sampler ]]; do
        get / >>"$TMP/sampled.txt"
        echo >>"$TMP/sampled.txt"
        sleep 0.01
    done
) &
SAMPLER_PID=$!
BG_PIDS+=("$SAMPLER_PID")
echo bad-1 >"$TMP/release"
reload_wait 1
grep -qF "answered 500" "$TMP/reload.out" || fail "no 'answered 500' in: $(cat "$TMP/reload.out")"
touch "$TMP/stop-sampler"
wait_for "the sampler to stop" 5 gone "$SAMPLER_PID"
SAMPLER_PID=
sampled=$(grep -c . "$TMP/sampled.txt")
bad=$(grep -vcx "r6 200" "$TMP/sampled.txt" || true)
((sampled >= 10)) || fail "only $sampled requests sampled across the failed rollout"
[[ $bad == 0 ]] || fail "$bad of $sampled public requests across the failed rollout were not answered 200 by r6: $(grep -vx 'r6 200' "$TMP/sampled.txt" | sort | uniq -c | tr '\n' ';')"
all_answer r6 || fail "r6 no longer answers every new connection"
say "bad-1 rolled back; $sampled public requests across it, all answered by r6"

# --- 3. no request lost ---------------------------------------------------------------------
wrk_stop_clean 1000
CLOSE_REQUESTS=$WRK_REQUESTS
ka_stop
[[ -z $KA_ERRORS ]] || fail "wrk (keep-alive) saw errors: $KA_ERRORS ($KA_REQUESTS requests)"
((KA_REQUESTS >= 1000)) || fail "wrk (keep-alive) made only $KA_REQUESTS requests"
say "wrk: $CLOSE_REQUESTS requests (Connection: close) and $KA_REQUESTS (keep-alive), 0 errors"
timeouts=$(count "drain_timeout reached")
say "drains that reached drain_timeout: $timeouts"
[[ $DRAIN_ENDS_QUIET == 0 || $timeouts == 0 ]] || fail "$timeouts drains reached drain_timeout: $(log_lines "drain_timeout reached" | head -n 3 | tr '\n' ';')"
KEEP_REQUESTS=$KA_REQUESTS

# --- 4. a live backend SIGKILLed -------------------------------------------------------------
echo r6 >"$TMP/release"
wrk_start "http://127.0.0.1:$LB_PORT/" "$TMP/wrk2.out"
ka_start "$TMP/wrk2-ka.out"
victim=$(app_leaders)
victim=${victim%%$'\n'*}
[[ -n $victim ]] || fail "no backend to kill"
kill -KILL "$victim"
wait_for "the killed backend to be restarted" 10 log_has "restarted as pid"
sleep 1
all_answer r6 || fail "r6 no longer answers every new connection after the kill"
wrk_stop
close=("$WRK_REQUESTS" "$WRK_NON2XX" "$WRK_SOCKERR")
ka_stop
say "SIGKILL of pid $victim: Connection: close: ${close[2]} of ${close[0]} requests failed; keep-alive: $KA_SOCKERR of $KA_REQUESTS"
((close[1] == 0 && KA_NON2XX == 0)) || fail "answers other than 2xx after the kill"
((close[2] <= WRK_CONNS)) || fail "${close[2]} requests failed (Connection: close), more than its $WRK_CONNS connections could have had in flight"
((KA_SOCKERR <= 16)) || fail "$KA_SOCKERR requests failed (keep-alive), more than its 16 connections could have had in flight"

# --- 5. SIGTERM -------------------------------------------------------------------------------
rolld_stop_ok 20
assert_nothing_left 5 "$LB_PORT"
PASSED=1
echo "$LIB_NAME: PASS ($CLOSE_REQUESTS + $KEEP_REQUESTS requests with 0 errors across 6 rollouts, one rolled back with 0 public answers; a SIGKILLed backend cost $((close[2] + KA_SOCKERR)); $(ms_to_secs $(($(now_ms) - T0)))s)"
