import CLibUV

/// A TLS session in transit between loops (`TLSConnection.detachForMigration()` on the source
/// loop, `adopt(on:)` on the target loop's thread): the socket, as a duplicated descriptor, and
/// the live OpenSSL session with any ciphertext it received but has not decrypted yet. The peer
/// notices nothing: no close_notify, no FIN, no new handshake.
///
/// If nobody adopts it (the target loop shut down and dropped the closure carrying it), the
/// socket is closed when the last reference goes away, so it cannot leak.
public final class MigratingTLSConnection: @unchecked Sendable {
    // @unchecked: owned by exactly one thread at a time (made on the source loop, handed over once through LoopExecutor, used there).
    private let socket: DetachedSocket
    private var engine: TLSEngine?

    init(socket: DetachedSocket, engine: TLSEngine) {
        self.socket = socket
        self.engine = engine
    }

    /// Ciphertext the session carries that the engine has not decrypted yet.
    var bufferedCiphertextBytes: Int { engine?.bufferedInputCount ?? 0 }

    /// On the target loop's thread: a `TLSConnection` on the same SSL session, not started.
    /// `start(handler:)` first delivers what the engine had buffered (synchronously, inside
    /// `start`), then reads the socket. Throws `EBADF` once adopted or discarded.
    public func adopt(on loop: UVLoop) throws(UVError) -> TLSConnection {
        let tcp = try TCPConnection.adopt(socket, loop: loop)
        guard let engine else {
            tcp.close()
            throw UVError(code: UV_EBADF.rawValue, operation: "adopt TLS session")
        }
        self.engine = nil
        return TLSConnection(transport: tcp, adoptedEngine: engine)
    }

    /// Closes the socket without adopting it (the peer sees the connection end without a
    /// close_notify). Idempotent; deinit does the same if nobody adopted.
    public func discard() {
        socket.discard()
    }
}
