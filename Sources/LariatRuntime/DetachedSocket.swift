import CLibUV
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A connected socket in transit between loops: accepted on one loop, served on another
/// (`TCPConnection.detach()` then `TCPConnection.adopt(_:loop:)`). It is a bare descriptor
/// (a `dup` of the accepted one), so it can ride in a `loop.execute` closure. Exactly one
/// `adopt` wins; if nobody adopts it (say the target loop shut down and dropped the closure),
/// the descriptor is closed when the last reference goes away, so it cannot leak.
public final class DetachedSocket: Sendable {
    private let descriptor: Atomic<Int32>

    init(descriptor: Int32) {
        self.descriptor = Atomic(descriptor)
    }

    deinit {
        discard()
    }

    /// Transfers ownership of the descriptor to the caller, once.
    func take() -> Int32? {
        let fd = descriptor.exchange(-1, ordering: .acquiringAndReleasing)
        return fd >= 0 ? fd : nil
    }

    /// Closes the socket without adopting it. Idempotent.
    public func discard() {
        if let fd = take() { _ = Glibc.close(fd) }
    }
}

extension TCPConnection {
    /// Gives up this connection's socket for another loop: duplicates the descriptor, then
    /// closes this handle (the duplicate keeps the connection open). Only for a connection
    /// that has not been started or written to; returns nil otherwise (it is left as is).
    /// libuv removes the fd from this loop's epoll set before closing it, so the duplicate
    /// gets no stray events here.
    public func detach() -> DetachedSocket? {
        guard isUntouched else { return nil }
        let socket = duplicateSocket()
        close()
        return socket
    }

    /// Gives up a started connection's socket for another loop, mid-conversation: duplicates
    /// the descriptor and closes this handle without a shutdown. Nil (and the connection left
    /// as is) unless it is open, has nothing queued for the kernel and sent no half-close.
    /// On success the handler gets no further callback at all, not even `streamDidClose`.
    /// libuv holds no read data of its own: unread bytes wait in the kernel for the adopter;
    /// bytes already delivered to the handler are the caller's to pass along.
    public func detachForMigration() -> DetachedSocket? {
        detachForMigration(keepingAlive: [])
    }

    /// `detachForMigration()`, keeping `keepAlive` until this handle's close callback.
    func detachForMigration(keepingAlive keepAlive: [AnyObject]) -> DetachedSocket? {
        guard isQuiescent, let socket = duplicateSocket() else { return nil }
        closeForMigration(keepingAlive: keepAlive)
        return socket
    }

    private func duplicateSocket() -> DetachedSocket? {
        var fd = uv_os_fd_t()
        guard uv_fileno(handle.asHandle, &fd) == 0 else { return nil }
        let copy = dup(fd)
        guard copy >= 0 else { return nil }
        return DetachedSocket(descriptor: copy)
    }

    /// Wraps a detached socket in a connection on `loop` (call on that loop's thread). The
    /// result is open, TCP_NODELAY on, and not reading until `start(handler:)`.
    public static func adopt(_ socket: DetachedSocket, loop: UVLoop) throws(UVError) -> TCPConnection {
        guard let fd = socket.take() else { throw UVError(code: UV_EBADF.rawValue, operation: "adopt socket") }
        let connection = TCPConnection(loop: loop)
        let rc = connection.open(fileDescriptor: fd)
        guard rc == 0 else {
            _ = Glibc.close(fd)
            connection.close()
            throw UVError(code: rc, operation: "adopt socket")
        }
        return connection
    }
}
