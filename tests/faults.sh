#!/usr/bin/env bash
# The reliability fault matrix of rolld: every case behind a real nginx in
# strict mode (proxy_next_upstream off, no upstream keepalive, HTTP/1.0 to
# the backends: a request sent to a dead backend is a 502, never retried),
# under wrk load (every request on a new connection), on loopback; and the
# listen-* cases with no load balancer at all (listen:, wrk aimed straight
# at the port rolld holds).
#
#   tests/faults.sh [CASE...]        all cases, or those named (name or number)
#   tests/faults.sh --list           the cases
#
# Environment:
#   ROLLD_BIN=PATH   test this binary (default: cargo build --release, then
#                    target/release/rolld); it is copied first, so a rebuild
#                    during the run does not change what is tested
#   FAULTS_KEEP=1    keep the work directories of passed cases too (those of
#                    failed cases are always kept, and their path printed)
#   FAULTS_VERBOSE=1 print each step of each case as it happens
#   WRK_THREADS, WRK_CONNS   wrk's -t and -c (default 2 and 8)
#
# Each case runs in a subshell with a fresh directory of its own under
# /tmp/rolld-faults.XXXXXX/, its own rolld (with --run-dir in that
# directory), its own nginx (prefix in that directory) and its own ports:
# for case number N, backends on B+{1,2} (workset 0) and B+{11,12} (workset
# 1), B+{1,2,3} and B+{11,12,13} for crash-restart, with B = 27100 +
# 50*(N-1), nginx on 27080 + N; cases 17 and 18 use B+{21,22} and
# B+{31,32} too; all within 27081-27982, clear of
# tests/e2e.sh (18xxx), the Rust tests (20000-26000) and the benchmark
# scripts (28xxx, 29xxx). The listen-* case j (0 for the first) has the
# public port 16100 + j and the check ports from 16200 + 10 j (4 or 6 of
# them), no nginx. The bake-* case m (0 for the first) has its backends on
# B+{1,2} and B+{11,12} with B = 17600 + 50 m, nginx on 17790 + m. A case
# asserts, besides its own checks:
#   - wrk saw only 2xx answers and no socket error while a live set existed
#     (unless the case says how many may fail, and why);
#   - rolld logs the fault in a line naming the group (web), the port where
#     there is one, and the cause;
#   - afterwards nothing runs: no backend, worker, daemon or hook (no process
#     whose command line names the case's directory), no nginx of the case,
#     no listening case port, no zombie whose parent is the test shell or
#     rolld.
# One line per case, "faults: CASE: PASS (N requests, 0 errors)" (or "M
# failed, as the case allows") or "faults: CASE: FAIL: reason" (with
# rolld's log and the steps of the case), then a summary. Every case runs
# even when one fails; the exit status is 1 if any failed.
#
# Needs bash 5, python3, nginx (but for the listen-* cases), wrk, curl, ss,
# pgrep, ps, GNU date, awk; unshare (pid1) and setpriv (bad-config-start, the
# unreadable file) as root.

set -uo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
# shellcheck source=tests/lib.sh
source "$REPO/tests/lib.sh"

CASES=(
    smoke-500         # 1  new set answers 500: rollback; then a good set rolls
    exit-at-once      # 2  new processes exit at once: rollback long before start_timeout
    never-ready       # 3  a new process never listens: rollback at start_timeout
    bad-config-hup    # 4  bad YAML, unknown key, missing template on SIGHUP: nothing changes
    after-start-fails # 5  the LB reload exits 1, or hangs past action_timeout: point back
    ignore-term       # 6  backends ignore SIGTERM: SIGKILL after stop_timeout
    workers-daemons   # 7  forked workers stop with their leader; an escaped daemon is reaped
    hup-storm         # 8  20 SIGHUPs at once: 1 or 2 rollouts, the right set live
    crash-restart     # 9  a live backend killed comes back; a crash loop backs off, no spin
    pid1              # 10 rolld as PID 1: orphans reaped, a rollout under load, SIGTERM
    term-mid-rollout  # 11 SIGTERM while the new set starts: everything stops, exit 0
    busy-port         # 12 a port held by another program at start, or every workset blocked
    takeover          # 13 rolld SIGKILLed and started again: takes the live set over
    bad-config-start  # 14 invalid, missing, directory, unreadable config at start: exit 2
    long-request      # 15 a long request across a switch: drained, or cut at drain_timeout
    scale-200         # 16 200 backends per set: two rollouts under load, nothing lost
    group-added-fails # 17 a group added by a reload cannot start: it alone fails, web rolls
    group-renamed     # 18 web renamed by a reload: the new name starts, the old is drained
    listen-hang       # 19 listen: a release that never answers: rollback at start_timeout, no public request reaches it
    listen-crash      # 20 listen: a release that exits at once; a live process in a crash loop
    listen-hup-storm  # 21 listen: 20 SIGHUPs at once: 1 or 2 rollouts
    listen-takeover   # 22 listen: rolld SIGKILLed: its processes and keeper serve on; a successor takes the sockets back and rolls, or says why not
    listen-kill-drain # 23 listen: rolld SIGKILLed during a drain: the request in flight completes
    listen-detach     # 24 listen: a process detaches the group's program: the next rollout puts it back
    bake-hup          # 25 SIGHUP during a bake: the bake runs its course, then the next rollout
    bake-kill         # 26 rolld SIGKILLed during a bake: the successor finishes it (the old set drains), no revert
)
# The number of the first listen-* case, and of the first bake-* case.
for i in "${!CASES[@]}"; do
    [[ ${CASES[i]} == listen-* ]] && LISTEN_FIRST=$((i + 1)) && break
done
for i in "${!CASES[@]}"; do
    [[ ${CASES[i]} == bake-* ]] && BAKE_FIRST=$((i + 1)) && break
done

PY=python3
[[ -x /usr/bin/python3 ]] && PY=/usr/bin/python3 # starts faster than a version-manager shim
GROUP=web
MIN_REQUESTS=50 # per wrk run: proof that the load was real

# --- fixtures written into each case's directory ---------------------------------

SERVER_PY='"""Backend of tests/faults.sh: GET / -> "port N"; GET /slow?s=X answers after X s.

Its behaviour is chosen at start by flag files in its directory, so that a set
already running keeps behaving while the next one misbehaves:
  ignore_term     ignore SIGTERM, from the very start
  crash           write "boom" on stderr and exit 3 at once
  crashloop-PORT  (this port only) exit 3 after 0.2 s
  never           never listen
  slow            sleep 3 s before listening
  bad             answer 500 to everything
  daemonize       double fork + setsid: a daemon (daemon.py) escapes the process
                  group and is reparented to the nearest subreaper
  fork_worker     fork a worker into the same process group that ignores SIGTERM,
                  holds the listening socket and never exits by itself; it writes
                  its pid to worker-PORT.ready
On SIGTERM (unless ignored) it dies at once: rolld stops a set only once drained.
"""
import os, signal, socketserver, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

here = os.path.dirname(os.path.abspath(__file__))
port = int(sys.argv[1])

def flag(name):
    return os.path.exists(os.path.join(here, name))

def note(msg):
    sys.stderr.write("server.py[%d] port %d: %s\n" % (os.getpid(), port, msg))
    sys.stderr.flush()

def publish(name, text):
    path = os.path.join(here, name)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)

if flag("ignore_term"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if flag("crash"):
    note("boom")
    sys.exit(3)
if flag("crashloop-%d" % port):
    time.sleep(0.2)
    note("crashing on purpose (crashloop-%d)" % port)
    sys.exit(3)
if flag("never"):
    while True:
        time.sleep(60)
if flag("slow"):
    time.sleep(3)
if flag("daemonize"):
    mid = os.fork()
    if mid == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, os.path.join(here, "daemon.py"), str(port)])
        os._exit(0)
    os.waitpid(mid, 0)
status = 500 if flag("bad") else 200

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/slow":
            time.sleep(float(parse_qs(url.query).get("s", ["1"])[0]))
            body = "slow done port %d\n" % port
        else:
            body = "port %d\n" % port
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
    def handle(self):
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass

class S(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    def server_bind(self):
        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = port

srv = S(("127.0.0.1", port), H)
if flag("fork_worker"):
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        publish("worker-%d.ready" % port, str(os.getpid()))
        while True:
            time.sleep(60)
srv.serve_forever(poll_interval=0.05)
'

DAEMON_PY='"""A daemon escaped from a backend of tests/faults.sh (double fork + setsid).

It waits for the flag file daemon-go (two minutes at most), then exits 1 s
later on its own: its parent by then is rolld (subreaper, or PID 1), which
must reap it.
"""
import os, sys, time

here = os.path.dirname(os.path.abspath(__file__))
deadline = time.time() + 120
while not os.path.exists(os.path.join(here, "daemon-go")) and time.time() < deadline:
    time.sleep(0.05)
time.sleep(1.0)
'

REAPER_PY='"""Runs a command under a child subreaper that is slow to reap orphans.

  reaper.py FLAG CMD...

CMD is its child, waited for as usual. The orphans it inherits as a subreaper
(PR_SET_CHILD_SUBREAPER) stay zombies until the file FLAG exists; then it reaps
them, and exits once it has no child left. Like a busy supervisor, or a
container PID 1 that is no init.
"""
import ctypes, os, sys, time

ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
flag = sys.argv[1]
child = os.fork()
if child == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
status = None
while True:
    if status is None and os.waitpid(child, os.WNOHANG)[0]:
        status = 0
    if os.path.exists(flag):
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            break
    time.sleep(0.05)
'

# The after_start hook: reloads the case's nginx (nginx/reload.sh, which
# starts it the first time). Fault flags: lbfail reloads nginx onto the new
# set and then exits 1; lbhang hangs (a python sleep whose command line names
# lb-hang). Each flag works once, so that the rollback's second run of
# after_start, pointing back at the live set, succeeds.
LB_SH='#!/bin/sh
DIR=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd -P) || exit 1
echo "${ROLLD_PORTS:-}" >>"$DIR/lb.calls"
if [ -e "$DIR/lbhang" ]; then
    rm -f "$DIR/lbhang"
    echo "lb.sh: hanging on purpose" >&2
    exec @PY@ -c "import time; time.sleep(30)" "$DIR/lb-hang"
fi
"$DIR/nginx/reload.sh" || exit 1
if [ -e "$DIR/lbfail" ]; then
    rm -f "$DIR/lbfail"
    echo "lb.sh: nginx reloaded onto ${ROLLD_PORTS:-}, now failing on purpose (exit 1)" >&2
    exit 1
fi
exit 0
'

LISTEN_PY='"""Backend of the listen-* cases of tests/faults.sh: serves HTTP/1.0 on the
listening socket rolld hands it as descriptor FD (a group with listen:).

  listen.py FD PORT        (PORT: its {numproc}, the check port of its socket)

GET /health -> 200 "ok"; GET / -> 200 "RELEASE PORT", RELEASE read from the
file release at start; GET /sleep?S answers after S seconds; GET /detach
detaches the program of the group of sockets through its own socket
(SO_DETACH_REUSEPORT_BPF: 68 on x86-64 and arm64), then answers.
Flag files in its directory, read at start:
  crash           write "boom" on stderr and exit 3 at once
  crashloop-PORT  (this port only) exit 3 after 0.2 s, never answering: the
                  connections that wait in its queue then are taken and
                  closed (reset), as those of a process that crashes are
  mute            accept every connection, never answer
  hang            never accept
