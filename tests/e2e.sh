#!/usr/bin/env bash
# End-to-end test of rolld under load, behind nginx or HAProxy.
#
#   tests/e2e.sh [PATH_TO_ROLLD]              # behind nginx
#   LB=haproxy tests/e2e.sh [PATH_TO_ROLLD]   # behind HAProxy
#
# Without an argument it runs `cargo build --release` and tests
# target/release/rolld. Needs python3, wrk, curl, ss, pgrep/pkill, and nginx
# or haproxy.
#
# In a fresh temporary directory it sets up the example (app.py, and the
# nginx prefix with reload.sh/stop.sh from example/nginx/, or the HAProxy
# directory from example/haproxy/) on ports that do not clash with the
# examples:
#
#   LB=nginx   (default)  nginx on 127.0.0.1:18080,
#                         backends on 18001-18004 and 18501-18504;
#   LB=haproxy            HAProxy on 127.0.0.1:18081 (master-worker, retries 0),
#                         backends on 18101-18104 and 18601-18604.
#
# Then:
#
#   - starts rolld and waits until the first workset is live behind the LB;
#   - runs wrk through the LB for the whole test (Connection: close, so every
#     request is a new connection and hits whichever workset the LB has);
#   - keeps a 4 s request in flight across the first switch;
#   - does 5 rollouts (SIGHUP), checking after each that exactly the expected
#     workset listens and serves;
#   - breaks the LB config template (a directive the LB rejects), so that the
#     LB's config check in reload.sh (`nginx -t`, `haproxy -c`) fails: the
#     next rollout (`rolld reload --wait`, which must exit 1) must be rolled
#     back, the LB must not have been reloaded (no new worker) and must still
#     send every request to the old workset, whose ports are the only ones
#     listening; for HAProxy, the installed haproxy.cfg must be unchanged too.
#     Once the template is restored, the next SIGHUP must roll over normally;
#   - sends a storm of SIGHUPs, which must give 1 or 2 more rollouts (one
#     running plus at most one queued), then nothing more;
#   - requires wrk to have seen only 2xx answers and no socket errors;
#   - stops rolld with SIGTERM: exit status 0, no backend left, no zombie;
#   - stops the LB with its stop.sh: no LB process left.
#
# On failure the temporary directory is kept and its path printed; set
# E2E_KEEP=1 to keep it after a success too.

set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)

LB=${LB:-nginx}
case $LB in
nginx)
    LB_PORT=18080
    SET_A=(18001 18002 18003 18004)
    SET_B=(18501 18502 18503 18504)
    ;;
haproxy)
    LB_PORT=18081
    SET_A=(18101 18102 18103 18104)
    SET_B=(18601 18602 18603 18604)
    ;;
*)
    echo "e2e: LB must be nginx or haproxy, not '$LB'" >&2
    exit 2
    ;;
esac
ROLLOUTS=5
STORM_HUPS=10
SLOW_SECS=4
WRK_MAX_SECS=300 # upper bound only: wrk is stopped (SIGINT) once the rollouts are done

ROLLD_PID=
WRK_PID=
CURL_PID=
EXPECT_ROLLD=0 # while 1, wait_for fails at once if rolld has died
ROLLBACKS_OK=0 # rollbacks the test causes on purpose; any other one fails it
PASSED=0
TMP=

LIB_NAME=e2e
# shellcheck source=tests/lib.sh
source "$REPO/tests/lib.sh"

# --- helpers on rolld's log ------------------------------------------------

no_rollback() {
    if [[ $(count ' rolled back: ') -gt $ROLLBACKS_OK ]]; then
        grep -F ' rolled back: ' "$LOG" >&2
        fail "rolld rolled back a rollout"
    fi
}
# rollouts_at_least N (fails at once on a rollback)
rollouts_at_least() {
    no_rollback
    [[ $(count ' rollout ok: ') -ge $1 ]]
}
rollbacks_at_least() { [[ $(count ' rolled back: ') -ge $1 ]]; }

# --- helpers on ports --------------------------------------------------------

lb_ok() {
    local body
    body=$(curl -s --max-time 2 "http://127.0.0.1:$LB_PORT/" 2>/dev/null) || return 1
    [[ $body == "port "* ]]
}

