import Testing
import CLibUV
@testable import LariatRuntime

/// Records every callback of one stream, in order.
private final class Recorder: ByteStreamHandler {
    enum Event: Equatable {
        case read(Int), eof, drain, fail(String), close
    }
    private(set) var events: [Event] = []
    private(set) var received: [UInt8] = []
    var onRead: (any ByteStream, UnsafeRawBufferPointer) -> Void = { _, _ in }
    var onEvent: (Event) -> Void = { _ in }

    var reads: [Int] { events.compactMap { if case .read(let n) = $0 { n } else { nil } } }
    var failures: [String] { events.compactMap { if case .fail(let name) = $0 { name } else { nil } } }
    func count(_ event: Event) -> Int { events.filter { $0 == event }.count }

    private func record(_ event: Event) {
        events.append(event)
        onEvent(event)
    }

    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        received.append(contentsOf: bytes)
        record(.read(bytes.count))
        onRead(stream, bytes)
    }
    func streamDidReadEOF(_ stream: any ByteStream) { record(.eof) }
    func streamDidDrain(_ stream: any ByteStream) { record(.drain) }
    func streamDidFail(_ stream: any ByteStream, _ error: StreamError) {
        if case .uv(let uv) = error { record(.fail(uv.name)) } else { record(.fail("\(error)")) }
    }
    func streamDidClose(_ stream: any ByteStream) { record(.close) }
}

private func patternBytes(_ count: Int) -> [UInt8] {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(count)
    while bytes.count < count {
        let n = min(Pattern.period, count - bytes.count)
        Pattern.withWindow(offset: bytes.count, count: n) { bytes.append(contentsOf: $0) }
    }
    return bytes
}

/// MemoryByteStream behaves as `ByteStream` documents and as a TCP connection does, with no
/// socket: delivery in read-sized chunks on later loop iterations, honest backpressure,
/// half-close, close, reset. Everything here follows from the order of calls alone.
@Suite struct MemoryByteStreamTests {
    /// Bytes arrive in order, never more than `readChunkBytes` per read, and never inside the
    /// `write` call that sent them; EOF follows the last byte of a half-close, and the other
    /// direction stays open until it half-closes too.
    @Test(arguments: [1, 1000, 16 * 1024, UVLoop.readBufferSize])
    func deliversInOrderInChunksThenEOF(chunk: Int) {
        let harness = LoopHarness()
        let sender = Recorder(), receiver = Recorder()
        let total = chunk == 1 ? 5000 : 300 * 1024 + 17
        var readsDuringWrite = 0
        harness.run {
            let (a, b) = MemoryByteStream.pair(loop: harness.loop, configuration: .init(readChunkBytes: chunk))
            a.start(handler: sender)
            b.start(handler: receiver)
            receiver.onEvent = { event in
                if event == .eof {
                    b.write([1, 2, 3])
                    b.shutdownWrite()
                }
                if event == .close && sender.count(.close) == 1 { harness.finish() }
            }
            sender.onEvent = { event in
                if event == .eof {
                    a.close()
                    b.close()
                }
                if event == .close && receiver.count(.close) == 1 { harness.finish() }
            }
            let before = receiver.events.count
            a.write(patternBytes(total))
            a.shutdownWrite()
            a.write([9])  // after the half-close: dropped
            readsDuringWrite = receiver.events.count - before
        }
        #expect(!harness.timedOut)
        #expect(readsDuringWrite == 0)
        #expect(receiver.received == patternBytes(total))
        #expect(receiver.reads.allSatisfy { $0 <= chunk })
        #expect(receiver.events.last(where: { $0 != .close }) == .eof)
        #expect(sender.received == [1, 2, 3])
        #expect(sender.count(.close) == 1 && receiver.count(.close) == 1)
        #expect(sender.failures.isEmpty && receiver.failures.isEmpty)
    }

    /// Up to `inFlightLimit` unread bytes are the socket buffers' part; the rest is the
    /// writer's backlog. It stays while the reader is paused, and `streamDidDrain` comes once,
    /// when the reader has taken it down to zero.
    @Test func backlogGrowsWhileThePeerIsPausedAndDrains() {
        let harness = LoopHarness()
        let writer = Recorder(), reader = Recorder()
        var backlogAfterWrite = -1
        var backlogWhilePaused = -1
        var unreadWhilePaused = -1
        harness.run {
            let (a, b) = MemoryByteStream.pair(loop: harness.loop, configuration: .init(readChunkBytes: 16 * 1024, inFlightLimit: 64 * 1024))
            a.start(handler: writer)
            b.start(handler: reader)
            b.pauseReading()
            a.write(patternBytes(200 * 1024))
            backlogAfterWrite = a.bufferedWriteBytes
            // Later, nothing has moved: the reader is paused.
            harness.loop.schedule(afterMilliseconds: 0) {
                backlogWhilePaused = a.bufferedWriteBytes
                unreadWhilePaused = b.unreadBytes
                b.resumeReading()
            }
            writer.onEvent = { event in
                if event == .drain {
                    #expect(a.bufferedWriteBytes == 0)
                    // The drain comes as soon as the backlog is gone, before the last in-flight bytes are read.
                    #expect(b.unreadBytes > 0)
                    a.shutdownWrite()
                }
            }
            reader.onEvent = { event in
                if event == .eof { harness.finish() }
            }
            harness.onFinish { a.close(); b.close() }
        }
        #expect(!harness.timedOut)
        #expect(backlogAfterWrite == (200 - 64) * 1024)
        #expect(backlogWhilePaused == (200 - 64) * 1024)
        #expect(unreadWhilePaused == 200 * 1024)
        #expect(writer.count(.drain) == 1)
        #expect(reader.received == patternBytes(200 * 1024))
    }

