/// What a parser's `next(from:)` produces, in this order per message:
/// `.head`, zero or more `.body`, `.end`, and, if the connection switches protocols,
/// a final `.upgrade`.
///
/// `.body` and `.upgrade` point into the caller's input buffer (no copy). They are valid only
/// as long as that buffer is; copy them if they must outlive it.
public enum HTTPParserEvent<Head> {
    case head(Head)
    /// The next piece of the message body, with chunked framing already removed.
    case body(UnsafeRawBufferPointer)
    /// The message is complete; with keep-alive the next message may follow immediately.
    case end
    /// The connection now speaks another protocol (a `101 Switching Protocols`, an upgrade
    /// request, or a CONNECT tunnel). `leftover` holds the bytes of that protocol that arrived
    /// together with the head. The parser is finished: feed it nothing more.
    case upgrade(leftover: UnsafeRawBufferPointer)
}

public typealias HTTPRequestParserEvent = HTTPParserEvent<HTTPRequestHead>
public typealias HTTPResponseParserEvent = HTTPParserEvent<HTTPResponseHead>
