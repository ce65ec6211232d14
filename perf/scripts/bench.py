#!/usr/bin/env python3
"""Lariat tunnel benchmark driver (called by perf/scripts/bench.sh; stdlib only).

Starts one lariat-bench target, then every route in front of it (direct, socat, two chained
socats, stunnel, ssh -R with three cipher settings, lariat with compression on and off), and
measures in rounds with the routes interleaved: bulk throughput, idle latency, latency under a
concurrent bulk transfer, connection open rate, and CPU seconds per GB of every route process.
Each round also measures the CPU floor's cipher part (`openssl speed -evp`, encrypt and decrypt)
and runs iperf3 (a second load generator) through a lariat forward and ssh -R. Then the
lariat-only memory figures. Writes one JSON document (schema in perf/README.md).

Every process it starts is killed on exit (normal, exception, SIGINT/SIGTERM).
"""
import argparse
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

MODES = {
    # Quick must stay under 2 minutes of measuring on 2 cores: short, time-bounded runs.
    "quick": dict(rounds=2, streams=[1, 4, 16], tput_seconds=0.35, tput_bytes=4 << 30,
                  json_streams=[1], lat_count=2000, lat_seconds=0.25, lat16_count=500,
                  hol_seconds=0.7, hol_rate=500, open_count=200, open_seconds=0.5,
                  idle_streams=2000, agents=200,
                  # iperf3 needs whole seconds (-t); 1 s keeps 12 runs per round near 20 s.
                  iperf_streams=[1, 4, 16], iperf_seconds=1, cipher_seconds=1,
                  # Issue #11: 1,000 simultaneous connections, each proving itself with an echo.
                  burst_count=1000, burst_seconds=30),
    "full": dict(rounds=5, streams=[1, 4, 16, 64], tput_seconds=1.2, tput_bytes=16 << 30,
                 json_streams=[1, 4], lat_count=10000, lat_seconds=1.0, lat16_count=3000,
                 hol_seconds=2.5, hol_rate=500, open_count=1000, open_seconds=2.0,
                 idle_streams=10000, agents=1000,
                 iperf_streams=[1, 4, 16, 64], iperf_seconds=3, cipher_seconds=2,
                 burst_count=1000, burst_seconds=30),
}

# What a run measures; --scenarios picks some (a run of only those is marked partial in its JSON
# and report.py takes from it only what the main run of its mode lacks).
SCENARIOS = {
    "throughput": "bulk throughput, random and JSON data, with CPU per route",
    "latency": "idle 64 B and 16 KiB round trips",
    "hol": "64 B round trips during a bulk download",
    "openrate": "connections opened + echoed per second, 16 in parallel",
    "burst": "burst_count connections started at once; served, refused/reset, time until all served",
    "cipher": "openssl speed of the tunnel's suite (the floor's cipher part)",
    "iperf": "iperf3 through lariat and ssh -R",
    "memory": "lariat memory: idle streams, idle agents, agent RSS",
}

PROCS = []          # every Popen we started, killed in cleanup()
T0 = time.time()


def log(msg):
    sys.stderr.write(f"\r\033[K[{time.time() - T0:6.1f}s] {msg}\n")
    sys.stderr.flush()


def progress(msg):
    sys.stderr.write(f"\r\033[K[{time.time() - T0:6.1f}s] {msg}")
    sys.stderr.flush()


def cleanup(*_):
    for p in reversed(PROCS):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM) if p._lb_group else p.terminate()
            except (ProcessLookupError, PermissionError):
                pass
    deadline = time.time() + 3
    for p in reversed(PROCS):
        try:
            p.wait(max(0.05, deadline - time.time()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL) if p._lb_group else p.kill()
            except (ProcessLookupError, PermissionError):
                pass
    PROCS.clear()


def on_signal(signum, _frame):
    cleanup()
    sys.exit(128 + signum)


def spawn(args, log_path=None, stdout=None, group=False, **kw):
    """Starts a long-lived helper; its stderr (and stdout unless piped) go to log_path."""
    f = open(log_path, "ab") if log_path else subprocess.DEVNULL
    p = subprocess.Popen(args, stdout=stdout if stdout is not None else f, stderr=f,
                         stdin=subprocess.DEVNULL, start_new_session=group, **kw)
    p._lb_group = group
    PROCS.append(p)
    return p


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(3)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in PROCS:
        PROCS.remove(p)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port, timeout=10, host="127.0.0.1"):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


# ---------------------------------------------------------------- /proc readings

