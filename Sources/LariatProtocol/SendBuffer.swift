/// Per-stream bytes written by the application and not yet framed. A ring over a fixed-size
/// block that is taken from `SendBufferPool` only while the stream has data waiting, so an
/// idle stream costs no buffer memory.
struct SendBuffer {
    var storage: UnsafeMutableRawPointer?
    var head = 0
    var count = 0

    var isEmpty: Bool { count == 0 }

    /// Copies as much of `bytes` as fits; returns the number copied.
    mutating func append(_ bytes: UnsafeRawBufferPointer, capacity: Int, pool: inout SendBufferPool) -> Int {
        let n = min(bytes.count, capacity - count)
        guard n > 0, let src = bytes.baseAddress else { return 0 }
        if storage == nil { storage = pool.take(); head = 0 }
        let base = storage!
        let tail = (head + count) % capacity
        let first = min(n, capacity - tail)
        (base + tail).copyMemory(from: src, byteCount: first)
        if first < n { base.copyMemory(from: src + first, byteCount: n - first) }
        count += n
        return n
    }

    /// The contiguous free space after the last byte (taking a block from the pool if the
    /// buffer has none), for a caller that fills it in place and then calls `commit`.
    mutating func tail(capacity: Int, pool: inout SendBufferPool) -> UnsafeMutableRawBufferPointer {
        guard count < capacity else { return UnsafeMutableRawBufferPointer(start: nil, count: 0) }
        if storage == nil { storage = pool.take(); head = 0 }
        let end = (head + count) % capacity
        return UnsafeMutableRawBufferPointer(start: storage! + end, count: min(capacity - count, capacity - end))
    }

    /// `n` bytes were written into `tail`.
    mutating func commit(_ n: Int) { count += n }

    /// Gives the block back if nothing is buffered (a `tail` that went unused).
    mutating func releaseIfEmpty(to pool: inout SendBufferPool) {
        if count == 0 { release(to: &pool) }
    }

    /// The longest contiguous run at the head, at most `limit` bytes.
    func contiguousHead(limit: Int, capacity: Int) -> UnsafeRawBufferPointer {
        guard let base = storage else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + head, count: min(limit, count, capacity - head))
    }

    mutating func consume(_ n: Int, capacity: Int, pool: inout SendBufferPool) {
        count -= n
        head = (head + n) % capacity
        if count == 0 { release(to: &pool) }
    }

    mutating func release(to pool: inout SendBufferPool) {
        if let s = storage { pool.give(s) }
        storage = nil; head = 0; count = 0
    }
}

/// Recycles send-buffer blocks so streams that come and go do not hit malloc.
struct SendBufferPool {
    let blockSize: Int
    private var free: [UnsafeMutableRawPointer] = []
    private let keep: Int

    init(blockSize: Int, keep: Int) {
        self.blockSize = blockSize
        self.keep = keep
        free.reserveCapacity(keep)
    }

    mutating func take() -> UnsafeMutableRawPointer {
        free.popLast() ?? .allocate(byteCount: blockSize, alignment: 16)
    }

    mutating func give(_ p: UnsafeMutableRawPointer) {
        if free.count < keep { free.append(p) } else { p.deallocate() }
    }

    mutating func drain() {
        for p in free { p.deallocate() }
        free.removeAll()
    }
}
