import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// Delivers process signals (SIGTERM, SIGINT, ...) as callbacks on a loop, via `uv_signal_t`,
/// so shutdown logic runs on the loop thread instead of inside an async-signal context.
public final class SignalWatcher: LoopHandleOwner {
    public let loop: UVLoop
    private var handles: [UnsafeMutablePointer<uv_signal_t>] = []
    private var callback: ((Int32) -> Void)?
    private var openHandles = 0

    public init(loop: UVLoop, signals: [Int32] = [SIGTERM, SIGINT], _ callback: @escaping (Int32) -> Void) throws(UVError) {
        loop.assertConfined()
        self.loop = loop
        self.callback = callback
        super.init()
        // A parent may have started us with these signals blocked (some test runners and
        // supervisors do); a blocked SIGTERM would stay pending forever and never drain us.
        var unblock = sigset_t()
        sigemptyset(&unblock)
        for signal in signals { sigaddset(&unblock, signal) }
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
        for signal in signals {
            let handle = UnsafeMutablePointer<uv_signal_t>.allocate(capacity: 1)
            try uvCheck(uv_signal_init(loop.raw, handle), "signal_init")
            handle.pointee.data = retainedContext(self)
            handles.append(handle)
            openHandles += 1
            let rc = uv_signal_start(handle, { handle, signal in
                withContext(handle.unsafelyUnwrapped.pointee.data, as: SignalWatcher.self) { $0.callback?(signal) }
            }, signal)
            if rc < 0 {
                close()
                throw UVError(code: rc, operation: "signal_start")
            }
        }
    }

    deinit {
        for handle in handles { handle.deallocate() }
    }

    override func closeForLoopShutdown() { close() }

    /// Stops watching and restores default signal handling. Idempotent.
    public func close() {
        guard callback != nil else { return }
        callback = nil
        for handle in handles {
            uv_close(handle.asHandle) { handle in
                releaseContext(handle.unsafelyUnwrapped.pointee.data, as: SignalWatcher.self)
            }
        }
    }
}
