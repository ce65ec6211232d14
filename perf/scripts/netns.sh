#!/usr/bin/env bash
# 100 Mbit/s scenario in two network namespaces (root; see perf/scripts/netns.py for the setup).
#   perf/scripts/netns.sh quick|full   -> perf/results/results-netns-<mode>.json, then RESULTS.md
# Always removes its namespaces, veth pair, qdiscs and nft tables (trap), also on failure.
set -euo pipefail
MODE="${1:-quick}"
case "$MODE" in quick|full) ;; *) echo "usage: $0 quick|full" >&2; exit 2 ;; esac
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
SCRATCH="${SCRATCH:-.build-bench}"
PY=/usr/bin/python3
[ "$(id -u)" = 0 ] || { echo "netns.sh needs root" >&2; exit 1; }
command -v nft >/dev/null || { apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables >/dev/null; }
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  for p in lariat-bench lariat-hub lariat-agent; do
    swift build -c release --scratch-path "$SCRATCH" --product "$p" 2>&1 | grep -E "error|Build of" >&2 || true
  done
fi
TAG=$(( $$ % 100000 ))
WORK="$(mktemp -d /tmp/lariat-netns.XXXXXX)"
PYPID=""
cleanup() {
  local rc=$?
  if [ -n "$PYPID" ] && kill -0 "$PYPID" 2>/dev/null; then kill -TERM "$PYPID" 2>/dev/null || true; wait "$PYPID" 2>/dev/null || true; fi
  for ns in "lbA$TAG" "lbB$TAG"; do
    if ip netns list | grep -qw "$ns"; then
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
$PY perf/scripts/netns.py --mode "$MODE" --work "$WORK" --bin "$SCRATCH/release" --tag "$TAG" \
  --out "perf/results/results-netns-$MODE.json" --command "perf/scripts/netns.sh $MODE" &
PYPID=$!
wait "$PYPID"
PYPID=""
$PY perf/scripts/report.py --out perf/RESULTS.md --charts perf/results perf/results/results-*.json
