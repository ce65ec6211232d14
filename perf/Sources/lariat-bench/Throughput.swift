// Bulk transfer over N parallel connections, bounded by bytes and by time.
import LariatRuntime

enum Direction: String { case up, down }

final class ThroughputRun {
    let loop: UVLoop
    let host: String
    let port: Int
    let streams: Int
    let bytesPerStream: UInt64
    let direction: Direction
    let shape: Shape
    let payload: Payload
    let seconds: Double
    var start: UInt64 = 0
    var end: UInt64 = 0
    var finishedStreams = 0
    var failed = 0
    var failures: [String] = []
    var truncated = false
    var members: [ThroughputStream] = []
    var deadline: UVTimer?

    init(loop: UVLoop, host: String, port: Int, streams: Int, bytesPerStream: UInt64,
         direction: Direction, shape: Shape, seconds: Double) {
        self.loop = loop
        self.host = host
        self.port = port
        self.streams = streams
        self.bytesPerStream = bytesPerStream
        self.direction = direction
        self.shape = shape
        self.seconds = seconds
        payload = Payload.make(shape)
    }

    func begin() {
        start = UVLoop.now
        let t = UVTimer(loop: loop)
        t.start(afterMilliseconds: UInt64(seconds * 1000)) { [unowned self] in
            truncated = true
            finishAll()
        }
        deadline = t
        for _ in 0..<streams {
            let s = ThroughputStream(run: self)
            members.append(s)
            TCPConnection.connect(loop: loop, host: host, port: port) { [unowned self] result in
                switch result {
                case .success(let c): s.attach(c)
                case .failure(let e): streamFailed("connect: \(e)")
                }
            }
        }
    }

    var deliveredBytes: UInt64 { members.reduce(0) { $0 + $1.delivered } }

    func streamDone() {
        finishedStreams += 1
        if finishedStreams + failed == streams { finishAll() }
    }

    func streamFailed(_ why: String) {
        failed += 1
        if failures.count < 3 { failures.append(why) }
        if finishedStreams + failed == streams { finishAll() }
    }

    private var finished = false
    func finishAll() {
        guard !finished else { return }
        finished = true
        end = UVLoop.now
        deadline?.close()
        for m in members { m.stop() }
        loop.stop()
    }

    func report(json: Bool) {
        let elapsed = Double(end - start) / 1e9
        let bytes = deliveredBytes
        let mib = Double(bytes) / 1048576.0
        let rate = elapsed > 0 ? mib / elapsed : 0
        if json {
            var o = JSONObject()
            o.add("kind", "throughput")
            o.add("direction", direction.rawValue)
            o.add("data", shape.rawValue)
            o.add("streams", streams)
            o.add("bytes_requested", bytesPerStream * UInt64(streams))
            o.add("bytes", bytes)
            o.add("seconds", elapsed)
            o.add("mib_per_s", rate)
            o.add("truncated", truncated)
            o.add("failed_streams", failed)
            if let f = failures.first { o.add("error", f.replacingQuote()) }
            out(o.text)
        } else {
            out("\(direction.rawValue) \(streams) stream(s) \(shape.rawValue): \(fmt(mib, 1)) MiB in \(fmt(elapsed, 3)) s = \(fmt(rate, 1)) MiB/s\(truncated ? " (time limit)" : "")\(failed > 0 ? " failed=\(failed) \(failures)" : "")")
        }
    }
}

extension String {
    func replacingQuote() -> String { String(self.map { $0 == "\"" ? "'" : $0 }) }
}

final class ThroughputStream: ByteStreamHandler {
    unowned let run: ThroughputRun
    var stream: TCPConnection?
    var sent: UInt64 = 0
    /// Bytes known to have reached the far end: acknowledged by the sink (up) or received (down).
    var delivered: UInt64 = 0
    var ackBuffer: UInt64 = 0
    var ackBytes = 0
    var done = false

    init(run: ThroughputRun) { self.run = run }

    func attach(_ c: TCPConnection) {
        stream = c
        c.start(handler: self)
        let op: Op = run.direction == .up ? .sink : .source
        Header(op: op, shape: run.shape, count: run.bytesPerStream).bytes.withUnsafeBytes { c.write($0) }
        if run.direction == .up { pump() }
    }

    private func pump() {
        guard let c = stream else { return }
        let goal = run.bytesPerStream
        let payload = run.payload
        while sent < goal && c.bufferedWriteBytes == 0 && !c.isClosed && !done {
            let chunk = payload.chunk(at: sent, max: Int(min(goal - sent, 65536)))
            c.write(chunk)
            sent &+= UInt64(chunk.count)
        }
    }

    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        guard !done else { return }
        if run.direction == .down {
            delivered &+= UInt64(bytes.count)
            if delivered >= run.bytesPerStream { complete() }
            return
        }
        // Up: 8-byte cumulative acknowledgements from the sink.
        for b in bytes {
            ackBuffer |= UInt64(b) << (8 * UInt64(ackBytes))
            ackBytes += 1
            if ackBytes == 8 {
                delivered = ackBuffer
                ackBuffer = 0
                ackBytes = 0
            }
        }
        if delivered >= run.bytesPerStream { complete() }
    }

    private func complete() {
        done = true
        stream?.close()
        run.streamDone()
    }

    func stop() {
        done = true
        stream?.close()
    }

    func streamDidDrain(_ stream: any ByteStream) {
        if run.direction == .up { pump() }
    }

    func streamDidReadEOF(_ stream: any ByteStream) {
        if !done {
            done = true
            stream.close()
            run.streamFailed("early EOF after \(delivered) bytes")
        }
    }

    func streamDidFail(_ stream: any ByteStream, _ error: StreamError) {
        if !done {
            done = true
            run.streamFailed("\(error)")
        }
    }

    func streamDidClose(_ stream: any ByteStream) {}
}
