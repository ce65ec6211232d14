import Logging
import LariatHTTP
import LariatProtocol
import LariatRuntime
import LariatTunnel

/// The agent: keeps one tunnel to the hub up (pinning the hub's CA first), reconnects with
/// exponential back-off and full jitter, moves to a new connection as soon as the hub
/// announces it is draining, and dials targets for the hub. Loop-confined; create it and
/// call `start()` on the loop thread (or before the loop runs).
public final class Agent: TunnelConnectionDelegate {
    public let loop: UVLoop
    public let configuration: AgentConfiguration
    let logger: Logger
    private let dialer: TargetDialer

    private var backoff: Backoff
    /// The CA the hub proved with its pin; reused for reconnects, dropped when the hub's
    /// certificate stops verifying against it (CA rotation), so it is fetched again.
    private var trustedContext: TLSContext?
    private var pinningContext: TLSContext?
    private var pendingRequest: HubRequest?
    private var retryTimer: UVTimer?
    /// The tunnel that carries new streams (nil while connecting).
    private var current: TunnelConnection?
    /// Every live tunnel: the current one plus old ones still draining.
    private var tunnels: [ObjectIdentifier: TunnelInfo] = [:]
    private var shuttingDown = false
    private var shutdownTimer: UVTimer?
    private var stopped = false
    private var attempts = 0
    /// This agent's own credential (`ac-…:<secret>`), from registration or `--credential-file`.
    /// Once set it is the only thing HELLO carries: never the registration token again.
    private var credential: String?
    /// Set when the hub closed the tunnel because the credential was revoked.
    private var credentialRevoked = false

    private struct TunnelInfo {
        let tunnel: TunnelConnection
        var connectedAt: UInt64
        var establishedAt: UInt64?
        var goAwayReceived = false
    }

    /// Called once after `shutdown` finished (or gave up waiting): stop the loop there.
    public var onStopped: (() -> Void)?

    public init(loop: UVLoop, configuration: AgentConfiguration, logger: Logger) {
        self.loop = loop
        self.configuration = configuration
        self.logger = logger
        backoff = Backoff(baseMillis: configuration.backoffBaseMilliseconds, capMillis: configuration.backoffCapMilliseconds)
        dialer = TargetDialer(loop: loop, configuration: configuration, resolver: Resolver(loop: loop), logger: logger)
    }

    public var isConnected: Bool { current.map { $0.session.state == .established } ?? false }

    public func start() {
        logger.info("lariat-agent \(AgentVersion.version) starting", metadata: [
            "hub": "\(configuration.hub)", "cluster": "\(configuration.cluster)", "agent": "\(configuration.agentID)",
            "role": "\(configuration.role == .clusterAgent ? "cluster" : "node")",
        ])
        if let proxy = configuration.proxy.proxy(forHost: configuration.hub.host, port: configuration.hub.port) {
            logger.info("reaching the hub through proxy \(proxy)")
        }
        logger.info("target policy: \(configuration.policy)")
        if let api = configuration.kubernetesAPI { logger.info("k8s-api streams go to \(api)") }
        let proxy = configuration.kubernetesProxy
        if let missing = proxy.missingSetting(kubernetesAPI: configuration.kubernetesAPI) {
            logger.info("\(missing)")
        } else if let api = configuration.kubernetesAPI, let token = proxy.tokenFile, let ca = proxy.caFile {
            logger.info("k8s-proxy streams go to \(api) over TLS verified with \(ca), authenticated with the token in \(token)")
        }
        if configuration.insecureSkipCACheck {
            logger.warning("--insecure-skip-ca-check: the hub's CA is NOT verified against a checksum; anyone able to intercept the connection can impersonate the hub")
        }
        if let path = configuration.credentialFile {
            do throws(ConfigurationError) {
                credential = try configuration.storedCredential()
                if let credential { logger.info("using agent credential \(Self.credentialName(credential)) from \(path)") }
            } catch {
                logger.error("\(error)")
            }
        }
        if configuration.registers && credential == nil {
            logger.info("registering with the hub before connecting (the registration token is traded for this agent's own credential)")
        }
        connect()
    }

    /// The public part of a credential (`ac-xxxxxxxx`), for logs.
    static func credentialName(_ credential: String) -> String {
        String(credential.prefix { $0 != ":" })
    }

