#!/usr/bin/env python3
"""Prints one fuzz/RESULTS.md table row per libFuzzer log given (fuzz/out/fuzz-<target>.log):
executions, seconds, final cov/ft, corpus size. Usage: fuzz/summarize.py fuzz/out/fuzz-*.log"""
import re
import sys

for path in sys.argv[1:]:
    text = open(path, errors="replace").read()
    name = re.sub(r"^.*(?:fuzz|final)-(.*)\.log$", r"\1", path)
    runs = re.findall(r"stat::number_of_executed_units: (\d+)", text)
    done = re.findall(r"Done (\d+) runs in (\d+) second", text)
    status = re.findall(r"^#\d+\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/(\S+)", text, re.M)
    crash = "crash" if re.search(r"ERROR: libFuzzer|deadly signal|Fatal error", text) else "0"
    secs = done[-1][1] if done else "?"
    cov, ft, corp, size = status[-1] if status else ("?",) * 4
    print("| %s | %s | %s s | %s | %s | %s units / %s | %s |" % (
        name, runs[-1] if runs else "?", secs, cov, ft, corp, size, crash))
