import ArgumentParser
import Foundation
import LariatHub
import LariatProtocol
import LariatRuntime
import Logging

@main
struct LariatHubCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lariat-hub",
        abstract: "The Lariat hub: accepts agent tunnels and carries traffic to the clusters behind them.",
        version: LariatVersion.version,
        subcommands: [Serve.self, Login.self, ClusterCommand.self, KubeconfigCommand.self, TokenCommand.self, UserCommand.self,
                       RoleCommand.self, ForwardCommand.self, Bench.self],
        defaultSubcommand: Serve.self)
}

struct CommonOptions: ParsableArguments {
    @Option(name: .long, help: "Data folder: CA, serving certificate, cluster store, admin token. Env: LARIAT_DATA; default $XDG_DATA_HOME/lariat, /var/lib/lariat for root, ~/.local/share/lariat otherwise.")
    var data: String = DataFolder.defaultPath()

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: String = ProcessInfo.processInfo.environment["LARIAT_LOG_LEVEL"] ?? "info"

    @Option(name: .long, help: "Log format: text or json (one JSON object per line). Env: LARIAT_LOG_FORMAT.")
    var logFormat: String = ProcessInfo.processInfo.environment[LogFormat.environmentVariable] ?? "text"

    func validate() throws {
        guard LogFormat(rawValue: logFormat.lowercased()) != nil else {
            throw ValidationError("--log-format \"\(logFormat)\": use text or json")
        }
    }

    func makeLogger() -> Logger {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LariatLogHandler.bootstrap(level: level, format: LogFormat(rawValue: logFormat.lowercased()) ?? .text)
        return Logger(label: "lariat-hub")
    }
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the hub (the default).")

    @OptionGroup var common: CommonOptions

    @Option(name: .long, help: "HOST:PORT for HTTPS (agents, health, API). Port 0 picks a free port.")
    var listen: String = ProcessInfo.processInfo.environment["LARIAT_LISTEN"] ?? "0.0.0.0:8443"

    @Option(name: .long, help: "Worker loops (default: one per core).")
    var loops: Int = LoopGroup.coreCount

    @Option(name: .long, help: "Extra DNS name or IP for the serving certificate (repeatable).")
    var serverName: [String] = []

    @Option(name: .long, help: "For local testing only: forward LISTEN_HOST:PORT=CLUSTER/TARGET[,interactive] (TARGET: HOST:PORT, k8s-api, svc:NS/NAME:PORT; ',interactive' schedules its connections ahead of bulk ones in the tunnel) with no authentication or audit, so anyone who reaches the port reaches the target. Repeatable. Use `lariat-hub forward create` (authorized, audited) for anything else.")
    var forward: [String] = []

    @Option(name: .long, help: "Connections a forward listener holds that the agent has not answered yet; at this many it stops accepting and later clients wait in the listen backlog.")
    var forwardMaxPending: Int = ForwardAcceptLimits().maxPending

    @Option(name: .long, help: "A paused forward listener accepts again once this many or fewer wait (default: three quarters of --forward-max-pending).")
    var forwardResumePending: Int?

    @Option(name: .long, help: "listen(2) backlog of forward listeners (the kernel caps it at net.core.somaxconn).")
    var forwardBacklog: Int = Int(ForwardAcceptLimits().listenBacklog)

    @Option(name: .long, help: "OPENs one tunnel may have unanswered at once (at most 256, what every agent accepts); later ones queue.")
    var maxOutstandingOpens: Int = SessionConfig().maxOutstandingOpens

    @Option(name: .long, help: "Opens one tunnel queues behind --max-outstanding-opens; beyond, a connection is refused.")
    var maxQueuedOpens: Int = SessionConfig().maxQueuedOpens

    @Option(name: .long, help: "Seconds a queued open may wait to be sent before its connection is refused.")
    var openQueueTimeout: Double = Double(SessionConfig().openQueueTimeoutNanos) / 1e9

    @Option(name: .long, help: "Seconds to wait for open streams when shutting down.")
    var drainTimeout: Double = 10

    @Option(name: .long, help: "Once listening, write the HTTPS port, then each forward's port, one per line, to this file (for scripts and tests).")
    var portFile: String?

