#!/usr/bin/env bash
# Many hosts: example/deploy.yml, the Ansible playbook, run for real across
# three hosts, each with its own rolld, under load.
#
#   tests/hosts.sh [PATH_TO_ROLLD]
#
# Without an argument it runs `cargo build --release` and tests
# target/release/rolld. Needs python3 (with venv and pip, unless
# ansible-playbook is on PATH), nginx, wrk, curl, ss, pgrep, GNU date, awk,
# tar and gzip.
# When ansible-playbook is missing, ansible-core $ANSIBLE_CORE_VERSION is
# installed with pip into a virtualenv in the test's directory.
#
# The three hosts are host1, host2 and host3 of an inventory the test
# writes, each with `ansible_connection: local` and a directory of its own,
# $TMP/hostN, holding what a real host would:
#
#   rolld.yml        its rolld's config: group app, two backends per set
#   run/             its rolld's run directory (--run-dir)
#   nginx/           its nginx (from example/nginx/), on 127.0.0.1:12N80
#   app/releases/    the releases shipped to it; app/current links to the
#                    one that serves (the layout of roles/rolld_deploy)
#   settings/        host-local settings, outside any release
#
# with backends on 12N01-12N02 and 12N11-12N12 (N = 1, 2, 3). A release,
# shipped by the play as a .tar.gz, is example/app.py plus server.py,
# which puts the release's VERSION in front of every answer ("v2 port
# 12101"), and, in a release that has one, a file `requires` naming the
# host settings the release needs: a backend whose host lacks one of them
# answers 500 to everything, so that rolld's smoke test fails on that
# host. Only host1 and host3 have the setting `region`.
#
# v1 is installed on every host and each rolld started (as systemd would
# on real hosts); then every host serves through its nginx under wrk load
# for each whole play, and every failed request (non-2xx, socket error)
# fails the test:
#
#   1. the play ships v2: exit 0; every host serves v2, rolled in inventory
#      order (host N+1 asked for its rollout only after host N's `rolld
#      reload --wait` had returned 0, from rolld's logs and Ansible's log);
#   2. the play ships v3, which requires `region`: host1 rolls onto v3,
#      host2 rolls back (its smoke test sees 500) and still serves v2 with
#      `current` on v2, host3 is never touched (no reload, no v3 shipped,
#      still v2); the play's output shows the rollback, and
#      ansible-playbook exits 2 (a host failed);
#   3. the play ships v4, v3 fixed (no `requires`): every host serves v4.
#
# Then each rolld stops on SIGTERM with exit 0 and each nginx with its
# stop.sh, and nothing of the test is left running. On failure the
# directory is kept and its path printed; HOSTS_KEEP=1 keeps it after a
# success too. WRK_DELAY_MS (default 50) paces each of wrk's connections.

set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
LIB_NAME=hosts
# shellcheck source=tests/lib.sh
source "$REPO/tests/lib.sh"

ANSIBLE_CORE_VERSION=2.19.14 # the newest ansible-core whose controller runs on Python 3.11
HOSTS=(host1 host2 host3)
PLAY_TIMEOUT=240     # seconds one ansible-playbook run may take
WRK_DELAY_MS=${WRK_DELAY_MS:-50}
MIN_REQUESTS=200     # per host and play: proof that the load was real
PY=python3
[[ -x /usr/bin/python3 ]] && PY=/usr/bin/python3 # starts faster than a version-manager shim

declare -A ROLLD_PIDS=() WRK_PIDS=()
PASSED=0
T_START=$(now_ms)

# host_num HOST: 1 for host1.
host_num() { echo "${1#host}"; }
host_dir() { echo "$TMP/$1"; }
nginx_port() { echo $((12000 + 100 * $(host_num "$1") + 80)); }
# host_ports HOST: every port of the host (nginx, both worksets).
host_ports() {
    local b=$((12000 + 100 * $(host_num "$1")))
    echo $((b + 80)) $((b + 1)) $((b + 2)) $((b + 11)) $((b + 12))
}
host_log() { echo "$TMP/$1/rolld.log"; }

