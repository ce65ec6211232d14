#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/<target>/ (deterministic, stdlib only).

decoder/: every golden vector of protocol/vectors/{valid,invalid}.json up to 4 KiB, prefixed with
          the selector byte FuzzDecoder.swift expects, plus a few multi-frame streams.
session/: scripts in the op format documented at the top of FuzzSession.swift: full handshake
          transcripts for the hub side, the agent side and an agent/hub pair.
http-request/, http-response/, chunked/, websocket/, handshake/, proxy/, target/: hand-written
          valid and borderline inputs in each harness's format (see the header of fuzz/Fuzz*.swift).
The committed folders also hold units libFuzzer found (merged with -merge=1); this script only
(re)writes the named seeds.
"""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "protocol", "vectors"))
import generate as g  # noqa: E402


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


# ---- decoder seeds
def decoder_seeds(out):
    vecs = json.load(open(os.path.join(HERE, "..", "protocol", "vectors", "valid.json")))
    bad = json.load(open(os.path.join(HERE, "..", "protocol", "vectors", "invalid.json")))
    n = 0
    stream = b""
    for i, v in enumerate(vecs + bad):
        raw = bytes.fromhex(v["hex"])
        if len(raw) > 4096:
            continue
        sel = 0x00 if v.get("max_payload", 65536) == 65536 else (0x03 if v["max_payload"] == 16 else 0x01)
        write(os.path.join(out, "vec-%03d" % i), bytes([sel]) + raw)
        if i < len(vecs):
            stream += raw
        n += 1
    write(os.path.join(out, "stream-all-valid"), bytes([0x00]) + stream)
    write(os.path.join(out, "stream-all-valid-split"), bytes([0x28]) + stream)
    return n + 2


# ---- session seeds
def recv(raw, chunk=256):
    """RECV ops carrying `raw` (mode 0/1)."""
    out = b""
    for i in range(0, len(raw), chunk):
        piece = raw[i:i + chunk]
        out += bytes([0x00, len(piece) - 1]) + piece
    return out


PRODUCE = bytes([0x86])           # produce into 64 KiB


def hello(token="t", **kw):
    h = dict(g.HELLO_DEFAULTS, agent_id="agent-1", cluster_id="c1", token=token, software="lariat-agent/0.1.0")
    h.update(kw)
    return g.frame(g.T_HELLO, 0, 0, g.hello_payload(h))


def welcome():
    return g.frame(g.T_WELCOME, 0, 0, g.welcome_payload(dict(g.WELCOME_DEFAULTS, session_id="s-1")))


def opn(stream, target, cls=2, window=262144):
    return g.frame(g.T_OPEN, 0, stream, bytes([cls]) + struct.pack(">I", window) + target.encode())


def data(stream, payload, flags=0):
    return g.frame(g.T_DATA, flags, stream, payload)


def window(stream, inc):
    return g.frame(g.T_WINDOW, 0, stream, struct.pack(">I", inc))


def session_seeds(out):
    seeds = {}
    vecs = {v["name"]: bytes.fromhex(v["hex"]) for v in
            json.load(open(os.path.join(HERE, "..", "protocol", "vectors", "valid.json")))}
    lz4 = vecs["DATA LZ4-compressed"]

    # Hub side: a whole agent conversation.
    s = bytes([0, 0, 0])
    s += recv(hello()) + PRODUCE
    s += recv(opn(1, "tcp:10.0.0.5:6443", cls=1)) + PRODUCE
    s += recv(data(1, b"GET / HTTP/1.1\r\n\r\n")) + PRODUCE
    s += bytes([0x09, 0x00, 0x10])                      # write 1024 bytes on stream 1
    s += PRODUCE
    s += recv(window(1, 65536) + window(0, 65536)) + recv(g.frame(g.T_PING, 0, 0, bytes(8))) + PRODUCE
    s += recv(lz4) + PRODUCE
    s += recv(data(1, b"", g.F_FIN)) + bytes([0x0A, 0x00]) + PRODUCE   # peer FIN, we finish
    s += recv(opn(3, "k8s-api")) + bytes([0x0B, 0x01]) + PRODUCE       # then reset stream 3
    s += bytes([0x87, 0x10]) + PRODUCE                                  # tick 16 x 50 ms x 1000
    s += recv(g.frame(g.T_GOAWAY, 0, 0, struct.pack(">II", 0, 12) + b"bye")) + PRODUCE
    seeds["hub-transcript"] = s

    # Hub side, refused agent.
    seeds["hub-refused"] = bytes([0, 0, 0]) + recv(hello("bad")) + PRODUCE

    # Hub side with small windows and limits.
    # (OPEN windows equal the HELLO's initial window: see crashes/session/ for the case where
    # they differ.)
    s = bytes([0, 0x17, 0]) + recv(hello(initial_stream_window=1024, session_window=65536)) + PRODUCE
    for sid in (1, 3, 5, 7, 9):
        s += recv(opn(sid, "svc:default/web:80", window=1024))
    s += bytes([0xF, 0x04]) + recv(opn(11, "k8s-api", window=1024)) + bytes([0x09, 0x00, 0x20]) + PRODUCE
    s += recv(data(1, bytes(2000))) + PRODUCE
    seeds["hub-small-limits"] = s

    # Agent side: handshake, our OPEN, the hub's OPEN, data both ways.
    s = bytes([1, 0, 0]) + PRODUCE + recv(welcome())
    s += bytes([0x18]) + PRODUCE                         # open an interactive stream (id 1)
    s += recv(g.frame(g.T_OPEN_OK, 0, 1, struct.pack(">I", 262144)))
    s += bytes([0x09, 0x00, 0x20]) + PRODUCE             # write 2048 bytes
    s += recv(data(1, b"HTTP/1.1 200 OK\r\n\r\n", g.F_FIN)) + PRODUCE
    s += recv(opn(2, "tcp:127.0.0.1:22")) + PRODUCE
    s += recv(data(2, b"SSH-2.0-x\r\n")) + PRODUCE
    s += recv(g.frame(g.T_OPEN_FAIL, 0, 3, struct.pack(">I", 20) + b"unreachable"))
    s += bytes([0x8D]) + PRODUCE                         # ping
    seeds["agent-transcript"] = s

    # Agent and hub back to back.
    s = bytes([2, 0, 0])
    s += bytes([0x00, 0xFF, 0x10, 0xFF])                  # agent -> hub (HELLO), hub -> agent (WELCOME)
    s += bytes([0x18]) + bytes([0x00, 0x20])             # agent opens an interactive stream
    s += bytes([0x10, 0x20])                             # OPEN_OK back
    s += bytes([0x09, 0x00, 0x40, 0x00, 0xFF, 0x10, 0xFF])  # agent writes 4 KiB, pump both ways
    s += bytes([0x5C, 0x00, 0x59, 0x00, 0x08, 0x0A, 0x00])  # hub consumes, writes, agent finishes
    s += bytes([0x06, 0xFF, 0x16, 0xFF]) * 2
    s += bytes([0x28, 0x00, 0x20, 0x10, 0x20, 0x2B, 0x01, 0x00, 0x20])  # bulk stream, then reset
    s += bytes([0x0D]) + bytes([0x00, 0x20, 0x10, 0x20])  # agent goAway
    seeds["pair-transcript"] = s

    # A pair with small windows and deferred consumption on the hub.
    s = bytes([2, 0x03, 0x03]) + bytes([0x00, 0xFF, 0x10, 0xFF])
    s += bytes([0x5F, 0x02])                             # hub policy: defer consumption
    s += bytes([0x28, 0x00, 0x20, 0x10, 0x20])           # agent opens bulk stream 1
    s += bytes([0x19, 0x00, 0xFF]) + bytes([0x00, 0xFF]) * 8
    s += bytes([0x18, 0x00, 0x20, 0x10, 0x20])           # and interactive stream 3
    s += bytes([0x09, 0x01, 0x40]) + bytes([0x00, 0xFF]) * 8
    s += bytes([0x5B, 0x00]) + bytes([0x10, 0xFF, 0x00, 0xFF]) * 4   # hub resets stream 1
    seeds["pair-small-windows"] = s

    for name, b in seeds.items():
        write(os.path.join(out, name), b)
    return len(seeds)


# ---- parser seeds
REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: hub\r\n\r\n",
    b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"POST /v1/clusters HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nT: 1\r\n\r\n",
    b"GET /v1/connect HTTP/1.1\r\nHost: hub\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n\x82\x80abcd",
    b"CONNECT hub.example:443 HTTP/1.1\r\nHost: hub.example:443\r\nProxy-Authorization: Basic Ym9iOg==\r\n\r\n\x16\x03\x01",
    b"\r\n\r\nGET /a?b=c HTTP/1.1\nX: y\n\nGET /cacerts HTTP/1.1\r\n\r\n",
    b"PUT / HTTP/1.1\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\nabc",
    b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET / HTTP/2.0\r\n\r\n",
]
RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x82\x02hi",
    b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.0 200\r\n\r\nbody until close",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
]


def ws_frame(opcode, payload, fin=True, mask=None, rsv=0):
    b0 = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, m | n])
    elif n < 65536:
        head = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if mask:
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        head += mask
    return head + payload


def parser_seeds(base):
    counts = {}
    def put(target, name, data):
        write(os.path.join(base, target, name), data)
        counts[target] = counts.get(target, 0) + 1

    for i, r in enumerate(REQUESTS):
        put("http-request", "req-%02d" % i, bytes([0x00]) + r)
        put("http-request", "req-%02d-tight" % i, bytes([0x85]) + r)
    for i, r in enumerate(RESPONSES):
        put("http-response", "resp-%02d" % i, bytes([0x00, 0x00]) + r)       # all GET
    put("http-response", "resp-connect", bytes([0x03, 0x02]) + RESPONSES[2])  # CONNECT first
    put("http-response", "resp-head", bytes([0x07, 0x01]) + RESPONSES[0])     # HEAD first

    chunked = [b"5\r\nhello\r\n0\r\n\r\n", b"A;x=y\r\n0123456789\r\n0\r\nTrailer: v\r\n\r\nNEXT",
               b"1 \r\na\r\n0\r\n\r\n", b"ffffffffffffffff\r\n"]
    for i, c in enumerate(chunked):
        put("chunked", "decode-%02d" % i, bytes([0x00]) + c)
        put("chunked", "decode-%02d-tight" % i, bytes([0x83]) + c)
    put("chunked", "encode", bytes([0x47]) + b"some body bytes\r\n0\r\n")
    put("chunked", "content-length", bytes([0x60, 5]) + b"helloworld")

    key = b"\x37\xfa\x21\x3d"
    client = (ws_frame(2, b"binary", mask=key) + ws_frame(1, "h\u00e9".encode(), fin=False, mask=key)
              + ws_frame(9, b"ping", mask=key) + ws_frame(0, "llo".encode(), mask=key)
              + ws_frame(2, bytes(300), mask=key) + ws_frame(8, struct.pack(">H", 1000) + b"bye", mask=key))
    put("websocket", "from-client", bytes([0x00]) + client)
    server = ws_frame(2, bytes(range(256)) * 2) + ws_frame(10, b"pong") + ws_frame(8, b"")
    put("websocket", "from-server", bytes([0x01]) + server)
    put("websocket", "limits", bytes([0x06]) + ws_frame(2, bytes(200), mask=key))
    put("websocket", "bad-utf8", bytes([0x00]) + ws_frame(1, b"\xed\xa0\x80", mask=key))

    h = dict(g.HELLO_DEFAULTS, agent_id="agent-1", cluster_id="c1", token="t", software="lariat-agent/0.1.0")
    put("handshake", "hello", bytes([0]) + g.hello_payload(h))
    put("handshake", "welcome", bytes([1]) + g.welcome_payload(dict(g.WELCOME_DEFAULTS, session_id="s-1")))
    put("handshake", "hello-unknown-tag", bytes([0]) + g.hello_payload(h) + bytes([0x7f, 0, 2, 1, 2]))

    for i, (p, n, host) in enumerate([
        ("http://proxy.corp:3128", "localhost,.svc,10.0.0.0/8,[fd00::1]:8443", "hub.example.com"),
        ("http://al%40ice:p%3Ass@[fd00::2]:8080/", "*.example.com:443,example.org", "api.example.com"),
        ("proxy:80", "*", "10.1.2.3"),
        ("https://x", "", "::1"),
    ]):
        put("proxy", "env-%02d" % i, "\0".join([p, n, host]).encode())

    for i, t in enumerate(["tcp:10.0.0.5:6443", "tcp:[fd00::1]:443", "svc:default/web:80", "k8s-api",
                           "lariat:source:1048576:json", "lariat:discard", "tcp:localhost\0.svc.cluster.local:22",
                           "tcp:[::ffff:10.0.0.1]:80", "svc:default/[web]:80"]):
        put("target", "open-%02d" % i, bytes([0]) + t.encode())
    for i, r in enumerate(["10.0.0.0/8,.svc.cluster.local,db.example.com:5432\0api.svc.cluster.local",
                           "[fd00::/8]:443,169.254.20.10,*:22\0metadata.google.internal",
                           "*.example.com,*\0EXAMPLE.COM."]):
        put("target", "rules-%02d" % i, bytes([1]) + r.encode())
    return counts


def main():
    base = os.path.join(HERE, "corpus")
    nd = decoder_seeds(os.path.join(base, "decoder"))
    ns = session_seeds(os.path.join(base, "session"))
    counts = parser_seeds(base)
    print("corpus: %d decoder seeds, %d session seeds, %s" % (nd, ns, counts))


if __name__ == "__main__":
    main()