    @Flag(name: .long, help: "Disable LZ4 compression on tunnels.")
    var noCompression = false

    @Flag(name: .long, help: "Serve /metrics without a bearer (only where nothing but the scraper reaches the HTTPS port).")
    var metricsPublic = false

    @Option(name: .long, help: "Keep the control plane in etcd at HOST:PORT (several hubs share it) instead of DATA/store.db.")
    var etcd: String? = ProcessInfo.processInfo.environment["LARIAT_ETCD"]

    @Option(name: .long, help: "Key prefix in etcd (one per Lariat installation).")
    var etcdPrefix: String = "lariat"

    @Option(name: .long, help: "The URL agents and users reach this hub at (default: from --listen).")
    var advertiseURL: String?

    @Option(name: .long, help: "Append an audit record of every API request to this file as JSON lines (- for standard output).")
    var auditLog: String?

    @Option(name: .customLong("k8s-audit-log"), help: "Append a JSON line for every request through /k8s/clusters/ and for the start and end of every exec, attach and port-forward session to this file (- for standard output).")
    var kubernetesAuditLog: String?

    @Option(name: .customLong("k8s-max-body"), help: "Largest request body (bytes) the Kubernetes proxy accepts (kube-apiserver's own limit is 3 MiB).")
    var kubernetesMaxBody: Int?

    @Option(name: .customLong("k8s-pool-size"), help: "Idle keep-alive streams to the API server kept per agent and worker loop.")
    var kubernetesPoolSize: Int?

    @Option(name: .customLong("k8s-pool-idle"), help: "Seconds an idle pooled stream to the API server is kept.")
    var kubernetesPoolIdle: UInt64?

    @Option(name: .customLong("rbac-resync"), help: "Seconds between two syncs of every cluster's RBAC objects with the hub's role bindings (repairs edits made in the cluster).")
    var rbacResync: Double = HubConfiguration().rbacSync?.resyncInterval ?? 30

    @Flag(name: .customLong("no-rbac-sync"), help: "Do not keep clusters' RBAC objects in step with the hub's role bindings.")
    var noRBACSync = false

    @Option(name: .customLong("stats-interval"), help: "Seconds between two reads of every cluster's version, nodes, pods and warning events into its status (stale after three intervals without one).")
    var statsInterval: Double = HubConfiguration().clusterStats.interval

    @Option(name: .long, help: "Seconds a client has to finish its TLS handshake.")
    var tlsHandshakeTimeout: Double = Double(FrontDoorLimits().tlsHandshakeTimeoutMilliseconds) / 1000

    @Option(name: .long, help: "Seconds a client has to send a whole request head (the slowloris bound); bodies get this plus their size at --min-body-rate.")
    var requestHeadTimeout: Double = Double(FrontDoorLimits().requestHeadTimeoutMilliseconds) / 1000

    @Option(name: .long, help: "Bytes per second a request body must keep up.")
    var minBodyRate: Int = FrontDoorLimits().minimumBodyBytesPerSecond

    @Option(name: .long, help: "Seconds an idle keep-alive connection is kept.")
    var keepAliveTimeout: Double = Double(FrontDoorLimits().keepAliveIdleTimeoutMilliseconds) / 1000

    @Option(name: .long, help: "Open HTTPS connections in all (tunnels included); more are closed at once.")
    var maxConnections: Int = FrontDoorLimits().maxConnections

    @Option(name: .long, help: "Open HTTPS connections from one source address.")
    var maxConnectionsPerSource: Int = FrontDoorLimits().maxConnectionsPerSource

    @Option(name: .long, help: "Failed authentications a source address may make in a burst before it is throttled (HTTP 429 with Retry-After).")
    var authFailureBurst: Int = FrontDoorLimits().failedAuthenticationBurst

    @Option(name: .long, help: "Attempts per second a throttled source address earns back.")
    var authFailureRefill: Double = FrontDoorLimits().failedAuthenticationRefillPerSecond

