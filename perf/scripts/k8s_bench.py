#!/usr/bin/env python3
"""The Kubernetes path (issue #9, perf): kubectl and API clients through hub + agent vs direct.

One run starts the stand-in API server (../shared/kube-standin, `--server-version v1.32.4`, so
the kubectl dispatcher runs kubectl 1.32, which speaks WebSockets), a release `lariat-hub serve`
with the Kubernetes audit log, and a release `lariat-agent` whose `k8s-proxy` target holds the
stand-in's proxy token. The admin logs in, changes the bootstrap password and logs in again; its
API token is the bearer of the hub kubeconfig (server https://HUB/k8s/clusters/local). The direct
kubeconfig points at the stand-in with its admin token. Each part then interleaves the two paths
(the machine is shared and noisy: the figures to quote are ratios taken within one run):

1. exec: per round, on each path in turn (the order alternates), `kubectl exec p1 -- true` (the
   baseline: kubectl start, discovery, upgrade, process start) and `kubectl exec -i p1 -- cat` of
   10 MiB random, checked byte for byte. Ratio hub/direct of the medians of wall time, and of the
   transfer part (cat minus true, per round).
2. GET: `GET /api/v1/namespaces/default/pods/p1` from one keep-alive TLS connection per path
   (Python http.client, bearer: the Lariat token to the hub, the stand-in's admin token direct),
   alternating blocks of 100 requests, p50/p99/p99.9 and the added p50/p99.
3. GET under bulk: the same GETs while `kubectl port-forward` through the hub carries a
   continuous download (a local TCP source streams random bytes to whoever connects; a reader
   process pulls for the whole window); idle and loaded blocks alternate round by round. Direct
   GETs are measured in the same windows: the stand-in is one Python event loop that also relays
   the port-forward, so its own slow-down under load is the part the hub is not responsible for.
4. Keystroke echo: exec sessions of the kubernetes Python client running `stty raw -echo; cat`
   (one byte out, time until it comes back), sample by sample in turn on three sessions: tty
   through the hub (interactive class), tty direct, and no tty through the hub (bulk class, a
   control: the same bytes on the class a shell must not get); idle and during a loop of
   `kubectl cp` of a 200 MiB file into the pod through the hub, alternating round by round.

CPU seconds (utime+stime from /proc/PID/stat) of hub, agent and stand-in are recorded per part.
The stand-in's request log shows which upgrade each session used (WebSocket subprotocol or SPDY)
and the hub's audit log the sessions' commands and tty; the class follows from those by the
hub's rule (tty or attach: interactive; other exec and port-forward: bulk).

Every process started here is killed on exit (also on failure or Ctrl-C); the temporary folder
is removed. Network: 127.0.0.1 only.

Usage (from the repository root; `make bench-k8s` builds and runs it):

    python3 perf/scripts/k8s_bench.py --bin .build-perf/release --out perf/results/k8s.json \
        --results-md perf/RESULTS.md
"""

import argparse
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
CLUSTER = "local"
POD = "p1"
POD_PATH = f"/api/v1/namespaces/default/pods/{POD}"
STANDIN_ADMIN_TOKEN = "bench-admin-token"
STANDIN_PROXY_TOKEN = "bench-proxy-token"
SECTION_TITLE = "## The Kubernetes path: kubectl and API requests through hub and agent (issue #9)"
KEPT_MARKER = "<!-- Sections below come from other scripts (flood.py, api_bench.py); report.py keeps them. -->"

# Small child programs, run as processes of their own so the measuring process shares no GIL
# with them.
SOURCE_PROGRAM = r"""
import os, socket, sys, threading
payload = os.urandom(1 << 20)
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(16)
print(srv.getsockname()[1], flush=True)
def watch(c):
    # The peer's FIN (the reader went away) ends this connection: without it the stand-in would
    # keep relaying into a port-forward stream that kubectl has dropped.
    try:
        while c.recv(65536):
            pass
    except OSError:
        pass
    try:
        c.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
def feed(c):
    threading.Thread(target=watch, args=(c,), daemon=True).start()
    try:
        while True:
            c.sendall(payload)
    except OSError:
        pass
    finally:
        c.close()
while True:
    c, _ = srv.accept()
    threading.Thread(target=feed, args=(c,), daemon=True).start()
"""

READER_PROGRAM = r"""
import json, signal, socket, sys, time
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(0.2)
buf = bytearray(256 * 1024)
total, t0 = 0, time.time()
print("connected", flush=True)
while not stop:
    try:
        n = s.recv_into(buf)
    except socket.timeout:
        continue
    if n == 0:
        break
    total += n
elapsed = time.time() - t0
print(json.dumps({"bytes": total, "seconds": round(elapsed, 3), "eof": not stop}), flush=True)
"""


