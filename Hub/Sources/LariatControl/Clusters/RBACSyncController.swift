import Foundation
import Logging
import LariatRuntime
import LariatStore
import Synchronization

/// Keeps each cluster's RBAC in step with the hub's role bindings (issue #10, "Downward"), so an
/// impersonated user has in the cluster exactly the rights its Lariat roles give it: the objects
/// `ClusterRBACObjects` describes are created when missing, updated when they drifted (rules,
/// subjects, our labels; a changed roleRef, which Kubernetes never updates, by delete and
/// create), and deleted when no longer wanted. It lists only objects labelled
/// `lariat.io/managed-by: lariat-hub`, so nothing it did not make is ever touched.
///
/// One `WorkQueue` keyed by cluster. A change in the role bindings, roles, role templates or
/// projects enqueues the clusters it concerns; an agent connecting enqueues its cluster
/// (`clusterConnected`); every `resyncInterval` every cluster is enqueued, which repairs hand
/// edits. A cluster with no agent on this hub is skipped quietly and done at its next trigger.
/// Requests go through `ClusterAPIClient` as `lariat:controller`; each change made is one log line.
public final class RBACSyncController: Sendable {
    public struct Settings: Sendable, Equatable {
        /// How often every cluster is looked at again (repairs edits made in the cluster).
        public var resyncInterval: TimeInterval = 30
        /// The longest one request to a cluster's API server may take.
        public var requestTimeout: TimeInterval = 10
        /// Clusters synced at once: a slow cluster's requests (each up to `requestTimeout`)
        /// must not hold up every other cluster's.
        public var workers = 2
        /// First retry delay of a failed sync (doubling up to `maxRetryDelay`).
        public var retryDelay: TimeInterval = 0.5
        public var maxRetryDelay: TimeInterval = 30
        public init() {}
    }

    public let settings: Settings
    private let queue: WorkQueue
    private let informers: RBACInformers
    private let clusters: Informer<Cluster>
    private let stopped = Atomic<Bool>(false)
    /// The cluster each binding and project was last seen in: a change that moves one, or
    /// deletes it, re-syncs the cluster it left too.
    private let placements = Mutex<[String: String]>([:])

    /// Starts following the informers (which may be running already). Nothing is synced until a
    /// trigger: an agent connecting, a change, or the first resync.
    public init(informers: RBACInformers, clusters: Informer<Cluster>, api: any ClusterAPIClient,
                settings: Settings = Settings(), logger: Logger) {
        self.settings = settings
        self.informers = informers
        self.clusters = clusters
        let pass = RBACSyncPass(informers: informers, api: api, timeout: settings.requestTimeout, logger: logger)
        var q = WorkQueue.Settings()
        q.workers = max(1, settings.workers)
        q.baseDelay = settings.retryDelay
        q.maxDelay = settings.maxRetryDelay
        queue = WorkQueue(name: "rbac-sync", settings: q, onError: { cluster, error, attempt in
            if attempt == 1 || attempt % 10 == 0 {
                logger.warning("rbac sync of cluster \(cluster.logQuoted): \(error) (attempt \(attempt); retrying with backoff)")
            }
        }, reconcile: { cluster in _ = try pass.sync(cluster: cluster) })
        follow()
        seedPlacements()
        scheduleResync()
    }

    /// An agent of `cluster` connected to this hub: its RBAC is brought up to date now.
    public func clusterConnected(_ cluster: String) { queue.add(cluster) }

    public func stop() {
        stopped.store(true, ordering: .relaxed)
        queue.stop()
    }

    // MARK: Triggers

    private func enqueueAll() {
        for c in clusters.items where !c.metadata.isBeingDeleted { queue.add(c.name) }
    }

    /// Enqueues `cluster` and, if `key` was last seen in another cluster, that one.
    private func enqueue(_ key: String, in cluster: String?, gone: Bool = false) {
        let previous = placements.withLock { p -> String? in
            defer { p[key] = gone ? nil : cluster }
            return p[key]
        }
        if let cluster { queue.add(cluster) }
        if let previous, previous != cluster { queue.add(previous) }
    }