    func run() throws {
        let logger = common.makeLogger()
        var config = HubConfiguration()
        config.dataDirectory = common.data
        guard let (host, port) = parseHostPort(listen) else {
            throw ValidationError("--listen must be HOST:PORT, got \"\(listen)\"")
        }
        config.listenHost = host
        config.listenPort = port
        config.loops = loops
        config.serverNames = serverName
        config.drainTimeoutMilliseconds = UInt64(drainTimeout * 1000)
        config.session.compression = !noCompression
        config.metrics.requireAuthentication = !metricsPublic
        if let etcd {
            guard let (h, p) = parseHostPort(etcd) else { throw ValidationError("--etcd must be HOST:PORT, got \"\(etcd)\"") }
            config.store = .etcd(host: h, port: p, prefix: etcdPrefix)
        }
        config.advertisedURL = advertiseURL
        config.auditLog = auditLog
        config.kubernetes.auditLog = kubernetesAuditLog
        if let kubernetesMaxBody { config.kubernetes.maxRequestBodyBytes = kubernetesMaxBody }
        if let kubernetesPoolSize { config.kubernetes.maxIdleUpstreamsPerAgent = kubernetesPoolSize }
        if let kubernetesPoolIdle { config.kubernetes.upstreamIdleTimeoutMilliseconds = kubernetesPoolIdle * 1000 }
        guard rbacResync > 0 else { throw ValidationError("--rbac-resync must be above 0") }
        config.rbacSync?.resyncInterval = rbacResync
        if noRBACSync { config.rbacSync = nil }
        guard statsInterval > 0 else { throw ValidationError("--stats-interval must be above 0") }
        config.clusterStats.interval = statsInterval
        config.limits.tlsHandshakeTimeoutMilliseconds = try milliseconds(tlsHandshakeTimeout, "--tls-handshake-timeout")
        config.limits.requestHeadTimeoutMilliseconds = try milliseconds(requestHeadTimeout, "--request-head-timeout")
        config.limits.keepAliveIdleTimeoutMilliseconds = try milliseconds(keepAliveTimeout, "--keep-alive-timeout")
        config.limits.minimumBodyBytesPerSecond = try positive(minBodyRate, "--min-body-rate")
        config.limits.maxConnections = try positive(maxConnections, "--max-connections")
        config.limits.maxConnectionsPerSource = try positive(maxConnectionsPerSource, "--max-connections-per-source")
        config.limits.failedAuthenticationBurst = try positive(authFailureBurst, "--auth-failure-burst")
        guard authFailureRefill > 0 else { throw ValidationError("--auth-failure-refill must be above 0") }
        config.limits.failedAuthenticationRefillPerSecond = authFailureRefill
        config.forwardAccept.maxPending = try positive(forwardMaxPending, "--forward-max-pending")
        config.forwardAccept.resumePending = forwardResumePending ?? forwardMaxPending * 3 / 4
        guard (0..<forwardMaxPending).contains(config.forwardAccept.resumePending) else {
            throw ValidationError("--forward-resume-pending must be at least 0 and below --forward-max-pending")
        }
        config.forwardAccept.listenBacklog = Int32(clamping: try positive(forwardBacklog, "--forward-backlog"))
        guard (1...ProtocolLimits.guaranteedPendingOpens).contains(maxOutstandingOpens) else {
            throw ValidationError("--max-outstanding-opens must be 1...\(ProtocolLimits.guaranteedPendingOpens) (agents need not accept more)")
        }
        config.session.maxOutstandingOpens = maxOutstandingOpens
        guard maxQueuedOpens >= 0 else { throw ValidationError("--max-queued-opens must be 0 or more") }
        config.session.maxQueuedOpens = maxQueuedOpens
        guard openQueueTimeout > 0 else { throw ValidationError("--open-queue-timeout must be above 0") }
        config.session.openQueueTimeoutNanos = UInt64(openQueueTimeout * 1e9)
        for f in forward {
            guard let spec = ForwardSpec(parsing: f) else {
                throw ValidationError("--forward must be LISTEN_HOST:PORT=CLUSTER/TARGET[,interactive], got \"\(f)\"")
            }
            config.forwards.append(spec)
        }
        let hub: Hub
        do {
            hub = try Hub(configuration: config, logger: logger)
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(1)
        }
        logger.info("lariat-hub \(LariatVersion.version) listening on https://\(host):\(hub.port) with \(config.loops) worker loop(s); data in \(config.dataDirectory)")
        logger.info("CA checksum (agents pin this with --ca-checksum): \(hub.caChecksum)")
        logger.info("open-file limit \(hub.fileLimit); at most \(config.limits.maxConnections) connections, \(config.limits.maxConnectionsPerSource) per source address")
        if let password = hub.bootstrapPassword {
            print("""

            Administrator: log in as "admin" with this one-time password (change it at first login):

              \(password)

              lariat-hub login --server \(config.serverURL) --username admin --ca-checksum \(hub.caChecksum)

            """)
            fflush(nil)
        }
        if let admin = hub.newAdminToken {
            print("""

            Admin API token (shown once; only its digest is kept in \(config.dataDirectory)/admin.token.sha256):

              \(admin)

            """)
            fflush(nil)
        }
        if let token = hub.bootstrapToken, let name = config.bootstrapCluster {
            logger.notice("created cluster \"\(name)\"; its registration token is in \(config.dataDirectory)/\(name).token")
            print("""

            Connect an agent of cluster "\(name)" with:

              lariat-agent --server https://\(host == "0.0.0.0" ? "127.0.0.1" : host):\(hub.port) --cluster \(name) \\
                --token \(token) \\
                --ca-checksum \(hub.caChecksum)

            """)
            fflush(nil) // flush every stream: the banner must show before the loop runs
        }
        if let portFile {
            let lines = ([hub.port] + hub.forwardPorts).map { "\($0)\n" }.joined()
            // Written whole then renamed, so a reader never sees half a file.
            try FileIO.writeAtomically(portFile, lines, mode: 0o644)
        }
        for (spec, p) in zip(config.forwards, hub.forwardPorts) where spec.listenPort == 0 {
            logger.info("forward \(spec) is listening on port \(p)")
        }
        try hub.run()
        logger.info("stopped")
    }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure throughput and round trips between a running hub and a connected agent (no extra server needed).")

