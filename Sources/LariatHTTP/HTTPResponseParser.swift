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
    private enum State {
        case head
        case body(HTTPBodyDecoder)
        case endPending
        case upgradePending
        case upgraded
        case failed(HTTPParseError)
    }

    public let limits: HTTPParserLimits
    private var state: State = .head
    private var accumulator: HTTPHeadAccumulator
    private var switchesProtocolAfterMessage = false
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
            state = .failed(error)
            throw error
        }
    }

    /// Call when the peer closed the connection. Returns `.end` for a body delimited by the
    /// close, nil if the connection was idle, and throws `.truncatedMessage` otherwise.
    public mutating func finish() throws(HTTPParseError) -> HTTPResponseParserEvent? {
        switch state {
        case .head where !accumulator.hasPartialHead: return nil
        case .upgraded: return nil
        case .body(let decoder) where decoder.isReadingUntilClose:
            state = .head
            return .end
        case .failed(let error): throw error
        default:
            state = .failed(.truncatedMessage)
            throw .truncatedMessage
        }
    }

    private mutating func step(_ input: inout UnsafeRawBufferPointer) throws(HTTPParseError) -> HTTPResponseParserEvent? {
        while true {
            switch state {
            case .head:
                guard !input.isEmpty, try accumulator.consume(&input) else { return nil }
                // Array.withUnsafeBytes only rethrows `any Error`; a Result keeps the error typed.
                let limits = self.limits
                let head = try accumulator.bytes.withUnsafeBytes { bytes in
                    Result { () throws(HTTPParseError) in try Self.parseHead(bytes, limits: limits) }
                }.get()
                accumulator.reset()
                let framing = try framingAndSwitch(for: head)
                let decoder = HTTPBodyDecoder(framing: framing, maxMetadataBytes: limits.maxHeadSize)
                state = decoder.isComplete ? .endPending : .body(decoder)
                return .head(head)
            case .body(var decoder):
                let step = try decoder.next(from: &input)
                state = .body(decoder)
                switch step {
                case .bytes(let bytes): return .body(bytes)
                case .needMoreInput: return nil
                case .complete: state = .endPending
                }
            case .endPending:
                state = switchesProtocolAfterMessage ? .upgradePending : .head
                return .end
            case .upgradePending:
                state = .upgraded
                let leftover = input
                input = input.droppingFirst(input.count)
                return .upgrade(leftover: leftover)
            case .upgraded:
                if input.isEmpty { return nil }
                throw .usedAfterUpgrade
            case .failed(let error):
                throw error
            }
        }
    }

    /// RFC 9112 §6.3: the request method and status decide before the headers do.
    private mutating func framingAndSwitch(for head: HTTPResponseHead) throws(HTTPParseError) -> HTTPBodyFraming {
        switchesProtocolAfterMessage = false
        if head.status == 101 {
            switchesProtocolAfterMessage = true
            _ = popPendingMethod()
            return .none
        }
        if head.isInformational { return .none }  // interim: the final response is still to come
        let method = popPendingMethod()
        if method == "CONNECT" && (200..<300).contains(head.status) {
            switchesProtocolAfterMessage = true
            return .none
        }
        if method == "HEAD" || head.status == 204 || head.status == 304 {
            // Validate anyway: conflicting lengths signal a broken or malicious peer.
            _ = try HTTPBodyFraming.declared(by: head.headers)
            return .none
        }
        return try HTTPBodyFraming.declared(by: head.headers) ?? .untilClose
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
