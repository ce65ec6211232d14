import Testing
@testable import LariatProtocol

@Suite struct LivenessAndGoAwayTests {
    @Test func pingMeasuresRoundTrip() {
        let p = SessionPair()
        p.client.ping()
        p.transfer(from: p.client, to: p.server, up: true)
        p.now += 7_000_000
        p.transfer(from: p.server, to: p.client, up: false)
        #expect(p.clientDelegate.rtts.last == 7_000_000)
        #expect(p.client.minRTT == 7_000_000)
    }

    @Test func keepalivePingAfterSilenceAndTimeoutAfterLongerSilence() {
        let p = SessionPair()
        p.now += 10_500_000_000
        p.client.tick(now: p.now)
        let out = SessionPair.frames(p.drain(p.client))
        #expect(out.contains { if case .ping = $0 { true } else { false } })
        p.now += p.client.config.idleTimeoutNanos
        p.client.tick(now: p.now)
        #expect(p.client.state == .ended)
        if case .localError(let v) = p.clientDelegate.endReason { #expect(v.code == .timeout) }
        else { Issue.record("expected a timeout") }
    }

    @Test func anyFrameCountsAsLiveness() throws {
        let p = SessionPair()
        let id = try p.client.open(target: "x")
        p.pump()
        for _ in 0..<5 {
            p.now += 8_000_000_000
            _ = p.server.write(id, [1])
            p.pump()
            p.client.tick(now: p.now)
        }
        #expect(p.client.state == .established)
    }

    @Test func goAwayDrainsOpenStreamsAndRefusesNewOnes() throws {
        let p = SessionPair()
        let id = try p.client.open(target: "x")
        p.pump()
        p.server.goAway(code: .goingAway, reason: "hub shutting down")
        p.pump()
        #expect(p.clientDelegate.events.contains(.goAway(.goingAway, "hub shutting down")))
        #expect(throws: SessionError.goingAway) { try p.client.open(target: "y") }
        // The open stream still works and finishes.
        _ = p.client.write(id, [1, 2, 3])
        p.client.finish(id)
        _ = p.server.write(id, [4])
        p.server.finish(id)
        p.pump()
        #expect(p.serverDelegate.received[id] == [1, 2, 3])
        #expect(p.clientDelegate.received[id] == [4])
        #expect(p.server.state == .ended && p.client.state == .ended)
        #expect(p.serverDelegate.endReason == .closed)
    }

    @Test func goAwayFailsStreamsThePeerNeverSaw() throws {
        let p = SessionPair()
        let a = try p.client.open(target: "a")
        p.pump()
        let b = try p.client.open(target: "b") // OPEN still unsent
        p.server.goAway()
        p.transfer(from: p.server, to: p.client, up: false)
        #expect(p.clientDelegate.events.contains(.openFailed(b, .refused, "peer is going away")))
        #expect(p.client.streamCount == 1)
        _ = a
    }

    @Test func errorGoAwayEndsTheSession() throws {
        let p = SessionPair()
        let id = try p.client.open(target: "x")
        p.pump()
        p.injectToClient(Frame.goAway(lastStreamID: 0, code: .internalError, reason: "boom").encode())
        #expect(p.client.state == .ended)
        #expect(p.clientDelegate.events.contains(.reset(id, .internalError, "boom")))
    }

    @Test func unknownExtensionFramesAreIgnoredUnknownCriticalAreFatal() {
        let p = SessionPair()
        p.injectToServer(Frame.ext(type: 0x90, flags: 0, stream: 0, payload: [1, 2]).encode())
        #expect(p.server.state == .established)
        p.injectToServer([0, 0, 0, 0x30, 0, 0, 0, 0, 0])
        #expect(p.server.state == .ended)
    }

    @Test func oversizedFrameIsFatalWithoutBuffering() {
        let p = SessionPair()
        // Header announcing 1 MiB; only the header is sent.
        p.injectToServer([0x10, 0, 0, FrameType.data.rawValue, 0, 0, 0, 0, 1])
        #expect(p.server.state == .ended)
        if case .localError(let v) = p.serverDelegate.endReason { #expect(v.code == .frameSizeError) }
        else { Issue.record("expected frame size error") }
    }

    @Test func partialFramesReassembleAtEveryBoundary() throws {
        let p = SessionPair()
        p.chunk = 7 // cut everything into 7-byte reads
        let id = try p.client.open(target: "x")
        p.pump()
        let payload = jsonLikeBytes(40_000)
        _ = p.client.write(id, payload)
        p.pump()
        #expect(p.serverDelegate.received[id] == payload)
    }
}
