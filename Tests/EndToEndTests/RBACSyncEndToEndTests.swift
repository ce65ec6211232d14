import Foundation
import LariatHub
import Testing

/// Issue #10, "Downward", with real processes: a `lariat-hub`, a `lariat-agent` with `k8s-proxy`,
/// and the Kubernetes stand-in started with `--rbac` (it authorizes impersonated users by its
/// stored RBAC objects) holding the import manifest's RBAC (`Agent/deploy/00-namespace.yaml`,
/// `10-rbac.yaml`, applied with its admin token before the agent connects), so the hub's sync
/// runs with exactly the rights the manifest gives `lariat:controller`.
@Suite(.serialized) struct RBACSyncEndToEndTests {
    static let managed = "lariat.io%2Fmanaged-by%3Dlariat-hub"
    static let rbac = "/apis/rbac.authorization.k8s.io/v1"

    @Test func aHubBindingBecomesClusterRBACWithinTwoSecondsAndCanIFollowsIt() throws {
        // An hour between resyncs: everything here must come from the triggers alone.
        let rig = try RBACSyncRig(resync: 3600)
        defer { rig.shutdown() }
        // The agent's connect synced the cluster: the bootstrap admin's global role is there.
        #expect(RBACSyncRig.poll(timeout: 10) { try rig.exists("clusterrolebindings", "lariat-grb-grb-bootstrap-admin") } != nil,
                "the admin's binding did not reach the cluster when the agent connected\n\(rig.logs)")

        var erin = try rig.createUser("erin")
        try rig.create("/v3/projects", ["metadata": ["name": "p-team"],
                                        "spec": ["clusterName": "local", "displayName": "Team", "namespaces": ["team-a"]]])

        // A cluster binding: ClusterRole + ClusterRoleBinding within 2 s.
        let crtb = try rig.create("/v3/clusterroletemplatebindings", ["metadata": ["name": "erin-member"],
            "spec": ["clusterName": "local", "userName": erin.id, "roleTemplateName": "cluster-member"]])
        var took = RBACSyncRig.poll(timeout: 10) {
            try rig.exists("clusterrolebindings", "lariat-crtb-erin-member") && rig.exists("clusterroles", "lariat-rt-cluster-member")
        }
        #expect(took.map { $0 <= 2 } == true, "ClusterRoleBinding after \(took.map { String(format: "%.2f s", $0) } ?? "never")\n\(rig.logs)")
        print("RBACSyncEndToEnd: cluster binding → ClusterRole + ClusterRoleBinding in \(took.map { String(format: "%.3f s", $0) } ?? "never")")
        let crb = try rig.standinGet("\(Self.rbac)/clusterrolebindings/lariat-crtb-erin-member")
        #expect((crb["subjects"] as? [[String: Any]])?.first?["name"] as? String == erin.id, "\(crb)")
        #expect((crb["roleRef"] as? [String: Any])?["name"] as? String == "lariat-rt-cluster-member")
        let meta = crb["metadata"] as? [String: Any]
        #expect((meta?["labels"] as? [String: String])?["lariat.io/binding"] == "erin-member")
        #expect((meta?["annotations"] as? [String: String])?["lariat.io/uid"] == (crtb.json["metadata"] as? [String: Any])?["uid"] as? String)

        // kubectl through the hub, as erin: the stand-in answers can-i from what the sync made.
        erin = try rig.withKubeconfig(erin)
        #expect(try rig.canI(erin, "list", "nodes") == "yes", "\(rig.logs)")
        #expect(try rig.canI(erin, "list", "pods", "-n", "team-a") == "no")

        // A project binding: a RoleBinding in the project's namespace within 2 s, and pods there.
        try rig.create("/v3/projectroletemplatebindings", ["metadata": ["name": "erin-team"],
            "spec": ["projectName": "p-team", "userName": erin.id, "roleTemplateName": "project-member"]])
        took = RBACSyncRig.poll(timeout: 10) { try rig.exists("rolebindings", "lariat-prtb-erin-team", namespace: "team-a") }
        #expect(took.map { $0 <= 2 } == true, "RoleBinding after \(took.map { String(format: "%.2f s", $0) } ?? "never")\n\(rig.logs)")
        print("RBACSyncEndToEnd: project binding → RoleBinding in team-a in \(took.map { String(format: "%.3f s", $0) } ?? "never")")
        #expect(try rig.canI(erin, "list", "pods", "-n", "team-a") == "yes", "\(rig.logs)")
        #expect(try rig.canI(erin, "create", "configmaps", "-n", "team-a") == "yes")
        #expect(try rig.canI(erin, "list", "pods", "-n", "default") == "no", "only the project's namespaces")
        #expect(try rig.canI(erin, "create", "rolebindings", "-n", "team-a") == "no", "project-member has no RBAC rights")

