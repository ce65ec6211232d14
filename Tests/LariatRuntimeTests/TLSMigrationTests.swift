import Testing
import Synchronization
@testable import LariatRuntime
#if canImport(Glibc)
import Glibc
#endif

/// The server side of a conversation, first phase: echoes the first `threshold` bytes on the
/// accepting loop, then pauses, waits until its replies have left, and moves the TLS session
/// to another loop, handing over what it read beyond the threshold.
final class MigrateAfterThreshold: ByteStreamHandler {
    let threshold: Int
    /// Gets the session in transit and the bytes read past the threshold, on the source loop.
    var onMigrated: (MigratingTLSConnection, [UInt8]) -> Void = { _, _ in }
    private var seen = 0
    private var leftover: [UInt8] = []
    private var migrating = false
    /// Attempts refused because replies were still buffered (expected under load, not an error).
    private(set) var refusals = 0
    private(set) var closeCalls = 0
    private(set) var callbacksAfterMigration = 0
    private var migrated = false

    init(threshold: Int) { self.threshold = threshold }

    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        if migrated { callbacksAfterMigration += 1 }
        if migrating {
            leftover += bytes  // a paused TLS connection delivers nothing more, but a stream may
            return
        }
        let take = min(bytes.count, threshold - seen)
        stream.write(UnsafeRawBufferPointer(rebasing: bytes[..<take]))
        seen += take
        guard seen == threshold else { return }
        leftover += bytes[take...]
        migrating = true
        stream.pauseReading()
        tryMigrating(stream)
    }

    func streamDidDrain(_ stream: any ByteStream) {
        if migrated { callbacksAfterMigration += 1 }
        if migrating && !migrated { tryMigrating(stream) }
    }

    private func tryMigrating(_ stream: any ByteStream) {
        guard let tls = stream as? TLSConnection else { return }
        guard let moving = tls.detachForMigration() else {
            refusals += 1  // replies still buffered: streamDidDrain tries again
            return
        }
        migrated = true
        onMigrated(moving, leftover)
    }

    func streamDidReadEOF(_ stream: any ByteStream) { if migrated { callbacksAfterMigration += 1 } }
    func streamDidFail(_ stream: any ByteStream, _ error: StreamError) { if migrated { callbacksAfterMigration += 1 } }
    func streamDidClose(_ stream: any ByteStream) { closeCalls += 1 }
}

/// Facts recorded on the worker loop's thread, read by the test after both loops stopped.
final class WorkerRecord: Sendable {
    let adoptedOnWorkerThread = Atomic<Bool>(false)
    let adoptError = Atomic<Bool>(false)
    let secondAdoptRefused = Atomic<Bool>(false)
    var adoptedOnWorker: Bool { adoptedOnWorkerThread.load(ordering: .relaxed) }
    var adoptFailed: Bool { adoptError.load(ordering: .relaxed) }
    var secondAdoptWasRefused: Bool { secondAdoptRefused.load(ordering: .relaxed) }
}

/// A worker loop on its own thread for the duration of a test. Stop it before reading what
/// it recorded (idempotent).
final class WorkerLoop {
    let loop = UVLoop(name: "migration-worker")
    private var running = true
    init() { loop.startThread() }
    func stop() {
        guard running else { return }
        running = false
        loop.stop()
        loop.join()
    }
}

@Suite struct TLSMigrationTests {
    private func context(_ transport: Transport) -> TLSContext {
        transport == .tls12 ? TLSFixture.shared.client12 : TLSFixture.shared.client13
    }