    /// Where every binding and project is now (the informers may have listed before `follow`).
    private func seedPlacements() {
        let i = informers
        var p: [String: String] = [:]
        for b in i.clusterBindings.items { p["crtb/" + b.name] = b.spec.clusterName }
        for project in i.projects.items { p["project/" + project.name] = project.spec.clusterName }
        for b in i.projectBindings.items {
            if let c = i.projects.get(b.spec.projectName)?.spec.clusterName { p["prtb/" + b.name] = c }
        }
        placements.withLock { $0.merge(p) { current, _ in current } }
    }

    private func follow() {
        let i = informers
        // A role or template can be used anywhere.
        i.roleTemplates.onChange { [weak self] _ in self?.enqueueAll() }
        i.globalRoles.onChange { [weak self] _ in self?.enqueueAll() }
        // A global binding matters to the clusters only if its role has Kubernetes rules
        // (every user's `user` binding has none: no work per new user).
        i.globalRoleBindings.onChange { [weak self] change in
            switch change {
            case .upserted(let b), .deleted(let b):
                if let role = i.globalRoles.get(b.spec.globalRoleName),
                   ClusterRBACObjects.kubernetesRules(role.spec.rules).isEmpty { return }
                self?.enqueueAll()
            case .resynced: self?.enqueueAll()
            }
        }
        i.clusterBindings.onChange { [weak self] change in
            switch change {
            case .upserted(let b): self?.enqueue("crtb/" + b.name, in: b.spec.clusterName)
            case .deleted(let b): self?.enqueue("crtb/" + b.name, in: b.spec.clusterName, gone: true)
            case .resynced: self?.enqueueAll()
            }
        }
        i.projectBindings.onChange { [weak self] change in
            switch change {
            case .upserted(let b): self?.enqueue("prtb/" + b.name, in: i.projects.get(b.spec.projectName)?.spec.clusterName)
            case .deleted(let b):
                self?.enqueue("prtb/" + b.name, in: i.projects.get(b.spec.projectName)?.spec.clusterName, gone: true)
            case .resynced: self?.enqueueAll()
            }
        }
        i.projects.onChange { [weak self] change in
            switch change {
            case .upserted(let p): self?.enqueue("project/" + p.name, in: p.spec.clusterName)
            case .deleted(let p): self?.enqueue("project/" + p.name, in: p.spec.clusterName, gone: true)
            case .resynced: self?.enqueueAll()
            }
        }
    }

    private func scheduleResync() {
        let interval = max(0.05, settings.resyncInterval)
        DispatchQueue.global().asyncAfter(deadline: .now() + interval) { [weak self] in
            guard let self, !stopped.load(ordering: .relaxed) else { return }
            enqueueAll()
            scheduleResync()
        }
    }
}

/// What one sync of a cluster did.
public struct RBACSyncReport: Sendable, Equatable {
    public var cluster: String
    /// No agent of the cluster is connected to this hub: nothing was looked at.
    public var unavailable = false
    /// One line per change made ("created ClusterRole lariat-rt-x"), in order.
    public var changes: [String] = []
    /// Wanted objects left alone: their name is taken by an object we did not make, or their
    /// namespace does not exist (yet).
    public var skipped: [String] = []
}

/// One sync of one cluster: list what we made, compare with what is wanted, change the difference.
/// Run by the controller's queue, never twice at once for one cluster.
final class RBACSyncPass: Sendable {
    let informers: RBACInformers
    let api: any ClusterAPIClient
    let timeout: TimeInterval
    let logger: Logger
    /// Problems already logged, so a resync every 30 s does not repeat them (cleared once solved).
    private let noticed = Mutex<Set<String>>([])

    init(informers: RBACInformers, api: any ClusterAPIClient, timeout: TimeInterval, logger: Logger) {
        self.informers = informers
        self.api = api
        self.timeout = timeout
        self.logger = logger
    }

