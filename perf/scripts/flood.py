#!/usr/bin/env python3
"""Connection flood against a real `lariat-hub serve`: hub RSS before and after each round.

Each round opens N TLS connections to the hub (full handshake, then half an HTTP request
head, so the hub holds them the way a slow client makes it), holds them, closes them all,
waits for the hub to settle, and reads VmRSS from /proc. Issue #7 item 3: the hub's RSS grew
41.6 -> 235 -> 356 -> 409 MB over three rounds of 5,000 and was not given back.

Traffic goes to 127.0.0.1 only. Usage (from the repository root):

    python3 perf/scripts/flood.py --hub .build-mem/release/lariat-hub \
        --label after-fix --out perf/results/flood.json

Several runs (labels) accumulate in one JSON file; a run with the same label is replaced.
`--env NAME=VALUE` passes an environment variable to the hub (MALLOC_ARENA_MAX=1 and the
like, for experiments).
"""

import argparse
import asyncio
import json
import os
import resource
import shutil
import ssl
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"


def raise_file_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def proc_status(pid):
    """VmRSS, VmHWM (KiB) and thread count of `pid`."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "Threads"):
                out[key] = int(value.split()[0])
    return out


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def hub_flags(hub, connections):
    """Connection caps the hub may have (added for issue #7): set them above the flood."""
    help_text = subprocess.run([hub, "serve", "--help"], capture_output=True, text=True).stdout
    flags = []
    high = str(connections * 4)
    for flag in ("--max-connections", "--max-connections-per-source"):
        if flag + " " in help_text or flag + "\n" in help_text or flag + "=" in help_text:
            flags += [flag, high]
    for flag in ("--tls-handshake-timeout", "--head-timeout", "--request-head-timeout"):
        if flag + " " in help_text:
            flags += [flag, "600"]  # seconds: the hold must not be cut short
    return flags


def start_hub(hub, data, env_extra, connections, loops, log_level):
    port_file = os.path.join(data, "port")
    env = dict(os.environ)
    env.update(env_extra)
    args = [hub, "serve", "--listen", f"{HOST}:0", "--data", data, "--port-file", port_file,
            "--log-level", log_level] + (["--loops", str(loops)] if loops else []) + hub_flags(hub, connections)
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(data, "hub.log"), "w"))
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"hub exited early ({proc.returncode}); see {data}/hub.log")
        if os.path.exists(port_file):
            with open(port_file) as f:
                return proc, int(f.readline()), args
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("hub did not write its port file")


async def open_one(port, ctx, partial_request):
    reader, writer = await asyncio.open_connection(HOST, port, ssl=ctx, server_hostname=HOST)
    if partial_request:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # head left unfinished
        await writer.drain()
    return writer


async def flood_round(pid, port, ctx, count, parallel, hold, partial_request):
    gate = asyncio.Semaphore(parallel)

    async def guarded():
        async with gate:
            return await open_one(port, ctx, partial_request)

    started = time.monotonic()
    results = await asyncio.gather(*(guarded() for _ in range(count)), return_exceptions=True)
    writers = [r for r in results if not isinstance(r, BaseException)]
    errors = [r for r in results if isinstance(r, BaseException)]
    open_seconds = time.monotonic() - started
    await asyncio.sleep(hold)
    held_rss = proc_status(pid)["VmRSS"]
    for w in writers:
        w.transport.abort()  # the flood closes abruptly, as a crashed or hostile client would
    await asyncio.sleep(0.2)
    return len(writers), errors, open_seconds, held_rss


def measure(pid, settle):
    time.sleep(settle)
    status = proc_status(pid)
    return {"rss_kib": status["VmRSS"], "rss_anon_kib": status.get("RssAnon"), "hwm_kib": status["VmHWM"],
            "fds": open_fds(pid)}


def probe_allocator(pid, log_path):
    """Diagnosis of leak vs retention: asks the hub's glibc, through gdb, for its arena totals
    (malloc_stats, printed to the hub's stderr) and then to give free pages back
    (malloc_trim(0)). Memory that returns on a trim was free in the allocator, not leaked."""
    offset = os.path.getsize(log_path)
    subprocess.run(["gdb", "-p", str(pid), "-batch", "-nx", "-ex", "call (void)malloc_stats()",
                    "-ex", "call (int)malloc_trim(0)"], capture_output=True, timeout=120)
    with open(log_path) as f:
        f.seek(offset)
        lines = f.read().splitlines()
    stats = [line.strip() for line in lines if line.startswith(("Arena", "Total", "system bytes", "in use bytes"))
             or "bytes" in line]
    total = [line for line in stats if line.startswith(("system bytes", "in use bytes"))][-2:]
    return {"malloc_stats_total": total, "rss_after_malloc_trim_kib": proc_status(pid)["VmRSS"],
            "arenas": sum(1 for line in lines if line.startswith("Arena"))}


