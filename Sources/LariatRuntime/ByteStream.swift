/// A bidirectional byte stream on one loop: plain TCP (`TCPConnection`) or TLS over a
/// transport (`TLSConnection`). Tunnel code is written against this protocol so it runs the
/// same over either. Loop-confined: call every method on the stream's loop thread.
public protocol ByteStream: AnyObject {
    var loop: UVLoop { get }

    /// Installs the handler and starts reading. The stream holds the handler strongly until its
    /// close callback has run. Calling it again replaces the handler (also from inside one of
    /// the current handler's callbacks), so protocol phases can own the stream in turn
    /// (CONNECT, TLS, HTTP upgrade, tunnel); reading is (re)started for the new handler.
    func start(handler: any ByteStreamHandler)

    /// Sends `bytes`. What cannot be handed to the kernel right away is copied into the stream's
    /// write backlog (`bufferedWriteBytes`), so the caller's buffer may be reused on return.
    /// Writes after `shutdownWrite()` or `close()` are dropped.
    func write(_ bytes: UnsafeRawBufferPointer)

    /// Like `write`, but the caller keeps `bytes` valid and unchanged until it calls
    /// `loop.flushBorrowedWrites()` (or the loop's current callback returns), so a stream may
    /// send several such writes with one vectored syscall and copy only what the kernel does
    /// not take. For a receiver that hands out slices of its own input buffer.
    func writeBorrowing(_ bytes: UnsafeRawBufferPointer)

    /// Bytes accepted by `write` but not yet handed to the kernel. Callers apply backpressure by
    /// pausing their source above a threshold and resuming on `streamDidDrain`.
    var bufferedWriteBytes: Int { get }

    /// Stop / restart delivering `streamDidRead` (backpressure towards the peer).
    func pauseReading()
    func resumeReading()

    /// Half-close: after every written byte has been sent, signal end-of-stream to the peer
    /// (TCP FIN; TLS close_notify then FIN). Reading continues.
    func shutdownWrite()

    /// Closes now (unsent backlog is discarded). `streamDidClose` follows exactly once,
    /// asynchronously. Idempotent.
    func close()

    /// Closes abruptly: TCP RST, no TLS close_notify, backlog discarded. For refusing or
    /// aborting a connection so the peer sees an error rather than a clean end of stream.
    /// `streamDidClose` follows exactly once, like `close()`.
    func closeWithReset()

    /// True from `close()` (or a fatal error) on.
    var isClosed: Bool { get }

    /// Frees write buffers that hold nothing and were not needed since the previous call, if
    /// the stream's traffic is light. For owners of long-lived, mostly idle streams (a tunnel
    /// calls it once a second), so an idle connection keeps no buffer from a burst long past.
    func releaseIdleBuffers()
}

extension ByteStream {
    /// Default for wrappers that have no abortive close of their own: a normal close.
    public func closeWithReset() { close() }

    /// Default for streams with no vectored path: an ordinary (copying) write.
    public func writeBorrowing(_ bytes: UnsafeRawBufferPointer) { write(bytes) }

    public func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { write($0) }
    }

    /// Default for streams that hold no buffers worth freeing.
    public func releaseIdleBuffers() {}
}

/// Receives a stream's events, on its loop thread.
public protocol ByteStreamHandler: AnyObject {
    /// Incoming bytes. The buffer is the stream's own read buffer: valid only during this call.
    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer)

    /// The peer finished sending (TCP FIN, or TLS close_notify). The stream stays open for
    /// writing; the handler decides when to `close()`.
    func streamDidReadEOF(_ stream: any ByteStream)

    /// A fatal error. The stream closes itself right after this returns.
    func streamDidFail(_ stream: any ByteStream, _ error: StreamError)

    /// `bufferedWriteBytes` dropped back to zero after having been non-zero.
    func streamDidDrain(_ stream: any ByteStream)

    /// Final callback, exactly once; the stream then releases the handler.
    func streamDidClose(_ stream: any ByteStream)

    /// Where the next read should land: a buffer of the handler's own, so bytes arrive where
    /// it would otherwise copy them (the free tail of a tunnel stream's send buffer), or nil
    /// for the stream's shared read buffer. The bytes then come to `streamDidRead` in that
    /// buffer; a read that brings none is reported with `streamDidNotUseReadBuffer`.
    /// Streams that cannot read into a caller's buffer never ask.
    func streamReadBuffer(_ stream: any ByteStream) -> UnsafeMutableRawBufferPointer?

    /// The buffer from `streamReadBuffer` received nothing (no data yet, end of stream, error).
    func streamDidNotUseReadBuffer(_ stream: any ByteStream)
}

extension ByteStreamHandler {
    public func streamDidFail(_ stream: any ByteStream, _ error: StreamError) {}
    public func streamDidDrain(_ stream: any ByteStream) {}
    public func streamReadBuffer(_ stream: any ByteStream) -> UnsafeMutableRawBufferPointer? { nil }
    public func streamDidNotUseReadBuffer(_ stream: any ByteStream) {}
}

/// Why a stream failed.
public enum StreamError: Error, Sendable, CustomStringConvertible {
    /// A socket-level error, named by libuv (`error.name`, e.g. "ECONNRESET").
    case uv(UVError)
    /// A TLS failure (handshake, certificate verification, protocol, truncation).
    case tls(TLSError)

    public var description: String {
        switch self {
        case .uv(let error): return error.description
        case .tls(let error): return error.description
        }
    }
}

/// Stands in for "no handler yet / any more", so streams can keep a non-optional
/// `unowned(unsafe)` reference for dispatch (no optional check, no ARC on the read path).
final class DetachedStreamHandler: ByteStreamHandler, Sendable {
    static let shared = DetachedStreamHandler()
    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {}
    func streamDidReadEOF(_ stream: any ByteStream) {}
    func streamDidClose(_ stream: any ByteStream) {}
}
