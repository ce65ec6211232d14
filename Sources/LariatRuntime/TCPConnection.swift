import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// One TCP connection on one loop (accepted by `TCPListener` or made by `TCPConnection.connect`).
///
/// Read path: libuv reads into the loop's one preallocated 256 KiB buffer (`UVLoop.readBuffer`),
/// which is handed to the handler as an `UnsafeRawBufferPointer`: reading allocates nothing, and
/// an idle connection holds no read buffer. A handler may instead offer a buffer of its own
/// (`streamReadBuffer`): a tunnel stream's bridge offers its send buffer, which saves a copy.
///
/// Write path: `uv_try_write` first (on a healthy socket the kernel takes everything, no copy).
/// Only the remainder is copied into a backlog and sent by a single preallocated `uv_write_t`.
/// Writes made inside a read callback after the first are coalesced (`WriteBatch`): copied into
/// the backlog and sent with one `uv_try_write` when the callback returns.
/// Two queues alternate: the one in flight is never appended to, so the memory libuv is sending
/// from never moves; the other collects new writes meanwhile.
///
/// Lifetime: the libuv handle holds a strong reference to this object from init until the close
/// callback, so an open connection stays alive by itself. Every connection must be `close()`d
/// (errors close it automatically).
public final class TCPConnection: LoopHandleOwner, ByteStream {
    public static var readBufferSize: Int { UVLoop.readBufferSize }

    public let loop: UVLoop
    let handle: UnsafeMutablePointer<uv_tcp_t>
    private let writeRequest: UnsafeMutablePointer<uv_write_t>
    private let shutdownRequest: UnsafeMutablePointer<uv_shutdown_t>
    private let connectRequest: UnsafeMutablePointer<uv_connect_t>

    private var inFlight = ByteQueue()
    private var backlog = ByteQueue()
    /// Borrowed writes (`writeBorrowing`) not yet offered to the kernel: iovecs into the
    /// caller's buffer, sent together by `sendBorrowed`. The array is the loop's, held only
    /// while writes are borrowed (`WriteBatch.takeIovecs`), so an idle connection holds none.
    private var borrowed: UnsafeMutablePointer<uv_buf_t>?
    private var borrowedCount = 0
    private var borrowedBytes = 0
    /// Iovecs held at most; one more borrowed write sends them first. A 256 KiB tunnel read
    /// carries at most sixteen 16 KiB DATA frames for one target.
    static let maxBorrowedWrites = 16
    private var writeInFlight = false
    /// Registered with the loop's `WriteBatch`: the backlog waits for the batch to end.
    private var inWriteBatch = false

    private enum State { case idle, connecting, open, closing, closed }
    private enum WriteSide { case open, shutdownPending, shutdownSent }
    private var state = State.idle
    private var writeSide = WriteSide.open
    private var wantsReading = false
    private var isReading = false
    private var receivedEOF = false
    /// The read libuv is doing now lands in the handler's buffer (`streamReadBuffer`).
    private var readsIntoHandlerBuffer = false

    /// Keeps the handler alive; `handler` is what the hot path calls (no optional, no ARC).
    /// Invariant: `handler` is `handlerOwner` or the shared detached handler.
    private var handlerOwner: (any ByteStreamHandler)?
    private unowned(unsafe) var handler: any ByteStreamHandler = DetachedStreamHandler.shared
    /// A handler replaced by `start(handler:)`, released once no callback can be running in it.
    private var retiredHandler: (any ByteStreamHandler)?
    private var connectCompletion: ((UVError?) -> Void)?
    /// The socket lives on in another loop (`detachForMigration`): the close callback tells
    /// the handler nothing.
    private var migrated = false
    /// Objects a migration must keep alive until no stack frame can still be using them.
    private var keptUntilClose: [AnyObject] = []

    /// Traffic counters (payload bytes), for metrics.
    public private(set) var bytesReceived: UInt64 = 0
    public private(set) var bytesSent: UInt64 = 0

    init(loop: UVLoop) {
        loop.assertConfined()
        self.loop = loop
        handle = .allocate(capacity: 1)
        writeRequest = .allocate(capacity: 1)
        shutdownRequest = .allocate(capacity: 1)
        connectRequest = .allocate(capacity: 1)
        super.init()
        // uv_tcp_init without flags creates no socket yet, so it cannot fail.
        let rc = uv_tcp_init(loop.raw, handle)
        precondition(rc == 0, "uv_tcp_init failed: \(rc)")
        _ = uv_tcp_nodelay(handle, 1)  // libuv remembers it and applies it once the socket exists
        handle.pointee.data = retainedContext(self)
        writeRequest.pointee.data = handle.pointee.data
        shutdownRequest.pointee.data = handle.pointee.data
        connectRequest.pointee.data = handle.pointee.data
    }

