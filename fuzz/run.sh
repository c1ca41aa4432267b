#!/usr/bin/env bash
# Fuzzes rolld with cargo-fuzz (libFuzzer), each target for a bounded time:
# the config loader, the kernel TCP table parsers, and the group machine
# with the planner under arbitrary events and config changes (`machine`,
# which checks the invariants listed at the top of its source).
#
#   fuzz/run.sh [SECONDS]     # per target, default 60
#
# Installs cargo-fuzz when it is missing; needs a nightly toolchain
# (installed through rustup when missing). The seed corpus in
# fuzz/corpus/TARGET is only read: the run starts from a fresh copy in
# fuzz/corpus.tmp/TARGET (git-ignored) and libFuzzer writes the inputs it
# finds there. A crash, timeout or out-of-memory input is written to
# fuzz/artifacts/TARGET/ (git-ignored); its path and bytes are printed and
# the script exits non-zero after every target has run. An input that once
# crashed stays in fuzz/corpus/TARGET as a regression seed. To add the new
# inputs of a run as seeds, minimize them first and copy only a few:
#   cargo +nightly fuzz cmin TARGET fuzz/corpus.tmp/TARGET
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-60}"
case "$secs" in
    '' | *[!0-9]* | 0) echo "usage: fuzz/run.sh [SECONDS per target, > 0]" >&2; exit 2 ;;
esac
targets=(config tcp machine)

if ! cargo +nightly --version >/dev/null 2>&1; then
    if command -v rustup >/dev/null 2>&1; then
        echo "fuzz/run.sh: installing the nightly toolchain"
        rustup toolchain install nightly --profile minimal
    else
        echo "fuzz/run.sh: cargo-fuzz needs a nightly toolchain (cargo +nightly), and rustup is missing" >&2
        exit 1
    fi
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

failed=()
for t in "${targets[@]}"; do
    work="fuzz/corpus.tmp/$t"
    artifacts="fuzz/artifacts/$t"
    rm -rf "$work"
    mkdir -p "$work" "$artifacts"
    cp -R "fuzz/corpus/$t/." "$work/"
    marker="$(mktemp)"
    echo "== fuzz $t for ${secs}s"
    status=0
    # The first corpus directory receives new inputs; the seeds are read only.
    cargo +nightly fuzz run "$t" "$work" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 || status=$?
    found=()
    while IFS= read -r -d '' f; do found+=("$f"); done \
        < <(find "$artifacts" -type f -newer "$marker" -print0)
    rm -f "$marker"
    if [ "$status" -ne 0 ] || [ ${#found[@]} -gt 0 ]; then
        failed+=("$t")
        echo "fuzz/run.sh: target $t FAILED (exit status $status)" >&2
        for f in "${found[@]}"; do
            echo "fuzz/run.sh: crashing input: $f ($(wc -c <"$f") bytes)" >&2
            od -A x -t x1z -v "$f" | head -n 32 >&2
            echo "fuzz/run.sh: reproduce with: cargo +nightly fuzz run $t $f" >&2
        done
        [ ${#found[@]} -gt 0 ] || echo "fuzz/run.sh: no crash file written (build failure or libFuzzer error, see above)" >&2
    else
        echo "fuzz/run.sh: target $t: no crash in ${secs}s ($(find "$work" -type f | wc -l) inputs in $work)"
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz/run.sh: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz/run.sh: all targets ran ${secs}s without a crash"
