import Testing
import LariatHTTP
import LariatProtocol
import LariatRuntime
import LariatTunnel

/// An in-memory byte stream the test drives by hand: it records what the tunnel writes and,
/// while `stuck`, keeps it "unsent" (a peer that does not read).
private final class FakeStream: ByteStream {
    let loop: UVLoop
    var written: [UInt8] = []
    var stuck = false
    var buffered = 0
    var paused = false
    var shutDown = false
    var isClosed = false
    var handler: (any ByteStreamHandler)?

    init(loop: UVLoop) { self.loop = loop }
    func start(handler: any ByteStreamHandler) { self.handler = handler }
    func write(_ bytes: UnsafeRawBufferPointer) {
        guard !shutDown, !isClosed else { return }
        written.append(contentsOf: bytes)
        if stuck { buffered += bytes.count }
    }
    var bufferedWriteBytes: Int { buffered }
    func pauseReading() { paused = true }
    func resumeReading() { paused = false }
    func shutdownWrite() { shutDown = true }
    func close() {
        guard !isClosed else { return }
        isClosed = true
        handler?.streamDidClose(self)
    }
    /// The peer reads everything: the backlog is gone.
    func drain() {
        stuck = false
        buffered = 0
        handler?.streamDidDrain(self)
    }
}

private final class AcceptingHub: TunnelConnectionDelegate {
    var ended: SessionEnd?
    func tunnel(_ tunnel: TunnelConnection, authenticate hello: Hello) -> HandshakeDecision { .accept(sessionID: "t") }
    func tunnelEstablished(_ tunnel: TunnelConnection) {}
    func tunnelEnded(_ tunnel: TunnelConnection, _ end: SessionEnd) { ended = end }
}

/// What the hub side wrote, decoded: the tunnel byte stream's frames and WebSocket control frames.
private struct Output {
    var frames: [Frame] = []
    var pongs = 0
    var closeCodes: [UInt16] = []

    init(_ bytes: [UInt8]) {
        var decoder = WebSocketDecoder(role: .client, configuration: .init(maxFrameSize: 16 << 20, maxMessageSize: Int.max, validatesUTF8: false))
        var copy = bytes
        var tunnelBytes: [UInt8] = []
        copy.withUnsafeMutableBytes { raw in
            var input = raw
            while let event = try? decoder.next(from: &input) {
                switch event {
                case .binary(let p, _): tunnelBytes.append(contentsOf: p)
                case .pong: pongs += 1
                case .close(let code, _): closeCodes.append(code.rawValue)
                default: break
                }
            }
        }
        var i = 0
        while i + FrameHeader.size <= tunnelBytes.count {
            let h = tunnelBytes.withUnsafeBytes { FrameHeader.read(from: $0.baseAddress! + i) }
            let end = i + FrameHeader.size + h.length
            guard end <= tunnelBytes.count else { break }
            if let f = try? tunnelBytes.withUnsafeBytes({ try Frame.decode(UnsafeRawBufferPointer(rebasing: $0[i..<end]), maxPayload: 1 << 20) }) {
                frames.append(f)
            }
            i = end
        }
    }
}

/// A hub-side `TunnelConnection` over a `FakeStream`, fed masked client frames by hand.
private final class Rig {
    let loop = UVLoop(name: "tunnel-hardening")
    let stream: FakeStream
    let hub = AcceptingHub()
    var tunnel: TunnelConnection!
    var encoder = WebSocketEncoder(role: .client)

    init(config: SessionConfig = SessionConfig()) {
        stream = FakeStream(loop: loop)
        tunnel = TunnelConnection(stream: stream, role: .server, config: config, delegate: hub, label: "hub")
    }

    func send(_ opcode: WebSocketOpcode, _ payload: [UInt8]) {
        var wire: [UInt8] = []
        encoder.appendFrame(opcode: opcode, payload: payload, to: &wire)
        wire.withUnsafeMutableBytes { tunnel.streamDidRead(stream, UnsafeRawBufferPointer($0)) }
    }

    func hello() {
        var h = Hello()
        h.agentID = "a"; h.clusterID = "c"; h.token = "t"
        send(.binary, Frame.hello(h).encode())
    }

