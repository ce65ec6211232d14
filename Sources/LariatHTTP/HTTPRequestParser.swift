/// Incremental HTTP/1.x request parser for the server side of a connection.
///
/// Drive it with whatever bytes arrived, in chunks of any size:
///
///     var rest = UnsafeRawBufferPointer(chunk)
///     while let event = try parser.next(from: &rest) {
///         switch event {
///         case .head(let head): …
///         case .body(let bytes): …          // a slice of `chunk`, valid while `chunk` is
///         case .end: …                      // pipelined requests may follow in `rest`
///         case .upgrade(let leftover): …    // hand `leftover` to the next protocol
///         }
///     }
///
/// `next` returns nil only once `rest` is empty; partial heads are kept inside the parser.
/// Requests that ask to switch protocols (`Connection: upgrade` + `Upgrade:`) and CONNECT
/// requests end with `.upgrade` after their `.end`. A server that declines the upgrade
/// answers and calls `resumeAfterDeclinedUpgrade()` (then re-feeds `leftover`), or closes.
public struct HTTPRequestParser {
    public let limits: HTTPParserLimits
    private var tail = HTTPMessageTail()
    private var accumulator: HTTPHeadAccumulator

    public init(limits: HTTPParserLimits = HTTPParserLimits()) {
        self.limits = limits
        self.accumulator = HTTPHeadAccumulator(maxSize: limits.maxHeadSize)
    }

    /// Returns the next event, consuming input from the front of `input`, or nil once all of
    /// `input` has been consumed and more bytes are needed.
    public mutating func next(from input: inout UnsafeRawBufferPointer) throws(HTTPParseError) -> HTTPRequestParserEvent? {
        do {
            return try step(&input)
        } catch {
            tail.fail(error)
            throw error
        }
    }

    /// Call when the peer closed its sending side. Throws `.truncatedMessage` if a request was
    /// cut off; otherwise there is nothing to report (requests never end "at close").
    public mutating func finish() throws(HTTPParseError) {
        _ = try tail.finish(hasPartialHead: accumulator.hasPartialHead)
    }

    /// After `.upgrade` for a request the server refused to upgrade: go back to parsing
    /// requests (feed the `leftover` bytes again). Does nothing in other states.
    public mutating func resumeAfterDeclinedUpgrade() {
        tail.resumeAfterDeclinedUpgrade()
    }

    private mutating func step(_ input: inout UnsafeRawBufferPointer) throws(HTTPParseError) -> HTTPRequestParserEvent? {
        guard tail.isAwaitingHead else { return try tail.next(from: &input) }
        guard let head = try accumulator.nextHead(from: &input, limits: limits, parse: Self.parseHead) else { return nil }
        let isTunnel = head.method == "CONNECT"
        // A CONNECT request has no content; everything after its head is tunnel data.
        let framing = isTunnel ? .none : try Self.framing(of: head)
        tail.beginMessage(framing: framing, switchesProtocol: isTunnel || head.isUpgradeRequest,
                          maxMetadataBytes: limits.maxHeadSize)
        return .head(head)
    }

    /// Requests have a body only if they declare one (RFC 9112 §6.3 items 4-6).
    private static func framing(of head: HTTPRequestHead) throws(HTTPParseError) -> HTTPBodyFraming {
        switch try HTTPBodyFraming.declared(by: head.headers) {
        case nil: return .none
        case .untilClose?: throw .unsupportedTransferEncoding  // a request cannot be delimited by close
        case let framing?: return framing
        }
    }

    /// `method SP request-target SP HTTP-version` (RFC 9112 §3).
    static func parseHead(_ bytes: UnsafeRawBufferPointer, limits: HTTPParserLimits) throws(HTTPParseError) -> HTTPRequestHead {
        let split = try HTTPHeadLineParsing.split(bytes, limits: limits, startLineError: .badRequestLine)
        let parts = HTTPHeadLineParsing.splitAtSpaces(split.startLine, maxParts: 3)
        guard parts.count == 3 else { throw .badRequestLine }
        let method = parts[0], target = parts[1]
        guard !method.isEmpty, method.allSatisfy(ASCII.isTokenCharacter) else { throw .badRequestLine }
        guard !target.isEmpty, target.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { throw .badRequestLine }
        guard let version = try HTTPVersion.parse(parts[2]) else { throw .badRequestLine }
        return HTTPRequestHead(
            method: String(decoding: method, as: UTF8.self),
            target: String(decoding: target, as: UTF8.self),
            version: version,
            headers: split.headers)
    }
}
