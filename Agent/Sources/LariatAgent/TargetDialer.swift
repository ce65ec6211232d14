import Logging
import LariatProtocol
import LariatRuntime
import LariatTunnel

/// Answers the hub's OPENs: parses the target, applies the policy, resolves, dials, then
/// accepts and bridges the stream, or refuses it with a code and a message naming the cause.
final class TargetDialer {
    let loop: UVLoop
    let configuration: AgentConfiguration
    let resolver: Resolver
    let logger: Logger

    init(loop: UVLoop, configuration: AgentConfiguration, resolver: Resolver, logger: Logger) {
        self.loop = loop
        self.configuration = configuration
        self.resolver = resolver
        self.logger = logger
    }

    /// Where a target string leads: host and port to dial, and whether the operator configured
    /// it (the Kubernetes API is preauthorized: only `--deny` applies to it).
    enum Resolution: Equatable {
        case dial(host: TargetHost, port: Int, preauthorized: Bool)
        /// `k8s-proxy`: dialled as `k8s-api` is (preauthorized), then TLS and the agent's credential.
        case kubernetesProxy(host: TargetHost, port: Int)
        /// Served inside the agent: the hub's throughput probe (`lariat-hub bench`).
        case synthetic(SyntheticStream.Mode)
        case refuse(ErrorCode, String)
    }

    /// Parses and checks a target before any policy rule: a target with a control character
    /// anywhere, or a host that is not a DNS name or an address literal, is TARGET_FORBIDDEN
    /// (see `TargetHost`); messages show the target escaped.
    static func resolve(target: String, kubernetesAPI: HostPort?, serviceDomain: String,
                        kubernetesProxy: KubernetesProxySettings = KubernetesProxySettings()) -> Resolution {
        let shown = target.logQuoted
        if target.unicodeScalars.contains(where: { $0.value < 0x20 || (0x7f...0x9f).contains($0.value) }) {
            return .refuse(.targetForbidden, "target \(shown) contains a control character: refused before any rule")
        }
        guard let parsed = TunnelTarget(target) else {
            return .refuse(.targetUnknown, "unknown target \(shown): this agent dials tcp:HOST:PORT, svc:NAMESPACE/NAME:PORT, k8s-api and k8s-proxy")
        }
        func dial(_ host: String, _ port: Int, preauthorized: Bool) -> Resolution {
            switch TargetHost.parse(host) {
            case .success(let checked): .dial(host: checked, port: port, preauthorized: preauthorized)
            case .failure(let error): .refuse(.targetForbidden, "target \(shown): bad host: \(error)")
            }
        }
        switch parsed {
        case .tcp(let host, let port):
            return dial(host, port, preauthorized: false)
        case .kubernetesAPI:
            guard let api = kubernetesAPI else {
                return .refuse(.targetUnknown, "no Kubernetes API server configured on this agent (set --k8s-api or run it in a pod)")
            }
            return dial(api.host, api.port, preauthorized: true)
        case .kubernetesProxy:
            if let missing = kubernetesProxy.missingSetting(kubernetesAPI: kubernetesAPI) {
                return .refuse(.targetUnknown, missing)
            }
            let api = kubernetesAPI!
            switch TargetHost.parse(api.host) {
            case .success(let checked): return .kubernetesProxy(host: checked, port: api.port)
            case .failure(let error): return .refuse(.targetForbidden, "target \(shown): bad host: \(error)")
            }
        case .service(let namespace, let name, let port):
            guard Self.isDNSLabel(namespace), Self.isDNSLabel(name) else {
                return .refuse(.targetUnknown, "bad service target \(shown): namespace and name must be DNS labels")
            }
            let domain = serviceDomain.hasPrefix(".") ? String(serviceDomain.dropFirst()) : serviceDomain
            return dial("\(name).\(namespace).\(domain)", port, preauthorized: false)
        case .discard:
            return .synthetic(.discard)
        case .source(let bytes, let json):
            return .synthetic(.source(bytes: bytes, compressible: json))
        }
    }

    static func isDNSLabel(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 63 && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
    }

