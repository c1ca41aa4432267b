#!/bin/sh
# Installs rolld: its binary, its man pages and its systemd unit.
set -eu

usage() {
    cat <<USAGE
usage: ./install.sh [--prefix PREFIX] [--destdir DIR]
  Builds rolld (cargo build --release) unless target/release/rolld is newer
  than the sources, then installs:
    PREFIX/bin/rolld                           0755
    PREFIX/share/man/man1/rolld.1              0644
    PREFIX/share/man/man5/rolld.yml.5          0644
    PREFIX/lib/systemd/system/rolld.service    0644, ExecStart=PREFIX/bin/rolld
  --prefix PREFIX  where rolld is installed (default /usr/local)
  --destdir DIR    copy the files under DIR instead (DIR/PREFIX/...), for a
                   package; the unit still names PREFIX/bin/rolld
USAGE
}

die() {
    echo "install.sh: $1" >&2
    exit "${2:-1}"
}

prefix=/usr/local
destdir=
while [ $# -gt 0 ]; do
    case $1 in
        --prefix | --destdir)
            [ $# -ge 2 ] || die "$1 needs a directory" 2
            if [ "$1" = --prefix ]; then prefix=$2; else destdir=$2; fi
            shift 2
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            usage >&2
            die "unknown argument: $1" 2
            ;;
    esac
done
# The prefix goes into the unit's ExecStart as it is: an absolute path of
# plain characters.
case $prefix in
    /*) ;;
    *) die "--prefix must be an absolute path: $prefix" 2 ;;
esac
case $prefix in
    *[!A-Za-z0-9/._+@-]*) die "--prefix may hold only letters, digits and / . _ + @ -: $prefix" 2 ;;
esac

cd "$(dirname "$0")"
bin=target/release/rolld
if [ ! -x "$bin" ] || [ -n "$(find src Cargo.toml Cargo.lock -newer "$bin" -print | head -n 1)" ]; then
    command -v cargo >/dev/null 2>&1 ||
        die "$bin is missing or older than the sources, and there is no cargo in PATH: run cargo build --release first"
    cargo build --release --locked --bin rolld
fi

root=$destdir$prefix
unit=$(mktemp)
trap 'rm -f "$unit"' EXIT
sed "s|^ExecStart=[^ ]*/rolld |ExecStart=$prefix/bin/rolld |" example/rolld.service >"$unit"
grep -q "^ExecStart=$prefix/bin/rolld " "$unit" || die "example/rolld.service: no ExecStart line naming rolld"

install -d -m 0755 "$root/bin" "$root/share/man/man1" "$root/share/man/man5" "$root/lib/systemd/system"
install -m 0755 "$bin" "$root/bin/rolld"
install -m 0644 man/rolld.1 "$root/share/man/man1/rolld.1"
install -m 0644 man/rolld.yml.5 "$root/share/man/man5/rolld.yml.5"
install -m 0644 "$unit" "$root/lib/systemd/system/rolld.service"
for f in bin/rolld share/man/man1/rolld.1 share/man/man5/rolld.yml.5 lib/systemd/system/rolld.service; do
    echo "installed $root/$f"
done
