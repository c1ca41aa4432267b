#!/usr/bin/env bash
# End-to-end test of rolld with backends that listen on ::1 only and answer
# only for their own host name, behind strict nginx, under wrk load.
#
#   tests/e2e_ipv6.sh [PATH_TO_ROLLD]
#
# Without an argument it runs `cargo build --release` and tests
# target/release/rolld. Needs IPv6 loopback (::1 on lo: the test fails, not
# skips, without it), python3, nginx, wrk, curl, ss, pgrep and ip.
#
# In a fresh temporary directory:
#
#   - backends are tests/host_app.py on [::1]:13001-13004 and
#     [::1]:13501-13504, nothing on 127.0.0.1; each answers 400 (as Django
#     does for a name not in ALLOWED_HOSTS) unless the Host is app.example;
#   - nginx (strict: proxy_next_upstream off, no upstream keepalive) on
#     127.0.0.1:13080, upstream `server [::1]:PORT`, passing the client's
#     Host on;
#   - rolld smoke-tests each new port with `check_all_http_ports` and
#     `headers: {Host: app.example}` (and `check_all_tcp_ports: numprocs`),
#     with no `host:`, so localhost, both loopbacks;
#   - wrk runs through nginx (Host: app.example, a new connection per
#     request) for the whole test;
#   - 3 rollouts, each with a request in flight on the old set across the
#     switch, held 2.5 s past it (drain_quiet is 1 s): the old set must
#     still run then (the drain counts tcp6 connections), the request must
#     complete with 200 from an old port, the old set must be stopped only
#     after it, and then exactly the new set listens, on ::1 only, and
#     serves every request;
#   - wrk must have seen only 2xx answers and no socket error;
#   - SIGTERM: rolld exits 0; nothing of the test is left running.
#
# Every wait has a deadline. On failure the temporary directory is kept and
# its path printed; set E2E_KEEP=1 to keep it after a success too.

set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)

NGINX_PORT=13080
SET_A=(13001 13002 13003 13004)
SET_B=(13501 13502 13503 13504)
APP_HOST=app.example
ROLLOUTS=3
HOLD_SECS=2.5 # how long a request in flight is held after the switch (drain_quiet is 1 s)
MIN_REQUESTS=300
PASSED=0
CURL_PID=

LIB_NAME=e2e-ipv6
# shellcheck source=tests/lib.sh
source "$REPO/tests/lib.sh"

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM HUP
    lib_cleanup
    if ((PASSED)) && [[ $rc -eq 0 ]]; then
        if [[ ${E2E_KEEP:-0} == 1 ]]; then
            say "kept $TMP"
        else
            rm -rf -- "$TMP"
        fi
    elif [[ -n $TMP && -d $TMP ]]; then
        [[ $rc -eq 0 ]] && rc=1
        echo "$LIB_NAME: FAILED (exit $rc); kept $TMP" >&2
        if [[ -s ${LOG:-} ]]; then
            echo "--- last lines of $LOG:" >&2
            tail -n 30 "$LOG" >&2
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

# --- helpers -------------------------------------------------------------------------

# get URL [HOST]: the body of GET URL with that Host (app.example), if 200.
get() { curl -gsf --max-time 5 -H "Host: ${2:-$APP_HOST}" "$1" 2>/dev/null; }
# status URL HOST: the HTTP status of GET URL with that Host.
status() { curl -gs -o /dev/null -w '%{http_code}' --max-time 5 -H "Host: $2" "$1" 2>/dev/null || true; }

nginx_answers() { [[ $(get "http://127.0.0.1:$NGINX_PORT/") == "port "* ]]; }

# listens_v6_only PORT: [::1]:PORT listens, and no socket of another
# address (127.0.0.1, 0.0.0.0, ::) does on that port.
listens_v6_only() {
    local l
    l=$(ss -Htln "( sport = :$1 )" | awk '{print $4}')
    [[ $l == "[::1]:$1" ]]
}