    /// What HELLO carries: the agent's own credential once it has one.
    private var helloToken: String { credential ?? configuration.token }

    // MARK: Connection cycle

    private func connect() {
        guard !shuttingDown, pendingRequest == nil else { return }
        retryTimer?.close()
        retryTimer = nil
        attempts += 1
        if let trustedContext {
            proceed(trustedContext)
        } else {
            fetchCA()
        }
    }

    /// With the hub's CA trusted: register first if this agent has no credential yet, then open the tunnel.
    private func proceed(_ context: TLSContext) {
        if configuration.registers && credential == nil {
            register(context)
        } else {
            openTunnel(context)
        }
    }

    /// Errors that retrying within milliseconds cannot fix (refused credentials, a CA that
    /// does not match the pin) wait at least this long, so the log does not flood.
    static let configurationErrorDelayMilliseconds: UInt64 = 5_000

    private func scheduleReconnect(after cause: String, atLeast minimum: UInt64 = 0) {
        guard !shuttingDown, retryTimer == nil, pendingRequest == nil, current == nil else { return }
        var delay = backoff.next()
        if delay < minimum {
            // Still jittered, so a fleet refused at once does not retry in step.
            delay = minimum + UInt64.random(in: 0...(minimum / 2))
        }
        logger.info("reconnecting in \(delay) ms", metadata: ["attempt": "\(backoff.attempt)", "cause": "\(cause)"])
        let timer = UVTimer(loop: loop)
        retryTimer = timer
        timer.start(afterMilliseconds: delay) { [unowned self] in
            self.retryTimer?.close()
            self.retryTimer = nil
            self.connect()
        }
    }

    private var hubProxy: ProxyServer? { configuration.proxy.proxy(forHost: configuration.hub.host, port: configuration.hub.port) }

    /// Rancher-style pinning: fetch the CA over an unverified connection and trust it only if
    /// its SHA-256 matches the checksum the operator was given out of band.
    private func fetchCA() {
        let context: TLSContext
        do throws(TLSError) {
            if pinningContext == nil { pinningContext = try TLSContext.insecureClientForPinning() }
            context = pinningContext!
        } catch {
            logger.error("cannot create a TLS context: \(error)")
            scheduleReconnect(after: "TLS configuration")
            return
        }
        var headers: HTTPHeaders = ["Host": configuration.hub.authority, "User-Agent": AgentVersion.software, "Accept": "application/x-pem-file"]
        if let pin = configuration.caChecksum { headers.add(name: "X-Lariat-CA-Checksum", value: pin) }
        let request = HTTPRequestHead(method: "GET", target: configuration.hub.path("/cacerts"), headers: headers)
        logger.debug("fetching the hub's CA from \(configuration.hub)\(configuration.hub.path("/cacerts") == "/cacerts" ? "/cacerts" : "")")
        sendToHub(request, context: context) { [unowned self] outcome in self.caFetched(outcome) }
    }

    private func caFetched(_ outcome: HubRequest.Outcome) {
        let url = "\(configuration.hub)/cacerts"
        switch outcome {
        case .failed(.cancelled):
            return
        case .failed(let error):
            logger.error("cannot fetch the hub's CA from \(url): \(error)")
            scheduleReconnect(after: "CA fetch failed")
        case .upgraded(_, let stream, _):
            stream.close()
            logger.error("cannot fetch the hub's CA from \(url): unexpected 101 response")
            scheduleReconnect(after: "CA fetch failed")
        case .response(let head, let body):
            guard head.status == 200 else {
                logger.error("cannot fetch the hub's CA from \(url): \(head.status) \(head.reason)\(body.isEmpty ? "" : ": " + printableBody(body))")
                scheduleReconnect(after: "CA fetch failed")
                return
            }
            let actual = Digest.sha256Hex(body)
            if let pin = configuration.caChecksum, actual != pin {
                logger.error("CA checksum mismatch: the hub at \(configuration.hub) presents a CA with sha256 \(actual), but --ca-checksum is \(pin); not connecting (is the checksum current, or is something intercepting the connection?)")
                scheduleReconnect(after: "CA checksum mismatch", atLeast: Self.configurationErrorDelayMilliseconds)
                return
            }
            do throws(TLSError) {
                let context = try TLSContext.client(trustedCAPEM: String(decoding: body, as: UTF8.self), verifyHostname: true)
                trustedContext = context
                logger.info(configuration.caChecksum == nil
                            ? "trusting the hub's CA without a checksum check (sha256 \(actual))"
                            : "hub CA verified (sha256 \(actual))")
                guard !shuttingDown else { return }
                proceed(context)
            } catch {
                logger.error("\(HubDialError.badCA(error.description))")
                scheduleReconnect(after: "unusable CA")
            }
        }
    }