    /// A bulk echo conversation: the server's session moves from the test's loop to a worker
    /// loop after 200 KB, while the client keeps sending; every byte comes back in order, and
    /// the client sees one clean end (the close_notify the worker sends at the very end).
    @Test(arguments: [Transport.tls12, .tls13])
    func conversationContinuesOnAnotherLoop(transport: Transport) throws {
        let worker = WorkerLoop()
        defer { worker.stop() }
        let record = WorkerRecord()
        let harness = LoopHarness()
        let total = 1_000_000
        let client = BulkClient(sendTotal: total, expectReceive: total)
        let first = MigrateAfterThreshold(threshold: 200_000)
        var oldConnection: TLSConnection?
        try harness.run(deadlineMilliseconds: 20_000) {
            let listener = try TCPListener(loop: harness.loop, host: "127.0.0.1", port: 0) { tcp in
                let tls = try! TLSConnection(transport: tcp, context: TLSFixture.shared.serverContext)
                oldConnection = tls
                tls.start(handler: first)
            }
            harness.onFinish { listener.close() }
            first.onMigrated = { moving, leftover in
                let workerLoop = worker.loop
                workerLoop.execute {
                    record.adoptedOnWorkerThread.store(workerLoop.isInLoopThread, ordering: .relaxed)
                    guard let tls = try? moving.adopt(on: workerLoop) else {
                        record.adoptError.store(true, ordering: .relaxed)
                        return
                    }
                    tls.write(leftover)  // before start: it precedes what the engine still holds
                    tls.start(handler: EchoServer())
                }
            }
            client.onDone = { harness.finish() }
            harness.connect(transport, port: listener.port, handler: client, context: context(transport)) { client.pump($0) }
        }
        worker.stop()
        #expect(!harness.timedOut)
        #expect(client.error == nil, "\(String(describing: client.error))")
        #expect(client.received == total)
        #expect(!client.corrupt)
        #expect(client.gotEOF)
        #expect(record.adoptedOnWorker)
        #expect(!record.adoptFailed)
        #expect(first.closeCalls == 0, "the first handler must hear nothing after the move")
        #expect(first.callbacksAfterMigration == 0)
        #expect(oldConnection?.isClosed == true)
        #expect(oldConnection?.detachForMigration() == nil)
    }

    /// Two requests sent back to back; the server answers the first, pauses, and moves. The
    /// second request is still ciphertext inside the engine then, and the adopted connection
    /// delivers it before reading the socket again.
    @Test(arguments: [Transport.tls12, .tls13])
    func requestStillInTheEngineIsDeliveredAfterTheMove(transport: Transport) throws {
        let worker = WorkerLoop()
        defer { worker.stop() }
        let record = WorkerRecord()
        let harness = LoopHarness()
        // Four full records of plaintext buffer minus one record: the first delivery holds
        // exactly this request once the records are all there (TLSConnection gathers records
        // while a full one still fits).
        let firstRequest = TLSConnection.plaintextBufferSize - TLSConnection.recordSize / 4
        let secondRequest = 5_000
        let reply = ReplyCollector()
        let first = AnswerThenMove(requestSize: firstRequest)
        var carried = -1
        try harness.run(deadlineMilliseconds: 20_000) {
            let listener = try TCPListener(loop: harness.loop, host: "127.0.0.1", port: 0) { tcp in
                let tls = try! TLSConnection(transport: tcp, context: TLSFixture.shared.serverContext)
                // Read nothing until the client has sent both requests, so they are all there.
                tls.onHandshakeComplete = { $0.pauseReading() }
                first.connection = tls
                tls.start(handler: first)
            }
            harness.onFinish { listener.close() }
            first.onMigrated = { moving, leftover in
                carried = moving.bufferedCiphertextBytes
                // This loop reuses its read buffer at once, as another connection's read would:
                // the moving session must not still be reading from it.
                memset(harness.loop.readBuffer, 0xEE, UVLoop.readBufferSize)
                let workerLoop = worker.loop
                workerLoop.execute {
                    record.adoptedOnWorkerThread.store(workerLoop.isInLoopThread, ordering: .relaxed)
                    guard let tls = try? moving.adopt(on: workerLoop) else {
                        record.adoptError.store(true, ordering: .relaxed)
                        return
                    }
                    let second = AnswerThenMove(requestSize: secondRequest, offset: firstRequest)
                    // What the first handler read past its request comes before what the engine holds.
                    if !leftover.isEmpty { leftover.withUnsafeBytes { second.streamDidRead(tls, $0) } }
                    tls.start(handler: second)
                }
            }
            reply.onDone = { harness.finish() }
            harness.connect(transport, port: listener.port, handler: reply, context: context(transport)) { stream in
                // Written after the handshake, so records start where the requests start.
                (stream as? TLSConnection)?.onHandshakeComplete = { tls in
                    Pattern.withWindow(offset: 0, count: firstRequest) { tls.write($0) }
                    Pattern.withWindow(offset: firstRequest, count: secondRequest) { tls.write($0) }
                    // Both are on the wire once the client's socket took them; then let the server read.
                    harness.loop.schedule(afterMilliseconds: 100) { first.connection?.resumeReading() }
                }
            }
        }
        worker.stop()
        #expect(!harness.timedOut)
        #expect(reply.error == nil, "\(String(describing: reply.error))")
        #expect(reply.text == "got \(firstRequest) at 0\ngot \(secondRequest) at \(firstRequest)\n")
        #expect(carried > 0, "the second request should have moved as ciphertext inside the engine")
        #expect(first.closeCalls == 0)
        #expect(record.adoptedOnWorker)
        #expect(!record.adoptFailed)
    }

