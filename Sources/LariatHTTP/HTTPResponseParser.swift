/// Incremental HTTP/1.x response parser for the client side of a connection.
///
/// Driven like `HTTPRequestParser`. Whether a response has a body depends on the request it
/// answers (HEAD, CONNECT), so call `expectResponse(toMethod:)` for each request sent, in order;
/// without that, responses are assumed to answer GET.
///
/// `101 Switching Protocols` and a 2xx answer to CONNECT end with `.upgrade(leftover:)`.
/// Interim 1xx responses produce `.head` and `.end`, and the final response follows.
/// A response without Content-Length or chunked coding is delimited by the connection
/// closing: call `finish()` at EOF to get its `.end`.
public struct HTTPResponseParser {
    public let limits: HTTPParserLimits
    private var tail = HTTPMessageTail()
    private var accumulator: HTTPHeadAccumulator
    /// Methods of requests whose final responses have not been parsed yet, oldest first.
    private var pendingMethods: [String] = []
    private var pendingMethodsStart = 0

    public init(limits: HTTPParserLimits = HTTPParserLimits()) {
        self.limits = limits
        self.accumulator = HTTPHeadAccumulator(maxSize: limits.maxHeadSize)
    }

    /// Records that a request with `method` was sent, so its response is framed correctly.
    public mutating func expectResponse(toMethod method: String) {
        pendingMethods.append(method)
    }

    public mutating func next(from input: inout UnsafeRawBufferPointer) throws(HTTPParseError) -> HTTPResponseParserEvent? {
        do {
            return try step(&input)
        } catch {
            tail.fail(error)
            throw error
        }
    }

    /// Call when the peer closed the connection. Returns `.end` for a body delimited by the
    /// close, nil if the connection was idle, and throws `.truncatedMessage` otherwise.
    public mutating func finish() throws(HTTPParseError) -> HTTPResponseParserEvent? {
        try tail.finish(hasPartialHead: accumulator.hasPartialHead) ? .end : nil
    }

    private mutating func step(_ input: inout UnsafeRawBufferPointer) throws(HTTPParseError) -> HTTPResponseParserEvent? {
        guard tail.isAwaitingHead else { return try tail.next(from: &input) }
        guard let head = try accumulator.nextHead(from: &input, limits: limits, parse: Self.parseHead) else { return nil }
        let (framing, switchesProtocol) = try framingAndSwitch(for: head)
        tail.beginMessage(framing: framing, switchesProtocol: switchesProtocol, maxMetadataBytes: limits.maxHeadSize)
        return .head(head)
    }

    /// RFC 9112 §6.3: the request method and status decide before the headers do.
    /// Also says whether the connection switches protocols after this response.
    private mutating func framingAndSwitch(for head: HTTPResponseHead) throws(HTTPParseError) -> (HTTPBodyFraming, switchesProtocol: Bool) {
        if head.status == 101 {
            _ = popPendingMethod()
            return (.none, true)
        }
        if head.isInformational { return (.none, false) }  // interim: the final response is still to come
        let method = popPendingMethod()
        if method == "CONNECT" && (200..<300).contains(head.status) {
            return (.none, true)
        }
        if method == "HEAD" || head.status == 204 || head.status == 304 {
            // Validate anyway: conflicting lengths signal a broken or malicious peer.
            _ = try HTTPBodyFraming.declared(by: head.headers)
            return (.none, false)
        }
        return (try HTTPBodyFraming.declared(by: head.headers) ?? .untilClose, false)
    }

    private mutating func popPendingMethod() -> String {
        guard pendingMethodsStart < pendingMethods.count else { return "GET" }
        let method = pendingMethods[pendingMethodsStart]
        pendingMethodsStart += 1
        if pendingMethodsStart == pendingMethods.count {
            pendingMethods.removeAll(keepingCapacity: true)
            pendingMethodsStart = 0
        }
        return method
    }

    /// `HTTP-version SP 3DIGIT SP [reason]` (RFC 9112 §4); a missing SP before an empty
    /// reason is tolerated because real servers send `HTTP/1.1 200`.
    static func parseHead(_ bytes: UnsafeRawBufferPointer, limits: HTTPParserLimits) throws(HTTPParseError) -> HTTPResponseHead {
        let split = try HTTPHeadLineParsing.split(bytes, limits: limits, startLineError: .badStatusLine)
        let parts = HTTPHeadLineParsing.splitAtSpaces(split.startLine, maxParts: 3)
        guard parts.count >= 2, let version = try HTTPVersion.parse(parts[0]) else { throw .badStatusLine }
        let code = parts[1]
        guard code.count == 3, code.allSatisfy(ASCII.isDigit) else { throw .badStatusLine }
        let status = code.reduce(0) { $0 * 10 + Int($1 - 0x30) }
        guard status >= 100 else { throw .badStatusLine }
        let reason = parts.count == 3 ? parts[2] : split.startLine[split.startLine.endIndex...]
        guard reason.allSatisfy(ASCII.isFieldValueCharacter) else { throw .badStatusLine }
        return HTTPResponseHead(
            status: status, reason: String(decoding: reason, as: UTF8.self), version: version,
            headers: split.headers)
    }
}
