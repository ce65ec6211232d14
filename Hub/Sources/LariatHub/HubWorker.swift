import Foundation
import Logging
import LariatProtocol
import LariatRuntime
import LariatTunnel

/// One worker loop of the hub and the tunnels that live on it. Loop-confined: reached from
/// other threads only through `loop.execute`.
final class HubWorker: TunnelConnectionDelegate {
    let index: Int
    let loop: UVLoop
    let hub: HubShared
    var tunnels: [UInt64: TunnelConnection] = [:]
    private var keys: [ObjectIdentifier: UInt64] = [:]
    private var remotes: [ObjectIdentifier: (remote: String, source: String)] = [:]
    /// Registered agents whose liveness is being probed because a newcomer claims their id.
    private var probing: Set<UInt64> = []
    /// Data bytes of this loop's ended tunnels by cluster, so `/metrics` byte counters never go back.
    var retiredTotals: [String: TunnelTotals] = [:]
    var logger: Logger { hub.logger }
    /// The Kubernetes authentication proxy's pool and open exchanges on this loop.
    private(set) lazy var kubernetes = KubernetesProxy(worker: self)

    init(index: Int, loop: UVLoop, hub: HubShared) {
        self.index = index
        self.loop = loop
        self.hub = hub
    }

    /// A TLS connection whose HTTP request asked for `/v1/connect`: run a tunnel on it.
    /// `ticket` is the connection's slot in the hub's connection count: it is given back when
    /// the tunnel's connection closes.
    func startTunnel(on stream: any ByteStream, remote: String, source: String, ticket: ConnectionAdmission.Ticket?,
                     leftover: UnsafeRawBufferPointer) {
        hub.tunnelConnections.opened()
        // The upgrade's leftover bytes may hold the HELLO, authenticated inside this init.
        arriving = (remote, source)
        defer { arriving = nil }
        let tunnel = TunnelConnection(stream: stream, role: .server, config: hub.configuration.session,
                                      delegate: self, label: "agent@\(remote)", leftover: leftover)
        tunnel.onClosed = { [hub] in
            hub.tunnelConnections.closed()
            withExtendedLifetime(ticket) {}
        }
        if tunnel.session.state == .ended { return }  // the leftover bytes already ended it
        remotes[ObjectIdentifier(tunnel)] = (remote, source)
        if tunnel.session.state == .handshaking { pending.append(tunnel) }
    }

    /// The addresses of the tunnel being constructed (before it has an identity to key them by).
    private var arriving: (remote: String, source: String)?

    /// Tunnels between upgrade and handshake: held here so they stay alive.
    private var pending: [TunnelConnection] = []

    // MARK: TunnelConnectionDelegate

    func tunnel(_ tunnel: TunnelConnection, authenticate hello: Hello) -> HandshakeDecision {
        let (remote, source) = remotes[ObjectIdentifier(tunnel)] ?? arriving ?? ("?", "?")
        let who = "agent \(hello.agentID.logQuoted) of cluster \(hello.clusterID.logQuoted)"
        let credential: String?
        switch hub.control.admitAgent(cluster: hello.clusterID, agentID: hello.agentID, token: hello.token) {
        case .admitted(let c):
            credential = c
        case .refused(let why):
            hub.authenticationFailed(source: source, reason: "\(who): \(why)", now: loop.now, metric: "agent")
            hub.metrics.handshakeFailed("authentication")
            return .refuse(.authenticationFailed, reason: "invalid credentials for cluster \(hello.clusterID.logQuoted)")
        }
        guard !hub.isDraining else {
            hub.metrics.handshakeFailed("draining")
            return .refuse(.goingAway, reason: "hub is shutting down")
        }
        let key = hub.registry.makeKey()
        let entry = AgentRegistry.Entry(key: key, cluster: hello.clusterID, agentID: hello.agentID, role: hello.role,
                                        worker: index, remote: remote, software: hello.software,
                                        connectedAtNanos: loop.now, connectedAtSeconds: Date().timeIntervalSince1970,
                                        credential: credential)
        if let existing = hub.registry.register(entry) {
            // Never a silent swap: the connected agent keeps the id while it answers. If it does
            // not answer a probe in time (a restarted agent's half-open connection), it is closed
            // and the newcomer's next attempt gets in.
            logger.warning("refused a second connection for \(who) from \(remote): that agent is connected from \(existing.remote) (worker \(existing.worker)); probing it")
            let probe = hub.workers[existing.worker]
            let wait = hub.configuration.limits.duplicateAgentProbeMilliseconds
            probe.loop.execute { probe.value.probeLiveness(existing.key, claimedFrom: remote, waitMilliseconds: wait) }
            hub.metrics.handshakeFailed("duplicate_agent")
            return .refuse(.refused, reason: "agent id \(hello.agentID.logQuoted) of cluster \(hello.clusterID.logQuoted) is already connected; give each agent its own --agent-id (if that agent is gone, retry in a few seconds)")
        }
        keys[ObjectIdentifier(tunnel)] = key
        return .accept(sessionID: "\(hello.clusterID)/\(hello.agentID)#\(key)")
    }

