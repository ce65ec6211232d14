import Foundation
import Logging
import LariatControl
import LariatProtocol
import LariatRuntime
import LariatTunnel

/// The authentication proxy's part on one worker loop: the pool of keep-alive API-server streams
/// per agent tunnel of this loop, the exchanges in progress (so a revoked token can end them),
/// and their audit records. Loop-confined, owned by its `HubWorker`.
final class KubernetesProxy {
    static let target = TunnelTarget.kubernetesProxy.description

    unowned let worker: HubWorker
    var loop: UVLoop { worker.loop }
    var logger: Logger { worker.logger }
    private var settings: KubernetesProxySettings { worker.hub.configuration.kubernetes }
    private var idle: [UInt64: [KubernetesUpstream]] = [:]
    private var active: [ObjectIdentifier: KubernetesExchange] = [:]
    private var counter: UInt64 = 0

    init(worker: HubWorker) { self.worker = worker }

    func nextRequestID() -> String {
        counter += 1
        return "k8s-\(worker.index)-\(counter)"
    }

    var openExchanges: Int { active.count }

    /// Sends `exchange` through agent `agent` (whose tunnel lives on this loop).
    func begin(_ exchange: KubernetesExchange, agent: AgentRegistry.Entry) {
        active[ObjectIdentifier(exchange)] = exchange
        send(exchange, agentKey: agent.key, agentPath: Self.pathName(agent))
    }

    static func pathName(_ agent: AgentRegistry.Entry) -> String {
        (agent.role == .clusterAgent ? "cluster-agent:" : "node-agent:") + agent.agentID
    }

    private func send(_ exchange: KubernetesExchange, agentKey: UInt64, agentPath: String) {
        // Ordinary requests share pooled interactive streams; a session gets a stream of its own,
        // interactive for shells (tty or attach), bulk for the rest (cp, port-forward, exec -i).
        let streamClass: StreamClass
        if exchange.isUpgrade {
            let tty = KubernetesRequestInfo.queryParameters(exchange.uri.split(separator: "?", maxSplits: 1).dropFirst().first ?? "")["tty"]
            streamClass = exchange.info.session == .attach || KubernetesRequestInfo.isTrue(tty) ? .interactive : .bulk
        } else if exchange.isDirect {
            streamClass = .interactive
        } else {
            streamClass = .interactive
            while var list = idle[agentKey], let pooled = list.popLast() {
                idle[agentKey] = list.isEmpty ? nil : list
                pooled.idleTimer?.close()
                pooled.idleTimer = nil
                pooled.onIdleEnd = nil
                guard pooled.isOpen, pooled.reusable else { continue }
                pooled.reused = true
                exchange.start(on: pooled)
                return
            }
        }
        guard let tunnel = worker.tunnels[agentKey], tunnel.session.state == .established else {
            return exchange.openFailed("the agent disconnected")
        }
        let upstream = KubernetesUpstream(tunnelKey: agentKey, cluster: exchange.info.cluster, path: agentPath,
                                          streamClass: streamClass, target: exchange.upstreamTarget, loop: loop)
        let hold = worker.hub.configuration.limits.unhealthyAgentHoldMilliseconds
        do {
            try tunnel.openBridged(target: upstream.target, streamClass: streamClass, connection: upstream.pipe) { [weak exchange, hub = worker.hub, loop] code, message in
                if code == .timeout { hub.registry.markUnhealthy(agentKey, until: loop.now + hold * 1_000_000) }
                if code == .targetUnreachable || code == .targetTimeout { hub.registry.noteDialFailure(agentKey, now: loop.now) }
                exchange?.openFailed("\(code.name): \(message)")
            }
        } catch {
            return exchange.openFailed("cannot open a stream: \(error)")
        }
        exchange.start(on: upstream)
    }

    // MARK: The magic proxy

    /// How long a Service's ClusterIP and ports are trusted before they are read again.
    static let serviceFactsTTLNanos: UInt64 = 30_000_000_000
    private var serviceFacts: [String: (facts: ServiceFacts?, at: UInt64)] = [:]

