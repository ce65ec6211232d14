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
    private var remotes: [ObjectIdentifier: String] = [:]
    var logger: Logger { hub.logger }

    init(index: Int, loop: UVLoop, hub: HubShared) {
        self.index = index
        self.loop = loop
        self.hub = hub
    }

    /// A TLS connection whose HTTP request asked for `/v1/connect`: run a tunnel on it.
    func startTunnel(on stream: any ByteStream, remote: String, leftover: UnsafeRawBufferPointer) {
        let tunnel = TunnelConnection(stream: stream, role: .server, config: hub.configuration.session,
                                      delegate: self, label: "agent@\(remote)", leftover: leftover)
        remotes[ObjectIdentifier(tunnel)] = remote
        pending.append(tunnel)
        hub.tunnelConnections.opened()
        tunnel.onClosed = { [hub] in hub.tunnelConnections.closed() }
    }

    /// Tunnels between upgrade and handshake: held here so they stay alive.
    private var pending: [TunnelConnection] = []

    // MARK: TunnelConnectionDelegate

    func tunnel(_ tunnel: TunnelConnection, authenticate hello: Hello) -> HandshakeDecision {
        let remote = remotes[ObjectIdentifier(tunnel)] ?? "?"
        guard hub.store.verify(cluster: hello.clusterID, token: hello.token) else {
            logger.warning("refused agent \"\(hello.agentID)\" of cluster \"\(hello.clusterID)\" from \(remote): invalid token or unknown cluster")
            return .refuse(.authenticationFailed, reason: "invalid credentials for cluster \"\(hello.clusterID)\"")
        }
        guard !hub.isDraining else {
            return .refuse(.goingAway, reason: "hub is shutting down")
        }
        let key = hub.registry.makeKey()
        keys[ObjectIdentifier(tunnel)] = key
        return .accept(sessionID: "\(hello.clusterID)/\(hello.agentID)#\(key)")
    }

    func tunnelEstablished(_ tunnel: TunnelConnection) {
        let id = ObjectIdentifier(tunnel)
        guard let key = keys[id], let hello = tunnel.session.hello else { return }
        pending.removeAll { $0 === tunnel }
        tunnels[key] = tunnel
        tunnel.label = "\(hello.clusterID)/\(hello.agentID)"
        let remote = remotes[id] ?? "?"
        hub.registry.add(.init(key: key, cluster: hello.clusterID, agentID: hello.agentID, role: hello.role,
                               worker: index, remote: remote, connectedAtNanos: loop.now))
        logger.info("agent \"\(hello.agentID)\" of cluster \"\(hello.clusterID)\" connected from \(remote) (\(hello.role == .clusterAgent ? "cluster" : "node") agent, \(hello.software), worker \(index))")
    }

    func tunnel(_ tunnel: TunnelConnection, goAwayReceived code: ErrorCode, reason: String) {
        if let key = keys[ObjectIdentifier(tunnel)] {
            hub.registry.markDraining(key)
            logger.info("agent \(tunnel.label) is draining: \(reason)")
        }
    }

    func tunnelEnded(_ tunnel: TunnelConnection, _ end: SessionEnd) {
        let id = ObjectIdentifier(tunnel)
        pending.removeAll { $0 === tunnel }
        remotes[id] = nil
        if let key = keys.removeValue(forKey: id) {
            tunnels[key] = nil
            hub.registry.remove(key)
            if tunnel.session.state != .handshaking {
                logger.info("agent \(tunnel.label) disconnected: \(end)")
            }
        }
    }

    // MARK: Forwarding

    /// Carries an accepted user connection to `target` through the tunnel `key`.
    func forward(_ socket: DetachedSocket, toTunnel key: UInt64, target: String, description: String) {
        let connection: TCPConnection
        do { connection = try TCPConnection.adopt(socket, loop: loop) } catch {
            logger.error("forward \(description): cannot adopt connection: \(error)")
            return
        }
        guard let tunnel = tunnels[key], tunnel.session.state == .established else {
            logger.warning("forward \(description): agent went away before the connection was handed over")
            connection.closeWithReset()
            return
        }
        do {
            let bridge = try tunnel.openBridged(target: target, streamClass: .bulk, connection: connection) { [logger] code, message in
                logger.warning("forward \(description) via \(tunnel.label): \(code.name): \(message)")
            }
            hub.userConnections.opened()
            bridge.onClosed = { [hub] in hub.userConnections.closed() }
        } catch {
            logger.warning("forward \(description) via \(tunnel.label): cannot open stream: \(error)")
            connection.closeWithReset()
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

    /// Sends GOAWAY on every tunnel of this loop.
    func drainAll(reason: String) {
        for t in tunnels.values { t.drain(reason: reason) }
        for t in pending { t.close(code: .goingAway, reason: reason) }
    }

    func closeAll() {
        for t in tunnels.values { t.close(code: .goingAway, reason: "hub stopped") }
    }
}
