import Foundation
import LariatHub
import LariatRuntime
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Real `lariat-hub` and `lariat-agent` processes on loopback, TLS on, carrying TCP through a
/// hub forward to a target behind the agent. Serialized: each test starts its own processes,
/// and this 2-core machine should not run several 256 MiB transfers at once.
@Suite(.serialized) struct TunnelEndToEndTests {

    /// Client sends 256 MiB of random data while the target sends 256 MiB of its own: both
    /// arrive byte-exact (SHA-256 over each direction).
    @Test func bulk256MiBBothDirectionsByteExact() throws {
        let size = 256 << 20
        let target = try TargetServer(mode: .duplex(size))
        defer { target.stop() }
        let rig = try TunnelRig(forwards: ["local/127.0.0.1:\(target.port)"])
        defer { rig.shutdown() }
        try rig.startAgent()

        let s = try Socket.connect(port: rig.forwardPorts[0], receiveTimeout: 60)
        let fd = s.fd
        let sent = StreamHash()
        let sender = Worker {
            let out = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
            defer { out.deallocate() }
            let w = Socket(fd: dup(fd))
            for _ in 0..<(size >> 20) {
                fillRandom(out)
                sent.update(UnsafeRawBufferPointer(out))
                try w.send(UnsafeRawBufferPointer(out))
            }
            w.shutdownWrite()
        }
        let received = StreamHash()
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 * 1024, alignment: 16)
        defer { buf.deallocate() }
        var end = Socket.ReadResult.eof
        while true {
            let r = s.receive(into: buf)
            guard case .data(let n) = r else { end = r; break }
            received.update(UnsafeRawBufferPointer(rebasing: buf[0..<n]))
        }
        try sender.join(timeout: 300)
        #expect(end == .eof, "stream ended with \(end)\n\(rig.logs)")
        // Wait for the target to record its side.
        let deadline = Date().addingTimeInterval(30)
        while target.records.withLock({ $0.isEmpty }) && Date() < deadline { usleep(50_000) }
        let rec = try #require(target.records.withLock { $0.first }, "target recorded nothing\n\(rig.logs)")
        #expect(rec.receivedCount == size)
        #expect(rec.receivedHash == sent.finish(), "upstream bytes differ")
        #expect(received.count == size)
        #expect(received.finish() == rec.sentHash, "downstream bytes differ")
    }

    /// 200 streams at once through one tunnel, each echoing 64 KiB.
    @Test func twoHundredConcurrentStreams() throws {
        let target = try TargetServer(mode: .echo)
        defer { target.stop() }
        let rig = try TunnelRig(forwards: ["local/127.0.0.1:\(target.port)"])
        defer { rig.shutdown() }
        try rig.startAgent()
        let port = rig.forwardPorts[0]
        let failures = Mutex<[String]>([])
        let workers = (0..<200).map { i in
            Worker {
                do {
                    let s = try Socket.connect(port: port, receiveTimeout: 60)
                    var payload = [UInt8](repeating: 0, count: 64 * 1024)
                    payload.withUnsafeMutableBytes { fillRandom($0) }
                    try s.send(payload)
                    s.shutdownWrite()
                    var got: [UInt8] = []
                    let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
                    defer { buf.deallocate() }
                    while case .data(let n) = s.receive(into: buf) { got.append(contentsOf: buf[0..<n]) }
                    if got != payload { failures.withLock { $0.append("stream \(i): got \(got.count) bytes, mismatch") } }
                } catch {
                    failures.withLock { $0.append("stream \(i): \(error)") }
                }
            }
        }
        for w in workers { try w.join(timeout: 120) }
        let f = failures.withLock { $0 }
        #expect(f.isEmpty, "\(f.prefix(5))\n\(rig.logs)")
        #expect(target.accepted.load(ordering: .relaxed) == 200)
    }

    /// A client that shuts down its write side still receives the whole reply.
    @Test func halfCloseDeliversTheWholeReply() throws {
        let target = try TargetServer(mode: .replyAfterEOF)
        defer { target.stop() }
        let rig = try TunnelRig(forwards: ["local/127.0.0.1:\(target.port)"])
        defer { rig.shutdown() }
        try rig.startAgent()
        let s = try Socket.connect(port: rig.forwardPorts[0])
        var payload = [UInt8](repeating: 0, count: 3 << 20)
        payload.withUnsafeMutableBytes { fillRandom($0) }
        try s.send(payload)
        s.shutdownWrite()
        var reply: [UInt8] = []
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        defer { buf.deallocate() }
        while case .data(let n) = s.receive(into: buf) { reply.append(contentsOf: buf[0..<n]) }
        let h = StreamHash()
        payload.withUnsafeBytes { h.update($0) }
        #expect(String(decoding: reply, as: UTF8.self) == "\(payload.count) \(h.finish().hex)\n", "\(rig.logs)")
    }

    /// A refused target: the client's connection is reset at once and the hub says why; the
    /// tunnel stays up and carries the next stream.
    @Test func refusedTargetResetsClientAndTunnelStaysUp() throws {
        let target = try TargetServer(mode: .echo)
        defer { target.stop() }
        let closedPort = try TargetServer(mode: .echo)
        let deadPort = closedPort.port
        closedPort.stop()
        let rig = try TunnelRig(forwards: ["local/127.0.0.1:\(deadPort)", "local/127.0.0.1:\(target.port)"])
        defer { rig.shutdown() }
        try rig.startAgent()

        let s = try Socket.connect(port: rig.forwardPorts[0], receiveTimeout: 10)
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        defer { buf.deallocate() }
        let started = Date()
        let r = s.receive(into: buf)
        #expect(r == .error(ECONNRESET), "expected a reset, got \(r)")
        #expect(Date().timeIntervalSince(started) < 5)
        try rig.hub.waitForLog("TARGET_UNREACHABLE: \"dial tcp 127.0.0.1:\(deadPort): ECONNREFUSED", timeout: 10)

        let ok = try Socket.connect(port: rig.forwardPorts[1])
        try ok.send([1, 2, 3])
        ok.shutdownWrite()
        var got: [UInt8] = []
        while case .data(let n) = ok.receive(into: buf) { got.append(contentsOf: buf[0..<n]) }
        #expect(got == [1, 2, 3], "\(rig.logs)")
    }

    /// Killing the agent mid-transfer ends the client's connection promptly with an error,
    /// and a new agent restores service.
    @Test func killedAgentResetsClientsAndRestartedAgentRestoresService() throws {
        let source = try TargetServer(mode: .source)
        defer { source.stop() }
        let echo = try TargetServer(mode: .echo)
        defer { echo.stop() }
        let rig = try TunnelRig(forwards: ["local/127.0.0.1:\(source.port)", "local/127.0.0.1:\(echo.port)"])
        defer { rig.shutdown() }
        let agent = try rig.startAgent(id: "doomed")

        let s = try Socket.connect(port: rig.forwardPorts[0], receiveTimeout: 10)
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
        defer { buf.deallocate() }
        var total = 0
        while total < 8 << 20, case .data(let n) = s.receive(into: buf) { total += n }
        #expect(total >= 8 << 20)
        agent.stop(SIGKILL)
        let killedAt = Date()
        var end = Socket.ReadResult.eof
        while true {
            let r = s.receive(into: buf)
            if case .data = r { continue }
            end = r
            break
        }
        #expect(end == .error(ECONNRESET), "a truncated stream must end with an error, got \(end)")
        #expect(Date().timeIntervalSince(killedAt) < 5, "client noticed after \(Date().timeIntervalSince(killedAt)) s")

        try rig.startAgent(id: "replacement")
        let ok = try Socket.connect(port: rig.forwardPorts[1])
        try ok.send(Array("hello".utf8))
        ok.shutdownWrite()
        var got: [UInt8] = []
        while case .data(let n) = ok.receive(into: buf) { got.append(contentsOf: buf[0..<n]) }
        #expect(String(decoding: got, as: UTF8.self) == "hello", "\(rig.logs)")
    }

    /// A hub restarted on the same port (and data folder) gets its agents back.
    @Test func restartedHubGetsItsAgentsBack() throws {
        let echo = try TargetServer(mode: .echo)
        defer { echo.stop() }
        let rig = try TunnelRig(forwards: ["local/127.0.0.1:\(echo.port)"])
        defer { rig.shutdown() }
        let agent = try rig.startAgent(id: "faithful")
        #expect(rig.hub.stop(SIGTERM) == 0, "hub should exit cleanly on SIGTERM\n\(rig.hub.log.suffix(2000))")
        try agent.waitForLog("reconnecting", timeout: 10)
        try rig.startHub(generation: 1)
        try rig.waitAgentConnected("faithful", timeout: 40)
        let s = try Socket.connect(port: rig.forwardPorts[0])
        try s.send(Array("again".utf8))
        s.shutdownWrite()
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        defer { buf.deallocate() }
        var got: [UInt8] = []
        while case .data(let n) = s.receive(into: buf) { got.append(contentsOf: buf[0..<n]) }
        #expect(String(decoding: got, as: UTF8.self) == "again", "\(rig.logs)")
    }

    /// An agent behind an HTTP CONNECT proxy (with basic auth) connects and carries streams.
    @Test func agentConnectsThroughHTTPConnectProxy() throws {
        let echo = try TargetServer(mode: .echo)
        defer { echo.stop() }
        let proxy = try ConnectProxy(user: "alice", password: "s3cret")
        defer { proxy.stop() }
        let rig = try TunnelRig(forwards: ["local/127.0.0.1:\(echo.port)"])
        defer { rig.shutdown() }
        let host = try #require(loopbackHostName(), "the host name must resolve to loopback for this test")
        try rig.startAgent(id: "proxied", serverHost: host, environment: [
            "HTTPS_PROXY": "http://alice:s3cret@127.0.0.1:\(proxy.port)"])
        #expect(proxy.tunnels.load(ordering: .relaxed) >= 1, "the agent did not go through the proxy")
        let s = try Socket.connect(port: rig.forwardPorts[0])
        try s.send(Array("via proxy".utf8))
        s.shutdownWrite()
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        defer { buf.deallocate() }
        var got: [UInt8] = []
        while case .data(let n) = s.receive(into: buf) { got.append(contentsOf: buf[0..<n]) }
        #expect(String(decoding: got, as: UTF8.self) == "via proxy", "\(rig.logs)")
    }

    /// A proxy that wants credentials the agent lacks: a clear error naming the status.
    @Test func proxyAuthenticationFailureIsReported() throws {
        let proxy = try ConnectProxy(user: "alice", password: "s3cret")
        defer { proxy.stop() }
        let rig = try TunnelRig(forwards: [])
        defer { rig.shutdown() }
        let host = try #require(loopbackHostName(), "the host name must resolve to loopback for this test")
        let agent = try rig.startAgent(id: "noauth", serverHost: host, environment: [
            "HTTPS_PROXY": "http://127.0.0.1:\(proxy.port)"], waitConnected: false)
        try agent.waitForLog("407", timeout: 15)
    }

    /// A wrong CA checksum: the agent refuses to connect and says why; the hub logs the pin it saw.
    @Test func wrongCAChecksumIsRefusedOnBothSides() throws {
        let rig = try TunnelRig(forwards: [])
        defer { rig.shutdown() }
        let wrong = String(repeating: "ab", count: 32)
        let agent = try rig.startAgent(id: "pinned-wrong", checksum: wrong, waitConnected: false)
        try agent.waitForLog("CA checksum mismatch", timeout: 15)
        try rig.hub.waitForLog("pins CA checksum \"\(wrong)\"", timeout: 5)
        #expect(!rig.hub.log.contains("agent \"pinned-wrong\" of cluster \"local\" connected"))
    }

    /// A wrong token: refused by the hub with a reason the agent logs.
    @Test func wrongTokenIsRefusedOnBothSides() throws {
        let rig = try TunnelRig(forwards: [])
        defer { rig.shutdown() }
        let agent = try rig.startAgent(id: "impostor", token: "not-the-token", waitConnected: false)
        try agent.waitForLog("hub refused this agent: AUTHENTICATION_FAILED", timeout: 15)
        try rig.hub.waitForLog("agent \"impostor\" of cluster \"local\": invalid registration token", timeout: 5)
    }

    /// `lariat-hub bench` measures a connected agent's tunnel through the hub's API, with no
    /// target server; an unknown cluster is a clear error.
    @Test func hubBenchMeasuresTheTunnelWithoutATargetServer() throws {
        let rig = try TunnelRig(forwards: [])
        defer { rig.shutdown() }
        try rig.startAgent(id: "probed")
        let bench = try ChildProcess(name: "bench", executable: Binaries.hub, arguments: [
            "bench", "--data", rig.dataDirectory, "--hub", "127.0.0.1:\(rig.httpsPort)", "--cluster", "local",
            "--mib", "16", "--json"], environment: ["LARIAT_ADMIN_TOKEN": rig.adminToken], logDirectory: rig.directory)
        bench.process.waitUntilExit()
        #expect(bench.process.terminationStatus == 0, "\(bench.log)\n\(rig.logs)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(bench.log.utf8)) as? [String: Any], "\(bench.log)")
        #expect(report["agent"] as? String == "probed")
        #expect((report["upload_mib_per_s"] as? Double ?? 0) > 0)
        #expect((report["download_mib_per_s"] as? Double ?? 0) > 0)
        #expect((report["rtt_us"] as? [Double])?.count == 10)

        let missing = try ChildProcess(name: "bench-missing", executable: Binaries.hub, arguments: [
            "bench", "--data", rig.dataDirectory, "--hub", "127.0.0.1:\(rig.httpsPort)", "--cluster", "elsewhere"],
            environment: ["LARIAT_ADMIN_TOKEN": rig.adminToken], logDirectory: rig.directory)
        missing.process.waitUntilExit()
        #expect(missing.process.terminationStatus != 0)
        #expect(missing.log.contains("no agent of cluster \"elsewhere\" is connected"))
    }

    /// SIGTERM drains: the hub stops accepting, tells its agents GOAWAY, lets the open stream
    /// finish byte-exact, then exits 0.
    @Test func sigtermDrainsOpenStreamsThenExits() throws {
        let echo = try TargetServer(mode: .echo)
        defer { echo.stop() }
        let rig = try TunnelRig(forwards: ["local/127.0.0.1:\(echo.port)"])
        defer { rig.shutdown() }
        let agent = try rig.startAgent(id: "drained")
        let s = try Socket.connect(port: rig.forwardPorts[0], receiveTimeout: 20)
        let sent = StreamHash(), received = StreamHash()
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
        defer { buf.deallocate() }
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        chunk.withUnsafeMutableBytes { fillRandom($0) }
        chunk.withUnsafeBytes { sent.update($0) }
        try s.send(chunk)
        // Only a stream the hub has already carried counts as open: wait for its first echo
        // (a connection still in the listen backlog is refused by a draining hub, by design).
        guard case .data(let n) = s.receive(into: buf) else {
            Issue.record("no echo before the drain\n\(rig.logs)")
            return
        }
        received.update(UnsafeRawBufferPointer(rebasing: buf[0..<n]))
        rig.hub.signal(SIGTERM)
        try rig.hub.waitForLog("draining", timeout: 5)
        try agent.waitForLog("GOAWAY", timeout: 5)
        chunk.withUnsafeMutableBytes { fillRandom($0) }
        chunk.withUnsafeBytes { sent.update($0) }
        try s.send(chunk)
        s.shutdownWrite()
        var end = Socket.ReadResult.eof
        while true {
            let r = s.receive(into: buf)
            guard case .data(let n) = r else { end = r; break }
            received.update(UnsafeRawBufferPointer(rebasing: buf[0..<n]))
        }
        // Counts and digests, never the 2 MiB arrays: a failing #expect would diff them for minutes.
        #expect(end == .eof)
        #expect(received.count == sent.count, "the draining hub cut the stream: \(received.count) of \(sent.count) bytes\n\(rig.logs)")
        #expect(received.finish() == sent.finish())
        #expect(rig.hub.stop(SIGTERM, timeout: 10) == 0)
    }

    /// The admin API: no token or a wrong one is a 401, the admin token lists connected agents.
    @Test func agentListNeedsTheAdminToken() throws {
        let rig = try TunnelRig(forwards: [])
        defer { rig.shutdown() }
        try rig.startAgent(id: "listed", role: "node")
        let ca = try String(contentsOfFile: rig.dataDirectory + "/tls/ca.pem", encoding: .utf8)
        let admin = rig.adminToken
        // Only the token's digest is on disk.
        #expect(!FileManager.default.fileExists(atPath: rig.dataDirectory + "/admin.token"))
        #expect(try String(contentsOfFile: rig.dataDirectory + "/admin.token.sha256", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines) == Digest.sha256Hex(admin))
        let denied = try HubAPIClient.get(host: "127.0.0.1", port: rig.httpsPort, path: "/v1/agents",
                                          bearer: "wrong", caPEM: ca)
        #expect(denied.status == 401)
        let listed = try HubAPIClient.get(host: "127.0.0.1", port: rig.httpsPort, path: "/v1/agents",
                                          bearer: admin, caPEM: ca)
        #expect(listed.status == 200)
        #expect(listed.body.contains(#""agent":"listed""#) && listed.body.contains(#""role":"node""#), "\(listed.body)")
        let health = try HubAPIClient.get(host: "127.0.0.1", port: rig.httpsPort, path: "/healthz", bearer: "", caPEM: ca)
        #expect(health.status == 200 && health.body == "ok\n")
        // An oversized request head is refused with 431 and a reason, and the hub keeps serving.
        let huge = try HubAPIClient.get(host: "127.0.0.1", port: rig.httpsPort, path: "/v1/agents",
                                        bearer: String(repeating: "x", count: 40_000), caPEM: ca)
        #expect(huge.status == 431, "\(huge.status) \(huge.body)")
        #expect(huge.body.contains("bad request"))
        let after = try HubAPIClient.get(host: "127.0.0.1", port: rig.httpsPort, path: "/healthz", bearer: "", caPEM: ca)
        #expect(after.status == 200)
    }
}
