import Foundation
import LariatHub
import LariatRuntime
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The control plane through real processes (issue #8, "Must show"): the `lariat-hub` CLI
/// against a running hub, store changes reaching the data path with no restart, acknowledged
/// writes surviving SIGKILL on SQLite and on a real etcd, two hubs sharing one etcd, bad input
/// through the real HTTPS port, and no secret in the hub's log or audit log.
@Suite(.serialized) struct ControlPlaneEndToEndTests {
    /// How long a store change may take to reach the data path (the issue's bound).
    static let liveBound: TimeInterval = 1.0

    // MARK: - Store changes reach the running hub

    @Test func aClusterCreatedThroughTheCLIAdmitsItsAgentWithinOneSecond() throws {
        let rig = try ControlRig()
        defer { rig.shutdown() }
        let cli = try rig.adminCLI()
        let (token, created) = try cli.createCluster("edge-7")
        let took = try rig.tunnel.timeUntilAgentConnected(id: "edge-7-a", cluster: "edge-7", token: token, since: created)
        print("ControlPlaneEndToEnd: cluster created by the CLI admitted its agent \(ms(took)) ms after the CLI exited")
        #expect(took <= Self.liveBound, "\(rig.tunnel.logs)")
    }

    @Test func aTokenRevokedThroughTheCLIIsRefusedWithinOneSecond() throws {
        let rig = try ControlRig()
        defer { rig.shutdown() }
        let cli = try rig.adminCLI()
        let bearer = try cli.succeed(["token", "create", "--description", "to revoke"]).output
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let name = String(bearer.prefix { $0 != ":" })
        #expect(name.hasPrefix("token-") && bearer.count > name.count + 40, "token create printed \(bearer)")
        #expect(try rig.api("GET", "/v3/clusters", bearer: bearer).status == 200)
        let revoked = try cli.succeed(["token", "revoke", name]).exitedAt
        let took = try rig.timeUntilRefused(bearer, since: revoked)
        print("ControlPlaneEndToEnd: revoked token refused \(ms(took)) ms after the CLI exited")
        #expect(took <= Self.liveBound, "\(rig.tunnel.logs)")
    }

    // MARK: - Acknowledged writes survive SIGKILL

    @Test func anAcknowledgedClusterSurvivesSIGKILLOnSQLite() throws {
        let rig = try ControlRig()
        defer { rig.shutdown() }
        try killRightAfterAcknowledgedWrites(rig)
    }

    @Test func anAcknowledgedClusterSurvivesSIGKILLOnEtcd() throws {
        let etcd = try SharedEtcd.get()
        let rig = try ControlRig(etcd: etcd, prefix: "e2e-\(UInt32.random(in: 0...UInt32.max))")
        defer { rig.shutdown() }
        try killRightAfterAcknowledgedWrites(rig)
    }

    /// Creates clusters through the API and SIGKILLs the hub the moment the last 201 arrives;
    /// after a restart on the same store every acknowledged cluster is there.
    func killRightAfterAcknowledgedWrites(_ rig: ControlRig) throws {
        let cli = try rig.adminCLI()
        let bearer = try cli.savedToken()
        let names = (0..<3).map { "durable-\($0)" }
        for name in names {
            let r = try rig.api("POST", "/v3/clusters", bearer: bearer,
                                body: #"{"metadata":{"name":"\#(name)"},"spec":{"displayName":"\#(name)"}}"#)
            try #require(r.status == 201, "create \(name): \(r.status) \(r.body)")
        }
        rig.tunnel.hub.stop(SIGKILL)
        try rig.tunnel.startHub(generation: 1)
        // A login made before the kill is in the store too: the same bearer still works.
        for name in names {
            let r = try rig.api("GET", "/v3/clusters/\(name)", bearer: bearer)
            #expect(r.status == 200, "\(name) after SIGKILL and restart: \(r.status) \(r.body)\n\(rig.tunnel.logs)")
        }
    }

    // MARK: - Two hubs on one etcd

    @Test func aClusterCreatedOnOneHubAdmitsItsAgentOnAnotherHubSharingTheEtcd() throws {
        let etcd = try SharedEtcd.get()
        let prefix = "e2e-\(UInt32.random(in: 0...UInt32.max))"
        let a = try ControlRig(etcd: etcd, prefix: prefix)
        defer { a.shutdown() }
        let b = try ControlRig(etcd: etcd, prefix: prefix)
        defer { b.shutdown() }
        let cli = try a.adminCLI()
        let (token, created) = try cli.createCluster("shared-1")
        let took = try b.tunnel.timeUntilAgentConnected(id: "shared-1-a", cluster: "shared-1", token: token, since: created)
        print("ControlPlaneEndToEnd: cluster created on hub A admitted its agent on hub B \(ms(took)) ms after the CLI exited")
        #expect(took <= Self.liveBound, "\(b.tunnel.logs)")
        // And hub B's API lists it, with A's login (the tokens are in the shared store too).
        let listed = try b.api("GET", "/v3/clusters/shared-1", bearer: try cli.savedToken())
        #expect(listed.status == 200, "\(listed.body)")

        // A token revoked through hub A is refused by hub B, which learns it from etcd's watch.
        let bearer = try cli.succeed(["token", "create"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try b.api("GET", "/v3/clusters", bearer: bearer).status == 200)
        let revoked = try cli.succeed(["token", "revoke", String(bearer.prefix { $0 != ":" })]).exitedAt
        let refusedAfter = try b.timeUntilRefused(bearer, since: revoked)
        print("ControlPlaneEndToEnd: token revoked on hub A refused by hub B \(ms(refusedAfter)) ms after the CLI exited")
        #expect(refusedAfter <= Self.liveBound, "\(b.tunnel.logs)")
    }

    // MARK: - Bad input through the HTTPS port, and secrets kept out of logs

    @Test func badInputGetsItsStatusAndNoSecretReachesTheLogs() throws {
        let rig = try ControlRig(audit: true)
        defer { rig.shutdown() }
        let cli = try rig.adminCLI()
        let admin = try cli.savedToken()

        let malformed = try rig.api("POST", "/v3/clusters", bearer: admin, body: #"{"metadata": {"name": "x""#)
        #expect(malformed.status == 400, "\(malformed.body)")
        let unknown = try rig.api("POST", "/v3/clusters", bearer: admin,
                                  body: #"{"metadata":{"name":"typo"},"spec":{"displayName":"t"},"sepc":{}}"#)
        #expect(unknown.status == 422, "\(unknown.body)")
        #expect(unknown.body.contains("sepc"), "the 422 must name the field: \(unknown.body)")
        let wrongType = try rig.api("POST", "/v3/clusters", bearer: admin, body: #"{"metadata":{"name":7},"spec":{}}"#)
        #expect([400, 422].contains(wrongType.status), "\(wrongType.body)")
        let badName = try rig.api("POST", "/v3/clusters", bearer: admin, body: #"{"metadata":{"name":"Not_A_Name"},"spec":{}}"#)
        #expect(badName.status == 422 && badName.body.contains("name"), "\(badName.body)")
        let padding = String(repeating: "x", count: 70 * 1024)
        let oversized = try rig.api("POST", "/v3/clusters", bearer: admin,
                                    body: #"{"metadata":{"name":"big"},"spec":{"displayName":"\#(padding)"}}"#)
        #expect(oversized.status == 413, "\(oversized.status) \(oversized.body.prefix(200))")
        let anonymous = try rig.api("GET", "/v3/clusters", bearer: nil)
        #expect(anonymous.status == 401, "\(anonymous.body)")
        let forged = "token-zzzzz:" + String(repeating: "q", count: 54)
        #expect(try rig.api("GET", "/v3/clusters", bearer: forged).status == 401)

        // A standard user may create clusters but not grant roles or delete another's cluster.
        let userPassword = "user-password-" + randomLetters(12)
        try cli.succeed(["user", "create", "alice", "--password-stdin"], stdin: userPassword + "\n")
        let alice = try rig.login("alice", userPassword)
        let grant = try rig.api("POST", "/v3/globalrolebindings", bearer: alice,
                                body: #"{"metadata":{"name":""},"spec":{"userName":"user-admin","globalRoleName":"user"}}"#)
        #expect(grant.status == 403, "\(grant.body)")
        let delete = try rig.api("DELETE", "/v3/clusters/local", bearer: alice)
        #expect(delete.status == 403 || delete.status == 404, "\(delete.body)")
        #expect(try rig.api("GET", "/v3/clusters/local", bearer: admin).status == 200)

        // Secrets made through the API, then used: a registration token by an agent and by
        // the import URL, API tokens, a wrong password.
        let (registration, _) = try cli.createCluster("secret-keeper")
        try rig.tunnel.startAgent(id: "keeper-a", cluster: "secret-keeper", token: registration, allow: [])
        let manifest = try rig.api("GET", "/v3/import/\(registration).yaml", bearer: nil)
        #expect(manifest.status == 200, "\(manifest.body.prefix(300))")
        let apiToken = try cli.succeed(["token", "create"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try rig.api("GET", "/v3/tokens", bearer: apiToken).status == 200)
        let wrongLogin = try rig.api("POST", "/v3-public/localProviders/local?action=login", bearer: nil,
                                     body: #"{"username":"alice","password":"wrong-\#(userPassword)"}"#)
        #expect(wrongLogin.status == 401, "\(wrongLogin.body)")

        let secrets: [(String, String)] = [
            ("bootstrap password", rig.bootstrapPassword), ("admin password", cli.adminPassword),
            ("user password", userPassword), ("admin session token", secretPart(admin)),
            ("user session token", secretPart(alice)), ("API token", secretPart(apiToken)),
            ("forged token", secretPart(forged)),
            ("registration token", String(registration.split(separator: ".").last ?? "")),
        ]
        // Every write above is audited; the records must be there for the grep to mean anything.
        let audit = try rig.auditText()
        #expect(audit.contains("globalrolebindings") && audit.contains("clusters"), "audit log:\n\(audit.suffix(2000))")
        let logs = [("hub log", rig.tunnel.hub.log), ("audit log", audit)]
        for (where_, text) in logs {
            for (what, secret) in secrets {
                #expect(secret.count >= 12, "\(what) is too short to grep for")
                // A Bool, so a failure names the secret's kind without printing the log around it.
                let leaked = text.contains(secret)
                #expect(!leaked, "the \(what) appears in the \(where_)")
            }
        }
        // Listings do not show them either.
        for path in ["/v3/tokens", "/v3/users", "/v3/clusterregistrationtokens", "/v3/clusters"] {
            let listing = try rig.api("GET", path, bearer: admin)
            #expect(listing.status == 200, "\(path): \(listing.body.prefix(200))")
            for (what, secret) in secrets {
                let leaked = listing.body.contains(secret)
                #expect(!leaked, "the \(what) appears in \(path)")
            }
        }
    }
}

// MARK: - Helpers

private func ms(_ t: TimeInterval) -> Int { Int((t * 1000).rounded()) }

private func randomLetters(_ n: Int) -> String {
    String((0..<n).map { _ in "bcdfghjklmnpqrstvwxz".randomElement()! })
}

/// The secret half of a `token-xxxxx:secret` bearer.
private func secretPart(_ bearer: String) -> String { String(bearer.split(separator: ":").last ?? "") }

/// A hub (TunnelRig) started with a known bootstrap password, on SQLite or a real etcd,
/// optionally writing an audit log, plus a CLI configuration of its own.
final class ControlRig: @unchecked Sendable {
    // Invariant: used from one test task at a time (TunnelRig's own invariant).
    let tunnel: TunnelRig
    let bootstrapPassword = "bootstrap-" + randomLetters(16)
    let auditPath: String?

    init(etcd: EtcdServer? = nil, prefix: String = "", audit: Bool = false) throws {
        var args: [String] = []
        if let etcd { args += ["--etcd", "127.0.0.1:\(etcd.clientPort)", "--etcd-prefix", prefix] }
        // The audit log sits next to the rig's folder (its name is made inside TunnelRig).
        let path = audit ? NSTemporaryDirectory() + "lariat-audit-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).jsonl" : nil
        if let path { args += ["--audit-log", path] }
        auditPath = path
        tunnel = try TunnelRig(forwards: [], hubArguments: args,
                               hubEnvironment: ["LARIAT_BOOTSTRAP_PASSWORD": bootstrapPassword])
    }

    func shutdown() {
        tunnel.shutdown()
        if let auditPath { try? FileManager.default.removeItem(atPath: auditPath) }
    }

    func auditText() throws -> String {
        guard let auditPath else { return "" }
        return try String(contentsOfFile: auditPath, encoding: .utf8)
    }

    /// The CLI logged in as admin, with the one-time password changed as the hub requires.
    func adminCLI() throws -> HubCLI {
        let cli = HubCLI(configPath: tunnel.directory + "/cli-\(UInt32.random(in: 0...UInt32.max)).json")
        let login = ["login", "--server", "https://127.0.0.1:\(tunnel.httpsPort)", "--username", "admin",
                     "--password-stdin", "--ca-checksum", tunnel.caChecksum]
        let first = try cli.succeed(login, stdin: bootstrapPassword + "\n")
        if first.output.contains("must be changed") {
            try cli.succeed(["user", "change-password", "--password-stdin"], stdin: "\(bootstrapPassword)\n\(cli.adminPassword)\n")
            try cli.succeed(login, stdin: cli.adminPassword + "\n")
        }
        return cli
    }

    func login(_ username: String, _ password: String) throws -> String {
        struct Body: Encodable { var username: String; var password: String }
        let body = String(decoding: try JSONEncoder().encode(Body(username: username, password: password)), as: UTF8.self)
        let r = try api("POST", "/v3-public/localProviders/local?action=login", bearer: nil, body: body)
        guard r.status == 201 || r.status == 200,
              let token = (try? JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any])?["token"] as? String
        else { throw TestFailure("login of \(username): \(r.status) \(r.body)") }
        return token
    }

    /// Polls an API call with `bearer` until it gets 401; the time from `since` until then.
    func timeUntilRefused(_ bearer: String, since: Date, timeout: Double = 5) throws -> TimeInterval {
        while Date().timeIntervalSince(since) < timeout {
            let status = try api("GET", "/v3/clusters", bearer: bearer).status
            if status == 401 { return Date().timeIntervalSince(since) }
            guard status == 200 else { throw TestFailure("GET /v3/clusters with the revoked token: \(status)") }
            usleep(5_000)
        }
        throw TestFailure("the revoked token still worked \(timeout) s after the revocation\n\(tunnel.logs)")
    }

    /// One request through the hub's HTTPS port.
    func api(_ method: String, _ path: String, bearer: String?, body: String? = nil) throws -> HubAPIClient.Response {
        try HubAPIClient.send(method: method, host: "127.0.0.1", port: tunnel.httpsPort, path: path,
                              body: body.map { Array($0.utf8) }, bearer: bearer, caPEM: tunnel.caPEM,
                              timeoutMilliseconds: 20_000)
    }
}

extension TunnelRig {
    /// Starts an agent of `cluster` and returns the time from `since` until the hub logs it
    /// connected (the log is polled every few milliseconds).
    func timeUntilAgentConnected(id: String, cluster: String, token: String, since: Date, timeout: Double = 20) throws -> TimeInterval {
        try startAgent(id: id, cluster: cluster, token: token, allow: [], waitConnected: false)
        let line = "agent \"\(id)\" of cluster \"\(cluster)\" connected"
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if hub.log.contains(line) { return Date().timeIntervalSince(since) }
            usleep(5_000)
        }
        throw TestFailure("no \"\(line)\" within \(timeout) s\n\(logs)")
    }
}

/// `lariat-hub` run as a user runs it, with a login file of its own (`LARIAT_CONFIG`).
struct HubCLI {
    let configPath: String
    let adminPassword = "changed-" + randomLetters(16)

    struct Run { var status: Int32; var output: String; var exitedAt: Date }

    func run(_ arguments: [String], stdin: String = "") throws -> Run {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Binaries.hub)
        p.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["LARIAT_CONFIG"] = configPath
        p.environment = env
        let out = Pipe(), input = Pipe()
        p.standardOutput = out
        p.standardError = out
        p.standardInput = input
        try p.run()
        input.fileHandleForWriting.write(Data(stdin.utf8))
        try input.fileHandleForWriting.close()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, output: String(decoding: data, as: UTF8.self), exitedAt: Date())
    }

    @discardableResult
    func succeed(_ arguments: [String], stdin: String = "") throws -> Run {
        let r = try run(arguments, stdin: stdin)
        guard r.status == 0 else { throw TestFailure("lariat-hub \(arguments.joined(separator: " ")): exit \(r.status)\n\(r.output)") }
        return r
    }

    /// `cluster create NAME`: the registration token it printed and when the CLI exited.
    func createCluster(_ name: String) throws -> (token: String, exitedAt: Date) {
        let r = try succeed(["cluster", "create", name])
        let marker = "registration token (shown once): "
        guard let line = r.output.split(separator: "\n").first(where: { $0.contains(marker) }) else {
            throw TestFailure("cluster create printed no registration token:\n\(r.output)")
        }
        let token = String(line[line.range(of: marker)!.upperBound...]).trimmingCharacters(in: .whitespaces)
        return (token, r.exitedAt)
    }

    /// The session token `login` saved (0600 in the config file).
    func savedToken() throws -> String {
        struct Saved: Decodable { var token: String }
        let data = try Data(contentsOf: URL(fileURLWithPath: configPath))
        return try JSONDecoder().decode(Saved.self, from: data).token
    }
}