    deinit {
        handle.deallocate()
        writeRequest.deallocate()
        shutdownRequest.deallocate()
        connectRequest.deallocate()
        borrowed?.deallocate()  // only if the connection died holding borrowed writes
    }

    public var isClosed: Bool { state == .closing || state == .closed }

    public var bufferedWriteBytes: Int { inFlight.count + backlog.count + borrowedBytes }
    /// Memory held for queued writes (what an idle connection should not keep).
    var writeQueueAllocatedBytes: Int { inFlight.allocatedBytes + backlog.allocatedBytes }

    /// Frees the write queues' storage when empty and unused since the previous call: a
    /// connection that coalesced one reply long ago (a tunnel's HTTP upgrade) keeps no 16 KiB
    /// backlog for the rest of its life, while a busy one keeps its own.
    public func releaseIdleBuffers() {
        backlog.releaseStorageIfIdle()
        inFlight.releaseStorageIfIdle()
    }

    public var localAddress: SocketAddress? { SocketAddress.of(handle, peer: false) }
    public var remoteAddress: SocketAddress? { SocketAddress.of(handle, peer: true) }

    // MARK: - Set-up (used by TCPListener and the connector)

    /// Takes over an already-connected socket (see `TCPConnection.adopt`).
    func open(fileDescriptor fd: Int32) -> Int32 {
        let rc = uv_tcp_open(handle, uv_os_sock_t(fd))  // also makes the socket non-blocking
        if rc == 0 {
            state = .open
            _ = uv_tcp_nodelay(handle, 1)
        }
        return rc
    }

    /// True for an open connection nobody has started or written to: safe to `detach()`.
    var isUntouched: Bool { state == .open && handlerOwner == nil && !writeInFlight && backlog.isEmpty && borrowedCount == 0 }

    /// True for an open connection with nothing waiting for the kernel and no half-close
    /// sent: its socket can move to another loop as it is (`detachForMigration`).
    /// Holds one of the loop's iovec arrays: only while borrowed writes wait (for tests).
    var holdsIovecs: Bool { borrowed != nil }
    var isQuiescent: Bool { state == .open && !writeInFlight && backlog.isEmpty && borrowedCount == 0 && writeSide == .open }

    /// Closes this handle while a duplicate of its socket lives on elsewhere: no shutdown, and
    /// no further callback to the handler, not even `streamDidClose`. The handler and
    /// `keepAlive` are released in the close callback, once no stack frame can be using them
    /// (this is usually called from inside one of the handler's own callbacks).
    func closeForMigration(keepingAlive keepAlive: [AnyObject]) {
        guard !isClosed else { return }
        migrated = true
        keptUntilClose = keepAlive
        handler = DetachedStreamHandler.shared
        close()
    }

    /// Completes `uv_accept` on a listening handle.
    func accept(from server: UnsafeMutablePointer<uv_stream_t>) -> Int32 {
        let rc = uv_accept(server, handle.asStream)
        if rc == 0 {
            state = .open
            _ = uv_tcp_nodelay(handle, 1)
        }
        return rc
    }

    /// Connects to one resolved address; `completion` gets nil on success. Not called if the
    /// connection is closed first (the connector handles timeouts by closing).
    func connect(to address: SocketAddress, _ completion: @escaping (UVError?) -> Void) {
        precondition(state == .idle)
        state = .connecting
        connectCompletion = completion
        let rc = address.withSockaddr { sa in
            uv_tcp_connect(connectRequest, handle, sa) { request, status in
                withContext(request.unsafelyUnwrapped.pointee.data, as: TCPConnection.self) {
                    $0.didConnect(status: status)
                }
            }
        }
        if rc < 0 {
            // Immediate failure (bad address family, no fds): the caller still gets its one callback.
            connectCompletion = nil
            state = .idle
            completion(UVError(code: rc, operation: "connect"))
        }
    }

    private func didConnect(status: Int32) {
        guard state == .connecting, let completion = connectCompletion else { return }
        connectCompletion = nil
        if status == 0 {
            state = .open
            completion(nil)
        } else {
            state = .idle
            completion(UVError(code: status, operation: "connect"))
        }
    }

    // MARK: - Socket options

