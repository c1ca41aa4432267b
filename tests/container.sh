#!/usr/bin/env bash
# rolld as PID 1 of a real container: the FROM scratch image of
# example/container/Containerfile (static rolld, the static example
# backend, `listen: 8080`, no LB, no shell), run by podman with runc and
# its default seccomp profile, a port published on loopback.
#
#   tests/container.sh            # needs podman, runc, wrk, curl; root
#
# Builds the static binaries (cargo, --target x86_64-unknown-linux-gnu with
# +crt-static; checks that they are static), then the image from a context
# holding only them and the config. The container gets the example's
# config with the backend's release read from a file the test writes
# (--release-file, a read-only volume) and 2 processes per backend
# (--workers 2: killing one leaves an orphan), and runs with every limit
# at or below the host's (runc cannot raise them without
# CAP_SYS_RESOURCE). Ports: 15810 (published), 15811 and 15820-15827 (the
# same rolld on the host, for comparison).
#
#   1. rolld is PID 1 under a seccomp filter; the kernel switch works there
#      (rolld exits at start, saying why, when it cannot attach its
#      program);
#   2. wrk through the published port, keep-alive and `Connection: close`,
#      across 3 rollouts by `podman kill --signal HUP`, a `rolld reload
#      --wait` by `podman exec` (exit 0) and a release that fails its smoke
#      test (exit 1, no public request answered by it): 0 non-2xx, 0 socket
#      errors;
#   3. a backend SIGKILLed (from the host) is restarted; the worker it
#      leaves, an orphan, is reaped by rolld: no zombie;
#   4. the container's memory (podman stats) with 4 backends;
#   5. `podman stop`: every backend stopped by its signal, exit 0 within
#      stop_timeout + 1 s;
#   6. the same image with --read-only (a tmpfs for /run/rolld only; the
#      backends as `user: '1000'`, `group: '1000'`, numeric ids with no
#      /etc/passwd), and with --user 1000:1000 (a tmpfs for /tmp: its run
#      directory is /tmp/rolld-1000): it serves, rolls by `rolld reload
#      --wait`, stops with exit 0; a profile denying SO_ATTACH_REUSEPORT_CBPF
#      stops rolld at start, saying why;
#   7. the same rolld and config on the host, 3 rollouts: its switch and
#      rollout times beside the container's, in the summary.

set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
LIB_NAME=container
# shellcheck source=tests/lib.sh
source "$REPO/tests/lib.sh"

PORT=15810              # published: 127.0.0.1:15810 -> the container's 8080
LB_PORT=15811           # the host's rolld
CHECK_FROM=15820
SET_A=($CHECK_FROM $((CHECK_FROM + 1)) $((CHECK_FROM + 2)) $((CHECK_FROM + 3)))
SET_B=($((CHECK_FROM + 4)) $((CHECK_FROM + 5)) $((CHECK_FROM + 6)) $((CHECK_FROM + 7)))
STOP_TIMEOUT=5          # example/container/rolld.yml
TARGET=x86_64-unknown-linux-gnu
BIN=$REPO/target/$TARGET/release
TAG=localhost/rolld-test-container:$$
IMAGE_MADE=0
CONTAINERS=()
KA_PID=
SAMPLER_PID=
T0=$(now_ms)

for tool in podman runc wrk curl ldd; do
    command -v "$tool" >/dev/null || fail "$tool is required (apt-get install podman runc wrk curl)"
done
[[ $(id -u) == 0 ]] || fail "runs as root (rootful podman: a bridge network, a published port)"

e2e_cleanup_hook() {
    local c
    [[ -n $TMP && -d $TMP ]] && touch "$TMP/stop-sampler"
    [[ -n $SAMPLER_PID ]] && stop_pid "$SAMPLER_PID" 3
    [[ -n $KA_PID ]] && stop_pid "$KA_PID" 3 INT
    for c in "${CONTAINERS[@]}"; do timeout 30 podman rm -f -t 0 "$c" >/dev/null 2>&1; done
    [[ $IMAGE_MADE == 1 ]] && timeout 30 podman rmi -f "$TAG" >/dev/null 2>&1
    return 0
}

# --- the binaries and the image ------------------------------------------------------------

say "building rolld and examples/http_backend, static ($TARGET, +crt-static)"
(cd "$REPO" && RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release --locked \
    --target "$TARGET" --bin rolld --example http_backend) || fail "the static build failed"
