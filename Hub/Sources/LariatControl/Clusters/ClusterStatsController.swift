import Foundation
import Logging
import LariatRuntime
import LariatStore
import Synchronization

/// Keeps each Cluster's stats in its status (issue #10, "Upward"): every `interval` it reads,
/// through `ClusterAPIClient` as `lariat:controller`, the Kubernetes version, the nodes (count,
/// Ready count, summed capacity and allocatable), the pods (count by phase) and the newest
/// warning events of every cluster whose agent is connected to this hub
/// (`ClusterStatsCollector`), and writes them with condition `StatsFresh` True.
///
/// A cluster it cannot read keeps its last stats; once they are `staleAfterIntervals` intervals
/// old, `StatsFresh` turns False with reason `Stale` (Unknown, `NotReported`, before any read),
/// so a cluster whose agent stopped reporting is visibly stale. Every hub applies the same rule
/// to `statsUpdatedAt`, so a cluster read by another hub sharing the store is not marked stale.
///
/// Writes go through `ObjectStore.modify` and touch only the stats fields and `StatsFresh`:
/// `status.agents`, `Connected` and `Ready` belong to the hub's cluster status controller and
/// survive every write here (and the other way round).
public final class ClusterStatsController: Sendable {
    public struct Settings: Sendable, Equatable {
        /// How often every cluster is read (`lariat-hub serve --stats-interval`).
        public var interval: TimeInterval = 30
        /// Stats older than this many intervals are stale (one missed read is not news).
        public var staleAfterIntervals = 3
        /// The longest one request to a cluster's API server may take.
        public var requestTimeout: TimeInterval = 10
        /// Clusters read at once: a slow cluster's requests must not hold up every other's.
        public var workers = 2
        /// Objects per list request; lists are read in pages so a large cluster's pod list
        /// never has to fit one answer (the client caps answers at 32 MiB).
        public var pageSize = 500
        /// Pages read of one list before giving up (400 × 500 passes Kubernetes' 150,000-pod limit).
        public var maxPages = 400
        /// Warning events kept, newest first.
        public var maxWarnings = 20
        /// Nodes listed by name in `status.nodes.items` (the counts cover all of them).
        public var maxListedNodes = 100
        /// Characters kept of an event message or an error (the cluster writes them, not us).
        public var maxMessageCharacters = 1024
        /// Characters kept of names, reasons and versions (Kubernetes names are at most 253).
        public var maxNameCharacters = 253
        public init() {}

        public var staleAfter: TimeInterval { interval * Double(max(1, staleAfterIntervals)) }
    }

    /// The condition this controller owns.
    public static let condition = "StatsFresh"

    /// What one `refresh` did.
    public enum Outcome: Sendable, Equatable {
        /// Stats were read and written; `StatsFresh` is True.
        case updated
        /// Not read; the last stats are still fresh until `until`.
        case fresh(until: Date)
        /// Not read, and the stats are stale (or there never were any): `StatsFresh` says so.
        case stale(ClusterStatsFailure)
        /// The cluster is gone or being deleted.
        case skipped
    }

    public let settings: Settings
    private let clusters: ObjectStore<Cluster>
    private let informer: Informer<Cluster>
    private let collector: ClusterStatsCollector
    private let clock: @Sendable () -> Date
    private let logger: Logger
    private let queue: WorkQueue
    private let started = Atomic<Bool>(false)
    private let stopped = Atomic<Bool>(false)
    /// Consecutive failed reads per cluster (one log line at the first and every tenth), and
    /// the `Connected` transition last acted on per cluster.
    private let failures = Mutex<[String: Int]>([:])
    private let connectedSeen = Mutex<[String: Date]>([:])
    private let box: ControllerBox

    /// Nothing runs until `start`; `refresh` may be called at any time.
    public init(clusters: ObjectStore<Cluster>, informer: Informer<Cluster>, api: any ClusterAPIClient,
                settings: Settings = Settings(), logger: Logger, clock: @escaping @Sendable () -> Date = Date.init) {
        self.settings = settings
        self.clusters = clusters
        self.informer = informer
        self.clock = clock
        self.logger = logger
        collector = ClusterStatsCollector(api: api, settings: settings)
        var q = WorkQueue.Settings()
        q.workers = max(1, settings.workers)
        // Only store writes are retried this way; a failed read waits for the next interval.
        q.baseDelay = 0.5
        q.maxDelay = max(1, settings.interval)
        // The queue's closure needs the controller and the controller holds the queue: a box
        // filled once everything is set, and emptied by `stop`.
        let box = ControllerBox()
        self.box = box
        queue = WorkQueue(name: "cluster-stats", settings: q, onError: { cluster, error, attempt in
            if attempt == 1 || attempt % 10 == 0 {
                logger.warning("cluster stats of \(cluster.logQuoted): \(error) (attempt \(attempt); retrying with backoff)")
            }
        }, reconcile: { cluster in _ = try box.controller?.refresh(cluster: cluster) })
        box.set(self)
    }

