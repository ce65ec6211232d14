import Foundation
import Logging
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
    private var forwardListeners: [TCPListener] = []
    private var signals: SignalWatcher?
    private var stopping = false
    /// Set on first start when a bootstrap cluster was created: its token, to print once.
    public private(set) var bootstrapToken: String?
    public var caChecksum: String { shared.caChecksum }
    public var port: Int { listener?.port ?? configuration.listenPort }

    public init(configuration: HubConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        let dir = configuration.dataDirectory
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let certs = CertificateStore(directory: dir + "/tls")
        try FileManager.default.createDirectory(atPath: certs.directory, withIntermediateDirectories: true)
        let ca = try certs.loadOrCreateAuthority(commonName: "Lariat hub CA")
        // A name that parses as an address goes into an IP SAN, or clients dialing it fail
        // hostname verification.
        let names = configuration.serverNames + [Self.hostName()]
        let ips = names.filter(Self.isIPAddress)
        let serving = try certs.loadOrIssueServerCertificate(from: ca, dnsNames: names.filter { !Self.isIPAddress($0) },
                                                             ipAddresses: ips)
        let tls = try TLSContext.server(certificatePEM: serving.certificatePEM, privateKeyPEM: serving.privateKeyPEM,
                                        chainPEM: ca.certificatePEM)
        let store = try ClusterStore(directory: dir)
        if store.clusters.isEmpty, let name = configuration.bootstrapCluster {
            let token = try store.createCluster(name)
            bootstrapToken = token
            // Kept (0600) so a newcomer can find it again; delete it once the agent is deployed.
            FileManager.default.createFile(atPath: dir + "/\(name).token", contents: Data((token + "\n").utf8),
                                           attributes: [.posixPermissions: 0o600])
        }
        let adminToken = try Self.loadOrCreateAdminToken(dir)
        acceptor = UVLoop(name: "hub-acceptor")
        group = LoopGroup(count: max(1, configuration.loops), namePrefix: "hub-worker")
        shared = HubShared(configuration: configuration, store: store, registry: AgentRegistry(), tls: tls,
                           caPEM: ca.certificatePEM, adminTokenSHA256: Digest.sha256Hex(adminToken), logger: logger)
        var ws: [LoopBound<HubWorker>] = []
        for (i, loop) in group.loops.enumerated() {
            ws.append(LoopBound(HubWorker(index: i, loop: loop, hub: shared), loop: loop))
        }
        workers = ws
        shared.workers = ws
        try listen()
    }

    public var registry: AgentRegistry { shared.registry }
    public var store: ClusterStore { shared.store }

    private func listen() throws {
        let workers = self.workers
        let shared = self.shared
        let logger = self.logger
        listener = try TCPListener(loop: acceptor, host: configuration.listenHost, port: configuration.listenPort) { connection in
            let remote = connection.remoteAddress?.description ?? "?"
            guard let socket = connection.detach() else { return }
            let bound = workers[shared.nextWorker(of: workers.count)]
            bound.loop.execute {
                let worker = bound.value
                do {
                    let tcp = try TCPConnection.adopt(socket, loop: worker.loop)
                    _ = tcp.setNotSentLowWatermark(TunnelConnection.kernelUnsentLimit)
                    let tls = try TLSConnection(transport: tcp, context: shared.tls)
                    _ = HubHTTPConnection(stream: tls, worker: worker, remote: remote)
                } catch {
                    logger.error("cannot take connection from \(remote): \(error)")
                }
            }
        }
        for spec in configuration.forwards {
            forwardListeners.append(try forwardListener(spec))
        }
    }

    private func forwardListener(_ spec: ForwardSpec) throws -> TCPListener {
        let workers = self.workers
        let shared = self.shared
        let logger = self.logger
        let l = try TCPListener(loop: acceptor, host: spec.listenHost, port: spec.listenPort) { connection in
            let remote = connection.remoteAddress?.description ?? "?"
            guard let agent = shared.registry.pick(cluster: spec.cluster) else {
                logger.warning("forward \(spec): no agent of cluster \"\(spec.cluster)\" is connected; refusing \(remote)")
                connection.closeWithReset()
                return
            }
            guard let socket = connection.detach() else { return }
            let bound = workers[agent.worker]
            let description = "\(remote) → \(spec)"
            bound.loop.execute {
                bound.value.forward(socket, toTunnel: agent.key, target: spec.target, description: description)
            }
        }
        logger.info("forwarding \(spec.listenHost):\(l.port) to \(spec.target) in cluster \"\(spec.cluster)\"")
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
        acceptor.run()
        group.shutdown()
        acceptor.close()
    }

    private func beginShutdown() {
        guard !stopping else { return }
        stopping = true
        shared.startDraining()
        listener?.close()
        for l in forwardListeners { l.close() }
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

    static func loadOrCreateAdminToken(_ dir: String) throws -> String {
        let path = dir + "/admin.token"
        if let data = FileManager.default.contents(atPath: path),
           let s = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines), !s.isEmpty {
            return s
        }
        let token = SecureRandom.hexToken(byteCount: 24)
        guard FileManager.default.createFile(atPath: path, contents: Data((token + "\n").utf8),
                                             attributes: [.posixPermissions: 0o600]) else {
            throw StoreError("cannot write \(path)")
        }
        return token
    }
}
