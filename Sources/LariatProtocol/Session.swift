/// One multiplexed tunnel session: the protocol engine between the transport (bytes in via
/// `receive`, bytes out via `produce`) and the application (stream calls and delegate events).
/// It performs no I/O and reads no clock: the runtime passes `now` in, so tests drive it with
/// plain byte arrays and a fake clock.
///
/// Not thread-safe: a session lives on one event-loop thread.
public final class Session {
    public enum State: Equatable, Sendable {
        case handshaking
        case established
        /// GOAWAY sent or received: existing streams finish, no new ones.
        case draining
        case ended
    }

    public let config: SessionConfig
    public let isClient: Bool
    public internal(set) var state: State = .handshaking
    public internal(set) var hello: Hello?
    public internal(set) var welcome: Welcome?
    /// Smoothed round-trip time, 0 until measured.
    public internal(set) var smoothedRTT: UInt64 = 0
    /// Smallest round trip seen: the path's delay without queueing, 0 until measured.
    public internal(set) var minRTT: UInt64 = 0
    /// The most recent round trip, 0 until measured.
    public internal(set) var lastRTT: UInt64 = 0
    var lastProbeAt: UInt64 = 0
    public internal(set) var stats = SessionStats()

    unowned(unsafe) let delegate: any SessionDelegate

    // Negotiated parameters.
    var peerMaxFramePayload = ProtocolLimits.minMaxFramePayload
    public internal(set) var compressionEnabled = false
    var autoTuning = false

    // Streams.
    var slots: [StreamRecord] = []
    var freeSlots: [Int32] = []
    var index: [UInt32: Int32] = [:]
    var nextLocalID: UInt32
    var highestPeerID: UInt32 = 0
    var pendingAccepts = 0
    var ready: (control: ReadyQueue, interactive: ReadyQueue, bulk: ReadyQueue)
    var sendPool: SendBufferPool

    // Session-level flow control.
    var sessionSendCredit = 0
    var sessionRecvCredit = 0
    var sessionDelivered = 0
    /// The stream the last DATA was for, and when DATA last switched streams (see `contended`).
    var lastDataStreamID: UInt32 = 0
    var interleavedAt: UInt64 = 0
    var sessionUnannounced = 0

    // Output.
    var control = ControlQueue()
    var outputAnnounced = false
    var writableNotices: [UInt32] = []

    // Input.
    var decoder: FrameDecoder
    /// LZ4 decompression target, allocated at the first compressed frame.
    var scratchStorage: UnsafeMutableRawPointer?
    var scratch: UnsafeMutableRawPointer {
        if let scratchStorage { return scratchStorage }
        let b = UnsafeMutableRawPointer.allocate(byteCount: config.maxFramePayload, alignment: 16)
        scratchStorage = b
        return b
    }

    // Liveness.
    var now: UInt64 = 0
    var startedAt: UInt64 = 0
    public internal(set) var lastReceivedAt: UInt64 = 0
    public internal(set) var pingOutstandingSince: UInt64 = 0
    /// During `streamData`: true when the bytes are a slice of the input given to `receive`
    /// (valid until the caller reuses that buffer), false when they live in the session's own
    /// buffers — decompressed into its scratch buffer, or a frame reassembled across reads —
    /// which the next frame may overwrite within the same `receive`.
    public internal(set) var deliveryIsInInput = false
    var pingInterval: UInt64
    /// Streams we opened that have no OPEN_OK/OPEN_FAIL yet (pending work for liveness).
    var openingCount = 0
    /// Our opens held back behind `maxOutstandingOpens`, oldest first (from `openQueueHead`).
    /// Entries whose stream is gone (reset while queued) are skipped when reached.
    var openQueue: [(id: UInt32, target: String)] = []
    var openQueueHead = 0
    /// Streams in phase `queued` (live entries of `openQueue`).
    public internal(set) var queuedOpenCount = 0
    /// When we last sent DATA: data sent after the last frame we heard is unacknowledged.
    var lastDataSentAt: UInt64 = 0
    var localGoAway = false
    var peerGoAway = false

