import Foundation
import LariatHub
import LariatRuntime
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The hub's HTTPS port against clients that never finish, never read, come in floods or guess
/// tokens (issue #7, findings 2, 4, 6 and 9), with real hub processes.
@Suite(.serialized) struct FrontDoorEndToEndTests {
    init() { FileLimit.raiseToHardLimit() }  // the test holds a thousand sockets

    /// 1,000 slowloris clients (TLS done, then a request head one byte at a time) and 200 that
    /// never finish the TLS handshake are all closed by their deadlines, while /healthz and a
    /// live stream stay fast.
    @Test func slowClientsAreClosedByTheirDeadlinesWhileTheHubStaysResponsive() throws {
        let target = try TargetServer(mode: .echo)
        defer { target.stop() }
        let rig = try TunnelRig(forwards: ["local/127.0.0.1:\(target.port)"],
                                hubArguments: ["--tls-handshake-timeout", "2", "--request-head-timeout", "2"])
        defer { rig.shutdown() }
        try rig.startAgent(extra: ["--allow", "127.0.0.1"])
        // A stream opened before the flood stays usable throughout.
        let live = try Socket.connect(port: rig.forwardPorts[0], receiveTimeout: 10)
        var liveByte: UInt8 = 0
        func liveRoundTrip() throws -> Bool {
            liveByte &+= 1
            try live.send([liveByte])
            var one = [UInt8](repeating: 0, count: 1)
            let r = one.withUnsafeMutableBytes { live.receive(into: $0) }
            return r == .data(1) && one[0] == liveByte
        }

        let silent = try heldConnections(200, port: rig.httpsPort)
        defer { silent.forEach { close($0) } }
        let silentOpened = Date()
        let head = Array("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".utf8) + Array(repeating: UInt8(ascii: "a"), count: 100)
        var slow: [(client: TLSTestClient, since: Date)] = []
        var worstHealth = 0.0
        var tick = 0
        while slow.count < 1000 {
            // Open in batches, trickling a byte to the open ones between batches.
            for _ in 0..<100 { slow.append((try TLSTestClient(port: rig.httpsPort, sendTimeout: 2), Date())) }
            for c in slow { c.client.write([head[tick % head.count]]) }
            tick += 1
            let t0 = Date()
            #expect(try rig.api("/healthz", bearer: "").status == 200)
            worstHealth = max(worstHealth, Date().timeIntervalSince(t0))
            #expect(try liveRoundTrip())
        }
        #expect(worstHealth < 1.0, "a health check took \(worstHealth) s during the flood")

        // Each was due 2 s after its handshake; allow slack for a loaded machine.
        var notClosed = 0
        for c in slow where !c.client.waitClosed(timeout: max(0.05, 6 - Date().timeIntervalSince(c.since))) { notClosed += 1 }
        #expect(notClosed == 0, "\(notClosed) of 1000 slowloris connections outlived the request-head timeout")
        let stillOpen = silent.filter { !socketClosed($0, within: max(0.05, 6 - Date().timeIntervalSince(silentOpened))) }.count
        #expect(stillOpen == 0, "\(stillOpen) of 200 silent connections were not closed by the TLS handshake timeout")
        // The live stream outlived them all, and the hub still answers.
        #expect(try liveRoundTrip())
        #expect(try rig.api("/healthz", bearer: "").status == 200)
    }

    @Test func connectionsBeyondThePerSourceCapAreRefusedAtOnce() throws {
        let rig = try TunnelRig(forwards: [], hubArguments: ["--max-connections-per-source", "50", "--tls-handshake-timeout", "60"])
        defer { rig.shutdown() }
        var held = try heldConnections(50, port: rig.httpsPort)
        defer { held.forEach { close($0) } }
        usleep(300_000)  // let the acceptor count them
        let extra = try Socket.connect(port: rig.httpsPort)
        #expect(socketClosed(extra.fd, within: 2), "the 51st connection from one address was not refused")
        #expect(!socketClosed(held[0], within: 0.2), "a connection within the cap was closed")
        for fd in held.suffix(10) { close(fd) }
        held.removeLast(10)
        usleep(300_000)
        #expect(try rig.api("/healthz", bearer: "").status == 200)
    }

