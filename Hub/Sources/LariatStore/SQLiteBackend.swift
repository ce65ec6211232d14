import Foundation
import Synchronization

/// Settings of the embedded store.
public struct SQLiteStoreSettings: Sendable, Equatable {
    /// The database file inside the store's folder.
    public var fileName = "store.db"
    /// Changes kept for watches to replay. A watch from further back gets `gone` (410) and lists
    /// again; Kubernetes keeps about five minutes, this keeps a count so memory and disk are bounded.
    public var historyLength: Int64 = 10_000
    /// How long a statement waits for a lock another connection holds before failing.
    public var busyTimeout: Duration = .seconds(5)
    /// Read-only connections kept open for gets and lists (WAL lets them read while a write commits).
    public var idleReadConnections = 4
    public var watch = WatchSettings()

    public init() {}
}

/// The embedded store: one SQLite database in WAL mode with `synchronous=FULL`, so a write returns
/// only once it is on disk.
///
/// Schema: `objects(kind, name, revision, data)` holds the current values; `events(revision,
/// kind, name, type, data)` the change history watches replay (the last `historyLength` writes);
/// `meta` one row with the revision counter (every write takes the next number, across kinds, as
/// etcd's does) and `compacted`, the highest revision no longer in `events`.
///
/// Threads: writes go through one read-write connection under a mutex (SQLite has one writer
/// anyway); gets and lists take a read-only connection from a small pool and read a WAL snapshot.
/// Watchers are registered under the writer mutex, so the history a new watcher replays and the
/// live events it receives after meet with no gap and no duplicate. Each committed write is handed
/// to every matching watcher before the mutex is released, so each sees writes in revision order.
/// Watches are in-process: several hubs share etcd, never one SQLite file.
public final class SQLiteBackend: EndingWatchBackend {
    public let path: String
    public let settings: SQLiteStoreSettings

    private struct Writer {
        var connection: SQLiteConnection?
        var statements: WriterStatements?
        var watchers: [UInt64: Watcher] = [:]
        var nextWatcherID: UInt64 = 0
    }

    private struct Watcher {
        var kind: String?
        var delivery: WatchDelivery
    }

    private let writer: Mutex<Writer>
    private let readers = Mutex<[Reader]>([])
    private let closed = Atomic<Bool>(false)

    /// Opens (or creates) `folder/store.db`; the folder must exist.
    public init(folder: String, settings: SQLiteStoreSettings = SQLiteStoreSettings()) throws(StoreFailure) {
        self.settings = settings
        path = (folder as NSString).appendingPathComponent(settings.fileName)
        let c = try SQLiteConnection(path: path, readOnly: false, busyTimeout: settings.busyTimeout)
        let mode = try c.scalarText("PRAGMA journal_mode=WAL")
        guard mode?.lowercased() == "wal" else {
            throw .unavailable("store \(path): cannot use write-ahead logging (journal_mode is \(mode ?? "unknown"))")
        }
        try c.execute("PRAGMA synchronous=FULL")
        try c.execute("""
            CREATE TABLE IF NOT EXISTS objects (kind TEXT NOT NULL, name TEXT NOT NULL, revision INTEGER NOT NULL,
                data BLOB NOT NULL, PRIMARY KEY (kind, name)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS events (revision INTEGER PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL,
                type INTEGER NOT NULL, data BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY CHECK (id = 1), revision INTEGER NOT NULL,
                compacted INTEGER NOT NULL);
            INSERT OR IGNORE INTO meta (id, revision, compacted) VALUES (1, 0, 0);
            """)
        let statements = try WriterStatements(c)
        writer = Mutex(Writer(connection: c, statements: statements))
    }

    deinit { close() }

    // MARK: Reads

    public func currentRevision() throws(StoreFailure) -> Int64 {
        try read { r throws(StoreFailure) in try r.revision() }
    }

    public func get(_ key: StoreKey) throws(StoreFailure) -> StoredValue {
        try read { r throws(StoreFailure) in
            try r.get.bind(.text(key.kind), .text(key.name))
            guard try r.get.step() else { throw .notFound(key) }
            defer { r.get.reset() }
            return StoredValue(key: key, data: r.get.blob(1), revision: r.get.int(0))
        }
    }

    public func list(kind: String, after: String?, limit: Int) throws(StoreFailure) -> ListPage {
        try read { r throws(StoreFailure) in
            // One read transaction, so the page and its revision are one snapshot.
            try r.connection.execute("BEGIN")
            defer { try? r.connection.execute("COMMIT") }
            let revision = try r.revision()
            try r.list.bind(.text(kind), .text(after ?? ""), .int(Int64(max(1, limit)) + 1))
            var items: [StoredValue] = []
            while try r.list.step() {
                items.append(StoredValue(key: StoreKey(kind: kind, name: r.list.text(0)), data: r.list.blob(2),
                                         revision: r.list.int(1)))
            }
            let more = items.count > max(1, limit)
            if more { items.removeLast() }
            return ListPage(items: items, revision: revision, more: more)
        }
    }

