import Foundation
import LariatStore
import Synchronization
import Testing

/// One suite, both backends: what the control plane relies on from any store, checked against
/// SQLite and against a real etcd started on loopback. Serialized: the compaction test compacts
/// the shared etcd, which would break a concurrent test's watch from an older revision.
@Suite(.serialized) struct StoreConformanceTests {
    @Test(arguments: Backend.allCases)
    func createGetListUpdateDelete(_ backend: Backend) throws {
        let backendStore = try backend.make()
        defer { backendStore.close() }
        let store = ObjectStore<Widget>(backendStore)
        let created = try store.create(Object(name: "a", spec: Widget.Spec(size: 1), labels: ["env": "prod"]))
        #expect(!created.metadata.uid.isEmpty)
        #expect(created.metadata.generation == 1)
        #expect(created.revision > 0)

        let got = try store.get("a")
        #expect(got == created)
        _ = try store.create(Object(name: "b", spec: Widget.Spec(size: 2)))
        #expect(try store.list().items.map(\.name) == ["a", "b"])

        var changed = got
        changed.spec.size = 10
        let updated = try store.update(changed)
        #expect(updated.revision > got.revision)
        #expect(try store.get("a").spec.size == 10)
        #expect(try store.get("a").metadata.uid == created.metadata.uid)

        #expect(try store.delete("a") == nil)
        #expect(try store.find("a") == nil)
        #expect(try store.list().items.map(\.name) == ["b"])
        #expect(try backendStore.currentRevision() >= updated.revision + 1)
    }

