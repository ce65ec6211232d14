import LariatHTTP
import LariatProtocol
import LariatRuntime

/// What the owner of a tunnel (the hub's agent registry, the agent's dialer) hears from it.
public protocol TunnelConnectionDelegate: AnyObject {
    /// Hub side: accept or refuse an agent's HELLO.
    func tunnel(_ tunnel: TunnelConnection, authenticate hello: Hello) -> HandshakeDecision
    func tunnelEstablished(_ tunnel: TunnelConnection)
    /// The peer asks for a stream; reach the target, then `tunnel.bridge(...)` or `tunnel.session.refuse(...)`.
    func tunnel(_ tunnel: TunnelConnection, openRequested stream: UInt32, target: String, streamClass: StreamClass)
    func tunnel(_ tunnel: TunnelConnection, goAwayReceived code: ErrorCode, reason: String)
    /// The session is over and the connection closed (or closing); forget this tunnel.
    func tunnelEnded(_ tunnel: TunnelConnection, _ end: SessionEnd)
}

extension TunnelConnectionDelegate {
    public func tunnel(_ tunnel: TunnelConnection, authenticate hello: Hello) -> HandshakeDecision {
        .refuse(.authenticationFailed, reason: "not accepting agents")
    }
    public func tunnel(_ tunnel: TunnelConnection, openRequested stream: UInt32, target: String, streamClass: StreamClass) {
        tunnel.session.refuse(stream, code: .targetForbidden, message: "this side dials no targets")
    }
    public func tunnel(_ tunnel: TunnelConnection, goAwayReceived code: ErrorCode, reason: String) {}
}

/// One tunnel: a protocol `Session` carried in WebSocket binary messages over a byte stream
/// (TLS over TCP). It moves bytes between the stream and the session, and between the
/// session's streams and their `StreamBridge`s. Loop-confined.
///
/// Output path: the session's scheduler fills a buffer (after 14 bytes kept free for the
/// WebSocket header), which goes out as one binary message of at most 128 KiB. Production stops while the
/// stream holds more than `outputHighWater` unsent bytes, so the scheduler — not a queue below
/// it — decides what goes next; that is what bounds an interactive frame's wait.
/// The chunk is large so that each syscall carries many TLS records, and a full chunk is exactly
/// `outputChunk` bytes *with* its WebSocket header: 8 full 16 KiB TLS records. (Filling 128 KiB
/// after the header sent a 10–14 byte ninth record with every chunk: one record in nine paid
/// the per-record cost — an SSL_write, a GCM tag, OpenSSL's allocations, an SSL_read — for
/// nothing. The last DATA frame of a chunk is simply cut shorter to fit.)
public final class TunnelConnection: ByteStreamHandler, SessionDelegate {
    public static let outputChunk = 128 * 1024
    public static let outputHighWater = 64 * 1024
    /// TCP_NOTSENT_LOWAT for tunnel sockets: the kernel holds at most this much unsent, so
    /// a frame queued now waits behind little more than `outputHighWater` plus this.
    public static let kernelUnsentLimit = 64 * 1024
    static let webSocketHeaderRoom = 14
    /// How long an ended tunnel waits for its last frames (GOAWAY, WebSocket close) to leave,
    /// and then for the peer to close its side, before it closes the socket anyway. Bounds
    /// what a peer that stopped reading can hold: its session's output never drains.
    static let lingerMilliseconds: UInt64 = 5000
    /// Reading from the tunnel pauses while more than this waits to go out: bytes written to
    /// the socket but not yet sent, plus the session's queued control frames. Normal output
    /// stays far below it — production stops at `outputHighWater` (one `outputChunk` beyond
    /// at most) and control frames are WINDOWs, PONGs and RESETs of a few KiB (13 bytes per
    /// stream even if all 16384 streams returned credit at once) — so only a peer that sends
    /// without reading gets here, and two well-behaved ends never pause each other. Reading
    /// resumes once the backlog is below half of this (`streamDidDrain`).
    public static let readPauseBacklog = 1 << 20

    public let loop: UVLoop
    public let stream: any ByteStream
    public private(set) var session: Session!
    public unowned(unsafe) let delegate: any TunnelConnectionDelegate
    /// Free-form label for logs ("agent c-1/node-2", "hub").
    public var label: String
    /// Every measured round trip (nanoseconds), for probes.
    public var onRoundTrip: ((UInt64) -> Void)?
    /// Called once the tunnel's own connection is closed: after the session ended and the
    /// linger finished (a draining hub waits for this, not only for the session's end).
    public var onClosed: (() -> Void)?

