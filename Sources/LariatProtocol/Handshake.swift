/// HELLO (agent → hub) and WELCOME (hub → agent) payloads: a fixed prefix followed by TLV
/// fields (tag u8, length u16, value). Unknown tags are skipped, so fields can be added without
/// a version bump (PROTOCOL.md §4).
public enum HandshakeTag: UInt8, Sendable {
    case capabilities = 1      // u32 bitmask
    case initialStreamWindow = 2 // u32
    case sessionWindow = 3     // u32
    case maxFramePayload = 4   // u32
    case agentID = 5           // UTF-8
    case clusterID = 6         // UTF-8
    case token = 7             // UTF-8
    case agentRole = 8         // u8: 1 cluster agent, 2 node agent
    case maxStreams = 9        // u32
    case software = 10         // UTF-8, e.g. "lariat-agent/0.1.0"
    case sessionID = 11        // UTF-8 (WELCOME)
    case pingInterval = 12     // u32 milliseconds (WELCOME)
    case hubSoftware = 13      // UTF-8 (WELCOME), e.g. "lariat-hub/0.1.0"
}

public enum AgentRole: UInt8, Sendable {
    case clusterAgent = 1
    case nodeAgent = 2
}

/// What a connecting agent announces about itself and the session parameters it wants.
public struct Hello: Equatable, Sendable {
    public var minVersion: UInt16 = ProtocolLimits.version
    public var maxVersion: UInt16 = ProtocolLimits.version
    public var capabilities: Capabilities = [.lz4, .streamClasses, .windowAutoTuning]
    public var initialStreamWindow: UInt32 = 256 * 1024
    public var sessionWindow: UInt32 = 32 * 1024 * 1024
    public var maxFramePayload: UInt32 = 64 * 1024
    public var maxStreams: UInt32 = 16384
    public var agentID: String = ""
    public var clusterID: String = ""
    public var token: String = ""
    public var role: AgentRole = .clusterAgent
    public var software: String = ""

    public init() {}

    public func encode() -> [UInt8] {
        var w = ByteWriter(capacity: 128)
        w.u16(minVersion)
        w.u16(maxVersion)
        TLV.u32(&w, .capabilities, capabilities.rawValue)
        TLV.u32(&w, .initialStreamWindow, initialStreamWindow)
        TLV.u32(&w, .sessionWindow, sessionWindow)
        TLV.u32(&w, .maxFramePayload, maxFramePayload)
        TLV.u32(&w, .maxStreams, maxStreams)
        TLV.string(&w, .agentID, agentID)
        TLV.string(&w, .clusterID, clusterID)
        TLV.string(&w, .token, token)
        TLV.u8(&w, .agentRole, role.rawValue)
        TLV.string(&w, .software, software)
        return w.bytes
    }

    public static func decode(_ payload: UnsafeRawBufferPointer) throws(ProtocolViolation) -> Hello {
        var r = ByteReader(payload)
        guard let lo = r.u16(), let hi = r.u16(), lo <= hi else {
            throw ProtocolViolation(.protocolError, "HELLO: missing or inverted version range")
        }
        var h = Hello()
        h.minVersion = lo
        h.maxVersion = hi
        try TLV.forEach(&r, frame: "HELLO") { tag, value throws(ProtocolViolation) in
            switch HandshakeTag(rawValue: tag) {
            case .capabilities: h.capabilities = Capabilities(rawValue: try TLV.readU32(value, tag))
            case .initialStreamWindow: h.initialStreamWindow = try TLV.readU32(value, tag)
            case .sessionWindow: h.sessionWindow = try TLV.readU32(value, tag)
            case .maxFramePayload: h.maxFramePayload = try TLV.readU32(value, tag)
            case .maxStreams: h.maxStreams = try TLV.readU32(value, tag)
            case .agentID: h.agentID = try TLV.readString(value, tag)
            case .clusterID: h.clusterID = try TLV.readString(value, tag)
            case .token: h.token = try TLV.readString(value, tag)
            case .agentRole:
                guard value.count == 1, let role = AgentRole(rawValue: value[0]) else {
                    throw ProtocolViolation(.protocolError, "HELLO: bad agent role")
                }
                h.role = role
            case .software: h.software = try TLV.readString(value, tag)
            default: break // unknown or WELCOME-only tags are ignored for forward compatibility
            }
        }
        return h
    }
}

