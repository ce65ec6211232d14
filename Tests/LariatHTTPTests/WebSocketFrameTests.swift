import LariatHTTP
import Testing

@Suite struct WebSocketFrameTests {
    // RFC 6455 §5.7 examples.
    @Test func unmaskedTextFrame() throws {
        let wire = hex("81 05 48 65 6c 6c 6f")
        #expect(frame(.text, bytes("Hello")) == wire)
        #expect(try decode([wire], role: .client) == [.text(bytes("Hello"))])
    }

    @Test func maskedTextFrameFromTheRFC() throws {
        let wire = hex("81 85 37 fa 21 3d 7f 9f 4d 51 58")
        #expect(frame(.text, bytes("Hello"), key: testKey) == wire)
        // Decoding works however the frame is split: the mask offset carries across reads.
        for chunks in splits(of: wire) {
            #expect(try decode(chunks, role: .server) == [.text(bytes("Hello"))])
        }
    }

    @Test func encoderProducesTheRFCMaskedFrameInPlace() {
        // The encoder picks its own key, so check the layout it writes and that the bytes equal
        // the RFC construction (header + payload XOR key) for whatever key it chose.
        var buffer = [UInt8](repeating: 0, count: 14) + bytes("Hello")
        var encoder = WebSocketEncoder(role: .client, maskingKeys: WebSocketMaskingKeyGenerator(seed: 42))
        let start = buffer.withUnsafeMutableBytes {
            encoder.encodeFrame(opcode: .text, buffer: $0, payloadOffset: 14, payloadLength: 5)
        }
        #expect(start == 14 - 6)
        let wire = Array(buffer[start...])
        #expect(wire[0] == 0x81 && wire[1] == 0x85)
        let key = WebSocketMaskingKey(wire[2], wire[3], wire[4], wire[5])
        #expect(wire == frame(.text, bytes("Hello"), key: key))
    }

    @Test func fragmentedUnmaskedTextFromTheRFC() throws {
        let wire = hex("01 03 48 65 6c") + hex("80 02 6c 6f")
        #expect(try decode([wire], role: .client) == [.text(bytes("Hello"))])
    }

    @Test func pingAndMaskedPongFromTheRFC() throws {
        #expect(try decode([hex("89 05 48 65 6c 6c 6f")], role: .client) == [.ping(bytes("Hello"))])
        #expect(try decode([hex("8a 85 37 fa 21 3d 7f 9f 4d 51 58")], role: .server) == [.pong(bytes("Hello"))])
    }

    @Test func sixteenBitLength() throws {
        let payload = (0..<256).map { UInt8($0) }
        let wire = frame(.binary, payload)
        #expect(Array(wire.prefix(4)) == hex("82 7E 01 00"))
        #expect(try decode([wire], role: .client) == [.binary(payload)])
        // 125 / 126 / 65535 / 65536 are the boundaries between the three length forms.
        #expect(WebSocketFrameHeader.encodedLength(payloadLength: 125, masked: false) == 2)
        #expect(WebSocketFrameHeader.encodedLength(payloadLength: 126, masked: false) == 4)
        #expect(WebSocketFrameHeader.encodedLength(payloadLength: 65535, masked: true) == 8)
        #expect(WebSocketFrameHeader.encodedLength(payloadLength: 65536, masked: true) == 14)
    }

    @Test func sixtyFourBitLength() throws {
        let payload = [UInt8](repeating: 0xAB, count: 65536)
        let wire = frame(.binary, payload)
        #expect(Array(wire.prefix(10)) == hex("82 7F 00 00 00 00 00 01 00 00"))
        var generator = SplitMix64(seed: 3)
        #expect(try decode(randomChunks(wire, maxPiece: 5000, using: &generator), role: .client) == [.binary(payload)])
        let masked = frame(.binary, payload, key: testKey)
        #expect(try decode(randomChunks(masked, maxPiece: 3, using: &generator), role: .server) == [.binary(payload)])
    }

    @Test func fragmentedMessageWithInterleavedControlFrames() throws {
        let wire = frame(.binary, [1, 2], fin: false, key: testKey)
            + frame(.ping, bytes("p1"), key: testKey)
            + frame(.continuation, [], fin: false, key: testKey)
            + frame(.continuation, [3], fin: false, key: testKey)
            + frame(.pong, [], key: testKey)
            + frame(.continuation, [4, 5], fin: true, key: testKey)
            + frame(.text, bytes("après"), key: testKey)
        let expected: [DecodedWebSocket] = [.ping(bytes("p1")), .pong([]), .binary([1, 2, 3, 4, 5]), .text(bytes("après"))]
        for chunks in splits(of: wire) {
            #expect(try decode(chunks, role: .server) == expected)
        }
    }