    // MARK: Registration

    private func register(_ context: TLSContext) {
        let body = AgentRegistration.body(cluster: configuration.cluster, agentID: configuration.agentID,
                                          role: configuration.role, token: configuration.token)
        var headers: HTTPHeaders = ["Host": configuration.hub.authority, "User-Agent": AgentVersion.software,
                                    "Accept": "application/json", "Content-Type": "application/json"]
        headers.add(name: "Content-Length", value: String(body.count))
        let request = HTTPRequestHead(method: "POST", target: configuration.hub.path(AgentRegistration.path), headers: headers)
        sendToHub(request, body: body, context: context) { [unowned self] outcome in
            self.registrationFinished(outcome, context: context)
        }
    }

    private func registrationFinished(_ outcome: HubRequest.Outcome, context: TLSContext) {
        switch outcome {
        case .failed(.cancelled):
            return
        case .failed(let error):
            if error.isCertificateVerification { trustedContext = nil }
            logger.error("cannot register with hub \(configuration.hub): \(error)")
            scheduleReconnect(after: "registration failed")
        case .upgraded(_, let stream, _):
            stream.close()
            logger.error("cannot register with hub \(configuration.hub): unexpected 101 response")
            scheduleReconnect(after: "registration failed")
        case .response(let head, let body):
            switch AgentRegistration.outcome(status: head.status, body: body) {
            case .issued(let name, let issued):
                credential = issued
                logger.info("registered with the hub as agent credential \(name)", metadata: [
                    "cluster": "\(configuration.cluster)", "agent": "\(configuration.agentID)",
                ])
                if let path = configuration.credentialFile {
                    do throws(FileError) {
                        try AgentRegistration.saveCredential(issued, to: path)
                    } catch {
                        logger.error("cannot keep the agent credential in \(path): \(error); the agent registers again at its next start")
                    }
                }
                guard !shuttingDown else { return }
                openTunnel(context)
            case .refused(let why):
                logger.error("hub refused to register this agent: \(why)", metadata: [
                    "cluster": "\(configuration.cluster)", "agent": "\(configuration.agentID)",
                ])
                scheduleReconnect(after: "registration refused", atLeast: Self.configurationErrorDelayMilliseconds)
            case .failed(let why):
                logger.error("cannot register with hub \(configuration.hub): \(why)")
                scheduleReconnect(after: "registration failed")
            }
        }
    }

    // MARK: Tunnel

    private func openTunnel(_ context: TLSContext) {
        let key = WebSocketHandshake.makeClientKey()
        let headers: HTTPHeaders = [
            "X-Lariat-Cluster": configuration.cluster,
            "X-Lariat-Agent": configuration.agentID,
            "User-Agent": AgentVersion.software,
        ]
        let request = WebSocketHandshake.makeClientRequest(target: configuration.hub.path("/v1/connect"),
                                                           host: configuration.hub.authority, key: key, headers: headers)
        sendToHub(request, isUpgrade: true, context: context) { [unowned self] outcome in
            self.upgradeFinished(outcome, key: key)
        }
    }

    /// One request to the hub (through the proxy, if any), held as the pending request until
    /// its outcome arrives.
    private func sendToHub(_ request: HTTPRequestHead, body: [UInt8] = [], isUpgrade: Bool = false, context: TLSContext,
                           then: @escaping (HubRequest.Outcome) -> Void) {
        let hubRequest = HubRequest(loop: loop, endpoint: configuration.hub, proxy: hubProxy, context: context,
                                    request: request, body: body, isUpgrade: isUpgrade,
                                    timeoutMilliseconds: configuration.hubTimeoutMilliseconds) { [unowned self] outcome in
            self.pendingRequest = nil
            then(outcome)
        }
        pendingRequest = hubRequest
        hubRequest.start()
    }

