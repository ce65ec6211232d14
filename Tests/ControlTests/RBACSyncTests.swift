import Foundation
@testable import LariatControl
import LariatStore
import Logging
import Testing

/// The RBAC sync controller against a real SQLite store (the hub's side) and an in-memory
/// cluster RBAC API (`InMemoryRBACCluster`): what it creates for each binding kind, that a second
/// pass changes nothing, deletion of what is no longer wanted, drift repaired, objects it did not
/// make left alone, project namespaces coming and going, unavailable clusters, triggers.
@Suite struct RBACSyncTests {
    typealias O = ClusterRBACObjects
    static let rbacGroup = "rbac.authorization.k8s.io"

    /// A hub with cluster c1 (project p1 holding namespaces a and b) and c2, user ids made up.
    final class World: @unchecked Sendable {
        // Invariant: used by one test at a time.
        let h: APIHarness
        let cluster = InMemoryRBACCluster()
        var rbac: RBACInformers { h.services.rbac }

        init() throws {
            h = try APIHarness()
            for name in ["c1", "c2"] { _ = try h.control.clusters.create(Object(name: name, spec: Cluster.Spec(displayName: name))) }
            _ = try h.control.projects.create(Object(name: "p1", spec: Project.Spec(clusterName: "c1", namespaces: ["a", "b"])))
            cluster.addNamespace("a")
            cluster.addNamespace("b")
            try h.waitUntil { self.h.control.clusterInformer.items.count == 2 && self.rbac.projects.get("p1") != nil }
        }

        /// One pass at a time, run by the test (a controller's triggers would race the test's passes).
        func pass() -> RBACSyncPass {
            RBACSyncPass(informers: rbac, api: cluster, timeout: 5, logger: Logger(label: "test"))
        }

        /// The controller with its triggers, resyncing hourly unless told otherwise.
        func controller(resync: TimeInterval = 3600, retryDelay: TimeInterval = 0.5) -> RBACSyncController {
            var s = RBACSyncController.Settings()
            s.resyncInterval = resync
            s.retryDelay = retryDelay
            return RBACSyncController(informers: rbac, clusters: h.control.clusterInformer, api: cluster, settings: s,
                                      logger: Logger(label: "test"))
        }

        @discardableResult
        func bindCluster(_ name: String, cluster c: String = "c1", user: String? = nil, group: String? = nil,
                         template: String) throws -> Object<ClusterRoleTemplateBinding> {
            let o = try rbac.clusterBindings.store.create(Object(name: name, spec: ClusterRoleTemplateBinding.Spec(
                clusterName: c, userName: user, groupPrincipalName: group, roleTemplateName: template)))
            try h.waitUntil { self.rbac.clusterBindings.get(name)?.metadata.resourceVersion == o.metadata.resourceVersion }
            return o
        }

        @discardableResult
        func bindProject(_ name: String, project: String = "p1", user: String? = nil, group: String? = nil,
                         template: String) throws -> Object<ProjectRoleTemplateBinding> {
            let o = try rbac.projectBindings.store.create(Object(name: name, spec: ProjectRoleTemplateBinding.Spec(
                projectName: project, userName: user, groupPrincipalName: group, roleTemplateName: template)))
            try h.waitUntil { self.rbac.projectBindings.get(name)?.metadata.resourceVersion == o.metadata.resourceVersion }
            return o
        }

        func unbindCluster(_ name: String) throws {
            _ = try rbac.clusterBindings.store.delete(name)
            try h.waitUntil { self.rbac.clusterBindings.get(name) == nil }
        }

        func setNamespaces(_ namespaces: [String], project: String = "p1") throws {
            let o = try h.control.projects.modify(project) { (p: inout Object<Project>) throws(StoreFailure) in p.spec.namespaces = namespaces }
            try h.waitUntil { self.rbac.projects.get(project)?.metadata.resourceVersion == o.metadata.resourceVersion }
        }
    }

    /// Our objects only (the bootstrap admin's global binding is in every cluster too).
    static func ours(_ c: InMemoryRBACCluster, except: Set<String> = ["lariat-gr-admin", "lariat-grb-grb-bootstrap-admin"]) -> [String] {
        c.keys.filter { !except.contains($0.name) }.map(\.description)
    }

    static func rules(_ o: [String: Any]?) -> [[String: [String]]] {
        (o?["rules"] as? [[String: Any]] ?? []).map { r in r.compactMapValues { $0 as? [String] } }
    }

