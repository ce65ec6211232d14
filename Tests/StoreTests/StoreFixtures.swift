import Foundation
import LariatStore
import Synchronization
import Testing

/// A kind for the store tests.
enum Widget: Resource {
    struct Spec: Codable, Sendable, Equatable {
        var size: Int
        var color: String = "red"
    }
    struct Status: Codable, Sendable, Equatable {
        var count: Int = 0
    }
    static let kind = "Widget"
    static let plural = "widgets"
    static func emptyStatus() -> Status { Status() }
}

/// The backends the conformance suite runs against.
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, etcd

    var testDescription: String { rawValue }

    /// A fresh, empty store. `historyLength` bounds SQLite's watch history (etcd's is compacted
    /// by `compactHistory`).
    func make(historyLength: Int64 = 10_000) throws -> any StoreBackend {
        switch self {
        case .sqlite:
            let folder = NSTemporaryDirectory() + "lariat-store-\(UUID().uuidString.prefix(12))"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            var settings = SQLiteStoreSettings()
            settings.historyLength = historyLength
            return try SQLiteBackend(folder: folder, settings: settings)
        case .etcd:
            return try SharedEtcd.get().backend()
        }
    }
}

/// Writes `writes` more changes, then discards watch history up to the current revision,
/// whatever the backend (etcd keeps the compaction revision itself, so the writes put the
/// earlier ones out of reach).
func compactHistory(_ store: any StoreBackend, writes: Int = 5) throws {
    if let etcd = store as? EtcdBackend {
        for i in 0..<writes { _ = try etcd.create(StoreKey(kind: "churn", name: "c\(i)"), Data("{}".utf8)) }
        try etcd.compact(through: try etcd.currentRevision())
    } else if let sqlite = store as? SQLiteBackend {
        // SQLite keeps the last `historyLength` changes: write past them.
        let churn = ObjectStore<Widget>(sqlite)
        for i in 0..<Int(sqlite.settings.historyLength) + writes {
            _ = try churn.create(Object(name: "churn-\(i)", spec: Widget.Spec(size: i)))
        }
    }
}

/// Events a watch delivered, for the test to wait on.
final class EventLog: Sendable {
    private let events = Mutex<[WatchEvent]>([])
    private let endings = Mutex<[StoreFailure]>([])

    func append(_ e: WatchEvent) { events.withLock { $0.append(e) } }
    func ended(_ f: StoreFailure) { endings.withLock { $0.append(f) } }
    var all: [WatchEvent] { events.withLock { $0 } }
    var ends: [StoreFailure] { endings.withLock { $0 } }

    /// Waits until at least `count` events arrived (or the time is up) and returns them.
    func wait(for count: Int, seconds: Double = 10) -> [WatchEvent] {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let now = all
            if now.count >= count { return now }
            usleep(10_000)
        }
        return all
    }
}
