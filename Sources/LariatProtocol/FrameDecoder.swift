/// Splits the incoming byte stream into whole frames. Frames that arrive whole are handed out
/// in place (no copy); only a frame cut by a read boundary is copied into a reassembly buffer
/// sized for the largest legal frame. It is allocated on first use and kept, so an idle session
/// costs nothing and a busy one allocates once.
final class FrameDecoder {
    private var storage: UnsafeMutableRawPointer?
    private let capacity: Int
    private var buffered = 0
    /// The largest payload the local side accepts. Raised once the handshake settles.
    var maxPayload: Int

    init(maxPayload: Int, capacityLimit: Int) {
        self.maxPayload = maxPayload
        self.capacity = FrameHeader.size + capacityLimit
    }

    deinit { storage?.deallocate() }

    private var buffer: UnsafeMutableRawPointer {
        if let storage { return storage }
        let b = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        storage = b
        return b
    }

    var hasPartialFrame: Bool { buffered > 0 }
    /// True while `body` runs for a frame that was reassembled in the decoder's own buffer
    /// (which the next cut frame overwrites), false for a frame handed out in place.
    private(set) var deliveringReassembled = false

    /// Feeds bytes; calls `body` for every complete frame in order. Stops at the first error
    /// thrown by `body` or by the header check, leaving the decoder poisoned (the session ends).
    func feed(_ input: UnsafeRawBufferPointer,
                       _ body: (FrameHeader, UnsafeRawBufferPointer) throws(ProtocolViolation) -> Bool) throws(ProtocolViolation) {
        guard var p = input.baseAddress else { return }
        var left = input.count
        // First complete a frame that an earlier read cut in two.
        if buffered > 0 {
            if buffered < FrameHeader.size {
                let n = min(FrameHeader.size - buffered, left)
                (buffer + buffered).copyMemory(from: p, byteCount: n)
                buffered += n; p += n; left -= n
                if buffered < FrameHeader.size { return }
            }
            let h = FrameHeader.read(from: buffer)
            try checkLength(h)
            let need = FrameHeader.size + h.length - buffered
            let n = min(need, left)
            (buffer + buffered).copyMemory(from: p, byteCount: n)
            buffered += n; p += n; left -= n
            if buffered < FrameHeader.size + h.length { return }
            buffered = 0
            deliveringReassembled = true
            defer { deliveringReassembled = false }
            guard try body(h, UnsafeRawBufferPointer(start: buffer + FrameHeader.size, count: h.length)) else { return }
        }
        // Then hand out whole frames straight from the input.
        while left >= FrameHeader.size {
            let h = FrameHeader.read(from: p)
            try checkLength(h)
            guard left >= FrameHeader.size + h.length else { break }
            let payload = UnsafeRawBufferPointer(start: p + FrameHeader.size, count: h.length)
            p += FrameHeader.size + h.length
            left -= FrameHeader.size + h.length
            guard try body(h, payload) else { return }
        }
        if left > 0 {
            buffer.copyMemory(from: p, byteCount: left)
            buffered = left
        }
    }

    private func checkLength(_ h: FrameHeader) throws(ProtocolViolation) {
        guard h.length <= maxPayload else {
            throw ProtocolViolation(.frameSizeError, "frame of \(h.length) bytes exceeds the limit of \(maxPayload)")
        }
    }
}
