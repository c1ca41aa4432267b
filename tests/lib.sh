# shellcheck shell=bash
# Shell helpers for rolld's end-to-end tests (tests/e2e.sh, tests/faults.sh;
# sourced, not run). Each test works in a directory of its own, $TMP: its config, its
# backends (whose command lines name $TMP), its nginx prefix ($TMP/nginx/)
# and its logs. Everything a test starts can therefore be found, and
# stopped, by that path.
#
# Variables the helpers read or set:
#   LIB_NAME      prefix of messages ("faults: smoke-500")
#   TMP           the test's own directory (no trailing slash)
#   LOG           rolld's log (its stderr)
#   ROLLD         the rolld binary
#   RUN_PID       the process started to run rolld (rolld, or a wrapper
#                 such as unshare); ROLLD_PID is rolld itself
#   EXPECT_ROLLD  while 1, wait_for fails at once when rolld has died
#   WRK_PID       the wrk running, if any; BG_PIDS other background jobs
#   NGINX_BIN     the nginx binary (found by lib_find_nginx)
#   LIB_FAIL_REASON  set by fail
#
# Requires bash 5 (EPOCHREALTIME), procps (pgrep, ps), iproute2 (ss), curl,
# wrk, GNU date and awk.

LIB_NAME=${LIB_NAME:-test}
TMP=${TMP:-}
LOG=${LOG:-}
RUN_PID=${RUN_PID:-}
ROLLD_PID=${ROLLD_PID:-}
EXPECT_ROLLD=${EXPECT_ROLLD:-0}
WRK_PID=${WRK_PID:-}
BG_PIDS=()
LIB_FAIL_REASON=

say() { printf '%s: %s\n' "$LIB_NAME" "$*"; }
# fail MESSAGE: ends the test (exit 1) with "$LIB_NAME: FAIL: MESSAGE" on
# stderr; or, when LIB_FAIL_FILE is set, appends MESSAGE to that file for
# the caller to report (so that a fail in a command substitution or with
# stderr redirected is not lost).
fail() {
    LIB_FAIL_REASON="$*"
    if [[ -n ${LIB_FAIL_FILE:-} ]]; then
        printf '%s\n' "$*" >>"$LIB_FAIL_FILE"
    else
        printf '%s: FAIL: %s\n' "$LIB_NAME" "$*" >&2
    fi
    exit 1
}

# --- time ---------------------------------------------------------------------

now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }
# secs_to_ms SECONDS (fractions allowed)
secs_to_ms() { awk -v s="$1" 'BEGIN { printf "%d", s * 1000 }'; }
# ms_to_secs MS: "1.234"
ms_to_secs() { awk -v m="$1" 'BEGIN { printf "%.3f", m / 1000 }'; }

# --- processes ------------------------------------------------------------------

# alive PID: the process exists and is not a zombie.
alive() {
    [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null || return 1
    [[ $(proc_state "$1") != Z ]]
}
gone() { ! alive "$1"; }
# not_running PID: no such process, or a zombie (waiting for its parent).
not_running() { ! alive "$1"; }

# Fields of /proc/PID/stat after the command name: state, ppid, pgid, sid.
proc_stat_fields() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) }
    echo "$s"
}
proc_state() { local f; f=$(proc_stat_fields "$1") || return 1; awk '{print $1}' <<<"$f"; }
proc_ppid() { local f; f=$(proc_stat_fields "$1") || return 1; awk '{print $2}' <<<"$f"; }
proc_pgid() { local f; f=$(proc_stat_fields "$1") || return 1; awk '{print $3}' <<<"$f"; }
proc_sid() { local f; f=$(proc_stat_fields "$1") || return 1; awk '{print $4}' <<<"$f"; }
# proc_cpu_ticks PID: utime + stime, in clock ticks.
proc_cpu_ticks() { local f; f=$(proc_stat_fields "$1") || return 1; awk '{print $12 + $13}' <<<"$f"; }

