import Testing
@testable import LariatProtocol

@Suite struct HandshakeTests {
    @Test func establishesAndNegotiatesCapabilities() {
        let p = SessionPair()
        #expect(p.client.state == .established)
        #expect(p.server.state == .established)
        #expect(p.clientDelegate.events.first == .established)
        #expect(p.serverDelegate.hellos.first?.agentID == "agent-1")
        #expect(p.serverDelegate.hellos.first?.token == "secret")
        #expect(p.client.welcome?.sessionID == "s-1")
        #expect(p.client.compressionEnabled && p.server.compressionEnabled)
    }

    @Test func compressionOffWhenEitherSideDisablesIt() {
        var off = SessionConfig()
        off.compression = false
        let p = SessionPair(serverConfig: off)
        #expect(!p.client.compressionEnabled)
        #expect(!p.server.compressionEnabled)
        #expect(p.client.welcome?.capabilities.contains(.lz4) == false)
    }

    @Test func refusalCarriesCodeAndReasonToTheAgent() {
        let p = SessionPair(handshake: false)
        p.serverDelegate.decision = .refuse(.authenticationFailed, reason: "token not valid for cluster c-1")
        p.pump()
        #expect(p.server.state == .ended)
        #expect(p.client.state == .ended)
        #expect(p.clientDelegate.endReason == .remoteError(.authenticationFailed, "token not valid for cluster c-1"))
        if case .localError(let v) = p.serverDelegate.endReason {
            #expect(v.code == .authenticationFailed)
        } else {
            Issue.record("server should end with a local error")
        }
    }

    @Test func unsupportedVersionIsRefusedWithBothRanges() {
        var hello = SessionPair.defaultHello
        hello.minVersion = 2
        hello.maxVersion = 3
        // The client constructor keeps our version fields; build the HELLO by hand.
        let p = SessionPair(handshake: false)
        _ = p.drain(p.client)
        p.injectToServer(Frame.hello(hello).encode())
        let out = SessionPair.frames(p.drain(p.server))
        guard case .goAway(_, let code, let reason) = out.last else { Issue.record("no GOAWAY"); return }
        #expect(code == .unsupportedVersion)
        #expect(reason.contains("offered 2-3"))
    }

    @Test func dataBeforeHandshakeIsAProtocolError() {
        let p = SessionPair(handshake: false)
        p.injectToServer(Frame.data(stream: 1, fin: false, compressed: false, payload: [1, 2, 3]).encode())
        #expect(p.server.state == .ended)
        if case .localError(let v) = p.serverDelegate.endReason { #expect(v.code == .protocolError) }
        else { Issue.record("expected local error") }
    }

    @Test func handshakeTimesOut() {
        let p = SessionPair(handshake: false)
        p.server.tick(now: p.now + 11_000_000_000)
        #expect(p.server.state == .ended)
        if case .localError(let v) = p.serverDelegate.endReason { #expect(v.code == .timeout) }
        else { Issue.record("expected timeout") }
    }

    @Test func openBeforeEstablishedThrows() {
        let p = SessionPair(handshake: false)
        #expect(throws: SessionError.notEstablished) { try p.client.open(target: "tcp:x:1") }
    }
}