    /// A client that pipelines requests and never reads its replies: the hub stops reading it
    /// once its replies back up, so hub memory stays bounded (before, it queued every reply).
    @Test func aPipeliningClientThatNeverReadsCannotGrowTheHub() throws {
        let rig = try TunnelRig(forwards: [])
        defer { rig.shutdown() }
        #expect(try rig.api("/healthz", bearer: "").status == 200)
        let before = residentKiB(rig.hub.pid)
        let client = try TLSTestClient(port: rig.httpsPort, sendTimeout: 2)
        let request = Array("GET /cacerts HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        let chunk = Array([[UInt8]](repeating: request, count: 64 * 1024 / request.count).joined())
        var written = 0
        // 64 MiB of requests would ask for ~3 GB of replies.
        while written < 64 << 20, client.write(chunk) { written += chunk.count }
        let after = residentKiB(rig.hub.pid)
        #expect(written < 64 << 20, "the hub kept reading requests from a client that reads no replies")
        #expect(after - before < 64 * 1024, "hub RSS grew from \(before) to \(after) KiB; \(written >> 10) KiB of requests sent")
        #expect(try rig.api("/healthz", bearer: "").status == 200)
    }

    @Test func failedAuthenticationIsThrottledPerSourceAndSummarised() throws {
        let rig = try TunnelRig(forwards: [], hubArguments: ["--auth-failure-burst", "5", "--auth-failure-refill", "0.2"])
        defer { rig.shutdown() }
        for _ in 0..<5 { #expect(try rig.api("/v1/agents", bearer: "wrong-token").status == 401) }
        let throttled = try rig.api("/v1/agents", bearer: "wrong-token")
        #expect(throttled.status == 429 && throttled.body.contains("retry in"), "\(throttled.status) \(throttled.body)")
        // The right token from a throttled address waits too: guessing cannot go on under cover.
        #expect(try rig.api("/v1/agents").status == 429)
        // An agent from that address is told to come back later, before its token is looked at.
        let agent = try rig.startAgent(waitConnected: false)
        try agent.waitForLog("429", timeout: 10)
        // One line for the first failure, not one per attempt.
        #expect(rig.hub.log.components(separatedBy: "authentication failed from").count - 1 == 1, "\(rig.hub.log)")
    }

    @Test func aDrainingHubAnswersHealthChecksWith503() throws {
        let target = try TargetServer(mode: .echo)
        defer { target.stop() }
        let rig = try TunnelRig(forwards: ["local/127.0.0.1:\(target.port)"])
        defer { rig.shutdown() }
        try rig.startAgent(extra: ["--allow", "127.0.0.1"])
        let open = try Socket.connect(port: rig.forwardPorts[0])  // keeps the drain going (3 s)
        try open.send([1])
        usleep(200_000)
        rig.hub.signal(SIGTERM)
        try rig.hub.waitForLog("draining", timeout: 5)
        let health = try rig.api("/healthz", bearer: "")
        #expect(health.status == 503 && health.body == "draining\n", "\(health.status) \(health.body)")
    }

    @Test func oneAnswerPerRequestAndIdleKeepAliveConnectionsClose() throws {
        let rig = try TunnelRig(forwards: [], hubArguments: ["--keep-alive-timeout", "1"])
        defer { rig.shutdown() }
        let upgrade = try TLSTestClient(port: rig.httpsPort)
        upgrade.write("GET /elsewhere HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        let answer = String(decoding: upgrade.readToEnd(), as: UTF8.self)
        #expect(answer.components(separatedBy: "HTTP/1.1 ").count - 1 == 1, "\(answer)")
        #expect(answer.hasPrefix("HTTP/1.1 404"))

        let idle = try TLSTestClient(port: rig.httpsPort)
        idle.write("GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(idle.waitClosed(timeout: 5), "an idle keep-alive connection outlived --keep-alive-timeout")
    }
}

/// `count` plain TCP connections to the hub that send nothing (descriptors; the caller closes them).
private func heldConnections(_ count: Int, port: Int) throws -> [Int32] {
    try (0..<count).map { _ in
        let s = try Socket.connect(port: port)
        return dup(s.fd)
    }
}
