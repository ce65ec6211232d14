import Foundation
import LariatStore

/// The caches the authorizer decides from: roles, the three binding kinds and projects.
public struct RBACInformers: Sendable {
    public let globalRoles: Informer<GlobalRole>
    public let globalRoleBindings: Informer<GlobalRoleBinding>
    public let roleTemplates: Informer<RoleTemplate>
    public let clusterBindings: Informer<ClusterRoleTemplateBinding>
    public let projectBindings: Informer<ProjectRoleTemplateBinding>
    public let projects: Informer<Project>

    public init(globalRoles: Informer<GlobalRole>, globalRoleBindings: Informer<GlobalRoleBinding>,
                roleTemplates: Informer<RoleTemplate>, clusterBindings: Informer<ClusterRoleTemplateBinding>,
                projectBindings: Informer<ProjectRoleTemplateBinding>, projects: Informer<Project>) {
        self.globalRoles = globalRoles
        self.globalRoleBindings = globalRoleBindings
        self.roleTemplates = roleTemplates
        self.clusterBindings = clusterBindings
        self.projectBindings = projectBindings
        self.projects = projects
    }

    /// New (not started) informers over `backend`; pass the hub's own `Informer<Project>` if it
    /// keeps one, so there is one cache per kind.
    public init(backend: any StoreBackend, projects: Informer<Project>? = nil) {
        self.init(globalRoles: Informer(store: ObjectStore(backend)),
                  globalRoleBindings: Informer(store: ObjectStore(backend)),
                  roleTemplates: Informer(store: ObjectStore(backend)),
                  clusterBindings: Informer(store: ObjectStore(backend)),
                  projectBindings: Informer(store: ObjectStore(backend)),
                  projects: projects ?? Informer(store: ObjectStore(backend)))
    }

    /// Calls `handler` after any of the caches changed.
    public func onChange(_ handler: @escaping @Sendable () -> Void) {
        globalRoles.onChange { _ in handler() }
        globalRoleBindings.onChange { _ in handler() }
        roleTemplates.onChange { _ in handler() }
        clusterBindings.onChange { _ in handler() }
        projectBindings.onChange { _ in handler() }
        projects.onChange { _ in handler() }
    }

    /// Starts every informer not yet synced (returns once all have listed).
    public func start() throws(StoreFailure) {
        if !globalRoles.hasSynced { try globalRoles.start() }
        if !globalRoleBindings.hasSynced { try globalRoleBindings.start() }
        if !roleTemplates.hasSynced { try roleTemplates.start() }
        if !clusterBindings.hasSynced { try clusterBindings.start() }
        if !projectBindings.hasSynced { try projectBindings.start() }
        if !projects.hasSynced { try projects.start() }
    }

    public func stop() {
        globalRoles.stop()
        globalRoleBindings.stop()
        roleTemplates.stop()
        clusterBindings.stop()
        projectBindings.stop()
        projects.stop()
    }
}
