/// Removes body framing incrementally: hands out body bytes as slices of the input and keeps
/// only a few integers of state between chunks, so bodies of any size pass without buffering.
struct HTTPBodyDecoder {
    enum Step {
        case bytes(UnsafeRawBufferPointer)
        case complete
        case needMoreInput
    }

    private enum State {
        case fixed(remaining: UInt64)
        case untilClose
        // Chunked transfer coding, RFC 9112 §7.1.
        case chunkSize(value: UInt64, digits: Int)
        case chunkSizeWhitespace(value: UInt64)
        case chunkExtension(value: UInt64)
        case chunkSizeLineFeed(value: UInt64)
        case chunkData(remaining: UInt64)
        case chunkDataCarriageReturn
        case chunkDataLineFeed
        case trailerLineStart
        case trailerLine
        case trailerLineFeed(lineWasEmpty: Bool)
        case complete
    }

    private var state: State
    /// Bytes of chunk extensions and trailers seen so far; they are skipped, not stored, but
    /// still bounded so a peer cannot keep the parser busy forever on one message.
    private var metadataBytes = 0
    private let maxMetadataBytes: Int

    init(framing: HTTPBodyFraming, maxMetadataBytes: Int) {
        switch framing {
        case .none, .contentLength(0): state = .complete
        case .contentLength(let length): state = .fixed(remaining: length)
        case .chunked: state = .chunkSize(value: 0, digits: 0)
        case .untilClose: state = .untilClose
        }
        self.maxMetadataBytes = maxMetadataBytes
    }

    var isReadingUntilClose: Bool {
        if case .untilClose = state { return true }
        return false
    }

    /// Whether the whole body has been delivered (immediately true for bodiless messages).
    var isComplete: Bool {
        if case .complete = state { return true }
        return false
    }

    mutating func next(from input: inout UnsafeRawBufferPointer) throws(HTTPParseError) -> Step {
        while true {
            switch state {
            case .complete:
                return .complete
            case .fixed(let remaining):
                guard !input.isEmpty else { return .needMoreInput }
                let count = Int(min(remaining, UInt64(input.count)))
                let piece = input.prefixBytes(count)
                input = input.droppingFirst(count)
                state = remaining == UInt64(count) ? .complete : .fixed(remaining: remaining - UInt64(count))
                return .bytes(piece)
            case .untilClose:
                guard !input.isEmpty else { return .needMoreInput }
                let piece = input
                input = input.droppingFirst(input.count)
                return .bytes(piece)
            case .chunkData(let remaining):
                guard !input.isEmpty else { return .needMoreInput }
                let count = Int(min(remaining, UInt64(input.count)))
                let piece = input.prefixBytes(count)
                input = input.droppingFirst(count)
                state = remaining == UInt64(count) ? .chunkDataCarriageReturn : .chunkData(remaining: remaining - UInt64(count))
                return .bytes(piece)
            default:
                // Framing bytes: walk them one at a time until data (or the end) is reached.
                guard !input.isEmpty else { return .needMoreInput }
                let byte = input[input.startIndex]
                input = input.droppingFirst(1)
                try advanceChunkFraming(byte)
            }
        }
    }

    private mutating func advanceChunkFraming(_ byte: UInt8) throws(HTTPParseError) {
        switch state {
        case .chunkSize(let value, let digits):
            if let digit = ASCII.hexValue(byte) {
                // 15 hex digits keep the size below 2^60: far beyond any real chunk, no overflow.
                guard digits < 15 else { throw .badChunkSize }
                state = .chunkSize(value: value << 4 | UInt64(digit), digits: digits + 1)
                return
            }
            guard digits > 0 else { throw .badChunkSize }
            try endOfChunkSize(byte, value: value)
        case .chunkSizeWhitespace(let value):
            try endOfChunkSize(byte, value: value)
        case .chunkExtension(let value):
            // Extensions are ignored; anything but controls may appear in them.
            if byte == ASCII.cr {
                state = .chunkSizeLineFeed(value: value)
            } else {
                guard ASCII.isFieldValueCharacter(byte) else { throw .badChunkSize }
                try countMetadata()
            }
        case .chunkSizeLineFeed(let value):
            guard byte == ASCII.lf else { throw .badChunkSize }
            state = value == 0 ? .trailerLineStart : .chunkData(remaining: value)
        case .chunkDataCarriageReturn:
            guard byte == ASCII.cr else { throw .badChunkFraming }
            state = .chunkDataLineFeed
        case .chunkDataLineFeed:
            guard byte == ASCII.lf else { throw .badChunkFraming }
            state = .chunkSize(value: 0, digits: 0)
        case .trailerLineStart:
            // Trailer fields are skipped: nothing in Lariat uses them, and dropping them is allowed
            // (RFC 9110 §6.5.1). A CR here starts the blank line that ends the message.
            if byte == ASCII.cr {
                state = .trailerLineFeed(lineWasEmpty: true)
            } else {
                guard byte != ASCII.lf, ASCII.isFieldValueCharacter(byte) else { throw .badChunkFraming }
                try countMetadata()
                state = .trailerLine
            }
        case .trailerLine:
            if byte == ASCII.cr {
                state = .trailerLineFeed(lineWasEmpty: false)
            } else {
                guard ASCII.isFieldValueCharacter(byte) else { throw .badChunkFraming }
                try countMetadata()
            }
        case .trailerLineFeed(let lineWasEmpty):
            guard byte == ASCII.lf else { throw .badChunkFraming }
            state = lineWasEmpty ? .complete : .trailerLineStart
        case .fixed, .untilClose, .chunkData, .complete:
            preconditionFailure("not a chunk framing state")
        }
    }

    /// After the hex digits: optional whitespace (BWS), then `;extensions` or CRLF.
    private mutating func endOfChunkSize(_ byte: UInt8, value: UInt64) throws(HTTPParseError) {
        switch byte {
        case ASCII.cr: state = .chunkSizeLineFeed(value: value)
        case ASCII.semicolon: state = .chunkExtension(value: value)
        case ASCII.space, ASCII.tab: state = .chunkSizeWhitespace(value: value)
        default: throw .badChunkSize
        }
    }

    private mutating func countMetadata() throws(HTTPParseError) {
        metadataBytes += 1
        if metadataBytes > maxMetadataBytes { throw .headTooLarge(limit: maxMetadataBytes) }
    }
}
