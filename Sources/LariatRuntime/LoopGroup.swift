import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// N loops, each on its own thread (default: one per core), handed out round-robin so new
/// connections spread across cores. Shared freely between threads.
public final class LoopGroup: Sendable {
    public let loops: [UVLoop]
    private let cursor = Atomic<Int>(0)

    public init(count: Int = LoopGroup.coreCount, namePrefix: String = "lariat-loop") {
        precondition(count > 0)
        loops = (0..<count).map { UVLoop(name: "\(namePrefix)-\($0)") }
        for loop in loops { loop.startThread() }
    }

    public static var coreCount: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// The next loop in round-robin order.
    public func next() -> UVLoop {
        let index = cursor.wrappingAdd(1, ordering: .relaxed).oldValue
        return loops[index % loops.count]
    }

    /// Stops every loop and waits for its thread to close it.
    public func shutdown() {
        for loop in loops { loop.stop() }
        for loop in loops { loop.join() }
    }
}
