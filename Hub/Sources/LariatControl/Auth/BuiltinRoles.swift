import Foundation
import LariatRuntime
import LariatStore

/// The roles every hub has, as Rancher's: GlobalRoles `admin` and `user`; RoleTemplates
/// `cluster-owner`, `cluster-member` (cluster context), `project-owner`, `project-member` and
/// `read-only` (project context). Their rules cover management resources (group
/// `management.lariat.io`) and Kubernetes resources, for the cluster proxy to come.
public enum BuiltinRoles {
    static let mgmt = Access.managementGroup

    /// Kubernetes API groups of ordinary workloads (what project members edit).
    static let workloadGroups = ["", "apps", "batch", "autoscaling", "networking.k8s.io", "policy"]
    /// Workload resources a project member may change (no RBAC objects, no quotas).
    static let workloadResources = [
        "pods", "pods/log", "pods/exec", "pods/attach", "pods/portforward", "services", "services/proxy", "endpoints",
        "configmaps", "secrets", "persistentvolumeclaims", "serviceaccounts", "events",
        "deployments", "deployments/scale", "replicasets", "statefulsets", "daemonsets", "jobs", "cronjobs",
        "ingresses", "networkpolicies", "horizontalpodautoscalers", "poddisruptionbudgets",
    ]
    /// What read-only may see: workloads and their configuration, but not secrets (as Kubernetes' `view`).
    static let viewableResources = [
        "pods", "pods/log", "services", "endpoints", "configmaps", "persistentvolumeclaims", "serviceaccounts",
        "events", "deployments", "deployments/scale", "replicasets", "statefulsets", "daemonsets", "jobs", "cronjobs",
        "ingresses", "networkpolicies", "horizontalpodautoscalers", "poddisruptionbudgets", "resourcequotas", "limitranges",
    ]
    static let read = ["get", "list", "watch"]
    static let everything = [
        PolicyRule(verbs: ["*"], apiGroups: ["*"], resources: ["*"]),
        PolicyRule(verbs: ["*"], nonResourceURLs: ["*"]),
    ]

    public static let globalRoles: [Object<GlobalRole>] = [
        Object(name: "admin", spec: GlobalRole.Spec(
            displayName: "Admin", description: "Everything, everywhere.", rules: everything, builtin: true)),
        // As Rancher's `user`: may create clusters (and so owns them, through the creator's
        // cluster-owner binding) and read the roles it can be given; its own User and Tokens
        // come with every login (see `Authorizer`).
        Object(name: "user", spec: GlobalRole.Spec(
            displayName: "Standard User", description: "Create clusters and manage the ones you own.",
            rules: [
                PolicyRule(verbs: ["create"], apiGroups: [mgmt], resources: ["clusters"]),
                PolicyRule(verbs: read, apiGroups: [mgmt], resources: ["roletemplates", "globalroles"]),
            ],
            builtin: true, newUserDefault: true)),
    ]