    /// While replies wait in the write backlog the session cannot move (they would be lost or
    /// reordered); the connection is left as it was and finishes normally.
    @Test func migrationIsRefusedWhileWritesAreBuffered() throws {
        let harness = LoopHarness()
        let size = 8 * 1024 * 1024
        let client = ReadWhenToldClient(expect: size)
        let server = FloodThenTryMigrating(size: size)
        try harness.run(deadlineMilliseconds: 20_000) {
            let listener = try harness.listen(.tls13) { server }
            client.onDone = { harness.finish() }
            harness.connect(.tls13, port: listener.port, handler: client) { stream in
                stream.write(Array("go".utf8))
                // The server floods a client that does not read: its backlog stays full until this.
                harness.loop.schedule(afterMilliseconds: 200) { client.startReading(stream) }
            }
        }
        #expect(!harness.timedOut)
        #expect(server.bufferedWhenTried > 0)
        #expect(server.refusedWhileBuffered)
        #expect(!server.closedByRefusal)
        #expect(server.refusedAfterShutdown)
        #expect(client.received == size)
        #expect(!client.corrupt)
        #expect(client.gotEOF)
        #expect(client.error == nil, "\(String(describing: client.error))")
    }

    /// A session nobody adopts: discarding it (or dropping the last reference) closes the
    /// socket; the client sees the end without a close_notify, i.e. a truncation error.
    @Test(arguments: [true, false])
    func discardClosesTheSocket(explicitly: Bool) throws {
        let worker = WorkerLoop()
        defer { worker.stop() }
        let harness = LoopHarness()
        let client = FailureRecorder()
        let first = MigrateAfterThreshold(threshold: 5)
        var detachedCount = 0
        let workerLoop = worker.loop
        let record = WorkerRecord()
        try harness.run(deadlineMilliseconds: 10_000) {
            let listener = try TCPListener(loop: harness.loop, host: "127.0.0.1", port: 0) { tcp in
                let tls = try! TLSConnection(transport: tcp, context: TLSFixture.shared.serverContext)
                tls.start(handler: first)
            }
            harness.onFinish { listener.close() }
            first.onMigrated = { moving, _ in
                detachedCount += 1
                workerLoop.execute {
                    if explicitly {
                        moving.discard()
                        moving.discard()  // idempotent
                        do throws(UVError) { _ = try moving.adopt(on: workerLoop) } catch {
                            record.secondAdoptRefused.store(error.name == "EBADF", ordering: .relaxed)
                        }
                    }
                    // Otherwise the closure's release drops the last reference.
                }
            }
            client.onDone = { harness.finish() }
            harness.connect(.tls13, port: listener.port, handler: client) { $0.write(Array("hello".utf8)) }
        }
        worker.stop()
        #expect(!harness.timedOut)
        #expect(detachedCount == 1)
        #expect(first.closeCalls == 0)
        #expect(record.secondAdoptWasRefused == explicitly)
        // Either the TLS layer reports the missing close_notify, or the socket was reset.
        switch client.error {
        case .tls(let error)?: #expect(error.kind == .unexpectedEOF, "\(error)")
        case .uv(let error)?: #expect(error.name == "ECONNRESET", "\(error)")
        case nil: Issue.record("the client saw a clean end: a close_notify was sent")
        }
    }