    static func labels(_ o: [String: Any]?) -> [String: String] {
        (o?["metadata"] as? [String: Any])?["labels"] as? [String: String] ?? [:]
    }

    static func annotations(_ o: [String: Any]?) -> [String: String] {
        (o?["metadata"] as? [String: Any])?["annotations"] as? [String: String] ?? [:]
    }

    static func subjects(_ o: [String: Any]?) -> [[String: String]] {
        o?["subjects"] as? [[String: String]] ?? []
    }

    static func roleRef(_ o: [String: Any]?) -> String? { (o?["roleRef"] as? [String: String])?["name"] }

    // MARK: -

    @Test func rulesKeepWhatKubernetesKnows() {
        let mgmt = Access.managementGroup
        let rules = [
            PolicyRule(verbs: ["get"], apiGroups: [mgmt], resources: ["clusters"]),
            PolicyRule(verbs: ["get"], apiGroups: [mgmt, "apps"], resources: ["deployments"]),
            PolicyRule(verbs: ["*"], apiGroups: ["*"], resources: ["*"]),
            PolicyRule(verbs: ["get"], nonResourceURLs: ["/version"]),
            PolicyRule(verbs: ["list"], apiGroups: [""], resources: ["pods"], resourceNames: ["p1"]),
        ]
        #expect(O.kubernetesRules(rules) == [
            PolicyRule(verbs: ["get"], apiGroups: ["apps"], resources: ["deployments"]),
            PolicyRule(verbs: ["*"], apiGroups: ["*"], resources: ["*"]),
            PolicyRule(verbs: ["get"], nonResourceURLs: ["/version"]),
            PolicyRule(verbs: ["list"], apiGroups: [""], resources: ["pods"], resourceNames: ["p1"]),
        ])
        // The default global role `user` is all hub rights: nothing goes to a cluster.
        let user = BuiltinRoles.globalRoles.first { $0.name == "user" }!
        #expect(O.kubernetesRules(user.spec.rules).isEmpty)
    }

    @Test func bindingsBecomeClusterRolesAndBindingsWithLabelsAndUIDs() throws {
        let w = try World()
        let sync = w.pass()
        let alice = try w.bindCluster("alice-member", user: "u-alice", template: "cluster-member")
        try w.bindCluster("elsewhere", cluster: "c2", user: "u-bob", template: "cluster-owner")
        let devs = try w.bindProject("devs-member", group: "devs", template: "project-member")
        let report = try sync.sync(cluster: "c1")
        #expect(!report.unavailable && report.skipped.isEmpty, "\(report)")

        #expect(Self.ours(w.cluster) == [
            "clusterrolebindings/lariat-crtb-alice-member",
            "clusterroles/lariat-rt-cluster-member",
            "clusterroles/lariat-rt-project-member",
            "rolebindings/a/lariat-prtb-devs-member",
            "rolebindings/b/lariat-prtb-devs-member",
        ], "c2's binding must not be in c1")
        #expect(report.changes.count == w.cluster.keys.count, "one log line per change: \(report.changes)")

        // The template's rules, without its hub-only (management group) ones.
        let role = w.cluster.object("clusterroles", "lariat-rt-cluster-member")
        let template = try #require(w.rbac.roleTemplates.get("cluster-member"))
        #expect(Self.rules(role) == [
            ["verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["nodes", "persistentvolumes", "namespaces"]],
            ["verbs": ["get", "list", "watch"], "apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"]],
            ["verbs": ["get"], "nonResourceURLs": ["/version", "/healthz", "/readyz", "/livez"]],
        ])
        #expect(Self.labels(role) == [O.managedByLabel: "lariat-hub", O.roleTemplateLabel: "cluster-member"])
        #expect(Self.annotations(role)[O.uidAnnotation] == template.metadata.uid)

        let crb = w.cluster.object("clusterrolebindings", "lariat-crtb-alice-member")
        #expect(Self.roleRef(crb) == "lariat-rt-cluster-member")
        #expect((crb?["roleRef"] as? [String: String])?["kind"] == "ClusterRole")
        #expect(Self.subjects(crb) == [["kind": "User", "apiGroup": Self.rbacGroup, "name": "u-alice"]])
        #expect(Self.labels(crb) == [O.managedByLabel: "lariat-hub", O.bindingLabel: "alice-member"])
        #expect(Self.annotations(crb)[O.uidAnnotation] == alice.metadata.uid)

        for ns in ["a", "b"] {
            let rb = w.cluster.object("rolebindings", "lariat-prtb-devs-member", namespace: ns)
            #expect(Self.roleRef(rb) == "lariat-rt-project-member", "\(ns)")
            #expect(Self.subjects(rb) == [["kind": "Group", "apiGroup": Self.rbacGroup, "name": "devs"]])
            #expect(Self.labels(rb)[O.bindingLabel] == "devs-member")
            #expect(Self.annotations(rb)[O.uidAnnotation] == devs.metadata.uid)
        }
        // The admin's global role is everything, in every cluster.
        #expect(Self.rules(w.cluster.object("clusterroles", "lariat-gr-admin")).contains { $0["resources"] == ["*"] })
        #expect(Self.subjects(w.cluster.object("clusterrolebindings", "lariat-grb-grb-bootstrap-admin")).first?["name"] == "user-admin")

        // A second pass lists and changes nothing.
        w.cluster.clearRequests()
        let again = try sync.sync(cluster: "c1")
        #expect(again.changes.isEmpty, "\(again.changes)")
        #expect(w.cluster.writes.isEmpty, "\(w.cluster.writes)")
        #expect(w.cluster.requests.allSatisfy { $0.contains("labelSelector=lariat.io%2Fmanaged-by%3Dlariat-hub") }, "\(w.cluster.requests)")
    }

    @Test func whatIsNoLongerWantedGoesAndUnlabelledObjectsStay() throws {
        let w = try World()
        let sync = w.pass()
        // Someone else's objects: one unrelated, one holding a name we want, one like ours but unlabelled.
        w.cluster.put("clusterrolebindings", ["metadata": ["name": "their-binding"],
                                              "roleRef": ["apiGroup": Self.rbacGroup, "kind": "ClusterRole", "name": "view"],
                                              "subjects": [["kind": "User", "name": "someone"]]])
        w.cluster.put("clusterroles", ["metadata": ["name": "lariat-rt-cluster-owner", "labels": ["team": "x"]],
                                       "rules": [["verbs": ["get"], "apiGroups": [""], "resources": ["pods"]]]])
        w.cluster.put("rolebindings", ["metadata": ["name": "lariat-prtb-old", "labels": [O.bindingLabel: "old"]],
                                       "roleRef": ["apiGroup": Self.rbacGroup, "kind": "ClusterRole", "name": "edit"]], namespace: "a")
        let untouched = ["their-binding", "lariat-rt-cluster-owner", "lariat-prtb-old"].map { name in
            w.cluster.raw("clusterrolebindings", name) ?? w.cluster.raw("clusterroles", name) ?? w.cluster.raw("rolebindings", name, namespace: "a")
        }

        try w.bindCluster("alice-member", user: "u-alice", template: "cluster-member")
        try w.bindCluster("bob-member", user: "u-bob", template: "cluster-member")
        try w.bindCluster("carol-owner", user: "u-carol", template: "cluster-owner")
        let first = try sync.sync(cluster: "c1")
        // Its name taken, the role is not ours: nobody is bound to rules we do not know.
        #expect(first.skipped.count == 2 && first.skipped.allSatisfy { $0.contains("lariat-rt-cluster-owner") }, "\(first.skipped)")
        #expect(!w.cluster.names("clusterrolebindings").contains("lariat-crtb-carol-owner"))

        try w.unbindCluster("alice-member")
        let second = try sync.sync(cluster: "c1")
        #expect(second.changes == ["deleted ClusterRoleBinding lariat-crtb-alice-member (no longer wanted)"])
        #expect(w.cluster.object("clusterroles", "lariat-rt-cluster-member") != nil, "bob still uses the role")

        try w.unbindCluster("bob-member")
        try w.unbindCluster("carol-owner")
        let third = try sync.sync(cluster: "c1")
        #expect(third.changes == ["deleted ClusterRoleBinding lariat-crtb-bob-member (no longer wanted)",
                                  "deleted ClusterRole lariat-rt-cluster-member (no longer wanted)"], "\(third.changes)")
        #expect(Self.ours(w.cluster) == ["clusterrolebindings/their-binding", "clusterroles/lariat-rt-cluster-owner",
                                         "rolebindings/a/lariat-prtb-old"])
        let after = ["their-binding", "lariat-rt-cluster-owner", "lariat-prtb-old"].map { name in
            w.cluster.raw("clusterrolebindings", name) ?? w.cluster.raw("clusterroles", name) ?? w.cluster.raw("rolebindings", name, namespace: "a")
        }
        #expect(after == untouched, "an object without our label was changed")
        #expect(!w.cluster.writes.contains { $0.contains("their-binding") || $0.contains("lariat-prtb-old") || ($0.contains("lariat-rt-cluster-owner") && !$0.hasPrefix("POST")) },
                "\(w.cluster.writes)")
    }

    @Test func driftIsRepairedAndAChangedRoleIsRecreated() throws {
        let w = try World()
        let sync = w.pass()
        try w.bindCluster("alice-member", user: "u-alice", template: "cluster-member")
        try w.bindProject("devs-member", group: "devs", template: "read-only")
        try sync.sync(cluster: "c1")
        let wantedRules = Self.rules(w.cluster.object("clusterroles", "lariat-rt-cluster-member"))

        // Hand edits: a rule widened (and a label of someone's added), the subject swapped, our
        // label changed, a RoleBinding pointed at another role.
        w.cluster.edit("clusterroles", "lariat-rt-cluster-member") { o in
            o["rules"] = [["verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]]]
            var meta = o["metadata"] as! [String: Any]
            meta["labels"] = (meta["labels"] as! [String: String]).merging(["note": "kept"]) { $1 }
            o["metadata"] = meta
        }
        w.cluster.edit("clusterrolebindings", "lariat-crtb-alice-member") { o in
            o["subjects"] = [["kind": "User", "apiGroup": Self.rbacGroup, "name": "mallory"]]
        }
        w.cluster.edit("rolebindings", "lariat-prtb-devs-member", namespace: "a") { o in
            o["roleRef"] = ["apiGroup": Self.rbacGroup, "kind": "ClusterRole", "name": "cluster-admin"]
        }
        w.cluster.edit("rolebindings", "lariat-prtb-devs-member", namespace: "b") { o in
            var meta = o["metadata"] as! [String: Any]
            meta["labels"] = [O.managedByLabel: "lariat-hub", O.bindingLabel: "something-else"]
            o["metadata"] = meta
        }
        let report = try sync.sync(cluster: "c1")
        #expect(Set(report.changes) == [
            "updated ClusterRole lariat-rt-cluster-member (rules drifted)",
            "updated ClusterRoleBinding lariat-crtb-alice-member (subjects drifted)",
            "deleted RoleBinding a/lariat-prtb-devs-member (its role changed to lariat-rt-read-only)",
            "created RoleBinding a/lariat-prtb-devs-member",
            "updated RoleBinding b/lariat-prtb-devs-member (label lariat.io/binding drifted)",
        ], "\(report.changes)")
        let role = w.cluster.object("clusterroles", "lariat-rt-cluster-member")
        #expect(Self.rules(role) == wantedRules)
        #expect(Self.labels(role)["note"] == "kept", "a label others added is left alone")
        #expect(Self.subjects(w.cluster.object("clusterrolebindings", "lariat-crtb-alice-member")).map { $0["name"] } == ["u-alice"])
        #expect(Self.roleRef(w.cluster.object("rolebindings", "lariat-prtb-devs-member", namespace: "a")) == "lariat-rt-read-only")
        #expect(Self.labels(w.cluster.object("rolebindings", "lariat-prtb-devs-member", namespace: "b"))[O.bindingLabel] == "devs-member")

        // The hub binding changes its template: the roleRef changes, so delete and create.
        _ = try w.rbac.clusterBindings.store.modify("alice-member") { (b: inout Object<ClusterRoleTemplateBinding>) throws(StoreFailure) in
            b.spec.roleTemplateName = "cluster-owner"
        }
        try w.h.waitUntil { w.rbac.clusterBindings.get("alice-member")?.spec.roleTemplateName == "cluster-owner" }
        let moved = try sync.sync(cluster: "c1")
        #expect(moved.changes == [
            "created ClusterRole lariat-rt-cluster-owner",
            "deleted ClusterRoleBinding lariat-crtb-alice-member (its role changed to lariat-rt-cluster-owner)",
            "created ClusterRoleBinding lariat-crtb-alice-member",
            "deleted ClusterRole lariat-rt-cluster-member (no longer wanted)",
        ], "\(moved.changes)")
        #expect(Self.roleRef(w.cluster.object("clusterrolebindings", "lariat-crtb-alice-member")) == "lariat-rt-cluster-owner")
    }

    @Test func projectNamespacesAddedAndRemoved() throws {
        let w = try World()
        let sync = w.pass()
        try w.bindProject("devs-member", group: "devs", template: "project-member")
        try sync.sync(cluster: "c1")
        #expect(w.cluster.keys.filter { $0.resource == "rolebindings" }.map(\.namespace) == ["a", "b"])

        // c is added on the hub before it exists in the cluster: skipped (not an error) until it does.
        try w.setNamespaces(["a", "b", "c"])
        let early = try sync.sync(cluster: "c1")
        #expect(early.changes.isEmpty && early.skipped.count == 1 && early.skipped[0].contains("\"c\" does not exist"), "\(early)")
        w.cluster.addNamespace("c")
        #expect(try sync.sync(cluster: "c1").changes == ["created RoleBinding c/lariat-prtb-devs-member"])

        try w.setNamespaces(["c"])
        let removed = try sync.sync(cluster: "c1")
        #expect(removed.changes == ["deleted RoleBinding a/lariat-prtb-devs-member (no longer wanted)",
                                    "deleted RoleBinding b/lariat-prtb-devs-member (no longer wanted)"], "\(removed.changes)")
        #expect(w.cluster.keys.filter { $0.resource == "rolebindings" }.map(\.namespace) == ["c"])

        // The project moves out of c1: everything of it leaves c1.
        _ = try w.h.control.projects.modify("p1") { (p: inout Object<Project>) throws(StoreFailure) in p.spec.clusterName = "c2" }
        try w.h.waitUntil { w.rbac.projects.get("p1")?.spec.clusterName == "c2" }
        try sync.sync(cluster: "c1")
        #expect(Self.ours(w.cluster).isEmpty, "\(Self.ours(w.cluster))")
    }

    @Test func aClusterWithoutAgentIsSkippedQuietlyAndFailuresThrow() throws {
        let w = try World()
        let sync = w.pass()
        try w.bindCluster("alice-member", user: "u-alice", template: "cluster-member")
        w.cluster.available = false
        let report = try sync.sync(cluster: "c1")
        #expect(report.unavailable && report.changes.isEmpty)
        w.cluster.available = true
        w.cluster.failNextWrites(1)
        #expect(throws: (any Error).self) { try sync.sync(cluster: "c1") }
        // The failed write did not stop the others; the next pass finishes the job.
        #expect(w.cluster.keys.count >= 3)
        let next = try sync.sync(cluster: "c1")
        #expect(next.changes.count == 1, "\(next.changes)")
        #expect(try sync.sync(cluster: "c1").changes.isEmpty)
    }

    @Test func changesConnectsAndResyncsTriggerASync() throws {
        let w = try World()
        let sync = w.controller(resync: 0.2, retryDelay: 0.05)
        defer { sync.stop() }
        // A binding created on the hub reaches the cluster without being asked.
        try w.bindCluster("alice-member", user: "u-alice", template: "cluster-member")
        try w.h.waitUntil { w.cluster.names("clusterrolebindings").contains("lariat-crtb-alice-member") }
        // A project binding, through its project's cluster.
        try w.bindProject("devs-member", group: "devs", template: "project-member")
        try w.h.waitUntil { w.cluster.names("rolebindings", namespace: "b") == ["lariat-prtb-devs-member"] }
        // A hand deletion is repaired by the periodic resync.
        w.cluster.remove("clusterroles", "lariat-rt-cluster-member")
        try w.h.waitUntil { w.cluster.object("clusterroles", "lariat-rt-cluster-member") != nil }
        // A failed write is retried with backoff.
        w.cluster.failNextWrites(2)
        try w.unbindCluster("alice-member")
        try w.h.waitUntil { !w.cluster.names("clusterrolebindings").contains("lariat-crtb-alice-member") }
    }

    @Test func anAgentConnectingSyncsItsCluster() throws {
        let w = try World()
        w.cluster.available = false
        let sync = w.controller()  // resync in an hour: only the connect can do it
        defer { sync.stop() }
        try w.bindCluster("alice-member", user: "u-alice", template: "cluster-member")
        usleep(200_000)
        #expect(w.cluster.keys.isEmpty)
        w.cluster.available = true
        sync.clusterConnected("c1")
        try w.h.waitUntil { w.cluster.names("clusterrolebindings").contains("lariat-crtb-alice-member") }
    }
}
