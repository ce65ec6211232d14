import Foundation
import LariatRuntime
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue #11: a burst of connections to a forward is queued by the hub until the agent can
/// open them (at most 256 OPENs unanswered, PROTOCOL.md §5.3), not refused; past the forward
/// listener's pending bound the rest wait in the kernel's listen backlog. Real processes.
@Suite(.serialized) struct BurstEndToEndTests {
    /// The test holds 1,000 client sockets and the echo target's 1,000; the hub and agent it
    /// starts inherit the raised limit.
    init() { FileLimit.raiseToHardLimit() }

    /// 1,000 connections opened at once, before any of them sends: every one echoes its own
    /// bytes (the agent's pending-open limit is 256, so without the queue most were refused).
    @Test func aThousandSimultaneousConnectionsAreAllServed() throws {
        let target = try TargetServer(mode: .echo)
        defer { target.stop() }
        let rig = try TunnelRig(forwards: ["local/127.0.0.1:\(target.port)"])
        defer { rig.shutdown() }
        try rig.startAgent()
        let failures = try burst(1000, port: rig.forwardPorts[0])
        #expect(failures.isEmpty, "\(failures.count) of 1000 failed: \(failures.prefix(5))\n\(rig.logs)")
        #expect(target.accepted.load(ordering: .relaxed) == 1000)
        #expect(!rig.hub.log.contains("too many pending opens"), "\(rig.logs)")
    }

    /// Backpressure on accept: with the forward listener allowed only 16 unanswered connections,
    /// the same burst makes it stop accepting (the rest wait in the kernel's listen backlog) and
    /// resume as answers come: all 1,000 are still served, none refused, and the pauses show in
    /// `/metrics` and the log.
    @Test func aBurstPastTheAcceptBoundWaitsInTheBacklogAndIsServed() throws {
        let target = try TargetServer(mode: .echo)
        defer { target.stop() }
        let rig = try TunnelRig(forwards: ["local/127.0.0.1:\(target.port)"],
                                hubArguments: ["--forward-max-pending", "16", "--forward-resume-pending", "8"])
        defer { rig.shutdown() }
        try rig.startAgent()
        let failures = try burst(1000, port: rig.forwardPorts[0])
        #expect(failures.isEmpty, "\(failures.count) of 1000 failed: \(failures.prefix(5))\n\(rig.logs)")
        #expect(target.accepted.load(ordering: .relaxed) == 1000)
        let metrics = try rig.api("/metrics").body
        let pauses = metrics.split(separator: "\n").filter { $0.hasPrefix("lariat_hub_forward_accept_pauses_total{") }
            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
        #expect(pauses >= 1, "no pause counted:\n\(metrics.split(separator: "\n").filter { $0.contains("forward") })")
        #expect(rig.hub.log.contains("connections wait for the agent to answer (forward max pending 16)"), "\(rig.logs)")
        #expect(!rig.hub.log.contains("refused"), "\(rig.logs)")
    }

    /// A bound really exceeded is a refusal with its reason: one OPEN may be unanswered and
    /// queued ones wait at most a second, and the target is a black hole (a listener with a
    /// full backlog: the agent's dial hangs), so the connections queued behind the hanging one
    /// are reset and the hub's log says which setting refused them.
    @Test func aQueuedOpenPastItsTimeoutIsRefusedWithTheSetting() throws {
        let blackHole = try listenOnLoopback(backlog: 0)
        defer { Glibc.close(blackHole.fd) }
        let rig = try TunnelRig(forwards: ["local/127.0.0.1:\(blackHole.port)"],
                                hubArguments: ["--max-outstanding-opens", "1", "--open-queue-timeout", "1"])
        defer { rig.shutdown() }
        try rig.startAgent()
        let count = 6
        var fds: [Int32] = []
        for _ in 0..<count {
            let s = try Socket.connect(port: rig.forwardPorts[0], receiveTimeout: 20)
            fds.append(dup(s.fd))
        }
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        defer { buf.deallocate() }
        var reset = 0
        // The first connection fills the black hole's backlog (answered), the second hangs in
        // the agent's dial; the rest wait behind it and must be refused, not left hanging.
        for fd in fds.dropFirst(2) {
            let s = Socket(fd: fd)
            if case .error(let e) = s.receive(into: buf), e == ECONNRESET { reset += 1 }
        }
        for fd in fds.prefix(2) { Glibc.close(fd) }
        #expect(reset == count - 2, "\(rig.logs)")
        #expect(rig.hub.log.contains("TIMEOUT: \"not sent within 1000 ms (openQueueTimeoutNanos): 1 OPENs awaited the peer's answer (maxOutstandingOpens 1)\""),
                "\(rig.logs)")
    }

    /// Opens `count` connections to `port` before any sends (the hub receives the whole burst
    /// before any stream is answered), then has each send a line, half-close and read its echo.
    /// Returns a line per connection that did not get its own bytes back.
    private func burst(_ count: Int, port: Int) throws -> [String] {
        // Descriptors, not `Socket`s: an array cannot hold a noncopyable value; each is wrapped
        // again below, and closed when its wrapper ends.
        var fds: [Int32] = []
        fds.reserveCapacity(count)
        for _ in 0..<count {
            let s = try Socket.connect(port: port, receiveTimeout: 60)
            fds.append(dup(s.fd))
        }
        for (i, fd) in fds.enumerated() {
            let line = Array("connection \(i) of the burst\n".utf8)
            let sent = line.withUnsafeBytes { Glibc.send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
            #expect(sent == line.count)
            _ = Glibc.shutdown(fd, Int32(SHUT_WR))
        }
        var failures: [String] = []
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        defer { buf.deallocate() }
        for (i, fd) in fds.enumerated() {
            let s = Socket(fd: fd)
            var got: [UInt8] = []
            var end = Socket.ReadResult.eof
            while true {
                let r = s.receive(into: buf)
                guard case .data(let n) = r else { end = r; break }
                got.append(contentsOf: buf[0..<n])
            }
            let want = "connection \(i) of the burst\n"
            if end != .eof || String(decoding: got, as: UTF8.self) != want {
                failures.append("connection \(i): ended with \(end) after \(got.count) bytes")
            }
        }
        return failures
    }
}