    /// No agent of the cluster here: the sync stops quietly.
    private struct Unavailable: Error {}

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    @discardableResult
    func sync(cluster: String) throws -> RBACSyncReport {
        var report = RBACSyncReport(cluster: cluster)
        do {
            try run(cluster, &report)
        } catch {
            if error is Unavailable {
                report.unavailable = true
                logger.debug("rbac sync: cluster \(cluster.logQuoted) has no agent on this hub; skipped")
                return report
            }
            throw error
        }
        return report
    }

    private func run(_ cluster: String, _ report: inout RBACSyncReport) throws {
        let wanted = ClusterRBACObjects.desired(cluster: cluster, from: informers)
        var actual: [KubeRBACObject.Key: KubeRBACObject] = [:]
        for kind in KubeRBACObject.Kind.allCases {
            for o in try list(cluster, kind) { actual[o.key] = o }
        }
        var failures: [String] = []
        func attempt(_ step: () throws -> Void) throws {
            do { try step() } catch {
                if error is Unavailable { throw error }
                failures.append("\(error)")
            }
        }
        // Bindings first out, roles first in: no binding ever points at a role being removed.
        for (key, have) in actual.sorted(by: { $0.key < $1.key }) where key.kind.isBinding && wanted[key] == nil {
            try attempt { try delete(cluster, have, &report, why: "no longer wanted") }
        }
        // A role whose name is taken by an object we did not make has unknown rules: nobody is bound to it.
        var foreignRoles: Set<String> = []
        for (key, want) in wanted.sorted(by: { $0.key < $1.key }) where !key.kind.isBinding {
            try attempt { if try !apply(cluster, want, actual[key], &report) { foreignRoles.insert(key.name) } }
        }
        for (key, want) in wanted.sorted(by: { $0.key < $1.key }) where key.kind.isBinding {
            if let role = want.roleRef?.name, foreignRoles.contains(role) {
                skip(cluster, key, "its ClusterRole \(role) is not one we made", &report)
                continue
            }
            try attempt { _ = try apply(cluster, want, actual[key], &report) }
        }
        for (key, have) in actual.sorted(by: { $0.key < $1.key }) where !key.kind.isBinding && wanted[key] == nil {
            try attempt { try delete(cluster, have, &report, why: "no longer wanted") }
        }
        if !failures.isEmpty {
            throw Failure(description: failures.prefix(3).joined(separator: "; ") + (failures.count > 3 ? " (and \(failures.count - 3) more)" : ""))
        }
    }

    /// Creates, updates or re-creates `want`; false when it was skipped (see `create`).
    private func apply(_ cluster: String, _ want: KubeRBACObject, _ have: KubeRBACObject?, _ report: inout RBACSyncReport) throws -> Bool {
        guard let have else { return try create(cluster, want, &report) }
        if want.key.kind.isBinding, have.roleRef != want.roleRef {
            // roleRef is immutable in Kubernetes.
            try delete(cluster, have, &report, why: "its role changed to \(want.roleRef?.name ?? "?")")
            return try create(cluster, want, &report)
        }
        guard let drift = want.drift(from: have) else { return true }
        let body = try APIJSON.encoder.encode(want.replacing(have))
        let r = try call(cluster, "PUT", want.key.path, body)
        guard r.isSuccess else { throw failure(cluster, "update", want.key, r) }
        change(cluster, "updated \(want.key) (\(drift) drifted)", &report)
        return true
    }