    public init(role: SessionRole, config: SessionConfig = SessionConfig(), delegate: any SessionDelegate, now: UInt64) {
        self.config = config
        self.delegate = delegate
        self.pingInterval = config.pingIntervalNanos
        // Ready queues grow on demand: most sessions have a handful of busy streams.
        ready = (ReadyQueue(capacity: 8), ReadyQueue(capacity: 8), ReadyQueue(capacity: 16))
        sendPool = SendBufferPool(blockSize: config.sendBufferSize, keep: 16)
        // Before the handshake only HELLO/WELCOME/GOAWAY are legal; they fit the minimum size.
        decoder = FrameDecoder(maxPayload: ProtocolLimits.minMaxFramePayload, capacityLimit: config.maxFramePayload)
        writableNotices.reserveCapacity(8)
        self.now = now
        startedAt = now
        lastReceivedAt = now
        switch role {
        case .client(var hello):
            isClient = true
            nextLocalID = 1
            hello.initialStreamWindow = UInt32(config.initialStreamWindow)
            hello.sessionWindow = UInt32(config.sessionWindow)
            hello.maxFramePayload = UInt32(config.maxFramePayload)
            hello.maxStreams = UInt32(config.maxStreams)
            if !config.compression { hello.capabilities.remove(.lz4) }
            self.hello = hello
            control.append(frame: .hello(hello))
        case .server:
            isClient = false
            nextLocalID = 2
        }
    }

    deinit {
        for i in slots.indices { slots[i].sendBuffer.release(to: &sendPool) }
        sendPool.drain()
        scratchStorage?.deallocate()
        ready.control.deallocate(); ready.interactive.deallocate(); ready.bulk.deallocate()
    }

    // MARK: Streams, the application's side

    public var streamCount: Int { index.count }

    /// Opens a stream to `target` (e.g. "tcp:10.0.0.5:6443", "k8s-api"). Data written before
    /// the peer accepts is buffered and sent after OPEN_OK.
    public func open(target: String, streamClass: StreamClass = .bulk) throws(SessionError) -> UInt32 {
        switch state {
        case .handshaking: throw .notEstablished
        case .draining: throw .goingAway
        case .ended: throw .closed
        case .established: break
        }
        guard index.count < config.maxStreams else { throw .tooManyStreams }
        guard nextLocalID <= ProtocolLimits.maxStreamID - 2 else { throw .streamIDsExhausted }
        // Ids go out in increasing order (§5.3 check 6): while any open is queued, new ones
        // queue behind it.
        let mustQueue = openingCount >= config.maxOutstandingOpens || queuedOpenCount > 0
        if mustQueue, queuedOpenCount >= config.maxQueuedOpens { throw .openQueueFull(limit: config.maxQueuedOpens) }
        let id = nextLocalID
        nextLocalID += 2
        var r = StreamRecord(id: id, streamClass: streamClass, phase: mustQueue ? .queued : .opening)
        r.mayCompress = !config.uncompressedTargets.contains(target)
        r.openedAt = now
        r.recvWindow = config.initialStreamWindow
        r.recvCredit = config.initialStreamWindow
        r.lastWindowUpdateAt = now
        insert(r)
        stats.streamsOpened += 1
        if mustQueue {
            openQueue.append((id, target))
            queuedOpenCount += 1
            return id
        }
        sendOpen(id: id, streamClass: streamClass, window: r.recvWindow, target: target)
        return id
    }

    /// Sends OPEN for stream `id` (now `opening`).
    private func sendOpen(id: UInt32, streamClass: StreamClass, window: Int, target: String) {
        control.append(frame: .open(stream: id, streamClass: streamClass, window: UInt32(window), target: target))
        openingCount += 1
        // The OPEN is work waiting on the peer: find out now whether it is there (`tick`
        // declares it dead if this PING stays unanswered for `livenessTimeoutNanos`).
        if pingOutstandingSince == 0 { ping() }
        announceOutput()
    }