# pids_matching REGEX: pids of live (non-zombie) processes whose command
# line matches (pgrep -f), one a line.
pids_matching() {
    local pid
    for pid in $(pgrep -f -- "$1" 2>/dev/null); do
        [[ $pid == "$BASHPID" || $pid == "$$" ]] && continue
        alive "$pid" && echo "$pid"
    done
    return 0
}

# procs_of_dir DIR: "pid args" of every live process whose command line
# names DIR/ (the test shell excepted).
procs_of_dir() {
    local pid
    for pid in $(pids_matching "$1/"); do
        printf '%s %s\n' "$pid" "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
    done
}

# zombies_of PID...: "stat ppid pid args" of zombies whose parent is one of
# the PIDs.
zombies_of() {
    local want=" $* "
    ps -eo stat=,ppid=,pid=,args= | awk -v want="$want" '$1 ~ /^Z/ && index(want, " " $2 " ")'
}

# stop_pid PID SECONDS [SIGNAL]: SIGNAL (TERM), wait up to SECONDS, SIGKILL.
stop_pid() {
    local pid=$1 secs=$2 sig=${3:-TERM} i
    alive "$pid" || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 10; i++)); do
        alive "$pid" || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    return 0
}

# --- waiting ------------------------------------------------------------------------

# wait_for DESCRIPTION TIMEOUT_SECONDS COMMAND...: runs COMMAND every 50 ms
# until it succeeds; fails the test at the deadline, or at once if rolld
# died while EXPECT_ROLLD is 1.
wait_for() {
    local desc=$1 timeout=$2
    shift 2
    local deadline=$(($(now_ms) + $(secs_to_ms "$timeout")))
    until "$@"; do
        if [[ $EXPECT_ROLLD == 1 ]] && ! alive "$ROLLD_PID"; then
            fail "rolld exited while waiting for: $desc"
        fi
        if (($(now_ms) >= deadline)); then
            fail "timed out after ${timeout}s waiting for: $desc"
        fi
        sleep 0.05
    done
}

# has_output COMMAND...: COMMAND prints something (for wait_for).
has_output() { [[ -n $("$@") ]]; }
# no_output COMMAND...: COMMAND prints nothing.
no_output() { [[ -z $("$@") ]]; }

# --- rolld's log ------------------------------------------------------------------------

count() { grep -cF -- "$1" "$LOG" 2>/dev/null || true; }
log_has() { [[ $(count "$1") -gt 0 ]]; }
# log_lines FRAGMENT...: the lines of the log that contain every fragment.
log_lines() {
    [[ -f $LOG ]] || return 0
    awk 'BEGIN { n = ARGC - 1; for (i = 1; i < ARGC; i++) f[i] = ARGV[i]; ARGC = 1 }
         { for (i = 1; i <= n; i++) if (!index($0, f[i])) next; print }' "$@" <"$LOG"
}
# log_line FRAGMENT...: the first such line; fails the test when none.
log_line() {
    local l
    l=$(log_lines "$@" | head -n 1)
    [[ -n $l ]] || fail "no line of rolld's log contains all of: $(printf '"%s" ' "$@")"
    echo "$l"
}
log_has_all() { [[ -n $(log_lines "$@" | head -n 1) ]]; }
# count_all FRAGMENT...: how many lines contain every fragment.
count_all() { log_lines "$@" | wc -l; }
# log_time_ms LINE: the line's leading UTC timestamp, in epoch milliseconds.
log_time_ms() { date -u -d "${1%% *}" +%s%3N; }
# ms_between LINE1 LINE2: milliseconds from the first line to the second.
ms_between() { echo $(($(log_time_ms "$2") - $(log_time_ms "$1"))); }

# --- ports ------------------------------------------------------------------------------