def cpu_seconds(pid):
    """utime+stime of one process (all its threads, not its children), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except OSError:
        return float("nan")


def pct(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def summary_us(seconds):
    xs = sorted(seconds)
    return {"count": len(xs), "p50_us": round(pct(xs, 0.50) * 1e6), "p90_us": round(pct(xs, 0.90) * 1e6),
            "p99_us": round(pct(xs, 0.99) * 1e6), "p999_us": round(pct(xs, 0.999) * 1e6),
            "max_us": round(xs[-1] * 1e6), "mean_us": round(statistics.fmean(xs) * 1e6)}


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def random_file(path, size):
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(os.urandom(n))
            left -= n


class Processes:
    """Every child started here, killed (its own process group) on exit, even on failure."""

    def __init__(self):
        self.children = []

    def start(self, name, argv, **kwargs):
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        proc = subprocess.Popen(argv, start_new_session=True, **kwargs)
        self.children.append((name, proc))
        return proc

    def stop(self, proc, timeout=10):
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        # A process group can outlive its leader (a kubectl the cp loop had started).
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def stop_all(self):
        """Clients first, then the hub before the agent: stopped first, the agent would wait its
        whole shutdown grace for the streams the hub keeps open to it (the idle pooled ones)."""
        rank = {"hub": 1, "agent": 2, "stand-in": 3}
        for _, proc in sorted(reversed(self.children), key=lambda c: rank.get(c[0], 0)):
            self.stop(proc)


def wait_for(predicate, seconds, what, proc=None, log=None):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.1)
    tail = ""
    if log and os.path.exists(log):
        tail = "\n" + open(log, errors="replace").read()[-3000:]
    raise RuntimeError(f"{what} did not happen{tail}")


class HTTPSClient:
    """One keep-alive TLS connection that trusts one CA, with a bearer."""

    def __init__(self, port, ca, bearer, prefix="", timeout=30):
        ctx = ssl.create_default_context(cafile=ca)
        self.conn = http.client.HTTPSConnection(HOST, port, context=ctx, timeout=timeout)
        self.bearer = bearer
        self.prefix = prefix

    def call(self, method, path, body=None, bearer=None):
        headers = {"Accept": "application/json"}
        token = bearer or self.bearer
        if token:
            headers["Authorization"] = "Bearer " + token
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        self.conn.request(method, self.prefix + path, body=data, headers=headers)
        r = self.conn.getresponse()
        return r.status, r.read()

    def timed_get(self, path):
        t0 = time.perf_counter()
        status, body = self.call("GET", path)
        return status, time.perf_counter() - t0

    def close(self):
        self.conn.close()


class Rig:
    """Stand-in API server, hub and agent, kubeconfigs for both paths."""

    def __init__(self, args, procs, folder):
        self.args, self.procs, self.folder = args, procs, folder
        self.unsettled = []
        self.path = lambda *p: os.path.join(folder, *p)

    def start(self):
        a, p = self.args, self.path
        os.makedirs(p("pods"))
        self.standin = self.procs.start(
            "stand-in", [sys.executable, a.standin, "--https-port", "0", "--bind", HOST,
                         "--token", STANDIN_ADMIN_TOKEN, "--proxy-token", STANDIN_PROXY_TOKEN,
                         "--pod", f"default/{POD}", "--server-version", a.server_version,
                         "--workdir", p("pods"), "--ready-file", p("standin.json")],
            stdout=open(p("standin.out"), "w"), stderr=open(p("standin.log"), "w"))
        wait_for(lambda: os.path.exists(p("standin.json")) and os.path.getsize(p("standin.json")) > 0,
                 30, "the stand-in's start", self.standin, p("standin.log"))
        ready = json.load(open(p("standin.json")))
        self.standin_port, self.standin_ca = ready["https_port"], ready["ca_file"]
        self.standin_url = ready["https_url"]

        password = "bench-bootstrap-" + os.urandom(6).hex()
        env = dict(os.environ, LARIAT_BOOTSTRAP_PASSWORD=password)
        self.hub = self.procs.start(
            "hub", [os.path.join(a.bin, "lariat-hub"), "serve", "--listen", f"{HOST}:0", "--data", p("hub"),
                    "--port-file", p("ports"), "--loops", str(a.loops), "--k8s-audit-log", p("audit.log")],
            env=env, stdout=open(p("hub.log"), "w"), stderr=subprocess.STDOUT)
        wait_for(lambda: os.path.exists(p("ports")) and os.path.getsize(p("ports")) > 0, 60,
                 "the hub's start", self.hub, p("hub.log"))
        self.hub_port = int(open(p("ports")).read().split()[0])
        self.hub_ca = p("hub", "tls", "ca.pem")

        with open(p("sa.token"), "w") as f:
            f.write(STANDIN_PROXY_TOKEN + "\n")
        checksum = sha256_file(self.hub_ca)
        registration = open(p("hub", f"{CLUSTER}.token")).read().strip()
        self.agent = self.procs.start(
            "agent", [os.path.join(a.bin, "lariat-agent"), "--server", f"https://{HOST}:{self.hub_port}",
                      "--cluster", CLUSTER, "--agent-id", "bench-agent", "--token", registration,
                      "--ca-checksum", checksum, "--k8s-api", self.standin_url,
                      "--k8s-token-file", p("sa.token"), "--k8s-ca-file", self.standin_ca],
            stdout=open(p("agent.log"), "w"), stderr=subprocess.STDOUT)

        self.token = self.login(password)
        self.write_kubeconfigs()
        hub_get = HTTPSClient(self.hub_port, self.hub_ca, self.token, f"/k8s/clusters/{CLUSTER}")
        wait_for(lambda: self.try_status(hub_get, "/version") == 200, 30,
                 "a 200 from /version through hub and agent", self.agent, p("agent.log"))
        hub_get.close()
        for path in ("hub", "direct"):   # fills each kubectl's discovery cache
            self.kubectl(path, ["get", "pods"], check=True)

    @staticmethod
    def try_status(client, path):
        try:
            return client.call("GET", path)[0]
        except OSError:
            client.conn.close()
            return None

    def login(self, bootstrap):
        c = HTTPSClient(self.hub_port, self.hub_ca, None)

        def login(password):
            status, body = c.call("POST", "/v3-public/localProviders/local?action=login",
                                  {"username": "admin", "password": password})
            if status not in (200, 201):
                raise RuntimeError(f"login: {status} {body[:300]!r}")
            return json.loads(body)["token"]

        first = login(bootstrap)
        new_password = "bench-admin-" + os.urandom(8).hex()
        status, body = c.call("POST", "/v3/users?action=changepassword",
                              {"currentPassword": bootstrap, "newPassword": new_password}, bearer=first)
        if status != 200:
            raise RuntimeError(f"change password: {status} {body[:300]!r}")
        token = login(new_password)
        c.close()
        return token

    def write_kubeconfigs(self):
        p = self.path
        configs = {
            "hub": (f"https://{HOST}:{self.hub_port}/k8s/clusters/{CLUSTER}", self.hub_ca, self.token),
            "direct": (f"https://{HOST}:{self.standin_port}", self.standin_ca, STANDIN_ADMIN_TOKEN),
        }
        self.kube_env = {}
        for name, (server, ca, token) in configs.items():
            with open(p(f"kubeconfig-{name}"), "w") as f:
                f.write("apiVersion: v1\nkind: Config\n"
                        f"clusters: [{{name: c, cluster: {{server: \"{server}\", certificate-authority: \"{ca}\"}}}}]\n"
                        f"users: [{{name: u, user: {{token: \"{token}\"}}}}]\n"
                        "contexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n")
            self.kube_env[name] = dict(os.environ, KUBECONFIG=p(f"kubeconfig-{name}"),
                                       KUBECACHEDIR=p(f"kubecache-{name}"))

    def kubectl(self, path, argv, check=False, **kwargs):
        r = subprocess.run([self.args.kubectl] + argv, env=self.kube_env[path], capture_output=True, **kwargs)
        if check and r.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(argv)} ({path}): {r.returncode} {r.stderr[-1000:]!r}")
        return r

    def cpu(self):
        return {"hub": cpu_seconds(self.hub.pid), "agent": cpu_seconds(self.agent.pid),
                "standin": cpu_seconds(self.standin.pid)}

    @staticmethod
    def cpu_delta(before, after):
        return {k: round(after[k] - before[k], 3) for k in before}

    def settle(self, seconds=10.0, busy=0.05):
        """Waits until hub and agent are idle (a stopped bulk transfer still drains what its windows
        held), so the next window measures only itself. Records a window that never got idle."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            before = self.cpu()
            time.sleep(0.25)
            used = Rig.cpu_delta(before, self.cpu())
            if used["hub"] + used["agent"] <= busy * 0.25:
                return True
        self.unsettled.append(time.strftime("%H:%M:%S"))
        print(f"hub and agent still busy after {seconds} s of waiting: {used}", flush=True)
        return False

    def python_client(self, path):
        from kubernetes import client
        cfg = client.Configuration()
        if path == "hub":
            cfg.host = f"https://{HOST}:{self.hub_port}/k8s/clusters/{CLUSTER}"
            cfg.ssl_ca_cert, token = self.hub_ca, self.token
        else:
            cfg.host = f"https://{HOST}:{self.standin_port}"
            cfg.ssl_ca_cert, token = self.standin_ca, STANDIN_ADMIN_TOKEN
        cfg.api_key = {"authorization": "Bearer " + token}
        return client.CoreV1Api(client.ApiClient(cfg))

    def standin_requests(self, prefix):
        # Short attempts: the first connection the stand-in accepts after a tty exec ended can
        # stall (its pty's stale reader registration on a reused descriptor).
        for attempt in range(5):
            c = HTTPSClient(self.standin_port, self.standin_ca, None, timeout=5)
            try:
                status, body = c.call("GET", "/_standin/requests?pathPrefix=" + prefix)
                return json.loads(body)["requests"] if status == 200 else []
            except OSError as error:
                print(f"stand-in request log: {error}", flush=True)
            finally:
                c.close()
        return []


