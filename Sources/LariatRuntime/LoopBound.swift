/// Carries a loop-confined object across threads so that only its own loop touches it (the
/// idea of NIO's NIOLoopBound): post a closure with `loop.execute` and read `value` inside it.
public struct LoopBound<Value: AnyObject>: @unchecked Sendable {
    // Invariant: `_value` is dereferenced only on `loop`'s thread (checked on every access).
    private let _value: Value
    public let loop: UVLoop

    public init(_ value: Value, loop: UVLoop) {
        _value = value
        self.loop = loop
    }

    public var value: Value {
        precondition(loop.isInLoopThread, "loop-bound value touched off its loop")
        return _value
    }
}
