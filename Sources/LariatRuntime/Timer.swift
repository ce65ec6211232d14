import CLibUV

/// A one-shot or repeating `uv_timer_t`. Loop-confined.
///
/// The handle holds a reference to this object from `init` until the close callback, so a
/// started timer fires even if the caller dropped its reference; call `close()` when done
/// (that also releases the callback and anything it captured).
public final class UVTimer: LoopHandleOwner {
    public let loop: UVLoop
    private let handle: UnsafeMutablePointer<uv_timer_t>
    private var callback: (() -> Void)?
    public private(set) var isClosed = false

    public init(loop: UVLoop) {
        loop.assertConfined()
        self.loop = loop
        handle = .allocate(capacity: 1)
        super.init()
        let rc = uv_timer_init(loop.raw, handle)
        precondition(rc == 0, "uv_timer_init failed: \(rc)")
        handle.pointee.data = retainedContext(self)
    }

    deinit {
        handle.deallocate()
    }

    /// Fires `callback` after `milliseconds`, then every `repeatMilliseconds` if non-zero.
    /// Restarting replaces the previous schedule and callback.
    public func start(afterMilliseconds milliseconds: UInt64, repeatMilliseconds: UInt64 = 0,
                      _ callback: @escaping () -> Void) {
        guard !isClosed else { return }
        self.callback = callback
        uv_timer_start(handle, { handle in
            withContext(handle.unsafelyUnwrapped.pointee.data, as: UVTimer.self) { $0.callback?() }
        }, milliseconds, repeatMilliseconds)
    }

    public func stop() {
        guard !isClosed else { return }
        uv_timer_stop(handle)
    }

    override func closeForLoopShutdown() { close() }

    /// Stops the timer for good and releases the callback. Idempotent.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        callback = nil
        uv_close(handle.asHandle) { handle in
            releaseContext(handle.unsafelyUnwrapped.pointee.data, as: UVTimer.self)
        }
    }
}

extension UVLoop {
    /// Runs `callback` once after `milliseconds` on this loop (loop thread only). The returned
    /// timer can be closed to cancel; it closes itself after firing.
    @discardableResult
    public func schedule(afterMilliseconds milliseconds: UInt64, _ callback: @escaping () -> Void) -> UVTimer {
        let timer = UVTimer(loop: self)
        timer.start(afterMilliseconds: milliseconds) { [unowned timer] in
            timer.close()
            callback()
        }
        return timer
    }
}
