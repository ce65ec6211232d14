import Foundation
import LariatControl
import LariatStore
import Testing

/// Validation per kind: each bad input gives an error naming the field the client must fix.
@Suite struct AuthValidationTests {
    func fields(_ errors: [FieldError]) -> [String] { errors.map(\.field) }

    let hash = PasswordHasher(settings: { var s = PasswordHasher.Settings(); s.logN = 4; return s }()).hash("a long enough password")

    @Test func user() {
        let good = Object<User>(name: "u-abcde", spec: User.Spec(username: "alice", displayName: "Alice", passwordHash: hash))
        #expect(User.validate(good).isEmpty)
        var o = good
        o.metadata.name = "U_Bad"
        #expect(fields(User.validate(o)) == ["metadata.name"])
        o = good
        o.spec.username = ""
        #expect(fields(User.validate(o)) == ["spec.username"])
        o.spec.username = "alice\nadmin"
        #expect(fields(User.validate(o)) == ["spec.username"])
        o.spec.username = String(repeating: "a", count: User.maxUsernameLength + 1)
        #expect(fields(User.validate(o)) == ["spec.username"])
        o = good
        o.spec.passwordHash = "plaintext-password"
        #expect(fields(User.validate(o)) == ["spec.passwordHash"])
        o = good
        o.spec.displayName = "Alice\u{1b}[31m"
        o.spec.groups = [""]
        #expect(fields(User.validate(o)) == ["spec.displayName", "spec.groups[0]"])
        // A user without a password (external principals only) is valid.
        o = good
        o.spec.passwordHash = ""
        #expect(User.validate(o).isEmpty)
    }

