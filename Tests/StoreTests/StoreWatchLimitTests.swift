import Foundation
import LariatStore
import Synchronization
import Testing

/// What ends a watch and what errors say, beyond the conformance suite.
@Suite struct StoreWatchLimitTests {
    @Test func aWatcherTooFarBehindIsEndedNotQueuedForever() throws {
        let folder = NSTemporaryDirectory() + "lariat-store-\(UUID().uuidString.prefix(12))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var settings = SQLiteStoreSettings()
        settings.watch.maxPendingEvents = 5
        let b = try SQLiteBackend(folder: folder, settings: settings)
        defer { b.close() }

        let gate = DispatchSemaphore(value: 0)
        let log = EventLog()
        let watch = try b.watch(kind: nil, after: 0, { e in
            if log.all.isEmpty { gate.wait() }  // the first event blocks the handler
            log.append(e)
        }, onEnd: { log.ended($0) })
        defer { watch.cancel() }
        for i in 0..<20 { _ = try b.create(StoreKey(kind: "k", name: "n\(i)"), Data("{}".utf8)) }
        gate.signal()

        let deadline = Date().addingTimeInterval(10)
        while log.ends.isEmpty && Date() < deadline { usleep(10_000) }
        let ends = log.ends
        try #require(ends.count == 1)
        guard case .unavailable(let why) = ends[0] else {
            Issue.record("ended with \(ends[0]), not unavailable")
            return
        }
        #expect(why.contains("behind"))
        #expect(log.all.count < 20)
        // Events delivered before the end are a gap-free prefix.
        #expect(log.all.map(\.value.revision) == Array(1...Int64(log.all.count)))
    }

    @Test(arguments: Backend.allCases)
    func closingTheStoreEndsItsWatches(_ backend: Backend) throws {
        let b = try backend.make()
        let log = EventLog()
        let watch = try b.watch(kind: "widgets", after: try b.currentRevision(), { log.append($0) }, onEnd: { log.ended($0) })
        b.close()
        let deadline = Date().addingTimeInterval(10)
        while log.ends.isEmpty && Date() < deadline { usleep(10_000) }
        #expect(log.ends.count == 1)
        watch.cancel()
    }

    @Test func sqliteErrorsNameTheFileAndSQLitesReason() {
        let folder = "/nonexistent-\(UUID().uuidString.prefix(8))/data"
        #expect {
            _ = try SQLiteBackend(folder: folder)
        } throws: { error in
            let text = "\(error)"
            return text.contains(folder + "/store.db") && text.contains("unable to open database file")
        }
    }
}
