/// The part of a message the request and response parsers handle alike: everything after
/// the head (body, `.end`, the optional `.upgrade`), plus the sticky failure state. Only how a
/// head is parsed and how its framing is decided differ, so each parser keeps those and
/// leaves the rest to this struct.
///
/// The state is a plain enum and `.body`/`.upgrade` are slices of the caller's input, so
/// nothing is copied or allocated per message.
struct HTTPMessageTail {
    private enum State {
        case awaitingHead
        case body(HTTPBodyDecoder)
        case endPending
        case upgradePending
        case upgraded
        case failed(HTTPParseError)
    }

    private var state: State = .awaitingHead
    /// Whether the current message's `.end` is followed by `.upgrade`.
    private var switchesProtocolAfterMessage = false

    /// True when the parser must read a head next (the only state it handles itself).
    var isAwaitingHead: Bool {
        if case .awaitingHead = state { return true }
        return false
    }

    /// After the parser produced a head: how its body is delimited, and whether the connection
    /// changes protocol once the message ends.
    mutating func beginMessage(framing: HTTPBodyFraming, switchesProtocol: Bool, maxMetadataBytes: Int) {
        switchesProtocolAfterMessage = switchesProtocol
        let decoder = HTTPBodyDecoder(framing: framing, maxMetadataBytes: maxMetadataBytes)
        state = decoder.isComplete ? .endPending : .body(decoder)
    }

    /// Makes the error sticky: every later call reports it again.
    mutating func fail(_ error: HTTPParseError) {
        state = .failed(error)
    }

    /// The next event after the head, consuming input from the front of `input`, or nil when
    /// more input is needed. Call only while `!isAwaitingHead`.
    mutating func next<Head>(from input: inout UnsafeRawBufferPointer) throws(HTTPParseError) -> HTTPParserEvent<Head>? {
        while true {
            switch state {
            case .awaitingHead:
                // Heads are the parser's to read; there is nothing to produce here.
                return nil
            case .body(var decoder):
                let step = try decoder.next(from: &input)
                state = .body(decoder)
                switch step {
                case .bytes(let bytes): return .body(bytes)
                case .needMoreInput: return nil
                case .complete: state = .endPending
                }
            case .endPending:
                state = switchesProtocolAfterMessage ? .upgradePending : .awaitingHead
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

    /// At the peer's close: true if a body delimited by the close has just ended, false if the
    /// connection was idle or upgraded. Throws `.truncatedMessage` if a message was cut off.
    /// (Only responses can be delimited by the close; request framing never produces one.)
    mutating func finish(hasPartialHead: Bool) throws(HTTPParseError) -> Bool {
        switch state {
        case .awaitingHead where !hasPartialHead: return false
        case .upgraded: return false
        case .body(let decoder) where decoder.isReadingUntilClose:
            state = .awaitingHead
            return true
        case .failed(let error): throw error
        default:
            state = .failed(.truncatedMessage)
            throw .truncatedMessage
        }
    }

    /// Back to reading heads after an upgrade the server declined; nothing otherwise.
    mutating func resumeAfterDeclinedUpgrade() {
        if case .upgraded = state { state = .awaitingHead }
    }
}

extension HTTPHeadAccumulator {
    /// Takes input until a head is complete and parses it with `parse`, or returns nil once all
    /// input was taken and more is needed. Both parsers read heads this way; only `parse` differs.
    mutating func nextHead<Head>(
        from input: inout UnsafeRawBufferPointer, limits: HTTPParserLimits,
        parse: (UnsafeRawBufferPointer, HTTPParserLimits) throws(HTTPParseError) -> Head
    ) throws(HTTPParseError) -> Head? {
        guard !input.isEmpty, try consume(&input) else { return nil }
        // Array.withUnsafeBytes only rethrows `any Error`; a Result keeps the error typed.
        let head = try bytes.withUnsafeBytes { headBytes in
            Result { () throws(HTTPParseError) in try parse(headBytes, limits) }
        }.get()
        reset()
        return head
    }
}
