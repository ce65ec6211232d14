import Foundation
import LariatControl
import LariatRuntime
import LariatStore
import Synchronization

/// How the hub serves Forward objects.
public struct ForwardObjectSettings: Sendable {
    /// Every forward is looked at again this often: a listener whose address was taken is
    /// retried, named ports are refreshed, `OwnerAuthorized` is brought up to date.
    public var resyncSeconds: Double = 30
    /// A named port's number is used this long before it is looked up again (a lookup that
    /// fails keeps the old number: the Service rarely renumbers, and connections keep working
    /// while the cluster's API server is briefly away).
    public var namedPortTTLSeconds: Double = 60
    /// The longest a named port lookup through the cluster's tunnel may take.
    public var lookupTimeoutSeconds: Double = 10
    public init() {}
}

/// How one forwarded connection went, for its audit line.
struct ForwardedConnectionEnd: Sendable {
    var bytesIn = 0
    var bytesOut = 0
    var error: String?
}

/// Serves Forward objects: follows their informer, opens and closes their listeners on the
/// acceptor loop (`ForwardListeners`), looks up named ports in the cluster, and writes each
/// forward's status (`listenAddress`, `targetPort`, conditions `Ready` and `OwnerAuthorized`)
/// from a work queue, never from a loop.
final class ForwardController: Sendable {
    private enum ListenerState: Sendable, Equatable {
        case listening(address: String)
        case failed(String)
    }

    private struct ResolvedPort: Sendable {
        var uid: String
        var name: String
        var number: Int
        var resolvedAt: Date
    }

    let shared: HubShared
    let settings: ForwardObjectSettings
    private let listeners: LoopBound<ForwardListeners>
    /// Forward name → its listener's state and the uid it was opened for (written on the acceptor).
    private let states = Mutex<[String: (uid: String, state: ListenerState)]>([:])
    private let ports = Mutex<[String: ResolvedPort]>([:])
    private let statusQueue: WorkQueue
    private let portQueue: WorkQueue
    private let stopped = AtomicFlag(false)

    init(shared: HubShared, acceptor: UVLoop, rbac: RBACInformers, clusterAPI: any ClusterAPIClient) {
        self.shared = shared
        settings = shared.configuration.forwardObjects
        let control = shared.control
        let logger = shared.logger
        let box = Mutex<ForwardController?>(nil)
        statusQueue = WorkQueue(name: "forward-status", onError: { key, error, attempt in
            if attempt == 1 || attempt % 10 == 0 {
                logger.warning("status of forward \(key.logQuoted): \(error) (attempt \(attempt); retrying with backoff)")
            }
        }, reconcile: { name in try box.withLock { $0 }?.writeStatus(name) })
        portQueue = WorkQueue(name: "forward-ports", reconcile: { name in
            box.withLock { $0 }?.lookUpPort(name, clusterAPI: clusterAPI)
        })
        listeners = LoopBound(ForwardListeners(shared: shared, loop: acceptor), loop: acceptor)
        box.withLock { $0 = self }
        listeners.loop.execute { [listeners, self] in listeners.value.controller = self }

        let informer = control.forwardInformer
        informer.onChange { [self] change in
            switch change {
            case .upserted(let f): changed(f.name)
            case .deleted(let f):
                changed(f.name)
                ports.withLock { $0[f.name] = nil }
            case .resynced: changedAll()
            }
        }
        // A binding granted or taken away changes `OwnerAuthorized`.
        rbac.onChange { [self] in for f in control.forwardInformer.items { statusQueue.add(f.name) } }
        shared.users.onChange { [self] _ in for f in control.forwardInformer.items { statusQueue.add(f.name) } }
        changedAll()
        scheduleResync()
    }

    private func changed(_ name: String) {
        listeners.loop.execute { [listeners] in listeners.value.reconcile(name) }
        statusQueue.add(name)
    }

    private func changedAll() {
        listeners.loop.execute { [listeners] in listeners.value.reconcileAll() }
        for f in shared.control.forwardInformer.items { statusQueue.add(f.name) }
    }

    private func scheduleResync() {
        DispatchQueue.global().asyncAfter(deadline: .now() + settings.resyncSeconds) { [weak self] in
            guard let self, !stopped.value else { return }
            changedAll()
            scheduleResync()
        }
    }

    /// Closes every listener (the hub is draining); open connections carry on.
    func stop() {
        stopped.value = true
        listeners.loop.execute { [listeners] in listeners.value.closeAll() }
        statusQueue.stop()
        portQueue.stop()
    }

    // MARK: Reports from the acceptor loop

    func listening(_ name: String, uid: String, address: String) {
        states.withLock { $0[name] = (uid, .listening(address: address)) }
        statusQueue.add(name)
    }