# 1. kubectl exec -i cat of 10 MiB

def bench_exec(rig, args):
    big, out = rig.path("exec-in"), rig.path("exec-out")
    random_file(big, args.exec_bytes)
    digest = sha256_file(big)
    rows, errors = [], []
    for r in range(args.exec_rounds):
        order = ("hub", "direct") if r % 2 == 0 else ("direct", "hub")
        for path in order:
            row = {"round": r, "path": path}
            for kind, argv, stdin in (("true", ["exec", POD, "--", "true"], None),
                                      ("cat", ["exec", "-i", POD, "--", "cat"], big)):
                cpu0 = rig.cpu()
                t0 = time.perf_counter()
                with open(stdin or os.devnull, "rb") as fin, open(out, "wb") as fout:
                    p = subprocess.run([args.kubectl] + argv, env=rig.kube_env[path], stdin=fin, stdout=fout,
                                       stderr=subprocess.PIPE)
                row[f"{kind}_s"] = round(time.perf_counter() - t0, 4)
                row[f"{kind}_cpu_s"] = Rig.cpu_delta(cpu0, rig.cpu())
                if p.returncode != 0:
                    errors.append(f"round {r} {path} {kind}: exit {p.returncode} {p.stderr[-500:]!r}")
                    row[f"{kind}_error"] = p.returncode
            row["exact"] = os.path.getsize(out) == args.exec_bytes and sha256_file(out) == digest
            if not row["exact"]:
                errors.append(f"round {r} {path}: output of {os.path.getsize(out)} bytes differs from the input")
            rows.append(row)
            print(f"exec round {r + 1} {path}: true {row['true_s']:.3f} s, cat {row['cat_s']:.3f} s, "
                  f"exact {row['exact']}", flush=True)

    def med(path, key):
        return statistics.median(x[key] for x in rows if x["path"] == path)

    per_round = []
    for r in range(args.exec_rounds):
        h = next(x for x in rows if x["round"] == r and x["path"] == "hub")
        d = next(x for x in rows if x["round"] == r and x["path"] == "direct")
        per_round.append({"cat": h["cat_s"] / d["cat_s"],
                          "transfer": (h["cat_s"] - h["true_s"]) / max(1e-3, d["cat_s"] - d["true_s"])})
    summary = {p: {"true_median_s": round(med(p, "true_s"), 4), "cat_median_s": round(med(p, "cat_s"), 4),
                   "transfer_median_s": round(statistics.median(x["cat_s"] - x["true_s"]
                                                                for x in rows if x["path"] == p), 4)}
               for p in ("hub", "direct")}
    for p in ("hub", "direct"):
        summary[p]["mib_per_s_each_way"] = round(args.exec_bytes / 2**20 / summary[p]["transfer_median_s"], 1)
    hub_cpu = [x["cat_cpu_s"] for x in rows if x["path"] == "hub"]
    summary["ratio_cat_median"] = round(summary["hub"]["cat_median_s"] / summary["direct"]["cat_median_s"], 3)
    summary["ratio_cat_per_round_median"] = round(statistics.median(x["cat"] for x in per_round), 3)
    summary["ratio_transfer_median"] = round(summary["hub"]["transfer_median_s"] /
                                             summary["direct"]["transfer_median_s"], 3)
    summary["ratio_transfer_per_round_median"] = round(statistics.median(x["transfer"] for x in per_round), 3)
    summary["ratio_true_median"] = round(summary["hub"]["true_median_s"] / summary["direct"]["true_median_s"], 3)
    summary["hub_cpu_s_per_cat_median"] = round(statistics.median(c["hub"] for c in hub_cpu), 3)
    summary["agent_cpu_s_per_cat_median"] = round(statistics.median(c["agent"] for c in hub_cpu), 3)
    summary["all_exact"] = all(x["exact"] for x in rows)
    os.remove(out)
    return {"bytes": args.exec_bytes, "rounds": rows, "summary": summary, "errors": errors}


