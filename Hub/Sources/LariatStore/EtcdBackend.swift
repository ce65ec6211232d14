import Foundation
import Synchronization

/// Settings of the distributed store.
public struct EtcdStoreSettings: Sendable, Equatable {
    /// Every key lives under `/<prefix>/`, so several hub installations (or test runs) can share
    /// one etcd without seeing each other's objects.
    public var prefix = "lariat"
    public var http = HTTPClientSettings()
    public var watch = WatchSettings()
    /// A watch whose stream breaks (etcd restarting, a dropped connection) reconnects from the
    /// last revision it delivered, waiting this long at first and doubling up to `watchRetryMaxDelay`.
    public var watchRetryDelay: Duration = .milliseconds(100)
    public var watchRetryMaxDelay: Duration = .seconds(2)
    /// Consecutive failed reconnections after which the watch ends with `unavailable`.
    public var watchRetryLimit = 30

    public init() {}
}

/// The distributed store: etcd v3 through its JSON gateway (HTTP/1.1, which the project's own
/// HTTP codecs carry, so no gRPC stack). etcd has the store's model exactly: one revision over
/// all writes (an object's resourceVersion is its `mod_revision`), compare-and-swap in a txn,
/// and watches that replay from a revision until it is compacted.
///
/// Keys are `/<prefix>/<kind>/<name>`. Create is a txn guarded by `create_revision == 0`; update
/// and delete by `version > 0` and `mod_revision == expected`, with a read of the key on the
/// failure branch to tell `notFound` from `conflict` in the same round trip. Lists are ranges in
/// key order from just after the last name, up to the end of the kind's prefix. A write returns
/// once etcd has committed it (raft majority, fsynced WAL).
public final class EtcdBackend: EndingWatchBackend {
    public let settings: EtcdStoreSettings
    public let endpoint: String
    private let client: BlockingHTTPClient
    private let root: String
    private let watches = Mutex<(next: UInt64, open: [UInt64: EtcdWatch])>((0, [:]))

    /// `host` is a numeric address (or `localhost`) of an etcd client URL; names are not resolved.
    public init(host: String, port: Int, settings: EtcdStoreSettings = EtcdStoreSettings()) throws(StoreFailure) {
        let prefix = settings.prefix.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        guard !prefix.isEmpty else { throw .invalid("etcd store: the key prefix must not be empty") }
        self.settings = settings
        endpoint = "\(host):\(port)"
        root = "/\(prefix)/"
        client = BlockingHTTPClient(host: host, port: port, settings: settings.http)
    }

    deinit { close() }

    // MARK: Reads

    public func currentRevision() throws(StoreFailure) -> Int64 {
        let r: Etcd.RangeResponse = try call("/v3/kv/range",
                                             Etcd.RangeRequest(key: b64(root), range_end: b64(Self.prefixEnd(root)),
                                                               count_only: true))
        return r.header?.revision.int64 ?? 0
    }

    public func get(_ key: StoreKey) throws(StoreFailure) -> StoredValue {
        let r: Etcd.RangeResponse = try call("/v3/kv/range", Etcd.RangeRequest(key: b64(path(key))))
        guard let kv = r.kvs?.first else { throw .notFound(key) }
        return try value(key, kv)
    }

    public func list(kind: String, after: String?, limit: Int) throws(StoreFailure) -> ListPage {
        let base = root + kind + "/"
        // "\0" sorts right after the name itself: the first key past it.
        let start = after.map { base + $0 + "\u{0}" } ?? base
        let r: Etcd.RangeResponse = try call("/v3/kv/range",
                                             Etcd.RangeRequest(key: b64(start), range_end: b64(Self.prefixEnd(base)),
                                                               limit: String(max(1, limit))))
        var items: [StoredValue] = []
        for kv in r.kvs ?? [] {
            let name = String(try decodedKey(kv).dropFirst(base.utf8.count))
            items.append(try value(StoreKey(kind: kind, name: name), kv))
        }
        return ListPage(items: items, revision: r.header?.revision.int64 ?? 0, more: r.more ?? false)
    }

    // MARK: Writes

    public func create(_ key: StoreKey, _ data: Data) throws(StoreFailure) -> Int64 {
        let k = b64(path(key))
        let r: Etcd.TxnResponse = try call("/v3/kv/txn", Etcd.TxnRequest(
            compare: [Etcd.Compare(target: "CREATE", key: k, result: "EQUAL", create_revision: "0")],
            success: [Etcd.RequestOp(request_put: Etcd.PutRequest(key: k, value: data.base64EncodedString()))],
            failure: []))
        guard r.succeeded == true else { throw .alreadyExists(key) }
        return r.header?.revision.int64 ?? 0
    }

    public func update(_ key: StoreKey, _ data: Data, expectedRevision: Int64) throws(StoreFailure) -> Int64 {
        let k = b64(path(key))
        return try guarded(key, expectedRevision: expectedRevision,
                           Etcd.RequestOp(request_put: Etcd.PutRequest(key: k, value: data.base64EncodedString())))
    }

    public func delete(_ key: StoreKey, expectedRevision: Int64?) throws(StoreFailure) -> Int64 {
        try guarded(key, expectedRevision: expectedRevision,
                    Etcd.RequestOp(request_delete_range: Etcd.DeleteRangeRequest(key: b64(path(key)))))
    }

