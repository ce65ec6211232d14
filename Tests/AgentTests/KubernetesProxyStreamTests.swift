#if canImport(Glibc)
import Glibc
#endif
@testable import LariatAgent
import LariatHTTP
import LariatProtocol
import LariatRuntime
import LariatTunnel
import Logging
import Testing

/// A TLS stand-in for the API server: answers each request with the Authorization and
/// Impersonate-User it received; an upgrade request gets 101 and the stream then echoes.
private final class FakeAPIServer: ByteStreamHandler {
    private var parser = HTTPRequestParser()
    private var upgraded = false

    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        if upgraded { return stream.write(bytes) }
        var rest = bytes
        while let event = try? parser.next(from: &rest) {
            switch event {
            case .head(let head):
                let auth = head.headers["Authorization"].joined(separator: "|")
                if head.isUpgradeRequest {
                    stream.write(Array("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n".utf8))
                } else {
                    let user = head.headers.first(name: "Impersonate-User") ?? "-"
                    stream.write(HTTPResponseHead.simpleResponse(status: 200, text: "auth=\(auth) user=\(user)"))
                }
            case .upgrade(let leftover):
                upgraded = true
                if leftover.count > 0 { stream.write(leftover) }
                return
            case .body, .end:
                continue
            }
        }
    }

    func streamDidReadEOF(_ stream: any ByteStream) { stream.shutdownWrite() }
    func streamDidClose(_ stream: any ByteStream) {}
}

/// One end of the in-process tunnel; the agent end hands OPENs to a real `TargetDialer`.
private final class TunnelEnd: TunnelConnectionDelegate {
    var tunnel: TunnelConnection?
    var onEstablished: () -> Void = {}
    var dialer: TargetDialer?

    func tunnel(_ tunnel: TunnelConnection, authenticate hello: Hello) -> HandshakeDecision {
        .accept(sessionID: "test/\(hello.agentID)")
    }
    func tunnelEstablished(_ tunnel: TunnelConnection) { onEstablished() }
    func tunnel(_ tunnel: TunnelConnection, openRequested stream: UInt32, target: String, streamClass: StreamClass) {
        dialer?.open(tunnel, stream: stream, target: target)
    }
    func tunnelEnded(_ tunnel: TunnelConnection, _ end: SessionEnd) {}
}

/// What one user connection through the hub end got.
struct UserOutcome {
    var received = ""
    var gotEOF = false
    var openFailure: (code: ErrorCode, message: String)?
}

/// A user connection: collects the answer until `isComplete` or the end.
private final class UserClient: ByteStreamHandler {
    var outcome = UserOutcome()
    let isComplete: (String) -> Bool
    var onReceive: (any ByteStream, String) -> Void = { _, _ in }
    var onDone: () -> Void = {}
    private var done = false

    init(isComplete: @escaping (String) -> Bool) {
        self.isComplete = isComplete
    }

    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        outcome.received += String(decoding: bytes, as: UTF8.self)
        onReceive(stream, outcome.received)
        if isComplete(outcome.received) { stream.close() }
    }
    func streamDidReadEOF(_ stream: any ByteStream) {
        outcome.gotEOF = true
        stream.close()
    }
    func streamDidClose(_ stream: any ByteStream) {
        guard !done else { return }
        done = true
        onDone()
    }
}

/// One user connection of a scenario: prepare (e.g. rotate the token), send, wait for the answer.
struct ProxyStep {
    var before: () -> Void = {}
    var request: String
    /// Sent once the answer so far satisfies the predicate (after an upgrade, say).
    var followUp: (after: (String) -> Bool, bytes: String)?
    var isComplete: (String) -> Bool
}