    /// Reads every cluster now and every `interval` after, and a cluster at once when an agent
    /// of it connects (its `Connected` condition turns True).
    public func start() {
        guard !started.exchange(true, ordering: .relaxed) else { return }
        // Connections made before the start are covered by the first tick.
        connectedSeen.withLock { seen in
            for c in informer.items {
                if let connected = c.status.conditions["Connected"], connected.status == .true {
                    seen[c.name] = connected.lastTransitionTime
                }
            }
        }
        informer.onChange { [weak self] change in
            guard let self else { return }
            switch change {
            case .upserted(let c):
                guard let connected = c.status.conditions["Connected"], connected.status == .true else { return }
                let isNew = connectedSeen.withLock { seen in
                    defer { seen[c.name] = connected.lastTransitionTime }
                    return seen[c.name] != connected.lastTransitionTime
                }
                if isNew { queue.add(c.name) }
            case .deleted(let c):
                connectedSeen.withLock { _ = $0.removeValue(forKey: c.name) }
                failures.withLock { _ = $0.removeValue(forKey: c.name) }
            case .resynced:
                break
            }
        }
        tick()
    }

    public func stop() {
        stopped.store(true, ordering: .relaxed)
        queue.stop()
        box.clear()
    }

    private func tick() {
        guard !stopped.load(ordering: .relaxed) else { return }
        for c in informer.items where !c.metadata.isBeingDeleted { queue.add(c.name) }
        DispatchQueue.global().asyncAfter(deadline: .now() + settings.interval) { [weak self] in self?.tick() }
    }

    /// One read of `cluster` and the write of its outcome, on the caller's thread (the queue's
    /// workers run the same). Throws only when the store write failed.
    @discardableResult
    public func refresh(cluster name: String) throws(StoreFailure) -> Outcome {
        var found = informer.get(name)
        if found == nil { found = try clusters.find(name) }  // created a moment ago
        guard let found, !found.metadata.isBeingDeleted else { return .skipped }
        let read = collector.collect(name)
        // Whole seconds, as the store keeps dates: an unchanged status then compares equal.
        let now = Date(timeIntervalSince1970: clock().timeIntervalSince1970.rounded(.down))
        let outcome: Outcome
        switch read {
        case .success(let stats):
            outcome = .updated
            try write(name) { status in
                stats.apply(to: &status, at: now)
                status.conditions.set(Self.condition, .true, reason: "Reported",
                                      message: "read from the cluster's API server every \(Self.seconds(settings.interval))",
                                      at: now)
            }
            let previous = failures.withLock { $0.removeValue(forKey: name) } ?? 0
            if previous > 0 { logger.info("cluster stats of \(name.logQuoted) read again after \(previous) failed attempt(s)") }
        case .failure(let failure):
            outcome = try markIfStale(name, failure: failure, now: now)
            if !failure.isUnavailable {
                let n = failures.withLock { f -> Int in
                    f[name, default: 0] += 1
                    return f[name]!
                }
                if n == 1 || n % 10 == 0 {
                    logger.warning("cannot read the stats of cluster \(name.logQuoted) (\(n) time(s) in a row): \(failure.description.logQuoted)")
                }
            }
            if case .fresh(let until) = outcome, started.load(ordering: .relaxed) {
                // Looked at again the moment it would turn stale, not up to an interval later.
                queue.add(name, after: max(0.05, until.timeIntervalSince(clock()) + 0.5))
            }
        }
        return outcome
    }

    /// `StatsFresh` False (`Stale`) once the last read is `staleAfter` old, Unknown
    /// (`NotReported`) when there was none; the stats themselves are kept.
    private func markIfStale(_ name: String, failure: ClusterStatsFailure, now: Date) throws(StoreFailure) -> Outcome {
        let why = bounded(failure.description, settings.maxMessageCharacters)
        var outcome = Outcome.stale(failure)
        try write(name) { status in
            outcome = .stale(failure)  // `modify` may run this again on a conflict
            guard let last = status.statsUpdatedAt else {
                status.conditions.set(Self.condition, .unknown, reason: "NotReported",
                                      message: "no stats read from the cluster yet: \(why)", at: now)
                return
            }
            let until = last.addingTimeInterval(settings.staleAfter)
            guard now >= until else {
                outcome = .fresh(until: until)
                return
            }
            status.conditions.set(Self.condition, .false, reason: "Stale",
                                  message: "no stats since \(last.formatted(.iso8601)) (more than \(Self.seconds(settings.staleAfter))): \(why)",
                                  at: now)
        }
        return outcome
    }

    private func write(_ name: String, _ change: (inout Cluster.Status) -> Void) throws(StoreFailure) {
        do {
            try clusters.modify(name) { (c: inout Object<Cluster>) throws(StoreFailure) in
                guard !c.metadata.isBeingDeleted else { return }
                change(&c.status)
            }
        } catch {
            if case .notFound = error { return }  // deleted meanwhile
            throw error
        }
    }

    static func seconds(_ t: TimeInterval) -> String {
        t == t.rounded() ? "\(Int(t)) s" : String(format: "%.1f s", t)
    }

    /// Holds the controller for the queue's closure (which the controller owns); `stop` empties it.
    private final class ControllerBox: Sendable {
        private let value = Mutex<ClusterStatsController?>(nil)
        func set(_ c: ClusterStatsController) { value.withLock { $0 = c } }
        func clear() { value.withLock { $0 = nil } }
        var controller: ClusterStatsController? { value.withLock { $0 } }
    }
}
