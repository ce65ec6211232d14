import Testing
@testable import LariatRuntime

/// ALPN (RFC 7301): the server picks the first of its protocols the client offers; no overlap
/// means no ALPN, not a failed handshake (kubectl offers h2 and http/1.1 and must get http/1.1).
@Suite struct TLSALPNTests {
    private static let issued = try! TLSFixture.shared.authority.issueServerCertificate(dnsNames: ["hub.test"])

    private func server(_ protocols: [String]) throws -> TLSContext {
        try TLSContext.server(certificatePEM: Self.issued.certificatePEM, privateKeyPEM: Self.issued.privateKeyPEM,
                              chainPEM: TLSFixture.shared.authority.certificatePEM, alpnProtocols: protocols)
    }

    private func client(_ protocols: [String], maximumVersion: TLSVersion = .tls13) throws -> TLSContext {
        try TLSContext.client(trustedCAPEM: TLSFixture.shared.authority.certificatePEM,
                              maximumVersion: maximumVersion, alpnProtocols: protocols)
    }

    /// Runs the handshake between two engines in memory; returns what each side negotiated.
    private func negotiate(server: TLSContext, client: TLSContext) throws -> (client: String?, server: String?) {
        let c = try TLSEngine(context: client, serverName: "hub.test")
        let s = try TLSEngine(context: server)
        for _ in 0..<10 where !(c.isHandshakeComplete && s.isHandshakeComplete) {
            _ = try c.handshake()
            try s.feed(c.pendingCiphertext)
            c.ciphertextSent(c.pendingCiphertextCount)
            _ = try s.handshake()
            try c.feed(s.pendingCiphertext)
            s.ciphertextSent(s.pendingCiphertextCount)
        }
        #expect(c.isHandshakeComplete && s.isHandshakeComplete)
        return (c.negotiatedProtocol, s.negotiatedProtocol)
    }

    @Test(arguments: [TLSVersion.tls12, .tls13])
    func kubectlOfferingH2AndHTTP11GetsHTTP11(version: TLSVersion) throws {
        let result = try negotiate(server: server(["http/1.1"]), client: client(["h2", "http/1.1"], maximumVersion: version))
        #expect(result.client == "http/1.1")
        #expect(result.server == "http/1.1")
    }

    @Test func noOverlapMeansNoALPNButTheHandshakeSucceeds() throws {
        let result = try negotiate(server: server(["http/1.1"]), client: client(["h2"]))
        #expect(result.client == nil)
        #expect(result.server == nil)
    }

    @Test func serverPreferenceWins() throws {
        let result = try negotiate(server: server(["h2", "http/1.1"]), client: client(["http/1.1", "h2"]))
        #expect(result.client == "h2")
    }

    @Test func nothingOfferedOrNothingConfigured() throws {
        #expect(try negotiate(server: server(["http/1.1"]), client: client([])) == (nil, nil))
        #expect(try negotiate(server: server([]), client: client(["http/1.1"])) == (nil, nil))
    }

    @Test func invalidProtocolNamesAreRefused() {
        #expect(throws: TLSError.self) { _ = try server([""]) }
        #expect(throws: TLSError.self) { _ = try client([String(repeating: "x", count: 256)]) }
    }

    /// Over real sockets, as the hub serves it: the server's handler sees the choice when the
    /// handshake completes, and data flows.
    @Test func negotiatedOverSockets() throws {
        let harness = LoopHarness()
        let serverContext = try server(["http/1.1"])
        let clientContext = try client(["h2", "http/1.1"])
        let reply = BulkClient(sendTotal: 10_000, expectReceive: 10_000)
        var serverSaw: String?
        var clientSaw: String?
        try harness.run(deadlineMilliseconds: 10_000) {
            let listener = try TCPListener(loop: harness.loop, host: "127.0.0.1", port: 0) { tcp in
                let tls = try! TLSConnection(transport: tcp, context: serverContext)
                tls.onHandshakeComplete = { serverSaw = $0.engine.negotiatedProtocol }
                harness.track(tls)
                tls.start(handler: EchoServer())
            }
            harness.onFinish { listener.close() }
            reply.onDone = { harness.finish() }
            harness.connect(.tls13, port: listener.port, handler: reply, context: clientContext) { stream in
                (stream as? TLSConnection)?.onHandshakeComplete = { clientSaw = $0.engine.negotiatedProtocol }
                reply.pump(stream)
            }
        }
        #expect(reply.received == 10_000)
        #expect(serverSaw == "http/1.1")
        #expect(clientSaw == "http/1.1")
    }
}
