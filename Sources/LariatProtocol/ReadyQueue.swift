/// A FIFO of stream ids: the round-robin order of one scheduling class. The ring doubles when
/// full and never shrinks, so after warm-up enqueueing never allocates. A stream removed while
/// queued leaves a stale id behind, skipped when popped.
struct ReadyQueue {
    private var storage: UnsafeMutablePointer<UInt32>
    private var capacity: Int
    private var head = 0
    private(set) var count = 0

    init(capacity: Int) {
        self.capacity = max(capacity, 1)
        storage = .allocate(capacity: self.capacity)
    }

    func deallocate() { storage.deallocate() }

    var isEmpty: Bool { count == 0 }

    mutating func push(_ id: UInt32) {
        if count == capacity { grow() }
        storage[(head + count) % capacity] = id
        count += 1
    }

    mutating func pop() -> UInt32? {
        guard count > 0 else { return nil }
        let id = storage[head]
        head = (head + 1) % capacity
        count -= 1
        return id
    }

    mutating func removeAll() { head = 0; count = 0 }

    private mutating func grow() {
        let bigger = UnsafeMutablePointer<UInt32>.allocate(capacity: capacity * 2)
        for i in 0..<count { bigger[i] = storage[(head + i) % capacity] }
        storage.deallocate()
        storage = bigger
        capacity *= 2
        head = 0
    }
}
