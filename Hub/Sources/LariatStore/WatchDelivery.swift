import Dispatch
import Foundation
import Synchronization

/// Settings every backend's watches share.
public struct WatchSettings: Sendable, Equatable {
    /// Events a watcher may have queued and not yet handled. A watcher that falls further behind
    /// is ended with `unavailable` (as Kubernetes closes a slow watch): it watches again from the
    /// last resourceVersion it handled, instead of making the store hold an unbounded queue.
    public var maxPendingEvents: Int = 100_000

    public init() {}
}

/// One watcher's ordered delivery. Producers (a committing writer, an etcd stream reader) append
/// events in revision order; a serial queue of the watcher's own hands them to the handler, so a
/// slow handler delays only itself. After the end (a failure, or the store closing) the `ended`
/// callback runs once, after every event queued before it. `cancel` stops delivery: no handler
/// call starts after it returns, and it waits for one in progress (unless called from the
/// handler itself).
final class WatchDelivery: WatchCancellation {
    private struct State {
        var pending: [WatchEvent] = []
        var draining = false
        var cancelled = false
        var end: StoreFailure?
        var endReported = false
    }

    private let state = Mutex(State())
    private let queue: DispatchQueue
    private let onQueue = DispatchSpecificKey<Bool>()
    private let handler: @Sendable (WatchEvent) -> Void
    private let ended: @Sendable (StoreFailure) -> Void
    private let maxPending: Int
    /// Run once on cancel or end, to unregister the watcher or stop its reader.
    private let release: Mutex<(@Sendable () -> Void)?>

    init(label: String, settings: WatchSettings,
         handler: @escaping @Sendable (WatchEvent) -> Void,
         ended: @escaping @Sendable (StoreFailure) -> Void) {
        queue = DispatchQueue(label: "lariat.store.watch.\(label)")
        queue.setSpecific(key: onQueue, value: true)
        self.handler = handler
        self.ended = ended
        maxPending = settings.maxPendingEvents
        release = Mutex(nil)
    }

    /// What to run when the watch stops (set once, before the first event).
    func onRelease(_ body: @escaping @Sendable () -> Void) {
        release.withLock { $0 = body }
    }

    /// Queues events (in revision order). A watcher over its pending limit is ended instead.
    func deliver(_ events: [WatchEvent]) {
        guard !events.isEmpty else { return }
        let schedule: Bool = state.withLock { s in
            guard !s.cancelled, s.end == nil else { return false }
            if s.pending.count + events.count > maxPending {
                let last = s.pending.first.map { $0.value.revision - 1 } ?? events[0].value.revision - 1
                s.end = .unavailable("the watch fell more than \(maxPending) events behind; "
                                     + "watch again from resourceVersion \(last)")
            } else {
                s.pending += events
            }
            if s.draining { return false }
            s.draining = true
            return true
        }
        // Released from the watcher's queue: the caller may hold the lock the release takes.
        if state.withLock({ $0.end != nil }) { queue.async { self.runRelease() } }
        if schedule { queue.async { self.drain() } }
    }

    func deliver(_ event: WatchEvent) { deliver([event]) }

    /// Ends the watch with `failure` once the events already queued are handled.
    func end(_ failure: StoreFailure) {
        let schedule: Bool = state.withLock { s in
            guard !s.cancelled, s.end == nil else { return false }
            s.end = failure
            if s.draining { return false }
            s.draining = true
            return true
        }
        runRelease()
        if schedule { queue.async { self.drain() } }
    }

    var isStopped: Bool { state.withLock { $0.cancelled || $0.end != nil } }

    func cancel() {
        let first = state.withLock { s in
            defer { s.cancelled = true }
            s.pending.removeAll()
            return !s.cancelled
        }
        if first { runRelease() }
        // Wait for a handler call in progress, unless we are that call.
        if DispatchQueue.getSpecific(key: onQueue) != true { queue.sync {} }
    }

    private func runRelease() {
        let body = release.withLock { r in
            defer { r = nil }
            return r
        }
        body?()
    }

    private func drain() {
        while true {
            enum Step { case events([WatchEvent]), end(StoreFailure), stop }
            let step: Step = state.withLock { s in
                if s.cancelled {
                    s.draining = false
                    return .stop
                }
                if !s.pending.isEmpty {
                    defer { s.pending.removeAll(keepingCapacity: true) }
                    return .events(s.pending)
                }
                s.draining = false
                if let end = s.end, !s.endReported {
                    s.endReported = true
                    return .end(end)
                }
                return .stop
            }
            switch step {
            case .events(let events):
                for e in events {
                    if state.withLock({ $0.cancelled }) { break }
                    handler(e)
                }
            case .end(let failure):
                ended(failure)
                return
            case .stop:
                return
            }
        }
    }
}
