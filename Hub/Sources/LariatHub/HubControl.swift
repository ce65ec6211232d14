import Foundation
import Logging
import LariatControl
import LariatRuntime
import LariatStore

/// Which store the hub keeps its control plane in.
public enum StoreChoice: Sendable, Equatable {
    /// `DATA/store.db` (the default: one hub).
    case sqlite
    /// An etcd cluster several hubs share (`host`, `port`, key prefix).
    case etcd(host: String, port: Int, prefix: String)
}

/// Opens the hub's control plane: the store, the built-in roles, the informers and services
/// (tokens, authorization), the first admin and the first cluster, the API's routes.
struct HubControl {
    let control: ControlPlane
    let tokens: TokenService
    let users: Informer<User>
    /// Set on the first start: the admin's one-time password (unless it came from the environment).
    var bootstrapPassword: String?
    /// Set when the bootstrap cluster was created now: its registration token, to print once.
    var bootstrapClusterToken: String?
    var imported: [String] = []

    static let bootstrapPasswordVariable = "LARIAT_BOOTSTRAP_PASSWORD"

    static func open(configuration: HubConfiguration, caPEM: String, caChecksum: String, logger: Logger,
                     environment: [String: String] = ProcessInfo.processInfo.environment) throws -> HubControl {
        let backend: any StoreBackend
        switch configuration.store {
        case .sqlite:
            backend = try SQLiteBackend(folder: configuration.dataDirectory)
        case .etcd(let host, let port, let prefix):
            var settings = EtcdStoreSettings()
            settings.prefix = prefix
            backend = try EtcdBackend(host: host, port: port, settings: settings)
        }
        try BuiltinRoles.ensure(backend: backend)
        var settings = ControlPlane.Settings(serverURL: configuration.serverURL, caPEM: caPEM, caChecksum: caChecksum)
        settings.agentImage = configuration.agentImage
        let control = ControlPlane(backend: backend, settings: settings, logger: logger)
        let users = Informer<User>(store: ObjectStore(backend))
        let tokenObjects = Informer<Token>(store: ObjectStore(backend))
        let rbac = RBACInformers(backend: backend)
        let tokens = TokenService(tokens: tokenObjects, users: users)
        let authorizer = Authorizer(informers: rbac)
        try users.start()
        try tokenObjects.start()
        try rbac.start()

        var result = HubControl(control: control, tokens: tokens, users: users)
        result.bootstrapPassword = try bootstrapAdmin(users: users.store, roles: rbac, environment: environment)

        let audit: any AuditSink = try configuration.auditLog.map { try JSONLinesAuditSink(path: $0) } ?? MemoryAuditSink(capacity: 1000)
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
                                                      in: &builder)
                          })

        result.imported = try LegacyClusterImport.run(directory: configuration.dataDirectory, control: control)
        if control.clusterInformer.items.isEmpty, let name = configuration.bootstrapCluster {
            _ = try control.clusters.create(Object(name: name, spec: Cluster.Spec(displayName: name)))
            result.bootstrapClusterToken = try control.issueImport(for: name).registrationToken
        }
        // Informers may lag a write by a watch delivery: the data path must see what was just made.
        try waitUntil { control.clusterInformer.items.count >= (configuration.bootstrapCluster == nil ? 0 : 1) || !result.imported.isEmpty }
        return result
    }

    /// On a store without users: `admin`, bound to the `admin` global role, with a one-time
    /// password (from `LARIAT_BOOTSTRAP_PASSWORD`, or made here and returned to be printed)
    /// that must be changed at the first login.
    static func bootstrapAdmin(users: ObjectStore<User>, roles: RBACInformers, environment: [String: String]) throws -> String? {
        guard try users.list(limit: 1).items.isEmpty else { return nil }
        let given = environment[bootstrapPasswordVariable].flatMap { $0.isEmpty ? nil : $0 }
        let password = given ?? SecureRandom.lowercaseAlphanumeric(count: 20)
        let name = "user-admin"
        let hash = PasswordHasher().hash(password)
        do {
            _ = try users.create(Object(name: name, spec: User.Spec(username: "admin", displayName: "Default Admin",
                                                                    passwordHash: hash, mustChangePassword: true)))
        } catch {
            if case .alreadyExists = error { return nil }  // another hub made it first
            throw error
        }
        _ = try? roles.globalRoleBindings.store.create(Object(
            name: "grb-bootstrap-admin", spec: GlobalRoleBinding.Spec(userName: name, globalRoleName: "admin")))
        return given == nil ? password : nil
    }

    private static func waitUntil(_ condition: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(5)
        while !condition() && Date() < deadline { usleep(5_000) }
    }
}
