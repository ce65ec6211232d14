import Testing
import LariatProtocol
@testable import LariatRuntime
import LariatTestSupport
import LariatTunnel

/// Records a stream's end for the tunnel tests.
private final class EndRecorder: ByteStreamHandler {
    private(set) var received = 0
    private(set) var failures: [String] = []
    private(set) var gotEOF = false
    private(set) var closed = false
    var onRead: (any ByteStream) -> Void = { _ in }
    var onClose: () -> Void = {}

    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        received += bytes.count
        onRead(stream)
    }
    func streamDidReadEOF(_ stream: any ByteStream) { gotEOF = true }
    func streamDidFail(_ stream: any ByteStream, _ error: StreamError) {
        if case .uv(let uv) = error { failures.append(uv.name) } else { failures.append("\(error)") }
    }
    func streamDidClose(_ stream: any ByteStream) {
        closed = true
        onClose()
    }
}

/// A settable clock for the sessions.
private final class ManualClock {
    var now: UInt64 = 1_000_000_000
    func advance(seconds: Double) { now += UInt64(seconds * 1e9) }
}

/// TLS, and the whole tunnel over TLS, on MemoryByteStream: hub and agent in one loop with no
/// sockets, so every outcome here follows from the code, not from scheduling.
@Suite struct MemoryTunnelTests {
    /// TLS client and server over a memory pair: handshake, data both ways byte-exact, and the
    /// server's half-close as close_notify (a bare end of stream would be a truncation error,
    /// not EOF). Reads of 1000 bytes cut every record; 256 KiB reads carry many.
    @Test(arguments: [Transport.tls12, .tls13], [1000, 16 * 1024, UVLoop.readBufferSize])
    func tlsOverMemory(version: Transport, chunk: Int) throws {
        let total = (2 << 20) + 321
        let harness = LoopHarness()
        let client = BulkClient(sendTotal: total, expectReceive: total)
        let echo = EchoServer()
        var negotiated = ""
        try harness.run {
            let (a, b) = MemoryByteStream.pair(loop: harness.loop, configuration: .init(readChunkBytes: chunk))
            let fixture = TLSFixture.shared
            let server = try TLSConnection(transport: a, context: fixture.serverContext)
            let tls = try TLSConnection(transport: b, context: version == .tls12 ? fixture.client12 : fixture.client13,
                                        serverName: "hub.test")
            tls.onHandshakeComplete = { negotiated = $0.engine.protocolVersion }
            harness.track(server)
            harness.track(tls)
            server.start(handler: echo)
            tls.start(handler: client)
            client.pump(tls)  // written before the handshake: queued, sent after it
            client.onDone = { harness.finish() }
        }
        #expect(!harness.timedOut)
        #expect(negotiated == (version == .tls12 ? "TLSv1.2" : "TLSv1.3"))
        #expect(client.error == nil, "\(String(describing: client.error))")
        #expect(echo.error == nil, "\(String(describing: echo.error))")
        #expect(client.received == total)
        #expect(!client.corrupt)
        #expect(client.gotEOF)
    }

    /// The whole path: a stream opened by the hub, bridged to a user connection on the hub and
    /// a target connection on the agent, each a memory pair; several streams at once move their
    /// bytes exactly both ways (user → target → echoed back), and each user's half-close
    /// travels to the target and its answer back as EOF.
    @Test(arguments: [16 * 1024, UVLoop.readBufferSize])
    func streamsMoveBytesExactlyBothWays(transportChunk: Int) throws {
        let total = (4 << 20) + 99
        let streams = 3
        let harness = LoopHarness()
        var options = MemoryTunnel.Options()
        options.transport.readChunkBytes = transportChunk
        var rig: MemoryTunnel!
        var clients: [BulkClient] = []
        var finished = 0
        var sessionsEnded: (SessionEnd?, SessionEnd?) = (nil, nil)
        try harness.run(deadlineMilliseconds: 60_000) {
            rig = try MemoryTunnel(loop: harness.loop, options: options)
            harness.onFinish { rig.closeTransports() }
            rig.onTarget = { _, target in
                harness.track(target)
                target.start(handler: EchoServer())
            }
            rig.onEstablished = {
                for _ in 0..<streams {
                    let client = BulkClient(sendTotal: total, expectReceive: total)
                    clients.append(client)
                    client.onDone = {
                        finished += 1
                        if finished == streams {
                            sessionsEnded = (rig.hubEnded, rig.agentEnded)
                            harness.finish()
                        }
                    }
                    let stream = try! rig.openStream()
                    harness.track(stream.user)
                    stream.user.start(handler: client)
                    client.pump(stream.user)
                }
            }
        }
        #expect(!harness.timedOut)
        #expect(clients.count == streams)
        for client in clients {
            #expect(client.error == nil, "\(String(describing: client.error))")
            #expect(client.received == total)
            #expect(!client.corrupt)
            #expect(client.gotEOF)
        }
        #expect(sessionsEnded.0 == nil && sessionsEnded.1 == nil)
        // The bridges read their sockets straight into the streams' send buffers (no copy)
        // whenever the buffer had a large contiguous tail: most of the bytes, both ways.
        #expect(rig.hub.session.stats.bytesWrittenInPlace > total * streams / 2)
        #expect(rig.agent.session.stats.bytesWrittenInPlace > total * streams / 2)
    }