# wait_bg PID: waits for a background job of the test and returns its
# status. Long commands run this way rather than in the foreground, so that
# a signal to the test runs its cleanup at once (bash runs a trap only once
# the foreground command has ended, but interrupts `wait`); until it ends,
# the cleanup stops it (BG_PIDS).
wait_bg() {
    local pid=$1 rc=0 p
    BG_PIDS+=("$pid")
    wait "$pid" || rc=$?
    local left=()
    for p in "${BG_PIDS[@]}"; do [[ $p == "$pid" ]] || left+=("$p"); done
    BG_PIDS=("${left[@]}")
    return "$rc"
}

# --- cleanup ---------------------------------------------------------------------

cleanup() {
    local rc=$? h pid
    set +e
    trap - EXIT INT TERM HUP
    # A play under way first, so that it starts nothing more; then the
    # load, the rollds (each stops its backends), the nginxes.
    for pid in "${BG_PIDS[@]}"; do stop_pid "$pid" 5; done
    for h in "${!WRK_PIDS[@]}"; do stop_pid "${WRK_PIDS[$h]}" 2 INT; done
    for h in "${!ROLLD_PIDS[@]}"; do kill -TERM "${ROLLD_PIDS[$h]}" 2>/dev/null; done
    for h in "${!ROLLD_PIDS[@]}"; do stop_pid "${ROLLD_PIDS[$h]}" 15; done
    if [[ -n ${TMP:-} && -d $TMP ]]; then
        for h in "${HOSTS[@]}"; do nginx_stop "$TMP/$h/nginx"; done
    fi
    # Whatever is left: backends, Ansible's workers, the rolld clients
    # they ran (all name $TMP/ on their command line).
    lib_cleanup
    if ((PASSED)) && [[ $rc -eq 0 ]]; then
        if [[ ${HOSTS_KEEP:-0} == 1 ]]; then
            say "kept $TMP"
        else
            rm -rf -- "$TMP"
        fi
    elif [[ -n ${TMP:-} && -d $TMP ]]; then
        [[ $rc -eq 0 ]] && rc=1
        echo "hosts: FAILED (exit $rc); kept $TMP" >&2
        for h in "${HOSTS[@]}"; do
            if [[ -s $TMP/$h/rolld.log ]]; then
                echo "--- last lines of $TMP/$h/rolld.log:" >&2
                tail -n 15 "$TMP/$h/rolld.log" >&2
            fi
        done
        if [[ -n ${PLAY_OUT:-} && -s $PLAY_OUT ]]; then
            echo "--- last lines of $PLAY_OUT:" >&2
            tail -n 40 "$PLAY_OUT" >&2
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# --- preconditions ------------------------------------------------------------------

if [[ $# -ge 1 ]]; then
    ROLLD=$1
else
    ROLLD=$REPO/target/release/rolld
    (cd "$REPO" && cargo build --release)
fi
[[ -x $ROLLD ]] || fail "rolld binary not found or not executable: $ROLLD"
ROLLD=$(realpath -- "$ROLLD")
lib_find_nginx || fail "nginx is required"
for tool in python3 wrk curl ss pgrep awk timeout tar gzip; do
    command -v "$tool" >/dev/null || fail "$tool is required"
done
ALL_PORTS=()
for h in "${HOSTS[@]}"; do
    read -ra p <<<"$(host_ports "$h")"
    ALL_PORTS+=("${p[@]}")
done
none_listen "${ALL_PORTS[@]}" || fail "a test port is already in use (need ${ALL_PORTS[*]} free)"

TMP=$(mktemp -d /tmp/rolld-hosts.XXXXXX)
chmod 755 "$TMP" # nginx workers run as nobody when started by root
say "rolld: $ROLLD"
say "work dir: $TMP"

# --- Ansible ----------------------------------------------------------------------------

if ANSIBLE_PLAYBOOK=$(command -v ansible-playbook); then
    PIP_NOTE="ansible-playbook from PATH"
else
    say "ansible-playbook not found: installing ansible-core $ANSIBLE_CORE_VERSION into $TMP/venv"
    t0=$(now_ms)
    python3 -m venv "$TMP/venv" || fail "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    timeout 600 "$TMP/venv/bin/pip" install --quiet --disable-pip-version-check \
        "ansible-core==$ANSIBLE_CORE_VERSION" >"$TMP/pip.out" 2>&1 &
    wait_bg $! ||
        fail "pip install ansible-core==$ANSIBLE_CORE_VERSION failed: $(tail -n 5 "$TMP/pip.out")"
    ANSIBLE_PLAYBOOK=$TMP/venv/bin/ansible-playbook
    PIP_NOTE="of which ansible-core's pip install $(ms_to_secs $(($(now_ms) - t0)))s"
    say "ansible-core installed in $(ms_to_secs $(($(now_ms) - t0)))s"
fi
say "$("$ANSIBLE_PLAYBOOK" --version | head -n 1)"

# Nothing from the machine's or the user's Ansible setup; Ansible's own
# files, and its log (UTC, ms), in $TMP.
mkdir -p "$TMP/ansible"
cat >"$TMP/ansible/ansible.cfg" <<EOF
[defaults]
home = $TMP/ansible/home
local_tmp = $TMP/ansible/tmp
remote_tmp = $TMP/ansible/remote-tmp
log_path = $TMP/ansible/ansible.log
retry_files_enabled = False
nocolor = True

[connection]
pipelining = True
EOF
export ANSIBLE_CONFIG=$TMP/ansible/ansible.cfg
ANSIBLE_LOG=$TMP/ansible/ansible.log

{
    echo "# Inventory of tests/hosts.sh for example/deploy.yml."
    echo "all:"
    echo "  children:"
    echo "    app_servers:"
    echo "      vars:"
    echo "        rolld_bin: '$ROLLD'"
    echo "      hosts:"
    for h in "${HOSTS[@]}"; do
        d=$(host_dir "$h")
        echo "        $h:"
        echo "          ansible_connection: local"
        echo "          ansible_python_interpreter: '{{ ansible_playbook_python }}'"
        echo "          rolld_app_dir: '$d/app'"
        echo "          rolld_config: '$d/rolld.yml'"
        echo "          rolld_run_dir: '$d/run'"
    done
} >"$TMP/inventory.yml"

# --- releases -------------------------------------------------------------------------------

mkdir -p "$TMP/releases"
cat >"$TMP/releases/server.py" <<'EOF'
"""Backend of a release in tests/hosts.sh: example/app.py, whose every
answer starts with the release's VERSION ("v2 port 12101").

The release may have a file `requires`, one host setting a line: each must
be a file in the directory $APP_SETTINGS. A backend whose host lacks one
answers 500 to every request (and says why on stderr), so that rolld's
smoke test fails on that host.
"""
import os
import sys

HERE = os.path.dirname(os.path.realpath(__file__))
sys.path.insert(0, HERE)
import app  # noqa: E402  (example/app.py, shipped in the release)

with open(os.path.join(HERE, "VERSION")) as f:
    VERSION = f.read().strip()
SETTINGS = os.environ.get("APP_SETTINGS", "")
MISSING = []
if os.path.exists(os.path.join(HERE, "requires")):
    with open(os.path.join(HERE, "requires")) as f:
        for name in f.read().split():
            if not os.path.isfile(os.path.join(SETTINGS, name)):
                MISSING.append(name)
if MISSING:
    app.log("%s needs the host settings %s, missing in %s" % (VERSION, ", ".join(MISSING), SETTINGS))


class Handler(app.Handler):
    def _reply(self, code, body):
        if MISSING:
            code, body = 500, "missing host settings: %s\n" % ", ".join(MISSING)
        super()._reply(code, "%s %s" % (VERSION, body))


app.Handler = Handler
if __name__ == "__main__":
    sys.exit(app.main())
EOF
for v in v1 v2 v3 v4; do
    mkdir "$TMP/releases/$v"
    cp "$REPO/example/app.py" "$TMP/releases/server.py" "$TMP/releases/$v/"
    echo "$v" >"$TMP/releases/$v/VERSION"
done
rm "$TMP/releases/server.py"
echo region >"$TMP/releases/v3/requires"
# What the play ships: one archive a release, as a build would make it.
for v in v1 v2 v3 v4; do
    tar -C "$TMP/releases/$v" -czf "$TMP/releases/$v.tar.gz" .
done

# --- hosts ------------------------------------------------------------------------------------

for h in "${HOSTS[@]}"; do
    d=$(host_dir "$h")
    read -r nport a1 a2 b1 b2 <<<"$(host_ports "$h")"
    mkdir -p "$d/app/releases" "$d/settings"
    [[ $h == host2 ]] || echo "eu-$(host_num "$h")" >"$d/settings/region"
    nginx_setup "$REPO/example/nginx" "$d/nginx" "$nport"
    cat >"$d/rolld.yml" <<EOF
# $h of tests/hosts.sh
app:
  cmd: '$PY $d/app/current/server.py {numproc}'
  directory: '.'
  stderr: 'logs/app-{numproc}.err'
  stdout: 'logs/app-{numproc}.log'
  env:
    APP_SETTINGS: '$d/settings'
  workset:
    - numprocs: [$a1, $a2]
    - numprocs: [$b1, $b2]
  smoke_test:
    - check_all_http_ports: numprocs
  after_start:
    - replace_file: [numprocs, 'nginx/upstream.conf.templ', 'nginx/upstream.conf']
    - run_proc: './nginx/reload.sh'
  start_timeout: 5
  drain_quiet: 1
  drain_timeout: 60
  stop_timeout: 5
EOF
    # v1, installed as the role lays a release out.
    cp -a "$TMP/releases/v1" "$d/app/releases/v1"
    ln -s releases/v1 "$d/app/current"
done

# --- checks -------------------------------------------------------------------------------------

# serves HOST VERSION: 20 requests through the host's nginx, each answered
# 200 by that release.
serves() {
    local h=$1 v=$2 port i body
    port=$(nginx_port "$h")
    for i in $(seq 20); do
        body=$(curl -sf --max-time 5 "http://127.0.0.1:$port/") || fail "$h: request $i through nginx :$port failed"
        [[ $body == "$v port "* ]] || fail "$h: nginx :$port answered '$body', expected release $v"
    done
}
# answers_version HOST VERSION: one request answers from that release.
answers_version() {
    local body
    body=$(curl -sf --max-time 2 "http://127.0.0.1:$(nginx_port "$1")/" 2>/dev/null) || return 1
    [[ $body == "$2 port "* ]]
}
# current_is HOST VERSION: the host's link `current` names that release.
current_is() {
    local l
    l=$(readlink "$TMP/$1/app/current") || fail "$1: no link $TMP/$1/app/current"
    [[ $l == "releases/$2" ]] || fail "$1: current links to '$l', expected releases/$2"
}
rollds_alive() {
    local h
    for h in "${HOSTS[@]}"; do
        alive "${ROLLD_PIDS[$h]}" || fail "the rolld of $h (pid ${ROLLD_PIDS[$h]}) died"
    done
}
# new_log HOST: the lines of the host's rolld log since the play began.
new_log() { tail -n +$((LOG_MARK[$1] + 1)) "$(host_log "$1")"; }
# new_count HOST FRAGMENT: how many of those lines contain FRAGMENT.
new_count() { new_log "$1" | grep -cF -- "$2" || true; }
# new_time HOST FRAGMENT: epoch ms of the first of those lines that
# contains FRAGMENT.
new_time() {
    local l
    l=$(new_log "$1" | grep -F -m 1 -- "$2" || true)
    [[ -n $l ]] || fail "$1: no new line of $(host_log "$1") contains '$2'"
    log_time_ms "$l"
}
# reload_returned_ms HOST: epoch ms at which Ansible logged the result of
# the reload task on HOST in the play that began at line ANSIBLE_MARK of its
# log (a result line: "changed: [host1]", "fatal: [host1]: ...").
reload_returned_ms() {
    local l
    l=$(tail -n +$((ANSIBLE_MARK + 1)) "$ANSIBLE_LOG" | awk -v h="[$1]" '
        /\| TASK \[/ { in_task = index($0, "Reload rolld and wait for the outcome") > 0; next }
        in_task && index($0, h) && $0 ~ /\| (ok|changed|fatal|failed): \[/ { print; exit }')
    [[ -n $l ]] || fail "no result of the reload task for $1 in $ANSIBLE_LOG"
    # "2026-12-01 20:30:00,123 p=... | changed: [host1]", in UTC.
    date -u -d "$(awk '{print $1 " " $2}' <<<"$l" | tr , .)" +%s%3N
}
# in_order HOST...: each host's rolld got its reload request only after
# the previous host's rollout was ok and its `rolld reload --wait` had
# returned to Ansible.
in_order() {
    local prev='' h ok req ret
    for h in "$@"; do
        req=$(new_time "$h" 'reload request: ')
        if [[ -n $prev ]]; then
            ok=$(new_time "$prev" ' rollout ok: ')
            ret=$(reload_returned_ms "$prev")
            ((ok <= ret)) || fail "Ansible logged $prev's reload result ($ret) before its rollout was ok ($ok)"
            ((ret <= req)) ||
                fail "$h got its reload request $((ret - req)) ms before $prev's reload --wait returned"
            say "  $h asked to roll $((req - ret)) ms after $prev's reload --wait returned"
        fi
        prev=$h
    done
}

# --- load -------------------------------------------------------------------------------------------

cat >"$TMP/pace.lua" <<EOF
-- Each connection waits $WRK_DELAY_MS ms between requests: load that a
-- loaded machine can carry for three hosts at once.
function delay()
    return $WRK_DELAY_MS
end
EOF

wrk_all_start() {
    local h
    for h in "${HOSTS[@]}"; do
        wrk -t1 -c4 -d600s --timeout 10s -s "$TMP/pace.lua" -H "Connection: close" \
            "http://127.0.0.1:$(nginx_port "$h")/" >"$TMP/wrk-$h-$PHASE.out" 2>&1 &
        WRK_PIDS[$h]=$!
    done
    sleep 0.5
    for h in "${HOSTS[@]}"; do
        alive "${WRK_PIDS[$h]}" || fail "wrk for $h did not start: $(cat "$TMP/wrk-$h-$PHASE.out")"
    done
}

# wrk_all_stop: stops every wrk; each must have seen only 2xx answers, no
# socket error, and at least MIN_REQUESTS requests. Sets LOAD_SUMMARY.
wrk_all_stop() {
    local h rc
    for h in "${HOSTS[@]}"; do
        alive "${WRK_PIDS[$h]}" || fail "wrk for $h stopped early: $(cat "$TMP/wrk-$h-$PHASE.out")"
        kill -INT "${WRK_PIDS[$h]}"
    done
    LOAD_SUMMARY=
    for h in "${HOSTS[@]}"; do
        wait_for "wrk for $h to print its summary and exit" 15 gone "${WRK_PIDS[$h]}"
        rc=0
        wait "${WRK_PIDS[$h]}" || rc=$?
        unset "WRK_PIDS[$h]"
        [[ $rc -eq 0 ]] || fail "wrk for $h exited with status $rc: $(cat "$TMP/wrk-$h-$PHASE.out")"
        wrk_parse "$TMP/wrk-$h-$PHASE.out"
        [[ -z $WRK_ERRORS ]] || fail "$h: wrk saw errors: $WRK_ERRORS ($WRK_REQUESTS requests)"
        ((WRK_REQUESTS >= MIN_REQUESTS)) ||
            fail "$h: wrk made only $WRK_REQUESTS requests (expected at least $MIN_REQUESTS)"
        LOAD_SUMMARY+="$h $WRK_REQUESTS, "
        TOTAL_REQUESTS=$((TOTAL_REQUESTS + WRK_REQUESTS))
    done
    LOAD_SUMMARY="${LOAD_SUMMARY%, } requests, 0 failed"
}
TOTAL_REQUESTS=0

# --- the play ------------------------------------------------------------------------------------------

declare -A LOG_MARK=()
ANSIBLE_MARK=0
PLAY_RCS=

# play NAME RELEASE: ships RELEASE with example/deploy.yml under load on
# every host; sets PLAY_RC, PLAY_OUT and PLAY_SECS.
play() {
    local h t0
    PHASE=$1
    PLAY_OUT=$TMP/play-$PHASE.out
    for h in "${HOSTS[@]}"; do LOG_MARK[$h]=$(wc -l <"$(host_log "$h")"); done
    ANSIBLE_MARK=0
    [[ -f $ANSIBLE_LOG ]] && ANSIBLE_MARK=$(wc -l <"$ANSIBLE_LOG")
    wrk_all_start
    t0=$(now_ms)
    (cd "$TMP" && TZ=UTC exec timeout -k 10 "$PLAY_TIMEOUT" "$ANSIBLE_PLAYBOOK" \
        -i "$TMP/inventory.yml" "$REPO/example/deploy.yml" \
        -e "rolld_release=$2" -e "rolld_release_src=$TMP/releases/$2.tar.gz" \
        </dev/null >"$PLAY_OUT" 2>&1) &
    PLAY_RC=0
    wait_bg $! || PLAY_RC=$?
    PLAY_SECS=$(ms_to_secs $(($(now_ms) - t0)))
    PLAY_RCS+="$PLAY_RC "
    ((PLAY_RC != 124 && PLAY_RC != 137)) || fail "ansible-playbook did not end within ${PLAY_TIMEOUT}s"
    sleep 0.5 # the load goes on a moment after the play
    wrk_all_stop
    rollds_alive
}

# --- start ---------------------------------------------------------------------------------------------

for h in "${HOSTS[@]}"; do
    d=$(host_dir "$h")
    "$ROLLD" check "$d/rolld.yml" >"$d/check.out" 2>&1 || fail "$h: rolld check failed: $(cat "$d/check.out")"
    (cd "$d" && exec "$ROLLD" --run-dir "$d/run" "$d/rolld.yml" </dev/null >>"$d/rolld.out" 2>>"$d/rolld.log") &
    ROLLD_PIDS[$h]=$!
done
for h in "${HOSTS[@]}"; do
    ROLLD_PID=${ROLLD_PIDS[$h]} EXPECT_ROLLD=1 LOG=$(host_log "$h") \
        wait_for "$h: first start (' live on ' in its rolld's log)" 30 log_has ' live on '
    ROLLD_PID=${ROLLD_PIDS[$h]} EXPECT_ROLLD=1 \
        wait_for "$h: nginx on :$(nginx_port "$h") to answer from v1" 15 answers_version "$h" v1
    serves "$h" v1
done
say "v1 live on ${HOSTS[*]}, each behind its nginx (:$(nginx_port host1), :$(nginx_port host2), :$(nginx_port host3))"

# --- 1. v2 everywhere, host by host ---------------------------------------------------------------------

play roll-v2 v2
((PLAY_RC == 0)) || fail "the play of v2 exited $PLAY_RC (expected 0)"
for h in "${HOSTS[@]}"; do
    [[ $(new_count "$h" ' rollout ok: ') -eq 1 && $(new_count "$h" ' rolled back') -eq 0 ]] ||
        fail "$h: expected one rollout and no rollback, rolld logged: $(new_log "$h" | grep -F ' rollout ' | tr '\n' ';')"
    current_is "$h" v2
    serves "$h" v2
done
in_order "${HOSTS[@]}"
say "1. v2: play exit 0 in ${PLAY_SECS}s; ${HOSTS[*]} serve v2, rolled in order; $LOAD_SUMMARY"

# --- 2. v3 fails on host2 -----------------------------------------------------------------------------------

play roll-v3 v3
((PLAY_RC == 2)) || fail "the play of v3 exited $PLAY_RC (expected 2: a host failed, since host2 rolled back)"
# host1 rolled onto v3, and host2 asked to roll only after that.
[[ $(new_count host1 ' rollout ok: ') -eq 1 ]] || fail "host1: no rollout onto v3"
current_is host1 v3
serves host1 v3
in_order host1 host2
# host2 rolled back: its smoke test saw the 500; v2 still serves.
[[ $(new_count host2 ' rollout ok: ') -eq 0 && $(new_count host2 ' rollout rolled back: ') -eq 1 ]] ||
    fail "host2: expected one rollback, rolld logged: $(new_log host2 | grep -F ' rollout ' | tr '\n' ';')"
rollback=$(new_log host2 | grep -F ' rollout rolled back: ')
[[ $rollback == *'answered 500 (want 200)'* ]] || fail "host2: the rollback does not give the 500: $rollback"
[[ $(new_count host2 'needs the host settings region, missing in') -ge 1 ]] ||
    fail "host2: rolld's log does not give the backend's reason (the last lines of its stderr)"
[[ -d $TMP/host2/app/releases/v3 ]] || fail "host2 never received v3"
current_is host2 v2
serves host2 v2
grep -qF 'rolled back' "$PLAY_OUT" || fail "the play's output does not show the rollback (see $PLAY_OUT)"
grep -qF 'answered 500' "$PLAY_OUT" || fail "the play's output does not show the reason of the rollback (see $PLAY_OUT)"
grep -qF 'rolld reload exited 1: rolled back' "$PLAY_OUT" || fail "the play did not stop at host2 (see $PLAY_OUT)"
# host3 untouched: no reload request, nothing shipped, still v2.
[[ -z $(new_log host3) ]] || fail "host3: its rolld logged during the play of v3: $(new_log host3 | tr '\n' ';')"
[[ ! -e $TMP/host3/app/releases/v3 ]] || fail "host3 received v3"
! grep -qF '[host3]' "$PLAY_OUT" || fail "the play ran tasks on host3 (see $PLAY_OUT)"
current_is host3 v2
serves host3 v2
say "2. v3: play exit $PLAY_RC in ${PLAY_SECS}s; host1 serves v3, host2 rolled back and serves v2, host3 untouched on v2; $LOAD_SUMMARY"
say "   host2:${rollback#* WARN}"

# --- 3. v4, v3 fixed, everywhere -------------------------------------------------------------------------------

play roll-v4 v4
((PLAY_RC == 0)) || fail "the play of v4 exited $PLAY_RC (expected 0)"
for h in "${HOSTS[@]}"; do
    [[ $(new_count "$h" ' rollout ok: ') -eq 1 && $(new_count "$h" ' rolled back') -eq 0 ]] ||
        fail "$h: expected one rollout and no rollback, rolld logged: $(new_log "$h" | grep -F ' rollout ' | tr '\n' ';')"
    current_is "$h" v4
    serves "$h" v4
done
in_order "${HOSTS[@]}"
say "3. v4: play exit 0 in ${PLAY_SECS}s; ${HOSTS[*]} serve v4, rolled in order; $LOAD_SUMMARY"

# --- shutdown -------------------------------------------------------------------------------------------------------

for h in "${HOSTS[@]}"; do
    kill -TERM "${ROLLD_PIDS[$h]}"
done
for h in "${HOSTS[@]}"; do
    wait_for "the rolld of $h to exit after SIGTERM" 20 gone "${ROLLD_PIDS[$h]}"
    rc=0
    wait "${ROLLD_PIDS[$h]}" || rc=$?
    unset "ROLLD_PIDS[$h]"
    [[ $rc -eq 0 ]] || fail "the rolld of $h exited $rc after SIGTERM (expected 0)"
    "$TMP/$h/nginx/stop.sh" || fail "$h: nginx/stop.sh failed"
done
assert_nothing_left 10 "${ALL_PORTS[@]}"

PASSED=1
say "PASS: 3 plays (exit ${PLAY_RCS% }), $TOTAL_REQUESTS requests, 0 failed, $(ms_to_secs $(($(now_ms) - T_START)))s in all ($PIP_NOTE)"
