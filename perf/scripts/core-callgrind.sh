#!/usr/bin/env bash
# Instructions and allocations per MiB of the protocol engine, by difference of two callgrind
# runs (small and large transfer), so set-up costs cancel out. Deterministic: callgrind counts
# instructions, not seconds. Writes perf/results/core-callgrind.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v valgrind >/dev/null || apt-get install -y valgrind
swift build -c release --product lariat-corebench ${SCRATCH:+--scratch-path $SCRATCH} >/dev/null
bin=${SCRATCH:-.build}/release/lariat-corebench
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
small=8 large=40
rows=()
for data in random json; do
  for lz4 in off on; do
    for mib in $small $large; do
      valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$data.$lz4.$mib" "$bin" --mib $mib --data $data --lz4 $lz4 --json \
        > "$tmp/out.$data.$lz4.$mib" 2>/dev/null
    done
    row=$(python3 - "$tmp" $data $lz4 $small $large <<'PY'
import json, sys, subprocess
tmp, data, lz4, small, large = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
sys.path.insert(0, "perf/scripts")
from callgrind_counts import counts
a = counts(f"{tmp}/cg.{data}.{lz4}.{small}", ["malloc", "swift_retain", "swift_release"])
b = counts(f"{tmp}/cg.{data}.{lz4}.{large}", ["malloc", "swift_retain", "swift_release"])
fa = json.load(open(f"{tmp}/out.{data}.{lz4}.{small}"))["frames"]
fb = json.load(open(f"{tmp}/out.{data}.{lz4}.{large}"))["frames"]
d_mib = large - small
d_frames = fb - fa
print(json.dumps({
  "data": data, "lz4": lz4 == "on",
  "instructions_per_mib": round((b["instructions"] - a["instructions"]) / d_mib),
  "mallocs_per_frame": round((b["calls"]["malloc"] - a["calls"]["malloc"]) / d_frames, 4),
  "retains_per_frame": round((b["calls"]["swift_retain"] - a["calls"]["swift_retain"]) / d_frames, 3),
  "frames_per_mib": round(d_frames / d_mib, 1),
}))
PY
)
    echo "$row"
    rows+=("$row")
  done
done
mkdir -p perf/results
printf '%s\n' "${rows[@]}" | python3 -c 'import json,sys; rows=[json.loads(l) for l in sys.stdin]; json.dump({"tool":"valgrind --tool=callgrind","binary":"lariat-corebench (release)","method":"difference of 40 MiB and 8 MiB runs","rows":rows}, open("perf/results/core-callgrind.json","w"), indent=2)'
echo "wrote perf/results/core-callgrind.json"