    /// Sends queued opens, oldest first, while fewer than `maxOutstandingOpens` are unanswered.
    /// Called whenever an OPEN is answered or abandoned.
    func sendQueuedOpens() {
        guard state == .established else { return }
        while openingCount < config.maxOutstandingOpens, openQueueHead < openQueue.count {
            let (id, target) = openQueue[openQueueHead]
            openQueueHead += 1
            guard let s = slot(id), slots[s].phase == .queued else { continue }
            slots[s].phase = .opening
            slots[s].openedAt = now
            queuedOpenCount -= 1
            sendOpen(id: id, streamClass: slots[s].streamClass, window: slots[s].recvWindow, target: target)
        }
        if openQueueHead == openQueue.count {
            openQueue.removeAll(keepingCapacity: openQueue.count <= 64)
            openQueueHead = 0
        } else if openQueueHead >= 1024, openQueueHead * 2 >= openQueue.count {
            openQueue.removeFirst(openQueueHead)
            openQueueHead = 0
        }
    }

    /// Fails every queued open with `code` (GOAWAY: no new OPEN may go out).
    func failQueuedOpens(code: ErrorCode, message: String) {
        guard queuedOpenCount > 0 else { return }
        let queued = openQueue[openQueueHead...].map(\.id)
        openQueue.removeAll()
        openQueueHead = 0
        for id in queued {
            guard let s = slot(id), slots[s].phase == .queued else { continue }
            remove(s)
            delegate.session(self, streamOpenFailed: id, code: code, message: message)
        }
    }

    /// Accepts a stream the peer asked for (after the target was reached).
    public func accept(_ id: UInt32) {
        guard let s = slot(id), slots[s].phase == .awaitingAccept else { return }
        pendingAccepts -= 1
        slots[s].phase = .open
        slots[s].recvWindow = config.initialStreamWindow
        slots[s].recvCredit = config.initialStreamWindow
        slots[s].lastWindowUpdateAt = now
        // Our send credit is the window the opener put in OPEN (plus any WINDOW since).
        control.append(frame: .openOK(stream: id, window: UInt32(config.initialStreamWindow)))
        schedule(s)
        announceOutput()
    }

    /// True while the peer's OPEN for `id` waits for `accept` or `refuse` (false once the peer
    /// gave up on it, or the session ended).
    public func isAwaitingAccept(_ id: UInt32) -> Bool {
        guard state != .ended, let s = slot(id) else { return false }
        return slots[s].phase == .awaitingAccept
    }

    /// Refuses a stream the peer asked for.
    public func refuse(_ id: UInt32, code: ErrorCode, message: String) {
        guard let s = slot(id), slots[s].phase == .awaitingAccept else { return }
        pendingAccepts -= 1
        control.append(reply: .openFail(stream: id, code: code, message: message.truncatedUTF8(ProtocolLimits.maxReasonLength)))
        remove(s)
        announceOutput()
    }

    /// Free space in the stream's send buffer.
    public func sendSpace(_ id: UInt32) -> Int {
        guard let s = slot(id), !slots[s].finishRequested else { return 0 }
        return config.sendBufferSize - slots[s].sendBuffer.count
    }

    /// Queues bytes on a stream; returns how many were taken (all of them while `sendSpace`
    /// allows). When the buffer is left with less than a frame of room, `streamWritable`
    /// follows once it drains, so the caller can stop reading its source until then.
    @discardableResult
    public func write(_ id: UInt32, _ bytes: UnsafeRawBufferPointer) -> Int {
        guard state != .ended, let s = slot(id), !slots[s].finishRequested else { return 0 }
        let n = slots[s].sendBuffer.append(bytes, capacity: config.sendBufferSize, pool: &sendPool)
        didQueue(n, on: s)
        return n
    }

    /// After `n` bytes joined slot `s`'s send buffer (copied or placed): ask for
    /// `streamWritable` once it is past half full, and schedule the stream.
    private func didQueue(_ n: Int, on s: Int) {
        if config.sendBufferSize - slots[s].sendBuffer.count < config.sendBufferSize / 2 {
            slots[s].writableWanted = true
        }
        if n > 0 { schedule(s); announceOutput() }
    }

