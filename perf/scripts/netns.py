#!/usr/bin/env python3
"""100 Mbit/s network-namespace scenario (called by perf/scripts/netns.sh, needs root).

Two namespaces joined by a veth pair (10.77.0.1 in A, 10.77.0.2 in B), both ends shaped with
`tc tbf rate 100mbit burst 32kbit latency 50ms`. A holds the client and the hubs / sshd; B holds
the target, the agents and the ssh -R clients (they dial out from B to A, like a cluster behind a
firewall). Link conditions:
  100mbit            the shaped link only
  100mbit+10ms+1%    plus 1 % loss on both veth ends (nftables `numgen random mod 100 < 1 drop`)
                     and 10 ms one-way delay (lariat-bench delay-relay in B on the agent→hub and
                     ssh→sshd connections, both directions), i.e. 20 ms added RTT
Measures 1-stream downloads (target → client, the direction of `kubectl get -o json`) for lariat
LZ4 on/off and ssh -R (aes128-gcm, with and without -C), random and Kubernetes-like JSON data.
Everything it creates (processes, namespaces, veth, qdiscs, nft tables) is removed on exit.
"""
import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (spawn/cleanup/log helpers)

MODES = {
    "quick": dict(rounds=1, seconds=3.0),
    "full": dict(rounds=3, seconds=4.0),
}


def sh(*args, check=True):
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