    /// Limits unsent data in the kernel send queue (TCP_NOTSENT_LOWAT), so the application, not
    /// the kernel, decides what goes out next. Returns false if the option could not be set.
    @discardableResult
    public func setNotSentLowWatermark(_ bytes: Int) -> Bool {
        var fd: uv_os_fd_t = -1
        guard uv_fileno(handle.asHandle, &fd) == 0 else { return false }
        return lariat_set_notsent_lowat(fd, Int32(bytes)) == 0
    }

    /// TCP keepalive with the given idle delay in seconds (0 disables).
    @discardableResult
    public func setKeepAlive(seconds: UInt32) -> Bool {
        uv_tcp_keepalive(handle, seconds > 0 ? 1 : 0, seconds) == 0
    }

    // MARK: - Reading

    public func start(handler: any ByteStreamHandler) {
        // Calling again hands the stream to a new handler (proxy CONNECT → TLS → upgrade →
        // tunnel each own it in turn).
        guard !isClosed else { return }
        // The previous handler may be inside one of its callbacks right now (dispatch holds it
        // unowned(unsafe)): keep it alive until that dispatch has returned.
        if let previous = handlerOwner { retiredHandler = previous }
        handlerOwner = handler
        self.handler = handler
        wantsReading = true
        startReadingIfPossible()
    }

    public func pauseReading() {
        wantsReading = false
        if isReading {
            uv_read_stop(handle.asStream)
            isReading = false
        }
    }

    public func resumeReading() {
        wantsReading = true
        startReadingIfPossible()
    }

    private func startReadingIfPossible() {
        guard state == .open, wantsReading, !isReading, !receivedEOF, handlerOwner != nil else { return }
        let rc = uv_read_start(handle.asStream, { stream, _, buf in
            // alloc_cb: the handler's own buffer if it offers one, else the loop's shared one.
            withContext(stream.unsafelyUnwrapped.pointee.data, as: TCPConnection.self) { connection in
                if let own = connection.handler.streamReadBuffer(connection), let base = own.baseAddress, own.count > 0 {
                    connection.readsIntoHandlerBuffer = true
                    buf.unsafelyUnwrapped.pointee = makeUVBuf(base, own.count)
                } else {
                    buf.unsafelyUnwrapped.pointee = makeUVBuf(connection.loop.readBuffer, UVLoop.readBufferSize)
                }
            }
        }, { stream, nread, buf in
            withContext(stream.unsafelyUnwrapped.pointee.data, as: TCPConnection.self) {
                $0.didRead(nread, into: UnsafeRawPointer(buf.unsafelyUnwrapped.pointee.base))
            }
        })
        if rc < 0 {
            fail(UVError(code: rc, operation: "read_start"))
        } else {
            isReading = true
        }
    }

    @inline(__always)
    private func didRead(_ nread: Int, into base: UnsafeRawPointer?) {
        if nread > 0 {
            readsIntoHandlerBuffer = false
            bytesReceived &+= UInt64(nread)
            let batch = loop.writeBatch
            batch.begin()
            handler.streamDidRead(self, UnsafeRawBufferPointer(start: base, count: nread))
            batch.end()
            if retiredHandler != nil { retiredHandler = nil }
            return
        }
        if readsIntoHandlerBuffer {
            readsIntoHandlerBuffer = false
            handler.streamDidNotUseReadBuffer(self)
        }
        if nread == 0 { return }  // EAGAIN: libuv just returns the buffer
        isReading = false
        if nread == Int(UV_EOF.rawValue) {
            // libuv has stopped reading; the write side stays usable (half-close).
            receivedEOF = true
            handler.streamDidReadEOF(self)
        } else {
            fail(UVError(code: Int32(truncatingIfNeeded: nread), operation: "read"))
        }
    }

    // MARK: - Writing

    public func write(_ bytes: UnsafeRawBufferPointer) {
        guard state == .open, writeSide == .open, let base = bytes.baseAddress, bytes.count > 0 else { return }
        if borrowedCount > 0 { sendBorrowed(notifyingDrain: false) }  // they were written first
        guard state == .open else { return }
        if !writeInFlight && loop.writeBatch.isOpen {
            if inWriteBatch {
                backlog.append(bytes)
                return
            }
            // The first write of a batch goes straight out, like any other: most connections
            // write once per callback (a reply, a keystroke), and they then never need a
            // backlog buffer, which would stay allocated on every idle connection. Only a
            // second write in the same callback is coalesced.
            inWriteBatch = true
            loop.writeBatch.add(self)
        }
        var offset = 0
        if !writeInFlight && backlog.isEmpty {
            let n = tryWrite(UnsafeRawBufferPointer(start: base, count: bytes.count))
            if n >= 0 {
                offset = Int(n)
                bytesSent &+= UInt64(n)
                if offset == bytes.count { return }
            } else if n != UV_EAGAIN.rawValue {
                fail(UVError(code: n, operation: "write"))
                return
            }
        }
        backlog.append(UnsafeRawBufferPointer(rebasing: bytes[offset...]))
        if !writeInFlight { submitBacklog() }
    }

