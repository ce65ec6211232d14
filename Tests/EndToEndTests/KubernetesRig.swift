import Foundation
import LariatHub
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The Kubernetes path with real processes (issue #9): a `lariat-hub` writing the Kubernetes
/// audit log, the stand-in API server (`KubeStandin`) started with `--proxy-token`, a
/// `lariat-agent` in front of it holding that token (`--k8s-token-file`) and the stand-in's CA,
/// a local HTTP server behind pod `web`'s port 80, and users with kubeconfigs the hub made:
/// alice (cluster-owner of `local`), carol (project-member of a project holding `default`),
/// bob (no binding). One rig serves a whole serialized suite (`.kubernetesRig`).
final class KubernetesRig: @unchecked Sendable {
    // Invariant: used by one serialized suite, one test at a time.
    @TaskLocal static var current: KubernetesRig?

    static let cluster = "local"
    static let agentID = "k8s-agent"
    let tunnel: TunnelRig
    let standin: KubeStandin
    let backend: Spawned
    let backendPort: Int
    /// The stand-in's `--proxy-token`: what the agent authenticates with (the cluster's credential).
    let proxyToken = "standin-proxy-" + KubernetesRig.randomLetters(20)
    let proxyTokenFile: String
    let auditPath: String
    /// kubectl's home and discovery cache (fresh per rig: the ports are new each time).
    let home: String
    let bootstrapPassword = "k8s-e2e-bootstrap-" + KubernetesRig.randomLetters(12)
    private(set) var admin = ""
    private(set) var alice: KubeUser!
    private(set) var carol: KubeUser!
    private(set) var bob: KubeUser!
    private(set) var agent: ChildProcess!
    /// Every secret the rig handed out, for the "never in a log" checks: (what, secret).
    private(set) var secrets: [(String, String)] = []

    struct KubeUser {
        var username: String
        /// The User object's name (`u-…`): what the hub impersonates.
        var id: String
        var password: String
        /// The login's bearer (`token-…:secret`).
        var session: String
        /// The kubeconfig file kubectl uses, and the bearer in it.
        var kubeconfig: String
        var kubeToken: String
        var kubeTokenName: String { String(kubeToken.prefix { $0 != ":" }) }
    }

    init() throws {
        auditPath = NSTemporaryDirectory() + "lariat-k8s-audit-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).jsonl"
        tunnel = try TunnelRig(forwards: [], hubArguments: ["--k8s-audit-log", auditPath],
                               hubEnvironment: ["LARIAT_BOOTSTRAP_PASSWORD": bootstrapPassword])
        var started: [() -> Void] = [{ [tunnel] in tunnel.shutdown() }]
        do {
            let dir = tunnel.directory
            home = dir + "/kubectl-home"
            try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
            backend = try Self.startBackend(directory: dir)
            started.append { [backend] in backend.kill() }
            backendPort = try Self.backendPort(backend, directory: dir)
            var options = KubeStandin.Options()
            options.proxyToken = proxyToken
            options.serverVersion = "v1.32.4"
            options.pods = ["default/p1", "default/web,ports=80=127.0.0.1:\(backendPort)"]
            standin = try KubeStandin(directory: dir, options: options)
            started.append { [standin] in standin.stop() }
            proxyTokenFile = dir + "/k8s-token"
            try (proxyToken + "\n").write(toFile: proxyTokenFile, atomically: true, encoding: .utf8)
            secrets.append(("the cluster's proxy token", proxyToken))
            try startAgent()
            try setUpUsers()
        } catch {
            for stop in started.reversed() { stop() }
            try? FileManager.default.removeItem(atPath: auditPath)
            throw error
        }
    }

    func shutdown() {
        backend.kill()
        standin.stop()
        tunnel.shutdown()
        try? FileManager.default.removeItem(atPath: auditPath)
    }

    var directory: String { tunnel.directory }
    var hubURL: String { "https://127.0.0.1:\(tunnel.httpsPort)" }

    // MARK: The agent

    /// The agent's arguments for `k8s-proxy`: the stand-in, its CA and the proxy token.
    func agentArguments(standin: KubeStandin, tokenFile: String) -> [String] {
        ["--k8s-api", "127.0.0.1:\(standin.port)", "--k8s-token-file", tokenFile, "--k8s-ca-file", standin.caFile]
    }

    /// Starts the cluster's agent and waits until the hub has registered it (again).
    func startAgent() throws {
        let line = "agent \"\(Self.agentID)\" of cluster \"\(Self.cluster)\" connected"
        let before = tunnel.hub.log.components(separatedBy: line).count
        agent = try tunnel.startAgent(id: Self.agentID, cluster: Self.cluster,
                                      extra: agentArguments(standin: standin, tokenFile: proxyTokenFile), waitConnected: false)
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if tunnel.hub.log.components(separatedBy: line).count > before { return }
            if !agent.isRunning { break }
            usleep(20_000)
        }
        throw TestFailure("the agent did not connect\n\(tunnel.logs)")
    }

    /// A test that stopped the agent leaves one running for the next.
    func ensureAgent() throws {
        if agent?.isRunning != true { try startAgent() }
    }

    /// A second cluster made through the API, with a stand-in and an agent of its own.
    struct SecondCluster {
        var standin: KubeStandin
        var agent: ChildProcess
        /// The admin's kubeconfig for it, made by the hub.
        var kubeconfig: String
        func stop() {
            agent.stop(SIGKILL, timeout: 2)
            standin.stop()
        }
    }

    /// Cluster `name` (created and imported through the API) whose API server is a stand-in
    /// saying `serverVersion`, with the same pods.
    func startSecondCluster(_ name: String, serverVersion: String) throws -> SecondCluster {
        let made = try api("POST", "/v3/clusters", ["metadata": ["name": name], "spec": [String: Any]()], bearer: admin)
        guard made.status == 201 || made.status == 409 else { throw TestFailure("create cluster \(name): \(made.status) \(made.text)") }
        let imported = try api("POST", "/v3/clusters/\(name)/import", nil, bearer: admin)
        guard imported.status == 201, let registration = imported.json["registrationToken"] as? String else {
            throw TestFailure("import \(name): \(imported.status) \(imported.text)")
        }
        secrets.append(("\(name)'s registration token", String(registration.split(separator: ".").last ?? "")))
        var options = KubeStandin.Options()
        options.proxyToken = proxyToken
        options.serverVersion = serverVersion
        options.pods = ["default/p1", "default/web,ports=80=127.0.0.1:\(backendPort)"]
        let second = try KubeStandin(directory: directory, options: options, name: "standin-\(name)")
        do {
            let agent = try tunnel.startAgent(id: "\(name)-agent", cluster: name, token: registration,
                                              extra: agentArguments(standin: second, tokenFile: proxyTokenFile))
            let admin = KubeUser(username: "admin", id: "", password: "", session: self.admin, kubeconfig: "", kubeToken: "")
            let config = try withKubeconfig(admin, cluster: name, file: "admin-\(name)").kubeconfig
            return SecondCluster(standin: second, agent: agent, kubeconfig: config)
        } catch {
            second.stop()
            throw error
        }
    }

    // MARK: Users and kubeconfigs

    private func setUpUsers() throws {
        admin = try loginAdmin()
        secrets.append(("admin session token", Self.secretPart(admin)))
        alice = try createUser("alice")
        try create("/v3/clusterroletemplatebindings", [
            "metadata": ["name": "alice-owns-local"],
            "spec": ["clusterName": Self.cluster, "userName": alice.id, "roleTemplateName": "cluster-owner"]])
        carol = try createUser("carol")
        try create("/v3/projects", [
            "metadata": ["name": "p-default"],
            "spec": ["clusterName": Self.cluster, "displayName": "Default", "namespaces": ["default"]]])
        try create("/v3/projectroletemplatebindings", [
            "metadata": ["name": "carol-member-default"],
            "spec": ["projectName": "p-default", "userName": carol.id, "roleTemplateName": "project-member"]])
        bob = try createUser("bob")
        alice = try withKubeconfig(alice)
        carol = try withKubeconfig(carol)
        // bob reaches no cluster, so the hub makes no kubeconfig for him: his login's bearer in one.
        bob.kubeconfig = try writeKubeconfig(name: "bob", token: bob.session)
        bob.kubeToken = bob.session
    }

    private func loginAdmin() throws -> String {
        let first = try login("admin", bootstrapPassword)
        let changed = "k8s-e2e-admin-" + Self.randomLetters(12)
        let r = try api("POST", "/v3/users?action=changepassword", ["currentPassword": bootstrapPassword, "newPassword": changed],
                        bearer: first)
        guard r.status == 200 else { throw TestFailure("change the admin password: \(r.status) \(r.text)") }
        secrets.append(("admin password", changed))
        return try login("admin", changed)
    }

    func login(_ username: String, _ password: String) throws -> String { try tunnel.login(username, password) }

    /// A local user (standard role), logged in; no kubeconfig yet.
    func createUser(_ username: String) throws -> KubeUser {
        let password = "pw-\(username)-" + Self.randomLetters(14)
        let r = try api("POST", "/v3/users", ["username": username, "password": password], bearer: admin)
        guard r.status == 201, let id = r.json["id"] as? String else { throw TestFailure("create user \(username): \(r.status) \(r.text)") }
        let session = try login(username, password)
        secrets.append(("\(username)'s password", password))
        secrets.append(("\(username)'s session token", Self.secretPart(session)))
        return KubeUser(username: username, id: id, password: password, session: session, kubeconfig: "", kubeToken: "")
    }

    @discardableResult
    func create(_ path: String, _ body: [String: Any]) throws -> Answer {
        let r = try api("POST", path, body, bearer: admin)
        guard r.status == 201 else { throw TestFailure("POST \(path): \(r.status) \(r.text)") }
        return r
    }

    /// `user` with a new kubeconfig from `POST /v3/clusters/<cluster>?action=generateKubeconfig`.
    func withKubeconfig(_ user: KubeUser, cluster: String = KubernetesRig.cluster, file: String? = nil) throws -> KubeUser {
        let r = try api("POST", "/v3/clusters/\(cluster)?action=generateKubeconfig", nil, bearer: user.session)
        guard r.status == 200, let config = r.json["config"] as? String else {
            throw TestFailure("generateKubeconfig for \(user.username): \(r.status) \(r.text)")
        }
        let path = directory + "/\(file ?? user.username).kubeconfig"
        try config.write(toFile: path, atomically: true, encoding: .utf8)
        guard let token = Self.kubeconfigToken(config) else { throw TestFailure("no token in the kubeconfig:\n\(config)") }
        secrets.append(("\(user.username)'s kubeconfig token", Self.secretPart(token)))
        var u = user
        u.kubeconfig = path
        u.kubeToken = token
        return u
    }

    /// The bearer in a kubeconfig the hub made (`token: "token-…:…"`).
    static func kubeconfigToken(_ yaml: String) -> String? {
        for line in yaml.split(separator: "\n") {
            let t = line.trimmingCharacters(in: .whitespaces)
            guard t.hasPrefix("token:") else { continue }
            return t.dropFirst(6).trimmingCharacters(in: CharacterSet(charactersIn: " \"'"))
        }
        return nil
    }

    /// A kubeconfig for the hub's proxy written by the test (for a bearer the hub would not make one for).
    func writeKubeconfig(name: String, token: String, cluster: String = KubernetesRig.cluster) throws -> String {
        let path = directory + "/\(name).kubeconfig"
        let ca = directory + "/hub-ca.pem"
        try tunnel.caPEM.write(toFile: ca, atomically: true, encoding: .utf8)
        try KubeStandin.writeKubeconfig(server: "\(hubURL)/k8s/clusters/\(cluster)", certificateAuthority: ca,
                                        token: token, to: path)
        return path
    }

    // MARK: The hub's API

    typealias Answer = HubAnswer

    func api(_ method: String, _ path: String, _ body: [String: Any]? = nil, bearer: String?) throws -> Answer {
        try tunnel.json(method, path, body, bearer: bearer)
    }

    /// The user the hub's own controllers (RBAC sync) impersonate on their requests to the
    /// cluster, which interleave with the test's (`ClusterAPIIdentity.controllerUser`).
    static let controllerUser = "lariat:controller"

    /// What reached `standin` (the rig's own by default) from users, not from the hub's controllers.
    func userRequests(on standin: KubeStandin? = nil, pathPrefix: String? = nil, since: Int) throws -> [StandinRequest] {
        try (standin ?? self.standin).requests(pathPrefix: pathPrefix, since: since).filter { $0.impersonateUser != Self.controllerUser }
    }

    // MARK: kubectl and friends

    /// The environment of every client: its kubeconfig, a private home and discovery cache, no proxy.
    func clientEnvironment(kubeconfig: String) -> [String: String] {
        ["KUBECONFIG": kubeconfig, "HOME": home, "KUBECACHEDIR": home + "/cache"]
    }

    /// Runs kubectl to the end (killed after `timeout`, which fails the test).
    func kubectl(_ args: [String], as user: KubeUser, input: Spawned.Input = .none, environment: [String: String] = [:],
                 timeout: Double = 60) throws -> Spawned.Result {
        try kubectl(args, kubeconfig: user.kubeconfig, input: input, environment: environment, timeout: timeout)
    }

    func kubectl(_ args: [String], kubeconfig: String, input: Spawned.Input = .none, environment: [String: String] = [:],
                 timeout: Double = 60) throws -> Spawned.Result {
        try startKubectl(args, kubeconfig: kubeconfig, input: input, environment: environment).finish(timeout: timeout)
    }

    /// Starts kubectl and returns at once (watches, `logs -f`, sessions kept open).
    func startKubectl(_ args: [String], as user: KubeUser, input: Spawned.Input = .none,
                      environment: [String: String] = [:]) throws -> Spawned {
        try startKubectl(args, kubeconfig: user.kubeconfig, input: input, environment: environment)
    }

    func startKubectl(_ args: [String], kubeconfig: String, input: Spawned.Input = .none,
                      environment: [String: String] = [:]) throws -> Spawned {
        try Spawned("/usr/bin/kubectl", args, environment: clientEnvironment(kubeconfig: kubeconfig).merging(environment) { $1 },
                    directory: directory, name: "kubectl-" + (args.first ?? ""), input: input)
    }

    /// A file of `size` random bytes in the rig's folder (made once per name).
    func randomFile(_ name: String, size: Int) throws -> String {
        let path = directory + "/" + name
        if FileManager.default.fileExists(atPath: path) { return path }
        var bytes = [UInt8](repeating: 0, count: size)
        for i in stride(from: 0, to: size, by: 8) {
            var r = UInt64.random(in: 0...UInt64.max)
            withUnsafeBytes(of: &r) { raw in for j in 0..<min(8, size - i) { bytes[i + j] = raw[j] } }
        }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// The audit log's lines from byte `offset` on, decoded.
    func auditEvents(from offset: Int = 0) -> [[String: Any]] {
        let data = (try? Data(contentsOf: URL(fileURLWithPath: auditPath))) ?? Data()
        guard offset < data.count else { return [] }
        return data[offset...].split(separator: 0x0A).compactMap {
            try? JSONSerialization.jsonObject(with: Data($0)) as? [String: Any]
        }
    }

    var auditSize: Int { ((try? FileManager.default.attributesOfItem(atPath: auditPath))?[.size] as? NSNumber)?.intValue ?? 0 }
    var auditText: String { (try? String(contentsOfFile: auditPath, encoding: .utf8)) ?? "" }

    /// Logs for failure messages: the hub's and agents' tails and the stand-in's.
    var logs: String { tunnel.logs + "\n== standin\n" + String(standin.log.suffix(1500)) }

    // MARK: The backend behind pod `web`

    /// A local HTTP server (`/hello.txt` → "hello-from-backend"), the pod's port 80.
    static func startBackend(directory: String) throws -> Spawned {
        let www = directory + "/www"
        try FileManager.default.createDirectory(atPath: www, withIntermediateDirectories: true)
        try "hello-from-backend\n".write(toFile: www + "/hello.txt", atomically: true, encoding: .utf8)
        let script = """
        import http.server, os, sys
        os.chdir(sys.argv[2])
        class H(http.server.SimpleHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def log_message(self, *a): pass
        s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        open(sys.argv[1] + ".tmp", "w").write(str(s.server_address[1])); os.replace(sys.argv[1] + ".tmp", sys.argv[1])
        s.serve_forever()
        """
        return try Spawned("/usr/bin/env", ["python3", "-c", script, directory + "/backend.port", www], environment: [:],
                           directory: directory, name: "backend")
    }

    static func backendPort(_ backend: Spawned, directory: String) throws -> Int {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: directory + "/backend.port", encoding: .utf8), let port = Int(text) { return port }
            usleep(20_000)
        }
        throw TestFailure("the HTTP backend did not start: \(backend.output)")
    }

    // MARK: Helpers

    static func randomLetters(_ n: Int) -> String {
        String((0..<n).map { _ in "bcdfghjklmnpqrstvwxz0123456789".randomElement()! })
    }

    /// The secret half of a `token-xxxxx:secret` bearer.
    static func secretPart(_ bearer: String) -> String { String(bearer.split(separator: ":").last ?? "") }

    /// Polls `condition` every 20 ms; the seconds it took, or nil if `timeout` passed first.
    static func poll(timeout: Double, _ condition: () throws -> Bool) rethrows -> Double? {
        let start = Date()
        while true {
            if try condition() { return Date().timeIntervalSince(start) }
            if Date().timeIntervalSince(start) > timeout { return nil }
            usleep(20_000)
        }
    }
}