for b in "$BIN/rolld" "$BIN/examples/http_backend"; do
    out=$(ldd "$b" 2>&1 || true)
    [[ $out == *"statically linked"* || $out == *"not a dynamic executable"* ]] || fail "$b is not static: $out"
done
E2E_LB=none
e2e_begin container "$BIN/rolld"
none_listen "$PORT" || fail "port $PORT is already in use"
HOST_NOFILE=$(ulimit -Hn) HOST_NPROC=$(ulimit -Hu)
[[ $HOST_NOFILE == unlimited ]] && HOST_NOFILE=1048576
[[ $HOST_NPROC == unlimited ]] && HOST_NPROC=1048576
NOFILE=$((HOST_NOFILE < 4096 ? HOST_NOFILE : 4096))
NPROC=$((HOST_NPROC < 4096 ? HOST_NPROC : 4096))

# example/Dockerfile, the same image with a build stage, ends as the
# Containerfile does.
tail_from() { sed -n "/^COPY example\/container\/rolld.yml/,\$p" "$1" | grep -v "^#"; }
[[ -n $(tail_from "$REPO/example/Dockerfile") && $(tail_from "$REPO/example/Dockerfile") == "$(tail_from "$REPO/example/container/Containerfile")" ]] ||
    fail "the last stage of example/Dockerfile differs from example/container/Containerfile"
CTX=$TMP/ctx
mkdir -p "$CTX/target/$TARGET/release/examples" "$CTX/example/container"
cp "$BIN/rolld" "$CTX/target/$TARGET/release/"
cp "$BIN/examples/http_backend" "$CTX/target/$TARGET/release/examples/"
cp "$REPO/example/container/"{Containerfile,rolld.yml} "$CTX/example/container/"
IMAGE_MADE=1
timeout 300 podman build --quiet -f "$CTX/example/container/Containerfile" -t "$TAG" "$CTX" >"$TMP/build.out" 2>&1 ||
    fail "podman build failed: $(tail -n 5 "$TMP/build.out")"
IMAGE_BYTES=$(podman image inspect --format '{{.Size}}' "$TAG")
say "image $TAG: $((IMAGE_BYTES / 1024)) KiB (rolld $(($(stat -c %s "$BIN/rolld") / 1024)) KiB, http_backend $(($(stat -c %s "$BIN/examples/http_backend") / 1024)) KiB)"

# The example's config, each backend reading its release from the volume
# the test writes, with a worker beside it.
mkdir -p "$TMP/release"
chmod 755 "$TMP/release"
sed "s|--keep-alive'|--keep-alive --workers 2 --release-file /release/name'|" "$REPO/example/container/rolld.yml" >"$TMP/ctr.yml"
grep -qF -- "--release-file /release/name'" "$TMP/ctr.yml" || fail "could not set the release file in the example's cmd"
chmod 644 "$TMP/ctr.yml"
release() { echo "$1" >"$TMP/release/name.new" && chmod 644 "$TMP/release/name.new" && mv -f "$TMP/release/name.new" "$TMP/release/name"; }

# --- helpers ---------------------------------------------------------------------------------

