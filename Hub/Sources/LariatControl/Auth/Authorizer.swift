import Foundation
import LariatStore
import Synchronization

/// Answers "may P do A" from the role bindings, as Rancher does over Kubernetes RBAC:
/// - a GlobalRoleBinding's rules apply everywhere;
/// - a ClusterRoleTemplateBinding's apply to requests in its cluster (the Cluster object
///   itself included: its `Access.cluster` is its own name), and to that cluster's projects;
/// - a ProjectRoleTemplateBinding's apply to the Project object and its objects
///   (`Access.project`) and to requests in the project's namespaces of its cluster;
/// - bindings to a group apply to every principal listing that group;
/// - every user may read its own User and manage its own Tokens and Forwards (`Access.owner`);
/// - a cluster-scoped token (`Principal.clusterScope`) is refused everything outside its cluster;
/// - whoever reaches a cluster (`canReach`) may discover its API and review itself there
///   (`DiscoveryBaseline`).
/// The rules are indexed in a snapshot rebuilt on the first request after any watched object
/// changes, so a revoked binding stops granting as soon as its watch event arrives.
public final class Authorizer: Authorizing {
    public let informers: RBACInformers
    /// The clusters' cache, for reachability (which clusters exist and are not being deleted);
    /// without it every cluster a binding names counts as existing.
    public let clusters: Informer<Cluster>?
    private let state = Mutex<RBACSnapshot?>(nil)

    /// Watches `informers` (start them before or after; both work).
    public init(informers: RBACInformers, clusters: Informer<Cluster>? = nil) {
        self.informers = informers
        self.clusters = clusters
        informers.onChange { [weak self] in self?.invalidate() }
    }

    /// Drops the index; the next decision rebuilds it from the informers' caches.
    public func invalidate() {
        state.withLock { $0 = nil }
    }

    public func authorize(_ principal: Principal, _ access: Access) -> Decision {
        if let scope = principal.clusterScope, effectiveCluster(access, snapshot()) != scope {
            return Decision(allowed: false, reason: "token of \(principal.name) is scoped to cluster \(scope): \(access) is outside it")
        }
        if let reason = Self.selfService(principal, access) { return Decision(allowed: true, reason: reason) }
        let snap = snapshot()
        let subjects = Self.subjects(of: principal)
        if let grant = snap.global.firstAllowing(access, for: subjects) {
            return Decision(allowed: true, reason: "allowed by \(grant.explanation)")
        }
        if let cluster = effectiveCluster(access, snap),
           let grant = snap.clusters[cluster]?.firstAllowing(access, for: subjects) {
            return Decision(allowed: true, reason: "allowed by \(grant.explanation) in cluster \(cluster)")
        }
        for project in snap.projects(for: access) {
            if let grant = snap.projectGrants[project]?.firstAllowing(access, for: subjects) {
                return Decision(allowed: true, reason: "allowed by \(grant.explanation) in project \(project)")
            }
        }
        if let cluster = access.cluster, DiscoveryBaseline.covers(access) {
            let reach = canReach(principal, cluster: cluster)
            if reach.allowed { return Decision(allowed: true, reason: "allowed by the discovery baseline (\(reach.reason))") }
        }
        return Decision(allowed: false, reason: "no rule allows \(access) for \(principal.name)")
    }

    /// The cluster a request is in: given, or the cluster of the project it names.
    private func effectiveCluster(_ access: Access, _ snap: @autoclosure () -> RBACSnapshot) -> String? {
        if let cluster = access.cluster { return cluster }
        if let project = access.project { return snap().projectCluster[project] }
        return nil
    }

    /// Verbs every user has on its own objects, whatever its bindings.
    static let ownUserVerbs: Set<String> = ["get", "list", "watch"]
    static let ownTokenVerbs: Set<String> = ["get", "list", "watch", "create", "delete"]
    /// Creating a forward takes a role's `create` on `forwards`; reading it also the access to its
    /// Service (the API checks that apart), and deleting one's own never takes more.
    static let ownForwardVerbs: Set<String> = ["get", "list", "watch", "update", "delete"]

    private static func selfService(_ principal: Principal, _ access: Access) -> String? {
        if principal.kind == .user, access.nonResourcePath == nil, access.apiGroup == Access.managementGroup,
           access.resource == Forward.plural, access.owner == principal.name, ownForwardVerbs.contains(access.verb) {
            return "allowed: a user may manage its own forwards"
        }
        guard principal.kind == .user, access.nonResourcePath == nil, access.apiGroup == Access.managementGroup,
              access.cluster == nil, access.namespace == nil, access.project == nil
        else { return nil }
        switch access.resource {
        case User.plural where access.name == principal.name && ownUserVerbs.contains(access.verb):
            return "allowed: a user may read its own User"
        case "\(User.plural)/password" where access.name == principal.name && access.verb == "update":
            return "allowed: a user may change its own password"
        case Token.plural where access.owner == principal.name && ownTokenVerbs.contains(access.verb):
            return "allowed: a user may manage its own tokens"
        default:
            return nil
        }
    }

    func snapshot() -> RBACSnapshot {
        state.withLock { s in
            if let snap = s { return snap }
            // Built under the lock: a change arriving meanwhile waits, then drops this snapshot.
            let snap = RBACSnapshot(informers)
            s = snap
            return snap
        }
    }
}