    /// False when skipped: the name is taken by an object we did not make, or the namespace is missing.
    private func create(_ cluster: String, _ want: KubeRBACObject, _ report: inout RBACSyncReport) throws -> Bool {
        let key = want.key
        let r = try call(cluster, "POST", ClusterRBACObjects.collectionPath(key.kind, namespace: key.namespace),
                         try APIJSON.encoder.encode(want))
        if r.isSuccess {
            noticed.withLock { _ = $0.remove(cluster + "\u{0}" + key.description) }
            change(cluster, "created \(key)", &report)
            return true
        }
        // Taken: by an object we made after our list (another pass), or by one without our
        // label, which is never ours to take over.
        if r.status == 409 {
            let existing = try call(cluster, "GET", key.path, nil)
            if existing.isSuccess, let o = try? APIJSON.decoder.decode(KubeRBACObject.self, from: existing.body),
               o.metadata.labels?[ClusterRBACObjects.managedByLabel] == ClusterRBACObjects.managedByValue {
                return true
            }
            skip(cluster, key, "an object of that name exists without label \(ClusterRBACObjects.selector); leaving it alone", &report)
            return false
        }
        if r.status == 404, key.kind == .roleBinding {
            skip(cluster, key, "namespace \(key.namespace.logQuoted) does not exist; bound once it does (next resync)", &report)
            return false
        }
        throw failure(cluster, "create", key, r)
    }

    private func delete(_ cluster: String, _ have: KubeRBACObject, _ report: inout RBACSyncReport, why: String) throws {
        let r = try call(cluster, "DELETE", have.key.path, nil)
        // 404: gone already.
        guard r.isSuccess || r.status == 404 else { throw failure(cluster, "delete", have.key, r) }
        change(cluster, "deleted \(have.key) (\(why))", &report)
    }

    private func list(_ cluster: String, _ kind: KubeRBACObject.Kind) throws -> [KubeRBACObject] {
        let selector = ClusterRBACObjects.selector.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(.init(charactersIn: "-._"))) ?? ""
        let r = try call(cluster, "GET", ClusterRBACObjects.collectionPath(kind, namespace: "") + "?labelSelector=" + selector, nil)
        guard r.isSuccess else { throw failure(cluster, "list", nil, r, kind: kind) }
        do {
            var items = try APIJSON.decoder.decode(KubeRBACList.self, from: r.body).items ?? []
            // List items carry no kind (as kube-apiserver's): it is the list's.
            for i in items.indices { items[i].kind = kind.rawValue }
            return items.filter { $0.metadata.labels?[ClusterRBACObjects.managedByLabel] == ClusterRBACObjects.managedByValue }
        } catch {
            throw Failure(description: "cluster \(cluster.logQuoted): cannot read the \(kind.resource) list: \(error)")
        }
    }

    private func call(_ cluster: String, _ method: String, _ path: String, _ body: Data?) throws -> ClusterAPIResponse {
        let result = api.request(cluster: cluster, method: method, path: path, body: body,
                                 contentType: body == nil ? nil : "application/json", timeout: timeout)
        switch result {
        case .success(let r): return r
        case .failure(let e):
            if case .unavailable = e { throw Unavailable() }
            throw Failure(description: "\(method) \(path): \(e)")
        }
    }

    private func change(_ cluster: String, _ what: String, _ report: inout RBACSyncReport) {
        report.changes.append(what)
        logger.info("rbac sync: cluster \(cluster.logQuoted): \(what)")
    }

    private func skip(_ cluster: String, _ key: KubeRBACObject.Key, _ why: String, _ report: inout RBACSyncReport) {
        report.skipped.append("\(key): \(why)")
        let first = noticed.withLock { $0.insert(cluster + "\u{0}" + key.description).inserted }
        if first { logger.warning("rbac sync: cluster \(cluster.logQuoted): not creating \(key): \(why)") }
    }

    private func failure(_ cluster: String, _ action: String, _ key: KubeRBACObject.Key?, _ r: ClusterAPIResponse,
                         kind: KubeRBACObject.Kind? = nil) -> Failure {
        // The API server's Status message, bounded: it comes from the cluster.
        let message = (try? JSONSerialization.jsonObject(with: r.body) as? [String: Any])?["message"] as? String
            ?? String(decoding: r.body.prefix(200), as: UTF8.self)
        let what = key.map(\.description) ?? kind.map(\.resource) ?? "?"
        return Failure(description: "cannot \(action) \(what): \(r.status) \(String(message.prefix(300)).logQuoted)")
    }
}