    private var webSocketDecoder: WebSocketDecoder
    private var webSocketEncoder: WebSocketEncoder
    /// Where `flush` builds its messages: a buffer borrowed from the loop for the length of
    /// one flush (the stream copies what it is given), so an idle tunnel holds none.
    private lazy var outputPool = loop.bufferPool(byteCount: Self.webSocketHeaderRoom + Self.outputChunk)
    private var bridges: [UInt32: StreamBridge] = [:]
    private var flushing = false
    private var inSession = 0
    private var flushTimer: UVTimer?
    private var tickTimer: UVTimer?
    private var ended = false
    private var closeWhenFlushed = false
    /// Reading paused because our output is backed up (`readPauseBacklog`).
    public private(set) var isReadPausedForBacklog = false
    /// The WebSocket close code we send after our last frame (PROTOCOL.md §2.2).
    private var closeCode: WebSocketCloseCode = .normalClosure
    /// Where the session's time comes from: the loop's monotonic clock, or a test's own
    /// (with `tick()`, liveness and timeouts are then tested without sleeping).
    private let clock: () -> UInt64

    /// `leftover`: bytes that arrived with the HTTP upgrade and belong to the tunnel.
    /// `clock`: nanoseconds for the session; nil is the loop's monotonic clock.
    public init(stream: any ByteStream, role: SessionRole, config: SessionConfig,
                delegate: any TunnelConnectionDelegate, label: String, leftover: UnsafeRawBufferPointer? = nil,
                clock: (() -> UInt64)? = nil) {
        self.loop = stream.loop
        let loop = stream.loop
        self.clock = clock ?? { loop.now }
        self.stream = stream
        self.delegate = delegate
        self.label = label
        let isClient: Bool
        if case .client = role { isClient = true } else { isClient = false }
        let wsRole: WebSocketRole = isClient ? .client : .server
        // Frames may be as large as the session's maximum plus our header slack.
        webSocketDecoder = WebSocketDecoder(role: wsRole, configuration: .init(
            maxFrameSize: 16 << 20, maxMessageSize: Int.max, validatesUTF8: false))
        webSocketEncoder = WebSocketEncoder(role: wsRole)
        session = Session(role: role, config: config, delegate: self, now: self.clock())
        stream.start(handler: self)
        let tick = UVTimer(loop: loop)
        tick.start(afterMilliseconds: 1000, repeatMilliseconds: 1000) { [unowned self] in self.tick() }
        tickTimer = tick
        flushTimer = UVTimer(loop: loop)
        if let leftover, leftover.count > 0 { streamDidRead(stream, leftover) }
        flush()
    }

    // MARK: Streams

    /// Binds session stream `id` to a byte stream (a target or a user connection).
    @discardableResult
    public func bridge(_ id: UInt32, to connection: any ByteStream) -> StreamBridge {
        let b = StreamBridge(tunnel: self, id: id, connection: connection)
        bridges[id] = b
        return b
    }

    /// Opens a stream to `target` and bridges it to `connection` once accepted. If the peer
    /// refuses, `onFail` gets the code and message, and the connection is closed with RST.
    @discardableResult
    public func openBridged(target: String, streamClass: StreamClass, connection: any ByteStream,
                            onFail: ((ErrorCode, String) -> Void)? = nil) throws(SessionError) -> StreamBridge {
        let id = try session.open(target: target, streamClass: streamClass)
        let b = bridge(id, to: connection)
        b.onOpenFailed = onFail
        flush()
        return b
    }

    /// Accepts the peer's stream `id` and bridges it to `connection` (a dialed target). Returns
    /// nil — and leaves `connection` to the caller — if the stream is no longer waiting (the
    /// peer reset it while we dialed, or the tunnel ended).
    @discardableResult
    public func acceptBridged(_ id: UInt32, to connection: any ByteStream) -> StreamBridge? {
        guard session.isAwaitingAccept(id) else { return nil }
        var bridged: StreamBridge?
        withSession { session in
            session.accept(id)
            bridged = bridge(id, to: connection)
        }
        return bridged
    }

    /// Refuses the peer's stream `id` (no-op if it is gone).
    public func refuse(_ id: UInt32, code: ErrorCode, message: String) {
        withSession { $0.refuse(id, code: code, message: message) }
    }

    func bridgeGone(_ id: UInt32) { bridges[id] = nil }

