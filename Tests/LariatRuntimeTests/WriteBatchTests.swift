import Testing
@testable import LariatRuntime

/// Echoes each read back in 100-byte pieces from inside the read callback, and half-closes
/// inside the read callback once the request (whose length it knows) is complete: every
/// write and the shutdown land in one write batch.
private final class PiecewiseEchoServer: ByteStreamHandler {
    let requestSize: Int
    private(set) var echoed = 0
    private(set) var bufferedInsideCallback = 0
    private(set) var drainsWithEmptyBacklog = 0
    private(set) var drainsWithBacklog = 0
    private(set) var batchWasOpen = false

    init(requestSize: Int) { self.requestSize = requestSize }

    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + 100)
            stream.write(UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))
            offset = end
        }
        echoed += bytes.count
        bufferedInsideCallback = max(bufferedInsideCallback, stream.bufferedWriteBytes)
        batchWasOpen = batchWasOpen || stream.loop.writeBatch.isOpen
        if echoed == requestSize { stream.shutdownWrite() }
    }

    func streamDidDrain(_ stream: any ByteStream) {
        if stream.bufferedWriteBytes == 0 { drainsWithEmptyBacklog += 1 } else { drainsWithBacklog += 1 }
    }

    func streamDidReadEOF(_ stream: any ByteStream) {}
    func streamDidClose(_ stream: any ByteStream) {}
}

@Suite struct WriteBatchTests {
    /// Writes made inside a read callback wait for the callback to return (the writer sees
    /// them as buffered), then leave in order; the writer hears `streamDidDrain` once they are
    /// gone, as it would for a queued write; a half-close made in the same callback follows them.
    @Test(arguments: Transport.allCases)
    func writesInsideAReadCallbackAreCoalescedThenDrained(transport: Transport) throws {
        let total = 256 * 1024 + 37
        let harness = LoopHarness()
        let server = PiecewiseEchoServer(requestSize: total)
        let client = BulkClient(sendTotal: total, expectReceive: total)
        try harness.run {
            let listener = try harness.listen(transport) { server }
            client.onDone = { harness.finish() }
            harness.connect(transport, port: listener.port, handler: client) { client.pump($0) }
        }
        #expect(!harness.timedOut)
        #expect(client.error == nil, "\(String(describing: client.error))")
        #expect(client.received == total)
        #expect(!client.corrupt)
        #expect(client.gotEOF)
        #expect(server.batchWasOpen)
        #expect(server.bufferedInsideCallback > 0)
        #expect(server.drainsWithEmptyBacklog > 0)
        #expect(!harness.loop.writeBatch.isOpen)
    }

    /// A connection that writes once per read callback (a reply, a keystroke) sends it at once
    /// and never allocates a write queue: ten thousand idle streams must not each hold one.
    @Test func oneWritePerCallbackNeedsNoWriteQueue() throws {
        let harness = LoopHarness()
        let client = BulkClient(sendTotal: 64 * 1024, expectReceive: 64 * 1024)
        var served: [TCPConnection] = []
        try harness.run {
            let listener = try TCPListener(loop: harness.loop, port: 0) { tcp in
                harness.track(tcp)
                served.append(tcp)
                tcp.start(handler: EchoServer())
            }
            harness.onFinish { listener.close() }
            client.onDone = { harness.finish() }
            harness.connect(.plain, port: listener.port, handler: client) { client.pump($0) }
        }
        #expect(client.received == 64 * 1024)
        #expect(served.count == 1)
        #expect(served.first?.writeQueueAllocatedBytes == 0)
    }

