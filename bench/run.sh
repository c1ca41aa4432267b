#!/usr/bin/env bash
# Benchmark of rolld, from a fresh clone:
#
#   bench/run.sh [--out FILE] [--no-profiles] [--only listen|haproxy|guard]
#
# Installs what it needs when it is missing (nginx, supervisor, wrk, curl,
# iproute2, procps, python3, binutils; through apt-get, as root or with sudo),
# builds rolld and its bench helpers (`cargo build --release`), then measures,
# on loopback only:
#
#   1. rollout speed: the example app (4 backends, HTTP smoke test) behind a
#      real nginx of its own (own prefix, 127.0.0.1:28080), 10 rollouts; each
#      phase from rolld's log, and SIGHUP -> new set answering through nginx,
#      beside the backend's own start time and nginx's own reload time;
#   2. footprint: rolld's RSS/HWM, CPU per rollout and wakeups when idle with
#      4 and 200 backends, beside supervisord running the same backends; the
#      binary's size as built, stripped, and built from a temporary copy of
#      the sources with no release profile and with an LTO profile at
#      opt-level "s" and 3 (skipped with --no-profiles);
#   3. drain check cost with 1 000, 10 000 and 50 000 connections held
#      (examples/drain_cost.rs), beside ss;
#   4. scale: rollouts of 4, 50 and 200 tiny backends (examples/tiny_backend.rs);
#   5. liveness: `rolld status` latency and SIGTERM-to-exit while an
#      after_start action hangs, beside the same figures when idle;
#   6. long-lived connections: rollouts with 0, 20 and 200 event streams
#      open through nginx (tests/sse_clients.py), with and without
#      drain_signal;
#   7. surge: rollout time and peak process count with 8 backends, surge
#      1, 2 and 8 (blue/green);
#   8. listen: mode (rolld holds the public port, no LB): 4 backends
#      (examples/http_backend.rs on the socket rolld hands it), 40
#      rollouts, beside the same backends on ports behind nginx driven by
#      rolld in the same run: rolld's switch beside
#      `nginx -s reload`, SIGHUP -> every new connection answered by the new
#      release, the whole rollout beside the backends' own start, rolld's
#      RSS (--only listen runs this section alone);
#   9. HAProxy: the same 4 backends (example/app.py) behind two HAProxies
#      of their own, one switched through its Runtime API (`haproxy:`,
#      example/haproxy-api/), one by a rendered config and a reload
#      (example/haproxy/), 10 rollouts each: the switch (the API's
#      commands, and the whole after_start phase beside the render and
#      reload), how long after the last request the drain ended, and
#      HAProxy workers started (--only haproxy runs this section alone).
#  10. guards after the switch: the example app behind nginx with `bake`
#      and `health`: a new backend SIGKILLed during the bake, to the old
#      set serving again (the revert); a live backend frozen with SIGSTOP,
#      to its heal; each beside the next manual rollout; and behind an
#      HAProxy of its own driven through its Runtime API, a release that
#      fails only under traffic (500 after its smoke test), reverted by
#      rolld on HAProxy's error counters (`haproxy.revert_errors`) beside
#      `rolld revert` run at the client's first failed request (--only
#      guard runs this section alone).
#
# Prints a Markdown report (also written to FILE with --out). Every process it
# starts is stopped on exit, whatever happens; every wait is bounded. Takes
# about 8 minutes on 2 cores from a fresh clone, first build included (up to
# 12 when other jobs load the machine); a good part of it is the three extra
# release builds of the binary-size rows, which --no-profiles skips.
# `--only listen` and `--only guard` take about 1.5 minutes each, the build
# included.
# Set BENCH_KEEP=1 to keep the work directory; BENCH_PORT_BASE (default
# 28000) moves the ports it uses, BASE+80 ... BASE+1243.

set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$REPO"

OUT=
PROFILES=1
ONLY=
while [[ $# -gt 0 ]]; do
    case $1 in
        --out) OUT=${2:?--out needs a file}; shift 2 ;;
        --no-profiles) PROFILES=0; shift ;;
        --only)
            [[ ${2:-} == listen || ${2:-} == haproxy || ${2:-} == guard ]] ||
                { echo "run.sh: --only takes one section: listen, haproxy or guard" >&2; exit 2; }
            ONLY=$2
            shift 2
            ;;
        -h | --help) sed -n '2,/^$/p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ -z $OUT ]] || OUT=$(realpath -m -- "$OUT")

say() { printf 'bench: %s\n' "$*" >&2; }
fail() {
    printf 'bench: FAIL: %s\n' "$*" >&2
    exit 1
}
now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }
T_START=$(now_ms)

# One run at a time on a machine: two would share ports and CPUs. The lock
# is a directory holding the pid of its run; a stale one is taken over.
LOCK=/tmp/rolld-bench-$(id -u).lock
LOCKED=0
for _ in 1 2; do
    if mkdir "$LOCK" 2>/dev/null; then
        echo $$ >"$LOCK/pid"
        LOCKED=1
        break
    fi
    other=$(cat "$LOCK/pid" 2>/dev/null || true)
    if [[ -n $other ]] && kill -0 "$other" 2>/dev/null; then
        fail "another bench/run.sh (pid $other) is running on this machine; lock $LOCK"
    fi
    rm -rf -- "$LOCK"
done
((LOCKED)) || fail "cannot take the lock $LOCK"
trap 'rm -rf -- "$LOCK"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# --- what the benchmark needs ---------------------------------------------------

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
[[ -n $ONLY ]] || command -v supervisord >/dev/null 2>&1 || need+=(supervisor)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v ss >/dev/null 2>&1 || need+=(iproute2)
command -v pgrep >/dev/null 2>&1 || need+=(procps)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v strip >/dev/null 2>&1 || need+=(binutils)
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
    # The Debian package starts a system supervisord; this benchmark runs its own.
fi
export PATH="$PATH:/usr/sbin:/sbin"
unset NGINX # nginx reads this variable (inherited sockets)
NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x $NGINX_BIN ]] || fail "nginx not found"
[[ -n $ONLY ]] || command -v supervisord >/dev/null || fail "supervisord not found"
# The interpreter itself, not a wrapper (a pyenv shim costs ~1 s per start):
# rolld's backends, supervisord's and the peer measurements all use it.
PY=$(python3 -c 'import sys; print(sys.executable)')
export BENCH_PYTHON=$PY

# --- ports (all on 127.0.0.1) --------------------------------------------------
# 28000-29243, inside the range the other test suites leave to the benchmarks
# (28000-29999) and below the ephemeral range; BENCH_PORT_BASE moves them all.

