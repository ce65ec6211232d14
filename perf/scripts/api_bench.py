#!/usr/bin/env python3
"""Authenticated API GETs through a real `lariat-hub serve`, on SQLite and on a real etcd.

Issue #8 ("Must show", perf): authenticated GETs per second and their p99 through the HTTPS
API with 1,000 clusters and 10,000 tokens in the store, on SQLite and on etcd in the same run,
with the hub's CPU per 1,000 requests (utime+stime from /proc/PID/stat, hub process only).

For each store: a fresh hub (and, for etcd, a fresh etcd on loopback ports from the kernel) is
started; the admin logs in with the bootstrap password and changes it; the clusters and the
tokens are created through the API (keep-alive connections, a few writers); then CLIENTS
processes, each with one keep-alive TLS connection and a bearer of its own drawn from the
10,000 tokens, send `GET /v3/clusters/<random one of the 1,000>` back to back for SECONDS.
Every request carries a bearer the hub checks, and every answer must be 200.

The clients are Python (`http.client` over `ssl`, trusting only the hub's CA): on a small
machine they take CPU from the hub, so the rate is a floor; the hub's CPU per 1,000 requests
is the figure that does not depend on the client. Traffic goes to 127.0.0.1 only.

Usage (from the repository root):

    python3 perf/scripts/api_bench.py --hub .build-cpe2e/release/lariat-hub \
        --out perf/results/api.json
"""

import argparse
import http.client
import json
import multiprocessing
import os
import random
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """utime+stime of one process (not its children), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Etcd:
    """A throwaway etcd on loopback (client and peer ports from the kernel)."""

    def __init__(self, folder):
        self.folder = folder
        self.client = free_port()
        peer = free_port()
        c, p = f"http://{HOST}:{self.client}", f"http://{HOST}:{peer}"
        self.proc = subprocess.Popen(
            ["etcd", "--name", "bench", "--data-dir", os.path.join(folder, "etcd"),
             "--listen-client-urls", c, "--advertise-client-urls", c,
             "--listen-peer-urls", p, "--initial-advertise-peer-urls", p,
             "--initial-cluster", f"bench={p}", "--log-level", "warn"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(folder, "etcd.log"), "w"))
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                conn = http.client.HTTPConnection(HOST, self.client, timeout=1)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("etcd did not start")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Hub:
    def __init__(self, binary, folder, password, store_args, loops):
        self.data = os.path.join(folder, "hub-data")
        port_file = os.path.join(folder, "port")
        env = dict(os.environ, LARIAT_BOOTSTRAP_PASSWORD=password)
        self.log_path = os.path.join(folder, "hub.log")
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", f"{HOST}:0", "--data", self.data, "--port-file", port_file,
             "--loops", str(loops)] + store_args,
            env=env, stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("hub did not start:\n" + open(self.log_path).read()[-3000:])
            time.sleep(0.1)
        self.port = int(open(port_file).read().split()[0])
        self.ca = os.path.join(self.data, "tls", "ca.pem")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Client:
    """One keep-alive HTTPS connection that trusts only the hub's CA."""

    def __init__(self, port, ca, bearer=None):
        ctx = ssl.create_default_context(cafile=ca)
        self.conn = http.client.HTTPSConnection(HOST, port, context=ctx, timeout=30)
        self.bearer = bearer

    def call(self, method, path, body=None, bearer=None):
        headers = {}
        token = bearer or self.bearer
        if token:
            headers["Authorization"] = "Bearer " + token
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=data, headers=headers)
        r = self.conn.getresponse()
        payload = r.read()
        return r.status, payload


def login(port, ca, username, password):
    status, body = Client(port, ca).call("POST", "/v3-public/localProviders/local?action=login",
                                         {"username": username, "password": password})
    if status not in (200, 201):
        raise RuntimeError(f"login: {status} {body[:300]!r}")
    return json.loads(body)["token"]


