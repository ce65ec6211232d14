import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The agent's target policy with real `lariat-hub` and `lariat-agent` processes (issue #7
/// item 7): the agent's own loopback is refused unless explicitly allowed, the configured
/// Kubernetes API still works on loopback, and targets with control characters are refused
/// even under a broad allow.
///
/// A NUL itself cannot reach a real agent through a real hub: forwards are configured by argv,
/// which cannot hold one. The NUL target is covered in `TargetBypassTests` (the agent's own
/// checks, in process); here the control characters argv can carry stand in for it.
@Suite(.serialized) struct TargetPolicyEndToEndTests {

    /// What a client of a forward saw: the echo, or how the connection ended without one.
    enum Outcome: Equatable {
        case echoed([UInt8])
        case closed(Socket.ReadResult)
    }

    func roundTrip(_ port: Int, _ payload: [UInt8] = Array("ping".utf8)) throws -> Outcome {
        let s = try Socket.connect(port: port, receiveTimeout: 15)
        // A refused stream may be reset before the payload is even sent.
        guard (try? s.send(payload)) != nil else { return .closed(.error(ECONNRESET)) }
        s.shutdownWrite()
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        defer { buf.deallocate() }
        var got: [UInt8] = []
        while true {
            let r = s.receive(into: buf)
            guard case .data(let n) = r else { return got.isEmpty ? .closed(r) : .echoed(got) }
            got.append(contentsOf: buf[0..<n])
        }
    }

    @Test func loopbackTargetIsRefusedByDefault() throws {
        let echo = try TargetServer(mode: .echo)
        defer { echo.stop() }
        let rig = try TunnelRig(forwards: ["local/127.0.0.1:\(echo.port)", "local/tcp:0x7f.1:\(echo.port)",
                                           "local/k8s-api"])
        defer { rig.shutdown() }
        // The agent's default policy, and a Kubernetes API server that happens to be loopback.
        let agent = try rig.startAgent(id: "default-policy", allow: [], extra: ["--k8s-api", "127.0.0.1:\(echo.port)"])

        for port in rig.forwardPorts.prefix(2) {
            let outcome = try roundTrip(port)
            #expect(outcome == .closed(.error(ECONNRESET)) || outcome == .closed(.eof), "\(outcome)\n\(rig.logs)")
        }
        try rig.hub.waitForLog("TARGET_FORBIDDEN", timeout: 10)
        try agent.waitForLog("denied by the default rule 127.0.0.0/8 (the agent's own host: loopback/unspecified; to allow it, add --allow 127.0.0.1:\(echo.port))", timeout: 10)
        #expect(agent.log.contains("dial tcp 127.0.0.1:\(echo.port): forbidden by agent policy"), "the normalised address is named\n\(agent.log.suffix(3000))")
        #expect(echo.accepted.load(ordering: .relaxed) == 0, "the refused target was dialled")

        // The configured API server is not user-chosen: it stays reachable on loopback.
        #expect(try roundTrip(rig.forwardPorts[2]) == .echoed(Array("ping".utf8)), "\(rig.logs)")
        #expect(echo.accepted.load(ordering: .relaxed) == 1)
    }

    @Test func loopbackTargetWorksWithAnExplicitAllow() throws {
        let echo = try TargetServer(mode: .echo)
        defer { echo.stop() }
        let other = try TargetServer(mode: .echo)
        defer { other.stop() }
        let rig = try TunnelRig(forwards: ["local/127.0.0.1:\(echo.port)", "local/127.0.0.1:\(other.port)"])
        defer { rig.shutdown() }
        // One local port, everything else as by default.
        let agent = try rig.startAgent(id: "one-local-port", allow: ["*,127.0.0.1:\(echo.port)"])
        #expect(try roundTrip(rig.forwardPorts[0]) == .echoed(Array("ping".utf8)), "\(rig.logs)")
        let refused = try roundTrip(rig.forwardPorts[1])
        #expect(refused == .closed(.error(ECONNRESET)) || refused == .closed(.eof), "\(refused)")
        try agent.waitForLog("add --allow 127.0.0.1:\(other.port)", timeout: 10)
        #expect(other.accepted.load(ordering: .relaxed) == 0)
    }

    @Test func controlCharacterTargetsAreRefusedEvenWithABroadAllow() throws {
        let echo = try TargetServer(mode: .echo)
        defer { echo.stop() }
        // localhost<c>.svc.cluster.local: what a resolver stopping at <c> would dial is loopback,
        // and the broad allow below would let loopback through, so only the syntax check stands.
        // No network namespace is needed: these names are refused before the resolver is asked
        // (the agent's log shows the refusal, never a lookup or a dial), and the only address
        // dialled here is the loopback echo server.
        let controls = ["\u{1}", "\t", "\n", "\u{1b}", "\u{7f}"]
        let targets = controls.map { "tcp:localhost\($0).svc.cluster.local:\(echo.port)" } + ["tcp:127.0.0.1\u{1}:\(echo.port)"]
        let rig = try TunnelRig(forwards: targets.map { "local/\($0)" } + ["local/127.0.0.1:\(echo.port)"])
        defer { rig.shutdown() }
        let agent = try rig.startAgent(id: "broad", allow: ["*,127.0.0.0/8,::1,.svc.cluster.local,.cluster.local"])

        for (i, target) in targets.enumerated() {
            let outcome = try roundTrip(rig.forwardPorts[i])
            #expect(outcome == .closed(.error(ECONNRESET)) || outcome == .closed(.eof), "\(String(reflecting: target)): \(outcome)")
        }
        #expect(echo.accepted.load(ordering: .relaxed) == 0, "a control-character target was dialled\n\(rig.logs)")
        // The allow really is broad: the plain loopback forward works.
        #expect(try roundTrip(rig.forwardPorts[targets.count]) == .echoed(Array("ping".utf8)), "\(rig.logs)")

        try agent.waitForLog("contains a control character: refused before any rule", timeout: 10)
        try rig.hub.waitForLog("TARGET_FORBIDDEN", timeout: 10)
        let log = agent.log
        for c in ["\\u{1}", "\\t", "\\n", "\\u{1b}", "\\u{7f}"] {
            #expect(log.contains("localhost\(c).svc.cluster.local"), "\(c) is not shown escaped\n\(log.suffix(3000))")
        }
        // Escaped, not raw: no control byte in the agent's log other than line ends.
        #expect(!log.unicodeScalars.contains { ($0.value < 0x20 && $0 != "\n") || $0.value == 0x7f })
        #expect(!log.contains("localhost\n.svc"))
    }
}
