import Foundation
import LariatControl
import LariatStore
import Testing

/// A store with the built-in roles, two clusters, three projects and one user per kind of grant,
/// and an authorizer following it through informers.
final class RBACFixture: Sendable {
    let store: AuthTestStore
    let informers: RBACInformers
    let authorizer: Authorizer

    init() throws {
        store = try AuthTestStore()
        let b = store.backend
        try BuiltinRoles.ensure(backend: b)
        let projects = ObjectStore<Project>(b)
        _ = try projects.create(Object(name: "p-a", spec: Project.Spec(clusterName: "c-1", displayName: "A", namespaces: ["a1", "a2"])))
        _ = try projects.create(Object(name: "p-b", spec: Project.Spec(clusterName: "c-1", displayName: "B", namespaces: ["b1"])))
        _ = try projects.create(Object(name: "p-x", spec: Project.Spec(clusterName: "c-2", displayName: "X", namespaces: ["a1"])))

        let roles = ObjectStore<GlobalRole>(b)
        _ = try roles.create(Object(name: "c1-viewer", spec: GlobalRole.Spec(displayName: "Sees c-1 only", rules: [
            PolicyRule(verbs: ["get"], apiGroups: [Access.managementGroup], resources: ["clusters"], resourceNames: ["c-1"]),
        ])))
        _ = try roles.create(Object(name: "metrics-reader", spec: GlobalRole.Spec(displayName: "Metrics", rules: [
            PolicyRule(verbs: ["get"], nonResourceURLs: ["/metrics", "/debug/*"]),
        ])))

        let grbs = ObjectStore<GlobalRoleBinding>(b)
        for (name, user, role) in [("grb-admin", "u-admin", "admin"), ("grb-std", "u-std", "user"),
                                   ("grb-named", "u-named", "c1-viewer"), ("grb-metrics", "u-metrics", "metrics-reader")] {
            _ = try grbs.create(Object(name: name, spec: GlobalRoleBinding.Spec(userName: user, globalRoleName: role)))
        }
        let crtbs = ObjectStore<ClusterRoleTemplateBinding>(b)
        _ = try crtbs.create(Object(name: "crtb-owner", spec: .init(clusterName: "c-1", userName: "u-owner", roleTemplateName: "cluster-owner")))
        _ = try crtbs.create(Object(name: "crtb-member", spec: .init(clusterName: "c-1", userName: "u-member", roleTemplateName: "cluster-member")))
        _ = try crtbs.create(Object(name: "crtb-ops", spec: .init(clusterName: "c-2", groupPrincipalName: "local://g-ops", roleTemplateName: "cluster-member")))
        // Names a project template: grants nothing (the API refuses it; the authorizer ignores it).
        _ = try crtbs.create(Object(name: "crtb-wrong", spec: .init(clusterName: "c-2", userName: "u-pmem", roleTemplateName: "project-owner")))
        let prtbs = ObjectStore<ProjectRoleTemplateBinding>(b)
        _ = try prtbs.create(Object(name: "prtb-pown", spec: .init(projectName: "p-a", userName: "u-pown", roleTemplateName: "project-owner")))
        _ = try prtbs.create(Object(name: "prtb-pmem", spec: .init(projectName: "p-a", userName: "u-pmem", roleTemplateName: "project-member")))
        _ = try prtbs.create(Object(name: "prtb-ro", spec: .init(projectName: "p-a", userName: "u-ro", roleTemplateName: "read-only")))
        _ = try prtbs.create(Object(name: "prtb-devs", spec: .init(projectName: "p-b", groupPrincipalName: "local://g-devs", roleTemplateName: "project-member")))

        informers = RBACInformers(backend: b)
        authorizer = Authorizer(informers: informers)
        try informers.start()
    }

    deinit { informers.stop() }
}