def populate(port, ca, admin, clusters, tokens, writers):
    """Creates the clusters and the tokens through the API; returns the token bearers and rates."""
    bearers = []
    lock = threading.Lock()
    failures = []

    def work(jobs):
        c = Client(port, ca, admin)
        for kind, i in jobs:
            if kind == "cluster":
                status, body = c.call("POST", "/v3/clusters",
                                      {"metadata": {"name": f"bench-{i:05d}"}, "spec": {"displayName": f"bench {i}"}})
            else:
                status, body = c.call("POST", "/v3/tokens", {"description": f"bench {i}", "ttl": 0})
            if status != 201:
                failures.append(f"{kind} {i}: {status} {body[:200]!r}")
                return
            if kind == "token":
                with lock:
                    bearers.append(json.loads(body)["token"])

    rates = {}
    for kind, count in (("cluster", clusters), ("token", tokens)):
        jobs = [(kind, i) for i in range(count)]
        started = time.time()
        threads = [threading.Thread(target=work, args=(jobs[w::writers],)) for w in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failures:
            raise RuntimeError("populate failed: " + "; ".join(failures[:3]))
        rates[kind + "_creates_per_second"] = round(count / (time.time() - started), 1)
    return bearers, rates


def client_process(port, ca, bearer, clusters, seconds, warmup, queue, go):
    c = Client(port, ca, bearer)
    rnd = random.Random(bearer)
    paths = [f"/v3/clusters/bench-{i:05d}" for i in range(clusters)]
    end_warmup = time.time() + warmup
    while time.time() < end_warmup:
        c.call("GET", rnd.choice(paths))
    queue.put(("ready", None))
    go.wait()  # every client starts measuring together, after all have warmed up
    latencies = []
    bad = 0
    stop = time.time() + seconds
    while True:
        t0 = time.perf_counter()
        status, _ = c.call("GET", rnd.choice(paths))
        latencies.append(time.perf_counter() - t0)
        if status != 200:
            bad += 1
        if time.time() >= stop:
            break
    queue.put(("done", (latencies, bad)))


def measure(hub, bearers, clusters, clients, seconds, warmup):
    queue = multiprocessing.Queue()
    go = multiprocessing.Event()
    chosen = random.sample(bearers, clients)
    procs = [multiprocessing.Process(target=client_process,
                                     args=(hub.port, hub.ca, b, clusters, seconds, warmup, queue, go))
             for b in chosen]
    for p in procs:
        p.start()
    for _ in procs:
        assert queue.get()[0] == "ready"
    cpu0, t0 = cpu_seconds(hub.proc.pid), time.time()
    go.set()
    results = [queue.get()[1] for _ in procs]
    cpu1, t1 = cpu_seconds(hub.proc.pid), time.time()
    for p in procs:
        p.join()
    latencies = sorted(x for lat, _ in results for x in lat)
    bad = sum(b for _, b in results)
    n = len(latencies)
    elapsed = t1 - t0

    def pct(q):
        return round(latencies[min(n - 1, int(q * n))] * 1e6)

    return {
        "requests": n, "non_200": bad, "seconds": round(elapsed, 3),
        "requests_per_second": round(n / elapsed, 1),
        "latency_us": {"p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99), "max": round(latencies[-1] * 1e6)},
        "hub_cpu_seconds": round(cpu1 - cpu0, 3),
        "hub_cpu_ms_per_1000_requests": round((cpu1 - cpu0) * 1e6 / n, 1),
        "hub_cpu_share_of_one_core": round((cpu1 - cpu0) / elapsed, 3),
        "hub_rss_mib": round(rss_kib(hub.proc.pid) / 1024, 1),
    }


def run_store(args, store):
    folder = tempfile.mkdtemp(prefix=f"lariat-apibench-{store}-")
    etcd = hub = None
    try:
        store_args = []
        if store == "etcd":
            etcd = Etcd(folder)
            store_args = ["--etcd", f"{HOST}:{etcd.client}", "--etcd-prefix", "bench"]
        password = "bench-bootstrap-" + os.urandom(6).hex()
        hub = Hub(args.hub, folder, password, store_args, args.loops)
        first = login(hub.port, hub.ca, "admin", password)
        new_password = "bench-admin-" + os.urandom(8).hex()
        status, body = Client(hub.port, hub.ca, first).call(
            "POST", "/v3/users?action=changepassword", {"currentPassword": password, "newPassword": new_password})
        if status != 200:
            raise RuntimeError(f"change password: {status} {body[:200]!r}")
        admin = login(hub.port, hub.ca, "admin", new_password)
        started = time.time()
        bearers, rates = populate(hub.port, hub.ca, admin, args.clusters, args.tokens, args.writers)
        print(f"{store}: {args.clusters} clusters and {args.tokens} tokens created in "
              f"{time.time() - started:.1f} s {rates}", flush=True)
        rounds = []
        for r in range(args.rounds):
            m = measure(hub, bearers, args.clusters, args.clients, args.seconds, args.warmup)
            print(f"{store} round {r + 1}: {m}", flush=True)
            if m["non_200"]:
                raise RuntimeError(f"{m['non_200']} answers were not 200")
            rounds.append(m)
        best = max(rounds, key=lambda m: m["requests_per_second"])
        return {"store": store, "populate": rates, "rounds": rounds, "best": best,
                "hub_rss_mib_after": round(rss_kib(hub.proc.pid) / 1024, 1)}
    finally:
        if hub:
            hub.stop()
        if etcd:
            etcd.stop()
        shutil.rmtree(folder, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hub", required=True, help="a release lariat-hub")
    ap.add_argument("--out", default="perf/results/api.json")
    ap.add_argument("--stores", default="sqlite,etcd")
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--tokens", type=int, default=10000)
    ap.add_argument("--writers", type=int, default=4, help="keep-alive connections that populate the store")
    ap.add_argument("--clients", type=int, default=3, help="client processes, one keep-alive connection each")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--loops", type=int, default=2, help="the hub's worker loops")
    ap.add_argument("--note", default="", help="free text kept in the results (machine load and the like)")
    args = ap.parse_args()

    load_before = os.getloadavg()
    results = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cores": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before]},
        "settings": {k: v for k, v in vars(args).items() if k not in ("out",)},
        "stores": [run_store(args, s) for s in args.stores.split(",")],
    }
    results["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
