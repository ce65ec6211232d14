import Foundation
import LariatStore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// An acknowledged write survives the writer (or etcd) being SIGKILLed right after the
/// acknowledgment: SQLite with synchronous=FULL, etcd with its fsynced WAL.
@Suite struct StoreDurabilityTests {
    /// `lariat-store-probe`, built next to the test bundle.
    static func probe() throws -> String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = (exe as NSString).deletingLastPathComponent
        while !FileManager.default.fileExists(atPath: dir + "/lariat-store-probe"), dir != "/" {
            dir = (dir as NSString).deletingLastPathComponent
        }
        let path = dir + "/lariat-store-probe"
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw StoreTestFailure("lariat-store-probe is not built next to the tests (swift build --build-tests builds it)")
        }
        return path
    }

    @Test func sqliteWriteAcknowledgedBeforeSIGKILLSurvives() throws {
        let folder = NSTemporaryDirectory() + "lariat-durable-\(UUID().uuidString.prefix(12))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }

        let child = Process()
        child.executableURL = URL(fileURLWithPath: try Self.probe())
        child.arguments = [folder, "100000"]
        let out = Pipe()
        child.standardOutput = out
        child.standardError = FileHandle.standardError
        try child.run()
        // Read acknowledgments until 40 have arrived, then kill the writer mid-stream.
        var acknowledged: [String: Int64] = [:]
        var pending = ""
        let deadline = Date().addingTimeInterval(60)
        while acknowledged.count < 40, Date() < deadline, child.isRunning {
            let data = out.fileHandleForReading.availableData
            if data.isEmpty { break }
            pending += String(decoding: data, as: UTF8.self)
            while let nl = pending.firstIndex(of: "\n") {
                let parts = pending[..<nl].split(separator: " ")
                pending = String(pending[pending.index(after: nl)...])
                if parts.count == 3, parts[0] == "acknowledged", let rev = Int64(parts[2]) { acknowledged[String(parts[1])] = rev }
            }
        }
        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        #expect(child.terminationReason == .uncaughtSignal)
        try #require(acknowledged.count >= 40, "the probe acknowledged only \(acknowledged.count) writes")

        let reopened = try SQLiteBackend(folder: folder)
        defer { reopened.close() }
        for (name, revision) in acknowledged {
            let v = try reopened.get(StoreKey(kind: "probes", name: name))
            #expect(v.revision == revision)
        }
        #expect(try reopened.currentRevision() >= acknowledged.values.max()!)
    }

    @Test func etcdWriteAcknowledgedBeforeSIGKILLSurvives() throws {
        let server = try EtcdServer()
        defer { server.remove() }
        let prefix = "durable"
        var acknowledged: [StoreKey: Int64] = [:]
        // A watch opened before the crash carries on through etcd's restart, resuming from the
        // last revision it delivered: nothing lost, nothing twice.
        let watcher = try server.backend(prefix: prefix)
        defer { watcher.close() }
        let log = EventLog()
        let watch = try watcher.watch(kind: "probes", after: try watcher.currentRevision(),
                                      { log.append($0) }, onEnd: { log.ended($0) })
        defer { watch.cancel() }
        do {
            let store = try server.backend(prefix: prefix)
            for i in 0..<30 {
                let key = StoreKey(kind: "probes", name: "p\(i)")
                acknowledged[key] = try store.create(key, try JSONEncoder().encode(["n": i]))
            }
            store.close()
        }
        server.kill9()
        try server.start(newPorts: false)
        let store = try server.backend(prefix: prefix)
        defer { store.close() }
        for (key, revision) in acknowledged {
            #expect(try store.get(key).revision == revision)
        }

        let after = StoreKey(kind: "probes", name: "after-restart")
        let last = try store.create(after, Data("{}".utf8))
        let events = log.wait(for: 31, seconds: 30)
        #expect(log.ends.isEmpty)
        #expect(events.count == 31)
        #expect(events.map(\.value.revision) == (acknowledged.values.sorted() + [last]))
    }
}
