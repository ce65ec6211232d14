import LariatRuntime

/// Carries a loop-confined object across threads so that only its own loop touches it (the
/// idea of NIO's NIOLoopBound). Every access checks the calling thread.
struct LoopBound<Value: AnyObject>: @unchecked Sendable {
    // Invariant: `_value` is read only on `loop`'s thread (checked by `value`).
    private let _value: Value
    let loop: UVLoop

    init(_ value: Value, loop: UVLoop) {
        _value = value
        self.loop = loop
    }

    var value: Value {
        precondition(loop.isInLoopThread, "loop-bound value touched off its loop")
        return _value
    }
}
