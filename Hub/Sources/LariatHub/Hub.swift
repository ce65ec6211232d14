import Foundation
import Logging
import LariatControl
import LariatProtocol
import LariatRuntime
import LariatTunnel
import Synchronization

/// The hub process: an acceptor loop (the calling thread) that owns the listeners and signal
/// handling, and one worker loop per core that owns TLS, HTTP and the tunnels. Accepted
/// sockets move to a worker by file descriptor before any byte is read, so a connection and
/// everything it touches live on one thread.
public final class Hub {
    public let configuration: HubConfiguration
    public let logger: Logger
    let shared: HubShared
    let workers: [LoopBound<HubWorker>]
    let group: LoopGroup
    let acceptor: UVLoop
    private var listener: TCPListener?
    private var forwardListeners: [PacedForwardListener] = []
    /// The listeners of Forward objects, their named ports and statuses.
    private var forwardObjects: ForwardController?
    /// Reads clusters' stats into their status (started once the hub listens).
    private var clusterStats: ClusterStatsController?
    private var signals: SignalWatcher?
    private var stopping = false
    /// Set on first start when a bootstrap cluster was created: its token, to print once.
    public private(set) var bootstrapToken: String?
    /// Set on first start: the admin user's one-time password (unless given in the environment).
    public private(set) var bootstrapPassword: String?
    private let control: HubControl
    /// Set when the admin token was created by this start: the token, to print once (only its
    /// digest is kept).
    public private(set) var newAdminToken: String?
    /// The open-file limit in force after raising it (each connection is a descriptor).
    public let fileLimit: Int
    private var reportTimer: UVTimer?
    public var caChecksum: String { shared.caChecksum }
    public var port: Int { listener?.port ?? configuration.listenPort }