BASE=${BENCH_PORT_BASE:-28000}
((BASE >= 1024 && BASE + 1243 < 32768)) || fail "BENCH_PORT_BASE must be within 1024-31524"
seqc() { seq -s, $((BASE + $1)) $((BASE + $2)); }
NGINX_PORT=$((BASE + 80))
EX_A=$(seqc 101 104)
EX_B=$(seqc 111 114)
ALT=$(seqc 121 124)  # second upstream for the nginx reload peer
SOLO=$(seqc 131 134) # backend start peer
SV4=$(seqc 141 144)  # supervisord's 4 backends
DRAIN_IN=$(seqc 200 203)
DRAIN_OUT=$(seqc 210 213)
LIVE=$(seqc 151 154) # liveness: two worksets of two
STREAM_A=$(seqc 161 164)
STREAM_B=$(seqc 171 174)
STREAM_NGINX=$((BASE + 81))
SURGE_A=$(seqc 181 188)
SURGE_B=$(seqc 191 198)
declare -A SCALE_A=([4]=$(seqc 300 303) [50]=$(seqc 400 449) [200]=$(seqc 600 799))
declare -A SCALE_B=([4]=$(seqc 310 313) [50]=$(seqc 500 549) [200]=$(seqc 800 999))
SV200_FIRST=$((BASE + 1000)) # supervisord's 200 tiny backends
# 8. listen: its public port and 2 x 4 check ports; the same backends on
# ports behind an nginx of their own, a second upstream for the reload
# peer, and the start peer's ports.
L_PUBLIC=$((BASE + 82))
L_NGINX_PORT=$((BASE + 83))
L_CHECK_FROM=$((BASE + 220))
L_CHECKS=$(seqc 220 227)
LN_A=$(seqc 230 233)
LN_B=$(seqc 240 243)
LN_ALT=$(seqc 250 253)
LN_SOLO=$(seqc 260 263)
# 9. HAProxy: the API-driven one and its backends, the reloaded one and its.
HA_API_PORT=$((BASE + 84))
HA_RELOAD_PORT=$((BASE + 85))
HA_API_A=$(seqc 270 273)
HA_API_B=$(seqc 280 283)
HA_RL_A=$(seqc 290 293)
HA_RL_B=$(seqc 1200 1203)
# 10. guards: two worksets behind an nginx of their own; two behind an
# HAProxy of their own.
G_NGINX_PORT=$((BASE + 86))
G_A=$(seqc 1210 1213)
G_B=$(seqc 1220 1223)
HX_PORT=$((BASE + 87))
HX_A=$(seqc 1230 1233)
HX_B=$(seqc 1240 1243)

listening_ports() { ss -Htln | awk '{n = split($4, a, ":"); print a[n]}' | sort -un; }
busy=$(
    listening_ports | awk -v first="$SV200_FIRST" \
        -v lists="$HX_PORT,$HX_A,$HX_B,$G_NGINX_PORT,$G_A,$G_B,$HA_API_PORT,$HA_RELOAD_PORT,$HA_API_A,$HA_API_B,$HA_RL_A,$HA_RL_B,$NGINX_PORT,$STREAM_NGINX,$L_PUBLIC,$L_NGINX_PORT,$L_CHECKS,$LN_A,$LN_B,$LN_ALT,$LN_SOLO,$EX_A,$EX_B,$ALT,$SOLO,$SV4,$LIVE,$STREAM_A,$STREAM_B,$SURGE_A,$SURGE_B,$DRAIN_IN,$DRAIN_OUT,${SCALE_A[*]},${SCALE_B[*]}" '
        BEGIN { gsub(/ /, ",", lists); n = split(lists, p, ","); for (i = 1; i <= n; i++) want[p[i]] = 1 }
        want[$1] || ($1 >= first && $1 < first + 200)' | tr '\n' ' '
)
[[ -z $busy ]] || fail "ports needed by the benchmark are in use: $busy"

# --- build ---------------------------------------------------------------------

say "building (cargo build --release)"
cargo build --release
cargo build --release --example drain_cost --example tiny_backend --example http_backend

# --- work directory and cleanup ---------------------------------------------------

TMP=$(mktemp -d /tmp/rolld-bench.XXXXXX)
chmod 755 "$TMP" # nginx workers run as nobody when started by root
RES=$TMP/results
mkdir -p "$RES" "$TMP/bin"
mkdir -m 700 "$TMP/run"
# Copies, so that a rebuild during the run changes nothing, and every process
# of the benchmark names $TMP on its command line.
cp target/release/rolld target/release/examples/{drain_cost,tiny_backend,http_backend} "$TMP/bin/"
ROLLD=$TMP/bin/rolld
PROBE=$REPO/bench/probe.py

ROLLD_PID=
L_PID= # 8.: the listen: rolld, beside ROLLD_PID
L_CFG=
SV_PID=
CHILD=
ALT_PIDS=()
NGINX_PREFIX=

alive() {
    [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null || return 1
    local stat
    stat=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ $stat != Z ]]
}

# wait_for DESCRIPTION SECONDS COMMAND...: poll COMMAND every 20 ms.
wait_for() {
    local desc=$1 secs=$2
    shift 2
    local deadline=$(($(now_ms) + secs * 1000))
    until "$@"; do
        (($(now_ms) < deadline)) || fail "timed out after ${secs}s waiting for: $desc"
        sleep 0.02
    done
}

# stop_pid PID SECONDS: TERM, wait, KILL; reaps it if it is our child.
stop_pid() {
    local pid=$1 i
    if alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null
        for ((i = 0; i < $2 * 20; i++)); do
            alive "$pid" || break
            sleep 0.05
        done
        alive "$pid" && kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null || true
}

# Runs a helper in the background (so that a signal reaches the trap at
# once) and waits for it; its stdout goes to $1.
run_child() {
    local out=$1 rc=0
    shift
    # The command itself, not a subshell running a function, must be $CHILD.
    [[ $1 == probe ]] && set -- "$PY" "$PROBE" "${@:2}"
    "$@" >"$out" &
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=
    return $rc
}

backend_pids() { # pids of the backends of the rolld running config $1
    timeout 5 "$ROLLD" status "$1" --json --run-dir "$TMP/run" 2>/dev/null |
        grep -o '"pid":[0-9]*' | tail -n +2 | cut -d: -f2 || true
}

# stop_rolld CONFIG [PID]: SIGTERM to PID (default $ROLLD_PID), wait, then
# make sure its backends are gone.
stop_rolld() {
    local cfg=$1 pid=${2:-$ROLLD_PID} pids p
    [[ -n $pid ]] || return 0
    pids=$(backend_pids "$cfg")
    stop_pid "$pid" 20
    for p in $pids; do kill -KILL -- "-$p" 2>/dev/null || true; done
    [[ $pid != "$ROLLD_PID" ]] || ROLLD_PID=
}

stop_nginx() {
    local master w i
    [[ -n $NGINX_PREFIX && -s $NGINX_PREFIX/nginx.pid ]] || return 0
    master=$(cat "$NGINX_PREFIX/nginx.pid" 2>/dev/null || true)
    timeout 35 "$NGINX_PREFIX/stop.sh" >/dev/null 2>&1 || true
    if [[ -n $master ]] && alive "$master"; then
        w=$(pgrep -P "$master" || true)
        kill -KILL "$master" $w 2>/dev/null || true
    fi
    NGINX_PREFIX=
}