# ctr_run NAME PODMAN_RUN_ARGS...: starts the image as container NAME
# (CTR), port PORT published on loopback.
ctr_run() {
    CTR=rolld-test-$$-$1
    shift
    CONTAINERS+=("$CTR")
    podman run -d --name "$CTR" --runtime runc \
        --ulimit "nofile=$NOFILE:$NOFILE" --ulimit "nproc=$NPROC:$NPROC" \
        -p "127.0.0.1:$PORT:8080" -v "$TMP/release:/release:ro" -v "${CTR_CONFIG:-$TMP/ctr.yml}:/rolld.yml:ro" \
        "$@" "$TAG" >"$TMP/run.out" 2>&1 || fail "podman run failed: $(cat "$TMP/run.out")"
}
clog() { podman logs "$CTR" 2>&1; }
ccount() { clog | grep -cF -- "$1" || true; }
# clog_above FRAGMENT N: more than N lines of the container's log hold
# FRAGMENT; log_above: of the host rolld's.
clog_above() { (($(ccount "$1") > $2)); }
log_above() { (($(count "$1") > $2)); }
ctr_running() { [[ $(podman inspect --format '{{.State.Running}}' "$CTR" 2>/dev/null) == true ]]; }
# ctr_wait_for DESCRIPTION SECONDS COMMAND...: wait_for, failing at once
# (with rolld's log) if the container stopped.
ctr_wait_for() {
    local desc=$1 secs=$2
    shift 2
    local deadline=$(($(now_ms) + $(secs_to_ms "$secs")))
    until "$@"; do
        ctr_running || fail "the container stopped while waiting for: $desc; its log: $(clog | tail -n 20)"
        (($(now_ms) < deadline)) || fail "timed out after ${secs}s waiting for: $desc; its log: $(clog | tail -n 20)"
        sleep 0.1
    done
}
# ctop: "hpid pid ppid state comm" of every process of the container.
ctop() { podman top "$CTR" hpid pid ppid state comm | tail -n +2; }
backends_are() { [[ $(ctop | awk '$5 == "http_backend"' | wc -l) == "$1" ]]; }
no_zombie() { [[ $(ctop | awk '$4 ~ /Z/' | wc -l) == 0 ]]; }
get() { curl -s --max-time 10 -o - -w ' %{http_code}' "http://127.0.0.1:$PORT/" 2>/dev/null | tr -d '\n' || true; }
# all_answer RELEASE: 20 new connections, each answered 200 by RELEASE.
all_answer() {
    local i got
    for ((i = 0; i < 20; i++)); do
        got=$(get)
        [[ $got == "port "*" release $1 200" ]] || return 1
    done
}
# cexec_reload WANT_RC: `rolld reload /rolld.yml --wait` in the container.
cexec_reload() {
    local rc=0
    timeout 120 podman exec "$CTR" /rolld reload /rolld.yml --wait >"$TMP/reload.out" 2>&1 || rc=$?
    [[ $rc == "$1" ]] || fail "podman exec $CTR /rolld reload /rolld.yml --wait exited $rc, expected $1: $(cat "$TMP/reload.out")"
}
# ctr_stop_ok: podman stop; every backend stopped by its signal (never
# SIGKILL), exit 0 within stop_timeout + 1 s. Sets STOP_MS.
ctr_stop_ok() {
    local t0 rc
    t0=$(now_ms)
    timeout 60 podman stop -t $((STOP_TIMEOUT + 10)) "$CTR" >/dev/null 2>&1 || fail "podman stop $CTR failed"
    STOP_MS=$(($(now_ms) - t0))
    rc=$(podman inspect --format '{{.State.ExitCode}}' "$CTR")
    [[ $rc == 0 ]] || fail "the container exited $rc after podman stop: $(clog | tail -n 20)"
    ((STOP_MS <= (STOP_TIMEOUT + 1) * 1000)) || fail "podman stop took ${STOP_MS}ms, more than stop_timeout + 1 s"
    [[ $(ccount "rolld exiting (0)") == 1 ]] || fail "no 'rolld exiting (0)' in the log: $(clog | tail -n 10)"
    [[ $(ccount "SIGKILL") == 0 ]] || fail "a backend needed SIGKILL: $(clog | grep -F SIGKILL | head -n 3)"
    [[ $(clog | grep -cE ' web:[0-9]+ stopped \(signal 15\)') -ge 4 ]] || fail "fewer than 4 backends stopped by SIGTERM: $(clog | tail -n 10)"
}
# rollout_figures LOG: the switch and the whole time of every rollout that
# went through in LOG (the first start excepted).
rollout_figures() {
    local sw tot
    sw=$(grep -oE 'switched in [0-9.]+m?s' "$1" | tail -n +2 | awk '{print $3}' | tr '\n' ' ')
    tot=$(grep -F ' rollout ok: ' "$1" | grep -oE 'total [0-9.]+m?s' | awk '{print $2}' | tr '\n' ' ')
    echo "switch: ${sw% }; whole rollout: ${tot% }"
}

# --- 1. rolld as PID 1 under the default seccomp profile ----------------------------------------

