import LariatStore

/// Whether a connection to a Forward's listener may be carried now. Nobody authenticates on a
/// raw TCP port, so the connection acts with its forward's owner's rights as they are at that
/// moment: the owner must still exist and be enabled, the cluster must exist, and the owner's
/// bindings must still allow what the forward grants (`Forward.grantedAccess`). Reads only
/// informer caches (a few dictionary lookups), so the hub asks on its acceptor loop.
public enum ForwardAuthorization {
    public static func connection(_ forward: Object<Forward>, users: Informer<User>, clusters: Informer<Cluster>,
                                  authorizer: any Authorizing) -> Decision {
        guard !forward.metadata.isBeingDeleted else {
            return Decision(allowed: false, reason: "forward \(forward.name) is being deleted")
        }
        let ownerName = forward.spec.ownerName
        guard let user = users.get(ownerName), !user.metadata.isBeingDeleted else {
            return Decision(allowed: false, reason: "owner \(ownerName) of forward \(forward.name) no longer exists")
        }
        guard user.spec.enabled else {
            return Decision(allowed: false, reason: "owner \(user.spec.username) of forward \(forward.name) is disabled")
        }
        let cluster = forward.spec.clusterName
        guard let c = clusters.get(cluster), !c.metadata.isBeingDeleted else {
            return Decision(allowed: false, reason: "cluster \(cluster) of forward \(forward.name) does not exist or is being deleted")
        }
        let access = Forward.grantedAccess(forward.spec)
        let decision = authorizer.authorize(TokenService.principal(of: user), access)
        guard decision.allowed else {
            return Decision(allowed: false, reason: "owner \(user.spec.username) of forward \(forward.name) may no longer \(access): \(decision.reason)")
        }
        return decision
    }
}