    private func upgradeFinished(_ outcome: HubRequest.Outcome, key: String) {
        switch outcome {
        case .failed(.cancelled):
            return
        case .failed(let error):
            if error.isCertificateVerification {
                trustedContext = nil  // the hub's certificate changed: fetch (and pin-check) the CA again
                logger.error("cannot connect to hub \(configuration.hub): \(error); fetching the CA again before the next attempt")
            } else {
                logger.error("cannot connect to hub \(configuration.hub): \(error)")
            }
            scheduleReconnect(after: "connect failed")
        case .response(let head, let body):
            let text = printableBody(body)
            logger.error("hub refused the tunnel: \(head.status) \(head.reason)\(text.isEmpty ? "" : ": " + text)", metadata: ["hub": "\(configuration.hub)"])
            // A throttled or overloaded hub says when to come back (429/503 with Retry-After, seconds).
            let retryAfter = head.headers.first(name: "Retry-After").flatMap { UInt64($0) }.map { min($0, 3600) * 1000 } ?? 0
            scheduleReconnect(after: "upgrade refused (\(head.status))", atLeast: retryAfter)
        case .upgraded(let head, let stream, let leftover):
            do throws(WebSocketHandshakeError) {
                try WebSocketHandshake.validateServerResponse(head, clientKey: key)
            } catch {
                stream.close()
                logger.error("cannot connect to hub \(configuration.hub): \(HubDialError.webSocket(error))")
                scheduleReconnect(after: "bad upgrade response")
                return
            }
            guard !shuttingDown else { stream.close(); return }
            logger.info("connected to hub \(configuration.hub)")
            var hello = Hello()
            hello.agentID = configuration.agentID
            hello.clusterID = configuration.cluster
            hello.token = helloToken
            hello.role = configuration.role
            hello.software = AgentVersion.software
            let tunnel = TunnelConnection(stream: stream, role: .client(hello), config: configuration.session,
                                          delegate: self, label: "agent \(configuration.cluster)/\(configuration.agentID)",
                                          leftover: leftover)
            // The tunnel may have ended inside its initializer (a refusal in the leftover bytes).
            if tunnel.session.state != .ended {
                current = tunnel
                tunnels[ObjectIdentifier(tunnel)] = TunnelInfo(tunnel: tunnel, connectedAt: loop.now)
            } else if current == nil {
                scheduleReconnect(after: "session ended")
            }
        }
    }

    // MARK: TunnelConnectionDelegate

    public func tunnelEstablished(_ tunnel: TunnelConnection) {
        tunnels[ObjectIdentifier(tunnel)]?.establishedAt = loop.now
        let welcome = tunnel.session.welcome
        logger.info("session established", metadata: [
            "session": "\(welcome?.sessionID ?? "?")", "version": "\(welcome?.version ?? 0)",
            "hub": "\(configuration.hub)", "hubSoftware": "\(welcome?.software ?? "")",
        ])
        attempts = 0
    }

    public func tunnel(_ tunnel: TunnelConnection, openRequested stream: UInt32, target: String, streamClass: StreamClass) {
        guard !shuttingDown else {
            tunnel.session.refuse(stream, code: .refused, message: "agent shutting down")
            return
        }
        dialer.open(tunnel, stream: stream, target: target)
    }

    public func tunnel(_ tunnel: TunnelConnection, goAwayReceived code: ErrorCode, reason: String) {
        let id = ObjectIdentifier(tunnel)
        tunnels[id]?.goAwayReceived = true
        let open = tunnel.bridgeCount
        logger.notice("hub is draining this session (GOAWAY \(code.name)\(reason.isEmpty ? "" : ": " + reason)); \(open) stream(s) finish on it while a new connection is opened")
        guard tunnel === current else { return }
        current = nil
        guard !shuttingDown else { return }
        // Move service at once (to another replica, or the restarted hub) unless this
        // session was short-lived: a hub that drains every connection must not cause a storm.
        if let info = tunnels[id], let established = info.establishedAt,
           loop.now - established >= configuration.stableSessionMilliseconds * 1_000_000 {
            backoff.reset()
            connect()
        } else {
            scheduleReconnect(after: "hub draining")
        }
    }

