import Foundation
import LariatStore

/// `/v3/tokens`: API tokens. Each user creates, lists and revokes its own (admins anyone's);
/// the bearer (`token-xxxxx:secret`) is in the create answer only. `?action=logout` revokes
/// the token the request came with.
enum TokensRoute {
    struct NewToken: Codable {
        var description: String?
        /// Milliseconds, as Rancher's `ttl`; absent or 0: the server's longest.
        var ttl: Int64?
        /// A token for one cluster only (the kubeconfig of that cluster carries it).
        var clusterId: String?
    }

    /// The create answer: the stored object plus, once, the bearer.
    struct Created: Encodable {
        var item: V3Item<Token>
        var token: String
        enum Keys: String, CodingKey { case token }
        func encode(to encoder: any Encoder) throws {
            try item.encode(to: encoder)
            var c = encoder.container(keyedBy: Keys.self)
            try c.encode(token, forKey: .token)
        }
    }

    static func present(_ t: Object<Token>) -> Object<Token> { withoutDigest(t, \.spec.secretDigest) }

    static func register(_ identity: IdentityRoutes, in builder: inout RouterBuilder) {
        let control = identity.control
        var endpoint = KindEndpoint<Token>(store: identity.tokens.tokens.store)
        endpoint.owner = { $0.spec.userName }
        endpoint.present = present
        endpoint.validate = Token.validate
        endpoint.prepareUpdate = { _, current, new in
            // Only the description and `enabled` may change: the secret, owner and expiry are fixed.
            let description = new.spec.description, enabled = new.spec.enabled
            new.spec = current.spec
            new.spec.description = description
            new.spec.enabled = enabled
        }
        builder.add("POST", "/v3/tokens") { ctx, _ in
            if ctx.request.query["action"] == "logout" {
                guard let name = ctx.caller.tokenName else { throw APIError.badRequest("this request did not use a token") }
                ctx.access = Access(verb: "delete", resource: "tokens", name: name, owner: ctx.caller.name)
                ctx.decisionReason = "logout revokes the caller's own token"
                try identity.tokens.revoke(name)
                return .json(200, ["type": "logout", "token": name])
            }
            let body = try BodyDecoding.decode(NewToken.self, from: ctx.request.body)
            try control.router.authorize(ctx, Access(verb: "create", resource: "tokens", owner: ctx.caller.name))
            if let ttl = body.ttl, ttl < 0 { throw APIError.invalid([FieldError("ttl", "milliseconds, 0 or more")]) }
            if let cluster = body.clusterId, control.clusterInformer.get(cluster) == nil {
                throw APIError.invalid([FieldError("clusterId", "no cluster \"\(cluster)\"")])
            }
            let issued = try identity.tokens.issue(userName: ctx.caller.name, description: body.description ?? "",
                                                   ttl: body.ttl.map { TimeInterval($0) / 1000 }, clusterName: body.clusterId)
            return .json(201, Created(item: V3Item(present(issued.token)), token: issued.bearer))
        }
        endpoint.disallowed = ["create"]
        endpoint.informer = identity.tokens.tokens
        endpoint.register(in: &builder) { control.router }
    }
}