    // MARK: Writes

    public func create(_ key: StoreKey, _ data: Data) throws(StoreFailure) -> Int64 {
        try write { w, revision throws(StoreFailure) in
            try w.insertObject.bind(.text(key.kind), .text(key.name), .int(revision), .blob(data))
            guard try w.insertObject.run() else { throw .alreadyExists(key) }
            return WatchEvent(type: .added, value: StoredValue(key: key, data: data, revision: revision))
        }
    }

    public func update(_ key: StoreKey, _ data: Data, expectedRevision: Int64) throws(StoreFailure) -> Int64 {
        try write { w, revision throws(StoreFailure) in
            let actual = try w.objectRevision(key)
            guard actual == expectedRevision else { throw .conflict(key, expected: expectedRevision, actual: actual) }
            try w.updateObject.bind(.int(revision), .blob(data), .text(key.kind), .text(key.name))
            try w.updateObject.run()
            return WatchEvent(type: .modified, value: StoredValue(key: key, data: data, revision: revision))
        }
    }

    public func delete(_ key: StoreKey, expectedRevision: Int64?) throws(StoreFailure) -> Int64 {
        try write { w, revision throws(StoreFailure) in
            try w.selectObject.bind(.text(key.kind), .text(key.name))
            guard try w.selectObject.step() else { throw .notFound(key) }
            let actual = w.selectObject.int(0)
            let last = w.selectObject.blob(1)
            w.selectObject.reset()
            if let expectedRevision, expectedRevision != actual {
                throw .conflict(key, expected: expectedRevision, actual: actual)
            }
            try w.deleteObject.bind(.text(key.kind), .text(key.name))
            try w.deleteObject.run()
            return WatchEvent(type: .deleted, value: StoredValue(key: key, data: last, revision: revision))
        }
    }

    /// One transaction: the change `body` makes at the next revision, its history event, the
    /// revision counter and the history trim; committed (and synced) before the watchers hear of it.
    private func write(_ body: (WriterStatements, Int64) throws(StoreFailure) -> WatchEvent) throws(StoreFailure) -> Int64 {
        try writer.withLock { w throws(StoreFailure) in
            guard let c = w.connection, let s = w.statements else { throw .unavailable("store \(path) is closed") }
            try c.execute("BEGIN IMMEDIATE")
            let event: WatchEvent
            do throws(StoreFailure) {
                let (current, compacted) = try s.meta()
                let revision = current + 1
                event = try body(s, revision)
                try s.insertEvent.bind(.int(revision), .text(event.value.key.kind), .text(event.value.key.name),
                                       .int(Self.code(event.type)), .blob(event.value.data))
                try s.insertEvent.run()
                let oldestKept = revision - settings.historyLength
                if oldestKept > compacted {
                    try s.trimEvents.bind(.int(oldestKept))
                    try s.trimEvents.run()
                }
                try s.setMeta.bind(.int(revision), .int(max(compacted, oldestKept)))
                try s.setMeta.run()
                try c.execute("COMMIT")
            } catch {
                try? c.execute("ROLLBACK")
                throw error
            }
            for watcher in w.watchers.values where watcher.kind == nil || watcher.kind == event.value.key.kind {
                watcher.delivery.deliver(event)
            }
            return event.value.revision
        }
    }

    // MARK: Watch

    public func watch(kind: String?, after revision: Int64,
                      _ handler: @escaping @Sendable (WatchEvent) -> Void) throws(StoreFailure) -> any WatchCancellation {
        try watch(kind: kind, after: revision, handler, onEnd: { _ in })
    }

    public func watch(kind: String?, after revision: Int64, _ handler: @escaping @Sendable (WatchEvent) -> Void,
                      onEnd: @escaping @Sendable (StoreFailure) -> Void) throws(StoreFailure) -> any WatchCancellation {
        let delivery = WatchDelivery(label: kind ?? "all", settings: settings.watch, handler: handler, ended: onEnd)
        try writer.withLock { w throws(StoreFailure) in
            guard let s = w.statements else { throw .unavailable("store \(path) is closed") }
            let (current, compacted) = try s.meta()
            if revision < compacted { throw .gone(requested: revision, oldest: compacted + 1) }
            if revision < current {
                try s.history.bind(.int(revision), kind.map { .text($0) } ?? .null)
                var events: [WatchEvent] = []
                while try s.history.step() {
                    let key = StoreKey(kind: s.history.text(1), name: s.history.text(2))
                    events.append(WatchEvent(type: Self.type(s.history.int(3)),
                                             value: StoredValue(key: key, data: s.history.blob(4), revision: s.history.int(0))))
                }
                delivery.deliver(events)
            }
            let id = w.nextWatcherID
            w.nextWatcherID += 1
            w.watchers[id] = Watcher(kind: kind, delivery: delivery)
            delivery.onRelease { [weak self] in
                _ = self?.writer.withLock { $0.watchers.removeValue(forKey: id) }
            }
            // The replay alone may have overrun the watcher's queue, ending it before onRelease was set.
            if delivery.isStopped { w.watchers[id] = nil }
        }
        return delivery
    }

