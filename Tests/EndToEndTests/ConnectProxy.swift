import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A small HTTP CONNECT proxy with basic auth, like a corporate egress proxy: answers 407
/// without the right credentials, otherwise dials the requested loopback port and relays.
final class ConnectProxy: @unchecked Sendable {
    // Invariant: `listener` is fixed after init; counters are atomics.
    private let listener: AcceptLoop
    private let expectedAuth: String
    let tunnels = Atomic<Int>(0)
    let refusals = Atomic<Int>(0)

    var port: Int { listener.port }

    init(user: String, password: String) throws {
        expectedAuth = "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
        listener = try AcceptLoop(backlog: 64)
        listener.start { [self] c in Thread { [self] in self.handle(c) }.start() }
    }

    func stop() { listener.stop() }

    private func handle(_ fd: Int32) {
        let client = Socket(fd: fd)
        var head: [UInt8] = []
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        defer { buf.deallocate() }
        while !head.suffix(4).elementsEqual([13, 10, 13, 10]) {
            guard case .data(let n) = client.receive(into: UnsafeMutableRawBufferPointer(rebasing: buf[0..<1])) else { return }
            head.append(contentsOf: buf[0..<n])
            if head.count > 16384 { return }
        }
        let text = String(decoding: head, as: UTF8.self)
        let lines = text.components(separatedBy: "\r\n")
        let parts = lines[0].split(separator: " ")
        guard parts.count == 3, parts[0] == "CONNECT" else {
            try? client.send(Array("HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n".utf8))
            return
        }
        let auth = lines.first { $0.lowercased().hasPrefix("proxy-authorization:") }
            .map { String($0.dropFirst("proxy-authorization:".count)).trimmingCharacters(in: .whitespaces) }
        guard auth == expectedAuth else {
            refusals.add(1, ordering: .relaxed)
            try? client.send(Array("HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n".utf8))
            return
        }
        let hostPort = String(parts[1])
        guard let colon = hostPort.lastIndex(of: ":"), let port = Int(hostPort[hostPort.index(after: colon)...]),
              let upstream = try? Socket.connect(port: port, receiveTimeout: 300) else {
            try? client.send(Array("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n".utf8))
            return
        }
        tunnels.add(1, ordering: .relaxed)
        try? client.send(Array("HTTP/1.1 200 Connection established\r\n\r\n".utf8))
        client.setReceiveTimeout(300)
        let cfd = client.fd, ufd = upstream.fd
        let pump = Worker { relay(from: ufd, to: cfd) }
        relay(from: cfd, to: ufd)
        _ = try? pump.join(timeout: 600)
    }
}

/// Copies bytes until EOF or error, then half-closes the destination.
private func relay(from: Int32, to: Int32) {
    let buf = UnsafeMutableRawPointer.allocate(byteCount: 65536, alignment: 16)
    defer { buf.deallocate() }
    while true {
        let n = recv(from, buf, 65536, 0)
        if n <= 0 { break }
        var off = 0
        while off < n {
            let w = send(to, buf + off, n - off, Int32(MSG_NOSIGNAL))
            if w <= 0 { shutdown(to, Int32(SHUT_WR)); return }
            off += w
        }
    }
    shutdown(to, Int32(SHUT_WR))
}