/// A temporary folder removed at deinit.
final class TemporaryFolder {
    let path: String
    init() {
        var template = Array("/tmp/lariat-k8s-proxy-XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }
    func write(_ name: String, _ text: String) -> String {
        let file = "\(path)/\(name)"
        try! FileIO.writeAtomically(file, text, mode: 0o600)
        return file
    }
    deinit {
        if let dir = opendir(path) {
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name != "." && name != ".." { unlink("\(path)/\(name)") }
            }
            closedir(dir)
        }
        rmdir(path)
    }
}

/// Hub end → tunnel → agent end (real `TargetDialer`) → TLS API server stand-in, all on one loop.
/// The API server's certificate is issued by `authority`; `configure` gets its port and returns
/// the agent's settings.
private func runThroughTunnel(authority: CertificateAuthority, steps: [ProxyStep],
                              configure: (Int) throws -> AgentConfiguration) throws -> [UserOutcome] {
    let loop = UVLoop(name: "k8s-proxy-test")
    let issued = try authority.issueServerCertificate(commonName: "kube-apiserver")
    let serverContext = try TLSContext.server(certificatePEM: issued.certificatePEM, privateKeyPEM: issued.privateKeyPEM)
    var outcomes: [UserOutcome] = []
    var streams: [any ByteStream] = []
    var listeners: [TCPListener] = []
    let hub = TunnelEnd(), agent = TunnelEnd()

    let apiServer = try TCPListener(loop: loop, port: 0) { tcp in
        let tls = try! TLSConnection(transport: tcp, context: serverContext)
        streams.append(tls)
        tls.start(handler: FakeAPIServer())
    }
    listeners.append(apiServer)
    var configuration = try configure(apiServer.port)
    configuration.dialTimeoutMilliseconds = 5_000

    let finish = {
        for listener in listeners { listener.close() }
        for stream in streams where !stream.isClosed { stream.close() }
        hub.tunnel?.close(reason: "test over")
        agent.tunnel?.close(reason: "test over")
        loop.schedule(afterMilliseconds: 50) { loop.stop() }
    }
    let deadline = loop.schedule(afterMilliseconds: 20_000) { finish() }

    var pendingFailure: (ErrorCode, String)?
    let users = try TCPListener(loop: loop, port: 0) { tcp in
        streams.append(tcp)
        _ = try? hub.tunnel?.openBridged(target: "k8s-proxy", streamClass: .interactive, connection: tcp) { code, message in
            pendingFailure = (code, message)
        }
    }
    listeners.append(users)

    func runStep(_ index: Int) {
        guard index < steps.count else { return finish() }
        let step = steps[index]
        step.before()
        pendingFailure = nil
        let client = UserClient(isComplete: step.isComplete)
        var followed = false
        client.onReceive = { stream, text in
            if let follow = step.followUp, !followed, follow.after(text) {
                followed = true
                stream.write(Array(follow.bytes.utf8))
            }
        }
        client.onDone = {
            var outcome = client.outcome
            if let failure = pendingFailure { outcome.openFailure = (failure.0, failure.1) }
            outcomes.append(outcome)
            loop.schedule(afterMilliseconds: 0) { runStep(index + 1) }
        }
        TCPConnection.connect(loop: loop, host: "127.0.0.1", port: users.port) { result in
            guard case .success(let tcp) = result else { return finish() }
            streams.append(tcp)
            tcp.start(handler: client)
            tcp.write(Array(step.request.utf8))
        }
    }

    let tunnelListener = try TCPListener(loop: loop, port: 0) { tcp in
        streams.append(tcp)
        hub.tunnel = TunnelConnection(stream: tcp, role: .server, config: SessionConfig(), delegate: hub, label: "hub")
    }
    listeners.append(tunnelListener)
    hub.onEstablished = { runStep(0) }
    var logger = Logger(label: "k8s-proxy-test")
    logger.logLevel = .critical
    agent.dialer = TargetDialer(loop: loop, configuration: configuration, resolver: Resolver(loop: loop), logger: logger)
    TCPConnection.connect(loop: loop, host: "127.0.0.1", port: tunnelListener.port) { result in
        guard case .success(let tcp) = result else { return finish() }
        streams.append(tcp)
        var hello = Hello()
        hello.agentID = "k8s-proxy-test"
        agent.tunnel = TunnelConnection(stream: tcp, role: .client(hello), config: SessionConfig(), delegate: agent, label: "agent")
    }
    loop.run()
    deadline.close()
    loop.close()
    return outcomes
}

private func configuration(apiPort: Int, caFile: String?, tokenFile: String?) throws -> AgentConfiguration {
    var configuration = AgentConfiguration(hub: try HubEndpoint.parse("https://127.0.0.1:1"), token: "t", caChecksum: nil,
                                           cluster: "c", agentID: "a")
    configuration.kubernetesAPI = HostPort(host: "127.0.0.1", port: apiPort)
    configuration.kubernetesProxy.tokenFile = tokenFile
    if let caFile { try configuration.kubernetesProxy.loadCA(from: caFile) }
    return configuration
}

@Suite struct KubernetesProxyStreamTests {
    static func get(as user: String) -> String {
        "GET /api/v1/pods HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer user-token\r\nImpersonate-User: \(user)\r\n\r\n"
    }

