import Foundation
import LariatControl
import LariatStore
import Testing

/// Forward objects through the /v3 API on a real store: validation, who may create, see, change
/// and delete them, and the connection-time decision the hub makes with the owner's rights.
/// Fixture: cluster c1 with projects p1 (namespace team-a) and p2 (team-b); alice and bob are
/// project members of p1, olga its owner, rita read-only there, carol has no binding.
@Suite struct ForwardAPITests {
    struct Fixture {
        let h: APIHarness
        let admin: String
        let alice: (id: String, token: String)
        let bob: (id: String, token: String)
        let olga: (id: String, token: String)
        let rita: (id: String, token: String)
        let carol: (id: String, token: String)

        init() throws {
            h = try APIHarness()
            admin = try h.adminToken()
            for (path, body) in [("/v3/clusters", #"{"metadata":{"name":"c1"},"spec":{}}"#),
                                 ("/v3/projects", #"{"metadata":{"name":"p1"},"spec":{"clusterName":"c1","namespaces":["team-a"]}}"#),
                                 ("/v3/projects", #"{"metadata":{"name":"p2"},"spec":{"clusterName":"c1","namespaces":["team-b"]}}"#)] {
                let a = h.call("POST", path, body, bearer: admin)
                guard a.status == 201 else { throw HarnessError("\(path): \(a.text)") }
            }
            alice = try h.user("alice", by: admin)
            bob = try h.user("bob", by: admin)
            olga = try h.user("olga", by: admin)
            rita = try h.user("rita", by: admin)
            carol = try h.user("carol", by: admin)
            for (who, role) in [(alice.id, "project-member"), (bob.id, "project-member"), (olga.id, "project-owner"),
                                (rita.id, "read-only")] {
                try bind(who, role, in: "p1")
            }
        }

        @discardableResult
        func bind(_ user: String, _ role: String, in project: String) throws -> String {
            let a = h.call("POST", "/v3/projectroletemplatebindings",
                           #"{"metadata":{"name":""},"spec":{"projectName":"\#(project)","userName":"\#(user)","roleTemplateName":"\#(role)"}}"#,
                           bearer: admin)
            guard a.status == 201, let name = a.json["id"] as? String else { throw HarnessError("bind \(user): \(a.text)") }
            try h.waitUntil { h.services.rbac.projectBindings.get(name) != nil }
            return name
        }

        func forwardBody(_ name: String, namespace: String = "team-a", port: String = "8080", listen: String? = nil,
                         extra: String = "") -> String {
            let l = listen.map { #","listen":"\#($0)""# } ?? ""
            return #"{"metadata":{"name":"\#(name)"},"spec":{"clusterName":"c1","namespace":"\#(namespace)","service":"web","port":\#(port)\#(l)\#(extra)}}"#
        }

        @discardableResult
        func create(_ name: String, by bearer: String, namespace: String = "team-a", port: String = "8080",
                    listen: String? = nil, extra: String = "") -> APIHarness.Answer {
            h.call("POST", "/v3/forwards", forwardBody(name, namespace: namespace, port: port, listen: listen, extra: extra), bearer: bearer)
        }

        func ids(_ bearer: String) -> Set<String> {
            Set((h.call("GET", "/v3/forwards", bearer: bearer).json["data"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String })
        }
    }

    @Test func fieldsAreValidated() throws {
        let f = try Fixture()
        func invalid(_ a: APIHarness.Answer, _ field: String, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(a.status == 422 && (a.json["fieldName"] as? String) == field, "\(a.text)", sourceLocation: sourceLocation)
        }
        invalid(f.create("Bad_Name", by: f.admin), "metadata.name")
        invalid(f.create("f1", by: f.admin, port: "0"), "spec.port")
        invalid(f.create("f1", by: f.admin, port: "70000"), "spec.port")
        invalid(f.create("f1", by: f.admin, port: #""HTTP""#), "spec.port")
        invalid(f.create("f1", by: f.admin, port: #""a-very-long-port-name""#), "spec.port")
        invalid(f.create("f1", by: f.admin, port: #""123""#), "spec.port")
        invalid(f.create("f1", by: f.admin, namespace: "Team_A"), "spec.namespace")
        invalid(f.create("f1", by: f.admin, listen: "localhost:9000"), "spec.listen")  // a name would be resolved
        invalid(f.create("f1", by: f.admin, listen: "127.0.0.1"), "spec.listen")
        invalid(f.create("f1", by: f.admin, listen: "127.0.0.1:65536"), "spec.listen")
        invalid(f.create("f1", by: f.admin, listen: "[127.0.0.1]:9000"), "spec.listen")
        invalid(f.create("f1", by: f.admin, listen: "127.0.0.1:443"), "spec.listen")  // privileged: outside forwardListenPorts
        invalid(f.create("f1", by: f.admin, extra: #","description":"line\nforged""#), "spec.description")
        let noCluster = f.h.call("POST", "/v3/forwards",
                                 #"{"metadata":{"name":"f1"},"spec":{"clusterName":"c9","namespace":"a","service":"web","port":80}}"#,
                                 bearer: f.admin)
        invalid(noCluster, "spec.clusterName")

        // Good ones: a named port, port 0, IPv6, no listener.
        #expect(f.create("f-named", by: f.admin, port: #""http""#, listen: "127.0.0.1:0").status == 201)
        #expect(f.create("f-v6", by: f.admin, listen: "[::1]:0").status == 201)
        #expect(f.create("f-none", by: f.admin).status == 201)
        let fixed = f.create("f-fixed", by: f.admin, listen: "127.0.0.1:18080")
        #expect(fixed.status == 201, "\(fixed.text)")
        // A fixed address belongs to one forward.
        invalid(f.create("f-again", by: f.admin, listen: "127.0.0.1:18080"), "spec.listen")
        let named = f.h.call("GET", "/v3/forwards/f-named", bearer: f.admin)
        #expect((named.json["spec"] as? [String: Any])?["port"] as? String == "http")
        #expect((named.json["spec"] as? [String: Any])?["streamClass"] as? String == "bulk")

        // The scheduling class: interactive or bulk, nothing else.
        #expect(f.create("f-shell", by: f.admin, extra: #","streamClass":"interactive""#).status == 201)
        let shell = f.h.call("GET", "/v3/forwards/f-shell", bearer: f.admin)
        #expect((shell.json["spec"] as? [String: Any])?["streamClass"] as? String == "interactive")
        let fast = f.create("f-fast", by: f.admin, extra: #","streamClass":"fast""#)
        #expect((400...422).contains(fast.status) && fast.text.contains("streamClass"), "\(fast.text)")
    }

    @Test func theOwnerIsTheCreatorWhateverTheBodySays() throws {
        let f = try Fixture()
        let a = f.create("f1", by: f.alice.token, extra: #","ownerName":"\#(f.bob.id)""#)
        #expect(a.status == 201, "\(a.text)")
        #expect((a.json["spec"] as? [String: Any])?["ownerName"] as? String == f.alice.id)
        // An update cannot move it to another owner or another Service either.
        let current = f.h.call("GET", "/v3/forwards/f1", bearer: f.alice.token)
        let rv = try #require((current.json["metadata"] as? [String: Any])?["resourceVersion"] as? String)
        let update = f.h.call("PUT", "/v3/forwards/f1",
                              #"{"metadata":{"name":"f1","resourceVersion":"\#(rv)"},"spec":{"clusterName":"c1","namespace":"team-a","service":"db","port":5432,"ownerName":"\#(f.bob.id)","description":"mine","listen":"127.0.0.1:0"}}"#,
                              bearer: f.alice.token)
        #expect(update.status == 200, "\(update.text)")
        let spec = try #require(update.json["spec"] as? [String: Any])
        #expect(spec["ownerName"] as? String == f.alice.id && spec["service"] as? String == "web" && spec["port"] as? Int == 8080)
        #expect(spec["description"] as? String == "mine" && spec["listen"] as? String == "127.0.0.1:0")
    }

    @Test func projectMembersCreateForwardsToTheirProjectsNamespacesOnly() throws {
        let f = try Fixture()
        #expect(f.create("alice-a", by: f.alice.token).status == 201)
        // Another project's namespace, a namespace of no project: refused, and nothing written.
        #expect(f.create("alice-b", by: f.alice.token, namespace: "team-b").status == 403)
        #expect(f.create("alice-x", by: f.alice.token, namespace: "kube-system").status == 403)
        // Read-only may not reach services/proxy, so may not create what would grant it.
        let ro = f.create("rita-a", by: f.rita.token)
        #expect(ro.status == 403 && (ro.json["message"] as? String)?.contains("services/proxy") == true, "\(ro.text)")
        #expect(f.create("carol-a", by: f.carol.token).status == 403)
        #expect(f.h.control.forwardInformer.items.map(\.name) == ["alice-a"])
        // Admins anywhere.
        #expect(f.create("admin-b", by: f.admin, namespace: "team-b").status == 201)
    }

    @Test func ownersSeeAndDeleteTheirOwnOthersDoNot() throws {
        let f = try Fixture()
        #expect(f.create("alice-1", by: f.alice.token).status == 201)
        #expect(f.create("bob-1", by: f.bob.token).status == 201)
        #expect(f.create("admin-b", by: f.admin, namespace: "team-b").status == 201)

        #expect(f.ids(f.alice.token) == ["alice-1"])
        #expect(f.ids(f.bob.token) == ["bob-1"])
        #expect(f.ids(f.carol.token).isEmpty)
        #expect(f.ids(f.olga.token) == ["alice-1", "bob-1"])  // the project's owner: its namespaces only
        #expect(f.ids(f.admin) == ["alice-1", "bob-1", "admin-b"])
        #expect(f.h.call("GET", "/v3/forwards/alice-1", bearer: f.alice.token).status == 200)
        // Another member of the same project, someone outside it: neither reads nor deletes it.
        #expect(f.h.call("GET", "/v3/forwards/alice-1", bearer: f.bob.token).status == 403)
        #expect(f.h.call("DELETE", "/v3/forwards/alice-1", bearer: f.bob.token).status == 403)
        #expect(f.h.call("GET", "/v3/forwards/alice-1", bearer: f.carol.token).status == 403)
        #expect(f.h.call("DELETE", "/v3/forwards/alice-1", bearer: f.carol.token).status == 403)
        #expect(f.h.call("GET", "/v3/forwards/admin-b", bearer: f.olga.token).status == 403)
        // Unknown names: 404 only for who could have read them.
        #expect(f.h.call("GET", "/v3/forwards/nope", bearer: f.carol.token).status == 403)
        #expect(f.h.call("GET", "/v3/forwards/nope", bearer: f.admin).status == 404)

        #expect(f.h.call("DELETE", "/v3/forwards/alice-1", bearer: f.alice.token).status == 200)
        #expect(f.h.call("DELETE", "/v3/forwards/bob-1", bearer: f.olga.token).status == 200)
        #expect(f.h.call("DELETE", "/v3/forwards/admin-b", bearer: f.admin).status == 200)
        #expect(f.h.control.forwardInformer.items.isEmpty)
    }

    @Test func aWatchShowsOwnersTheirOwnForwardsOnly() throws {
        let f = try Fixture()
        let watch = f.h.call("GET", "/v3/forwards?watch=true", bearer: f.alice.token)
        #expect(watch.status == 200)
        #expect(f.create("bob-1", by: f.bob.token).status == 201)
        #expect(f.create("alice-1", by: f.alice.token).status == 201)
        let lines = f.h.lines(of: watch.response, count: 1)
        #expect(lines.compactMap { ($0["object"] as? [String: Any])?["id"] as? String } == ["alice-1"])
    }

    @Test func anOwnerWhoLostAccessIsRefusedAtConnectionTimeButMayStillDelete() throws {
        let f = try Fixture()
        let created = f.create("alice-1", by: f.alice.token)
        #expect(created.status == 201)
        let forward = try #require(f.h.control.forwardInformer.get("alice-1"))
        func decision() -> Decision {
            ForwardAuthorization.connection(f.h.control.forwardInformer.get("alice-1") ?? forward, users: f.h.services.users,
                                            clusters: f.h.control.clusterInformer, authorizer: f.h.services.authorizer)
        }
        let allowed = decision()
        #expect(allowed.allowed && allowed.reason.contains("p1"), "\(allowed.reason)")

        // Alice's binding goes: connections are refused at once, and she may no longer read it.
        let binding = try #require(f.h.services.rbac.projectBindings.items.first { $0.spec.userName == f.alice.id })
        #expect(f.h.call("DELETE", "/v3/projectroletemplatebindings/\(binding.name)", bearer: f.admin).status == 200)
        try f.h.waitUntil { !decision().allowed }
        #expect(decision().reason.contains("may no longer get services/proxy/web"), "\(decision().reason)")
        #expect(f.h.call("GET", "/v3/forwards/alice-1", bearer: f.alice.token).status == 403)
        // Given back: allowed again.
        try f.bind(f.alice.id, "project-member", in: "p1")
        try f.h.waitUntil { decision().allowed }

        // A disabled owner's forward carries nothing.
        let disable = f.h.call("PUT", "/v3/users/\(f.alice.id)", try userUpdate(f, f.alice.id, enabled: false), bearer: f.admin)
        #expect(disable.status == 200, "\(disable.text)")
        try f.h.waitUntil { !decision().allowed }
        #expect(decision().reason.contains("disabled"))
        _ = f.h.call("PUT", "/v3/users/\(f.alice.id)", try userUpdate(f, f.alice.id, enabled: true), bearer: f.admin)
        try f.h.waitUntil { decision().allowed }

        // Removed again, she still deletes her own (deleting grants nothing).
        let again = try #require(f.h.services.rbac.projectBindings.items.first { $0.spec.userName == f.alice.id })
        #expect(f.h.call("DELETE", "/v3/projectroletemplatebindings/\(again.name)", bearer: f.admin).status == 200)
        try f.h.waitUntil { !decision().allowed }
        #expect(f.h.call("DELETE", "/v3/forwards/alice-1", bearer: f.alice.token).status == 200)
    }

    func userUpdate(_ f: Fixture, _ id: String, enabled: Bool) throws -> String {
        let user = f.h.call("GET", "/v3/users/\(id)", bearer: f.admin).json
        var spec = try #require(user["spec"] as? [String: Any])
        spec["enabled"] = enabled
        let body: [String: Any] = ["metadata": try #require(user["metadata"]), "spec": spec]
        return String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self)
    }

    @Test func oneUserOwnsABoundedNumberOfForwards() throws {
        let f = try Fixture()
        let limit = f.h.control.settings.maxForwardsPerOwner
        for i in 0..<limit { #expect(f.create("f\(i)", by: f.alice.token).status == 201) }
        let refused = f.create("one-more", by: f.alice.token)
        #expect(refused.status == 403 && refused.text.contains("maxForwardsPerOwner"), "\(refused.text)")
        #expect(f.create("bobs", by: f.bob.token).status == 201)
    }

    @Test func listenAddressesAndNamedPortsParse() {
        #expect(Forward.listenAddress("127.0.0.1:0")! == ("127.0.0.1", 0))
        #expect(Forward.listenAddress("[::1]:9000")! == ("::1", 9000))
        #expect(Forward.listenAddress("0.0.0.0:65535")! == ("0.0.0.0", 65535))
        for bad in ["::1:9000", "[::1]9000", "host:80", "127.0.0.1:-1", "127.0.0.1:+80", ":80", "127.0.0.1:", "[]:80"] {
            #expect(Forward.listenAddress(bad) == nil, "\(bad)")
        }
        let service = Data(#"{"kind":"Service","spec":{"ports":[{"name":"metrics","port":9090},{"name":"http","port":8080,"targetPort":80}]}}"#.utf8)
        #expect(Forward.servicePort(named: "http", inService: service) == 8080)
        #expect(Forward.servicePort(named: "grpc", inService: service) == nil)
        #expect(Forward.servicePort(named: "http", inService: Data("not json".utf8)) == nil)
        #expect(Forward.target(namespace: "team-a", service: "web", port: 8080) == "svc:team-a/web:8080")
    }
}
