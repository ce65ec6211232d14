// Request/response round trips against an echo target, into an HdrHistogram (µs).
import Histogram
import LariatRuntime

final class LatencyRun: ByteStreamHandler {
    let loop: UVLoop
    let host: String
    let port: Int
    let size: Int
    let count: Int
    let intervalNanos: UInt64
    let seconds: Double
    let warmup: Int
    var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000,
                                      numberOfSignificantValueDigits: .three)
    var stream: TCPConnection?
    let message: [UInt8]
    var pending = 0            // bytes of the current reply still expected
    var headerPending = Header.size
    var sentAt: UInt64 = 0
    var done = 0
    var start: UInt64 = 0
    var end: UInt64 = 0
    var timer: UVTimer?
    var deadline: UVTimer?
    var error: String?
    var finished = false

    init(loop: UVLoop, host: String, port: Int, size: Int, count: Int, rate: Double, seconds: Double, warmup: Int) {
        self.loop = loop
        self.host = host
        self.port = port
        self.size = size
        self.count = count
        self.seconds = seconds
        self.warmup = warmup
        intervalNanos = rate > 0 ? UInt64(1e9 / rate) : 0
        message = Array(Payload.randomBytes((size + 7) / 8 * 8, seed: 42)[0..<size])
    }

    func begin() {
        start = UVLoop.now
        let d = UVTimer(loop: loop)
        d.start(afterMilliseconds: UInt64(seconds * 1000)) { [unowned self] in finish() }
        deadline = d
        timer = UVTimer(loop: loop)
        TCPConnection.connect(loop: loop, host: host, port: port) { [unowned self] result in
            switch result {
            case .success(let c):
                stream = c
                c.start(handler: self)
                Header(op: .echo, shape: .random, count: 0).bytes.withUnsafeBytes { c.write($0) }
            case .failure(let e):
                error = "connect: \(e)"
                finish()
            }
        }
    }

    private func send() {
        guard !finished, let c = stream else { return }
        pending = size
        sentAt = UVLoop.now
        message.withUnsafeBytes { c.write($0) }
    }

    private func scheduleNext() {
        if done >= count + warmup {
            finish()
            return
        }
        if intervalNanos == 0 {
            send()
        } else {
            let due = start + UInt64(done + 1) * intervalNanos
            let now = UVLoop.now
            if due <= now { send() } else {
                timer?.start(afterMilliseconds: max(1, (due - now + 500_000) / 1_000_000)) { [unowned self] in send() }
            }
        }
    }

    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        var n = bytes.count
        if headerPending > 0 {
            let t = min(headerPending, n)
            headerPending -= t
            n -= t
            if headerPending == 0 {
                start = UVLoop.now
                scheduleNext()
            }
            if n == 0 { return }
        }
        pending -= n
        if pending <= 0 {
            let rtt = (UVLoop.now - sentAt) / 1000
            if done >= warmup { _ = histogram.record(max(1, rtt)) }
            done += 1
            scheduleNext()
        }
    }

    func streamDidReadEOF(_ stream: any ByteStream) {
        if !finished { error = "early EOF" }
        finish()
    }

    func streamDidFail(_ stream: any ByteStream, _ e: StreamError) {
        if !finished { error = "\(e)" }
        finish()
    }

    func streamDidClose(_ stream: any ByteStream) {}

    func finish() {
        guard !finished else { return }
        finished = true
        end = UVLoop.now
        timer?.close()
        deadline?.close()
        stream?.close()
        loop.stop()
    }

    func report(json: Bool, label: String) {
        let h = histogram
        let n = Int(h.totalCount)
        func p(_ q: Double) -> UInt64 { n > 0 ? h.valueAtPercentile(q) : 0 }
        let elapsed = Double(end - start) / 1e9
        if json {
            var o = JSONObject()
            o.add("kind", "latency")
            o.add("label", label)
            o.add("size", size)
            o.add("count", n)
            o.add("seconds", elapsed)
            o.add("p50_us", p(50))
            o.add("p90_us", p(90))
            o.add("p99_us", p(99))
            o.add("p999_us", p(99.9))
            o.add("max_us", n > 0 ? h.max : 0)
            o.add("mean_us", n > 0 ? h.mean : 0)
            if let error { o.add("error", error.replacingQuote()) }
            out(o.text)
        } else {
            out("\(label)\(size) B x \(n): p50 \(p(50)) µs, p90 \(p(90)) µs, p99 \(p(99)) µs, p99.9 \(p(99.9)) µs, max \(n > 0 ? h.max : 0) µs\(error.map { " error: \($0)" } ?? "")")
        }
    }
}
