/// Writes RFC 6455 frames. A client encoder masks every frame with a fresh key; a server
/// encoder never masks.
///
/// Two ways to send data without copying it:
///
/// 1. Reserve `WebSocketFrameHeader.maxEncodedLength` (14) bytes in front of the payload in
///    your write buffer, put the payload after them, and call
///    `encodeFrame(opcode:isFinal:buffer:payloadOffset:payloadLength:)`. The header is written
///    right-aligned against the payload, the payload is masked in place, and the returned
///    offset is where the frame starts: send `buffer[start ..< payloadOffset + payloadLength]`.
/// 2. Call `encodeHeader(opcode:isFinal:payload:into:)` to write the header into a separate
///    buffer (for a vectored write); it masks the payload in place as well.
///
/// For small or control frames, the `append…(to:)` methods write header and payload into a
/// `[UInt8]` (no allocation when the array already has the capacity).
public struct WebSocketEncoder {
    public let role: WebSocketRole
    private var maskingKeys: WebSocketMaskingKeyGenerator

    public init(role: WebSocketRole) {
        self.init(role: role, maskingKeys: role == .client ? WebSocketMaskingKeyGenerator() : WebSocketMaskingKeyGenerator(seed: 0))
    }

    /// Use a specific key generator (a seeded one makes output reproducible).
    public init(role: WebSocketRole, maskingKeys: WebSocketMaskingKeyGenerator) {
        self.role = role
        self.maskingKeys = maskingKeys
    }

    /// Header bytes this encoder writes for a payload of `payloadLength` bytes.
    public func headerLength(payloadLength: Int) -> Int {
        WebSocketFrameHeader.encodedLength(payloadLength: UInt64(payloadLength), masked: role == .client)
    }

    private mutating func makeHeader(opcode: WebSocketOpcode, isFinal: Bool, payloadLength: Int) -> WebSocketFrameHeader {
        precondition(payloadLength >= 0)
        precondition(!opcode.isControl || (isFinal && payloadLength <= 125),
                     "control frames carry at most 125 bytes and cannot be fragmented")
        return WebSocketFrameHeader(isFinal: isFinal, opcode: opcode,
                                    maskingKey: role == .client ? maskingKeys.next() : nil,
                                    payloadLength: UInt64(payloadLength))
    }

    /// Frames a payload that already sits in `buffer` at `payloadOffset`: writes the header in
    /// the bytes just before it and masks the payload in place (client). Returns the offset
    /// where the frame starts. `payloadOffset` must be at least `headerLength(payloadLength:)`;
    /// reserving 14 bytes always suffices.
    public mutating func encodeFrame(
        opcode: WebSocketOpcode, isFinal: Bool = true,
        buffer: UnsafeMutableRawBufferPointer, payloadOffset: Int, payloadLength: Int
    ) -> Int {
        precondition(payloadOffset + payloadLength <= buffer.count, "payload outside buffer")
        let header = makeHeader(opcode: opcode, isFinal: isFinal, payloadLength: payloadLength)
        let start = payloadOffset - header.encodedLength
        precondition(start >= 0, "not enough room reserved in front of the payload")
        header.write(to: buffer.droppingFirst(start))
        header.maskingKey?.apply(to: buffer.droppingFirst(payloadOffset).prefixBytes(payloadLength))
        return start
    }

    /// Writes the header for `payload` at the start of `header` (at least 14 bytes, or
    /// `headerLength(payloadLength:)`) and masks `payload` in place (client). Returns the header length.
    public mutating func encodeHeader(
        opcode: WebSocketOpcode, isFinal: Bool = true,
        payload: UnsafeMutableRawBufferPointer, into header: UnsafeMutableRawBufferPointer
    ) -> Int {
        let frameHeader = makeHeader(opcode: opcode, isFinal: isFinal, payloadLength: payload.count)
        let length = frameHeader.write(to: header)
        frameHeader.maskingKey?.apply(to: payload)
        return length
    }

    /// Appends a whole frame (header + payload, masked for a client) to `output`.
    public mutating func appendFrame(
        opcode: WebSocketOpcode, isFinal: Bool = true, payload: UnsafeRawBufferPointer, to output: inout [UInt8]
    ) {
        let header = makeHeader(opcode: opcode, isFinal: isFinal, payloadLength: payload.count)
        let headerStart = output.count
        let headerLength = header.encodedLength
        // Placeholder bytes, overwritten below. Plain appends: `append(contentsOf: repeatElement…)`
        // allocates a temporary in debug builds.
        for _ in 0..<headerLength { output.append(0) }
        output.append(contentsOf: payload)
        output.withUnsafeMutableBytes { bytes in
            let frame = bytes.droppingFirst(headerStart)
            header.write(to: frame)
            header.maskingKey?.apply(to: frame.droppingFirst(headerLength))
        }
    }

    public mutating func appendFrame(opcode: WebSocketOpcode, isFinal: Bool = true, payload: [UInt8], to output: inout [UInt8]) {
        payload.withUnsafeBytes { appendFrame(opcode: opcode, isFinal: isFinal, payload: $0, to: &output) }
    }

    public mutating func appendPing(_ payload: [UInt8] = [], to output: inout [UInt8]) {
        appendFrame(opcode: .ping, payload: payload, to: &output)
    }

    public mutating func appendPong(_ payload: [UInt8] = [], to output: inout [UInt8]) {
        appendFrame(opcode: .pong, payload: payload, to: &output)
    }

    /// Appends a close frame. `code == nil` sends an empty close (allowed, and the right echo
    /// of a close that had no code). The reason is cut at a character boundary to fit 123 bytes.
    public mutating func appendClose(code: WebSocketCloseCode?, reason: String = "", to output: inout [UInt8]) {
        var payload: [UInt8] = []
        if let code {
            payload = [UInt8(truncatingIfNeeded: code.rawValue >> 8), UInt8(truncatingIfNeeded: code.rawValue)]
            payload.append(contentsOf: Self.truncatedUTF8(reason, maxBytes: 123))
        }
        appendFrame(opcode: .close, payload: payload, to: &output)
    }

    static func truncatedUTF8(_ text: String, maxBytes: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        for scalar in text.unicodeScalars {
            let encoded = Array(String(scalar).utf8)
            if bytes.count + encoded.count > maxBytes { break }
            bytes.append(contentsOf: encoded)
        }
        return bytes
    }
}