    func open(_ tunnel: TunnelConnection, stream id: UInt32, target: String) {
        switch Self.resolve(target: target, kubernetesAPI: configuration.kubernetesAPI, serviceDomain: configuration.serviceDomain,
                            kubernetesProxy: configuration.kubernetesProxy) {
        case .refuse(let code, let message):
            refuse(tunnel, id, target, code, message)
        case .synthetic(let mode):
            let stream = SyntheticStream(loop: loop, mode: mode)
            if tunnel.acceptBridged(id, to: stream) == nil { stream.close() }
        case .dial(let host, let port, let preauthorized):
            let attempt = DialAttempt(dialer: self, tunnel: tunnel, id: id, target: target, host: host, port: port,
                                      preauthorized: preauthorized)
            attempt.start()
        case .kubernetesProxy(let host, let port):
            // Read per stream: kubelet rotates the projected token in place.
            let settings = configuration.kubernetesProxy
            let token: String
            switch KubernetesProxySettings.readToken(settings.tokenFile!, maxBytes: settings.maxTokenBytes) {
            case .success(let value): token = value
            case .failure(let error): return refuse(tunnel, id, target, .targetUnreachable, error.description)
            }
            let secure = APIServerTLS(trust: settings.trust!, serverName: configuration.kubernetesAPI!.host, token: token)
            let attempt = DialAttempt(dialer: self, tunnel: tunnel, id: id, target: target, host: host, port: port,
                                      preauthorized: true, secure: secure)
            attempt.start()
        }
    }

    func refuse(_ tunnel: TunnelConnection, _ id: UInt32, _ target: String, _ code: ErrorCode, _ message: String) {
        let shown = target.logQuoted
        if code == .targetForbidden {
            logger.warning("refused stream \(id) to \(shown): \(message)")
        } else {
            logger.info("refused stream \(id) to \(shown): \(code.name): \(message)")
        }
        tunnel.refuse(id, code: code, message: message)
    }

    /// Accepts stream `id` and joins it to `connection`, unless the stream went away while
    /// we dialled (the hub cancelled it, or the tunnel ended): then the socket is closed.
    func accept(_ tunnel: TunnelConnection, _ id: UInt32, _ target: String, _ connection: TCPConnection) {
        guard tunnel.acceptBridged(id, to: connection) != nil else {
            logger.debug("stream \(id) to \(target.logQuoted) was cancelled while dialling")
            connection.close()
            return
        }
        logger.debug("stream \(id) to \(target.logQuoted): connected to \(connection.remoteAddress.map { "\($0)" } ?? "?")")
    }

    /// Accepts a `k8s-proxy` stream over `tls` (handshake done), with the agent's credential
    /// put into every request.
    func acceptKubernetesProxy(_ tunnel: TunnelConnection, _ id: UInt32, _ target: String, _ tls: TLSConnection,
                               token: String, server: String) {
        let stream = APIServerCredentialStream(inner: tls, token: token, settings: configuration.kubernetesProxy,
                                               server: server, logger: logger)
        guard tunnel.acceptBridged(id, to: stream) != nil else {
            logger.debug("stream \(id) to \(target.logQuoted) was cancelled during the TLS handshake")
            tls.close()
            return
        }
        logger.debug("stream \(id) to \(target.logQuoted): TLS to the API server \(server) verified")
    }
}

/// The TLS step of a `k8s-proxy` dial: the cluster CA, the name the API server's certificate
/// must carry (the `--k8s-api` host), and the token read for this stream.
struct APIServerTLS {
    let trust: TLSContext
    let serverName: String
    let token: String
}

/// Watches a TLS handshake to the API server for its failure (success is
/// `TLSConnection.onHandshakeComplete`); nothing is read before the stream is accepted.
private final class HandshakeWatcher: ByteStreamHandler {
    let failed: (String) -> Void

    init(failed: @escaping (String) -> Void) {
        self.failed = failed
    }

    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {}
    func streamDidReadEOF(_ stream: any ByteStream) {}
    func streamDidFail(_ stream: any ByteStream, _ error: StreamError) { failed("\(error)") }
    func streamDidClose(_ stream: any ByteStream) { failed("connection closed during the handshake") }
}

/// One target dial: judge the host, resolve a name and judge every address, try them in
/// order, all within the dial timeout.
private final class DialAttempt {
    let dialer: TargetDialer
    let tunnel: TunnelConnection
    let id: UInt32
    let target: String
    let host: TargetHost
    let port: Int
    let preauthorized: Bool
    /// Set for `k8s-proxy`: TLS to the API server before the stream is accepted.
    let secure: APIServerTLS?
    private var timer: UVTimer?
    private var handshaking: TLSConnection?
    private var done = false
    private var addresses: [IPAddress] = []
    private var next = 0
    private var lastError: UVError?
    private var deadline: UInt64 = 0

