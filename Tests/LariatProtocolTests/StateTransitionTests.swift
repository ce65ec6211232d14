import Testing
@testable import LariatProtocol

/// The transitions of PROTOCOL.md §5 not covered by the lifecycle tests: each frame type in
/// each state where it is out of place.
@Suite struct StateTransitionTests {
    @Test func openOKForAnAcceptedStreamResetsIt() throws {
        let p = SessionPair()
        let id = try p.client.open(target: "x")
        p.pump()
        p.injectToClient(Frame.openOK(stream: id, window: 1000).encode())
        #expect(p.clientDelegate.events.contains { if case .reset(id, .protocolError, _) = $0 { true } else { false } })
        #expect(p.client.state == .established)
    }

    @Test func openFailForAnOpenStreamResetsIt() throws {
        let p = SessionPair()
        let id = try p.client.open(target: "x")
        p.pump()
        p.injectToClient(Frame.openFail(stream: id, code: .refused, message: "late").encode())
        #expect(p.clientDelegate.events.contains { if case .reset(id, .protocolError, _) = $0 { true } else { false } })
    }

    @Test func peerResetWhileAwaitingAcceptFreesThePendingSlot() throws {
        var cfg = SessionConfig()
        cfg.maxPendingOpens = 1
        let p = SessionPair(serverConfig: cfg)
        p.serverDelegate.autoAccept = false
        let a = try p.client.open(target: "a")
        p.pump()
        p.client.reset(a)
        p.pump()
        #expect(!p.server.isAwaitingAccept(a))
        let b = try p.client.open(target: "b")
        p.pump()
        #expect(p.server.isAwaitingAccept(b), "the pending-open slot of the reset stream was not released")
    }

    @Test func framesForClosedStreamsAreIgnored() throws {
        let p = SessionPair()
        let id = try p.client.open(target: "x")
        p.pump()
        p.client.reset(id)
        p.pump()
        let before = p.server.stats.ignoredFrames
        p.injectToServer(Frame.window(stream: id, increment: 100).encode())
        p.injectToServer(Frame.reset(stream: id, code: .cancel, message: "").encode())
        p.injectToServer(Frame.data(stream: id, fin: true, compressed: false, payload: [1]).encode())
        #expect(p.server.state == .established)
        #expect(p.server.stats.ignoredFrames == before + 3)
    }

    @Test func acceptAfterPeerGaveUpIsANoOp() throws {
        let p = SessionPair()
        p.serverDelegate.autoAccept = false
        let id = try p.client.open(target: "x")
        p.pump()
        p.client.reset(id)
        p.pump()
        p.server.accept(id)
        #expect(p.server.streamCount == 0)
        #expect(SessionPair.frames(p.drain(p.server)).isEmpty)
    }

    @Test func writesAfterFinishAreRejected() throws {
        let p = SessionPair()
        let id = try p.client.open(target: "x")
        p.pump()
        p.client.finish(id)
        #expect(p.client.write(id, [1, 2]) == 0)
        #expect(p.client.sendSpace(id) == 0)
    }

    @Test func finWithDataInOneFrame() throws {
        let p = SessionPair()
        let id = try p.client.open(target: "x")
        p.pump()
        _ = p.client.write(id, [7, 7, 7])
        p.client.finish(id)
        let frames = SessionPair.frames(p.drain(p.client))
        #expect(frames.contains(.data(stream: id, fin: true, compressed: false, payload: [7, 7, 7])))
    }

    @Test func drainingSessionRefusesNewPeerOpens() throws {
        let p = SessionPair()
        let keep = try p.client.open(target: "keep")
        p.pump()
        p.server.goAway()
        // An OPEN that crossed the GOAWAY on the wire.
        p.injectToServer(Frame.open(stream: keep + 2, streamClass: .bulk, window: 1000, target: "late").encode())
        let out = SessionPair.frames(p.drain(p.server))
        #expect(out.contains(.openFail(stream: keep + 2, code: .refused, message: "session is draining")))
    }
}

/// Regressions found by the session fuzzer and by review (fuzz/crashes/README.md).
@Suite struct FuzzRegressionTests {
    /// An interactive stream with data while the session window is spent must not spin produce().
    @Test func produceReturnsWhenSessionCreditIsSpent() throws {
        var cfg = SessionConfig()
        cfg.sessionWindow = 64 * 1024
        let p = SessionPair(serverConfig: cfg)
        p.serverDelegate.autoConsume = false
        let bulk = try p.client.open(target: "bulk")
        let shell = try p.client.open(target: "shell", streamClass: .interactive)
        p.pump()
        _ = p.client.write(bulk, randomBytes(200_000, seed: 21))
        p.pump()
        #expect(p.client.sessionSendCredit == 0)
        _ = p.client.write(shell, [1])
        var buf = [UInt8](repeating: 0, count: 65536)
        let n = buf.withUnsafeMutableBytes { p.client.produce(into: $0) }
        #expect(n == 0)
        #expect(!p.client.hasOutput)
    }