    public var bridgeCount: Int { bridges.count }

    /// Runs `body` as a session entry point, then sends what it produced.
    @inline(__always)
    func withSession(_ body: (Session) -> Void) {
        session.advanceClock(to: clock())
        inSession += 1
        body(session)
        inSession -= 1
        if inSession == 0 { flush() }
    }

    /// The session's once-a-second timer work (keepalive, liveness, timeouts), run now: the
    /// loop's timer calls it; a test with its own `clock` calls it after moving the clock.
    public func tick() {
        inSession += 1
        session.tick(now: clock())
        inSession -= 1
        flush()
        stream.releaseIdleBuffers()
    }

    /// Sends a PING now (its PONG raises `onRoundTrip`).
    public func ping() { withSession { $0.ping() } }

    // MARK: Shutdown

    /// Graceful: GOAWAY, open streams finish, then the connection closes.
    public func drain(reason: String) {
        withSession { $0.goAway(code: .goingAway, reason: reason) }
    }

    /// Immediate: GOAWAY with `code`, every stream reset, connection closed after the flush.
    public func close(code: ErrorCode = .noError, reason: String) {
        withSession { $0.close(code: code, reason: reason) }
    }

    // MARK: Output

    /// Moves the session's output to the stream while the stream is below its high-water mark.
    func flush() {
        guard !flushing, inSession == 0 else { return }
        flushing = true
        // DATA sent now is stamped with the current time (liveness compares it with input).
        session.advanceClock(to: clock())
        let pool = outputPool
        let output = pool.take()
        defer { pool.give(output) }
        let room = Self.webSocketHeaderRoom
        let fullChunkPayload = Self.outputChunk - webSocketEncoder.headerLength(payloadLength: Self.outputChunk)
        while session.hasOutput, stream.bufferedWriteBytes < Self.outputHighWater, !stream.isClosed {
            let n = session.produce(into: UnsafeMutableRawBufferPointer(rebasing: output[room ..< room + fullChunkPayload]))
            if n == 0 { break }
            let start = webSocketEncoder.encodeFrame(opcode: .binary, buffer: output, payloadOffset: room, payloadLength: n)
            stream.write(UnsafeRawBufferPointer(rebasing: output[start..<(room + n)]))
        }
        flushing = false
        if closeWhenFlushed, !session.hasOutput { finishClosing() }
        // After `flushing` is cleared: resuming may deliver buffered input at once.
        updateReadPause()
    }

    /// Pauses reading while the backlog is far beyond normal (a peer that does not read our
    /// output), resumes below half of it.
    private func updateReadPause() {
        guard !stream.isClosed else { return }
        let backlog = stream.bufferedWriteBytes + session.queuedControlBytes
        if !isReadPausedForBacklog, backlog > Self.readPauseBacklog {
            isReadPausedForBacklog = true
            stream.pauseReading()
        } else if isReadPausedForBacklog, backlog <= Self.readPauseBacklog / 2 {
            isReadPausedForBacklog = false
            stream.resumeReading()
        }
    }

    // MARK: SessionDelegate

    public func session(_ session: Session, authenticate hello: Hello) -> HandshakeDecision {
        delegate.tunnel(self, authenticate: hello)
    }
    public func sessionEstablished(_ session: Session) { delegate.tunnelEstablished(self) }
    public func session(_ session: Session, openRequested stream: UInt32, target: String, streamClass: StreamClass) {
        delegate.tunnel(self, openRequested: stream, target: target, streamClass: streamClass)
    }
    // Data the bridge wrote meanwhile was buffered by the session and goes out now that the
    // stream has credit; the bridge only tells whoever counts unanswered opens.
    public func session(_ session: Session, streamOpened stream: UInt32) { bridges[stream]?.opened() }
    public func session(_ session: Session, streamOpenFailed stream: UInt32, code: ErrorCode, message: String) {
        bridges[stream]?.openFailed(code, message)
    }
    public func session(_ session: Session, streamData stream: UInt32, bytes: UnsafeRawBufferPointer) {
        if let b = bridges[stream] { b.deliver(bytes, borrowable: session.deliveryIsInInput) } else { session.consumed(stream, bytes.count) }
    }
    public func session(_ session: Session, streamFinished stream: UInt32) { bridges[stream]?.peerFinished() }
    public func session(_ session: Session, streamReset stream: UInt32, code: ErrorCode, message: String) {
        bridges[stream]?.peerReset(code, message)
    }
    public func session(_ session: Session, streamClosed stream: UInt32) { bridges[stream]?.sessionClosed() }
    public func session(_ session: Session, streamWritable stream: UInt32) { bridges[stream]?.writable() }
    public func sessionHasOutput(_ session: Session) {
        // Entry points flush on the way out; this catches output raised from elsewhere.
        if inSession == 0 && !flushing { flush() } else if inSession == 0 { scheduleFlush() }
    }
    public func session(_ session: Session, roundTrip nanos: UInt64) { onRoundTrip?(nanos) }
    public func session(_ session: Session, goAwayReceived code: ErrorCode, reason: String) {
        delegate.tunnel(self, goAwayReceived: code, reason: reason)
    }
    public func session(_ session: Session, ended: SessionEnd) {
        guard !self.ended else { return }
        self.ended = true
        closeWhenFlushed = true
        // A peer that does not read would keep the last frames (and this socket) forever.
        tickTimer?.start(afterMilliseconds: Self.lingerMilliseconds) { [unowned self] in self.stream.close() }
        scheduleFlush()
        delegate.tunnelEnded(self, ended)
    }

