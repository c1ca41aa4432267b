#!/usr/bin/env bash
# Runs every test of rolld: unit and integration tests (cargo test), a
# bounded fuzzing run of the parsers and the group machine (fuzz/run.sh),
# then the end-to-end tests behind real load balancers under wrk load
# (tests/e2e.sh, tests/e2e_haproxy_api.sh, tests/e2e_streams.sh,
# tests/e2e_surge.sh, tests/e2e_bake.sh, tests/faults.sh), with no load
# balancer at all (tests/e2e_listen.sh), and as PID 1 of a FROM scratch
# container under podman (tests/container.sh).
# Installs what the tests need when it is missing.
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v ss >/dev/null 2>&1 || need+=(iproute2)
command -v pgrep >/dev/null 2>&1 || need+=(procps)
command -v setfacl >/dev/null 2>&1 || need+=(acl)
# tests/man.rs and tests/install.sh: groff renders the man pages, man finds them.
command -v groff >/dev/null 2>&1 || need+=(groff-base)
command -v man >/dev/null 2>&1 || need+=(man-db)
# The slow-fsync file system of tests/hardening.rs: FUSE for the system python.
/usr/bin/python3 -c 'import fusepy' 2>/dev/null || need+=(python3-fusepy)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v ansible-playbook >/dev/null 2>&1 || python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
# tests/e2e_listen.sh with APP=gunicorn|uvicorn: a virtualenv of the system python.
/usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
# tests/container.sh: rootful podman with runc, installed with what podman
# recommends (its bridge network and published ports need netavark and
# iptables, its storage fuse-overlayfs where the kernel's overlay will not
# do): `apt-get install podman runc`, as tested.
containers=()
command -v podman >/dev/null 2>&1 || containers+=(podman netavark iptables)
command -v runc >/dev/null 2>&1 || containers+=(runc)
if [ $((${#need[@]} + ${#containers[@]})) -gt 0 ]; then
    echo "test_rolld.sh: installing ${need[*]} ${containers[*]}"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    [ ${#need[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
    [ ${#containers[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${containers[@]}"
fi
export PATH="$PATH:/usr/sbin:/sbin"
# Once nf_conntrack is loaded (podman's published ports load it, so a second
# run of this script finds it), every loopback connection of the load tests
# is tracked, and 120 s per closed connection fills the default table under
# wrk: the kernel then drops new connections ("nf_conntrack: table full").
ct=/proc/sys/net/netfilter/nf_conntrack_max
if [ -w "$ct" ] && [ "$(cat "$ct")" -lt 2097152 ]; then
    echo "test_rolld.sh: nf_conntrack is loaded: nf_conntrack_max $(cat "$ct") -> 2097152 for the load tests"
    echo 2097152 >"$ct"
fi

echo "== unit and integration tests"
# tests/backends.rs runs the example backends as programs: built first.
cargo build --examples
cargo test --all-targets
echo "== fuzzing: the config loader, the TCP table parsers and the group machine, 60 s each"
fuzz/run.sh 60
cargo build --release --bins --example http_backend
echo "== install.sh into a temporary DESTDIR: every file and its mode, the unit's ExecStart, man -M finding both pages"
bash tests/install.sh
echo "== end-to-end behind nginx"
LB=nginx bash tests/e2e.sh "$PWD/target/release/rolld"
echo "== end-to-end behind HAProxy"
LB=haproxy bash tests/e2e.sh "$PWD/target/release/rolld"
echo "== end-to-end behind HAProxy switched through its Runtime API (haproxy:), never reloaded"
bash tests/e2e_haproxy_api.sh "$PWD/target/release/rolld"
echo "== end-to-end: IPv6-only backends with a Host check"
bash tests/e2e_ipv6.sh "$PWD/target/release/rolld"
echo "== end-to-end: event streams across rollouts, with and without drain_signal"
bash tests/e2e_streams.sh "$PWD/target/release/rolld"
echo "== end-to-end: surge 1, one slot at a time, a partial rollout"
bash tests/e2e_surge.sh "$PWD/target/release/rolld"
echo "== end-to-end: bake, a revert when a new backend dies, promote and revert; health heals a frozen backend"
bash tests/e2e_bake.sh "$PWD/target/release/rolld"
echo "== end-to-end: listen:, no load balancer, wrk straight at the port rolld holds"
bash tests/e2e_listen.sh "$PWD/target/release/rolld"
echo "== end-to-end: listen:, rolld and its backends as nobody"
E2E_USER=nobody bash tests/e2e_listen.sh "$PWD/target/release/rolld"
echo "== end-to-end: listen:, gunicorn (gthread workers) serving on the socket rolld hands it"
APP=gunicorn bash tests/e2e_listen.sh "$PWD/target/release/rolld"
echo "== end-to-end: listen:, uvicorn serving on the socket rolld hands it"
APP=uvicorn bash tests/e2e_listen.sh "$PWD/target/release/rolld"
echo "== many hosts: example/deploy.yml by Ansible across three rollds under load"
bash tests/hosts.sh "$PWD/target/release/rolld"
echo "== fault matrix under load: behind nginx, and listen: with no load balancer"
ROLLD_BIN="$PWD/target/release/rolld" bash tests/faults.sh
echo "== a real container: rolld as PID 1 of a FROM scratch image under podman (runc, default seccomp), listen:"
bash tests/container.sh
echo "test_rolld.sh: all tests passed"
