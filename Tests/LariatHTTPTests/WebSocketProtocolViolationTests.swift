import LariatHTTP
import Testing

/// Every RFC 6455 violation (and limit) must surface as the matching error and close code.
@Suite struct WebSocketProtocolViolationTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var role: WebSocketRole
        var wire: [UInt8]
        var error: WebSocketProtocolError
        var closeCode: UInt16
        var configuration = WebSocketDecoder.Configuration()
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "RSV1 set", role: .client, wire: frame(.binary, [1], reservedBits: 0x40), error: .reservedBitsSet, closeCode: 1002),
        Case(name: "RSV3 set", role: .server, wire: frame(.text, [], key: testKey, reservedBits: 0x10), error: .reservedBitsSet, closeCode: 1002),
        Case(name: "opcode 3", role: .client, wire: frame(WebSocketOpcode(rawValue: 3), []), error: .unknownOpcode(3), closeCode: 1002),
        Case(name: "opcode 0xB", role: .client, wire: frame(WebSocketOpcode(rawValue: 0xB), []), error: .unknownOpcode(0xB), closeCode: 1002),
        Case(name: "unmasked frame to a server", role: .server, wire: frame(.text, bytes("hi")), error: .unmaskedFrameFromClient, closeCode: 1002),
        Case(name: "masked frame to a client", role: .client, wire: frame(.text, bytes("hi"), key: testKey), error: .maskedFrameFromServer, closeCode: 1002),
        Case(name: "126-byte ping", role: .client, wire: frame(.ping, [UInt8](repeating: 0, count: 126)), error: .controlFrameTooLong, closeCode: 1002),
        Case(name: "fragmented ping", role: .client, wire: frame(.ping, [], fin: false), error: .fragmentedControlFrame, closeCode: 1002),
        Case(name: "continuation without a message", role: .client, wire: frame(.continuation, [1]), error: .unexpectedContinuation, closeCode: 1002),
        Case(name: "new message inside a fragmented one", role: .client,
             wire: frame(.text, bytes("a"), fin: false) + frame(.binary, [1]), error: .expectedContinuation, closeCode: 1002),
        Case(name: "64-bit length with the top bit set", role: .client, wire: hex("82 7F 80 00 00 00 00 00 00 00"),
             error: .invalidPayloadLength, closeCode: 1002),
        Case(name: "1-byte close payload", role: .client, wire: frame(.close, [3]), error: .invalidCloseFrame, closeCode: 1002),
        Case(name: "close code 1005 on the wire", role: .client, wire: frame(.close, [0x03, 0xED]), error: .invalidCloseFrame, closeCode: 1002),
        Case(name: "close code 999", role: .client, wire: frame(.close, [0x03, 0xE7]), error: .invalidCloseFrame, closeCode: 1002),
        Case(name: "close code 5000", role: .client, wire: frame(.close, [0x13, 0x88]), error: .invalidCloseFrame, closeCode: 1002),
        Case(name: "invalid UTF-8 text", role: .client, wire: frame(.text, [0x61, 0xFF]), error: .invalidUTF8, closeCode: 1007),
        Case(name: "UTF-8 cut off at message end", role: .client,
             wire: frame(.text, [0xE2, 0x82], fin: false) + frame(.continuation, []), error: .invalidUTF8, closeCode: 1007),
        Case(name: "overlong UTF-8", role: .client, wire: frame(.text, [0xC0, 0xAF]), error: .invalidUTF8, closeCode: 1007),
        Case(name: "UTF-16 surrogate in UTF-8", role: .client, wire: frame(.text, [0xED, 0xA0, 0x80]), error: .invalidUTF8, closeCode: 1007),
        Case(name: "code point above U+10FFFF", role: .client, wire: frame(.text, [0xF4, 0x90, 0x80, 0x80]), error: .invalidUTF8, closeCode: 1007),
        Case(name: "invalid UTF-8 close reason", role: .client, wire: frame(.close, [0x03, 0xE8, 0xC3]), error: .invalidUTF8, closeCode: 1007),
        Case(name: "frame over maxFrameSize", role: .client, wire: frame(.binary, [UInt8](repeating: 0, count: 101)),
             error: .frameTooLarge(limit: 100), closeCode: 1009, configuration: .init(maxFrameSize: 100)),
        Case(name: "message over maxMessageSize", role: .client,
             wire: frame(.binary, [UInt8](repeating: 0, count: 60), fin: false) + frame(.continuation, [UInt8](repeating: 0, count: 60)),
             error: .messageTooLarge(limit: 100), closeCode: 1009, configuration: .init(maxMessageSize: 100)),
    ]

    @Test(arguments: cases)
    func violationYieldsItsCloseCode(_ violation: Case) {
        #expect(violation.error.closeCode.rawValue == violation.closeCode)
        #expect(throws: violation.error) {
            try decode([violation.wire], role: violation.role, configuration: violation.configuration)
        }
        // The same error is found whatever the read boundaries are.
        for chunks in splits(of: violation.wire).prefix(20) {
            #expect(throws: violation.error) {
                try decode(chunks, role: violation.role, configuration: violation.configuration)
            }
        }
    }

    @Test func validUTF8EdgeCasesPass() throws {
        let samples: [[UInt8]] = [
            Array("κόσμε 𝄞 ﷽ \u{10FFFF} \u{D7FF} \u{E000}".utf8),
            [0xEF, 0xBB, 0xBF],  // BOM
            [],
        ]
        for sample in samples {
            var generator = SplitMix64(seed: UInt64(sample.count))
            let wire = frame(.text, sample, fin: false) + frame(.continuation, [])
            for _ in 0..<20 {
                #expect(try decode(randomChunks(wire, maxPiece: 3, using: &generator), role: .client) == [.text(sample)])
            }
        }
    }

    @Test func registeredAndPrivateCloseCodesAreAccepted() throws {
        for code: UInt16 in [1000, 1003, 1007, 1011, 1012, 1014, 3000, 4999] {
            let wire = frame(.close, [UInt8(code >> 8), UInt8(code & 0xFF)])
            #expect(try decode([wire], role: .client) == [.close(WebSocketCloseCode(rawValue: code), "")])
        }
    }

    @Test func utf8ValidationCanBeDisabled() throws {
        let configuration = WebSocketDecoder.Configuration(validatesUTF8: false)
        #expect(try decode([frame(.text, [0xFF])], role: .client, configuration: configuration) == [.text([0xFF])])
    }

    @Test func aFailedDecoderStaysFailed() throws {
        var decoder = WebSocketDecoder(role: .client)
        var wire = frame(.binary, [1], reservedBits: 0x20) + frame(.binary, [2])
        wire.withUnsafeMutableBytes { buffer in
            var rest = buffer
            #expect(throws: WebSocketProtocolError.reservedBitsSet) { _ = try decoder.next(from: &rest) }
            #expect(throws: WebSocketProtocolError.reservedBitsSet) { _ = try decoder.next(from: &rest) }
        }
    }
}