    func tunnelEstablished(_ tunnel: TunnelConnection) {
        let id = ObjectIdentifier(tunnel)
        guard let key = keys[id], let hello = tunnel.session.hello else { return }
        pending.removeAll { $0 === tunnel }
        tunnels[key] = tunnel
        establishedAt[key] = loop.now
        tunnel.label = "\(hello.clusterID.logQuoted)/\(hello.agentID.logQuoted)"
        hub.registry.markEstablished(key)
        hub.clusterStatus?.clusterChanged(hello.clusterID)
        hub.rbacSync?.clusterConnected(hello.clusterID)
        let remote = (remotes[id] ?? arriving)?.remote ?? "?"
        let carrier = hub.registry.pick(cluster: hello.clusterID, now: loop.now)
        let carries = carrier?.key == key ? "carries new streams" : "standing by: new streams stay with \(carrier.map { $0.agentID.logQuoted } ?? "?")"
        logger.info("agent \(hello.agentID.logQuoted) of cluster \(hello.clusterID.logQuoted) connected from \(remote) (\(hello.role.name) agent, \(hello.software.logQuoted), worker \(index)); \(carries)")
    }

    /// Pings registered tunnel `key`; closes it if nothing arrives within `waitMilliseconds`.
    func probeLiveness(_ key: UInt64, claimedFrom remote: String, waitMilliseconds: UInt64) {
        guard let tunnel = tunnels[key], !probing.contains(key) else { return }
        probing.insert(key)
        let sentAt = loop.now
        tunnel.ping()
        loop.schedule(afterMilliseconds: waitMilliseconds) { [self] in
            probing.remove(key)
            guard tunnels[key] === tunnel, tunnel.session.state != .ended,
                  tunnel.session.lastReceivedAt < sentAt else { return }
            logger.warning("agent \(tunnel.label) did not answer a liveness probe within \(waitMilliseconds) ms while a connection from \(remote) claims its id: closing it so the newcomer can replace it")
            tunnel.close(code: .timeout, reason: "replaced: no answer to a liveness probe")
        }
    }

    func tunnel(_ tunnel: TunnelConnection, goAwayReceived code: ErrorCode, reason: String) {
        if let key = keys[ObjectIdentifier(tunnel)] {
            hub.registry.markDraining(key)
            // Idle pooled API-server streams would hold the agent's drain open until its grace ends.
            kubernetes.tunnelEnded(key)
            logger.info("agent \(tunnel.label) is draining: \(reason.logQuoted)")
        }
    }

    func tunnelEnded(_ tunnel: TunnelConnection, _ end: SessionEnd) {
        let id = ObjectIdentifier(tunnel)
        pending.removeAll { $0 === tunnel }
        remotes[id] = nil
        // Refusals were counted when made; this is a tunnel that never sent a valid HELLO.
        if keys[id] == nil && tunnel.session.hello == nil { hub.metrics.handshakeFailed("no_hello") }
        if let key = keys.removeValue(forKey: id) {
            tunnels[key] = nil
            establishedAt[key] = nil
            lastScores[key] = nil
            kubernetes.tunnelEnded(key)
            retire(tunnel)
            let cluster = hub.registry.remove(key)?.cluster
            if let cluster { hub.clusterStatus?.clusterChanged(cluster) }
            if tunnel.session.hello != nil {
                logger.info("agent \(tunnel.label) disconnected: \(end.description.logQuoted)")
            }
        }
    }

