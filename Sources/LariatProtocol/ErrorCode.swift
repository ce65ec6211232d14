/// Error codes carried by OPEN_FAIL, RESET and GOAWAY (PROTOCOL.md §11). Unknown codes must be
/// treated as `internalError` by the receiver, so the type keeps the raw value.
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let noError = ErrorCode(rawValue: 0)
    public static let protocolError = ErrorCode(rawValue: 1)
    public static let internalError = ErrorCode(rawValue: 2)
    public static let flowControlError = ErrorCode(rawValue: 3)
    public static let frameSizeError = ErrorCode(rawValue: 4)
    public static let streamClosed = ErrorCode(rawValue: 5)
    public static let refused = ErrorCode(rawValue: 6)
    public static let cancel = ErrorCode(rawValue: 7)
    public static let unsupportedVersion = ErrorCode(rawValue: 8)
    public static let authenticationFailed = ErrorCode(rawValue: 9)
    public static let compressionError = ErrorCode(rawValue: 10)
    public static let timeout = ErrorCode(rawValue: 11)
    public static let goingAway = ErrorCode(rawValue: 12)
    public static let memoryLimit = ErrorCode(rawValue: 13)
    // Target errors, used by OPEN_FAIL.
    public static let targetUnreachable = ErrorCode(rawValue: 20)
    public static let targetForbidden = ErrorCode(rawValue: 21)
    public static let targetUnknown = ErrorCode(rawValue: 22)
    public static let targetTimeout = ErrorCode(rawValue: 23)

    public var name: String {
        switch rawValue {
        case 0: "NO_ERROR"
        case 1: "PROTOCOL_ERROR"
        case 2: "INTERNAL_ERROR"
        case 3: "FLOW_CONTROL_ERROR"
        case 4: "FRAME_SIZE_ERROR"
        case 5: "STREAM_CLOSED"
        case 6: "REFUSED"
        case 7: "CANCEL"
        case 8: "UNSUPPORTED_VERSION"
        case 9: "AUTHENTICATION_FAILED"
        case 10: "COMPRESSION_ERROR"
        case 11: "TIMEOUT"
        case 12: "GOING_AWAY"
        case 13: "MEMORY_LIMIT"
        case 20: "TARGET_UNREACHABLE"
        case 21: "TARGET_FORBIDDEN"
        case 22: "TARGET_UNKNOWN"
        case 23: "TARGET_TIMEOUT"
        default: "UNKNOWN_\(rawValue)"
        }
    }

    public var description: String { name }
}

/// A violation detected while decoding or processing frames. `isConnectionError` tells whether
/// the whole session must end (GOAWAY) or only one stream (RESET).
public struct ProtocolViolation: Error, Equatable, Sendable, CustomStringConvertible {
    public var code: ErrorCode
    public var message: String
    public var streamID: UInt32
    public var isConnectionError: Bool

    public init(_ code: ErrorCode, _ message: String, stream: UInt32 = 0, connection: Bool = true) {
        self.code = code
        self.message = message
        self.streamID = stream
        self.isConnectionError = connection
    }

    public var description: String {
        isConnectionError ? "\(code.name): \(message)" : "\(code.name) on stream \(streamID): \(message)"
    }
}
