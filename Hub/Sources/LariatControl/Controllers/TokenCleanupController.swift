import Foundation
import Logging
import LariatStore
import Synchronization

/// Deletes expired API tokens (`Token`) and expired cluster registration tokens once a grace
/// period has passed, as Rancher's token cleanup does: an expired token already fails
/// authentication (`TokenService`, `AgentAdmission`), so this only keeps the store from
/// collecting dead secrets' digests. The grace keeps an expired token listed for a while, so a
/// user refused with "expired" can still see which token it was.
///
/// Each kind has an informer-fed `WorkQueue`: a change enqueues the object's name; reconciling
/// deletes it when `expiresAt + grace` has passed, or re-enqueues it for then (at most
/// `maxRecheckDelay` ahead, so a clock step or a long expiry is re-read, not trusted for days).
public final class TokenCleanupController: Sendable {
    public struct Settings: Sendable {
        /// How long an expired token stays in the store after its expiry.
        public var grace: TimeInterval = 3600
        /// The longest a token is left alone before its expiry is looked at again.
        public var maxRecheckDelay: TimeInterval = 3600
        /// Backoff of failed deletions (a store error, a racing update).
        public var queue = WorkQueue.Settings()
        public init() {}
    }

    private let tokens: ExpiredObjectCleaner<Token>
    private let registrationTokens: ExpiredObjectCleaner<ClusterRegistrationToken>

    /// Starts cleaning: every object the informers hold now is looked at, and every later change.
    public init(tokens: Informer<Token>, registrationTokens: Informer<ClusterRegistrationToken>,
                settings: Settings = Settings(), logger: Logger, clock: @escaping @Sendable () -> Date = Date.init) {
        self.tokens = ExpiredObjectCleaner(informer: tokens, settings: settings, logger: logger, clock: clock) { $0.spec.expiresAt }
        self.registrationTokens = ExpiredObjectCleaner(informer: registrationTokens, settings: settings, logger: logger,
                                                       clock: clock) { $0.spec.expiresAt }
    }

    public func stop() {
        tokens.stop()
        registrationTokens.stop()
    }
}

/// Deletes objects of one kind after their expiry plus the grace (see `TokenCleanupController`).
final class ExpiredObjectCleaner<R: Resource>: Sendable {
    private let informer: Informer<R>
    private let settings: TokenCleanupController.Settings
    private let clock: @Sendable () -> Date
    private let expiry: @Sendable (Object<R>) -> Date?
    private let logger: Logger
    private let queue: WorkQueue
    private let box = QueueBox()

    init(informer: Informer<R>, settings: TokenCleanupController.Settings, logger: Logger,
         clock: @escaping @Sendable () -> Date, expiry: @escaping @Sendable (Object<R>) -> Date?) {
        self.informer = informer
        self.settings = settings
        self.clock = clock
        self.expiry = expiry
        self.logger = logger
        // The reconcile closure needs the queue (to come back later) and the queue needs the
        // closure: a box set right below, before any key is added, and emptied by `stop`.
        let box = self.box
        queue = WorkQueue(name: "cleanup-\(R.plural)", settings: settings.queue, onError: { name, error, attempt in
            logger.warning("cannot delete expired \(R.kind) \(name.logQuoted) (attempt \(attempt)): \(error)")
        }, reconcile: { name in try box.cleaner?.reconcile(name) })
        box.set(self)
        informer.onChange { [queue] change in
            switch change {
            case .upserted(let o): queue.add(o.name)
            case .deleted: break
            case .resynced: for o in informer.items { queue.add(o.name) }
            }
        }
        // The informer may have started (and resynced) before this handler was added.
        for o in informer.items { queue.add(o.name) }
    }

    func stop() {
        queue.stop()
        box.clear()
    }

    private func reconcile(_ name: String) throws {
        guard let o = informer.get(name), !o.metadata.isBeingDeleted, let expiresAt = expiry(o) else { return }
        let due = expiresAt.addingTimeInterval(settings.grace)
        let wait = due.timeIntervalSince(clock())
        if wait > 0 {
            queue.add(name, after: min(wait, settings.maxRecheckDelay))
            return
        }
        do {
            // At the version looked at: a token renewed meanwhile is not deleted (409, retried
            // with backoff against the informer's newer copy).
            try informer.store.delete(name, resourceVersion: o.metadata.resourceVersion)
            logger.info("deleted \(R.kind) \(name.logQuoted): expired at \(expiresAt.formatted(.iso8601)), grace \(Int(settings.grace)) s passed")
        } catch {
            if case .notFound = error { return }
            throw error
        }
    }

    /// Holds the cleaner for the queue's closure; `stop` empties it, ending the cycle.
    private final class QueueBox: Sendable {
        private let value = Mutex<ExpiredObjectCleaner<R>?>(nil)
        func set(_ c: ExpiredObjectCleaner<R>) { value.withLock { $0 = c } }
        func clear() { value.withLock { $0 = nil } }
        var cleaner: ExpiredObjectCleaner<R>? { value.withLock { $0 } }
    }
}