def run(args):
    limit = raise_file_limit()
    if limit < args.connections + 100:
        raise SystemExit(f"file limit {limit} is too low for {args.connections} connections")
    data = tempfile.mkdtemp(prefix="lariat-flood-")
    env_extra = dict(kv.split("=", 1) for kv in args.env)
    proc, port, hub_args = start_hub(args.hub, data, env_extra, args.connections, args.loops,
                                     args.hub_log_level)
    try:
        ctx = ssl.create_default_context(cafile=os.path.join(data, "tls", "ca.pem"))
        ctx.check_hostname = True
        time.sleep(args.settle)
        baseline = measure(proc.pid, 0)
        print(f"[{args.label}] before: RSS {baseline['rss_kib'] / 1024:.1f} MiB, {baseline['fds']} fds", flush=True)
        rounds = []
        for i in range(args.rounds):
            held, errors, open_seconds, held_rss = asyncio.run(
                flood_round(proc.pid, port, ctx, args.connections, args.parallel, args.hold, not args.no_partial_request))
            after = measure(proc.pid, args.settle)
            if proc.poll() is not None:
                raise SystemExit(f"hub died in round {i + 1}; see {data}/hub.log")
            growth = after["rss_kib"] / baseline["rss_kib"] - 1
            if args.probe:
                after["probe"] = probe_allocator(proc.pid, os.path.join(data, "hub.log"))
                print(f"[{args.label}] probe: {after['probe']}", flush=True)
            rounds.append({"round": i + 1, "connections_held": held, "failed": len(errors),
                           "open_seconds": round(open_seconds, 2), "held_rss_kib": held_rss,
                           "after": after, "growth_vs_before": round(growth, 3)})
            sample = f" (first: {errors[0]!r})" if errors else ""
            print(f"[{args.label}] round {i + 1}: {held} held, {len(errors)} failed{sample}; RSS while held {held_rss / 1024:.1f} MiB; "
                  f"after close RSS {after['rss_kib'] / 1024:.1f} MiB ({growth:+.1%}), {after['fds']} fds", flush=True)
        return {"label": args.label, "hub_args": [a for a in hub_args[1:] if not a.startswith(data)],
                "env": env_extra, "connections": args.connections, "rounds_run": args.rounds,
                "hold_seconds": args.hold, "settle_seconds": args.settle,
                "partial_request": not args.no_partial_request,
                "before": baseline, "rounds": rounds,
                "max_growth_vs_before": max(r["growth_vs_before"] for r in rounds),
                "within_20_percent": all(r["growth_vs_before"] <= 0.20 for r in rounds)}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        if args.show_log:
            with open(os.path.join(data, "hub.log")) as f:
                print(f.read(), end="")
        if args.keep_data:
            print(f"data kept in {data}")
        else:
            shutil.rmtree(data, ignore_errors=True)


def markdown(path):
    """The RESULTS.md section for the runs in `path`."""
    with open(path) as f:
        doc = json.load(f)
    mib = lambda kib: f"{kib / 1024:.1f}"
    rounds = max(len(r["rounds"]) for r in doc["runs"])
    lines = ["RSS in MiB: before the first round, then for each round while the connections are held → "
             "after they closed.", "",
             "| run | before | " + " | ".join(f"round {i + 1}" for i in range(rounds)) + " | worst vs before |",
             "|---|---:|" + "---:|" * rounds + "---:|"]
    for r in doc["runs"]:
        cells = [(f"{mib(x['held_rss_kib'])} → " if "held_rss_kib" in x else "") + f"**{mib(x['after']['rss_kib'])}**"
                 for x in r["rounds"]]
        cells += ["–"] * (rounds - len(cells))
        env = " ".join(f"{k}={v}" for k, v in r["env"].items())
        lines.append(f"| {r['label']}{' (' + env + ')' if env else ''} | {mib(r['before']['rss_kib'])} | "
                     + " | ".join(cells) + f" | {r['max_growth_vs_before']:+.0%} |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hub", default=".build/release/lariat-hub")
    p.add_argument("--connections", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--parallel", type=int, default=256, help="handshakes in flight at once")
    p.add_argument("--hold", type=float, default=2.0, help="seconds to hold the connections open")
    p.add_argument("--settle", type=float, default=8.0, help="seconds to wait after closing before measuring (the hub checks for memory to trim every 5 s)")
    p.add_argument("--loops", type=int, default=0, help="hub worker loops (default: the hub's own)")
    p.add_argument("--hub-log-level", default="error")
    p.add_argument("--no-partial-request", action="store_true", help="send nothing after the handshake")
    p.add_argument("--probe", action="store_true",
                   help="after each round, print glibc arena totals and RSS after malloc_trim(0), through gdb")
    p.add_argument("--env", action="append", default=[], help="NAME=VALUE for the hub's environment")
    p.add_argument("--label", default="run")
    p.add_argument("--note", default="")
    p.add_argument("--out", help="JSON file to add this run to")
    p.add_argument("--keep-data", action="store_true")
    p.add_argument("--show-log", action="store_true", help="print the hub's log at the end")
    p.add_argument("--markdown", metavar="JSON", help="print the RESULTS.md table for JSON and exit")
    args = p.parse_args()
    if args.markdown:
        print(markdown(args.markdown))
        return
    result = run(args)
    if args.note:
        result["note"] = args.note
    if args.out:
        doc = {"runs": []}
        if os.path.exists(args.out):
            with open(args.out) as f:
                doc = json.load(f)
        doc["runs"] = [r for r in doc["runs"] if r["label"] != args.label] + [result]
        doc["machine"] = {"cores": os.cpu_count(), "kernel": os.uname().release}
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
    sys.exit(0)


if __name__ == "__main__":
    main()
