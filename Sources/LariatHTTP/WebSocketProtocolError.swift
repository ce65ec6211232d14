/// A violation of RFC 6455 by the peer (or of our size limits). The endpoint should send a
/// close frame with `closeCode` and then close the connection (RFC 6455 §7.1.7).
public enum WebSocketProtocolError: Error, Sendable, Equatable {
    /// RSV1-3 set without a negotiated extension.
    case reservedBitsSet
    /// Opcode 0x3-0x7 or 0xB-0xF.
    case unknownOpcode(UInt8)
    /// A server received a frame without a mask.
    case unmaskedFrameFromClient
    /// A client received a masked frame.
    case maskedFrameFromServer
    /// A control frame with more than 125 payload bytes.
    case controlFrameTooLong
    /// A control frame with FIN clear.
    case fragmentedControlFrame
    /// A continuation frame with no message in progress.
    case unexpectedContinuation
    /// A new text/binary frame while a fragmented message is still open.
    case expectedContinuation
    /// A 64-bit length with its most significant bit set.
    case invalidPayloadLength
    /// A close frame with a 1-byte payload or a code that may not be sent.
    case invalidCloseFrame
    /// Text (or a close reason) that is not valid UTF-8.
    case invalidUTF8
    /// A frame longer than `WebSocketDecoder.Configuration.maxFrameSize`.
    case frameTooLarge(limit: Int)
    /// A message longer than `WebSocketDecoder.Configuration.maxMessageSize`.
    case messageTooLarge(limit: Int)

    public var closeCode: WebSocketCloseCode {
        switch self {
        case .invalidUTF8: return .invalidPayloadData
        case .frameTooLarge, .messageTooLarge: return .messageTooBig
        default: return .protocolError
        }
    }
}