    /// Plain TCP: a started connection moves mid-stream, bytes the kernel held go with it.
    @Test func startedTCPConnectionMovesMidStream() throws {
        let worker = WorkerLoop()
        defer { worker.stop() }
        let harness = LoopHarness()
        let total = 600_000
        let client = BulkClient(sendTotal: total, expectReceive: total)
        let first = TCPMoveAfterThreshold(threshold: 100_000)
        try harness.run(deadlineMilliseconds: 20_000) {
            let listener = try TCPListener(loop: harness.loop, host: "127.0.0.1", port: 0) { tcp in
                tcp.start(handler: first)
            }
            harness.onFinish { listener.close() }
            first.onMigrated = { socket, leftover in
                let workerLoop = worker.loop
                workerLoop.execute {
                    guard let tcp = try? TCPConnection.adopt(socket, loop: workerLoop) else { return }
                    tcp.write(leftover)
                    tcp.start(handler: EchoServer())
                }
            }
            client.onDone = { harness.finish() }
            harness.connect(.plain, port: listener.port, handler: client) { client.pump($0) }
        }
        worker.stop()
        #expect(!harness.timedOut)
        #expect(client.error == nil, "\(String(describing: client.error))")
        #expect(client.received == total)
        #expect(!client.corrupt)
        #expect(first.closeCalls == 0)
    }
}

/// Reads one request of `requestSize` pattern bytes (at pattern `offset`), answers with a line,
/// and moves (when `onMigrated` is set) right after answering, from inside the read callback.
final class AnswerThenMove: ByteStreamHandler {
    let requestSize: Int
    let offset: Int
    var onMigrated: ((MigratingTLSConnection, [UInt8]) -> Void)?
    var connection: TLSConnection?
    private var seen = 0
    private var corrupt = false
    private(set) var closeCalls = 0

    init(requestSize: Int, offset: Int = 0) {
        self.requestSize = requestSize
        self.offset = offset
    }

    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        guard seen < requestSize else { return }
        let take = min(bytes.count, requestSize - seen)
        if !Pattern.matches(UnsafeRawBufferPointer(rebasing: bytes[..<take]), at: offset + seen) { corrupt = true }
        seen += take
        guard seen == requestSize else { return }
        stream.write(Array("got \(requestSize)\(corrupt ? " corrupt" : "") at \(offset)\n".utf8))
        guard let onMigrated, let tls = stream as? TLSConnection else { return }
        stream.pauseReading()
        connection = nil
        guard let moving = tls.detachForMigration() else { return }
        onMigrated(moving, Array(bytes[take...]))
    }

    func streamDidReadEOF(_ stream: any ByteStream) { stream.close() }
    func streamDidClose(_ stream: any ByteStream) { closeCalls += 1 }
}

/// Collects the server's reply lines; done after the second line.
final class ReplyCollector: ByteStreamHandler {
    private(set) var text = ""
    private(set) var error: StreamError?
    var onDone: () -> Void = {}
    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        text += String(decoding: bytes, as: UTF8.self)
        if text.filter({ $0 == "\n" }).count >= 2 { onDone() }
    }
    func streamDidReadEOF(_ stream: any ByteStream) { onDone() }
    func streamDidFail(_ stream: any ByteStream, _ error: StreamError) {
        self.error = error
        onDone()
    }
    func streamDidClose(_ stream: any ByteStream) { onDone() }
}