cleanup() {
    local rc=$? pid i cmd
    set +e
    trap - EXIT INT TERM HUP
    [[ -n $CHILD ]] && stop_pid "$CHILD" 10
    for pid in "${ALT_PIDS[@]}"; do stop_pid "$pid" 5; done
    [[ -n $SV_PID ]] && stop_pid "$SV_PID" 20
    [[ -n $ROLLD_PID ]] && stop_rolld "${ROLLD_CFG:-}"
    [[ -n $L_PID ]] && stop_rolld "$L_CFG" "$L_PID"
    stop_nginx
    for hx in "$TMP/hx-api/haproxy" "$TMP/hx-reload/haproxy" "$TMP/hx-bake/haproxy"; do
        [[ -x $hx/stop.sh ]] && timeout 35 "$hx/stop.sh" >/dev/null 2>&1
    done
    # Last resort: anything still running from the work directory (its path
    # is unique to this run), by pid.
    if [[ -n ${TMP:-} && -d $TMP ]]; then
        for i in 1 2; do
            for pid in $(ls /proc | grep -E '^[0-9]+$'); do
                [[ $pid == "$$" ]] && continue
                cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || continue
                [[ $cmd == *"$TMP/"* ]] && kill -KILL "$pid" 2>/dev/null
            done
            sleep 0.2
        done
        if [[ ${BENCH_KEEP:-0} == 1 || $rc -ne 0 ]]; then
            say "work directory kept: $TMP"
        else
            rm -rf -- "$TMP"
        fi
    fi
    rm -rf -- "$LOCK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

probe() { "$PY" "$PROBE" "$@"; }
log_has() { grep -qF -- "$2" "$1"; }
all_listen() { # all_listen CSV
    local l p
    l=" $(listening_ports | tr '\n' ' ') "
    for p in ${1//,/ }; do [[ $l == *" $p "* ]] || return 1; done
}
count_listen() { # count_listen FIRST LAST: how many of these ports listen
    listening_ports | awk -v a="$1" -v b="$2" '$1 >= a && $1 <= b' | wc -l
}
nginx_serves() { # nginx_serves CSV: a GET through nginx answers from one of these ports
    local body
    body=$(curl -s --max-time 2 "http://127.0.0.1:$NGINX_PORT/" 2>/dev/null) || return 1
    [[ $body == "port "* && ",$1," == *",${body#port },"* ]]
}
# start_rolld CONFIG LOG: runs rolld, waits until its first set is live.
start_rolld() {
    ROLLD_CFG=$1
    "$ROLLD" --run-dir "$TMP/run" "$1" 2>"$2" &
    ROLLD_PID=$!
    local deadline=$(($(now_ms) + 60000))
    until log_has "$2" " live on "; do
        alive "$ROLLD_PID" || fail "rolld exited at start: $(tail -n 20 "$2")"
        (($(now_ms) < deadline)) || fail "rolld's first set not live within 60 s: $(tail -n 20 "$2")"
        sleep 0.02
    done
}
yaml_list() { echo "[${1//,/, }]"; }

# own_nginx DIR PORT: example/nginx's files in DIR/nginx, listening on PORT.
own_nginx() {
    mkdir -p "$1/nginx"
    cp example/nginx/{nginx.conf,upstream.conf.templ,reload.sh,stop.sh} "$1/nginx/"
    sed -i "s/listen 127\.0\.0\.1:8080;/listen 127.0.0.1:$2;/" "$1/nginx/nginx.conf"
    grep -qF "listen 127.0.0.1:$2;" "$1/nginx/nginx.conf" || fail "could not set the nginx port"
}

# supervisord_conf PROGRAM < LINES: $SV/supervisord.conf, supervisord in
# the foreground with its socket and logs in $SV, and one [program:PROGRAM]
# made of LINES plus the settings both peers share.
supervisord_conf() {
    {
        cat <<EOF
[unix_http_server]
file=$SV/supervisor.sock
[supervisord]
nodaemon=true
user=root
logfile=$SV/supervisord.log
pidfile=$SV/supervisord.pid
childlogdir=$SV
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://$SV/supervisor.sock
[program:$1]
process_name=%(program_name)s_%(process_num)d
startsecs=1
stopwaitsecs=5
EOF
        cat
    } >"$SV/supervisord.conf"
}

SOURCE="git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
[[ -z $(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null) ]] || SOURCE+=" with uncommitted changes to src/ or Cargo.toml"

# report: the Markdown report of what was measured, on stdout and in $OUT.
report() {
    cat >"$RES/config.json" <<EOF
{"nginx_port": $NGINX_PORT, "drain_quiet": 0, "scale_ports": "$((BASE + 300))-$((BASE + 999))", "source": "$SOURCE", "runtime_s": $((($(now_ms) - T_START) / 1000)),
 "listen": "127.0.0.1:$L_PUBLIC", "listen_check_from": $L_CHECK_FROM, "listen_nginx_port": $L_NGINX_PORT, "only": "$ONLY"}
EOF
    if [[ $ONLY == haproxy ]]; then
        : >"$TMP/report.md"
    else
        probe report "$RES" --runs 11 >"$TMP/report.md"
    fi
    [[ -f $RES/haproxy.md ]] && cat "$RES/haproxy.md" >>"$TMP/report.md"
    cat "$TMP/report.md"
    if [[ -n $OUT ]]; then
        cp "$TMP/report.md" "$OUT"
        say "report written to $OUT"
    fi
}

# --- 9. HAProxy: the switch through its Runtime API beside a reload -----------------------

HA_ROUNDS=10
# ms_of LOGLINE: the log line's UTC timestamp in epoch milliseconds.
ms_of() { date -u -d "${1%% *}" +%s%3N; }
# stats NAME < numbers: "NAME | median | min | max" of the numbers read.
stats() {
    sort -g | awk -v name="$1" '{ v[NR] = $1 } END {
        if (NR == 0) { printf "| %s | - | - | - |\n", name; exit }
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "| %s | %.2f | %.2f | %.2f |\n", name, m, v[1], v[NR] }'
}
# ha_group DIR KIND A B PORT: DIR/rolld.yml, the backends of A and B
# behind the HAProxy of DIR/haproxy on PORT, switched by KIND (api or
# reload), and that HAProxy started (api) or its files in place (reload:
# the first rollout starts it).
ha_group() {
    local dir=$1 kind=$2 a=$3 b=$4 port=$5 p
    mkdir -p "$dir/haproxy" "$dir/logs"
    cp example/app.py "$dir/"
    if [[ $kind == api ]]; then
        cp example/haproxy-api/{start.sh,stop.sh} "$dir/haproxy/"
        sed -e '/^backend app$/,$d' -e "s/127\.0\.0\.1:8082/127.0.0.1:$port/" \
            example/haproxy-api/haproxy.cfg >"$dir/haproxy/haproxy.cfg"
        { echo "backend app"; echo "    balance roundrobin"
          for p in ${a//,/ } ${b//,/ }; do echo "    server s$p 127.0.0.1:$p disabled"; done
        } >>"$dir/haproxy/haproxy.cfg"
        "$dir/haproxy/start.sh" 2>/dev/null || fail "example/haproxy-api/start.sh failed"
        wait_for "HAProxy's admin socket in $dir" 10 test -S "$dir/haproxy/admin.sock"
    else
        cp example/haproxy/{haproxy.cfg.templ,reload.sh,stop.sh} "$dir/haproxy/"
        sed -i "s/^\( *bind 127\.0\.0\.1\):8081\$/\1:$port/" "$dir/haproxy/haproxy.cfg.templ"
    fi
    {
        echo "# rolld benchmark: HAProxy, $kind (generated by bench/run.sh)"
        echo "app:"
        echo "  cmd: '$PY app.py {numproc}'"
        echo "  directory: '.'"
        echo "  stderr: 'logs/app-{numproc}.err'"
        echo "  workset:"
        echo "    - numprocs: $(yaml_list "$a")"
        echo "    - numprocs: $(yaml_list "$b")"
        echo "  smoke_test:"
        echo "    - check_all_http_ports: numprocs"
        echo "  stop_timeout: 10"
        if [[ $kind == api ]]; then
            echo "  haproxy: {socket: haproxy/admin.sock, backend: app, state_file: haproxy/server-state}"
        else
            echo "  after_start:"
            echo "    - replace_file: [numprocs, 'haproxy/haproxy.cfg.templ', 'haproxy/haproxy.cfg.new']"
            echo "    - run_proc: './haproxy/reload.sh'"
            echo "  drain_quiet: 1"
        fi
    } >"$dir/rolld.yml"
}
# ha_start DIR KIND PORT: rolld of DIR/rolld.yml, run in DIR, its first
# set live and answering through the HAProxy on PORT.
ha_start() {
    local dir=$1 kind=$2 port=$3
    (cd "$dir" && exec "$ROLLD" --run-dir "$TMP/run" "$dir/rolld.yml" 2>"$dir/rolld.log") &
    ROLLD_PID=$! ROLLD_CFG=$dir/rolld.yml
    local deadline=$(($(now_ms) + 60000))
    until log_has "$dir/rolld.log" " live on "; do
        alive "$ROLLD_PID" || fail "rolld ($kind) exited at start: $(tail -n 20 "$dir/rolld.log")"
        (($(now_ms) < deadline)) || fail "rolld ($kind): not live within 60 s"
        sleep 0.02
    done
    wait_for "HAProxy ($kind) to answer" 15 curl -sf --max-time 2 -o /dev/null "http://127.0.0.1:$port/"
}
# ha_stop DIR: that rolld and its backends stopped, then its HAProxy.
ha_stop() {
    stop_rolld "$1/rolld.yml"
    timeout 35 "$1/haproxy/stop.sh" >/dev/null 2>&1 || true
}
# ha_rounds DIR KIND PORT: HA_ROUNDS rollouts, each with a request of
# 1.5 s through HAProxy across its switch; one line per rollout in
# $RES/haproxy_KIND.tsv: the switch's own ms (api), the after_start
# phase's ms, the drain's end after that request's end (ms), HAProxy's
# worker pids then.
ha_rounds() {
    local dir=$1 kind=$2 port=$3 i n t_end line drain sw phase master
    for i in $(seq 1 "$HA_ROUNDS"); do
        n=$(grep -c ' rollout ok: ' "$dir/rolld.log" || true)
        curl -s -o /dev/null --max-time 30 "http://127.0.0.1:$port/slow?s=1.5" &
        local c=$!
        sleep 0.2
        kill -HUP "$ROLLD_PID"
        wait "$c" || fail "the slow request through HAProxy ($kind) failed"
        t_end=$(now_ms)
        ha_done() { [[ $(grep -c ' rollout ok: ' "$dir/rolld.log" || true) -gt $n ]]; }
        wait_for "rollout $i of the $kind group" 60 ha_done
        drain=$(grep ' drain done in ' "$dir/rolld.log" | tail -n 1)
        line=$(grep ' rollout ok: ' "$dir/rolld.log" | tail -n 1)
        sw=$(sed -n 's/.*haproxy: switch \([0-9.]*\)\(ms\|s\).*/\1 \2/p' <<<"$line" | awk '{ print ($2 == "s") ? $1 * 1000 : $1 }')
        phase=$(grep ' after_start done in ' "$dir/rolld.log" | tail -n 1 | sed -n 's/.* done in \([0-9.]*\)\(ms\|s\)$/\1 \2/p' |
            awk '{ print ($2 == "s") ? $1 * 1000 : $1 }')
        master=$(cat "$dir/haproxy/haproxy.pid" 2>/dev/null || true)
        printf '%s\t%s\t%s\t%s\n' "${sw:--}" "$phase" "$(($(ms_of "$drain") - t_end))" \
            "$(pgrep -P "$master" 2>/dev/null | paste -sd, -)" >>"$RES/haproxy_$kind.tsv"
        sleep 0.3
    done
}
section_haproxy() {
    say "9. HAProxy: Runtime API on 127.0.0.1:$HA_API_PORT beside reloads on 127.0.0.1:$HA_RELOAD_PORT, $HA_ROUNDS rollouts each"
    local kind dir port a b
    for kind in api reload; do
        dir=$TMP/hx-$kind
        if [[ $kind == api ]]; then port=$HA_API_PORT a=$HA_API_A b=$HA_API_B; else port=$HA_RELOAD_PORT a=$HA_RL_A b=$HA_RL_B; fi
        ha_group "$dir" "$kind" "$a" "$b" "$port"
        ha_start "$dir" "$kind" "$port"
        local before
        before=$(pgrep -P "$(cat "$dir/haproxy/haproxy.pid")" | tr '\n' ' ')
        ha_rounds "$dir" "$kind" "$port"
        echo "$before" >"$RES/haproxy_${kind}_workers_before"
        ha_stop "$dir"
    done
    {
        echo
        echo "### 9. HAProxy: the switch through its Runtime API beside a reload"
        echo
        echo "The same 4 backends (example/app.py) behind two HAProxies of their own, $HA_ROUNDS rollouts each"
        echo "(HAProxy $(haproxy -v 2>/dev/null | head -n 1 | awk '{print $3}')). API: \`haproxy:\` (example/haproxy-api/), the servers' states set"
        echo "on the stats socket, the drain by HAProxy's scur and qcur (drain_quiet 0). Reload: the config"
        echo "rendered and HAProxy reloaded by example/haproxy/reload.sh, the drain by connection counts and"
        echo "drain_quiet 1. Each rollout has a request of 1.5 s in flight across its switch; the drain's end"
        echo "is measured from that request's end (the last one to the old set) to rolld's \"drain done\"."
        echo
        echo "| ms | median | min | max |"
        echo "|---|---|---|---|"
        cut -f1 "$RES/haproxy_api.tsv" | stats "API: the switch's commands (ready, drain; from the receipt)"
        cut -f2 "$RES/haproxy_api.tsv" | stats "API: the after_start phase (the switch on a worker)"
        cut -f2 "$RES/haproxy_reload.tsv" | stats "reload: the after_start phase (render, haproxy -c, reload)"
        cut -f3 "$RES/haproxy_api.tsv" | stats "API: drain's end after the last request"
        cut -f3 "$RES/haproxy_reload.tsv" | stats "reload: drain's end after the last request"
        echo
        for kind in api reload; do
            # Workers seen after the rollouts that were not there before them.
            echo "$kind: $(cut -f4 "$RES/haproxy_$kind.tsv" | tr ',' '\n' | grep -v '^$' | sort -u |
                grep -vxF -f <(tr ' ' '\n' <"$RES/haproxy_${kind}_workers_before" | grep -v '^$') | wc -l) new HAProxy worker(s) in $HA_ROUNDS rollouts."
        done
    } >"$RES/haproxy.md"
}
if [[ $ONLY == haproxy ]]; then
    section_haproxy
    report
    exit 0
fi

# --- 10. guards after the switch: a revert during bake, a heal by health ------------------

if [[ $ONLY != listen ]]; then
    say "10. guards: a revert during bake, a heal of a frozen backend, beside a manual rollout"
    G=$TMP/guard
    own_nginx "$G" "$G_NGINX_PORT"
    cp example/app.py "$G/"
    export NGINX_BINARY=$NGINX_BIN
    guard_conf() { # guard_conf BAKE: $G/rolld.yml, written whole then renamed
        cat >"$G/rolld.yml.new" <<EOF
# rolld benchmark: bake and health (generated by bench/run.sh)
app-servers:
  cmd: '$PY $G/app.py {numproc}'
  stderr: 'logs/app-{numproc}.err'
  workset:
    - numprocs: $(yaml_list "$G_A")
    - numprocs: $(yaml_list "$G_B")
  bake: $1
  health: {every: 0.5, failures: 3}
  smoke_test:
    - check_all_http_ports: {ports: numprocs, timeout: 0.5}
  after_start:
    - replace_file: [numprocs, 'nginx/upstream.conf.templ', 'nginx/upstream.conf']
    - run_proc: './nginx/reload.sh'
  drain_quiet: 0
  drain_timeout: 30
  stop_timeout: 2
EOF
        mv "$G/rolld.yml.new" "$G/rolld.yml"
    }
    guard_conf 0
    NGINX_PREFIX=$G/nginx
    start_rolld "$G/rolld.yml" "$G/rolld.log"
    g_nginx_serves() {
        local body
        body=$(curl -s --max-time 2 "http://127.0.0.1:$G_NGINX_PORT/" 2>/dev/null) || return 1
        [[ $body == "port "* && ",$1," == *",${body#port },"* ]]
    }
    wait_for "nginx to answer from $G_A" 15 g_nginx_serves "$G_A"
    say "   3 manual rollouts (bake: 0)"
    live=$G_A
    for i in 1 2 3; do
        if [[ $live == "$G_A" ]]; then new=$G_B; else new=$G_A; fi
        run_child "$TMP/r.json" probe rollout --pid "$ROLLD_PID" --log "$G/rolld.log" \
            --new-ports "$new" --nginx-port "$G_NGINX_PORT" --timeout 60
        cat "$TMP/r.json" >>"$RES/guard_manual.jsonl"
        live=$new
        sleep 0.5
    done
    say "   bake: 30, one rollout promoted"
    guard_conf 30
    oks=$(grep -c " rollout ok: " "$G/rolld.log" || true)
    kill -HUP "$ROLLD_PID"
    baking() { [[ $(grep -c " baking " "$G/rolld.log" || true) -ge 1 ]]; }
    wait_for "the bake" 60 baking
    "$ROLLD" promote --run-dir "$TMP/run" "$G/rolld.yml" >/dev/null || fail "rolld promote failed"
    promoted() { [[ $(grep -c " rollout ok: " "$G/rolld.log" || true) -gt $oks ]]; }
    wait_for "the promoted rollout to end" 60 promoted
    if [[ $live == "$G_A" ]]; then live=$G_B; else live=$G_A; fi
    if [[ $live == "$G_A" ]]; then other=$G_B; else other=$G_A; fi
    say "   5 reverts: a new backend SIGKILLed during the bake"
    for i in 1 2 3 4 5; do
        run_child "$TMP/r.json" probe revert --pid "$ROLLD_PID" --log "$G/rolld.log" \
            --nginx-port "$G_NGINX_PORT" --old-ports "$live" --new-ports "$other" --timeout 60
        cat "$TMP/r.json" >>"$RES/guard_revert.jsonl"
        sleep 1
    done
    say "   4 heals: a live backend frozen with SIGSTOP"
    for p in ${live//,/ }; do
        run_child "$TMP/r.json" probe heal --log "$G/rolld.log" --nginx-port "$G_NGINX_PORT" --port "$p" --timeout 60
        cat "$TMP/r.json" >>"$RES/guard_heal.jsonl"
        sleep 1
    done
    stop_rolld "$G/rolld.yml"
    stop_nginx

    HX_ROUNDS=5
    say "   behind an HAProxy on 127.0.0.1:$HX_PORT, $HX_ROUNDS x 2 rollouts of a release failing under traffic:"
    say "   reverted by HAProxy's counters (revert_errors), and by rolld revert at the first failed request"
    HX=$TMP/hx-bake
    ha_group "$HX" api "$HX_A" "$HX_B" "$HX_PORT"
    mv "$HX/rolld.yml" "$HX/rolld.yml.good"
    cp "$HX/rolld.yml.good" "$HX/rolld.yml"
    # The failing release: example/app.py, each process of which answers
    # its first two requests (the smoke test's among them), then 500.
    cat >"$HX/failing.py" <<'EOF'
import itertools, sys
import app
served = itertools.count(1)
good = app.Handler.do_GET
def do_GET(self):
    if next(served) <= 2:
        good(self)
    else:
        self._reply(500, "broken\n")
app.Handler.do_GET = do_GET
sys.exit(app.main())
EOF
    # hx_conf [REVERT_ERRORS]: $HX/rolld.yml of the failing release, `bake:
    # 60`, revert_errors as given (rolld's default when not), written whole
    # then renamed.
    hx_conf() {
        local args=(-e "s/ app\.py {numproc}'\$/ failing.py {numproc}'/")
        [[ -z ${1:-} ]] || args+=(-e "s/^\(  haproxy: {.*\)}\$/\1, revert_errors: $1}/")
        sed "${args[@]}" "$HX/rolld.yml.good" >"$HX/rolld.yml.new"
        echo "  bake: 60" >>"$HX/rolld.yml.new"
        grep -qF " failing.py {numproc}'" "$HX/rolld.yml.new" || fail "could not set the failing release's cmd"
        [[ -z ${1:-} ]] || grep -qF ", revert_errors: $1}" "$HX/rolld.yml.new" || fail "could not set revert_errors"
        mv -f "$HX/rolld.yml.new" "$HX/rolld.yml"
    }
    ha_start "$HX" "HAProxy, bake" "$HX_PORT"
    for i in $(seq 1 "$HX_ROUNDS"); do
        modes=(auto manual)
        ((i % 2)) || modes=(manual auto)
        for mode in "${modes[@]}"; do
            manual=()
            if [[ $mode == manual ]]; then
                hx_conf 0
                manual=(--revert --rolld "$ROLLD" --run-dir "$TMP/run" --config "$HX/rolld.yml")
            else
                hx_conf
            fi
            run_child "$TMP/r.json" probe lb-revert --pid "$ROLLD_PID" --log "$HX/rolld.log" --port "$HX_PORT" \
                --old-ports "$HX_A" --new-ports "$HX_B" --timeout 60 "${manual[@]}"
            cat "$TMP/r.json" >>"$RES/guard_lb_$mode.jsonl"
            sleep 0.5
        done
    done
    ha_stop "$HX"
    if [[ $ONLY == guard ]]; then
        report
        exit 0
    fi
fi

# --- 8. listen: mode, beside the same backends behind nginx ------------------------------

if [[ $ONLY != guard ]]; then

say "8. listen: mode on 127.0.0.1:$L_PUBLIC, beside the same backends behind nginx on 127.0.0.1:$L_NGINX_PORT"
LS=$TMP/listen
HB=$TMP/bin/http_backend
L_ROUNDS=10
own_nginx "$LS" "$L_NGINX_PORT"
# listen_conf MODE RELEASE: $LS/MODE.yml, the group of MODE (listen: or
# nginx) whose backends answer `release RELEASE`. Written whole, then
# renamed: a SIGHUP reads the old file or the new one.
listen_conf() {
    local f=$LS/$1.yml
    if [[ $1 == listen ]]; then
        cat >"$f.new" <<EOF
# rolld benchmark: listen: mode (generated by bench/run.sh)
web:
  cmd: '$HB {numproc} --fd {fd}'
  listen: '127.0.0.1:$L_PUBLIC'
  procs: 4
  check_from: $L_CHECK_FROM
  env:
    RELEASE: '$2'
  smoke_test:
    - check_all_http_ports: numprocs
  drain_quiet: 0
  stop_timeout: 5
EOF
    else
        cat >"$f.new" <<EOF
# rolld benchmark: the listen: section's backends behind nginx (generated by bench/run.sh)
web:
  cmd: '$HB {numproc}'
  directory: '.'
  workset:
    - numprocs: $(yaml_list "$LN_A")
    - numprocs: $(yaml_list "$LN_B")
  env:
    RELEASE: '$2'
  smoke_test:
    - check_all_http_ports: numprocs
  after_start:
    - replace_file: [numprocs, 'nginx/upstream.conf.templ', 'nginx/upstream.conf']
    - run_proc: './nginx/reload.sh'
  drain_quiet: 0
  stop_timeout: 5
EOF
    fi
    mv -f "$f.new" "$f"
}
answered_by() { # answered_by PORT RELEASE: a GET on a new connection to PORT is answered by RELEASE
    local body
    body=$(curl -s --max-time 2 "http://127.0.0.1:$1/" 2>/dev/null) || return 1
    [[ $body == "port "*" release $2" ]]
}
listen_conf listen r0
listen_conf nginx r0
start_rolld "$LS/listen.yml" "$LS/listen.log"
L_PID=$ROLLD_PID L_CFG=$ROLLD_CFG
ROLLD_PID=
wait_for "the listen: group to answer on $L_PUBLIC" 15 answered_by "$L_PUBLIC" r0
NGINX_PREFIX=$LS/nginx
start_rolld "$LS/nginx.yml" "$LS/nginx.log"
wait_for "nginx to answer from $LN_A" 15 answered_by "$L_NGINX_PORT" r0
sleep 0.5
probe mem "$L_PID" >"$RES/mem_listen_start.json"
probe mem "$ROLLD_PID" >"$RES/mem_lnginx_start.json"

# A second upstream for the nginx reload peer.
ALT_PIDS=()
for p in ${LN_ALT//,/ }; do
    RELEASE=alt "$HB" "$p" </dev/null >/dev/null 2>&1 &
    ALT_PIDS+=($!)
done
wait_for "the reload peer's backends ($LN_ALT) to listen" 30 all_listen "$LN_ALT"

# roll_group MODE RELEASE KIND: one rollout of the group of MODE to
# RELEASE, measured by `probe KIND` (rollout or answers), appended to
# $RES/listen_KIND_MODE.jsonl.
roll_group() {
    local pid=$ROLLD_PID port=$L_NGINX_PORT
    [[ $1 == listen ]] && pid=$L_PID port=$L_PUBLIC
    listen_conf "$1" "$2"
    if [[ $3 == answers ]]; then
        run_child "$TMP/r.json" probe answers --pid "$pid" --log "$LS/$1.log" --port "$port" --release "$2" --timeout 60
    else
        run_child "$TMP/r.json" probe rollout --pid "$pid" --log "$LS/$1.log" --timeout 60
    fi
    cat "$TMP/r.json" >>"$RES/listen_$3_$1.jsonl"
    wait_for "release $2 to answer on $port" 5 answered_by "$port" "$2"
    sleep 0.3
}
# Rollouts with nothing else running come first: the answer probe's
# connections leave thousands of TIME_WAIT sockets for 60 s, and every
# count of connections (the drain) walks them. Which group goes first
# alternates; the nginx group ends each round on $LN_A, the reload peer's
# live upstream.
say "   $L_ROUNDS rounds: backend start peer, nginx reload peer, two rollouts of each group"
for i in $(seq 1 "$L_ROUNDS"); do
    run_child "$TMP/r.json" probe start --exe "$HB" --ports "$LN_SOLO" --runs 1
    cat "$TMP/r.json" >>"$RES/listen_start.jsonl"
    swap=()
    ((i % 2)) || swap=(--swap)
    run_child "$TMP/r.json" probe reload --nginx "$NGINX_BIN" --prefix "$LS/nginx" --port "$L_NGINX_PORT" \
        --live "$LN_A" --alt "$LN_ALT" --runs 1 "${swap[@]}"
    cat "$TMP/r.json" >>"$RES/listen_reload.jsonl"
    modes=(listen nginx)
    ((i % 2)) || modes=(nginx listen)
    for mode in "${modes[@]}"; do
        roll_group "$mode" "q$i-1" rollout
        roll_group "$mode" "q$i-2" rollout
    done
done
say "   $L_ROUNDS rounds: two rollouts of each group under new connections opened one after another"
for i in $(seq 1 "$L_ROUNDS"); do
    modes=(listen nginx)
    ((i % 2)) || modes=(nginx listen)
    for mode in "${modes[@]}"; do
        roll_group "$mode" "a$i-1" answers
        roll_group "$mode" "a$i-2" answers
    done
done
for p in "${ALT_PIDS[@]}"; do stop_pid "$p" 10; done
ALT_PIDS=()
probe mem "$L_PID" >"$RES/mem_listen_after.json"
probe mem "$ROLLD_PID" >"$RES/mem_lnginx_after.json"
stop_rolld "$L_CFG" "$L_PID"
L_PID=
stop_rolld "$LS/nginx.yml"
stop_nginx
fi
if [[ -n $ONLY ]]; then
    report
    exit 0
fi
section_haproxy

# --- 1. rollout speed, and the footprint with 4 backends ---------------------------

say "1. rollout speed: example app behind nginx on 127.0.0.1:$NGINX_PORT"
EX=$TMP/ex
own_nginx "$EX" "$NGINX_PORT"
cp example/app.py "$EX/"
export NGINX_BINARY=$NGINX_BIN
cat >"$EX/rolld.yml" <<EOF
# rolld benchmark: the example, on its own ports (generated by bench/run.sh)
app-servers:
  cmd: '$PY $EX/app.py {numproc}'
  directory: '.'
  stderr: 'logs/app-{numproc}.err'
  stdout: 'logs/app-{numproc}.log'
  workset:
    - numprocs: $(yaml_list "$EX_A")
    - numprocs: $(yaml_list "$EX_B")
  smoke_test:
    - check_all_http_ports: numprocs
  after_start:
    - replace_file: [numprocs, 'nginx/upstream.conf.templ', 'nginx/upstream.conf']
    - run_proc: './nginx/reload.sh'
  drain_quiet: 0
  drain_timeout: 30
  stop_timeout: 5
EOF
NGINX_PREFIX=$EX/nginx
start_rolld "$EX/rolld.yml" "$EX/rolld.log"
wait_for "nginx to answer from $EX_A" 15 nginx_serves "$EX_A"

sleep 0.5
probe mem "$ROLLD_PID" >"$RES/mem_example_start.json"

# Backends for the nginx reload peer: a second upstream to switch to.
ALT_PIDS=()
for p in ${ALT//,/ }; do
    "$PY" "$EX/app.py" "$p" </dev/null >/dev/null 2>&1 &
    ALT_PIDS+=($!)
done
wait_for "the reload peer's backends ($ALT) to listen" 30 all_listen "$ALT"

say "   10 rounds: backend start peer, nginx reload peer, one rollout"
live=$EX_A
for i in $(seq 1 10); do
    run_child "$TMP/r.json" probe start --python "$PY" --app "$EX/app.py" --ports "$SOLO" --runs 1
    cat "$TMP/r.json" >>"$RES/start.jsonl"
    swap=()
    ((i % 2)) || swap=(--swap)
    run_child "$TMP/r.json" probe reload --nginx "$NGINX_BIN" --prefix "$EX/nginx" --port "$NGINX_PORT" \
        --live "$live" --alt "$ALT" --runs 1 "${swap[@]}"
    cat "$TMP/r.json" >>"$RES/reload.jsonl"
    if [[ $live == "$EX_A" ]]; then new=$EX_B; else new=$EX_A; fi
    run_child "$TMP/r.json" probe rollout --pid "$ROLLD_PID" --log "$EX/rolld.log" \
        --new-ports "$new" --nginx-port "$NGINX_PORT" --timeout 60
    cat "$TMP/r.json" >>"$RES/rollouts_example.jsonl"
    live=$new
    sleep 0.3
done
for p in "${ALT_PIDS[@]}"; do stop_pid "$p" 10; done
ALT_PIDS=()
probe mem "$ROLLD_PID" >"$RES/mem_example_after.json"

say "   supervisord with the same 4 backends"
SV=$TMP/sv4
mkdir -p "$SV"
supervisord_conf app <<EOF
command=$PY $EX/app.py %(process_num)d
numprocs=4
numprocs_start=${SV4%%,*}
directory=$EX
stdout_logfile=$SV/app-%(process_num)d.log
stderr_logfile=$SV/app-%(process_num)d.err
stopsignal=TERM
EOF
[[ $(id -u) == 0 ]] || sed -i '/^user=root$/d' "$SV/supervisord.conf"
supervisord -c "$SV/supervisord.conf" >"$SV/stdout" 2>&1 &
SV_PID=$!
wait_for "supervisord's 4 backends to listen" 30 all_listen "$SV4"
sv_running() { [[ $(supervisorctl -c "$SV/supervisord.conf" status 2>/dev/null | grep -c RUNNING) -eq 4 ]]; }
wait_for "supervisord to report 4 RUNNING" 30 sv_running
sleep 1
probe mem "$SV_PID" >"$RES/mem_sv4_start.json"
say "   10 s idle: rolld and supervisord, same window"
run_child "$RES/idle_4.json" probe idle 10 "rolld=$ROLLD_PID" "supervisord=$SV_PID"
say "   supervisord: 5 x supervisorctl restart all"
run_child "$RES/sv_restart.json" probe sv-restart --conf "$SV/supervisord.conf" --pid "$SV_PID" --runs 5
probe mem "$SV_PID" >"$RES/mem_sv4.json"
stop_pid "$SV_PID" 20
SV_PID=

stop_rolld "$EX/rolld.yml"
stop_nginx

# --- 5. liveness while an action hangs -------------------------------------------------

say "5. liveness: rolld status and SIGTERM while after_start hangs, beside idle"
run_child "$RES/liveness.json" probe liveness --rolld "$ROLLD" --dir "$TMP/live" --python "$PY" \
    --app "$EX/app.py" --ports "$LIVE" --runs 5

# --- 6. long-lived connections --------------------------------------------------------

say "6. rollouts with 0, 20 and 200 event streams open, with and without drain_signal"
ST=$TMP/streams
own_nginx "$ST" "$STREAM_NGINX"
cp example/app.py tests/sse_clients.py "$ST/"
streams_open() { # streams_open DIR N: N clients of DIR have a stream open
    "$PY" -c 'import json, sys
cur = json.load(open(sys.argv[1] + "/current.json"))["current"]
sys.exit(0 if len(cur) == int(sys.argv[2]) and None not in cur else 1)' "$1" "$2" 2>/dev/null
}
stream_nginx_serves() {
    local body
    body=$(curl -s --max-time 2 "http://127.0.0.1:$STREAM_NGINX/" 2>/dev/null) || return 1
    [[ $body == "port "* && ",$1," == *",${body#port },"* ]]
}
for mode in signal none; do
    drain_line=
    [[ $mode == signal ]] && drain_line="  drain_signal: USR1"
    cat >"$ST/rolld.yml" <<EOF
# rolld benchmark: event streams (generated by bench/run.sh)
app-servers:
  cmd: '$PY $ST/app.py {numproc}'
  workset:
    - numprocs: $(yaml_list "$STREAM_A")
    - numprocs: $(yaml_list "$STREAM_B")
  smoke_test:
    - check_all_http_ports: numprocs
  after_start:
    - replace_file: [numprocs, 'nginx/upstream.conf.templ', 'nginx/upstream.conf']
    - run_proc: './nginx/reload.sh'
$drain_line
  drain_quiet: 0.5
  drain_timeout: 5
  stop_timeout: 5
EOF
    NGINX_PREFIX=$ST/nginx
    start_rolld "$ST/rolld.yml" "$ST/rolld-$mode.log"
    wait_for "nginx to answer from $STREAM_A" 15 stream_nginx_serves "$STREAM_A"
    for n in 0 20 200; do
        C=$ST/clients-$mode-$n
        mkdir -p "$C"
        if ((n > 0)); then
            "$PY" "$ST/sse_clients.py" --port "$STREAM_NGINX" --clients "$n" --dir "$C" >"$C/out" 2>&1 &
            ALT_PIDS+=($!)
            wait_for "$n streams open" 60 streams_open "$C" "$n"
        fi
        for i in 1 2 3; do
            run_child "$TMP/rollout.json" probe rollout --pid "$ROLLD_PID" --log "$ST/rolld-$mode.log" --timeout 60
            cat "$TMP/rollout.json" >>"$RES/streams_${mode}_$n.jsonl"
            ((n == 0)) || wait_for "$n streams open again" 60 streams_open "$C" "$n"
        done
        if ((n > 0)); then
            touch "$C/stop"
            clients_done() { ! alive "$1"; }
            wait_for "the stream clients to write their summary" 30 clients_done "${ALT_PIDS[-1]}"
            stop_pid "${ALT_PIDS[-1]}" 5
            unset 'ALT_PIDS[-1]'
            "$PY" -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))["counts"]))' \
                "$C/summary.json" >"$RES/streams_${mode}_${n}_clients.json"
        fi
    done
    stop_rolld "$ST/rolld.yml"