def proc_cpu(pid):
    """utime+stime+cutime+cstime of pid, seconds (children that exited are in c*time)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # fields[0] is state (field 3); utime is field 14 -> index 11
        return sum(int(x) for x in fields[11:15]) / CLK_TCK
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0


def descendants(pid):
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(d))
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in children.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def tree_cpu(pid):
    return proc_cpu(pid) + sum(proc_cpu(c) for c in descendants(pid))


def waited_children_cpu():
    """User+system seconds of this script's children that have exited and been waited for
    (each lariat-bench client run ends that way)."""
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def rss_kib(pid, field="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return None


# ---------------------------------------------------------------- lariat-bench client calls

class Bench:
    def __init__(self, binary):
        self.binary = binary

    def run(self, args, timeout):
        try:
            r = subprocess.run([self.binary] + args + ["--json"], capture_output=True, text=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": "timeout"}
        line = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            d = {"error": (r.stderr or r.stdout)[-300:]}
        if r.returncode != 0 and "error" not in d:
            d["error"] = f"exit {r.returncode}: {r.stderr[-200:]}"
        return d

    def throughput(self, port, streams, direction, data, seconds, total_bytes):
        per = max(1 << 20, total_bytes // streams)
        return self.run(["throughput", "--connect", f"127.0.0.1:{port}", "--streams", str(streams),
                         "--bytes", str(per), "--direction", direction, "--data", data,
                         "--seconds", str(seconds)], timeout=seconds + 20)

    def latency(self, port, size, count, seconds, rate=0, warmup=10):
        return self.run(["latency", "--connect", f"127.0.0.1:{port}", "--size", str(size),
                         "--count", str(count), "--seconds", str(seconds), "--rate", str(rate),
                         "--warmup", str(warmup)],
                        timeout=seconds + 20)

    def openrate(self, port, count, seconds, concurrency=16):
        return self.run(["openrate", "--connect", f"127.0.0.1:{port}", "--count", str(count),
                         "--concurrency", str(concurrency), "--seconds", str(seconds)], timeout=seconds + 20)


# ---------------------------------------------------------------- routes

class Route:
    name = "?"
    description = ""

    def __init__(self, env):
        self.env = env
        self.port = None
        self.procs = {}      # role -> Popen (CPU is the process tree of each)

    def cpu(self):
        return {role: tree_cpu(p.pid) for role, p in self.procs.items()}

    def alive(self):
        return all(p.poll() is None for p in self.procs.values())


class Direct(Route):
    name = "direct"
    description = "client → target, no relay (loopback TCP)"

    def start(self):
        self.port = self.env.target_port


class Socat(Route):
    name = "socat"
    description = "socat -b262144 TCP-LISTEN,fork,backlog=4096 → target (plain TCP relay)"

    def start(self):
        self.port = free_port()
        self.procs["socat"] = spawn(["socat", "-b262144",
                                     # backlog: socat's default is 5, which drops a burst's
                                     # handshakes; the hub's forward listener uses SOMAXCONN.
                                     f"TCP-LISTEN:{self.port},bind=127.0.0.1,reuseaddr,fork,backlog=4096",
                                     f"TCP:127.0.0.1:{self.env.target_port}"],
                                    self.env.path("socat.log"))
        assert wait_listening(self.port), "socat did not listen"


class SocatChain(Route):
    """The relay half of the CPU floor: two plain relays, as a tunnel's two ends are, with the
    buffer size of the socat route, so both copy every byte in and out of the kernel twice."""
    name = "socat-chain"
    description = "socat -b262144 → socat -b262144 → target (two chained plain relays: the floor's relay part; backlog=4096)"

    def start(self):
        mid, self.port = free_port(), free_port()
        self.procs["socat-far"] = spawn(["socat", "-b262144", f"TCP-LISTEN:{mid},bind=127.0.0.1,reuseaddr,fork,backlog=4096",
                                         f"TCP:127.0.0.1:{self.env.target_port}"], self.env.path("socat-far.log"))
        assert wait_listening(mid), "socat-far did not listen"
        self.procs["socat-near"] = spawn(["socat", "-b262144", f"TCP-LISTEN:{self.port},bind=127.0.0.1,reuseaddr,fork,backlog=4096",
                                          f"TCP:127.0.0.1:{mid}"], self.env.path("socat-near.log"))
        assert wait_listening(self.port), "socat-near did not listen"


class Stunnel(Route):
    name = "stunnel"
    description = "stunnel client → TLS → stunnel server → target"

    def start(self):
        e = self.env
        cert = e.path("stunnel.pem")
        if not os.path.exists(cert):
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                            "/CN=127.0.0.1", "-keyout", cert, "-out", cert], check=True,
                           capture_output=True)
        tls_port, self.port = free_port(), free_port()
        for role, conf in (("stunnel-server", f"""foreground = yes
