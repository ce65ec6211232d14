// libFuzzer target for the session engine (protocol/PROTOCOL.md §4-§10).
//
// Built by fuzz/run.sh together with Sources/LariatProtocol/*.swift as ONE module (internal
// state such as stream records is visible to the invariant checks).
//
// Input layout:
//   byte 0      mode: 0 = hub (server) session fed with the input's bytes as the agent's,
//                     1 = agent (client) session fed with the input's bytes as the hub's,
//                     2 = an agent and a hub session wired to each other ("pair")
//   byte 1, 2   configuration bits of the session(s) under test (see `makeConfig`)
//   then ops    op byte: low 4 bits select the action, high 4 bits are its small argument.
//     0-5  RECV   n = next byte (+1); mode 0/1: feed the next n bytes (x64 when arg bit 3 is set)
//                 mode 2: move up to n*16 bytes from one side to the other (arg bit 0 = direction)
//     6    PRODUCE into a buffer of fuzz-chosen size (1...1021, or 64 KiB), check the output
//     7    TICK   advance the clock by next byte * 50 ms (x 1000 when arg bit 3 is set)
//     8    OPEN   a stream (class = arg % 3)
//     9    WRITE  next byte * 64 bytes on a known stream
//     10   FINISH a known stream           11  RESET a known stream
//     12   CONSUME what was delivered on a known stream
//     13   session calls: goAway / close / ping
//     14   ACCEPT or REFUSE the oldest pending OPEN
//     15   change the delegate's policy bits
// Invariants (any failure is a crash with a message naming the invariant):
//   - nothing traps; produce(into:) returns at most the room it was given;
//   - everything the session sends parses as valid frames (FrameDecoder + Frame.decode with the
//     peer's announced maximum payload), and LZ4 payloads decompress to their announced length;
//   - DATA is sent only on streams that are open (OPEN_OK seen in either direction), never after
//     our FIN or RESET, and never beyond the credit the peer granted (stream and session);
//   - mode 2: two reference sessions never accuse each other of a protocol, flow-control,
//     frame-size, stream-state or compression error, delivered bytes are exactly the bytes
//     written, and once everything is consumed and pumped no open stream is left stalled.

import Glibc

// MARK: Input cursor

struct Cursor {
    let base: UnsafePointer<UInt8>
    let count: Int
    var at = 0
    var isEmpty: Bool { at >= count }
    mutating func byte() -> UInt8 {
        guard at < count else { return 0 }
        defer { at += 1 }
        return base[at]
    }
    mutating func bytes(_ n: Int) -> UnsafeRawBufferPointer {
        let k = max(0, min(n, count - at))
        defer { at += k }
        return UnsafeRawBufferPointer(start: base + at, count: k)
    }
}

func makeConfig(_ b: UInt8) -> SessionConfig {
    var c = SessionConfig()
    c.handshakeTimeoutNanos = 10_000_000_000
    if b & 0x01 != 0 { c.maxStreams = 4; c.maxPendingOpens = 2 }
    if b & 0x02 != 0 {
        c.sessionWindow = 48 * 1024; c.initialStreamWindow = 16 * 1024
        c.minStreamWindow = 4 * 1024; c.maxStreamWindow = 64 * 1024
    }
    if b & 0x04 != 0 { c.maxFramePayload = 16 * 1024 }
    if b & 0x08 != 0 { c.compression = false }
    if b & 0x10 != 0 { c.sendBufferSize = 4 * 1024 }
    if b & 0x20 != 0 { c.dataFrameSize = 1024 }
    if b & 0x40 != 0 { c.pingIntervalNanos = 1_000_000_000; c.idleTimeoutNanos = 3_000_000_000 }
    return c
}

/// Which invariants to skip, from LARIAT_FUZZ_SKIP (comma-separated names), so that fuzzing can
/// continue past a known, reported failure.
let tracing = getenv("LARIAT_FUZZ_TRACE") != nil

let skipped: Set<String> = {
    guard let p = getenv("LARIAT_FUZZ_SKIP") else { return [] }
    return Set(String(cString: p).split(separator: ",").map(String.init))
}()

func check(_ ok: @autoclosure () -> Bool, _ name: String, _ message: @autoclosure () -> String) {
    guard !skipped.contains(name), !ok() else { return }
    fatalError("invariant \(name) violated: \(message())")
}