/// One row: who, what, and the expected answer.
struct RBACCase: Sendable, CustomStringConvertible {
    var who: Principal
    var access: Access
    var allowed: Bool
    var description: String { "\(who.name)\(who.groups.isEmpty ? "" : " \(who.groups)") \(access) → \(allowed ? "allow" : "deny")" }
}

func user(_ name: String, groups: [String] = [], scope: String? = nil) -> Principal {
    Principal(kind: .user, name: name, username: name, groups: groups + [TokenService.authenticatedGroup], clusterScope: scope)
}

/// Management access (group management.lariat.io).
func mgmt(_ verb: String, _ resource: String, _ name: String? = nil, cluster: String? = nil, project: String? = nil,
          owner: String? = nil) -> Access {
    Access(verb: verb, resource: resource, name: name, cluster: cluster, project: project, owner: owner)
}

/// Kubernetes access through a cluster's proxy.
func kube(_ verb: String, _ group: String, _ resource: String, _ name: String? = nil, cluster: String, ns: String? = nil) -> Access {
    Access(verb: verb, apiGroup: group, resource: resource, name: name, cluster: cluster, namespace: ns)
}

@Suite struct RBACDecisionTableTests {
    static let table: [RBACCase] = [
        // Global admin: everything, everywhere.
        RBACCase(who: user("u-admin"), access: mgmt("delete", "clusters", "c-1", cluster: "c-1"), allowed: true),
        RBACCase(who: user("u-admin"), access: mgmt("create", "globalrolebindings"), allowed: true),
        RBACCase(who: user("u-admin"), access: kube("delete", "", "secrets", "s", cluster: "c-2", ns: "kube-system"), allowed: true),
        RBACCase(who: user("u-admin"), access: .nonResource(verb: "get", path: "/metrics"), allowed: true),
        // Standard user: creates clusters, reads roles, owns its user and tokens, nothing else.
        RBACCase(who: user("u-std"), access: mgmt("create", "clusters"), allowed: true),
        RBACCase(who: user("u-std"), access: mgmt("list", "roletemplates"), allowed: true),
        RBACCase(who: user("u-std"), access: mgmt("get", "clusters", "c-1", cluster: "c-1"), allowed: false),
        RBACCase(who: user("u-std"), access: mgmt("create", "globalrolebindings"), allowed: false),
        RBACCase(who: user("u-std"), access: mgmt("update", "roletemplates", "read-only"), allowed: false),
        RBACCase(who: user("u-std"), access: mgmt("list", "users"), allowed: false),
        // No binding at all: only its own user and tokens.
        RBACCase(who: user("u-none"), access: mgmt("get", "users", "u-none"), allowed: true),
        RBACCase(who: user("u-none"), access: mgmt("update", "users/password", "u-none"), allowed: true),
        RBACCase(who: user("u-none"), access: mgmt("create", "tokens", owner: "u-none"), allowed: true),
        RBACCase(who: user("u-none"), access: mgmt("list", "tokens", owner: "u-none"), allowed: true),
        RBACCase(who: user("u-none"), access: mgmt("delete", "tokens", "token-bcdfg", owner: "u-none"), allowed: true),
        RBACCase(who: user("u-none"), access: mgmt("get", "users", "u-admin"), allowed: false),
        RBACCase(who: user("u-none"), access: mgmt("update", "users", "u-none"), allowed: false),
        RBACCase(who: user("u-none"), access: mgmt("delete", "tokens", "token-zzzzz", owner: "u-admin"), allowed: false),
        RBACCase(who: user("u-none"), access: mgmt("create", "clusters"), allowed: false),
        RBACCase(who: user("u-none"), access: mgmt("list", "clusters"), allowed: false),
        RBACCase(who: user("u-none"), access: kube("get", "", "pods", cluster: "c-1", ns: "a1"), allowed: false),
        RBACCase(who: user("u-none"), access: .nonResource(verb: "get", path: "/metrics"), allowed: false),
        // Cluster owner of c-1: everything in c-1, its projects and members; nothing in c-2 or global.
        RBACCase(who: user("u-owner"), access: mgmt("delete", "clusters", "c-1", cluster: "c-1"), allowed: true),
        RBACCase(who: user("u-owner"), access: mgmt("create", "clusterroletemplatebindings", cluster: "c-1"), allowed: true),
        RBACCase(who: user("u-owner"), access: mgmt("delete", "projects", "p-a", project: "p-a"), allowed: true),
        RBACCase(who: user("u-owner"), access: kube("delete", "", "nodes", "n1", cluster: "c-1"), allowed: true),
        RBACCase(who: user("u-owner"), access: kube("get", "", "secrets", "s", cluster: "c-1", ns: "b1"), allowed: true),
        RBACCase(who: user("u-owner"), access: mgmt("get", "clusters", "c-2", cluster: "c-2"), allowed: false),
        RBACCase(who: user("u-owner"), access: mgmt("get", "projects", "p-x", project: "p-x"), allowed: false),
        RBACCase(who: user("u-owner"), access: mgmt("create", "globalrolebindings"), allowed: false),
        // Cluster member of c-1: sees it, may create projects, may not delete or edit it.
        RBACCase(who: user("u-member"), access: mgmt("get", "clusters", "c-1", cluster: "c-1"), allowed: true),
        RBACCase(who: user("u-member"), access: mgmt("create", "projects", cluster: "c-1"), allowed: true),
        RBACCase(who: user("u-member"), access: kube("list", "", "nodes", cluster: "c-1"), allowed: true),
        RBACCase(who: user("u-member"), access: .nonResource(verb: "get", path: "/version", cluster: "c-1"), allowed: true),
        RBACCase(who: user("u-member"), access: mgmt("delete", "clusters", "c-1", cluster: "c-1"), allowed: false),
        RBACCase(who: user("u-member"), access: mgmt("update", "clusters", "c-1", cluster: "c-1"), allowed: false),
        RBACCase(who: user("u-member"), access: mgmt("create", "clusterroletemplatebindings", cluster: "c-1"), allowed: false),
        RBACCase(who: user("u-member"), access: kube("get", "", "pods", cluster: "c-1", ns: "a1"), allowed: false),
        RBACCase(who: user("u-member"), access: .nonResource(verb: "get", path: "/version"), allowed: false),
        // Project owner of p-a (c-1: a1, a2).
        RBACCase(who: user("u-pown"), access: kube("delete", "apps", "deployments", "web", cluster: "c-1", ns: "a2"), allowed: true),
        RBACCase(who: user("u-pown"), access: mgmt("create", "projectroletemplatebindings", project: "p-a"), allowed: true),
        RBACCase(who: user("u-pown"), access: kube("get", "", "pods", cluster: "c-1", ns: "b1"), allowed: false),
        RBACCase(who: user("u-pown"), access: kube("list", "", "nodes", cluster: "c-1"), allowed: false),
        // Project member of p-a: workloads in a1/a2 only — not project B's namespace, nor a1 of another cluster.
        RBACCase(who: user("u-pmem"), access: kube("create", "apps", "deployments", cluster: "c-1", ns: "a1"), allowed: true),
        RBACCase(who: user("u-pmem"), access: kube("get", "", "pods/log", "web-0", cluster: "c-1", ns: "a2"), allowed: true),
        RBACCase(who: user("u-pmem"), access: mgmt("get", "projects", "p-a", project: "p-a"), allowed: true),
        RBACCase(who: user("u-pmem"), access: kube("get", "", "pods", cluster: "c-1", ns: "b1"), allowed: false),
        RBACCase(who: user("u-pmem"), access: kube("get", "", "pods", cluster: "c-2", ns: "a1"), allowed: false),
        RBACCase(who: user("u-pmem"), access: kube("create", "rbac.authorization.k8s.io", "rolebindings", cluster: "c-1", ns: "a1"), allowed: false),
        RBACCase(who: user("u-pmem"), access: mgmt("delete", "projects", "p-a", project: "p-a"), allowed: false),
        RBACCase(who: user("u-pmem"), access: mgmt("get", "projects", "p-a", cluster: "c-2", project: "p-a"), allowed: false),
        // A binding naming a project template in a cluster grants nothing.
        RBACCase(who: user("u-pmem"), access: mgmt("get", "clusters", "c-2", cluster: "c-2"), allowed: false),
        // Read-only: reads, never writes, never secrets.
        RBACCase(who: user("u-ro"), access: kube("list", "", "pods", cluster: "c-1", ns: "a1"), allowed: true),
        RBACCase(who: user("u-ro"), access: kube("watch", "apps", "deployments", cluster: "c-1", ns: "a2"), allowed: true),
        RBACCase(who: user("u-ro"), access: kube("create", "", "pods", cluster: "c-1", ns: "a1"), allowed: false),
        RBACCase(who: user("u-ro"), access: kube("delete", "apps", "deployments", "web", cluster: "c-1", ns: "a1"), allowed: false),
        RBACCase(who: user("u-ro"), access: kube("get", "", "secrets", "db", cluster: "c-1", ns: "a1"), allowed: false),
        RBACCase(who: user("u-ro"), access: mgmt("create", "projectroletemplatebindings", project: "p-a"), allowed: false),
        // Group bindings: whoever lists the group gets them; the same user without it does not.
        RBACCase(who: user("u-carol", groups: ["local://g-ops"]), access: mgmt("get", "clusters", "c-2", cluster: "c-2"), allowed: true),
        RBACCase(who: user("u-carol", groups: ["local://g-ops"]), access: mgmt("delete", "clusters", "c-2", cluster: "c-2"), allowed: false),
        RBACCase(who: user("u-carol"), access: mgmt("get", "clusters", "c-2", cluster: "c-2"), allowed: false),
        RBACCase(who: user("u-dave", groups: ["local://g-devs"]), access: kube("update", "", "configmaps", "cfg", cluster: "c-1", ns: "b1"), allowed: true),
        RBACCase(who: user("u-dave", groups: ["local://g-devs"]), access: kube("update", "", "configmaps", "cfg", cluster: "c-1", ns: "a1"), allowed: false),
        // resourceNames: only the named object, and not requests naming none.
        RBACCase(who: user("u-named"), access: mgmt("get", "clusters", "c-1", cluster: "c-1"), allowed: true),
        RBACCase(who: user("u-named"), access: mgmt("get", "clusters", "c-2", cluster: "c-2"), allowed: false),
        RBACCase(who: user("u-named"), access: mgmt("list", "clusters"), allowed: false),
        RBACCase(who: user("u-named"), access: mgmt("delete", "clusters", "c-1", cluster: "c-1"), allowed: false),
        // nonResourceURLs: exact and prefix patterns; never resources.
        RBACCase(who: user("u-metrics"), access: .nonResource(verb: "get", path: "/metrics"), allowed: true),
        RBACCase(who: user("u-metrics"), access: .nonResource(verb: "get", path: "/debug/pprof/heap"), allowed: true),
        RBACCase(who: user("u-metrics"), access: .nonResource(verb: "post", path: "/metrics"), allowed: false),
        RBACCase(who: user("u-metrics"), access: .nonResource(verb: "get", path: "/metricsx"), allowed: false),
        RBACCase(who: user("u-metrics"), access: mgmt("get", "clusters", "c-1", cluster: "c-1"), allowed: false),
        // A token scoped to c-1: the owner's rights there, nothing elsewhere (not even its own tokens).
        RBACCase(who: user("u-owner", scope: "c-1"), access: mgmt("get", "clusters", "c-1", cluster: "c-1"), allowed: true),
        RBACCase(who: user("u-owner", scope: "c-1"), access: mgmt("get", "projects", "p-a", project: "p-a"), allowed: true),
        RBACCase(who: user("u-admin", scope: "c-1"), access: mgmt("get", "clusters", "c-2", cluster: "c-2"), allowed: false),
        RBACCase(who: user("u-owner", scope: "c-1"), access: mgmt("list", "tokens", owner: "u-owner"), allowed: false),
        // Agents get nothing from user self-service.
        RBACCase(who: Principal(kind: .agent, name: "system:agent:c-1:a1", username: "system:agent:c-1:a1"),
                 access: mgmt("list", "tokens", owner: "system:agent:c-1:a1"), allowed: false),
    ]

