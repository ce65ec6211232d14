import Testing
@testable import LariatRuntime

/// Echoes, and closes once the peer has finished and everything was sent back.
final class EchoThenClose: ByteStreamHandler {
    private var peerDone = false
    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) { stream.write(bytes) }
    func streamDidReadEOF(_ stream: any ByteStream) {
        peerDone = true
        if stream.bufferedWriteBytes == 0 { stream.close() }
    }
    func streamDidDrain(_ stream: any ByteStream) { if peerDone { stream.close() } }
    func streamDidClose(_ stream: any ByteStream) {}
}

/// Resets the connection on its first read.
final class ResetOnFirstRead: ByteStreamHandler {
    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) { stream.closeWithReset() }
    func streamDidReadEOF(_ stream: any ByteStream) {}
    func streamDidClose(_ stream: any ByteStream) {}
}

@Suite struct HandoffTests {
    /// Accept on the test's loop, serve on a worker loop thread via detach/adopt.
    @Test func detachedSocketIsServedByAnotherLoop() throws {
        let worker = UVLoop(name: "worker")
        worker.startThread()
        defer {
            worker.stop()
            worker.join()
        }
        let harness = LoopHarness()
        let client = BulkClient(sendTotal: 300_000, expectReceive: 300_000)
        var detachFailed = false
        try harness.run(deadlineMilliseconds: 10_000) {
            let listener = try TCPListener(loop: harness.loop, port: 0) { connection in
                guard let socket = connection.detach() else {
                    detachFailed = true
                    return
                }
                worker.execute {
                    guard let adopted = try? TCPConnection.adopt(socket, loop: worker) else { return }
                    adopted.start(handler: EchoThenClose())
                }
            }
            harness.onFinish { listener.close() }
            client.onDone = { harness.finish() }
            harness.connect(.plain, port: listener.port, handler: client) { client.pump($0) }
        }
        #expect(!detachFailed)
        #expect(client.error == nil, "\(String(describing: client.error))")
        #expect(client.received == 300_000)
        #expect(!client.corrupt)
        #expect(client.gotEOF)
    }

    @Test func adoptingTwiceFails() throws {
        let harness = LoopHarness()
        var secondAdopt: UVError?
        try harness.run(deadlineMilliseconds: 10_000) {
            let listener = try TCPListener(loop: harness.loop, port: 0) { connection in
                let socket = connection.detach()!
                let first = try! TCPConnection.adopt(socket, loop: harness.loop)
                first.close()
                do throws(UVError) { _ = try TCPConnection.adopt(socket, loop: harness.loop) } catch { secondAdopt = error }
                harness.finish()
            }
            harness.onFinish { listener.close() }
            TCPConnection.connect(loop: harness.loop, host: "127.0.0.1", port: listener.port) { result in
                if case .success(let connection) = result { harness.track(connection) }
            }
        }
        #expect(secondAdopt?.name == "EBADF")
    }

    @Test func closeWithResetIsSeenAsConnectionReset() throws {
        let harness = LoopHarness()
        let client = FailureRecorder()
        try harness.run(deadlineMilliseconds: 10_000) {
            let listener = try harness.listen(.plain) { ResetOnFirstRead() }
            client.onDone = { harness.finish() }
            harness.connect(.plain, port: listener.port, handler: client) { $0.write(Array("hello".utf8)) }
        }
        #expect(!harness.timedOut)
        guard case .uv(let error)? = client.error else {
            Issue.record("expected a socket error, got \(String(describing: client.error))")
            return
        }
        #expect(error.name == "ECONNRESET")
        #expect(client.closed == 1)
    }
}

/// First phase: takes the first byte, then hands the stream to the next phase from inside its
/// own callback (and nothing else keeps it alive), passing on whatever came with that byte —
/// a stream keeps no message boundaries (TLS gathers records), like the hub's HTTP upgrade
/// passing the bytes after the request head to the tunnel.
final class FirstPhase: ByteStreamHandler {
    let next: any ByteStreamHandler
    private(set) var firstBytes = 0
    init(next: any ByteStreamHandler) { self.next = next }
    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        firstBytes = 1
        stream.start(handler: next)
        firstBytes += 0  // still safe to touch self after the hand-over
        if bytes.count > 1 { next.streamDidRead(stream, UnsafeRawBufferPointer(rebasing: bytes[1...])) }
    }
    func streamDidReadEOF(_ stream: any ByteStream) {}
    func streamDidClose(_ stream: any ByteStream) {}
}

@Suite struct HandlerReplacementTests {
    @Test(arguments: Transport.allCases)
    func handlerCanBeReplacedFromInsideItsCallback(transport: Transport) throws {
        let harness = LoopHarness()
        let echo = EchoServer()
        let client = BulkClient(sendTotal: 500_000, expectReceive: 500_000)
        try harness.run(deadlineMilliseconds: 10_000) {
            let listener = try harness.listen(transport) { FirstPhase(next: echo) }
            client.onDone = { harness.finish() }
            // The first phase swallows one byte: send it first (it is not counted), then the
            // bulk stream, which may or may not arrive in the same read.
            harness.connect(transport, port: listener.port, handler: client) { stream in
                stream.write([0xFF])
                harness.loop.schedule(afterMilliseconds: 50) { client.pump(stream) }
            }
        }
        #expect(client.error == nil, "\(String(describing: client.error))")
        #expect(client.received == 500_000)
        #expect(!client.corrupt)
        #expect(client.closeCount == 1)
    }
}