/// The bytes written on stream `id` at `offset`: text-like for some streams (compressible),
/// noise for the others, so the receiver can verify every byte.
@inline(__always)
func pattern(_ id: UInt32, _ offset: Int) -> UInt8 {
    if id % 4 < 2 {
        return UInt8(truncatingIfNeeded: 0x41 + (offset % 61) % 26)
    }
    var x = UInt64(id) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(offset) &* 0xBF58_476D_1CE4_E5B9
    x ^= x >> 29
    return UInt8(truncatingIfNeeded: x)
}

// MARK: The application side of one session

final class App: SessionDelegate {
    let name: String
    let pairMode: Bool
    unowned(unsafe) var session: Session! = nil
    var policy: UInt8
    var streams: [UInt32] = []          // ids the app knows, for ops to pick from
    var pendingOpens: [UInt32] = []
    var delivered: [UInt32: Int] = [:]  // delivered, not consumed
    var received: [UInt32: Int] = [:]   // total bytes received per stream (pattern offset)
    var written: [UInt32: Int] = [:]    // total bytes written per stream
    var ended: SessionEnd?
    var badResets: [(UInt32, ErrorCode, String)] = []

    init(name: String, pairMode: Bool, policy: UInt8) {
        self.name = name
        self.pairMode = pairMode
        self.policy = policy
    }

    var autoAccept: Bool { policy & 1 == 0 }
    var consumeAtOnce: Bool { policy & 2 == 0 }
    var writeOnOpen: Bool { policy & 4 != 0 }
    var finishOnFin: Bool { policy & 8 != 0 }

    func write(_ id: UInt32, _ n: Int) {
        guard n > 0 else { return }
        let start = written[id] ?? 0
        var buf = [UInt8](repeating: 0, count: n)
        for i in 0..<n { buf[i] = pattern(id, start + i) }
        let took = buf.withUnsafeBytes { session.write(id, $0) }
        check(took <= n, "write-count", "write took \(took) of \(n)")
        if took > 0 { written[id] = start + took }
    }

    func forget(_ id: UInt32) {
        streams.removeAll { $0 == id }
        pendingOpens.removeAll { $0 == id }
        delivered[id] = nil
    }

    // SessionDelegate
    func session(_ session: Session, authenticate hello: Hello) -> HandshakeDecision {
        hello.token == "bad" ? .refuse(.authenticationFailed, reason: "invalid token") : .accept(sessionID: "fuzz")
    }
    func sessionEstablished(_ session: Session) {}
    func session(_ session: Session, openRequested stream: UInt32, target: String, streamClass: StreamClass) {
        streams.append(stream)
        if writeOnOpen { write(stream, 700) }
        if target == "refuse" {
            session.refuse(stream, code: .targetUnreachable, message: "no route to \(target)")
            forget(stream)
        } else if autoAccept {
            session.accept(stream)
        } else {
            pendingOpens.append(stream)
        }
    }
    func session(_ session: Session, streamOpened stream: UInt32) {
        if writeOnOpen { write(stream, 300) }
    }
    func session(_ session: Session, streamOpenFailed stream: UInt32, code: ErrorCode, message: String) {
        forget(stream)
    }
    func session(_ session: Session, streamData stream: UInt32, bytes: UnsafeRawBufferPointer) {
        check(bytes.count > 0, "empty-delivery", "streamData with 0 bytes")
        check(bytes.count <= session.config.maxFramePayload, "delivery-size",
              "\(bytes.count) bytes delivered at once, limit \(session.config.maxFramePayload)")
        let start = received[stream] ?? 0
        if pairMode {
            for i in 0..<bytes.count where bytes[i] != pattern(stream, start + i) {
                check(false, "data-integrity", "\(name): stream \(stream) byte \(start + i) is \(bytes[i]), want \(pattern(stream, start + i))")
                break
            }
        }
        received[stream] = start + bytes.count
        if consumeAtOnce {
            session.consumed(stream, bytes.count)
        } else {
            delivered[stream, default: 0] += bytes.count
        }
    }
    func session(_ session: Session, streamFinished stream: UInt32) {
        if finishOnFin { session.finish(stream) }
    }
    func session(_ session: Session, streamReset stream: UInt32, code: ErrorCode, message: String) {
        forget(stream)
        if [.protocolError, .flowControlError, .frameSizeError, .streamClosed, .compressionError].contains(code) {
            badResets.append((stream, code, message))
        }
    }
    func session(_ session: Session, streamClosed stream: UInt32) { forget(stream) }
    func session(_ session: Session, streamWritable stream: UInt32) {}
    func sessionHasOutput(_ session: Session) {}
    func session(_ session: Session, goAwayReceived code: ErrorCode, reason: String) {}
    func session(_ session: Session, roundTrip nanos: UInt64) {}
    func session(_ session: Session, ended: SessionEnd) {
        check(self.ended == nil, "ended-once", "\(name): ended twice (\(self.ended!), then \(ended))")
        self.ended = ended
    }
}

