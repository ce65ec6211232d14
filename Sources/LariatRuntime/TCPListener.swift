import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// A listening TCP socket on one loop. Accepted connections are handed to `onAccept` already
/// open (TCP_NODELAY on); the callee must `start(handler:)` and eventually `close()` them.
///
/// Backpressure on accept: after `pauseAccepting()` the next connection libuv accepts is left
/// with libuv, which then stops polling the socket (`uv__server_io`: a connection callback that
/// does not call `uv_accept` stops `POLLIN`), so further clients complete their handshake in the
/// kernel and wait in the listen backlog. `resumeAccepting()` takes the held connection
/// (`uv_accept` starts polling again) and the rest follow.
public final class TCPListener: LoopHandleOwner {
    /// listen(2)'s backlog when none is given: the kernel's maximum (it caps any value at
    /// net.core.somaxconn), so a burst a paused listener leaves waiting is held, not dropped.
    public static let defaultBacklog = Int32(SOMAXCONN)
    public let loop: UVLoop
    private let handle: UnsafeMutablePointer<uv_tcp_t>
    private var onAccept: ((TCPConnection) -> Void)?
    /// The address actually bound: with port 0 this carries the kernel-chosen port.
    public let localAddress: SocketAddress
    public var port: Int { localAddress.port }
    /// listen(2)'s backlog: how many handshaken clients the kernel holds for us.
    public let backlog: Int32
    public private(set) var acceptErrors = 0
    /// Set by `pauseAccepting`: connections are left in the kernel's backlog.
    public private(set) var isAcceptingPaused = false
    /// libuv holds one accepted socket we did not take (while paused); taken on resume.
    private var holdingConnection = false

    /// Binds and listens. `host` is a numeric IPv4/IPv6 address or a name resolved synchronously
    /// (start-up only); port 0 picks a free port.
    public init(loop: UVLoop, host: String = "127.0.0.1", port: Int, backlog: Int32 = TCPListener.defaultBacklog,
                onAccept: @escaping (TCPConnection) -> Void) throws(UVError) {
        loop.assertConfined()
        self.loop = loop
        self.backlog = backlog
        let tcp = UnsafeMutablePointer<uv_tcp_t>.allocate(capacity: 1)
        let rc = uv_tcp_init(loop.raw, tcp)
        precondition(rc == 0, "uv_tcp_init failed: \(rc)")
        do throws(UVError) {
            localAddress = try Self.bindAndListen(tcp, loop: loop, host: host, port: port, backlog: backlog)
        } catch {
            // No object owns the handle yet: free it directly once libuv is done with it.
            uv_close(tcp.asHandle) { handle in handle.unsafelyUnwrapped.deallocate() }
            throw error
        }
        handle = tcp
        self.onAccept = onAccept
        super.init()
        handle.pointee.data = retainedContext(self)
    }

    deinit {
        handle.deallocate()
    }

    /// Stops taking connections until `resumeAccepting()`; clients wait in the listen backlog.
    /// Connections already handed to `onAccept` are unaffected. Idempotent.
    public func pauseAccepting() {
        loop.assertConfined()
        isAcceptingPaused = true
    }

    /// Takes connections again, starting with the one libuv held while paused. Idempotent.
    public func resumeAccepting() {
        loop.assertConfined()
        guard isAcceptingPaused else { return }
        isAcceptingPaused = false
        guard holdingConnection, onAccept != nil else { return }
        holdingConnection = false
        if !take(server: handle.asStream) {
            // uv_accept restarts polling only when it succeeds; listen(2) again does it anyway.
            _ = uv_listen(handle.asStream, backlog, Self.connectionCallback)
        }
    }

    private func didAccept(server: UnsafeMutablePointer<uv_stream_t>, status: Int32) {
        guard status == 0, onAccept != nil else {
            acceptErrors += 1
            return
        }
        // Not calling uv_accept leaves the socket with libuv, which stops polling until we do.
        if isAcceptingPaused {
            holdingConnection = true
            return
        }
        take(server: server)
    }

    /// Takes the connection libuv holds and hands it on; false if accepting it failed.
    @discardableResult
    private func take(server: UnsafeMutablePointer<uv_stream_t>) -> Bool {
        guard let onAccept else { return true }
        let connection = TCPConnection(loop: loop)
        if connection.accept(from: server) != 0 {
            acceptErrors += 1
            connection.close()
            return false
        }
        onAccept(connection)
        return true
    }

    private static let connectionCallback: uv_connection_cb = { server, status in
        withContext(server.unsafelyUnwrapped.pointee.data, as: TCPListener.self) {
            $0.didAccept(server: server.unsafelyUnwrapped, status: status)
        }
    }

    override func closeForLoopShutdown() { close() }

    /// Stops listening; existing connections are unaffected. Idempotent.
    public func close() {
        guard onAccept != nil else { return }
        onAccept = nil
        uv_close(handle.asHandle) { handle in
            releaseContext(handle.unsafelyUnwrapped.pointee.data, as: TCPListener.self)
        }
    }

    private static func bindAndListen(_ tcp: UnsafeMutablePointer<uv_tcp_t>, loop: UVLoop, host: String,
                                      port: Int, backlog: Int32) throws(UVError) -> SocketAddress {
        let address = try resolve(loop: loop, host: host, port: port)
        try uvCheck(address.withSockaddr { uv_tcp_bind(tcp, $0, 0) }, "bind")
        try uvCheck(uv_listen(tcp.asStream, backlog, connectionCallback), "listen")
        guard let bound = SocketAddress.of(tcp, peer: false) else {
            throw UVError(code: UV_EINVAL.rawValue, operation: "getsockname")
        }
        return bound
    }

    /// Numeric addresses directly; names through a synchronous uv_getaddrinfo (no callback),
    /// acceptable for bind-time only.
    static func resolve(loop: UVLoop, host: String, port: Int) throws(UVError) -> SocketAddress {
        if let address = SocketAddress(ip: host, port: port) { return address }
        var request = uv_getaddrinfo_t()
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE
        try uvCheck(uv_getaddrinfo(loop.raw, &request, nil, host, nil, &hints), "getaddrinfo")
        defer { uv_freeaddrinfo(request.addrinfo) }
        guard let first = socketAddresses(from: request.addrinfo, port: port).first else {
            throw UVError(code: UV_EAI_NONAME.rawValue, operation: "getaddrinfo")
        }
        return first
    }
}
