#!/usr/bin/env python3
"""Turns perf/results/results-*.json (bench.py, netns.sh) into perf/RESULTS.md and PNG charts.

usage: report.py --out perf/RESULTS.md --charts perf/results FILE...
Aggregation: every figure is the median over rounds, with min–max; ratios are medians of
per-round ratios computed within the same run (never across runs).
"""
import argparse
import json
import math
import os
import statistics
import sys

TARGET_REF = "ssh-aes128gcm"
ROUTE_ORDER = ["direct", "socat", "socat-chain", "stunnel", "ssh-aes128gcm", "ssh-chacha20", "ssh-aes128gcm-C",
               "lariat", "lariat-nolz4"]


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def rng(xs):
    xs = [x for x in xs if x is not None]
    return (min(xs), max(xs)) if xs else (None, None)


def f(x, d=0):
    if x is None:
        return "–"
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return "–"
    return f"{x:,.{d}f}"


def cell(xs, d=0):
    m = med(xs)
    lo, hi = rng(xs)
    if m is None:
        return "–"
    if len([x for x in xs if x is not None]) == 1:
        return f(m, d)
    return f"{f(m, d)} ({f(lo, d)}–{f(hi, d)})"


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


class Run:
    def __init__(self, d):
        self.d = d
        self.samples = d.get("samples", [])
        present = {s["route"] for s in self.samples if s.get("kind") != "iperf3"}
        self.routes = [r for r in ROUTE_ORDER if r in present] + sorted(present - set(ROUTE_ORDER))
        self.rounds = sorted({s["round"] for s in self.samples})

    def pick(self, **kw):
        return [s for s in self.samples if all(s.get(k) == v for k, v in kw.items())]

    def per_round(self, value, **kw):
        """{round: value(sample)} for the single sample matching kw in each round."""
        out = {}
        for s in self.pick(**kw):
            if s.get("error") and not s.get("mib_per_s") and not s.get("count"):
                continue
            out[s["round"]] = value(s)
        return out

    def tput(self, route, direction, streams, data="random"):
        return self.per_round(lambda s: s.get("mib_per_s"), route=route, kind="throughput",
                              direction=direction, streams=streams, data=data)

    def ratio(self, a, b):
        """Per-round ratios a/b ({round: value} dicts)."""
        return [a[r] / b[r] for r in a if r in b and a[r] and b[r]]

    def lat(self, route, size, scenario, key):
        return self.per_round(lambda s: s.get(key) if s.get("count") else None, route=route,
                              kind="latency", size=size, scenario=scenario)

    def cpu_per_gb(self, route, data=None):
        """{round: {process: CPU-s per GB (1e9 B)}} over all bulk runs of the round."""
        out = {}
        for r in self.rounds:
            ss = [s for s in self.pick(route=route, kind="throughput", round=r)
                  if (data is None or s.get("data") == data) and s.get("bytes")]
            total = sum(s["bytes"] for s in ss)
            if not total:
                continue
            procs = {}
            for s in ss:
                for p, c in (s.get("cpu_s") or {}).items():
                    procs[p] = procs.get(p, 0) + c
            out[r] = {p: c / (total / 1e9) for p, c in procs.items()}
        return out


# The tunnel's suite (OpenSSL's TLS 1.3 name) → the `openssl speed -evp` cipher timed for it.
SUITE_CIPHER = {"TLS_AES_256_GCM_SHA384": "aes-256-gcm", "TLS_AES_128_GCM_SHA256": "aes-128-gcm",
                "TLS_CHACHA20_POLY1305_SHA256": "chacha20-poly1305"}
FLOOR_TARGET = 1.3          # issue #11: hub + agent CPU per GB at most this multiple of the floor
IPERF_TARGET = 1.2          # issue #11: throughput at least this multiple of ssh -R aes128-gcm
FLOOR_ROUTES = ["lariat", "lariat-nolz4", "ssh-aes128gcm", "ssh-chacha20", "stunnel", "socat"]


def tunnel_cipher(run):
    return SUITE_CIPHER.get((run.d.get("tunnel_cipher") or {}).get("suite"), "aes-256-gcm")


def cipher_cpu_per_gb(run, cipher):
    """{round: CPU-s per GB for one encrypt plus one decrypt of every byte} from openssl speed."""
    by = {}
    for s in run.d.get("cipher_speed", []):
        if s.get("cipher") == cipher and s.get("bytes_per_s"):
            by.setdefault(s["round"], {})[s["op"]] = 1e9 / s["bytes_per_s"]
    return {r: v["encrypt"] + v["decrypt"] for r, v in by.items() if "encrypt" in v and "decrypt" in v}