    @Test func userDecodingNeedsAUsernameAndDefaultsTheRest() throws {
        let d = JSONDecoder()
        #expect(throws: (any Error).self) { try d.decode(User.Spec.self, from: Data(#"{"displayName":"x"}"#.utf8)) }
        let s = try d.decode(User.Spec.self, from: Data(#"{"username":"bob"}"#.utf8))
        #expect(s.enabled && !s.mustChangePassword && s.groups.isEmpty)
    }

    @Test func token() {
        let good = Object<Token>(name: "token-bcd2f", spec: Token.Spec(userName: "u-abcde", secretDigest: TokenFormat.digest(secret: "x")))
        #expect(Token.validate(good).isEmpty)
        var o = good
        o.metadata.name = "mytoken"
        #expect(fields(Token.validate(o)) == ["metadata.name"])
        o = good
        o.spec.userName = ""
        o.spec.secretDigest = "the-secret-itself"
        o.spec.ttlMillis = -1
        #expect(fields(Token.validate(o)) == ["spec.userName", "spec.ttlMillis", "spec.secretDigest"])
        o = good
        o.spec.clusterName = "Not A Cluster"
        #expect(fields(Token.validate(o)) == ["spec.clusterName"])
    }

    @Test func globalRoleRules() {
        func role(_ rules: [PolicyRule], name: String = "viewer") -> Object<GlobalRole> {
            Object(name: name, spec: GlobalRole.Spec(displayName: "Viewer", rules: rules))
        }
        #expect(GlobalRole.validate(role([PolicyRule(verbs: ["get", "list"], apiGroups: [""], resources: ["pods"])])).isEmpty)
        #expect(GlobalRole.validate(role([PolicyRule(verbs: ["get"], nonResourceURLs: ["/metrics", "/debug/*"])])).isEmpty)
        // Unknown verb, named by index.
        #expect(fields(GlobalRole.validate(role([PolicyRule(verbs: ["get"], apiGroups: [""], resources: ["pods"]),
                                                 PolicyRule(verbs: ["list", "destroy"], apiGroups: [""], resources: ["pods"])])))
                == ["spec.rules[1].verbs[1]"])
        #expect(fields(GlobalRole.validate(role([PolicyRule(verbs: [], apiGroups: [""], resources: ["pods"])])))
                == ["spec.rules[0].verbs"])
        // Neither resources nor URLs; both; resources without groups; a '*' inside a URL.
        #expect(fields(GlobalRole.validate(role([PolicyRule(verbs: ["get"])]))) == ["spec.rules[0].resources"])
        #expect(fields(GlobalRole.validate(role([PolicyRule(verbs: ["get"], apiGroups: [""], resources: ["pods"], nonResourceURLs: ["/x"])])))
                == ["spec.rules[0].nonResourceURLs"])
        #expect(fields(GlobalRole.validate(role([PolicyRule(verbs: ["get"], resources: ["pods"])]))) == ["spec.rules[0].apiGroups"])
        #expect(fields(GlobalRole.validate(role([PolicyRule(verbs: ["get"], nonResourceURLs: ["/a*/b"])])))
                == ["spec.rules[0].nonResourceURLs[0]"])
        #expect(fields(GlobalRole.validate(role([], name: "-bad"))) == ["metadata.name"])
    }

    @Test func roleTemplateContextLimitsNonResourceURLs() throws {
        let urlRule = PolicyRule(verbs: ["get"], nonResourceURLs: ["/version"])
        let cluster = Object<RoleTemplate>(name: "c-viewer", spec: RoleTemplate.Spec(displayName: "x", context: .cluster, rules: [urlRule]))
        #expect(RoleTemplate.validate(cluster).isEmpty)
        var project = cluster
        project.spec.context = .project
        #expect(fields(RoleTemplate.validate(project)) == ["spec.rules[0].nonResourceURLs"])
        // The context is required and must be one of the two.
        #expect(throws: (any Error).self) {
            try JSONDecoder().decode(RoleTemplate.Spec.self, from: Data(#"{"displayName":"x","rules":[]}"#.utf8))
        }
        #expect(throws: (any Error).self) {
            try JSONDecoder().decode(RoleTemplate.Spec.self, from: Data(#"{"context":"global","rules":[]}"#.utf8))
        }
    }

    @Test func globalRoleBindingNeedsOneSubjectAndARole() {
        let good = Object<GlobalRoleBinding>(name: "grb-1", spec: GlobalRoleBinding.Spec(userName: "u-abcde", globalRoleName: "admin"))
        #expect(GlobalRoleBinding.validate(good).isEmpty)
        var o = good
        o.spec.userName = nil
        #expect(fields(GlobalRoleBinding.validate(o)) == ["spec.userName"])
        o.spec.groupPrincipalName = "local://ops"
        #expect(GlobalRoleBinding.validate(o).isEmpty)
        o.spec.userName = "u-abcde"
        #expect(fields(GlobalRoleBinding.validate(o)) == ["spec.groupPrincipalName"])
        o = good
        o.spec.globalRoleName = ""
        #expect(fields(GlobalRoleBinding.validate(o)) == ["spec.globalRoleName"])
    }

    @Test func roleTemplateBindingsCheckFieldsAndTheTemplatesContext() {
        let templates = Dictionary(uniqueKeysWithValues: BuiltinRoles.roleTemplates.map { ($0.name, $0) })
        let lookup: (String) -> Object<RoleTemplate>? = { templates[$0] }

        let crtb = Object<ClusterRoleTemplateBinding>(name: "crtb-1", spec: ClusterRoleTemplateBinding.Spec(
            clusterName: "c-1", userName: "u-abcde", roleTemplateName: "cluster-member"))
        #expect(ClusterRoleTemplateBinding.validate(crtb, roleTemplate: lookup).isEmpty)
        var c = crtb
        c.spec.clusterName = ""
        #expect(fields(ClusterRoleTemplateBinding.validate(c, roleTemplate: lookup)) == ["spec.clusterName"])
        c = crtb
        c.spec.roleTemplateName = "project-member"
        #expect(fields(ClusterRoleTemplateBinding.validate(c, roleTemplate: lookup)) == ["spec.roleTemplateName"])
        c.spec.roleTemplateName = "no-such-role"
        #expect(ClusterRoleTemplateBinding.validate(c, roleTemplate: lookup).first?.message.contains("no role template") == true)

        let prtb = Object<ProjectRoleTemplateBinding>(name: "prtb-1", spec: ProjectRoleTemplateBinding.Spec(
            projectName: "p-a", groupPrincipalName: "local://devs", roleTemplateName: "read-only"))
        #expect(ProjectRoleTemplateBinding.validate(prtb, roleTemplate: lookup).isEmpty)
        var p = prtb
        p.spec.projectName = "P A"
        p.spec.groupPrincipalName = nil
        #expect(fields(ProjectRoleTemplateBinding.validate(p, roleTemplate: lookup)) == ["spec.projectName", "spec.userName"])
        p = prtb
        p.spec.roleTemplateName = "cluster-owner"
        #expect(fields(ProjectRoleTemplateBinding.validate(p, roleTemplate: lookup)) == ["spec.roleTemplateName"])
    }
}