    public static let roleTemplates: [Object<RoleTemplate>] = [
        Object(name: "cluster-owner", spec: RoleTemplate.Spec(
            displayName: "Cluster Owner", description: "Everything in the cluster, its projects and members.",
            context: .cluster, rules: everything, builtin: true)),
        Object(name: "cluster-member", spec: RoleTemplate.Spec(
            displayName: "Cluster Member", description: "See the cluster and its nodes; create projects.",
            context: .cluster,
            rules: [
                PolicyRule(verbs: read, apiGroups: [mgmt], resources: ["clusters", "clusterroletemplatebindings"]),
                PolicyRule(verbs: ["create"], apiGroups: [mgmt], resources: ["projects"]),
                PolicyRule(verbs: read, apiGroups: [""], resources: ["nodes", "persistentvolumes", "namespaces"]),
                PolicyRule(verbs: read, apiGroups: ["storage.k8s.io"], resources: ["storageclasses"]),
                PolicyRule(verbs: ["get"], nonResourceURLs: ["/version", "/healthz", "/readyz", "/livez"]),
            ],
            builtin: true)),
        Object(name: "project-owner", spec: RoleTemplate.Spec(
            displayName: "Project Owner", description: "Everything in the project's namespaces; manage its members.",
            context: .project, rules: [PolicyRule(verbs: ["*"], apiGroups: ["*"], resources: ["*"])], builtin: true)),
        Object(name: "project-member", spec: RoleTemplate.Spec(
            displayName: "Project Member", description: "Deploy and change workloads in the project's namespaces.",
            context: .project,
            rules: [
                PolicyRule(verbs: ["*"], apiGroups: workloadGroups, resources: workloadResources),
                PolicyRule(verbs: read, apiGroups: [mgmt], resources: ["projects", "projectroletemplatebindings"]),
                // Forwards to the project's Services (members may reach them through services/proxy
                // anyway); each creator then manages its own (`Authorizer`), project owners all.
                PolicyRule(verbs: ["create"], apiGroups: [mgmt], resources: ["forwards"]),
            ],
            builtin: true)),
        Object(name: "read-only", spec: RoleTemplate.Spec(
            displayName: "Read-only", description: "See the project's workloads (not its secrets).",
            context: .project,
            rules: [
                PolicyRule(verbs: read, apiGroups: workloadGroups, resources: viewableResources),
                PolicyRule(verbs: read, apiGroups: [mgmt], resources: ["projects", "projectroletemplatebindings"]),
            ],
            builtin: true)),
    ]

    /// Creates the built-in roles that are missing and brings changed built-in ones back to
    /// this version's rules; leaves every other role alone. Idempotent, and safe when several
    /// hubs start at once (a lost create or update race is retried or already done).
    public static func ensure(backend: any StoreBackend) throws(StoreFailure) {
        try ensure(globalRoles, in: ObjectStore<GlobalRole>(backend))
        try ensure(roleTemplates, in: ObjectStore<RoleTemplate>(backend))
    }

    private static func ensure<R: Resource>(_ objects: [Object<R>], in store: ObjectStore<R>) throws(StoreFailure) {
        for wanted in objects {
            guard try store.find(wanted.name) != nil else {
                do {
                    _ = try store.create(wanted)
                } catch {
                    guard case .alreadyExists = error else { throw error }
                }
                continue
            }
            try store.modify(wanted.name) { (o: inout Object<R>) throws(StoreFailure) in o.spec = wanted.spec }
        }
    }

    /// The binding that makes a cluster's creator its owner (Rancher's `creator-cluster-owner`);
    /// named from the pair, so a controller that makes it twice gets `alreadyExists`.
    public static func creatorBinding(cluster: String, creator userName: String) -> Object<ClusterRoleTemplateBinding> {
        let id = Digest.sha256Hex("\(cluster)\u{0}\(userName)").prefix(12)
        return Object(name: "crtb-creator-\(id)",
                      spec: ClusterRoleTemplateBinding.Spec(clusterName: cluster, userName: userName,
                                                            roleTemplateName: "cluster-owner"))
    }

    /// The binding that makes a project's creator its owner (Rancher's `creator-project-owner`).
    public static func projectCreatorBinding(project: String, creator userName: String) -> Object<ProjectRoleTemplateBinding> {
        let id = Digest.sha256Hex("\(project)\u{0}\(userName)").prefix(12)
        return Object(name: "prtb-creator-\(id)",
                      spec: ProjectRoleTemplateBinding.Spec(projectName: project, userName: userName,
                                                            roleTemplateName: "project-owner"))
    }

    /// The bindings a new user gets: one per GlobalRole marked `newUserDefault` (`user` by default).
    public static func newUserBindings(userName: String, roles: [Object<GlobalRole>]) -> [Object<GlobalRoleBinding>] {
        roles.filter(\.spec.newUserDefault).map { role in
            let id = Digest.sha256Hex("\(role.name)\u{0}\(userName)").prefix(12)
            return Object(name: "grb-\(id)", spec: GlobalRoleBinding.Spec(userName: userName, globalRoleName: role.name))
        }
    }
}