    /// A request to a Service through `…/services/<svc>/proxy/…`: straight to its ClusterIP when
    /// the Service allows it, else through the API server's service proxy (`exchange` as built).
    func beginService(_ exchange: KubernetesExchange, agent: AgentRegistry.Entry, route: ServiceProxyRoute, direct: [UInt8]) {
        active[ObjectIdentifier(exchange)] = exchange
        exchange.service = route
        let key = "\(route.cluster)/\(route.namespace)/\(route.name)"
        if let cached = serviceFacts[key], loop.now &- cached.at < Self.serviceFactsTTLNanos {
            return routeService(exchange, agent: agent, route: route, facts: cached.facts, direct: direct)
        }
        let me = LoopBound(self, loop: loop)
        let waiting = LoopBound(exchange, loop: loop)
        InternalKubernetesClient(shared: worker.hub).start(
            cluster: route.cluster, method: "GET", path: "/api/v1/namespaces/\(route.namespace)/services/\(route.name)",
            body: [], contentType: nil, timeoutMilliseconds: 5000
        ) { result in
            var found: ServiceFacts?
            if case .success(let r) = result, r.isSuccess { found = ServiceFacts(json: r.body) }
            let facts = found
            me.loop.execute {
                let proxy = me.value
                proxy.serviceFacts[key] = (facts, proxy.loop.now)
                proxy.routeService(waiting.value, agent: agent, route: route, facts: facts, direct: direct)
            }
        }
    }

    private func routeService(_ exchange: KubernetesExchange, agent: AgentRegistry.Entry, route: ServiceProxyRoute,
                              facts: ServiceFacts?, direct: [UInt8]) {
        guard !exchange.isFinished else { return }
        exchange.serviceHosts = route.serviceHosts(facts)
        if let facts, let target = route.directTarget(facts) { exchange.goDirect(target: target, request: direct) }
        guard worker.tunnels[agent.key] != nil else { return exchange.openFailed("the agent disconnected") }
        send(exchange, agentKey: agent.key, agentPath: Self.pathName(agent))
    }

    /// A pooled stream was dead: the same request on a fresh stream of the same agent.
    func retry(_ exchange: KubernetesExchange) {
        guard let upstream = exchange.upstream, worker.tunnels[upstream.tunnelKey] != nil else {
            return exchange.openFailed("the agent disconnected")
        }
        send(exchange, agentKey: upstream.tunnelKey, agentPath: upstream.path)
    }

    func isTunnelAlive(_ key: UInt64) -> Bool { worker.tunnels[key]?.session.state == .established }

    func isHealthy(_ key: UInt64) -> Bool {
        let now = loop.now
        return (worker.hub.registry.entry(key)?.score(at: now) ?? 0) >= worker.hub.configuration.agentHealth.healthyScore
    }

    /// Agent `key` (on this loop) stopped answering: requests waiting on it that may be repeated
    /// go to the cluster's next path now.
    func agentBecameUnhealthy(_ key: UInt64) {
        let waiting = active.values.filter { $0.upstream?.tunnelKey == key }
        for e in waiting { e.pathStuck() }
    }

    /// An upstream whose exchange completed cleanly waits for the next request.
    func checkin(_ upstream: KubernetesUpstream) {
        guard upstream.target == Self.target, upstream.isOpen, upstream.reusable, (idle[upstream.tunnelKey]?.count ?? 0) < settings.maxIdleUpstreamsPerAgent else {
            return upstream.abandon()
        }
        idle[upstream.tunnelKey, default: []].append(upstream)
        upstream.onIdleEnd = { [unowned self] u in forget(u) }
        let timer = UVTimer(loop: loop)
        timer.start(afterMilliseconds: settings.upstreamIdleTimeoutMilliseconds) { [unowned self, unowned upstream] in
            forget(upstream)
            upstream.abandon()
        }
        upstream.idleTimer = timer
    }

    private func forget(_ upstream: KubernetesUpstream) {
        guard var list = idle[upstream.tunnelKey] else { return }
        list.removeAll { $0 === upstream }
        idle[upstream.tunnelKey] = list.isEmpty ? nil : list
    }

    /// Drops the pooled streams of a tunnel that ended.
    func tunnelEnded(_ key: UInt64) {
        guard let list = idle.removeValue(forKey: key) else { return }
        for u in list { u.onIdleEnd = nil; u.abandon() }
    }

    // MARK: Revocation

    /// Ends every exchange (watches, exec sessions) authenticated by `token`, or made by `user`.
    func revoke(token: String?, user: String?, reason: String) {
        let victims = active.values.filter { e in
            (token != nil && e.principal.tokenName == token) || (user != nil && e.principal.name == user)
        }
        for e in victims {
            logger.notice("k8s proxy \(e.requestID): ending \(e.method) \(e.uri.logQuoted) of \(e.principal.username.logQuoted): \(reason)")
            e.terminate(reason: reason)
        }
    }

    /// Ends exchanges whose token has expired since they began (an expiry changes no object,
    /// so no informer event announces it). Called about once a second.
    func endExpired(now: Date) {
        guard !active.isEmpty else { return }
        let tokens = worker.hub.tokens.tokens
        for e in active.values {
            guard let name = e.principal.tokenName, let expiry = tokens.get(name)?.spec.expiresAt, expiry <= now else { continue }
            logger.notice("k8s proxy \(e.requestID): ending \(e.method) \(e.uri.logQuoted) of \(e.principal.username.logQuoted): token \(name) expired")
            e.terminate(reason: "token \(name) expired")
        }
    }