    func listenFailed(_ name: String, uid: String, reason: String) {
        states.withLock { $0[name] = (uid, .failed(reason)) }
        statusQueue.add(name)
    }

    func listenerClosed(_ name: String) {
        states.withLock { $0[name] = nil }
        statusQueue.add(name)
    }

    // MARK: Named ports

    /// The port number a connection to `forward` goes to: its own, or the last lookup of its
    /// named port (refreshed in the background once older than `namedPortTTLSeconds`); nil while
    /// a named port was never resolved (a lookup is then on its way).
    func targetPort(_ forward: Object<Forward>) -> Int? {
        switch forward.spec.port {
        case .number(let n):
            return n
        case .name(let portName):
            let cached = ports.withLock { $0[forward.name] }
            guard let cached, cached.uid == forward.metadata.uid, cached.name == portName else {
                portQueue.add(forward.name)
                return nil
            }
            if Date().timeIntervalSince(cached.resolvedAt) > settings.namedPortTTLSeconds { portQueue.add(forward.name) }
            return cached.number
        }
    }

    private func lookUpPort(_ name: String, clusterAPI: any ClusterAPIClient) {
        guard let f = shared.control.forwardInformer.get(name), case .name(let portName) = f.spec.port else { return }
        let spec = f.spec
        let path = "/api/v1/namespaces/\(spec.namespace)/services/\(spec.service)"
        let answer = clusterAPI.get(cluster: spec.clusterName, path: path, timeout: settings.lookupTimeoutSeconds)
        switch answer {
        case .success(let r) where r.isSuccess:
            guard let number = Forward.servicePort(named: portName, inService: r.body) else {
                shared.logger.warning("forward \(name.logQuoted): service \(spec.namespace)/\(spec.service) of cluster \(spec.clusterName.logQuoted) has no port named \(portName.logQuoted)")
                return
            }
            ports.withLock { $0[name] = ResolvedPort(uid: f.metadata.uid, name: portName, number: number, resolvedAt: Date()) }
            statusQueue.add(name)
        case .success(let r):
            shared.logger.warning("forward \(name.logQuoted): looking up port \(portName.logQuoted) of service \(spec.namespace)/\(spec.service): the cluster answered \(r.status)")
        case .failure(let error):
            shared.logger.warning("forward \(name.logQuoted): looking up port \(portName.logQuoted) of service \(spec.namespace)/\(spec.service): \(error)")
        }
    }

    // MARK: Status

    private func writeStatus(_ name: String) throws {
        let control = shared.control
        guard let f = control.forwardInformer.get(name), !f.metadata.isBeingDeleted else { return }
        let uid = f.metadata.uid
        let listener = states.withLock { $0[name] }.flatMap { $0.uid == uid ? $0.state : nil }
        let resolved = ports.withLock { $0[name] }.flatMap { $0.uid == uid ? $0.number : nil }
        let authorized = ForwardAuthorization.connection(f, users: shared.users, clusters: control.clusterInformer,
                                                         authorizer: shared.authorizer)
        func apply(_ o: inout Object<Forward>) {
            guard o.metadata.uid == uid else { return }  // deleted and made again meanwhile
            switch (o.spec.listen, listener) {
            case (nil, _):
                o.status.listenAddress = nil
                o.status.conditions.set("Ready", .false, reason: "NoListener", message: "spec.listen is not set: the hub listens for nothing")
            case (.some, .listening(let address)?):
                o.status.listenAddress = address
                o.status.conditions.set("Ready", .true, reason: "Listening", message: "listening on \(address)")
            case (.some(let listen), .failed(let reason)?):
                o.status.listenAddress = nil
                o.status.conditions.set("Ready", .false, reason: "ListenFailed", message: "cannot listen on \(listen): \(reason)")
            case (.some, nil):
                o.status.listenAddress = nil
                o.status.conditions.set("Ready", .unknown, reason: "Pending", message: "the listener is being opened")
            }
            if case .name = o.spec.port { o.status.targetPort = resolved } else { o.status.targetPort = nil }
            o.status.conditions.set("OwnerAuthorized", authorized.allowed ? .true : .false,
                                    reason: authorized.allowed ? "Allowed" : "OwnerLostAccess", message: authorized.reason)
        }
        var wanted = f
        apply(&wanted)
        if wanted.status == f.status { return }
        do {
            let written = try control.forwards.modify(name) { (o: inout Object<Forward>) throws(StoreFailure) in apply(&o) }
            control.forwardInformer.remember(written)
        } catch {
            if case .notFound = error { return }  // deleted meanwhile
            throw error
        }
    }
}