    static func answered(_ text: String) -> Bool { text.hasSuffix("user=alice") || text.hasSuffix("user=bob") }

    @Test func theAgentsTokenReachesTheAPIServerAndIsReadForEachStream() throws {
        let folder = TemporaryFolder()
        let authority = try CertificateAuthority.generate(commonName: "Test cluster CA")
        let caFile = folder.write("ca.crt", authority.certificatePEM)
        let tokenFile = folder.write("token", "sa-token-1\n")
        let upgrade = "GET /api/v1/namespaces/d/pods/p/exec HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nAuthorization: Bearer u\r\n\r\n"
        let raw = "raw bytes, Authorization: x\r\n\r\n"
        let outcomes = try runThroughTunnel(authority: authority, steps: [
            ProxyStep(request: Self.get(as: "alice"), isComplete: Self.answered),
            // kubelet rotated the token: the next stream carries the new one.
            ProxyStep(before: { _ = folder.write("token", "sa-token-2") }, request: Self.get(as: "bob"), isComplete: Self.answered),
            ProxyStep(request: upgrade, followUp: (after: { $0.hasSuffix("\r\n\r\n") }, bytes: raw),
                      isComplete: { $0.hasSuffix(raw) }),
        ]) { port in try configuration(apiPort: port, caFile: caFile, tokenFile: tokenFile) }
        try #require(outcomes.count == 3)
        #expect(outcomes[0].openFailure == nil)
        #expect(outcomes[0].received.hasPrefix("HTTP/1.1 200 "))
        #expect(outcomes[0].received.hasSuffix("auth=Bearer sa-token-1 user=alice"), "\(outcomes[0].received)")
        #expect(outcomes[1].received.hasSuffix("auth=Bearer sa-token-2 user=bob"), "\(outcomes[1].received)")
        #expect(outcomes[2].received.hasPrefix("HTTP/1.1 101 "))
        #expect(outcomes[2].received.hasSuffix("\r\n\r\n" + raw), "\(outcomes[2].received)")
    }

    @Test func anAPIServerOutsideTheClusterCAIsRefusedBeforeTheStreamIsAccepted() throws {
        let folder = TemporaryFolder()
        let authority = try CertificateAuthority.generate(commonName: "Test cluster CA")
        let other = try CertificateAuthority.generate(commonName: "Some other CA")
        let caFile = folder.write("ca.crt", other.certificatePEM)
        let tokenFile = folder.write("token", "sa-token")
        var apiPort = 0
        let outcomes = try runThroughTunnel(authority: authority, steps: [
            ProxyStep(request: Self.get(as: "alice"), isComplete: Self.answered),
        ]) { port in
            apiPort = port
            return try configuration(apiPort: port, caFile: caFile, tokenFile: tokenFile)
        }
        try #require(outcomes.count == 1)
        let failure = try #require(outcomes[0].openFailure)
        #expect(failure.code == .targetUnreachable)
        #expect(failure.message.hasPrefix("TLS to the API server 127.0.0.1:\(apiPort) failed: "), "\(failure.message)")
        #expect(failure.message.contains("certificate verification failed"), "\(failure.message)")
        #expect(outcomes[0].received.isEmpty)
    }