    /// Receivers that deliver slices of their input (the tunnel's DATA payloads) write here:
    /// inside a read callback nothing is copied — the slices wait as iovecs and leave together
    /// in one vectored `uv_try_write` when the caller flushes (`UVLoop.flushBorrowedWrites`) or
    /// the callback ends; only what the kernel does not take is copied into the backlog.
    /// (Coalescing by copying cost the receiving side 3.3 % of its CPU in a bulk profile.)
    public func writeBorrowing(_ bytes: UnsafeRawBufferPointer) {
        guard state == .open, writeSide == .open, let base = bytes.baseAddress, bytes.count > 0 else { return }
        if borrowedCount == Self.maxBorrowedWrites { sendBorrowed(notifyingDrain: false) }
        // Outside a read callback, or behind queued bytes, it is an ordinary write (which
        // sends any borrowed ones first).
        guard loop.writeBatch.isOpen, state == .open, !writeInFlight, backlog.isEmpty else {
            write(bytes)
            return
        }
        if borrowedCount == 0 {
            if borrowed == nil { borrowed = loop.writeBatch.takeIovecs(capacity: Self.maxBorrowedWrites) }
            loop.writeBatch.addBorrowing(self)
        }
        borrowed.unsafelyUnwrapped[borrowedCount] = makeUVBuf(UnsafeMutableRawPointer(mutating: base), bytes.count)
        borrowedCount += 1
        borrowedBytes += bytes.count
    }

    /// Offers the borrowed writes to the kernel in one call and copies what it did not take
    /// into the backlog; then the caller's memory is free again. Inside a write call no drain
    /// is reported: the handler could write from it, ahead of the bytes being written.
    func sendBorrowed(notifyingDrain: Bool = true) {
        let count = borrowedCount
        guard count > 0, let iovecs = borrowed else { return }
        let total = borrowedBytes
        borrowedCount = 0
        borrowedBytes = 0
        borrowed = nil
        // The array goes back to the loop once its iovecs are sent or copied below.
        defer { loop.writeBatch.giveIovecs(iovecs) }
        guard state == .open else { return }
        var sent = 0
        if !writeInFlight && backlog.isEmpty {
            let n = uv_try_write(handle.asStream, iovecs, UInt32(count))
            if n >= 0 {
                sent = Int(n)
                bytesSent &+= UInt64(n)
            } else if n != UV_EAGAIN.rawValue {
                fail(UVError(code: n, operation: "write"))
                return
            }
        }
        if sent < total {
            var skip = sent
            for i in 0..<count {
                let length = Int(iovecs[i].len)
                if skip >= length { skip -= length; continue }
                let start = UnsafeRawPointer(iovecs[i].base!) + skip
                backlog.append(UnsafeRawBufferPointer(start: start, count: length - skip))
                skip = 0
            }
            if !writeInFlight && !inWriteBatch { submitBacklog() }
            return
        }
        if writeSide == .shutdownPending { sendShutdown() }
        // The writer saw these bytes as buffered; tell it they are gone, as a queued write would.
        if notifyingDrain { handler.streamDidDrain(self) }
    }

    /// `uv_try_write` of `bytes` (non-empty): the count the kernel took, or a negative libuv error.
    private func tryWrite(_ bytes: UnsafeRawBufferPointer) -> Int32 {
        var buf = makeUVBuf(bytes.baseAddress!, bytes.count)
        return uv_try_write(handle.asStream, &buf, 1)
    }

