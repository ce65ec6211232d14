import Foundation
import LariatHub
#if canImport(Glibc)
import Glibc
#endif

/// The Kubernetes stand-in (`../shared/kube-standin/kube_standin.py`) on 127.0.0.1, with a
/// kubeconfig for kubectl (its admin token, straight to it). Started and stopped by one test or
/// one suite's rig.
final class KubeStandin: @unchecked Sendable {
    // Invariant: used by the one test (or the one serialized suite) that made it.
    let process = Process()
    let kubeconfig: String
    let token = "standin-admin-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
    /// `https://127.0.0.1:PORT`, its port, and the CA file its certificate chains to.
    let url: String
    let port: Int
    let caFile: String
    let logPath: String

    /// What the stand-in is started with, beyond its admin token (README.md lists the flags).
    struct Options {
        /// `--proxy-token`: the only identity whose `Impersonate-*` headers it honours.
        var proxyToken: String?
        /// `--rbac`: authorize impersonated users by the stored RBAC objects.
        var rbac = false
        /// `--server-version`: what `/version` says, which picks the dispatcher's kubectl.1.NN.
        var serverVersion: String?
        /// `--pod NS/NAME[,ann=value…]` each.
        var pods: [String] = []
        /// `--service NS/NAME:PORT=[HOST:]LOCALPORT` each.
        var services: [String] = []
        var extraArguments: [String] = []
    }

    static let script: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("../shared/kube-standin/kube_standin.py").standardizedFileURL.path

    /// `name` keeps the files of several stand-ins in one folder apart.
    init(directory: String, options: Options = Options(), name: String = "standin") throws {
        let ready = directory + "/\(name)-ready.json"
        kubeconfig = directory + "/\(name == "standin" ? "kubeconfig" : name + ".kubeconfig")"
        logPath = directory + "/\(name).log"
        let workdir = directory + "/\(name)-pods"
        try FileManager.default.createDirectory(atPath: workdir, withIntermediateDirectories: true)
        var args = [Self.script, "--https-port", "0", "--bind", "127.0.0.1", "--token", token, "--ready-file", ready,
                    "--workdir", workdir]
        if let proxyToken = options.proxyToken { args += ["--proxy-token", proxyToken] }
        if options.rbac { args.append("--rbac") }
        if let version = options.serverVersion { args += ["--server-version", version] }
        args += options.pods.flatMap { ["--pod", $0] } + options.services.flatMap { ["--service", $0] } + options.extraArguments
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + args
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: logPath)
        process.standardError = FileHandle(forWritingAtPath: logPath)
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        var info: [String: Any]?
        while Date() < deadline, process.isRunning {
            if let data = FileManager.default.contents(atPath: ready), !data.isEmpty {
                info = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
                if info != nil { break }
            }
            usleep(50_000)
        }
        guard let info, let url = info["https_url"] as? String, let ca = info["ca_file"] as? String,
              let port = info["https_port"] as? Int else {
            self.url = ""; self.port = 0; self.caFile = ""
            stop()
            throw TestFailure("the kube stand-in did not start: \((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "")")
        }
        self.url = url
        self.port = port
        caFile = ca
        try Self.writeKubeconfig(server: url, certificateAuthority: ca, token: token, to: kubeconfig)
    }

    /// A one-context kubeconfig (kubectl and the Python client read it): bearer `token` for
    /// `server`, verified with the CA file. Values are test-made paths, URLs and tokens.
    static func writeKubeconfig(server: String, certificateAuthority: String, token: String, to path: String) throws {
        let config = """
        apiVersion: v1
        kind: Config
        clusters: [{name: c, cluster: {server: "\(server)", certificate-authority: "\(certificateAuthority)"}}]
        users: [{name: u, user: {token: "\(token)"}}]
        contexts: [{name: c, context: {cluster: c, user: u}}]
        current-context: c
        """
        try config.write(toFile: path, atomically: true, encoding: .utf8)
    }

    var caPEM: String { (try? String(contentsOfFile: caFile, encoding: .utf8)) ?? "" }
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Runs a shell command line (kubectl, curl), returning its combined output and status.
    func kubectl(shell command: String) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command]
        var env = ProcessInfo.processInfo.environment
        for key in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"] { env[key] = nil }
        env["KUBECONFIG"] = kubeconfig
        p.environment = env
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func getJSON(_ kind: String, _ name: String, namespaced: Bool = true) throws -> [String: Any] {
        let ns = namespaced ? " -n lariat-system" : ""
        let r = try kubectl(shell: "kubectl --kubeconfig '\(kubeconfig)'\(ns) get \(kind) \(name) -o json 2>&1")
        guard r.status == 0, let object = try? JSONSerialization.jsonObject(with: Data(r.output.utf8)) as? [String: Any] else {
            throw TestFailure("kubectl get \(kind) \(name): \(r.status) \(r.output)")
        }
        return object
    }

    // MARK: Debug endpoints (no auth, not recorded)

    /// One call to `/_standin/…` over its HTTPS port.
    private func debug(_ method: String, _ pathAndQuery: String, body: [UInt8]? = nil) throws -> String {
        let r = try HubAPIClient.send(method: method, host: "127.0.0.1", port: port, path: "/_standin/" + pathAndQuery, body: body,
                                      bearer: nil, caPEM: caPEM, timeoutMilliseconds: 10_000)
        guard (200..<300).contains(r.status) else { throw TestFailure("stand-in \(method) \(pathAndQuery): \(r.status) \(r.body)") }
        return r.body
    }

    /// `GET /_standin/requests`: what reached the stand-in after record `since`, oldest first.
    func requestLog(pathPrefix: String? = nil, since: Int = 0) throws -> StandinRequestLog {
        var query = "since=\(since)"
        if let pathPrefix { query += "&pathPrefix=" + pathPrefix }
        let body = try debug("GET", "requests?" + query)
        do {
            return try JSONDecoder().decode(StandinRequestLog.self, from: Data(body.utf8))
        } catch {
            throw TestFailure("the stand-in's request log did not decode: \(error)\n\(body.prefix(2000))")
        }
    }

    func requests(pathPrefix: String? = nil, since: Int = 0) throws -> [StandinRequest] {
        try requestLog(pathPrefix: pathPrefix, since: since).requests
    }

    /// The id of the newest record: pass it as `since` to see only what comes after.
    func lastRequestID() throws -> Int { try requestLog(pathPrefix: "/_none_").lastId }

    /// `POST /_standin/log`: appends `text` to a container's log (wakes `logs -f`).
    func appendLog(namespace: String, pod: String, _ text: String) throws {
        _ = try debug("POST", "log?namespace=\(namespace)&pod=\(pod)", body: Array(text.utf8))
    }

    /// SIGTERM, then SIGKILL: the stand-in does not exit on SIGTERM while its server runs.
    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(2)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { stop() }
}

