import Foundation
import LariatControl
import LariatStore
import Testing

/// Reachability (`Authorizer.canReach`, `reachableClusters`) and the discovery baseline, over
/// the decision table's fixture: c-1 holds p-a (a1, a2) and p-b (b1); c-2 holds p-x.
@Suite struct ClusterReachTests {
    @Test func whoReachesWhichCluster() throws {
        let f = try RBACFixture()
        let a = f.authorizer
        #expect(a.reachableClusters(user("u-admin")) == ["c-1", "c-2"])
        #expect(a.reachableClusters(user("u-owner")) == ["c-1"])
        #expect(a.reachableClusters(user("u-member")) == ["c-1"])
        // Project roles reach the project's cluster; a binding naming a project role in a cluster does not.
        #expect(a.reachableClusters(user("u-pmem")) == ["c-1"])
        #expect(a.reachableClusters(user("u-ro")) == ["c-1"])
        // Through groups, of the cluster or of a project.
        #expect(a.reachableClusters(user("u-x", groups: ["local://g-ops"])) == ["c-2"])
        #expect(a.reachableClusters(user("u-x", groups: ["local://g-devs"])) == ["c-1"])
        // Global roles that are not everything Kubernetes reach nothing.
        for nobody in ["u-std", "u-named", "u-metrics", "u-none"] {
            #expect(a.reachableClusters(user(nobody)).isEmpty, "\(nobody)")
            #expect(!a.canReach(user(nobody), cluster: "c-1").allowed, "\(nobody)")
        }
        // A cluster-scoped token reaches its own cluster only, and only if its user does.
        #expect(a.reachableClusters(user("u-admin", scope: "c-2")) == ["c-2"])
        #expect(!a.canReach(user("u-admin", scope: "c-2"), cluster: "c-1").allowed)
        #expect(a.canReach(user("u-pmem", scope: "c-1"), cluster: "c-1").allowed)
        #expect(!a.canReach(user("u-pmem", scope: "c-2"), cluster: "c-2").allowed)
        #expect(a.reachableClusters(user("u-pmem", scope: "c-2")).isEmpty)
        let why = a.canReach(user("u-pmem"), cluster: "c-1")
        #expect(why.allowed && why.reason.contains("prtb-pmem") && why.reason.contains("p-a"), "\(why.reason)")
    }

    static let discovery: [Access] = [
        .nonResource(verb: "get", path: "/api", cluster: "c-1"),
        .nonResource(verb: "get", path: "/api/v1", cluster: "c-1"),
        .nonResource(verb: "get", path: "/apis", cluster: "c-1"),
        .nonResource(verb: "get", path: "/apis/apps/v1", cluster: "c-1"),
        .nonResource(verb: "get", path: "/version", cluster: "c-1"),
        .nonResource(verb: "get", path: "/openapi/v3/apis/apps/v1", cluster: "c-1"),
        .nonResource(verb: "get", path: "/healthz", cluster: "c-1"),
        .nonResource(verb: "get", path: "/livez", cluster: "c-1"),
        .nonResource(verb: "get", path: "/readyz", cluster: "c-1"),
        Access(verb: "create", apiGroup: "authentication.k8s.io", resource: "selfsubjectreviews", cluster: "c-1"),
        Access(verb: "create", apiGroup: "authorization.k8s.io", resource: "selfsubjectaccessreviews", cluster: "c-1"),
        Access(verb: "create", apiGroup: "authorization.k8s.io", resource: "selfsubjectrulesreviews", cluster: "c-1"),
    ]

    @Test(arguments: discovery)
    func whoeverReachesAClusterMayDiscoverItsAPI(_ access: Access) throws {
        let f = try RBACFixture()
        let a = f.authorizer
        // u-pmem, u-ro: project roles without any of this; g-devs: a project role through a group.
        for who in [user("u-pmem"), user("u-ro"), user("u-x", groups: ["local://g-devs"]), user("u-pmem", scope: "c-1")] {
            let d = a.authorize(who, access)
            #expect(d.allowed, "\(who.name) \(access): \(d.reason)")
        }
        for who in [user("u-none"), user("u-std"), user("u-x", groups: ["local://g-ops"]), user("u-pmem", scope: "c-2")] {
            #expect(!a.authorize(who, access).allowed, "\(who.name) \(access)")
        }
        // The same request in a cluster u-pmem does not reach.
        var elsewhere = access
        elsewhere.cluster = "c-2"
        #expect(!a.authorize(user("u-pmem"), elsewhere).allowed)
    }

    @Test func theBaselineIsDiscoveryOnly() throws {
        let f = try RBACFixture()
        let a = f.authorizer
        let pmem = user("u-pmem")
        for access in [
            Access.nonResource(verb: "post", path: "/api", cluster: "c-1"),
            .nonResource(verb: "get", path: "/metrics", cluster: "c-1"),
            .nonResource(verb: "get", path: "/apisx", cluster: "c-1"),
            .nonResource(verb: "get", path: "/version"),  // the hub's own, not a cluster's
            Access(verb: "get", apiGroup: "authorization.k8s.io", resource: "selfsubjectaccessreviews", cluster: "c-1"),
            Access(verb: "create", apiGroup: "authorization.k8s.io", resource: "subjectaccessreviews", cluster: "c-1"),
            Access(verb: "create", apiGroup: Access.managementGroup, resource: "selfsubjectreviews", cluster: "c-1"),
            Access(verb: "list", apiGroup: "", resource: "namespaces", cluster: "c-1"),
        ] {
            #expect(!a.authorize(pmem, access).allowed, "\(access)")
        }
        #expect(!DiscoveryBaseline.covers(.nonResource(verb: "get", path: "/api")))
        #expect(DiscoveryBaseline.covers(.nonResource(verb: "get", path: "/api", cluster: "c-9")))
    }
}
