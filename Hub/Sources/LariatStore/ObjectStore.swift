import Foundation
import LariatRuntime

/// Kubernetes object semantics for kind `R` over any `StoreBackend`: uid and creation time on
/// create, resourceVersion from the store's revision, generation bumped when the spec changes,
/// 409 on a stale resourceVersion, deletion held by finalizers, label-selected lists with
/// continue tokens, and watches that resume from a resourceVersion (410 when too old).
public struct ObjectStore<R: Resource>: Sendable {
    public let backend: any StoreBackend

    public init(_ backend: any StoreBackend) { self.backend = backend }

    public func create(_ object: Object<R>) throws(StoreFailure) -> Object<R> {
        var o = object
        o.kind = R.kind
        o.metadata.uid = UUID().uuidString.lowercased()
        o.metadata.generation = 1
        o.metadata.creationTimestamp = StoreCoding.now()
        o.metadata.deletionTimestamp = nil
        let revision = try backend.create(o.key, try encode(o))
        o.metadata.resourceVersion = String(revision)
        return o
    }

    public func get(_ name: String) throws(StoreFailure) -> Object<R> {
        try decode(try backend.get(StoreKey(kind: R.plural, name: name)))
    }

    /// The object, or nil if there is none.
    public func find(_ name: String) throws(StoreFailure) -> Object<R>? {
        do {
            return try get(name)
        } catch {
            if case .notFound = error { return nil }
            throw error
        }
    }

    /// Replaces the object (whose `resourceVersion` must be current). The server keeps uid and
    /// creation time; generation moves when the spec changed. An object being deleted whose
    /// last finalizer this update removes is deleted.
    public func update(_ object: Object<R>) throws(StoreFailure) -> Object<R> {
        let current = try get(object.name)
        guard !object.metadata.resourceVersion.isEmpty else {
            throw .invalid("metadata.resourceVersion is required for an update")
        }
        var o = object
        o.kind = R.kind
        o.metadata.uid = current.metadata.uid
        o.metadata.creationTimestamp = current.metadata.creationTimestamp
        o.metadata.deletionTimestamp = current.metadata.deletionTimestamp
        o.metadata.generation = current.metadata.generation + (o.spec == current.spec ? 0 : 1)
        let expected = o.revision
        if o.metadata.deletionTimestamp != nil && o.metadata.finalizers.isEmpty {
            let revision = try backend.delete(o.key, expectedRevision: expected)
            o.metadata.resourceVersion = String(revision)
            return o
        }
        let revision = try backend.update(o.key, try encode(o), expectedRevision: expected)
        o.metadata.resourceVersion = String(revision)
        return o
    }

    /// Reads, changes and writes back, retrying on conflicts (for controllers and status writers).
    @discardableResult
    public func modify(_ name: String, attempts: Int = 8,
                       _ change: (inout Object<R>) throws(StoreFailure) -> Void) throws(StoreFailure) -> Object<R> {
        var lastError = StoreFailure.unavailable("no attempt made")
        for _ in 0..<max(1, attempts) {
            var o = try get(name)
            let before = o
            try change(&o)
            if o == before { return o }
            do {
                return try update(o)
            } catch {
                guard case .conflict = error else { throw error }
                lastError = error
            }
        }
        throw lastError
    }

    /// Deletes, or — while finalizers remain — marks for deletion and returns the marked object.
    /// Returns nil when the object is gone.
    @discardableResult
    public func delete(_ name: String, resourceVersion: String? = nil) throws(StoreFailure) -> Object<R>? {
        // Without a version the caller means "whatever it is now": a write landing between our
        // read and our delete is no reason to fail, so try again on the newer version.
        guard resourceVersion?.isEmpty ?? true else { return try deleteOnce(name, resourceVersion: resourceVersion) }
        var attempts = 0
        while true {
            do {
                return try deleteOnce(name, resourceVersion: nil)
            } catch {
                attempts += 1
                guard case .conflict = error, attempts < 8 else { throw error }
            }
        }
    }

    private func deleteOnce(_ name: String, resourceVersion: String?) throws(StoreFailure) -> Object<R>? {
        var o = try get(name)
        if let rv = resourceVersion, !rv.isEmpty, rv != o.metadata.resourceVersion {
            throw .conflict(o.key, expected: Int64(rv) ?? 0, actual: o.revision)
        }
        if o.metadata.finalizers.isEmpty {
            _ = try backend.delete(o.key, expectedRevision: o.revision)
            return nil
        }
        if o.metadata.deletionTimestamp != nil { return o }
        o.metadata.deletionTimestamp = StoreCoding.now()
        let revision = try backend.update(o.key, try encode(o), expectedRevision: o.revision)
        o.metadata.resourceVersion = String(revision)
        return o
    }