# 2 and 3. GETs idle and under a bulk port-forward

class BulkPortForward:
    """A TCP source, `kubectl port-forward` through the hub to it, and a reader process."""

    def __init__(self, rig, procs):
        self.rig, self.procs = rig, procs

    def start(self):
        self.source = self.procs.start("source", [sys.executable, "-c", SOURCE_PROGRAM],
                                       stdout=subprocess.PIPE, text=True)
        source_port = int(self.source.stdout.readline())
        with socket.socket() as s:
            s.bind((HOST, 0))
            self.local_port = s.getsockname()[1]
        log = self.rig.path("port-forward.log")
        self.forward = self.procs.start(
            "port-forward", [self.rig.args.kubectl, "port-forward", "--address", HOST, f"pod/{POD}",
                             f"{self.local_port}:{source_port}"],
            env=self.rig.kube_env["hub"], stdout=open(log, "w"), stderr=subprocess.STDOUT)
        wait_for(lambda: "Forwarding from" in open(log).read(), 30, "kubectl port-forward", self.forward, log)

    def start_reader(self):
        self.reader = self.procs.start("reader", [sys.executable, "-c", READER_PROGRAM, str(self.local_port)],
                                       stdout=subprocess.PIPE, text=True)
        if self.reader.stdout.readline().strip() != "connected":
            raise RuntimeError("the port-forward reader did not connect")

    def stop_reader(self):
        self.reader.send_signal(signal.SIGTERM)
        line = self.reader.stdout.readline()
        self.reader.wait(10)
        result = json.loads(line) if line.strip() else {"bytes": 0, "seconds": 0, "eof": True}
        result["mib_per_s"] = round(result["bytes"] / 2**20 / max(1e-3, result["seconds"]), 1)
        return result


def get_block(clients, count, block, samples):
    """`count` GETs per path in alternating blocks of `block`; appends seconds to samples."""
    bad = 0
    done = 0
    while done < count:
        n = min(block, count - done)
        for path, c in clients.items():
            for _ in range(n):
                status, seconds = c.timed_get(POD_PATH)
                if status != 200:
                    bad += 1
                samples[path].append(seconds)
        done += n
    return bad


def bench_get(rig, args, procs):
    clients = {"hub": HTTPSClient(rig.hub_port, rig.hub_ca, rig.token, f"/k8s/clusters/{CLUSTER}"),
               "direct": HTTPSClient(rig.standin_port, rig.standin_ca, STANDIN_ADMIN_TOKEN)}
    warm = {"hub": [], "direct": []}
    bad = get_block(clients, args.get_warmup, 50, warm)
    samples = {cond: {"hub": [], "direct": []} for cond in ("idle", "bulk")}
    cpu = {cond: {"hub": 0.0, "agent": 0.0, "standin": 0.0} for cond in samples}
    bulk = BulkPortForward(rig, procs)
    bulk.start()
    transfers = []
    per_round = args.get_count // args.get_rounds
    for r in range(args.get_rounds):
        for cond in ("idle", "bulk") if r % 2 == 0 else ("bulk", "idle"):
            if cond == "bulk":
                bulk.start_reader()
                time.sleep(args.bulk_ramp)   # the transfer reaches its pace before the GETs start
            else:
                rig.settle()
            cpu0, t0 = rig.cpu(), time.time()
            bad += get_block(clients, per_round, args.get_block, samples[cond])
            for k, v in Rig.cpu_delta(cpu0, rig.cpu()).items():
                cpu[cond][k] += v
            if cond == "bulk":
                t = bulk.stop_reader()
                t["round"] = r
                t["get_window_s"] = round(time.time() - t0, 3)
                transfers.append(t)
                print(f"GET round {r + 1} under bulk: port-forward {t['mib_per_s']} MiB/s", flush=True)
            print(f"GET round {r + 1} {cond}: hub p99 {summary_us(samples[cond]['hub'][-per_round:])['p99_us']} µs,"
                  f" direct p99 {summary_us(samples[cond]['direct'][-per_round:])['p99_us']} µs", flush=True)
    for c in clients.values():
        c.close()
    forward_alive = bulk.forward.poll() is None
    result = {"requests_per_path_and_condition": per_round * args.get_rounds, "non_200": bad,
              "port_forward_alive_after": forward_alive, "bulk_transfers": transfers}
    for cond in samples:
        s = {p: summary_us(samples[cond][p]) for p in ("hub", "direct")}
        s["added_p50_us"] = s["hub"]["p50_us"] - s["direct"]["p50_us"]
        s["added_p99_us"] = s["hub"]["p99_us"] - s["direct"]["p99_us"]
        n = len(samples[cond]["hub"])
        s["cpu_s"] = {k: round(v, 3) for k, v in cpu[cond].items()}
        s["hub_cpu_ms_per_hub_get"] = round(cpu[cond]["hub"] * 1e3 / n, 3)
        s["agent_cpu_ms_per_hub_get"] = round(cpu[cond]["agent"] * 1e3 / n, 3)
        result[cond] = s
    result["hub_p99_bulk_over_idle"] = round(result["bulk"]["hub"]["p99_us"] / result["idle"]["hub"]["p99_us"], 3)
    result["direct_p99_bulk_over_idle"] = round(result["bulk"]["direct"]["p99_us"] /
                                                result["idle"]["direct"]["p99_us"], 3)
    result["bulk_mib_per_s_median"] = round(statistics.median(t["mib_per_s"] for t in transfers), 1)
    procs.stop(bulk.forward)
    procs.stop(bulk.source)
    return result


