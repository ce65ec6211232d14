import COpenSSL
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A blocking TLS client over OpenSSL for tests that must behave badly on purpose (send a head
/// byte by byte, pipeline without reading, read raw): independent of the runtime under test.
/// The hub's CA is not checked (loopback only).
final class TLSTestClient {
    let fd: Int32
    private let context: OpaquePointer
    private let ssl: OpaquePointer

    /// Connects and completes the handshake; `sendTimeout` bounds a write the hub stopped reading.
    init(port: Int, sendTimeout: Int = 5, receiveTimeout: Double = 10) throws {
        signal(SIGPIPE, SIG_IGN)  // a write to a socket the hub reset must fail, not kill the test
        let s = try Socket.connect(port: port, receiveTimeout: receiveTimeout)
        fd = dup(s.fd)
        var tv = timeval(tv_sec: sendTimeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        context = SSL_CTX_new(TLS_client_method())!
        SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nil)
        ssl = SSL_new(context)!
        SSL_set_fd(ssl, fd)
        guard SSL_connect(ssl) == 1 else {
            SSL_free(ssl); SSL_CTX_free(context); close(fd)
            throw TestFailure("TLS handshake with the hub failed")
        }
    }

    /// Writes all of `bytes`; false once the hub stopped taking them (send timeout) or closed.
    @discardableResult
    func write(_ bytes: [UInt8]) -> Bool {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { SSL_write(ssl, $0.baseAddress, Int32($0.count)) }
            if n <= 0 { return false }
            off += Int(n)
        }
        return true
    }

    @discardableResult
    func write(_ text: String) -> Bool { write(Array(text.utf8)) }

    /// A response head, read byte by byte so that nothing after it is consumed.
    func readHead(limit: Int = 16 * 1024) -> [UInt8] {
        var head: [UInt8] = []
        var byte: UInt8 = 0
        while head.count < limit, !(head.count >= 4 && Array(head.suffix(4)) == [13, 10, 13, 10]) {
            guard SSL_read(ssl, &byte, 1) == 1 else { break }
            head.append(byte)
        }
        return head
    }

    /// Decrypted bytes until the hub closes (or the receive timeout passes).
    func readToEnd(limit: Int = 1 << 20) -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 16 * 1024)
        while out.count < limit {
            let n = SSL_read(ssl, &buf, Int32(buf.count))
            if n <= 0 { break }
            out.append(contentsOf: buf[0..<Int(n)])
        }
        return out
    }

    /// Whether the hub closed the TCP connection within `timeout` (raw reads below TLS reach
    /// EOF or a reset; anything read is discarded).
    func waitClosed(timeout: Double) -> Bool {
        var tv = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let deadline = Date().addingTimeInterval(timeout)
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        while Date() < deadline {
            let n = recv(fd, &buf, buf.count, 0)
            if n == 0 { return true }
            if n < 0, errno != EAGAIN, errno != EINTR { return true }
        }
        return false
    }

    deinit {
        SSL_free(ssl)
        SSL_CTX_free(context)
        close(fd)
    }
}

/// Whether the peer closed plain socket `fd` within `timeout` (EOF or reset).
func socketClosed(_ fd: Int32, within timeout: Double) -> Bool {
    var tv = timeval(tv_sec: 0, tv_usec: 100_000)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    let deadline = Date().addingTimeInterval(timeout)
    var buf = [UInt8](repeating: 0, count: 4096)
    while Date() < deadline {
        let n = recv(fd, &buf, buf.count, 0)
        if n == 0 { return true }
        if n < 0, errno != EAGAIN, errno != EINTR { return true }
    }
    return false
}

/// Resident memory of process `pid` in KiB (VmRSS).
func residentKiB(_ pid: Int32) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return 0 }
    return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
}
