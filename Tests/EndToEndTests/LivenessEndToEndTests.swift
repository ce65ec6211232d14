import COpenSSL
import Foundation
import LariatHTTP
import LariatProtocol
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue #7 with real processes: a stopped agent fails new connections within seconds, and a
/// hand-rolled agent that floods PINGs without reading loses only its own session.
@Suite(.serialized) struct LivenessEndToEndTests {

    /// SIGSTOP of the only agent: the hub's OPEN goes unanswered, its PING too, and the new
    /// connection is reset within the liveness deadline (5 s), not after the 120 s idle timeout.
    @Test func stoppedAgentFailsNewConnectionsWithinSeconds() throws {
        let target = try TargetServer(mode: .echo)
        defer { target.stop() }
        let rig = try TunnelRig(forwards: ["local/127.0.0.1:\(target.port)"])
        defer { rig.shutdown() }
        let agent = try rig.startAgent(id: "sleeper")
        #expect(echoRoundTrip(port: rig.forwardPorts[0], [1, 2, 3]) == [1, 2, 3], "\(rig.logs)")

        agent.signal(SIGSTOP)
        defer { agent.signal(SIGCONT) }
        let started = Date()
        let s = try Socket.connect(port: rig.forwardPorts[0], receiveTimeout: 40)
        try s.send([4, 5, 6])
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        defer { buf.deallocate() }
        let r = s.receive(into: buf)
        let elapsed = Date().timeIntervalSince(started)
        #expect(r == .error(ECONNRESET) || r == .eof, "expected the connection to fail, got \(r)")
        #expect(elapsed < 10, "the client waited \(elapsed) s\n\(rig.logs)")
        try rig.hub.waitForLog("TIMEOUT", timeout: 5)

        // Woken up, the agent finds its tunnel gone, reconnects, and service returns.
        agent.signal(SIGCONT)
        let deadline = Date().addingTimeInterval(30)
        var restored = false
        while !restored && Date() < deadline {
            restored = echoRoundTrip(port: rig.forwardPorts[0], [7, 8], timeout: 5) == [7, 8]
            if !restored { usleep(200_000) }
        }
        #expect(restored, "\(rig.logs)")
    }

    /// A client holding a real cluster token floods PINGs and never reads: the hub ends that
    /// session (GOAWAY MEMORY_LIMIT, socket closed), while a stream through a real agent keeps
    /// working throughout.
    @Test func pingFloodEndsOnlyTheFloodersSession() throws {
        let target = try TargetServer(mode: .echo)
        defer { target.stop() }
        let rig = try TunnelRig(forwards: ["local/127.0.0.1:\(target.port)"])
        defer { rig.shutdown() }
        try rig.startAgent(id: "honest")

        // A stream through the honest agent, opened before the flooder connects (so routing
        // cannot pick the flooder), kept open across the flood.
        let live = try Socket.connect(port: rig.forwardPorts[0], receiveTimeout: 10)
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
        defer { buf.deallocate() }
        func roundTrip(_ bytes: [UInt8]) -> Bool {
            guard (try? live.send(bytes)) != nil else { return false }
            var got: [UInt8] = []
            while got.count < bytes.count, case .data(let n) = live.receive(into: buf) { got.append(contentsOf: buf[0..<n]) }
            return got == bytes
        }
        #expect(roundTrip([1, 2, 3]))

        let flooder = try FloodingAgent(port: rig.httpsPort, token: rig.token, agentID: "flooder")
        try rig.waitAgentConnected("flooder")
        var pings: [UInt8] = []
        for i in 0..<4096 { pings += Frame.ping(opaque: UInt64(i)).encode() }
        var sent = 0
        let floodStarted = Date()
        // Until the hub stops taking our bytes (it closed, or stopped reading) or 256 MiB.
        while sent < 256 << 20, Date().timeIntervalSince(floodStarted) < 60, flooder.send(message: pings) {
            sent += pings.count
        }
        try rig.hub.waitForLog("MEMORY_LIMIT", timeout: 20)
        #expect(roundTrip([4, 5, 6]), "the honest agent's stream broke\n\(rig.logs)")
        // The hub closes the flooder's socket within its linger time (5 s) even though the
        // flooder still reads nothing.
        #expect(flooder.waitClosed(timeout: 15), "the hub kept the flooder's connection\n\(rig.logs)")
        #expect(roundTrip([7, 8, 9]))
        #expect(echoRoundTrip(port: rig.forwardPorts[0], [10]) == [10], "\(rig.logs)")
    }
}

/// A hand-rolled agent over the blocking TLS test client: WebSocket upgrade, HELLO with a real
/// token, then whatever the test sends. It never reads after the upgrade response.
final class FloodingAgent {
    let connection: TLSTestClient
    var encoder = WebSocketEncoder(role: .client)

    init(port: Int, token: String, agentID: String) throws {
        connection = try TLSTestClient(port: port, sendTimeout: 2)  // a send blocked this long: the hub stopped reading
        let request = "GET /v1/connect HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        guard connection.write(request) else { throw TestFailure("flooder: cannot send the upgrade") }
        let head = String(decoding: connection.readHead(), as: UTF8.self)
        guard head.hasPrefix("HTTP/1.1 101") else { throw TestFailure("flooder: upgrade refused: \(head)") }
        var hello = Hello()
        hello.agentID = agentID
        hello.clusterID = "local"
        hello.token = token
        hello.software = "flooding-test-agent"
        guard send(message: Frame.hello(hello).encode()) else { throw TestFailure("flooder: cannot send HELLO") }
    }

    /// One binary WebSocket message; false once the hub stopped taking bytes or closed.
    func send(message payload: [UInt8]) -> Bool {
        var wire: [UInt8] = []
        encoder.appendFrame(opcode: .binary, payload: payload, to: &wire)
        return connection.write(wire)
    }

    func waitClosed(timeout: Double) -> Bool { connection.waitClosed(timeout: timeout) }
}
