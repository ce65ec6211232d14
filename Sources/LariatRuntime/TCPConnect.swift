import CLibUV
#if canImport(Glibc)
import Glibc
#endif

extension TCPConnection {
    /// Connects to `host:port` on `loop` (loop thread only). Names are resolved with
    /// uv_getaddrinfo (IPv4 and IPv6); addresses are tried in order until one answers. The whole
    /// attempt, resolution included, fails with ETIMEDOUT after `timeoutMilliseconds`.
    /// `completion` runs exactly once, on the loop thread; on success the connection is open
    /// but not reading until `start(handler:)`.
    public static func connect(loop: UVLoop, host: String, port: Int, timeoutMilliseconds: UInt64 = 10_000,
                               _ completion: @escaping (Result<TCPConnection, UVError>) -> Void) {
        TCPConnectAttempt(loop: loop, host: host, port: port, completion: completion)
            .start(timeoutMilliseconds: timeoutMilliseconds)
    }
}

/// One connect operation: resolve, try each address, enforce the deadline.
/// Kept alive by its timer callback (and the getaddrinfo request) until it finishes.
final class TCPConnectAttempt {
    private let loop: UVLoop
    private let host: String
    private let port: Int
    private var completion: ((Result<TCPConnection, UVError>) -> Void)?
    private let timer: UVTimer
    private var addresses: [SocketAddress] = []
    private var nextIndex = 0
    private var current: TCPConnection?
    private var lastError = UVError(code: UV_EAI_NONAME.rawValue, operation: "getaddrinfo")

    init(loop: UVLoop, host: String, port: Int, completion: @escaping (Result<TCPConnection, UVError>) -> Void) {
        loop.assertConfined()
        self.loop = loop
        self.host = host
        self.port = port
        self.completion = completion
        timer = UVTimer(loop: loop)
    }

    func start(timeoutMilliseconds: UInt64) {
        timer.start(afterMilliseconds: timeoutMilliseconds) { [self] in
            current?.close()
            finish(.failure(.timedOut("connect")))
        }
        if let address = SocketAddress(ip: host, port: port) {
            addresses = [address]
            tryNextAddress()
        } else {
            resolve()
        }
    }

    private func resolve() {
        let request = UnsafeMutablePointer<uv_getaddrinfo_t>.allocate(capacity: 1)
        request.pointee.data = retainedContext(self)
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        let rc = uv_getaddrinfo(loop.raw, request, { request, status, list in
            let request = request.unsafelyUnwrapped
            let data = request.pointee.data
            withContext(data, as: TCPConnectAttempt.self) { $0.didResolve(status: status, list: list) }
            uv_freeaddrinfo(list)
            releaseContext(data, as: TCPConnectAttempt.self)
            request.deallocate()
        }, host, nil, &hints)
        if rc < 0 {
            releaseContext(request.pointee.data, as: TCPConnectAttempt.self)
            request.deallocate()
            finish(.failure(UVError(code: rc, operation: "getaddrinfo")))
        }
    }

    private func didResolve(status: Int32, list: UnsafeMutablePointer<addrinfo>?) {
        guard completion != nil else { return }  // timed out meanwhile
        if status < 0 {
            finish(.failure(UVError(code: status, operation: "getaddrinfo")))
            return
        }
        addresses = socketAddresses(from: list, port: port)
        tryNextAddress()
    }

    private func tryNextAddress() {
        guard completion != nil else { return }
        guard nextIndex < addresses.count else {
            finish(.failure(lastError))
            return
        }
        let address = addresses[nextIndex]
        nextIndex += 1
        let connection = TCPConnection(loop: loop)
        current = connection
        connection.connect(to: address) { [self] error in
            current = nil
            if let error {
                connection.close()
                lastError = error
                tryNextAddress()
            } else {
                finish(.success(connection))
            }
        }
    }

    private func finish(_ result: Result<TCPConnection, UVError>) {
        guard let completion else { return }
        self.completion = nil
        timer.close()  // drops the timer callback, which held this attempt
        completion(result)
    }
}
