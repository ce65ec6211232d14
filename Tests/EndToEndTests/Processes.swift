import Foundation
import LariatHub
#if canImport(Glibc)
import Glibc
#endif

/// Locates the built `lariat-hub` / `lariat-agent` next to the test bundle.
enum Binaries {
    static let directory: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = (exe as NSString).deletingLastPathComponent
        // The bundle may be a directory (…/LariatPackageTests.xctest) on some layouts.
        while !FileManager.default.fileExists(atPath: dir + "/lariat-hub"), dir != "/" {
            dir = (dir as NSString).deletingLastPathComponent
        }
        return dir
    }()
    static var hub: String { directory + "/lariat-hub" }
    static var agent: String { directory + "/lariat-agent" }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A child process whose stdout+stderr go to a log file the test can search.
final class ChildProcess: @unchecked Sendable {
    // Invariant: `process` is only started/terminated from the test's own task.
    let process = Process()
    let logPath: String
    let name: String

    init(name: String, executable: String, arguments: [String], environment: [String: String] = [:], logDirectory: String) throws {
        self.name = name
        logPath = "\(logDirectory)/\(name).log"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let handle = FileHandle(forWritingAtPath: logPath)!
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for key in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"] { env[key] = nil }
        for (k, v) in environment { env[k] = v }
        process.environment = env
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    /// Waits until the log contains `text`; throws with the log's tail on timeout.
    func waitForLog(_ text: String, timeout: Double = 20) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if log.contains(text) { return }
            if !process.isRunning { break }
            usleep(50_000)
        }
        if log.contains(text) { return }
        throw TestFailure("\(name): no \"\(text)\" within \(timeout) s. Log:\n\(log.suffix(3000))")
    }

    func signal(_ sig: Int32) { if process.isRunning { kill(process.processIdentifier, sig) } }

    /// Sends `sig` and waits for exit (SIGKILL after `timeout`). Returns the exit status.
    @discardableResult
    func stop(_ sig: Int32 = SIGTERM, timeout: Double = 15) -> Int32 {
        signal(sig)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        return process.terminationStatus
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
}

/// A hub and its agents for one test, in a private temp folder, torn down on `shutdown`.
final class TunnelRig: @unchecked Sendable {
    // Invariant: used from one test task at a time.
    let directory: String
    var hub: ChildProcess!
    var agents: [ChildProcess] = []
    var httpsPort = 0
    var forwardPorts: [Int] = []
    var forwards: [String] = []
    var hubArguments: [String] = []
    /// Extra environment for the hub process (for example `LARIAT_BOOTSTRAP_PASSWORD`).
    var hubEnvironment: [String: String] = [:]
    /// The admin API token the hub is started with (it keeps only its digest).
    let adminToken = "e2e-admin-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)

    /// The address the hub listens on and the tests dial (a netns test's host side of the veth).
    let listenHost: String

    init(forwards: [String], hubArguments: [String] = [], hubEnvironment: [String: String] = [:],
         listenHost: String = "127.0.0.1") throws {
        directory = NSTemporaryDirectory() + "lariat-e2e-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        self.listenHost = listenHost
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        self.forwards = forwards
        self.hubArguments = hubArguments
        self.hubEnvironment = hubEnvironment
        try startHub()
    }

