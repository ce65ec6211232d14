#!/usr/bin/env python3
"""Generates the Lariat tunnel protocol v1 golden vectors (valid.json, invalid.json).

Python standard library only, fully deterministic: running it twice yields identical files.
The Swift codec (Sources/LariatProtocol) is the reference; Tests/LariatProtocolTests/
GoldenVectorTests.swift checks every vector against it.

valid.json   [{"name", "hex", "frame": {...decoded fields...}, optional "canonical_hex",
               optional "max_payload"}]
             "canonical_hex" is present when re-encoding the decoded frame does not give back
             the input bytes (defaults filled in, unknown TLVs or flag bits dropped, the reserved
             bit of GOAWAY's last-stream-id cleared). Otherwise re-encoding MUST give "hex".
invalid.json [{"name", "hex", "error": ErrorCode name, "connection": bool, optional "stream",
               optional "max_payload"}]
             "max_payload" is the receiver's maximum frame payload (default 65536).

Usage: python3 generate.py [output-dir]   (default: the directory of this script)
"""
import json
import os
import struct
import sys

# ---------------------------------------------------------------------------------------------
# Protocol constants (mirror Sources/LariatProtocol/FrameHeader.swift and ErrorCode.swift)

T_HELLO, T_WELCOME, T_OPEN, T_OPEN_OK, T_OPEN_FAIL, T_DATA = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
T_WINDOW, T_RESET, T_PING, T_PONG, T_GOAWAY = 0x07, 0x08, 0x09, 0x0A, 0x0B
TYPE_NAMES = {T_HELLO: "HELLO", T_WELCOME: "WELCOME", T_OPEN: "OPEN", T_OPEN_OK: "OPEN_OK",
              T_OPEN_FAIL: "OPEN_FAIL", T_DATA: "DATA", T_WINDOW: "WINDOW", T_RESET: "RESET",
              T_PING: "PING", T_PONG: "PONG", T_GOAWAY: "GOAWAY"}
F_FIN, F_LZ4 = 0x01, 0x02

ERR = {"NO_ERROR": 0, "PROTOCOL_ERROR": 1, "INTERNAL_ERROR": 2, "FLOW_CONTROL_ERROR": 3,
       "FRAME_SIZE_ERROR": 4, "STREAM_CLOSED": 5, "REFUSED": 6, "CANCEL": 7,
       "UNSUPPORTED_VERSION": 8, "AUTHENTICATION_FAILED": 9, "COMPRESSION_ERROR": 10,
       "TIMEOUT": 11, "GOING_AWAY": 12, "MEMORY_LIMIT": 13, "TARGET_UNREACHABLE": 20,
       "TARGET_FORBIDDEN": 21, "TARGET_UNKNOWN": 22, "TARGET_TIMEOUT": 23}
ERR_NAME = {v: k for k, v in ERR.items()}

CLASS_NAMES = {0: "control", 1: "interactive", 2: "bulk"}

# HELLO / WELCOME TLV tags
TAG_CAPS, TAG_ISW, TAG_SW, TAG_MFP, TAG_AGENT, TAG_CLUSTER, TAG_TOKEN = 1, 2, 3, 4, 5, 6, 7
TAG_ROLE, TAG_MAXSTREAMS, TAG_SOFTWARE, TAG_SESSION, TAG_PING = 8, 9, 10, 11, 12
CAP_LZ4, CAP_CLASSES, CAP_AUTOTUNE = 1, 2, 4

HELLO_DEFAULTS = dict(min_version=1, max_version=1, capabilities=7, initial_stream_window=262144,
                      session_window=33554432, max_frame_payload=65536, max_streams=16384,
                      agent_id="", cluster_id="", token="", role=1, software="")
WELCOME_DEFAULTS = dict(version=1, capabilities=7, initial_stream_window=262144,
                        session_window=33554432, max_frame_payload=65536, max_streams=16384,
                        session_id="", ping_interval_ms=10000)


def header(length, ftype, flags, stream):
    return struct.pack(">I", length)[1:] + bytes([ftype, flags]) + struct.pack(">I", stream)


