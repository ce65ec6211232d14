import Testing
@testable import LariatProtocol

@Suite struct StreamLifecycleTests {
    @Test func openAcceptDataBothWaysAndCleanClose() throws {
        let p = SessionPair()
        let id = try p.client.open(target: "tcp:127.0.0.1:5201", streamClass: .bulk)
        #expect(id == 1)
        let bound = SessionConfig().sendBufferSize
        let up = randomBytes(bound + 40_000, seed: 1)
        #expect(p.client.write(id, up) == bound) // send buffer bound
        p.pump()
        #expect(p.serverDelegate.events.contains(.openRequested(1, "tcp:127.0.0.1:5201", .bulk)))
        #expect(p.clientDelegate.events.contains(.opened(1)))
        #expect(p.clientDelegate.events.contains(.writable(1)))
        #expect(p.client.write(id, Array(up[bound...])) == up.count - bound)
        let down = randomBytes(100_000, seed: 2)
        #expect(p.server.write(id, down) == down.count)
        p.client.finish(id)
        p.pump()
        // Compared as Bool: a failing array comparison would print megabytes.
        #expect(p.serverDelegate.received[1] == up ? true : false)
        #expect(p.clientDelegate.received[1] == down ? true : false)
        #expect(p.serverDelegate.events.contains(.finished(1)))
        // The server's direction is still open: half-close.
        #expect(p.server.streamCount == 1)
        #expect(p.server.write(id, [9, 9, 9]) == 3)
        p.server.finish(id)
        p.pump()
        #expect(p.clientDelegate.received[1]!.suffix(3) == [9, 9, 9])
        #expect(p.clientDelegate.events.contains(.closed(1)))
        #expect(p.serverDelegate.events.contains(.closed(1)))
        #expect(p.client.streamCount == 0 && p.server.streamCount == 0)
    }

    @Test func serverOpensEvenIDs() throws {
        let p = SessionPair()
        let a = try p.server.open(target: "hub-probe")
        let b = try p.server.open(target: "hub-probe")
        #expect(a == 2 && b == 4)
        p.pump()
        #expect(p.clientDelegate.events.contains(.openRequested(2, "hub-probe", .bulk)))
    }

    @Test func refusedOpenReportsCodeAndMessage() throws {
        let p = SessionPair()
        p.serverDelegate.autoAccept = false
        let id = try p.client.open(target: "tcp:10.0.0.1:22")
        p.pump()
        p.server.refuse(id, code: .targetUnreachable, message: "dial tcp 10.0.0.1:22: connection refused")
        p.pump()
        #expect(p.clientDelegate.events.contains(.openFailed(id, .targetUnreachable, "dial tcp 10.0.0.1:22: connection refused")))
        #expect(p.client.streamCount == 0 && p.server.streamCount == 0)
        // The session is unharmed.
        let id2 = try p.client.open(target: "tcp:ok:1")
        p.pump()
        p.server.accept(id2)
        p.pump()
        #expect(p.clientDelegate.events.contains(.opened(id2)))
    }

    @Test func resetEndsOneStreamOnly() throws {
        let p = SessionPair()
        let a = try p.client.open(target: "a")
        let b = try p.client.open(target: "b")
        p.pump()
        _ = p.client.write(a, randomBytes(10_000, seed: 3))
        _ = p.client.write(b, randomBytes(10_000, seed: 4))
        p.client.reset(a, code: .cancel, message: "user hung up")
        p.pump()
        #expect(p.serverDelegate.events.contains(.reset(a, .cancel, "user hung up")))
        #expect(p.serverDelegate.received[b]?.count == 10_000)
        #expect(p.server.streamCount == 1)
        #expect(p.server.state == .established)
    }

