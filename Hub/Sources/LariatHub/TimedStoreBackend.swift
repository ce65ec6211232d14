import CoreMetrics
import Foundation
import LariatStore

/// The store's latency as the hub sees it: every call of the wrapped backend is timed into a
/// histogram by operation (`create`, `get`, `list`, `update`, `delete`, `revision`) and
/// backend (`sqlite`, `etcd`). Watches are passed through untimed (they last).
final class TimedStoreBackend: EndingWatchBackend {
    static let durationLabel = "lariat_store_operation_duration_seconds"
    let inner: any StoreBackend
    private let timers: [String: CoreMetrics.Timer]

    init(_ inner: any StoreBackend, backendName: String, factory: any MetricsFactory) {
        self.inner = inner
        var t: [String: CoreMetrics.Timer] = [:]
        for op in ["create", "get", "list", "update", "delete", "revision"] {
            t[op] = CoreMetrics.Timer(label: Self.durationLabel, dimensions: [("operation", op), ("backend", backendName)],
                                      factory: factory)
        }
        timers = t
    }

    private func timed<T>(_ op: String, _ body: () throws(StoreFailure) -> T) throws(StoreFailure) -> T {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { timers[op]?.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start)) }
        return try body()
    }

    func currentRevision() throws(StoreFailure) -> Int64 { try timed("revision") { () throws(StoreFailure) in try inner.currentRevision() } }
    func create(_ key: StoreKey, _ data: Data) throws(StoreFailure) -> Int64 {
        try timed("create") { () throws(StoreFailure) in try inner.create(key, data) }
    }
    func get(_ key: StoreKey) throws(StoreFailure) -> StoredValue { try timed("get") { () throws(StoreFailure) in try inner.get(key) } }
    func list(kind: String, after: String?, limit: Int) throws(StoreFailure) -> ListPage {
        try timed("list") { () throws(StoreFailure) in try inner.list(kind: kind, after: after, limit: limit) }
    }
    func update(_ key: StoreKey, _ data: Data, expectedRevision: Int64) throws(StoreFailure) -> Int64 {
        try timed("update") { () throws(StoreFailure) in try inner.update(key, data, expectedRevision: expectedRevision) }
    }
    func delete(_ key: StoreKey, expectedRevision: Int64?) throws(StoreFailure) -> Int64 {
        try timed("delete") { () throws(StoreFailure) in try inner.delete(key, expectedRevision: expectedRevision) }
    }
    func watch(kind: String?, after revision: Int64,
               _ handler: @escaping @Sendable (WatchEvent) -> Void) throws(StoreFailure) -> any WatchCancellation {
        try inner.watch(kind: kind, after: revision, handler)
    }
    func watch(kind: String?, after revision: Int64, _ handler: @escaping @Sendable (WatchEvent) -> Void,
               onEnd: @escaping @Sendable (StoreFailure) -> Void) throws(StoreFailure) -> any WatchCancellation {
        try inner.watch(kind: kind, after: revision, handler, onEnd: onEnd)
    }
    func close() { inner.close() }
}