done
stop_nginx

# --- 7. surge ---------------------------------------------------------------------------

for k in 1 2 8; do
    say "7. surge $k: 8 tiny backends, 3 rollouts"
    D=$TMP/surge$k
    mkdir -p "$D"
    cat >"$D/rolld.yml" <<EOF
# rolld benchmark: surge $k (generated by bench/run.sh)
tiny:
  cmd: '$TMP/bin/tiny_backend {numproc} $D/'
  workset:
    - numprocs: $(yaml_list "$SURGE_A")
    - numprocs: $(yaml_list "$SURGE_B")
  surge: $k
  smoke_test:
    - check_all_tcp_ports: numprocs
  after_start:
    - run_proc: 'true'
  drain_quiet: 0
  start_timeout: 60
  stop_timeout: 5
EOF
    start_rolld "$D/rolld.yml" "$D/rolld.log"
    for i in 1 2 3; do
        run_child "$TMP/rollout.json" probe rollout --pid "$ROLLD_PID" --log "$D/rolld.log" --timeout 120 --count "bin/tiny_backend"
        cat "$TMP/rollout.json" >>"$RES/surge_$k.jsonl"
        sleep 0.3
    done
    stop_rolld "$D/rolld.yml"
done

# --- 4. scale (and the footprint with 200 backends) ----------------------------------

