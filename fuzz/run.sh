#!/usr/bin/env bash
# Builds and runs the libFuzzer targets of the tunnel protocol.
#
#   fuzz/run.sh [seconds-per-target]      (default 60)
#
# Environment:
#   TARGETS="decoder session"     which targets to run
#   LARIAT_FUZZ_SKIP=a,b          invariants of FuzzSession.swift to skip (known, reported bugs)
#   EXCLUSIVITY=unchecked         build with -enforce-exclusivity=unchecked
#   PATCH_KNOWN_BUGS=1            build against a copy of the sources (in fuzz/out/patched-src) with
#                                 a minimal workaround for the known produce() spin (see
#                                 fuzz/crashes/README.md), so fuzzing can go past it
#   JOBS=1                        libFuzzer -jobs/-workers (keep 1 on shared machines)
#
# The findings in fuzz/crashes/ are fixed; they are replayed before each run as regressions.
#
# A SwiftPM executable target cannot be used: libFuzzer supplies main(), so the harness and the
# protocol sources are compiled as one module with swiftc -parse-as-library.
# Crashes are written to fuzz/crashes/<target>/; the working corpus grows in fuzz/out/.
set -euo pipefail

SECONDS_PER_TARGET="${1:-60}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
OUT="$HERE/out"
TARGETS="${TARGETS:-decoder session}"
JOBS="${JOBS:-1}"
mkdir -p "$OUT" "$HERE/crashes"
# Swift's own crash reporter symbolicates for a long time per crash; libFuzzer/ASan report instead.
export SWIFT_BACKTRACE=enable=no

if [ ! -d "$HERE/corpus/decoder" ] || [ ! -d "$HERE/corpus/session" ]; then
    python3 "$HERE/make_corpus.py"
fi

SWIFTFLAGS=(-sanitize=fuzzer,address -parse-as-library -O -g -swift-version 6
            -I "$ROOT/Sources/CLZ4" -module-name LariatFuzz)
if [ "${EXCLUSIVITY:-checked}" = "unchecked" ]; then
    SWIFTFLAGS+=(-enforce-exclusivity=unchecked)
fi

SRC="$ROOT/Sources/LariatProtocol"
if [ "${PATCH_KNOWN_BUGS:-0}" = "1" ]; then
    rm -rf "$OUT/patched-src" && mkdir -p "$OUT/patched-src" && cp "$SRC"/*.swift "$OUT/patched-src/"
    # produce() spins when a control/interactive stream is ready and the session credit is 0:
    # serve those classes only while there is session credit, as bulk already is.
    sed -i 's/if let id = ready.control.pop() { return id }/if sessionSendCredit > 0, let id = ready.control.pop() { return id }/;
            s/if let id = ready.interactive.pop() { return id }/if sessionSendCredit > 0, let id = ready.interactive.pop() { return id }/' \
        "$OUT/patched-src/SessionSend.swift"
    grep -q 'sessionSendCredit > 0, let id = ready.interactive.pop()' "$OUT/patched-src/SessionSend.swift" \
        || { echo "PATCH_KNOWN_BUGS: patch did not apply" >&2; exit 1; }
    SRC="$OUT/patched-src"
fi

build() {
    local name="$1" file="$2"
    echo "== building fuzz-$name (sources: $SRC)"
    swiftc "${SWIFTFLAGS[@]}" "$SRC"/*.swift "$HERE/$file" -o "$OUT/fuzz-$name" -llz4
}

run() {
    local name="$1"
    local work="$OUT/corpus-$name"
    mkdir -p "$work" "$HERE/crashes/$name"
    echo "== running fuzz-$name for ${SECONDS_PER_TARGET}s"
    # The seed corpus is read-only input; new units go to the working corpus.
    "$OUT/fuzz-$name" "$work" "$HERE/corpus/$name" \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 $([ "$JOBS" -gt 1 ] && echo "-jobs=$JOBS -workers=$JOBS") \
        -artifact_prefix="$HERE/crashes/$name/" 2>&1 | tee "$OUT/fuzz-$name.log" | grep -v '^#[0-9]*.*\(NEW\|REDUCE\|pulse\)' || true
    grep -E 'stat::number_of_executed_units|Done [0-9]+ runs' "$OUT/fuzz-$name.log" | tail -2 || true
}

for t in $TARGETS; do
    case "$t" in
        decoder) build decoder FuzzDecoder.swift ;;
        session) build session FuzzSession.swift ;;
        *) echo "unknown target $t" >&2; exit 2 ;;
    esac
done
# Every saved crash is a regression test: replay them first, and stop if one still fails.
for t in $TARGETS; do
    for f in "$HERE/crashes/$t"/*; do
        [ -f "$f" ] || continue
        if ! "$OUT/fuzz-$t" -timeout=10 "$f" >/dev/null 2>&1; then
            echo "== regression: $f still fails (fuzz-$t -timeout=10 $f to see why)" >&2
            exit 1
        fi
    done
    echo "== fuzz-$t: all saved crashes replay cleanly"
done
for t in $TARGETS; do run "$t"; done