    public init(configuration: HubConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        let dir = configuration.dataDirectory
        try DataFolder.prepare(dir)
        let certs = CertificateStore(directory: dir + "/tls")
        try FileManager.default.createDirectory(atPath: certs.directory, withIntermediateDirectories: true)
        let ca = try certs.loadOrCreateAuthority(commonName: "Lariat hub CA")
        // A name that parses as an address goes into an IP SAN, or clients dialing it fail
        // hostname verification.
        let names = configuration.serverNames + [Self.hostName()]
        let ips = names.filter(Self.isIPAddress)
        let serving = try certs.loadOrIssueServerCertificate(from: ca, dnsNames: names.filter { !Self.isIPAddress($0) },
                                                             ipAddresses: ips)
        // ALPN http/1.1: kubectl offers h2 first and must be told it gets HTTP/1.1.
        let tls = try TLSContext.server(certificatePEM: serving.certificatePEM, privateKeyPEM: serving.privateKeyPEM,
                                        chainPEM: ca.certificatePEM, alpnProtocols: ["http/1.1"])
        let metrics = HubMetrics(settings: configuration.metrics)
        let metricsEndpoint = MetricsEndpoint(metrics: metrics)
        let opened = try HubControl.open(configuration: configuration, caPEM: ca.certificatePEM,
                                         caChecksum: Digest.sha256Hex(ca.certificatePEM), logger: logger,
                                         metrics: metrics, extraRoutes: metricsEndpoint.register)
        control = opened
        if let token = opened.bootstrapClusterToken, let name = configuration.bootstrapCluster {
            bootstrapToken = token
            // Kept (0600) so a newcomer can find it again; delete it once the agent is deployed.
            try FileIO.writeAtomically(dir + "/\(name).token", token + "\n", mode: 0o600)
        }
        bootstrapPassword = opened.bootstrapPassword
        for name in opened.imported { logger.notice("imported cluster \(name.logQuoted) from clusters.json; its token stays valid") }
        let admin = try AdminToken.loadOrCreate(directory: dir)
        newAdminToken = admin.created
        fileLimit = FileLimit.raiseToHardLimit()
        acceptor = UVLoop(name: "hub-acceptor")
        group = LoopGroup(count: max(1, configuration.loops), namePrefix: "hub-worker")
        shared = HubShared(configuration: configuration, control: opened.control, tokens: opened.services.tokens,
                           authorizer: opened.services.authorizer, users: opened.services.users,
                           kubernetesAudit: try KubernetesAuditLog(path: configuration.kubernetes.auditLog),
                           registry: AgentRegistry(), tls: tls,
                           caPEM: ca.certificatePEM, adminTokenSHA256: admin.sha256Hex, logger: logger, metrics: metrics)
        metricsEndpoint.attach(shared)
        var ws: [LoopBound<HubWorker>] = []
        for (i, loop) in group.loops.enumerated() {
            ws.append(LoopBound(HubWorker(index: i, loop: loop, hub: shared), loop: loop))
        }
        workers = ws
        shared.workers = ws
        let shared = self.shared
        let allWorkers = ws
        shared.clusterStatus = ClusterStatusController(control: opened.control, registry: shared.registry) {
            for w in allWorkers { w.loop.execute { w.value.publishRoundTrips() } }
        }
        for w in ws { w.loop.execute { w.value.startHealthTicks() } }
        Self.closeTunnelsOnRevocation(shared)
        Self.endKubernetesSessionsOnRevocation(shared, tokens: opened.services.tokens.tokens, users: opened.services.users)
        Self.answerConnectedChecks(shared)
        if let settings = configuration.rbacSync {
            shared.rbacSync = RBACSyncController(informers: opened.services.rbac, clusters: opened.control.clusterInformer,
                                                 api: InternalKubernetesClient(shared: shared), settings: settings, logger: logger)
        }
        try listen()
        forwardObjects = ForwardController(shared: shared, acceptor: acceptor, rbac: opened.services.rbac,
                                           clusterAPI: InternalKubernetesClient(shared: shared))
        // With port 0 the URL import commands carry is known only now.
        shared.control.updateServerURL(configuration.serverURL(port: port))
        // Its reads go through agents' tunnels, which can connect only from now on.
        let stats = ClusterStatsController(clusters: opened.control.clusters, informer: opened.control.clusterInformer,
                                           api: InternalKubernetesClient(shared: shared), settings: configuration.clusterStats,
                                           logger: logger)
        stats.start()
        clusterStats = stats
    }

    /// A registration for an agent id that holds a tunnel is refused; the tunnel is probed at
    /// the same time, so a restarted agent whose old connection is dead gets in on its retry.
    private static func answerConnectedChecks(_ shared: HubShared) {
        let wait = shared.configuration.limits.duplicateAgentProbeMilliseconds
        shared.control.whenAskedIfConnected { cluster, agentID in
            guard let existing = shared.registry.all.first(where: { $0.cluster == cluster && $0.agentID == agentID }) else {
                return false
            }
            let w = shared.workers[existing.worker]
            w.loop.execute { w.value.probeLiveness(existing.key, claimedFrom: "a registration", waitMilliseconds: wait) }
            return true
        }
    }

    public var registry: AgentRegistry { shared.registry }
    /// Requests of the hub's own controllers to clusters' API servers, through their tunnels.
    public var clusterAPI: any ClusterAPIClient { InternalKubernetesClient(shared: shared) }
    public var controlPlane: ControlPlane { shared.control }

    /// A revoked or deleted agent credential, or a deleted cluster, closes the tunnels that
    /// depended on it at once (the informers deliver the change within milliseconds).
    private static func closeTunnelsOnRevocation(_ shared: HubShared) {
        @Sendable func close(_ entries: [AgentRegistry.Entry], _ reason: String) {
            for e in entries {
                let w = shared.workers[e.worker]
                w.loop.execute { w.value.disconnect(e.key, reason: reason) }
            }
        }
        shared.control.agentCredentialInformer.onChange { change in
            switch change {
            case .upserted(let c) where c.spec.revoked || c.metadata.isBeingDeleted:
                close(shared.registry.all.filter { $0.credential == c.name }, "agent credential \(c.name) revoked")
            case .deleted(let c):
                close(shared.registry.all.filter { $0.credential == c.name }, "agent credential \(c.name) deleted")
            default: break
            }
        }
        shared.control.clusterInformer.onChange { change in
            guard case .deleted(let c) = change else { return }
            close(shared.registry.all.filter { $0.cluster == c.name }, "cluster \(c.name) deleted")
        }
    }

