import Foundation
import Synchronization

/// One etcd watch: a thread of its own reads `/v3/watch`'s stream (one JSON message per line,
/// in a chunked body), turns events into `WatchEvent`s and queues them on the watcher's
/// `WatchDelivery`. The first message is awaited before `start` returns, so a watch from a
/// compacted revision fails there with `gone`. A broken stream reconnects from the last revision
/// delivered (so etcd restarting loses nothing); compaction past it ends the watch with `gone`.
final class EtcdWatch: Sendable {
    private let client: BlockingHTTPClient
    private let root: String
    private let key: String
    private let rangeEnd: String
    private let settings: EtcdStoreSettings
    private let delivery: WatchDelivery
    private let stream = Mutex<HTTPStream?>(nil)
    private let stopped = Atomic<Bool>(false)
    /// The revision of the last event delivered (or progress reported): where a reconnection resumes.
    private let position: Atomic<Int64>
    /// The first message's verdict, for `start`.
    private let started = Mutex<Result<Void, StoreFailure>?>(nil)
    private let startedSignal = DispatchSemaphore(value: 0)

    /// The history the watch starts from is known to be compacted: `start` waits for etcd's
    /// cancellation (which names the compaction revision) instead of its acceptance.
    private let expectCompaction: Bool

    init(client: BlockingHTTPClient, root: String, key: String, rangeEnd: String, after: Int64,
         expectCompaction: Bool, settings: EtcdStoreSettings, delivery: WatchDelivery) {
        self.expectCompaction = expectCompaction
        self.client = client
        self.root = root
        self.key = key
        self.rangeEnd = rangeEnd
        self.settings = settings
        self.delivery = delivery
        position = Atomic(after)
    }

    /// Starts the reader thread and waits for etcd to accept (or refuse) the watch.
    func start() throws(StoreFailure) {
        let thread = Thread { [self] in run() }
        thread.name = "lariat-etcd-watch"
        thread.start()
        let limit = settings.http.connectTimeout + settings.http.ioTimeout
        let seconds = Double(limit.components.seconds) + Double(limit.components.attoseconds) * 1e-18
        if startedSignal.wait(timeout: .now() + seconds) == .timedOut {
            stop()
            throw .unavailable("etcd \(client.host):\(client.port): the watch was not accepted within \(limit)")
        }
        if case .failure(let failure) = started.withLock({ $0 }) ?? .success(()) { throw failure }
    }

    func stop() {
        stopped.store(true, ordering: .releasing)
        stream.withLock { $0?.cancel() }
    }

    /// Ends the watch (the store is closing).
    func end(_ failure: StoreFailure) {
        stop()
        delivery.end(failure)
    }

    private var isStopped: Bool { stopped.load(ordering: .acquiring) || delivery.isStopped }

    private func reportStart(_ r: Result<Void, StoreFailure>) {
        let first = started.withLock { s in
            defer { if s == nil { s = r } }
            return s == nil
        }
        if first { startedSignal.signal() }
    }

    private var hasStarted: Bool { started.withLock { $0 != nil } }

    // MARK: The reader thread

    private func run() {
        var failures = 0
        var delay = settings.watchRetryDelay
        while !isStopped {
            let s = HTTPStream()
            stream.withLock { $0 = s }
            if isStopped { break }
            var outcome: StoreFailure?
            var progressed = false
            do throws(StoreFailure) {
                try readStream(s, progressed: &progressed)
            } catch {
                outcome = error
            }
            if isStopped { break }
            if case .gone = outcome {
                if !hasStarted { reportStart(.failure(outcome!)) } else { delivery.end(outcome!) }
                return
            }
            if !hasStarted {
                // The first attempt failed: the caller hears of it instead of a retry loop.
                reportStart(.failure(outcome ?? .unavailable("etcd \(client.host):\(client.port) closed the watch")))
                return
            }
            if progressed {
                failures = 0
                delay = settings.watchRetryDelay
            }
            failures += 1
            if failures > settings.watchRetryLimit {
                delivery.end(outcome ?? .unavailable("etcd \(client.host):\(client.port): the watch kept breaking"))
                return
            }
            Thread.sleep(forTimeInterval: Double(delay.components.seconds) + Double(delay.components.attoseconds) * 1e-18)
            delay = min(delay * 2, settings.watchRetryMaxDelay)
        }
    }