no_rollback() {
    [[ $(count ' rolled back: ') -eq 0 ]] || fail "rolld rolled back: $(grep -F ' rolled back: ' "$LOG")"
}
rollouts_at_least() {
    no_rollback
    [[ $(count ' rollout ok: ') -ge $1 ]]
}

# phase_ms LINE NAME: the duration of phase NAME in a rollout summary, in ms.
phase_ms() {
    local v
    v=$(grep -oE "[(, ]$2 [0-9.]+m?s" <<<"$1" | head -n 1 | awk '{print $2}' || true)
    [[ -n $v ]] || fail "no $2 phase in: $1"
    if [[ $v == *ms ]]; then echo "${v%ms}"; else secs_to_ms "${v%s}"; fi
}

# expect_live A|B: that workset listens on ::1 only and serves, through
# nginx too; the other one no longer listens at all.
expect_live() {
    local -n on=SET_$1 off=SET_$([[ $1 == A ]] && echo B || echo A)
    local p i body upstream want=" ${on[*]} "
    wait_for "the old workset (${off[*]}) to stop listening" 5 none_listen "${off[@]}"
    for p in "${on[@]}"; do
        listens_v6_only "$p" || fail "port $p: expected a listener on [::1] only, got: $(ss -Htln "( sport = :$p )")"
        [[ $(get "http://[::1]:$p/") == "port $p version 1" ]] || fail "[::1]:$p does not answer for $APP_HOST"
    done
    upstream=$(grep -oE 'server \[::1\]:[0-9]+' "$TMP/nginx/upstream.conf" | awk -F: '{print $NF}' | sort -n | tr '\n' ' ')
    [[ $upstream == "$(printf '%s\n' "${on[@]}" | sort -n | tr '\n' ' ')" ]] ||
        fail "upstream.conf names '$upstream', expected '${on[*]}'"
    for i in $(seq 20); do
        body=$(get "http://127.0.0.1:$NGINX_PORT/") || fail "request $i through nginx failed"
        [[ $body == "port "*" version 1" && $want == *" $(awk '{print $2}' <<<"$body") "* ]] ||
            fail "request $i through nginx answered '$body', expected a port of:$want"
    done
}

# slow_start NAME: GET /slow?until=NAME through nginx in the background
# (the backend answers once $TMP/NAME exists), once it has reached nginx
# (and, half a second later, a backend).
slow_start() {
    SLOW_START_MS=$(now_ms)
    curl -s -o "$TMP/slow.body" -w '%{http_code} %{time_total}' --max-time 90 -H "Host: $APP_HOST" \
        "http://127.0.0.1:$NGINX_PORT/slow?until=$1" >"$TMP/slow.out" 2>"$TMP/slow.err" &
    CURL_PID=$!
    BG_PIDS+=("$CURL_PID")
    slow_reached() { [[ $(ss -Htnp state established "( dport = :$NGINX_PORT )") == *"pid=$CURL_PID,"* ]]; }
    wait_for "the slow request to connect to nginx" 5 slow_reached
    sleep 0.5 # nginx passes it on at once
}

# slow_end: waits for the slow request; SLOW_CODE, SLOW_BODY, SLOW_END_MS
# (from curl's own total time).
slow_end() {
    wait_for "the slow request to finish" 30 gone "$CURL_PID"
    local rc=0 secs
    wait "$CURL_PID" 2>/dev/null || rc=$?
    CURL_PID=
    read -r SLOW_CODE secs <"$TMP/slow.out" || true
    SLOW_BODY=$(cat "$TMP/slow.body" 2>/dev/null || true)
    [[ $rc -eq 0 ]] || fail "the slow request failed: curl exit $rc, HTTP ${SLOW_CODE:-?} $(cat "$TMP/slow.err")"
    SLOW_END_MS=$((SLOW_START_MS + $(secs_to_ms "$secs")))
}

switched_past() {
    no_rollback
    [[ $(count ' after_start done in ') -gt $1 ]]
}