    /// A page of objects matching `selector`, at most `limit`, after the `continue` token of the
    /// previous page.
    public func list(selector: LabelSelector = .everything, limit: Int = 500,
                     continue token: String? = nil) throws(StoreFailure) -> ObjectList<R> {
        let limit = max(1, min(limit, 5000))
        var after = try token.map { t throws(StoreFailure) in try ContinueToken(decoding: t).after }
        var items: [Object<R>] = []
        var revision: Int64 = 0
        while true {
            let page = try backend.list(kind: R.plural, after: after, limit: limit - items.count)
            if revision == 0 { revision = page.revision }
            for v in page.items {
                let o = try decode(v)
                if selector.matches(o.metadata.labels) { items.append(o) }
            }
            after = page.items.last?.key.name ?? after
            if !page.more {
                return ObjectList(items: items, resourceVersion: String(revision), continue: nil)
            }
            if items.count >= limit, let last = after {
                return ObjectList(items: items, resourceVersion: String(revision),
                                  continue: ContinueToken(after: last, revision: revision).encoded)
            }
        }
    }

    /// Every object (all pages), for informers and small kinds.
    public func listAll(selector: LabelSelector = .everything) throws(StoreFailure) -> ObjectList<R> {
        var all: [Object<R>] = []
        var token: String?
        var rv = ""
        repeat {
            let page = try list(selector: selector, limit: 1000, continue: token)
            if rv.isEmpty { rv = page.resourceVersion }
            all += page.items
            token = page.continue
        } while token != nil
        return ObjectList(items: all, resourceVersion: rv, continue: nil)
    }

    /// Changes to objects of this kind after `resourceVersion`, delivered on a backend thread.
    /// `gone` (410) when that history is no longer kept: list again and watch from the list's version.
    /// `onEnd` is called once if the watch breaks (see `EndingWatchBackend`).
    public func watch(after resourceVersion: Int64,
                      _ handler: @escaping @Sendable (ObjectEvent<R>) -> Void,
                      onEnd: @escaping @Sendable (StoreFailure) -> Void = { _ in }) throws(StoreFailure) -> any WatchCancellation {
        try backend.watch(kind: R.plural, after: resourceVersion, { event in
            guard let o = try? Self.decodeValue(event.value) else { return }
            handler(ObjectEvent(type: event.type, object: o))
        }, onEnd: onEnd)
    }

    // MARK: Encoding

    /// The stored document leaves resourceVersion out: it is the store's revision, added on read.
    func encode(_ o: Object<R>) throws(StoreFailure) -> Data {
        var copy = o
        copy.metadata.resourceVersion = ""
        do {
            return try StoreCoding.encoder.encode(copy)
        } catch {
            throw .invalid("cannot encode \(o.key): \(error)")
        }
    }

    func decode(_ v: StoredValue) throws(StoreFailure) -> Object<R> {
        do {
            return try Self.decodeValue(v)
        } catch {
            throw .unavailable("stored \(v.key) cannot be read: \(error)")
        }
    }

    static func decodeValue(_ v: StoredValue) throws -> Object<R> {
        var o = try StoreCoding.decoder.decode(Object<R>.self, from: v.data)
        o.metadata.resourceVersion = String(v.revision)
        return o
    }
}

public struct ObjectList<R: Resource>: Sendable, Equatable {
    public var items: [Object<R>]
    public var resourceVersion: String
    public var `continue`: String?
}

public struct ObjectEvent<R: Resource>: Sendable, Equatable {
    public var type: WatchEvent.EventType
    public var object: Object<R>
}

/// Where the next page starts: opaque to clients (base64 of a small JSON document).
struct ContinueToken: Codable {
    var after: String
    var revision: Int64

    init(after: String, revision: Int64) {
        self.after = after
        self.revision = revision
    }

    init(decoding text: String) throws(StoreFailure) {
        guard let data = Data(base64Encoded: text), let t = try? JSONDecoder().decode(ContinueToken.self, from: data) else {
            throw .invalid("continue: not a token this server issued")
        }
        self = t
    }

    var encoded: String { (try? JSONEncoder().encode(self))?.base64EncodedString() ?? "" }
}

/// One JSON encoding for everything stored: ISO 8601 dates, sorted keys (stable documents).
public enum StoreCoding {
    /// The current time at the precision stored (whole seconds, as ISO 8601 here and Kubernetes
    /// keep it), so an object a write returns equals the one a later read returns.
    public static func now() -> Date { Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down)) }

    public static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .iso8601
        e.outputFormatting = [.sortedKeys]
        return e
    }()
    public static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }()
}