    @Test(arguments: Backend.allCases)
    func alreadyExistsAndNotFound(_ backend: Backend) throws {
        let b = try backend.make()
        defer { b.close() }
        let store = ObjectStore<Widget>(b)
        _ = try store.create(Object(name: "x", spec: Widget.Spec(size: 1)))
        #expect(throws: StoreFailure.alreadyExists(StoreKey(kind: "widgets", name: "x"))) {
            _ = try store.create(Object(name: "x", spec: Widget.Spec(size: 2)))
        }
        let missing = StoreKey(kind: "widgets", name: "nope")
        #expect(throws: StoreFailure.notFound(missing)) { _ = try store.get("nope") }
        #expect(throws: StoreFailure.notFound(missing)) { _ = try b.delete(missing, expectedRevision: nil) }
        #expect(throws: StoreFailure.notFound(missing)) { _ = try b.update(missing, Data("{}".utf8), expectedRevision: 0) }
        // An update can never create: the key stays missing.
        #expect(throws: StoreFailure.notFound(missing)) { _ = try b.get(missing) }
    }

    @Test(arguments: Backend.allCases)
    func staleResourceVersionIsAConflict(_ backend: Backend) throws {
        let b = try backend.make()
        defer { b.close() }
        let store = ObjectStore<Widget>(b)
        let first = try store.create(Object(name: "c", spec: Widget.Spec(size: 1)))
        var one = first
        one.spec.size = 2
        let second = try store.update(one)
        var stale = first
        stale.spec.size = 3
        #expect(throws: StoreFailure.conflict(first.key, expected: first.revision, actual: second.revision)) {
            _ = try store.update(stale)
        }
        #expect(throws: StoreFailure.conflict(first.key, expected: first.revision, actual: second.revision)) {
            _ = try b.delete(first.key, expectedRevision: first.revision)
        }
        #expect(try store.get("c").spec.size == 2)
    }

    @Test(arguments: Backend.allCases)
    func finalizersHoldDeletion(_ backend: Backend) throws {
        let b = try backend.make()
        defer { b.close() }
        let store = ObjectStore<Widget>(b)
        var o = Object<Widget>(name: "f", spec: Widget.Spec(size: 1))
        o.metadata.finalizers = ["lariat.io/a", "lariat.io/b"]
        _ = try store.create(o)

        let marked = try #require(try store.delete("f"))
        #expect(marked.metadata.deletionTimestamp != nil)
        #expect(try store.get("f").metadata.isBeingDeleted)

        try store.modify("f") { $0.metadata.finalizers.removeAll { $0 == "lariat.io/a" } }
        #expect(try store.find("f") != nil, "one finalizer remains")
        try store.modify("f") { $0.metadata.finalizers.removeAll() }
        #expect(try store.find("f") == nil, "the last finalizer removed deletes the object")
    }

    @Test(arguments: Backend.allCases)
    func labelSelectedPagesWithContinueTokens(_ backend: Backend) throws {
        let b = try backend.make()
        defer { b.close() }
        let store = ObjectStore<Widget>(b)
        for i in 0..<25 {
            _ = try store.create(Object(name: String(format: "w%02d", i), spec: Widget.Spec(size: i),
                                        labels: ["parity": i % 2 == 0 ? "even" : "odd"]))
        }
        // Another kind in the same store stays out of the list.
        _ = try b.create(StoreKey(kind: "other", name: "w00"), Data("{}".utf8))

        var names: [String] = []
        var token: String?
        var pages = 0
        repeat {
            let page = try store.list(limit: 10, continue: token)
            #expect(page.items.count <= 10)
            names += page.items.map(\.name)
            token = page.continue
            pages += 1
        } while token != nil
        #expect(pages == 3)
        #expect(names == (0..<25).map { String(format: "w%02d", $0) })

        let even = try LabelSelector(parsing: "parity=even")
        var evens: [String] = []
        token = nil
        repeat {
            let page = try store.list(selector: even, limit: 5, continue: token)
            #expect(page.items.allSatisfy { $0.metadata.labels["parity"] == "even" })
            evens += page.items.map(\.name)
            token = page.continue
        } while token != nil
        #expect(evens == stride(from: 0, to: 25, by: 2).map { String(format: "w%02d", $0) })
    }

    @Test(arguments: Backend.allCases)
    func generationMovesOnlyWithTheSpec(_ backend: Backend) throws {
        let b = try backend.make()
        defer { b.close() }
        let store = ObjectStore<Widget>(b)
        let o = try store.create(Object(name: "g", spec: Widget.Spec(size: 1)))
        #expect(o.metadata.generation == 1)
        let statusOnly = try store.modify("g") { $0.status.count = 7 }
        #expect(statusOnly.metadata.generation == 1)
        let labelOnly = try store.modify("g") { $0.metadata.labels["x"] = "y" }
        #expect(labelOnly.metadata.generation == 1)
        let specChange = try store.modify("g") { $0.spec.color = "blue" }
        #expect(specChange.metadata.generation == 2)
        #expect(try store.get("g").metadata.generation == 2)
    }

    @Test(arguments: Backend.allCases)
    func watchReplaysThenStreamsInOrder(_ backend: Backend) throws {
        let b = try backend.make()
        defer { b.close() }
        let store = ObjectStore<Widget>(b)
        let start = try store.create(Object(name: "before-0", spec: Widget.Spec(size: 0)))
        _ = try store.create(Object(name: "before-1", spec: Widget.Spec(size: 1)))
        _ = try store.modify("before-0") { $0.spec.size = 5 }
        _ = try b.create(StoreKey(kind: "other", name: "ignored"), Data("{}".utf8))

        let log = EventLog()
        let watch = try b.watch(kind: "widgets", after: start.revision, { log.append($0) }, onEnd: { log.ended($0) })
        defer { watch.cancel() }
        _ = try store.create(Object(name: "after-0", spec: Widget.Spec(size: 0)))
        _ = try store.delete("before-1")
        let events = log.wait(for: 4)
        #expect(events.map(\.type) == [.added, .modified, .added, .deleted])
        #expect(events.map(\.value.key.name) == ["before-1", "before-0", "after-0", "before-1"])
        #expect(events.map(\.value.revision) == events.map(\.value.revision).sorted())
        #expect(Set(events.map(\.value.revision)).count == events.count, "no duplicate")
        // A deletion carries the last value.
        let last = try #require(events.last)
        #expect(try StoreCoding.decoder.decode(Object<Widget>.self, from: last.value.data).spec.size == 1)
        #expect(log.ends.isEmpty)

        watch.cancel()
        _ = try store.create(Object(name: "after-cancel", spec: Widget.Spec(size: 0)))
        usleep(200_000)
        #expect(log.all.count == 4, "nothing after cancel")
    }

    @Test(arguments: Backend.allCases)
    func watchFromACompactedRevisionIsGone(_ backend: Backend) throws {
        let b = try backend.make(historyLength: 20)
        defer { b.close() }
        let store = ObjectStore<Widget>(b)
        let first = try store.create(Object(name: "old", spec: Widget.Spec(size: 0)))
        try compactHistory(b)
        #expect {
            _ = try store.watch(after: first.revision - 1) { _ in }
        } throws: { error in
            guard case .gone = error as? StoreFailure else { return false }
            return true
        }
        // From the current revision it works.
        let w = try store.watch(after: try b.currentRevision()) { _ in }
        w.cancel()
    }

    @Test(arguments: Backend.allCases)
    func concurrentModifiersLoseNoIncrement(_ backend: Backend) throws {
        let b = try backend.make()
        defer { b.close() }
        let store = ObjectStore<Widget>(b)
        _ = try store.create(Object(name: "counter", spec: Widget.Spec(size: 0)))
        let threads = 4
        let perThread = 15
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: threads) { _ in
            for _ in 0..<perThread {
                do {
                    try store.modify("counter", attempts: 1000) { $0.status.count += 1 }
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
        }
        #expect(failures.withLock { $0 } == [])
        #expect(try store.get("counter").status.count == threads * perThread)
    }
}