# rollout I: a request in flight on the live set, SIGHUP; once nginx has
# switched, the request is held for HOLD_SECS (longer than drain_quiet),
# during which the old set must keep running; then it is answered, from
# the old set, which is stopped only after it.
rollout() {
    local i=$1 from to before switches line stop_ms drain_ms stop_began switched
    if ((i % 2)); then from=A to=B; else from=B to=A; fi
    local -n old=SET_$from
    before=$(count ' rollout ok: ')
    switches=$(count ' after_start done in ')
    slow_start "release-$i"
    kill -HUP "$ROLLD_PID"
    wait_for "the switch of rollout $i (' after_start done in ' in rolld's log)" 40 switched_past "$switches"
    sleep "$HOLD_SECS"
    alive "$CURL_PID" || fail "rollout $i: the request in flight ended before it was released: $(cat "$TMP/slow.out")"
    all_listen "${old[@]}" ||
        fail "rollout $i: the old set (${old[*]}) was stopped ${HOLD_SECS}s after the switch with a request in flight on it"
    [[ $(count ' rollout ok: ') -eq $before ]] || fail "rollout $i ended with a request in flight on the old set"
    touch "$TMP/release-$i"
    slow_end
    wait_for "rollout $i (' rollout ok: ' in rolld's log)" 30 rollouts_at_least $((before + 1))
    [[ $(count ' rollout ok: ') -eq $((before + 1)) ]] || fail "one SIGHUP gave more than one rollout"
    [[ $SLOW_CODE == 200 && $SLOW_BODY == "slow done port "* && " ${old[*]} " == *" ${SLOW_BODY#slow done port } "* ]] ||
        fail "the request in flight across switch $i: HTTP $SLOW_CODE '$SLOW_BODY', expected 200 from a port of ${old[*]}"
    line=$(log_lines ' rollout ok: ' | tail -n 1)
    stop_ms=$(phase_ms "$line" stop)
    drain_ms=$(phase_ms "$line" drain)
    stop_began=$(($(log_time_ms "$line") - stop_ms))
    switched=$((stop_began - drain_ms))
    ((SLOW_END_MS > switched)) ||
        fail "rollout $i: the slow request ended $((switched - SLOW_END_MS)) ms before the switch, not across it: $line"
    ((stop_began - SLOW_END_MS >= -150)) ||
        fail "rollout $i: the old set was stopped $((SLOW_END_MS - stop_began)) ms before its request in flight was answered: $line"
    [[ $(count 'drain_timeout reached') -eq 0 ]] || fail "drain_timeout reached"
    alive "$WRK_PID" || fail "wrk stopped early: $(cat "$WRK_OUT")"
    expect_live "$to"
    say "rollout $i ok: workset $from -> $to; the request in flight was answered $((SLOW_END_MS - switched)) ms after the switch by port ${SLOW_BODY#slow done port }, the old set stopped $((stop_began - SLOW_END_MS)) ms after it"
}

# --- preconditions -------------------------------------------------------------------------

