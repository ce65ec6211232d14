import Foundation
import LariatControl
import Synchronization
import Testing

@Suite struct WorkQueueTests {
    /// A key that fails is retried with growing delays until it succeeds, then forgotten.
    @Test func failedKeysAreRetriedWithExponentialBackoff() throws {
        var settings = WorkQueue.Settings()
        settings.baseDelay = 0.02
        settings.maxDelay = 1
        let attempts = Mutex<[Date]>([])
        let done = DispatchSemaphore(value: 0)
        let queue = WorkQueue(name: "retry", settings: settings) { key in
            let n = attempts.withLock { $0.append(Date()); return $0.count }
            if n < 5 { throw TestError("attempt \(n) of \(key) fails") }
            done.signal()
        }
        defer { queue.stop() }
        queue.add("cluster-a")
        #expect(done.wait(timeout: .now() + 10) == .success)
        let times = attempts.withLock { $0 }
        #expect(times.count == 5)
        // Gaps follow 0.02, 0.04, 0.08, 0.16 s: each at least its backoff (scheduling only adds).
        for i in 1..<times.count {
            #expect(times[i].timeIntervalSince(times[i - 1]) >= queue.backoff(after: i) * 0.9)
        }
        #expect(queue.backoff(after: 1) == 0.02 && queue.backoff(after: 4) == 0.16 && queue.backoff(after: 30) == 1)
        Thread.sleep(forTimeInterval: 0.05)
        #expect(queue.failures("cluster-a") == 0)
    }

    /// Adding a key many times while it waits runs it once; adding it while it runs runs it once more.
    @Test func aKeyIsQueuedOnceAndNeverProcessedTwiceAtOnce() throws {
        var settings = WorkQueue.Settings()
        settings.workers = 3
        let running = Mutex(0), maxRunning = Mutex(0), runs = Mutex(0)
        let gate = DispatchSemaphore(value: 0)
        let queue = WorkQueue(name: "dedupe", settings: settings) { _ in
            running.withLock { $0 += 1; let r = $0; maxRunning.withLock { $0 = max($0, r) } }
            gate.wait()
            running.withLock { $0 -= 1 }
            runs.withLock { $0 += 1 }
        }
        defer { queue.stop() }
        queue.add("k")
        Thread.sleep(forTimeInterval: 0.1)     // k is running, blocked on the gate
        for _ in 0..<10 { queue.add("k") }      // dirty while processing: one more run
        gate.signal()
        Thread.sleep(forTimeInterval: 0.1)
        gate.signal()
        Thread.sleep(forTimeInterval: 0.1)
        #expect(runs.withLock { $0 } == 2)
        #expect(maxRunning.withLock { $0 } == 1)
    }
}

struct TestError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
