import Foundation
import Synchronization

/// A controller's queue of keys to reconcile, as client-go's rate-limited work queue: a key is
/// queued once however often it is added, never processed by two workers at once (added again
/// while processing, it runs once more afterwards), and a failed key is retried with
/// exponential backoff (`baseDelay` doubling up to `maxDelay`) until it succeeds or is forgotten.
public final class WorkQueue: Sendable {
    public struct Settings: Sendable {
        public var baseDelay: TimeInterval = 0.05
        public var maxDelay: TimeInterval = 30
        public var workers = 1
        public init() {}
    }

    private struct State {
        var queued: [String] = []
        var queuedSet: Set<String> = []
        var processing: Set<String> = []
        var dirtyWhileProcessing: Set<String> = []
        var failures: [String: Int] = [:]
        var stopped = false
    }

    public let name: String
    public let settings: Settings
    private let state = Mutex(State())
    private let ready = DispatchSemaphore(value: 0)
    private let delayQueue: DispatchQueue
    private let reconcile: @Sendable (String) throws -> Void
    private let onError: @Sendable (String, any Error, Int) -> Void

    /// `reconcile` brings key's world to its desired state; throwing retries it with backoff.
    /// `onError` hears every failure (key, error, attempt) for logs and metrics.
    public init(name: String, settings: Settings = Settings(),
                onError: @escaping @Sendable (String, any Error, Int) -> Void = { _, _, _ in },
                reconcile: @escaping @Sendable (String) throws -> Void) {
        self.name = name
        self.settings = settings
        self.reconcile = reconcile
        self.onError = onError
        delayQueue = DispatchQueue(label: "workqueue-\(name)-delay")
        for i in 0..<max(1, settings.workers) {
            let t = Thread { [self] in self.run() }
            t.name = "\(name)-\(i)"
            t.start()
        }
    }

    public func add(_ key: String) {
        let signal = state.withLock { s -> Bool in
            guard !s.stopped else { return false }
            if s.processing.contains(key) {
                s.dirtyWhileProcessing.insert(key)
                return false
            }
            guard s.queuedSet.insert(key).inserted else { return false }
            s.queued.append(key)
            return true
        }
        if signal { ready.signal() }
    }

    /// Adds `key` after `delay` seconds.
    public func add(_ key: String, after delay: TimeInterval) {
        delayQueue.asyncAfter(deadline: .now() + delay) { [self] in add(key) }
    }

    /// How many times `key` has failed in a row.
    public func failures(_ key: String) -> Int { state.withLock { $0.failures[key, default: 0] } }
    public var depth: Int { state.withLock { $0.queued.count } }

    /// The retry delay after `failures` consecutive failures.
    public func backoff(after failures: Int) -> TimeInterval {
        min(settings.maxDelay, settings.baseDelay * pow(2, Double(max(0, failures - 1))))
    }

    public func stop() {
        let workers = state.withLock { s -> Int in
            s.stopped = true
            return settings.workers
        }
        for _ in 0..<max(1, workers) { ready.signal() }
    }

    private func run() {
        while true {
            ready.wait()
            let next = state.withLock { s -> String?? in
                if s.stopped { return .some(nil) }
                guard !s.queued.isEmpty else { return nil }
                let key = s.queued.removeFirst()
                s.queuedSet.remove(key)
                s.processing.insert(key)
                return .some(key)
            }
            guard let maybeKey = next else { continue }
            guard let key = maybeKey else { return }
            var failedAttempt = 0
            do {
                try reconcile(key)
                state.withLock { $0.failures[key] = nil }
            } catch {
                failedAttempt = state.withLock { s -> Int in
                    s.failures[key, default: 0] += 1
                    return s.failures[key]!
                }
                onError(key, error, failedAttempt)
            }
            let again = state.withLock { s -> Bool in
                s.processing.remove(key)
                return s.dirtyWhileProcessing.remove(key) != nil
            }
            if failedAttempt > 0 {
                add(key, after: backoff(after: failedAttempt))
            } else if again {
                add(key)
            }
        }
    }
}
