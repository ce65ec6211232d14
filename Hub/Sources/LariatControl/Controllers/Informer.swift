import Foundation
import LariatStore
import Synchronization

/// A list + watch cache of one kind: lists once, then follows the store's watch from the list's
/// resourceVersion, relisting when the watch reports 410 Gone or breaks. Readers get the cache
/// from any thread; handlers run on the informer's own queue, in store order, after the cache
/// has the change. The one way controllers and caches (tokens, authorizer) follow the store.
public final class Informer<R: Resource>: Sendable {
    public enum Change: Sendable {
        case upserted(Object<R>)
        case deleted(Object<R>)
        /// The cache was rebuilt from a fresh list (after a start or a 410): re-check everything.
        case resynced
    }

    public let store: ObjectStore<R>
    private let cache = Mutex<[String: Object<R>]>([:])
    private let handlers = Mutex<[@Sendable (Change) -> Void]>([])
    private let state = Mutex<(watch: (any WatchCancellation)?, stopped: Bool, synced: Bool, lastRevision: Int64)>((nil, false, false, 0))
    private let queue: DispatchQueue
    /// How long to wait before relisting after the store failed.
    public let retryDelay: TimeInterval

    public init(store: ObjectStore<R>, retryDelay: TimeInterval = 1) {
        self.store = store
        self.retryDelay = retryDelay
        queue = DispatchQueue(label: "informer-\(R.plural)")
    }

    /// Adds a handler (before `start`, or it misses the initial resync).
    public func onChange(_ handler: @escaping @Sendable (Change) -> Void) {
        handlers.withLock { $0.append(handler) }
    }

    /// Lists and starts watching; returns once the first list is in the cache (or throws its error).
    public func start() throws(StoreFailure) {
        try relist()
    }

    public func stop() {
        let w = state.withLock { s -> (any WatchCancellation)? in
            s.stopped = true
            defer { s.watch = nil }
            return s.watch
        }
        w?.cancel()
    }

    public var hasSynced: Bool { state.withLock { $0.synced } }
    public func get(_ name: String) -> Object<R>? { cache.withLock { $0[name] } }
    public var items: [Object<R>] { cache.withLock { Array($0.values) }.sorted { $0.name < $1.name } }
    /// The resourceVersion of the newest change the cache holds.
    public var lastRevision: Int64 { state.withLock { $0.lastRevision } }

    private func relist() throws(StoreFailure) {
        if state.withLock({ $0.stopped }) { return }
        let list = try store.listAll()
        let revision = Int64(list.resourceVersion) ?? 0
        cache.withLock { c in
            c = Dictionary(uniqueKeysWithValues: list.items.map { ($0.name, $0) })
        }
        state.withLock { $0.lastRevision = revision; $0.synced = true }
        queue.async { self.notify(.resynced) }
        let watch = try store.watch(after: revision, { [self] event in
            queue.async { self.apply(event) }
        }, onEnd: { [self] _ in watchBroke() })
        let old = state.withLock { s -> (any WatchCancellation)? in
            defer { s.watch = watch }
            return s.watch
        }
        old?.cancel()
        if state.withLock({ $0.stopped }) { watch.cancel() }
    }

    private func apply(_ event: ObjectEvent<R>) {
        let o = event.object
        let fresh = state.withLock { s -> Bool in
            guard o.revision > s.lastRevision else { return false }
            s.lastRevision = o.revision
            return true
        }
        guard fresh else { return }
        switch event.type {
        case .added, .modified:
            // `remember` may already hold this version, or a newer one.
            cache.withLock { c in if (c[o.name]?.revision ?? 0) < o.revision { c[o.name] = o } }
            notify(.upserted(o))
        case .deleted:
            cache.withLock { c in if (c[o.name]?.revision ?? 0) <= o.revision { c[o.name] = nil } }
            notify(.deleted(o))
        }
    }

    /// Read-your-writes: the control plane puts what it just wrote into the cache at once, so
    /// the next request (a token used right after login) does not race the watch. The watch's
    /// own event for the write follows and notifies the handlers as usual.
    public func remember(_ o: Object<R>) {
        let newer = cache.withLock { c -> Bool in
            guard (c[o.name]?.revision ?? 0) < o.revision else { return false }
            c[o.name] = o
            return true
        }
        if newer { notify(.upserted(o)) }
    }

    /// Read-your-writes for a deletion the control plane just made (at `revision`).
    public func forget(_ o: Object<R>, revision: Int64) {
        let removed = cache.withLock { c -> Bool in
            guard let cached = c[o.name], cached.revision < revision else { return false }
            c[o.name] = nil
            return true
        }
        if removed { notify(.deleted(o)) }
    }

    private func notify(_ change: Change) {
        for h in handlers.withLock({ $0 }) { h(change) }
    }

    /// The watch broke (410 or connection lost): relist after a pause, until it works again.
    private func watchBroke() {
        queue.asyncAfter(deadline: .now() + retryDelay) { [self] in
            do { try relist() } catch { watchBroke() }
        }
    }
}