    /// A handler that writes twice in its read callback and then closes: the second write was
    /// only coalesced, and `close()` must still offer it to the kernel.
    @Test func closeInsideTheCallbackSendsWhatWasCoalesced() throws {
        final class AnswerTwiceThenClose: ByteStreamHandler {
            func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
                stream.write(Array("first ".utf8))
                stream.write(Array("second".utf8))
                stream.close()
            }
            func streamDidReadEOF(_ stream: any ByteStream) {}
            func streamDidClose(_ stream: any ByteStream) {}
        }
        final class Collector: ByteStreamHandler {
            var received: [UInt8] = []
            var onEnd: () -> Void = {}
            func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) { received += bytes }
            func streamDidReadEOF(_ stream: any ByteStream) { onEnd() }
            func streamDidFail(_ stream: any ByteStream, _ error: StreamError) { onEnd() }
            func streamDidClose(_ stream: any ByteStream) {}
        }
        let harness = LoopHarness()
        let client = Collector()
        try harness.run {
            let listener = try harness.listen(.plain) { AnswerTwiceThenClose() }
            client.onEnd = { harness.finish() }
            harness.connect(.plain, port: listener.port, handler: client) { $0.write([0x3F]) }
        }
        #expect(!harness.timedOut)
        #expect(String(decoding: client.received, as: UTF8.self) == "first second")
    }

    /// Outside any read callback nothing is deferred: a write on a healthy socket is handed to
    /// the kernel at once.
    @Test func writesOutsideReadCallbacksGoStraightOut() throws {
        let harness = LoopHarness()
        let client = BulkClient(sendTotal: 0, expectReceive: 0)
        var bufferedAfterWrite = -1
        try harness.run {
            let listener = try harness.listen(.plain) { EchoServer() }
            harness.connect(.plain, port: listener.port, handler: client) { stream in
                stream.write([UInt8](repeating: 1, count: 1000))
                bufferedAfterWrite = stream.bufferedWriteBytes
                harness.finish()
            }
        }
        #expect(bufferedAfterWrite == 0)
    }
}

/// Answers the first read with borrowed writes of a scratch buffer (20 pieces), a plain write
/// after piece 4 (it sends the borrowed ones before it), then flushes the borrowed writes and scribbles over the scratch buffer
/// before half-closing. Small pieces all wait as iovecs until the flush; 100 KiB pieces are
/// more than the socket takes at once, so the part the kernel refuses is copied at the flush.
private final class BorrowingAnswerer: ByteStreamHandler {
    static let pieces = 20
    let pieceSize: Int
    private var scratch: [UInt8]
    private var answered = false
    private(set) var bufferedBeforeFlush = 0
    private(set) var heldIovecsBeforeFlush = false
    private(set) var heldIovecsAfterFlush = true

    init(pieceSize: Int) {
        self.pieceSize = pieceSize
        scratch = [UInt8](repeating: 0, count: Self.pieces * pieceSize)
    }

    static func plainWrite(after piece: Int) -> [UInt8]? { piece == 4 ? Array("plain-\(piece)".utf8) : nil }

    func expected() -> [UInt8] {
        var out: [UInt8] = []
        for i in 0..<Self.pieces {
            out += [UInt8](repeating: UInt8(i), count: pieceSize)
            if let plain = Self.plainWrite(after: i) { out += plain }
        }
        return out
    }

    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        guard !answered else { return }
        answered = true
        let size = pieceSize
        scratch.withUnsafeMutableBytes { all in
            for i in 0..<Self.pieces {
                let piece = UnsafeMutableRawBufferPointer(rebasing: all[(i * size)..<((i + 1) * size)])
                piece.initializeMemory(as: UInt8.self, repeating: UInt8(i))
                stream.writeBorrowing(UnsafeRawBufferPointer(piece))
                if let plain = Self.plainWrite(after: i) { stream.write(plain) }
            }
            bufferedBeforeFlush = stream.bufferedWriteBytes
            heldIovecsBeforeFlush = (stream as? TCPConnection)?.holdsIovecs ?? false
            stream.loop.flushBorrowedWrites()
            heldIovecsAfterFlush = (stream as? TCPConnection)?.holdsIovecs ?? true
            all.initializeMemory(as: UInt8.self, repeating: 0xEE)  // the caller may reuse it now
        }
        stream.shutdownWrite()
    }
    func streamDidReadEOF(_ stream: any ByteStream) {}
    func streamDidClose(_ stream: any ByteStream) {}
}

@Suite struct BorrowedWriteTests {
    /// Borrowed writes leave in order with the plain writes between them, and nothing is read
    /// from the caller's buffer after `flushBorrowedWrites`: scribbling over it then changes
    /// nothing the peer receives. The half-close follows them all.
    @Test(arguments: [512, 100 * 1024])
    func borrowedWritesKeepOrderAndSurviveReuseAfterTheFlush(pieceSize: Int) throws {
        final class Collector: ByteStreamHandler {
            var received: [UInt8] = []
            var gotEOF = false
            var onEnd: () -> Void = {}
            func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) { received += bytes }
            func streamDidReadEOF(_ stream: any ByteStream) { gotEOF = true; onEnd() }
            func streamDidFail(_ stream: any ByteStream, _ error: StreamError) { onEnd() }
            func streamDidClose(_ stream: any ByteStream) {}
        }
        let harness = LoopHarness()
        let client = Collector()
        let server = BorrowingAnswerer(pieceSize: pieceSize)
        try harness.run {
            let listener = try harness.listen(.plain) { server }
            client.onEnd = { harness.finish() }
            harness.connect(.plain, port: listener.port, handler: client) { $0.write([0x3F]) }
        }
        #expect(!harness.timedOut)
        #expect(client.gotEOF)
        let expected = server.expected()
        #expect(client.received.count == expected.count)
        let firstDifference = zip(client.received, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        #expect(firstDifference == nil, "borrowed bytes were lost, reordered or read after the flush (first difference at byte \(firstDifference ?? -1))")
        #expect(server.bufferedBeforeFlush > 0, "borrowed writes count as buffered until the flush")
        // The iovec array is the loop's, lent only while writes wait: an idle connection holds none.
        #expect(server.heldIovecsBeforeFlush && !server.heldIovecsAfterFlush)
    }
}

