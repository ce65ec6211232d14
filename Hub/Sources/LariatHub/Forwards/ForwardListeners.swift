import Foundation
import LariatControl
import LariatRuntime
import LariatStore

/// The listeners of Forward objects, on the acceptor loop (loop-confined, like the hub's own
/// listeners). Each accepted connection is authorized against its forward's owner's rights at
/// that moment (`ForwardAuthorization`: refused and logged when the owner lost them), handed to
/// the worker holding the tunnel of the cluster's chosen agent, carried to
/// `svc:NAMESPACE/SERVICE:PORT`, and audited in the Kubernetes audit log when it ends.
final class ForwardListeners {
    private struct Active {
        var uid: String
        var listen: String
        var listener: PacedForwardListener
    }

    let shared: HubShared
    let loop: UVLoop
    /// Set right after init, by the first work posted to this loop.
    weak var controller: ForwardController?
    private var active: [String: Active] = [:]
    private var closed = false
    private var connections: UInt64 = 0

    init(shared: HubShared, loop: UVLoop) {
        self.shared = shared
        self.loop = loop
    }

    /// Opens, reopens or closes forward `name`'s listener to match its object.
    func reconcile(_ name: String) {
        let wanted = shared.control.forwardInformer.get(name).flatMap { f -> (Object<Forward>, String)? in
            guard !f.metadata.isBeingDeleted, let listen = f.spec.listen else { return nil }
            return (f, listen)
        }
        if let a = active[name] {
            if let (f, listen) = wanted, f.metadata.uid == a.uid, listen == a.listen { return }
            a.listener.close()
            active[name] = nil
            shared.logger.info("forward \(name.logQuoted): stopped listening on \(a.listener.localAddress)")
            controller?.listenerClosed(name)
        }
        guard let (forward, listen) = wanted, !closed else { return }
        let uid = forward.metadata.uid
        guard let (host, port) = Forward.listenAddress(listen) else {
            controller?.listenFailed(name, uid: uid, reason: "not an IP:PORT")
            return
        }
        do {
            let listener = try PacedForwardListener(loop: loop, host: host, port: port, name: name,
                                                    limits: shared.configuration.forwardAccept, metrics: shared.metrics,
                                                    logger: shared.logger) { [unowned self] connection, ticket in
                accept(connection, forward: name, pending: ticket)
            }
            active[name] = Active(uid: uid, listen: listen, listener: listener)
            let address = listener.localAddress.description
            let spec = forward.spec
            shared.logger.info("forward \(name.logQuoted) of \(spec.ownerName.logQuoted) listening on \(address) for \(spec.namespace)/\(spec.service):\(spec.port) in cluster \(spec.clusterName.logQuoted)")
            controller?.listening(name, uid: uid, address: address)
        } catch {
            shared.logger.warning("forward \(name.logQuoted): cannot listen on \(listen): \(error) (retried at the next resync)")
            controller?.listenFailed(name, uid: uid, reason: "\(error)")
        }
    }

    /// Reconciles every forward the informer holds and every listener open now.
    func reconcileAll() {
        let names = Set(shared.control.forwardInformer.items.map(\.name)).union(active.keys)
        for name in names.sorted() { reconcile(name) }
    }

    /// Closes every listener for good (the hub is draining).
    func closeAll() {
        closed = true
        for a in active.values { a.listener.close() }
        active = [:]
    }

    // MARK: Connections

    /// `pending` is the connection's place in its listener's count of unanswered connections:
    /// given back when the agent answers (or at once, when the connection is refused here).
    private func accept(_ connection: TCPConnection, forward name: String, pending: ForwardAcceptTicket) {
        let startedAt = UVLoop.now
        let source = connection.remoteAddress?.description ?? "?"
        guard let forward = shared.control.forwardInformer.get(name), let controller else {
            connection.closeWithReset()
            return
        }
        connections += 1
        let spec = forward.spec
        let owner = shared.users.get(spec.ownerName)
        var event = KubernetesAuditEvent(
            kind: .forward, time: Date(), requestID: "fwd-\(connections)", user: spec.ownerName,
            username: owner?.spec.username ?? "", groups: owner.map { TokenService.principal(of: $0).groups } ?? [],
            token: nil, source: source, cluster: spec.clusterName, path: nil, method: "CONNECT",
            uri: "/api/v1/namespaces/\(spec.namespace)/services/\(spec.service):\(spec.port)/proxy", verb: "get",
            apiGroup: nil, resource: "services", subresource: "proxy", namespace: spec.namespace, name: spec.service)
        event.forward = name
        let audit = shared.kubernetesAudit
        func refuse(_ why: String) {
            shared.logger.warning("forward \(name.logQuoted): refused \(source): \(why)")
            event.error = "refused: \(why)"
            event.bytesIn = 0
            event.bytesOut = 0
            event.durationMicros = Int((UVLoop.now - startedAt) / 1000)
            audit.record(event)
            connection.closeWithReset()
        }
        let decision = ForwardAuthorization.connection(forward, users: shared.users, clusters: shared.control.clusterInformer,
                                                       authorizer: shared.authorizer)
        guard decision.allowed else { return refuse(decision.reason) }
        guard let port = controller.targetPort(forward) else {
            return refuse("port \(spec.port.description.logQuoted) of service \(spec.namespace)/\(spec.service) is not resolved yet (a lookup is under way)")
        }
        let target = Forward.target(namespace: spec.namespace, service: spec.service, port: port)
        event.target = target
        guard let agent = shared.registry.pick(cluster: spec.clusterName, now: startedAt) else {
            return refuse("no agent of cluster \(spec.clusterName.logQuoted) is connected")
        }
        event.path = (agent.role == .clusterAgent ? "cluster-agent:" : "node-agent:") + agent.agentID
        guard let socket = connection.detach() else { return }
        let worker = shared.workers[agent.worker]
        let description = "\(source) → forward \(name.logQuoted) (\(target) in cluster \(spec.clusterName.logQuoted))"
        let base = event
        worker.loop.execute {
            worker.value.forward(socket, toTunnel: agent.key, target: target,
                                 streamClass: spec.streamClass == .interactive ? .interactive : .bulk,
                                 description: description, pending: pending) { end in
                var e = base
                e.bytesIn = end.bytesIn
                e.bytesOut = end.bytesOut
                e.error = end.error
                e.durationMicros = Int((UVLoop.now - startedAt) / 1000)
                audit.record(e)
            }
        }
    }
}