A mute or hanging process appends the peer port of each connection it gets
to peers-PORT: as it accepts them (mute), or on SIGTERM (hang), when it
takes what waits in its queue. On SIGTERM it stops accepting, finishes the
requests in flight and exits 0.
"""
import os, select, signal, socket, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SO_DETACH_REUSEPORT_BPF = 68
here = os.path.dirname(os.path.abspath(__file__))
fd, port = int(sys.argv[1]), int(sys.argv[2])
sock = socket.socket(fileno=fd)
stop = threading.Event()

def flag(name):
    return os.path.exists(os.path.join(here, name))

def note(msg):
    sys.stderr.write("listen.py[%d] port %d: %s\n" % (os.getpid(), port, msg))
    sys.stderr.flush()

def record(peer):
    with open(os.path.join(here, "peers-%d" % port), "a") as f:
        f.write("%d\n" % peer[1])

signal.signal(signal.SIGTERM, lambda *_: stop.set())
if flag("crash"):
    note("boom")
    sys.exit(3)
if flag("crashloop-%d" % port):
    time.sleep(0.2)
    while select.select([sock], [], [], 0)[0]:
        sock.accept()[0].close()
    note("crashing on purpose (crashloop-%d)" % port)
    sys.exit(3)
if flag("mute"):
    held = []
    while not stop.is_set():
        if select.select([sock], [], [], 0.05)[0]:
            conn, peer = sock.accept()
            held.append(conn)
            record(peer)
    sys.exit(0)
if flag("hang"):
    while not stop.wait(0.05):
        pass
    while select.select([sock], [], [], 0)[0]:
        record(sock.accept()[1])
    sys.exit(0)
with open(os.path.join(here, "release")) as f:
    release = f.read().strip()
active = [0]
lock = threading.Lock()

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        with lock:
            active[0] += 1
        try:
            if self.path.startswith("/sleep?"):
                time.sleep(float(self.path.split("?", 1)[1]))
            if self.path == "/detach":
                sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, 0)
                note("detached the program of the group of sockets")
            body = ("ok" if self.path == "/health" else "%s %d" % (release, port)) + "\n"
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
        finally:
            with lock:
                active[0] -= 1
    def log_message(self, *args):
        pass
    def handle(self):
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass

class S(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    def __init__(self):
        # The socket belongs to rolld: no bind, no listen.
        super().__init__(sock.getsockname()[:2], H, bind_and_activate=False)
        self.socket.close()
        self.socket = sock

srv = S()
def terminate(*_):
    stop.set()
    threading.Thread(target=srv.shutdown, daemon=True).start()
signal.signal(signal.SIGTERM, terminate)
srv.serve_forever(poll_interval=0.05)
deadline = time.monotonic() + 30
while active[0] > 0 and time.monotonic() < deadline:
    time.sleep(0.01)
'

# --- per-case setup -------------------------------------------------------------------

step() {
    local line
    line="$(date -u +%H:%M:%S.%3N) $*"
    printf '%s\n' "$line" >>"$TMP/steps.log"
    [[ ${FAULTS_VERBOSE:-0} == 1 ]] && printf '%s: %s\n' "$LIB_NAME" "$line"
    return 0
}

join_ports() {
    local IFS=,
    echo "$*"
}

# setup_case NAME NUMBER: the case's directory, ports, fixtures and nginx
# prefix (none for a listen-* case); default config values.
setup_case() {
    local name=$1 k=$2
    TMP=$RUN_ROOT/$(printf '%02d' "$k")-$name
    mkdir -p "$TMP/run" "$TMP/logs"
    chmod 755 "$TMP" # nginx workers run as nobody when started by root
    LOG=$TMP/rolld.log
    LIB_FAIL_FILE=$TMP/fail-reason
    REQUESTS=0
    FAILED=0
    WRK_RUNS=0
    LB_FIRST_ONLY=0
    CFG_START_TIMEOUT=10
    CFG_STOP_TIMEOUT=2
    CFG_DRAIN_QUIET=0.5
    CFG_DRAIN_TIMEOUT=30
    CFG_ACTION_TIMEOUT=10
    CFG_BAKE=0
    if [[ $name == listen-* ]]; then
        # Listen case j (from 0): the public port 16100 + j, check ports
        # from 16200 + 10 j; SET_A and SET_B are the check ports of the
        # two banks of sockets, the "ports" rolld's log names.
        local j=$((k - LISTEN_FIRST))
        LISTEN_PORT=$((16100 + j))
        CHECK_FROM=$((16200 + 10 * j))
        listen_procs 2
        NGINX_PORT=
        PUBLIC_PORT=$LISTEN_PORT
        CFG_CHECK_TIMEOUT=1
        CFG_CMD="$PY $TMP/listen.py {fd} {numproc}"
        printf '%s' "$LISTEN_PY" >"$TMP/listen.py"
        echo r1 >"$TMP/release"
        step "case $k $name in $TMP; public port $LISTEN_PORT; check ports ${SET_A[*]} and ${SET_B[*]}"
        return 0
    fi
    local base
    base=$(case_base "$k")
    SET_A=($((base + 1)) $((base + 2)))
    SET_B=($((base + 11)) $((base + 12)))
    NGINX_PORT=$((27080 + k))
    if [[ $name == bake-* ]]; then
        base=$((17600 + 50 * (k - BAKE_FIRST)))
        SET_A=($((base + 1)) $((base + 2)))
        SET_B=($((base + 11)) $((base + 12)))
        NGINX_PORT=$((17790 + k - BAKE_FIRST))
    fi
    LISTEN_PORT=
    PUBLIC_PORT=$NGINX_PORT
    CFG_CMD="$PY $TMP/server.py {numproc}"
    CFG_TEMPLATE=nginx/upstream.conf.templ
    printf '%s' "$SERVER_PY" >"$TMP/server.py"
    printf '%s' "$DAEMON_PY" >"$TMP/daemon.py"
    printf '%s' "${LB_SH//@PY@/$PY}" >"$TMP/lb.sh"
    chmod 755 "$TMP/lb.sh"
    nginx_setup "$REPO/example/nginx" "$TMP/nginx" "$NGINX_PORT"
    step "case $k $name in $TMP; workset 0 ${SET_A[*]}, workset 1 ${SET_B[*]}, nginx :$NGINX_PORT"
}

# listen_procs N: a listen-* case with N processes per set.
listen_procs() {
    LISTEN_PROCS=$1
    mapfile -t SET_A < <(seq "$CHECK_FROM" $((CHECK_FROM + $1 - 1)))
    mapfile -t SET_B < <(seq $((CHECK_FROM + $1)) $((CHECK_FROM + 2 * $1 - 1)))
}

# case_base N: the base of case N's backend ports.
case_base() { echo $((27100 + 50 * ($1 - 1))); }

all_ports() { echo "${SET_A[@]}" "${SET_B[@]}" "$PUBLIC_PORT"; }

check_ports_free() {
    # shellcheck disable=SC2046
    none_listen $(all_ports) || fail "a port of the case is already in use (need $(all_ports) free); listening: $(listening_ports | tr '\n' ' ')"
}

# yaml_list PORT...: "[p1, p2]"
yaml_list() {
    local IFS=,
    local s="$*"
    echo "[${s//,/, }]"
}

# config_text: the config of the case, from SET_A, SET_B and CFG_* (from
# LISTEN_PORT, CHECK_FROM, LISTEN_PROCS and CFG_* for a listen-* case).
config_text() {
    if [[ -n $LISTEN_PORT ]]; then
        cat <<EOF
# rolld fault matrix, listen: (generated by tests/faults.sh)
$GROUP:
  cmd: '$CFG_CMD'
  listen: '127.0.0.1:$LISTEN_PORT'
  procs: $LISTEN_PROCS
  check_from: $CHECK_FROM
  stdout: 'logs/{numproc}.out'
  stderr: 'logs/{numproc}.err'
  smoke_test:
    - check_all_http_ports: {ports: numprocs, path: /health, timeout: $CFG_CHECK_TIMEOUT}
  start_timeout: $CFG_START_TIMEOUT
  stop_timeout: $CFG_STOP_TIMEOUT
  drain_quiet: $CFG_DRAIN_QUIET
  drain_timeout: $CFG_DRAIN_TIMEOUT
EOF
        return 0
    fi
    cat <<EOF
# rolld fault matrix (generated by tests/faults.sh)
$GROUP:
  cmd: '$CFG_CMD'
  stdout: 'logs/{numproc}.out'
  stderr: 'logs/{numproc}.err'
  workset:
    - numprocs: $(yaml_list "${SET_A[@]}")
    - numprocs: $(yaml_list "${SET_B[@]}")
  smoke_test:
    - check_all_http_ports: numprocs
  after_start:
    - replace_file: [numprocs, '$CFG_TEMPLATE', 'nginx/upstream.conf']
    - run_proc: './lb.sh'
  start_timeout: $CFG_START_TIMEOUT
  stop_timeout: $CFG_STOP_TIMEOUT
  drain_quiet: $CFG_DRAIN_QUIET
  drain_timeout: $CFG_DRAIN_TIMEOUT
  action_timeout: $CFG_ACTION_TIMEOUT
  bake: $CFG_BAKE
EOF
}

write_config() { config_text >"$TMP/rolld.yml"; }

# start_live [WRAPPER...]: rolld up, workset 0 live and served through nginx.
start_live() {
    check_ports_free
    write_config
    step "starting rolld $*"
    rolld_spawn "$@"
    wait_for "first start (' live on $(join_ports "${SET_A[@]}")' in rolld's log)" 30 \
        log_has " live on $(join_ports "${SET_A[@]}")"
    [[ -n $LISTEN_PORT ]] || wait_for "nginx to answer on :$NGINX_PORT" 15 nginx_ok "$NGINX_PORT"
    expect_live A
    step "workset 0 live: ${SET_A[*]}"
}

load_start() {
    WRK_RUNS=$((WRK_RUNS + 1))
    wrk_start "http://127.0.0.1:$PUBLIC_PORT/" "$TMP/wrk-$WRK_RUNS.out"
    step "wrk running (pid $WRK_PID)"
}

load_stop() {
    wrk_stop_clean "$MIN_REQUESTS"
    REQUESTS=$((REQUESTS + WRK_REQUESTS))
    step "wrk: $WRK_REQUESTS requests, 0 errors"
}

# load_failed: after wrk_stop, in a case that allows some requests to fail
# (it says how many): counts them; an answer other than 2xx is never allowed.
load_failed() {
    [[ $WRK_NON2XX == 0 ]] || fail "answers other than 2xx: $WRK_ERRORS"
    REQUESTS=$((REQUESTS + WRK_REQUESTS))
    FAILED=$((FAILED + WRK_SOCKERR))
    step "wrk: $WRK_REQUESTS requests, $WRK_SOCKERR failed${WRK_ERRORS:+ ($WRK_ERRORS)}"
}

hup() {
    step "SIGHUP"
    kill -HUP "$ROLLD_PID" || fail "cannot signal rolld (pid $ROLLD_PID)"
}

# expect_live A|B: that workset listens and serves through nginx (and the
# LB config names it); the other one is closed (within 5 s). In a listen-*
# case: every new connection to the public port is answered by that bank.
expect_live() {
    local -n on=SET_$1 off=SET_$([[ $1 == A ]] && echo B || echo A)
    if [[ -n $LISTEN_PORT ]]; then
        listen_served_by "${on[@]}"
        return 0
    fi
    all_listen "${on[@]}" || fail "workset $1 (${on[*]}) is not listening; listening: $(listening_ports | tr '\n' ' ')"
    wait_for "the other workset's ports ${off[*]} to close" 5 none_listen "${off[@]}"
    if [[ $LB_FIRST_ONLY == 1 ]]; then
        served_by "$NGINX_PORT" "${on[0]}"
        upstream_is "$TMP/nginx" "${on[0]}"
    else
        served_by "$NGINX_PORT" "${on[@]}"
        upstream_is "$TMP/nginx" "${on[@]}"
    fi
}

rollouts_ok() { count ' rollout ok: '; }
rollbacks() { count ' rolled back: '; }
no_rollback() {
    [[ $(rollbacks) -eq 0 ]] || fail "unexpected rollback: $(grep -F ' rolled back: ' "$LOG" | head -n 1)"
}
# wait_rollouts N [SECONDS]: at least N " rollout ok: " lines, and no new
# rollback meanwhile.
wait_rollouts() {
    local base
    base=$(rollbacks)
    at_least_ok() {
        [[ $(rollbacks) -eq $2 ]] || fail "unexpected rollback: $(grep -F ' rolled back: ' "$LOG" | tail -n 1)"
        [[ $(rollouts_ok) -ge $1 ]]
    }
    wait_for "$1 ' rollout ok: ' line(s) in rolld's log" "${2:-30}" at_least_ok "$1" "$base"
}
wait_rollbacks() {
    at_least_back() { [[ $(rollbacks) -ge $1 ]]; }
    wait_for "$1 ' rolled back: ' line(s) in rolld's log" "${2:-30}" at_least_back "$1"
}

# leader_of PORT: the backend process of PORT (the leader of its group).
leader_of() {
    local pid
    for pid in $(pids_matching "$TMP/(server\.py|listen\.py 3) $1\$"); do
        [[ $(proc_pgid "$pid") == "$pid" ]] && echo "$pid"
    done
    return 0
}

# phase_ms LINE NAME: the duration of a phase in a rollout summary line.
phase_ms() {
    local v
    v=$(grep -oE "[(, ]$2 [0-9.]+m?s" <<<"$1" | head -n 1 | awk '{print $2}' || true)
    [[ -n $v ]] || fail "no $2 phase in: $1"
    if [[ $v == *ms ]]; then echo "${v%ms}"; else secs_to_ms "${v%s}"; fi
}

# names_group_port LINE PORT...: LINE is logged for the group and one of the
# ports ("... WARN web:27111 ...").
names_group_port() {
    local line=$1 p
    shift
    for p in "$@"; do [[ $line == *" $GROUP:$p "* ]] && return 0; done
    fail "log line does not name $GROUP and one of the ports $*: $line"
}

finish_case() {
    [[ -n $WRK_PID ]] && load_stop
    if [[ -n $RUN_PID ]] && alive "$RUN_PID"; then rolld_stop_ok 20; fi
    nginx_stop "$TMP/nginx"
    # shellcheck disable=SC2046
    assert_nothing_left 5 $(all_ports)
    CASE_PASSED=1
    if ((FAILED)); then
        echo "faults: $CASE: PASS ($REQUESTS requests, $FAILED failed, as the case allows)"
    else
        echo "faults: $CASE: PASS ($REQUESTS requests, 0 errors)"
    fi
}

# --- the cases ------------------------------------------------------------------------------

# 1. The new set answers 500: its smoke test fails at start_timeout, the
# rollout is rolled back, the old set keeps serving and the LB config still
# names it. Without the fault, the next SIGHUP rolls.
case_smoke_500() {
    CFG_START_TIMEOUT=2
    start_live
    load_start
    touch "$TMP/bad"
    hup
    wait_rollbacks 1
    local line
    line=$(log_line " rollout rolled back: " "answered 500" "still live on $(join_ports "${SET_A[@]}")")
    names_group_port "$line" "${SET_B[@]}"
    [[ $line == *"not ready within start_timeout 2.00s"* ]] || fail "no start_timeout in: $line"
    step "rolled back: $line"
    expect_live A
    [[ $(rollouts_ok) -eq 0 ]] || fail "a rollout succeeded with a set answering 500"
    rm "$TMP/bad"
    hup
    wait_rollouts 1
    log_line " rollout ok: $(join_ports "${SET_A[@]}") -> $(join_ports "${SET_B[@]}")" >/dev/null
    expect_live B
}

# 2. The new processes exit at once (exit 3, "boom" on stderr): the rollout
# is rolled back at once, long before start_timeout (20 s), and the log gives
# the port, the exit status and the tail of the backend's stderr.
case_exit_at_once() {
    CFG_START_TIMEOUT=20
    start_live
    load_start
    touch "$TMP/crash"
    hup
    wait_rollbacks 1
    local spawned line took
    spawned=$(log_line "rollout: spawning workset 1")
    line=$(log_line " rollout rolled back: " "exited (exit 3) before it was ready")
    names_group_port "$line" "${SET_B[@]}"
    took=$(ms_between "$spawned" "$line")
    ((took < 5000)) || fail "rolled back ${took} ms after the spawn, with start_timeout 20 s: $line"
    wait_for "the stderr tail ('  | ... boom') in rolld's log" 5 log_has_all "  | " "boom"
    log_line "last lines of $TMP/logs/" ".err:" >/dev/null
    step "rolled back after $took ms: $line"
    expect_live A
    rm "$TMP/crash"
}

# 3. A new process never listens: rolled back at start_timeout (2 s).
case_never_ready() {
    CFG_START_TIMEOUT=2
    start_live
    load_start
    touch "$TMP/never"
    hup
    wait_rollbacks 1
    local spawned line took p
    spawned=$(log_line "rollout: spawning workset 1")
    line=$(log_line " rollout rolled back: " "not ready within start_timeout 2.00s")
    names_group_port "$line" "${SET_B[@]}"
    took=$(ms_between "$spawned" "$line")
    ((took >= 1800 && took < 7000)) || fail "rolled back after ${took} ms with start_timeout 2 s: $line"
    step "rolled back after $took ms: $line"
    for p in "${SET_B[@]}"; do
        [[ -z $(pids_matching "$TMP/server.py $p\$") ]] || fail "the never-ready process of port $p still runs"
    done
    expect_live A
    rm "$TMP/never"
}

# 4. A broken config on SIGHUP (bad YAML, an unknown key, a missing
# template): logged, "nothing changed", nothing started, rolld stays up.
# Then the good config rolls.
case_bad_config_hup() {
    start_live
    load_start
    local variant before_nc before_sp want line p
    for variant in yaml key template; do
        before_nc=$(count 'nothing changed')
        before_sp=$(count 'spawning workset')
        case $variant in
        yaml)
            config_text | sed 's/^  smoke_test:$/  smoke_test: {oops/' >"$TMP/rolld.yml"
            want='invalid YAML'
            ;;
        key)
            config_text >"$TMP/rolld.yml"
            echo '  bogus: 1' >>"$TMP/rolld.yml"
            want="$GROUP.bogus: unknown key"
            ;;
        template)
            CFG_TEMPLATE=nginx/missing.templ config_text >"$TMP/rolld.yml"
            want="$GROUP.after_start[0].replace_file[1]: template $TMP/nginx/missing.templ"
            ;;
        esac
        hup
        more_nothing_changed() { [[ $(count 'nothing changed') -gt $before_nc ]]; }
        wait_for "'nothing changed' after the $variant config" 10 more_nothing_changed
        line=$(log_lines "$want" | tail -n 1)
        [[ -n $line ]] || fail "no '$want' in rolld's log after the $variant config"
        if [[ $variant == yaml ]]; then
            [[ $line =~ rolld\.yml:[0-9]+:[0-9]+:\ invalid\ YAML ]] || fail "the YAML error has no line:column: $line"
        fi
        log_line "problem(s) in the config: nothing changed" >/dev/null
        step "$variant: $line"
        sleep 0.3 # a rollout would have spawned by now
        [[ $(count 'spawning workset') -eq $before_sp ]] || fail "the $variant config started a rollout"
        none_listen "${SET_B[@]}" || fail "a port of workset 1 listens after the $variant config"
        for p in "${SET_B[@]}"; do
            [[ -z $(pids_matching "$TMP/server.py $p\$") ]] || fail "a backend of port $p runs after the $variant config"
        done
        alive "$ROLLD_PID" || fail "rolld exited after the $variant config"
        expect_live A
    done
    write_config
    hup
    wait_rollouts 1
    expect_live B
}

# 5. An after_start action fails after the new set passed its checks: (a)
# the LB reload exits 1 (after nginx was reloaded onto the new set, so the
# new set did get traffic), (b) it hangs past action_timeout (2 s). Each
# time rolld re-renders upstream.conf for the live set, runs the reload
# again (nginx back on the old ports), drains and stops the new set. Then a
# good rollout.
case_after_start_fails() {
    start_live
    load_start
    local line calls
    touch "$TMP/lbfail"
    hup
    wait_rollbacks 1
    line=$(log_line " WARN $GROUP rollout rolled back: after_start failed: run_proc: \`./lb.sh\` failed (exit 1)")
    step "(a) $line"
    wait_for "'after_start run again for the live set'" 5 \
        log_has "$GROUP after_start run again for the live set $(join_ports "${SET_A[@]}")"
    calls=$(tr '\n' '|' <"$TMP/lb.calls")
    [[ $calls == *"${SET_B[*]}|${SET_A[*]}|" ]] || fail "lb.sh calls: $calls (expected the new set, then the old one)"
    expect_live A

    CFG_ACTION_TIMEOUT=2
    write_config
    touch "$TMP/lbhang"
    hup
    wait_rollbacks 2
    line=$(log_line " WARN $GROUP rollout rolled back: after_start failed: run_proc: \`./lb.sh\` did not finish within 2s; killed")
    step "(b) $line"
    wait_for "the hanging hook to be killed" 3 no_output pids_matching "$TMP/lb-hang"
    pointed_back_twice() { [[ $(count "after_start run again for the live set $(join_ports "${SET_A[@]}")") -ge 2 ]]; }
    wait_for "'after_start run again for the live set' (twice)" 5 pointed_back_twice
    expect_live A
    [[ $(rollouts_ok) -eq 0 ]] || fail "a rollout succeeded although after_start failed"
    [[ $(count 'failed too') -eq 0 ]] || fail "pointing back failed: $(grep -F 'failed too' "$LOG")"

    hup
    wait_rollouts 1 30
    expect_live B
}

# 6. Backends ignore SIGTERM: on a rollout the old ones are SIGKILLed after
# stop_timeout (1 s); on exit too, and rolld exits 0 soon after.
case_ignore_term() {
    CFG_STOP_TIMEOUT=1
    touch "$TMP/ignore_term"
    start_live
    load_start
    local old=() p line pid stop
    for p in "${SET_A[@]}"; do old+=("$(leader_of "$p")"); done
    [[ ${#old[@]} -eq 2 && -n ${old[0]} && -n ${old[1]} ]] || fail "backends of workset 0 not found: ${old[*]}"
    hup
    wait_rollouts 1
    for p in "${SET_A[@]}"; do
        line=$(log_line " WARN $GROUP:$p " "still running after stop_timeout 1.00s; sending SIGKILL to its process group")
    done
    step "$line"
    for pid in "${old[@]}"; do
        [[ ! -e /proc/$pid ]] || fail "old backend $pid still there (state $(proc_state "$pid")) after the rollout"
    done
    line=$(log_line " rollout ok: ")
    stop=$(phase_ms "$line" stop)
    ((stop >= 900)) || fail "the stop phase took $stop ms, less than stop_timeout 1 s: $line"
    expect_live B
    load_stop
    rolld_stop_ok 10
    ((STOP_MS < 4000)) || fail "rolld took $STOP_MS ms to stop backends ignoring SIGTERM (stop_timeout 1 s)"
    for p in "${SET_B[@]}"; do
        log_line " WARN $GROUP:$p " "still running after stop_timeout 1.00s; sending SIGKILL" >/dev/null
    done
    step "stopped in $STOP_MS ms"
}

# 7. Every backend forks a worker into its process group (ignoring
# SIGTERM, holding the listening socket) and a daemon that escapes the group
# (double fork + setsid) and is reparented to rolld, the subreaper. A rollout
# stops each old leader with its worker; the daemons are left alone (they
# are not in the group) and, once they exit on their own, rolld reaps them.
case_workers_daemons() {
    touch "$TMP/fork_worker" "$TMP/daemonize"
    start_live
    local p leader worker d daemons old=() olddaemons
    for p in "${SET_A[@]}"; do
        wait_for "the worker of port $p" 10 test -s "$TMP/worker-$p.ready"
        leader=$(leader_of "$p")
        worker=$(cat "$TMP/worker-$p.ready")
        [[ -n $leader ]] || fail "no backend leader on port $p"
        [[ $(proc_pgid "$worker") == "$leader" ]] || fail "worker $worker of port $p is not in its leader's group $leader"
        old+=("$leader" "$worker")
        wait_for "the daemon of port $p" 10 has_output pids_matching "$TMP/daemon.py $p\$"
        d=$(pids_matching "$TMP/daemon.py $p\$")
        [[ $(proc_pgid "$d") != "$leader" && $(proc_sid "$d") == "$(proc_pgid "$d")" ]] ||
            fail "daemon $d of port $p did not leave its group (pgid $(proc_pgid "$d"), sid $(proc_sid "$d"))"
        [[ $(proc_ppid "$d") == "$ROLLD_PID" ]] ||
            fail "daemon $d of port $p has parent $(proc_ppid "$d"), not rolld ($ROLLD_PID, the subreaper)"
    done
    olddaemons=$(pids_matching "$TMP/daemon.py")
    step "leaders and workers: ${old[*]}; daemons: $(echo $olddaemons)"
    load_start
    hup
    wait_rollouts 1
    for p in "${old[@]}"; do
        [[ ! -e /proc/$p ]] || fail "old leader or worker $p still there (state $(proc_state "$p")) after ' rollout ok: '"
    done
    for d in $olddaemons; do
        alive "$d" || fail "the escaped daemon $d was stopped with the group it had left"
    done
    for p in "${SET_A[@]}"; do
        log_line " INFO $GROUP:$p stopped (signal 15)" >/dev/null
    done
    for p in "${SET_B[@]}"; do
        wait_for "the worker of new port $p" 10 test -s "$TMP/worker-$p.ready"
    done
    expect_live B
    daemons=$(pids_matching "$TMP/daemon.py")
    touch "$TMP/daemon-go"
    step "daemons told to exit: $(echo $daemons)"
    all_reaped() {
        local d
        for d in $daemons; do [[ ! -e /proc/$d ]] || return 1; done
    }
    wait_for "the daemons to exit and be reaped (no zombie)" 6 all_reaped
    [[ -z $(zombies_of "$ROLLD_PID") ]] || fail "zombies under rolld: $(zombies_of "$ROLLD_PID")"
    load_stop
    rolld_stop_ok 15
}

# 8. A storm of 20 SIGHUPs sent in a few ms: one rollout, plus at most one
# queued for the signals that came during it; then nothing more. No request
# lost, and the live set is the one the count says.
case_hup_storm() {
    start_live
    load_start
    local i n last since longest=0
    step "20 SIGHUPs"
    for ((i = 0; i < 20; i++)); do kill -HUP "$ROLLD_PID"; done
    wait_rollouts 1
    if log_has 'another rollout will follow'; then wait_rollouts 2; fi
    # Settled: no new rollout for 3 s.
    last=$(rollouts_ok)
    since=$(now_ms)
    while (($(now_ms) - since < 3000)); do
        sleep 0.1
        no_rollback
        n=$(rollouts_ok)
        ((n <= 2)) || fail "the SIGHUP storm gave $n rollouts (at most 2)"
        if ((n != last)); then
            last=$n
            since=$(now_ms)
        fi
    done
    n=$(rollouts_ok)
    if log_has 'another rollout will follow'; then
        ((n == 2)) || fail "rolld queued a rollout during the first one, but $n rollout(s) happened"
    else
        ((n == 1)) || fail "$n rollouts without any SIGHUP during a rollout"
    fi
    step "$n rollout(s); $(count 'another rollout will follow') queued"
    if ((n == 1)); then expect_live B; else expect_live A; fi
}

# 9. Crashes of live backends. nginx is pointed at the first port of each set
# only (a template of its own): a backend that is down is, by design, a 502
# in strict mode (proxy_next_upstream off) for the requests sent to it
# meanwhile, and rolld's restarts are about coming back, not about hiding
# that. The faults hit the other ports, so wrk runs throughout and shows that
# the rest of the set keeps serving, undisturbed by the crash handling.
# (a) the second port's backend is SIGKILLed: restarted on its port after
# 1 s; (b) the third port's backend crash-loops (exits 0.2 s after every
# start, flag crashloop-PORT created once the set is live, then SIGKILLed):
# over 10 s rolld's CPU time stays small and the backoff doubles.
case_crash_restart() {
    local base
    base=$(case_base 9)
    SET_A=($((base + 1)) $((base + 2)) $((base + 3)))
    SET_B=($((base + 11)) $((base + 12)) $((base + 13)))
    LB_FIRST_ONLY=1
    CFG_TEMPLATE=nginx/first.templ
    cat >"$TMP/nginx/first.templ" <<'EOF'
# Generated by rolld (group {{ group }}): only the first port of the set is
# behind nginx (tests/faults.sh crash-restart crashes the others).
upstream app_servers {
    server 127.0.0.1:{{ ports[0] }};
}
EOF
    start_live
    load_start
    local p2=${SET_A[1]} p3=${SET_A[2]} pid newpid exitline line cpu0 cpu1 t0 t1 ms waits=() w prev tck
    pid=$(leader_of "$p2")
    [[ -n $pid ]] || fail "no backend on port $p2"
    step "SIGKILL to $pid (port $p2)"
    kill -KILL "$pid"
    wait_for "the crash of $pid in rolld's log" 5 log_has "pid $pid exited unexpectedly (signal 9); restarting in 1.00s"
    exitline=$(log_line " WARN $GROUP:$p2 pid $pid exited unexpectedly (signal 9); restarting in 1.00s")
    wait_for "the restart on port $p2" 10 log_has_all " $GROUP:$p2 restarted as pid"
    line=$(log_line " $GROUP:$p2 restarted as pid")
    newpid=${line##* }
    [[ $newpid != "$pid" ]] || fail "restarted with the same pid: $line"
    w=$(ms_between "$exitline" "$line")
    ((w >= 900)) || fail "restarted $w ms after the crash, before the 1 s backoff"
    wait_for "port $p2 to answer again" 5 answers "$p2" "port $p2"
    [[ $(leader_of "$p2") == "$newpid" ]] || fail "port $p2 is served by $(leader_of "$p2"), not the restarted $newpid"
    step "port $p2 restarted as $newpid after $w ms"

    touch "$TMP/crashloop-$p3"
    pid=$(leader_of "$p3")
    [[ -n $pid ]] || fail "no backend on port $p3"
    tck=$(getconf CLK_TCK)
    cpu0=$(proc_cpu_ticks "$ROLLD_PID")
    t0=$(now_ms)
    step "crash loop on port $p3: SIGKILL to $pid"
    kill -KILL "$pid"
    sleep 10
    cpu1=$(proc_cpu_ticks "$ROLLD_PID")
    t1=$(now_ms)
    local cpu_ms=$(((cpu1 - cpu0) * 1000 / tck))
    mapfile -t waits < <(log_lines " WARN $GROUP:$p3 " "exited unexpectedly" | sed 's/.*restarting in //')
    echo "faults: $CASE: rolld used ${cpu_ms} ms of CPU in $(ms_to_secs $((t1 - t0))) s of crash loop on port $p3 (${#waits[@]} exits; backoff ${waits[*]})"
    ((cpu_ms < 500)) || fail "rolld used $cpu_ms ms of CPU in 10 s of crash loop (limit 500 ms): it spins"
    ((${#waits[@]} >= 3 && ${#waits[@]} <= 6)) || fail "${#waits[@]} exits in 10 s of crash loop (want 3 to 6): ${waits[*]}"
    [[ ${waits[0]} == 1.00s && ${waits[1]} == 2.00s && ${waits[2]} == 4.00s ]] ||
        fail "the backoff does not grow 1.00s, 2.00s, 4.00s: ${waits[*]}"
    prev=0
    for w in "${waits[@]}"; do
        w=$(secs_to_ms "${w%s}")
        ((prev == 0 || w == 2 * prev || w == 30000)) || fail "the backoff does not double: ${waits[*]}"
        prev=$w
    done
    log_line " $GROUP:$p3 " "exited unexpectedly (exit 3)" >/dev/null
    rm "$TMP/crashloop-$p3"
    alive "$ROLLD_PID" || fail "rolld died during the crash loop"
    served_by "$NGINX_PORT" "${SET_A[0]}"
}

# 10. rolld as PID 1 of a pid namespace (unshare --pid --fork --mount-proc),
# as in a container: the escaped daemons and nginx's master (which daemonizes)
# are orphans whose parent is rolld; their exits are reaped; a rollout under
# wrk loses nothing; SIGTERM (PID 1 has no default action) stops everything,
# exit 0. nginx is started by the after_start hook inside the namespace,
# since a reload from inside could not signal an nginx outside it.
case_pid1() {
    if ! unshare --pid --fork --mount-proc true 2>/dev/null; then
        CASE_SKIPPED="unshare --pid --fork --mount-proc is not permitted here"
        return 0
    fi
    touch "$TMP/daemonize"
    start_live unshare --pid --fork --mount-proc
    local nspid daemons master d
    nspid=$(awk '/^NSpid:/ {print $NF}' "/proc/$ROLLD_PID/status")
    [[ $nspid == 1 ]] || fail "rolld is pid $nspid in its namespace, not 1"
    log_line " INFO rolld pid 1 running $TMP/rolld.yml" >/dev/null
    master=$(nginx_masters "$TMP/nginx")
    [[ -n $master && $(proc_ppid "$master") == "$ROLLD_PID" ]] ||
        fail "nginx's master ($master) is not an orphan of rolld (parent $(proc_ppid "$master"))"
    for p in "${SET_A[@]}"; do
        wait_for "the daemon of port $p" 10 has_output pids_matching "$TMP/daemon.py $p\$"
    done
    daemons=$(pids_matching "$TMP/daemon.py")
    for d in $daemons; do
        [[ $(proc_ppid "$d") == "$ROLLD_PID" ]] || fail "daemon $d has parent $(proc_ppid "$d"), not rolld ($ROLLD_PID)"
    done
    touch "$TMP/daemon-go"
    step "orphans told to exit: $(echo $daemons)"
    all_reaped() {
        local d
        for d in $daemons; do [[ ! -e /proc/$d ]] || return 1; done
    }
    wait_for "the orphans to exit and be reaped by PID 1" 6 all_reaped
    [[ -z $(zombies_of "$ROLLD_PID") ]] || fail "zombies under rolld: $(zombies_of "$ROLLD_PID")"
    load_start
    hup
    wait_rollouts 1
    expect_live B
    load_stop
    # The new set's daemons saw daemon-go: they exit within about 1 s.
    wait_for "the new set's orphans to exit and be reaped" 6 no_output pids_matching "$TMP/daemon.py"
    nginx_stop "$TMP/nginx"
    no_zombie_under_rolld() { [[ -z $(zombies_of "$ROLLD_PID") ]]; }
    wait_for "nginx's master to be reaped by PID 1" 3 no_zombie_under_rolld
    rolld_stop_ok 15
}

# 11. SIGTERM while a rollout's new set is still starting (slow: listens
# after 3 s; it also ignores SIGTERM, so it takes the SIGKILL): every process
# of both sets is gone within stop_timeout (2 s) plus a margin, exit 0. wrk
# is stopped just before the SIGTERM: after it, nothing serves by design.
case_term_mid_rollout() {
    CFG_STOP_TIMEOUT=2
    start_live
    load_start
    local p pids=()
    for p in "${SET_A[@]}"; do pids+=("$(leader_of "$p")"); done
    touch "$TMP/slow" "$TMP/ignore_term"
    hup
    wait_for "the rollout to start" 10 log_has "rollout: spawning workset 1"
    for p in "${SET_B[@]}"; do
        wait_for "the new backend of port $p" 5 has_output leader_of "$p"
        pids+=("$(leader_of "$p")")
    done
    sleep 0.3
    load_stop
    step "SIGTERM with the new set still starting (pids ${pids[*]})"
    rolld_stop_ok 10
    ((STOP_MS < 2000 + 2000)) || fail "rolld took $STOP_MS ms to stop (stop_timeout 2 s)"
    for p in "${pids[@]}"; do
        [[ ! -e /proc/$p ]] || fail "process $p still there (state $(proc_state "$p")) after rolld exited"
    done
    log_line " INFO rolld SIGTERM: stopping every set" >/dev/null
    for p in "${SET_B[@]}"; do
        log_line " $GROUP:$p " "SIGKILL" >/dev/null
    done
    [[ $(rollouts_ok) -eq 0 ]] || fail "the interrupted rollout was reported ok"
    step "stopped in $STOP_MS ms"
}

# A program holding PORT (a listening socket): its pid in HOLDER.
start_holder() {
    "$PY" -c 'import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(8)
open(sys.argv[2], "w").close()
time.sleep(600)' "$1" "$TMP/holder-$1.ready" &
    HOLDER=$!
    BG_PIDS+=("$HOLDER")
    wait_for "the holder of port $1" 10 test -e "$TMP/holder-$1.ready"
}

# 12. A port of workset 0 is held by another program at start: rolld starts
# on workset 1 and names the port and the holder. A rollout while it is still
# held is refused (no free workset) and changes nothing; once it is released,
# the rollout goes through. Then, with a port of every workset held: exit 1
# naming the ports, nothing started.
case_busy_port() {
    local a0=${SET_A[0]} line h1 h2
    check_ports_free
    start_holder "$a0"
    local holder=$HOLDER
    write_config
    rolld_spawn
    wait_for "first start on workset 1" 30 log_has " live on $(join_ports "${SET_B[@]}")"
    line=$(log_line " WARN $GROUP:$a0 " "port $a0 is held by pid $holder (" "trying the next one")
    step "$line"
    wait_for "nginx to answer on :$NGINX_PORT" 15 nginx_ok "$NGINX_PORT"
    all_listen "${SET_B[@]}" || fail "workset 1 does not listen"
    served_by "$NGINX_PORT" "${SET_B[@]}"
    upstream_is "$TMP/nginx" "${SET_B[@]}"
    none_listen "${SET_A[1]}" || fail "port ${SET_A[1]} of the blocked workset listens"
    load_start
    hup
    wait_rollbacks 1
    line=$(log_line " rollout rolled back: no free workset" "port $a0 is held by pid $holder")
    step "$line"
    served_by "$NGINX_PORT" "${SET_B[@]}"
    stop_pid "$holder" 5
    wait "$holder" 2>/dev/null || true
    wait_for "port $a0 to be free" 5 none_listen "$a0"
    hup
    wait_rollouts 1
    expect_live A
    load_stop
    rolld_stop_ok 15
    nginx_stop "$TMP/nginx"

    start_holder "${SET_A[1]}"
    h1=$HOLDER
    start_holder "${SET_B[0]}"
    h2=$HOLDER
    LOG=$TMP/rolld-blocked.log
    rolld_spawn
    rolld_wait_exit 20
    [[ $ROLLD_RC -eq 1 ]] || fail "with every workset blocked rolld exited $ROLLD_RC, not 1"
    line=$(log_line " ERROR $GROUP start failed: no free workset" "port ${SET_A[1]} is held by pid $h1 (" "port ${SET_B[0]} is held by pid $h2 (")
    step "$line"
    log_line "rolld exiting (1)" >/dev/null
    [[ $(count 'spawning workset') -eq 0 ]] || fail "rolld spawned a set with every workset blocked"
    [[ -z $(pids_matching "$TMP/server.py") ]] || fail "backends running: $(pids_matching "$TMP/server.py")"
    none_listen "${SET_A[0]}" "${SET_B[1]}" || fail "a free port of the blocked worksets listens"
    [[ -z $(nginx_masters "$TMP/nginx") ]] || fail "nginx was started"
    stop_pid "$h1" 5
    stop_pid "$h2" 5
    wait "$h1" 2>/dev/null || true
    wait "$h2" 2>/dev/null || true
}

# 13. rolld SIGKILLed under load: its backends keep serving (they do not die
# with it); a new rolld on the same config takes the live set over from the
# state file, starts the free workset, switches nginx, drains and stops the
# orphaned set. Not one request lost across the whole thing.
# The first rolld runs under reaper.py, a subreaper that (like a busy
# supervisor, or a container's PID 1 that is no init) reaps the orphans it
# inherits only when told. So the orphaned backends, no longer rolld's
# children, stay zombies once stopped: dead all the same. Their stop must
# neither wait for that reaper nor report them as survivors ("still have
# members after SIGKILL; giving up on them").
case_takeover() {
    printf '%s' "$REAPER_PY" >"$TMP/reaper.py"
    start_live "$PY" "$TMP/reaper.py" "$TMP/reap-now"
    local reaper=$RUN_PID
    BG_PIDS+=("$reaper")
    load_start
    local old=() p pid line
    for p in "${SET_A[@]}"; do old+=("$(leader_of "$p")"); done
    step "SIGKILL to rolld $ROLLD_PID (backends ${old[*]})"
    EXPECT_ROLLD=0
    kill -KILL "$ROLLD_PID"
    wait_for "rolld to die" 5 not_running "$ROLLD_PID"
    RUN_PID=
    sleep 0.5
    for pid in "${old[@]}"; do
        alive "$pid" || fail "backend $pid died with rolld"
        [[ $(proc_ppid "$pid") == "$reaper" ]] || fail "backend $pid was not reparented to the subreaper $reaper"
    done
    for p in "${SET_A[@]}"; do answers "$p" "port $p" || fail "port $p does not answer after rolld was killed"; done
    served_by "$NGINX_PORT" "${SET_A[@]}"
    LOG=$TMP/rolld-2.log
    rolld_spawn
    step "second rolld: $ROLLD_PID"
    wait_for "the takeover" 10 log_has "took over the live set $(join_ports "${SET_A[@]}") of a previous rolld"
    line=$(log_line " WARN $GROUP took over the live set $(join_ports "${SET_A[@]}") of a previous rolld")
    step "$line"
    wait_rollouts 1
    log_line " rollout ok: $(join_ports "${SET_A[@]}") -> $(join_ports "${SET_B[@]}")" >/dev/null
    expect_live B
    for pid in "${old[@]}"; do
        wait_for "orphaned backend $pid to be gone" 5 not_running "$pid"
    done
    for p in "${SET_A[@]}"; do
        log_line " INFO $GROUP:$p stopped (" >/dev/null
    done
    load_stop
    rolld_stop_ok 15
    nginx_stop "$TMP/nginx" # its master was reparented to the subreaper too
    touch "$TMP/reap-now"
    wait_for "the subreaper to reap its orphans and exit" 10 gone "$reaper"
    wait "$reaper" 2>/dev/null || true
    # Last, so that everything else above is checked either way.
    line=$(log_lines "still have members after SIGKILL" | head -n 1)
    [[ -z $line ]] || fail "(everything else passed: $REQUESTS requests, 0 errors) the stop of the orphaned set waited for their zombies to be reaped by another process, then reported dead processes as survivors ($(grep -F ' rollout ok: ' "$LOG" | grep -oE 'stop [0-9.]+m?s')): $line"
}

# 14. Bad input at start: each kind of invalid config, a missing file, a
# directory in its place, an unreadable file (as user nobody, since root
# reads a mode 000 file): exit 2, a message naming the problem, nothing
# started (no process, no port, no nginx). No live set ever exists here, so
# there is no load.
case_bad_config_start() {
    local good
    check_ports_free
    good=$(config_text)
    printf '%s\n' "$good" | sed 's/^  smoke_test:$/  smoke_test: {oops/' >"$TMP/yaml.yml"
    printf '%s\n  bogus: 1\n' "$good" >"$TMP/key.yml"
    printf '%s\n' "$good" | sed "s/${SET_B[1]}\]/70000]/" >"$TMP/port.yml"
    printf '%s\n  directory: no-such-dir\n' "$good" >"$TMP/dir.yml"
    printf '%s\n' "$good" | sed 's#nginx/upstream.conf.templ#nginx/missing.templ#' >"$TMP/template.yml"
    printf '%s\n  bogus: 1\n  directory: no-such-dir\n' "$good" | sed "s/${SET_B[1]}\]/0]/" >"$TMP/three.yml"
    mkdir "$TMP/isdir.yml"
    printf '%s\n' "$good" >"$TMP/unreadable.yml"
    chmod 000 "$TMP/unreadable.yml"

    bad_start "bad YAML" "$TMP/yaml.yml" "yaml.yml:" ": invalid YAML"
    grep -qE 'yaml\.yml:[0-9]+:[0-9]+: invalid YAML' "$BAD_LOG" || fail "the YAML error gives no line:column: $(cat "$BAD_LOG")"
    bad_start "unknown key" "$TMP/key.yml" "key.yml: $GROUP.bogus: unknown key"
    bad_start "bad port" "$TMP/port.yml" "port.yml: $GROUP.workset[1]: port 70000 " "is not in 1..65535"
    bad_start "missing directory" "$TMP/dir.yml" "dir.yml: $GROUP.directory: $TMP/no-such-dir: No such file"
    bad_start "missing template" "$TMP/template.yml" "template.yml: $GROUP.after_start[0].replace_file[1]: template $TMP/nginx/missing.templ: No such file"
    bad_start "three problems" "$TMP/three.yml" "$GROUP.bogus: unknown key" "$GROUP.workset[1]: port 0 " "$GROUP.directory:" "3 problem(s) in the config; nothing started"
    bad_start "missing file" "$TMP/missing.yml" "missing.yml: cannot read: No such file"
    bad_start "directory" "$TMP/isdir.yml" "isdir.yml: is a directory, not a config file"
    if [[ $(id -u) -ne 0 ]]; then
        bad_start "unreadable file" "$TMP/unreadable.yml" "unreadable.yml: cannot read: Permission denied"
    elif command -v setpriv >/dev/null && id nobody >/dev/null 2>&1; then
        local as_nobody=(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups)
        mkdir -p "$TMP/run-nobody"
        chown nobody "$TMP/run-nobody"
        chmod 700 "$TMP/run-nobody"
        if "${as_nobody[@]}" test -x "$ROLLD" && "${as_nobody[@]}" test -d "$TMP/run-nobody/."; then
            BAD_RUN_DIR=$TMP/run-nobody bad_start "unreadable file (as nobody)" "$TMP/unreadable.yml" \
                "unreadable.yml: cannot read: Permission denied" -- "${as_nobody[@]}"
        else
            echo "faults: $CASE: unreadable file: skipped (user nobody cannot run $ROLLD or use $TMP/run-nobody)"
        fi
    else
        echo "faults: $CASE: unreadable file: skipped (running as root without setpriv or user nobody: root reads a mode 000 file)"
    fi
}

# bad_start WHAT CONFIG FRAGMENT... [-- RUNNER...]: rolld on CONFIG exits 2,
# its log has every FRAGMENT, and nothing was started.
bad_start() {
    local what=$1 cfg=$2 frags=() runner=() rc=0
    shift 2
    while [[ $# -gt 0 && $1 != -- ]]; do
        frags+=("$1")
        shift
    done
    [[ $# -gt 0 ]] && shift && runner=("$@")
    BAD_LOG=$TMP/bad-$(tr -c 'a-z0-9\n' - <<<"$what" | head -c 40).log
    timeout 20 "${runner[@]}" "$ROLLD" --run-dir "${BAD_RUN_DIR:-$TMP/run}" "$cfg" </dev/null >/dev/null 2>"$BAD_LOG" || rc=$?
    [[ $rc -eq 2 ]] || fail "$what: rolld exited $rc, not 2: $(cat "$BAD_LOG")"
    local f
    for f in "${frags[@]}"; do
        grep -qF -- "$f" "$BAD_LOG" || fail "$what: no '$f' in rolld's output: $(cat "$BAD_LOG")"
    done
    grep -qF 'nothing started' "$BAD_LOG" || fail "$what: no 'nothing started': $(cat "$BAD_LOG")"
    [[ -z $(procs_of_dir "$TMP") ]] || fail "$what: processes started: $(procs_of_dir "$TMP")"
    # shellcheck disable=SC2046
    none_listen $(all_ports) || fail "$what: a port of the case listens"
    [[ ! -e $TMP/nginx/nginx.pid ]] || fail "$what: nginx was started"
    step "$what: exit 2: $(grep -m1 -F -- "${frags[0]}" "$BAD_LOG")"
}

# 15. A long request (6 s) in flight on the old set across a switch: with
# drain_timeout 30 s it completes with 200 and the old set is stopped only
# after it; with drain_timeout 2 s, the old set is stopped with it still in
# flight, and the warning says how many connections were cut.
case_long_request() {
    start_live
    load_start
    slow_request A
    hup
    wait_for "the slow request to finish" 20 gone "$CURL_PID"
    slow_result
    local end_ms=$SLOW_END_MS line drain_line d
    [[ $SLOW_CODE == 200 && $SLOW_BODY == "slow done port "* ]] ||
        fail "the request in flight across the switch: HTTP $SLOW_CODE '$SLOW_BODY' (curl exit $SLOW_RC)"
    wait_rollouts 1
    drain_line=$(log_line " INFO $GROUP drain done in ")
    d=$(($(log_time_ms "$drain_line") - end_ms))
    ((d >= -150)) || fail "the old set was stopped $((-d)) ms before its request in flight was answered: $drain_line"
    line=$(log_line " rollout ok: ")
    local drain_ms
    drain_ms=$(phase_ms "$line" drain)
    ((drain_ms >= 3000)) || fail "the drain took only $drain_ms ms with a 6 s request in flight: $line"
    [[ $(count 'drain_timeout reached') -eq 0 ]] || fail "drain_timeout reached with drain_timeout 30 s"
    step "(a) HTTP $SLOW_CODE '$SLOW_BODY'; stop began $d ms after it; $line"
    expect_live B

    CFG_DRAIN_TIMEOUT=2
    write_config
    slow_request B
    hup
    wait_rollouts 2
    line=$(log_line " WARN $GROUP drain_timeout reached with 1 connection(s) left on the old set; stopping it anyway")
    step "(b) $line"
    wait_for "the cut request to end" 10 gone "$CURL_PID"
    slow_result
    [[ $SLOW_CODE == 502 ]] || fail "the request cut at drain_timeout: HTTP $SLOW_CODE '$SLOW_BODY' (expected 502)"
    expect_live A
}

# slow_request A|B: GET /slow?s=6 through nginx, in the background, once it
# has reached a backend of that workset.
slow_request() {
    local -n set=SET_$1
    SLOW_START_MS=$(now_ms)
    curl -s -o "$TMP/slow.body" -w '%{http_code}' --max-time 30 \
        "http://127.0.0.1:$NGINX_PORT/slow?s=6" >"$TMP/slow.code" 2>"$TMP/slow.err" &
    CURL_PID=$!
    BG_PIDS+=("$CURL_PID")
    slow_reached() { [[ $(ss -Htnp state established "( dport = :$NGINX_PORT )") == *"pid=$CURL_PID,"* ]]; }
    wait_for "the slow request to connect to nginx" 5 slow_reached
    sleep 0.5 # curl sends the request at once, nginx passes it on at once
    step "slow request in flight (curl $CURL_PID) on workset $1 (${set[*]})"
}

slow_result() {
    SLOW_RC=0
    wait "$CURL_PID" 2>/dev/null || SLOW_RC=$?
    SLOW_END_MS=$(now_ms)
    SLOW_CODE=$(cat "$TMP/slow.code" 2>/dev/null)
    SLOW_BODY=$(cat "$TMP/slow.body" 2>/dev/null || true)
}

# 17. A group added by a reload whose program exits at once: `reload --wait`
# exits 1 naming it, web's own rollout in the same round goes through under
# load, rolld keeps running, and the added group leaves nothing behind.
case_group_added_fails() {
    start_live
    load_start
    local base extra
    base=$(case_base 17)
    extra="extra:
  cmd: '/bin/sh -c \"echo extra cannot start >&2; exit 3\" {numproc}'
  stderr: 'logs/extra-{numproc}.err'
  workset:
    - numprocs: [$((base + 21)), $((base + 22))]
    - numprocs: [$((base + 31)), $((base + 32))]
  smoke_test:
    - check_all_tcp_ports: numprocs"
    { config_text; printf '%s\n' "$extra"; } >"$TMP/rolld.yml"
    step "config: web plus the group extra, which cannot start; rolld reload --wait"
    local rc=0
    (cd "$TMP" && timeout 60 "$ROLLD" reload --run-dir "$TMP/run" "$TMP/rolld.yml" --wait) >"$TMP/reload-wait.out" 2>&1 || rc=$?
    [[ $rc == 1 ]] || fail "rolld reload --wait exited $rc (expected 1): $(cat "$TMP/reload-wait.out")"
    grep -qF "extra start failed: " "$TMP/reload-wait.out" || fail "reload --wait does not say extra failed: $(cat "$TMP/reload-wait.out")"
    grep -qF "$GROUP rollout ok: " "$TMP/reload-wait.out" || fail "web did not roll in the same round: $(cat "$TMP/reload-wait.out")"
    step "reload --wait exit 1: $(grep -F 'extra start failed' "$TMP/reload-wait.out")"
    alive "$ROLLD_PID" || fail "rolld exited after the added group failed"
    expect_live B
    none_listen $((base + 21)) $((base + 22)) $((base + 31)) $((base + 32)) || fail "a port of extra listens"
    log_line " ERROR extra added by this reload but could not start; the other groups are untouched" >/dev/null
    # The next reload tries extra again and rolls web back to workset 0.
    hup
    wait_rollouts 2
    expect_live A
}

# 18. web renamed to web-v2 by a reload, under load and with a 6 s request
# in flight: web-v2 starts on the free workset and takes the LB over; web
# is drained (the request completes) and only then stopped.
case_group_renamed() {
    start_live
    load_start
    slow_request A
    sed -i "s/^$GROUP:/$GROUP-v2:/" "$TMP/rolld.yml"
    step "config: web renamed to web-v2"
    hup
    wait_for "the slow request to finish" 20 gone "$CURL_PID"
    slow_result
    wait_for "web-v2 to go live" 30 log_has "$GROUP-v2 live on $(join_ports "${SET_B[@]}")"
    local stopped
    wait_for "web to be drained and stopped" 30 log_has "$GROUP removed from the config: drained and stopped"
    log_line " INFO $GROUP no longer in the config: draining $(join_ports "${SET_A[@]}")" >/dev/null
    stopped=$(log_line " INFO $GROUP removed from the config: drained and stopped")
    [[ $SLOW_CODE == 200 && $SLOW_BODY == "slow done port "* ]] ||
        fail "the request in flight on the removed group: HTTP $SLOW_CODE '$SLOW_BODY' (curl exit $SLOW_RC)"
    local d=$(($(log_time_ms "$stopped") - SLOW_END_MS))
    ((d >= -150)) || fail "web was stopped $((-d)) ms before its request in flight was answered: $stopped"
    step "HTTP $SLOW_CODE '$SLOW_BODY'; web stopped $d ms after it"
    expect_live B
}

# --- listen: no load balancer --------------------------------------------------------------
# The listen-* cases: rolld holds the public port itself (listen:, two banks
# of sockets and a program that routes each new connection), wrk aims
# straight at it, and listen.py serves on the socket it is handed. SET_A and
# SET_B are the check ports that name the sockets of the two banks.

# listen_served_by PORT...: 20 new connections to the public port, each
# answered 200 by the process of one of these check ports.
listen_served_by() {
    local want=" $* " i body
    for i in $(seq 20); do
        body=$(curl -sf --max-time 5 "http://127.0.0.1:$LISTEN_PORT/") || fail "request $i to :$LISTEN_PORT failed"
        [[ $want == *" ${body##* } "* ]] || fail "request $i to :$LISTEN_PORT answered '$body', expected one of the ports$want"
    done
}

# listen_each_serves PORT...: within 100 new connections to the public
# port, each of these processes answers at least one.
listen_each_serves() {
    local left=" $* " i body
    for ((i = 0; i < 100 && ${#left} > 2; i++)); do
        body=$(curl -sf --max-time 5 "http://127.0.0.1:$LISTEN_PORT/") || fail "a request to :$LISTEN_PORT failed"
        left=${left/ ${body##* } / }
    done
    [[ ${#left} -le 2 ]] || fail "in 100 new connections, none answered by the process of:$left"
}

# wrk_rate: the requests per second of the last wrk run, whole.
wrk_rate() { awk '/^Requests\/sec:/ {print int($2)}' "$WRK_OUT"; }

# peers_only PORT: the process of PORT was given connections (its file
# peers-PORT) from PORT alone, the source port of its own checks, and at
# least one. Prints how many.
peers_only() {
    local f=$TMP/peers-$1 n
    wait_for "the process of $1 to record its connections" 5 test -s "$f"
    n=$(grep -c . "$f")
    [[ -z $(grep -vx "$1" "$f") ]] ||
        fail "the process of $1 was given connections from other ports than its checks': $(sort "$f" | uniq -c | tr '\n' ';')"
    echo "$n"
}

# mute_release: a release whose processes accept and never answer, under
# load from the moment it is spawned: rolled back at start_timeout (3 s),
# its processes given nothing but their own checks, wrk clean.
mute_release() {
    local before spawned line took p peers=
    before=$(rollbacks)
    rm -f "$TMP"/peers-*
    touch "$TMP/mute"
    hup
    wait_for "the spawn of workset 1" 10 has_output log_lines "rollout: spawning workset 1"
    load_start
    wait_rollbacks $((before + 1))
    spawned=$(log_lines "rollout: spawning workset 1" | tail -n 1)
    line=$(log_lines " rollout rolled back: " "not ready within start_timeout 3.00s" | tail -n 1)
    [[ -n $line ]] || fail "the mute release was not rolled back at start_timeout 3.00s: $(log_lines ' rolled back: ' | tail -n 1)"
    names_group_port "$line" "${SET_B[@]}"
    took=$(ms_between "$spawned" "$line")
    ((took >= 2800 && took < 8000)) || fail "rolled back after ${took} ms with start_timeout 3 s: $line"
    rm "$TMP/mute"
    for p in "${SET_B[@]}"; do peers+=" $(peers_only "$p")"; done
    load_stop
    step "mute release rolled back after $took ms; its processes were given only their own checks:$peers"
}

# 19. listen: a release whose processes never answer. (a) mute: they accept
# every connection and never answer; (b) hang: they never accept. Each is
# rolled back at start_timeout (3 s); the only connections they were ever
# given are their own checks (a mute process records each one it accepts,
# a hanging one what waits in its queue when it is stopped); the live set
# serves throughout.
case_listen_hang() {
    CFG_START_TIMEOUT=3
    start_live
    load_start
    local variant n=0 spawned line took p peers
    for variant in mute hang; do
        n=$((n + 1))
        rm -f "$TMP"/peers-*
        touch "$TMP/$variant"
        hup
        wait_rollbacks "$n"
        spawned=$(log_lines "rollout: spawning workset 1" | tail -n 1)
        line=$(log_lines " rollout rolled back: " "not ready within start_timeout 3.00s" | tail -n 1)
        [[ -n $line ]] || fail "($variant) no rollback at start_timeout 3.00s: $(log_lines ' rolled back: ' | tail -n 1)"
        names_group_port "$line" "${SET_B[@]}"
        took=$(ms_between "$spawned" "$line")
        ((took >= 2800 && took < 8000)) || fail "($variant) rolled back after ${took} ms with start_timeout 3 s: $line"
        rm "$TMP/$variant"
        peers=
        for p in "${SET_B[@]}"; do peers+=" $(peers_only "$p")"; done
        step "($variant) rolled back after $took ms; its processes were given only their own checks:$peers"
        expect_live A
    done
}

# 20. listen: crashes, 3 processes a set. (a) A release whose processes exit
# at once: rolled back at once, long before start_timeout (20 s). (b) A live
# process in a crash loop (SIGKILLed, then exiting 0.2 s after each start,
# resetting whatever waits in its queue): rolld takes its socket out of the
# route the moment it exits, restarts it with a doubling backoff, and routes
# to a restarted process only once it passes its check, which none does.
# Under wrk (3 s timeout) only the requests on its socket when it was killed
# fail: those it had, and those that reached its socket before rolld saw it
# end (a few ms), so at most two per wrk connection. Any request sent to a
# process of the loop would fail too. The others serve throughout (wrk's
# rate stays above half of what it was before); rolld's CPU stays small.
# Once the loop ends, the next restart passes its check and serves again.
case_listen_crash() {
    CFG_START_TIMEOUT=20
    listen_procs 3
    start_live
    load_start
    local spawned line took
    touch "$TMP/crash"
    hup
    wait_rollbacks 1
    spawned=$(log_line "rollout: spawning workset 1")
    line=$(log_line " rollout rolled back: " "exited (exit 3) before it was ready")
    names_group_port "$line" "${SET_B[@]}"
    took=$(ms_between "$spawned" "$line")
    ((took < 5000)) || fail "rolled back ${took} ms after the spawn, with start_timeout 20 s: $line"
    wait_for "the stderr tail ('  | ... boom') in rolld's log" 5 log_has_all "  | " "boom"
    step "(a) rolled back after $took ms: $line"
    rm "$TMP/crash"
    expect_live A
    load_stop
    local rate0 rate
    rate0=$(wrk_rate)

    local p3=${SET_A[2]} pid tck cpu0 cpu1 cpu_ms waits=() w prev
    WRK_TIMEOUT=3s load_start
    sleep 0.5
    touch "$TMP/crashloop-$p3"
    pid=$(leader_of "$p3")
    [[ -n $pid ]] || fail "no process on $p3"
    tck=$(getconf CLK_TCK)
    cpu0=$(proc_cpu_ticks "$ROLLD_PID")
    step "(b) crash loop on $p3: SIGKILL to $pid"
    kill -KILL "$pid"
    sleep 10
    cpu1=$(proc_cpu_ticks "$ROLLD_PID")
    cpu_ms=$(((cpu1 - cpu0) * 1000 / tck))
    mapfile -t waits < <(log_lines " WARN $GROUP:$p3 " "exited unexpectedly" | sed 's/.*restarting in //')
    ((${#waits[@]} >= 3 && ${#waits[@]} <= 6)) || fail "${#waits[@]} exits in 10 s of crash loop (want 3 to 6): ${waits[*]}"
    prev=0
    for w in "${waits[@]}"; do
        w=$(secs_to_ms "${w%s}")
        ((prev == 0 && w == 1000 || w == 2 * prev)) || fail "the backoff does not double from 1 s: ${waits[*]}"
        prev=$w
    done
    ((cpu_ms < 500)) || fail "rolld used $cpu_ms ms of CPU in 10 s of crash loop (limit 500 ms)"
    wrk_stop
    load_failed
    rate=$(wrk_rate)
    say "crash loop of $p3 (${#waits[@]} exits in 10 s, backoff ${waits[*]}, rolld ${cpu_ms} ms of CPU): $WRK_SOCKERR of $WRK_REQUESTS requests failed${WRK_ERRORS:+ ($WRK_ERRORS)}; $rate requests/s, $rate0 before"
    ((WRK_SOCKERR <= 2 * WRK_CONNS)) || fail "$WRK_SOCKERR requests failed, more than two per wrk connection ($WRK_CONNS) could have had on the killed process's socket: $WRK_ERRORS"
    ((2 * rate >= rate0)) || fail "$rate requests/s during the crash loop, $rate0 before: wrk's connections waited on the processes of the loop"
    [[ $(count_all " $GROUP:$p3 " "passes its check") == 0 ]] || fail "a process of the crash loop passed its check"
    step "(b) ${#waits[@]} exits, backoff ${waits[*]}; rolld used $cpu_ms ms of CPU"
    rm "$TMP/crashloop-$p3"
    wait_for "a restart of $p3 to pass its check" 40 log_has_all " INFO $GROUP:$p3 " "passes its check: new connections go to it again"
    listen_each_serves "${SET_A[@]}"
}

# 21. listen: a storm of 20 SIGHUPs, as case 8.
case_listen_hup_storm() { case_hup_storm; }

# keeper_of: the pid of the keeper of this case's sockets (none: empty).
keeper_of() { pids_matching "^rolld-sockets $TMP/run/"; }

# 22. listen: rolld SIGKILLed under load, three times. Its processes keep
# serving on the sockets they hold, and its keeper (rolld-sockets, started
# again by rolld when it ends, never named by `pidof rolld`) holds the
# rest: the group, its order and its program stay as they were, and not
# one request fails while no rolld runs. (a) A new rolld takes the sockets
# back from the keeper and the processes over from the state file, rolls
# them over at once, replaces the keeper, and rolls again on `reload
# --wait` (exit 0). (b) Killed in turn, and restarted with `procs`
# changed: it takes the sockets back as they were, keeps them serving and
# refuses the change, saying why (`reload --wait` exits 1). (c) Killed with
# its keeper, and restarted: it says the keeper is gone and that it cannot
# take the sockets, leaves the processes serving, `reload --wait` exits 1
# with the reason, and its SIGTERM stops them. wrk runs throughout: 0
# failed requests.
case_listen_takeover() {
    start_live
    load_start
    local old=() p pid rc=0 line keeper keeper2
    for p in "${SET_A[@]}"; do old+=("$(leader_of "$p")"); done
    keeper=$(keeper_of)
    [[ $keeper =~ ^[0-9]+$ ]] || fail "no single keeper of the sockets: '$keeper'"
    log_line " INFO rolld pid $keeper keeps the sockets of $GROUP too" >/dev/null
    [[ $(pidof rolld) == "$ROLLD_PID" ]] || fail "pidof rolld names '$(pidof rolld)', not rolld $ROLLD_PID alone"
    # A keeper that ends within a second of its start is not started
    # again (KEEPER_MIN_LIFE): this one has lived longer.
    keeper_aged() { local t; t=$(ps -o etimes= -p "$keeper") && ((t >= 2)); }
    wait_for "the keeper to have lived 2 s" 5 keeper_aged
    step "keeper $keeper; SIGHUP and SIGINT leave it, SIGTERM ends it"
    kill -HUP "$keeper"
    kill -INT "$keeper"
    kill -TERM "$keeper"
    wait_for "rolld to see its keeper end" 5 log_has " WARN rolld the keeper of the sockets, pid $keeper, ended (signal 15); starting another"
    keeper2=$(keeper_of)
    [[ $keeper2 =~ ^[0-9]+$ && $keeper2 != "$keeper" ]] || fail "no new keeper after $keeper ended: '$keeper2'"
    keeper=$keeper2
    step "SIGKILL to rolld $ROLLD_PID (processes ${old[*]}, keeper $keeper)"
    EXPECT_ROLLD=0
    kill -KILL "$ROLLD_PID"
    wait_for "rolld to die" 5 not_running "$ROLLD_PID"
    wait "$RUN_PID" 2>/dev/null || true
    RUN_PID=
    sleep 2
    for pid in "${old[@]}" "$keeper"; do alive "$pid" || fail "process $pid died with rolld"; done
    expect_live A
    LOG=$TMP/rolld-2.log
    rolld_spawn
    step "(a) second rolld: $ROLLD_PID"
    wait_for "the sockets to be taken back" 10 log_has " WARN $GROUP took back the sockets of 127.0.0.1:$LISTEN_PORT from a previous rolld"
    log_line " WARN $GROUP took over the live set $(join_ports "${SET_A[@]}") of a previous rolld; rolling it over" >/dev/null
    wait_rollouts 1
    expect_live B
    for pid in "${old[@]}" "$keeper"; do wait_for "process $pid to be gone" 5 not_running "$pid"; done
    keeper2=$(keeper_of)
    [[ $keeper2 =~ ^[0-9]+$ && $keeper2 != "$keeper" ]] || fail "after the takeover the keeper is '$keeper2' (was $keeper)"
    (cd "$TMP" && timeout 60 "$ROLLD" reload --run-dir "$TMP/run" "$TMP/rolld.yml" --wait) >"$TMP/reload-wait.out" 2>&1 || rc=$?
    [[ $rc == 0 ]] || fail "rolld reload --wait exited $rc (expected 0): $(cat "$TMP/reload-wait.out")"
    expect_live A
    step "(a) taken over and rolled twice; keeper $keeper2"

    old=()
    for p in "${SET_A[@]}"; do old+=("$(leader_of "$p")"); done
    local more=$((LISTEN_PROCS + 1))
    step "(b) SIGKILL to rolld $ROLLD_PID; restarted with procs: $more"
    EXPECT_ROLLD=0
    kill -KILL "$ROLLD_PID"
    wait_for "rolld to die" 5 not_running "$ROLLD_PID"
    wait "$RUN_PID" 2>/dev/null || true
    RUN_PID=
    LISTEN_PROCS=$more write_config
    LOG=$TMP/rolld-3.log
    rolld_spawn
    wait_for "the third rolld to take the sockets back" 10 log_has " WARN $GROUP took back the sockets of 127.0.0.1:$LISTEN_PORT from a previous rolld"
    local why="$GROUP rollout rolled back: listen: 127.0.0.1:$LISTEN_PORT, procs: $more and check_from: $CHECK_FROM cannot change while the group runs on 127.0.0.1:$LISTEN_PORT with $LISTEN_PROCS from $CHECK_FROM: rolld holds those sockets for its life; restart it to change them"
    wait_for "the third rolld to refuse the change" 10 log_has "$why"
    wait_for "keeper $keeper2 to be replaced" 5 not_running "$keeper2"
    keeper=$(keeper_of)
    [[ $keeper =~ ^[0-9]+$ ]] || fail "the third rolld runs no single keeper: '$keeper'"
    reload_wait_fails "$why"
    step "(b) the change refused with the reason; reload --wait: exit 1; keeper $keeper"
    for pid in "${old[@]}"; do alive "$pid" || fail "process $pid died under the third rolld"; done
    expect_live A

    step "(c) SIGKILL to rolld $ROLLD_PID and to its keeper $keeper; restarted as it was"
    EXPECT_ROLLD=0
    kill -KILL "$ROLLD_PID" "$keeper"
    wait_for "rolld to die" 5 not_running "$ROLLD_PID"
    wait "$RUN_PID" 2>/dev/null || true
    RUN_PID=
    write_config
    LOG=$TMP/rolld-4.log
    rolld_spawn
    wait_for "the fourth rolld to say the keeper is gone" 10 log_has " WARN $GROUP the keeper of its sockets, pid $keeper"
    local pre="$GROUP rollout rolled back: cannot listen on 127.0.0.1:$LISTEN_PORT: pid "
    local cannot="the processes a previous rolld left hold the sockets of 127.0.0.1:$LISTEN_PORT, and rolld cannot take them over: they keep serving; stop them, and reload, to start the group anew"
    wait_for "the fourth rolld to refuse the group" 10 log_has_all " WARN $pre" "$cannot"
    line=$(log_line " WARN $pre" "$cannot")
    step "$line"
    reload_wait_fails "$pre"
    step "(c) reload --wait: exit 1, with the reason"
    for pid in "${old[@]}"; do alive "$pid" || fail "process $pid died under the fourth rolld"; done
    expect_live A
    load_stop
    rolld_stop_ok 15
    for p in "${SET_A[@]}"; do log_line " INFO $GROUP:$p stopped (status unknown: not rolld's child)" >/dev/null; done
    for pid in "${old[@]}"; do wait_for "process $pid to be gone" 5 not_running "$pid"; done
}

# reload_wait_fails TEXT: `rolld reload --wait` exits 1, and says TEXT.
reload_wait_fails() {
    local rc=0
    (cd "$TMP" && timeout 60 "$ROLLD" reload --run-dir "$TMP/run" "$TMP/rolld.yml" --wait) >"$TMP/reload-wait.out" 2>&1 || rc=$?
    [[ $rc == 1 ]] || fail "rolld reload --wait exited $rc (expected 1): $(cat "$TMP/reload-wait.out")"
    grep -qF -- "$1" "$TMP/reload-wait.out" || fail "reload --wait does not say '$1': $(cat "$TMP/reload-wait.out")"
}

# 23. listen: rolld SIGKILLed during a drain, with a 6 s request in flight
# on the old set. The new rolld takes the sockets back from the keeper and
# the draining set over, and drains it by the queues of its sockets and
# the connections its processes hold: the request completes, and the old
# set is stopped only after it; then the group rolls. The group's order
# never changed, so no new connection reaches the old set: 0 failed
# requests.
case_listen_kill_drain() {
    start_live
    load_start
    curl -s -o "$TMP/slow.body" -w '%{http_code}' --max-time 30 "http://127.0.0.1:$LISTEN_PORT/sleep?6" >"$TMP/slow.code" 2>"$TMP/slow.err" &
    CURL_PID=$!
    BG_PIDS+=("$CURL_PID")
    sleep 0.5
    echo r2 >"$TMP/release"
    hup
    wait_for "the switch" 10 log_has "go to $(join_ports "${SET_B[@]}") now"
    step "switched; SIGKILL to rolld $ROLLD_PID during the drain"
    EXPECT_ROLLD=0
    kill -KILL "$ROLLD_PID"
    wait_for "rolld to die" 5 not_running "$ROLLD_PID"
    wait "$RUN_PID" 2>/dev/null || true
    RUN_PID=
    LOG=$TMP/rolld-2.log
    rolld_spawn
    wait_for "the takeover of the draining set" 10 log_has "took over the draining set $(join_ports "${SET_A[@]}") of a previous rolld"
    log_line " WARN $GROUP took back the sockets of 127.0.0.1:$LISTEN_PORT from a previous rolld" >/dev/null
    wait_for "the slow request to finish" 20 gone "$CURL_PID"
    slow_result
    [[ $SLOW_CODE == 200 && $SLOW_BODY == "r1 "* ]] ||
        fail "the request in flight across the takeover: HTTP $SLOW_CODE '$SLOW_BODY' (curl exit $SLOW_RC)"
    log_line "took over the live set $(join_ports "${SET_B[@]}") of a previous rolld" >/dev/null
    local p stopped d
    for p in "${SET_A[@]}"; do
        wait_for "the old process of $p to be stopped" 10 log_has " INFO $GROUP:$p stopped ("
        stopped=$(log_line " INFO $GROUP:$p stopped (")
        d=$(($(log_time_ms "$stopped") - SLOW_END_MS))
        ((d >= -150)) || fail "the old process of $p was stopped $((-d)) ms before the request in flight was answered: $stopped"
    done
    step "the request in flight: HTTP $SLOW_CODE '$SLOW_BODY'; the old set stopped after it"
    wait_rollouts 1
    expect_live A
    step "then the group rolled, as a reload after a takeover does"
    load_stop
    rolld_stop_ok 15
}

# 24. listen: a process detaches the group's program through its own
# socket (SO_DETACH_REUSEPORT_BPF, which the lock of the sockets does not
# cover). New connections are then spread by hash over every socket of the
# group, those no process serves included, and checks no longer reach the
# socket they name. Each rollout puts the program back before its checks:
# (a) after a detach, a release that never answers is rolled back, its
# processes given only their own checks, the live set serving throughout;
# (b) detached again, new connections fail (counted: those hashed to a
# socket nobody serves wait until they time out); the next rollout goes
# through, and no request fails after it.
case_listen_detach() {
    CFG_START_TIMEOUT=3
    start_live
    load_start
    sleep 1
    load_stop
    local got i ok=0 lost=0
    got=$(curl -s --max-time 5 "http://127.0.0.1:$LISTEN_PORT/detach")
    wait_for "a process to say it detached the program" 5 has_output grep -lF "detached the program" "$TMP"/logs/*.err
    step "(a) detached by the process of ${got##* }; no traffic until the next rollout"
    mute_release
    expect_live A

    got=$(curl -s --max-time 5 "http://127.0.0.1:$LISTEN_PORT/detach")
    for i in $(seq 20); do
        if curl -sf --max-time 1 "http://127.0.0.1:$LISTEN_PORT/" >/dev/null; then ok=$((ok + 1)); else lost=$((lost + 1)); fi
    done
    say "detached by the process of ${got##* }: of 20 new connections, $ok answered, $lost not within 1 s"
    ((lost > 0)) || fail "all of 20 new connections were answered after the detach: the detach did nothing?"
    echo r2 >"$TMP/release"
    hup
    wait_rollouts 1
    expect_live B
    load_start
    sleep 2
    load_stop
}

# --- running the cases -------------------------------------------------------------------

case_cleanup() {
    local rc=$?
    set +eE
    trap - ERR
    lib_cleanup
    if [[ $rc -eq 0 && ${CASE_PASSED:-0} == 1 ]]; then
        [[ ${FAULTS_KEEP:-0} == 1 ]] || rm -rf -- "$TMP"
    elif [[ $rc -eq 0 && -n ${CASE_SKIPPED:-} ]]; then
        echo "faults: $CASE: SKIP ($CASE_SKIPPED)"
        rm -rf -- "$TMP"
        rc=3
    else
        [[ $rc -eq 0 ]] && rc=1
        if [[ -s ${LIB_FAIL_FILE:-/nonexistent} ]]; then
            echo "faults: $CASE: FAIL: $(head -n 1 "$LIB_FAIL_FILE")"
        else
            echo "faults: $CASE: FAIL: exit status $rc (see above)"
        fi
        {
            echo "--- $CASE: work directory kept: $TMP"
            if [[ -s $TMP/steps.log ]]; then
                echo "--- steps:"
                cat "$TMP/steps.log"
            fi
            local f
            for f in "$TMP"/rolld*.log; do
                [[ -s $f ]] || continue
                echo "--- last lines of $f:"
                tail -n 40 "$f"
            done
            if [[ -s $TMP/nginx/error.log ]]; then
                echo "--- last lines of $TMP/nginx/error.log:"
                tail -n 8 "$TMP/nginx/error.log"
            fi
            for f in "$TMP"/wrk-*.out; do
                [[ -s $f ]] && grep -qE 'Non-2xx|Socket errors' "$f" && {
                    echo "--- $f:"
                    cat "$f"
                }
            done
            echo "---"
        } >&2
    fi
    exit "$rc"
}

# 16. Scale: one group of 200 backends per set (examples/http_backend.rs,
# which dies at once on SIGTERM: only the drain protects its requests),
# behind nginx under load, rolled twice. Ports 30001-30200 and 30501-30700.
case_scale_200() {
    local backend=$REPO/target/release/examples/http_backend
    [[ -x $backend ]] || fail "no $backend (cargo build --release --example http_backend)"
    cp "$backend" "$TMP/http_backend"
    SET_A=($(seq 30001 30200))
    SET_B=($(seq 30501 30700))
    CFG_CMD="$TMP/http_backend {numproc}"
    start_live
    load_start
    local n line
    for n in 1 2; do
        hup
        wait_rollouts "$n" 60
        line=$(grep -F ' rollout ok: ' "$LOG" | tail -n 1)
        say "rollout $n of 200 backends: (${line##*(}"
        if ((n == 1)); then expect_live B; else expect_live A; fi
    done
    load_stop
}

# 25. SIGHUP during a bake: the bake is not cut short; the old set keeps
# listening until it ends, then drains and stops (rollout ok), and the
# rollout the SIGHUP asked for follows, with its own bake.
case_bake_hup() {
    CFG_BAKE=3
    start_live
    load_start
    hup
    wait_for "the bake of ${SET_B[*]}" 15 log_has "baking $(join_ports "${SET_B[@]}") for 3.00s"
    hup
    wait_for "the SIGHUP to be queued" 5 log_has "SIGHUP during a rollout: another rollout will follow this one"
    all_listen "${SET_A[@]}" || fail "the old set stopped listening during the bake"
    [[ $(rollouts_ok) -eq 0 ]] || fail "the rollout ended before its bake"
    wait_rollouts 1
    local first baked
    first=$(log_line " rollout ok: $(join_ports "${SET_A[@]}") -> $(join_ports "${SET_B[@]}")")
    [[ $first == *", bake 3."* ]] || fail "the first rollout's bake was cut short: $first"
    wait_rollouts 2
    log_line " rollout ok: $(join_ports "${SET_B[@]}") -> $(join_ports "${SET_A[@]}")" >/dev/null
    baked=$(log_line "bake of $(join_ports "${SET_B[@]}") passed")
    [[ $(ms_between "$baked" "$(log_line "rollout: spawning workset 0")") -ge 0 ]] ||
        fail "the queued rollout began before the bake ended"
    expect_live A
    load_stop
}

# 26. rolld SIGKILLed during a bake: both sets serve on (the LB points at
# the new one). The successor takes the new set over as live and the old
# one as draining: it finishes the bake as if promoted (the old set drains
# and stops; nothing is reverted), then rolls the live set as after any
# takeover.
case_bake_kill() {
    CFG_BAKE=3
    start_live
    load_start
    local old=() p
    for p in "${SET_A[@]}"; do old+=("$(leader_of "$p")"); done
    hup
    wait_for "the bake of ${SET_B[*]}" 15 log_has "baking $(join_ports "${SET_B[@]}") for 3.00s"
    step "SIGKILL to rolld $ROLLD_PID during the bake (old set ${old[*]})"
    EXPECT_ROLLD=0
    kill -KILL "$ROLLD_PID"
    wait_for "rolld to die" 5 not_running "$ROLLD_PID"
    RUN_PID=
    all_listen "${SET_A[@]}" "${SET_B[@]}" || fail "a set stopped with rolld"
    served_by "$NGINX_PORT" "${SET_B[@]}"
    LOG=$TMP/rolld-2.log
    rolld_spawn
    step "second rolld: $ROLLD_PID"
    wait_for "the takeover" 10 log_has "took over the draining set $(join_ports "${SET_A[@]}") of a previous rolld"
    log_line "took over the live set $(join_ports "${SET_B[@]}") of a previous rolld" >/dev/null
    for p in "${old[@]}"; do
        wait_for "old backend $p to stop" 15 not_running "$p"
    done
    wait_rollouts 1 30
    log_line " rollout ok: $(join_ports "${SET_B[@]}") -> $(join_ports "${SET_A[@]}")" >/dev/null
    ! log_has "reverted" || fail "the successor reverted: $(log_line reverted)"
    expect_live A
    load_stop
}

# run_case NAME NUMBER: the case in a subshell of its own; its status (0
# pass, 3 skipped, else failed).
run_case() {
    (
        set -eEuo pipefail
        CASE=$1
        LIB_NAME="faults: $1"
        CASE_PASSED=0
        CASE_SKIPPED=
        trap case_cleanup EXIT
        trap 'exit 130' INT
        trap 'exit 143' TERM HUP
        CASE_SHELL=$BASHPID
        # (only in the case's shell itself, not in command substitutions)
        trap 'st=$?; [[ $BASHPID != "$CASE_SHELL" ]] || echo "$LIB_NAME: command failed (status $st, line $LINENO): $BASH_COMMAND" >&2' ERR
        setup_case "$1" "$2"
        "case_${1//-/_}"
        [[ -n $CASE_SKIPPED ]] && exit 0
        finish_case
    )
}

usage() {
    echo "usage: tests/faults.sh [CASE...]   (a case is a name or a number)"
    echo "cases:"
    local i
    for i in "${!CASES[@]}"; do printf '  %2d %s\n' $((i + 1)) "${CASES[i]}"; done
}

main() {
    local selected=() a i found k
    for a in "$@"; do
        case $a in
        -h | --help | --list)
            usage
            return 0
            ;;
        esac
        found=
        for i in "${!CASES[@]}"; do
            if [[ $a == "${CASES[i]}" || $a == "$((i + 1))" ]]; then
                found=$((i + 1))
            fi
        done
        [[ -n $found ]] || {
            usage >&2
            echo "faults: unknown case: $a" >&2
            return 2
        }
        selected+=("$found")
    done
    ((${#selected[@]})) || selected=($(seq 1 ${#CASES[@]}))

    local tool
    for tool in "$PY" wrk curl ss pgrep ps awk date timeout; do
        command -v "$tool" >/dev/null || {
            echo "faults: $tool is required" >&2
            return 2
        }
    done
    local need_nginx=0
    for k in "${selected[@]}"; do [[ ${CASES[k - 1]} == listen-* ]] || need_nginx=1; done
    ((!need_nginx)) || lib_find_nginx || {
        echo "faults: nginx is required" >&2
        return 2
    }
    local bin=${ROLLD_BIN:-}
    if [[ -z $bin ]]; then
        (cd "$REPO" && cargo build --release --quiet) || {
            echo "faults: cargo build --release failed" >&2
            return 2
        }
        bin=$REPO/target/release/rolld
    fi
    [[ -x $bin ]] || {
        echo "faults: no rolld binary at $bin" >&2
        return 2
    }
    RUN_ROOT=$(mktemp -d /tmp/rolld-faults.XXXXXX)
    chmod 755 "$RUN_ROOT"
    cp "$bin" "$RUN_ROOT/rolld"
    chmod 755 "$RUN_ROOT/rolld"
    ROLLD=$RUN_ROOT/rolld
    echo "faults: rolld $bin (copied to $ROLLD); work in $RUN_ROOT"

    local t_all=$(now_ms) passed=() failed=() skipped=() times=() name t rc
    INTERRUPTED=0
    trap 'INTERRUPTED=1' INT TERM
    for k in "${selected[@]}"; do
        name=${CASES[k - 1]}
        t=$(now_ms)
        run_case "$name" "$k"
        rc=$?
        times+=("$name $((($(now_ms) - t + 500) / 1000))s")
        case $rc in
        0) passed+=("$name") ;;
        3) skipped+=("$name") ;;
        *) failed+=("$name") ;;
        esac
        ((INTERRUPTED)) && break
    done
    trap - INT TERM
    local total=$((($(now_ms) - t_all + 500) / 1000))
    echo "faults: times: $(
        IFS=,
        echo "${times[*]}" | sed 's/,/, /g'
    )"
    local summary="${#passed[@]} passed, ${#failed[@]} failed"
    ((${#skipped[@]})) && summary+=", ${#skipped[@]} skipped (${skipped[*]})"
    ((${#failed[@]})) && summary+=" (${failed[*]})"
    ((INTERRUPTED)) && summary+=", interrupted"
    echo "faults: summary: $summary, in ${total} s"
    if ((${#failed[@]} == 0 && !INTERRUPTED)) && [[ ${FAULTS_KEEP:-0} != 1 ]]; then
        rm -rf -- "$RUN_ROOT"
    else
        echo "faults: work directories in $RUN_ROOT"
    fi
    ((${#failed[@]} == 0 && !INTERRUPTED))
}

main "$@"
