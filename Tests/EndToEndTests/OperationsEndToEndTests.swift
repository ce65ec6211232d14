import Foundation
import LariatHub
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Operations on real processes: `/metrics` (names, authentication, values that move when an
/// agent connects, carries bytes and leaves), `/healthz` with the version, `--version` on every
/// program, `--log-format json`, and what a bad data folder prints.
@Suite(.serialized) struct OperationsEndToEndTests {
    /// One HTTP/1.1 request over TLS; the whole answer (head and body) as text.
    private func request(_ port: Int, _ path: String, headers: [String: String] = [:]) throws -> String {
        let client = try TLSTestClient(port: port)
        var head = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        client.write(head + "\r\n")
        return String(decoding: client.readToEnd(), as: UTF8.self)
    }

    private func scrape(_ rig: TunnelRig) throws -> String {
        let answer = try request(rig.httpsPort, "/metrics", headers: ["Authorization": "Bearer \(rig.adminToken)"])
        guard answer.hasPrefix("HTTP/1.1 200") else { throw TestFailure("scrape: \(answer.prefix(500))") }
        return answer
    }

    /// The value of the first sample of `name` whose labels include every one of `labels`.
    private func sample(_ text: String, _ name: String, _ labels: [String] = []) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(name + "{") || line.hasPrefix(name + " ") {
            guard labels.allSatisfy({ line.contains($0) }), let value = line.split(separator: " ").last else { continue }
            return Double(value)
        }
        return nil
    }

    @Test func metricsNeedATokenAndMoveWithAgentsAndTraffic() throws {
        let rig = try TunnelRig(forwards: [])
        defer { rig.shutdown() }

        #expect(try request(rig.httpsPort, "/metrics").hasPrefix("HTTP/1.1 401"))
        #expect(try request(rig.httpsPort, "/metrics", headers: ["Authorization": "Bearer token-xxxxx:wrong"]).hasPrefix("HTTP/1.1 401"))

        let before = try scrape(rig)
        #expect(before.contains("text/plain; version=0.0.4"))
        #expect(sample(before, "lariat_hub_info", [#"version=""#]) == 1)
        #expect(sample(before, "lariat_hub_agents_connected", [#"cluster="local""#]) ?? 0 == 0)
        #expect(sample(before, "lariat_hub_authentication_failures_total", [#"reason="api_token""#]) ?? 0 >= 1)
        // The control plane read its store while starting, and the refused scrapes went through the router.
        #expect(before.contains("lariat_store_operation_duration_seconds_bucket"))
        #expect(sample(before, "lariat_api_requests_total", [#"route="/metrics""#, #"status="401""#]) ?? 0 >= 2)

        let agent = try rig.startAgent()
        let connected = try scrape(rig)
        #expect(sample(connected, "lariat_hub_agents_connected", [#"cluster="local""#, #"role="cluster""#]) == 1)

        // The tunnel probe moves 1 MiB each way through the agent's session.
        let bench = try rig.api("/v1/clusters/local/bench?bytes=1048576&format=json")
        #expect(bench.status == 200, "\(bench.body)")
        let after = try scrape(rig)
        let sent = sample(after, "lariat_hub_tunnel_bytes_total", [#"cluster="local""#, #"direction="to_agent""#]) ?? 0
        let received = sample(after, "lariat_hub_tunnel_bytes_total", [#"cluster="local""#, #"direction="from_agent""#]) ?? 0
        #expect(sent >= 1_048_576, "\(after)")
        #expect(received >= 1_048_576, "\(after)")
        #expect(sample(after, "lariat_hub_streams_open", [#"cluster="local""#]) != nil)
        #expect(sample(after, "lariat_api_request_duration_seconds_count", [#"route="/metrics""#]) ?? 0 >= 3)

        agent.stop(SIGKILL)
        let deadline = Date().addingTimeInterval(20)
        var gone = try scrape(rig)
        while sample(gone, "lariat_hub_agents_connected", [#"cluster="local""#]) != 0 && Date() < deadline {
            usleep(200_000)
            gone = try scrape(rig)
        }
        #expect(sample(gone, "lariat_hub_agents_connected", [#"cluster="local""#, #"role="cluster""#]) == 0)
        // Counters never go back when the session that carried the bytes ends.
        #expect(sample(gone, "lariat_hub_tunnel_bytes_total", [#"cluster="local""#, #"direction="to_agent""#]) ?? 0 >= sent)
    }

    /// A POST to the API; the answer's status and JSON object.
    private func post(_ rig: TunnelRig, _ path: String, _ body: [String: String], bearer: String?) throws -> (Int, [String: Any]) {
        let data = try JSONSerialization.data(withJSONObject: body)
        let r = try HubAPIClient.send(method: "POST", host: "127.0.0.1", port: rig.httpsPort, path: path, body: Array(data),
                                      bearer: bearer, caPEM: rig.caPEM, timeoutMilliseconds: 20_000)
        return (r.status, (try? JSONSerialization.jsonObject(with: Data(r.body.utf8))) as? [String: Any] ?? [:])
    }

    private func login(_ rig: TunnelRig, _ user: String, _ password: String) throws -> String {
        let (status, json) = try post(rig, "/v3-public/localProviders/local?action=login", ["username": user, "password": password], bearer: nil)
        guard status == 201, let token = json["token"] as? String else { throw TestFailure("login \(user): \(status) \(json)") }
        return token
    }

    @Test func metricsTakeAnAPITokenWhoseUserMayGetThem() throws {
        let rig = try TunnelRig(forwards: [], hubEnvironment: ["LARIAT_BOOTSTRAP_PASSWORD": "first-password-1"])
        defer { rig.shutdown() }
        func status(_ bearer: String) throws -> String {
            String(try request(rig.httpsPort, "/metrics", headers: ["Authorization": "Bearer \(bearer)"]).prefix(12))
        }
        let first = try login(rig, "admin", "first-password-1")
        // Until the bootstrap password is changed, that token may do nothing else.
        #expect(try status(first) == "HTTP/1.1 403")
        let (changed, _) = try post(rig, "/v3/users?action=changepassword",
                                    ["currentPassword": "first-password-1", "newPassword": "second-password-2"], bearer: first)
        #expect(changed == 200)
        let admin = try login(rig, "admin", "second-password-2")
        #expect(try status(admin) == "HTTP/1.1 200")

        let (created, _) = try post(rig, "/v3/users", ["username": "viewer", "password": "viewer-password-3"], bearer: admin)
        #expect(created == 201)
        var viewer: String?
        let deadline = Date().addingTimeInterval(10)
        while viewer == nil && Date() < deadline {
            viewer = try? login(rig, "viewer", "viewer-password-3")
            if viewer == nil { usleep(100_000) }
        }
        // An ordinary user has no rule for the non-resource URL /metrics.
        #expect(try status(try #require(viewer)) == "HTTP/1.1 403")
        let text = try scrape(rig)
        #expect(sample(text, "lariat_api_requests_total", [#"route="/metrics""#, #"status="403""#]) ?? 0 >= 2)
    }

    /// Three user connections through a forward hold three streams open; the gauge follows them
    /// up and back down, and the echoed bytes show in both byte counters.
    @Test func streamsOpenFollowForwardedConnections() throws {
        let target = try TargetServer(mode: .echo)
        defer { target.stop() }
        let rig = try TunnelRig(forwards: ["local/127.0.0.1:\(target.port)"])
        defer { rig.shutdown() }
        try rig.startAgent()
        func streams() throws -> Double? { sample(try scrape(rig), "lariat_hub_streams_open", [#"cluster="local""#]) }
        func waitStreams(_ n: Double) throws -> Double? {
            let deadline = Date().addingTimeInterval(20)
            var value = try streams()
            while value != n && Date() < deadline { usleep(100_000); value = try streams() }
            return value
        }
        var held: [Int32] = []  // duplicates of the user sockets, keeping them open
        for _ in 0..<3 {
            let s = try Socket.connect(port: rig.forwardPorts[0], receiveTimeout: 20)
            let payload = [UInt8](repeating: 7, count: 10_000)
            try s.send(payload)
            var got = 0
            let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
            defer { buf.deallocate() }
            while got < payload.count, case .data(let n) = s.receive(into: buf) { got += n }
            #expect(got == payload.count)
            held.append(dup(s.fd))
        }
        #expect(try waitStreams(3) == 3)
        let text = try scrape(rig)
        #expect(sample(text, "lariat_hub_tunnel_bytes_total", [#"cluster="local""#, #"direction="to_agent""#]) ?? 0 >= 30_000)
        #expect(sample(text, "lariat_hub_tunnel_bytes_total", [#"cluster="local""#, #"direction="from_agent""#]) ?? 0 >= 30_000)
        for fd in held { close(fd) }
        #expect(try waitStreams(0) == 0)
    }

    @Test func failedHandshakesAreCountedByReason() throws {
        let rig = try TunnelRig(forwards: [])
        defer { rig.shutdown() }
        // Plain HTTP on the TLS port, an agent with a wrong token, a bad WebSocket upgrade.
        do {
            let s = try Socket.connect(port: rig.httpsPort)
            try s.send(Array("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
            var buf = [UInt8](repeating: 0, count: 256)
            _ = buf.withUnsafeMutableBytes { s.receive(into: $0) }
        }
        try rig.startAgent(id: "intruder", token: "crt-wrong.secret", waitConnected: false)
        let upgrade = try request(rig.httpsPort, "/v1/connect", headers: ["Upgrade": "websocket", "Connection": "Upgrade"])
        #expect(upgrade.hasPrefix("HTTP/1.1 400"))
        let deadline = Date().addingTimeInterval(20)
        var text = try scrape(rig)
        func count(_ name: String, _ reason: String) -> Double { sample(text, name, [#"reason="\#(reason)""#]) ?? 0 }
        while (count("lariat_hub_handshake_failures_total", "authentication") < 1
               || count("lariat_hub_handshake_failures_total", "tls") < 1) && Date() < deadline {
            usleep(200_000)
            text = try scrape(rig)
        }
        #expect(count("lariat_hub_handshake_failures_total", "tls") >= 1, "\(text)")
        #expect(count("lariat_hub_handshake_failures_total", "websocket") == 1)
        #expect(count("lariat_hub_handshake_failures_total", "authentication") >= 1)
        #expect(count("lariat_hub_authentication_failures_total", "agent") >= 1)
        #expect(count("lariat_hub_handshake_failures_total", "duplicate_agent") == 0)
    }

    @Test func metricsPublicNeedsNoBearer() throws {
        let rig = try TunnelRig(forwards: [], hubArguments: ["--metrics-public"])
        defer { rig.shutdown() }
        let answer = try request(rig.httpsPort, "/metrics")
        #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer.prefix(300))")
        #expect(sample(answer, "lariat_hub_info", [#"version=""#]) == 1)
    }

    @Test func healthzCarriesTheVersion() throws {
        let rig = try TunnelRig(forwards: [])
        defer { rig.shutdown() }
        let plain = try request(rig.httpsPort, "/healthz")
        #expect(plain.hasPrefix("HTTP/1.1 200"))
        #expect(plain.hasSuffix("\r\n\r\nok\n"))
        let version = try #require(plain.split(separator: "\r\n").first { $0.lowercased().hasPrefix("x-lariat-version:") })
        let number = version.split(separator: ":", maxSplits: 1)[1].trimmingCharacters(in: .whitespaces)
        #expect(!number.isEmpty)

        let json = try request(rig.httpsPort, "/healthz", headers: ["Accept": "application/json"])
        let body = try #require(json.components(separatedBy: "\r\n\r\n").last)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
        #expect(object["status"] as? String == "ok")
        #expect(object["version"] as? String == number)
        #expect(object["software"] as? String == "lariat-hub/\(number)")
    }

    private func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        try runProcess(executable, arguments, environment: environment)
    }

    @Test func everyProgramPrintsTheSameVersion() throws {
        let hub = try run(Binaries.hub, ["--version"])
        let agent = try run(Binaries.agent, ["--version"])
        let bench = try run(Binaries.directory + "/lariat-bench", ["--version"])
        #expect(hub.status == 0 && agent.status == 0 && bench.status == 0)
        let version = hub.output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(version.split(separator: ".").count == 3, "\(hub.output)")
        #expect(agent.output.trimmingCharacters(in: .whitespacesAndNewlines) == version)
        #expect(bench.output.trimmingCharacters(in: .whitespacesAndNewlines) == version)
    }

    @Test func jsonLogsFromHubAndAgent() throws {
        let rig = try TunnelRig(forwards: [], hubEnvironment: ["LARIAT_LOG_FORMAT": "json"])
        defer { rig.shutdown() }
        let agent = try rig.startAgent(extra: ["--log-format", "json"], waitConnected: false)
        // In JSON the message's quotes are escaped.
        try rig.hub.waitForLog(#"agent \"agent-1\" of cluster \"local\" connected"#)
        try agent.waitForLog("session established")
        for child in [rig.hub!, agent] {
            let lines = child.log.split(separator: "\n").filter { $0.hasPrefix("{") }
            #expect(!lines.isEmpty, "\(child.log.prefix(500))")
            for line in lines {
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                #expect(object?["level"] is String && object?["message"] is String, "\(line)")
            }
        }
        #expect(agent.log.contains(#""hubSoftware":"lariat-hub/"#))
    }

    @Test func aBadDataFolderIsExplainedInPlainWords() throws {
        let dir = NSTemporaryDirectory() + "lariat-datafolder-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/not-a-folder"
        FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        let underFile = try run(Binaries.hub, ["serve", "--listen", "127.0.0.1:0", "--data", file + "/data"])
        #expect(underFile.status != 0)
        #expect(underFile.output.contains("cannot create the data folder \(file)/data"), "\(underFile.output)")
        #expect(!underFile.output.contains("NSCocoaErrorDomain"))
        let isFile = try run(Binaries.hub, ["serve", "--listen", "127.0.0.1:0", "--data", file])
        #expect(isFile.status != 0)
        #expect(isFile.output.contains("is a file, not a folder"), "\(isFile.output)")
        #expect(!isFile.output.contains("NSCocoaErrorDomain"))
    }
}