# 4. Keystroke echo during a kubectl cp loop

class EchoSession:
    """An exec of `stty raw -echo; exec cat` (tty) or `cat` through the Python client."""

    def __init__(self, rig, path, tty):
        from kubernetes.stream import stream
        api = rig.python_client(path)
        command = ["sh", "-c", "stty raw -echo; exec cat"] if tty else ["cat"]
        self.ws = stream(api.connect_get_namespaced_pod_exec, POD, "default", command=command,
                         stdin=True, stdout=True, stderr=True, tty=tty, _preload_content=False, binary=True)
        if tty:   # kubectl sends the terminal size at once; the stand-in waits for it
            self.ws.write_channel(4, json.dumps({"Width": 80, "Height": 24}))
        # Until stty has run, the terminal echoes too and cat sees only whole lines: a byte comes
        # back once, and nothing after it, only when the session is ready.
        deadline = time.time() + 20
        while True:
            self.ws.write_stdin(b"w")
            got, settle = b"", time.time() + 0.5
            while time.time() < settle:
                self.ws.update(timeout=0.1)
                got += self.ws.read_channel(1)
            if got == b"w":
                break
            if time.time() > deadline or not self.ws.is_open():
                raise RuntimeError(f"the echo session did not settle (last {got!r})")

    def echo(self, byte=b"k", timeout=10.0):
        t0 = time.perf_counter()
        self.ws.write_stdin(byte)
        got = b""
        deadline = time.time() + timeout
        while len(got) < len(byte):
            if not self.ws.is_open() or time.time() > deadline:
                raise RuntimeError(f"no echo (got {got!r}; open {self.ws.is_open()})")
            self.ws.update(timeout=1)
            got += self.ws.read_channel(1)
            err = self.ws.read_channel(2)
            if err:
                raise RuntimeError(f"stderr: {err!r}")
        if got != byte:
            raise RuntimeError(f"echo {got!r} for {byte!r}")
        return time.perf_counter() - t0

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass


class CopyLoop:
    """`kubectl cp` of one large file into the pod through the hub, again and again."""

    def __init__(self, rig, procs, source, dest):
        self.rig, self.procs, self.source, self.dest = rig, procs, source, dest
        self.log = rig.path("cp-loop.log")

    def command(self):
        return [self.rig.args.kubectl, "cp", self.source, f"default/{POD}:{self.dest}"]

    def start(self):
        script = ('while :; do s=$(date +%s.%N); "$@" >/dev/null 2>>"$LOGERR"; rc=$?; '
                  'echo "$s $(date +%s.%N) $rc" >> "$LOG"; done')
        env = dict(self.rig.kube_env["hub"], LOG=self.log, LOGERR=self.log + ".err")
        open(self.log, "w").close()
        self.t0 = time.time()
        self.proc = self.procs.start("cp-loop", ["bash", "-c", script, "cp-loop"] + self.command(), env=env)

    def wait_running(self, seconds):
        time.sleep(seconds)
        if self.proc.poll() is not None:
            raise RuntimeError("the kubectl cp loop ended")

    def stop(self):
        elapsed = time.time() - self.t0
        self.procs.stop(self.proc)
        runs = [line.split() for line in open(self.log) if line.strip()]
        ok = [r for r in runs if r[2] == "0"]
        size = os.path.getsize(self.source)
        cp_seconds = [float(r[1]) - float(r[0]) for r in ok]
        return {"completed": len(ok), "failed": len(runs) - len(ok), "window_s": round(elapsed, 2),
                "cp_seconds": [round(x, 2) for x in cp_seconds],
                "mib_per_s_completed": round(len(ok) * size / 2**20 / sum(cp_seconds), 1) if ok else 0}


def bench_echo(rig, args, procs):
    big = rig.path("cp-source")
    random_file(big, args.cp_bytes)
    dest_dir = rig.path("pods", "cp-dest")
    os.makedirs(dest_dir)
    loop = CopyLoop(rig, procs, big, os.path.join(dest_dir, "copy"))
    # One cp first, checked byte for byte: the loop copies the same way.
    t0 = time.perf_counter()
    rig.kubectl("hub", loop.command()[1:], check=True)
    first_cp_s = time.perf_counter() - t0
    cp_exact = sha256_file(os.path.join(dest_dir, "copy")) == sha256_file(big)
    print(f"kubectl cp of {args.cp_bytes >> 20} MiB through the hub: {first_cp_s:.2f} s, exact {cp_exact}", flush=True)

    variants = {"hub-tty": ("hub", True), "direct-tty": ("direct", True), "hub-notty": ("hub", False)}
    sessions = {name: EchoSession(rig, path, tty) for name, (path, tty) in variants.items()}
    samples = {cond: {name: [] for name in variants} for cond in ("idle", "bulk")}
    cpu = {cond: {"hub": 0.0, "agent": 0.0, "standin": 0.0} for cond in samples}
    copies = []
    per_round = args.echo_count // args.echo_rounds
    rnd = random.Random(9)
    for r in range(args.echo_rounds):
        for cond in ("idle", "bulk") if r % 2 == 0 else ("bulk", "idle"):
            if cond == "bulk":
                loop.start()
                loop.wait_running(args.bulk_ramp)
            else:
                rig.settle()
            cpu0 = rig.cpu()
            for i in range(per_round):
                names = list(variants)
                rnd.shuffle(names)
                for name in names:
                    byte = bytes([0x61 + (i % 26)])
                    samples[cond][name].append(sessions[name].echo(byte))
                    time.sleep(args.echo_gap * (0.5 + rnd.random()))   # keystrokes are paced, not bursts
            for k, v in Rig.cpu_delta(cpu0, rig.cpu()).items():
                cpu[cond][k] += v
            if cond == "bulk":
                c = loop.stop()
                c["round"] = r
                copies.append(c)
                print(f"echo round {r + 1} under cp: {c['completed']} copies done, {c['mib_per_s_completed']} MiB/s",
                      flush=True)
            print(f"echo round {r + 1} {cond}: " + ", ".join(
                f"{n} p99 {summary_us(samples[cond][n][-per_round:])['p99_us']} µs" for n in variants), flush=True)
    for s in sessions.values():
        s.close()
    result = {"samples_per_variant_and_condition": per_round * args.echo_rounds, "cp_bytes": args.cp_bytes,
              "first_cp_seconds": round(first_cp_s, 2), "first_cp_exact": cp_exact, "copies": copies,
              "variants": {n: {"path": p, "tty": t} for n, (p, t) in variants.items()}}
    for cond in samples:
        s = {n: summary_us(samples[cond][n]) for n in variants}
        s["cpu_s"] = {k: round(v, 3) for k, v in cpu[cond].items()}
        result[cond] = s
    for n in variants:
        result[f"{n}_p99_bulk_over_idle"] = round(result["bulk"][n]["p99_us"] / result["idle"][n]["p99_us"], 3)
    result["added_p99_idle_us"] = result["idle"]["hub-tty"]["p99_us"] - result["idle"]["direct-tty"]["p99_us"]
    result["added_p99_bulk_us"] = result["bulk"]["hub-tty"]["p99_us"] - result["bulk"]["direct-tty"]["p99_us"]
    os.remove(big)
    return result