/// The hub's acceptance: the negotiated version and parameters both sides now use.
public struct Welcome: Equatable, Sendable {
    public var version: UInt16 = ProtocolLimits.version
    public var capabilities: Capabilities = [.lz4, .streamClasses, .windowAutoTuning]
    public var initialStreamWindow: UInt32 = 256 * 1024
    public var sessionWindow: UInt32 = 32 * 1024 * 1024
    public var maxFramePayload: UInt32 = 64 * 1024
    public var maxStreams: UInt32 = 16384
    public var sessionID: String = ""
    public var pingIntervalMillis: UInt32 = 10_000
    /// The hub's program and version, for the agent's logs.
    public var software: String = ""

    public init() {}

    public func encode() -> [UInt8] {
        var w = ByteWriter(capacity: 96)
        w.u16(version)
        TLV.u32(&w, .capabilities, capabilities.rawValue)
        TLV.u32(&w, .initialStreamWindow, initialStreamWindow)
        TLV.u32(&w, .sessionWindow, sessionWindow)
        TLV.u32(&w, .maxFramePayload, maxFramePayload)
        TLV.u32(&w, .maxStreams, maxStreams)
        TLV.string(&w, .sessionID, sessionID)
        TLV.u32(&w, .pingInterval, pingIntervalMillis)
        TLV.string(&w, .hubSoftware, software)
        return w.bytes
    }

    public static func decode(_ payload: UnsafeRawBufferPointer) throws(ProtocolViolation) -> Welcome {
        var r = ByteReader(payload)
        guard let v = r.u16() else { throw ProtocolViolation(.protocolError, "WELCOME: missing version") }
        var m = Welcome()
        m.version = v
        try TLV.forEach(&r, frame: "WELCOME") { tag, value throws(ProtocolViolation) in
            switch HandshakeTag(rawValue: tag) {
            case .capabilities: m.capabilities = Capabilities(rawValue: try TLV.readU32(value, tag))
            case .initialStreamWindow: m.initialStreamWindow = try TLV.readU32(value, tag)
            case .sessionWindow: m.sessionWindow = try TLV.readU32(value, tag)
            case .maxFramePayload: m.maxFramePayload = try TLV.readU32(value, tag)
            case .maxStreams: m.maxStreams = try TLV.readU32(value, tag)
            case .sessionID: m.sessionID = try TLV.readString(value, tag)
            case .pingInterval: m.pingIntervalMillis = try TLV.readU32(value, tag)
            case .hubSoftware: m.software = try TLV.readString(value, tag)
            default: break
            }
        }
        return m
    }
}

/// Tag-length-value helpers shared by HELLO and WELCOME.
enum TLV {
    static func u8(_ w: inout ByteWriter, _ tag: HandshakeTag, _ v: UInt8) {
        w.u8(tag.rawValue); w.u16(1); w.u8(v)
    }
    static func u32(_ w: inout ByteWriter, _ tag: HandshakeTag, _ v: UInt32) {
        w.u8(tag.rawValue); w.u16(4); w.u32(v)
    }
    static func string(_ w: inout ByteWriter, _ tag: HandshakeTag, _ s: String) {
        guard !s.isEmpty else { return }
        let utf8 = Array(s.utf8.prefix(Int(UInt16.max)))
        w.u8(tag.rawValue); w.u16(UInt16(utf8.count)); w.append(utf8)
    }

    static func forEach(_ r: inout ByteReader, frame: String,
                        _ body: (UInt8, UnsafeRawBufferPointer) throws(ProtocolViolation) -> Void) throws(ProtocolViolation) {
        while r.remaining > 0 {
            guard let tag = r.u8(), let len = r.u16(), let value = r.bytes(Int(len)) else {
                throw ProtocolViolation(.protocolError, "\(frame): truncated field")
            }
            try body(tag, value)
        }
    }
    static func readU32(_ v: UnsafeRawBufferPointer, _ tag: UInt8) throws(ProtocolViolation) -> UInt32 {
        guard v.count == 4 else { throw ProtocolViolation(.protocolError, "handshake field \(tag): want 4 bytes, got \(v.count)") }
        return UInt32(v[0]) << 24 | UInt32(v[1]) << 16 | UInt32(v[2]) << 8 | UInt32(v[3])
    }
    static func readString(_ v: UnsafeRawBufferPointer, _ tag: UInt8) throws(ProtocolViolation) -> String {
        guard let s = String(validatingUTF8Bytes: v) else {
            throw ProtocolViolation(.protocolError, "handshake field \(tag): invalid UTF-8")
        }
        return s
    }
}