    // MARK: Forwarding

    /// Carries an accepted user connection to `target` through the tunnel `key`; `ended` hears
    /// once how it went (bytes each way, or why it failed), for audit lines. `pending` (a forward
    /// listener's count of unanswered connections) is given back once the agent answers the
    /// OPEN, or the connection fails or closes first.
    func forward(_ socket: DetachedSocket, toTunnel key: UInt64, target: String, streamClass: StreamClass = .bulk,
                 description: String, pending: ForwardAcceptTicket? = nil, ended: ((ForwardedConnectionEnd) -> Void)? = nil) {
        // Every way out but a stream still waiting for its answer gives the place back.
        var answered = true
        defer { if answered { pending?.release() } }
        let connection: TCPConnection
        do { connection = try TCPConnection.adopt(socket, loop: loop) } catch {
            logger.error("forward \(description): cannot adopt connection: \(error)")
            ended?(ForwardedConnectionEnd(error: "cannot adopt connection: \(error)"))
            return
        }
        guard let tunnel = tunnels[key], tunnel.session.state == .established else {
            logger.warning("forward \(description): agent went away before the connection was handed over")
            connection.closeWithReset()
            ended?(ForwardedConnectionEnd(error: "agent went away before the connection was handed over"))
            return
        }
        let hold = hub.configuration.limits.unhealthyAgentHoldMilliseconds
        var failure: String?
        do {
            let bridge = try tunnel.openBridged(target: target, streamClass: streamClass, connection: connection) { [hub, loop] code, message in
                hub.logger.warning("forward \(description) via \(tunnel.label): \(code.name): \(message.logQuoted)")
                failure = "\(code.name): \(message)"
                if code == .timeout {
                    // The agent did not answer an OPEN: new streams prefer its cluster's other agents.
                    hub.registry.markUnhealthy(key, until: loop.now + hold * 1_000_000)
                }
            }
            hub.userConnections.opened()
            if let pending {
                answered = false
                bridge.onOpened = { pending.release() }
            }
            bridge.onClosed = { [hub, unowned bridge] in
                pending?.release()  // refused, timed out, or the client left before the answer
                hub.userConnections.closed()
                ended?(ForwardedConnectionEnd(bytesIn: bridge.bytesFromConnection, bytesOut: bridge.bytesToConnection, error: failure))
            }
        } catch .openQueueFull(let limit) {
            // A burst beyond what the queue holds: refuse now rather than hold memory unbounded.
            logger.warning("forward \(description) via \(tunnel.label): refused: \(limit) connections already wait for the agent to answer earlier opens (session setting maxQueuedOpens)")
            connection.closeWithReset()
            ended?(ForwardedConnectionEnd(error: "refused: \(limit) connections already wait for the agent"))
        } catch {
            logger.warning("forward \(description) via \(tunnel.label): cannot open stream: \(error)")
            connection.closeWithReset()
            ended?(ForwardedConnectionEnd(error: "cannot open stream: \(error)"))
        }
    }

    /// Runs the tunnel probe on tunnel `key` and hands the report to `reply` (on this loop).
    func benchmark(tunnel key: UInt64, cluster: String, agent: String, bytes: Int, json: Bool,
                   reply: @escaping @Sendable (TunnelBenchmark.Report) -> Void) {
        guard let tunnel = tunnels[key], tunnel.session.state == .established else {
            var r = TunnelBenchmark.Report(cluster: cluster, agent: agent, bytes: bytes, payload: json ? "json" : "random",
                                           compression: false, rttMicros: [], uploadSeconds: 0, downloadSeconds: 0)
            r.error = "the agent disconnected"
            return reply(r)
        }
        logger.info("bench of \(tunnel.label): \(bytes >> 20) MiB each way")
        TunnelBenchmark(tunnel: tunnel, cluster: cluster, agent: agent, bytes: bytes, json: json, timeoutSeconds: 120,
                        completion: reply).start()
    }