    init(dialer: TargetDialer, tunnel: TunnelConnection, id: UInt32, target: String, host: TargetHost, port: Int,
         preauthorized: Bool, secure: APIServerTLS? = nil) {
        self.dialer = dialer
        self.tunnel = tunnel
        self.id = id
        self.target = target
        self.host = host
        self.port = port
        self.preauthorized = preauthorized
        self.secure = secure
    }

    var what: String { "dial tcp \(HostPort(host: host.description, port: port))" }
    var policy: TargetPolicy { dialer.configuration.policy }

    func start() {
        let timeout = dialer.configuration.dialTimeoutMilliseconds
        deadline = dialer.loop.now + timeout * 1_000_000
        let timer = UVTimer(loop: dialer.loop)
        self.timer = timer
        // The timer's callback keeps this attempt alive until it finishes.
        timer.start(afterMilliseconds: timeout) { [self] in
            let phase = addresses.isEmpty ? "lookup \(host)" : handshaking != nil ? "TLS handshake" : "connect"
            fail(.targetTimeout, "\(what): \(phase): ETIMEDOUT (timed out after \(timeout) ms)")
        }
        switch (host, policy.decideBeforeLookup(host, port: port, preauthorized: preauthorized)) {
        case (_, .denied(let reason)?):
            fail(.targetForbidden, "\(what): forbidden by agent policy: \(reason)")
        case (.address(let address), _):
            addresses = [address]
            tryNext()
        case (.name(let name), _):
            dialer.resolver.resolve(name) { [self] result in
                guard !done else { return }
                switch result {
                case .failure(let error):
                    fail(.targetUnreachable, "\(what): \(error)")
                case .success(let all):
                    if case .denied(let reason) = policy.decide(name: name, addresses: all, port: port, preauthorized: preauthorized) {
                        fail(.targetForbidden, "\(what): forbidden by agent policy: \(reason)")
                        return
                    }
                    addresses = all
                    tryNext()
                }
            }
        }
    }

    private func tryNext() {
        guard !done else { return }
        guard next < addresses.count else {
            let error = lastError!
            let code: ErrorCode = error.name == "ETIMEDOUT" ? .targetTimeout : .targetUnreachable
            fail(code, "\(what): \(error.name) (\(error.message))")
            return
        }
        let address = addresses[next]
        next += 1
        let now = dialer.loop.now
        let remaining = deadline > now ? max(1, (deadline - now) / 1_000_000) : 1
        TCPConnection.connect(loop: dialer.loop, host: address.description, port: port, timeoutMilliseconds: remaining) { [self] result in
            switch result {
            case .success(let connection):
                if done { connection.close(); return }
                if let secure { return handshake(connection, secure) }
                finish()
                dialer.accept(tunnel, id, target, connection)
            case .failure(let error):
                lastError = error
                tryNext()
            }
        }
    }

    /// TLS to the API server, verified, finished before the stream is accepted: a refused
    /// certificate is an OPEN_FAIL naming it, not a stream that dies at its first request.
    private func handshake(_ connection: TCPConnection, _ secure: APIServerTLS) {
        let server = "\(HostPort(host: host.description, port: port))"
        let tls: TLSConnection
        do {
            tls = try TLSConnection(transport: connection, context: secure.trust, serverName: secure.serverName)
        } catch {
            connection.close()
            return fail(.targetUnreachable, "TLS to the API server \(server) failed: \(error)")
        }
        handshaking = tls
        tls.onHandshakeComplete = { [self] tls in
            guard !done else { return tls.close() }
            handshaking = nil
            finish()
            dialer.acceptKubernetesProxy(tunnel, id, target, tls, token: secure.token, server: server)
        }
        tls.start(handler: HandshakeWatcher { [self] reason in
            fail(.targetUnreachable, "TLS to the API server \(server) failed: \(reason)")
        })
    }

    private func fail(_ code: ErrorCode, _ message: String) {
        guard !done else { return }
        finish()
        if let tls = handshaking {
            handshaking = nil
            tls.onHandshakeComplete = nil
            tls.close()
        }
        dialer.refuse(tunnel, id, target, code, message)
    }

    private func finish() {
        done = true
        timer?.close()
        timer = nil
    }
}