    /// Write in place: the free space at the tail of the stream's send buffer, for a caller
    /// that reads its source straight into it and then calls `commitSendTail` (or
    /// `releaseSendTail` if nothing came). Saves the copy `write` makes. Empty when the stream
    /// takes no bytes now.
    public func sendTail(_ id: UInt32) -> UnsafeMutableRawBufferPointer {
        guard state != .ended, let s = slot(id), !slots[s].finishRequested else {
            return UnsafeMutableRawBufferPointer(start: nil, count: 0)
        }
        return slots[s].sendBuffer.tail(capacity: config.sendBufferSize, pool: &sendPool)
    }

    /// `count` bytes were placed at the start of the last `sendTail`: queued as `write` would.
    public func commitSendTail(_ id: UInt32, _ count: Int) {
        guard count > 0, state != .ended, let s = slot(id), !slots[s].finishRequested else { return }
        slots[s].sendBuffer.commit(count)
        stats.bytesWrittenInPlace += count
        didQueue(count, on: s)
    }

    /// The last `sendTail` was not used: an empty buffer gives its block back to the pool.
    public func releaseSendTail(_ id: UInt32) {
        guard let s = slot(id) else { return }
        slots[s].sendBuffer.releaseIfEmpty(to: &sendPool)
    }

    /// True when the stream's buffer is past its high-water mark: stop feeding it until
    /// `streamWritable`.
    public func isSendBufferFull(_ id: UInt32) -> Bool {
        guard let s = slot(id) else { return true }
        return config.sendBufferSize - slots[s].sendBuffer.count < config.sendBufferSize / 2
    }

    /// Half-closes our direction: FIN follows the buffered bytes.
    public func finish(_ id: UInt32) {
        guard state != .ended, let s = slot(id), !slots[s].finishRequested else { return }
        slots[s].finishRequested = true
        schedule(s)
        announceOutput()
    }

    /// Abandons a stream in both directions; frames for it that are still in flight are ignored.
    public func reset(_ id: UInt32, code: ErrorCode = .cancel, message: String = "") {
        guard state != .ended, let s = slot(id) else { return }
        if slots[s].phase == .awaitingAccept { pendingAccepts -= 1 }
        // A queued stream's id was never sent: a RESET for it would be a protocol error.
        if slots[s].phase != .queued {
            control.append(frame: .reset(stream: id, code: code, message: message.truncatedUTF8(ProtocolLimits.maxReasonLength)))
            stats.streamsReset += 1
        }
        remove(s)
        announceOutput()
    }

    /// The application has disposed of `count` bytes delivered on `id`: return the credit.
    public func consumed(_ id: UInt32, _ count: Int) {
        // A stream that is gone already returned its undelivered credit in `remove`.
        guard count > 0, let s = slot(id) else { return }
        let n = min(count, slots[s].delivered)
        sessionDelivered -= n
        sessionUnannounced += n
        slots[s].delivered -= n
        slots[s].unannounced += n
        if !slots[s].remoteFinished, slots[s].unannounced >= slots[s].recvWindow / 2 { sendStreamWindow(s) }
        returnSessionCreditIfDue()
    }

    // MARK: Session control

    /// Starts draining: tells the peer to open nothing new; existing streams finish.
    public func goAway(code: ErrorCode = .goingAway, reason: String = "") {
        guard state == .established || state == .draining, !localGoAway else { return }
        localGoAway = true
        state = .draining
        control.append(frame: .goAway(lastStreamID: highestPeerID, code: code, reason: reason.truncatedUTF8(ProtocolLimits.maxReasonLength)))
        announceOutput()
        failQueuedOpens(code: .refused, message: "this end is going away")
        endIfDrained()
    }

    /// Ends the session now: sends GOAWAY with `code`, resets every stream locally.
    public func close(code: ErrorCode = .noError, reason: String = "") {
        guard state != .ended else { return }
        if state != .handshaking || !isClient {
            control.append(frame: .goAway(lastStreamID: highestPeerID, code: code, reason: reason.truncatedUTF8(ProtocolLimits.maxReasonLength)))
            announceOutput()
        }
        end(.closed, streamCode: code == .noError ? .cancel : code, message: reason.isEmpty ? "session closed" : reason)
    }

