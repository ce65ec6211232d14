import LariatStore

/// The routes of the identity and role kinds, and what they share.
public struct IdentityRoutes: Sendable {
    let control: ControlPlane
    let tokens: TokenService
    let users: Informer<User>
    let rbac: RBACInformers
    let hasher: PasswordHasher

    public static func register(control: ControlPlane, tokens: TokenService, users: Informer<User>, rbac: RBACInformers,
                                hasher: PasswordHasher, in builder: inout RouterBuilder) {
        let identity = IdentityRoutes(control: control, tokens: tokens, users: users, rbac: rbac, hasher: hasher)
        LoginRoute.register(identity, in: &builder)
        UsersRoute.register(identity, in: &builder)
        TokensRoute.register(identity, in: &builder)
        RolesRoutes.register(identity, in: &builder)
        BindingsRoutes.register(identity, in: &builder)
    }

    /// Whether `userName` is the only enabled user bound to the `admin` global role.
    func isLastAdmin(_ userName: String) -> Bool {
        let admins = Set(rbac.globalRoleBindings.items.filter { $0.spec.globalRoleName == "admin" }.compactMap(\.spec.userName))
            .filter { users.get($0)?.spec.enabled ?? false }
        return admins == [userName]
    }
}
