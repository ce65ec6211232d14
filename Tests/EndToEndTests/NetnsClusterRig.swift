import Foundation
import LariatHub
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A cluster in a network namespace (issue #10): the kube stand-in (`--rbac`, Service
/// `default/web` with ClusterIP `serviceIP`), an HTTP/WebSocket backend listening on that
/// ClusterIP's port 80 (and 127.0.0.1:80, where the stand-in's own service proxy goes), one
/// cluster agent and two node agents, all inside the netns; the hub in the host namespace on the
/// veth's host address, its certificate carrying that address. Tests talk to the hub from the
/// host namespace with `client.py` (Python's http.client and ssl, verifying the hub's CA) and
/// never dial a ClusterIP themselves. One rig serves a whole serialized suite (`.netnsClusterRig`).
final class NetnsClusterRig: @unchecked Sendable {
    // Invariant: used by one serialized suite, one test at a time.
    @TaskLocal static var current: NetnsClusterRig?

    static let cluster = "local"
    static let clusterAgentID = "k8s-agent"
    static let nodeAgentIDs = ["node-a", "node-b"]
    static let serviceIP = "10.96.0.50"
    /// The magic proxy's prefix for Service `default/web`, port 80.
    static let webProxy = "/k8s/clusters/local/api/v1/namespaces/default/services/web:80/proxy"

    let netns: NetworkNamespace
    let tunnel: TunnelRig
    private(set) var backend: ChildProcess!
    private(set) var standin: ChildProcess!
    private(set) var standinPort = 0
    private(set) var standinCA = ""
    /// The stand-in's `--proxy-token` (what agents authenticate with) and the file holding it.
    let proxyToken = "standin-proxy-" + NetnsClusterRig.randomLetters(20)
    let standinAdminToken = "standin-admin-" + NetnsClusterRig.randomLetters(20)
    let bootstrapPassword = "netns-e2e-bootstrap-" + NetnsClusterRig.randomLetters(12)
    /// One JSON line per request the backend saw (method, path, host, time).
    let backendLog: String
    let clientScript: String
    let hubCAFile: String
    /// Bearers: the admin's session; carol (project member of a project holding `default`);
    /// dave (project member of a project holding only `other`); bob (no binding at all).
    private(set) var admin = ""
    private(set) var carol = ""
    private(set) var dave = ""
    private(set) var bob = ""
    /// The running process of each agent id.
    private(set) var agents: [String: ChildProcess] = [:]
    private var launches = 0
    private var children: [ChildProcess] = []

    init() throws {
        netns = try NetworkNamespace()
        do {
            try netns.addLoopbackAddress(Self.serviceIP)
            tunnel = try TunnelRig(forwards: [], hubArguments: ["--server-name", netns.hostAddress],
                                   hubEnvironment: ["LARIAT_BOOTSTRAP_PASSWORD": bootstrapPassword],
                                   listenHost: netns.hostAddress)
        } catch {
            netns.destroy()
            throw error
        }
        backendLog = tunnel.directory + "/backend-requests.jsonl"
        clientScript = tunnel.directory + "/client.py"
        hubCAFile = tunnel.directory + "/hub-ca.pem"
        do {
            try tunnel.caPEM.write(toFile: hubCAFile, atomically: true, encoding: .utf8)
            try Self.clientSource.write(toFile: clientScript, atomically: true, encoding: .utf8)
            try startBackend()
            try startStandin()
            try (proxyToken + "\n").write(toFile: directory + "/k8s-token", atomically: true, encoding: .utf8)
            try startAgent(Self.clusterAgentID)
            for id in Self.nodeAgentIDs { try startAgent(id) }
            try setUpUsers()
        } catch {
            shutdown()
            throw error
        }
    }

    var directory: String { tunnel.directory }

    func shutdown() {
        for a in agents.values { a.stop(SIGKILL, timeout: 2) }
        for c in children { c.stop(SIGKILL, timeout: 2) }
        tunnel.shutdown()
        netns.destroy()
    }

    // MARK: Processes in the namespace

    private func spawnInside(_ name: String, _ args: [String]) throws -> ChildProcess {
        launches += 1
        let (executable, arguments) = netns.command(args)
        return try ChildProcess(name: "\(name)-\(launches)", executable: executable, arguments: arguments,
                                logDirectory: directory)
    }

    private func startBackend() throws {
        let script = directory + "/backend.py"
        let ready = directory + "/backend.ready"
        try Self.backendSource.write(toFile: script, atomically: true, encoding: .utf8)
        backend = try spawnInside("backend", ["/usr/bin/env", "python3", script, backendLog, ready])
        children.append(backend)
        guard Self.poll(timeout: 20, { FileManager.default.fileExists(atPath: ready) || !backend.isRunning }),
              FileManager.default.fileExists(atPath: ready) else {
            throw TestFailure("the backend did not start in the netns:\n\(backend.log)")
        }
    }

    private func startStandin() throws {
        let seed = directory + "/standin-seed.json"
        try JSONSerialization.data(withJSONObject: Self.seedObjects, options: [.prettyPrinted])
            .write(to: URL(fileURLWithPath: seed))
        let ready = directory + "/standin-ready.json"
        let workdir = directory + "/standin-pods"
        try FileManager.default.createDirectory(atPath: workdir, withIntermediateDirectories: true)
        let script = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("../shared/kube-standin/kube_standin.py").standardizedFileURL.path
        standin = try spawnInside("standin", [
            "/usr/bin/env", "python3", script, "--https-port", "0", "--bind", "127.0.0.1", "--token", standinAdminToken,
            "--proxy-token", proxyToken, "--rbac", "--seed", seed, "--server-version", "v1.32.4", "--ready-file", ready,
            "--workdir", workdir, "-v"])
        children.append(standin)
        var info: [String: Any]?
        _ = Self.poll(timeout: 30) {
            if let data = FileManager.default.contents(atPath: ready), !data.isEmpty {
                info = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
            }
            return info != nil || !standin.isRunning
        }
        guard let info, let port = info["https_port"] as? Int, let ca = info["ca_file"] as? String else {
            throw TestFailure("the kube stand-in did not start in the netns:\n\(standin.log.suffix(3000))")
        }
        standinPort = port
        standinCA = ca
    }

    /// Starts (or restarts) agent `id` inside the namespace and waits until the hub registered it.
    func startAgent(_ id: String) throws {
        let line = "agent \"\(id)\" of cluster \"\(Self.cluster)\" connected"
        let before = tunnel.hub.log.components(separatedBy: line).count
        let role = id == Self.clusterAgentID ? "cluster" : "node"
        let agent = try spawnInside(id, [
            Binaries.agent, "--server", "https://\(netns.hostAddress):\(tunnel.httpsPort)", "--cluster", Self.cluster,
            "--agent-id", id, "--token", tunnel.token, "--ca-checksum", tunnel.caChecksum, "--role", role,
            "--k8s-api", "https://127.0.0.1:\(standinPort)", "--k8s-token-file", directory + "/k8s-token",
            "--k8s-ca-file", standinCA])
        agents[id] = agent
        guard Self.poll(timeout: 30, {
            tunnel.hub.log.components(separatedBy: line).count > before || !agent.isRunning
        }), agent.isRunning else {
            throw TestFailure("agent \(id) did not connect from the netns\n\(logs)")
        }
    }

    /// Every agent running and not stopped, and the cluster agent carrying new requests again:
    /// what each test starts from, whatever the one before did.
    func ensureAgents() throws {
        for (id, agent) in agents {
            agent.signal(SIGCONT)
            if !agent.isRunning { try startAgent(id) }
        }
        let back = Self.poll(timeout: 20) {
            (try? get(Self.webProxy + "/hello", bearer: admin))?.header("x-lariat-path") == "cluster-agent"
        }
        if !back { throw TestFailure("the cluster agent does not carry requests again\n\(logs)") }
    }

    // MARK: Users

    private func setUpUsers() throws {
        let first = try login("admin", bootstrapPassword)
        let changed = "netns-e2e-admin-" + Self.randomLetters(12)
        let r = try api("POST", "/v3/users?action=changepassword",
                        ["currentPassword": bootstrapPassword, "newPassword": changed], bearer: first)
        guard r.status == 200 else { throw TestFailure("change the admin password: \(r.status) \(r.body)") }
        admin = try login("admin", changed)
        carol = try createUser("carol")
        dave = try createUser("dave")
        bob = try createUser("bob")
        for (project, namespace, user) in [("p-default", "default", "carol"), ("p-other", "other", "dave")] {
            try create("/v3/projects", ["metadata": ["name": project],
                                        "spec": ["clusterName": Self.cluster, "displayName": project, "namespaces": [namespace]]])
            try create("/v3/projectroletemplatebindings", [
                "metadata": ["name": "\(user)-member-\(project)"],
                "spec": ["projectName": project, "userName": userIDs[user]!, "roleTemplateName": "project-member"]])
        }
    }

    private var userIDs: [String: String] = [:]

    private func login(_ username: String, _ password: String) throws -> String { try tunnel.login(username, password) }

    private func createUser(_ username: String) throws -> String {
        let password = "pw-\(username)-" + Self.randomLetters(14)
        let r = try api("POST", "/v3/users", ["username": username, "password": password], bearer: admin)
        guard r.status == 201, let id = Self.object(r.body)["id"] as? String else { throw TestFailure("create user \(username): \(r.status) \(r.body)") }
        userIDs[username] = id
        return try login(username, password)
    }

    private func create(_ path: String, _ body: [String: Any]) throws {
        let r = try api("POST", path, body, bearer: admin)
        guard r.status == 201 else { throw TestFailure("POST \(path): \(r.status) \(r.body)") }
    }

    // MARK: Talking to the hub (from the host namespace)

    /// One request to the hub's API through `HubAPIClient`.
    func api(_ method: String, _ path: String, _ body: [String: Any]? = nil, bearer: String?) throws -> HubAPIClient.Response {
        let bytes = try body.map { Array(try JSONSerialization.data(withJSONObject: $0)) }
        return try HubAPIClient.send(method: method, host: netns.hostAddress, port: tunnel.httpsPort, path: path, body: bytes,
                                     bearer: bearer, caPEM: tunnel.caPEM, timeoutMilliseconds: 20_000)
    }

    /// One exchange as `client.py` saw it: status, headers (lower-cased names), body, or a transport error.
    struct Exchange: CustomStringConvertible {
        var status: Int
        var headers: [String: String]
        var body: String
        var error: String?
        var seconds: Double
        var echo: String?
        func header(_ name: String) -> String? { headers[name.lowercased()] }
        var description: String {
            if let error { return "error \(error) after \(String(format: "%.2f", seconds)) s" }
            return "\(status) \(headers) \(body.prefix(300)) after \(String(format: "%.2f", seconds)) s"
        }
        init(json: [String: Any]) {
            status = json["status"] as? Int ?? 0
            headers = json["headers"] as? [String: String] ?? [:]
            body = json["body"] as? String ?? ""
            error = json["error"] as? String
            seconds = json["seconds"] as? Double ?? 0
            echo = json["echo"] as? String
        }
    }

    private func clientArguments(_ mode: [String]) -> [String] {
        [clientScript, hubCAFile, netns.hostAddress, String(tunnel.httpsPort)] + mode
    }

    /// Runs `client.py` to the end and decodes its one JSON line.
    func client(_ mode: [String], bearer: String) throws -> Exchange {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3"] + clientArguments(mode)
        var env = ProcessInfo.processInfo.environment
        for key in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] { env[key] = nil }
        env["LARIAT_TEST_BEARER"] = bearer
        p.environment = env
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard let line = text.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
              let json = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw TestFailure("client.py \(mode): \(text)")
        }
        return Exchange(json: json)
    }

    func get(_ path: String, bearer: String) throws -> Exchange { try client(["request", "GET", path], bearer: bearer) }

    /// Starts `client.py` and returns at once; its JSON lines go to its log.
    func startClient(_ mode: [String], bearer: String) throws -> ChildProcess {
        launches += 1
        let p = try ChildProcess(name: "client-\(launches)", executable: "/usr/bin/env", arguments: ["python3"] + clientArguments(mode),
                                 environment: ["LARIAT_TEST_BEARER": bearer], logDirectory: directory)
        children.append(p)
        return p
    }

    /// The one exchange a client started with `startClient(["request", …])` printed, once it ended.
    func finish(_ client: ChildProcess, timeout: Double) throws -> Exchange {
        guard Self.poll(timeout: timeout, { !client.isRunning }) else {
            client.stop(SIGKILL)
            throw TestFailure("client.py still running after \(timeout) s: \(client.log)")
        }
        guard let line = client.log.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
              let json = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw TestFailure("client.py printed no answer: \(client.log)")
        }
        return Exchange(json: json)
    }

    /// `clients` threads each sending GET `path` on a new connection, one after another, until
    /// `stopPoller` (or at most `seconds`): one JSON line per answer in the poller's log (`pollResults`).
    func startPoller(_ path: String, clients: Int, seconds: Double = 60, bearer: String) throws -> ChildProcess {
        try startClient(["poll", path, String(clients), String(seconds), pollerStopFile(launches + 1)], bearer: bearer)
    }

    private func pollerStopFile(_ launch: Int) -> String { directory + "/client-\(launch).stop" }

    /// Ends a poller's GETs (each finishes first) and waits for its last line.
    func stopPoller(_ poller: ChildProcess) throws {
        let stopFile = pollerStopFile(Int(poller.name.split(separator: "-").last ?? "") ?? 0)
        FileManager.default.createFile(atPath: stopFile, contents: nil)
        try poller.waitForLog("\"done\"", timeout: 30)
    }

    /// Waits until the poller's last `count` answers all came through the cluster agent: the
    /// baseline a failover is measured from.
    func waitForClusterAgent(_ poller: ChildProcess, count: Int = 6, timeout: Double = 15) -> Bool {
        Self.poll(timeout: timeout) {
            let last = Self.pollResults(poller).suffix(count)
            return last.count == count && last.allSatisfy { $0.ok && $0.path == "cluster-agent" }
        }
    }

    /// How often the hub has logged agent `id` unhealthy so far.
    func unhealthyMarks(_ id: String) -> Int {
        tunnel.hub.log.split(separator: "\n").filter { $0.contains("is unhealthy") && $0.contains("\"\(id)\"") }.count
    }

    /// One GET of a poller: when it was sent and answered (Unix seconds), and how.
    struct PollResult: CustomStringConvertible {
        var client: Int
        var sent: Double
        var answered: Double
        var status: Int
        var path: String?
        var error: String?
        var ok: Bool { error == nil && status == 200 }
        var description: String {
            "client \(client) sent \(String(format: "%.3f", sent)) +\(String(format: "%.3f", answered - sent)) s: \(error ?? "\(status) \(path ?? "-")")"
        }
    }

    static func pollResults(_ poller: ChildProcess) -> [PollResult] {
        poller.log.split(separator: "\n").compactMap { line -> PollResult? in
            guard line.hasPrefix("{"), let j = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let sent = j["sent"] as? Double, let answered = j["answered"] as? Double else { return nil }
            return PollResult(client: j["client"] as? Int ?? 0, sent: sent, answered: answered, status: j["status"] as? Int ?? 0,
                              path: j["path"] as? String, error: j["error"] as? String)
        }
    }

    /// What the backend saw, in order.
    func backendRequests() -> [[String: Any]] {
        let text = (try? String(contentsOfFile: backendLog, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// `GET /metrics` with the hub's admin token.
    func metrics() throws -> String {
        let r = try tunnel.api("/metrics")
        guard r.status == 200 else { throw TestFailure("/metrics: \(r.status) \(r.body)") }
        return r.body
    }

    /// Logs for failure messages: hub, agents, stand-in, backend.
    var logs: String {
        let agentLogs = agents.sorted { $0.key < $1.key }.map { "== \($0.value.name)\n\($0.value.log.suffix(2000))" }
        return (["== hub\n\(tunnel.hub.log.suffix(4000))"] + agentLogs
            + ["== standin\n\(standin?.log.suffix(1500) ?? "")", "== backend\n\(backend?.log.suffix(800) ?? "")"])
            .joined(separator: "\n")
    }

    /// A JSON object's fields (empty if `text` is not one).
    static func object(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    }

    /// Polls `condition` every 20 ms; true once it holds, false when `timeout` passed first.
    static func poll(timeout: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if try condition() { return true }
            if Date() > deadline { return false }
            usleep(20_000)
        }
    }

    static func randomLetters(_ n: Int) -> String {
        String((0..<n).map { _ in "bcdfghjklmnpqrstvwxz0123456789".randomElement()! })
    }

    // MARK: What runs where

    /// Service `default/web` (ClusterIP `serviceIP`, port http/80; the stand-in's own service
    /// proxy goes to 127.0.0.1:80) and the import manifest's `lariat-controller` ClusterRole and
    /// binding (`Agent/deploy/10-rbac.yaml`): the hub looks Services up as `lariat:controller`.
    static var seedObjects: [[String: Any]] {
        let labels = ["app.kubernetes.io/name": "lariat-agent", "app.kubernetes.io/part-of": "lariat"]
        return [
            ["apiVersion": "v1", "kind": "Service",
             "metadata": ["name": "web", "namespace": "default",
                          "annotations": ["standin.k8s.io/proxy-targets": "80=127.0.0.1:80"]],
             "spec": ["clusterIP": serviceIP, "clusterIPs": [serviceIP], "type": "ClusterIP",
                      "ports": [["name": "http", "port": 80, "protocol": "TCP", "targetPort": 80]]]],
            ["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": "other"]],
            ["apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": ["name": "lariat-controller", "labels": labels],
             "rules": [
                ["apiGroups": ["rbac.authorization.k8s.io"],
                 "resources": ["clusterroles", "clusterrolebindings", "roles", "rolebindings"],
                 "verbs": ["get", "list", "watch", "create", "update", "patch", "delete", "bind", "escalate"]],
                ["apiGroups": [""], "resources": ["nodes", "pods", "namespaces", "events", "services"],
                 "verbs": ["get", "list", "watch"]],
                ["nonResourceURLs": ["/version", "/healthz", "/readyz", "/livez"], "verbs": ["get"]]]],
            ["apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": ["name": "lariat-controller", "labels": labels],
             "roleRef": ["apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "lariat-controller"],
             "subjects": [["apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "lariat:controller"]]],
        ]
    }

    /// The Service's backend, inside the netns on 0.0.0.0:80 (so on the ClusterIP and on
    /// 127.0.0.1): `/hello`, `/redirect` (302 to `/hello`), `/slow-post` (POST, answered after
    /// 3 s), `/ws` (a WebSocket echo, RFC 6455). Every request is recorded before it is served.
    static let backendSource = #"""
    import base64, hashlib, http.server, json, os, struct, sys, threading, time
    log_path, ready = sys.argv[1], sys.argv[2]
    lock = threading.Lock()

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def log_message(self, *a): pass

        def record(self):
            entry = {"t": time.time(), "method": self.command, "path": self.path, "host": self.headers.get("Host"),
                     "prefix": self.headers.get("X-Forwarded-Prefix"), "peer": self.client_address[0],
                     "local": self.connection.getsockname()[0]}
            with lock, open(log_path, "a") as f:
                f.write(json.dumps(entry) + "\n")

        def text(self, code, body, extra=()):
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            for k, v in extra: self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self.record()
            if self.path == "/hello": self.text(200, "hello from the netns backend\n")
            elif self.path == "/redirect": self.text(302, "see /hello\n", [("Location", "/hello")])
            elif self.path == "/ws": self.websocket()
            else: self.text(404, "no such page\n")

        def do_POST(self):
            self.record()
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/slow-post":
                time.sleep(3)
                self.text(200, "posted %d bytes\n" % len(body))
            else: self.text(404, "no such page\n")

        def websocket(self):
            key = self.headers.get("Sec-WebSocket-Key")
            if (self.headers.get("Upgrade") or "").lower() != "websocket" or not key:
                return self.text(400, "not a WebSocket upgrade\n")
            accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept)
            self.end_headers()
            self.close_connection = True
            while True:
                head = self.rfile.read(2)
                if len(head) < 2: return
                op, n = head[0] & 0x0F, head[1] & 0x7F
                if n == 126: n = struct.unpack("!H", self.rfile.read(2))[0]
                elif n == 127: n = struct.unpack("!Q", self.rfile.read(8))[0]
                mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(n)))
                if op == 8:
                    self.wfile.write(b"\x88\x00")
                    return
                if op in (1, 2):
                    size = bytes([len(data)]) if len(data) < 126 else struct.pack("!BH", 126, len(data))
                    self.wfile.write(bytes([0x80 | op]) + size + data)

    class S(http.server.ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    s = S(("0.0.0.0", 80), H)
    open(ready + ".tmp", "w").write("80")
    os.replace(ready + ".tmp", ready)
    s.serve_forever()
    """#

    /// The test's HTTPS client, in the host namespace: `client.py CA HOST PORT MODE…` with the
    /// bearer in `LARIAT_TEST_BEARER`. Modes: `request METHOD PATH [BODY]` and `ws PATH MESSAGE`
    /// print one JSON line; `poll PATH CLIENTS SECONDS` prints one per answer as it comes.
    static let clientSource = #"""
    import base64, http.client, json, os, socket, ssl, struct, sys, threading, time
    ca, host, port, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    bearer = os.environ.get("LARIAT_TEST_BEARER", "")
    ctx = ssl.create_default_context(cafile=ca)
    out = threading.Lock()

    def emit(obj):
        with out:
            sys.stdout.write(json.dumps(obj) + "\n")
            sys.stdout.flush()

    def request(method, path, body=None, timeout=30):
        start = time.time()
        try:
            c = http.client.HTTPSConnection(host, port, context=ctx, timeout=timeout)
            headers = {"Authorization": "Bearer " + bearer} if bearer else {}
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            data = r.read()
            c.close()
            return {"status": r.status, "headers": {k.lower(): v for k, v in r.getheaders()},
                    "body": data.decode("utf-8", "replace"), "seconds": time.time() - start}
        except Exception as e:
            return {"error": "%s: %s" % (type(e).__name__, e), "seconds": time.time() - start}

    def websocket(path, message):
        start = time.time()
        raw = socket.create_connection((host, port), timeout=20)
        s = ctx.wrap_socket(raw, server_hostname=host)
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                   % (path, host, port, bearer, key)).encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk: break
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
        headers = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
        result = {"status": status, "headers": headers, "seconds": time.time() - start}
        if status != 101:
            result["body"] = rest.decode("utf-8", "replace")
            return result
        data = message.encode()
        mask = os.urandom(4)
        s.sendall(bytes([0x81, 0x80 | len(data)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))
        while len(rest) < 2 or len(rest) < 2 + (rest[1] & 0x7F):
            chunk = s.recv(4096)
            if not chunk: break
            rest += chunk
        if len(rest) >= 2:
            result["echo"] = rest[2:2 + (rest[1] & 0x7F)].decode("utf-8", "replace")
        mask = os.urandom(4)
        s.sendall(bytes([0x88, 0x80]) + mask)
        s.close()
        return result

    def poller(index, path, until, stop_file):
        while time.time() < until and not os.path.exists(stop_file):
            sent = time.time()
            r = request("GET", path, timeout=20)
            emit({"client": index, "sent": sent, "answered": time.time(), "status": r.get("status", 0),
                  "path": r.get("headers", {}).get("x-lariat-path"), "error": r.get("error")})

    if mode == "request":
        emit(request(sys.argv[5], sys.argv[6], sys.argv[7].encode() if len(sys.argv) > 7 else None))
    elif mode == "ws":
        emit(websocket(sys.argv[5], sys.argv[6]))
    elif mode == "poll":
        path, clients, seconds, stop_file = sys.argv[5], int(sys.argv[6]), float(sys.argv[7]), sys.argv[8]
        until = time.time() + seconds
        emit({"started": time.time()})
        threads = [threading.Thread(target=poller, args=(i, path, until, stop_file)) for i in range(clients)]
        for t in threads: t.start()
        for t in threads: t.join()
        emit({"done": time.time()})
    """#
}

/// `@Suite(.netnsClusterRig)`: one `NetnsClusterRig` for the whole suite, in `NetnsClusterRig.current`.
struct NetnsClusterRigTrait: SuiteTrait, TestScoping {
    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let rig = try NetnsClusterRig()
        defer { rig.shutdown() }
        try await NetnsClusterRig.$current.withValue(rig) { try await function() }
    }
}

extension Trait where Self == NetnsClusterRigTrait {
    static var netnsClusterRig: Self { Self() }
}
