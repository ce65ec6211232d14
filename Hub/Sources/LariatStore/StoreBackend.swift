import Foundation

/// Where an object lives in a store: its kind (the plural resource name, `clusters`) and its
/// name, unique within the kind.
public struct StoreKey: Hashable, Sendable, CustomStringConvertible {
    public var kind: String
    public var name: String
    public init(kind: String, name: String) {
        self.kind = kind
        self.name = name
    }
    public var description: String { "\(kind)/\(name)" }
}

/// One stored object: its encoded document and the store revision of its last write.
public struct StoredValue: Sendable, Equatable {
    public var key: StoreKey
    public var data: Data
    /// The store-wide revision at which this value was written (its resourceVersion).
    public var revision: Int64
    public init(key: StoreKey, data: Data, revision: Int64) {
        self.key = key
        self.data = data
        self.revision = revision
    }
}

/// What can go wrong in a store, in the terms the API answers with.
public enum StoreFailure: Error, Equatable, Sendable, CustomStringConvertible {
    case notFound(StoreKey)
    case alreadyExists(StoreKey)
    /// An update or delete named a revision that is no longer the object's (optimistic concurrency).
    case conflict(StoreKey, expected: Int64, actual: Int64)
    /// A watch or list continuation asked for history the store no longer keeps.
    case gone(requested: Int64, oldest: Int64)
    /// The backend cannot answer now (I/O error, etcd unreachable): retry later.
    case unavailable(String)
    case invalid(String)

    public var description: String {
        switch self {
        case .notFound(let k): "\(k) not found"
        case .alreadyExists(let k): "\(k) already exists"
        case .conflict(let k, let expected, let actual):
            "\(k) was modified: resourceVersion \(expected) is stale (now \(actual)); read it again and retry"
        case .gone(let requested, let oldest):
            "resourceVersion \(requested) is too old (the oldest kept is \(oldest)); list again"
        case .unavailable(let why): "store unavailable: \(why)"
        case .invalid(let why): why
        }
    }
}

/// One change seen by a watch.
public struct WatchEvent: Sendable, Equatable {
    public enum EventType: String, Sendable, Codable { case added = "ADDED", modified = "MODIFIED", deleted = "DELETED" }
    public var type: EventType
    /// The object after the change; for `.deleted`, its last value, with the revision of the deletion.
    public var value: StoredValue
    public init(type: EventType, value: StoredValue) {
        self.type = type
        self.value = value
    }
}

/// Stops a watch; events stop before `cancel` returns. Idempotent.
public protocol WatchCancellation: Sendable {
    func cancel()
}

/// A page of a list.
public struct ListPage: Sendable, Equatable {
    public var items: [StoredValue]
    /// The store revision the page was read at.
    public var revision: Int64
    /// Whether objects after the last item remain.
    public var more: Bool
    public init(items: [StoredValue], revision: Int64, more: Bool) {
        self.items = items
        self.revision = revision
        self.more = more
    }
}

/// A key-value store with one monotonically increasing revision over all writes, compare-and-
/// swap on an object's revision, and a watch that replays history from a revision. The embedded
/// implementation is SQLite; the distributed one is etcd v3, which has exactly this model. All
/// calls block and are safe from any thread; the control plane calls them off the data path's
/// loops. A write returns only once it is durable (SQLite: synchronous=FULL; etcd: committed).
public protocol StoreBackend: AnyObject, Sendable {
    /// The revision of the latest write (0 for an empty store).
    func currentRevision() throws(StoreFailure) -> Int64
    /// Writes a new object; `alreadyExists` if the key is taken. Returns its revision.
    func create(_ key: StoreKey, _ data: Data) throws(StoreFailure) -> Int64
    func get(_ key: StoreKey) throws(StoreFailure) -> StoredValue
    /// Objects of `kind` whose names sort after `after` (all if nil), in name order, at most `limit`.
    func list(kind: String, after: String?, limit: Int) throws(StoreFailure) -> ListPage
    /// Replaces an object if its revision is still `expectedRevision`; `conflict` otherwise.
    func update(_ key: StoreKey, _ data: Data, expectedRevision: Int64) throws(StoreFailure) -> Int64
    /// Removes an object (only at `expectedRevision`, when given). Returns the deletion's revision.
    func delete(_ key: StoreKey, expectedRevision: Int64?) throws(StoreFailure) -> Int64
    /// Delivers, in revision order and on a thread of the backend's, every change to objects of
    /// `kind` (every kind if nil) with a revision above `revision`, then changes as they happen.
    /// `gone` if changes after `revision` are no longer all kept.
    func watch(kind: String?, after revision: Int64,
               _ handler: @escaping @Sendable (WatchEvent) -> Void) throws(StoreFailure) -> any WatchCancellation
    /// Releases connections and stops every watch.
    func close()
}

/// Watches that can end: a backend whose watch breaks (a dropped etcd connection, compaction
/// past the watch's position) calls `onEnd` once and delivers nothing more; the watcher lists
/// again and watches from the new list's revision. Backends whose watches cannot break (the
/// in-process SQLite one, until `close`) use the default, which never calls `onEnd`.
public protocol EndingWatchBackend: StoreBackend {
    func watch(kind: String?, after revision: Int64, _ handler: @escaping @Sendable (WatchEvent) -> Void,
               onEnd: @escaping @Sendable (StoreFailure) -> Void) throws(StoreFailure) -> any WatchCancellation
}

extension StoreBackend {
    public func watch(kind: String?, after revision: Int64, _ handler: @escaping @Sendable (WatchEvent) -> Void,
                      onEnd: @escaping @Sendable (StoreFailure) -> Void) throws(StoreFailure) -> any WatchCancellation {
        if let ending = self as? any EndingWatchBackend {
            return try ending.watch(kind: kind, after: revision, handler, onEnd: onEnd)
        }
        return try watch(kind: kind, after: revision, handler)
    }
}
