// A TCP relay that holds every chunk for a fixed one-way delay (both directions), for RTT
// emulation where netem is unavailable. Bounded memory: reading pauses above 8 MiB queued.
import LariatRuntime

final class DelayRelay {
    let loop: UVLoop
    let upstreamHost: String
    let upstreamPort: Int
    let delayNanos: UInt64
    var listener: TCPListener?

    init(loop: UVLoop, upstreamHost: String, upstreamPort: Int, delayMilliseconds: Double) {
        self.loop = loop
        self.upstreamHost = upstreamHost
        self.upstreamPort = upstreamPort
        delayNanos = UInt64(delayMilliseconds * 1e6)
    }

    func listen(host: String, port: Int) throws -> Int {
        let l = try TCPListener(loop: loop, host: host, port: port) { [unowned self] downstream in
            TCPConnection.connect(loop: loop, host: upstreamHost, port: upstreamPort) { [unowned self] result in
                switch result {
                case .success(let upstream):
                    let a = DelayPipe(loop: loop, delay: delayNanos, from: downstream, to: upstream)
                    let b = DelayPipe(loop: loop, delay: delayNanos, from: upstream, to: downstream)
                    a.peer = b
                    b.peer = a
                    downstream.start(handler: a)
                    upstream.start(handler: b)
                case .failure:
                    downstream.closeWithReset()
                }
            }
        }
        listener = l
        return l.port
    }
}

/// One direction: reads from `from`, delays, writes to `to`. Handler of `from`.
final class DelayPipe: ByteStreamHandler {
    let loop: UVLoop
    let delay: UInt64
    let from: TCPConnection
    let to: TCPConnection
    weak var peer: DelayPipe?
    var queue: [(due: UInt64, bytes: [UInt8])] = []
    var head = 0
    var queuedBytes = 0
    let timer: UVTimer
    var timerArmed = false
    var eofPending = false
    var closed = false
    static let highWater = 8 << 20

    init(loop: UVLoop, delay: UInt64, from: TCPConnection, to: TCPConnection) {
        self.loop = loop
        self.delay = delay
        self.from = from
        self.to = to
        timer = UVTimer(loop: loop)
    }

    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        queue.append((UVLoop.now + delay, Array(bytes)))
        queuedBytes += bytes.count
        if queuedBytes + to.bufferedWriteBytes > Self.highWater { from.pauseReading() }
        arm()
    }

    private func arm() {
        guard !timerArmed, head < queue.count else { return }
        timerArmed = true
        let now = UVLoop.now
        let due = queue[head].due
        let ms = due > now ? (due - now + 999_999) / 1_000_000 : 0
        timer.start(afterMilliseconds: ms) { [unowned self] in
            timerArmed = false
            flush()
        }
    }

    private func flush() {
        let now = UVLoop.now + 500_000  // timer granularity is 1 ms
        while head < queue.count && queue[head].due <= now {
            let item = queue[head].bytes
            item.withUnsafeBytes { to.write($0) }
            queuedBytes -= item.count
            head += 1
        }
        if head > 1024 && head * 2 > queue.count {
            queue.removeFirst(head)
            head = 0
        }
        if head == queue.count {
            queue.removeAll(keepingCapacity: true)
            head = 0
            if eofPending { to.shutdownWrite() }
        }
        if queuedBytes + to.bufferedWriteBytes <= Self.highWater / 2 && !eofPending { from.resumeReading() }
        arm()
    }

    /// `to` drained (its handler is the peer pipe, which forwards the call here).
    func outputDrained() {
        if queuedBytes + to.bufferedWriteBytes <= Self.highWater / 2 && !eofPending { from.resumeReading() }
    }

    func streamDidDrain(_ stream: any ByteStream) { peer?.outputDrained() }

    func streamDidReadEOF(_ stream: any ByteStream) {
        eofPending = true
        if head == queue.count { to.shutdownWrite() }
        if let peer, peer.eofPending { closeBoth() }
    }

    func streamDidFail(_ stream: any ByteStream, _ error: StreamError) { closeBoth() }

    func closeBoth() {
        guard !closed else { return }
        closed = true
        // Give queued data its delay before closing.
        loop.schedule(afterMilliseconds: delay / 1_000_000 + 50) { [self] in
            timer.close()
            peer?.timer.close()
            from.close()
            to.close()
        }
    }

    func streamDidClose(_ stream: any ByteStream) {
        timer.close()
        to.close()
    }
}
