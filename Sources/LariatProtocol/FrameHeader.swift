/// Every frame starts with this fixed 9-byte header (see protocol/PROTOCOL.md §3):
///
///     +-----------------------------------------------+
///     |                 Length (24)                   |
///     +---------------+---------------+---------------+
///     |   Type (8)    |   Flags (8)   |
///     +-+-------------+---------------+-------------------------------+
///     |R|                 Stream Identifier (31)                      |
///     +-+-------------------------------------------------------------+
///     |                   Payload (Length bytes)                     ...
///
/// The layout copies HTTP/2's so that the same mental model (and Wireshark habits) carry over.
public struct FrameHeader: Equatable, Sendable {
    public static let size = 9
    /// The largest payload length the 24-bit field can express.
    public static let maxEncodableLength = (1 << 24) - 1

    public var length: Int
    public var type: UInt8
    public var flags: UInt8
    public var streamID: UInt32

    @inlinable
    public init(length: Int, type: UInt8, flags: UInt8, streamID: UInt32) {
        self.length = length
        self.type = type
        self.flags = flags
        self.streamID = streamID
    }

    /// Writes the header at `at`; the caller guarantees 9 bytes of room.
    @inlinable
    public func write(to at: UnsafeMutableRawPointer) {
        at.storeBytes(of: UInt8(truncatingIfNeeded: length >> 16), toByteOffset: 0, as: UInt8.self)
        at.storeBytes(of: UInt8(truncatingIfNeeded: length >> 8), toByteOffset: 1, as: UInt8.self)
        at.storeBytes(of: UInt8(truncatingIfNeeded: length), toByteOffset: 2, as: UInt8.self)
        at.storeBytes(of: type, toByteOffset: 3, as: UInt8.self)
        at.storeBytes(of: flags, toByteOffset: 4, as: UInt8.self)
        at.storeBytes(of: streamID.bigEndian, toByteOffset: 5, as: UInt32.self)
    }

    /// Reads a header from 9 bytes at `from`. The reserved bit is returned as part of the id
    /// so the caller can reject it.
    @inlinable
    public static func read(from p: UnsafeRawPointer) -> FrameHeader {
        let b0 = Int(p.load(fromByteOffset: 0, as: UInt8.self))
        let b1 = Int(p.load(fromByteOffset: 1, as: UInt8.self))
        let b2 = Int(p.load(fromByteOffset: 2, as: UInt8.self))
        let id = UInt32(bigEndian: p.loadUnaligned(fromByteOffset: 5, as: UInt32.self))
        return FrameHeader(length: b0 << 16 | b1 << 8 | b2,
                           type: p.load(fromByteOffset: 3, as: UInt8.self),
                           flags: p.load(fromByteOffset: 4, as: UInt8.self),
                           streamID: id)
    }
}

/// Frame types of protocol v1. Types 0x80...0xFF are extension frames: a receiver that does
/// not know one ignores it. An unknown type below 0x80 is a protocol error, so a future
/// critical frame is never silently dropped.
public enum FrameType: UInt8, Sendable, CaseIterable {
    case hello = 0x01
    case welcome = 0x02
    case open = 0x03
    case openOK = 0x04
    case openFail = 0x05
    case data = 0x06
    case window = 0x07
    case reset = 0x08
    case ping = 0x09
    case pong = 0x0A
    case goAway = 0x0B

    public static let firstExtension: UInt8 = 0x80
}

/// Flag bits. Flags not defined for a type must be sent as zero and are ignored on receipt.
public enum FrameFlags {
    /// DATA: the sender will send no more data on this stream (half-close).
    public static let fin: UInt8 = 0x01
    /// DATA: the payload is a 4-byte decoded length followed by one LZ4 block.
    public static let lz4: UInt8 = 0x02
}

/// Stream classes order the scheduler: control before interactive before bulk.
public enum StreamClass: UInt8, Sendable, CaseIterable {
    case control = 0
    case interactive = 1
    case bulk = 2
}

/// Capability bits negotiated in HELLO/WELCOME; the session uses the intersection.
public struct Capabilities: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// DATA frames may carry LZ4-compressed payloads.
    public static let lz4 = Capabilities(rawValue: 1 << 0)
    /// The peer understands stream classes (scheduling hints); always set by v1 peers.
    public static let streamClasses = Capabilities(rawValue: 1 << 1)
    /// The receiver may grow stream windows beyond the initial size (auto-tuning).
    public static let windowAutoTuning = Capabilities(rawValue: 1 << 2)
}

/// Protocol-wide constants (PROTOCOL.md §12, "Limits").
public enum ProtocolLimits {
    public static let version: UInt16 = 1
    /// Every implementation must accept payloads of at least this size.
    public static let minMaxFramePayload = 16 * 1024
    /// Largest maxFramePayload a peer may announce.
    public static let maxMaxFramePayload = 1 << 20
    /// Largest flow-control window (as in HTTP/2): 2^31 - 1.
    public static let maxWindow: Int = Int(Int32.max)
    /// Stream identifiers are 31 bits.
    public static let maxStreamID: UInt32 = 0x7FFF_FFFF
    /// OPENs awaiting the application's decision that every acceptor lets wait (§5.3): an
    /// opener keeps at most this many unanswered, since the real limit is not announced.
    public static let guaranteedPendingOpens = 256
    /// Largest OPEN target string, in bytes.
    public static let maxTargetLength = 1024
    /// Largest reason/message in OPEN_FAIL, RESET and GOAWAY, in bytes.
    public static let maxReasonLength = 1024
}