    /// A deleted, disabled or expired token, or a deleted or disabled user, ends that caller's
    /// open watches and exec, attach and port-forward sessions at once (new requests are refused
    /// by authentication already).
    private static func endKubernetesSessionsOnRevocation(_ shared: HubShared, tokens: Informer<Token>, users: Informer<User>) {
        @Sendable func revoke(token: String?, user: String?, _ reason: String) {
            for w in shared.workers { w.loop.execute { w.value.kubernetes.revoke(token: token, user: user, reason: reason) } }
        }
        tokens.onChange { change in
            switch change {
            case .upserted(let t) where !t.spec.enabled || t.metadata.isBeingDeleted || (t.spec.expiresAt.map { $0 <= Date() } ?? false):
                revoke(token: t.name, user: nil, "token \(t.name) was revoked")
            case .deleted(let t):
                revoke(token: t.name, user: nil, "token \(t.name) was deleted")
            default: break
            }
        }
        users.onChange { change in
            switch change {
            case .upserted(let u) where !u.spec.enabled || u.metadata.isBeingDeleted:
                revoke(token: nil, user: u.name, "user \(u.name) was disabled")
            case .deleted(let u):
                revoke(token: nil, user: u.name, "user \(u.name) was deleted")
            default: break
            }
        }
    }

    private func listen() throws {
        let workers = self.workers
        let shared = self.shared
        let logger = self.logger
        listener = try TCPListener(loop: acceptor, host: configuration.listenHost, port: configuration.listenPort) { connection in
            let address = connection.remoteAddress
            let remote = address?.description ?? "?"
            let source = address?.ipString ?? "?"
            let ticket: ConnectionAdmission.Ticket
            switch shared.admission.admit(source: source) {
            case .success(let t): ticket = t
            case .failure:
                // Refused before TLS costs anything; counted into one summary line.
                connection.closeWithReset()
                return
            }
            guard let socket = connection.detach() else { return }
            let bound = workers[shared.nextWorker(of: workers.count)]
            bound.loop.execute {
                let worker = bound.value
                do {
                    let tcp = try TCPConnection.adopt(socket, loop: worker.loop)
                    _ = tcp.setNotSentLowWatermark(TunnelConnection.kernelUnsentLimit)
                    let tls = try TLSConnection(transport: tcp, context: shared.tls)
                    _ = HubHTTPConnection(stream: tls, ticket: ticket, worker: worker, remote: remote, source: source)
                } catch {
                    logger.error("cannot take connection from \(remote): \(error)")
                }
            }
        }
        startReports()
        for spec in configuration.forwards {
            forwardListeners.append(try forwardListener(spec))
        }
    }

    private func forwardListener(_ spec: ForwardSpec) throws -> PacedForwardListener {
        let workers = self.workers
        let shared = self.shared
        let logger = self.logger
        let l = try PacedForwardListener(loop: acceptor, host: spec.listenHost, port: spec.listenPort, name: "--forward \(spec)",
                                         limits: configuration.forwardAccept, metrics: shared.metrics,
                                         logger: logger) { connection, ticket in
            let remote = connection.remoteAddress?.description ?? "?"
            guard let agent = shared.registry.pick(cluster: spec.cluster, now: UVLoop.now) else {
                logger.warning("forward \(spec): no agent of cluster \(spec.cluster.logQuoted) is connected; refusing \(remote)")
                connection.closeWithReset()
                return
            }
            guard let socket = connection.detach() else { return }
            let bound = workers[agent.worker]
            let description = "\(remote) → \(spec)"
            bound.loop.execute {
                bound.value.forward(socket, toTunnel: agent.key, target: spec.target, streamClass: spec.streamClass,
                                    description: description, pending: ticket)
            }
        }
        logger.info("forwarding \(spec.listenHost):\(l.port) to \(spec.target) in cluster \"\(spec.cluster)\" (--forward: no authentication or audit, for local testing; Forward objects are the authorized kind)")
        return l
    }

