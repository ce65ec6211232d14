import LariatStore

/// `/v3/forwards`: raw TCP forwards to a cluster's Services, owned by the user who creates
/// them. Every verb but delete takes the access the forward grants (`get` on the Service's
/// `services/proxy`) besides the management verb on `forwards`: project members create forwards
/// to their project's namespaces, owners read, change and delete their own (`Authorizer`),
/// project and cluster owners and admins all in their scope. Deleting never takes the Service
/// access: an owner who lost it can still remove what it made.
enum ForwardsRoute {
    static func register(_ control: ControlPlane, in builder: inout RouterBuilder) {
        var endpoint = KindEndpoint<Forward>(store: control.forwards)
        let ports = control.settings.forwardListenPorts
        endpoint.validate = { forward in
            var errors = Forward.validate(forward, allowedListenPorts: ports)
            guard errors.isEmpty else { return errors }
            if control.clusterInformer.get(forward.spec.clusterName) == nil {
                errors.append(FieldError("spec.clusterName", "no cluster \"\(forward.spec.clusterName)\""))
            }
            // A fixed address is one forward's: the second could never bind it.
            if let listen = forward.spec.listen, let (_, port) = Forward.listenAddress(listen), port != 0,
               let other = control.forwardInformer.items.first(where: { $0.name != forward.name && $0.spec.listen == listen }) {
                errors.append(FieldError("spec.listen", "\(listen) is already the address of forward \"\(other.name)\""))
            }
            return errors
        }
        endpoint.scope = { (cluster: $0.spec.clusterName, project: nil) }
        endpoint.namespace = { $0.spec.namespace }
        endpoint.owner = { $0.spec.ownerName }
        endpoint.alsoRequires = { verb, forward in verb == "delete" ? nil : Forward.grantedAccess(forward.spec) }
        endpoint.prepareCreate = { ctx, forward in
            guard ctx.caller.kind == .user else { throw APIError.forbidden("only users own forwards") }
            forward.spec.ownerName = ctx.caller.name
            let owned = control.forwardInformer.items.count { $0.spec.ownerName == ctx.caller.name }
            let limit = control.settings.maxForwardsPerOwner
            if owned >= limit {
                throw APIError.forbidden("\(ctx.caller.username) already owns \(owned) forwards, the most one user may (maxForwardsPerOwner \(limit))")
            }
        }
        endpoint.prepareUpdate = { _, current, new in
            // The owner and the target are what the forward was authorized for: only the
            // listener and the description may change.
            let listen = new.spec.listen, description = new.spec.description
            new.spec = current.spec
            new.spec.listen = listen
            new.spec.description = description
        }
        endpoint.informer = control.forwardInformer
        endpoint.register(in: &builder) { control.router }
    }
}