    var dataDirectory: String { directory + "/hub-data" }
    var token: String { (try? String(contentsOfFile: dataDirectory + "/local.token", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "" }
    var caChecksum: String {
        let pem = (try? Data(contentsOf: URL(fileURLWithPath: dataDirectory + "/tls/ca.pem"))) ?? Data()
        return Digest.sha256Hex(Array(pem))
    }

    /// Starts (or restarts) the hub. On a restart the same ports are requested again.
    func startHub(generation: Int = 0) throws {
        let portFile = directory + "/ports-\(generation)"
        let listen = "\(listenHost):\(httpsPort)"
        var args = ["serve", "--listen", listen, "--data", dataDirectory, "--port-file", portFile, "--loops", "2",
                    "--drain-timeout", "3"]
        for (i, f) in forwards.enumerated() {
            let port = forwardPorts.count > i ? forwardPorts[i] : 0
            args += ["--forward", "127.0.0.1:\(port)=\(f)"]
        }
        hub = try ChildProcess(name: "hub-\(generation)", executable: Binaries.hub, arguments: args + hubArguments,
                               environment: hubEnvironment.merging(["LARIAT_ADMIN_TOKEN": adminToken]) { _, admin in admin },
                               logDirectory: directory)
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: portFile, encoding: .utf8) {
                let ports = text.split(separator: "\n").compactMap { Int($0) }
                httpsPort = ports[0]
                forwardPorts = Array(ports.dropFirst())
                return
            }
            if !hub.isRunning { break }
            usleep(50_000)
        }
        throw TestFailure("hub did not start. Log:\n\(hub.log.suffix(3000))")
    }

    /// `allow`: the agent's `--allow` rules. Test targets listen on 127.0.0.1, which agents
    /// refuse unless explicitly allowed; pass [] for the agent's default policy.
    @discardableResult
    func startAgent(id: String = "agent-1", cluster: String = "local", token: String? = nil, checksum: String? = nil, role: String = "cluster",
                    serverHost: String = "127.0.0.1", allow: [String] = ["127.0.0.1"],
                    environment: [String: String] = [:], extra: [String] = [], waitConnected: Bool = true) throws -> ChildProcess {
        let agent = try ChildProcess(
            name: "\(id)-\(agents.count)", executable: Binaries.agent,
            arguments: ["--server", "https://\(serverHost):\(httpsPort)", "--cluster", cluster, "--agent-id", id,
                        "--token", token ?? self.token, "--ca-checksum", checksum ?? caChecksum, "--role", role,
                        "--log-level", "debug"] + allow.flatMap { ["--allow", $0] } + extra,
            environment: environment, logDirectory: directory)
        agents.append(agent)
        if waitConnected { try waitAgentConnected(id, cluster: cluster) }
        return agent
    }

    func waitAgentConnected(_ id: String, cluster: String = "local", timeout: Double = 30) throws {
        try hub.waitForLog("agent \"\(id)\" of cluster \"\(cluster)\" connected", timeout: timeout)
    }

    var caPEM: String { (try? String(contentsOfFile: dataDirectory + "/tls/ca.pem", encoding: .utf8)) ?? "" }

    /// One HTTPS request to the hub's API with the admin token (or `bearer`).
    func api(_ path: String, bearer: String? = nil) throws -> HubAPIClient.Response {
        try HubAPIClient.get(host: listenHost, port: httpsPort, path: path, bearer: bearer ?? adminToken, caPEM: caPEM,
                             timeoutMilliseconds: 20_000)
    }

    func shutdown() {
        for a in agents { a.stop(SIGKILL, timeout: 2) }
        hub?.stop(SIGKILL, timeout: 2)
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The logs, for failure messages.
    var logs: String {
        ([hub] + agents).compactMap { $0 }.map { "== \($0.name)\n\($0.log.suffix(2500))" }.joined(separator: "\n")
    }
}

import LariatRuntime

/// This machine's host name, if it resolves to a loopback address: agents treat loopback
/// literals as never proxied (as Go's proxy rules do), so proxy tests dial the hub by name.
func loopbackHostName() -> String? {
    var buf = [CChar](repeating: 0, count: 256)
    guard gethostname(&buf, buf.count) == 0 else { return nil }
    let name = buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    var hints = addrinfo()
    hints.ai_family = AF_INET
    var res: UnsafeMutablePointer<addrinfo>?
    guard getaddrinfo(name, nil, &hints, &res) == 0, let first = res else { return nil }
    defer { freeaddrinfo(res) }
    let addr = first.pointee.ai_addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr }
    return UInt32(bigEndian: addr) >> 24 == 127 ? name : nil
}
