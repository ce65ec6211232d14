import COpenSSL
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Blocking POSIX sockets for test clients and targets: simple, and independent of the code
/// under test (the runtime is tested on its own).
struct Socket: ~Copyable {
    let fd: Int32

    init(fd: Int32) { self.fd = fd }

    /// Connects to 127.0.0.1:port with a receive timeout, so a test can never hang on a read.
    static func connect(port: Int, receiveTimeout: Double = 20) throws -> Socket {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else {
            let e = errno
            Glibc.close(fd)
            throw TestFailure("connect to port \(port): \(String(cString: strerror(e)))")
        }
        let s = Socket(fd: fd)
        s.setReceiveTimeout(receiveTimeout)
        return s
    }

    func setReceiveTimeout(_ seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    func send(_ bytes: UnsafeRawBufferPointer) throws {
        var off = 0
        while off < bytes.count {
            let n = Glibc.send(fd, bytes.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL))
            if n < 0 {
                if errno == EINTR { continue }
                throw TestFailure("send: \(String(cString: strerror(errno)))")
            }
            off += n
        }
    }

    func send(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try send($0) } }

    /// Reads up to `max` bytes: `.data(n)`, `.eof`, or `.error(errno)` (EAGAIN = timed out).
    enum ReadResult: Equatable { case data(Int), eof, error(Int32) }
    func receive(into buf: UnsafeMutableRawBufferPointer) -> ReadResult {
        while true {
            let n = recv(fd, buf.baseAddress!, buf.count, 0)
            if n > 0 { return .data(n) }
            if n == 0 { return .eof }
            if errno == EINTR { continue }
            return .error(errno)
        }
    }

    func shutdownWrite() { _ = Glibc.shutdown(fd, Int32(SHUT_WR)) }

    deinit { Glibc.close(fd) }
}

/// Incremental SHA-256 (OpenSSL EVP) to compare large transfers without keeping them.
final class StreamHash: @unchecked Sendable {
    // Invariant: one thread updates a given hash at a time.
    private let ctx: OpaquePointer
    private(set) var count = 0
    init() {
        ctx = EVP_MD_CTX_new()
        EVP_DigestInit_ex(ctx, EVP_sha256(), nil)
    }
    func update(_ b: UnsafeRawBufferPointer) {
        EVP_DigestUpdate(ctx, b.baseAddress, b.count)
        count += b.count
    }
    func finish() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var len: UInt32 = 0
        EVP_DigestFinal_ex(ctx, &out, &len)
        return out
    }
    deinit { EVP_MD_CTX_free(ctx) }
}

func fillRandom(_ buf: UnsafeMutableRawBufferPointer) {
    _ = RAND_bytes(buf.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(buf.count))
}

/// Runs `body` on a new thread; `join()` waits for it and rethrows its error.
final class Worker: @unchecked Sendable {
    // Invariant: `error` is written by the worker thread before `done` is signalled, read after.
    private var error: Error?
    private let done = DispatchSemaphore(value: 0)
    init(_ body: @escaping @Sendable () throws -> Void) {
        let t = Thread { [self] in
            do { try body() } catch { self.error = error }
            self.done.signal()
        }
        t.stackSize = 1 << 20
        t.start()
    }
    func join(timeout: Double = 120) throws {
        guard done.wait(timeout: .now() + timeout) == .success else { throw TestFailure("worker did not finish within \(timeout) s") }
        if let error { throw error }
    }
}

/// A target server (what sits behind the agent), one thread per connection.
///   .echo          echo everything until EOF, then half-close
///   .duplex(n)     concurrently: hash everything received until EOF, and send n random bytes (hashed), then half-close
///   .replyAfterEOF read until EOF, then send back the byte count and SHA-256 of what was received, then close
///   .source        send random data until the peer goes away
final class TargetServer: @unchecked Sendable {
    enum Mode: Sendable { case echo, duplex(Int), replyAfterEOF, source }
    struct Record: Sendable { var receivedHash: [UInt8]; var receivedCount: Int; var sentHash: [UInt8]; var sentCount: Int }

    // Invariant: `listener` is fixed after init; `records` is under its mutex.
    private let listener: AcceptLoop
    private let mode: Mode
    let records = Mutex<[Record]>([])
    let accepted = Atomic<Int>(0)

    var port: Int { listener.port }

    init(mode: Mode) throws {
        self.mode = mode
        listener = try AcceptLoop()
        listener.start { [self] c in
            accepted.add(1, ordering: .relaxed)
            let t = Thread { [self] in self.serve(Socket(fd: c)) }
            t.stackSize = 1 << 20
            t.start()
        }
    }

