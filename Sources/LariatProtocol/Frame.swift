/// A decoded frame as a value. The session's DATA path never builds one (it works on borrowed
/// bytes); control frames, golden vectors, the fuzzer and tests do.
public enum Frame: Equatable, Sendable {
    case hello(Hello)
    case welcome(Welcome)
    case open(stream: UInt32, streamClass: StreamClass, window: UInt32, target: String)
    case openOK(stream: UInt32, window: UInt32)
    case openFail(stream: UInt32, code: ErrorCode, message: String)
    /// `payload` is the payload as on the wire: with `compressed`, a 4-byte decoded length
    /// followed by an LZ4 block.
    case data(stream: UInt32, fin: Bool, compressed: Bool, payload: [UInt8])
    case window(stream: UInt32, increment: UInt32)
    case reset(stream: UInt32, code: ErrorCode, message: String)
    case ping(opaque: UInt64)
    case pong(opaque: UInt64)
    case goAway(lastStreamID: UInt32, code: ErrorCode, reason: String)
    /// An extension frame (type ≥ 0x80); receivers ignore those they do not know.
    case ext(type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8])
}

extension Frame {
    /// Serialises the frame, header included.
    public func encode() -> [UInt8] {
        var w = ByteWriter(capacity: 32)
        let (type, flags, stream): (UInt8, UInt8, UInt32)
        switch self {
        case .hello(let h):
            (type, flags, stream) = (FrameType.hello.rawValue, 0, 0); w.append(h.encode())
        case .welcome(let m):
            (type, flags, stream) = (FrameType.welcome.rawValue, 0, 0); w.append(m.encode())
        case .open(let id, let cls, let window, let target):
            (type, flags, stream) = (FrameType.open.rawValue, 0, id)
            w.u8(cls.rawValue); w.u32(window); w.append(target.utf8)
        case .openOK(let id, let window):
            (type, flags, stream) = (FrameType.openOK.rawValue, 0, id); w.u32(window)
        case .openFail(let id, let code, let message):
            (type, flags, stream) = (FrameType.openFail.rawValue, 0, id); w.u32(code.rawValue); w.append(message.utf8)
        case .data(let id, let fin, let compressed, let payload):
            (type, flags, stream) = (FrameType.data.rawValue,
                                     (fin ? FrameFlags.fin : 0) | (compressed ? FrameFlags.lz4 : 0), id)
            w.append(payload)
        case .window(let id, let inc):
            (type, flags, stream) = (FrameType.window.rawValue, 0, id); w.u32(inc)
        case .reset(let id, let code, let message):
            (type, flags, stream) = (FrameType.reset.rawValue, 0, id); w.u32(code.rawValue); w.append(message.utf8)
        case .ping(let v):
            (type, flags, stream) = (FrameType.ping.rawValue, 0, 0); w.u64(v)
        case .pong(let v):
            (type, flags, stream) = (FrameType.pong.rawValue, 0, 0); w.u64(v)
        case .goAway(let last, let code, let reason):
            (type, flags, stream) = (FrameType.goAway.rawValue, 0, 0)
            w.u32(last); w.u32(code.rawValue); w.append(reason.utf8)
        case .ext(let t, let f, let id, let payload):
            (type, flags, stream) = (t, f, id); w.append(payload)
        }
        var out = [UInt8](repeating: 0, count: FrameHeader.size)
        out.withUnsafeMutableBytes {
            FrameHeader(length: w.bytes.count, type: type, flags: flags, streamID: stream).write(to: $0.baseAddress!)
        }
        out.append(contentsOf: w.bytes)
        return out
    }

    /// Decodes exactly one whole frame (header + payload) with every check that does not need
    /// session state. `maxPayload` is the receiver's announced maximum.
    public static func decode(_ bytes: UnsafeRawBufferPointer,
                              maxPayload: Int = 64 * 1024) throws(ProtocolViolation) -> Frame {
        guard bytes.count >= FrameHeader.size else {
            throw ProtocolViolation(.frameSizeError, "truncated frame header (\(bytes.count) bytes)")
        }
        let h = FrameHeader.read(from: bytes.baseAddress!)
        guard h.length == bytes.count - FrameHeader.size else {
            throw ProtocolViolation(.frameSizeError, "length field \(h.length) but \(bytes.count - FrameHeader.size) payload bytes")
        }
        return try decode(header: h, payload: UnsafeRawBufferPointer(rebasing: bytes[FrameHeader.size...]),
                          maxPayload: maxPayload)
    }