# Which upgrade and which class each session had

def stream_report(rig):
    """The stand-in's record of each upgrade and the hub's audit record of each session."""
    upgrades = {}
    for sub in ("exec", "portforward"):
        for rec in rig.standin_requests(f"{POD_PATH}/{sub}"):
            path = "hub" if rec.get("impersonateUser") else "direct"
            kind = rec.get("negotiatedProtocol") or ("SPDY/3.1" if (rec.get("upgrade") or "").lower().startswith("spdy")
                                                     else rec.get("upgrade") or "none")
            key = f"{path} {sub} {kind}"
            upgrades[key] = upgrades.get(key, 0) + 1
    gets = [r for r in rig.standin_requests(POD_PATH) if r.get("path") == POD_PATH and r.get("impersonateUser")]
    sessions = {}
    audit = rig.path("audit.log")
    for line in open(audit) if os.path.exists(audit) else []:
        e = json.loads(line)
        if e.get("kind") != "session-start":
            continue
        sub = e.get("subresource") or "?"
        command = e.get("command") or []
        what = "port-forward" if sub == "portforward" else (command[:1] or ["?"])[0]
        # The hub's rule (KubernetesProxy.send): a tty or attach session is interactive, others bulk.
        cls = "interactive" if e.get("tty") or sub == "attach" else "bulk"
        key = f"{sub}, {what}, tty={bool(e.get('tty'))} -> {cls}"
        sessions[key] = sessions.get(key, 0) + 1
    # Pooled keep-alive streams: every GET of the hub path on few agent→API-server connections.
    return {"upgrades_seen_by_standin": upgrades, "audit_sessions": sessions,
            "hub_gets_seen_by_standin": len(gets),
            "hub_get_upstream_connections": len({r.get("remote") for r in gets})}


# RESULTS.md

def verdict(ok):
    return "met" if ok else "missed"


def ms(us):
    return f"{us / 1000:.2f}"