    @Test func eventsReportFragmentBoundaries() throws {
        var wire = frame(.text, bytes("ab"), fin: false) + frame(.ping, []) + frame(.continuation, bytes("c"))
        var decoder = WebSocketDecoder(role: .client)
        var log: [String] = []
        try wire.withUnsafeMutableBytes { buffer in
            var rest = buffer
            while let event = try decoder.next(from: &rest) {
                switch event {
                case .text(let piece, let isFinal): log.append("text \(String(decoding: piece, as: UTF8.self)) \(isFinal)")
                case .ping: log.append("ping")
                default: log.append("other")
                }
                if case .ping = event { #expect(decoder.isInsideMessage) }
            }
        }
        #expect(log == ["text ab false", "ping", "text c true"])
        #expect(!decoder.isInsideMessage)
    }

    @Test func emptyMessages() throws {
        #expect(try decode([frame(.binary, [])], role: .client) == [.binary([])])
        #expect(try decode([frame(.text, [], key: testKey)], role: .server) == [.text([])])
    }

    @Test func closeFrames() throws {
        var encoder = WebSocketEncoder(role: .server)
        var wire: [UInt8] = []
        encoder.appendClose(code: .goingAway, reason: "bye", to: &wire)
        #expect(wire == hex("88 05 03 E9") + bytes("bye"))
        #expect(try decode([wire], role: .client) == [.close(.goingAway, "bye")])
        #expect(try decode([frame(.close, [])], role: .client) == [.close(.noStatusReceived, "")])

        // Anything after a close frame is ignored.
        #expect(try decode([wire + frame(.text, bytes("late"))], role: .client) == [.close(.goingAway, "bye")])

        // Long reasons are cut at a character boundary to fit the 125-byte control limit.
        var long: [UInt8] = []
        encoder.appendClose(code: .normalClosure, reason: String(repeating: "é", count: 100), to: &long)
        #expect(long.count == 2 + 2 + 122)
        guard case .close(_, let reason)? = try decode([long], role: .client).first else { Issue.record("no close"); return }
        #expect(reason == String(repeating: "é", count: 61))
    }

    @Test func clientEncoderMasksWithFreshKeys() throws {
        var encoder = WebSocketEncoder(role: .client)
        var first: [UInt8] = [], second: [UInt8] = []
        encoder.appendFrame(opcode: .binary, payload: bytes("same"), to: &first)
        encoder.appendFrame(opcode: .binary, payload: bytes("same"), to: &second)
        #expect(first[1] & 0x80 != 0)
        #expect(first != second)
        #expect(try decode([first + second], role: .server) == [.binary(bytes("same")), .binary(bytes("same"))])
    }

    @Test func separateHeaderForVectoredWrites() throws {
        var encoder = WebSocketEncoder(role: .client, maskingKeys: WebSocketMaskingKeyGenerator(seed: 9))
        var payload = [UInt8](repeating: 7, count: 300)
        var header = [UInt8](repeating: 0, count: 14)
        let headerLength = header.withUnsafeMutableBytes { headerBuffer in
            payload.withUnsafeMutableBytes { encoder.encodeHeader(opcode: .binary, payload: $0, into: headerBuffer) }
        }
        #expect(headerLength == encoder.headerLength(payloadLength: 300))
        #expect(headerLength == 8)
        #expect(try decode([Array(header.prefix(headerLength)) + payload], role: .server) == [.binary([UInt8](repeating: 7, count: 300))])
    }

    @Test func seededMaskingKeysAreReproducible() {
        var a = WebSocketMaskingKeyGenerator(seed: 1), b = WebSocketMaskingKeyGenerator(seed: 1)
        let keysA = (0..<8).map { _ in a.next() }, keysB = (0..<8).map { _ in b.next() }
        #expect(keysA == keysB)
        #expect(Set(keysA).count == 8)
    }

    @Test func maskingAcrossPiecesEqualsMaskingAtOnce() {
        let original = (0..<103).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var whole = original
        whole.withUnsafeMutableBytes { _ = testKey.apply(to: $0) }
        for cut in [1, 2, 3, 5, 8, 9, 50] {
            var pieces = original
            pieces.withUnsafeMutableBytes { buffer in
                let offset = testKey.apply(to: UnsafeMutableRawBufferPointer(rebasing: buffer[..<cut]))
                testKey.apply(to: UnsafeMutableRawBufferPointer(rebasing: buffer[cut...]), offset: offset)
            }
            #expect(pieces == whole)
        }
    }
}
