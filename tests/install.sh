#!/usr/bin/env bash
# ./install.sh into a temporary DESTDIR, with the default prefix and with
# --prefix: every file in its place with its mode and nothing else, the
# unit's ExecStart naming the prefix, and `man -M` finding and rendering
# both pages without a warning. No port; the directory is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d /tmp/rolld-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() {
    echo "tests/install.sh: FAIL: $*" >&2
    exit 1
}

./install.sh --help | grep -q -- '--destdir DIR' || fail "--help does not give the usage"
rc=0
./install.sh --no-such-option >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "an unknown option exits $rc, not 2"
rc=0
./install.sh --prefix relative/path --destdir "$tmp/x" >/dev/null 2>&1 || rc=$?
{ [ "$rc" = 2 ] && [ ! -e "$tmp/x" ]; } || fail "a relative --prefix exits $rc and installs nothing"

# check_tree ROOT PREFIX: what ./install.sh put under ROOT (DESTDIR/PREFIX).
check_tree() {
    local root=$1 prefix=$2 f mode want
    for f in bin/rolld:755 share/man/man1/rolld.1:644 share/man/man5/rolld.yml.5:644 \
        lib/systemd/system/rolld.service:644; do
        want=${f#*:}
        f=${f%:*}
        { [ -f "$root/$f" ] && [ ! -L "$root/$f" ]; } || fail "$root/$f is not a regular file"
        mode=$(stat -c %a "$root/$f")
        [ "$mode" = "$want" ] || fail "$root/$f has mode $mode, not $want"
    done
    [ "$(find "$root" -type f | wc -l)" = 4 ] || fail "files beyond the four: $(find "$root" -type f)"
    cmp -s man/rolld.1 "$root/share/man/man1/rolld.1" || fail "rolld.1 differs from man/rolld.1"
    cmp -s man/rolld.yml.5 "$root/share/man/man5/rolld.yml.5" || fail "rolld.yml.5 differs from man/rolld.yml.5"
    [ "$("$root/bin/rolld" --version)" = "$(target/release/rolld --version)" ] || fail "bin/rolld is not target/release/rolld"
    # The unit is example/rolld.service with its ExecStart on PREFIX/bin.
    local unit=$root/lib/systemd/system/rolld.service
    grep -qx "ExecStart=$prefix/bin/rolld /srv/app/rolld.yml" "$unit" || fail "ExecStart in $unit: $(grep ExecStart "$unit")"
    [ "$(diff example/rolld.service "$unit" | grep -c '^[<>]')" = "$([ "$prefix" = /usr/local ] && echo 0 || echo 2)" ] ||
        fail "$unit differs from example/rolld.service beyond ExecStart: $(diff example/rolld.service "$unit")"
    # man finds both pages in the tree and renders them without a warning.
    local page out err
    for page in "1 rolld" "5 rolld.yml"; do
        # shellcheck disable=SC2086 # section and name, two words
        out=$(MANWIDTH=80 man --warnings -M "$root/share/man" $page 2>"$tmp/err") || fail "man -M $root/share/man $page: $(cat "$tmp/err")"
        err=$(cat "$tmp/err")
        [ -z "$err" ] || fail "man $page warns: $err"
        case $page in
            "1 rolld") echo "$out" | grep -q '^ *rolld - blue/green restarts' || fail "man rolld rendered: $out" ;;
            *) echo "$out" | grep -q '^ *haproxy.revert_errors$' || fail "man rolld.yml rendered: $out" ;;
        esac
    done
    [ "$(man -M "$root/share/man" -w rolld)" = "$root/share/man/man1/rolld.1" ] || fail "man -w rolld: $(man -M "$root/share/man" -w rolld)"
}

./install.sh --destdir "$tmp/default" >/dev/null
check_tree "$tmp/default/usr/local" /usr/local
./install.sh --prefix /opt/rolld --destdir "$tmp/opt" >/dev/null
check_tree "$tmp/opt/opt/rolld" /opt/rolld
echo "tests/install.sh: ok"
