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