    @OptionGroup var common: CommonOptions

    @Option(name: .long, help: "The cluster whose agent to measure.")
    var cluster: String

    @Option(name: .long, help: "The running hub's HTTPS address (HOST:PORT).")
    var hub: String = "127.0.0.1:8443"

    @Option(name: .long, help: "MiB to send each way.")
    var mib: Int = 64

    @Option(name: .long, help: "Payload: random (incompressible) or json (Kubernetes-like).")
    var payload: String = "random"

    @Flag(name: .long, help: "Print the JSON report.")
    var json = false

    @Option(name: .long, help: "The admin API token (printed once by the hub's first start); default: $LARIAT_ADMIN_TOKEN.")
    var token: String? = ProcessInfo.processInfo.environment[AdminToken.environmentVariable]

    func run() throws {
        guard let (host, port) = parseHostPort(hub) else { throw ValidationError("--hub must be HOST:PORT") }
        guard payload == "random" || payload == "json" else { throw ValidationError("--payload is random or json") }
        let ca = try DataFolder.caPEM(in: common.data)  // a sentence, not a usage error
        guard let token, !token.isEmpty else {
            throw ValidationError("give the admin token with --token or \(AdminToken.environmentVariable)")
        }
        let response = try HubAPIClient.get(
            host: host == "0.0.0.0" ? "127.0.0.1" : host, port: port,
            path: "/v1/clusters/\(cluster)/bench?bytes=\(mib << 20)&payload=\(payload)&format=\(json ? "json" : "text")",
            bearer: token, caPEM: ca)
        print(response.body, terminator: "")
        if response.status != 200 { throw ExitCode(1) }
    }
}

private func milliseconds(_ seconds: Double, _ flag: String) throws -> UInt64 {
    guard seconds > 0, seconds < 86_400 else { throw ValidationError("\(flag) must be between 0 and 86400 seconds") }
    return UInt64(seconds * 1000)
}

private func positive(_ n: Int, _ flag: String) throws -> Int {
    guard n > 0 else { throw ValidationError("\(flag) must be above 0") }
    return n
}

func parseHostPort(_ s: String) -> (String, Int)? {
    guard let colon = s.lastIndex(of: ":"), let port = Int(s[s.index(after: colon)...]), (0...65535).contains(port) else { return nil }
    var host = String(s[..<colon])
    if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    return (host.isEmpty ? "0.0.0.0" : host, port)
}
