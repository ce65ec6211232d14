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
            state = .failed(error)
            throw error
        }
    }

    /// Call when the peer closed its sending side. Throws `.truncatedMessage` if a request was
    /// cut off; otherwise there is nothing to report (requests never end "at close").
    public mutating func finish() throws(HTTPParseError) {
        switch state {
        case .head where !accumulator.hasPartialHead: return
        case .upgraded: return
        case .failed(let error): throw error
        default:
            state = .failed(.truncatedMessage)
            throw .truncatedMessage
        }
    }

    /// After `.upgrade` for a request the server refused to upgrade: go back to parsing
    /// requests (feed the `leftover` bytes again). Does nothing in other states.
    public mutating func resumeAfterDeclinedUpgrade() {
        if case .upgraded = state { state = .head }
    }

    private mutating func step(_ input: inout UnsafeRawBufferPointer) throws(HTTPParseError) -> HTTPRequestParserEvent? {
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
                let isTunnel = head.method == "CONNECT"
                switchesProtocolAfterMessage = isTunnel || head.isUpgradeRequest
                // A CONNECT request has no content; everything after its head is tunnel data.
                let framing = isTunnel ? .none : try Self.framing(of: head)
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
