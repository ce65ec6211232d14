#!/usr/bin/env bash
# Tunnel benchmark, side by side with what people use instead.
#   perf/scripts/bench.sh quick    ~3 minutes of measuring (2 rounds, 1/4/16 streams)
#   perf/scripts/bench.sh full     < 20 minutes (5 rounds, 1/4/16/64 streams, 10,000 idle streams)
# Routes: direct, socat, two chained socats (the CPU floor's relay part), stunnel, ssh -R
# (aes128-gcm, chacha20-poly1305, aes128-gcm + -C), lariat (LZ4 on and off); per round also
# openssl speed (the floor's cipher part) and iperf3 through lariat and ssh -R.
# Writes perf/results/results-<mode>.json, perf/RESULTS.md and charts.
# Env: SKIP_BUILD=1 reuses the binaries in $SCRATCH/release; SCRATCH (default .build-bench);
# SCENARIOS=burst,… and ROUTES=lariat,… run only those (bench.py --scenarios/--routes) into
# perf/results/results-<mode>-<scenarios>.json, which report.py uses only for what the main run lacks.
set -euo pipefail
MODE="${1:-quick}"
case "$MODE" in quick|full) ;; *) echo "usage: $0 quick|full" >&2; exit 2 ;; esac
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
SCRATCH="${SCRATCH:-.build-bench}"
PY=/usr/bin/python3   # the distribution Python: python3-matplotlib is installed for it

need=()
command -v socat >/dev/null || need+=(socat)
command -v stunnel4 >/dev/null || need+=(stunnel4)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null || need+=(openssh-client)
command -v iperf3 >/dev/null || need+=(iperf3)
command -v openssl >/dev/null || need+=(openssl)
$PY -c 'import matplotlib' 2>/dev/null || need+=(python3-matplotlib)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}" >&2
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  for p in lariat-bench lariat-hub lariat-agent; do   # one build at a time (2 cores)
    echo "building $p (release)" >&2
    swift build -c release --scratch-path "$SCRATCH" --product "$p" 2>&1 | grep -E "error|warning: unre|Compiling|Build of" >&2 || true
    [ -x "$SCRATCH/release/$p" ] || { echo "build of $p failed" >&2; exit 1; }
  done
  echo "building lariat-agent (release, static Swift runtime: how it ships)" >&2
  swift build -c release --static-swift-stdlib --scratch-path "$SCRATCH-static" --product lariat-agent 2>&1 \
    | grep -E "error|Build of" >&2 || true
fi
if [ -x "$SCRATCH-static/release/lariat-agent" ]; then
  export LARIAT_AGENT_BIN="$(cd "$SCRATCH-static/release" && pwd)/lariat-agent"
fi

# 10,000 idle streams: the client, hub, agent and target each need >10k descriptors.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

WORK="$(mktemp -d /tmp/lariat-bench.XXXXXX)"
PYPID=""
cleanup() {
  local rc=$?
  if [ -n "$PYPID" ] && kill -0 "$PYPID" 2>/dev/null; then
    kill -TERM "$PYPID" 2>/dev/null || true
    wait "$PYPID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

CMD="perf/scripts/bench.sh $MODE"
OUT="perf/results/results-$MODE.json"
PICK=()
if [ -n "${SCENARIOS:-}" ]; then
  PICK+=(--scenarios "$SCENARIOS")
  CMD="SCENARIOS=$SCENARIOS${ROUTES:+ ROUTES=$ROUTES} $CMD"
  OUT="perf/results/results-$MODE-${SCENARIOS//,/-}.json"
fi
[ -n "${ROUTES:-}" ] && PICK+=(--routes "$ROUTES")
$PY perf/scripts/bench.py --mode "$MODE" --work "$WORK" --bin "$SCRATCH/release" --out "$OUT" --command "$CMD" "${PICK[@]}" &
PYPID=$!
wait "$PYPID"
PYPID=""
$PY perf/scripts/report.py --out perf/RESULTS.md --charts perf/results perf/results/results-*.json
echo "results: $OUT, perf/RESULTS.md" >&2