    /// Closes tunnel `key` at once (its credential was revoked, its cluster deleted).
    func disconnect(_ key: UInt64, reason: String) {
        guard let tunnel = tunnels[key] else { return }
        logger.warning("closing agent \(tunnel.label): \(reason)")
        tunnel.close(code: .authenticationFailed, reason: reason)
    }

    // MARK: Health

    private var healthTimer: UVTimer?
    private var lastScores: [UInt64: Int] = [:]
    /// Counts health ticks; every fourth (about a second) also ends sessions of expired tokens.
    private var healthTicks = 0

    /// Samples every tunnel's health each `AgentHealth.Settings.tickMilliseconds` (on this loop).
    func startHealthTicks() {
        let period = hub.configuration.agentHealth.tickMilliseconds
        let timer = UVTimer(loop: loop)
        timer.start(afterMilliseconds: period, repeatMilliseconds: period) { [unowned self] in healthTick() }
        healthTimer = timer
    }

    /// Probes silent tunnels with a PING, scores each agent, and when one turns unhealthy moves
    /// its waiting requests to other paths.
    func healthTick() {
        let settings = hub.configuration.agentHealth
        let now = loop.now
        healthTicks &+= 1
        if healthTicks % 4 == 0 { kubernetes.endExpired(now: Date()) }
        for (key, tunnel) in tunnels {
            guard let session = tunnel.session, session.state == .established else { continue }
            let silence = now > session.lastReceivedAt ? now - session.lastReceivedAt : 0
            if silence >= settings.probeAfterSilenceMilliseconds * 1_000_000, session.pingOutstandingSince == 0 { tunnel.ping() }
            var h = AgentHealth()
            h.rttMicros = Int(session.smoothedRTT / 1000)
            h.minRTTMicros = Int(session.minRTT / 1000)
            h.silenceMillis = Int(silence / 1_000_000)
            // The session stamps its PING with its own clock, which may be a little ahead of `now`.
            let since = session.pingOutstandingSince
            h.unansweredPingMillis = since == 0 || since >= now ? 0 : Int((now - since) / 1_000_000)
            h.openStreams = session.streamCount
            h.bytesInFlight = tunnel.stream.bufferedWriteBytes
            h.sessionAgeSeconds = Int((now &- (establishedAt[key] ?? now)) / 1_000_000_000)
            let before = lastScores[key] ?? 100
            let score = hub.registry.updateHealth(key, h, settings: settings, now: now)
            lastScores[key] = score
            if before >= settings.healthyScore, score < settings.healthyScore {
                logger.warning("agent \(tunnel.label) is unhealthy (score \(score): PING unanswered for \(h.unansweredPingMillis) ms, rtt \(h.rttMicros) µs, \(h.recentOpenTimeouts) OPEN timeouts and \(h.recentDialFailures) dial failures in the last minute); new requests go to the cluster's other agents")
                kubernetes.agentBecameUnhealthy(key)
                if let cluster = session.hello?.clusterID { hub.clusterStatus?.clusterChanged(cluster) }
            } else if before < settings.healthyScore, score >= settings.healthyScore {
                logger.info("agent \(tunnel.label) is healthy again (score \(score))")
                if let cluster = session.hello?.clusterID { hub.clusterStatus?.clusterChanged(cluster) }
            }
        }
    }

    /// When each registered tunnel finished its handshake (monotonic), for the session age.
    private var establishedAt: [UInt64: UInt64] = [:]

    /// Copies each tunnel's smoothed round trip into the registry (for the Cluster's status).
    func publishRoundTrips() {
        for (key, tunnel) in tunnels { hub.registry.setRoundTrip(key, nanos: tunnel.session.smoothedRTT) }
    }

    /// Sends GOAWAY on every tunnel of this loop.
    func drainAll(reason: String) {
        for t in tunnels.values { t.drain(reason: reason) }
        for t in pending { t.close(code: .goingAway, reason: reason) }
    }

    func closeAll() {
        for t in tunnels.values { t.close(code: .goingAway, reason: "hub stopped") }
    }
}
