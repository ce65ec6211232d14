import LariatRuntime

/// An in-process `ByteStream` that is not a socket: it discards what it is given, or produces
/// a given number of bytes. The tunnel's own iperf (`lariat-hub bench`) bridges session streams
/// to these on both ends, so a measurement needs no target server and no disk or socket I/O
/// beyond the tunnel itself. Loop-confined.
public final class SyntheticStream: ByteStream {
    public enum Mode: Equatable, Sendable {
        /// Counts and drops written bytes; reads nothing; reports EOF once written to completion.
        case discard
        /// Delivers `bytes` bytes (a fixed pattern, compressible only if `compressible`), then EOF.
        case source(bytes: Int, compressible: Bool)
    }

    public let loop: UVLoop
    public let mode: Mode
    public private(set) var bytesWritten = 0
    public private(set) var bytesProduced = 0
    public private(set) var isClosed = false
    /// Called once: for `.discard` when the writer half-closed (all bytes arrived), for
    /// `.source` when the stream was closed or reset by its consumer.
    public var onFinished: ((SyntheticStream) -> Void)?

    private var handler: (any ByteStreamHandler)?
    private var paused = false
    private var chunk: [UInt8]
    private var timer: UVTimer?
    private var finished = false
    /// EOF was delivered to the consumer (source mode).
    private var finishedEOF = false

    public init(loop: UVLoop, mode: Mode) {
        self.loop = loop
        self.mode = mode
        var c = [UInt8](repeating: 0, count: 64 * 1024)
        if case .source(_, let compressible) = mode {
            if compressible {
                let line = Array(#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"bench","namespace":"default"},"status":{"phase":"Running"}}"#.utf8) + [10]
                for i in c.indices { c[i] = line[i % line.count] }
            } else {
                var x: UInt64 = 0x9E37_79B9_7F4A_7C15
                for i in c.indices { x ^= x << 13; x ^= x >> 7; x ^= x << 17; c[i] = UInt8(truncatingIfNeeded: x) }
            }
        }
        chunk = c
    }

    public func start(handler: any ByteStreamHandler) {
        self.handler = handler
        if case .source = mode { scheduleProduction() }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) { bytesWritten += bytes.count }

    public var bufferedWriteBytes: Int { 0 }

    public func pauseReading() { paused = true }

    public func resumeReading() {
        paused = false
        if case .source = mode { scheduleProduction() }
    }

    public func shutdownWrite() {
        // The writer finished: for a discard sink that is the end of the measurement, and the
        // stream answers with its own EOF so both directions close.
        guard case .discard = mode, !finished else { return }
        finish()
        later { [self] in handler?.streamDidReadEOF(self) }
    }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        timer?.close(); timer = nil
        if case .source = mode { finish() }
        later { [self] in
            let h = handler
            handler = nil
            h?.streamDidClose(self)
        }
    }

    public func closeWithReset() { close() }

    private func finish() {
        guard !finished else { return }
        finished = true
        onFinished?(self)
        onFinished = nil
    }

    private func later(_ body: @escaping () -> Void) {
        loop.schedule(afterMilliseconds: 0, body)
    }

    /// Produces up to 1 MiB per loop iteration, so the loop keeps serving other events.
    private func scheduleProduction() {
        guard timer == nil, !isClosed else { return }
        let t = UVTimer(loop: loop)
        timer = t
        t.start(afterMilliseconds: 0, repeatMilliseconds: 1) { [unowned self] in self.produce() }
    }

    private func produce() {
        guard case .source(let total, _) = mode, let handler, !isClosed else { return }
        var budget = 16
        while !paused, budget > 0, bytesProduced < total {
            let n = min(chunk.count, total - bytesProduced)
            bytesProduced += n
            chunk.withUnsafeBytes { handler.streamDidRead(self, UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            budget -= 1
        }
        if bytesProduced >= total || paused {
            timer?.close(); timer = nil
        }
        if bytesProduced >= total, !finishedEOF {
            finishedEOF = true
            handler.streamDidReadEOF(self)
        }
    }
}