    func stop() { listener.stop() }

    private func serve(_ s: consuming Socket) {
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 * 1024, alignment: 16)
        defer { buf.deallocate() }
        s.setReceiveTimeout(60)
        switch mode {
        case .echo:
            while case .data(let n) = s.receive(into: buf) {
                guard (try? s.send(UnsafeRawBufferPointer(rebasing: buf[0..<n]))) != nil else { return }
            }
            s.shutdownWrite()
            usleep(200_000)
        case .replyAfterEOF:
            let h = StreamHash()
            while case .data(let n) = s.receive(into: buf) { h.update(UnsafeRawBufferPointer(rebasing: buf[0..<n])) }
            let digest = h.finish()
            try? s.send(Array("\(h.count) \(digest.map { String(format: "%02x", $0) }.joined())\n".utf8))
            s.shutdownWrite()
            usleep(200_000)
        case .duplex(let total):
            let fd = s.fd
            let sentHash = StreamHash()
            let sender = Worker {
                let out = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
                defer { out.deallocate() }
                var left = total
                let sock = Socket(fd: dup(fd))
                while left > 0 {
                    let n = min(left, out.count)
                    fillRandom(UnsafeMutableRawBufferPointer(rebasing: out[0..<n]))
                    sentHash.update(UnsafeRawBufferPointer(rebasing: out[0..<n]))
                    try sock.send(UnsafeRawBufferPointer(rebasing: out[0..<n]))
                    left -= n
                }
                sock.shutdownWrite()
            }
            let h = StreamHash()
            while case .data(let n) = s.receive(into: buf) { h.update(UnsafeRawBufferPointer(rebasing: buf[0..<n])) }
            try? sender.join(timeout: 300)
            let rec = Record(receivedHash: h.finish(), receivedCount: h.count, sentHash: sentHash.finish(), sentCount: sentHash.count)
            records.withLock { $0.append(rec) }
            usleep(200_000)
        case .source:
            fillRandom(buf)
            while (try? s.send(UnsafeRawBufferPointer(buf))) != nil {}
        }
    }

    deinit { if !listener.isStopped { stop() } }
}

/// A loopback listener whose accept loop runs on its own thread, for the test servers.
/// `stop()` shuts the socket down, which wakes the blocked `accept` so the thread ends.
final class AcceptLoop: @unchecked Sendable {
    // Invariant: `fd` and `port` are fixed after init; `stopped` is an atomic.
    let port: Int
    private let fd: Int32
    private let stopped = Atomic<Bool>(false)

    init(backlog: Int32 = 512) throws {
        (fd, port) = try listenOnLoopback(backlog: backlog)
    }

    var isStopped: Bool { stopped.load(ordering: .relaxed) }

    /// Starts the accept thread; `onAccept` runs on it with each accepted descriptor, so it
    /// should hand the connection to a thread of its own. Separate from `init` so a server can
    /// capture itself in `onAccept` once it is fully initialised.
    func start(_ onAccept: @escaping @Sendable (Int32) -> Void) {
        Thread { [self] in
            while !self.isStopped {
                let c = accept(self.fd, nil, nil)
                if c < 0 { if errno == EINTR { continue } else { return } }
                onAccept(c)
            }
        }.start()
    }

    func stop() {
        stopped.store(true, ordering: .relaxed)
        Glibc.shutdown(fd, Int32(SHUT_RDWR))
        Glibc.close(fd)
    }
}

/// A listening socket on 127.0.0.1 with a port from the kernel.
func listenOnLoopback(backlog: Int32 = 512) throws -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(4))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let size = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, size) } }
    guard bound == 0, listen(fd, backlog) == 0 else { Glibc.close(fd); throw TestFailure("bind/listen: errno \(errno)") }
    var len = size
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return (fd, Int(UInt16(bigEndian: addr.sin_port)))
}

extension Array where Element == UInt8 {
    var hex: String { map { String(format: "%02x", $0) }.joined() }
}

/// Sends `bytes` through a forward on `port`, half-closes, and returns what came back before
/// EOF, or nil when the connection failed or was reset (the echo target behind it echoes).
func echoRoundTrip(port: Int, _ bytes: [UInt8], timeout: Double = 10) -> [UInt8]? {
    guard let s = try? Socket.connect(port: port, receiveTimeout: timeout), (try? s.send(bytes)) != nil else { return nil }
    s.shutdownWrite()
    let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
    defer { buf.deallocate() }
    var got: [UInt8] = []
    while true {
        switch s.receive(into: buf) {
        case .data(let n): got.append(contentsOf: buf[0..<n])
        case .eof: return got
        case .error: return nil
        }
    }
}