pid =
debug = 3
[srv]
accept = 127.0.0.1:{tls_port}
connect = 127.0.0.1:{e.target_port}
cert = {cert}
"""), ("stunnel-client", f"""foreground = yes
pid =
debug = 3
[cli]
client = yes
accept = 127.0.0.1:{self.port}
connect = 127.0.0.1:{tls_port}
""")):
            path = e.path(f"{role}.conf")
            with open(path, "w") as f:
                f.write(conf)
            self.procs[role] = spawn(["stunnel4", path], e.path(f"{role}.log"))
        assert wait_listening(tls_port) and wait_listening(self.port), "stunnel did not listen"


class SSH(Route):
    """A private sshd per route (so its session processes are attributable), ssh -N -R."""

    def __init__(self, env, name, cipher, compress, iperf=False):
        super().__init__(env)
        self.name = name
        self.cipher = cipher
        self.compress = compress
        self.iperf = iperf       # also forward a port to the iperf3 server
        self.iperf_port = None
        self.description = f"ssh -N -R -c {cipher}{' -C' if compress else ''} (private sshd on loopback)"

    def start(self):
        e = self.env
        d = e.path(f"ssh-{self.name}")
        os.makedirs(d, exist_ok=True)
        os.makedirs("/run/sshd", exist_ok=True)
        key, hostkey = os.path.join(d, "id"), os.path.join(d, "hostkey")
        for k in (key, hostkey):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k], check=True)
        shutil.copy(key + ".pub", os.path.join(d, "authorized_keys"))
        os.chmod(os.path.join(d, "authorized_keys"), 0o600)
        sshd_port, self.port = free_port(), free_port()
        conf = os.path.join(d, "sshd_config")
        with open(conf, "w") as f:
            f.write(f"""Port {sshd_port}