def floor_per_round(run, cipher):
    """{round: floor CPU-s per GB}: two chained socat relays + one encrypt and one decrypt per byte."""
    chain = {r: sum(v.values()) for r, v in run.cpu_per_gb("socat-chain", data="random").items()}
    ciph = cipher_cpu_per_gb(run, cipher)
    return {r: chain[r] + ciph[r] for r in chain if r in ciph}


def floor_multiple(run, route, cipher=None):
    """Per-round ratios of a route's CPU per GB (random data, whole process trees) to the floor."""
    fl = floor_per_round(run, cipher or tunnel_cipher(run))
    tot = {r: sum(v.values()) for r, v in run.cpu_per_gb(route, data="random").items()}
    return run.ratio(tot, fl)


def floor_section(run, lines):
    ciph = tunnel_cipher(run)
    tc = run.d.get("tunnel_cipher") or {}
    speeds = run.d.get("cipher_speed", [])
    if not speeds or not run.pick(route="socat-chain"):
        lines.append("\nNot measured in this run (no socat-chain route or openssl speed samples).")
        return
    lines.append(f"\nTunnel suite: **{tc.get('suite', '?')}** ({tc.get('protocol') or '?'}; {tc.get('method', '')}). "
                 f"Cipher cost from `openssl speed -evp <cipher> [-decrypt] -bytes {speeds[0].get('block')}` "
                 "(bytes per user CPU-second), each round:\n")
    lines.append("| cipher | encrypt GB/s | decrypt GB/s | encrypt + decrypt CPU-s/GB |")
    lines.append("|---|---|---|---|")
    for c in sorted({s["cipher"] for s in speeds}, key=lambda c: c != ciph):
        row = [c + (" (tunnel)" if c == ciph else "")]
        for op in ("encrypt", "decrypt"):
            row.append(cell([s["bytes_per_s"] / 1e9 for s in speeds
                             if s["cipher"] == c and s["op"] == op and s.get("bytes_per_s")], 2))
        row.append(cell(list(cipher_cpu_per_gb(run, c).values()), 3))
        lines.append("| " + " | ".join(row) + " |")
    chain = [sum(v.values()) for v in run.cpu_per_gb("socat-chain", data="random").values()]
    fl = floor_per_round(run, ciph)
    fl128 = floor_per_round(run, "aes-128-gcm")
    lines.append(f"\nFloor = two chained socat relays ({cell(chain, 2)} CPU-s/GB, random data, both processes) "
                 f"+ one {ciph} encrypt and one decrypt per byte = **{cell(list(fl.values()), 2)} CPU-s/GB**"
                 + (f" (with aes-128-gcm: {cell(list(fl128.values()), 2)})" if fl128 and ciph != "aes-128-gcm" else "")
                 + ". Routes' CPU per GB over the round's random-data bulk runs (lariat-bench load), "
                 "as a multiple of that round's floor, median (min–max):\n")
    lines.append(f"| route | CPU-s/GB | × floor ({ciph}) | × floor (aes-128-gcm) |")
    lines.append("|---|---|---|---|")
    for route in FLOOR_ROUTES:
        per = run.cpu_per_gb(route, data="random")
        if not per:
            continue
        lines.append(f"| {route} | {cell([sum(v.values()) for v in per.values()], 2)} | "
                     f"{cell(floor_multiple(run, route), 2)} | {cell(floor_multiple(run, route, 'aes-128-gcm'), 2)} |")
    lines.append(f"\nTarget (issue #11): lariat hub + agent ≤ {FLOOR_TARGET}× the floor. ssh -R aes128-gcm runs "
                 "AES-128-GCM, so its own floor is the last column; socat and stunnel are listed for scale.")
    ceiling_section(run, lines, fl)


def generator_cpu_per_gb(run, route):
    """{round: CPU-s per GB of the load generator (client + target) over the route's random runs}."""
    out = {}
    for r in run.rounds:
        ss = [s for s in run.pick(route=route, kind="throughput", round=r)
              if s.get("data") == "random" and s.get("bytes") and s.get("generator_cpu_s") is not None]
        total = sum(s["bytes"] for s in ss)
        if total:
            out[r] = sum(s["generator_cpu_s"] for s in ss) / (total / 1e9)
    return out