def frame(ftype, flags, stream, payload=b""):
    return header(len(payload), ftype, flags, stream) + payload


def err_name(code):
    return ERR_NAME.get(code, "UNKNOWN_%d" % code)


# ---------------------------------------------------------------------------------------------
# TLV encoding, in the order the Swift encoder writes fields

def tlv(tag, value):
    return bytes([tag]) + struct.pack(">H", len(value)) + value


def tlv_u32(tag, v):
    return tlv(tag, struct.pack(">I", v))


def tlv_str(tag, s):
    b = s.encode("utf-8")
    return tlv(tag, b) if b else b""   # the reference encoder omits empty strings


def hello_payload(h):
    return (struct.pack(">HH", h["min_version"], h["max_version"])
            + tlv_u32(TAG_CAPS, h["capabilities"]) + tlv_u32(TAG_ISW, h["initial_stream_window"])
            + tlv_u32(TAG_SW, h["session_window"]) + tlv_u32(TAG_MFP, h["max_frame_payload"])
            + tlv_u32(TAG_MAXSTREAMS, h["max_streams"]) + tlv_str(TAG_AGENT, h["agent_id"])
            + tlv_str(TAG_CLUSTER, h["cluster_id"]) + tlv_str(TAG_TOKEN, h["token"])
            + tlv(TAG_ROLE, bytes([h["role"]])) + tlv_str(TAG_SOFTWARE, h["software"]))


def welcome_payload(w):
    return (struct.pack(">H", w["version"])
            + tlv_u32(TAG_CAPS, w["capabilities"]) + tlv_u32(TAG_ISW, w["initial_stream_window"])
            + tlv_u32(TAG_SW, w["session_window"]) + tlv_u32(TAG_MFP, w["max_frame_payload"])
            + tlv_u32(TAG_MAXSTREAMS, w["max_streams"]) + tlv_str(TAG_SESSION, w["session_id"])
            + tlv_u32(TAG_PING, w["ping_interval_ms"]))


# ---------------------------------------------------------------------------------------------
# A small, deterministic LZ4 *block* compressor (greedy, 4-byte hash chain of length 1) and a
# decompressor used to self-check it. Output is a valid LZ4 block per lz4_Block_format.md:
# the last 5 bytes are literals and the last match starts at least 12 bytes before the end.

def lz4_compress_block(src):
    n = len(src)
    out = bytearray()
    anchor = 0

    def emit(lit, offset=None, mlen=0):
        ll = len(lit)
        ml = mlen - 4 if offset is not None else 0
        out.append((min(ll, 15) << 4) | (min(ml, 15) if offset is not None else 0))
        if ll >= 15:
            r = ll - 15
            while r >= 255:
                out.append(255)
                r -= 255
            out.append(r)
        out.extend(lit)
        if offset is not None:
            out.extend(struct.pack("<H", offset))
            if ml >= 15:
                r = ml - 15
                while r >= 255:
                    out.append(255)
                    r -= 255
                out.append(r)

    if n >= 13:
        table = {}
        i = 0
        match_start_limit = n - 12        # a match must start at least 12 bytes before the end
        while i < match_start_limit:
            key = src[i:i + 4]
            cand = table.get(key)
            table[key] = i
            if cand is not None and i - cand <= 0xFFFF:
                ml = 4
                max_ml = n - 5 - i        # the last 5 bytes stay literals
                while ml < max_ml and src[cand + ml] == src[i + ml]:
                    ml += 1
                emit(src[anchor:i], i - cand, ml)
                i += ml
                anchor = i
                continue
            i += 1
    emit(src[anchor:])
    return bytes(out)


