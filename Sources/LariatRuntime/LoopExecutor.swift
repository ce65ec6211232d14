import CLibUV
import Synchronization

/// Posts closures to a loop from any thread.
///
/// A `uv_async_t` wakes the loop; the closures wait in a `Mutex`-protected array. libuv
/// coalesces many `uv_async_send` calls into one callback, so a burst of posts costs one
/// wakeup. This is the only sanctioned way to reach a loop from another thread.
public final class LoopExecutor: Sendable {
    private struct Queue {
        var work: [@Sendable () -> Void] = []
        var closed = false
    }

    /// Dereferenced only on the loop thread, except for `uv_async_send`, which libuv documents
    /// as thread-safe and which we only call under `queue`'s lock while `closed` is false.
    nonisolated(unsafe) let async: UnsafeMutablePointer<uv_async_t>
    private let queue = Mutex(Queue())
    /// The batch being run; touched only on the loop thread (swap target that keeps capacity).
    nonisolated(unsafe) private var running: [@Sendable () -> Void] = []

    init(loop: UnsafeMutablePointer<uv_loop_t>) {
        async = .allocate(capacity: 1)
        let rc = uv_async_init(loop, async) { handle in
            withContext(handle.unsafelyUnwrapped.pointee.data, as: LoopExecutor.self) { $0.runPending() }
        }
        precondition(rc == 0, "uv_async_init failed: \(rc)")
        async.pointee.data = retainedContext(self)
    }

    deinit {
        async.deallocate()
    }

    /// Queues `work` to run on the loop thread. Returns false (and drops `work`) once the loop
    /// is shutting down. Always deferred, even when called on the loop thread.
    @discardableResult
    public func execute(_ work: @escaping @Sendable () -> Void) -> Bool {
        queue.withLock { queue in
            guard !queue.closed else { return false }
            queue.work.append(work)
            // Under the lock so `close()` cannot free the handle between the check and the send.
            uv_async_send(async)
            return true
        }
    }

    private func runPending() {
        queue.withLock { queue in swap(&queue.work, &running) }
        for work in running { work() }
        running.removeAll(keepingCapacity: true)
    }

    /// Loop thread only. Rejects further posts and closes the handle; queued work is dropped.
    func close() {
        let alreadyClosed = queue.withLock { queue in
            defer { queue.closed = true; queue.work.removeAll() }
            return queue.closed
        }
        guard !alreadyClosed else { return }
        uv_close(async.asHandle) { handle in
            releaseContext(handle.unsafelyUnwrapped.pointee.data, as: LoopExecutor.self)
        }
    }
}
