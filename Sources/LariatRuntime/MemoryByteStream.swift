import CLibUV

/// One end of a connected pair of in-process byte streams on one loop: what one end writes the
/// other reads. No socket and no kernel, so TLS, the tunnel and its bridges can run end to end
/// in one thread with nothing left to timing (in the spirit of swift-nio's `EmbeddedChannel`):
/// the order of every callback follows from the order of the calls alone. Tests and the
/// allocation gate (`lariat-allocgate`) use it; production code never does.
///
/// It behaves like a `TCPConnection`, which is what the code above it is written against:
/// - Delivery is asynchronous: written bytes reach the peer's handler on a later loop
///   iteration, at most `readChunkBytes` per `streamDidRead` and one read per iteration (a
///   socket read; the bytes sit in the loop's shared read buffer during the call, as TCP's do).
///   Writes made inside a read callback are coalesced for TCP connections (`WriteBatch`), as
///   in a TCP read callback.
/// - Backpressure: up to `inFlightLimit` unread bytes are "in the socket buffers"; beyond
///   that they are the writer's backlog (`bufferedWriteBytes`), which grows while the peer
///   does not read and is followed by `streamDidDrain` once the peer read it down to zero.
/// - `shutdownWrite()`: the peer reads every byte, then EOF. Reading stops after EOF.
/// - `close()`: the backlog is dropped (what is in flight still arrives), the peer reads EOF;
///   closing with unread input resets the peer instead (as TCP sends RST then). `closeWithReset()`
///   resets the peer. A reset peer loses its unread input and gets `streamDidFail`
///   (ECONNRESET), then closes, also while its reading is paused; writing to a closed peer
///   fails the writer (EPIPE). `streamDidClose` follows `close()` asynchronously, once.
///
/// Like a socket, an open stream keeps itself alive (its libuv handle holds it) and must be
/// closed; loop shutdown closes what is left. Loop-confined.
public final class MemoryByteStream: LoopHandleOwner, ByteStream {
    public struct Configuration: Sendable {
        /// Largest delivery per `streamDidRead` (the size of one socket read), 1 byte to
        /// `UVLoop.readBufferSize`. Small values cut every frame and record above.
        public var readChunkBytes: Int
        /// Unread bytes a writer may have outstanding before they count as its backlog (what
        /// the kernel's socket buffers would hold). 0 makes every unread byte backlog.
        public var inFlightLimit: Int

        public init(readChunkBytes: Int = 64 * 1024, inFlightLimit: Int = 128 * 1024) {
            self.readChunkBytes = readChunkBytes
            self.inFlightLimit = inFlightLimit
        }
    }

    /// Two connected ends on `loop`, both unstarted.
    public static func pair(loop: UVLoop, configuration: Configuration = Configuration()) -> (MemoryByteStream, MemoryByteStream) {
        let a = MemoryByteStream(loop: loop, configuration: configuration)
        let b = MemoryByteStream(loop: loop, configuration: configuration)
        a.peer = b
        b.peer = a
        return (a, b)
    }

    public let loop: UVLoop
    /// Largest delivery per `streamDidRead`; may be changed at any time.
    public var readChunkBytes: Int {
        didSet { precondition(readChunkBytes > 0 && readChunkBytes <= UVLoop.readBufferSize, "readChunkBytes out of range") }
    }
    public let inFlightLimit: Int
    /// Bytes written by this end / delivered to its handler.
    public private(set) var bytesSent: UInt64 = 0
    public private(set) var bytesReceived: UInt64 = 0

    /// Runs `pump` once per loop iteration while there is something to deliver.
    private let handle: UnsafeMutablePointer<uv_idle_t>
    private var pumping = false
    /// Strong until our close callback; the peer may outlive us and still looks at our state.
    private var peer: MemoryByteStream?
    /// Bytes the peer wrote that our handler has not read yet.
    private let inbound = ByteQueue()

    private enum State { case open, closing, closed }
    private var state = State.open
    private var writeShutDown = false
    private var wantsReading = false
    /// The peer half-closed (or closed): EOF follows the last inbound byte.
    private var peerFinished = false
    private var deliveredEOF = false
    /// Reported at the next iteration, then the stream closes (a reset, a write to a gone peer).
    private var pendingError: StreamError?
    /// Our writes left a backlog; `streamDidDrain` is owed once the peer reads it.
    private var hadBacklog = false
    private var drainPending = false
    private var handlerOwner: (any ByteStreamHandler)?

    private init(loop: UVLoop, configuration: Configuration) {
        loop.assertConfined()
        precondition(configuration.readChunkBytes > 0 && configuration.readChunkBytes <= UVLoop.readBufferSize,
                     "readChunkBytes out of range")
        precondition(configuration.inFlightLimit >= 0)
        self.loop = loop
        readChunkBytes = configuration.readChunkBytes
        inFlightLimit = configuration.inFlightLimit
        handle = .allocate(capacity: 1)
        super.init()
        let rc = uv_idle_init(loop.raw, handle)
        precondition(rc == 0, "uv_idle_init failed: \(rc)")
        handle.pointee.data = retainedContext(self)
    }

    deinit {
        handle.deallocate()
    }

    public var isClosed: Bool { state != .open }

