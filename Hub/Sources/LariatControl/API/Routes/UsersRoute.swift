import Foundation
import LariatStore

/// `/v3/users`: local users. Created with a password (hashed here; the hash is never shown),
/// read by themselves and by admins; `?action=changepassword` for the caller's own password,
/// `POST /v3/users/{name}/setpassword` for an admin's reset (which forces a change at next login).
enum UsersRoute {
    struct NewUser: Codable {
        var username: String
        var password: String
        var displayName: String?
        var description: String?
        var mustChangePassword: Bool?
        var enabled: Bool?
    }
    struct ChangePassword: Codable {
        var currentPassword: String
        var newPassword: String
    }
    struct SetPassword: Codable {
        var newPassword: String
    }

    static func register(_ identity: IdentityRoutes, in builder: inout RouterBuilder) {
        let control = identity.control
        let users = identity.users.store
        let hasher = identity.hasher
        var endpoint = KindEndpoint<User>(store: users)
        endpoint.validate = User.validate
        endpoint.owner = { $0.name }
        endpoint.present = { withoutDigest($0, \.spec.passwordHash) }
        let present = endpoint.present
        endpoint.prepareUpdate = { _, current, new in
            new.spec.passwordHash = current.spec.passwordHash      // only through the password actions
            new.spec.username = current.spec.username              // the login name is the identity
        }
        endpoint.refuseDelete = { [identity] u in
            identity.isLastAdmin(u.name) ? "\(u.spec.username) is the last administrator" : nil
        }

        builder.add("POST", "/v3/users") { ctx, _ in
            if ctx.request.query["action"] == "changepassword" {
                let body = try BodyDecoding.decode(ChangePassword.self, from: ctx.request.body)
                guard let me = try users.find(ctx.caller.name) else { throw APIError.notFound("no such user") }
                ctx.access = Access(verb: "update", resource: "users", name: me.name, owner: me.name)
                guard case .valid = hasher.verify(body.currentPassword, against: me.spec.passwordHash) else {
                    ctx.decisionReason = "wrong current password"
                    throw APIError.forbidden("the current password is wrong")
                }
                let errors = hasher.validateNew(body.newPassword)
                guard errors.isEmpty else { throw APIError.invalid(errors) }
                guard body.newPassword != body.currentPassword else {
                    throw APIError.invalid([FieldError("newPassword", "must differ from the current password")])
                }
                ctx.decisionReason = "own password"
                let updated = try users.modify(me.name) { u in
                    u.spec.passwordHash = hasher.hash(body.newPassword)
                    u.spec.mustChangePassword = false
                }
                identity.users.remember(updated)
                return .json(200, V3Item(present(updated)))
            }
            let body = try BodyDecoding.decode(NewUser.self, from: ctx.request.body)
            var user = Object<User>(name: "u-" + SecureRandomName.make(), spec: User.Spec(
                username: body.username, displayName: body.displayName ?? "", description: body.description ?? "",
                mustChangePassword: body.mustChangePassword ?? false, enabled: body.enabled ?? true))
            try control.router.authorize(ctx, Access(verb: "create", resource: "users", name: user.name))
            var errors = User.validate(user) + hasher.validateNew(body.password, field: "password")
            if identity.users.items.contains(where: { $0.spec.username == body.username }) {
                errors.append(FieldError("username", "\"\(body.username)\" is taken"))
            }
            guard errors.isEmpty else { throw APIError.invalid(errors) }
            user.spec.passwordHash = hasher.hash(body.password)
            let created = try users.create(user)
            identity.users.remember(created)
            for b in BuiltinRoles.newUserBindings(userName: created.name, roles: identity.rbac.globalRoles.items) {
                if let made = try? identity.rbac.globalRoleBindings.store.create(b) { identity.rbac.globalRoleBindings.remember(made) }
            }
            return .json(201, V3Item(present(created)))
        }
        builder.add("POST", "/v3/users/{name}/setpassword") { ctx, p in
            let body = try BodyDecoding.decode(SetPassword.self, from: ctx.request.body)
            let name = p["name"]!
            guard let target = try users.find(name) else { throw APIError.notFound("User \"\(name)\" not found") }
            // Resetting another's password is an admin's act, not a self-service one.
            try control.router.authorize(ctx, Access(verb: "update", resource: "users", name: name))
            let errors = hasher.validateNew(body.newPassword)
            guard errors.isEmpty else { throw APIError.invalid(errors) }
            let updated = try users.modify(target.name) { u in
                u.spec.passwordHash = hasher.hash(body.newPassword)
                u.spec.mustChangePassword = true
            }
            identity.users.remember(updated)
            return .json(200, V3Item(present(updated)))
        }
        endpoint.disallowed = ["create"]
        endpoint.informer = identity.users
        endpoint.register(in: &builder) { control.router }
    }
}

/// Random object names (`u-xxxxx`), as Rancher makes them.
enum SecureRandomName {
    static func make() -> String { SecureRandom.lowercaseAlphanumeric(count: 5) }
}

import LariatRuntime