ListenAddress 127.0.0.1
HostKey {hostkey}
AuthorizedKeysFile {d}/authorized_keys
PidFile none
UsePAM no
PermitRootLogin yes
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowTcpForwarding yes
GatewayPorts no
Compression yes
LogLevel ERROR
""")
        self.procs["sshd"] = spawn(["/usr/sbin/sshd", "-D", "-e", "-f", conf], e.path(f"sshd-{self.name}.log"))
        assert wait_listening(sshd_port), "sshd did not listen"
        args = ["ssh", "-N", "-T", "-p", str(sshd_port), "-i", key, "-F", "none",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-o", "LogLevel=ERROR",
                "-o", f"Compression={'yes' if self.compress else 'no'}",
                "-c", self.cipher, "-R", f"127.0.0.1:{self.port}:127.0.0.1:{e.target_port}",
                f"{os.environ.get('USER', 'root')}@127.0.0.1"]
        if self.iperf:
            self.iperf_port = free_port()
            args[-1:-1] = ["-R", f"127.0.0.1:{self.iperf_port}:127.0.0.1:{e.iperf_port}"]
        self.procs["ssh"] = spawn(args, e.path(f"ssh-{self.name}.log"))
        assert wait_listening(self.port, 15), f"ssh -R {self.name} did not come up"
        if self.iperf:
            assert wait_listening(self.iperf_port, 15), f"ssh -R {self.name} iperf3 forward did not come up"


class Lariat(Route):
    def __init__(self, env, name, compression, forward_target=None, iperf=False):
        super().__init__(env)
        self.name = name
        self.compression = compression
        self.forward_target = forward_target
        self.iperf = iperf       # a second forward, to the iperf3 server, on the same tunnel
        self.iperf_port = None
        self.description = f"lariat hub forward → TLS+WebSocket tunnel → agent → target (LZ4 {'on' if compression else 'off'})"

    def start(self, agent=True):
        e = self.env
        self.data = e.path(f"hub-{self.name}")
        os.makedirs(self.data, exist_ok=True)
        self.port = free_port()
        portfile = os.path.join(self.data, "port")
        target = self.forward_target or e.target_port
        args = [e.bin("lariat-hub"), "serve", "--listen", "127.0.0.1:0", "--data", self.data,
                "--port-file", portfile, "--log-level", "info",
                "--forward", f"127.0.0.1:{self.port}=local/127.0.0.1:{target}"]
        if self.iperf:
            self.iperf_port = free_port()
            args += ["--forward", f"127.0.0.1:{self.iperf_port}=local/127.0.0.1:{e.iperf_port}"]
        # The same target through an interactive-class forward on the same tunnel: the
        # head-of-line scenario times its round trips there too (issue #11: interactive streams).
        self.interactive_port = free_port()
        args += ["--forward", f"127.0.0.1:{self.interactive_port}=local/127.0.0.1:{target},interactive"]
        if not self.compression:
            args.append("--no-compression")
        self.hub_log = e.path(f"hub-{self.name}.log")
        self.procs["hub"] = spawn(args, self.hub_log)
        end = time.time() + 20
        while time.time() < end and not (os.path.exists(portfile) and open(portfile).read().strip()):
            assert self.procs["hub"].poll() is None, f"hub exited, see {self.hub_log}"
            time.sleep(0.05)
        self.hub_port = int(open(portfile).read().split()[0])  # first line: HTTPS; then forwards
        self.token = open(os.path.join(self.data, "local.token")).read().strip()
        with open(os.path.join(self.data, "tls", "ca.pem"), "rb") as f:
            self.checksum = hashlib.sha256(f.read()).hexdigest()
        if agent:
            self.procs["agent"] = self.spawn_agent("bench-agent")
            self.wait_ready()

    def spawn_agent(self, agent_id, log=None):
        return spawn([self.env.bin("lariat-agent"), "--server", f"https://127.0.0.1:{self.hub_port}",
                      "--cluster", "local", "--token", self.token, "--ca-checksum", self.checksum,
                      "--agent-id", agent_id,
                      # The targets are on loopback, which agents refuse unless allowed by address.
                      "--allow", "127.0.0.1"], log or self.env.path(f"agent-{self.name}.log"))

    def wait_ready(self, timeout=20):
        end = time.time() + timeout
        while time.time() < end:
            assert self.procs["agent"].poll() is None, f"agent exited, see {self.env.path(f'agent-{self.name}.log')}"
            r = self.env.bench.openrate(self.port, 1, 1.0)
            if r.get("count") == 1:
                return
            time.sleep(0.2)
        raise RuntimeError(f"lariat route {self.name} not ready; see {self.hub_log}")


# ---------------------------------------------------------------- environment

class Env:
    def __init__(self, work, bindir):
        self.work = work
        self.bindir = bindir
        self.bench = Bench(self.bin("lariat-bench"))
        self.target_port = None
        self.iperf_port = None

    def path(self, name):
        return os.path.join(self.work, name)

    def bin(self, name):
        # The agent is measured as shipped: statically linked Swift runtime (bench.sh builds it
        # into a scratch folder of its own so the two link modes do not rebuild each other).
        if name == "lariat-agent" and os.environ.get("LARIAT_AGENT_BIN"):
            return os.environ["LARIAT_AGENT_BIN"]
        return os.path.join(self.bindir, name)

    def start_target(self):
        p = spawn([self.bin("lariat-bench"), "target", "--listen", "127.0.0.1:0"], self.path("target.log"),
                  stdout=subprocess.PIPE)
        self.target = p
        self.target_port = int(p.stdout.readline().decode().strip())

    def start_iperf(self):
        """One iperf3 server; the iperf routes forward a port each to it (one test at a time)."""
        self.iperf_port = free_port()
        spawn(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(self.iperf_port)], self.path("iperf3.log"))
        assert wait_listening(self.iperf_port), "iperf3 -s did not listen"


def machine():
    cpu = ""
    flags = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and not cpu:
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1]
    def ver(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=5)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except Exception:
            return "?"
    return {
        "cpu_model": cpu,
        "nproc": os.cpu_count(),
        "aes_ni": " aes " in flags,
        "mem_total_mib": int(open("/proc/meminfo").readline().split()[1]) // 1024,
        "free": subprocess.run(["free", "-m"], capture_output=True, text=True).stdout.strip(),
        "kernel": platform.release(),
        "loadavg_start": open("/proc/loadavg").read().split()[:3],
        "versions": {
            "socat": ver(["socat", "-V"]) if False else ver(["sh", "-c", "socat -V | grep 'socat version'"]),
            "stunnel": ver(["sh", "-c", "stunnel4 -version 2>&1 | grep -m1 '^stunnel '"]),
            "openssh": ver(["ssh", "-V"]),
            "openssl": ver(["openssl", "version"]),
            "swift": ver(["sh", "-c", "swift --version 2>&1 | head -1"]),
        },
    }


# ---------------------------------------------------------------- measurements

def measure_round(env, routes, cfg, rnd, samples, step, total, want):
    s = cfg
    for route in routes:
        if not route.alive():
            log(f"route {route.name}: a process died; skipping")
            continue
        tag = f"round {rnd + 1}/{s['rounds']} {route.name:<14}"

        def tput(streams, direction, data):
            nonlocal step
            step += 1
            progress(f"[{step}/{total}] {tag} throughput {direction} x{streams} {data}")
            before = route.cpu()
            # The load generator's own CPU (the client run, and the shared target): with it, what
            # a relay at the floor could reach on this machine follows (report.py, CPU floor).
            gen_before = waited_children_cpu() + proc_cpu(env.target.pid)
            r = env.bench.throughput(route.port, streams, direction, data, s["tput_seconds"], s["tput_bytes"])
            time.sleep(0.1)  # let forked relays (socat, sshd) exit and be reaped into c*time
            after = route.cpu()
            gen_after = waited_children_cpu() + proc_cpu(env.target.pid)
            r.update(round=rnd, route=route.name, kind="throughput",
                     cpu_s={k: round(after[k] - before[k], 3) for k in after},
                     generator_cpu_s=round(gen_after - gen_before, 3))
            samples.append(r)
            if r.get("error"):
                log(f"{route.name} throughput {direction} x{streams}: {r['error']}")

        for streams in s["streams"] if "throughput" in want else []:
            for direction in ("up", "down"):
                tput(streams, direction, "random")
        for streams in s["json_streams"] if "throughput" in want else []:
            for direction in ("up", "down"):
                tput(streams, direction, "json")

        for size, count in ((64, s["lat_count"]), (16384, s["lat16_count"])) if "latency" in want else ():
            step += 1
            progress(f"[{step}/{total}] {tag} latency {size} B idle")
            r = env.bench.latency(route.port, size, count, s["lat_seconds"])
            r.update(round=rnd, route=route.name, kind="latency", scenario="idle")
            samples.append(r)

        if "hol" in want:
            step = measure_hol(env, route, s, rnd, samples, step, total, tag)
        if "openrate" in want:
            step += 1
            progress(f"[{step}/{total}] {tag} open rate")
            r = env.bench.openrate(route.port, s["open_count"], s["open_seconds"])
            r.update(round=rnd, route=route.name, kind="openrate")
            samples.append(r)
        if "burst" in want:
            step += 1
            progress(f"[{step}/{total}] {tag} burst of {s['burst_count']}")
            r = env.bench.openrate(route.port, s["burst_count"], s["burst_seconds"], concurrency=s["burst_count"])
            r.update(round=rnd, route=route.name, kind="burst")
            samples.append(r)
            lost = (r.get("failed") or 0) + (r.get("unfinished") or 0)
            if r.get("error") or lost:
                log(f"{route.name} burst: {r.get('count')} served, {r.get('refused')} refused, {r.get('reset')} reset, "
                    f"{r.get('unfinished')} unfinished {r.get('error', '')}")
    return step


def measure_hol(env, route, s, rnd, samples, step, total, tag):
    """Head-of-line: a 1-stream bulk download runs while 64 B round trips are timed; on a
    lariat route a second time with the round trips on an interactive-class forward."""
    step += 1
    progress(f"[{step}/{total}] {tag} latency 64 B under bulk")
    hol_once(env, route, s, rnd, samples, route.port, "bulk")
    if getattr(route, "interactive_port", None):
        progress(f"[{step}/{total}] {tag} latency 64 B (interactive forward) under bulk")
        hol_once(env, route, s, rnd, samples, route.interactive_port, "bulk-interactive")
    return step


def hol_once(env, route, s, rnd, samples, latency_port, scenario):
    bulk = subprocess.Popen([env.bench.binary, "throughput", "--connect", f"127.0.0.1:{route.port}",
                             "--streams", "1", "--bytes", str(64 << 30), "--direction", "down",
                             "--seconds", str(s["hol_seconds"] + 0.5), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    bulk._lb_group = True
    PROCS.append(bulk)
    time.sleep(0.25)
    r = env.bench.latency(latency_port, 64, int(s["hol_seconds"] * s["hol_rate"]), s["hol_seconds"],
                          rate=s["hol_rate"], warmup=5)
    try:
        bout, _ = bulk.communicate(timeout=s["hol_seconds"] + 15)
        b = json.loads(bout.strip().splitlines()[-1])
    except Exception as ex:
        bulk.kill()
        b = {"error": str(ex)}
    PROCS.remove(bulk)
    r.update(round=rnd, route=route.name, kind="latency", scenario=scenario,
             bulk_mib_per_s=b.get("mib_per_s"))
    samples.append(r)


# The floor's cipher part: the suite a TLS 1.3 tunnel negotiates, and the suite ssh -R uses here.
CIPHERS = ("aes-256-gcm", "aes-128-gcm")
# OpenSSL's TLS 1.3 suite names → `openssl speed -evp` names.
SUITE_CIPHER = {"TLS_AES_256_GCM_SHA384": "aes-256-gcm", "TLS_AES_128_GCM_SHA256": "aes-128-gcm",
                "TLS_CHACHA20_POLY1305_SHA256": "chacha20-poly1305"}
CIPHER_BLOCK = 16384   # one full TLS record, what bulk transfers encrypt


def cipher_speed(seconds, rnd, ciphers):
    """`openssl speed -evp` encrypt and decrypt at one record size; bytes per CPU-second (speed
    divides by user time unless -elapsed), so 1e9 / rate is CPU-s per GB, as the routes' figures."""
    out = []
    for c in ciphers:
        for op in ("encrypt", "decrypt"):
            args = ["openssl", "speed", "-evp", c, "-seconds", str(seconds), "-bytes", str(CIPHER_BLOCK), "-mr"]
            if op == "decrypt":
                args.append("-decrypt")
            s = {"kind": "cipher", "round": rnd, "cipher": c, "op": op, "block": CIPHER_BLOCK}
            try:
                r = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 30)
                # "+R:<count>:<NAME>:<user seconds>" (on stderr; the +F summary on stdout)
                m = re.search(r"^\+R:(\d+):[^:]+:([0-9.]+)$", r.stderr + r.stdout, re.M)
                count, secs = int(m.group(1)), float(m.group(2))
                s.update(count=count, cpu_seconds=secs, bytes_per_s=count * CIPHER_BLOCK / secs)
            except Exception as ex:
                s["error"] = f"{type(ex).__name__}: {ex}"[:200]
            out.append(s)
    return out