for n in 4 50 200; do
    say "4. scale: $n tiny backends per set, 3 rollouts"
    D=$TMP/scale$n
    mkdir -p "$D"
    cat >"$D/rolld.yml" <<EOF
# rolld benchmark: $n tiny backends per set (generated by bench/run.sh)
tiny:
  cmd: '$TMP/bin/tiny_backend {numproc}'
  workset:
    - numprocs: $(yaml_list "${SCALE_A[$n]}")
    - numprocs: $(yaml_list "${SCALE_B[$n]}")
  smoke_test:
    - check_all_tcp_ports: numprocs
  after_start:
    - run_proc: 'true'
  drain_quiet: 0
  start_timeout: 60
  stop_timeout: 5
EOF
    start_rolld "$D/rolld.yml" "$D/rolld.log"
    probe phases "$D/rolld.log" >"$RES/first_start_$n.json"
    sleep 0.5
    probe mem "$ROLLD_PID" >"$RES/mem_scale_${n}_start.json"
    if ((n == 200)); then
        say "   supervisord with 200 tiny backends; 10 s idle, same window"
        SV=$TMP/sv200
        mkdir -p "$SV"
        supervisord_conf tiny <<EOF
command=$TMP/bin/tiny_backend %(process_num)d
numprocs=200
numprocs_start=$SV200_FIRST
stdout_logfile=NONE
stderr_logfile=NONE
EOF
        [[ $(id -u) == 0 ]] || sed -i '/^user=root$/d' "$SV/supervisord.conf"
        t0=$(now_ms)
        supervisord -c "$SV/supervisord.conf" >"$SV/stdout" 2>&1 &
        SV_PID=$!
        sv200_up() { [[ $(count_listen "$SV200_FIRST" $((SV200_FIRST + 199))) -eq 200 ]]; }
        wait_for "supervisord's 200 backends to listen" 60 sv200_up
        echo "{\"ms\": $(($(now_ms) - t0))}" >"$RES/sv200_start.json"
        sv200_running() { [[ $(supervisorctl -c "$SV/supervisord.conf" status 2>/dev/null | grep -c RUNNING) -eq 200 ]]; }
        wait_for "supervisord to report 200 RUNNING" 60 sv200_running
        sleep 1
        run_child "$RES/idle_200.json" probe idle 10 "rolld=$ROLLD_PID" "supervisord=$SV_PID"
        probe mem "$SV_PID" >"$RES/mem_sv200.json"
        stop_pid "$SV_PID" 20
        SV_PID=
    fi
    for i in 1 2 3; do
        run_child "$TMP/rollout.json" probe rollout --pid "$ROLLD_PID" --log "$D/rolld.log" --timeout 120
        cat "$TMP/rollout.json" >>"$RES/scale_$n.jsonl"
        sleep 0.3
    done
    probe mem "$ROLLD_PID" >"$RES/mem_scale_${n}_after.json"
    stop_rolld "$D/rolld.yml"