    public var bufferedWriteBytes: Int {
        guard state == .open, let peer, peer.state == .open else { return 0 }
        return max(0, peer.inbound.count - inFlightLimit)
    }

    /// Bytes written to this end that its handler has not read yet (in flight and backlog).
    public var unreadBytes: Int { inbound.count }

    // MARK: - ByteStream

    public func start(handler: any ByteStreamHandler) {
        guard state == .open else { return }
        handlerOwner = handler
        wantsReading = true
        schedule()
    }

    public func write(_ bytes: UnsafeRawBufferPointer) {
        guard state == .open, !writeShutDown, bytes.count > 0 else { return }
        guard let peer, peer.state == .open else {
            // A socket whose peer is gone fails its next write (EPIPE), after the call.
            if pendingError == nil { pendingError = .uv(UVError(code: UV_EPIPE.rawValue, operation: "write")) }
            schedule()
            return
        }
        peer.inbound.append(bytes)
        bytesSent &+= UInt64(bytes.count)
        if peer.inbound.count > inFlightLimit { hadBacklog = true }
        peer.schedule()
    }

    public func pauseReading() { wantsReading = false }

    public func resumeReading() {
        guard state == .open, !deliveredEOF else { return }
        wantsReading = true
        schedule()
    }

    public func shutdownWrite() {
        guard state == .open, !writeShutDown else { return }
        writeShutDown = true
        peer?.peerDidFinish()
    }

    public func close() {
        guard state == .open else { return }
        state = .closing
        if let peer, peer.state == .open {
            if !inbound.isEmpty {
                peer.peerDidReset()  // unread input: TCP answers a close with RST
            } else {
                let backlog = peer.inbound.count - inFlightLimit
                if backlog > 0 { peer.inbound.removeLast(backlog) }
                if !writeShutDown { peer.peerDidFinish() }
            }
        }
        finishClosing()
    }

    public func closeWithReset() {
        guard state == .open else { return }
        state = .closing
        if let peer, peer.state == .open { peer.peerDidReset() }
        finishClosing()
    }

    override func closeForLoopShutdown() { close() }

    // MARK: - Peer events

    private func peerDidFinish() {
        guard state == .open else { return }
        peerFinished = true
        schedule()
    }

    private func peerDidReset() {
        guard state == .open else { return }
        inbound.removeAll()
        if pendingError == nil { pendingError = .uv(UVError(code: UV_ECONNRESET.rawValue, operation: "read")) }
        schedule()
    }

    /// The peer read some of what we wrote.
    private func peerDidRead() {
        guard hadBacklog, state == .open, bufferedWriteBytes == 0 else { return }
        hadBacklog = false
        drainPending = true
        schedule()
    }

    // MARK: - Delivery

    private var hasWork: Bool {
        guard state == .open, handlerOwner != nil else { return false }
        if pendingError != nil || drainPending { return true }
        return wantsReading && (!inbound.isEmpty || (peerFinished && !deliveredEOF))
    }

    private func schedule() {
        guard !pumping, hasWork else { return }
        pumping = true
        uv_idle_start(handle) { idle in
            withContext(idle.unsafelyUnwrapped.pointee.data, as: MemoryByteStream.self) { $0.pump() }
        }
    }

    /// One loop iteration's worth: an error, a drain, then one read or the EOF.
    private func pump() {
        defer {
            if pumping && !hasWork {
                pumping = false
                uv_idle_stop(handle)
            }
        }
        guard state == .open, let handler = handlerOwner else { return }
        if let error = pendingError {
            pendingError = nil
            handler.streamDidFail(self, error)
            close()
            return
        }
        if drainPending {
            drainPending = false
            handler.streamDidDrain(self)
            guard state == .open else { return }
        }
        // The handler may have been replaced or reading paused by the drain callback.
        guard wantsReading, let reader = handlerOwner else { return }
        if !inbound.isEmpty {
            var count = min(readChunkBytes, inbound.count)
            // A handler's own buffer (`streamReadBuffer`), as a socket read would use it.
            var buffer = loop.readBuffer
            if let own = reader.streamReadBuffer(self), let base = own.baseAddress, own.count > 0 {
                buffer = base
                count = min(count, own.count)
            }
            buffer.copyMemory(from: inbound.readable.baseAddress!, byteCount: count)
            inbound.consume(count)
            bytesReceived &+= UInt64(count)
            peer?.peerDidRead()
            let batch = loop.writeBatch
            batch.begin()
            reader.streamDidRead(self, UnsafeRawBufferPointer(start: buffer, count: count))
            batch.end()
        } else if peerFinished && !deliveredEOF {
            deliveredEOF = true
            wantsReading = false
            reader.streamDidReadEOF(self)
        }
    }

    /// Stops delivery and closes the handle; its close callback tells the handler.
    private func finishClosing() {
        inbound.removeAll()
        if pumping {
            pumping = false
            uv_idle_stop(handle)
        }
        uv_close(handle.asHandle) { idle in
            let data = idle.unsafelyUnwrapped.pointee.data
            withContext(data, as: MemoryByteStream.self) { $0.didClose() }
            releaseContext(data, as: MemoryByteStream.self)
        }
    }

    private func didClose() {
        state = .closed
        let owner = handlerOwner
        handlerOwner = nil
        peer = nil
        owner?.streamDidClose(self)
    }
}
