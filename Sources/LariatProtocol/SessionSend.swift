/// The output half: the scheduler. Control frames go first, then one DATA frame at a time from
/// the interactive class, then bulk, round-robin inside each class. Because a DATA frame is at
/// most `dataFrameSize`, an interactive frame waits behind at most one bulk frame in here; the
/// runtime keeps the socket's own queue short (TCP_NOTSENT_LOWAT) so the kernel adds little.
extension Session {
    /// Fills `out` with whole frames (control bytes may be split across calls: the transport
    /// is a byte stream). Returns the number of bytes written. Call again while `hasOutput`.
    public func produce(into out: UnsafeMutableRawBufferPointer) -> Int {
        guard let base = out.baseAddress else { return 0 }
        var used = 0
        // Each DATA frame needs its header, the compressed-length prefix and one byte.
        let minimumFrame = FrameHeader.size + 4 + 1
        while used < out.count {
            if !control.isEmpty {
                used += control.drain(into: UnsafeMutableRawBufferPointer(rebasing: out[used...]))
                continue
            }
            guard state == .established || state == .draining, out.count - used >= minimumFrame else { break }
            guard let id = nextReady() else { break }
            guard let s = slot(id) else { continue } // reset while queued
            slots[s].queued = false
            let n = emit(s, into: base + used, room: out.count - used)
            used += n
            schedule(s)
            if let s = slot(id), slots[s].isDone { closeStream(s) }
            // Nothing could be sent (the session window is spent): wait for a WINDOW.
            if n == 0 { break }
        }
        if !hasOutput { outputAnnounced = false }
        if !writableNotices.isEmpty { fireWritable() }
        return used
    }

    /// The next stream to serve: strict priority between classes, FIFO within a class.
    /// Without session credit only FIN-only frames could go, so nothing is taken: streams stay
    /// queued until a WINDOW arrives.
    private func nextReady() -> UInt32? {
        guard sessionSendCredit > 0 else { return nil }
        if let id = ready.control.pop() { return id }
        if let id = ready.interactive.pop() { return id }
        return ready.bulk.pop()
    }

    /// Writes one DATA frame for slot `s` at `at`; returns its size on the wire.
    private func emit(_ s: Int, into at: UnsafeMutableRawPointer, room: Int) -> Int {
        let capacity = config.sendBufferSize
        let limit = min(config.dataFrameSize, peerMaxFramePayload, slots[s].sendCredit, sessionSendCredit,
                        room - FrameHeader.size - 4)
        let chunk = slots[s].sendBuffer.contiguousHead(limit: max(limit, 0), capacity: capacity)
        let n = chunk.count
        let finNow = slots[s].finishRequested && slots[s].sendBuffer.count == n
        guard n > 0 || finNow else { return 0 }
        var flags: UInt8 = finNow ? FrameFlags.fin : 0
        var payloadLength = n
        if n >= LZ4Codec.minimumInput, compressionEnabled, slots[s].mayCompress, slots[s].compression.shouldTry() {
            let c = LZ4Codec.compress(chunk, into: at + FrameHeader.size + 4)
            slots[s].compression.record(shrank: c > 0)
            if c > 0 {
                (at + FrameHeader.size).storeBytes(of: UInt32(n).bigEndian, as: UInt32.self)
                payloadLength = 4 + c
                flags |= FrameFlags.lz4
                stats.compressedFramesSent += 1
            }
        }
        if flags & FrameFlags.lz4 == 0, n > 0 {
            (at + FrameHeader.size).copyMemory(from: chunk.baseAddress!, byteCount: n)
        }
        FrameHeader(length: payloadLength, type: FrameType.data.rawValue, flags: flags, streamID: slots[s].id).write(to: at)
        if n > 0 { slots[s].sendBuffer.consume(n, capacity: capacity, pool: &sendPool) }
        slots[s].sendCredit -= n
        sessionSendCredit -= n
        if finNow { slots[s].finSent = true }
        lastDataSentAt = now
        stats.framesSent += 1
        stats.dataBytesSent += n
        stats.wireDataBytesSent += FrameHeader.size + payloadLength
        if slots[s].writableWanted, capacity - slots[s].sendBuffer.count >= capacity / 2 {
            slots[s].writableWanted = false
            writableNotices.append(slots[s].id)
        }
        return FrameHeader.size + payloadLength
    }

    /// Raised after the scheduling pass so the application's writes cannot disturb it.
    private func fireWritable() {
        var i = 0
        while i < writableNotices.count {
            let id = writableNotices[i]
            i += 1
            if slot(id) != nil { delegate.session(self, streamWritable: id) }
        }
        writableNotices.removeAll(keepingCapacity: true)
    }
}