    /// The end of a write batch: one `uv_try_write` for everything deferred, the rest queued.
    func flushBatchedWrites() {
        inWriteBatch = false
        guard state == .open, !writeInFlight, !backlog.isEmpty else { return }
        let pending = backlog.readable
        let n = tryWrite(pending)
        if n > 0 {
            if Int(n) == pending.count { backlog.reset(afterUsing: pending.count) } else { backlog.consume(Int(n)) }
            bytesSent &+= UInt64(n)
        } else if n < 0 && n != UV_EAGAIN.rawValue {
            fail(UVError(code: n, operation: "write"))
            return
        }
        if !backlog.isEmpty {
            submitBacklog()
            return
        }
        if writeSide == .shutdownPending { sendShutdown() }
        // The writer saw these bytes as buffered; tell it they are gone, as a queued write would.
        handler.streamDidDrain(self)
    }

    /// Sends the whole backlog with the preallocated request; libuv keeps writing until done.
    private func submitBacklog() {
        swap(&inFlight, &backlog)
        let pending = inFlight.readable
        var buf = makeUVBuf(pending.baseAddress!, pending.count)
        let rc = uv_write(writeRequest, handle.asStream, &buf, 1) { request, status in
            withContext(request.unsafelyUnwrapped.pointee.data, as: TCPConnection.self) {
                $0.didWrite(status: status)
            }
        }
        if rc < 0 {
            fail(UVError(code: rc, operation: "write"))
            return
        }
        writeInFlight = true
        // uv_shutdown is ordered after queued writes, so a pending half-close can go now.
        if writeSide == .shutdownPending { sendShutdown() }
    }

    private func didWrite(status: Int32) {
        writeInFlight = false
        bytesSent &+= UInt64(inFlight.count)
        inFlight.reset(afterUsing: inFlight.count)
        guard state == .open else { return }  // closing: the request was cancelled
        if status < 0 {
            fail(UVError(code: status, operation: "write"))
        } else if !backlog.isEmpty {
            submitBacklog()
        } else {
            handler.streamDidDrain(self)
        }
    }

    // MARK: - Half-close and close

    public func shutdownWrite() {
        guard state == .open, writeSide == .open else { return }
        writeSide = .shutdownPending
        // Else it follows the backlog: submitBacklog(), the write batch's flush or
        // sendBorrowed() sends it.
        if backlog.isEmpty && borrowedCount == 0 { sendShutdown() }
    }

    private func sendShutdown() {
        writeSide = .shutdownSent
        let rc = uv_shutdown(shutdownRequest, handle.asStream) { request, status in
            withContext(request.unsafelyUnwrapped.pointee.data, as: TCPConnection.self) {
                $0.didShutdown(status: status)
            }
        }
        if rc < 0 { fail(UVError(code: rc, operation: "shutdown")) }
    }

    private func didShutdown(status: Int32) {
        guard state == .open, status < 0 else { return }
        fail(UVError(code: status, operation: "shutdown"))
    }

    override func closeForLoopShutdown() { close() }

    public func close() {
        guard !isClosed else { return }
        // Writes coalesced in the current read callback have not been offered to the kernel
        // yet; a plain close must not drop what an immediate write would have sent (a final
        // record, a TLS close_notify). One last attempt, without waiting.
        if borrowedCount > 0 { sendBorrowed(notifyingDrain: false) }
        if inWriteBatch && !writeInFlight && !backlog.isEmpty { _ = tryWrite(backlog.readable) }
        state = .closing
        isReading = false
        uv_close(handle.asHandle, Self.closeCallback)
    }

    /// Closes with a TCP RST (SO_LINGER 0) instead of a FIN, discarding the backlog: for
    /// refusing or aborting a connection so the peer sees an error, not a clean end.
    public func closeWithReset() {
        guard !isClosed else { return }
        if state == .open {
            state = .closing
            isReading = false
            if uv_tcp_close_reset(handle, Self.closeCallback) == 0 { return }
            state = .open  // e.g. a shutdown is in progress: fall back to a normal close
        }
        close()
    }

    private static let closeCallback: uv_close_cb = { handle in
        let data = handle.unsafelyUnwrapped.pointee.data
        withContext(data, as: TCPConnection.self) { $0.didClose() }
        releaseContext(data, as: TCPConnection.self)
    }

    private func didClose() {
        state = .closed
        connectCompletion = nil
        inFlight.removeAll()
        backlog.removeAll()
        let owner = handlerOwner
        handler = DetachedStreamHandler.shared
        handlerOwner = nil
        if !migrated { owner?.streamDidClose(self) }
        retiredHandler = nil
        keptUntilClose = []
    }

    /// Reports a fatal error to the handler, then closes.
    private func fail(_ error: UVError) {
        guard !isClosed else { return }
        if let owner = handlerOwner {
            owner.streamDidFail(self, .uv(error))
        }
        close()
    }
}