/// `@Suite(.kubernetesRig)`: one `KubernetesRig` for the whole suite, in `KubernetesRig.current`.
struct KubernetesRigTrait: SuiteTrait, TestScoping {
    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let rig = try KubernetesRig()
        defer { rig.shutdown() }
        try await KubernetesRig.$current.withValue(rig) { try await function() }
    }
}

extension Trait where Self == KubernetesRigTrait {
    static var kubernetesRig: Self { Self() }
}

/// A command whose output goes to files, so a 10 MiB answer never blocks on a pipe, with its
/// input from a file, from a pipe the test writes, or from nothing.
final class Spawned: @unchecked Sendable {
    // Invariant: driven by the one test task that started it.
    enum Input { case none, file(String), pipe }

    struct Result: CustomStringConvertible {
        var status: Int32
        var stdout: Data
        var stderr: String
        var seconds: Double
        var out: String { String(decoding: stdout, as: UTF8.self) }
        var description: String { "exit \(status) after \(String(format: "%.2f", seconds)) s\nstdout: \(out.suffix(1500))\nstderr: \(stderr.suffix(1500))" }
    }

    let process = Process()
    let name: String
    let outPath: String
    let errPath: String
    let started = Date()
    private let inputPipe: Pipe?

    init(_ executable: String, _ args: [String], environment: [String: String], directory: String, name: String,
         input: Input = .none) throws {
        let tag = "\(name)-\(UInt32.random(in: 0...UInt32.max))"
        self.name = ([executable] + args).joined(separator: " ")
        outPath = directory + "/\(tag).out"
        errPath = directory + "/\(tag).err"
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = args
        var env = ProcessInfo.processInfo.environment
        for key in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"] {
            env[key] = nil
        }
        for (k, v) in environment { env[k] = v }
        process.environment = env
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.standardOutput = FileHandle(forWritingAtPath: outPath)
        process.standardError = FileHandle(forWritingAtPath: errPath)
        switch input {
        case .none:
            inputPipe = nil
            process.standardInput = FileHandle.nullDevice
        case .file(let path):
            inputPipe = nil
            guard let h = FileHandle(forReadingAtPath: path) else { throw TestFailure("cannot read \(path)") }
            process.standardInput = h
        case .pipe:
            let p = Pipe()
            inputPipe = p
            process.standardInput = p
        }
        try process.run()
    }

    var stdoutData: Data { (try? Data(contentsOf: URL(fileURLWithPath: outPath))) ?? Data() }
    var stdout: String { String(decoding: stdoutData, as: UTF8.self) }
    var stderr: String { (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "" }
    var output: String { stdout + stderr }
    var isRunning: Bool { process.isRunning }

    func write(_ text: String) { inputPipe?.fileHandleForWriting.write(Data(text.utf8)) }
    func closeInput() { try? inputPipe?.fileHandleForWriting.close() }

    /// Waits until stdout or stderr contains `text`; false on timeout or exit without it.
    func waitForOutput(_ text: String, timeout: Double = 20) -> Bool {
        KubernetesRig.poll(timeout: timeout) { output.contains(text) || !process.isRunning } != nil && output.contains(text)
    }

    /// Waits for the exit; nil if still running after `timeout`.
    func wait(timeout: Double) -> Int32? {
        guard KubernetesRig.poll(timeout: timeout, { !process.isRunning }) != nil else { return nil }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Waits for the exit (killing it after `timeout` and throwing, so a hang fails the test).
    func finish(timeout: Double) throws -> Result {
        guard let status = wait(timeout: timeout) else {
            kill()
            throw TestFailure("\(name) still running after \(timeout) s; killed.\nstdout: \(stdout.suffix(1500))\nstderr: \(stderr.suffix(1500))")
        }
        closeInput()
        return Result(status: status, stdout: stdoutData, stderr: stderr, seconds: Date().timeIntervalSince(started))
    }

    func kill() {
        closeInput()
        guard process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit { kill() }
}
