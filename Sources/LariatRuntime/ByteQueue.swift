#if canImport(Glibc)
import Glibc
#endif

/// A growable FIFO of bytes in one contiguous allocation: append at the tail, consume at the
/// head. Used for write backlogs, so steady-state traffic reuses the same memory.
///
/// Memory does not move except inside `append`, so a pointer from `readable` stays valid until
/// the next `append` (TCPConnection relies on this by never appending to the queue in flight).
final class ByteQueue {
    private var storage: UnsafeMutableRawPointer?
    private var capacity = 0
    private var head = 0
    private var tail = 0
    /// Capacity kept after `removeAll()`; bigger buffers are freed so idle connections stay small.
    private let retainedCapacity: Int

    init(retainedCapacity: Int = 256 * 1024) {
        self.retainedCapacity = retainedCapacity
    }

    deinit {
        free(storage)
    }

    var count: Int { tail - head }
    /// Bytes of storage held (0 until the first append).
    var allocatedBytes: Int { capacity }
    var isEmpty: Bool { tail == head }

    /// The unconsumed bytes.
    var readable: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: storage.map { $0 + head }, count: tail - head)
    }

    func append(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        reserveTail(bytes.count)
        (storage.unsafelyUnwrapped + tail).copyMemory(from: source, byteCount: bytes.count)
        tail += bytes.count
        appendedSinceIdleCheck = true
    }

    func consume(_ n: Int) {
        precondition(n <= count)
        head += n
        if head == tail { head = 0; tail = 0 }
    }

    /// Drops the newest `n` bytes (a closed writer's backlog that was never sent).
    func removeLast(_ n: Int) {
        precondition(n <= count)
        tail -= n
        if head == tail { head = 0; tail = 0 }
    }

    /// Empties the queue after a use of `used` bytes. Large storage is given back after
    /// `lightUsesBeforeRelease` uses in a row that each needed under an eighth of it: a
    /// connection whose traffic turned light (an idle stream after a transfer) returns the
    /// memory, while a busy one — even with small writes between its large ones — keeps reusing
    /// it without touching the allocator.
    func reset(afterUsing used: Int) {
        head = 0
        tail = 0
        guard capacity > Self.largeCapacity else { return }
        if used >= capacity / 8 {
            lightUses = 0
            return
        }
        lightUses += 1
        if lightUses >= Self.lightUsesBeforeRelease {
            free(storage)
            storage = nil
            capacity = 0
            lightUses = 0
        }
    }

    static let largeCapacity = 64 * 1024
    static let lightUsesBeforeRelease = 8
    private var lightUses = 0

    /// Set by `append`, cleared by `releaseStorageIfIdle`.
    private var appendedSinceIdleCheck = false

    /// Frees the storage if the queue is empty and nothing was appended since the previous call
    /// (a caller calls this periodically: storage in use during the last period stays).
    func releaseStorageIfIdle() {
        defer { appendedSinceIdleCheck = false }
        guard !appendedSinceIdleCheck, head == tail, storage != nil else { return }
        releaseStorage()
    }

    /// Empties the queue and frees its storage, whatever its size.
    func releaseStorage() {
        head = 0
        tail = 0
        free(storage)
        storage = nil
        capacity = 0
        lightUses = 0
    }

    func removeAll() {
        head = 0
        tail = 0
        if capacity > retainedCapacity {
            free(storage)
            storage = nil
            capacity = 0
        }
    }

    /// Makes room for `extra` bytes after `tail`: slide live bytes to the front if that is
    /// enough, otherwise grow geometrically.
    private func reserveTail(_ extra: Int) {
        if tail + extra <= capacity { return }
        let live = tail - head
        if head > 0 && live + extra <= capacity {
            memmove(storage.unsafelyUnwrapped, storage.unsafelyUnwrapped + head, live)
        } else {
            var newCapacity = max(capacity * 2, 16 * 1024)
            while newCapacity < live + extra { newCapacity *= 2 }
            let grown = malloc(newCapacity)!
            if live > 0 { grown.copyMemory(from: storage.unsafelyUnwrapped + head, byteCount: live) }
            free(storage)
            storage = grown
            capacity = newCapacity
        }
        head = 0
        tail = live
    }
}
