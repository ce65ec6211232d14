/// TLS over any `ByteStream` (normally a `TCPConnection`), presented as a `ByteStream` of
/// plaintext with the same semantics: bytes in, write, backpressure, half-close, close.
///
/// Data path: the engine decrypts straight from the transport's read buffer (only an unread
/// tail is copied) into a plaintext buffer borrowed from the loop for the length of the read
/// (`LoopBufferPool`), which is handed to the handler; a write is encrypted a record (16 KiB) at
/// a time into the engine's output buffer, and the whole of it goes to the transport in one
/// write. Nothing is allocated per read or per write once the buffers have warmed up.
///
/// Idle memory: OpenSSL's record buffers (about 17 KiB each way) and the BIO's are freed
/// whenever they are empty while the connection's traffic is light (`SSL_MODE_RELEASE_BUFFERS`),
/// and kept while it is busy, so an idle connection holds none and a transfer reallocates
/// nothing per record. Busy: `busyBytes` moved in one burst (reads and writes less than
/// `quietGapNanos` apart). Light again: `lightOperationsBeforeRelease` reads or writes in a row
/// that each came after a quiet gap and started no such burst.
///
/// Writes before the handshake completes are queued and sent right after it.
public final class TLSConnection: ByteStream {
    static let plaintextBufferSize = 64 * 1024
    /// One full TLS record per SSL_write keeps records maximal and the write BIO small.
    static let recordSize = 16 * 1024
    /// Plaintext moved in one burst that makes the connection busy (buffers kept): a record,
    /// which a bulk transfer moves on nearly every read and write, and a compressible one (LZ4
    /// frames of a few hundred bytes) within a few back-to-back calls; keystrokes, PINGs and
    /// WINDOW updates stay far below.
    static let busyBytes = recordSize
    /// Reads and writes closer together than this belong to one burst. A tunnel's PING and its
    /// PONG, a second apart from the next pair, are separate light operations.
    static let quietGapNanos: UInt64 = 10_000_000
    /// This many light operations in a row (each after a quiet gap, in no busy burst) mean the
    /// traffic turned light: the buffers are freed, and from then on freed whenever empty. An
    /// idle tunnel gets there within about ten seconds of PINGs.
    static let lightOperationsBeforeRelease = 8

    public let transport: any ByteStream
    public let engine: TLSEngine
    public var loop: UVLoop { transport.loop }

    /// Called once when the handshake completes (before any plaintext is delivered): the place
    /// to inspect `engine.protocolVersion` or the peer chain. May close the connection.
    public var onHandshakeComplete: ((TLSConnection) -> Void)?

    /// Where reads are decrypted to, borrowed per read (fetched on the loop's thread at first use).
    private var plaintextPool: LoopBufferPool?
    private let earlyWrites = ByteQueue()
    /// Light operations in a row, the current burst's bytes and when it last moved (`noteTraffic`).
    private var lightOperations = 0
    private var burstBytes = 0
    private var lastTrafficAt: UInt64 = 0

    /// Same ownership scheme as TCPConnection: `handler` is `handlerOwner` or the detached one.
    private var handlerOwner: (any ByteStreamHandler)?
    private unowned(unsafe) var handler: any ByteStreamHandler = DetachedStreamHandler.shared
    /// A handler replaced by `start(handler:)`, released once no callback can be running in it.
    private var retiredHandler: (any ByteStreamHandler)?

    private enum WriteSide { case open, shutdownPending, shutdownSent }
    private var writeSide = WriteSide.open
    private var started = false
    private var closing = false
    private var readPaused = false
    /// Re-entrancy guard: a handler calling resumeReading() inside streamDidRead must not
    /// start a nested decrypt loop (the outer loop simply continues).
    private var processing = false
    private var receivedCloseNotify = false
    private var transportEOF = false
    /// The engine went to another loop (`detachForMigration`): this object must not touch it.
    private var migrated = false

    /// Wraps `transport` (not yet started). Clients pass the `serverName` to send as SNI and to
    /// verify; servers pass nil.
    public init(transport: any ByteStream, context: TLSContext, serverName: String? = nil) throws(TLSError) {
        self.transport = transport
        engine = try TLSEngine(context: context, serverName: serverName)
        // Connections start idle: the handshake's records are small, and most connections
        // (idle agents, keep-alive clients) stay that way.
        engine.releasesRecordBuffers = true
    }