def tunnel_cipher(route):
    """The suite the hub's TLS picks for a client with OpenSSL's default TLS 1.3 list, which is
    what lariat-agent offers (it sets no ciphersuites)."""
    try:
        r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{route.hub_port}", "-brief",
                            "-CAfile", os.path.join(route.data, "tls", "ca.pem")],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
        m = re.search(r"Ciphersuite:\s*(\S+)", r.stdout + r.stderr)
        proto = re.search(r"Protocol version:\s*(\S+)", r.stdout + r.stderr)
        if m:
            return {"suite": m.group(1), "protocol": proto.group(1) if proto else None,
                    "method": "openssl s_client (OpenSSL's default suites, as the agent offers) against the hub's HTTPS port"}
    except Exception:
        pass
    return {"suite": "TLS_AES_256_GCM_SHA384", "protocol": "TLSv1.3",
            "method": "assumed: OpenSSL's first TLS 1.3 preference (the s_client probe failed)"}


def measure_iperf(routes, cfg, rnd, samples):
    """iperf3 as a second load generator, through each route's iperf forward; routes
    interleaved per test (order alternating by round), receiver-side byte counts."""
    order = routes if rnd % 2 == 0 else list(reversed(routes))
    for streams in cfg["iperf_streams"]:
        for direction in ("up", "down"):
            for route in order:
                if not route.alive():
                    continue
                progress(f"round {rnd + 1} iperf3 {route.name} {direction} -P {streams}")
                args = ["iperf3", "-c", "127.0.0.1", "-p", str(route.iperf_port), "-P", str(streams),
                        "-t", str(cfg["iperf_seconds"]), "-J"]
                if direction == "down":
                    args.append("-R")
                before = route.cpu()
                s = {"kind": "iperf3", "round": rnd, "route": route.name, "direction": direction,
                     "streams": streams}
                try:
                    r = subprocess.run(args, capture_output=True, text=True, timeout=cfg["iperf_seconds"] + 30)
                    d = json.loads(r.stdout)
                    if d.get("error"):
                        s["error"] = d["error"][:200]
                    rec = d.get("end", {}).get("sum_received", {})
                    if rec.get("bytes"):
                        s.update(bytes=rec["bytes"], seconds=rec.get("seconds"),
                                 mib_per_s=rec["bytes"] / rec["seconds"] / (1 << 20))
                except Exception as ex:
                    s["error"] = f"{type(ex).__name__}: {ex}"[:200]
                time.sleep(0.1)  # let forked relays exit and be reaped into c*time
                after = route.cpu()
                s["cpu_s"] = {k: round(after[k] - before[k], 3) for k in after}
                samples.append(s)
                if s.get("error"):
                    log(f"iperf3 {route.name} {direction} -P {streams}: {s['error']}")