def ceiling_section(run, lines, floor):
    """What a relay costing exactly the floor could move, relative to ssh -R, when the machine's
    cores are the limit: throughput × (relay + generator CPU per GB) = cores busy, so at the
    same cores busy the ratio is (ssh's relay + generator) ÷ (floor + generator)."""
    ssh = {r: sum(v.values()) for r, v in run.cpu_per_gb(TARGET_REF, data="random").items()}
    gen = generator_cpu_per_gb(run, TARGET_REF)
    rounds = [r for r in ssh if r in gen and r in floor]
    if not rounds:
        return
    ceiling = [(ssh[r] + gen[r]) / (floor[r] + gen[r]) for r in rounds]
    busy = []
    for r in rounds:
        ss = [s for s in run.pick(route=TARGET_REF, kind="throughput", round=r) if s.get("data") == "random" and s.get("bytes")]
        secs = sum(s.get("seconds") or 0 for s in ss)
        if secs:
            busy.append(sum(sum((s.get("cpu_s") or {}).values()) + (s.get("generator_cpu_s") or 0) for s in ss) / secs)
    lines.append(f"\nCeiling for the throughput target: the load generator (lariat-bench client and target) used "
                 f"{cell(list(gen.values()), 2)} CPU-s/GB on the ssh -R route, whose runs kept "
                 f"{cell(busy, 2)} of the {os.cpu_count()} cores busy (relay + generator). With the cores the limit, a relay "
                 f"that cost exactly the floor would move **{cell(ceiling, 2)}×** ssh -R aes128-gcm's bytes "
                 "((ssh relay + generator) ÷ (floor + generator), per round).")


def iperf_tput(run, route, direction, streams):
    return run.per_round(lambda s: s.get("mib_per_s"), route=route, kind="iperf3",
                         direction=direction, streams=streams)


def iperf_section(run, lines):
    ss = run.pick(kind="iperf3")
    if not ss:
        lines.append("\nNot measured in this run.")
        return
    routes = [r for r in ("lariat", TARGET_REF) if any(s["route"] == r for s in ss)]
    streams = run.d["config"].get("iperf_streams") or sorted({s["streams"] for s in ss})
    lines.append(f"\n`iperf3 -c -P N [-R] -t {run.d['config'].get('iperf_seconds')}` against one `iperf3 -s` "
                 "behind a second forward of the lariat route's hub and a second `-R` of the ssh route; the two "
                 "interleaved test by test. MiB/s received, median (min–max) over rounds; ratio = per-round "
                 "lariat ÷ ssh -R aes128-gcm.\n")
    lines.append("| direction | streams | " + " | ".join(routes) + " | lariat ÷ ssh |")
    lines.append("|---" * (len(routes) + 3) + "|")
    for direction in ("up", "down"):
        for n in streams:
            row = [direction, str(n)]
            for r in routes:
                row.append(cell(list(iperf_tput(run, r, direction, n).values())))
            row.append(cell(run.ratio(iperf_tput(run, "lariat", direction, n),
                                      iperf_tput(run, TARGET_REF, direction, n)), 2))
            lines.append("| " + " | ".join(row) + " |")
    cpu = []
    for r in routes:
        per = {}
        for rnd in run.rounds:
            got = [s for s in run.pick(route=r, kind="iperf3", round=rnd) if s.get("bytes")]
            total = sum(s["bytes"] for s in got)
            if total:
                per[rnd] = sum(sum((s.get("cpu_s") or {}).values()) for s in got) / (total / 1e9)
        cpu.append(f"{r} {cell(list(per.values()), 2)}")
    lines.append("\nCPU-s per GB under iperf3 load (route processes, all iperf3 runs of a round): " + "; ".join(cpu) + ".")


def throughput_section(run, lines, data="random"):
    cfg = run.d["config"]
    streams = cfg["streams"] if data == "random" else cfg["json_streams"]
    for direction in ("up", "down"):
        arrow = "client → target" if direction == "up" else "target → client"
        lines.append(f"\n**{direction}** ({arrow}), {data} data, MiB/s, median (min–max) over {len(run.rounds)} rounds:\n")
        lines.append("| route | " + " | ".join(f"{n} stream{'s' if n > 1 else ''}" for n in streams)
                     + " | × direct | × ssh aes128-gcm |")
        lines.append("|---" * (len(streams) + 3) + "|")
        for route in run.routes:
            row = [route]
            rd, rs = [], []
            for n in streams:
                t = run.tput(route, direction, n, data)
                row.append(cell(list(t.values())))
                rd += run.ratio(t, run.tput("direct", direction, n, data))
                rs += run.ratio(t, run.tput(TARGET_REF, direction, n, data))
            row.append(f(geomean(rd), 2) if rd else "–")
            row.append(f(geomean(rs), 2) if rs else "–")
            lines.append("| " + " | ".join(row) + " |")
    lines.append("\nRatio columns: geometric mean over stream counts of the per-round ratios.")


