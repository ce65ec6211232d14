import Testing
@testable import LariatProtocol

@Suite struct CompressionTests {
    @Test func jsonIsCompressedAndArrivesIntact() throws {
        let p = SessionPair()
        let id = try p.client.open(target: "x")
        p.pump()
        let payload = jsonLikeBytes(200_000)
        _ = p.client.write(id, payload)
        let before = p.wireBytes.up
        p.pump()
        #expect(p.serverDelegate.received[id] == payload)
        #expect(p.client.stats.compressedFramesSent > 0)
        #expect(p.wireBytes.up - before < payload.count / 3)
    }

    @Test func randomDataBacksOffAfterTwoMisses() throws {
        let p = SessionPair()
        let id = try p.client.open(target: "x")
        p.pump()
        let payload = randomBytes(1_000_000, seed: 15)
        var offset = 0
        while offset < payload.count {
            let n = p.client.write(id, Array(payload[offset..<min(offset + 128 * 1024, payload.count)]))
            offset += n
            p.pump()
        }
        #expect(p.serverDelegate.received[id] == payload)
        #expect(p.client.stats.compressedFramesSent == 0)
        // About 61 frames; back-off skips most attempts (checked via the CompressionBackoff unit below).
    }

    @Test func backoffSkipsGrowingRuns() {
        var b = CompressionBackoff()
        var tries = 0
        for _ in 0..<200 {
            if b.shouldTry() { tries += 1; b.record(shrank: false) }
        }
        #expect(tries < 12)
        b.record(shrank: true)
    }

    @Test func corruptLZ4BlockResetsOnlyThatStream() throws {
        let p = SessionPair()
        let id = try p.client.open(target: "x")
        p.pump()
        let bogus: [UInt8] = [0, 0, 0x10, 0] + [UInt8](repeating: 0xFF, count: 20)
        p.injectToServer(Frame.data(stream: id, fin: false, compressed: true, payload: bogus).encode())
        #expect(p.serverDelegate.events.contains { if case .reset(id, .compressionError, _) = $0 { true } else { false } })
        #expect(p.server.state == .established)
    }

    @Test func compressedLengthBeyondLimitIsFatal() throws {
        let p = SessionPair()
        let id = try p.client.open(target: "x")
        p.pump()
        let bogus: [UInt8] = [0x7F, 0, 0, 0] + [UInt8](repeating: 0, count: 8)
        p.injectToServer(Frame.data(stream: id, fin: false, compressed: true, payload: bogus).encode())
        #expect(p.server.state == .ended)
    }
}