# served_by PORT...: 20 requests through the LB, all answered by these ports.
served_by() {
    local i body want=" $* "
    for i in $(seq 20); do
        body=$(curl -s --max-time 5 "http://127.0.0.1:$LB_PORT/") || fail "request through $LB failed"
        [[ $body == "port "* && $want == *" ${body#port } "* ]] ||
            fail "request through $LB answered '$body', expected one of:$want"
    done
}

# expect_live NAME: workset NAME (A or B) listens and serves, the other not.
# The new ports must listen as soon as rolld reports the rollout; the old
# processes get up to 3 s to close their listening sockets.
expect_live() {
    local -n on=SET_$1 off=SET_$([[ $1 == A ]] && echo B || echo A)
    all_listen "${on[@]}" || fail "workset $1 (${on[*]}) is not listening; listening: $(listening_ports | tr '\n' ' ')"
    wait_for "old workset ports ${off[*]} to stop listening" 3 none_listen "${off[@]}"
    served_by "${on[@]}"
}

# --- helpers on the LB -------------------------------------------------------------

# lb_procs: pids of the LB processes of this test (masters and workers). The
# nginx master's command line names $TMP/nginx/; every HAProxy process (the
# master and its workers) has $TMP/haproxy/haproxy.cfg on its command line.
lb_procs() {
    local m
    case $LB in
    nginx)
        for m in $(pgrep -f -- "nginx: master process .*$TMP/nginx/"); do
            echo "$m"
            pgrep -P "$m"
        done
        ;;
    haproxy) pgrep -f -- "$TMP/haproxy/haproxy.cfg" ;;
    esac
    return 0
}
# lb_master: the LB master's pid, from its pid file.
lb_master() {
    case $LB in
    nginx) cat "$TMP/nginx/nginx.pid" ;;
    haproxy) cat "$TMP/haproxy/haproxy.pid" ;;
    esac
}
# lb_workers: the worker pids of the LB master, sorted.
lb_workers() { pgrep -P "$(lb_master)" | sort -n || true; }

# --- cleanup -----------------------------------------------------------------

stop_pid() { # stop_pid PID SECONDS: TERM, wait, KILL
    local pid=$1 i
    alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < $2 * 10; i++)); do
        alive "$pid" || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
}