def settle_rss(pid, seconds=0.6):
    time.sleep(seconds)
    return rss_kib(pid)


def lariat_memory(env, cfg, results):
    """Idle streams through a fresh hub+agent; agent RSS idle; hub RSS per connected agent."""
    mem = {}
    r = Lariat(env, "lariat-mem", True)
    r.start()
    hub, agent = r.procs["hub"].pid, r.procs["agent"].pid
    mem["agent_idle_rss_kib"] = settle_rss(agent, 1.0)
    mem["hub_idle_rss_kib"] = rss_kib(hub)
    n = cfg["idle_streams"]
    progress(f"lariat memory: opening {n} idle streams")
    hub0, agent0 = rss_kib(hub), rss_kib(agent)
    idle = subprocess.Popen([env.bench.binary, "idle", "--connect", f"127.0.0.1:{r.port}", "--count", str(n),
                             "--concurrency", "64", "--hold", "60", "--seconds", "60", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    idle._lb_group = False
    PROCS.append(idle)
    line = idle.stdout.readline()
    try:
        ready = json.loads(line)
    except json.JSONDecodeError:
        ready = {"error": "no ready line"}
    hub1, agent1 = settle_rss(hub), rss_kib(agent)
    opened = ready.get("count", 0)
    stop(idle)
    hub2, agent2 = settle_rss(hub, 1.5), rss_kib(agent)
    mem["idle_streams"] = {
        "requested": n, "opened": opened, "open_seconds": ready.get("seconds"),
        "opens_per_s": ready.get("opens_per_s"), "failed": ready.get("failed"),
        "hub_rss_before_kib": hub0, "hub_rss_open_kib": hub1, "hub_rss_after_close_kib": hub2,
        "agent_rss_before_kib": agent0, "agent_rss_open_kib": agent1, "agent_rss_after_close_kib": agent2,
        "hub_kib_per_stream": (hub1 - hub0) / opened if opened else None,
        "agent_kib_per_stream": (agent1 - agent0) / opened if opened else None,
    }
    log(f"idle streams: {opened} open, hub +{(hub1 - hub0)} KiB, agent +{(agent1 - agent0)} KiB")
    for p in list(r.procs.values()):
        stop(p)

    # Many agents on one hub: `lariat-bench agents` opens K real agent sessions (TLS, WebSocket
    # upgrade, HELLO/WELCOME) from one process, so the hub side is exactly what K agents cost it.
    k = cfg["agents"]
    h = Lariat(env, "lariat-agents", True)
    h.start(agent=False)
    hub = h.procs["hub"].pid
    base = settle_rss(hub, 0.5)
    progress(f"lariat memory: connecting {k} agents")
    fleet = subprocess.Popen([env.bench.binary, "agents", "--server", f"127.0.0.1:{h.hub_port}",
                              "--ca", os.path.join(h.data, "tls", "ca.pem"), "--token", h.token,
                              "--count", str(k), "--hold", "120", "--seconds", "90", "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    fleet._lb_group = False
    PROCS.append(fleet)
    try:
        up = json.loads(fleet.stdout.readline())
    except json.JSONDecodeError:
        up = {"established": 0, "error": "no ready line"}
    connected = up.get("established", 0)
    full = settle_rss(hub, 1.5)
    stop(fleet)
    # The idle agent's own RSS, from real lariat-agent processes (as shipped).
    real = [h.spawn_agent(f"agent-{i}", env.path("agents.log")) for i in range(5)]
    end = time.time() + 30
    while time.time() < end:
        with open(h.hub_log, errors="replace") as f:
            if sum(1 for line in f if "connected from" in line and '"agent-' in line) >= len(real):
                break
        time.sleep(0.2)
    time.sleep(1.0)
    agent_rss = sorted(rss_kib(a.pid) or 0 for a in real)
    mem["idle_agents"] = {
        "agents": k, "connected": connected, "connect_seconds": up.get("seconds"),
        "hub_rss_before_kib": base, "hub_rss_after_kib": full,
        "hub_kib_per_agent": (full - base) / connected if connected else None,
        "agent_rss_median_kib": agent_rss[len(agent_rss) // 2] if agent_rss else None,
        "method": f"{k} agent sessions from `lariat-bench agents` against one fresh hub; per-agent = ΔRSS / connected; "
                  f"agent RSS = median of {len(real)} real lariat-agent processes",
    }
    log(f"idle agents: {connected}/{k} connected, hub +{full - base} KiB")
    for a in real:
        stop(a)
    for p in list(h.procs.values()):
        stop(p)
    results["lariat_memory"] = mem


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=MODES, default="quick")
    ap.add_argument("--work", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--command", default="")
    ap.add_argument("--routes", default="", help="comma list to restrict routes (debugging)")
    ap.add_argument("--rounds", type=int, default=0)
    ap.add_argument("--scenarios", default="", help="comma list of " + ", ".join(SCENARIOS) + " (default: all)")
    a = ap.parse_args()
    want = set(a.scenarios.split(",")) if a.scenarios else set(SCENARIOS)
    unknown = want - set(SCENARIOS)
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; known: {', '.join(SCENARIOS)}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    cfg = dict(MODES[a.mode])
    if a.rounds:
        cfg["rounds"] = a.rounds
    env = Env(a.work, a.bin)
    results = {"schema": 1, "mode": a.mode, "command": a.command,
               "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(), "config": cfg}
    if want != set(SCENARIOS):
        results["scenarios"] = sorted(want)   # a partial run
    try:
        env.start_target()
        if "iperf" in want:
            env.start_iperf()
        routes = [Direct(env), Socat(env), SocatChain(env), Stunnel(env),
                  SSH(env, "ssh-aes128gcm", "aes128-gcm@openssh.com", False, iperf=True),
                  SSH(env, "ssh-chacha20", "chacha20-poly1305@openssh.com", False),
                  SSH(env, "ssh-aes128gcm-C", "aes128-gcm@openssh.com", True),
                  Lariat(env, "lariat", True, iperf=True), Lariat(env, "lariat-nolz4", False)]
        if "iperf" not in want:
            for r in routes:
                r.iperf = False
        if a.routes:
            keep = a.routes.split(",")
            routes = [r for r in routes if r.name in keep]
        if any(isinstance(r, Lariat) for r in routes) and not a.routes and "memory" in want:
            lariat_memory(env, cfg, results)
        for r in routes:
            progress(f"starting route {r.name}")
            r.start()
        log("routes up: " + ", ".join(f"{r.name}:{r.port}" for r in routes))
        lariat = [r for r in routes if isinstance(r, Lariat)]
        if lariat:
            results["tunnel_cipher"] = tunnel_cipher(lariat[0])
            log(f"tunnel suite: {results['tunnel_cipher']['suite']}")
        suite_cipher = SUITE_CIPHER.get(results.get("tunnel_cipher", {}).get("suite"), "aes-256-gcm")
        ciphers = [suite_cipher] + [c for c in CIPHERS if c != suite_cipher]
        iperf_routes = [r for r in routes if getattr(r, "iperf_port", None)]
        results["cipher_speed"] = []
        results["routes"] = [{"name": r.name, "description": r.description, "processes": list(r.procs)}
                             for r in routes]
        samples = []
        per_route = (("throughput" in want) * (2 * len(cfg["streams"]) + 2 * len(cfg["json_streams"]))
                     + ("latency" in want) * 2 + ("hol" in want) + ("openrate" in want) + ("burst" in want))
        total = per_route * len(routes) * cfg["rounds"]
        step = 0
        for rnd in range(cfg["rounds"]):
            # Interleave: rotate the route order every round so no route always goes first.
            order = routes[rnd % len(routes):] + routes[:rnd % len(routes)]
            step = measure_round(env, order, cfg, rnd, samples, step, total, want)
            if "cipher" in want:
                progress(f"round {rnd + 1} openssl speed {' '.join(ciphers)}")
                results["cipher_speed"] += cipher_speed(cfg["cipher_seconds"], rnd, ciphers)
            if "iperf" in want:
                measure_iperf(iperf_routes, cfg, rnd, samples)
        results["samples"] = samples
        # RSS after all traffic (high-water marks) for the lariat processes.
        for r in routes:
            if isinstance(r, Lariat):
                results.setdefault("lariat_rss_after_bulk", {})[r.name] = {
                    role: {"rss_kib": rss_kib(p.pid), "hwm_kib": rss_kib(p.pid, "VmHWM")}
                    for role, p in r.procs.items()}
    finally:
        results["duration_s"] = round(time.time() - T0, 1)
        results["machine"]["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
        cleanup()
        os.makedirs(os.path.dirname(a.out), exist_ok=True)
        with open(a.out, "w") as f:
            json.dump(results, f, indent=1)
        log(f"wrote {a.out} ({results['duration_s']} s)")


if __name__ == "__main__":
    main()