// MARK: A model of the peer that checks what a session sends

let modelLimit = 128 * 1024
nonisolated(unsafe) let modelScratch = UnsafeMutableRawPointer.allocate(byteCount: modelLimit, alignment: 16)

/// Watches both directions of one session's wire and checks the sender-side rules.
struct WireModel {  // FrameDecoder is a reference type: the model owns two private ones
    let isClient: Bool // the session under test is the agent
    var fromPeer: FrameDecoder
    var fromUs: FrameDecoder
    var peerDead = false
    var usDead = false
    var peerMaxFrame = 16 * 1024 // what the peer announced (HELLO/WELCOME)
    var sessionCredit = 0        // granted by the peer to us
    var handshakeSeen = false
    var credit: [UInt32: Int] = [:]
    var openForData: Set<UInt32> = []
    var closedForData: Set<UInt32> = []
    var scratch: UnsafeMutableRawPointer { modelScratch }

    init(isClient: Bool) {
        self.isClient = isClient
        // Sessions accept at most 64 KiB payloads (SessionConfig); larger input frames end the
        // session under test too, so the model may stop there.
        fromPeer = FrameDecoder(maxPayload: modelLimit, capacityLimit: modelLimit)
        fromUs = FrameDecoder(maxPayload: modelLimit, capacityLimit: modelLimit)
    }

    func deallocate() {}

    /// Bytes the peer sent to the session under test: record the credit it grants.
    mutating func peerSent(_ bytes: UnsafeRawBufferPointer) {
        guard !peerDead else { return }
        var events: [Frame] = []
        do {
            try fromPeer.feed(bytes) { h, p throws(ProtocolViolation) -> Bool in
                if let f = try? Frame.decode(header: h, payload: p, maxPayload: modelLimit) { events.append(f) }
                return true
            }
        } catch { peerDead = true }
        for f in events {
            switch f {
            case .hello(let h) where !isClient && !handshakeSeen:
                handshakeSeen = true; peerMaxFrame = Int(h.maxFramePayload); sessionCredit = Int(h.sessionWindow)
            case .welcome(let w) where isClient && !handshakeSeen:
                handshakeSeen = true; peerMaxFrame = Int(w.maxFramePayload); sessionCredit = Int(w.sessionWindow)
            case .open(let id, _, let window, _):
                if credit[id] == nil { credit[id] = Int(window) }
            case .openOK(let id, let window):
                credit[id, default: 0] += Int(window)
                openForData.insert(id)
            case .window(0, let inc): sessionCredit += Int(inc)
            case .window(let id, let inc): credit[id, default: 0] += Int(inc)
            default: break
            }
        }
    }

    /// Bytes the session under test produced: they must be valid frames within the credit.
    mutating func weSent(_ bytes: UnsafeRawBufferPointer) {
        guard !usDead else { return }
        var frames: [(FrameHeader, Frame)] = []
        do {
            try fromUs.feed(bytes) { h, p throws(ProtocolViolation) -> Bool in
                let limit = h.type == FrameType.data.rawValue ? max(peerMaxFrame, 16 * 1024) : modelLimit
                let f = try Frame.decode(header: h, payload: p, maxPayload: limit)
                frames.append((h, f))
                return true
            }
        } catch {
            check(false, "output-valid", "the session sent an invalid frame: \(error)")
            usDead = true
        }
        for (_, f) in frames {
            switch f {
            case .openOK(let id, _): openForData.insert(id)
            case .reset(let id, _, _), .openFail(let id, _, _): closedForData.insert(id)
            case .data(let id, let fin, let compressed, let payload):
                var n = payload.count
                if compressed {
                    n = Int(UInt32(payload[0]) << 24 | UInt32(payload[1]) << 16 | UInt32(payload[2]) << 8 | UInt32(payload[3]))
                    check(n <= peerMaxFrame, "output-lz4-size", "compressed DATA decodes to \(n) > \(peerMaxFrame)")
                    let ok = payload.withUnsafeBytes {
                        LZ4Codec.decompress(UnsafeRawBufferPointer(rebasing: $0[4...]), into: scratch, decodedLength: n)
                    }
                    check(ok, "output-lz4", "our LZ4 block does not decode to \(n) bytes")
                }
                check(openForData.contains(id), "data-before-open", "DATA on stream \(id) before OPEN_OK")
                check(!closedForData.contains(id), "data-after-close", "DATA on stream \(id) after our FIN/RESET/OPEN_FAIL")
                let c = credit[id, default: 0]
                check(n <= c, "stream-credit", "DATA of \(n) bytes on stream \(id) with \(c) bytes of stream credit")
                check(n <= sessionCredit, "session-credit", "DATA of \(n) bytes with \(sessionCredit) bytes of session credit")
                credit[id] = c - n
                sessionCredit -= n
                if fin { closedForData.insert(id) }
            default: break
            }
        }
    }
}