@Suite struct ByteQueueTests {
    /// Large storage survives small uses mixed with large ones (a busy connection), and is freed
    /// after a run of small uses (the connection went quiet); small storage is always kept.
    @Test func largeStorageIsFreedOnlyAfterARunOfLightUses() {
        let queue = ByteQueue()
        let big = [UInt8](repeating: 7, count: 200 * 1024)
        big.withUnsafeBytes { queue.append($0) }
        queue.reset(afterUsing: big.count)
        let held = queue.allocatedBytes
        #expect(held >= big.count)
        for _ in 0..<7 { queue.reset(afterUsing: 10) }
        big.withUnsafeBytes { queue.append($0) }
        queue.reset(afterUsing: big.count)   // a large use ends the run
        for _ in 0..<7 { queue.reset(afterUsing: 10) }
        #expect(queue.allocatedBytes == held)
        queue.reset(afterUsing: 10)
        #expect(queue.allocatedBytes == 0)

        [UInt8](repeating: 1, count: 1000).withUnsafeBytes { queue.append($0) }
        for _ in 0..<20 { queue.reset(afterUsing: 1) }
        #expect(queue.allocatedBytes > 0)    // 16 KiB is not worth giving back
    }
}

/// A handler that offers its own buffer for every read (`streamReadBuffer`), as a tunnel
/// stream's bridge offers its send buffer, and records what came into it.
private final class OwnBufferReader: ByteStreamHandler {
    let own = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
    private(set) var offers = 0
    private(set) var unused = 0
    private(set) var readsElsewhere = 0
    private(set) var received: [UInt8] = []
    private(set) var gotEOF = false
    var onEnd: () -> Void = {}
    deinit { own.deallocate() }

    func streamReadBuffer(_ stream: any ByteStream) -> UnsafeMutableRawBufferPointer? {
        offers += 1
        return own
    }
    func streamDidNotUseReadBuffer(_ stream: any ByteStream) { unused += 1 }
    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        if bytes.baseAddress != UnsafeRawPointer(own.baseAddress) { readsElsewhere += 1 }
        received += bytes
    }
    func streamDidReadEOF(_ stream: any ByteStream) { gotEOF = true; onEnd() }
    func streamDidFail(_ stream: any ByteStream, _ error: StreamError) { onEnd() }
    func streamDidClose(_ stream: any ByteStream) {}
}

@Suite struct HandlerReadBufferTests {
    /// Bytes land in the buffer the handler offered; the read that finds the end of stream
    /// brings nothing, and the handler hears that its buffer went unused (a bridge gives its
    /// send-buffer block back then), before the EOF.
    @Test func readsLandInTheOfferedBufferAndAnUnusedOfferIsReported() throws {
        final class SendThenClose: ByteStreamHandler {
            func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {}
            func streamDidReadEOF(_ stream: any ByteStream) {}
            func streamDidClose(_ stream: any ByteStream) {}
        }
        let harness = LoopHarness()
        let reader = OwnBufferReader()
        let payload = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try harness.run {
            let listener = try harness.listen(.plain) { reader }
            reader.onEnd = { harness.finish() }
            harness.connect(.plain, port: listener.port, handler: SendThenClose()) { stream in
                stream.write(payload)
                stream.shutdownWrite()
            }
        }
        #expect(!harness.timedOut)
        #expect(reader.received == payload)
        #expect(reader.gotEOF)
        #expect(reader.readsElsewhere == 0, "a read went to the loop's buffer although the handler offered its own")
        #expect(reader.offers > 0)
        #expect(reader.unused >= 1, "the read that found the end of stream did not report the offer unused")
    }
}
