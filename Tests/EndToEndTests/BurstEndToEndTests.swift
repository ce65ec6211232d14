import Foundation
import LariatRuntime
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue #11: a burst of connections to a forward is queued by the hub until the agent can
/// open them (at most 256 OPENs unanswered, PROTOCOL.md §5.3), not refused. Real processes.
@Suite(.serialized) struct BurstEndToEndTests {
    /// The test holds 1,000 client sockets and the echo target's 1,000; the hub and agent it
    /// starts inherit the raised limit.
    init() { FileLimit.raiseToHardLimit() }

    /// 1,000 connections opened at once, before any of them sends: every one echoes its own
    /// bytes (the agent's pending-open limit is 256, so without the queue most were refused).
    @Test func aThousandSimultaneousConnectionsAreAllServed() throws {
        let count = 1000
        let target = try TargetServer(mode: .echo)
        defer { target.stop() }
        let rig = try TunnelRig(forwards: ["local/127.0.0.1:\(target.port)"])
        defer { rig.shutdown() }
        try rig.startAgent()
        let port = rig.forwardPorts[0]

        // Connect all first: the hub receives the whole burst before any stream is answered.
        // (Descriptors, not `Socket`s: an array cannot hold a noncopyable value; each is wrapped
        // again below, and closed when its wrapper ends.)
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
        #expect(failures.isEmpty, "\(failures.count) of \(count) failed: \(failures.prefix(5))\n\(rig.logs)")
        #expect(target.accepted.load(ordering: .relaxed) == count)
        #expect(!rig.hub.log.contains("too many pending opens"), "\(rig.logs)")
    }
}