    @Test func aMissingTokenFileRefusesTheOpen() throws {
        let folder = TemporaryFolder()
        let authority = try CertificateAuthority.generate(commonName: "Test cluster CA")
        let caFile = folder.write("ca.crt", authority.certificatePEM)
        let outcomes = try runThroughTunnel(authority: authority, steps: [
            ProxyStep(request: Self.get(as: "alice"), isComplete: Self.answered),
            ProxyStep(before: { _ = folder.write("token", " \n") }, request: Self.get(as: "alice"), isComplete: Self.answered),
        ]) { port in try configuration(apiPort: port, caFile: caFile, tokenFile: folder.path + "/token") }
        try #require(outcomes.count == 2)
        #expect(outcomes[0].openFailure?.code == .targetUnreachable)
        #expect(outcomes[0].openFailure?.message.contains("does not exist") == true, "\(String(describing: outcomes[0].openFailure))")
        #expect(outcomes[1].openFailure?.code == .targetUnreachable)
        #expect(outcomes[1].openFailure?.message.contains("is empty") == true)
    }

    @Test func anOversizedHeadIsAnswered431AndTheStreamEnds() throws {
        let folder = TemporaryFolder()
        let authority = try CertificateAuthority.generate(commonName: "Test cluster CA")
        let caFile = folder.write("ca.crt", authority.certificatePEM)
        let tokenFile = folder.write("token", "sa-token")
        let huge = "GET / HTTP/1.1\r\nX-Big: \(String(repeating: "a", count: 70_000))\r\n\r\n"
        let outcomes = try runThroughTunnel(authority: authority, steps: [
            ProxyStep(request: huge, isComplete: { _ in false }),
        ]) { port in try configuration(apiPort: port, caFile: caFile, tokenFile: tokenFile) }
        try #require(outcomes.count == 1)
        let text = outcomes[0].received
        // The refusal, then the end of the stream.
        #expect(text.hasPrefix("HTTP/1.1 431 "), "\(text)")
        #expect(text.hasSuffix("request head larger than 65536 bytes\n"), "\(text)")
        #expect(outcomes[0].gotEOF)
    }

    @Test func unconfiguredProxyIsRefusedNamingTheMissingFlag() throws {
        let api = HostPort(host: "10.43.0.1", port: 443)
        let refusal = TargetDialer.resolve(target: "k8s-proxy", kubernetesAPI: api, serviceDomain: "svc.cluster.local")
        guard case .refuse(let code, let message) = refusal else { Issue.record("\(refusal)"); return }
        #expect(code == .targetUnknown)
        #expect(message.contains("--k8s-ca-file") && message.contains("--k8s-token-file"), "\(message)")

        let folder = TemporaryFolder()
        let authority = try CertificateAuthority.generate()
        var settings = KubernetesProxySettings()
        try settings.loadCA(from: folder.write("ca.crt", authority.certificatePEM))
        settings.tokenFile = "/nonexistent"
        #expect(TargetDialer.resolve(target: "k8s-proxy", kubernetesAPI: api, serviceDomain: "x", kubernetesProxy: settings)
            == .kubernetesProxy(host: .address(IPAddress("10.43.0.1")!), port: 443))
        guard case .refuse(.targetUnknown, let noAPI) = TargetDialer.resolve(target: "k8s-proxy", kubernetesAPI: nil, serviceDomain: "x",
                                                                          kubernetesProxy: settings) else {
            Issue.record("k8s-proxy without an API server was not refused"); return
        }
        #expect(noAPI.contains("--k8s-api") && !noAPI.contains("--k8s-ca-file"))
        #expect(TunnelTarget("k8s-proxy") == .kubernetesProxy)
        #expect(TunnelTarget.kubernetesProxy.description == "k8s-proxy")
    }

    @Test func aCAFileThatHoldsNoCertificateFailsAtStart() {
        let folder = TemporaryFolder()
        var settings = KubernetesProxySettings()
        #expect(throws: ConfigurationError.self) { try settings.loadCA(from: folder.write("ca.crt", "not a certificate")) }
        #expect(throws: ConfigurationError.self) { try settings.loadCA(from: folder.path + "/missing") }
    }
}
