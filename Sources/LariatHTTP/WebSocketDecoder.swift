/// Incremental RFC 6455 frame decoder.
///
/// Feed it the bytes read from the connection, in chunks of any size, through a mutable
/// buffer (payloads are unmasked in place, so nothing is copied):
///
///     var rest = UnsafeMutableRawBufferPointer(readBuffer)
///     do {
///         while let event = try decoder.next(from: &rest) {
///             switch event {
///             case .binary(let bytes, let isFinal): …   // a slice of readBuffer
///             case .text(let bytes, let isFinal): …
///             case .ping(let payload): …               // reply with a pong
///             case .pong: …
///             case .close(let code, let reason): …      // reply with close, then shut down
///             }
///         }
///     } catch {
///         // send close(error.closeCode), then close the connection
///     }
///
/// `next` returns nil only once `rest` is empty. Frame headers split across reads are kept
/// in a 14-byte buffer that is reused; control payloads (≤ 125 bytes) are collected in a
/// reused buffer and handed out as small arrays. Data frames allocate nothing.
public struct WebSocketDecoder {
    public struct Configuration: Sendable, Equatable {
        /// Largest payload of a single frame.
        public var maxFrameSize: Int
        /// Largest total payload of a message across its fragments. Payloads are streamed, so
        /// this bounds what a consumer that reassembles messages may have to hold.
        public var maxMessageSize: Int
        /// Validate text messages and close reasons as UTF-8 (RFC 6455 §8.1). Turn off only
        /// when the payload is passed through opaquely and validated elsewhere.
        public var validatesUTF8: Bool

        public init(maxFrameSize: Int = 16 << 20, maxMessageSize: Int = 64 << 20, validatesUTF8: Bool = true) {
            self.maxFrameSize = maxFrameSize
            self.maxMessageSize = maxMessageSize
            self.validatesUTF8 = validatesUTF8
        }
    }

    private enum State {
        case header
        case dataPayload
        case controlPayload
        case closed
        case failed(WebSocketProtocolError)
    }

    public let role: WebSocketRole
    public let configuration: Configuration

    private var state: State = .header
    /// Header bytes when a header is split across reads (fast path parses from the input).
    private var headerBuffer: [UInt8] = []
    private var controlPayload: [UInt8] = []

    // The frame being read.
    private var frame = WebSocketFrameHeader(opcode: .binary, payloadLength: 0)
    private var remainingPayload: UInt64 = 0
    private var maskOffset: UInt32 = 0

    // The message being read (possibly spanning frames).
    private var messageOpcode: WebSocketOpcode?
    private var messageLength: UInt64 = 0
    private var utf8 = UTF8Validator()

    public init(role: WebSocketRole, configuration: Configuration = Configuration()) {
        self.role = role
        self.configuration = configuration
        headerBuffer.reserveCapacity(WebSocketFrameHeader.maxEncodedLength)
        controlPayload.reserveCapacity(125)
    }

    /// Returns the next event, consuming bytes from the front of `input`, or nil once all of
    /// `input` has been consumed. After a thrown error the decoder stays failed.
    public mutating func next(from input: inout UnsafeMutableRawBufferPointer) throws(WebSocketProtocolError) -> WebSocketEvent? {
        do {
            return try step(&input)
        } catch {
            state = .failed(error)
            throw error
        }
    }

    /// Whether a fragmented message is open (its final fragment has not arrived yet).
    public var isInsideMessage: Bool { messageOpcode != nil }

    private mutating func step(_ input: inout UnsafeMutableRawBufferPointer) throws(WebSocketProtocolError) -> WebSocketEvent? {
        while true {
            switch state {
            case .header:
                guard let header = try readHeader(&input) else { return nil }
                if let event = try begin(header) { return event }
            case .dataPayload:
                guard !input.isEmpty else { return nil }
                return try readDataPayload(&input)
            case .controlPayload:
                guard !input.isEmpty else { return nil }
                let count = Int(min(remainingPayload, UInt64(input.count)))
                controlPayload.append(contentsOf: UnsafeRawBufferPointer(input.prefixBytes(count)))
                input = input.droppingFirst(count)
                remainingPayload -= UInt64(count)
                if remainingPayload == 0 { return try finishControlFrame() }
            case .closed:
                // After a close frame the peer must send nothing more (RFC 6455 §5.5.1); discard.
                input = input.droppingFirst(input.count)
                return nil
            case .failed(let error):
                throw error
            }
        }
    }

    /// Parses a header from the input directly, or through `headerBuffer` when it is split
    /// across reads. Consumes exactly the header's bytes.
    private mutating func readHeader(_ input: inout UnsafeMutableRawBufferPointer) throws(WebSocketProtocolError) -> WebSocketFrameHeader? {
        if headerBuffer.isEmpty {
            switch try WebSocketFrameHeader.parse(UnsafeRawBufferPointer(input)) {
            case .parsed(let header, let length):
                input = input.droppingFirst(length)
                return header
            case .needMore:
                // Fewer than 14 bytes left: keep them for the next read.
                headerBuffer.append(contentsOf: UnsafeRawBufferPointer(input))
                input = input.droppingFirst(input.count)
                return nil
            }
        }
        while true {
            let result = try headerBuffer.withUnsafeBytes { bytes in
                Result { () throws(WebSocketProtocolError) in try WebSocketFrameHeader.parse(bytes) }
            }.get()
            switch result {
            case .parsed(let header, _):
                headerBuffer.removeAll(keepingCapacity: true)
                return header
            case .needMore(let total):
                guard !input.isEmpty else { return nil }
                let count = min(total - headerBuffer.count, input.count)
                headerBuffer.append(contentsOf: UnsafeRawBufferPointer(input.prefixBytes(count)))
                input = input.droppingFirst(count)
            }
        }
    }

