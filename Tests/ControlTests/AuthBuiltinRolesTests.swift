import Foundation
import LariatControl
import LariatStore
import Testing

/// A real SQLite store in a fresh folder of its own, removed when the test is done.
final class AuthTestStore: Sendable {
    let folder: String
    let backend: SQLiteBackend

    /// `memory` puts the folder on tmpfs when there is one: for tests that write thousands of
    /// objects to measure something else than the disk.
    init(memory: Bool = false) throws {
        let base = memory && FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm/" : NSTemporaryDirectory()
        folder = (base as NSString).appendingPathComponent("lariat-auth-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        backend = try SQLiteBackend(folder: folder)
    }

    deinit {
        backend.close()
        try? FileManager.default.removeItem(atPath: folder)
    }

    func store<R: Resource>(_: R.Type = R.self) -> ObjectStore<R> { ObjectStore<R>(backend) }
}

/// Polls `condition` until it holds or `timeout` passes; returns the time it took, or nil.
func waitUntil(timeout: TimeInterval = 5, _ condition: () -> Bool) -> TimeInterval? {
    let start = Date()
    while Date().timeIntervalSince(start) < timeout {
        if condition() { return Date().timeIntervalSince(start) }
        Thread.sleep(forTimeInterval: 0.002)
    }
    return condition() ? Date().timeIntervalSince(start) : nil
}

@Suite struct AuthBuiltinRolesTests {
    @Test func ensureCreatesEveryBuiltinRoleOnceAndRestoresChangedOnes() throws {
        let t = try AuthTestStore()
        try BuiltinRoles.ensure(backend: t.backend)
        let roles = t.store(GlobalRole.self), templates = t.store(RoleTemplate.self)
        #expect(try roles.listAll().items.map(\.name) == ["admin", "user"])
        #expect(try templates.listAll().items.map(\.name)
                == ["cluster-member", "cluster-owner", "project-member", "project-owner", "read-only"])
        let before = try roles.get("admin").metadata.resourceVersion

        // A second start writes nothing.
        try BuiltinRoles.ensure(backend: t.backend)
        #expect(try roles.get("admin").metadata.resourceVersion == before)

        // A built-in role changed behind the hub's back is put back; other roles are left alone.
        try roles.modify("user") { (o: inout Object<GlobalRole>) throws(StoreFailure) in o.spec.rules = [] }
        _ = try roles.create(Object(name: "custom", spec: GlobalRole.Spec(displayName: "Custom", rules: [])))
        try BuiltinRoles.ensure(backend: t.backend)
        #expect(try roles.get("user").spec == BuiltinRoles.globalRoles[1].spec)
        #expect(try roles.get("custom").spec.rules.isEmpty)
    }

    @Test func builtinRolesPassTheirOwnValidation() {
        for r in BuiltinRoles.globalRoles { #expect(GlobalRole.validate(r).isEmpty, "\(r.name)") }
        for r in BuiltinRoles.roleTemplates { #expect(RoleTemplate.validate(r).isEmpty, "\(r.name)") }
        #expect(BuiltinRoles.globalRoles.allSatisfy { $0.spec.builtin })
        #expect(BuiltinRoles.roleTemplates.allSatisfy { $0.spec.builtin })
    }

    @Test func helperBindingsAreStableAndValid() {
        let a = BuiltinRoles.creatorBinding(cluster: "c-1", creator: "u-abcde")
        #expect(a == BuiltinRoles.creatorBinding(cluster: "c-1", creator: "u-abcde"))
        #expect(a.name != BuiltinRoles.creatorBinding(cluster: "c-2", creator: "u-abcde").name)
        #expect(a.spec.roleTemplateName == "cluster-owner")
        #expect(ClusterRoleTemplateBinding.validate(a).isEmpty)
        let p = BuiltinRoles.projectCreatorBinding(project: "p-a", creator: "u-abcde")
        #expect(p.spec.roleTemplateName == "project-owner" && p.spec.projectName == "p-a")
        #expect(ProjectRoleTemplateBinding.validate(p).isEmpty)
        let grbs = BuiltinRoles.newUserBindings(userName: "u-abcde", roles: BuiltinRoles.globalRoles)
        #expect(grbs.map(\.spec.globalRoleName) == ["user"])
        #expect(grbs.allSatisfy { GlobalRoleBinding.validate($0).isEmpty })
    }
}
