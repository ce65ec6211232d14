/// How the end of a message body is found (RFC 9112 §6.3).
enum HTTPBodyFraming: Equatable {
    case none
    case contentLength(UInt64)
    case chunked
    /// Only for responses without a length: the body ends when the connection closes.
    case untilClose

    /// The framing a message's own headers declare: `.chunked` for a final `chunked` coding,
    /// `.contentLength` for one agreed Content-Length, `nil` when neither field is present.
    /// A Transfer-Encoding without a final `chunked` is reported as `.untilClose`; only
    /// responses may use that, so the request parser rejects it.
    static func declared(by headers: HTTPHeaders) throws(HTTPParseError) -> HTTPBodyFraming? {
        let codings = headers.tokens(name: "Transfer-Encoding")
        let lengths = headers["Content-Length"]
        if !headers["Transfer-Encoding"].isEmpty {
            if !lengths.isEmpty { throw .contentLengthWithTransferEncoding }
            // `chunked` must be the last coding and must appear only once (RFC 9112 §6.1).
            let chunkedCount = codings.count(where: { ASCII.equalsCaseInsensitive(String($0), "chunked") })
            if let last = codings.last, ASCII.equalsCaseInsensitive(String(last), "chunked") {
                guard chunkedCount == 1 else { throw .unsupportedTransferEncoding }
                return .chunked
            }
            guard chunkedCount == 0 else { throw .unsupportedTransferEncoding }
            return .untilClose
        }
        guard !lengths.isEmpty else { return nil }
        return .contentLength(try agreedContentLength(lengths))
    }

    /// Several Content-Length fields, or one with a list (`5, 5`), are acceptable only when
    /// every value is the same number (RFC 9112 §6.3 item 5).
    static func agreedContentLength(_ values: [String]) throws(HTTPParseError) -> UInt64 {
        var agreed: UInt64?
        for value in values {
            let elements = value.split(separator: ",", omittingEmptySubsequences: false)
            for element in elements {
                let length = try parseDecimal(element)
                if let agreed, agreed != length { throw .conflictingContentLength }
                agreed = length
            }
        }
        guard let agreed else { throw .badContentLength }
        return agreed
    }

    /// Digits only, no sign, surrounding OWS allowed, at most 2^63 - 1.
    private static func parseDecimal(_ text: Substring) throws(HTTPParseError) -> UInt64 {
        let bytes = Array(text.utf8)
        var start = 0, end = bytes.count
        while start < end, ASCII.isWhitespace(bytes[start]) { start += 1 }
        while end > start, ASCII.isWhitespace(bytes[end - 1]) { end -= 1 }
        guard start < end else { throw .badContentLength }
        var value: UInt64 = 0
        for byte in bytes[start..<end] {
            guard ASCII.isDigit(byte) else { throw .badContentLength }
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(byte - 0x30))
            guard !overflow1, !overflow2, sum <= UInt64(Int64.max) else { throw .badContentLength }
            value = sum
        }
        return value
    }
}