listening_ports() { ss -Htln | awk '{n = split($4, a, ":"); print a[n]}' | sort -un; }
# all_listen PORT...: every port has a listening socket.
all_listen() {
    local l p
    l=" $(listening_ports | tr '\n' ' ') "
    for p in "$@"; do [[ $l == *" $p "* ]] || return 1; done
}
# none_listen PORT...: no port has a listening socket.
none_listen() {
    local l p
    l=" $(listening_ports | tr '\n' ' ') "
    for p in "$@"; do [[ $l != *" $p "* ]] || return 1; done
}
# answers PORT [BODY]: GET / straight to the port gives 200 (and BODY).
answers() {
    local body
    body=$(curl -sf --max-time 3 "http://127.0.0.1:$1/" 2>/dev/null) || return 1
    [[ -z ${2:-} || $body == "$2" ]]
}

# --- rolld ---------------------------------------------------------------------------------

# rolld_spawn [WRAPPER...]: starts "$ROLLD --run-dir $TMP/run $TMP/rolld.yml"
# in $TMP, stderr appended to $LOG; sets RUN_PID and ROLLD_PID (with a
# wrapper, rolld is the wrapper's child).
rolld_spawn() {
    (cd "$TMP" && exec "$@" "$ROLLD" --run-dir "$TMP/run" "$TMP/rolld.yml" </dev/null >>"$TMP/rolld.out" 2>>"$LOG") &
    RUN_PID=$!
    ROLLD_PID=$RUN_PID
    if [[ $# -gt 0 ]]; then
        local child=
        rolld_child() { child=$(pgrep -P "$RUN_PID" | head -n 1) && [[ -n $child ]]; }
        wait_for "rolld to start under $1" 10 rolld_child
        ROLLD_PID=$child
    fi
    EXPECT_ROLLD=1
}

# rolld_wait_exit SECONDS: waits for rolld (and its wrapper) to exit; sets
# ROLLD_RC to the exit status.
rolld_wait_exit() {
    EXPECT_ROLLD=0
    wait_for "rolld to exit" "$1" gone "$RUN_PID"
    ROLLD_RC=0
    wait "$RUN_PID" 2>/dev/null || ROLLD_RC=$?
    RUN_PID=
    EXPECT_ROLLD=0
}

# rolld_stop_ok SECONDS: SIGTERM; rolld must exit 0 within SECONDS and say
# "rolld exiting (0)". Sets STOP_MS to how long it took.
rolld_stop_ok() {
    local t0
    t0=$(now_ms)
    kill -TERM "$ROLLD_PID" 2>/dev/null || fail "rolld (pid $ROLLD_PID) is not running"
    rolld_wait_exit "$1"
    STOP_MS=$(($(now_ms) - t0))
    [[ $ROLLD_RC -eq 0 ]] || fail "rolld exited with status $ROLLD_RC after SIGTERM (expected 0)"
    log_has 'rolld exiting (0)' || fail "no 'rolld exiting (0)' in rolld's log"
}

# --- nginx --------------------------------------------------------------------------------

lib_find_nginx() {
    unset NGINX # nginx reads this variable (inherited sockets)
    NGINX_BIN=$(command -v nginx || true)
    local n
    [[ -n $NGINX_BIN ]] || for n in /usr/sbin/nginx /usr/local/sbin/nginx /usr/local/nginx/sbin/nginx; do
        [[ -x $n ]] && NGINX_BIN=$n && break
    done
    [[ -n $NGINX_BIN ]] || return 1
    export NGINX_BINARY=$NGINX_BIN # read by example/nginx/reload.sh and stop.sh
}

# nginx_setup SRC_DIR PREFIX PORT: a prefix of its own for one test, from
# the example's nginx.conf, upstream.conf.templ, reload.sh and stop.sh,
# listening on 127.0.0.1:PORT (strict: proxy_next_upstream off, no upstream
# keepalive, HTTP/1.0 to the backends).
nginx_setup() {
    local src=$1 prefix=$2 port=$3
    mkdir -p "$prefix"
    cp "$src"/{nginx.conf,upstream.conf.templ,reload.sh,stop.sh} "$prefix/"
    sed -i "s/listen 127\.0\.0\.1:8080;/listen 127.0.0.1:$port;/" "$prefix/nginx.conf"
    grep -qF "listen 127.0.0.1:$port;" "$prefix/nginx.conf" || fail "could not set the port in $prefix/nginx.conf"
    grep -qF 'proxy_next_upstream off;' "$prefix/nginx.conf" || fail "$prefix/nginx.conf is not strict (proxy_next_upstream off)"
    ! grep -qE '^\s*keepalive\s' "$prefix/nginx.conf" "$prefix/upstream.conf.templ" ||
        fail "$prefix: upstream keepalive is set"
}

# nginx_start PREFIX: starts the nginx of PREFIX (which needs its
# upstream.conf) unless it runs; waits for its pid file.
nginx_start() {
    local prefix=${1%/}
    [[ -n $(nginx_masters "$prefix") ]] && return 0
    (cd "$prefix" && "$NGINX_BIN" -p "$prefix/" -e "$prefix/error.log" -c nginx.conf) ||
        fail "nginx of $prefix did not start: $(tail -n 3 "$prefix/error.log" 2>/dev/null)"
    wait_for "nginx of $prefix to write its pid file" 10 test -s "$prefix/nginx.pid"
}

# nginx_masters PREFIX: pids of the nginx masters of PREFIX (found by their
# command line, so this works across pid namespaces).
nginx_masters() { pids_matching "nginx: master process .*${1%/}/"; }

# nginx_stop PREFIX: graceful stop (SIGQUIT to the master), SIGKILL to the
# master and its workers after 5 s.
nginx_stop() {
    local prefix=${1%/} masters workers i
    masters=$(nginx_masters "$prefix")
    [[ -n $masters ]] || return 0
    workers=$(for i in $masters; do pgrep -P "$i" || true; done)
    # shellcheck disable=SC2086
    kill -QUIT $masters 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        [[ -z $(nginx_masters "$prefix") ]] && break
        sleep 0.1
    done
    # shellcheck disable=SC2086
    kill -KILL $masters $workers 2>/dev/null || true
    return 0
}

# nginx_ok PORT: nginx answers "port N" on 127.0.0.1:PORT.
nginx_ok() {
    local body
    body=$(curl -s --max-time 2 "http://127.0.0.1:$1/" 2>/dev/null) || return 1
    [[ $body == "port "* ]]
}

# served_by NGINX_PORT PORT...: 20 requests through nginx, each answered by
# one of these backend ports.
served_by() {
    local nport=$1 i body
    shift
    local want=" $* "
    for i in $(seq 20); do
        body=$(curl -s --max-time 5 "http://127.0.0.1:$nport/") || fail "request $i through nginx :$nport failed"
        [[ $body == "port "* && $want == *" ${body#port } "* ]] ||
            fail "request through nginx :$nport answered '$body', expected one of:$want"
    done
}

# upstream_ports PREFIX: the backend ports in PREFIX/upstream.conf, sorted.
upstream_ports() {
    grep -oE 'server 127\.0\.0\.1:[0-9]+' "${1%/}/upstream.conf" 2>/dev/null | awk -F: '{print $2}' | sort -n | tr '\n' ' ' | sed 's/ $//'
}
# upstream_is PREFIX PORT...: upstream.conf names exactly these ports.
upstream_is() {
    local prefix=$1
    shift
    local want
    want=$(printf '%s\n' "$@" | sort -n | tr '\n' ' ' | sed 's/ $//')
    [[ $(upstream_ports "$prefix") == "$want" ]] ||
        fail "$prefix/upstream.conf names '$(upstream_ports "$prefix")', expected '$want'"
}

# --- wrk --------------------------------------------------------------------------------------

WRK_THREADS=${WRK_THREADS:-2}
WRK_CONNS=${WRK_CONNS:-8}
WRK_TIMEOUT=${WRK_TIMEOUT:-10s}

# wrk_start URL OUTFILE: wrk in the background for up to 10 minutes (it is
# stopped with wrk_stop), every request on a new connection. Its timeout is
# WRK_TIMEOUT, 10 s unless set, so that a loaded machine does not turn slow
# answers into errors.
wrk_start() {
    WRK_OUT=$2
    wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d600s --timeout "$WRK_TIMEOUT" -H "Connection: close" "$1" >"$WRK_OUT" 2>&1 &
    WRK_PID=$!
    sleep 0.5
    alive "$WRK_PID" || fail "wrk did not start: $(cat "$WRK_OUT")"
}

# wrk_stop: SIGINT (wrk prints its summary), then parse it (wrk_parse).
wrk_stop() {
    [[ -n $WRK_PID ]] || fail "wrk_stop: wrk is not running"
    alive "$WRK_PID" || fail "wrk stopped early: $(cat "$WRK_OUT")"
    kill -INT "$WRK_PID"
    local was=$EXPECT_ROLLD
    EXPECT_ROLLD=0
    wait_for "wrk to print its summary and exit" 15 gone "$WRK_PID"
    EXPECT_ROLLD=$was
    local rc=0
    wait "$WRK_PID" || rc=$?
    WRK_PID=
    [[ $rc -eq 0 ]] || fail "wrk exited with status $rc: $(cat "$WRK_OUT")"
    wrk_parse "$WRK_OUT"
}

# wrk_parse FILE: sets WRK_REQUESTS, WRK_NON2XX, WRK_SOCKERR (connect + read
# + write + timeout) and WRK_ERRORS (a one-line description, empty if none).
wrk_parse() {
    local f=$1 summary sock
    summary=$(grep -E '^ *[0-9]+ requests in ' "$f" || true)
    [[ -n $summary ]] || fail "no summary in wrk's output: $(cat "$f")"
    WRK_REQUESTS=$(awk '{print $1}' <<<"$summary")
    WRK_NON2XX=$(awk -F: '/Non-2xx or 3xx responses/ {gsub(/ /, "", $2); print $2}' "$f")
    WRK_NON2XX=${WRK_NON2XX:-0}
    sock=$(grep -E 'Socket errors:' "$f" || true)
    WRK_SOCKERR=0
    if [[ -n $sock ]]; then
        WRK_SOCKERR=$(grep -oE '[0-9]+' <<<"$sock" | awk '{s += $1} END {print s + 0}')
    fi
    WRK_ERRORS=
    if [[ $WRK_NON2XX != 0 || $WRK_SOCKERR != 0 ]]; then
        WRK_ERRORS=$(grep -E 'Non-2xx or 3xx responses|Socket errors' "$f" | tr -s ' ' | tr '\n' ';')
    fi
}

# wrk_stop_clean MIN_REQUESTS: stops wrk; it must have seen only 2xx answers,
# no socket error, and at least MIN_REQUESTS requests.
wrk_stop_clean() {
    wrk_stop
    [[ -z $WRK_ERRORS ]] || fail "wrk saw errors: $WRK_ERRORS ($WRK_REQUESTS requests)"
    ((WRK_REQUESTS >= $1)) || fail "wrk made only $WRK_REQUESTS requests (expected at least $1)"
}

# --- cleanup ---------------------------------------------------------------------------------

# lib_cleanup: stops whatever the test left running: wrk and background
# jobs, rolld, the nginx of $TMP/nginx, then every process whose command
# line names $TMP/ (backends, their workers and daemons, hooks, holders).
lib_cleanup() {
    local pid i left
    [[ -n $WRK_PID ]] && stop_pid "$WRK_PID" 2 INT
    for pid in "${BG_PIDS[@]}"; do stop_pid "$pid" 2; done
    [[ -n $ROLLD_PID ]] && alive "$ROLLD_PID" && stop_pid "$ROLLD_PID" 10
    [[ -n $RUN_PID ]] && stop_pid "$RUN_PID" 2
    if [[ -n $TMP && -d $TMP ]]; then
        nginx_stop "$TMP/nginx"
        left=$(pids_matching "$TMP/")
        if [[ -n $left ]]; then
            # shellcheck disable=SC2086
            kill -TERM $left 2>/dev/null
            for ((i = 0; i < 30; i++)); do
                [[ -z $(pids_matching "$TMP/") ]] && break
                sleep 0.1
            done
            left=$(pids_matching "$TMP/")
            # shellcheck disable=SC2086
            [[ -z $left ]] || kill -KILL $left 2>/dev/null
        fi
    fi
    for pid in $WRK_PID "${BG_PIDS[@]}" $RUN_PID; do wait "$pid" 2>/dev/null; done
    return 0
}

# assert_nothing_left SECONDS PORT...: within SECONDS, no process names
# $TMP/, no nginx of $TMP/nginx runs, none of the PORTs listens, and no
# zombie's parent is the test shell (or rolld, if it still runs).
assert_nothing_left() {
    local secs=$1
    shift
    local ports=("$@")
    nothing_left() {
        [[ -z $(procs_of_dir "$TMP") && -z $(nginx_masters "$TMP/nginx") ]] && none_listen "${ports[@]}"
    }
    local was=$EXPECT_ROLLD
    EXPECT_ROLLD=0
    local deadline=$(($(now_ms) + $(secs_to_ms "$secs")))
    until nothing_left; do
        if (($(now_ms) >= deadline)); then
            fail "still running ${secs}s after the end: $(procs_of_dir "$TMP" | tr '\n' ';') nginx: $(nginx_masters "$TMP/nginx" | tr '\n' ' ') listening: $(listening_ports | tr '\n' ' ')"
        fi
        sleep 0.1
    done
    EXPECT_ROLLD=$was
    local z
    z=$(zombies_of $$ "$BASHPID" ${ROLLD_PID:+"$ROLLD_PID"})
    [[ -z $z ]] || fail "zombies left: $z"
}

# --- a stand-alone end-to-end script -----------------------------------------------

# e2e_begin NAME [ROLLD]: what tests/e2e_streams.sh and e2e_surge.sh start
# with: the rolld binary (built when not given), nginx and the tools
# found, LB_PORT, SET_A and SET_B free, $TMP made (rolld-NAME.XXXXXX, open
# to nginx's workers) with $LOG in it, and a trap that stops everything and
# removes $TMP once PASSED=1 (keeps it, with rolld's log, otherwise, or with
# E2E_KEEP=1). A script's own cleanup goes in e2e_cleanup_hook.
e2e_begin() {
    PASSED=0
    trap e2e_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM HUP
    ROLLD=${2:-}
    if [[ -z $ROLLD ]]; then
        (cd "$REPO" && cargo build --release --quiet) || fail "cargo build --release failed"
        ROLLD=$REPO/target/release/rolld
    fi
    [[ -x $ROLLD ]] || fail "no rolld binary at $ROLLD"
    # E2E_LB=none: a test with no load balancer (tests/e2e_listen.sh).
    [[ ${E2E_LB:-nginx} == none ]] || lib_find_nginx || fail "nginx is required"
    local tool
    for tool in python3 wrk curl ss pgrep awk timeout; do
        command -v "$tool" >/dev/null || fail "$tool is required"
    done
    none_listen "$LB_PORT" "${SET_A[@]}" "${SET_B[@]}" ||
        fail "a test port is already in use (need $LB_PORT ${SET_A[*]} ${SET_B[*]} free)"
    TMP=$(mktemp -d "/tmp/rolld-$1.XXXXXX")
    chmod 755 "$TMP" # nginx workers run as nobody when started by root
    LOG=$TMP/rolld.log
}

e2e_cleanup_hook() { :; }

e2e_cleanup() {
    local rc=$?
    set +e
    e2e_cleanup_hook
    lib_cleanup
    if [[ $PASSED == 1 && ${E2E_KEEP:-0} != 1 ]]; then
        rm -rf -- "$TMP"
    elif [[ -n $TMP ]]; then
        echo "$LIB_NAME: work directory kept: $TMP" >&2
        [[ $PASSED == 1 ]] || { echo "--- rolld log" >&2; tail -n 60 "$LOG" >&2; }
    fi
    exit "$rc"
}
