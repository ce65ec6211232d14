import Foundation
import LariatControl
import LariatStore
import Testing

/// The authorizer with a thousand clusters: decisions stay correct, and their cost and the
/// cost of rebuilding the index after a change are measured (printed, not asserted).
@Suite struct RBACScaleTests {
    @Test func aThousandClustersWithTenMembersEach() throws {
        let t = try AuthTestStore(memory: true)
        try BuiltinRoles.ensure(backend: t.backend)
        let crtbs = ObjectStore<ClusterRoleTemplateBinding>(t.backend)
        let clusters = 1000, membersPerCluster = 10
        for c in 0..<clusters {
            for m in 0..<membersPerCluster {
                _ = try crtbs.create(Object(name: "crtb-\(c)-\(m)", spec: .init(
                    clusterName: "c-\(c)", userName: "u-\(c * membersPerCluster + m)",
                    roleTemplateName: m == 0 ? "cluster-owner" : "cluster-member")))
            }
        }
        let informers = RBACInformers(backend: t.backend)
        let authorizer = Authorizer(informers: informers)
        try informers.start()
        defer { informers.stop() }

        func user(_ n: Int) -> Principal { Principal(kind: .user, name: "u-\(n)", username: "u\(n)") }
        func get(_ c: Int) -> Access { Access(verb: "get", resource: "clusters", name: "c-\(c)", cluster: "c-\(c)") }

        var start = DispatchTime.now().uptimeNanoseconds
        #expect(authorizer.authorize(user(5_001), get(500)).allowed)
        let firstBuild = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6

        let rounds = 20_000
        var allowed = 0
        start = DispatchTime.now().uptimeNanoseconds
        for i in 0..<rounds {
            let u = (i * 7919) % (clusters * membersPerCluster)
            // Half the questions are about the user's own cluster (allowed), half about the next (denied).
            let c = u / membersPerCluster + (i % 2)
            if authorizer.authorize(user(u), get(c % clusters)).allowed { allowed += 1 }
        }
        let micros = Double(DispatchTime.now().uptimeNanoseconds - start) / 1000 / Double(rounds)
        #expect(allowed == rounds / 2)

        // A change drops the index; the next decision rebuilds it and sees the change.
        _ = try crtbs.create(Object(name: "crtb-extra", spec: .init(clusterName: "c-999", userName: "u-0", roleTemplateName: "cluster-member")))
        #expect(waitUntil(timeout: 1) { informers.clusterBindings.get("crtb-extra") != nil } != nil)
        start = DispatchTime.now().uptimeNanoseconds
        #expect(authorizer.authorize(user(0), get(999)).allowed)
        let rebuild = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        print("Authorizer: \(String(format: "%.2f", micros)) µs per decision with \(clusters * membersPerCluster) cluster bindings; index build \(String(format: "%.1f", firstBuild)) ms, rebuild after a change \(String(format: "%.1f", rebuild)) ms")
    }
}
