import Foundation
import LariatRuntime
import LariatStore

/// `/v3/clusterregistrationtokens` (list, get, delete; new ones come from a cluster's `import`
/// action, which shows the secret once) and `/v3/agentcredentials` (each registered agent's own
/// credential: list, get, revoke by delete).
enum RegistrationRoutes {
    static func register(_ control: ControlPlane, in builder: inout RouterBuilder) {
        var tokens = KindEndpoint<ClusterRegistrationToken>(store: control.registrationTokens)
        tokens.scope = { (cluster: $0.spec.clusterName, project: nil) }
        tokens.present = { withoutDigest($0, \.spec.secretSHA256) }
        tokens.disallowed = ["create", "update"]
        tokens.informer = control.registrationTokenInformer
        tokens.register(in: &builder) { control.router }

        var credentials = KindEndpoint<AgentCredential>(store: control.agentCredentials)
        credentials.scope = { (cluster: $0.spec.clusterName, project: nil) }
        credentials.present = { withoutDigest($0, \.spec.secretSHA256) }
        credentials.disallowed = ["create", "update"]
        credentials.informer = control.agentCredentialInformer
        credentials.register(in: &builder) { control.router }
        let presentCredential = credentials.present

        // POST /v3-public/agentregistrations: an agent trades its cluster's registration token
        // for a credential of its own (the token in the body authenticates the request).
        builder.add("POST", "/v3-public/agentregistrations", public: true) { ctx, _ in
            let r = try BodyDecoding.decode(AgentRegistration.self, from: ctx.request.body)
            ctx.access = Access(verb: "create", resource: AgentCredential.plural, cluster: r.cluster)
            ctx.decisionReason = "registration of agent \(r.agentID.logQuoted)"
            return .json(201, try control.registerAgent(r))
        }

        // POST /v3/agentcredentials/{name}/revoke: the agent's tunnel closes, and its id cannot
        // register again until the credential is deleted.
        builder.add("POST", "/v3/agentcredentials/{name}/revoke") { ctx, p in
            let name = p["name"]!
            guard let current = try control.agentCredentials.find(name) else {
                throw APIError.notFound("AgentCredential \"\(name)\" not found")
            }
            try control.router.authorize(ctx, Access(verb: "update", resource: AgentCredential.plural, name: name,
                                                     cluster: current.spec.clusterName))
            let revoked = try control.agentCredentials.modify(name) { $0.spec.revoked = true }
            return .json(200, V3Item(presentCredential(revoked)))
        }
    }
}

/// What clients see of an object holding a secret's digest: the object without it.
func withoutDigest<R: Resource>(_ o: Object<R>, _ field: WritableKeyPath<Object<R>, String>) -> Object<R> {
    var shown = o
    shown[keyPath: field] = ""
    return shown
}
