import Foundation
import LariatHub
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Cluster import end to end, with real processes: a cluster created over the API, its import
/// manifest applied with real kubectl to the Kubernetes stand-in (`../shared/kube-standin`), an
/// agent started with the values kubectl stored there, the Cluster's `Connected` condition
/// following the agent; agents registering for their own credentials, and one revoked alone.
@Suite(.serialized) struct ImportEndToEndTests {
    static let bootstrapPassword = "import-e2e-bootstrap-password"
    static let cluster = "edge-import"

    /// A hub whose advertised URL is its real (kernel-chosen) port: started once on port 0, then
    /// restarted on that port with `--advertise-url`, since the URL in a manifest must be dialable.
    struct Setup {
        let rig: TunnelRig
        let admin: String
        let registrationToken: String
        let manifestURL: String
        var serverURL: String { "https://127.0.0.1:\(rig.httpsPort)" }
    }

    static func setUp() throws -> Setup {
        let rig = try TunnelRig(forwards: [], hubEnvironment: [ControlPlaneEnv.bootstrapPassword: bootstrapPassword])
        do {
            rig.hub.stop(SIGTERM)
            rig.hubArguments = ["--advertise-url", "https://127.0.0.1:\(rig.httpsPort)"]
            try rig.startHub(generation: 1)
            let admin = try login(rig)
            let created = try call(rig, "POST", "/v3/clusters", ["metadata": ["name": cluster], "spec": [:]], bearer: admin)
            guard created.status == 201 else { throw TestFailure("create cluster: \(created.status) \(created.text)") }
            let imported = try call(rig, "POST", "/v3/clusters/\(cluster)/import", nil, bearer: admin)
            guard imported.status == 201, let token = imported.json["registrationToken"] as? String,
                  let url = imported.json["manifestURL"] as? String else {
                throw TestFailure("import: \(imported.status) \(imported.text)")
            }
            #expect(imported.json["caChecksum"] as? String == rig.caChecksum)
            return Setup(rig: rig, admin: admin, registrationToken: token, manifestURL: url)
        } catch {
            rig.shutdown()
            throw error
        }
    }

    enum ControlPlaneEnv { static let bootstrapPassword = "LARIAT_BOOTSTRAP_PASSWORD" }

