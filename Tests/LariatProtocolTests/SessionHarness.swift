import LariatProtocol

/// Records every delegate event of one session and applies a scripted policy (accept opens,
/// consume data immediately or hold it). Tests read `events` and `received`.
final class RecordingDelegate: SessionDelegate {
    enum Event: Equatable {
        case established
        case openRequested(UInt32, String, StreamClass)
        case opened(UInt32)
        case openFailed(UInt32, ErrorCode, String)
        case finished(UInt32)
        case reset(UInt32, ErrorCode, String)
        case closed(UInt32)
        case writable(UInt32)
        case goAway(ErrorCode, String)
        case ended(SessionEnd)
    }

    var events: [Event] = []
    var received: [UInt32: [UInt8]] = [:]
    var autoAccept = true
    var autoConsume = true
    var decision: HandshakeDecision = .accept(sessionID: "s-1")
    var hasOutputCalls = 0
    var rtts: [UInt64] = []
    var hellos: [Hello] = []
    /// Data events in arrival order: (stream, byte count).
    var dataLog: [(UInt32, Int)] = []

    func session(_ session: Session, authenticate hello: Hello) -> HandshakeDecision {
        hellos.append(hello)
        return decision
    }
    func sessionEstablished(_ session: Session) { events.append(.established) }
    func session(_ session: Session, openRequested stream: UInt32, target: String, streamClass: StreamClass) {
        events.append(.openRequested(stream, target, streamClass))
        if autoAccept { session.accept(stream) }
    }
    func session(_ session: Session, streamOpened stream: UInt32) { events.append(.opened(stream)) }
    func session(_ session: Session, streamOpenFailed stream: UInt32, code: ErrorCode, message: String) {
        events.append(.openFailed(stream, code, message))
    }
    func session(_ session: Session, streamData stream: UInt32, bytes: UnsafeRawBufferPointer) {
        received[stream, default: []].append(contentsOf: bytes)
        dataLog.append((stream, bytes.count))
        if autoConsume { session.consumed(stream, bytes.count) }
    }
    func session(_ session: Session, streamFinished stream: UInt32) { events.append(.finished(stream)) }
    func session(_ session: Session, streamReset stream: UInt32, code: ErrorCode, message: String) {
        events.append(.reset(stream, code, message))
    }
    func session(_ session: Session, streamClosed stream: UInt32) { events.append(.closed(stream)) }
    func session(_ session: Session, streamWritable stream: UInt32) { events.append(.writable(stream)) }
    func sessionHasOutput(_ session: Session) { hasOutputCalls += 1 }
    func session(_ session: Session, goAwayReceived code: ErrorCode, reason: String) {
        events.append(.goAway(code, reason))
    }
    func session(_ session: Session, roundTrip nanos: UInt64) { rtts.append(nanos) }
    func session(_ session: Session, ended: SessionEnd) { events.append(.ended(ended)) }

    var endReason: SessionEnd? {
        for case .ended(let e) in events { return e }
        return nil
    }
}

/// A client and a server session joined by in-memory pipes, with a fake clock. `pump` moves
/// bytes both ways in chunks of `chunk` bytes (to exercise frame reassembly) until both are quiet.
final class SessionPair {
    let clientDelegate = RecordingDelegate()
    let serverDelegate = RecordingDelegate()
    let client: Session
    let server: Session
    var now: UInt64 = 1_000_000_000
    var chunk = 64 * 1024
    /// Bytes moved client→server and server→client, for accounting checks.
    var wireBytes = (up: 0, down: 0)

    init(clientConfig: SessionConfig = SessionConfig(), serverConfig: SessionConfig = SessionConfig(),
         hello: Hello = SessionPair.defaultHello, handshake: Bool = true) {
        client = Session(role: .client(hello), config: clientConfig, delegate: clientDelegate, now: now)
        server = Session(role: .server, config: serverConfig, delegate: serverDelegate, now: now)
        if handshake { pump() }
    }

    static var defaultHello: Hello {
        var h = Hello()
        h.agentID = "agent-1"
        h.clusterID = "c-1"
        h.token = "secret"
        h.software = "test"
        return h
    }

    /// Moves output until neither side has any, or `maxRounds` rounds.
    @discardableResult
    func pump(maxRounds: Int = 100_000) -> Int {
        var rounds = 0
        while rounds < maxRounds {
            let a = transfer(from: client, to: server, up: true)
            let b = transfer(from: server, to: client, up: false)
            if a == 0 && b == 0 { break }
            rounds += 1
        }
        return rounds
    }

    /// One produce→receive hop; returns bytes moved.
    @discardableResult
    func transfer(from a: Session, to b: Session, up: Bool) -> Int {
        var buf = [UInt8](repeating: 0, count: 64 * 1024)
        let n = buf.withUnsafeMutableBytes { a.produce(into: $0) }
        guard n > 0 else { return 0 }
        if up { wireBytes.up += n } else { wireBytes.down += n }
        // Deliver in `chunk`-sized reads to exercise reassembly.
        var i = 0
        while i < n {
            let j = min(i + chunk, n)
            buf.withUnsafeBytes { b.receive(UnsafeRawBufferPointer(rebasing: $0[i..<j]), now: now) }
            i = j
        }
        return n
    }

    /// Feeds raw bytes into the server as if the client had sent them.
    func injectToServer(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { server.receive($0, now: now) }
    }
    func injectToClient(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { client.receive($0, now: now) }
    }

    /// Drains what a session wants to send without delivering it.
    func drain(_ s: Session) -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = buf.withUnsafeMutableBytes { s.produce(into: $0) }
            if n == 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return out
    }

    /// Decodes a byte string into frames (test helper).
    static func frames(_ bytes: [UInt8]) -> [Frame] {
        var out: [Frame] = []
        var i = 0
        while i + FrameHeader.size <= bytes.count {
            let h = bytes.withUnsafeBytes { FrameHeader.read(from: $0.baseAddress! + i) }
            let end = i + FrameHeader.size + h.length
            guard end <= bytes.count else { break }
            if let f = try? bytes.withUnsafeBytes({ try Frame.decode(UnsafeRawBufferPointer(rebasing: $0[i..<end]), maxPayload: 1 << 20) }) {
                out.append(f)
            }
            i = end
        }
        return out
    }
}

func randomBytes(_ n: Int, seed: UInt64) -> [UInt8] {
    var x = seed | 1
    var out = [UInt8](repeating: 0, count: n)
    for i in 0..<n {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17
        out[i] = UInt8(truncatingIfNeeded: x)
    }
    return out
}

/// Kubernetes-like JSON: compressible, realistic.
func jsonLikeBytes(_ n: Int) -> [UInt8] {
    var s = ""
    var i = 0
    while s.utf8.count < n {
        s += #"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"web-\#(i)","namespace":"default","labels":{"app":"web"}},"status":{"phase":"Running","podIP":"10.42.0.\#(i % 250)"}}"# + "\n"
        i += 1
    }
    return Array(s.utf8.prefix(n))
}

extension Session {
    func write(_ id: UInt32, _ bytes: [UInt8]) -> Int {
        bytes.withUnsafeBytes { write(id, $0) }
    }
}