    /// Runs `op` if the key exists (at `expectedRevision`, when given); otherwise reads the key
    /// in the same txn to say whether it is missing or changed.
    private func guarded(_ key: StoreKey, expectedRevision: Int64?, _ op: Etcd.RequestOp) throws(StoreFailure) -> Int64 {
        let k = b64(path(key))
        var compare = [Etcd.Compare(target: "VERSION", key: k, result: "GREATER", version: "0")]
        if let expectedRevision {
            compare.append(Etcd.Compare(target: "MOD", key: k, result: "EQUAL", mod_revision: String(expectedRevision)))
        }
        let r: Etcd.TxnResponse = try call("/v3/kv/txn", Etcd.TxnRequest(
            compare: compare, success: [op], failure: [Etcd.RequestOp(request_range: Etcd.RangeRequest(key: k))]))
        if r.succeeded == true { return r.header?.revision.int64 ?? 0 }
        guard let kv = r.responses?.first?.response_range?.kvs?.first else { throw .notFound(key) }
        throw .conflict(key, expected: expectedRevision ?? 0, actual: kv.mod_revision.int64)
    }

    /// Discards history up to `revision` (watches from before it get `gone`). etcd can also do
    /// this itself (`--auto-compaction-retention`); without either, its history grows forever.
    public func compact(through revision: Int64) throws(StoreFailure) {
        let _: Etcd.RangeResponse = try call("/v3/kv/compaction",
                                             Etcd.CompactionRequest(revision: String(revision), physical: true))
    }

    // MARK: Watch

    public func watch(kind: String?, after revision: Int64,
                      _ handler: @escaping @Sendable (WatchEvent) -> Void) throws(StoreFailure) -> any WatchCancellation {
        try watch(kind: kind, after: revision, handler, onEnd: { _ in })
    }

    public func watch(kind: String?, after revision: Int64, _ handler: @escaping @Sendable (WatchEvent) -> Void,
                      onEnd: @escaping @Sendable (StoreFailure) -> Void) throws(StoreFailure) -> any WatchCancellation {
        let base = kind.map { root + $0 + "/" } ?? root
        let delivery = WatchDelivery(label: kind ?? "all", settings: settings.watch, handler: handler, ended: onEnd)
        let id = watches.withLock { w in
            defer { w.next += 1 }
            return w.next
        }
        let watch = EtcdWatch(client: client, root: root, key: b64(base), rangeEnd: b64(Self.prefixEnd(base)),
                              after: revision, expectCompaction: try isCompacted(after: revision),
                              settings: settings, delivery: delivery)
        watches.withLock { $0.open[id] = watch }
        delivery.onRelease { [weak self] in
            watch.stop()
            _ = self?.watches.withLock { $0.open.removeValue(forKey: id) }
        }
        do throws(StoreFailure) {
            try watch.start()
        } catch {
            delivery.cancel()
            throw error
        }
        return delivery
    }

    /// Whether history after `revision` is gone. etcd accepts a watch from a compacted revision
    /// and cancels it only once its syncing loop notices (up to 100 ms later); a read at the
    /// first revision the watch needs answers at once, so `watch` can fail with `gone` itself.
    private func isCompacted(after revision: Int64) throws(StoreFailure) -> Bool {
        do {
            let _: Etcd.RangeResponse = try call("/v3/kv/range", Etcd.RangeRequest(
                key: b64(root), range_end: b64(Self.prefixEnd(root)), count_only: true, revision: String(revision + 1)))
            return false
        } catch {
            // "required revision has been compacted"; "required revision is a future revision" is fine.
            if case .unavailable(let why) = error, why.contains("compacted") { return true }
            if case .unavailable(let why) = error, why.contains("future revision") { return false }
            throw error
        }
    }

    public func close() {
        let open = watches.withLock { w in
            defer { w.open.removeAll() }
            return Array(w.open.values)
        }
        for w in open { w.end(.unavailable("etcd store \(endpoint) was closed")) }
        client.closeIdle()
    }

    // MARK: Plumbing

    private func path(_ key: StoreKey) -> String { root + key.kind + "/" + key.name }

    private func b64(_ s: String) -> String { Data(s.utf8).base64EncodedString() }

    private func decodedKey(_ kv: Etcd.KeyValue) throws(StoreFailure) -> String {
        guard let k = kv.key, let d = Data(base64Encoded: k) else { throw .unavailable("etcd \(endpoint): a key without a name") }
        return String(decoding: d, as: UTF8.self)
    }

    private func value(_ key: StoreKey, _ kv: Etcd.KeyValue) throws(StoreFailure) -> StoredValue {
        guard let d = Data(base64Encoded: kv.value ?? "") else {
            throw .unavailable("etcd \(endpoint): the value of \(key) is not base64")
        }
        return StoredValue(key: key, data: d, revision: kv.mod_revision.int64)
    }

    private func call<Request: Encodable, Reply: Decodable>(_ path: String, _ request: Request) throws(StoreFailure) -> Reply {
        let body: Data
        do { body = try JSONEncoder().encode(request) } catch { throw .invalid("etcd request \(path): \(error)") }
        let response = try client.post(path, body: body)
        guard response.status == 200 else {
            let e = try? JSONDecoder().decode(Etcd.GatewayError.self, from: response.body)
            throw .unavailable("etcd \(endpoint)\(path) answered \(response.status): "
                               + (e?.message ?? e?.error ?? String(decoding: response.body.prefix(200), as: UTF8.self)))
        }
        do {
            return try JSONDecoder().decode(Reply.self, from: response.body)
        } catch {
            throw .unavailable("etcd \(endpoint)\(path): unexpected answer (\(error))")
        }
    }

    /// The first key after every key that starts with `prefix` (etcd's `range_end` for a prefix).
    static func prefixEnd(_ prefix: String) -> String {
        var bytes = Array(prefix.utf8)
        while let last = bytes.last {
            if last < 0xff {
                bytes[bytes.count - 1] = last + 1
                return String(decoding: bytes, as: UTF8.self)
            }
            bytes.removeLast()
        }
        return "\u{0}"
    }
}