def lz4_decompress_block(block, decoded_length):
    out = bytearray()
    i = 0
    while True:
        token = block[i]
        i += 1
        ll = token >> 4
        if ll == 15:
            while True:
                b = block[i]
                i += 1
                ll += b
                if b != 255:
                    break
        out.extend(block[i:i + ll])
        i += ll
        if i == len(block):
            break
        offset = block[i] | (block[i + 1] << 8)
        i += 2
        ml = token & 15
        if ml == 15:
            while True:
                b = block[i]
                i += 1
                ml += b
                if b != 255:
                    break
        ml += 4
        assert 0 < offset <= len(out)
        for _ in range(ml):
            out.append(out[-offset])
    assert len(out) == decoded_length, (len(out), decoded_length)
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# Valid vectors

def hx(b):
    return b.hex()


def valid_vectors():
    v = []

    def add(name, raw, fr, canonical=None, max_payload=None):
        e = {"name": name, "hex": hx(raw), "frame": fr}
        if canonical is not None and canonical != raw:
            e["canonical_hex"] = hx(canonical)
        if max_payload is not None:
            e["max_payload"] = max_payload
        v.append(e)

    def hello_desc(h):
        d = {"type": "HELLO", "stream": 0, "flags": 0}
        d.update(h)
        return d

    def welcome_desc(w):
        d = {"type": "WELCOME", "stream": 0, "flags": 0}
        d.update(w)
        return d

    # HELLO
    h = dict(HELLO_DEFAULTS, agent_id="agent-7f3a", cluster_id="prod-eu-1", token="tok_example",
             software="lariat-agent/0.1.0")
    add("HELLO, all fields", frame(T_HELLO, 0, 0, hello_payload(h)), hello_desc(h))

    h = dict(HELLO_DEFAULTS, agent_id="a1", token="tk")
    add("HELLO, PROTOCOL.md example", frame(T_HELLO, 0, 0, hello_payload(h)), hello_desc(h))

    h = dict(HELLO_DEFAULTS)
    add("HELLO, version range only (absent fields take their defaults)",
        frame(T_HELLO, 0, 0, struct.pack(">HH", 1, 1)), hello_desc(h),
        canonical=frame(T_HELLO, 0, 0, hello_payload(h)))

    h = dict(HELLO_DEFAULTS, min_version=1, max_version=3, capabilities=CAP_CLASSES,
             initial_stream_window=65536, session_window=1048576, max_frame_payload=16384,
             max_streams=100, agent_id="node-ä1", role=2)
    # Fields out of the usual order, an unknown tag (200), a WELCOME-only tag (11, ignored in
    # HELLO), and a duplicate tag (the last occurrence wins).
    raw_payload = (struct.pack(">HH", 1, 3) + tlv(TAG_ROLE, b"\x02") + tlv(200, b"\xde\xad")
                   + tlv_u32(TAG_MFP, 16384) + tlv_u32(TAG_CAPS, 7) + tlv_u32(TAG_CAPS, CAP_CLASSES)
                   + tlv(TAG_SESSION, b"\xff") + tlv_u32(TAG_ISW, 65536) + tlv_u32(TAG_SW, 1048576)
                   + tlv_u32(TAG_MAXSTREAMS, 100) + tlv(TAG_AGENT, "node-ä1".encode())
                   + tlv(250, b""))
    add("HELLO, unordered/duplicate/unknown TLVs, node agent, version 1-3",
        frame(T_HELLO, 0, 0, raw_payload), hello_desc(h),
        canonical=frame(T_HELLO, 0, 0, hello_payload(h)))

    # WELCOME
    w = dict(WELCOME_DEFAULTS, session_id="s-000001")
    add("WELCOME, all fields", frame(T_WELCOME, 0, 0, welcome_payload(w)), welcome_desc(w))
    w = dict(WELCOME_DEFAULTS, session_id="s1")
    add("WELCOME, PROTOCOL.md example", frame(T_WELCOME, 0, 0, welcome_payload(w)), welcome_desc(w))
    w = dict(WELCOME_DEFAULTS)
    add("WELCOME, version only (absent fields take their defaults)",
        frame(T_WELCOME, 0, 0, struct.pack(">H", 1)), welcome_desc(w),
        canonical=frame(T_WELCOME, 0, 0, welcome_payload(w)))
    w = dict(WELCOME_DEFAULTS, capabilities=CAP_CLASSES | CAP_AUTOTUNE, initial_stream_window=131072,
             session_window=8388608, max_frame_payload=16384, max_streams=1024, ping_interval_ms=5000)
    raw_payload = (struct.pack(">H", 1) + tlv(TAG_AGENT, b"ignored in WELCOME") + welcome_payload(w)[2:])
    add("WELCOME, no LZ4, HELLO-only tag ignored", frame(T_WELCOME, 0, 0, raw_payload),
        welcome_desc(w), canonical=frame(T_WELCOME, 0, 0, welcome_payload(w)))

    # OPEN
    def open_vec(name, stream, cls, window, target):
        t = target.encode()
        add(name, frame(T_OPEN, 0, stream, bytes([cls]) + struct.pack(">I", window) + t),
            {"type": "OPEN", "stream": stream, "flags": 0, "class": CLASS_NAMES[cls],
             "window": window, "target": target})

    open_vec("OPEN tcp target, interactive", 1, 1, 262144, "tcp:10.0.0.5:6443")
    open_vec("OPEN k8s-api, control class", 3, 0, 65536, "k8s-api")
    open_vec("OPEN svc target, bulk, hub-initiated (even id)", 2, 2, 262144, "svc:default/web:80")
    open_vec("OPEN window 2^31-1, one-byte target", 5, 2, 0x7FFFFFFF, "x")
    open_vec("OPEN 1024-byte target (maximum)", 7, 2, 1, "tcp:" + "a" * 1014 + ":65535")
    open_vec("OPEN UTF-8 target, largest stream id", 0x7FFFFFFF, 1, 262144, "svc:prod/café:443")

    # OPEN_OK
    add("OPEN_OK", frame(T_OPEN_OK, 0, 1, struct.pack(">I", 262144)),
        {"type": "OPEN_OK", "stream": 1, "flags": 0, "window": 262144})
    add("OPEN_OK window 2^31-1", frame(T_OPEN_OK, 0, 2, struct.pack(">I", 0x7FFFFFFF)),
        {"type": "OPEN_OK", "stream": 2, "flags": 0, "window": 0x7FFFFFFF})

    # OPEN_FAIL / RESET
    def coded(name, ftype, stream, code, msg, flags=0, canonical=None):
        m = msg.encode()
        add(name, frame(ftype, flags, stream, struct.pack(">I", code) + m),
            {"type": TYPE_NAMES[ftype], "stream": stream, "flags": 0, "code": err_name(code),
             "code_value": code, "message": msg}, canonical=canonical)

    coded("OPEN_FAIL TARGET_UNREACHABLE with message", T_OPEN_FAIL, 3, ERR["TARGET_UNREACHABLE"],
          "dial tcp 10.0.0.9:22: connection refused")
    coded("OPEN_FAIL REFUSED, empty message", T_OPEN_FAIL, 5, ERR["REFUSED"], "")
    coded("RESET CANCEL, empty message", T_RESET, 1, ERR["CANCEL"], "")
    coded("RESET FLOW_CONTROL_ERROR with message", T_RESET, 2, ERR["FLOW_CONTROL_ERROR"],
          "DATA exceeds the stream window")
    coded("RESET with an unknown code (kept raw; treat as INTERNAL_ERROR)", T_RESET, 9, 0x1234,
          "möglich")

    # DATA
    def data_vec(name, stream, flags, payload, extra=None, canonical=None):
        d = {"type": "DATA", "stream": stream, "flags": flags & (F_FIN | F_LZ4),
             "fin": bool(flags & F_FIN), "compressed": bool(flags & F_LZ4), "payload_hex": hx(payload)}
        if extra:
            d.update(extra)
        add(name, frame(T_DATA, flags, stream, payload), d, canonical=canonical)

    data_vec("DATA plain", 1, 0, b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
    data_vec("DATA with FIN", 3, F_FIN, b"bye")
    data_vec("DATA FIN with empty payload (half-close only)", 5, F_FIN, b"")
    data_vec("DATA empty, no flags", 7, 0, b"")
    text = b"".join(b"GET /api/v1/namespaces/default/pods?watch=1&resourceVersion=%d HTTP/1.1\r\n" % i
                    for i in range(8))
    text = (text * 2)[:640]
    block = lz4_compress_block(text)
    assert lz4_decompress_block(block, len(text)) == text
    assert len(block) <= len(text) - len(text) // 16
    data_vec("DATA LZ4-compressed", 1, F_LZ4, struct.pack(">I", len(text)) + block,
             {"decoded_length": len(text), "decoded_hex": hx(text)})
    small = b"abcd" * 8
    small_block = lz4_compress_block(small)
    assert small_block.hex() == "4f61626364040004506461626364"
    data_vec("DATA LZ4, PROTOCOL.md example (below the sender's 512-byte threshold, still legal)", 1, F_LZ4,
             struct.pack(">I", len(small)) + small_block, {"decoded_length": len(small), "decoded_hex": hx(small)})
    text2 = bytes(range(256)) * 3
    block2 = lz4_compress_block(text2)
    assert lz4_decompress_block(block2, len(text2)) == text2
    data_vec("DATA LZ4-compressed with FIN", 2, F_LZ4 | F_FIN, struct.pack(">I", len(text2)) + block2,
             {"decoded_length": len(text2), "decoded_hex": hx(text2)})
    data_vec("DATA undefined flag bits are ignored", 9, F_FIN | 0xFC, b"z",
             canonical=frame(T_DATA, F_FIN, 9, b"z"))

    # WINDOW
    def window_vec(name, stream, inc):
        add(name, frame(T_WINDOW, 0, stream, struct.pack(">I", inc)),
            {"type": "WINDOW", "stream": stream, "flags": 0, "increment": inc})

    window_vec("WINDOW session (stream 0)", 0, 8388608)
    window_vec("WINDOW stream, increment 1", 1, 1)
    window_vec("WINDOW stream, increment 2^31-1", 4, 0x7FFFFFFF)

    # PING / PONG
    add("PING", frame(T_PING, 0, 0, bytes.fromhex("0123456789abcdef")),
        {"type": "PING", "stream": 0, "flags": 0, "opaque_hex": "0123456789abcdef"})
    add("PONG", frame(T_PONG, 0, 0, bytes.fromhex("0123456789abcdef")),
        {"type": "PONG", "stream": 0, "flags": 0, "opaque_hex": "0123456789abcdef"})
    add("PING with undefined flags (ignored)", frame(T_PING, 0xFF, 0, bytes(8)),
        {"type": "PING", "stream": 0, "flags": 0, "opaque_hex": "0000000000000000"},
        canonical=frame(T_PING, 0, 0, bytes(8)))

    # GOAWAY
    def goaway_vec(name, last, code, reason, raw_last=None):
        r = reason.encode()
        raw = frame(T_GOAWAY, 0, 0, struct.pack(">II", last if raw_last is None else raw_last, code) + r)
        add(name, raw, {"type": "GOAWAY", "stream": 0, "flags": 0, "last_stream_id": last,
                        "code": err_name(code), "code_value": code, "reason": reason},
            canonical=frame(T_GOAWAY, 0, 0, struct.pack(">II", last, code) + r))

    goaway_vec("GOAWAY NO_ERROR", 0, ERR["NO_ERROR"], "")
    goaway_vec("GOAWAY GOING_AWAY with reason", 7, ERR["GOING_AWAY"], "hub restarting")
    goaway_vec("GOAWAY AUTHENTICATION_FAILED (handshake refusal)", 0, ERR["AUTHENTICATION_FAILED"],
               "invalid token")
    goaway_vec("GOAWAY reserved bit of last-stream-id is ignored", 5, ERR["NO_ERROR"], "",
               raw_last=0x80000005)

    # Extension frames
    add("extension frame 0x80 on stream 0, empty", frame(0x80, 0, 0),
        {"type": "EXT", "ext_type": 0x80, "stream": 0, "flags": 0, "payload_hex": ""})
    add("extension frame 0xFE with flags on stream 5", frame(0xFE, 0xA5, 5, b"\x00\x01\x02future"),
        {"type": "EXT", "ext_type": 0xFE, "stream": 5, "flags": 0xA5,
         "payload_hex": hx(b"\x00\x01\x02future")})
    return v


# ---------------------------------------------------------------------------------------------
# Invalid vectors: every rejection Frame.decode performs

def invalid_vectors():
    v = []

    def bad(name, raw, error, connection, stream=None, max_payload=None):
        e = {"name": name, "hex": hx(raw), "error": error, "connection": connection}
        if stream is not None:
            e["stream"] = stream
        if max_payload is not None:
            e["max_payload"] = max_payload
        v.append(e)

    FS, PE, FC = "FRAME_SIZE_ERROR", "PROTOCOL_ERROR", "FLOW_CONTROL_ERROR"
    ping = frame(T_PING, 0, 0, bytes(8))

    # Framing
    bad("empty input", b"", FS, True)
    bad("truncated header (8 bytes)", ping[:8], FS, True)
    bad("length field larger than the payload", header(8, T_PING, 0, 0) + bytes(7), FS, True)
    bad("length field smaller than the payload", header(8, T_PING, 0, 0) + bytes(9), FS, True)
    bad("payload larger than the receiver's maximum", frame(T_DATA, 0, 1, bytes(16385)), FS, True,
        max_payload=16384)
    bad("oversize is checked before the reserved bit",
        frame(T_DATA, 0, 0x80000001, bytes(17)), FS, True, max_payload=16)
    bad("reserved bit set on a DATA frame", frame(T_DATA, 0, 0x80000001, b"x"), PE, True)
    bad("reserved bit set on a PING frame", header(8, T_PING, 0, 0x80000000) + bytes(8), PE, True)
    bad("reserved bit set on an extension frame", frame(0x80, 0, 0x80000000), PE, True)
    bad("unknown critical type 0x00", frame(0x00, 0, 0), PE, True)
    bad("unknown critical type 0x0C", frame(0x0C, 0, 1, b"abc"), PE, True)
    bad("unknown critical type 0x7F", frame(0x7F, 0, 0), PE, True)

    # Stream 0 rules
    for t in (T_HELLO, T_WELCOME, T_PING, T_PONG, T_GOAWAY):
        payload = {T_HELLO: hello_payload(HELLO_DEFAULTS), T_WELCOME: welcome_payload(WELCOME_DEFAULTS),
                   T_PING: bytes(8), T_PONG: bytes(8), T_GOAWAY: bytes(8)}[t]
        bad("%s on a non-zero stream" % TYPE_NAMES[t], frame(t, 0, 1, payload), PE, True)
    for t, p in ((T_OPEN, b"\x02\x00\x01\x00\x00k8s-api"), (T_OPEN_OK, struct.pack(">I", 1)),
                 (T_OPEN_FAIL, struct.pack(">I", 6)), (T_DATA, b"x"), (T_RESET, struct.pack(">I", 7))):
        bad("%s on stream 0" % TYPE_NAMES[t], frame(t, 0, 0, p), PE, True)

    # HELLO
    bad("HELLO empty payload", frame(T_HELLO, 0, 0), PE, True)
    bad("HELLO 3-byte payload (version range cut)", frame(T_HELLO, 0, 0, b"\x00\x01\x00"), PE, True)
    bad("HELLO inverted version range 2-1", frame(T_HELLO, 0, 0, struct.pack(">HH", 2, 1)), PE, True)
    bad("HELLO TLV cut after the tag", frame(T_HELLO, 0, 0, struct.pack(">HH", 1, 1) + b"\x01"), PE, True)
    bad("HELLO TLV cut inside the length", frame(T_HELLO, 0, 0, struct.pack(">HH", 1, 1) + b"\x01\x00"),
        PE, True)
    bad("HELLO TLV value shorter than its length",
        frame(T_HELLO, 0, 0, struct.pack(">HH", 1, 1) + b"\x01\x00\x04\x00\x00\x07"), PE, True)
    bad("HELLO truncated unknown TLV",
        frame(T_HELLO, 0, 0, struct.pack(">HH", 1, 1) + b"\xc8\x00\x10abc"), PE, True)
    bad("HELLO capabilities field of 2 bytes",
        frame(T_HELLO, 0, 0, struct.pack(">HH", 1, 1) + tlv(TAG_CAPS, b"\x00\x07")), PE, True)
    bad("HELLO sessionWindow field of 5 bytes",
        frame(T_HELLO, 0, 0, struct.pack(">HH", 1, 1) + tlv(TAG_SW, bytes(5))), PE, True)
    bad("HELLO agentID not UTF-8",
        frame(T_HELLO, 0, 0, struct.pack(">HH", 1, 1) + tlv(TAG_AGENT, b"ag\xffent")), PE, True)
    bad("HELLO token with an overlong encoding",
        frame(T_HELLO, 0, 0, struct.pack(">HH", 1, 1) + tlv(TAG_TOKEN, b"\xc0\x80")), PE, True)
    bad("HELLO unknown agent role 3",
        frame(T_HELLO, 0, 0, struct.pack(">HH", 1, 1) + tlv(TAG_ROLE, b"\x03")), PE, True)
    bad("HELLO agent role field of 2 bytes",
        frame(T_HELLO, 0, 0, struct.pack(">HH", 1, 1) + tlv(TAG_ROLE, b"\x00\x01")), PE, True)

    # WELCOME
    bad("WELCOME empty payload", frame(T_WELCOME, 0, 0), PE, True)
    bad("WELCOME 1-byte payload", frame(T_WELCOME, 0, 0, b"\x00"), PE, True)
    bad("WELCOME TLV cut", frame(T_WELCOME, 0, 0, b"\x00\x01\x0c\x00\x04\x00"), PE, True)
    bad("WELCOME pingInterval field of 2 bytes",
        frame(T_WELCOME, 0, 0, b"\x00\x01" + tlv(TAG_PING, b"\x27\x10")), PE, True)
    bad("WELCOME sessionID not UTF-8 (lone surrogate)",
        frame(T_WELCOME, 0, 0, b"\x00\x01" + tlv(TAG_SESSION, b"\xed\xa0\x80")), PE, True)

    # OPEN
    bad("OPEN empty payload", frame(T_OPEN, 0, 1), FS, True)
    bad("OPEN 4-byte payload", frame(T_OPEN, 0, 1, b"\x01\x00\x04\x00"), FS, True)
    # A malformed OPEN is a connection error: its id is idle by definition (PROTOCOL.md §5.3).
    bad("OPEN unknown stream class 3", frame(T_OPEN, 0, 1, b"\x03" + struct.pack(">I", 65536) + b"k8s-api"),
        PE, True, stream=1)
    bad("OPEN bad class is reported before an empty target",
        frame(T_OPEN, 0, 3, b"\xff" + struct.pack(">I", 0)), PE, True, stream=3)
    bad("OPEN empty target", frame(T_OPEN, 0, 1, b"\x02" + struct.pack(">I", 65536)), PE, True, stream=1)
    bad("OPEN 1025-byte target", frame(T_OPEN, 0, 1, b"\x02" + struct.pack(">I", 65536) + b"t" * 1025),
        PE, True, stream=1)
    bad("OPEN target not UTF-8", frame(T_OPEN, 0, 5, b"\x02" + struct.pack(">I", 65536) + b"tcp:\xc3\x28:1"),
        PE, True, stream=5)
    bad("OPEN target is checked before the window",
        frame(T_OPEN, 0, 1, b"\x02" + struct.pack(">I", 0) + b"\x80"), PE, True, stream=1)
    bad("OPEN window 0", frame(T_OPEN, 0, 1, b"\x02" + struct.pack(">I", 0) + b"k8s-api"),
        FC, True, stream=1)
    bad("OPEN window 2^31", frame(T_OPEN, 0, 7, b"\x01" + struct.pack(">I", 0x80000000) + b"k8s-api"),
        FC, True, stream=7)

    # OPEN_OK
    bad("OPEN_OK 3-byte payload", frame(T_OPEN_OK, 0, 1, b"\x00\x01\x00"), FS, True)
    bad("OPEN_OK 5-byte payload", frame(T_OPEN_OK, 0, 1, b"\x00\x01\x00\x00\x00"), FS, True)
    bad("OPEN_OK window 0", frame(T_OPEN_OK, 0, 1, struct.pack(">I", 0)), FC, False, stream=1)
    bad("OPEN_OK window 2^32-1", frame(T_OPEN_OK, 0, 2, struct.pack(">I", 0xFFFFFFFF)), FC, False, stream=2)

    # OPEN_FAIL / RESET
    bad("OPEN_FAIL 3-byte payload", frame(T_OPEN_FAIL, 0, 1, b"\x00\x00\x06"), FS, True)
    bad("RESET empty payload", frame(T_RESET, 0, 1), FS, True)
    bad("OPEN_FAIL message not UTF-8", frame(T_OPEN_FAIL, 0, 1, struct.pack(">I", 20) + b"\xfe"), PE, True)
    bad("RESET 1025-byte message", frame(T_RESET, 0, 1, struct.pack(">I", 7) + b"m" * 1025), PE, True)
    bad("RESET message cut inside a UTF-8 sequence",
        frame(T_RESET, 0, 3, struct.pack(">I", 7) + "é".encode()[:1]), PE, True)

    # DATA
    bad("DATA LZ4 flag with a 4-byte payload", frame(T_DATA, F_LZ4, 1, struct.pack(">I", 0)), FS, True)
    bad("DATA LZ4+FIN flags with an empty payload", frame(T_DATA, F_LZ4 | F_FIN, 1), FS, True)

    # WINDOW
    bad("WINDOW 3-byte payload", frame(T_WINDOW, 0, 0, b"\x00\x00\x01"), FS, True)
    bad("WINDOW 5-byte payload on a stream", frame(T_WINDOW, 0, 1, b"\x00\x00\x00\x01\x00"), FS, True)
    bad("WINDOW session increment 0", frame(T_WINDOW, 0, 0, struct.pack(">I", 0)), PE, True)
    bad("WINDOW session increment 2^32-1", frame(T_WINDOW, 0, 0, struct.pack(">I", 0xFFFFFFFF)), PE, True)
    bad("WINDOW stream increment 0", frame(T_WINDOW, 0, 1, struct.pack(">I", 0)), PE, False, stream=1)
    bad("WINDOW stream increment 2^31", frame(T_WINDOW, 0, 6, struct.pack(">I", 0x80000000)),
        PE, False, stream=6)

    # PING / PONG
    bad("PING 7-byte payload", frame(T_PING, 0, 0, bytes(7)), FS, True)
    bad("PING 9-byte payload", frame(T_PING, 0, 0, bytes(9)), FS, True)
    bad("PONG empty payload", frame(T_PONG, 0, 0), FS, True)

    # GOAWAY
    bad("GOAWAY 7-byte payload", frame(T_GOAWAY, 0, 0, bytes(7)), FS, True)
    bad("GOAWAY reason not UTF-8", frame(T_GOAWAY, 0, 0, struct.pack(">II", 0, 1) + b"\x80abc"), PE, True)
    bad("GOAWAY 1025-byte reason", frame(T_GOAWAY, 0, 0, struct.pack(">II", 0, 12) + b"r" * 1025), PE, True)

    # Extension frames obey the framing rules
    bad("extension frame larger than the receiver's maximum", frame(0x90, 0, 0, bytes(17)), FS, True,
        max_payload=16)
    return v


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    for name, data in (("valid.json", valid_vectors()), ("invalid.json", invalid_vectors())):
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        with open(os.path.join(out_dir, name), "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        print("wrote %s (%d vectors)" % (os.path.join(out_dir, name), len(data)))


if __name__ == "__main__":
    main()