class Netns:
    def __init__(self, tag):
        self.a, self.b = f"lbA{tag}", f"lbB{tag}"
        self.va, self.vb = f"lbva{tag}", f"lbvb{tag}"

    def create(self):
        sh("ip", "netns", "add", self.a)
        sh("ip", "netns", "add", self.b)
        sh("ip", "link", "add", self.va, "type", "veth", "peer", "name", self.vb)
        sh("ip", "link", "set", self.va, "netns", self.a)
        sh("ip", "link", "set", self.vb, "netns", self.b)
        for ns, dev, addr in ((self.a, self.va, "10.77.0.1/24"), (self.b, self.vb, "10.77.0.2/24")):
            sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf",
               "rate", "100mbit", "burst", "32kbit", "latency", "50ms")

    def set_loss(self, on):
        for ns, dev in ((self.a, self.va), (self.b, self.vb)):
            sh("ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "lbloss", check=False)
            if on:
                rules = (f"add table inet lbloss\n"
                         f"add chain inet lbloss out {{ type filter hook output priority 0; policy accept; }}\n"
                         f"add rule inet lbloss out oifname \"{dev}\" numgen random mod 100 < 1 drop\n")
                subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=rules, text=True,
                               check=True, capture_output=True)

    def destroy(self):
        for ns in (self.a, self.b):
            pids = sh("ip", "netns", "pids", ns, check=False).stdout.split()
            for p in pids:
                try:
                    os.kill(int(p), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            sh("ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "lbloss", check=False)
            sh("ip", "netns", "del", ns, check=False)


def run_in(ns, args):
    return ["ip", "netns", "exec", ns] + args


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=MODES, default="quick")
    ap.add_argument("--work", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tag", default=str(os.getpid() % 100000))
    ap.add_argument("--command", default="")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, bench.on_signal)
    signal.signal(signal.SIGINT, bench.on_signal)
    cfg = MODES[a.mode]
    B = lambda name: os.path.join(a.bin, name)  # noqa: E731
    W = lambda name: os.path.join(a.work, name)  # noqa: E731
    net = Netns(a.tag)
    results = {"schema": 1, "kind": "netns", "mode": a.mode, "command": a.command,
               "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "config": cfg,
               "description": ("veth pair between two namespaces, tbf rate 100mbit burst 32kbit latency 50ms "
                               "on both ends; the lossy/delayed link adds nftables 1 % drop on both ends and a "
                               "10 ms one-way delay in the relay (lariat-bench delay-relay, in B) that carries the agent→hub and "
                               "ssh→sshd connections (delay 0 on the plain link: same hop, no added latency). "
                               "1 stream, target → client."),
               "samples": []}
    port = iter(range(21000, 29000))
    try:
        net.create()
        tp = next(port)
        target = bench.spawn(run_in(net.b, [B("lariat-bench"), "target", "--listen", f"127.0.0.1:{tp}"]),
                             W("nt-target.log"), stdout=subprocess.PIPE)
        target.stdout.readline()

        # Hubs (A) stay up; agents / ssh clients (B) are restarted per link condition.
        hubs = {}
        for name, comp in (("lariat", True), ("lariat-nolz4", False)):
            data = W(f"nt-hub-{name}")
            os.makedirs(data, exist_ok=True)
            hp, fp = next(port), next(port)
            args = [B("lariat-hub"), "serve", "--listen", f"10.77.0.1:{hp}", "--server-name", "10.77.0.1",
                    "--data", data, "--forward", f"127.0.0.1:{fp}=local/127.0.0.1:{tp}"]
            if not comp:
                args.append("--no-compression")
            bench.spawn(run_in(net.a, args), W(f"nt-hub-{name}.log"))
            end = time.time() + 20
            while not os.path.exists(os.path.join(data, "local.token")) and time.time() < end:
                time.sleep(0.05)
            time.sleep(0.3)
            with open(os.path.join(data, "tls", "ca.pem"), "rb") as fh:
                ck = hashlib.sha256(fh.read()).hexdigest()
            hubs[name] = dict(hub_port=hp, forward=fp, token=open(os.path.join(data, "local.token")).read().strip(),
                              checksum=ck)
        sshd_dir = W("nt-ssh")
        os.makedirs(sshd_dir, exist_ok=True)
        os.makedirs("/run/sshd", exist_ok=True)
        key, hostkey = os.path.join(sshd_dir, "id"), os.path.join(sshd_dir, "hostkey")
        for k in (key, hostkey):
            sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k)
        with open(key + ".pub") as src, open(os.path.join(sshd_dir, "authorized_keys"), "w") as dst:
            dst.write(src.read())
        sshd_port = next(port)
        with open(os.path.join(sshd_dir, "sshd_config"), "w") as fh:
            fh.write(f"Port {sshd_port}\nListenAddress 10.77.0.1\nHostKey {hostkey}\n"
                     f"AuthorizedKeysFile {sshd_dir}/authorized_keys\nPidFile none\nUsePAM no\n"
                     "PermitRootLogin yes\nStrictModes no\nPasswordAuthentication no\nAllowTcpForwarding yes\n"
                     "Compression yes\nLogLevel ERROR\n")
        bench.spawn(run_in(net.a, ["/usr/sbin/sshd", "-D", "-e", "-f", os.path.join(sshd_dir, "sshd_config")]),
                    W("nt-sshd.log"))

        def ready(p, timeout=25):
            end = time.time() + timeout
            while time.time() < end:
                r = subprocess.run(run_in(net.a, [B("lariat-bench"), "openrate", "--connect", f"127.0.0.1:{p}",
                                                  "--count", "1", "--seconds", "2", "--json"]),
                                   capture_output=True, text=True)
                try:
                    if json.loads(r.stdout.strip().splitlines()[-1]).get("count") == 1:
                        return True
                except (json.JSONDecodeError, IndexError):
                    pass
                time.sleep(0.3)
            return False

        for link, lossy in (("100mbit", False), ("100mbit+10ms+1%", True)):
            net.set_loss(lossy)
            delay = "10" if lossy else "0"
            helpers = []
            routes = {}
            for name, h in hubs.items():
                # Agents always go through a relay in B (delay 0 on the plain link): the hub's
                # certificate does not cover 10.77.0.1 even with --server-name (IP SAN mismatch).
                rp = next(port)
                helpers.append(bench.spawn(run_in(net.b, [B("lariat-bench"), "delay-relay", "--listen",
                               f"127.0.0.1:{rp}", "--connect", f"10.77.0.1:{h['hub_port']}", "--delay-ms", delay]),
                               W("nt-relay.log"), stdout=subprocess.PIPE))
                helpers[-1].stdout.readline()
                host, server_port = "127.0.0.1", rp
                helpers.append(bench.spawn(run_in(net.b, [B("lariat-agent"), "--server", f"https://{host}:{server_port}",
                               "--cluster", "local", "--token", h["token"], "--ca-checksum", h["checksum"],
                               "--agent-id", f"nt-{name}", "--allow", "127.0.0.1"]), W(f"nt-agent-{name}.log")))
                routes[name] = h["forward"]
            for name, compress in (("ssh-aes128gcm", False), ("ssh-aes128gcm-C", True)):
                rport = next(port)
                rp = next(port)  # same relay hop as the agents, for a like-for-like path
                helpers.append(bench.spawn(run_in(net.b, [B("lariat-bench"), "delay-relay", "--listen",
                               f"127.0.0.1:{rp}", "--connect", f"10.77.0.1:{sshd_port}", "--delay-ms", delay]),
                               W("nt-relay.log"), stdout=subprocess.PIPE))
                helpers[-1].stdout.readline()
                host, sp = "127.0.0.1", rp
                helpers.append(bench.spawn(run_in(net.b, [
                    "ssh", "-N", "-T", "-p", str(sp), "-i", key, "-F", "none", "-o", "StrictHostKeyChecking=no",
                    "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes",
                    "-o", "LogLevel=ERROR", "-o", f"Compression={'yes' if compress else 'no'}",
                    "-c", "aes128-gcm@openssh.com", "-R", f"127.0.0.1:{rport}:127.0.0.1:{tp}", f"root@{host}"]),
                    W(f"nt-{name}.log")))
                routes[name] = rport
            for name, p in routes.items():
                if not ready(p):
                    bench.log(f"netns: route {name} not ready on {link}")
            for rnd in range(cfg["rounds"]):
                for data in ("json", "random"):
                    for name, p in routes.items():
                        bench.progress(f"netns {link} round {rnd + 1}/{cfg['rounds']} {name} {data}")
                        r = subprocess.run(run_in(net.a, [B("lariat-bench"), "throughput", "--connect", f"127.0.0.1:{p}",
                                                          "--streams", "1", "--bytes", str(8 << 30), "--direction", "down",
                                                          "--data", data, "--seconds", str(cfg["seconds"]), "--json"]),
                                           capture_output=True, text=True, timeout=cfg["seconds"] + 30)
                        try:
                            d = json.loads(r.stdout.strip().splitlines()[-1])
                        except (json.JSONDecodeError, IndexError):
                            d = {"error": r.stderr[-300:]}
                        d.update(route=name, link=link, round=rnd, data=data)
                        results["samples"].append(d)
                        bench.log(f"netns {link} {name} {data}: {d.get('mib_per_s')} MiB/s {d.get('error', '')}")
            for h in helpers:
                bench.stop(h)
    finally:
        bench.cleanup()
        net.destroy()
        results["duration_s"] = round(time.time() - bench.T0, 1)
        with open(a.out, "w") as fh:
            json.dump(results, fh, indent=1)
        bench.log(f"wrote {a.out}")


if __name__ == "__main__":
    main()