    @Test func decisionTable() throws {
        #expect(Self.table.count >= 40)
        let f = try RBACFixture()
        for row in Self.table {
            let d = f.authorizer.authorize(row.who, row.access)
            #expect(d.allowed == row.allowed, "\(row): \(d.reason)")
        }
    }

    @Test func reasonsNameTheBindingOrWhatWasAsked() throws {
        let f = try RBACFixture()
        let allowed = f.authorizer.authorize(user("u-admin"), mgmt("get", "clusters", "c-1", cluster: "c-1"))
        #expect(allowed.reason == "allowed by GlobalRoleBinding grb-admin (admin)")
        let member = f.authorizer.authorize(user("u-member"), mgmt("get", "clusters", "c-1", cluster: "c-1"))
        #expect(member.reason == "allowed by ClusterRoleTemplateBinding crtb-member (cluster-member) in cluster c-1")
        let group = f.authorizer.authorize(user("u-dave", groups: ["local://g-devs"]),
                                           kube("get", "", "pods", cluster: "c-1", ns: "b1"))
        #expect(group.reason == "allowed by ProjectRoleTemplateBinding prtb-devs (project-member) in project p-b")
        let denied = f.authorizer.authorize(user("u-abc"), mgmt("get", "clusters", "c-1", cluster: "c-1"))
        #expect(!denied.allowed && denied.reason.hasPrefix("no rule allows get management.lariat.io/clusters/c-1"))
        #expect(denied.reason.hasSuffix("for u-abc"))
    }