/// On "go", writes `size` pattern bytes at once (the client is not reading, so most of them
/// stay in the write backlog), tries to move (refused), then half-closes; after the backlog
/// drained it checks that a half-closed session cannot move either.
final class FloodThenTryMigrating: ByteStreamHandler {
    let size: Int
    private(set) var bufferedWhenTried = 0
    private(set) var refusedWhileBuffered = false
    private(set) var closedByRefusal = false
    private(set) var refusedAfterShutdown = false
    private var flooded = false

    init(size: Int) { self.size = size }

    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        guard !flooded else { return }
        flooded = true
        var offset = 0
        while offset < size {
            let count = min(32 * 1024, size - offset)
            Pattern.withWindow(offset: offset, count: count) { stream.write($0) }
            offset += count
        }
        bufferedWhenTried = stream.bufferedWriteBytes
        refusedWhileBuffered = (stream as? TLSConnection)?.detachForMigration() == nil
        closedByRefusal = stream.isClosed
        stream.shutdownWrite()
    }

    func streamDidDrain(_ stream: any ByteStream) {
        refusedAfterShutdown = (stream as? TLSConnection)?.detachForMigration() == nil && !stream.isClosed
    }

    func streamDidReadEOF(_ stream: any ByteStream) { stream.close() }
    func streamDidClose(_ stream: any ByteStream) {}
}

/// Starts paused; counts pattern bytes until EOF once told to read.
final class ReadWhenToldClient: ByteStreamHandler {
    let expect: Int
    private(set) var received = 0
    private(set) var corrupt = false
    private(set) var gotEOF = false
    private(set) var error: StreamError?
    private var reading = false
    var onDone: () -> Void = {}

    init(expect: Int) { self.expect = expect }

    func startReading(_ stream: any ByteStream) {
        reading = true
        stream.resumeReading()
    }

    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        if !reading {
            // Not yet: stop after the handshake's first bytes so the server's backlog fills.
            stream.pauseReading()
        }
        if !Pattern.matches(bytes, at: received) { corrupt = true }
        received += bytes.count
    }

    func streamDidReadEOF(_ stream: any ByteStream) {
        gotEOF = true
        onDone()
    }

    func streamDidFail(_ stream: any ByteStream, _ error: StreamError) {
        self.error = error
        onDone()
    }

    func streamDidClose(_ stream: any ByteStream) { onDone() }
}

/// Plain TCP version of `MigrateAfterThreshold`.
final class TCPMoveAfterThreshold: ByteStreamHandler {
    let threshold: Int
    var onMigrated: (DetachedSocket, [UInt8]) -> Void = { _, _ in }
    private var seen = 0
    private var leftover: [UInt8] = []
    private var migrating = false
    private var migrated = false
    private(set) var closeCalls = 0

    init(threshold: Int) { self.threshold = threshold }

    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        if migrating {
            leftover += bytes
            return
        }
        let take = min(bytes.count, threshold - seen)
        stream.write(UnsafeRawBufferPointer(rebasing: bytes[..<take]))
        seen += take
        guard seen == threshold else { return }
        leftover += bytes[take...]
        migrating = true
        stream.pauseReading()
        tryMigrating(stream)
    }

    func streamDidDrain(_ stream: any ByteStream) { if migrating && !migrated { tryMigrating(stream) } }

    private func tryMigrating(_ stream: any ByteStream) {
        guard let socket = (stream as? TCPConnection)?.detachForMigration() else { return }
        migrated = true
        onMigrated(socket, leftover)
    }

    func streamDidReadEOF(_ stream: any ByteStream) {}
    func streamDidClose(_ stream: any ByteStream) { closeCalls += 1 }
}
