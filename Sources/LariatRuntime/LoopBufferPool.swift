/// Scratch buffers of one size that a loop's connections borrow for the length of one call
/// (decrypting a read, producing a tunnel's output), instead of each connection holding its
/// own for its whole life: an idle connection then holds none. 1,000 idle agents held 190 MB of
/// such buffers on a hub (128 KiB tunnel output + 64 KiB TLS plaintext each), most of it
/// resident.
///
/// A borrower that reaches another connection of the same loop while it holds a buffer (a
/// callback that resumes or writes to another stream) makes that one take a second buffer, so
/// a buffer is never shared by two live calls. Up to `keep` given-back buffers stay for reuse:
/// steady traffic allocates nothing. Loop-confined, like the connections that use it; get it
/// from `UVLoop.bufferPool(byteCount:)`.
public final class LoopBufferPool {
    public let byteCount: Int
    /// Buffers kept when given back: one per nesting level seen in practice, and a few more.
    public static let defaultKeep = 4
    private let keep: Int
    private var free: [UnsafeMutableRawBufferPointer] = []

    public init(byteCount: Int, keep: Int = LoopBufferPool.defaultKeep) {
        self.byteCount = byteCount
        self.keep = max(1, keep)
        free.reserveCapacity(self.keep)
    }

    deinit {
        for b in free { b.deallocate() }
    }

    /// A buffer of `byteCount` bytes (contents undefined), to be given back with `give`.
    @inline(__always)
    public func take() -> UnsafeMutableRawBufferPointer {
        free.popLast() ?? .allocate(byteCount: byteCount, alignment: 16)
    }

    @inline(__always)
    public func give(_ buffer: UnsafeMutableRawBufferPointer) {
        if free.count < keep { free.append(buffer) } else { buffer.deallocate() }
    }

    /// Buffers held for reuse (for tests).
    public var idleCount: Int { free.count }
}
