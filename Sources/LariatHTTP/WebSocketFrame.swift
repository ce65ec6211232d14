import CLariatSupport

/// Which end of the connection this codec runs on. RFC 6455 §5.1: clients mask every frame
/// they send, servers never mask, and each side rejects frames that break that rule.
public enum WebSocketRole: Sendable, Equatable {
    case client
    case server
}

/// The 4-bit frame opcode (RFC 6455 §5.2).
public struct WebSocketOpcode: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt8

    public init(rawValue: UInt8) { self.rawValue = rawValue & 0x0F }

    public static let continuation = WebSocketOpcode(rawValue: 0x0)
    public static let text = WebSocketOpcode(rawValue: 0x1)
    public static let binary = WebSocketOpcode(rawValue: 0x2)
    public static let close = WebSocketOpcode(rawValue: 0x8)
    public static let ping = WebSocketOpcode(rawValue: 0x9)
    public static let pong = WebSocketOpcode(rawValue: 0xA)

    /// Control frames (close, ping, pong and the reserved 0xB-0xF) have the high bit set.
    public var isControl: Bool { rawValue & 0x08 != 0 }

    /// 0x3-0x7 and 0xB-0xF are reserved for future use and must be rejected.
    public var isDefined: Bool { rawValue <= 0x2 || (0x8...0xA).contains(rawValue) }

    public var description: String {
        switch self {
        case .continuation: return "continuation"
        case .text: return "text"
        case .binary: return "binary"
        case .close: return "close"
        case .ping: return "ping"
        case .pong: return "pong"
        default: return "opcode(\(rawValue))"
        }
    }
}

/// A close status code (RFC 6455 §7.4).
public struct WebSocketCloseCode: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt16

    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let normalClosure = WebSocketCloseCode(rawValue: 1000)
    public static let goingAway = WebSocketCloseCode(rawValue: 1001)
    public static let protocolError = WebSocketCloseCode(rawValue: 1002)
    public static let unsupportedData = WebSocketCloseCode(rawValue: 1003)
    /// Never sent: reported when a close frame carried no code.
    public static let noStatusReceived = WebSocketCloseCode(rawValue: 1005)
    /// Never sent: the connection dropped without a close frame.
    public static let abnormalClosure = WebSocketCloseCode(rawValue: 1006)
    public static let invalidPayloadData = WebSocketCloseCode(rawValue: 1007)
    public static let policyViolation = WebSocketCloseCode(rawValue: 1008)
    public static let messageTooBig = WebSocketCloseCode(rawValue: 1009)
    public static let mandatoryExtension = WebSocketCloseCode(rawValue: 1010)
    public static let internalError = WebSocketCloseCode(rawValue: 1011)

    /// Whether the code may appear in a close frame on the wire: the defined codes that are
    /// not reserved for local use (1005, 1006, 1015), the IANA-registered 1012-1014, and the
    /// 3000-4999 ranges for libraries and applications.
    public var isValidOnWire: Bool {
        switch rawValue {
        case 1000...1003, 1007...1014, 3000...4999: return true
        default: return false
        }
    }

    public var description: String { String(rawValue) }
}

/// The 4-byte masking key, in wire order.
public struct WebSocketMaskingKey: Sendable, Hashable {
    public var b0: UInt8, b1: UInt8, b2: UInt8, b3: UInt8

    public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8) {
        (self.b0, self.b1, self.b2, self.b3) = (b0, b1, b2, b3)
    }

    /// Key from the low 32 bits of `value`, most significant byte first.
    public init(_ value: UInt32) {
        self.init(UInt8(truncatingIfNeeded: value >> 24), UInt8(truncatingIfNeeded: value >> 16),
                  UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value))
    }

    public var bytes: [UInt8] { [b0, b1, b2, b3] }

    /// XORs `buffer` with the key starting at key position `offset` (0...3) and returns the
    /// position for the byte after `buffer`, so a payload can be (un)masked in pieces as it
    /// arrives. Masking and unmasking are the same operation.
    @discardableResult
    public func apply(to buffer: UnsafeMutableRawBufferPointer, offset: UInt32 = 0) -> UInt32 {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return offset & 3 }
        let key = (b0, b1, b2, b3)
        return withUnsafeBytes(of: key) { keyBytes in
            lariat_ws_mask(base.assumingMemoryBound(to: UInt8.self), buffer.count,
                           keyBytes.baseAddress!.assumingMemoryBound(to: UInt8.self), offset)
        }
    }
}