    /// Changes reach decisions through the watch: a new binding grants, a deleted one stops
    /// granting, and a namespace moved between projects changes who may use it.
    @Test func decisionsFollowTheStore() throws {
        let f = try RBACFixture()
        let b = f.store.backend
        let crtbs = ObjectStore<ClusterRoleTemplateBinding>(b)
        let ask = mgmt("get", "clusters", "c-2", cluster: "c-2")
        #expect(!f.authorizer.authorize(user("u-new"), ask).allowed)
        _ = try crtbs.create(Object(name: "crtb-new", spec: .init(clusterName: "c-2", userName: "u-new", roleTemplateName: "cluster-member")))
        #expect(waitUntil(timeout: 1) { f.authorizer.authorize(user("u-new"), ask).allowed } != nil)
        try crtbs.delete("crtb-new")
        #expect(waitUntil(timeout: 1) { !f.authorizer.authorize(user("u-new"), ask).allowed } != nil)

        let inB1 = kube("get", "", "pods", cluster: "c-1", ns: "b1")
        #expect(!f.authorizer.authorize(user("u-pmem"), inB1).allowed)
        try ObjectStore<Project>(b).modify("p-a") { (p: inout Object<Project>) throws(StoreFailure) in p.spec.namespaces.append("b1") }
        #expect(waitUntil(timeout: 1) { f.authorizer.authorize(user("u-pmem"), inB1).allowed } != nil)

        // A role's rules changing changes what its bindings grant.
        try ObjectStore<GlobalRole>(b).modify("c1-viewer") { (r: inout Object<GlobalRole>) throws(StoreFailure) in
            r.spec.rules[0].resourceNames = ["c-2"]
        }
        #expect(waitUntil(timeout: 1) {
            f.authorizer.authorize(user("u-named"), ask).allowed
                && !f.authorizer.authorize(user("u-named"), mgmt("get", "clusters", "c-1", cluster: "c-1")).allowed
        } != nil)
    }
}