def markdown(res):
    e, g, k, st = res["exec"]["summary"], res["get"], res["echo"], res["streams"]
    m, cfg = res["machine"], res["settings"]
    gi, gb, ki, kb = g["idle"], g["bulk"], k["idle"], k["bulk"]
    cp_rate = round(statistics.median(c["mib_per_s_completed"] for c in k["copies"]), 1) if k["copies"] else 0
    out = [SECTION_TITLE.replace("(issue #9)", f"(issue #9; {res['when'][:10]})"), ""]
    out.append(
        f"`perf/scripts/k8s_bench.py` (`make bench-k8s`) starts the stand-in API server "
        f"(`../shared/kube-standin`, `--server-version {cfg['server_version']}`, so kubectl "
        f"{res['kubectl_client_version'].replace('-dispatcher', '')} and WebSockets), a release `lariat-hub serve "
        f"--loops {cfg['loops']}` and a release `lariat-agent` with the `k8s-proxy` target, and compares the hub "
        f"path (`https://HUB/k8s/clusters/local`, the admin's Lariat token) with the stand-in directly (its "
        f"admin token), the two paths interleaved round by round in one run of {res['duration_s']:.0f} s. The "
        f"machine: 2 cores shared with other engineers' builds and tests (load average "
        f"{m['loadavg_before'][0]:.1f} before, {m['loadavg_after'][0]:.1f} after), so the ratios are the figures "
        f"to quote. The stand-in is one Python event loop that also carries the bulk side of every stream: the "
        f"direct figures under load show how much of a slow-down is its own. Every figure: "
        f"`perf/results/k8s.json`.")
    out.append("")
    out.append("| measure | through hub | direct | hub vs direct, or loaded vs idle | target |")
    out.append("|---|---:|---:|---|---|")
    n = len(res["exec"]["rounds"]) // 2
    out.append(f"| `kubectl exec -i p1 -- cat` of {res['exec']['bytes'] >> 20} MiB random, byte-exact, wall s "
               f"(median of {n}) | {e['hub']['cat_median_s']:.3f} | {e['direct']['cat_median_s']:.3f} "
               f"| **{e['ratio_cat_median']:.2f}×** (per-round median {e['ratio_cat_per_round_median']:.2f}×) "
               f"| ≤ 1.2×: **{verdict(e['ratio_cat_median'] <= 1.2)}** |")
    out.append(f"| `kubectl exec p1 -- true` (kubectl start, discovery, upgrade, process), wall s "
               f"| {e['hub']['true_median_s']:.3f} | {e['direct']['true_median_s']:.3f} "
               f"| {e['ratio_true_median']:.2f}× | – |")
    out.append(f"| transfer part (cat − true, per round), s; MiB/s each way | {e['hub']['transfer_median_s']:.3f}; "
               f"{e['hub']['mib_per_s_each_way']} | {e['direct']['transfer_median_s']:.3f}; "
               f"{e['direct']['mib_per_s_each_way']} | {e['ratio_transfer_median']:.2f}× | – |")
    out.append(f"| `GET /api/v1/namespaces/default/pods/p1`, keep-alive, idle: p50 / p99 / p99.9 ms "
               f"({g['requests_per_path_and_condition']} per path) | {ms(gi['hub']['p50_us'])} / "
               f"{ms(gi['hub']['p99_us'])} / {ms(gi['hub']['p999_us'])} | {ms(gi['direct']['p50_us'])} / "
               f"{ms(gi['direct']['p99_us'])} / {ms(gi['direct']['p999_us'])} | added p50 "
               f"**{ms(gi['added_p50_us'])} ms**, p99 {ms(gi['added_p99_us'])} ms "
               f"| ≤ 1 ms added p50: **{verdict(gi['added_p50_us'] <= 1000)}** |")
    out.append(f"| the same GETs during a bulk `kubectl port-forward` download through the hub "
               f"({g['bulk_mib_per_s_median']} MiB/s): p50 / p99 ms | {ms(gb['hub']['p50_us'])} / "
               f"{ms(gb['hub']['p99_us'])} | {ms(gb['direct']['p50_us'])} / {ms(gb['direct']['p99_us'])} "
               f"| p99 loaded ÷ idle: hub **{g['hub_p99_bulk_over_idle']:.2f}×**, direct "
               f"{g['direct_p99_bulk_over_idle']:.2f}×; the hub's added p99 {ms(gb['added_p99_us'])} ms loaded, "
               f"{ms(gi['added_p99_us'])} ms idle | ≤ 2×: **{verdict(g['hub_p99_bulk_over_idle'] <= 2)}** |")
    out.append(f"| keystroke echo, `exec` with a tty (interactive class), idle: p50 / p99 ms "
               f"({k['samples_per_variant_and_condition']} per session) | {ms(ki['hub-tty']['p50_us'])} / "
               f"{ms(ki['hub-tty']['p99_us'])} | {ms(ki['direct-tty']['p50_us'])} / {ms(ki['direct-tty']['p99_us'])} "
               f"| added p99 {ms(k['added_p99_idle_us'])} ms | – |")
    out.append(f"| keystroke echo, tty, during `kubectl cp` of {k['cp_bytes'] >> 20} MiB in a loop through the hub "
               f"({cp_rate} MiB/s): p50 / p99 ms | {ms(kb['hub-tty']['p50_us'])} / {ms(kb['hub-tty']['p99_us'])} "
               f"| {ms(kb['direct-tty']['p50_us'])} / {ms(kb['direct-tty']['p99_us'])} | p99 loaded ÷ idle: hub "
               f"**{k['hub-tty_p99_bulk_over_idle']:.2f}×**, direct {k['direct-tty_p99_bulk_over_idle']:.2f}×; "
               f"added p99 {ms(k['added_p99_bulk_us'])} ms | – |")
    out.append(f"| control: the same echo on an `exec` without tty through the hub (bulk class), idle → during "
               f"cp: p50 / p99 ms | {ms(ki['hub-notty']['p50_us'])} / {ms(ki['hub-notty']['p99_us'])} → "
               f"{ms(kb['hub-notty']['p50_us'])} / {ms(kb['hub-notty']['p99_us'])} | – "
               f"| p99 loaded ÷ idle {k['hub-notty_p99_bulk_over_idle']:.2f}× | – |")
    out.append("")
    out.append(f"CPU (utime+stime from `/proc/PID/stat`): a 10 MiB `exec -i cat` through the hub costs the hub "
               f"{e['hub_cpu_s_per_cat_median']:.3f} s and the agent {e['agent_cpu_s_per_cat_median']:.3f} s "
               f"(median); an idle GET {gi['hub_cpu_ms_per_hub_get']:.2f} ms of hub and "
               f"{gi['agent_cpu_ms_per_hub_get']:.2f} ms of agent CPU, a GET during the bulk download "
               f"{gb['hub_cpu_ms_per_hub_get']:.2f} and {gb['agent_cpu_ms_per_hub_get']:.2f} ms (those windows "
               f"include the download's own CPU). Whole run: " + ", ".join(
                   f"{k2} {v:.1f} s" for k2, v in res["cpu_s_whole_run"].items()) + ".")
    out.append("")
    out.append(f"Checks: every `exec -i cat` came back byte-exact: {e['all_exact']}; the first {k['cp_bytes'] >> 20} "
               f"MiB `kubectl cp` byte-exact: {k['first_cp_exact']}; GETs not 200: {g['non_200']}; the "
               f"{st['hub_gets_seen_by_standin']} GETs of the hub path reached the stand-in over "
               f"{st['hub_get_upstream_connections']} agent→API-server connection(s) (the pool). Upgrades the stand-in "
               f"saw (path, subresource, protocol): " + ", ".join(
                   f"{key} ×{n}" for key, n in sorted(st["upgrades_seen_by_standin"].items())) +
               ". Sessions in the hub's audit log, with the class the hub's rule gives them (tty or attach: "
               "interactive, otherwise bulk; `KubernetesProxy.send`): " + ", ".join(
                   f"{key} ×{n}" for key, n in sorted(st["audit_sessions"].items())) + ".")
    out.append("")
    if res.get("notes"):
        out.append(res["notes"].strip())
        out.append("")
    out.append("Re-run: `make bench-k8s` (builds both binaries under `--scratch-path .build-perf`, then runs "
               "`python3 perf/scripts/k8s_bench.py --bin .build-perf/release --out perf/results/k8s.json "
               "--results-md perf/RESULTS.md`; `--notes FILE` adds observations like the ones above).")
    out.append("")
    return "\n".join(out)