if [[ $# -ge 1 ]]; then
    ROLLD=$1
else
    ROLLD=$REPO/target/release/rolld
    (cd "$REPO" && cargo build --release)
fi
[[ -x $ROLLD ]] || fail "rolld binary not found or not executable: $ROLLD"
ROLLD=$(realpath -- "$ROLLD")
export PATH="$PATH:/usr/sbin:/sbin"
lib_find_nginx || fail "nginx is required"
for tool in python3 wrk curl ss pgrep ip awk; do
    command -v "$tool" >/dev/null || fail "$tool is required"
done
ip -6 addr show dev lo | grep -qF 'inet6 ::1/128' ||
    fail "IPv6 loopback is missing (no ::1 in 'ip -6 addr show dev lo'); this test needs it"
none_listen "$NGINX_PORT" "${SET_A[@]}" "${SET_B[@]}" ||
    fail "a test port is already in use (need $NGINX_PORT ${SET_A[*]} ${SET_B[*]} free)"
PYTHON=python3
[[ -x /usr/bin/python3 ]] && PYTHON=/usr/bin/python3

# --- set up ------------------------------------------------------------------------------------

TMP=$(mktemp -d /tmp/rolld-e2e-ipv6.XXXXXX)
chmod 755 "$TMP" # nginx workers run as nobody when started by root
LOG=$TMP/rolld.log
cp "$REPO/tests/host_app.py" "$TMP/"
echo "$APP_HOST" >"$TMP/want_host"
nginx_setup "$REPO/example/nginx" "$TMP/nginx" "$NGINX_PORT"
cat >"$TMP/nginx/upstream.conf.templ" <<'EOF'
# Generated by rolld (group {{ group }}).
upstream app_servers {
{%- for port in ports %}
    server [::1]:{{ port }};
{%- endfor %}
}
EOF
cat >"$TMP/rolld.yml" <<EOF
# generated by tests/e2e_ipv6.sh
app-servers:
  cmd: '$PYTHON $TMP/host_app.py {numproc}'
  stderr: 'logs/app-{numproc}.err'
  workset:
    - numprocs: [$(echo "${SET_A[*]}" | sed 's/ /, /g')]
    - numprocs: [$(echo "${SET_B[*]}" | sed 's/ /, /g')]
  smoke_test:
    - check_all_http_ports:
        ports: numprocs
        headers:
          Host: $APP_HOST
    - check_all_tcp_ports: numprocs
  after_start:
    - replace_file: [numprocs, 'nginx/upstream.conf.templ', 'nginx/upstream.conf']
    - run_proc: './nginx/reload.sh'
  drain_quiet: 1
  drain_timeout: 60
  stop_timeout: 5
EOF
"$ROLLD" check "$TMP/rolld.yml" >"$TMP/check.out" 2>&1 || fail "rolld check: $(cat "$TMP/check.out")"
say "rolld: $ROLLD; work dir: $TMP"

# --- start -----------------------------------------------------------------------------------

rolld_spawn
wait_for "the first start (' live on $(echo "${SET_A[*]}" | tr ' ' ,)')" 30 \
    log_has " live on $(echo "${SET_A[*]}" | tr ' ' ,)"
wait_for "nginx to answer on :$NGINX_PORT" 15 nginx_answers
no_rollback
expect_live A
# The app checks the Host header: without the right one, it refuses.
[[ $(status "http://127.0.0.1:$NGINX_PORT/" localhost) == 400 ]] || fail "the app accepted Host: localhost through nginx"
[[ $(status "http://[::1]:${SET_A[0]}/" "localhost:${SET_A[0]}") == 400 ]] || fail "the app accepted Host: localhost"
say "workset A live on [::1]: ${SET_A[*]}; Host: localhost gets 400"

WRK_OUT=$TMP/wrk.out
wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d600s --timeout 10s -H "Connection: close" -H "Host: $APP_HOST" \
    "http://127.0.0.1:$NGINX_PORT/" >"$WRK_OUT" 2>&1 &
WRK_PID=$!
sleep 0.5
alive "$WRK_PID" || fail "wrk did not start: $(cat "$WRK_OUT")"

# --- rollouts --------------------------------------------------------------------------------

for ((i = 1; i <= ROLLOUTS; i++)); do
    rollout "$i"
done

wrk_stop
say "wrk: $WRK_REQUESTS requests, $WRK_NON2XX non-2xx, $WRK_SOCKERR socket errors"
[[ -z $WRK_ERRORS ]] || fail "wrk saw errors: $WRK_ERRORS ($WRK_REQUESTS requests)"
((WRK_REQUESTS >= MIN_REQUESTS)) || fail "wrk made only $WRK_REQUESTS requests (expected at least $MIN_REQUESTS)"

# --- shutdown --------------------------------------------------------------------------------

rolld_stop_ok 20
no_rollback
"$TMP/nginx/stop.sh" >/dev/null || fail "nginx/stop.sh failed"
assert_nothing_left 5 "$NGINX_PORT" "${SET_A[@]}" "${SET_B[@]}"

PASSED=1
echo "$LIB_NAME: PASS ($WRK_REQUESTS requests through nginx, $WRK_NON2XX non-2xx, $WRK_SOCKERR socket errors, $(count ' rollout ok: ') rollouts, each with a request in flight across the switch)"