    /// Continues a session that moved from another loop (`MigratingTLSConnection.adopt`).
    init(transport: TCPConnection, adoptedEngine: TLSEngine) {
        self.transport = transport
        engine = adoptedEngine
    }

    public var isClosed: Bool { closing }
    public var isHandshakeComplete: Bool { engine.isHandshakeComplete }
    public var bufferedWriteBytes: Int { earlyWrites.count + transport.bufferedWriteBytes }

    // MARK: - ByteStream

    public func start(handler: any ByteStreamHandler) {
        guard !closing else { return }
        // The previous handler may be inside one of its callbacks right now (dispatch holds it
        // unowned(unsafe)): keep it alive until that dispatch has returned.
        if let previous = handlerOwner { retiredHandler = previous }
        handlerOwner = handler
        self.handler = handler
        // A second call only hands the plaintext stream to a new handler (and resumes reading,
        // like TCPConnection).
        guard !started else {
            if readPaused { resumeReading() }
            return
        }
        started = true
        transport.start(handler: TLSTransportAdapter(owner: self))
        // The client speaks first (ClientHello); a session that moved here first delivers the
        // records it brought along.
        if !engine.isServer || engine.isHandshakeComplete { processInbound() }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) {
        guard !closing, writeSide == .open, bytes.count > 0 else { return }
        if !engine.isHandshakeComplete {
            earlyWrites.append(bytes)
            return
        }
        encrypt(bytes)
    }

    public func pauseReading() {
        readPaused = true
        transport.pauseReading()
    }

    public func resumeReading() {
        readPaused = false
        guard started, !closing else { return }
        transport.resumeReading()
        processInbound()  // records already buffered in the engine
    }

    public func shutdownWrite() {
        guard !closing, writeSide == .open else { return }
        writeSide = .shutdownPending
        if engine.isHandshakeComplete { sendCloseNotifyAndShutdown() }  // else after the handshake
    }

    public func close() {
        guard !closing else { return }
        closing = true
        // Best effort close_notify, so the peer can tell a clean close from truncation.
        if writeSide != .shutdownSent && engine.isHandshakeComplete && !engine.hadFatalError {
            engine.sendCloseNotify()
            flushCiphertext()
        }
        transport.close()
    }

    public func closeWithReset() {
        guard !closing else { return }
        closing = true
        transport.closeWithReset()
    }

    // MARK: - Engine driving

    private func processInbound() {
        guard !processing, !closing else { return }
        processing = true
        let pool: LoopBufferPool
        if let p = plaintextPool { pool = p } else {
            pool = loop.bufferPool(byteCount: Self.plaintextBufferSize)
            plaintextPool = pool
        }
        let plaintext = pool.take()
        var delivered = 0
        defer {
            // Slices of the plaintext written with `writeBorrowing` leave before the buffer
            // goes back to the pool, where another connection of the loop may take it.
            if delivered > 0 { loop.flushBorrowedWrites() }
            pool.give(plaintext)
            processing = false
            if delivered > 0 && !migrated { noteTraffic(delivered) }
        }
        var filled = 0
        do throws(TLSError) {
            if !engine.isHandshakeComplete {
                let done = try engine.handshake()
                flushCiphertext()
                if !done {
                    if transportEOF { fail(.tls(TLSError(kind: .unexpectedEOF, message: "connection closed during the handshake"))) }
                    return
                }
                handshakeDidComplete()
            }
            // SSL_read yields one record (≤ 16 KiB) at a time; records are gathered until the
            // buffer has no room for another, so the handler sees large chunks. (A protocol
            // frame cut by a chunk boundary costs the handler a reassembly copy: with one
            // record per chunk nearly every 16 KiB DATA frame was cut.)
            while !closing && !readPaused && !receivedCloseNotify {
                let result = try engine.read(into: UnsafeMutableRawBufferPointer(rebasing: plaintext[filled...]))
                if case .bytes(let count) = result {
                    filled += count
                    if plaintext.count - filled >= Self.recordSize { continue }
                }
                if filled > 0 {
                    delivered += filled
                    handler.streamDidRead(self, UnsafeRawBufferPointer(rebasing: plaintext[..<filled]))
                    filled = 0
                }
                switch result {
                case .bytes:
                    continue
                case .needsInput:
                    guard !closing else { return }
                    flushCiphertext()  // post-handshake messages (session tickets, key updates)
                    if transportEOF {
                        fail(.tls(TLSError(kind: .unexpectedEOF, message: "connection closed without close_notify")))
                    }
                    return
                case .closed:
                    guard !closing else { return }
                    receivedCloseNotify = true
                    flushCiphertext()
                    handler.streamDidReadEOF(self)
                }
            }
        } catch {
            // What decrypted before the bad record is genuine: hand it over first.
            if filled > 0 && !closing { handler.streamDidRead(self, UnsafeRawBufferPointer(rebasing: plaintext[..<filled])) }
            flushCiphertext()  // let the alert reach the peer
            fail(.tls(error))
        }
    }