release r1
ctr_run main
ctr_wait_for "the first set to go live" 30 clog_above " live on " 0
ctr_wait_for "release r1 to answer on :$PORT" 10 all_answer r1
ctr_wait_for "4 backends of 2 processes each" 10 backends_are 8
[[ $(ccount "INFO rolld pid 1 running /rolld.yml") == 1 ]] || fail "rolld is not PID 1: $(clog | head -n 3)"
RHPID=$(ctop | awk '$2 == 1 {print $1}')
[[ -n $RHPID ]] || fail "no PID 1 in podman top: $(ctop)"
grep -qE "^Max open files +$NOFILE +$NOFILE " "/proc/$RHPID/limits" || fail "rolld's open-file limit is not $NOFILE: $(grep 'open files' "/proc/$RHPID/limits")"
# The profile allows setsockopt, and so the kernel switch; bpf(2) only
# with CAP_SYS_ADMIN, which the container does not have.
PROFILE=$(podman info --format '{{.Host.Security.SECCOMPProfilePath}}')
PROFILE_SAYS=$(python3 - "$PROFILE" <<'EOF2'
import json, sys
rules = json.load(open(sys.argv[1]))["syscalls"]
def verdict(name):
    for r in rules:
        if name in r["names"] and not r.get("args") and not r.get("excludes", {}).get("caps"):
            return r["action"].replace("SCMP_ACT_", "").lower() + ("" if not r.get("includes", {}).get("caps") else " with " + ",".join(r["includes"]["caps"]))
    return "denied"
print("setsockopt %s; bpf %s" % (verdict("setsockopt"), verdict("bpf")))
EOF2
)
[[ $PROFILE_SAYS == "setsockopt allow; bpf allow with CAP_SYS_ADMIN" ]] || say "note: podman's profile now says: $PROFILE_SAYS"
seccomp=$(awk '/^Seccomp:/ {print $2}' "/proc/$RHPID/status")
[[ $seccomp == 2 ]] || fail "rolld runs with Seccomp: $seccomp, not under a filter (2)"
say "rolld is PID 1 (host pid $RHPID) under a seccomp filter (podman's default profile, $PROFILE: $PROFILE_SAYS); the first switch took $(clog | grep -oE "switched in [0-9.]+m?s" | head -n 1 | cut -d" " -f3)"

# --- 2. wrk across 3 SIGHUP rollouts, a reload --wait, a failing release ------------------------

wrk_start "http://127.0.0.1:$PORT/" "$TMP/wrk.out"
wrk -t1 -c16 -d600s --timeout 10s "http://127.0.0.1:$PORT/" >"$TMP/wrk-ka.out" 2>&1 &
KA_PID=$!
sleep 0.5
alive "$KA_PID" || fail "wrk (keep-alive) did not start: $(cat "$TMP/wrk-ka.out")"
for r in r2 r3 r4; do
    lives=$(ccount " rollout ok: ")
    release "$r"
    podman kill --signal HUP "$CTR" >/dev/null
    ctr_wait_for "the rollout to $r to end" 60 clog_above " rollout ok: " "$lives"
    ctr_wait_for "every new connection to be answered by $r" 5 all_answer "$r"
    backends_are 8 || fail "$(ctop | grep -c http_backend) processes of backends once $r rolled, expected 8: $(ctop | tr '\n' ';')"
done
say "3 rollouts by podman kill --signal HUP, each served by the next new connection"
release r5
cexec_reload 0
ctr_wait_for "every new connection to be answered by r5" 5 all_answer r5
say "podman exec $CTR /rolld reload /rolld.yml --wait: exit 0"
(
    while [[ ! -e $TMP/stop-sampler ]]; do
        get >>"$TMP/sampled.txt"
        echo >>"$TMP/sampled.txt"
        sleep 0.01
    done
) &
SAMPLER_PID=$!
BG_PIDS+=("$SAMPLER_PID")
release bad-1
cexec_reload 1
grep -qF "answered 500" "$TMP/reload.out" || fail "no 'answered 500' in: $(cat "$TMP/reload.out")"
touch "$TMP/stop-sampler"
wait_for "the sampler to stop" 15 gone "$SAMPLER_PID"
SAMPLER_PID=
sampled=$(grep -c . "$TMP/sampled.txt")
bad=$(grep -vcE '^port [0-9]+ release r5 200$' "$TMP/sampled.txt" || true)
((sampled >= 10)) || fail "only $sampled requests sampled across the failed rollout"
[[ $bad == 0 ]] || fail "$bad of $sampled public requests across the failed rollout were not answered 200 by r5: $(grep -vE 'release r5 200$' "$TMP/sampled.txt" | sort | uniq -c | tr '\n' ';')"
say "a release failing its smoke test: exit 1; $sampled public requests across it, all answered by r5"
release r5
wrk_stop_clean 1000
CLOSE_REQUESTS=$WRK_REQUESTS
kill -INT "$KA_PID"
wait_for "wrk (keep-alive) to exit" 15 gone "$KA_PID"
wait "$KA_PID" || fail "wrk (keep-alive) failed: $(cat "$TMP/wrk-ka.out")"
KA_PID=
wrk_parse "$TMP/wrk-ka.out"
[[ -z $WRK_ERRORS ]] || fail "wrk (keep-alive) saw errors: $WRK_ERRORS ($WRK_REQUESTS requests)"
((WRK_REQUESTS >= 1000)) || fail "wrk (keep-alive) made only $WRK_REQUESTS requests"
KA_REQUESTS=$WRK_REQUESTS
say "wrk through 127.0.0.1:$PORT: $CLOSE_REQUESTS requests (Connection: close) and $KA_REQUESTS (keep-alive), 0 non-2xx, 0 socket errors"
cp <(clog) "$TMP/ctr-main.log"

