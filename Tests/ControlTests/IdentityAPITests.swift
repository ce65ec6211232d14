import Foundation
import LariatControl
import LariatStore
import Testing

/// Logins, tokens, roles and what each caller may see, through the /v3 API on a real store.
@Suite struct IdentityAPITests {
    @Test func theBootstrapPasswordMustBeChangedBeforeAnythingElse() throws {
        let h = try APIHarness()
        let first = try h.login("admin", APIHarness.adminPassword)
        let refused = h.call("GET", "/v3/clusters", bearer: first)
        #expect(refused.status == 403 && refused.text.contains("changepassword"), "\(refused.text)")
        let weak = h.call("POST", "/v3/users?action=changepassword",
                          #"{"currentPassword":"\#(APIHarness.adminPassword)","newPassword":"short"}"#, bearer: first)
        #expect(weak.status == 422 && weak.json["fieldName"] as? String == "newPassword")
        let wrong = h.call("POST", "/v3/users?action=changepassword",
                           #"{"currentPassword":"not-it-at-all","newPassword":"long-enough-password"}"#, bearer: first)
        #expect(wrong.status == 403)
        let changed = h.call("POST", "/v3/users?action=changepassword",
                             #"{"currentPassword":"\#(APIHarness.adminPassword)","newPassword":"long-enough-password"}"#, bearer: first)
        #expect(changed.status == 200, "\(changed.text)")
        #expect(h.call("GET", "/v3/clusters", bearer: first).status == 200)
        // The old password no longer logs in; the new one does.
        #expect(h.call("POST", "/v3-public/localProviders/local?action=login",
                       #"{"username":"admin","password":"\#(APIHarness.adminPassword)"}"#).status == 401)
        _ = try h.login("admin", "long-enough-password")
    }

    @Test func loginFailuresAreOneAnswerWhateverTheCause() throws {
        let h = try APIHarness()
        let admin = try h.adminToken()
        _ = try h.user("carol", by: admin)
        let unknown = h.call("POST", "/v3-public/localProviders/local?action=login", #"{"username":"nobody","password":"whatever-pass"}"#)
        let wrong = h.call("POST", "/v3-public/localProviders/local?action=login", #"{"username":"carol","password":"whatever-pass"}"#)
        #expect(unknown.status == 401 && wrong.status == 401)
        #expect(unknown.json["message"] as? String == wrong.json["message"] as? String)
        // The audit record keeps the real reason.
        #expect(h.audit.all.contains { $0.reason.contains("no user \"nobody\"") })
        #expect(h.audit.all.contains { $0.reason.contains("wrong password for \"carol\"") })
    }

    @Test func tokensExpireAndLogoutAndRevocationRefuseAtOnce() throws {
        let h = try APIHarness()
        let admin = try h.adminToken()
        let made = h.call("POST", "/v3/tokens", #"{"description":"ci","ttl":300}"#, bearer: admin)
        #expect(made.status == 201, "\(made.text)")
        let short = try #require(made.json["token"] as? String)
        #expect(h.call("GET", "/v3/clusters", bearer: short).status == 200)
        usleep(400_000)
        #expect(h.call("GET", "/v3/clusters", bearer: short).status == 401, "an expired token still works")

        let long = try #require(h.call("POST", "/v3/tokens", #"{"description":"long"}"#, bearer: admin).json["token"] as? String)
        let name = String(long.split(separator: ":")[0])
        #expect(h.call("GET", "/v3/clusters", bearer: long).status == 200)
        #expect(h.call("DELETE", "/v3/tokens/\(name)", bearer: admin).status == 200)
        let revokedAt = Date()
        var refused = false
        while Date().timeIntervalSince(revokedAt) < 1 {
            if h.call("GET", "/v3/clusters", bearer: long).status == 401 { refused = true; break }
            usleep(2_000)
        }
        #expect(refused, "a revoked token still worked a second later")

        let session = try h.login("admin", "admin-password-changed")
        #expect(h.call("POST", "/v3/tokens?action=logout", bearer: session).status == 200)
        try h.waitUntil(timeout: 1) { h.call("GET", "/v3/clusters", bearer: session).status == 401 }
        #expect(h.call("GET", "/v3/clusters", bearer: "token-nope0:secret").status == 401)
        #expect(h.call("GET", "/v3/clusters").status == 401)
    }

    @Test func usersSeeWhatTheirRolesGiveAndCreatorsOwnTheirClusters() throws {
        let h = try APIHarness()
        let admin = try h.adminToken()
        let bob = try h.user("bob", by: admin)
        let alice = try h.user("alice", by: admin)
        // A plain user may not list users, but may read itself.
        #expect(h.call("GET", "/v3/users", bearer: bob.token).json["data"].map { ($0 as? [[String: Any]])?.map { $0["id"] as? String } } == [bob.id])
        #expect(h.call("GET", "/v3/users/\(bob.id)", bearer: bob.token).status == 200)
        #expect(h.call("GET", "/v3/users/\(alice.id)", bearer: bob.token).status == 403)
        #expect(h.call("POST", "/v3/users", #"{"username":"eve","password":"password-of-eve"}"#, bearer: bob.token).status == 403)
        // Bob creates a cluster and owns it; Alice sees nothing of it.
        let created = h.call("POST", "/v3/clusters", #"{"metadata":{"name":"bobs"},"spec":{}}"#, bearer: bob.token)
        #expect(created.status == 201, "\(created.text)")
        try h.waitUntil { h.services.rbac.clusterBindings.items.contains { $0.spec.clusterName == "bobs" } }
        #expect(h.call("GET", "/v3/clusters/bobs", bearer: bob.token).status == 200)
        #expect(h.call("GET", "/v3/clusters/bobs", bearer: alice.token).status == 403)
        #expect((h.call("GET", "/v3/clusters", bearer: alice.token).json["data"] as? [Any])?.count == 0)
        // Bob, as owner, makes Alice a member: she may read it, not delete it.
        let bind = h.call("POST", "/v3/clusterroletemplatebindings",
                          #"{"metadata":{"name":""},"spec":{"clusterName":"bobs","userName":"\#(alice.id)","roleTemplateName":"cluster-member"}}"#,
                          bearer: bob.token)
        #expect(bind.status == 201, "\(bind.text)")
        try h.waitUntil { h.call("GET", "/v3/clusters/bobs", bearer: alice.token).status == 200 }
        #expect(h.call("DELETE", "/v3/clusters/bobs", bearer: alice.token).status == 403)
        // A binding naming a project role in a cluster is refused, naming the field.
        let wrongContext = h.call("POST", "/v3/clusterroletemplatebindings",
                                  #"{"metadata":{"name":""},"spec":{"clusterName":"bobs","userName":"\#(alice.id)","roleTemplateName":"project-member"}}"#,
                                  bearer: bob.token)
        #expect(wrongContext.status == 422 && wrongContext.json["fieldName"] as? String == "spec.roleTemplateName")
        // Built-in roles cannot be deleted, not even by an admin.
        #expect(h.call("DELETE", "/v3/globalroles/admin", bearer: admin).status == 403)
    }

    /// Secrets appear once, in the answer that created them, and never in listings or audit.
    @Test func secretsNeverShowAfterCreation() throws {
        let h = try APIHarness()
        let admin = try h.adminToken()
        let bob = try h.user("bob", by: admin)
        let token = try #require(h.call("POST", "/v3/tokens", #"{"description":"x"}"#, bearer: admin).json["token"] as? String)
        let secret = String(token.split(separator: ":")[1])
        _ = h.call("POST", "/v3/clusters", #"{"metadata":{"name":"s1"},"spec":{}}"#, bearer: admin)
        let imported = h.call("POST", "/v3/clusters/s1/import", bearer: admin)
        let registration = try #require(imported.json["registrationToken"] as? String)
        let listings = ["/v3/tokens", "/v3/users", "/v3/clusterregistrationtokens", "/v3/users/\(bob.id)", "/v3/clusters"]
            .map { h.call("GET", $0, bearer: admin).text }.joined()
        let audit = String(decoding: try APIJSON.encoder.encode(h.audit.all), as: UTF8.self)
        for text in [listings, audit] {
            #expect(!text.contains(secret))
            #expect(!text.contains(String(registration.split(separator: ".")[1])))
            #expect(!text.contains("password-of-bob"))
            #expect(!text.contains("admin-password-changed"))
            #expect(!text.contains("$scrypt$"))
            #expect(!text.contains("sha256:"))
        }
        #expect(!listings.contains("\"secretDigest\":\"s"))
    }

    @Test func agentsAreAdmittedByRegistrationTokenOrTheirOwnRevocableCredential() throws {
        let h = try APIHarness()
        let admin = try h.adminToken()
        _ = h.call("POST", "/v3/clusters", #"{"metadata":{"name":"edge"},"spec":{}}"#, bearer: admin)
        let imported = h.call("POST", "/v3/clusters/edge/import", bearer: admin)
        let registration = try #require(imported.json["registrationToken"] as? String)
        #expect((imported.json["command"] as? String ?? "").contains("kubectl apply -f -"))
        try h.waitUntil { h.control.registrationTokenInformer.items.count == 1 && h.control.clusterInformer.get("edge") != nil }
        #expect(h.control.admitAgent(cluster: "edge", agentID: "a", token: registration) == .admitted(credential: nil))
        if case .admitted = h.control.admitAgent(cluster: "edge", agentID: "a", token: registration + "x") { Issue.record("a wrong token was admitted") }
        if case .admitted = h.control.admitAgent(cluster: "other", agentID: "a", token: registration) { Issue.record("admitted to another cluster") }

        let issued = try h.control.registerAgent(AgentRegistration(cluster: "edge", agentID: "node-1", role: "node", token: registration))
        try h.waitUntil { h.control.agentCredentialInformer.get(issued.name) != nil }
        #expect(h.control.admitAgent(cluster: "edge", agentID: "node-1", token: issued.credential) == .admitted(credential: issued.name))
        if case .admitted = h.control.admitAgent(cluster: "edge", agentID: "node-2", token: issued.credential) {
            Issue.record("one agent's credential admitted another agent")
        }
        // Registering the id of an agent that holds a tunnel is refused: the registration token
        // must not let its holder displace a live agent.
        h.control.whenAskedIfConnected { _, agentID in agentID == "node-1" }
        let displaced = #expect(throws: APIError.self) {
            try h.control.registerAgent(AgentRegistration(cluster: "edge", agentID: "node-1", role: "node", token: registration))
        }
        #expect(displaced?.status == 409)
        h.control.whenAskedIfConnected { _, _ in false }
        #expect(h.control.agentCredentialInformer.get(issued.name) != nil, "the live agent's credential was replaced")
        #expect(h.call("POST", "/v3/agentcredentials/\(issued.name)/revoke", bearer: admin).status == 200)
        try h.waitUntil(timeout: 1) {
            if case .refused = h.control.admitAgent(cluster: "edge", agentID: "node-1", token: issued.credential) { return true }
            return false
        }
        #expect(throws: APIError.self) {
            try h.control.registerAgent(AgentRegistration(cluster: "edge", agentID: "node-1", role: "node", token: registration))
        }
        // Deleting the registration token stops new agents at once.
        let crt = try #require(imported.json["tokenName"] as? String)
        #expect(h.call("DELETE", "/v3/clusterregistrationtokens/\(crt)", bearer: admin).status == 200)
        try h.waitUntil(timeout: 1) {
            if case .refused = h.control.admitAgent(cluster: "edge", agentID: "a", token: registration) { return true }
            return false
        }
    }
}