    /// Validates a header against RFC 6455 and the limits, and sets up payload reading.
    /// Returns an event right away for frames with an empty payload.
    private mutating func begin(_ header: WebSocketFrameHeader) throws(WebSocketProtocolError) -> WebSocketEvent? {
        if header.reservedBits != 0 { throw .reservedBitsSet }
        guard header.opcode.isDefined else { throw .unknownOpcode(header.opcode.rawValue) }
        switch (role, header.maskingKey) {
        case (.server, nil): throw .unmaskedFrameFromClient
        case (.client, .some): throw .maskedFrameFromServer
        default: break
        }
        if header.opcode.isControl {
            guard header.payloadLength <= 125 else { throw .controlFrameTooLong }
            guard header.isFinal else { throw .fragmentedControlFrame }
        }
        if header.payloadLength > UInt64(configuration.maxFrameSize) {
            throw .frameTooLarge(limit: configuration.maxFrameSize)
        }
        frame = header
        remainingPayload = header.payloadLength
        maskOffset = 0

        if header.opcode.isControl {
            controlPayload.removeAll(keepingCapacity: true)
            if header.payloadLength == 0 { return try finishControlFrame() }
            state = .controlPayload
            return nil
        }

        if header.opcode == .continuation {
            guard messageOpcode != nil else { throw .unexpectedContinuation }
        } else {
            guard messageOpcode == nil else { throw .expectedContinuation }
            messageOpcode = header.opcode
            messageLength = 0
            utf8.reset()
        }
        messageLength += header.payloadLength
        if messageLength > UInt64(configuration.maxMessageSize) {
            throw .messageTooLarge(limit: configuration.maxMessageSize)
        }
        if header.payloadLength > 0 {
            state = .dataPayload
            return nil
        }
        // Empty frame: only the end of a message is worth reporting.
        state = .header
        guard header.isFinal else { return nil }
        return try finishDataPiece(UnsafeRawBufferPointer(start: nil, count: 0), isFinal: true)
    }

    private mutating func readDataPayload(_ input: inout UnsafeMutableRawBufferPointer) throws(WebSocketProtocolError) -> WebSocketEvent {
        let count = Int(min(remainingPayload, UInt64(input.count)))
        let piece = input.prefixBytes(count)
        input = input.droppingFirst(count)
        if let key = frame.maskingKey {
            maskOffset = key.apply(to: piece, offset: maskOffset)
        }
        remainingPayload -= UInt64(count)
        let frameDone = remainingPayload == 0
        if frameDone { state = .header }
        return try finishDataPiece(UnsafeRawBufferPointer(piece), isFinal: frameDone && frame.isFinal)
    }

    private mutating func finishDataPiece(_ piece: UnsafeRawBufferPointer, isFinal: Bool) throws(WebSocketProtocolError) -> WebSocketEvent {
        let isText = messageOpcode == .text
        if isText && configuration.validatesUTF8 {
            guard utf8.validate(piece) else { throw .invalidUTF8 }
            if isFinal && !utf8.isAtBoundary { throw .invalidUTF8 }
        }
        if isFinal { messageOpcode = nil }
        return isText ? .text(piece, isFinalFragment: isFinal) : .binary(piece, isFinalFragment: isFinal)
    }

    private mutating func finishControlFrame() throws(WebSocketProtocolError) -> WebSocketEvent {
        if let key = frame.maskingKey {
            controlPayload.withUnsafeMutableBytes { _ = key.apply(to: $0) }
        }
        state = .header
        switch frame.opcode {
        case .ping:
            return .ping(controlPayload)
        case .pong:
            return .pong(controlPayload)
        default:
            let event = try Self.parseClose(controlPayload, validatesUTF8: configuration.validatesUTF8)
            state = .closed
            return event
        }
    }

    /// Close payload: nothing, or a 2-byte code followed by a UTF-8 reason (RFC 6455 §5.5.1).
    static func parseClose(_ payload: [UInt8], validatesUTF8: Bool) throws(WebSocketProtocolError) -> WebSocketEvent {
        if payload.isEmpty { return .close(code: .noStatusReceived, reason: "") }
        guard payload.count >= 2 else { throw .invalidCloseFrame }
        let code = WebSocketCloseCode(rawValue: UInt16(payload[0]) << 8 | UInt16(payload[1]))
        guard code.isValidOnWire else { throw .invalidCloseFrame }
        let reason = Array(payload[2...])
        if validatesUTF8 && !UTF8Validator.isValid(reason) { throw .invalidUTF8 }
        return .close(code: code, reason: String(decoding: reason, as: UTF8.self))
    }
}