    private func scheduleFlush() {
        flushTimer?.start(afterMilliseconds: 0) { [unowned self] in self.flush() }
    }

    /// Half-closes, then reads (and ignores) until the peer's EOF or `lingerMilliseconds`.
    /// Closing at once would be wrong: a socket closed with unread input sends RST, and an RST
    /// makes the peer's kernel drop what it received but had not yet handed over, which may be
    /// the end of the last stream.
    private func finishClosing() {
        closeWhenFlushed = false
        flushTimer?.close(); flushTimer = nil
        if !stream.isClosed {
            var close: [UInt8] = []
            webSocketEncoder.appendClose(code: closeCode, to: &close)
            stream.write(close)
        }
        stream.shutdownWrite()
        tickTimer?.start(afterMilliseconds: Self.lingerMilliseconds) { [unowned self] in self.stream.close() }
    }

    // MARK: ByteStreamHandler (the tunnel's own connection)

    public func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        // The decoder unmasks in place; the read buffer belongs to the stream and is ours
        // for the duration of this call.
        var input = UnsafeMutableRawBufferPointer(mutating: bytes)
        inSession += 1
        defer {
            // DATA payloads went to the bridges as borrowed slices of `bytes`: they leave now,
            // before the stream reuses its buffer.
            loop.flushBorrowedWrites()
            inSession -= 1
            flush()
        }
        let now = clock()
        do {
            while let event = try webSocketDecoder.next(from: &input) {
                switch event {
                case .binary(let payload, _):
                    session.receive(payload, now: now)
                case .text:
                    closeCode = .unsupportedData
                    session.close(code: .protocolError, reason: "text WebSocket message on a tunnel")
                case .ping(let payload):
                    // Answered only once the session is established: before that the peer is
                    // not authenticated, and an answer is a write anyone could make us do.
                    // Skipped while our output is backed up (RFC 6455 §5.5.3 lets an endpoint
                    // answer only the latest ping), so pings cannot pile pongs up.
                    if session.state == .established || session.state == .draining,
                       stream.bufferedWriteBytes < Self.outputHighWater {
                        var pong: [UInt8] = []
                        webSocketEncoder.appendPong(payload, to: &pong)
                        stream.write(pong)
                    }
                case .pong:
                    break
                case .close(let code, let reason):
                    // Echo the peer's code (RFC 6455 §5.5.1) when it may appear on the wire.
                    if code.isValidOnWire { closeCode = code }
                    session.transportClosed("WebSocket closed by peer (\(code.rawValue) \(reason))")
                    return
                }
                if session.state == .ended { return }
            }
        } catch {
            closeCode = .protocolError
            session.close(code: .protocolError, reason: "WebSocket: \(error)")
        }
    }

    public func streamDidReadEOF(_ stream: any ByteStream) {
        withSession { $0.transportClosed("peer closed the connection") }
        stream.close()
    }

    public func streamDidFail(_ stream: any ByteStream, _ error: StreamError) {
        withSession { $0.transportClosed(error.description) }
    }

    public func streamDidDrain(_ stream: any ByteStream) { flush() }

    public func streamDidClose(_ stream: any ByteStream) {
        tickTimer?.close(); tickTimer = nil
        flushTimer?.close(); flushTimer = nil
        if session.state != .ended { withSession { $0.transportClosed("connection closed") } }
        onClosed?()
        onClosed = nil
    }
}
