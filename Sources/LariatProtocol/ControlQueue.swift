/// Encoded control frames waiting to go out, ahead of any DATA. The transport is a byte stream,
/// so `produce` may hand these out in pieces. Storage is reused: after warm-up, queueing the
/// frequent frames (WINDOW, PONG) does not allocate.
struct ControlQueue {
    private var bytes: [UInt8] = []
    private var head = 0
    /// Frames queued as replies to the peer's frames since the queue was last empty: what a
    /// peer that sends without reading makes grow (`SessionConfig.maxQueuedControlFrames`).
    private(set) var replies = 0

    init() { bytes.reserveCapacity(256) }

    var isEmpty: Bool { head == bytes.count }
    var count: Int { bytes.count - head }

    mutating func append(frame: Frame) {
        compactIfDrained()
        bytes.append(contentsOf: frame.encode())
    }

    /// Queues a frame the peer's input made necessary (PONG, OPEN_FAIL, RESET); counted.
    mutating func append(reply: Frame) {
        append(frame: reply)
        replies += 1
    }

    /// WINDOW is the most frequent control frame; encode it without building a `Frame`.
    mutating func appendWindow(stream: UInt32, increment: UInt32) {
        compactIfDrained()
        let b: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (
            0, 0, 4, FrameType.window.rawValue, 0,
            UInt8(stream >> 24), UInt8(truncatingIfNeeded: stream >> 16), UInt8(truncatingIfNeeded: stream >> 8), UInt8(truncatingIfNeeded: stream),
            UInt8(increment >> 24), UInt8(truncatingIfNeeded: increment >> 16), UInt8(truncatingIfNeeded: increment >> 8), UInt8(truncatingIfNeeded: increment))
        withUnsafeBytes(of: b) { bytes.append(contentsOf: $0) }
    }

    /// Copies up to `out.count` bytes into `out`; returns how many.
    mutating func drain(into out: UnsafeMutableRawBufferPointer) -> Int {
        let n = min(count, out.count)
        guard n > 0 else { return 0 }
        bytes.withUnsafeBytes { src in
            out.baseAddress!.copyMemory(from: src.baseAddress! + head, byteCount: n)
        }
        head += n
        compactIfDrained()
        return n
    }

    private mutating func compactIfDrained() {
        if head == bytes.count { replies = 0 }
        if head > 0, head == bytes.count {
            bytes.removeAll(keepingCapacity: true)
            head = 0
        }
    }
}