    /// The acceptor's send credit is the window the opener announced in OPEN.
    @Test func acceptHonoursTheOpenWindow() {
        let p = SessionPair()
        p.serverDelegate.autoAccept = false
        p.injectToServer(Frame.open(stream: 1, streamClass: .bulk, window: 1000, target: "x").encode())
        p.server.accept(1)
        _ = p.server.write(1, randomBytes(5000, seed: 22))
        let frames = SessionPair.frames(p.drain(p.server))
        let sent = frames.reduce(0) { if case .data(1, _, _, let b) = $1 { $0 + b.count } else { $0 } }
        #expect(sent == 1000)
    }

    /// Resetting a stream that held the whole session window gives the credit back.
    @Test func resetStreamReturnsSessionCredit() throws {
        var cfg = SessionConfig()
        cfg.sessionWindow = 64 * 1024
        let p = SessionPair(serverConfig: cfg)
        p.serverDelegate.autoConsume = false
        let a = try p.client.open(target: "a")
        p.pump()
        _ = p.client.write(a, randomBytes(100_000, seed: 23))
        p.pump()
        #expect(p.client.sessionSendCredit == 0)
        p.server.reset(a)
        p.pump()
        #expect(p.client.sessionSendCredit == 64 * 1024)
        let b = try p.client.open(target: "b")
        p.pump()
        _ = p.client.write(b, [1, 2, 3])
        p.pump()
        #expect(p.serverDelegate.received[b] == [1, 2, 3])
    }

    /// Many open/reset cycles between two produce calls: stale ready-queue ids do not trap.
    @Test func openResetBurstDoesNotOverflowTheReadyQueue() {
        var cfg = SessionConfig()
        cfg.maxStreams = 4
        let p = SessionPair(serverConfig: cfg)
        p.serverDelegate.autoAccept = false
        var id: UInt32 = 1
        for _ in 0..<50 {
            p.injectToServer(Frame.open(stream: id, streamClass: .bulk, window: 1000, target: "x").encode())
            p.server.accept(id)
            _ = p.server.write(id, [1])
            p.injectToServer(Frame.reset(stream: id, code: .cancel, message: "").encode())
            id += 2
        }
        _ = p.drain(p.server)
        #expect(p.server.state == .established)
    }

    @Test func longReasonsAreCutAtACharacterBoundary() throws {
        let p = SessionPair()
        let id = try p.client.open(target: "x")
        p.pump()
        let reason = String(repeating: "a", count: 1023) + "é" + String(repeating: "b", count: 100)
        p.client.reset(id, code: .cancel, message: reason)
        p.pump()
        #expect(p.serverDelegate.events.contains(.reset(id, .cancel, String(repeating: "a", count: 1023))))
        p.client.goAway(code: .goingAway, reason: String(repeating: "ü", count: 2000))
        p.pump()
        // The peer accepted the truncated reason (a cut inside "ü" would be a protocol error).
        #expect(p.serverDelegate.events.contains(.goAway(.goingAway, String(repeating: "ü", count: 512))))
        if case .localError = p.serverDelegate.endReason { Issue.record("server rejected the GOAWAY reason") }
    }

    @Test func lz4WithoutNegotiationIsFatal() throws {
        var off = SessionConfig()
        off.compression = false
        let p = SessionPair(serverConfig: off)
        let id = try p.client.open(target: "x")
        p.pump()
        p.injectToServer(Frame.data(stream: id, fin: false, compressed: true, payload: [0, 0, 0, 1, 0x10, 0x41]).encode())
        #expect(p.server.state == .ended)
    }

    @Test func malformedOpenOnAnIdleIDIsFatal() {
        let p = SessionPair()
        p.injectToServer(Frame.open(stream: 1, streamClass: .bulk, window: 1000, target: "x").encode().enumerated().map { $0.offset == 9 ? 9 : $0.element })
        #expect(p.server.state == .ended)
    }

    @Test func badHelloParametersAreRefusedWithoutWelcome() {
        var hello = SessionPair.defaultHello
        hello.maxFramePayload = 100
        let p = SessionPair(handshake: false)
        _ = p.drain(p.client)
        p.injectToServer(Frame.hello(hello).encode())
        let out = SessionPair.frames(p.drain(p.server))
        #expect(!out.contains { if case .welcome = $0 { true } else { false } })
        #expect(out.contains { if case .goAway(_, .protocolError, _) = $0 { true } else { false } })
    }
}
