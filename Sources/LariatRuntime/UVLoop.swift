import CLibUV
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One libuv event loop. Every libuv object (TCP handles, timers, TLS sessions on them) belongs
/// to exactly one loop and is touched only on that loop's thread; other threads reach the loop
/// through `execute` (a `LoopExecutor`).
///
/// Lifecycle: create, set up initial handles (on the creating thread, before running), then either
/// `run()` on the current thread until `stop()`, followed by `close()`, or `startThread()`, which
/// does both on a new pthread (`stop()` + `join()` from outside).
public final class UVLoop: Sendable {
    /// Dereferenced only by the thread that runs the loop (or sets it up before it runs).
    nonisolated(unsafe) let raw: UnsafeMutablePointer<uv_loop_t>
    public let executor: LoopExecutor
    public let name: String
    /// The one buffer every TCP connection of this loop reads into. Safe to share because libuv
    /// delivers reads one at a time from the loop and handlers consume the bytes before they
    /// return; an idle connection then costs no read buffer at all. Loop thread only.
    nonisolated(unsafe) public let readBuffer: UnsafeMutableRawPointer
    /// Large, because each read callback's writes leave as one syscall (`WriteBatch`): one
    /// read taking all a busy tunnel has queued means few, large writes to the target and
    /// few wake-ups of whoever reads them.
    public static let readBufferSize = 256 * 1024
    /// Coalesces the writes a read callback makes (see `WriteBatch`). Loop thread only.
    nonisolated(unsafe) let writeBatch = WriteBatch()

    /// Sends the borrowed writes (`ByteStream.writeBorrowing`) of every stream on this loop, so
    /// the buffer they point into may be reused. Loop thread only.
    public func flushBorrowedWrites() { writeBatch.flushBorrowed() }

    /// pthread id of the thread inside `run()`, 0 when not running.
    private let runningThread = Atomic<UInt>(0)
    private let closed = Atomic<Bool>(false)
    private let thread = Mutex<pthread_t?>(nil)
    /// Scratch buffers this loop's connections borrow, one pool per size. Loop thread only.
    nonisolated(unsafe) private var bufferPools: [Int: LoopBufferPool] = [:]

    public init(name: String = "lariat-loop") {
        _ = Self.ignoreSIGPIPE
        self.name = name
        raw = .allocate(capacity: 1)
        readBuffer = .allocate(byteCount: Self.readBufferSize, alignment: 16)
        let rc = uv_loop_init(raw)
        precondition(rc == 0, "uv_loop_init failed: \(rc)")
        executor = LoopExecutor(loop: raw)
    }

    /// libuv writes with write(2), which raises SIGPIPE on a reset connection and would kill the
    /// process; the error is reported as EPIPE anyway. Done once, process-wide.
    private static let ignoreSIGPIPE: Void = { _ = signal(SIGPIPE, SIG_IGN) }()

    deinit {
        if !closed.load(ordering: .acquiring) { closeNow() }
        raw.deallocate()
        readBuffer.deallocate()
    }

    /// Monotonic clock in nanoseconds (`uv_hrtime`); fine for timeouts and latency.
    public var now: UInt64 { uv_hrtime() }
    public static var now: UInt64 { uv_hrtime() }

    /// The pool of `byteCount`-byte scratch buffers shared by this loop's connections (created
    /// on first request). Call on the loop's thread; callers keep the pool, not look it up per use.
    public func bufferPool(byteCount: Int) -> LoopBufferPool {
        assertConfined()
        if let pool = bufferPools[byteCount] { return pool }
        let pool = LoopBufferPool(byteCount: byteCount)
        bufferPools[byteCount] = pool
        return pool
    }

    /// True when called from the thread currently running this loop.
    public var isInLoopThread: Bool { runningThread.load(ordering: .relaxed) == currentThreadID() }

    /// Loop-confined objects call this on creation: allowed on the loop thread, or on any thread
    /// while the loop is not running (the set-up phase).
    @inline(__always)
    func assertConfined(_ what: StaticString = #function) {
        let owner = runningThread.load(ordering: .relaxed)
        assert(owner == 0 || owner == currentThreadID(), "\(what) used off its loop thread")
    }

    /// Posts `work` to the loop thread; see `LoopExecutor.execute`.
    @discardableResult
    public func execute(_ work: @escaping @Sendable () -> Void) -> Bool {
        executor.execute(work)
    }

    /// Runs the loop on the calling thread until `stop()`. The executor's async handle keeps the
    /// loop alive while idle, so this does not return merely because there is nothing to do.
    public func run() {
        precondition(!closed.load(ordering: .acquiring), "run() on a closed loop")
        runningThread.store(currentThreadID(), ordering: .releasing)
        uv_run(raw, UV_RUN_DEFAULT)
        runningThread.store(0, ordering: .releasing)
    }

    /// Makes `run()` return after the current iteration. Safe from any thread.
    public func stop() {
        if isInLoopThread {
            uv_stop(raw)
        } else {
            execute { [self] in uv_stop(self.raw) }
        }
    }

    /// Spawns a pthread that runs the loop until `stop()` and then closes it.
    public func startThread() {
        thread.withLock { thread in
            precondition(thread == nil, "loop thread already started")
            var tid = pthread_t()
            let context = Unmanaged.passRetained(self).toOpaque()
            let rc = pthread_create(&tid, nil, { context in
                let loop = Unmanaged<UVLoop>.fromOpaque(context!).takeRetainedValue()
                loop.run()
                loop.close()
                return nil
            }, context)
            precondition(rc == 0, "pthread_create failed: \(rc)")
            thread = tid
        }
    }

    /// Waits for the thread started by `startThread()` to exit. Call after `stop()`.
    public func join() {
        guard let tid = thread.withLock({ $0 }) else { return }
        precondition(!isInLoopThread, "join() from the loop's own thread")
        pthread_join(tid, nil)
    }

    /// Closes the executor and any handle still open, runs the loop until their close callbacks
    /// have fired, then releases libuv's resources. Call on the loop's thread after `run()`
    /// returned (or let `startThread()` do it). Idempotent.
    public func close() {
        guard !closed.load(ordering: .acquiring) else { return }
        precondition(runningThread.load(ordering: .relaxed) == 0, "close() while the loop is running")
        closeNow()
    }

    private func closeNow() {
        closed.store(true, ordering: .releasing)
        executor.close()
        // Close every handle still open through its owner (a LoopHandleOwner, the only kind of
        // object that creates handles here), so handlers get their close callbacks and objects
        // are released. Close callbacks may open new handles (a reconnect timer, say), hence
        // a few rounds.
        for _ in 0..<8 {
            uv_walk(raw, { handle, _ in
                guard let handle, uv_is_closing(handle) == 0, let owner = handle.pointee.data else { return }
                Unmanaged<LoopHandleOwner>.fromOpaque(owner)._withUnsafeGuaranteedRef { $0.closeForLoopShutdown() }
            }, nil)
            uv_run(raw, UV_RUN_NOWAIT)
            if uv_loop_alive(raw) == 0 { break }
        }
        // Whatever still refuses is closed raw; its owner stays retained (a leak, never a
        // dangling use) so uv_loop_close can succeed.
        uv_walk(raw, { handle, _ in
            if let handle, uv_is_closing(handle) == 0 { uv_close(handle, nil) }
        }, nil)
        uv_run(raw, UV_RUN_DEFAULT)
        let rc = uv_loop_close(raw)
        assert(rc == 0, "uv_loop_close: \(rc)")
    }
}
