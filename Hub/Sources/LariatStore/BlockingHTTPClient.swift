import Foundation
import LariatHTTP
import Synchronization

/// Settings of the store's HTTP/1.1 client (the etcd JSON gateway).
public struct HTTPClientSettings: Sendable, Equatable {
    /// How long to wait for a TCP connection to be accepted.
    public var connectTimeout: Duration = .seconds(3)
    /// How long one read or write may block before the request fails.
    public var ioTimeout: Duration = .seconds(10)
    /// Idle keep-alive connections kept for reuse.
    public var maxIdleConnections = 8
    /// An idle connection older than this is closed rather than reused (the server may have
    /// dropped it, and a request sent on a dead connection cannot always be retried safely).
    public var idleLifetime: Duration = .seconds(20)
    /// The largest response body accepted; a larger one fails the request.
    public var maxResponseBytes = 64 << 20

    public init() {}
}

/// A small blocking HTTP/1.1 client over POSIX sockets for the control plane, built on the
/// project's own codecs (`HTTPRequestHead` serialisation, `HTTPResponseParser` with chunked
/// bodies). Requests reuse keep-alive connections from a pool, so concurrent callers each get
/// their own; a stream (`openStream`) gets a dedicated connection.
final class BlockingHTTPClient: Sendable {
    let host: String
    let port: Int
    let settings: HTTPClientSettings
    private let idle = Mutex<[IdleConnection]>([])

    private struct IdleConnection: @unchecked Sendable {
        // Invariant: an idle connection is owned by the pool alone until taken out of it.
        var socket: BlockingSocket
        var since: ContinuousClock.Instant
    }

    init(host: String, port: Int, settings: HTTPClientSettings) {
        self.host = host
        self.port = port
        self.settings = settings
    }

    struct Response {
        var status: Int
        var body: Data
    }

    /// POSTs `body` (JSON) to `path` and returns the whole response.
    func post(_ path: String, body: Data) throws(StoreFailure) -> Response {
        let request = Self.request(path, body: body, keepAlive: true)
        let (socket, reused) = try takeConnection()
        do throws(StoreFailure) {
            let (response, reusable) = try exchange(socket, request)
            if reusable { putBack(socket) } else { socket.close() }
            return response
        } catch {
            socket.close()
            // A pooled connection the server closed fails before any answer: send once more on
            // a fresh one. Only a reused connection is retried, and only once.
            guard reused else { throw error }
            let fresh = try connect()
            let (response, reusable) = try exchange(fresh, request)
            if reusable { putBack(fresh) } else { fresh.close() }
            return response
        }
    }