    private func handshakeDidComplete() {
        if let callback = onHandshakeComplete {
            onHandshakeComplete = nil
            callback(self)
        }
        guard !closing else { return }
        if !earlyWrites.isEmpty {
            encrypt(earlyWrites.readable)
            earlyWrites.releaseStorage()  // never used again once the handshake is done
            if !closing && transport.bufferedWriteBytes == 0 { handler.streamDidDrain(self) }
        }
        if writeSide == .shutdownPending && !closing { sendCloseNotifyAndShutdown() }
    }

    private func encrypt(_ bytes: UnsafeRawBufferPointer) {
        noteTraffic(bytes.count)
        var offset = 0
        while offset < bytes.count && !closing {
            let chunk = UnsafeRawBufferPointer(rebasing: bytes[offset..<min(bytes.count, offset + Self.recordSize)])
            do throws(TLSError) {
                let written = try engine.write(chunk)
                guard written > 0 else {
                    // Only renegotiation could block a write, and it is disabled.
                    fail(.tls(TLSError(kind: .protocolViolation, message: "TLS write blocked unexpectedly")))
                    return
                }
                offset += written
            } catch {
                flushCiphertext()
                fail(.tls(error))
                return
            }
        }
        flushCiphertext()
    }

    /// While traffic is light (its own buffers then go as they empty), the transport's too.
    public func releaseIdleBuffers() {
        guard !closing, engine.releasesRecordBuffers else { return }
        transport.releaseIdleBuffers()
    }

    /// Keeps the TLS buffers while traffic is heavy, frees them once it turned light (see
    /// `busyBytes`). Once per read callback and per write: a clock read and a few comparisons;
    /// the mode switches only when the traffic changes.
    @inline(__always)
    private func noteTraffic(_ count: Int) {
        let now = UVLoop.now
        let afterQuiet = now &- lastTrafficAt >= Self.quietGapNanos
        lastTrafficAt = now
        burstBytes = afterQuiet ? count : min(Self.busyBytes, burstBytes + count)
        if burstBytes >= Self.busyBytes {
            lightOperations = 0
            if engine.releasesRecordBuffers { engine.releasesRecordBuffers = false }
        } else if afterQuiet, !engine.releasesRecordBuffers {
            lightOperations += 1
            if lightOperations >= Self.lightOperationsBeforeRelease { engine.releasesRecordBuffers = true }
        }
    }

    /// Hands every pending ciphertext byte to the transport (which sends or queues it).
    private func flushCiphertext() {
        let pending = engine.pendingCiphertext
        guard pending.count > 0, !transport.isClosed else { return }
        transport.write(pending)
        engine.ciphertextSent(pending.count)
    }

    private func sendCloseNotifyAndShutdown() {
        writeSide = .shutdownSent
        engine.sendCloseNotify()
        flushCiphertext()
        transport.shutdownWrite()
    }

    /// A TLS-level fatal error: report, then close the transport.
    private func fail(_ error: StreamError) {
        guard !closing else { return }
        closing = true
        handler.streamDidFail(self, error)
        transport.close()
    }

    // MARK: - Transport events (via TLSTransportAdapter)

    fileprivate func transportDidRead(_ bytes: UnsafeRawBufferPointer) {
        guard !closing else { return }
        // engine.withInput, unrolled: after a migration inside processInbound the engine may
        // already be in use on another thread.
        engine.lend(bytes)
        processInbound()
        guard !migrated else { return }
        do throws(TLSError) {
            try engine.keepLentInput()
        } catch {
            fail(.tls(error))
            return
        }
        if retiredHandler != nil { retiredHandler = nil }
    }

