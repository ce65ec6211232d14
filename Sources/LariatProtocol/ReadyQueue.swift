/// A fixed-capacity FIFO of stream ids: the round-robin order of one scheduling class.
/// Preallocated at the session's stream limit so enqueueing never allocates.
struct ReadyQueue {
    private var storage: UnsafeMutablePointer<UInt32>
    private let capacity: Int
    private var head = 0
    private(set) var count = 0

    init(capacity: Int) {
        self.capacity = max(capacity, 1)
        storage = .allocate(capacity: self.capacity)
    }

    func deallocate() { storage.deallocate() }

    var isEmpty: Bool { count == 0 }

    mutating func push(_ id: UInt32) {
        precondition(count < capacity, "ready queue overflow: a stream was queued twice")
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
}