/// `GET /_standin/requests`.
struct StandinRequestLog: Decodable, Sendable {
    var lastId: Int
    var requests: [StandinRequest]
}

/// One request as the stand-in saw it (README.md, "Debug endpoints"); only the fields tests read.
struct StandinRequest: Decodable, Sendable, CustomStringConvertible {
    var id: Int
    var method: String
    var path: String
    var query: String
    /// The identity of the bearer token (the proxy's, for requests through the hub).
    var user: String?
    var impersonateUser: String?
    var impersonateGroups: [String]?
    var impersonateExtra: [String: [String]]?
    /// Raw `Impersonate-*` fields, in order.
    var impersonationHeaders: [[String]]?
    var userAgent: String?
    var contentType: String?
    var upgrade: String?
    var websocketProtocols: [String]?
    var streamProtocols: [String]?
    var negotiatedProtocol: String?
    var code: Int?
    /// Every field, `Authorization` redacted.
    var headers: [[String]]?

    /// The values of every field named `name` (case-insensitive).
    func header(_ name: String) -> [String] {
        (headers ?? []).filter { $0.count == 2 && $0[0].lowercased() == name.lowercased() }.map { $0[1] }
    }

    /// "GET websocket v5.channel.k8s.io 101": how a session was carried.
    var transport: String {
        "\(method) \(upgrade ?? "-") \(negotiatedProtocol ?? "-") \(code.map(String.init) ?? "-")"
    }

    var description: String {
        "#\(id) \(method) \(path)\(query.isEmpty ? "" : "?" + query) user=\(user ?? "-") as=\(impersonateUser ?? "-") groups=\(impersonateGroups ?? []) upgrade=\(upgrade ?? "-") proto=\(negotiatedProtocol ?? "-") code=\(code.map(String.init) ?? "-")"
    }
}