    func pings(_ n: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(n * 17)
        for i in 0..<n { out += Frame.ping(opaque: UInt64(i)).encode() }
        return out
    }

    var output: Output { Output(stream.written) }

    deinit {
        stream.close()
        loop.close()
    }
}

@Suite struct TunnelHardeningTests {
    @Test func webSocketPingsAreAnsweredOnlyAfterTheHandshake() {
        let rig = Rig()
        rig.send(.ping, [1, 2, 3])
        #expect(rig.stream.written.isEmpty, "a ping before HELLO must not be answered")
        rig.hello()
        #expect(rig.tunnel.session.state == .established)
        #expect(rig.output.frames.contains { if case .welcome = $0 { true } else { false } })
        rig.send(.ping, [4])
        #expect(rig.output.pongs == 1)
    }

    @Test func webSocketPingsAreNotAnsweredWhileOutputIsBackedUp() {
        let rig = Rig()
        rig.hello()
        rig.stream.stuck = true
        rig.stream.buffered = TunnelConnection.outputHighWater
        for _ in 0..<100 { rig.send(.ping, [9]) }
        #expect(rig.output.pongs == 0)
        rig.stream.drain()
        rig.send(.ping, [9])
        #expect(rig.output.pongs == 1)
    }

    @Test func readingPausesWhileOutputIsBackedUpAndResumesOnDrain() {
        var config = SessionConfig()
        config.maxQueuedControlFrames = .max // let the backlog, not the session bound, act
        let rig = Rig(config: config)
        rig.hello()
        rig.stream.stuck = true
        rig.stream.buffered = TunnelConnection.outputHighWater
        // Normal output never pauses reading.
        rig.send(.binary, rig.pings(100))
        #expect(!rig.stream.paused)
        // A peer that keeps pinging without reading: PONGs pile up past the backlog limit.
        let n = TunnelConnection.readPauseBacklog / 17 + 1000
        rig.send(.binary, rig.pings(n))
        #expect(rig.stream.paused && rig.tunnel.isReadPausedForBacklog)
        #expect(rig.tunnel.session.state == .established)
        rig.stream.drain()
        #expect(!rig.stream.paused && !rig.tunnel.isReadPausedForBacklog)
        #expect(rig.output.frames.filter { if case .pong = $0 { true } else { false } }.count == n + 100)
    }

    @Test func pingFloodWithoutReadingEndsTheSessionWithMemoryLimit() {
        let rig = Rig()
        rig.hello()
        rig.stream.stuck = true
        rig.stream.buffered = TunnelConnection.outputHighWater
        rig.send(.binary, rig.pings(SessionConfig().maxQueuedControlFrames + 1))
        #expect(rig.tunnel.session.state == .ended)
        if case .localError(let v) = rig.hub.ended { #expect(v.code == .memoryLimit) }
        else { Issue.record("expected MEMORY_LIMIT, got \(String(describing: rig.hub.ended))") }
        // The peer reads again: GOAWAY MEMORY_LIMIT, then the WebSocket close, then FIN.
        rig.stream.drain()
        let out = rig.output
        #expect(out.frames.last.map { if case .goAway(_, .memoryLimit, _) = $0 { true } else { false } } == true)
        #expect(out.closeCodes == [1000])
        #expect(rig.stream.shutDown)
    }

    @Test func closeSendsGoAwayThenWebSocketClose1000() {
        let rig = Rig()
        rig.hello()
        rig.tunnel.close(code: .noError, reason: "bye")
        let out = rig.output
        #expect(out.frames.last == .goAway(lastStreamID: 0, code: .noError, reason: "bye"))
        #expect(out.closeCodes == [1000])
        #expect(rig.stream.shutDown)
    }

    @Test func textMessageIsAnsweredWithClose1003() {
        let rig = Rig()
        rig.hello()
        rig.send(.text, Array("hi".utf8))
        let out = rig.output
        #expect(out.frames.contains { if case .goAway(_, .protocolError, _) = $0 { true } else { false } })
        #expect(out.closeCodes == [1003])
    }
}