    /// A paused reader is not read to, but after `resumeReading` it gets what waited, then EOF.
    @Test func pausedReaderGetsNothingUntilResumed() {
        let harness = LoopHarness()
        let reader = Recorder()
        var eventsWhilePaused = -1
        harness.run {
            let (a, b) = MemoryByteStream.pair(loop: harness.loop)
            b.start(handler: reader)
            b.pauseReading()
            a.write([1, 2, 3])
            a.shutdownWrite()
            harness.loop.schedule(afterMilliseconds: 0) {
                eventsWhilePaused = reader.events.count
                b.resumeReading()
            }
            reader.onEvent = { if $0 == .eof { harness.finish() } }
            harness.onFinish { a.close(); b.close() }
        }
        #expect(eventsWhilePaused == 0)
        #expect(reader.events.filter { $0 != .close } == [.read(3), .eof])
    }

    /// `close()` drops the unsent backlog — what was in flight still arrives, then EOF — and
    /// `streamDidClose` comes once, after `close()` returned.
    @Test func closeDropsTheBacklogAndEndsWithEOF() {
        let harness = LoopHarness()
        let writer = Recorder(), reader = Recorder()
        var closedDuringClose = -1
        harness.run {
            let (a, b) = MemoryByteStream.pair(loop: harness.loop, configuration: .init(inFlightLimit: 32 * 1024))
            a.start(handler: writer)
            b.start(handler: reader)
            b.pauseReading()
            a.write(patternBytes(100 * 1024))
            a.close()
            a.close()  // idempotent
            closedDuringClose = writer.count(.close)
            #expect(a.isClosed)
            b.resumeReading()
            reader.onEvent = { if $0 == .eof { b.close() } else if $0 == .close { harness.finish() } }
        }
        #expect(!harness.timedOut)
        #expect(closedDuringClose == 0)
        #expect(writer.events == [.close])
        #expect(reader.received == patternBytes(32 * 1024))
        #expect(reader.events.suffix(2) == [.eof, .close])
    }

    /// Closing with unread input resets the peer, as TCP does: the peer loses its unread input
    /// and sees ECONNRESET (even while paused), then its close.
    @Test func closeWithUnreadInputResetsThePeer() {
        let harness = LoopHarness()
        let a1 = Recorder(), b1 = Recorder()
        harness.run {
            let (a, b) = MemoryByteStream.pair(loop: harness.loop)
            a.start(handler: a1)
            b.start(handler: b1)
            a.pauseReading()
            b.write([1, 2, 3])      // a never reads this
            a.write([4, 5])
            b1.onEvent = { event in
                if event == .read(2) {
                    b.pauseReading()
                    a.write([6])    // waits unread at b
                    a.close()
                }
                if event == .close { harness.finish() }
            }
        }
        #expect(!harness.timedOut)
        #expect(a1.events == [.close])
        #expect(b1.events == [.read(2), .fail("ECONNRESET"), .close])
    }

    /// `closeWithReset()` resets the peer at once, whatever it has unread.
    @Test func resetReachesThePeerAsECONNRESET() {
        let harness = LoopHarness()
        let a1 = Recorder(), b1 = Recorder()
        harness.run {
            let (a, b) = MemoryByteStream.pair(loop: harness.loop)
            a.start(handler: a1)
            b.start(handler: b1)
            a.write(patternBytes(1000))
            a.closeWithReset()
            b1.onEvent = { if $0 == .close { harness.finish() } }
        }
        #expect(!harness.timedOut)
        #expect(a1.events == [.close])
        #expect(b1.events == [.fail("ECONNRESET"), .close])
        #expect(b1.received.isEmpty)
    }

    /// Writing to a peer that has closed fails the writer (EPIPE), which then closes.
    @Test func writingToAClosedPeerFails() {
        let harness = LoopHarness()
        let a1 = Recorder(), b1 = Recorder()
        harness.run {
            let (a, b) = MemoryByteStream.pair(loop: harness.loop)
            a.start(handler: a1)
            b.start(handler: b1)
            b.close()
            a1.onEvent = { event in
                if event == .eof { a.write([1]) }
                if event == .close { harness.finish() }
            }
        }
        #expect(!harness.timedOut)
        #expect(a1.events == [.eof, .fail("EPIPE"), .close])
        #expect(b1.events == [.close])
    }

    /// A handler replaced from inside a callback gets nothing more; the new one gets the rest.
    @Test func aNewHandlerTakesOverMidStream() {
        let harness = LoopHarness()
        let first = Recorder(), second = Recorder()
        harness.run {
            let (a, b) = MemoryByteStream.pair(loop: harness.loop, configuration: .init(readChunkBytes: 4))
            b.start(handler: first)
            first.onRead = { stream, _ in stream.start(handler: second) }
            second.onEvent = { if $0 == .eof { harness.finish() } }
            a.write(Array(0..<10))
            a.shutdownWrite()
            harness.onFinish { a.close(); b.close() }
        }
        #expect(first.received == [0, 1, 2, 3])
        #expect(second.received == Array(4..<10))
        #expect(second.events.last(where: { $0 != .close }) == .eof)
    }

    /// Streams left open when the loop closes are closed through it, and their handlers hear it.
    @Test func loopShutdownClosesOpenStreams() {
        let loop = UVLoop(name: "memory-shutdown")
        let a1 = Recorder(), b1 = Recorder()
        let (a, b) = MemoryByteStream.pair(loop: loop)
        a.start(handler: a1)
        b.start(handler: b1)
        a.write([1])
        loop.close()
        #expect(a1.count(.close) == 1)
        #expect(b1.count(.close) == 1)
    }
}
