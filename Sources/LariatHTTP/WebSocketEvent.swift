/// What `WebSocketDecoder.next(from:)` produces.
///
/// Data events point into the caller's input buffer, already unmasked in place: valid only as
/// long as that buffer is. A message arrives as one or more data events of the same kind;
/// `isFinalFragment` is true on the last piece of the message's last frame (it can be an
/// empty piece). Control frames may appear between the pieces of a fragmented message.
public enum WebSocketEvent {
    case binary(UnsafeRawBufferPointer, isFinalFragment: Bool)
    /// UTF-8 already validated (unless disabled); a piece may end in the middle of a
    /// code point, the message as a whole is valid.
    case text(UnsafeRawBufferPointer, isFinalFragment: Bool)
    /// Answer with a pong carrying the same payload.
    case ping([UInt8])
    case pong([UInt8])
    /// The peer started the closing handshake. `code` is `.noStatusReceived` when the frame
    /// had no payload. The decoder ignores anything after it.
    case close(code: WebSocketCloseCode, reason: String)
}
