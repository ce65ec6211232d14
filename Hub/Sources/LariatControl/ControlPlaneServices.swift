import Foundation
import Logging
import LariatRuntime
import LariatStore

/// The control plane with its identity services, assembled over one store: built-in roles
/// ensured, informers started, token authentication and RBAC authorization wired into the
/// router, a first admin made on an empty store, and cluster creators made owners. The hub
/// opens one; tests open their own over a real SQLite store.
public struct ControlPlaneServices: Sendable {
    public let control: ControlPlane
    public let tokens: TokenService
    public let users: Informer<User>
    public let rbac: RBACInformers
    public let authorizer: Authorizer
    /// Set when this call made the first admin with a generated password (to print once).
    public let bootstrapPassword: String?

    public static let bootstrapPasswordVariable = "LARIAT_BOOTSTRAP_PASSWORD"

    public static func open(backend: any StoreBackend, settings: ControlPlane.Settings, audit: any AuditSink,
                            logger: Logger, passwordHasher: PasswordHasher = PasswordHasher(),
                            environment: [String: String] = ProcessInfo.processInfo.environment,
                            extraRoutes: @escaping (inout RouterBuilder) -> Void = { _ in }) throws -> ControlPlaneServices {
        try BuiltinRoles.ensure(backend: backend)
        let control = ControlPlane(backend: backend, settings: settings, logger: logger)
        let users = Informer<User>(store: ObjectStore(backend))
        let tokenObjects = Informer<Token>(store: ObjectStore(backend))
        let rbac = RBACInformers(backend: backend, projects: control.projectInformer)
        let tokens = TokenService(tokens: tokenObjects, users: users)
        let authorizer = Authorizer(informers: rbac, clusters: control.clusterInformer)
        try users.start()
        try tokenObjects.start()
        try rbac.start()
        let password = try bootstrapAdmin(users: users, roles: rbac, hasher: passwordHasher, environment: environment)

        control.whenClusterCreated { cluster, principal in
            guard principal.kind == .user else { return }
            do {
                _ = try rbac.clusterBindings.store.create(BuiltinRoles.creatorBinding(cluster: cluster.name, creator: principal.name))
            } catch {
                if case StoreFailure.alreadyExists = error { return }
                logger.error("cannot make \(principal.username.logQuoted) the owner of cluster \(cluster.name.logQuoted): \(error)")
            }
        }
        try control.start(authenticator: tokens, authorizer: authorizer, audit: audit,
                          passwordChangeRequired: { p in users.get(p.name)?.spec.mustChangePassword ?? false },
                          routes: { builder in
                              IdentityRoutes.register(control: control, tokens: tokens, users: users, rbac: rbac,
                                                      hasher: passwordHasher, in: &builder)
                              KubeconfigRoutes.register(control: control, tokens: tokens, authorizer: authorizer, in: &builder)
                              extraRoutes(&builder)
                          })
        return ControlPlaneServices(control: control, tokens: tokens, users: users, rbac: rbac, authorizer: authorizer,
                                    bootstrapPassword: password)
    }

    public func stop() {
        control.stop()
        users.stop()
        tokens.tokens.stop()
        rbac.stop()
    }

    /// On a store without users: `admin`, bound to the `admin` global role, with a one-time
    /// password (from `LARIAT_BOOTSTRAP_PASSWORD`, or made here and returned to be printed)
    /// that must be changed at the first login.
    static func bootstrapAdmin(users: Informer<User>, roles: RBACInformers, hasher: PasswordHasher,
                               environment: [String: String]) throws -> String? {
        guard try users.store.list(limit: 1).items.isEmpty else { return nil }
        let given = environment[bootstrapPasswordVariable].flatMap { $0.isEmpty ? nil : $0 }
        let password = given ?? SecureRandom.lowercaseAlphanumeric(count: 20)
        let name = "user-admin"
        do {
            users.remember(try users.store.create(Object(name: name, spec: User.Spec(
                username: "admin", displayName: "Default Admin", passwordHash: hasher.hash(password), mustChangePassword: true))))
        } catch {
            if case .alreadyExists = error { return nil }  // another hub made it first
            throw error
        }
        if let binding = try? roles.globalRoleBindings.store.create(Object(
            name: "grb-bootstrap-admin", spec: GlobalRoleBinding.Spec(userName: name, globalRoleName: "admin"))) {
            roles.globalRoleBindings.remember(binding)
        }
        return given == nil ? password : nil
    }
}
