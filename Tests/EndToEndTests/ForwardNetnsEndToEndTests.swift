import Foundation
import LariatHub
import LariatRuntime
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Forward objects (issue #10) with real processes: a `lariat-hub` in the host namespace on the
/// veth's host address, and — inside a network namespace (netns) the test creates — a
/// `lariat-agent` and an echo server standing in for Service `team-a/web`. The agent dials
/// `svc:team-a/web:PORT` as `web.team-a.svc.lariat.test`, which only the netns's own
/// `/etc/netns/NAME/hosts` names (its resolv.conf points at 127.0.0.1, where nothing answers),
/// so no lookup ever leaves through the machine's DNS. The test connects to the forward's
/// listener on the hub's 127.0.0.1.
@Suite(.serialized, .enabled(if: NetworkNamespace.isAvailable, "needs `ip netns add` (root or CAP_NET_ADMIN)"))
struct ForwardNetnsEndToEndTests {
    static let serviceDomain = "svc.lariat.test"

    /// The netns, the processes and the users of one test.
    final class Rig: @unchecked Sendable {
        // Invariant: used from one test task at a time.
        let netns: NetworkNamespace
        let directory: String
        let auditPath: String
        let bootstrapPassword = "fwd-bootstrap-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        var backend: ChildProcess!
        var hub: ChildProcess!
        var agent: ChildProcess!
        var backendPort = 0
        var httpsPort = 0
        var admin: HubCLI!
        var adminToken = ""

        init() throws {
            netns = try NetworkNamespace()
            directory = NSTemporaryDirectory() + "lariat-fwd-e2e-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            auditPath = directory + "/k8s-audit.jsonl"
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                try startBackend()
                try startHub()
                try startAgent()
                try logInAdmin()
            } catch {
                shutdown()
                throw error
            }
        }

        var hostAddress: String { netns.hostAddress }
        var dataDirectory: String { directory + "/hub-data" }
        var caPEM: String { (try? String(contentsOfFile: dataDirectory + "/tls/ca.pem", encoding: .utf8)) ?? "" }
        var caChecksum: String { Digest.sha256Hex(caPEM) }

        /// An echo server on the netns's own address, reachable by the Service's name inside the netns only.
        private func startBackend() throws {
            let hosts = "/etc/netns/\(netns.name)/hosts"
            let line = "\(netns.namespaceAddress) web.team-a.\(ForwardNetnsEndToEndTests.serviceDomain)\n"
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: hosts))
            handle.seekToEndOfFile()
            handle.write(Data(line.utf8))
            try handle.close()
            let script = """
            import socket, sys, threading
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((sys.argv[1], 0)); s.listen(64)
            print("echo listening on port", s.getsockname()[1], flush=True)
            def serve(c):
                with c:
                    while True:
                        d = c.recv(65536)
                        if not d: break
                        c.sendall(d)
            while True:
                c, _ = s.accept()
                threading.Thread(target=serve, args=(c,), daemon=True).start()
            """
            let (exe, args) = netns.command(["/usr/bin/python3", "-c", script, netns.namespaceAddress])
            backend = try ChildProcess(name: "echo-backend", executable: exe, arguments: args, logDirectory: directory)
            try backend.waitForLog("echo listening on port")
            let text = backend.log
            guard let r = text.range(of: "echo listening on port "),
                  let port = Int(text[r.upperBound...].prefix { $0.isNumber }) else { throw TestFailure("echo backend: \(text)") }
            backendPort = port
        }

        private func startHub() throws {
            let portFile = directory + "/ports"
            hub = try ChildProcess(
                name: "hub", executable: Binaries.hub,
                arguments: ["serve", "--listen", "\(hostAddress):0", "--server-name", hostAddress, "--data", dataDirectory,
                            "--port-file", portFile, "--loops", "2", "--drain-timeout", "3", "--k8s-audit-log", auditPath],
                environment: ["LARIAT_BOOTSTRAP_PASSWORD": bootstrapPassword], logDirectory: directory)
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                if let text = try? String(contentsOfFile: portFile, encoding: .utf8), let port = text.split(separator: "\n").first.flatMap({ Int($0) }) {
                    httpsPort = port
                    return
                }
                if !hub.isRunning { break }
                usleep(50_000)
            }
            throw TestFailure("hub did not start:\n\(hub.log.suffix(3000))")
        }

        /// The cluster agent, inside the netns, with the default target policy (no --allow).
        private func startAgent() throws {
            let token = try String(contentsOfFile: dataDirectory + "/local.token", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let (exe, args) = netns.command([
                Binaries.agent, "--server", "https://\(hostAddress):\(httpsPort)", "--cluster", "local", "--agent-id", "fwd-agent",
                "--token", token, "--ca-checksum", caChecksum, "--role", "cluster",
                "--service-domain", ForwardNetnsEndToEndTests.serviceDomain, "--log-level", "debug"])
            agent = try ChildProcess(name: "agent", executable: exe, arguments: args, logDirectory: directory)
            try hub.waitForLog("agent \"fwd-agent\" of cluster \"local\" connected", timeout: 30)
        }

        /// The admin's CLI, its one-time password changed as the hub requires.
        private func logInAdmin() throws {
            admin = HubCLI(configPath: directory + "/cli-admin.json")
            try logIn(admin, "admin", bootstrapPassword)
            try admin.succeed(["user", "change-password", "--password-stdin"], stdin: "\(bootstrapPassword)\n\(admin.adminPassword)\n")
            try logIn(admin, "admin", admin.adminPassword)
            adminToken = try admin.savedToken()
        }

        private func logIn(_ cli: HubCLI, _ username: String, _ password: String) throws {
            try cli.succeed(["login", "--server", "https://\(hostAddress):\(httpsPort)", "--username", username,
                             "--password-stdin", "--ca-checksum", caChecksum], stdin: password + "\n")
        }

        /// The CLI logged in as `username` (a config file of its own).
        func cli(as username: String, password: String) throws -> HubCLI {
            let c = HubCLI(configPath: directory + "/cli-\(username).json")
            try logIn(c, username, password)
            return c
        }

        func api(_ method: String, _ path: String, _ body: String? = nil, bearer: String? = nil) throws -> (status: Int, json: [String: Any], text: String) {
            let r = try HubAPIClient.send(method: method, host: hostAddress, port: httpsPort, path: path,
                                          body: body.map { Array($0.utf8) }, bearer: bearer ?? adminToken, caPEM: caPEM,
                                          timeoutMilliseconds: 20_000)
            let json = (try? JSONSerialization.jsonObject(with: Data(r.body.utf8))) as? [String: Any] ?? [:]
            return (r.status, json, r.body)
        }

        /// The Kubernetes audit log's lines, decoded.
        func auditEvents() -> [[String: Any]] {
            let text = (try? String(contentsOfFile: auditPath, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
        }

        func waitUntil(_ what: String, timeout: Double = 10, _ condition: () throws -> Bool) throws {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                if try condition() { return }
                usleep(20_000)
            }
            throw TestFailure("not within \(timeout) s: \(what)\n\(logs)")
        }

        var logs: String {
            [hub, agent, backend].compactMap { $0 }.map { "== \($0.name)\n\($0.log.suffix(2500))" }.joined(separator: "\n")
        }

        func shutdown() {
            for p in [agent, backend, hub] { p?.stop(SIGKILL, timeout: 2) }
            netns.destroy()
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    @Test func aForwardCarriesBytesToAServiceInTheNetnsRefusesAnOwnerWhoLostAccessAndIsAudited() throws {
        let rig = try Rig()
        defer { rig.shutdown() }

        // Alice is a project member of the project holding namespace team-a.
        let project = try rig.api("POST", "/v3/projects", #"{"metadata":{"name":"p1"},"spec":{"clusterName":"local","namespaces":["team-a"]}}"#)
        #expect(project.status == 201, "\(project.text)")
        let alicePassword = "alice-password-" + String(UInt32.random(in: 0...UInt32.max))
        let made = try rig.admin.run(["user", "create", "alice", "--password-stdin"], stdin: alicePassword + "\n")
        #expect(made.status == 0, "\(made.output)")
        try rig.admin.succeed(["role", "bind", "--user", "alice", "--role", "project-member", "--project", "p1"])
        let alice = try rig.cli(as: "alice", password: alicePassword)
        let aliceToken = try alice.savedToken()
        let aliceID = try #require(try rig.api("GET", "/v3/users").json["data"].flatMap {
            ($0 as? [[String: Any]])?.first { ($0["spec"] as? [String: Any])?["username"] as? String == "alice" }?["id"] as? String
        })

        // Another project's namespace is refused before anything listens.
        let elsewhere = try alice.run(["forward", "create", "nope", "--cluster", "local", "--namespace", "kube-system",
                                       "--service", "web", "--port", "\(rig.backendPort)", "--listen", "127.0.0.1:0"])
        #expect(elsewhere.status != 0 && elsewhere.output.contains("403"), "\(elsewhere.output)")

        let created = try alice.run(["forward", "create", "web-echo", "--cluster", "local", "--namespace", "team-a",
                                     "--service", "web", "--port", "\(rig.backendPort)", "--listen", "127.0.0.1:0"])
        #expect(created.status == 0, "\(created.output)\n\(rig.logs)")
        let marker = "listening on 127.0.0.1:"
        let port = try #require(created.output.range(of: marker).flatMap { Int(created.output[$0.upperBound...].prefix { $0.isNumber }) },
                                "\(created.output)")
        let listed = try alice.succeed(["forward", "list"]).output
        #expect(listed.contains("web-echo\tlocal\tteam-a/web:\(rig.backendPort)\t127.0.0.1:\(port)\t\(aliceID)\tTrue\tTrue"), "\(listed)")

        // Bytes round trip through the hub, the tunnel, the agent in the netns and the echo server.
        var payload = [UInt8](repeating: 0, count: 300_000)
        payload.withUnsafeMutableBytes { fillRandom($0) }
        let echoed = echoRoundTrip(port: port, payload)
        #expect(echoed == payload, "echoed \(echoed?.count ?? -1) of \(payload.count) bytes\n\(rig.logs)")

        // One audit line for that connection: owner, forward, cluster, source, target, bytes, duration.
        var line: [String: Any] = [:]
        try rig.waitUntil("the forward's audit line") {
            line = rig.auditEvents().first { $0["kind"] as? String == "forward" && $0["error"] == nil } ?? [:]
            return !line.isEmpty
        }
        #expect(line["forward"] as? String == "web-echo")
        #expect(line["user"] as? String == aliceID && line["username"] as? String == "alice")
        #expect(line["cluster"] as? String == "local")
        #expect((line["source"] as? String)?.hasPrefix("127.0.0.1:") == true, "\(line)")
        #expect(line["target"] as? String == "svc:team-a/web:\(rig.backendPort)")
        #expect(line["path"] as? String == "cluster-agent:fwd-agent")
        #expect(line["bytesIn"] as? Int == payload.count && line["bytesOut"] as? Int == payload.count, "\(line)")
        #expect((line["durationMicros"] as? Int ?? 0) > 0)

        // Alice's binding goes: her forward's next connection is refused, logged and audited.
        let bindings = try rig.api("GET", "/v3/projectroletemplatebindings").json["data"] as? [[String: Any]] ?? []
        let binding = try #require(bindings.first { ($0["spec"] as? [String: Any])?["userName"] as? String == aliceID }?["id"] as? String)
        #expect(try rig.api("DELETE", "/v3/projectroletemplatebindings/\(binding)").status == 200)
        try rig.waitUntil("the refusal of a connection for an owner without access") {
            echoRoundTrip(port: port, Array("after".utf8), timeout: 2) != Array("after".utf8)
                && rig.hub.log.contains("forward \"web-echo\": refused 127.0.0.1:")
        }
        #expect(rig.hub.log.contains("may no longer get services/proxy/web in cluster local namespace team-a"), "\(rig.hub.log.suffix(2000))")
        try rig.waitUntil("the refusal's audit line") {
            rig.auditEvents().contains { $0["kind"] as? String == "forward" && ($0["error"] as? String)?.hasPrefix("refused:") == true }
        }
        // Its status says why; she may no longer read it, but may still delete it.
        try rig.waitUntil("OwnerAuthorized False") {
            let f = try rig.api("GET", "/v3/forwards/web-echo")
            let conditions = (f.json["status"] as? [String: Any])?["conditions"] as? [[String: Any]] ?? []
            return conditions.contains { $0["type"] as? String == "OwnerAuthorized" && $0["status"] as? String == "False" }
        }
        #expect(try rig.api("GET", "/v3/forwards/web-echo", bearer: aliceToken).status == 403)
        try alice.succeed(["forward", "delete", "web-echo"])
        try rig.waitUntil("the listener closed") { (try? Socket.connect(port: port, receiveTimeout: 1)) == nil }
    }
}
