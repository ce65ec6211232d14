import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import LariatRuntime

@Suite struct TCPTests {
    @Test(arguments: Transport.allCases)
    func echoEightMiB(transport: Transport) throws {
        let total = 8 * 1024 * 1024
        let harness = LoopHarness()
        let client = BulkClient(sendTotal: total, expectReceive: total)
        var protocolVersion = ""
        try harness.run {
            let listener = try harness.listen(transport) { EchoServer() }
            client.onDone = { harness.finish() }
            harness.connect(transport, port: listener.port, handler: client) { stream in
                if let tls = stream as? TLSConnection {
                    tls.onHandshakeComplete = { protocolVersion = $0.engine.protocolVersion }
                }
                client.pump(stream)
            }
        }
        #expect(!harness.timedOut)
        #expect(client.error == nil, "\(String(describing: client.error))")
        #expect(client.sent == total)
        #expect(client.received == total)
        #expect(!client.corrupt)
        #expect(client.gotEOF)
        #expect(client.closeCount == 1)
        switch transport {
        case .plain: break
        case .tls12: #expect(protocolVersion == "TLSv1.2")
        case .tls13: #expect(protocolVersion == "TLSv1.3")
        }
    }

    /// The client half-closes right after its request and must still get the whole reply,
    /// which the server only starts sending once it has seen the client's EOF.
    @Test(arguments: Transport.allCases)
    func halfCloseStillReceivesFullReply(transport: Transport) throws {
        let request = 1024 * 1024 + 17
        let reply = 3 * 1024 * 1024 + 5
        let harness = LoopHarness()
        let client = BulkClient(sendTotal: request, expectReceive: reply)
        var server: ReplyAfterEOFServer?
        try harness.run {
            let listener = try harness.listen(transport) {
                let handler = ReplyAfterEOFServer(replySize: reply)
                server = handler
                return handler
            }
            client.onDone = { harness.finish() }
            harness.connect(transport, port: listener.port, handler: client) { client.pump($0) }
        }
        #expect(!harness.timedOut)
        #expect(client.error == nil, "\(String(describing: client.error))")
        #expect(server?.requestBytes == request)
        #expect(server?.requestCorrupt == false)
        #expect(client.received == reply)
        #expect(!client.corrupt)
        #expect(client.gotEOF)
    }

    @Test func connectRefusedIsTypedError() throws {
        let harness = LoopHarness()
        var failure: UVError?
        harness.run {
            // Grab a free port, then stop listening on it.
            let listener = try! TCPListener(loop: harness.loop, port: 0) { $0.close() }
            let port = listener.port
            listener.close()
            TCPConnection.connect(loop: harness.loop, host: "127.0.0.1", port: port) { result in
                if case .failure(let error) = result { failure = error }
                if case .success(let connection) = result { connection.close() }
                harness.finish()
            }
        }
        #expect(!harness.timedOut)
        #expect(failure?.name == "ECONNREFUSED")
        #expect(failure?.description.contains("connect") == true)
    }

    /// "localhost" goes through uv_getaddrinfo; if ::1 comes first it is refused (we listen on
    /// IPv4 only) and the connector must fall through to 127.0.0.1.
    @Test func connectByNameTriesEachAddress() throws {
        let harness = LoopHarness()
        var connectedTo: SocketAddress?
        var failure: UVError?
        try harness.run {
            let listener = try TCPListener(loop: harness.loop, host: "127.0.0.1", port: 0) { $0.close() }
            harness.onFinish { listener.close() }
            TCPConnection.connect(loop: harness.loop, host: "localhost", port: listener.port) { result in
                switch result {
                case .success(let connection):
                    connectedTo = connection.remoteAddress
                    connection.close()
                case .failure(let error):
                    failure = error
                }
                harness.finish()
            }
        }
        #expect(failure == nil)
        #expect(connectedTo?.ipString == "127.0.0.1")
    }