    /// Ports of the forward listeners, in configuration order (useful with port 0).
    public var forwardPorts: [Int] { forwardListeners.map(\.port) }

    /// Runs until SIGTERM/SIGINT (or `requestStop`), then drains: GOAWAY to every agent, wait
    /// for open streams (up to the drain timeout), exit.
    public func run() throws {
        signals = try SignalWatcher(loop: acceptor) { [unowned self] signal in
            self.logger.notice("signal \(signal): draining")
            self.beginShutdown()
        }
        let trimmer = MemoryTrimmer.start(loop: acceptor, settings: configuration.memoryTrim, logger: logger)
        acceptor.run()
        withExtendedLifetime(trimmer) {}
        group.shutdown()
        acceptor.close()
    }

    /// Every `authReportSeconds`: one line per source address that failed to authenticate,
    /// and one for connections refused by the caps, instead of a line per attempt.
    private func startReports() {
        let timer = UVTimer(loop: acceptor)
        let period = HubShared.authReportSeconds
        timer.start(afterMilliseconds: period * 1000, repeatMilliseconds: period * 1000) { [unowned self] in
            for line in self.shared.authThrottle.takeReport(now: self.acceptor.now) where line.failures > 1 || line.refusals > 0 {
                self.logger.warning("\(line.failures) failed authentication(s) from \(line.source.logQuoted) in the last \(period) s, \(line.refusals) refused while throttled; last: \(line.lastReason)")
            }
            let refused = self.shared.admission.takeRefusedCount()
            if refused > 0 {
                self.logger.warning("refused \(refused) connection(s) in the last \(period) s at the connection caps (\(self.configuration.limits.maxConnections) in all, \(self.configuration.limits.maxConnectionsPerSource) per source address); \(self.shared.admission.open) open")
            }
        }
        reportTimer = timer
    }

    private func beginShutdown() {
        guard !stopping else { return }
        stopping = true
        shared.startDraining()
        // The HTTPS listener stays open while draining, so load balancers' health checks see
        // "503 draining" (and new agents a 503) instead of a refused connection.
        for l in forwardListeners { l.close() }
        forwardObjects?.stop()
        clusterStats?.stop()
        shared.rbacSync?.stop()
        for w in workers { w.loop.execute { w.value.drainAll(reason: "hub shutting down") } }
        let started = acceptor.now
        let timer = UVTimer(loop: acceptor)
        timer.start(afterMilliseconds: 50, repeatMilliseconds: 50) { [unowned self] in
            let elapsed = (self.acceptor.now - started) / 1_000_000
            let tunnels = self.shared.tunnelConnections.current
            let users = self.shared.userConnections.current
            if (tunnels == 0 && users == 0) || elapsed >= self.configuration.drainTimeoutMilliseconds {
                if tunnels > 0 || users > 0 {
                    self.logger.warning("drain timeout: closing \(tunnels) tunnel(s) and \(users) user connection(s) still open")
                    for w in self.workers { w.loop.execute { w.value.closeAll() } }
                }
                timer.close()
                self.listener?.close()
                self.reportTimer?.close()
                self.signals?.close()
                // Give the workers a moment to flush the final GOAWAYs.
                self.acceptor.schedule(afterMilliseconds: 100) { self.acceptor.stop() }
            }
        }
    }

    static func isIPAddress(_ s: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, s, &v4) == 1 || inet_pton(AF_INET6, s, &v6) == 1
    }

    static func hostName() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        guard gethostname(&buf, buf.count) == 0 else { return "localhost" }
        return buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}
