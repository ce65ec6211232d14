import Testing
@testable import LariatRuntime

/// Records how a TLS client connection ended.
final class FailureRecorder: ByteStreamHandler {
    private(set) var error: StreamError?
    private(set) var closed = 0
    var onDone: () -> Void = {}
    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {}
    func streamDidReadEOF(_ stream: any ByteStream) { onDone() }
    func streamDidFail(_ stream: any ByteStream, _ error: StreamError) { self.error = error }
    func streamDidClose(_ stream: any ByteStream) {
        closed += 1
        onDone()
    }
}

@Suite struct TLSTests {
    private func tlsError(_ error: StreamError?) -> TLSError? {
        if case .tls(let error) = error { return error }
        return nil
    }

    /// Runs a TLS client with `context`/`serverName` against the fixture server; returns how it failed.
    private func runFailingClient(context: TLSContext, serverName: String) throws -> (FailureRecorder, LoopHarness) {
        let harness = LoopHarness()
        let client = FailureRecorder()
        try harness.run(deadlineMilliseconds: 10_000) {
            let listener = try harness.listen(.tls13) { EchoServer() }
            client.onDone = { harness.finish() }
            harness.connect(.tls13, port: listener.port, handler: client, context: context, serverName: serverName) {
                $0.write(Array("hello".utf8))
            }
        }
        return (client, harness)
    }

    @Test func clientTrustingAnotherCAFailsVerification() throws {
        let otherCA = try CertificateAuthority.generate(commonName: "Some Other CA")
        let context = try TLSContext.client(trustedCAPEM: otherCA.certificatePEM)
        let (client, harness) = try runFailingClient(context: context, serverName: "127.0.0.1")
        #expect(!harness.timedOut)
        let error = try #require(tlsError(client.error), "expected a TLS error, got \(String(describing: client.error))")
        #expect(error.kind == .certificateVerification)
        #expect(error.verifyCode != nil)
        #expect(error.message.contains("certificate verification failed"))
        #expect(error.message.contains("local issuer") || error.message.contains("self-signed"), "\(error)")
        #expect(client.closed == 1)
    }

    @Test func wrongHostNameFailsVerification() throws {
        let context = TLSFixture.shared.client13
        let (client, _) = try runFailingClient(context: context, serverName: "not-the-hub.example")
        let error = try #require(tlsError(client.error))
        #expect(error.kind == .certificateVerification)
        #expect(error.message.contains("hostname mismatch"), "\(error)")
    }

    @Test func dnsNameSANVerifies() throws {
        // "hub.test" is a SAN of the fixture certificate; the TCP target is still 127.0.0.1.
        let harness = LoopHarness()
        let client = BulkClient(sendTotal: 100_000, expectReceive: 100_000)
        try harness.run(deadlineMilliseconds: 10_000) {
            let listener = try harness.listen(.tls13) { EchoServer() }
            client.onDone = { harness.finish() }
            harness.connect(.tls13, port: listener.port, handler: client, serverName: "hub.test") { client.pump($0) }
        }
        #expect(client.error == nil, "\(String(describing: client.error))")
        #expect(client.received == 100_000)
    }

    /// Bootstrap flow: an insecure client fetches the chain, the CA is checked against its pin.
    @Test func insecureClientFetchesPinnableCA() throws {
        let harness = LoopHarness()
        let client = FailureRecorder()
        var chain: [String] = []
        try harness.run(deadlineMilliseconds: 10_000) {
            let listener = try harness.listen(.tls13) { EchoServer() }
            let context = try TLSContext.insecureClientForPinning()
            harness.connect(.tls13, port: listener.port, handler: client, context: context) { stream in
                (stream as? TLSConnection)?.onHandshakeComplete = { tls in
                    chain = tls.engine.peerCertificateChainPEM
                    harness.finish()
                }
            }
        }
        #expect(chain.count == 2)
        let pin = TLSFixture.shared.authority.fingerprintSHA256
        #expect(try chain.last.map { try PEM.fingerprintSHA256(certificatePEM: $0) } == pin)
    }

    @Test func engineReportsBadServerKeyMaterial() {
        #expect(throws: TLSError.self) {
            _ = try TLSContext.server(certificatePEM: "not a certificate", privateKeyPEM: "nope")
        }
        let a = try! CertificateAuthority.generate()
        let b = try! CertificateAuthority.generate()
        do {
            _ = try TLSContext.server(certificatePEM: a.certificatePEM, privateKeyPEM: b.privateKeyPEM)
            Issue.record("mismatched key accepted")
        } catch {
            #expect(error.kind == .configuration)
        }
    }
}