/// The fixed part of a frame (RFC 6455 §5.2): everything before the payload.
public struct WebSocketFrameHeader: Sendable, Equatable {
    public var isFinal: Bool
    /// RSV1-3 as the top bits of byte 0 (0x70 mask). Always 0 without negotiated extensions.
    public var reservedBits: UInt8
    public var opcode: WebSocketOpcode
    public var maskingKey: WebSocketMaskingKey?
    public var payloadLength: UInt64

    /// 2 bytes + 8 extended length + 4 mask key.
    public static let maxEncodedLength = 14

    public init(isFinal: Bool = true, reservedBits: UInt8 = 0, opcode: WebSocketOpcode,
                maskingKey: WebSocketMaskingKey? = nil, payloadLength: UInt64) {
        self.isFinal = isFinal
        self.reservedBits = reservedBits & 0x70
        self.opcode = opcode
        self.maskingKey = maskingKey
        self.payloadLength = payloadLength
    }

    /// Encoded size of a header for this payload length; lengths use the shortest form, as
    /// RFC 6455 §5.2 requires.
    public static func encodedLength(payloadLength: UInt64, masked: Bool) -> Int {
        let lengthBytes = payloadLength < 126 ? 0 : payloadLength <= 0xFFFF ? 2 : 8
        return 2 + lengthBytes + (masked ? 4 : 0)
    }

    public var encodedLength: Int {
        Self.encodedLength(payloadLength: payloadLength, masked: maskingKey != nil)
    }

    /// Writes the header at the start of `buffer` and returns its length.
    /// `buffer` must hold at least `encodedLength` bytes.
    @discardableResult
    public func write(to buffer: UnsafeMutableRawBufferPointer) -> Int {
        let length = encodedLength
        precondition(buffer.count >= length, "frame header needs \(length) bytes")
        precondition(payloadLength <= UInt64(Int64.max), "payload length must fit in 63 bits")
        var index = buffer.startIndex
        buffer[index] = (isFinal ? 0x80 : 0) | reservedBits | opcode.rawValue
        let maskBit: UInt8 = maskingKey == nil ? 0 : 0x80
        if payloadLength < 126 {
            buffer[index + 1] = maskBit | UInt8(payloadLength)
            index += 2
        } else if payloadLength <= 0xFFFF {
            buffer[index + 1] = maskBit | 126
            buffer[index + 2] = UInt8(truncatingIfNeeded: payloadLength >> 8)
            buffer[index + 3] = UInt8(truncatingIfNeeded: payloadLength)
            index += 4
        } else {
            buffer[index + 1] = maskBit | 127
            for shift in 0..<8 {
                buffer[index + 2 + shift] = UInt8(truncatingIfNeeded: payloadLength >> UInt64(56 - 8 * shift))
            }
            index += 10
        }
        if let key = maskingKey {
            buffer[index] = key.b0
            buffer[index + 1] = key.b1
            buffer[index + 2] = key.b2
            buffer[index + 3] = key.b3
        }
        return length
    }

    enum ParseResult {
        case needMore(totalLength: Int)
        case parsed(WebSocketFrameHeader, length: Int)
    }

    /// Parses a header from the start of `bytes`, or says how many bytes the header needs
    /// (known after the first two bytes). Semantic checks are the decoder's job.
    static func parse(_ bytes: UnsafeRawBufferPointer) throws(WebSocketProtocolError) -> ParseResult {
        guard bytes.count >= 2 else { return .needMore(totalLength: 2) }
        let base = bytes.startIndex
        let byte0 = bytes[base], byte1 = bytes[base + 1]
        let masked = byte1 & 0x80 != 0
        let shortLength = byte1 & 0x7F
        let lengthBytes = shortLength == 126 ? 2 : shortLength == 127 ? 8 : 0
        let total = 2 + lengthBytes + (masked ? 4 : 0)
        guard bytes.count >= total else { return .needMore(totalLength: total) }
        var payloadLength = UInt64(shortLength)
        if lengthBytes > 0 {
            payloadLength = 0
            for offset in 0..<lengthBytes {
                payloadLength = payloadLength << 8 | UInt64(bytes[base + 2 + offset])
            }
            // The most significant bit of a 64-bit length must be 0 (RFC 6455 §5.2).
            if payloadLength > UInt64(Int64.max) { throw .invalidPayloadLength }
        }
        var key: WebSocketMaskingKey?
        if masked {
            let keyStart = base + 2 + lengthBytes
            key = WebSocketMaskingKey(bytes[keyStart], bytes[keyStart + 1], bytes[keyStart + 2], bytes[keyStart + 3])
        }
        let header = WebSocketFrameHeader(
            isFinal: byte0 & 0x80 != 0, reservedBits: byte0 & 0x70,
            opcode: WebSocketOpcode(rawValue: byte0 & 0x0F), maskingKey: key, payloadLength: payloadLength)
        return .parsed(header, length: total)
    }
}
