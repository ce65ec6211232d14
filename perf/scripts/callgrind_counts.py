#!/usr/bin/env python3
"""Reads a callgrind output file; prints total instructions and the number of calls to each
named function (default: malloc, free, swift_retain, swift_release, swift_allocObject) as JSON."""
import json, re, sys

def counts(path, names):
    fn_names = {}
    calls = {n: 0 for n in names}
    total = 0
    current_cfn = None
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                total = max(total, int(line.split()[1]))
            elif line.startswith("cfn="):
                m = re.match(r"cfn=\((\d+)\)(?: (.*))?", line.strip())
                if m:
                    if m.group(2):
                        fn_names[m.group(1)] = m.group(2)
                    current_cfn = fn_names.get(m.group(1))
                else:
                    current_cfn = line.strip()[4:]
            elif line.startswith("fn=") or line.startswith("cfi=") is False and line.startswith("fl="):
                pass
            elif line.startswith("calls=") and current_cfn is not None:
                n = int(line.split("=")[1].split()[0])
                base = current_cfn.split("'")[0]
                if base in calls:
                    calls[base] += n
                current_cfn = None
            if line.startswith("fn="):
                m = re.match(r"fn=\((\d+)\)(?: (.*))?", line.strip())
                if m and m.group(2):
                    fn_names[m.group(1)] = m.group(2)
    return {"instructions": total, "calls": calls}

if __name__ == "__main__":
    names = sys.argv[2:] or ["malloc", "free", "swift_retain", "swift_release", "swift_allocObject"]
    print(json.dumps(counts(sys.argv[1], names)))
