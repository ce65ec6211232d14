// Connection churn (open, first byte echoed, close) and idle connection holding.
import Histogram
import LariatRuntime

/// Opens `count` connections, `concurrency` at a time; each sends the echo header plus one byte
/// and is done when that byte came back (so the whole route, target included, is set up).
/// With `hold`, connections stay open (idle) instead of closing: for memory per idle stream.
final class OpenRun {
    let loop: UVLoop
    let host: String
    let port: Int
    let count: Int
    let concurrency: Int
    let seconds: Double
    let hold: Bool
    var started = 0
    var completed = 0
    var failed = 0
    /// Of `failed`: connects the route refused (or that timed out), and connections it closed or
    /// reset before the echo came back.
    var refused = 0
    var reset = 0
    var failures: [String] = []
    var inFlight = 0
    var start: UInt64 = 0
    var end: UInt64 = 0
    var finished = false
    var deadline: UVTimer?
    var held: [OpenOne] = []
    var onAllOpen: (() -> Void)?
    var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000,
                                      numberOfSignificantValueDigits: .three)
    static let probe: [UInt8] = Header(op: .echo, shape: .random, count: 0).bytes + [0x21]

    init(loop: UVLoop, host: String, port: Int, count: Int, concurrency: Int, seconds: Double, hold: Bool) {
        self.loop = loop
        self.host = host
        self.port = port
        self.count = count
        self.concurrency = concurrency
        self.seconds = seconds
        self.hold = hold
    }

    func begin() {
        start = UVLoop.now
        let d = UVTimer(loop: loop)
        d.start(afterMilliseconds: UInt64(seconds * 1000)) { [unowned self] in finish() }
        deadline = d
        fill()
    }

    private func fill() {
        while !finished && inFlight < concurrency && started < count {
            started += 1
            inFlight += 1
            let one = OpenOne(run: self, startedAt: UVLoop.now)
            TCPConnection.connect(loop: loop, host: host, port: port) { result in
                switch result {
                case .success(let c): one.attach(c)
                case .failure(let e): self.oneFailed("connect: \(e)", refused: true)
                }
            }
        }
    }

    func oneDone(_ one: OpenOne) {
        inFlight -= 1
        completed += 1
        _ = histogram.record(max(1, (UVLoop.now - one.startedAt) / 1000))
        if hold { held.append(one) } else { one.stream?.close() }
        next()
    }

    func oneFailed(_ why: String, refused: Bool = false) {
        inFlight -= 1
        failed += 1
        if refused { self.refused += 1 } else { reset += 1 }
        if failures.count < 3 { failures.append(why) }
        next()
    }

    private func next() {
        if completed + failed >= count {
            if hold {
                end = UVLoop.now
                onAllOpen?()
            } else {
                finish()
            }
        } else {
            fill()
        }
    }

    func finish() {
        guard !finished else { return }
        finished = true
        if end == 0 { end = UVLoop.now }
        deadline?.close()
        for h in held { h.stream?.close() }
        loop.stop()
    }

    func report(json: Bool) {
        let elapsed = Double(end - start) / 1e9
        let rate = elapsed > 0 ? Double(completed) / elapsed : 0
        let n = histogram.totalCount
        func p(_ q: Double) -> UInt64 { n > 0 ? histogram.valueAtPercentile(q) : 0 }
        if json {
            var o = JSONObject()
            o.add("kind", hold ? "idle" : "openrate")
            o.add("count", completed)
            o.add("requested", count)
            o.add("failed", failed)
            o.add("refused", refused)
            o.add("reset", reset)
            // Neither echoed nor failed when the time limit struck.
            o.add("unfinished", count - completed - failed)
            o.add("concurrency", concurrency)
            o.add("seconds", elapsed)
            o.add("opens_per_s", rate)
            o.add("open_p50_us", p(50))
            o.add("open_p99_us", p(99))
            if let f = failures.first { o.add("error", f.replacingQuote()) }
            out(o.text)
        } else {
            let unfinished = count - completed - failed
            out("\(completed) connection(s) opened+echoed in \(fmt(elapsed, 3)) s = \(fmt(rate, 0))/s (p50 \(p(50)) µs, p99 \(p(99)) µs)\(failed > 0 ? " failed=\(failed) (refused \(refused), reset \(reset)) \(failures)" : "")\(unfinished > 0 ? " unfinished=\(unfinished)" : "")")
        }
    }
}

final class OpenOne: ByteStreamHandler {
    unowned let run: OpenRun
    let startedAt: UInt64
    var stream: TCPConnection?
    var pending = OpenRun.probe.count
    var done = false

    init(run: OpenRun, startedAt: UInt64) {
        self.run = run
        self.startedAt = startedAt
    }

    func attach(_ c: TCPConnection) {
        stream = c
        c.start(handler: self)
        OpenRun.probe.withUnsafeBytes { c.write($0) }
    }

    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        pending -= bytes.count
        if pending <= 0 && !done {
            done = true
            run.oneDone(self)
        }
    }

    func streamDidReadEOF(_ stream: any ByteStream) {
        stream.close()
        if !done {
            done = true
            run.oneFailed("early EOF")
        }
    }

    func streamDidFail(_ stream: any ByteStream, _ error: StreamError) {
        if !done {
            done = true
            run.oneFailed("\(error)")
        }
    }

    func streamDidClose(_ stream: any ByteStream) {}
}
