// All pointer casting for libuv lives in this file.
//
// libuv models inheritance with C struct prefixes (uv_tcp_t starts with the uv_stream_t fields,
// which start with the uv_handle_t fields). Swift cannot see that, so these helpers re-type the
// pointer. They also own the one convention for callback context: `handle->data` (or `req->data`)
// holds an Unmanaged reference to the Swift owner, and trampolines borrow it with
// `_withUnsafeGuaranteedRef` so a callback costs no retain/release and no weak load.
import CLibUV
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Handle "inheritance"

extension UnsafeMutablePointer where Pointee == uv_tcp_t {
    @inline(__always) var asStream: UnsafeMutablePointer<uv_stream_t> {
        UnsafeMutableRawPointer(self).assumingMemoryBound(to: uv_stream_t.self)
    }
    @inline(__always) var asHandle: UnsafeMutablePointer<uv_handle_t> {
        UnsafeMutableRawPointer(self).assumingMemoryBound(to: uv_handle_t.self)
    }
}

extension UnsafeMutablePointer where Pointee == uv_stream_t {
    @inline(__always) var asHandle: UnsafeMutablePointer<uv_handle_t> {
        UnsafeMutableRawPointer(self).assumingMemoryBound(to: uv_handle_t.self)
    }
}

extension UnsafeMutablePointer where Pointee == uv_timer_t {
    @inline(__always) var asHandle: UnsafeMutablePointer<uv_handle_t> {
        UnsafeMutableRawPointer(self).assumingMemoryBound(to: uv_handle_t.self)
    }
}

extension UnsafeMutablePointer where Pointee == uv_idle_t {
    @inline(__always) var asHandle: UnsafeMutablePointer<uv_handle_t> {
        UnsafeMutableRawPointer(self).assumingMemoryBound(to: uv_handle_t.self)
    }
}

extension UnsafeMutablePointer where Pointee == uv_async_t {
    @inline(__always) var asHandle: UnsafeMutablePointer<uv_handle_t> {
        UnsafeMutableRawPointer(self).assumingMemoryBound(to: uv_handle_t.self)
    }
}

extension UnsafeMutablePointer where Pointee == uv_signal_t {
    @inline(__always) var asHandle: UnsafeMutablePointer<uv_handle_t> {
        UnsafeMutableRawPointer(self).assumingMemoryBound(to: uv_handle_t.self)
    }
}

// MARK: - Unmanaged context in `data`

/// Stores a +1 reference to `owner` in a handle/request `data` slot. The owner therefore stays
/// alive for as long as libuv may call back; `releaseContext` drops it (in the close callback).
@inline(__always)
func retainedContext<T: AnyObject>(_ owner: T) -> UnsafeMutableRawPointer {
    Unmanaged.passRetained(owner).toOpaque()
}

/// Borrows the owner stored in `data` for the duration of `body`, with no ARC traffic.
/// Safe because the slot holds a +1 reference until the close callback releases it.
@inline(__always)
func withContext<T: AnyObject, R>(_ data: UnsafeMutableRawPointer?, as _: T.Type, _ body: (T) -> R) -> R {
    Unmanaged<T>.fromOpaque(data.unsafelyUnwrapped)._withUnsafeGuaranteedRef(body)
}

/// Drops the +1 reference taken by `retainedContext`. Must be the last use of the owner.
@inline(__always)
func releaseContext<T: AnyObject>(_ data: UnsafeMutableRawPointer?, as _: T.Type) {
    Unmanaged<T>.fromOpaque(data.unsafelyUnwrapped).release()
}

// MARK: - Buffers

@inline(__always)
func makeUVBuf(_ base: UnsafeRawPointer, _ count: Int) -> uv_buf_t {
    uv_buf_t(base: UnsafeMutableRawPointer(mutating: base).assumingMemoryBound(to: CChar.self), len: count)
}

// MARK: - Socket addresses

/// An IPv4 or IPv6 socket address (a `sockaddr_storage`), with the casts to `sockaddr*` kept here.
public struct SocketAddress: Sendable, CustomStringConvertible {
    var storage: sockaddr_storage

