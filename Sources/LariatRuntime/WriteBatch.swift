import CLibUV

/// Write coalescing for one loop: while a read callback runs, a connection's first write goes
/// out at once, and its later writes are appended to its backlog instead of entering the kernel;
/// when the callback returns each touched connection sends them with one `uv_try_write`.
///
/// Why: one socket read fans out into many small writes — a 256 KiB TLS read holds sixteen
/// DATA frames for the target, a WINDOW_UPDATE and a PONG for the tunnel. A syscall for each
/// means a wake-up of the reader on the other end for each; on a loaded machine those
/// context switches, not the copies, were most of the tunnel's CPU. Nothing waits longer than
/// the callback that wrote it. The copy into the backlog is avoided for borrowed writes
/// (`TCPConnection.writeBorrowing`): their iovecs wait here and leave in one vectored write.
///
/// Loop thread only. Batches nest (a depth count); only the outermost end flushes.
final class WriteBatch {
    private var depth = 0
    private var touched: [TCPConnection] = []
    /// Connections holding borrowed writes (`TCPConnection.writeBorrowing`): their iovecs
    /// point into a caller's buffer, so they are sent before that buffer is reused.
    private var borrowing: [TCPConnection] = []
    /// Iovec arrays for borrowed writes, lent to a connection while it holds some: only the
    /// connections written to in one callback need one at a time, so a loop keeps a few
    /// rather than every connection one.
    private var spareIovecs: [UnsafeMutablePointer<uv_buf_t>] = []
    /// The round being flushed; kept so neither array reallocates between batches.
    private var flushing: [TCPConnection] = []

    init() {
        touched.reserveCapacity(16)
        flushing.reserveCapacity(16)
        borrowing.reserveCapacity(16)
        spareIovecs.reserveCapacity(16)
    }

    /// An iovec array of `capacity` entries (every caller asks for the same size).
    func takeIovecs(capacity: Int) -> UnsafeMutablePointer<uv_buf_t> {
        spareIovecs.popLast() ?? .allocate(capacity: capacity)
    }

    /// Takes back an array from `takeIovecs`; beyond 16 spares it is freed.
    func giveIovecs(_ iovecs: UnsafeMutablePointer<uv_buf_t>) {
        if spareIovecs.count < 16 { spareIovecs.append(iovecs) } else { iovecs.deallocate() }
    }

    var isOpen: Bool { depth > 0 }

    @inline(__always)
    func begin() { depth += 1 }

    @inline(__always)
    func end() {
        depth -= 1
        if depth == 0 {
            if !borrowing.isEmpty { flushBorrowed() }  // a caller that never flushed: still valid here
            if !touched.isEmpty { flush() }
        }
    }

    /// Called by a connection the first time it defers a write in this batch.
    func add(_ connection: TCPConnection) { touched.append(connection) }

    /// Called by a connection when it takes its first borrowed write.
    func addBorrowing(_ connection: TCPConnection) { borrowing.append(connection) }

    /// Sends every borrowed write now (one vectored `uv_try_write` per connection; the rest is
    /// copied into its backlog), so the caller may reuse the memory they pointed into.
    func flushBorrowed() {
        var i = 0
        // A drain callback may borrow again (rare): those connections join the list and are
        // flushed in the same pass.
        while i < borrowing.count {
            let connection = borrowing[i]
            i += 1
            connection.sendBorrowed()
        }
        borrowing.removeAll(keepingCapacity: true)
    }

    private func flush() {
        // Flushing runs drain callbacks, which usually write again (the tunnel produces its
        // next chunk): those writes form the next round's batch. Rounds end when every socket
        // stops taking everything (the rest goes out asynchronously, with no drain callback yet).
        while !touched.isEmpty {
            swap(&touched, &flushing)
            depth = 1
            for connection in flushing { connection.flushBatchedWrites() }
            depth = 0
            flushing.removeAll(keepingCapacity: true)
        }
    }
}