# --- 3. a backend killed: restarted, its orphan reaped -----------------------------------------

leader=$(ctop | awk '$3 == 1 && $5 == "http_backend" {print $1; exit}')
[[ -n $leader ]] || fail "no backend started by rolld: $(ctop | tr '\n' ';')"
worker=$(ctop | awk -v l="$(ctop | awk -v h="$leader" '$1 == h {print $2}')" '$3 == l {print $1; exit}')
[[ -n $worker ]] || fail "backend $leader has no worker: $(ctop | tr '\n' ';')"
restarts=$(ccount "restarted as pid")
kill -KILL "$leader"
ctr_wait_for "the killed backend to be restarted" 15 clog_above "restarted as pid" "$restarts"
# Its worker dies with it (PR_SET_PDEATHSIG), an orphan of PID 1: rolld
# must reap it, or it stays a zombie (its /proc entry with it).
ctr_wait_for "the orphaned worker (host pid $worker) to be reaped" 10 test ! -e "/proc/$worker"
ctr_wait_for "4 backends of 2 processes each again" 10 backends_are 8
ctr_wait_for "no zombie in the container" 5 no_zombie
ctr_wait_for "every new connection to be answered by r5 after the kill" 10 all_answer r5
say "backend (host pid $leader) SIGKILLed: restarted; its orphaned worker (host pid $worker) reaped by rolld, no zombie"

# --- 4. memory ------------------------------------------------------------------------------------

MEM=$(podman stats --no-stream --format '{{.MemUsage}}' "$CTR" | awk -F' / ' '{print $1}')
PIDS=$(podman stats --no-stream --format '{{.PIDs}}' "$CTR")
RSS_ROLLD=$(awk '/^VmRSS:/ {print $2 " " $3}' "/proc/$RHPID/status")
PROCS=$(ctop | awk '{print $5}' | sort | uniq -c | awk '{printf "%s%d %s", sep, $1, $2; sep = ", "}')
say "memory of the container (podman stats): $MEM, $PIDS tasks (threads included) in $PROCS; rolld's RSS $RSS_ROLLD"

# --- 5. podman stop ------------------------------------------------------------------------------

ctr_stop_ok
say "podman stop: every backend stopped by SIGTERM, exit 0 in ${STOP_MS}ms (stop_timeout $STOP_TIMEOUT s)"
CTR_FIGURES=$(rollout_figures "$TMP/ctr-main.log")

# --- 6. --read-only, --user 1000:1000 ---------------------------------------------------------