    @Test func listenOnIPv6Loopback() throws {
        let harness = LoopHarness()
        var received = 0
        var skipped = false
        harness.run {
            guard let listener = try? TCPListener(loop: harness.loop, host: "::1", port: 0, onAccept: { $0.close() }) else {
                skipped = true  // no IPv6 in this environment
                harness.finish()
                return
            }
            harness.onFinish { listener.close() }
            #expect(listener.localAddress.isIPv6)
            TCPConnection.connect(loop: harness.loop, host: "::1", port: listener.port) { result in
                if case .success(let connection) = result {
                    received = connection.remoteAddress?.port ?? 0
                    connection.close()
                }
                harness.finish()
            }
        }
        #expect(skipped || received > 0)
    }

    @Test func notSentLowWatermarkCanBeSet() throws {
        let harness = LoopHarness()
        var applied = false
        try harness.run {
            let listener = try TCPListener(loop: harness.loop, port: 0) { $0.close() }
            harness.onFinish { listener.close() }
            TCPConnection.connect(loop: harness.loop, host: "127.0.0.1", port: listener.port) { result in
                if case .success(let connection) = result {
                    applied = connection.setNotSentLowWatermark(128 * 1024)
                    connection.close()
                }
                harness.finish()
            }
        }
        #expect(applied)
    }
}

/// Closes the connection from inside its first read callback.
final class CloseOnFirstRead: ByteStreamHandler {
    private(set) var reads = 0
    private(set) var closes = 0
    var onClose: () -> Void = {}
    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        reads += 1
        stream.close()
        stream.close()  // idempotent
        stream.write(bytes)  // dropped after close
    }
    func streamDidReadEOF(_ stream: any ByteStream) {}
    func streamDidClose(_ stream: any ByteStream) {
        closes += 1
        onClose()
    }
}

@Suite struct TCPEdgeTests {
    @Test func closeInsideReadCallbackGivesExactlyOneClose() throws {
        let harness = LoopHarness()
        let server = CloseOnFirstRead()
        let client = FailureRecorder()
        try harness.run(deadlineMilliseconds: 10_000) {
            let listener = try harness.listen(.plain) { server }
            server.onClose = { harness.loop.schedule(afterMilliseconds: 20) { harness.finish() } }
            harness.connect(.plain, port: listener.port, handler: client) { $0.write([UInt8](repeating: 7, count: 1000)) }
        }
        #expect(!harness.timedOut)
        #expect(server.reads == 1)
        #expect(server.closes == 1)
        #expect(client.closed == 1)
    }

    /// A listening socket whose accept queue is full drops SYNs, so further connects hang
    /// until the connector's deadline.
    @Test func connectTimeoutIsReported() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        var address = SocketAddress(ip: "127.0.0.1", port: 0)!.storage
        let length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutableBytes(of: &address) { raw in
            bind(fd, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), length)
        }
        #expect(bound == 0)
        #expect(listen(fd, 0) == 0)
        var port = 0
        var size = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutableBytes(of: &address) { raw in
            getsockname(fd, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), &size)
        }
        port = SocketAddress(copying: withUnsafeBytes(of: &address) {
            $0.baseAddress!.assumingMemoryBound(to: sockaddr.self)
        })!.port

        let harness = LoopHarness()
        var results: [Result<TCPConnection, UVError>] = []
        let attempts = 6
        let started = UVLoop.now
        harness.run(deadlineMilliseconds: 10_000) {
            for _ in 0..<attempts {
                TCPConnection.connect(loop: harness.loop, host: "127.0.0.1", port: port, timeoutMilliseconds: 300) { result in
                    results.append(result)
                    if case .success(let connection) = result { connection.close() }
                    if results.count == attempts { harness.finish() }
                }
            }
        }
        let elapsed = (UVLoop.now - started) / 1_000_000
        let timeouts = results.filter { if case .failure(let e) = $0 { return e.name == "ETIMEDOUT" }; return false }
        #expect(!harness.timedOut)
        #expect(results.count == attempts)
        #expect(timeouts.count >= 1, "\(results)")
        #expect(elapsed >= 250 && elapsed < 5_000)
    }
}