    struct Answer {
        var status: Int
        var text: String
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:] }
    }

    static func call(_ rig: TunnelRig, _ method: String, _ path: String, _ body: [String: Any]?, bearer: String?) throws -> Answer {
        let bytes = try body.map { Array(try JSONSerialization.data(withJSONObject: $0)) }
        let r = try HubAPIClient.send(method: method, host: "127.0.0.1", port: rig.httpsPort, path: path, body: bytes,
                                      bearer: bearer, caPEM: rig.caPEM, timeoutMilliseconds: 20_000)
        return Answer(status: r.status, text: r.body)
    }

    /// The bootstrap admin, logged in, with the one-time password changed (as the hub demands).
    static func login(_ rig: TunnelRig) throws -> String {
        func logIn(_ password: String) throws -> String {
            let a = try call(rig, "POST", "/v3-public/localProviders/local?action=login",
                             ["username": "admin", "password": password], bearer: nil)
            guard a.status == 201, let token = a.json["token"] as? String else { throw TestFailure("login: \(a.status) \(a.text)") }
            return token
        }
        let first = try logIn(bootstrapPassword)
        let changed = try call(rig, "POST", "/v3/users?action=changepassword",
                               ["currentPassword": bootstrapPassword, "newPassword": "import-e2e-changed-password"], bearer: first)
        guard changed.status == 200 else { throw TestFailure("change password: \(changed.status) \(changed.text)") }
        return try logIn("import-e2e-changed-password")
    }

    /// The `Connected` condition of the test's cluster ("True", "False", or nil before the first one).
    static func connected(_ s: Setup) throws -> String? {
        let a = try call(s.rig, "GET", "/v3/clusters/\(cluster)", nil, bearer: s.admin)
        let status = a.json["status"] as? [String: Any]
        let conditions = status?["conditions"] as? [[String: Any]] ?? []
        return conditions.first { $0["type"] as? String == "Connected" }?["status"] as? String
    }

    static func waitFor(_ what: String, timeout: Double, _ logs: @autoclosure () -> String,
                        _ condition: () throws -> Bool) throws -> Double {
        let start = Date()
        while Date().timeIntervalSince(start) < timeout {
            if try condition() { return Date().timeIntervalSince(start) }
            usleep(20_000)
        }
        throw TestFailure("\(what): not within \(timeout) s\n\(logs())")
    }

    /// An agent configured only by environment, as a pod of the manifest is.
    @discardableResult
    static func startAgent(_ s: Setup, id: String, role: String = "cluster", environment: [String: String]) throws -> ChildProcess {
        var env = environment
        env["LARIAT_AGENT_ID"] = id
        env["LARIAT_AGENT_ROLE"] = role
        env["LARIAT_LOG_LEVEL"] = "debug"
        let agent = try ChildProcess(name: "\(id)-\(s.rig.agents.count)", executable: Binaries.agent, arguments: [],
                                     environment: env, logDirectory: s.rig.directory)
        s.rig.agents.append(agent)
        return agent
    }

    // MARK: kubectl apply of the manifest

    @Test func theImportManifestAppliedWithKubectlConnectsTheClustersAgent() throws {
        let s = try Self.setUp()
        defer { s.rig.shutdown() }
        #expect(s.manifestURL == "\(s.serverURL)/v3/import/\(s.registrationToken).yaml")
        let standin = try KubeStandin(directory: s.rig.directory)
        defer { standin.stop() }

        // As Rancher's import command does for a hub with its own CA.
        let applied = try standin.kubectl(shell: "curl --insecure -sfL '\(s.manifestURL)' | kubectl --kubeconfig '\(standin.kubeconfig)' apply --validate=false -f -")
        for created in ["namespace/lariat-system", "serviceaccount/lariat-agent", "secret/lariat-agent-credentials",
                        "configmap/lariat-agent-config"] {
            #expect(applied.output.contains(created), "\(applied.output)")
        }
        // The stand-in serves core/v1 and RBAC only: kubectl parsed the workloads but has no API
        // to store them in (their content is checked by ImportManifestTests).
        for kind in ["\"Deployment\" in version \"apps/v1\"", "\"DaemonSet\" in version \"apps/v1\"",
                     "\"PodDisruptionBudget\" in version \"policy/v1\""] {
            #expect(applied.output.contains("no matches for kind \(kind)"), "\(applied.output)")
        }
        #expect(applied.output.contains("\"lariat-cluster-agent\"") && applied.output.contains("\"lariat-node-agent\""))

        // What kubectl stored: the settings in the ConfigMap, the token in the Secret only.
        let config = try standin.getJSON("configmap", "lariat-agent-config")["data"] as? [String: String] ?? [:]
        #expect(config["LARIAT_SERVER"] == s.serverURL)
        #expect(config["LARIAT_CA_CHECKSUM"] == s.rig.caChecksum)
        #expect(config["LARIAT_CLUSTER"] == Self.cluster)
        #expect(config["LARIAT_REGISTER"] == "true")
        #expect(!config.values.contains { $0.contains(s.registrationToken) })
        let secretData = try standin.getJSON("secret", "lariat-agent-credentials")["data"] as? [String: String] ?? [:]
        let token = secretData["LARIAT_TOKEN"].flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) }
        #expect(token == s.registrationToken)
        #expect(try standin.getJSON("namespace", "lariat-system", namespaced: false)["metadata"] != nil)

        // A cluster agent started with the environment the pod would get (ConfigMap + Secret).
        #expect(try Self.connected(s) != "True")
        var env = config
        env["LARIAT_TOKEN"] = token
        let agent = try Self.startAgent(s, id: "lariat-cluster-agent-7d9f-x2x4q", environment: env)
        _ = try Self.waitFor("Cluster Connected", timeout: 30, s.rig.logs) { try Self.connected(s) == "True" }
        #expect(agent.log.contains("registered with the hub as agent credential ac-"))
        #expect(!agent.log.contains(s.registrationToken), "the agent logged its registration token")

        agent.signal(SIGKILL)
        let took = try Self.waitFor("Cluster disconnected after SIGKILL", timeout: 5, s.rig.logs) { try Self.connected(s) == "False" }
        print("import e2e: Connected turned False \(Int(took * 1000)) ms after the agent's SIGKILL")
        #expect(!s.rig.hub.log.contains(s.registrationToken), "the hub logged the registration token")
    }

    // MARK: per-agent credentials

    @Test func aRevokedAgentIsCutOffAloneAndCannotComeBack() throws {
        let s = try Self.setUp()
        defer { s.rig.shutdown() }
        let env = ["LARIAT_SERVER": s.serverURL, "LARIAT_CA_CHECKSUM": s.rig.caChecksum, "LARIAT_CLUSTER": Self.cluster,
                   "LARIAT_TOKEN": s.registrationToken, "LARIAT_REGISTER": "true"]
        let a = try Self.startAgent(s, id: "node-a", role: "node", environment: env)
        let b = try Self.startAgent(s, id: "node-b", role: "node", environment: env)
        try a.waitForLog("session established", timeout: 30)
        try b.waitForLog("session established", timeout: 30)

        // Each agent holds a credential of its own, listed without its secret.
        let listed = try Self.call(s.rig, "GET", "/v3/agentcredentials", nil, bearer: s.admin)
        #expect(listed.status == 200)
        let items = listed.json["data"] as? [[String: Any]] ?? []
        func spec(_ item: [String: Any]) -> [String: Any] { item["spec"] as? [String: Any] ?? [:] }
        let mine = items.filter { spec($0)["clusterName"] as? String == Self.cluster }
        #expect(Set(mine.compactMap { spec($0)["agentID"] as? String }) == ["node-a", "node-b"], "\(listed.text)")
        #expect(mine.allSatisfy { (spec($0)["secretSHA256"] as? String ?? "").isEmpty })
        let nameOfA = try #require(mine.first { spec($0)["agentID"] as? String == "node-a" }?["id"] as? String
                                   ?? (mine.first { spec($0)["agentID"] as? String == "node-a" }?["metadata"] as? [String: Any])?["name"] as? String)
        #expect(a.log.contains("registered with the hub as agent credential \(nameOfA)"))

        // Revocation closes a's open tunnel at once.
        let revoked = try Self.call(s.rig, "POST", "/v3/agentcredentials/\(nameOfA)/revoke", nil, bearer: s.admin)
        #expect(revoked.status == 200, "\(revoked.text)")
        let closedAfter = try Self.waitFor("revoked agent's tunnel closed", timeout: 1, s.rig.logs) {
            a.log.contains("AUTHENTICATION_FAILED")
        }
        print("import e2e: the revoked agent's tunnel closed \(Int(closedAfter * 1000)) ms after the revoke answer")
        // The agent says why right after the session ends: the line may trail the close by a moment.
        _ = try Self.waitFor("the agent names the revoked credential", timeout: 5, s.rig.logs) {
            a.log.contains("this agent's credential \(nameOfA) was revoked")
        }

        // It retries with its revoked credential only, and is refused; b never noticed.
        _ = try Self.waitFor("revoked agent refused again", timeout: 15, s.rig.logs) {
            a.log.components(separatedBy: "hub refused this agent: AUTHENTICATION_FAILED").count - 1 >= 2
        }
        #expect(a.log.components(separatedBy: "session established").count - 1 == 1, "\(a.log.suffix(3000))")
        #expect(a.log.components(separatedBy: "registered with the hub").count - 1 == 1, "the revoked agent registered again")
        #expect(!b.log.contains("session ended"), "\(b.log.suffix(2000))")
        let cluster = try Self.call(s.rig, "GET", "/v3/clusters/\(Self.cluster)", nil, bearer: s.admin)
        let agents = (cluster.json["status"] as? [String: Any])?["agents"] as? [[String: Any]] ?? []
        #expect(agents.count == 1, "\(cluster.text)")
        #expect(try Self.connected(s) == "True")

        // Restarted, it registers again with the registration token: the hub refuses a revoked id.
        a.stop(SIGKILL)
        let restarted = try Self.startAgent(s, id: "node-a", role: "node", environment: env)
        try restarted.waitForLog("hub refused to register this agent", timeout: 20)
        #expect(restarted.log.contains("revoked"))
        #expect(!restarted.log.contains("session established"))
        #expect(!b.log.contains("session ended"))
    }

    @Test func aKeptCredentialIsUsedAtTheNextStartAndTheFileIsPrivate() throws {
        let s = try Self.setUp()
        defer { s.rig.shutdown() }
        let file = s.rig.directory + "/agent-credential"
        let env = ["LARIAT_SERVER": s.serverURL, "LARIAT_CA_CHECKSUM": s.rig.caChecksum, "LARIAT_CLUSTER": Self.cluster,
                   "LARIAT_TOKEN": s.registrationToken, "LARIAT_CREDENTIAL_FILE": file]
        let first = try Self.startAgent(s, id: "edge-box", environment: env)
        try first.waitForLog("session established", timeout: 30)
        let attributes = try FileManager.default.attributesOfItem(atPath: file)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let kept = try String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(kept.hasPrefix("ac-") && kept.contains(":"))
        #expect(!first.log.contains(String(kept.drop { $0 != ":" }.dropFirst())), "the agent logged its credential's secret")
        first.stop(SIGTERM)

        let second = try Self.startAgent(s, id: "edge-box", environment: env)
        try second.waitForLog("session established", timeout: 30)
        #expect(second.log.contains("using agent credential \(kept.prefix { $0 != ":" }) from"))
        #expect(!second.log.contains("registered with the hub"))
    }
}