def latency_section(run, lines):
    lines.append("\n| route | 64 B p50 | p90 | p99 | max | 16 KiB p50 | p99 | max | 64 B p50 × socat | × direct |")
    lines.append("|---" * 10 + "|")
    for route in run.routes:
        row = [route]
        for key in ("p50_us", "p90_us", "p99_us", "max_us"):
            row.append(cell(list(run.lat(route, 64, "idle", key).values())))
        for key in ("p50_us", "p99_us", "max_us"):
            row.append(cell(list(run.lat(route, 16384, "idle", key).values())))
        p50 = run.lat(route, 64, "idle", "p50_us")
        row.append(f(med(run.ratio(p50, run.lat("socat", 64, "idle", "p50_us"))), 2))
        row.append(f(med(run.ratio(p50, run.lat("direct", 64, "idle", "p50_us"))), 2))
        lines.append("| " + " | ".join(row) + " |")


def hol_section(run, lines):
    cfg = run.d["config"]
    lines.append(f"\n64 B round trips at {cfg['hol_rate']}/s for {cfg['hol_seconds']} s while one bulk "
                 "download (target → client) runs on the same route; µs.\n")
    lines.append("| route | p50 | p90 | p99 | max | samples | bulk MiB/s meanwhile |")
    lines.append("|---" * 7 + "|")
    for route in run.routes:
        row = [route] + [cell(list(run.lat(route, 64, "bulk", k).values()))
                         for k in ("p50_us", "p90_us", "p99_us", "max_us", "count")]
        row.append(cell(list(run.per_round(lambda s: s.get("bulk_mib_per_s"), route=route, kind="latency",
                                           scenario="bulk").values())))
        lines.append("| " + " | ".join(row) + " |")
        if run.lat(route, 64, "bulk-interactive", "p99_us"):
            row = [route + " (interactive forward)"] + [cell(list(run.lat(route, 64, "bulk-interactive", k).values()))
                                                        for k in ("p50_us", "p90_us", "p99_us", "max_us", "count")]
            row.append(cell(list(run.per_round(lambda s: s.get("bulk_mib_per_s"), route=route, kind="latency",
                                               scenario="bulk-interactive").values())))
            lines.append("| " + " | ".join(row) + " |")
    lines.append("\nFor direct, socat and stunnel the latency connection is a separate TCP connection "
                 "(separate kernel queues); for ssh and lariat it shares the tunnel with the bulk stream. "
                 "\"(interactive forward)\": the round trips go through a second hub forward to the same target "
                 "with `,interactive`, so the tunnel schedules their frames ahead of the bulk stream's.")


def cpu_section(run, lines):
    lines.append("\nCPU seconds (user+sys, whole process tree) per GB (10⁹ B) delivered, over every bulk "
                 "run of a round (all stream counts, both directions, random and JSON); median (min–max):\n")
    lines.append("| route | per process | total |")
    lines.append("|---|---|---|")
    for route in run.routes:
        per = run.cpu_per_gb(route)
        if not per or not any(per.values()):
            lines.append(f"| {route} | (no relay process) | – |")
            continue
        procs = sorted({p for v in per.values() for p in v})
        parts = [f"{p} {cell([v.get(p) for v in per.values()], 2)}" for p in procs]
        total = [sum(v.values()) for v in per.values()]
        lines.append(f"| {route} | {'; '.join(parts)} | {cell(total, 2)} |")


def open_section(run, lines):
    lines.append("\n| route | opens/s | open p50 µs | open p99 µs |")
    lines.append("|---|---|---|---|")
    for route in run.routes:
        rr = {k: run.per_round(lambda s, k=k: s.get(k), route=route, kind="openrate")
              for k in ("opens_per_s", "open_p50_us", "open_p99_us")}
        lines.append(f"| {route} | {cell(list(rr['opens_per_s'].values()))} | "
                     f"{cell(list(rr['open_p50_us'].values()))} | {cell(list(rr['open_p99_us'].values()))} |")
    lines.append("\nEach open: TCP connect to the route, 17 bytes written, 17 echoed by the target, close; "
                 "16 in parallel.")


BURST_TARGET_REFUSED = 0


def burst_run(run, partials):
    """The run holding burst samples: the main run if it measured bursts, else the newest
    partial run of the same mode that did (`bench.py --scenarios burst`)."""
    if run.pick(kind="burst"):
        return run
    for p in sorted(partials, key=lambda r: r.d.get("started", ""), reverse=True):
        if p.pick(kind="burst"):
            return p
    return None