done

# --- 3. drain check cost ---------------------------------------------------------------

say "3. drain check cost: 1 000, 10 000, 50 000 connections held"
run_child "$RES/drain.tsv" timeout 300 "$TMP/bin/drain_cost" --conns 1000,10000,50000 \
    --inside "$DRAIN_IN" --outside "$DRAIN_OUT" --runs 11

# --- 2. binary size ----------------------------------------------------------------------

say "2. binary size"
cp "$ROLLD" "$TMP/rolld.stripped"
strip "$TMP/rolld.stripped"
declare -A SIZE=([none]=null [none_stripped]=null [lto_s]=null [lto_3]=null)
if ((PROFILES)); then
    # A temporary copy of the sources per profile: the repo's Cargo.toml
    # without any [profile.*] section, then with the profile under test.
    for variant in none lto_s lto_3; do
        say "   release build of a temporary copy: profile $variant"
        P=$TMP/profile-$variant
        mkdir -p "$P"
        cp -r Cargo.lock src "$P/"
        awk '/^\[/ { skip = ($0 ~ /^\[profile/) } !skip' Cargo.toml >"$P/Cargo.toml"
        case $variant in
            lto_s | lto_3)
                printf '\n[profile.release]\nlto = true\ncodegen-units = 1\nstrip = true\npanic = "abort"\nopt-level = %s\n' \
                    "$([[ $variant == lto_s ]] && echo '"s"' || echo 3)" >>"$P/Cargo.toml"
                ;;
        esac
        (cd "$P" && CARGO_TARGET_DIR=$P/target timeout 900 cargo build --release --bin rolld -q)
        SIZE[$variant]=$(stat -c %s "$P/target/release/rolld")
        if [[ $variant == none ]]; then
            cp "$P/target/release/rolld" "$TMP/rolld.none.stripped"
            strip "$TMP/rolld.none.stripped"
            SIZE[none_stripped]=$(stat -c %s "$TMP/rolld.none.stripped")
        fi
        rm -rf "$P"
    done
fi
sv_kib=$(dpkg-query -W -f='${Installed-Size}' supervisor 2>/dev/null || true)
cat >"$RES/sizes.json" <<EOF
{"release": $(stat -c %s "$ROLLD"), "release_stripped": $(stat -c %s "$TMP/rolld.stripped"),
 "none": ${SIZE[none]}, "none_stripped": ${SIZE[none_stripped]},
 "lto_s": ${SIZE[lto_s]}, "lto_3": ${SIZE[lto_3]}, "supervisor_kib": ${sv_kib:-null}}
EOF

# --- report ----------------------------------------------------------------------------------

report