    public func tunnelEnded(_ tunnel: TunnelConnection, _ end: SessionEnd) {
        let id = ObjectIdentifier(tunnel)
        let info = tunnels.removeValue(forKey: id)
        let wasCurrent = tunnel === current
        if wasCurrent { current = nil }
        let lifetime = info.flatMap { i in i.establishedAt.map { loop.now - $0 } }
        let lifetimeText = lifetime.map { " after \(Self.formatDuration(nanos: $0))" } ?? ""
        switch end {
        case .remoteError(.authenticationFailed, let reason):
            logger.error("hub refused this agent: AUTHENTICATION_FAILED: \(reason)", metadata: [
                "cluster": "\(configuration.cluster)", "agent": "\(configuration.agentID)",
            ])
            if let credential {
                let name = Self.credentialName(credential)
                if reason.contains("revoked") || credentialRevoked {
                    credentialRevoked = true
                    logger.error("this agent's credential \(name) was revoked at the hub: the agent stays disconnected and does not register again with the cluster's registration token (an administrator deletes the revoked credential to let this agent id register again)")
                } else {
                    logger.error("the hub refused this agent's credential \(name); the agent keeps it and does not fall back to the registration token (restart the agent to register again)")
                }
            }
        case .remoteError(let code, let reason) where code == .unsupportedVersion:
            logger.error("hub refused this agent: \(code.name): \(reason) (upgrade lariat-agent?)")
        case .closed where shuttingDown || info?.goAwayReceived == true:
            logger.info("session ended\(lifetimeText): \(end)")
        default:
            logger.warning("session ended\(lifetimeText): \(end)")
        }
        if shuttingDown {
            if tunnels.isEmpty { finishShutdown() }
            return
        }
        guard wasCurrent || (current == nil && pendingRequest == nil && retryTimer == nil) else { return }
        if let lifetime, lifetime >= configuration.stableSessionMilliseconds * 1_000_000 { backoff.reset() }
        if case .remoteError(let code, _) = end, code == .authenticationFailed || code == .unsupportedVersion {
            scheduleReconnect(after: "refused by the hub", atLeast: Self.configurationErrorDelayMilliseconds)
        } else {
            scheduleReconnect(after: "session ended")
        }
    }

    static func formatDuration(nanos: UInt64) -> String {
        let ms = nanos / 1_000_000
        if ms < 10_000 { return "\(ms) ms" }
        let s = ms / 1000
        if s < 3600 { return "\(s / 60)m\(s % 60)s" }
        return "\(s / 3600)h\((s % 3600) / 60)m"
    }

    // MARK: Shutdown

    /// Graceful stop: no new connections, GOAWAY on every tunnel, open streams get up to
    /// `shutdownGraceMilliseconds` to finish; then `onStopped`.
    public func shutdown(reason: String = "agent shutting down") {
        guard !shuttingDown else { return }
        shuttingDown = true
        retryTimer?.close()
        retryTimer = nil
        pendingRequest?.cancel()
        pendingRequest = nil
        let streams = tunnels.values.reduce(0) { $0 + $1.tunnel.bridgeCount }
        logger.info("shutting down: draining \(tunnels.count) session(s) with \(streams) open stream(s), waiting up to \(configuration.shutdownGraceMilliseconds) ms")
        for info in tunnels.values {
            switch info.tunnel.session.state {
            case .established, .draining: info.tunnel.drain(reason: reason)
            default: info.tunnel.close(code: .goingAway, reason: reason)
            }
        }
        if tunnels.isEmpty { finishShutdown(); return }
        let timer = UVTimer(loop: loop)
        shutdownTimer = timer
        timer.start(afterMilliseconds: configuration.shutdownGraceMilliseconds) { [unowned self] in
            let left = self.tunnels.values.reduce(0) { $0 + $1.tunnel.bridgeCount }
            self.logger.warning("shutdown grace period over: closing \(left) stream(s) still open")
            for info in self.tunnels.values { info.tunnel.close(code: .goingAway, reason: reason) }
            self.finishShutdown()
        }
    }

    private func finishShutdown() {
        guard !stopped else { return }
        stopped = true
        shutdownTimer?.close()
        shutdownTimer = nil
        // Let the final GOAWAY / close frames reach the socket before the loop stops.
        loop.schedule(afterMilliseconds: 200) { [unowned self] in
            self.logger.info("stopped")
            self.onStopped?()
        }
    }
}