    /// POSTs `body` and hands the response body to `onBody` piece by piece until the response
    /// ends, the connection closes or `stream.cancel()` is called from another thread. Returns
    /// the response status (the body of a non-200 answer is still handed over).
    func stream(_ path: String, body: Data, on stream: HTTPStream,
                onHead: (Int) -> Void, onBody: (UnsafeRawBufferPointer) -> Void) throws(StoreFailure) {
        let socket = try BlockingSocket(host: host, port: port, connectTimeout: settings.connectTimeout, ioTimeout: nil)
        guard stream.attach(socket) else { return }
        defer { stream.detach() }
        try socket.writeAll(Self.request(path, body: body, keepAlive: false))
        var parser = HTTPResponseParser()
        parser.expectResponse(toMethod: "POST")
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 1)
        defer { buffer.deallocate() }
        while true {
            let n: Int
            do {
                n = try socket.read(into: buffer)
            } catch {
                // A cancelled stream's socket is shut down; the peer's next write draws a reset.
                if stream.isCancelled { return }
                throw error
            }
            if n == 0 { return }
            var input = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            do {
                while let event = try parser.next(from: &input) {
                    switch event {
                    case .head(let head): onHead(head.status)
                    case .body(let piece): onBody(piece)
                    case .end, .upgrade: return
                    }
                }
            } catch {
                throw .unavailable("etcd \(socket.peer): malformed HTTP response: \(error)")
            }
        }
    }

    // MARK: One exchange

    /// Sends one request and reads its response; also says whether the connection may be reused.
    private func exchange(_ socket: BlockingSocket, _ request: [UInt8]) throws(StoreFailure) -> (Response, Bool) {
        try socket.writeAll(request)
        var parser = HTTPResponseParser()
        parser.expectResponse(toMethod: "POST")
        var status = 0
        var keepAlive = false
        var body = Data()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 << 10, alignment: 1)
        defer { buffer.deallocate() }
        let limit = settings.maxResponseBytes
        while true {
            let n = try socket.read(into: buffer)
            if n == 0 {
                // The server closed: a close-delimited body ends here, anything else was cut.
                if (try? parser.finish()) != nil, status != 0 { return (Response(status: status, body: body), false) }
                throw .unavailable("etcd \(socket.peer) closed the connection before answering in full")
            }
            var input = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            while true {
                let next: HTTPResponseParserEvent?
                do {
                    next = try parser.next(from: &input)
                } catch {
                    throw .unavailable("etcd \(socket.peer): malformed HTTP response: \(error)")
                }
                guard let event = next else { break }
                switch event {
                case .head(let head):
                    if head.isInformational { continue }
                    status = head.status
                    keepAlive = head.keepAlive
                case .body(let piece):
                    guard body.count + piece.count <= limit else {
                        throw .unavailable("etcd \(socket.peer): response larger than \(limit) bytes")
                    }
                    body.append(contentsOf: piece)
                case .end:
                    // Bytes after the response were never asked for: do not reuse the connection.
                    if status != 0 { return (Response(status: status, body: body), keepAlive && input.isEmpty) }
                case .upgrade:
                    throw .unavailable("etcd \(socket.peer): unexpected protocol switch")
                }
            }
        }
    }

    private static func request(_ path: String, body: Data, keepAlive: Bool) -> [UInt8] {
        var headers: HTTPHeaders = ["Host": "etcd", "Content-Type": "application/json",
                                    "Content-Length": String(body.count)]
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        var bytes = HTTPRequestHead(method: "POST", target: path, headers: headers).serialized
        bytes.append(contentsOf: body)
        return bytes
    }

    // MARK: Pool

    private func takeConnection() throws(StoreFailure) -> (BlockingSocket, reused: Bool) {
        let now = ContinuousClock.now
        let lifetime = settings.idleLifetime
        let taken: BlockingSocket? = idle.withLock { pool in
            while let c = pool.popLast() {
                if now - c.since < lifetime { return c.socket }
                c.socket.close()
            }
            return nil
        }
        if let taken { return (taken, true) }
        return (try connect(), false)
    }

    private func connect() throws(StoreFailure) -> BlockingSocket {
        try BlockingSocket(host: host, port: port, connectTimeout: settings.connectTimeout, ioTimeout: settings.ioTimeout)
    }

    private func putBack(_ socket: BlockingSocket) {
        let keep = settings.maxIdleConnections
        let kept = idle.withLock { pool in
            guard pool.count < keep else { return false }
            pool.append(IdleConnection(socket: socket, since: .now))
            return true
        }
        if !kept { socket.close() }
    }

    func closeIdle() {
        let all = idle.withLock { pool in
            defer { pool.removeAll() }
            return pool
        }
        for c in all { c.socket.close() }
    }
}

/// A streaming response another thread can stop: `cancel` shuts the socket down, which ends the
/// blocked read in `BlockingHTTPClient.stream`.
final class HTTPStream: Sendable {
    private let state = Mutex<(socket: BlockingSocket?, cancelled: Bool)>((nil, false))

    init() {}

    /// Returns false if the stream was already cancelled (the caller then stops).
    fileprivate func attach(_ socket: BlockingSocket) -> Bool {
        state.withLock { s in
            if s.cancelled {
                socket.close()
                return false
            }
            s.socket = socket
            return true
        }
    }

    fileprivate func detach() {
        let socket = state.withLock { s in
            defer { s.socket = nil }
            return s.socket
        }
        socket?.close()
    }

    var isCancelled: Bool { state.withLock { $0.cancelled } }

    func cancel() {
        state.withLock { s in
            s.cancelled = true
            s.socket?.shutdown()
        }
    }
}