    /// The transport failed or closed; every stream ends with CANCEL.
    public func transportClosed(_ why: String) {
        guard state != .ended else { return }
        end(.transportClosed(why), streamCode: .cancel, message: "tunnel connection lost: \(why)")
    }

    /// Advances the session's clock without running timers. The runtime calls it on every
    /// entry point so PING timestamps and window auto-tuning see the current time.
    @inline(__always)
    public func advanceClock(to now: UInt64) {
        if now > self.now { self.now = now }
    }

    /// Sends a PING now (RTT measurement); liveness pings are automatic in `tick`.
    public func ping() {
        guard state == .established || state == .draining else { return }
        control.append(frame: .ping(opaque: now))
        if pingOutstandingSince == 0 { pingOutstandingSince = now }
        announceOutput()
    }

    /// Bytes of control frames waiting for the transport (the transport's backlog check).
    public var queuedControlBytes: Int { control.count }

    /// Drives timers: keepalive PINGs, liveness and idle timeouts, OPEN deadlines, handshake
    /// timeout. The runtime calls it about once a second.
    public func tick(now: UInt64) {
        self.now = now
        switch state {
        case .ended: return
        case .handshaking:
            if now &- startedAt > config.handshakeTimeoutNanos {
                fail(ProtocolViolation(.timeout, "handshake not completed within \(config.handshakeTimeoutNanos / 1_000_000) ms"))
            }
        case .established, .draining:
            let silent = now &- lastReceivedAt
            if silent > config.idleTimeoutNanos {
                fail(ProtocolViolation(.timeout, "peer silent for \(silent / 1_000_000) ms"))
                return
            }
            if hasPendingWork {
                if pingOutstandingSince == 0 {
                    ping()
                } else if now &- pingOutstandingSince > config.livenessTimeoutNanos, silent > config.livenessTimeoutNanos {
                    let what = openingCount > 0 ? "\(openingCount) stream(s) opening" : "data unacknowledged"
                    fail(ProtocolViolation(.timeout, "peer did not answer PING within \(config.livenessTimeoutNanos / 1_000_000) ms (\(what))"))
                    return
                }
            } else if silent >= pingInterval, pingOutstandingSince == 0 {
                ping()
            }
            if openingCount > 0 || queuedOpenCount > 0 { expireOpens() }
        }
    }

    /// Work that waits on the peer: an OPEN without answer, or DATA sent no earlier than the
    /// last frame heard from the peer (nothing acknowledges it yet). Only then does silence
    /// mean failure within seconds; an idle session rides out partitions up to
    /// `idleTimeoutNanos`.
    var hasPendingWork: Bool {
        openingCount > 0 || (lastDataSentAt != 0 && lastDataSentAt >= lastReceivedAt)
    }

    /// Fails our OPENs older than `openTimeoutNanos`: RESET to the peer (so a late OPEN_OK
    /// finds a closed stream), `streamOpenFailed` with `TIMEOUT` to the application. Queued
    /// opens older than `openQueueTimeoutNanos` fail the same way, without RESET (never sent).
    private func expireOpens() {
        var expired: [UInt32] = []
        var expiredQueued: [UInt32] = []
        for (id, s) in index {
            let phase = slots[Int(s)].phase, age = now &- slots[Int(s)].openedAt
            if phase == .opening && age > config.openTimeoutNanos { expired.append(id) }
            if phase == .queued && age > config.openQueueTimeoutNanos { expiredQueued.append(id) }
        }
        if !expiredQueued.isEmpty {
            let message = "not sent within \(config.openQueueTimeoutNanos / 1_000_000) ms (openQueueTimeoutNanos): \(openingCount) OPENs awaited the peer's answer (maxOutstandingOpens \(config.maxOutstandingOpens))"
            for id in expiredQueued.sorted() {
                guard state != .ended, let s = slot(id), slots[s].phase == .queued else { continue }
                remove(s)
                delegate.session(self, streamOpenFailed: id, code: .timeout, message: message)
            }
        }
        guard !expired.isEmpty else { return }
        let message = "no answer to OPEN within \(config.openTimeoutNanos / 1_000_000) ms"
        for id in expired.sorted() {
            guard state != .ended, let s = slot(id) else { continue }
            control.append(frame: .reset(stream: id, code: .timeout, message: message))
            stats.streamsReset += 1
            remove(s)
            delegate.session(self, streamOpenFailed: id, code: .timeout, message: message)
        }
        announceOutput()
    }