        // Deleting it removes its objects (within 2 s) and the rights with them.
        try rig.delete("/v3/projectroletemplatebindings/erin-team")
        took = RBACSyncRig.poll(timeout: 10) {
            try !rig.exists("rolebindings", "lariat-prtb-erin-team", namespace: "team-a") && !rig.exists("clusterroles", "lariat-rt-project-member")
        }
        #expect(took.map { $0 <= 2 } == true, "RoleBinding removed after \(took.map { String(format: "%.2f s", $0) } ?? "never")\n\(rig.logs)")
        #expect(try rig.canI(erin, "list", "pods", "-n", "team-a") == "no")
        #expect(try rig.canI(erin, "list", "nodes") == "yes", "the cluster binding stays")

        try rig.delete("/v3/clusterroletemplatebindings/erin-member")
        took = RBACSyncRig.poll(timeout: 10) {
            try !rig.exists("clusterrolebindings", "lariat-crtb-erin-member") && !rig.exists("clusterroles", "lariat-rt-cluster-member")
        }
        #expect(took.map { $0 <= 2 } == true, "ClusterRoleBinding removed after \(took.map { String(format: "%.2f s", $0) } ?? "never")\n\(rig.logs)")

        // Every change was made through the agent's credential as lariat:controller, and allowed
        // by the cluster's own RBAC (the manifest's lariat-controller role).
        let writes = try rig.standin.requests(pathPrefix: Self.rbac).filter { $0.method != "GET" && $0.user == "standin-proxy" }
        #expect(writes.count >= 8, "\(writes)")
        for w in writes {
            #expect(w.user == "standin-proxy" && w.impersonateUser == "lariat:controller", "\(w)")
            #expect([200, 201].contains(w.code ?? 0), "refused by the cluster's RBAC: \(w)")
        }
    }

    @Test func handEditsInTheClusterAreRepairedAndOthersObjectsAreLeftAlone() throws {
        let rig = try RBACSyncRig(resync: 1)
        defer { rig.shutdown() }
        var frank = try rig.createUser("frank")
        try rig.create("/v3/clusterroletemplatebindings", ["metadata": ["name": "frank-member"],
            "spec": ["clusterName": "local", "userName": frank.id, "roleTemplateName": "cluster-member"]])
        let rolePath = "\(Self.rbac)/clusterroles/lariat-rt-cluster-member"
        let bindingPath = "\(Self.rbac)/clusterrolebindings/lariat-crtb-frank-member"
        #expect(RBACSyncRig.poll(timeout: 10) { try rig.exists("clusterrolebindings", "lariat-crtb-frank-member") } != nil, "\(rig.logs)")
        let wantedRules = try rig.standinGet(rolePath)["rules"] as? [[String: Any]] ?? []
        frank = try rig.withKubeconfig(frank)
        #expect(try rig.canI(frank, "list", "nodes") == "yes", "\(rig.logs)")

        // Objects the hub did not make: one of its own kind, one with a name like ours. Neither
        // carries the managed-by label, so neither may change.
        try rig.standinSend("POST", "\(Self.rbac)/clusterrolebindings", [
            "metadata": ["name": "hand-made"], "roleRef": ["apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"],
            "subjects": [["apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "mallory"]]])
        try rig.standinSend("POST", "\(Self.rbac)/clusterroles", [
            "metadata": ["name": "lariat-rt-hand-made", "labels": ["lariat.io/role-template": "hand-made"]],
            "rules": [["apiGroups": [""], "resources": ["pods"], "verbs": ["get"]]]])
        let theirs = try [rig.standinGet("\(Self.rbac)/clusterrolebindings/hand-made"), rig.standinGet("\(Self.rbac)/clusterroles/lariat-rt-hand-made")]

        // Hand edits with the cluster's admin token: the role narrowed, the binding's subject swapped.
        var role = try rig.standinGet(rolePath)
        role["rules"] = [["apiGroups": [""], "resources": ["pods"], "verbs": ["get"]]]
        try rig.standinSend("PUT", rolePath, role)
        var binding = try rig.standinGet(bindingPath)
        binding["subjects"] = [["apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "mallory"]]
        try rig.standinSend("PUT", bindingPath, binding)
        var took = RBACSyncRig.poll(timeout: 10) {
            let r = try rig.standinGet(rolePath)
            let b = try rig.standinGet(bindingPath)
            return RBACSyncRig.canonical(r["rules"] ?? []) == RBACSyncRig.canonical(wantedRules)
                && (b["subjects"] as? [[String: Any]])?.first?["name"] as? String == frank.id
        }
        #expect(took != nil, "hand edits were not repaired within 10 s (resync 1 s)\n\(rig.logs)")
        #expect(try rig.canI(frank, "list", "nodes") == "yes", "\(rig.logs)")
        #expect(rig.tunnel.hub.log.contains("updated ClusterRole lariat-rt-cluster-member (rules drifted)"), "\(rig.logs)")

        // A hand deletion is undone too.
        try rig.standinSend("DELETE", bindingPath, nil)
        took = RBACSyncRig.poll(timeout: 10) { try rig.exists("clusterrolebindings", "lariat-crtb-frank-member") }
        #expect(took != nil, "a deleted ClusterRoleBinding was not recreated\n\(rig.logs)")

        // Two more resyncs later, the others' objects are exactly as they were.
        Thread.sleep(forTimeInterval: 2.5)
        let after = try [rig.standinGet("\(Self.rbac)/clusterrolebindings/hand-made"), rig.standinGet("\(Self.rbac)/clusterroles/lariat-rt-hand-made")]
        for (before, now) in zip(theirs, after) {
            #expect(RBACSyncRig.canonical(before) == RBACSyncRig.canonical(now), "changed: \(before) → \(now)")
        }
        let touched = try rig.standin.requests(pathPrefix: Self.rbac).filter {
            $0.method != "GET" && $0.impersonateUser == "lariat:controller" && ($0.path.hasSuffix("/hand-made") || $0.path.hasSuffix("/lariat-rt-hand-made"))
        }
        #expect(touched.isEmpty, "\(touched)")
    }
}

/// The stand-in with `--rbac` and the manifest's RBAC, a hub (`--rbac-resync`), one cluster
/// agent in front of the stand-in, and the hub's admin logged in.
final class RBACSyncRig: @unchecked Sendable {
    // Invariant: used by the one test that made it.
    let tunnel: TunnelRig
    let standin: KubeStandin
    let proxyToken = "standin-proxy-" + KubernetesRig.randomLetters(20)
    let home: String
    let bootstrapPassword = "rbac-e2e-bootstrap-" + KubernetesRig.randomLetters(12)
    private(set) var admin = ""

    static let manifests: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Agent/deploy").path

    init(resync: Double) throws {
        tunnel = try TunnelRig(forwards: [], hubArguments: ["--rbac-resync", String(resync)],
                               hubEnvironment: ["LARIAT_BOOTSTRAP_PASSWORD": bootstrapPassword])
        do {
            home = tunnel.directory + "/kubectl-home"
            try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
            var options = KubeStandin.Options()
            options.proxyToken = proxyToken
            options.rbac = true
            options.serverVersion = "v1.32.4"
            options.pods = ["default/p1", "team-a/pa"]
            standin = try KubeStandin(directory: tunnel.directory, options: options)
        } catch {
            tunnel.shutdown()
            throw error
        }
        do {
            // The import manifest's namespace and RBAC, as an operator applies them.
            let applied = try Spawned("/usr/bin/kubectl", ["apply", "--validate=false", "-f", Self.manifests + "/00-namespace.yaml",
                                                           "-f", Self.manifests + "/10-rbac.yaml"],
                                      environment: environment(kubeconfig: standin.kubeconfig), directory: tunnel.directory,
                                      name: "kubectl-apply").finish(timeout: 60)
            guard applied.status == 0, applied.out.contains("clusterrolebinding.rbac.authorization.k8s.io/lariat-controller") else {
                throw TestFailure("kubectl apply of the manifest: \(applied)")
            }
            let tokenFile = tunnel.directory + "/k8s-token"
            try (proxyToken + "\n").write(toFile: tokenFile, atomically: true, encoding: .utf8)
            try tunnel.startAgent(id: "rbac-agent", cluster: "local",
                                  extra: ["--k8s-api", "127.0.0.1:\(standin.port)", "--k8s-token-file", tokenFile,
                                          "--k8s-ca-file", standin.caFile])
            let first = try login("admin", bootstrapPassword)
            let changed = "rbac-e2e-admin-" + KubernetesRig.randomLetters(12)
            let r = try api("POST", "/v3/users?action=changepassword", ["currentPassword": bootstrapPassword, "newPassword": changed], bearer: first)
            guard r.status == 200 else { throw TestFailure("change the admin password: \(r.status) \(r.text)") }
            admin = try login("admin", changed)
        } catch {
            shutdown()
            throw error
        }
    }

    func shutdown() {
        standin.stop()
        tunnel.shutdown()
    }

    var logs: String { tunnel.logs + "\n== standin\n" + String(standin.log.suffix(1500)) }

    func environment(kubeconfig: String) -> [String: String] {
        ["KUBECONFIG": kubeconfig, "HOME": home, "KUBECACHEDIR": home + "/cache"]
    }

    // MARK: The hub's API

    typealias Answer = HubAnswer

    func api(_ method: String, _ path: String, _ body: [String: Any]? = nil, bearer: String?) throws -> Answer {
        try tunnel.json(method, path, body, bearer: bearer)
    }

    @discardableResult
    func create(_ path: String, _ body: [String: Any]) throws -> Answer {
        let r = try api("POST", path, body, bearer: admin)
        guard r.status == 201 else { throw TestFailure("POST \(path): \(r.status) \(r.text)") }
        return r
    }

    func delete(_ path: String) throws {
        let r = try api("DELETE", path, bearer: admin)
        guard [200, 202, 204].contains(r.status) else { throw TestFailure("DELETE \(path): \(r.status) \(r.text)") }
    }

    func login(_ username: String, _ password: String) throws -> String { try tunnel.login(username, password) }

    struct User {
        var id: String
        var session: String
        var kubeconfig = ""
    }

    func createUser(_ username: String) throws -> User {
        let password = "pw-\(username)-" + KubernetesRig.randomLetters(14)
        let r = try api("POST", "/v3/users", ["username": username, "password": password], bearer: admin)
        guard r.status == 201, let id = r.json["id"] as? String else { throw TestFailure("create user \(username): \(r.status) \(r.text)") }
        return User(id: id, session: try login(username, password))
    }

    /// `user` with a kubeconfig from `POST /v3/clusters/local?action=generateKubeconfig`.
    func withKubeconfig(_ user: User) throws -> User {
        let r = try api("POST", "/v3/clusters/local?action=generateKubeconfig", nil, bearer: user.session)
        guard r.status == 200, let config = r.json["config"] as? String else {
            throw TestFailure("generateKubeconfig: \(r.status) \(r.text)")
        }
        var u = user
        u.kubeconfig = tunnel.directory + "/\(user.id).kubeconfig"
        try config.write(toFile: u.kubeconfig, atomically: true, encoding: .utf8)
        return u
    }

    /// `kubectl auth can-i VERB RESOURCE [flags]` through the hub: "yes" or "no".
    func canI(_ user: User, _ args: String...) throws -> String {
        let r = try Spawned("/usr/bin/kubectl", ["auth", "can-i"] + args, environment: environment(kubeconfig: user.kubeconfig),
                            directory: tunnel.directory, name: "kubectl-can-i").finish(timeout: 60)
        let answer = r.out.trimmingCharacters(in: .whitespacesAndNewlines)
        guard answer == "yes" || answer == "no" else { throw TestFailure("kubectl auth can-i \(args): \(r)") }
        return answer
    }

    // MARK: The stand-in, with its admin token

    func standinRequest(_ method: String, _ path: String, _ body: [String: Any]?) throws -> (status: Int, json: [String: Any]) {
        let bytes = try body.map { Array(try JSONSerialization.data(withJSONObject: $0)) }
        let r = try HubAPIClient.send(method: method, host: "127.0.0.1", port: standin.port, path: path, body: bytes,
                                      bearer: standin.token, caPEM: standin.caPEM, timeoutMilliseconds: 10_000)
        return (r.status, (try? JSONSerialization.jsonObject(with: Data(r.body.utf8))) as? [String: Any] ?? [:])
    }

    func standinGet(_ path: String) throws -> [String: Any] {
        let r = try standinRequest("GET", path, nil)
        guard r.status == 200 else { throw TestFailure("stand-in GET \(path): \(r.status) \(r.json)") }
        return r.json
    }

    func standinSend(_ method: String, _ path: String, _ body: [String: Any]?) throws {
        let r = try standinRequest(method, path, body)
        guard (200..<300).contains(r.status) else { throw TestFailure("stand-in \(method) \(path): \(r.status) \(r.json)") }
    }

    /// Whether the stand-in holds `name` of `resource` carrying the hub's managed-by label.
    func exists(_ resource: String, _ name: String, namespace: String? = nil) throws -> Bool {
        let path = RBACSyncEndToEndTests.rbac + (namespace.map { "/namespaces/\($0)" } ?? "") + "/\(resource)/\(name)"
        let r = try standinRequest("GET", path, nil)
        guard r.status == 200 else { return false }
        return ((r.json["metadata"] as? [String: Any])?["labels"] as? [String: String])?["lariat.io/managed-by"] == "lariat-hub"
    }

    /// JSON with sorted keys, for comparing decoded objects.
    static func canonical(_ value: Any) -> Data {
        (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed])) ?? Data()
    }

    static func poll(timeout: Double, _ condition: () throws -> Bool) -> Double? {
        KubernetesRig.poll(timeout: timeout) { (try? condition()) ?? false }
    }
}