cleanup() {
    local rc=$? pid masters procs i
    set +e
    trap - EXIT INT TERM HUP
    [[ -n $WRK_PID ]] && stop_pid "$WRK_PID" 2
    [[ -n $CURL_PID ]] && stop_pid "$CURL_PID" 2
    [[ -n $ROLLD_PID ]] && stop_pid "$ROLLD_PID" 10
    if [[ -n $TMP && -d $TMP ]]; then
        procs=$(lb_procs)
        if [[ -n $procs ]]; then
            if [[ $LB == nginx ]]; then
                "$NGINX_BIN" -p "$TMP/nginx/" -e "$TMP/nginx/error.log" -c nginx.conf -s stop 2>/dev/null
            else
                # SIGTERM to the master: hard stop of the master and workers.
                masters=$(cat "$TMP/haproxy/haproxy.pid" 2>/dev/null)
                [[ -n $masters ]] && kill -TERM "$masters" 2>/dev/null
            fi
            for ((i = 0; i < 50; i++)); do
                [[ -n $(lb_procs) ]] || break
                sleep 0.1
            done
            # shellcheck disable=SC2086,SC2046
            kill -KILL $procs $(lb_procs) 2>/dev/null
        fi
        # Backends left over (rolld runs them as "python3 $TMP/app.py PORT").
        if pgrep -f -- "$TMP/app.py" >/dev/null; then
            pkill -TERM -f -- "$TMP/app.py"
            for ((i = 0; i < 50; i++)); do
                pgrep -f -- "$TMP/app.py" >/dev/null || break
                sleep 0.1
            done
            pkill -KILL -f -- "$TMP/app.py"
        fi
    fi
    for pid in $ROLLD_PID $WRK_PID $CURL_PID; do wait "$pid" 2>/dev/null; done
    if ((PASSED)) && [[ $rc -eq 0 ]]; then
        if [[ ${E2E_KEEP:-0} == 1 ]]; then
            echo "e2e: kept $TMP"
        else
            rm -rf -- "$TMP"
        fi
    elif [[ -n $TMP && -d $TMP ]]; then
        [[ $rc -eq 0 ]] && rc=1
        echo "e2e: FAILED (exit $rc); kept $TMP" >&2
        if [[ -s ${LOG:-} ]]; then
            echo "--- last lines of $LOG:" >&2
            tail -n 40 "$LOG" >&2
        fi
        if [[ -s $TMP/nginx/error.log ]]; then
            echo "--- last lines of $TMP/nginx/error.log:" >&2
            tail -n 10 "$TMP/nginx/error.log" >&2
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# --- preconditions -------------------------------------------------------------

if [[ $# -ge 1 ]]; then
    ROLLD=$1
else
    ROLLD=$REPO/target/release/rolld
    (cd "$REPO" && cargo build --release)
fi
[[ -x $ROLLD ]] || fail "rolld binary not found or not executable: $ROLLD"
ROLLD=$(realpath -- "$ROLLD")

if [[ $LB == nginx ]]; then
    unset NGINX # nginx reads this variable (inherited sockets): keep it out of the way
    NGINX_BIN=$(command -v nginx || true)
    [[ -n $NGINX_BIN ]] || for n in /usr/sbin/nginx /usr/local/sbin/nginx /usr/local/nginx/sbin/nginx; do
        [[ -x $n ]] && NGINX_BIN=$n && break
    done
    [[ -n $NGINX_BIN ]] || fail "nginx is required"
else
    HAPROXY_BIN=$(command -v haproxy || true)
    [[ -n $HAPROXY_BIN ]] || for n in /usr/sbin/haproxy /usr/local/sbin/haproxy; do
        [[ -x $n ]] && HAPROXY_BIN=$n && break
    done
    [[ -n $HAPROXY_BIN ]] || fail "haproxy is required"
fi
for tool in python3 wrk curl ss pgrep pkill awk timeout; do
    command -v "$tool" >/dev/null || fail "$tool is required"
done
none_listen "$LB_PORT" "${SET_A[@]}" "${SET_B[@]}" ||
    fail "a test port is already in use (need $LB_PORT ${SET_A[*]} ${SET_B[*]} free)"

# --- set up the test directory ---------------------------------------------------

TMP=$(mktemp -d /tmp/rolld-e2e.XXXXXX)
chmod 755 "$TMP" # nginx workers run as nobody when started by root
LOG=$TMP/rolld.log
cp "$REPO/example/app.py" "$TMP/"
if [[ $LB == nginx ]]; then
    mkdir "$TMP/nginx"
    cp "$REPO"/example/nginx/{nginx.conf,upstream.conf.templ,reload.sh,stop.sh} "$TMP/nginx/"
    sed -i "s/listen 127\.0\.0\.1:8080;/listen 127.0.0.1:$LB_PORT;/" "$TMP/nginx/nginx.conf"
    grep -qF "listen 127.0.0.1:$LB_PORT;" "$TMP/nginx/nginx.conf" ||
        fail "could not set the nginx port in $TMP/nginx/nginx.conf"
    export NGINX_BINARY=$NGINX_BIN # used by nginx/reload.sh and stop.sh
    TEMPLATE=$TMP/nginx/upstream.conf.templ
    AFTER_START="    - replace_file: [numprocs, 'nginx/upstream.conf.templ', 'nginx/upstream.conf']
    - run_proc: './nginx/reload.sh'"
else
    mkdir "$TMP/haproxy"
    cp "$REPO"/example/haproxy/{haproxy.cfg.templ,reload.sh,stop.sh} "$TMP/haproxy/"
    sed -i "s/^\( *bind 127\.0\.0\.1\):8081\$/\1:$LB_PORT/" "$TMP/haproxy/haproxy.cfg.templ"
    grep -qE "^ *bind 127\.0\.0\.1:$LB_PORT\$" "$TMP/haproxy/haproxy.cfg.templ" ||
        fail "could not set the haproxy port in $TMP/haproxy/haproxy.cfg.templ"
    export HAPROXY_BINARY=$HAPROXY_BIN # used by haproxy/reload.sh
    TEMPLATE=$TMP/haproxy/haproxy.cfg.templ
    AFTER_START="    - replace_file: [numprocs, 'haproxy/haproxy.cfg.templ', 'haproxy/haproxy.cfg.new']
    - run_proc: './haproxy/reload.sh'"
fi

join() {
    local IFS=$1
    shift
    echo "$*"
}
cat >"$TMP/rolld.yml" <<EOF
# rolld end-to-end test (generated by tests/e2e.sh, LB=$LB)
app-servers:
  cmd: 'python3 $TMP/app.py {numproc}'
  directory: '.'
  stderr: 'logs/app-{numproc}.err'
  stdout: 'logs/app-{numproc}.log'
  workset:
    - numprocs: [$(join , "${SET_A[@]}" | sed 's/,/, /g')]
    - numprocs: [$(join , "${SET_B[@]}" | sed 's/,/, /g')]
  smoke_test:
    - check_all_http_ports: numprocs
  after_start:
$AFTER_START
  drain_quiet: 1
  drain_timeout: 60
  stop_timeout: 5
EOF

say "rolld: $ROLLD"
say "load balancer: $LB on 127.0.0.1:$LB_PORT"
say "work dir: $TMP"

# --- start ---------------------------------------------------------------------

"$ROLLD" "$TMP/rolld.yml" >"$TMP/rolld.out" 2>"$LOG" &
ROLLD_PID=$!
EXPECT_ROLLD=1
wait_for "initial start (' live on $(join , "${SET_A[@]}")' in rolld's log)" 30 \
    log_has " live on $(join , "${SET_A[@]}")"
wait_for "$LB to answer on :$LB_PORT" 15 lb_ok
no_rollback
expect_live A
say "initial workset live: ${SET_A[*]}"

wrk -t2 -c16 -d${WRK_MAX_SECS}s -H "Connection: close" --latency \
    "http://127.0.0.1:$LB_PORT/" >"$TMP/wrk.out" 2>&1 &
WRK_PID=$!
sleep 1
alive "$WRK_PID" || fail "wrk did not start: $(cat "$TMP/wrk.out")"

# A long request in flight across the first switch.
curl -s -o "$TMP/slow.body" -w '%{http_code}' --max-time 60 \
    "http://127.0.0.1:$LB_PORT/slow?s=$SLOW_SECS" >"$TMP/slow.code" 2>"$TMP/slow.err" &
CURL_PID=$!
slow_connected() {
    local s
    s=$(ss -Htnp state established "( dport = :$LB_PORT )")
    [[ $s == *"pid=$CURL_PID,"* ]]
}
wait_for "the slow request to connect to $LB" 5 slow_connected
sleep 0.3 # let the LB pass it on to a backend

# --- rollouts --------------------------------------------------------------------

longest_ms=0 # longest rollout after the first (the first waits for the slow request)

# rollout I: one SIGHUP, one rollout, then the expected workset is live.
rollout() {
    local i=$1 before t0 ms after live rc code body
    before=$(count ' rollout ok: ')
    t0=$(now_ms)
    kill -HUP "$ROLLD_PID"
    wait_for "rollout $i (' rollout ok: ' in rolld's log)" 30 rollouts_at_least $((before + 1))
    ms=$(($(now_ms) - t0))
    ((i > 1 && ms > longest_ms)) && longest_ms=$ms
    after=$(count ' rollout ok: ')
    [[ $after -eq $((before + 1)) ]] || fail "one SIGHUP gave $((after - before)) rollouts"
    if ((i % 2)); then live=B; else live=A; fi
    expect_live $live
    alive "$WRK_PID" || fail "wrk stopped early"
    say "rollout $i ok in ${ms} ms, workset $live live"

    if ((i == 1)); then
        wait_for "the slow request to finish" 15 gone "$CURL_PID"
        rc=0
        wait "$CURL_PID" || rc=$?
        CURL_PID=
        code=$(cat "$TMP/slow.code")
        body=$(cat "$TMP/slow.body" 2>/dev/null || true)
        # It started while workset A was live: an A port must have answered.
        [[ $rc -eq 0 && $code == 200 && $body == "slow done port "* && " ${SET_A[*]} " == *" ${body#slow done port } "* ]] ||
            fail "slow request across the switch: curl exit $rc, HTTP $code, body '$body' $(cat "$TMP/slow.err")"
        say "request in flight across the switch: HTTP $code, '$body'"
    fi
}

for ((i = 1; i <= ROLLOUTS; i++)); do
    rollout "$i"
done

# --- a config the LB rejects: rollback ------------------------------------------------

# A directive the LB does not know, in the backend/upstream section of the
# template. It still renders, so rolld's replace_file succeeds, and the LB's
# own check in reload.sh (nginx -t, haproxy -c) fails.
if [[ $LB == nginx ]]; then
    BAD='    e2e_no_such_directive on;'
    ANCHOR='^upstream app_servers {$'
else
    BAD='    e2e-no-such-keyword on'
    ANCHOR='^ *balance roundrobin$'
fi
cp "$TEMPLATE" "$TMP/template.good"
sed -i "/$ANCHOR/a\\
$BAD" "$TEMPLATE"
grep -qxF -- "$BAD" "$TEMPLATE" || fail "could not break the template $TEMPLATE"

ok_before=$(count ' rollout ok: ')
if ((ok_before % 2)); then live=B; else live=A; fi
master_before=$(lb_master)
workers_before=" $(lb_workers | tr '\n' ' ') "
[[ $LB == haproxy ]] && cp "$TMP/haproxy/haproxy.cfg" "$TMP/haproxy.cfg.live"
ROLLBACKS_OK=1
t0=$(now_ms)
# As a deploy script would: `rolld reload --wait` must report the rollback.
rc=0
timeout 90 "$ROLLD" reload "$TMP/rolld.yml" --wait --timeout 60 >"$TMP/reload-wait.out" 2>&1 || rc=$?
[[ $rc -eq 1 ]] ||
    fail "rolld reload --wait with a broken LB config exited $rc (expected 1, rolled back): $(cat "$TMP/reload-wait.out")"
wait_for "the rollback of a rollout with a broken LB config (' rolled back: ' in rolld's log)" 30 \
    rollbacks_at_least 1
ms=$(($(now_ms) - t0))
no_rollback
[[ $(count ' rollout ok: ') -eq $ok_before ]] || fail "a rollout with a broken LB config was not rolled back"
grep -F ' rolled back: ' "$LOG" | grep -qF 'after_start failed: run_proc: `./'"$LB"'/reload.sh` failed' ||
    fail "the rollback does not give reload.sh's failure: $(grep -F ' rolled back: ' "$LOG")"
if [[ $LB == nginx ]]; then
    log_has 'reload.sh: nginx config test failed, not reloading' || fail "no 'nginx config test failed' in rolld's log"
else
    log_has 'reload.sh: haproxy config check failed' || fail "no 'haproxy config check failed' in rolld's log"
fi
# The old workset alone listens and gets every request.
expect_live $live
# The LB was never reloaded: same master, and no worker it did not have.
[[ $(lb_master) == "$master_before" ]] || fail "the $LB master changed: $master_before -> $(lb_master)"
for w in $(lb_workers); do
    [[ $workers_before == *" $w "* ]] || fail "$LB has a new worker $w: it was reloaded with the broken config"
done
if [[ $LB == haproxy ]]; then
    cmp -s "$TMP/haproxy.cfg.live" "$TMP/haproxy/haproxy.cfg" ||
        fail "haproxy.cfg changed although its check failed"
    grep -qxF -- "$BAD" "$TMP/haproxy/haproxy.cfg.rejected" ||
        fail "the rejected config was not kept as haproxy.cfg.rejected"
fi
alive "$WRK_PID" || fail "wrk stopped early"
say "broken LB config: rolled back in ${ms} ms, $LB not reloaded, workset $live still live"
say "rolld reload --wait (exit 1): $(tail -n 1 "$TMP/reload-wait.out")"

# The template fixed, the next SIGHUP rolls over.
cp "$TMP/template.good" "$TEMPLATE"
rollout $((ROLLOUTS + 1))

# --- SIGHUP storm ------------------------------------------------------------------

base=$(count ' rollout ok: ')
for ((k = 0; k < STORM_HUPS; k++)); do
    kill -HUP "$ROLLD_PID"
    sleep 0.02
done
wait_for "first rollout of the SIGHUP storm" 30 rollouts_at_least $((base + 1))
# Then the count must settle: stable for 3 s, or longer than the longest
# rollout seen so far, so that a queued rollout still running is not missed.
stable_ms=$((longest_ms + 1000))
((stable_ms < 3000)) && stable_ms=3000
last=$(count ' rollout ok: ')
since=$(now_ms)
deadline=$((since + 60000))
while (($(now_ms) - since < stable_ms)); do
    sleep 0.1
    no_rollback
    alive "$ROLLD_PID" || fail "rolld exited during the SIGHUP storm"
    c=$(count ' rollout ok: ')
    ((c <= base + 2)) || fail "SIGHUP storm gave $((c - base)) rollouts, expected 1 or 2"
    if ((c != last)); then
        last=$c
        since=$(now_ms)
    fi
    (($(now_ms) < deadline)) || fail "rollouts did not settle after the SIGHUP storm"
done
storm=$((last - base))
((storm >= 1 && storm <= 2)) || fail "SIGHUP storm gave $storm rollouts, expected 1 or 2"
total=$last
if ((total % 2)); then live=B; else live=A; fi
expect_live $live
say "SIGHUP storm ($STORM_HUPS signals): $storm rollouts, workset $live live"

# --- load results --------------------------------------------------------------------

kill -INT "$WRK_PID" # wrk stops and prints its summary
wait_for "wrk to print its summary and exit" 15 gone "$WRK_PID"
rc=0
wait "$WRK_PID" || rc=$?
WRK_PID=
[[ $rc -eq 0 ]] || fail "wrk exited with status $rc: $(cat "$TMP/wrk.out")"
summary=$(grep -E '^ *[0-9]+ requests in ' "$TMP/wrk.out" || true)
[[ -n $summary ]] || fail "no summary in wrk's output: $(cat "$TMP/wrk.out")"
requests=$(awk '{print $1}' <<<"$summary")
say "wrk:$summary"
if grep -qE 'Non-2xx or 3xx responses|Socket errors' "$TMP/wrk.out"; then
    cat "$TMP/wrk.out" >&2
    fail "wrk saw errors: $(grep -E 'Non-2xx or 3xx responses|Socket errors' "$TMP/wrk.out" | tr -s ' ' | tr '\n' ';')"
fi
((requests > 1000)) || fail "only $requests requests during the test (expected > 1000)"

# --- shutdown -------------------------------------------------------------------------

EXPECT_ROLLD=0
kill -TERM "$ROLLD_PID"
wait_for "rolld to exit after SIGTERM" 20 gone "$ROLLD_PID"
rc=0
wait "$ROLLD_PID" || rc=$?
ROLLD_PID=
[[ $rc -eq 0 ]] || fail "rolld exited with status $rc after SIGTERM"
log_has ' rolld exiting' || fail "no ' rolld exiting' in rolld's log"
no_rollback
left=$(pgrep -af -- "$TMP/app.py" || true)
[[ -z $left ]] || fail "backends still running after rolld exited: $left"
none_listen "${SET_A[@]}" "${SET_B[@]}" || fail "backend ports still listening after rolld exited"
zombies=$(ps -eo stat=,ppid=,pid=,args= | awk -v p=$$ '$1 ~ /^Z/ && $2 == p')
[[ -z $zombies ]] || fail "zombie children: $zombies"

"$TMP/$LB/stop.sh" || fail "$LB/stop.sh failed"
if [[ $LB == nginx ]]; then
    masters=$(pgrep -f -- "nginx: master process .*$TMP/nginx/" || true)
    [[ -z $masters ]] || fail "nginx still running after stop.sh: $masters"
else
    left=$(lb_procs | tr '\n' ' ')
    [[ -z $left ]] || fail "haproxy still running after stop.sh: $left"
    none_listen "$LB_PORT" || fail "port $LB_PORT still listening after haproxy/stop.sh"
fi

PASSED=1
rollouts=$(count ' rollout ok: ')
rollbacks=$(count ' rolled back: ')
echo "e2e: PASS ($LB: $requests requests, 0 errors, $rollouts rollouts, $rollbacks rollback on purpose)"