# variant NAME RUN_ARGS...: starts, serves, rolls by reload --wait, stops.
variant() {
    local name=$1
    shift
    release "$name-1"
    ctr_run "$name" "$@"
    ctr_wait_for "$name: release $name-1 to answer" 30 all_answer "$name-1"
    release "$name-2"
    cexec_reload 0
    ctr_wait_for "$name: release $name-2 to answer" 5 all_answer "$name-2"
}
# uids: "the uids of rolld and its socket keeper; the backends' uids"
# (from the host's /proc).
uids() {
    local r b
    r=$(ctop | awk '$5 != "http_backend" {print $1}' | while read -r p; do stat -c %u "/proc/$p"; done | sort -u | tr '\n' ' ')
    b=$(ctop | awk '$5 == "http_backend" {print $1}' | while read -r p; do stat -c %u "/proc/$p"; done | sort -u | tr '\n' ' ')
    echo "${r% }; ${b% }"
}
# Read-only, rolld as root, the backends as `user: '1000'`, `group:
# '1000'`: numeric ids, with no /etc/passwd in the image.
sed "s|^  procs: 4$|  procs: 4\n  user: '1000'\n  group: '1000'|" "$TMP/ctr.yml" >"$TMP/ctr-user.yml"
grep -qF "user: '1000'" "$TMP/ctr-user.yml" || fail "could not set user: in $TMP/ctr-user.yml"
chmod 644 "$TMP/ctr-user.yml"
CTR_CONFIG=$TMP/ctr-user.yml variant ro --read-only --read-only-tmpfs=false --tmpfs /run/rolld:rw,mode=0700
[[ $(podman inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$CTR") == true ]] || fail "the root file system is not read-only"
[[ $(uids) == "0; 1000" ]] || fail "uids of rolld; of the backends: '$(uids)', expected '0; 1000'"
ctr_stop_ok
say "--read-only with a tmpfs at /run/rolld only, user: '1000' and group: '1000' (no /etc/passwd): rolld uid 0, backends uid 1000; serves, reload --wait 0, podman stop 0 in ${STOP_MS}ms"
variant user --user 1000:1000 --read-only --read-only-tmpfs=false --tmpfs /tmp:rw,mode=1777
[[ $(uids) == "1000; 1000" ]] || fail "uids of rolld; of the backends: '$(uids)', expected 1000 only"
ctr_stop_ok
say "--user 1000:1000 (--read-only, a tmpfs at /tmp): every process uid 1000; serves, reload --wait 0, podman stop 0 in ${STOP_MS}ms"

# A profile that denies the switch (podman's, with setsockopt
# SO_ATTACH_REUSEPORT_CBPF made to fail EPERM): rolld must not start
# without it, and say why.
python3 - "$PROFILE" "$TMP/no-cbpf.json" <<'EOF2'
import json, sys
p = json.load(open(sys.argv[1]))
for r in p["syscalls"]:
    if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args") and not r.get("includes", {}).get("caps"):
        r["names"] = [n for n in r["names"] if n != "setsockopt"]
cbpf = {"index": 2, "value": 51, "op": "SCMP_CMP_EQ"}  # SO_ATTACH_REUSEPORT_CBPF
p["syscalls"] += [
    {"names": ["setsockopt"], "action": "SCMP_ACT_ALLOW", "args": [dict(cbpf, op="SCMP_CMP_NE")]},
    {"names": ["setsockopt"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "args": [cbpf]},
]
json.dump(p, open(sys.argv[2], "w"))
EOF2
release d1
ctr_run denied --security-opt "seccomp=$TMP/no-cbpf.json"
exited() { ! ctr_running; }
wait_for "rolld to exit under a profile denying SO_ATTACH_REUSEPORT_CBPF" 20 exited
rc=$(podman inspect --format '{{.State.ExitCode}}' "$CTR")
said=$(clog | grep -F 'SO_ATTACH_REUSEPORT_CBPF' | head -n 1)
[[ $rc == 1 && $said == *"Operation not permitted"* ]] ||
    fail "under a profile denying SO_ATTACH_REUSEPORT_CBPF: exit $rc, expected 1 with the reason; its log: $(clog | tail -n 5)"
say "a profile denying SO_ATTACH_REUSEPORT_CBPF: exit 1 at start: ${said#* ERROR }"

# --- 7. the same on the host ---------------------------------------------------------------------

mkdir -p "$TMP/bin"
cp "$BIN/examples/http_backend" "$TMP/bin/"
sed -e "s|'/http_backend |'$TMP/bin/http_backend |" -e "s|/release/name|$TMP/release/name|" \
    -e "s|^  listen: 8080|  listen: '127.0.0.1:$LB_PORT'\n  check_from: $CHECK_FROM|" "$TMP/ctr.yml" >"$TMP/rolld.yml"
grep -qF "check_from: $CHECK_FROM" "$TMP/rolld.yml" || fail "could not set the host's port in $TMP/rolld.yml"
release h1
rolld_spawn
wait_for "the host's rolld to go live" 30 log_has " live on "
for r in h2 h3 h4; do
    lives=$(count " rollout ok: ")
    release "$r"
    kill -HUP "$ROLLD_PID"
    wait_for "the host's rollout to $r" 60 log_above " rollout ok: " "$lives"
done
rolld_stop_ok 20
assert_nothing_left 5 "$LB_PORT"
HOST_FIGURES=$(rollout_figures "$LOG")

PASSED=1
say "the switch and the rollout, 4 backends: in the container $CTR_FIGURES"
say "                                          on the host      $HOST_FIGURES"
echo "$LIB_NAME: PASS (image $((IMAGE_BYTES / 1024)) KiB; $CLOSE_REQUESTS + $KA_REQUESTS requests with 0 errors across 4 rollouts and a failed one; memory $MEM; $(ms_to_secs $(($(now_ms) - T0)))s)"
