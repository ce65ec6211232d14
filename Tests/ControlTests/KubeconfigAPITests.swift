import Foundation
import LariatControl
import LariatStore
import Testing
import Yams

/// Kubeconfigs through the /v3 API, against a real SQLite store: what kubectl will read (parsed
/// back with Yams), the scoped tokens they carry, and who may get one.
@Suite struct KubeconfigAPITests {
    /// The parsed kubeconfig of an answer.
    func kubeconfig(_ a: APIHarness.Answer) throws -> [String: Any] {
        #expect(a.json["type"] as? String == "generateKubeConfigOutput")
        #expect(a.json["baseType"] as? String == "generateKubeConfigOutput")
        let text = try #require(a.json["config"] as? String, "\(a.text)")
        let parsed = try Yams.load(yaml: text)
        return try #require(parsed as? [String: Any])
    }

    func names(_ config: [String: Any], _ list: String) -> [String] {
        (config[list] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
    }

    func tokens(_ config: [String: Any]) -> [String: String] {
        var byName: [String: String] = [:]
        for u in config["users"] as? [[String: Any]] ?? [] {
            if let n = u["name"] as? String, let t = (u["user"] as? [String: Any])?["token"] as? String { byName[n] = t }
        }
        return byName
    }

    func createCluster(_ h: APIHarness, _ name: String, by bearer: String, finalizer: Bool = false) throws {
        let meta = finalizer ? #"{"name":"\#(name)","finalizers":["example.com/hold"]}"# : #"{"name":"\#(name)"}"#
        let a = h.call("POST", "/v3/clusters", #"{"metadata":\#(meta),"spec":{}}"#, bearer: bearer)
        guard a.status == 201 else { throw HarnessError("cluster \(name): \(a.text)") }
    }

    func tokenCount(_ h: APIHarness, of user: String) -> Int {
        h.services.tokens.tokens.items.filter { $0.spec.userName == user }.count
    }

    @Test func aClusterKubeconfigPointsAtTheProxyAndItsTokenStaysInTheCluster() throws {
        let h = try APIHarness()
        let admin = try h.adminToken()
        try createCluster(h, "c1", by: admin)
        try createCluster(h, "c2", by: admin)
        let a = h.call("POST", "/v3/clusters/c1?action=generateKubeconfig", "{}", bearer: admin)
        #expect(a.status == 200, "\(a.text)")
        #expect(a.response.headers.contains { $0.name == "Cache-Control" && $0.value == "no-store" })
        let config = try kubeconfig(a)
        #expect(config["apiVersion"] as? String == "v1")
        #expect(config["kind"] as? String == "Config")
        #expect(config["current-context"] as? String == "c1")
        let cluster = try #require((config["clusters"] as? [[String: Any]])?.first)
        #expect(cluster["name"] as? String == "c1")
        let info = try #require(cluster["cluster"] as? [String: Any])
        #expect(info["server"] as? String == "https://127.0.0.1:8443/k8s/clusters/c1")
        let caData = try #require(info["certificate-authority-data"] as? String)
        #expect(Data(base64Encoded: caData).map { String(decoding: $0, as: UTF8.self) } == h.control.settings.caPEM)
        let context = try #require((config["contexts"] as? [[String: Any]])?.first)
        #expect(context["name"] as? String == "c1")
        #expect((context["context"] as? [String: Any])?["cluster"] as? String == "c1")
        #expect((context["context"] as? [String: Any])?["user"] as? String == "c1")
        #expect(names(config, "users") == ["c1"])
        let bearer = try #require(tokens(config)["c1"])

        // The token: the caller's, derived, scoped to c1, with the kubeconfig lifetime.
        let principal = try h.services.tokens.check(bearer: bearer).get()
        #expect(principal.clusterScope == "c1")
        #expect(principal.username == "admin")
        let tokenName = try #require(principal.tokenName)
        let stored = try #require(h.services.tokens.tokens.get(tokenName))
        #expect(stored.spec.isDerived)
        #expect(stored.spec.clusterName == "c1")
        #expect(stored.spec.description == "kubeconfig for cluster c1")
        let ttl = try #require(h.control.settings.kubeconfigTokenTTL)
        #expect(ttl == 30 * 24 * 3600)
        let expires = try #require(stored.spec.expiresAt)
        #expect(abs(expires.timeIntervalSinceNow - ttl) < 600)

        // Even an admin's kubeconfig token is refused outside its cluster.
        #expect(h.call("GET", "/v3/clusters/c1", bearer: bearer).status == 200)
        #expect(h.call("GET", "/v3/clusters/c2", bearer: bearer).status == 403)
        #expect(h.call("GET", "/v3/users/\(principal.name)", bearer: bearer).status == 403)
        #expect((h.call("GET", "/v3/clusters", bearer: bearer).json["data"] as? [[String: Any]])?.map { $0["id"] as? String } == ["c1"])
        #expect(h.call("POST", "/v3/clusters/c2?action=generateKubeconfig", bearer: bearer).status == 403)

        // Neither the audit records nor the token listing hold the bearer's secret.
        let secret = String(bearer.split(separator: ":")[1])
        let audit = String(decoding: try APIJSON.encoder.encode(h.audit.all), as: UTF8.self)
        #expect(!audit.contains(secret))
        #expect(!h.call("GET", "/v3/tokens", bearer: admin).text.contains(secret))
        let record = try #require(h.audit.all.last { $0.path == "/v3/clusters/c1" && $0.method == "POST" && $0.status == 200 })
        #expect(record.cluster == "c1" && record.resource == "kubeconfigs" && record.reason.contains("reaches every cluster"),
                "\(record)")
    }

    @Test func usersWithoutARoleInTheClusterGetNoKubeconfigAndNoToken() throws {
        let h = try APIHarness()
        let admin = try h.adminToken()
        try createCluster(h, "c1", by: admin)
        let bob = try h.user("bob", by: admin)
        let before = tokenCount(h, of: bob.id)
        let refused = h.call("POST", "/v3/clusters/c1?action=generateKubeconfig", bearer: bob.token)
        #expect(refused.status == 403, "\(refused.text)")
        #expect(refused.json["type"] as? String == "error" && refused.json["code"] as? String == "Forbidden")
        #expect(h.call("POST", "/v3/kubeconfigs", bearer: bob.token).status == 403)
        #expect(h.call("POST", "/v3/kubeconfigs", #"{"clusters":["c1"]}"#, bearer: bob.token).status == 403)
        // An unknown cluster is 404 to whoever may read clusters, 403 to the others (no probing).
        #expect(h.call("POST", "/v3/clusters/nope?action=generateKubeconfig", bearer: bob.token).status == 403)
        #expect(h.call("POST", "/v3/clusters/nope?action=generateKubeconfig", bearer: admin).status == 404)
        #expect(h.call("POST", "/v3/kubeconfigs", #"{"clusters":["c1","nope"]}"#, bearer: admin).status == 404)
        #expect(tokenCount(h, of: bob.id) == before)
        // Bodies and actions are strict.
        #expect(h.call("POST", "/v3/clusters/c1?action=generateKubeconfig", #"{"ttl":5}"#, bearer: admin).status == 422)
        #expect(h.call("POST", "/v3/clusters/c1?action=nothing", bearer: admin).status == 400)
        #expect(h.call("POST", "/v3/clusters/c1", bearer: admin).status == 405)
        #expect(h.call("POST", "/v3/kubeconfigs", #"{"cluster":["c1"]}"#, bearer: admin).status == 422)
    }

    @Test func aProjectMemberReachesItsProjectsClusterOnly() throws {
        let h = try APIHarness()
        let admin = try h.adminToken()
        try createCluster(h, "c1", by: admin)
        try createCluster(h, "c2", by: admin)
        let project = h.call("POST", "/v3/projects", #"{"metadata":{"name":"p1"},"spec":{"clusterName":"c1","namespaces":["web"]}}"#,
                             bearer: admin)
        #expect(project.status == 201, "\(project.text)")
        let bob = try h.user("bob", by: admin)
        let bind = h.call("POST", "/v3/projectroletemplatebindings",
                          #"{"metadata":{"name":""},"spec":{"projectName":"p1","userName":"\#(bob.id)","roleTemplateName":"project-member"}}"#,
                          bearer: admin)
        #expect(bind.status == 201, "\(bind.text)")
        try h.waitUntil { h.services.rbac.projectBindings.items.contains { $0.spec.userName == bob.id } }

        let bobPrincipal = try h.services.tokens.check(bearer: bob.token).get()
        #expect(h.services.authorizer.reachableClusters(bobPrincipal) == ["c1"])
        #expect(h.services.authorizer.canReach(bobPrincipal, cluster: "c1").allowed)
        #expect(!h.services.authorizer.canReach(bobPrincipal, cluster: "c2").allowed)

        let a = h.call("POST", "/v3/clusters/c1?action=generateKubeconfig", bearer: bob.token)
        #expect(a.status == 200, "\(a.text)")
        let bearer = try #require(tokens(try kubeconfig(a))["c1"])
        #expect(h.call("POST", "/v3/clusters/c2?action=generateKubeconfig", bearer: bob.token).status == 403)
        // The kubeconfig's token gets the discovery baseline and the project's workloads in c1, nothing more.
        let scoped = try h.services.tokens.check(bearer: bearer).get()
        let authz = h.services.authorizer
        #expect(authz.authorize(scoped, .nonResource(verb: "get", path: "/apis/apps/v1", cluster: "c1")).allowed)
        #expect(authz.authorize(scoped, Access(verb: "create", apiGroup: "authorization.k8s.io",
                                               resource: "selfsubjectaccessreviews", cluster: "c1")).allowed)
        #expect(authz.authorize(scoped, Access(verb: "list", apiGroup: "", resource: "pods", cluster: "c1", namespace: "web")).allowed)
        #expect(!authz.authorize(scoped, Access(verb: "list", apiGroup: "", resource: "pods", cluster: "c1", namespace: "kube-system")).allowed)
        #expect(!authz.authorize(scoped, .nonResource(verb: "get", path: "/version", cluster: "c2")).allowed)

        // Losing the binding loses the cluster.
        let binding = try #require(h.services.rbac.projectBindings.items.first { $0.spec.userName == bob.id })
        #expect(h.call("DELETE", "/v3/projectroletemplatebindings/\(binding.name)", bearer: admin).status == 200)
        try h.waitUntil { h.services.authorizer.reachableClusters(bobPrincipal).isEmpty }
        #expect(!authz.authorize(scoped, .nonResource(verb: "get", path: "/api", cluster: "c1")).allowed)
    }

    @Test func aMultiClusterKubeconfigHasOneContextAndTokenPerReachableCluster() throws {
        let h = try APIHarness()
        let admin = try h.adminToken()
        for c in ["c1", "c2", "c3"] { try createCluster(h, c, by: admin) }
        try createCluster(h, "c4", by: admin, finalizer: true)
        let alice = try h.user("alice", by: admin)
        _ = h.call("POST", "/v3/projects", #"{"metadata":{"name":"p3"},"spec":{"clusterName":"c3","namespaces":["n3"]}}"#, bearer: admin)
        for (kind, spec) in [("clusterroletemplatebindings", #""clusterName":"c1","roleTemplateName":"cluster-member""#),
                             ("projectroletemplatebindings", #""projectName":"p3","roleTemplateName":"read-only""#)] {
            let b = h.call("POST", "/v3/\(kind)", #"{"metadata":{"name":""},"spec":{\#(spec),"userName":"\#(alice.id)"}}"#, bearer: admin)
            #expect(b.status == 201, "\(b.text)")
        }
        try h.waitUntil {
            h.services.rbac.projectBindings.items.count == 1 && h.services.rbac.clusterBindings.items.contains { $0.spec.userName == alice.id }
        }

        // Everything Alice reaches: c1 (cluster role) and c3 (project role), not c2.
        let all = try kubeconfig(h.call("POST", "/v3/kubeconfigs", bearer: alice.token))
        #expect(names(all, "clusters") == ["c1", "c3"])
        #expect(names(all, "contexts") == ["c1", "c3"])
        #expect(all["current-context"] as? String == "c1")
        let bearers = tokens(all)
        #expect(Set(bearers.keys) == ["c1", "c3"])
        #expect(Set(bearers.values).count == 2)
        for (cluster, bearer) in bearers {
            #expect((try? h.services.tokens.check(bearer: bearer).get())?.clusterScope == cluster)
        }
        #expect(try kubeconfig(h.call("POST", "/v3/kubeconfigs", "{}", bearer: alice.token))["current-context"] as? String == "c1")

        // Named clusters, in the order asked; the first is current.
        let named = try kubeconfig(h.call("POST", "/v3/kubeconfigs", #"{"clusters":["c3","c1","c3"]}"#, bearer: alice.token))
        #expect(names(named, "contexts") == ["c3", "c1"])
        #expect(named["current-context"] as? String == "c3")

        // One cluster she does not reach refuses the whole request, and issues nothing.
        let before = tokenCount(h, of: alice.id)
        #expect(h.call("POST", "/v3/kubeconfigs", #"{"clusters":["c1","c2"]}"#, bearer: alice.token).status == 403)
        #expect(tokenCount(h, of: alice.id) == before)

        // The admin reaches every cluster but the one being deleted.
        #expect(h.call("DELETE", "/v3/clusters/c4", bearer: admin).status == 202)
        try h.waitUntil { h.control.clusterInformer.get("c4")?.metadata.isBeingDeleted == true }
        let everything = try kubeconfig(h.call("POST", "/v3/kubeconfigs", bearer: admin))
        #expect(names(everything, "clusters") == ["c1", "c2", "c3"])
        #expect(h.call("POST", "/v3/clusters/c4?action=generateKubeconfig", bearer: admin).status == 403)
    }

    @Test func namesKubectlWouldMisreadAreQuoted() throws {
        let entries = ["y", "n", "on", "0x1f", "1e3", "null"].map {
            Kubeconfig.Entry(cluster: $0, server: "https://h/k8s/clusters/\($0)", caPEM: nil, token: "token-abcde:s")
        }
        let text = try Kubeconfig.yaml(entries)
        for e in entries { #expect(text.contains("name: \"\(e.cluster)\""), "\(text)") }
        #expect(!text.contains("certificate-authority-data"))
        let loaded = try Yams.load(yaml: text)
        let parsed = try #require(loaded as? [String: Any])
        #expect(names(parsed, "clusters") == entries.map(\.cluster))
        #expect(parsed["current-context"] as? String == "y")
    }
}
