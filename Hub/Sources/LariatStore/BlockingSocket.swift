import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A blocking TCP client socket for the control plane's store client (never the data path,
/// which runs on libuv loops). Every sockaddr cast of the store lives here. Connects with a
/// deadline, then reads and writes with per-call timeouts (`SO_RCVTIMEO`/`SO_SNDTIMEO`).
/// Used by one thread at a time; `shutdown` may come from another to wake a blocked read.
final class BlockingSocket: @unchecked Sendable {
    // Invariant: `fd` is written only by init and close, which run on the owning thread after
    // every other use; `shutdown` from another thread only reads it.
    private(set) var fd: Int32
    let peer: String

    /// Connects to a numeric IPv4/IPv6 address (`localhost` means 127.0.0.1; names are not
    /// resolved, so nothing here waits on DNS).
    init(host: String, port: Int, connectTimeout: Duration, ioTimeout: Duration?) throws(StoreFailure) {
        let ip = host == "localhost" ? "127.0.0.1" : host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        peer = ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
        var storage = sockaddr_storage()
        var length: socklen_t = 0
        let family: Int32 = withUnsafeMutableBytes(of: &storage) { raw in
            let v4 = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self)
            if inet_pton(AF_INET, ip, &v4.pointee.sin_addr) == 1 {
                v4.pointee.sin_family = sa_family_t(AF_INET)
                v4.pointee.sin_port = in_port_t(UInt16(port).bigEndian)
                length = socklen_t(MemoryLayout<sockaddr_in>.size)
                return AF_INET
            }
            let v6 = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self)
            if inet_pton(AF_INET6, ip, &v6.pointee.sin6_addr) == 1 {
                v6.pointee.sin6_family = sa_family_t(AF_INET6)
                v6.pointee.sin6_port = in_port_t(UInt16(port).bigEndian)
                length = socklen_t(MemoryLayout<sockaddr_in6>.size)
                return AF_INET6
            }
            return -1
        }
        guard family >= 0, (1...65535).contains(port) else {
            throw .invalid("etcd endpoint \(host):\(port): give a numeric IP address and a port")
        }
        #if canImport(Glibc)
        fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        fd = socket(family, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw .unavailable("socket for \(peer): \(String(cString: strerror(errno)))") }
        do throws(StoreFailure) {
            try connect(storage, length, timeout: connectTimeout)
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            if let ioTimeout {
                var tv = Self.timeval(ioTimeout)
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            }
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    /// Non-blocking connect, poll for the deadline, then back to blocking mode.
    private func connect(_ storage: sockaddr_storage, _ length: socklen_t, timeout: Duration) throws(StoreFailure) {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        var address = storage
        let rc = withUnsafePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) }
        }
        if rc != 0 {
            guard errno == EINPROGRESS else { throw unavailable("connect") }
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let ms = Int32(clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
            let ready = poll(&pfd, 1, ms)
            if ready == 0 { throw .unavailable("connect to \(peer): no answer within \(timeout)") }
            guard ready > 0 else { throw unavailable("connect") }
            var soError: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &len)
            if soError != 0 {
                throw .unavailable("connect to \(peer): \(String(cString: strerror(soError)))")
            }
        }
        _ = fcntl(fd, F_SETFL, flags)
    }

    func writeAll(_ bytes: [UInt8]) throws(StoreFailure) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw unavailable(errno == EAGAIN || errno == EWOULDBLOCK ? "write timed out" : "write")
            }
            offset += n
        }
    }

    /// Reads what is available into `buffer` (blocking until something is, the timeout, or EOF).
    /// Returns the count, 0 at EOF.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(StoreFailure) -> Int {
        while true {
            let n = recv(fd, buffer.baseAddress, buffer.count, 0)
            if n >= 0 { return n }
            if errno == EINTR { continue }
            throw unavailable(errno == EAGAIN || errno == EWOULDBLOCK ? "no answer in time" : "read")
        }
    }

    /// Wakes a read blocked in another thread (it returns EOF).
    func shutdown() {
        if fd >= 0 { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
    }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    private func unavailable(_ what: String) -> StoreFailure {
        .unavailable("\(what) \(peer): \(String(cString: strerror(errno)))")
    }

    private static func timeval(_ d: Duration) -> Glibc.timeval {
        let (s, atto) = d.components
        return Glibc.timeval(tv_sec: Int(s), tv_usec: Int(atto / 1_000_000_000_000))
    }
}