    // MARK: Audit

    func exchangeEnded(_ e: KubernetesExchange, status: Int?, error: String?, exitCode: Int?, sawStatus: Bool) {
        active[ObjectIdentifier(e)] = nil
        let duration = Int((loop.now - e.startedAt) / 1000)
        var event = baseEvent(e, kind: .request)
        event.status = status
        event.bytesIn = e.bytesIn
        event.bytesOut = e.bytesOut
        event.durationMicros = duration
        event.error = error
        worker.hub.kubernetesAudit.record(event)
        worker.hub.metrics.kubernetesRequest(cluster: e.info.cluster, verb: e.info.verb, status: status ?? 0,
                                             path: e.path.hasPrefix("node-agent:") ? "node" : "cluster-agent")
        if let session = e.info.session, e.isUpgrade {
            var end = sessionEvent(e, session: session, kind: .sessionEnd)
            end.exitCode = exitCode
            end.status = status
            end.bytesIn = e.bytesIn
            end.bytesOut = e.bytesOut
            end.durationMicros = duration
            end.error = error ?? (session == .portforward || sawStatus ? nil : "ended without an exit status")
            end.recording = e.recorder?.path
            end.notRecorded = e.notRecorded
            worker.hub.kubernetesAudit.record(end)
        }
    }

    func sessionClosed(_ e: KubernetesExchange) { active[ObjectIdentifier(e)] = nil }

    // MARK: Session recordings

    func recordsSessions(of cluster: String) -> Bool {
        worker.hub.control.clusterInformer.get(cluster)?.spec.recordSessions ?? false
    }

    /// `DATA/recordings/<cluster>/<unix time>-<request id>.cast`.
    func makeRecorder(for e: KubernetesExchange) -> SessionRecorder? {
        let wall = Date().timeIntervalSince1970
        let directory = worker.hub.configuration.dataDirectory + "/recordings/" + e.info.cluster
        let query = e.info.upstreamTarget.split(separator: "?", maxSplits: 1).dropFirst().first ?? ""
        let command = KubernetesRequestInfo.queryValues(query, name: "command").joined(separator: " ")
        let title = "\(e.principal.username) \(e.info.session?.rawValue ?? "") \(e.info.namespace)/\(e.info.name)\(command.isEmpty ? "" : ": " + command)"
        let recorder = SessionRecorder(directory: directory, name: "\(Int(wall))-\(e.requestID)", title: title,
                                       now: loop.now, wallClock: wall)
        if recorder == nil { logger.warning("cannot create a session recording in \(directory.logQuoted)") }
        return recorder
    }

    func audit(_ e: KubernetesExchange, sessionStart session: KubernetesRequestInfo.Session) {
        worker.hub.kubernetesAudit.record(sessionEvent(e, session: session, kind: .sessionStart))
    }

    private func baseEvent(_ e: KubernetesExchange, kind: KubernetesAuditEvent.Kind) -> KubernetesAuditEvent {
        let i = e.info
        func nonEmpty(_ s: String) -> String? { s.isEmpty ? nil : s }
        return KubernetesAuditEvent(kind: kind, time: Date(), requestID: e.requestID, user: e.principal.name,
                                    username: e.principal.username, groups: e.principal.groups, token: e.principal.tokenName,
                                    source: e.source, cluster: i.cluster, path: nonEmpty(e.path), method: e.method,
                                    uri: i.upstreamPath, verb: i.verb, apiGroup: nonEmpty(i.apiGroup),
                                    resource: nonEmpty(i.resource), subresource: nonEmpty(i.subresource),
                                    namespace: nonEmpty(i.namespace), name: nonEmpty(i.name))
    }

    private func sessionEvent(_ e: KubernetesExchange, session: KubernetesRequestInfo.Session,
                              kind: KubernetesAuditEvent.Kind) -> KubernetesAuditEvent {
        var event = baseEvent(e, kind: kind)
        let query = e.info.upstreamTarget.split(separator: "?", maxSplits: 1).dropFirst().first ?? ""
        let params = KubernetesRequestInfo.queryParameters(query)
        event.pod = e.info.name
        event.container = params["container"]
        if session == .exec { event.command = KubernetesRequestInfo.queryValues(query, name: "command") }
        if session == .portforward { event.command = KubernetesRequestInfo.queryValues(query, name: "ports") }
        event.tty = KubernetesRequestInfo.isTrue(params["tty"])
        return event
    }
}