    /// Parses a numeric IPv4 ("127.0.0.1") or IPv6 ("::1") address. Returns nil for host names.
    public init?(ip: String, port: Int) {
        var storage = sockaddr_storage()
        let ok = withUnsafeMutableBytes(of: &storage) { raw -> Bool in
            let v4 = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self)
            if uv_inet_pton(AF_INET, ip, &v4.pointee.sin_addr) == 0 {
                return uv_ip4_addr(ip, Int32(port), v4) == 0
            }
            let v6 = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self)
            return uv_ip6_addr(ip, Int32(port), v6) == 0
        }
        guard ok else { return nil }
        self.storage = storage
    }

    /// Copies a kernel/libuv-provided address (from getaddrinfo, getsockname, ...).
    init?(copying address: UnsafePointer<sockaddr>) {
        let family = Int32(address.pointee.sa_family)
        let length: Int
        switch family {
        case AF_INET: length = MemoryLayout<sockaddr_in>.size
        case AF_INET6: length = MemoryLayout<sockaddr_in6>.size
        default: return nil
        }
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { raw in
            raw.baseAddress!.copyMemory(from: UnsafeRawPointer(address), byteCount: length)
        }
        self.storage = storage
    }

    public var isIPv6: Bool { Int32(storage.ss_family) == AF_INET6 }

    public var port: Int {
        withUnsafeBytes(of: storage) { raw in
            // sin_port and sin6_port sit at the same offset, in network byte order.
            let port = isIPv6
                ? raw.load(as: sockaddr_in6.self).sin6_port
                : raw.load(as: sockaddr_in.self).sin_port
            return Int(UInt16(bigEndian: port))
        }
    }

    /// The numeric host part ("127.0.0.1", "::1").
    public var ipString: String {
        var text = [CChar](repeating: 0, count: 64)
        withUnsafeBytes(of: storage) { raw in
            if isIPv6 {
                _ = uv_ip6_name(raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self), &text, text.count)
            } else {
                _ = uv_ip4_name(raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self), &text, text.count)
            }
        }
        return text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    public var description: String { isIPv6 ? "[\(ipString)]:\(port)" : "\(ipString):\(port)" }

    @inline(__always)
    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>) -> R) -> R {
        withUnsafeBytes(of: storage) { raw in
            body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self))
        }
    }

    /// getsockname/getpeername on a TCP handle.
    static func of(_ tcp: UnsafeMutablePointer<uv_tcp_t>, peer: Bool) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = Int32(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutableBytes(of: &storage) { raw -> Int32 in
            let sa = raw.baseAddress!.assumingMemoryBound(to: sockaddr.self)
            return peer ? uv_tcp_getpeername(tcp, sa, &length) : uv_tcp_getsockname(tcp, sa, &length)
        }
        guard rc == 0 else { return nil }
        return withUnsafeBytes(of: storage) { raw in
            SocketAddress(copying: raw.baseAddress!.assumingMemoryBound(to: sockaddr.self))
        }
    }
}

/// Walks a getaddrinfo result list into SocketAddress values (stream sockets only).
func socketAddresses(from list: UnsafeMutablePointer<addrinfo>?, port: Int) -> [SocketAddress] {
    var result: [SocketAddress] = []
    var node = list
    while let info = node {
        if let sa = info.pointee.ai_addr, var address = SocketAddress(copying: sa) {
            address.setPort(port)
            result.append(address)
        }
        node = info.pointee.ai_next
    }
    return result
}

extension SocketAddress {
    mutating func setPort(_ port: Int) {
        let networkPort = UInt16(port).bigEndian
        let v6 = isIPv6
        withUnsafeMutableBytes(of: &storage) { raw in
            if v6 {
                raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self).pointee.sin6_port = networkPort
            } else {
                raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self).pointee.sin_port = networkPort
            }
        }
    }
}

// MARK: - Threads

/// The calling thread's identity as an integer, so it can live in an `Atomic`.
@inline(__always)
func currentThreadID() -> UInt {
    #if canImport(Darwin)
    UInt(bitPattern: pthread_self())
    #else
    UInt(pthread_self())
    #endif
}
