import Foundation
import LariatStore

/// `POST /v3-public/localProviders/local?action=login`: a username and password for a session
/// token, as Rancher's local provider answers. Every failure is the same 401 (the audit record
/// says which); an unknown user costs the same hash as a known one.
enum LoginRoute {
    struct Login: Codable {
        var username: String
        var password: String
        var description: String?
        /// Milliseconds; absent: the server's session lifetime.
        var ttl: Int64?
        var responseType: String?
    }

    struct Answer: Encodable {
        var type = "token"
        var token: String
        var userId: String
        var expiresAt: Date?
        var mustChangePassword: Bool
    }

    static func register(_ identity: IdentityRoutes, in builder: inout RouterBuilder) {
        let hasher = identity.hasher
        builder.add("POST", "/v3-public/localProviders/local", public: true) { ctx, _ in
            guard ctx.request.query["action"] == "login" else {
                throw APIError.badRequest("the local provider's only action is ?action=login")
            }
            let body = try BodyDecoding.decode(Login.self, from: ctx.request.body)
            ctx.access = Access(verb: "create", resource: "tokens")
            let failed = APIError(401, "Unauthorized", "authentication failed: wrong username or password")
            guard let user = identity.users.items.first(where: { $0.spec.username == body.username }) else {
                _ = hasher.verifyUnknownUser(body.password)
                ctx.decisionReason = "login: no user \(body.username.logQuoted)"
                throw failed
            }
            guard case .valid(let needsRehash) = hasher.verify(body.password, against: user.spec.passwordHash) else {
                ctx.decisionReason = "login: wrong password for \(body.username.logQuoted)"
                throw failed
            }
            guard user.spec.enabled else {
                ctx.decisionReason = "login: \(body.username.logQuoted) is disabled"
                throw failed
            }
            if needsRehash {
                _ = try? identity.users.store.modify(user.name) { $0.spec.passwordHash = hasher.hash(body.password) }
            }
            let issued: IssuedToken
            if let ttl = body.ttl, ttl > 0 {
                issued = try identity.tokens.issue(userName: user.name, description: body.description ?? "login",
                                                   ttl: TimeInterval(ttl) / 1000)
            } else {
                issued = try identity.tokens.issueLogin(userName: user.name, description: body.description ?? "login")
            }
            ctx.principal = Principal(kind: .user, name: user.name, username: user.spec.username, tokenName: issued.token.name)
            ctx.decisionReason = "login"
            return .json(201, Answer(token: issued.bearer, userId: user.name, expiresAt: issued.token.spec.expiresAt,
                                     mustChangePassword: user.spec.mustChangePassword))
        }
    }
}

import LariatRuntime