    /// A reset at either end reaches the other end as ECONNRESET through both bridges and the
    /// session, and the other streams of the tunnel carry on.
    @Test(arguments: ["user", "target"])
    func resetTravelsThroughTheTunnel(resetBy: String) throws {
        let harness = LoopHarness()
        var rig: MemoryTunnel!
        let user = EndRecorder(), target = EndRecorder()
        var targetStream: MemoryByteStream?
        var survivorEcho: [UInt8] = []
        var sessionsEnded: (SessionEnd?, SessionEnd?) = (nil, nil)
        try harness.run {
            rig = try MemoryTunnel(loop: harness.loop)
            harness.onFinish { rig.closeTransports() }
            var targets = 0
            rig.onTarget = { _, far in
                harness.track(far)
                targets += 1
                if targets == 1 {
                    targetStream = far
                    far.start(handler: target)
                } else {
                    far.start(handler: EchoServer())
                }
            }
            rig.onEstablished = {
                let stream = try! rig.openStream()
                harness.track(stream.user)
                stream.user.start(handler: user)
                // Once the target has the first bytes, one end resets.
                target.onRead = { _ in
                    if resetBy == "user" { stream.user.closeWithReset() } else { targetStream?.closeWithReset() }
                }
                stream.user.write(Array(repeating: 7, count: 1000))
                let other = try! rig.openStream()
                harness.track(other.user)
                let survivor = EndRecorder()
                survivor.onRead = { _ in }
                other.user.start(handler: survivor)
                let peer = resetBy == "user" ? target : user
                peer.onClose = {
                    // The tunnel still carries the second stream.
                    other.user.write([1, 2, 3])
                    survivor.onRead = { _ in
                        guard survivor.received == 3 else { return }
                        survivorEcho = [1, 2, 3]
                        sessionsEnded = (rig.hubEnded, rig.agentEnded)
                        harness.finish()
                    }
                }
            }
        }
        #expect(!harness.timedOut)
        #expect(target.received == 1000)
        let (resetter, peer) = resetBy == "user" ? (user, target) : (target, user)
        #expect(peer.failures == ["ECONNRESET"])
        #expect(!peer.gotEOF)
        #expect(resetter.closed)
        #expect(survivorEcho == [1, 2, 3])
        #expect(sessionsEnded.0 == nil && sessionsEnded.1 == nil)
    }

    /// Liveness on a driven clock, no sleeping: the agent stops reading, the hub opens a stream
    /// (work waiting on the peer), and the hub's session ends with TIMEOUT exactly when its
    /// PING has gone unanswered for more than `livenessTimeoutNanos` — not a tick earlier — and
    /// the user's connection is reset.
    @Test func livenessEndsASessionWhosePeerStoppedReading() throws {
        let harness = LoopHarness()
        let clock = ManualClock()
        var options = MemoryTunnel.Options()
        options.clock = { clock.now }
        let liveness = options.hubSession.livenessTimeoutNanos
        var rig: MemoryTunnel!
        let user = EndRecorder()
        var endedAtLimit: SessionEnd?
        var endedJustAfter: SessionEnd?
        try harness.run {
            rig = try MemoryTunnel(loop: harness.loop, options: options)
            harness.onFinish { rig.closeTransports() }
            rig.onEstablished = {
                // Out of the session callback that reported it, then on one clock.
                harness.loop.schedule(afterMilliseconds: 0) {
                    rig.agentTransport.pauseReading()  // the agent hears nothing more
                    let stream = try! rig.openStream()  // OPEN, and a PING to check the peer is there
                    harness.track(stream.user)
                    stream.user.start(handler: user)
                    user.onClose = { harness.finish() }
                    clock.now += liveness  // unanswered for exactly the limit: still alive
                    rig.hub.tick()
                    endedAtLimit = rig.hubEnded
                    clock.now += 1
                    rig.hub.tick()
                    endedJustAfter = rig.hubEnded
                }
            }
        }
        #expect(!harness.timedOut)
        #expect(endedAtLimit == nil)
        guard case .localError(let violation)? = endedJustAfter else {
            Issue.record("hub session did not end on liveness: \(String(describing: endedJustAfter))")
            return
        }
        #expect(violation.code == .timeout)
        #expect(user.failures == ["ECONNRESET"])
    }
}