def write_results_md(path, section):
    text = open(path).read() if os.path.exists(path) else ""
    if KEPT_MARKER not in text:
        text = text.rstrip("\n") + "\n\n" + KEPT_MARKER + "\n"
    start = text.find(SECTION_TITLE.split(" (issue")[0])
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + (text[end + 1:] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(path, "w") as f:
        f.write(text)


def interrupted(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--bin", help="folder with release lariat-hub and lariat-agent")
    ap.add_argument("--standin", default=os.environ.get(
        "KUBE_STANDIN", os.path.join(os.path.dirname(root), "shared", "kube-standin", "kube_standin.py")))
    ap.add_argument("--kubectl", default="kubectl")
    ap.add_argument("--server-version", default="v1.32.4", help="what the stand-in's /version says (picks kubectl)")
    ap.add_argument("--loops", type=int, default=2, help="the hub's worker loops")
    ap.add_argument("--exec-rounds", type=int, default=9)
    ap.add_argument("--exec-bytes", type=int, default=10 << 20)
    ap.add_argument("--get-count", type=int, default=3000, help="GETs per path, idle and under bulk each")
    ap.add_argument("--get-rounds", type=int, default=3, help="idle/bulk alternations of the GET part")
    ap.add_argument("--get-block", type=int, default=100, help="GETs on one path before switching to the other")
    ap.add_argument("--get-warmup", type=int, default=200)
    ap.add_argument("--bulk-ramp", type=float, default=1.0, help="seconds a bulk transfer runs before measuring")
    ap.add_argument("--echo-count", type=int, default=400, help="echo samples per session, idle and under cp each")
    ap.add_argument("--echo-rounds", type=int, default=2)
    ap.add_argument("--echo-gap", type=float, default=0.01, help="mean seconds between keystrokes")
    ap.add_argument("--cp-bytes", type=int, default=200 << 20)
    ap.add_argument("--out", default=os.path.join(root, "perf", "results", "k8s.json"))
    ap.add_argument("--results-md", help="RESULTS.md whose Kubernetes section is replaced (or appended)")
    ap.add_argument("--notes", help="a markdown file of observations put into the RESULTS.md section")
    ap.add_argument("--markdown", metavar="JSON", help="only print the RESULTS.md section of a results file")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (logs) for inspection")
    args = ap.parse_args()

    if args.markdown:
        res = json.load(open(args.markdown))
        if args.notes:
            res["notes"] = open(args.notes).read()
        section = markdown(res)
        if args.results_md:
            write_results_md(args.results_md, section)
        print(section)
        return 0

    for name in ("lariat-hub", "lariat-agent"):
        if not args.bin or not os.access(os.path.join(args.bin, name), os.X_OK):
            sys.exit(f"{args.bin}/{name} not found: build it first (make bench-k8s does)")
    if not os.path.exists(args.standin):
        sys.exit(f"{args.standin} not found (--standin or KUBE_STANDIN)")

    started = time.time()
    folder = tempfile.mkdtemp(prefix="lariat-k8sbench-")
    procs = Processes()
    signal.signal(signal.SIGTERM, interrupted)   # the finally below then stops every child
    res = {"schema": 1, "kind": "k8s", "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "command": "python3 " + " ".join(os.path.relpath(a, root) if a.startswith(root + "/") else a
                                            for a in [os.path.abspath(sys.argv[0])] + sys.argv[1:]),
           "machine": {"cores": os.cpu_count(), "loadavg_before": [round(x, 2) for x in os.getloadavg()]},
           "settings": {k: v for k, v in vars(args).items() if k not in ("out", "markdown", "notes", "keep")}}
    ok = False
    try:
        rig = Rig(args, procs, folder)
        rig.start()
        v = rig.kubectl("hub", ["version", "-o", "json"])
        try:
            res["kubectl_client_version"] = json.loads(v.stdout)["clientVersion"]["gitVersion"]
        except (ValueError, KeyError):
            res["kubectl_client_version"] = "?"
        import kubernetes
        res["python_client_version"] = kubernetes.__version__
        print(f"ready: hub :{rig.hub_port}, stand-in :{rig.standin_port}, kubectl "
              f"{res['kubectl_client_version']}", flush=True)
        cpu0 = rig.cpu()
        res["exec"] = bench_exec(rig, args)
        print("exec:", json.dumps(res["exec"]["summary"]), flush=True)
        res["get"] = bench_get(rig, args, procs)
        print("get:", json.dumps({k: v for k, v in res["get"].items() if k != "bulk_transfers"}), flush=True)
        res["echo"] = bench_echo(rig, args, procs)
        print("echo:", json.dumps({k: v for k, v in res["echo"].items() if k not in ("copies",)}), flush=True)
        res["streams"] = stream_report(rig)
        res["cpu_s_whole_run"] = Rig.cpu_delta(cpu0, rig.cpu())
        res["idle_windows_not_settled"] = rig.unsettled
        warnings = [line.rstrip() for name in ("hub.log", "agent.log") for line in open(rig.path(name), errors="replace")
                    if any(w in line for w in (" warning ", " error ", " critical "))]
        res["log_warnings"] = warnings[:50]
        ok = True
    finally:
        procs.stop_all()
        res["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
        res["duration_s"] = round(time.time() - started, 1)
        if not ok:
            for name in ("hub.log", "agent.log", "standin.log"):
                p = os.path.join(folder, name)
                if os.path.exists(p):
                    print(f"--- {name} (tail)\n" + open(p, errors="replace").read()[-2000:], file=sys.stderr)
        if args.keep or not ok:
            print(f"logs kept in {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out}")
    if args.notes:
        res["notes"] = open(args.notes).read()
    section = markdown(res)
    if args.results_md:
        write_results_md(args.results_md, section)
        print(f"updated {args.results_md}")
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