    @Test func dataInFlightAfterResetIsIgnoredAndSessionCreditReturns() throws {
        let p = SessionPair()
        let id = try p.client.open(target: "a")
        p.pump()
        _ = p.client.write(id, randomBytes(50_000, seed: 5))
        // The server resets while the client's data is already on the wire.
        let inFlight = p.drain(p.client)
        p.server.reset(id)
        inFlight.withUnsafeBytes { p.server.receive($0, now: p.now) }
        #expect(p.server.state == .established)
        #expect(p.server.stats.ignoredFrames > 0)
        p.pump()
        // No credit leaks: what is not yet re-announced is owed, not lost.
        #expect(p.server.sessionRecvCredit + p.server.sessionUnannounced + p.server.sessionDelivered == 32 * 1024 * 1024)
        #expect(p.client.sessionSendCredit == p.server.sessionRecvCredit)
    }

    @Test func frameOnNeverOpenedStreamIsFatal() {
        let p = SessionPair()
        p.injectToServer(Frame.window(stream: 99, increment: 10).encode())
        #expect(p.server.state == .ended)
        if case .localError(let v) = p.serverDelegate.endReason { #expect(v.code == .protocolError) }
        else { Issue.record("expected protocol error") }
    }

    @Test func openWithWrongParityOrReusedIDIsFatal() {
        let p = SessionPair()
        p.injectToServer(Frame.open(stream: 2, streamClass: .bulk, window: 1000, target: "x").encode())
        #expect(p.server.state == .ended)
        let q = SessionPair()
        q.injectToServer(Frame.open(stream: 5, streamClass: .bulk, window: 1000, target: "x").encode())
        q.injectToServer(Frame.open(stream: 3, streamClass: .bulk, window: 1000, target: "x").encode())
        #expect(q.server.state == .ended)
    }

    @Test func dataBeforeOpenOKResetsTheStream() {
        let p = SessionPair()
        p.serverDelegate.autoAccept = false
        p.injectToServer(Frame.open(stream: 1, streamClass: .bulk, window: 1000, target: "x").encode())
        p.injectToServer(Frame.data(stream: 1, fin: false, compressed: false, payload: [1]).encode())
        #expect(p.server.state == .established)
        #expect(p.serverDelegate.events.contains { if case .reset(1, .streamClosed, _) = $0 { true } else { false } })
    }

    @Test func dataAfterFinResetsTheStream() throws {
        let p = SessionPair()
        let id = try p.client.open(target: "x")
        p.pump()
        p.client.finish(id)
        p.pump()
        p.injectToServer(Frame.data(stream: id, fin: false, compressed: false, payload: [1]).encode())
        #expect(p.serverDelegate.events.contains(.reset(id, .streamClosed, "DATA after FIN")))
        #expect(p.server.state == .established)
    }

    @Test func tooManyPendingOpensAreRefusedNotFatal() {
        var cfg = SessionConfig()
        cfg.maxPendingOpens = 2
        let p = SessionPair(serverConfig: cfg)
        p.serverDelegate.autoAccept = false
        for i in 0..<3 { _ = try? p.client.open(target: "t\(i)") }
        p.pump()
        #expect(p.clientDelegate.events.contains(.openFailed(5, .refused, "too many pending opens (limit 2)")))
        #expect(p.server.state == .established)
    }

    @Test func streamLimitRefuses() {
        var cfg = SessionConfig()
        cfg.maxStreams = 2
        let p = SessionPair(serverConfig: cfg)
        for i in 0..<3 { _ = try? p.client.open(target: "t\(i)") }
        p.pump()
        #expect(p.clientDelegate.events.contains(.openFailed(5, .refused, "too many streams (limit 2)")))
    }

    @Test func transportLossEndsEveryStream() throws {
        let p = SessionPair()
        let a = try p.client.open(target: "a")
        p.pump()
        p.client.transportClosed("EOF")
        #expect(p.clientDelegate.events.contains(.reset(a, .cancel, "tunnel connection lost: EOF")))
        #expect(p.clientDelegate.endReason == .transportClosed("EOF"))
        #expect(throws: SessionError.closed) { try p.client.open(target: "b") }
    }
}