    /// One connection's stream, until it ends. `progressed` says whether etcd accepted it.
    private func readStream(_ s: HTTPStream, progressed: inout Bool) throws(StoreFailure) {
        let request = Etcd.WatchRequest(create_request: Etcd.WatchCreate(
            key: key, range_end: rangeEnd, start_revision: String(position.load(ordering: .acquiring) + 1),
            prev_kv: true, progress_notify: true))
        let body: Data
        do { body = try JSONEncoder().encode(request) } catch { throw .invalid("etcd watch request: \(error)") }
        var status = 0
        var line = Data()
        var failure: StoreFailure?
        var accepted = false
        let maxLine = settings.http.maxResponseBytes
        try client.stream("/v3/watch", body: body, on: s, onHead: { status = $0 }) { piece in
            guard failure == nil else { return }
            var rest = piece[...]
            while let nl = rest.firstIndex(of: 0x0A) {
                line.append(contentsOf: rest[rest.startIndex..<nl])
                rest = rest[(nl + 1)...]
                if status == 200 {
                    if let f = handle(line, accepted: &accepted) {
                        failure = f
                        s.cancel()
                        return
                    }
                }
                line.removeAll(keepingCapacity: true)
            }
            line.append(contentsOf: rest)
            if line.count > maxLine {
                failure = .unavailable("etcd watch: a message longer than \(maxLine) bytes")
                s.cancel()
            }
        }
        progressed = accepted
        if let failure { throw failure }
        if status != 200 {
            throw .unavailable("etcd \(client.host):\(client.port)/v3/watch answered \(status): "
                               + String(decoding: line.prefix(200), as: UTF8.self))
        }
    }

    /// One message: returns a failure that ends this stream.
    private func handle(_ line: Data, accepted: inout Bool) -> StoreFailure? {
        guard !line.isEmpty else { return nil }
        guard let message = try? JSONDecoder().decode(Etcd.WatchMessage.self, from: line) else {
            return .unavailable("etcd watch: an unreadable message")
        }
        if let e = message.error {
            return .unavailable("etcd watch: \(e.message ?? e.error ?? "error")")
        }
        guard let r = message.result else { return nil }
        if r.canceled == true {
            let compacted = r.compact_revision.int64
            if compacted > 0 {
                return .gone(requested: position.load(ordering: .acquiring), oldest: compacted)
            }
            return .unavailable("etcd cancelled the watch: \(r.cancel_reason ?? "no reason given")")
        }
        if r.created == true {
            accepted = true
            if !expectCompaction { reportStart(.success(())) }
        }
        let events = r.events ?? []
        if events.isEmpty {
            // A progress notification: every event up to this revision has been sent.
            if r.created != true, let rev = r.header?.revision.int64, rev > position.load(ordering: .acquiring) {
                position.store(rev, ordering: .releasing)
            }
            return nil
        }
        reportStart(.success(()))  // events flow: not compacted after all
        var out: [WatchEvent] = []
        out.reserveCapacity(events.count)
        for e in events {
            guard let kv = e.kv, let k = kv.key.flatMap({ Data(base64Encoded: $0) }) else { continue }
            let full = String(decoding: k, as: UTF8.self)
            guard full.hasPrefix(root) else { continue }
            let rest = full.dropFirst(root.count)
            guard let slash = rest.firstIndex(of: "/") else { continue }
            let storeKey = StoreKey(kind: String(rest[..<slash]), name: String(rest[rest.index(after: slash)...]))
            let revision = kv.mod_revision.int64
            if e.type == "DELETE" {
                let last = e.prev_kv?.value.flatMap { Data(base64Encoded: $0) } ?? Data()
                out.append(WatchEvent(type: .deleted, value: StoredValue(key: storeKey, data: last, revision: revision)))
            } else {
                let data = kv.value.flatMap { Data(base64Encoded: $0) } ?? Data()
                let type: WatchEvent.EventType = kv.version.int64 == 1 ? .added : .modified
                out.append(WatchEvent(type: type, value: StoredValue(key: storeKey, data: data, revision: revision)))
            }
            position.store(revision, ordering: .releasing)
        }
        delivery.deliver(out)
        return nil
    }
}
