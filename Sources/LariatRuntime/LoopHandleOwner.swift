/// Base class of every object whose libuv handle's `data` slot holds a +1 reference to it
/// (TCPConnection, TCPListener, UVTimer, SignalWatcher). It lets `UVLoop.close()` recognise
/// the owner of a handle still open at shutdown and close it through the owner, so the owner
/// takes its normal path (handler callbacks, release) instead of leaking.
public class LoopHandleOwner {
    init() {}

    /// Loop thread, during `UVLoop.close()`: close the way the owner's own `close()` does.
    func closeForLoopShutdown() {}
}
