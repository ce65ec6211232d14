import Dispatch
import LariatRuntime
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Name resolution off the loop thread, so the target policy can judge every address a name
/// resolves to before anything is dialled.
///
/// Workaround: libuv's `uv_getaddrinfo` runs inside `TCPConnection.connect`, which neither
/// exposes the addresses nor lets us veto one. This calls the blocking `getaddrinfo(3)` on a
/// Dispatch worker and posts the answer back through the loop's executor.
final class Resolver {
    enum Failure: Error, Sendable, CustomStringConvertible {
        case lookup(code: Int32, message: String)

        var description: String {
            switch self {
            case .lookup(_, let message): message
            }
        }
    }

    let loop: UVLoop
    private var pending: [Int: (Result<[IPAddress], Failure>) -> Void] = [:]
    private var nextToken = 0

    init(loop: UVLoop) {
        self.loop = loop
    }

    /// `completion` runs on the loop thread with the addresses in resolver order (no duplicates).
    /// `host` is a name that passed `TargetHost.parse` (address literals are never looked up).
    func resolve(_ host: String, _ completion: @escaping (Result<[IPAddress], Failure>) -> Void) {
        let token = nextToken
        nextToken += 1
        pending[token] = completion
        let box = LoopBound(self, loop: loop)
        let loop = self.loop
        DispatchQueue.global().async {
            let result = Self.blockingLookup(host)
            loop.execute {
                // On the loop thread again: the only place `box.value` is touched.
                let resolver = box.value
                resolver.pending.removeValue(forKey: token)?(result)
            }
        }
    }

    static func blockingLookup(_ host: String) -> Result<[IPAddress], Failure> {
        // getaddrinfo would read only up to a NUL and look up a different name than the one
        // judged; `TargetHost.parse` refuses these first, this keeps it true for any caller.
        guard !host.utf8.contains(0) else {
            return .failure(.lookup(code: EAI_NONAME, message: "lookup \(host.logQuoted): NUL in the name"))
        }
        var hints = addrinfo()
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, nil, &hints, &list)
        guard rc == 0 else {
            let message = String(cString: gai_strerror(rc))
            return .failure(.lookup(code: rc, message: "lookup \(host): \(message)"))
        }
        defer { freeaddrinfo(list) }
        var out: [IPAddress] = []
        var node = list
        while let info = node {
            if let sa = info.pointee.ai_addr {
                var ip: IPAddress?
                switch Int32(sa.pointee.sa_family) {
                case AF_INET:
                    ip = UnsafeRawPointer(sa).withMemoryRebound(to: sockaddr_in.self, capacity: 1) { v4 in
                        withUnsafeBytes(of: v4.pointee.sin_addr) { IPAddress(bytes: Array($0)) }
                    }
                case AF_INET6:
                    ip = UnsafeRawPointer(sa).withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { v6 in
                        withUnsafeBytes(of: v6.pointee.sin6_addr) { IPAddress(bytes: Array($0)) }
                    }
                default: break
                }
                if let ip, !out.contains(ip) { out.append(ip) }
            }
            node = info.pointee.ai_next
        }
        if out.isEmpty { return .failure(.lookup(code: 0, message: "lookup \(host): no addresses")) }
        return .success(out)
    }
}