    fileprivate func transportDidReadEOF() {
        transportEOF = true
        if !receivedCloseNotify { processInbound() }
    }

    fileprivate func transportDidFail(_ error: StreamError) {
        guard !closing else { return }
        closing = true  // the transport closes itself right after this
        handler.streamDidFail(self, error)
    }

    fileprivate func transportDidDrain() {
        if earlyWrites.isEmpty && !closing { handler.streamDidDrain(self) }
    }

    fileprivate func transportDidClose() {
        closing = true
        let owner = handlerOwner
        handler = DetachedStreamHandler.shared
        handlerOwner = nil
        onHandshakeComplete = nil
        owner?.streamDidClose(self)
        retiredHandler = nil
    }
}

/// The transport's handler. It holds the TLSConnection strongly: transport -> adapter -> TLS ->
/// transport is a deliberate cycle that keeps the TLS layer alive while the socket is open and
/// is broken when the transport releases its handler in the close callback.
private final class TLSTransportAdapter: ByteStreamHandler {
    let owner: TLSConnection

    init(owner: TLSConnection) {
        self.owner = owner
    }

    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) { owner.transportDidRead(bytes) }
    func streamDidReadEOF(_ stream: any ByteStream) { owner.transportDidReadEOF() }
    func streamDidFail(_ stream: any ByteStream, _ error: StreamError) { owner.transportDidFail(error) }
    func streamDidDrain(_ stream: any ByteStream) { owner.transportDidDrain() }
    func streamDidClose(_ stream: any ByteStream) { owner.transportDidClose() }
}

extension TLSConnection {
    /// Moves this session to another loop (the hub hands a client's request to the loop that
    /// holds the tunnel it needs). Call on the connection's loop. Nil, and the connection left
    /// as is, unless the handshake is complete, the connection is not closed, nothing is
    /// buffered for writing (`bufferedWriteBytes == 0`, no early writes), no close_notify was
    /// sent or received, the transport has not reported EOF, and the transport is a
    /// `TCPConnection`. On success this connection is dead for its handler: no further
    /// callback at all (not even `streamDidClose`); the socket stays open (its descriptor is
    /// duplicated, this handle closed without a shutdown or close_notify). Plaintext already
    /// delivered to the handler is the caller's to pass along; ciphertext not yet decrypted
    /// travels with the engine.
    public func detachForMigration() -> MigratingTLSConnection? {
        guard !closing, engine.isHandshakeComplete, !engine.hadFatalError, writeSide == .open,
              earlyWrites.isEmpty, !receivedCloseNotify, !transportEOF, engine.pendingCiphertextCount == 0,
              let tcp = transport as? TCPConnection, tcp.isQuiescent else { return nil }
        // Called from a read callback, the engine may still read from the socket's read
        // buffer: make the rest its own before it changes hands.
        do throws(TLSError) { try engine.keepLentInput() } catch { return nil }
        // The handler is usually on the stack (this is called from its callback): the old
        // handle's close callback releases it.
        let keep: [AnyObject] = [handlerOwner, retiredHandler].compactMap { $0 }
        guard let socket = tcp.detachForMigration(keepingAlive: keep) else { return nil }
        migrated = true
        closing = true
        handler = DetachedStreamHandler.shared
        handlerOwner = nil
        retiredHandler = nil
        onHandshakeComplete = nil
        return MigratingTLSConnection(socket: socket, engine: engine)
    }

    /// Connects TCP to `host:port`, then wraps it in a client TLS session (verifying
    /// `serverName`, which defaults to `host`). The handshake starts with `start(handler:)`.
    public static func connect(loop: UVLoop, host: String, port: Int, context: TLSContext,
                               serverName: String? = nil, timeoutMilliseconds: UInt64 = 10_000,
                               _ completion: @escaping (Result<TLSConnection, StreamError>) -> Void) {
        TCPConnection.connect(loop: loop, host: host, port: port, timeoutMilliseconds: timeoutMilliseconds) { result in
            switch result {
            case .failure(let error):
                completion(.failure(.uv(error)))
            case .success(let tcp):
                do throws(TLSError) {
                    completion(.success(try TLSConnection(transport: tcp, context: context, serverName: serverName ?? host)))
                } catch {
                    tcp.close()
                    completion(.failure(.tls(error)))
                }
            }
        }
    }
}