    /// Whether `produce` would return bytes now.
    public var hasOutput: Bool {
        if !control.isEmpty { return true }
        guard state != .ended, sessionSendCredit > 0 else { return false }
        return !ready.control.isEmpty || !ready.interactive.isEmpty || !ready.bulk.isEmpty
    }

    // MARK: Internals shared by the receive and send halves

    @inline(__always)
    func slot(_ id: UInt32) -> Int? {
        guard let s = index[id] else { return nil }
        return Int(s)
    }

    func insert(_ r: StreamRecord) {
        if let s = freeSlots.popLast() {
            slots[Int(s)] = r
            index[r.id] = s
        } else {
            slots.append(r)
            index[r.id] = Int32(slots.count - 1)
        }
    }

    /// Forgets a stream. Credit for bytes the application never consumed goes back to the
    /// session window, so a reset stream cannot leak session credit.
    func remove(_ s: Int) {
        let r = slots[s]
        if r.phase == .queued { queuedOpenCount -= 1 }
        if r.delivered > 0 {
            sessionDelivered -= r.delivered
            sessionUnannounced += r.delivered
            returnSessionCreditIfDue()
        }
        slots[s].sendBuffer.release(to: &sendPool)
        index[r.id] = nil
        freeSlots.append(Int32(s))
        if r.phase == .opening {
            openingCount -= 1
            sendQueuedOpens()
        }
        endIfDrained()
    }

    func announceOutput() {
        guard !outputAnnounced, state != .ended || !control.isEmpty else { return }
        outputAnnounced = true
        delegate.sessionHasOutput(self)
    }

    /// Puts a stream on its class's ready queue if it has something to send.
    func schedule(_ s: Int) {
        let r = slots[s]
        guard !r.queued, r.phase == .open, !r.finSent else { return }
        let hasData = !r.sendBuffer.isEmpty && r.sendCredit > 0
        let finDue = r.finishRequested && r.sendBuffer.isEmpty
        guard hasData || finDue else { return }
        slots[s].queued = true
        switch r.streamClass {
        case .control: ready.control.push(r.id)
        case .interactive: ready.interactive.push(r.id)
        case .bulk: ready.bulk.push(r.id)
        }
    }

    func sendStreamWindow(_ s: Int) {
        var grant = slots[s].unannounced
        guard grant > 0 else { return }
        probeRoundTrip()
        var window = slots[s].recvWindow
        // Queueing delay: the latest round trip against the unloaded one. A window larger than
        // the path needs shows up here first, as bytes waiting in socket buffers. Those bytes
        // delay only the *other* streams of the session (a stream's own bytes are in order
        // anyway), so a stream alone on its session is not held back by them.
        // Contended: DATA for more than one stream arrived recently. Idle streams (iperf3's
        // control connection, a quiet shell) do not hold a lone busy stream to the shared
        // window rules; once they speak again, interleaving makes the session contended.
        let contended = index.count > 1 && interleavedAt != 0 && now &- interleavedAt < config.contentionMemoryNanos
        let queueing = contended && minRTT > 0 && lastRTT > 4 * minRTT + 200_000
        let underPressure = sessionDelivered * 2 > config.sessionWindow
        if underPressure || (queueing && window > config.initialStreamWindow) {
            // Shrink: withhold part of the grant so the peer's credit falls to a smaller window.
            let floor = underPressure ? config.minStreamWindow : config.initialStreamWindow
            let target = max(floor, window / 2)
            let cut = max(0, min(window - target, grant))
            grant -= cut
            window -= cut
            if cut > 0 { stats.windowShrinks += 1 }
        } else if autoTuning, !queueing, window < config.maxStreamWindow, minRTT > 0,
                  now &- slots[s].lastWindowUpdateAt < 2 * (contended ? minRTT : max(minRTT, lastRTT)) {
            // Half a window went through in under two unloaded round trips and no queue is
            // building: the window, not the path, is the bottleneck. Double it toward the
            // bandwidth-delay product. Both yardsticks come from PING round trips: the minimum
            // is the path without queues; the latest tells whether our own window is filling
            // socket buffers (a CPU-bound receiver drains a backlog in bursts that would
            // otherwise look like a fast path and feed the growth: bufferbloat).
            let grown = min(window * 2, config.maxStreamWindow)
            grant += grown - window
            window = grown
            stats.windowGrowths += 1
        }
        slots[s].recvWindow = window
        slots[s].unannounced = 0
        slots[s].lastWindowUpdateAt = now
        guard grant > 0 else { return }
        slots[s].recvCredit += grant
        control.appendWindow(stream: slots[s].id, increment: UInt32(grant))
        announceOutput()
    }

