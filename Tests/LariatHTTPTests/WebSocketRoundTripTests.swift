import LariatHTTP
import Testing

/// Random messages through encoder and decoder, cut into random read sizes.
@Suite struct WebSocketRoundTripTests {
    @Test(arguments: [WebSocketRole.client, .server], [UInt64(1), 2, 3])
    func randomPayloadsSurviveRandomChunking(sender: WebSocketRole, seed: UInt64) throws {
        var generator = SplitMix64(seed: seed)
        var encoder = WebSocketEncoder(role: sender, maskingKeys: WebSocketMaskingKeyGenerator(seed: seed))
        var wire: [UInt8] = []
        var expected: [DecodedWebSocket] = []
        let sizes = [0, 1, 125, 126, 127, 65535, 65536, 70000] + (0..<40).map { _ in Int.random(in: 0...3000, using: &generator) }
        for size in sizes {
            let payload = (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let asText = Bool.random(using: &generator)
            let message = asText ? Array(String(repeating: "héllo ", count: size / 7 + 1).utf8) : payload
            // Split the message into 1...4 frames, sometimes with a ping in between.
            let fragmentCount = Int.random(in: 1...4, using: &generator)
            var cuts = (0..<(fragmentCount - 1)).map { _ in Int.random(in: 0...message.count, using: &generator) }.sorted()
            cuts = [0] + cuts + [message.count]
            var pings: [DecodedWebSocket] = []
            for index in 0..<fragmentCount {
                let piece = Array(message[cuts[index]..<cuts[index + 1]])
                let opcode: WebSocketOpcode = index == 0 ? (asText ? .text : .binary) : .continuation
                encoder.appendFrame(opcode: opcode, isFinal: index == fragmentCount - 1, payload: piece, to: &wire)
                if index < fragmentCount - 1, Bool.random(using: &generator) {
                    let ping = [UInt8(index), UInt8(truncatingIfNeeded: size)]
                    encoder.appendPing(ping, to: &wire)
                    pings.append(.ping(ping))
                }
            }
            expected += pings
            expected.append(asText ? .text(message) : .binary(message))
        }
        encoder.appendClose(code: .normalClosure, reason: "done", to: &wire)
        expected.append(.close(.normalClosure, "done"))

        let receiver: WebSocketRole = sender == .client ? .server : .client
        for maxPiece in [1 << 16, 4096, 7] {
            let chunks = randomChunks(wire, maxPiece: maxPiece, using: &generator)
            #expect(try decode(chunks, role: receiver) == expected)
        }
    }

    @Test func inPlaceFramingWithReservedHeaderSpace() throws {
        var generator = SplitMix64(seed: 11)
        for role in [WebSocketRole.client, .server] {
            var encoder = WebSocketEncoder(role: role)
            for size in [0, 5, 125, 126, 65535, 65536] {
                let payload = (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }
                var buffer = [UInt8](repeating: 0, count: WebSocketFrameHeader.maxEncodedLength) + payload
                let start = buffer.withUnsafeMutableBytes {
                    encoder.encodeFrame(opcode: .binary, buffer: $0, payloadOffset: WebSocketFrameHeader.maxEncodedLength, payloadLength: size)
                }
                #expect(start == WebSocketFrameHeader.maxEncodedLength - encoder.headerLength(payloadLength: size))
                let receiver: WebSocketRole = role == .client ? .server : .client
                #expect(try decode([Array(buffer[start...])], role: receiver) == [.binary(payload)])
            }
        }
    }
}
