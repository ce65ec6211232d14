/// Why an HTTP/1.x message could not be parsed. After any of these the parser is failed for
/// good: the byte stream can no longer be framed, so the connection has to be closed.
public enum HTTPParseError: Error, Sendable, Equatable {
    /// The start line and header fields exceeded `HTTPParserLimits.maxHeadSize` bytes
    /// (also used for chunked trailers).
    case headTooLarge(limit: Int)
    /// More than `HTTPParserLimits.maxHeaderCount` header fields.
    case tooManyHeaders(limit: Int)
    /// Not `method SP target SP HTTP/x.y`.
    case badRequestLine
    /// Not `HTTP/x.y SP 3DIGIT [SP reason]`.
    case badStatusLine
    /// A header line without a colon, with an invalid name, a forbidden byte in its value,
    /// or line folding (obs-fold, RFC 9112 §5.2).
    case badHeader
    /// A well-formed version other than HTTP/1.x.
    case unsupportedVersion
    /// A Content-Length that is not a plain decimal number.
    case badContentLength
    /// Several Content-Length values that disagree (RFC 9112 §6.3, a request smuggling vector).
    case conflictingContentLength
    /// Both Transfer-Encoding and Content-Length; rejected rather than guessed at because a
    /// proxy and its origin disagreeing on framing is how request smuggling works.
    case contentLengthWithTransferEncoding
    /// A request Transfer-Encoding whose final coding is not `chunked`.
    case unsupportedTransferEncoding
    /// A chunk-size line that is not hex digits (optionally followed by extensions) and CRLF,
    /// or a size that does not fit in 63 bits.
    case badChunkSize
    /// Chunk data not followed by CRLF, or a malformed trailer section.
    case badChunkFraming
    /// The connection ended in the middle of a message (see `finish()`).
    case truncatedMessage
    /// Bytes were fed after the parser handed the connection over with `.upgrade`.
    case usedAfterUpgrade

    /// The status a server should answer with before closing, for errors in a request.
    public var suggestedResponseStatus: Int {
        switch self {
        case .headTooLarge, .tooManyHeaders: return 431
        case .unsupportedVersion: return 505
        case .unsupportedTransferEncoding: return 501
        default: return 400
        }
    }
}
