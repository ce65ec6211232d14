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

    /// One echo round trip through the forward; nil on any failure.
    static func echo(port: Int, _ bytes: [UInt8], timeout: Double = 10) -> [UInt8]? {
        guard let s = try? Socket.connect(port: port, receiveTimeout: timeout), (try? s.send(bytes)) != nil else { return nil }
        s.shutdownWrite()
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        defer { buf.deallocate() }
        var got: [UInt8] = []
        while true {
            switch s.receive(into: buf) {
            case .data(let n): got.append(contentsOf: buf[0..<n])
            case .eof: return got
            case .error: return nil
            }
        }
    }

    /// SIGSTOP of the only agent: the hub's OPEN goes unanswered, its PING too, and the new
    /// connection is reset within the liveness deadline (5 s), not after the 120 s idle timeout.
    @Test func stoppedAgentFailsNewConnectionsWithinSeconds() throws {
        let target = try TargetServer(mode: .echo)
        defer { target.stop() }
        let rig = try TunnelRig(forwards: ["local/127.0.0.1:\(target.port)"])
        defer { rig.shutdown() }
        let agent = try rig.startAgent(id: "sleeper")
        #expect(Self.echo(port: rig.forwardPorts[0], [1, 2, 3]) == [1, 2, 3], "\(rig.logs)")

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
            restored = Self.echo(port: rig.forwardPorts[0], [7, 8], timeout: 5) == [7, 8]
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
        #expect(Self.echo(port: rig.forwardPorts[0], [10]) == [10], "\(rig.logs)")
    }
}

/// A hand-rolled agent over blocking OpenSSL: TLS (the CA is not checked: loopback test),
/// WebSocket upgrade, HELLO with a real token, then whatever the test sends. It never reads
/// after the upgrade response.
final class FloodingAgent {
    let fd: Int32
    let context: OpaquePointer
    let ssl: OpaquePointer
    var encoder = WebSocketEncoder(role: .client)

    init(port: Int, token: String, agentID: String) throws {
        signal(SIGPIPE, SIG_IGN) // SSL_write on a socket the hub reset must fail, not kill the test
        let s = try Socket.connect(port: port, receiveTimeout: 10)
        fd = dup(s.fd)
        var tv = timeval(tv_sec: 2, tv_usec: 0) // a send that blocks this long means the hub stopped reading
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        context = SSL_CTX_new(TLS_client_method())!
        SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nil)
        ssl = SSL_new(context)!
        SSL_set_fd(ssl, fd)
        guard SSL_connect(ssl) == 1 else { throw TestFailure("flooder: TLS handshake failed") }
        let request = "GET /v1/connect HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        guard write(Array(request.utf8)) else { throw TestFailure("flooder: cannot send the upgrade") }
        // Read the response head byte by byte, so no tunnel byte is consumed.
        var head: [UInt8] = []
        var byte: UInt8 = 0
        while !head.ends(with: [13, 10, 13, 10]) {
            guard SSL_read(ssl, &byte, 1) == 1 else { throw TestFailure("flooder: no upgrade response") }
            head.append(byte)
        }
        guard String(decoding: head, as: UTF8.self).hasPrefix("HTTP/1.1 101") else {
            throw TestFailure("flooder: upgrade refused: \(String(decoding: head, as: UTF8.self))")
        }
        var hello = Hello()
        hello.agentID = agentID
        hello.clusterID = "local"
        hello.token = token
        hello.software = "flooding-test-agent"
        guard send(message: Frame.hello(hello).encode()) else { throw TestFailure("flooder: cannot send HELLO") }
    }

    private func write(_ bytes: [UInt8]) -> Bool {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { SSL_write(ssl, $0.baseAddress, Int32($0.count)) }
            if n <= 0 { return false }
            off += Int(n)
        }
        return true
    }

    /// One binary WebSocket message; false once the hub stopped taking bytes or closed.
    func send(message payload: [UInt8]) -> Bool {
        var wire: [UInt8] = []
        encoder.appendFrame(opcode: .binary, payload: payload, to: &wire)
        return write(wire)
    }

    /// Whether the hub closed the TCP connection within `timeout`: raw reads (below TLS,
    /// discarding) reach EOF or a reset.
    func waitClosed(timeout: Double) -> Bool {
        var tv = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let deadline = Date().addingTimeInterval(timeout)
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        while Date() < deadline {
            let n = recv(fd, &buf, buf.count, 0)
            if n == 0 { return true }
            if n < 0, errno != EAGAIN, errno != EINTR { return true }
        }
        return false
    }

    deinit {
        SSL_free(ssl)
        SSL_CTX_free(context)
        close(fd)
    }
}

private extension Array where Element == UInt8 {
    func ends(with suffix: [UInt8]) -> Bool { count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix }
}