    // MARK: Closing

    public func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let watchers = writer.withLock { w in
            w.statements = nil
            w.connection?.close()
            w.connection = nil
            defer { w.watchers.removeAll() }
            return w.watchers.values.map(\.delivery)
        }
        for d in watchers { d.end(.unavailable("store \(path) was closed")) }
        readers.withLock { $0.removeAll() }
    }

    // MARK: Read connections

    private func read<T>(_ body: (Reader) throws(StoreFailure) -> T) throws(StoreFailure) -> T {
        guard !closed.load(ordering: .acquiring) else { throw .unavailable("store \(path) is closed") }
        let reader: Reader
        if let r = readers.withLock({ $0.popLast() }) {
            reader = r
        } else {
            reader = try Reader(path: path, busyTimeout: settings.busyTimeout)
        }
        defer {
            let keep = settings.idleReadConnections
            if !closed.load(ordering: .acquiring) {
                readers.withLock { if $0.count < keep { $0.append(reader) } }
            }
        }
        return try body(reader)
    }

    private static func code(_ t: WatchEvent.EventType) -> Int64 {
        switch t {
        case .added: 1
        case .modified: 2
        case .deleted: 3
        }
    }

    private static func type(_ code: Int64) -> WatchEvent.EventType {
        switch code {
        case 1: .added
        case 3: .deleted
        default: .modified
        }
    }
}

/// A read-only connection and its prepared statements; used by one caller at a time.
private final class Reader: @unchecked Sendable {
    // Invariant: a Reader is either in the backend's pool (under its mutex) or held by exactly one caller.
    let connection: SQLiteConnection
    let get: SQLiteStatement
    let list: SQLiteStatement
    let meta: SQLiteStatement

    init(path: String, busyTimeout: Duration) throws(StoreFailure) {
        connection = try SQLiteConnection(path: path, readOnly: true, busyTimeout: busyTimeout)
        get = try connection.prepare("SELECT revision, data FROM objects WHERE kind = ? AND name = ?")
        list = try connection.prepare(
            "SELECT name, revision, data FROM objects WHERE kind = ? AND name > ? ORDER BY name LIMIT ?")
        meta = try connection.prepare("SELECT revision FROM meta WHERE id = 1")
    }

    func revision() throws(StoreFailure) -> Int64 {
        guard try meta.step() else { return 0 }
        defer { meta.reset() }
        return meta.int(0)
    }
}

/// The writer connection's prepared statements.
private final class WriterStatements {
    let selectObject: SQLiteStatement
    let insertObject: SQLiteStatement
    let updateObject: SQLiteStatement
    let deleteObject: SQLiteStatement
    let insertEvent: SQLiteStatement
    let trimEvents: SQLiteStatement
    let readMeta: SQLiteStatement
    let setMeta: SQLiteStatement
    let history: SQLiteStatement

    init(_ c: SQLiteConnection) throws(StoreFailure) {
        selectObject = try c.prepare("SELECT revision, data FROM objects WHERE kind = ? AND name = ?")
        insertObject = try c.prepare("INSERT INTO objects (kind, name, revision, data) VALUES (?, ?, ?, ?)")
        updateObject = try c.prepare("UPDATE objects SET revision = ?, data = ? WHERE kind = ? AND name = ?")
        deleteObject = try c.prepare("DELETE FROM objects WHERE kind = ? AND name = ?")
        insertEvent = try c.prepare("INSERT INTO events (revision, kind, name, type, data) VALUES (?, ?, ?, ?, ?)")
        trimEvents = try c.prepare("DELETE FROM events WHERE revision <= ?")
        readMeta = try c.prepare("SELECT revision, compacted FROM meta WHERE id = 1")
        setMeta = try c.prepare("UPDATE meta SET revision = ?, compacted = ? WHERE id = 1")
        history = try c.prepare(
            "SELECT revision, kind, name, type, data FROM events WHERE revision > ?1 AND (?2 IS NULL OR kind = ?2) ORDER BY revision")
    }

    func meta() throws(StoreFailure) -> (revision: Int64, compacted: Int64) {
        guard try readMeta.step() else { return (0, 0) }
        defer { readMeta.reset() }
        return (readMeta.int(0), readMeta.int(1))
    }

    /// The object's revision; `notFound` if there is none.
    func objectRevision(_ key: StoreKey) throws(StoreFailure) -> Int64 {
        try selectObject.bind(.text(key.kind), .text(key.name))
        guard try selectObject.step() else { throw .notFound(key) }
        defer { selectObject.reset() }
        return selectObject.int(0)
    }
}