// MARK: The fuzz entry point

nonisolated(unsafe) var now: UInt64 = 1_000_000_000

func produce(_ s: Session, room: Int, into out: inout [UInt8]) -> Int {
    if out.count < room { out = [UInt8](repeating: 0, count: room) }
    let n = out.withUnsafeMutableBytes { s.produce(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<room])) }
    check(n >= 0 && n <= room, "produce-room", "produce returned \(n) for a room of \(room)")
    return n
}

func appOp(_ op: UInt8, _ arg: UInt8, _ app: App, _ c: inout Cursor) {
    let s = app.session!
    func pick() -> UInt32? {
        let b = Int(c.byte())
        if !app.streams.isEmpty, b < 200 { return app.streams[b % app.streams.count] }
        return UInt32(b) // sometimes an id the app does not know
    }
    switch op {
    case 8:
        let targets = ["k8s-api", "tcp:10.0.0.5:6443", "svc:default/web:80", "refuse"]
        if let id = try? s.open(target: targets[Int(arg) % targets.count], streamClass: StreamClass(rawValue: arg % 3)!) {
            app.streams.append(id)
        }
    case 9: if let id = pick() { app.write(id, Int(c.byte()) * 64 + Int(arg)) }
    case 10: if let id = pick() { s.finish(id) }
    case 11: if let id = pick() { s.reset(id, code: .cancel, message: arg & 1 == 0 ? "" : "cancelled by fuzz") }
    case 12:
        if let id = pick() {
            let n = app.delivered[id] ?? 0
            let take = arg & 8 != 0 ? n / 2 : n
            if take > 0 { app.delivered[id] = n - take; s.consumed(id, take) }
        }
    case 13:
        switch arg % 4 {
        case 0: s.goAway()
        case 1: s.close(code: arg & 4 != 0 ? .internalError : .noError, reason: "fuzz close")
        default: s.ping()
        }
    case 14:
        if !app.pendingOpens.isEmpty {
            let id = app.pendingOpens.removeFirst()
            if arg & 1 == 0 { s.accept(id) } else { s.refuse(id, code: .targetForbidden, message: "policy"); app.forget(id) }
        }
    case 15: app.policy = c.byte()
    default: break
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func lariatFuzzSession(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var c = Cursor(base: data, count: size)
    let mode = c.byte() % 3
    let cfgA = makeConfig(c.byte())
    let cfgB = makeConfig(c.byte())
    now = 1_000_000_000
    if mode == 2 { runPair(&c, cfgA, cfgB) } else { runSingle(&c, isClient: mode == 1, cfgA) }
    return 0
}

func runSingle(_ c: inout Cursor, isClient: Bool, _ config: SessionConfig) {
    let app = App(name: isClient ? "agent" : "hub", pairMode: false, policy: 0)
    var hello = Hello()
    hello.agentID = "agent-fuzz"; hello.clusterID = "c1"; hello.token = "t"
    let session = Session(role: isClient ? .client(hello) : .server, config: config, delegate: app, now: now)
    app.session = session
    var model = WireModel(isClient: isClient)
    defer { model.deallocate() }
    var out: [UInt8] = []
    while !c.isEmpty {
        let opByte = c.byte()
        let op = opByte & 0x0F, arg = opByte >> 4
        switch op {
        case 0...5:
            var n = Int(c.byte()) + 1
            if arg & 8 != 0 { n *= 64 }
            let chunk = c.bytes(n)
            model.peerSent(chunk)
            session.receive(chunk, now: now)
        case 6:
            let room = arg & 8 != 0 ? 64 * 1024 : Int(c.byte()) * 4 + 1
            let n = produce(session, room: room, into: &out)
            out.withUnsafeBytes { model.weSent(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        case 7:
            now += UInt64(c.byte()) * 50_000_000 * (arg & 8 != 0 ? 1000 : 1)
            session.tick(now: now)
        default:
            appOp(op, arg, app, &c)
        }
    }
    // Drain what is left so the output checks see it all.
    var rounds = 0
    while session.hasOutput, rounds < 1000 {
        let n = produce(session, room: 64 * 1024, into: &out)
        out.withUnsafeBytes { model.weSent(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        rounds += 1
        if n == 0 { break }
    }
    if tracing { print("single: state \(session.state) ended \(String(describing: app.ended)) stats \(session.stats)") }
}

/// An agent and a hub wired back to back.
func runPair(_ c: inout Cursor, _ cfgAgent: SessionConfig, _ cfgHub: SessionConfig) {
    let agentApp = App(name: "agent", pairMode: true, policy: 0)
    let hubApp = App(name: "hub", pairMode: true, policy: 0)
    var hello = Hello()
    hello.agentID = "agent-fuzz"; hello.token = "t"
    let agent = Session(role: .client(hello), config: cfgAgent, delegate: agentApp, now: now)
    let hub = Session(role: .server, config: cfgHub, delegate: hubApp, now: now)
    agentApp.session = agent
    hubApp.session = hub
    var agentModel = WireModel(isClient: true)
    var hubModel = WireModel(isClient: false)
    defer { agentModel.deallocate(); hubModel.deallocate() }
    var out: [UInt8] = []

    func move(_ fromAgent: Bool, room: Int) -> Int {
        let src = fromAgent ? agent : hub
        let dst = fromAgent ? hub : agent
        let n = produce(src, room: room, into: &out)
        out.withUnsafeBytes { raw in
            let b = UnsafeRawBufferPointer(rebasing: raw[0..<n])
            if fromAgent { agentModel.weSent(b); hubModel.peerSent(b) } else { hubModel.weSent(b); agentModel.peerSent(b) }
            dst.receive(b, now: now)
        }
        return n
    }

    while !c.isEmpty {
        let opByte = c.byte()
        let op = opByte & 0x0F, arg = opByte >> 4
        let app = arg & 4 == 0 ? agentApp : hubApp
        switch op {
        case 0...6:
            let room = (Int(c.byte()) + 1) * (op == 6 ? 256 : 16)
            _ = move(arg & 1 == 0, room: room)
        case 7:
            now += UInt64(c.byte()) * 50_000_000
            agent.tick(now: now); hub.tick(now: now)
        default:
            appOp(op, arg, app, &c)
        }
    }

    // Quiesce: consume everything, pump both ways until nothing moves.
    for _ in 0..<10_000 {
        for app in [agentApp, hubApp] {
            for (id, n) in app.delivered where n > 0 { app.delivered[id] = 0; app.session.consumed(id, n) }
        }
        let a = move(true, room: 64 * 1024)
        let b = move(false, room: 64 * 1024)
        if a == 0 && b == 0 && !agent.hasOutput && !hub.hasOutput { break }
    }

    if tracing {
        print("agent: \(agent.state) \(String(describing: agentApp.ended)) \(agent.stats)")
        print("hub: \(hub.state) \(String(describing: hubApp.ended)) \(hub.stats)")
    }
    for app in [agentApp, hubApp] {
        if case .localError(let v)? = app.ended, v.code != .timeout {
            check(false, "pair-no-local-error", "\(app.name) detected a violation from a reference peer: \(v)")
        }
        if let (id, code, msg) = app.badResets.first {
            check(false, "pair-no-bad-reset", "\(app.name): stream \(id) reset with \(code): \(msg)")
        }
    }
    // Stall: a stream open on both sides, with bytes waiting to be sent, after everything was
    // consumed and pumped, means credit was lost somewhere.
    if agent.state != .ended, hub.state != .ended {
        for (src, dst) in [(agent, hub), (hub, agent)] {
            for (id, s) in src.index {
                let r = src.slots[Int(s)]
                guard r.phase == .open, !r.sendBuffer.isEmpty, let d = dst.index[id], dst.slots[Int(d)].phase == .open else { continue }
                check(false, "pair-no-stall",
                      "\(src.isClient ? "agent" : "hub") stream \(id): \(r.sendBuffer.count) bytes unsent, stream credit \(r.sendCredit), session credit \(src.sessionSendCredit)")
            }
        }
    }
}