    public static func decode(header h: FrameHeader, payload: UnsafeRawBufferPointer,
                              maxPayload: Int = 64 * 1024) throws(ProtocolViolation) -> Frame {
        try FrameRules.checkHeader(h, maxPayload: maxPayload)
        var r = ByteReader(payload)
        guard let type = FrameType(rawValue: h.type) else {
            return .ext(type: h.type, flags: h.flags, stream: h.streamID, payload: Array(payload))
        }
        let id = h.streamID
        switch type {
        case .hello: return .hello(try Hello.decode(payload))
        case .welcome: return .welcome(try Welcome.decode(payload))
        case .open:
            guard let raw = r.u8(), let window = r.u32() else {
                throw ProtocolViolation(.frameSizeError, "OPEN payload shorter than 5 bytes", stream: id)
            }
            // A malformed OPEN is a connection error (PROTOCOL.md §5.3): its id is idle by
            // definition, so there is no stream to confine the error to.
            guard let cls = StreamClass(rawValue: raw) else {
                throw ProtocolViolation(.protocolError, "OPEN: unknown stream class \(raw)", stream: id)
            }
            let t = r.rest()
            guard t.count > 0, t.count <= ProtocolLimits.maxTargetLength, let target = String(validatingUTF8Bytes: t) else {
                throw ProtocolViolation(.protocolError, "OPEN: target must be 1-\(ProtocolLimits.maxTargetLength) bytes of UTF-8", stream: id)
            }
            guard window > 0, Int(window) <= ProtocolLimits.maxWindow else {
                throw ProtocolViolation(.flowControlError, "OPEN: window \(window) out of range", stream: id)
            }
            return .open(stream: id, streamClass: cls, window: window, target: target)
        case .openOK:
            guard payload.count == 4, let window = r.u32() else {
                throw ProtocolViolation(.frameSizeError, "OPEN_OK payload must be 4 bytes", stream: id)
            }
            guard window > 0, Int(window) <= ProtocolLimits.maxWindow else {
                throw ProtocolViolation(.flowControlError, "OPEN_OK: window \(window) out of range", stream: id, connection: false)
            }
            return .openOK(stream: id, window: window)
        case .openFail, .reset:
            guard let code = r.u32() else {
                throw ProtocolViolation(.frameSizeError, "\(type == .reset ? "RESET" : "OPEN_FAIL") payload shorter than 4 bytes", stream: id)
            }
            let message = try reason(r.rest(), stream: id)
            return type == .reset ? .reset(stream: id, code: ErrorCode(rawValue: code), message: message)
                                  : .openFail(stream: id, code: ErrorCode(rawValue: code), message: message)
        case .data:
            if h.flags & FrameFlags.lz4 != 0 {
                guard payload.count >= 5 else {
                    throw ProtocolViolation(.frameSizeError, "compressed DATA shorter than 5 bytes", stream: id)
                }
            }
            return .data(stream: id, fin: h.flags & FrameFlags.fin != 0,
                         compressed: h.flags & FrameFlags.lz4 != 0, payload: Array(payload))
        case .window:
            guard payload.count == 4, let inc = r.u32() else {
                throw ProtocolViolation(.frameSizeError, "WINDOW payload must be 4 bytes", stream: id)
            }
            guard inc > 0, Int(inc) <= ProtocolLimits.maxWindow else {
                throw ProtocolViolation(.protocolError, "WINDOW increment must be 1...2^31-1, got \(inc)", stream: id, connection: id == 0)
            }
            return .window(stream: id, increment: inc)
        case .ping, .pong:
            guard payload.count == 8, let v = r.u64() else {
                throw ProtocolViolation(.frameSizeError, "PING/PONG payload must be 8 bytes")
            }
            return type == .ping ? .ping(opaque: v) : .pong(opaque: v)
        case .goAway:
            guard let last = r.u32(), let code = r.u32() else {
                throw ProtocolViolation(.frameSizeError, "GOAWAY payload shorter than 8 bytes")
            }
            return .goAway(lastStreamID: last & ProtocolLimits.maxStreamID, code: ErrorCode(rawValue: code),
                           reason: try reason(r.rest(), stream: 0))
        }
    }

    private static func reason(_ b: UnsafeRawBufferPointer, stream: UInt32) throws(ProtocolViolation) -> String {
        guard b.count <= ProtocolLimits.maxReasonLength, let s = String(validatingUTF8Bytes: b) else {
            throw ProtocolViolation(.protocolError, "reason must be at most \(ProtocolLimits.maxReasonLength) bytes of UTF-8", stream: stream)
        }
        return s
    }
}

/// Checks that depend only on the header; shared by `Frame.decode` and the session's fast path.
public enum FrameRules {
    public static func checkHeader(_ h: FrameHeader, maxPayload: Int) throws(ProtocolViolation) {
        guard h.length <= maxPayload else {
            throw ProtocolViolation(.frameSizeError, "frame of \(h.length) bytes exceeds the limit of \(maxPayload)")
        }
        guard h.streamID & 0x8000_0000 == 0 else {
            throw ProtocolViolation(.protocolError, "reserved bit of the stream id is set")
        }
        guard let type = FrameType(rawValue: h.type) else {
            if h.type >= FrameType.firstExtension { return } // ignorable extension
            throw ProtocolViolation(.protocolError, "unknown critical frame type 0x\(String(h.type, radix: 16))")
        }
        switch type {
        case .hello, .welcome, .ping, .pong, .goAway:
            guard h.streamID == 0 else {
                throw ProtocolViolation(.protocolError, "frame type 0x\(String(h.type, radix: 16)) must be on stream 0")
            }
        case .open, .openOK, .openFail, .data, .reset:
            guard h.streamID != 0 else {
                throw ProtocolViolation(.protocolError, "frame type 0x\(String(h.type, radix: 16)) must not be on stream 0")
            }
        case .window:
            break
        }
    }
}