def burst_section(brun, main, lines):
    if brun is None:
        lines.append("Not measured in this run (`SCENARIOS=burst perf/scripts/bench.sh MODE` measures only this).")
        return
    n = brun.d["config"].get("burst_count")
    if brun is not main:
        lines.append(f"From a separate run of only this scenario: `{brun.d.get('command')}` ({brun.d.get('started')}, "
                     f"{brun.d['machine'].get('cpu_model')}, {brun.d['machine'].get('nproc')} CPUs).\n")
    lines.append("| route | served | refused | reset | unfinished | time until all served, s | open p50 ms | open p99 ms |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for route in brun.routes:
        ss = brun.pick(route=route, kind="burst")
        if not ss:
            continue
        col = lambda k, scale=1: [s.get(k) / scale if s.get(k) is not None else None for s in ss]
        lines.append(f"| {route} | {cell(col('count'))} | {cell(col('refused'))} | {cell(col('reset'))} | "
                     f"{cell(col('unfinished'))} | {cell(col('seconds'), 2)} | {cell(col('open_p50_us', 1000), 1)} | "
                     f"{cell(col('open_p99_us', 1000), 1)} |")
    lines.append(f"\n{f(n)} connections started at once by `lariat-bench openrate --concurrency {n}`; each writes 17 bytes "
                 f"and counts as served when the target's 17-byte echo came back. Refused: the connect failed; reset: the "
                 f"route closed or reset it before the echo; unfinished: neither within {brun.d['config'].get('burst_seconds')} s. "
                 "Median (min–max) over rounds.")


def burst_target(brun):
    """(measured, verdict, by) for "1,000-connection burst: 0 refused" on the lariat route."""
    ss = brun.pick(route="lariat", kind="burst") if brun else []
    if not ss:
        return "not measured", "not measured", ""
    lost = max((s.get("failed") or 0) + (s.get("unfinished") or 0) + (1 if s.get("error") and not s.get("count") else 0)
               for s in ss)
    served = min(s.get("count") or 0 for s in ss)
    secs = med([s.get("seconds") for s in ss])
    v = "PASS" if lost <= BURST_TARGET_REFUSED else "MISS"
    return (f"{f(served)} of {f(ss[0].get('requested') or brun.d['config'].get('burst_count'))} served, "
            f"{f(lost)} refused/reset/unfinished (worst of {len(ss)} round(s)); all served in {f(secs, 2)} s", v, "")


def memory_section(run, lines):
    m = run.d.get("lariat_memory")
    if not m:
        return
    s = m.get("idle_streams", {})
    a = m.get("idle_agents", {})
    lines.append("\n| measure | value |")
    lines.append("|---|---|")
    lines.append(f"| idle agent RSS (connected, no traffic) | {f(m.get('agent_idle_rss_kib'))} KiB |")
    lines.append(f"| hub RSS, one agent, idle | {f(m.get('hub_idle_rss_kib'))} KiB |")
    lines.append(f"| idle streams opened (requested) | {f(s.get('opened'))} ({f(s.get('requested'))}) in {f(s.get('open_seconds'), 2)} s |")
    lines.append(f"| hub RSS growth per idle stream | {f(s.get('hub_kib_per_stream'), 2)} KiB "
                 f"({f(s.get('hub_rss_before_kib'))} → {f(s.get('hub_rss_open_kib'))} KiB; after closing {f(s.get('hub_rss_after_close_kib'))}) |")
    lines.append(f"| agent RSS growth per idle stream | {f(s.get('agent_kib_per_stream'), 2)} KiB "
                 f"({f(s.get('agent_rss_before_kib'))} → {f(s.get('agent_rss_open_kib'))} KiB) |")
    lines.append(f"| agents connected (started) | {f(a.get('connected'))} ({f(a.get('agents'))}) |")
    lines.append(f"| hub RSS growth per connected agent | {f(a.get('hub_kib_per_agent'), 1)} KiB "
                 f"({f(a.get('hub_rss_before_kib'))} → {f(a.get('hub_rss_after_kib'))} KiB) |")
    lines.append(f"| agent process RSS (median of those) | {f(a.get('agent_rss_median_kib'))} KiB |")
    if a.get("method"):
        lines.append(f"\nMethod for agents: {a['method']}.")
    after = run.d.get("lariat_rss_after_bulk")
    if after:
        lines.append("\nRSS after all bulk runs (current / high-water), KiB: " + "; ".join(
            f"{r} {role} {f(v['rss_kib'])} / {f(v['hwm_kib'])}" for r, roles in after.items() for role, v in roles.items()))


def verdict(value, target, better="higher"):
    if value is None:
        return "not measured", ""
    ok = value >= target if better == "higher" else value <= target
    if better == "higher":
        by = f"{value / target:.2f}× the target" if target else ""
    else:
        by = f"{value / target:.2f}× the limit" if target else ""
    return ("**met**" if ok else "**missed**"), by


def targets_section(run, netns, lines, brun=None):
    rows = []
    # 1. TLS bulk vs ssh aes128-gcm (lariat LZ4 on, random data: compression cannot help).
    ratios = []
    for d in ("up", "down"):
        for n in run.d["config"]["streams"]:
            r = run.ratio(run.tput("lariat", d, n), run.tput(TARGET_REF, d, n))
            if r:
                ratios.append((d, n, med(r)))
    g = geomean([x[2] for x in ratios])
    v, by = verdict(g, 1.5)
    detail = ", ".join(f"{d} ×{n}: {x:.2f}" for d, n, x in ratios)
    rows.append(("TLS bulk ≥ 1.5× ssh -R aes128-gcm (random data)", f"{f(g, 2)}× (geo-mean; {detail})", v, by))
    # 2. CPU
    per = run.cpu_per_gb("lariat", data="random")
    tot = med([v.get("hub", 0) + v.get("agent", 0) for v in per.values()]) if per else None
    v, by = verdict(tot, 1.2, "lower")
    rows.append(("≤ 1.2 CPU-s/GB hub+agent (random data)", f"{f(tot, 2)} CPU-s/GB", v, by))
    # 3. idle p50 vs socat
    r = med(run.ratio(run.lat("lariat", 64, "idle", "p50_us"), run.lat("socat", 64, "idle", "p50_us")))
    v, by = verdict(r, 1.5, "lower")
    rows.append(("idle 64 B ping-pong p50 ≤ 1.5× socat", f"{f(r, 2)}× socat ({cell(list(run.lat('lariat', 64, 'idle', 'p50_us').values()))} µs vs {cell(list(run.lat('socat', 64, 'idle', 'p50_us').values()))} µs)", v, by))
    # 4. HOL p99
    interactive = run.lat("lariat", 64, "bulk-interactive", "p99_us")
    p99 = med(list((interactive or run.lat("lariat", 64, "bulk", "p99_us")).values()))
    v, by = verdict(p99 / 1000 if p99 is not None else None, 2.0, "lower")
    rows.append(("p99 of 64 B round trips " + ("on an interactive stream " if interactive else "")
                 + "during a bulk transfer ≤ 2 ms", f"{f(p99 / 1000 if p99 is not None else None, 2)} ms", v, by))
    m = run.d.get("lariat_memory", {})
    s = m.get("idle_streams", {})
    v, by = verdict(s.get("hub_kib_per_stream"), 2.0, "lower")
    rows.append(("≤ 2 KiB hub memory per idle stream", f"{f(s.get('hub_kib_per_stream'), 2)} KiB ({f(s.get('opened'))} streams)", v, by))
    a = m.get("idle_agents", {})
    v, by = verdict(a.get("hub_kib_per_agent"), 64, "lower")
    rows.append(("≤ 64 KiB hub memory per idle agent", f"{f(a.get('hub_kib_per_agent'), 1)} KiB ({f(a.get('connected'))} agent sessions)", v, by))
    ar = m.get("agent_idle_rss_kib")
    v, by = verdict(ar / 1024 if ar else None, 16, "lower")
    rows.append(("≤ 16 MiB RSS idle agent", f"{f(ar / 1024 if ar else None, 1)} MiB", v, by))
    # LZ4 JSON over 100 Mbit/s
    lz = None
    if netns:
        lz = netns_ratio(netns, "json")
    v, by = verdict(lz, 3.0)
    rows.append(("LZ4 on JSON over 100 Mbit/s ≥ 3× compression off", f"{f(lz, 2)}×" if lz else "needs netns.sh", v, by))
    # random data compression cost
    cr = []
    for d in ("up", "down"):
        for n in run.d["config"]["streams"]:
            cr += run.ratio(run.tput("lariat", d, n), run.tput("lariat-nolz4", d, n))
    g = geomean(cr)
    cost = (1 - g) * 100 if g else None
    v, by = verdict(cost, 5.0, "lower") if cost is not None else ("not measured", "")
    extra = ""
    if netns:
        nr = netns_ratio(netns, "random")
        if nr:
            extra = f"; over 100 Mbit/s: {(1 - nr) * 100:.1f} %"
    rows.append(("random data with compression on costs ≤ 5 %", f"{f(cost, 1)} % (loopback, geo-mean of per-round ratios{extra})", v, by))
    # Issue #11: CPU against the floor measured in the same run, and throughput with iperf3 too.
    fm = med(floor_multiple(run, "lariat")) if run.d.get("cipher_speed") else None
    sm = med(floor_multiple(run, TARGET_REF)) if run.d.get("cipher_speed") else None
    v, by = verdict(fm, FLOOR_TARGET, "lower")
    rows.append((f"hub + agent CPU per GB ≤ {FLOOR_TARGET}× the floor (random data)",
                 f"{f(fm, 2)}× (ssh -R aes128-gcm: {f(sm, 2)}×)", v, by))
    ir = []
    for d in ("up", "down"):
        for n in run.d["config"].get("iperf_streams", []):
            r = run.ratio(iperf_tput(run, "lariat", d, n), iperf_tput(run, TARGET_REF, d, n))
            if r:
                ir.append((d, n, med(r)))
    g = geomean([x[2] for x in ir])
    v, by = verdict(g, IPERF_TARGET)
    rows.append((f"iperf3 throughput ≥ {IPERF_TARGET}× ssh -R aes128-gcm",
                 f"{f(g, 2)}× (geo-mean; " + ", ".join(f"{d} -P {n}: {x:.2f}" for d, n, x in ir) + ")" if ir else "–",
                 v, by))
    m_, v_, b = burst_target(brun)
    rows.append((f"{f(run.d['config'].get('burst_count', 1000))}-connection burst: {BURST_TARGET_REFUSED} refused", m_, v_, b))
    lines.append("\n| target | measured | verdict | ratio to target |")
    lines.append("|---|---|---|---|")
    for t, m_, v_, b in rows:
        lines.append(f"| {t} | {m_} | {v_} | {b} |")


def netns_ratio(netns, data, link="100mbit"):
    """Median per-round ratio lariat (LZ4) / lariat-nolz4 for a data shape on the plain link."""
    ss = netns.get("samples", [])
    on = {s["round"]: s.get("mib_per_s") for s in ss if s.get("route") == "lariat" and s.get("data") == data and s.get("link") == link}
    off = {s["round"]: s.get("mib_per_s") for s in ss if s.get("route") == "lariat-nolz4" and s.get("data") == data and s.get("link") == link}
    r = [on[k] / off[k] for k in on if k in off and on[k] and off[k]]
    return med(r)


def netns_section(netns, lines):
    ss = netns.get("samples", [])
    links = []
    for s in ss:
        if s.get("link") not in links:
            links.append(s["link"])
    lines.append(f"\nCommand: `{netns.get('command', '')}`. {netns.get('description', '')}\n")
    routes = [r for r in ["lariat", "lariat-nolz4", "ssh-aes128gcm", "ssh-aes128gcm-C"] if any(s.get("route") == r for s in ss)]
    lines.append("| link | data | " + " | ".join(routes) + " | LZ4 on ÷ off |")
    lines.append("|---" * (len(routes) + 3) + "|")
    for link in links:
        for data in ("json", "random"):
            row = [link, data]
            for r in routes:
                row.append(cell([s.get("mib_per_s") for s in ss if s.get("route") == r and s.get("data") == data and s.get("link") == link], 1))
            row.append(f(netns_ratio(netns, data, link), 2))
            lines.append("| " + " | ".join(row) + " |")
    lines.append("\nMiB/s of payload, 1 stream target → client, median (min–max) over rounds.")


def charts(run, outdir, mode):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []
    streams = run.d["config"]["streams"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), sharey=True)
    width = 0.8 / len(streams)
    for ax, direction in zip(axes, ("up", "down")):
        for i, n in enumerate(streams):
            ys, lo, hi = [], [], []
            for route in run.routes:
                t = list(run.tput(route, direction, n).values())
                m = med(t) or 0
                a, b = rng(t)
                ys.append(m)
                lo.append(m - (a or m))
                hi.append((b or m) - m)
            xs = [j + i * width for j in range(len(run.routes))]
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=f"{n} stream{'s' if n > 1 else ''}")
        ax.set_xticks([j + width * (len(streams) - 1) / 2 for j in range(len(run.routes))])
        ax.set_xticklabels(run.routes, rotation=30, ha="right")
        ax.set_title(f"bulk {direction} (random data)")
        ax.set_ylabel("MiB/s (median, min–max)")
        ax.grid(axis="y", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    p = os.path.join(outdir, f"throughput-{mode}.png")
    fig.savefig(p, dpi=110)
    plt.close(fig)
    made.append(p)

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    keys = ("p50_us", "p90_us", "p99_us", "max_us")
    width = 0.8 / len(keys)
    for ax, (scenario, title) in zip(axes, (("idle", "64 B round trips, idle"), ("bulk", "64 B round trips during a bulk download"))):
        for i, k in enumerate(keys):
            ys = [med(list(run.lat(r, 64, scenario, k).values())) or 0 for r in run.routes]
            ax.bar([j + i * width for j in range(len(run.routes))], ys, width, label=k.replace("_us", ""))
        ax.set_yscale("log")
        ax.set_xticks([j + width * 1.5 for j in range(len(run.routes))])
        ax.set_xticklabels(run.routes, rotation=30, ha="right")
        ax.set_title(title)
        ax.set_ylabel("µs (log scale, median over rounds)")
        ax.grid(axis="y", alpha=0.3)
        if scenario == "bulk":
            ax.axhline(2000, color="red", lw=1, ls="--", label="target p99 2 ms")
        ax.legend(fontsize=8)
    fig.tight_layout()
    p = os.path.join(outdir, f"latency-{mode}.png")
    fig.savefig(p, dpi=110)
    plt.close(fig)
    made.append(p)
    return made


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--charts", required=True)
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    runs, netns, partials = {}, {}, {}
    for path in a.files:
        with open(path) as fh:
            d = json.load(fh)
        if d.get("kind") == "netns":
            netns[d["mode"]] = d
        elif d.get("samples") and d.get("scenarios"):
            # `bench.py --scenarios …`: only what the main run of its mode lacks is taken from it.
            partials.setdefault(d["mode"], []).append(Run(d))
        elif d.get("samples"):
            runs[d["mode"]] = d
    lines = ["# Lariat tunnel benchmark results", "",
             "Generated by `perf/scripts/report.py` from `perf/results/*.json`; do not edit by hand. "
             "How to run and the JSON schema: `perf/README.md`.", ""]
    for mode in ("full", "quick"):
        if mode not in runs:
            continue
        run = Run(runs[mode])
        brun = burst_run(run, partials.get(mode, []))
        d = run.d
        m = d["machine"]
        lines.append(f"## {mode} run ({d['started']}, {d.get('duration_s')} s)\n")
        lines.append(f"Command: `{d.get('command')}`  ")
        lines.append(f"Machine: {m['cpu_model']}, {m['nproc']} CPUs (nproc), AES-NI {'yes' if m.get('aes_ni') else 'no'}, "
                     f"{m['mem_total_mib']} MiB RAM, Linux {m['kernel']}; load average at start {' '.join(m.get('loadavg_start', []))}, "
                     f"at end {' '.join(m.get('loadavg_end', []))}.  ")
        lines.append("Versions: " + "; ".join(f"{k}: {v}" for k, v in m.get("versions", {}).items()) + "  ")
        c = d["config"]
        lines.append(f"Rounds: {c['rounds']}, routes interleaved (order rotated each round); bulk runs bounded to "
                     f"{c['tput_seconds']} s each (bytes acknowledged by the target by then count), latency "
                     f"{c['lat_count']} × 64 B / {c['lat16_count']} × 16 KiB back to back (≤ {c['lat_seconds']} s).\n")
        lines.append("```\n" + m.get("free", "") + "\n```\n")
        lines.append("Routes:\n")
        for r in d.get("routes", []):
            lines.append(f"- **{r['name']}**: {r['description']}" + (f" (processes: {', '.join(r['processes'])})" if r["processes"] else ""))
        lines.append("\n### Targets\n")
        targets_section(run, netns.get(mode) or netns.get("full") or netns.get("quick"), lines, brun)
        lines.append("\n### Bulk throughput\n")
        throughput_section(run, lines)
        lines.append("\n### Bulk throughput, Kubernetes-like JSON\n")
        throughput_section(run, lines, data="json")
        lines.append("\n### Latency, idle route (µs)\n")
        latency_section(run, lines)
        lines.append("\n### Latency under a concurrent bulk transfer (head-of-line)\n")
        hol_section(run, lines)
        lines.append("\n### CPU cost\n")
        cpu_section(run, lines)
        lines.append("\n### CPU floor (issue #11)\n")
        floor_section(run, lines)
        lines.append("\n### iperf3 as a second load generator\n")
        iperf_section(run, lines)
        lines.append("\n### Connection open rate\n")
        open_section(run, lines)
        lines.append("\n### Burst of simultaneous connections (issue #11)\n")
        burst_section(brun, run, lines)
        lines.append("\n### Lariat memory\n")
        memory_section(run, lines)
        made = charts(run, a.charts, mode)
        if made:
            lines.append("\n### Charts\n")
            rel = os.path.relpath(a.charts, os.path.dirname(os.path.abspath(a.out)))
            for p in made:
                lines.append(f"![{os.path.basename(p)}]({rel}/{os.path.basename(p)})")
        lines.append("")
    for mode, n in netns.items():
        lines.append(f"## Network namespaces, 100 Mbit/s ({mode}, {n.get('started')})\n")
        netns_section(n, lines)
        lines.append("")
    # Sections written by other tools (flood.py, api_bench.py) sit below KEPT_MARKER and survive.
    kept = ""
    if os.path.exists(a.out):
        with open(a.out) as fh:
            old = fh.read()
        if KEPT_MARKER in old:
            kept = old[old.index(KEPT_MARKER):]
    with open(a.out, "w") as fh:
        fh.write("\n".join(lines) + "\n" + (("\n" + kept) if kept else ""))


KEPT_MARKER = "<!-- Sections below come from other scripts (flood.py, api_bench.py); report.py keeps them. -->"


if __name__ == "__main__":
    main()
