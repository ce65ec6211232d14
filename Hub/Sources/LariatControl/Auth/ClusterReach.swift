import LariatStore

/// Which clusters a principal may reach through the hub's Kubernetes proxy
/// (`/k8s/clusters/<cluster>/…`) and get a kubeconfig for. Reaching a cluster is the gate in
/// front of it — the proxy answers 403 before anything is sent there — and each request is then
/// authorized on its own (`authorize`). A principal reaches a cluster that exists and is not
/// being deleted when
/// - a global grant allows it everything Kubernetes (every verb on every resource of every group,
///   as the `admin` role's `*`), or
/// - it (or a group it lists) has a ClusterRoleTemplateBinding in that cluster, or a
///   ProjectRoleTemplateBinding in one of that cluster's projects;
/// and a cluster-scoped token reaches its own cluster only.
extension Authorizer {
    /// What a global grant must allow for its holder to reach every cluster.
    static let everythingKubernetes = Access(verb: "*", apiGroup: "*", resource: "*")

    /// Whether `principal` reaches `cluster`, with the reason (for the audit record and the 403).
    public func canReach(_ principal: Principal, cluster: String) -> Decision {
        if let scope = principal.clusterScope, scope != cluster {
            return Decision(allowed: false, reason: "token of \(principal.name) is scoped to cluster \(scope), not \(cluster)")
        }
        if let missing = Self.unusable(cluster, clusters) { return Decision(allowed: false, reason: missing) }
        let snap = snapshot()
        let subjects = Self.subjects(of: principal)
        if let grant = snap.global.firstAllowing(Self.everythingKubernetes, for: subjects) {
            return Decision(allowed: true, reason: "\(principal.name) reaches every cluster by \(grant.explanation)")
        }
        for subject in subjects {
            if let via = snap.reach[subject]?[cluster] {
                return Decision(allowed: true, reason: "\(principal.name) reaches cluster \(cluster) by \(via)")
            }
        }
        return Decision(allowed: false, reason: "\(principal.name) has no role in cluster \(cluster) or its projects")
    }

    /// The clusters `principal` reaches, sorted by name. Without a clusters cache (`clusters`),
    /// a global grant's holder gets only the clusters some binding or project names.
    public func reachableClusters(_ principal: Principal) -> [String] {
        let snap = snapshot()
        let subjects = Self.subjects(of: principal)
        var names: Set<String>
        if snap.global.firstAllowing(Self.everythingKubernetes, for: subjects) != nil {
            names = Set(clusters?.items.map(\.name) ?? Array(snap.reach.values.flatMap(\.keys)))
        } else {
            names = Set(subjects.flatMap { snap.reach[$0].map { Array($0.keys) } ?? [] })
        }
        if let scope = principal.clusterScope { names = names.contains(scope) ? [scope] : [] }
        return names.filter { Self.unusable($0, clusters) == nil }.sorted()
    }

    static func subjects(of principal: Principal) -> [RBACSnapshot.Subject] {
        [.user(principal.name)] + principal.groups.map { .group($0) }
    }

    /// Why `cluster` cannot be reached whoever asks (unknown, being deleted), or nil.
    private static func unusable(_ cluster: String, _ clusters: Informer<Cluster>?) -> String? {
        guard let clusters else { return nil }
        guard let c = clusters.get(cluster) else { return "cluster \(cluster) not found" }
        if c.metadata.isBeingDeleted { return "cluster \(cluster) is being deleted" }
        return nil
    }
}