    /// While data flows, keeps one PING in flight (at most one per millisecond) so window
    /// tuning sees current round trips, not only the idle keepalive's.
    func probeRoundTrip() {
        guard pingOutstandingSince == 0, autoTuning, now &- lastProbeAt > 1_000_000 else { return }
        lastProbeAt = now
        ping()
    }

    /// Announces freed session credit once a quarter of the window has accumulated, whatever
    /// freed it (consumption, a reset stream, discarded DATA): credit that is never announced
    /// would stall every stream of the session.
    func returnSessionCreditIfDue() {
        if sessionUnannounced >= config.sessionWindow / 4 { sendSessionWindow() }
    }

    func sendSessionWindow() {
        let grant = sessionUnannounced
        guard grant > 0, state != .ended else { return }
        sessionUnannounced = 0
        sessionRecvCredit += grant
        control.appendWindow(stream: 0, increment: UInt32(grant))
        announceOutput()
    }

    /// A fatal violation: GOAWAY with its code, then every stream ends.
    func fail(_ v: ProtocolViolation) {
        guard state != .ended else { return }
        stats.protocolErrors += 1
        control.append(frame: .goAway(lastStreamID: highestPeerID, code: v.code, reason: v.message.truncatedUTF8(ProtocolLimits.maxReasonLength)))
        announceOutput()
        end(.localError(v), streamCode: v.code, message: v.message)
    }

    func end(_ why: SessionEnd, streamCode: ErrorCode, message: String) {
        state = .ended
        let ids = index.keys.sorted()
        for id in ids {
            guard let s = slot(id) else { continue }
            let phase = slots[s].phase
            remove(s)
            if phase == .opening || phase == .queued {
                delegate.session(self, streamOpenFailed: id, code: streamCode, message: message)
            } else {
                delegate.session(self, streamReset: id, code: streamCode, message: message)
            }
        }
        ready.control.removeAll(); ready.interactive.removeAll(); ready.bulk.removeAll()
        delegate.session(self, ended: why)
    }

    func endIfDrained() {
        guard state == .draining, index.isEmpty, localGoAway || peerGoAway else { return }
        end(.closed, streamCode: .cancel, message: "drained")
    }
}

/// Counters for metrics and tests.
public struct SessionStats: Sendable, Equatable {
    public var framesReceived = 0
    public var framesSent = 0
    public var dataBytesSent = 0
    public var dataBytesReceived = 0
    public var wireDataBytesSent = 0
    public var compressedFramesSent = 0
    public var streamsOpened = 0
    public var streamsAccepted = 0
    public var streamsReset = 0
    public var protocolErrors = 0
    public var windowGrowths = 0
    public var windowShrinks = 0
    public var ignoredFrames = 0
    /// Bytes the application placed straight into send buffers (`sendTail`), not copied by `write`.
    public var bytesWrittenInPlace = 0
}
