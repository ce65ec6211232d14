import Foundation
import LariatStore
import Synchronization

/// Joins a store watch (events on a store thread, from the moment it opens) to the client's
/// stream (attached a little later by the front end): lines wait in a bounded buffer until the
/// sink is there; a client that stops reading (`write` returns false) or a buffer overflow ends
/// the watch, and so does the store (an error line, then the end) or the watch timeout.
final class WatchRelay: Sendable {
    /// Lines kept for a sink not attached yet; more means the client is far behind: end it.
    static let maxPendingLines = 10_000

    private struct State {
        var sink: APIStream.Sink?
        var pending: [Data] = []
        var done = false
    }

    private let state = Mutex(State())
    private let cancellationBox = Mutex<(any WatchCancellation)?>(nil)

    var cancellation: (any WatchCancellation)? {
        get { cancellationBox.withLock { $0 } }
        set { cancellationBox.withLock { $0 = newValue } }
    }

    func send<T: Encodable>(_ line: T) {
        guard var data = try? APIJSON.encoder.encode(line) else { return }
        data.append(0x0A)
        deliver(data)
    }

    private func deliver(_ data: Data) {
        enum Next { case write(APIStream.Sink), overflow, nothing }
        let next: Next = state.withLock { s in
            guard !s.done else { return .nothing }
            if let sink = s.sink { return .write(sink) }
            s.pending.append(data)
            return s.pending.count > Self.maxPendingLines ? .overflow : .nothing
        }
        switch next {
        case .write(let sink): if !sink.write(data) { stop() }
        case .overflow: stop()
        case .nothing: break
        }
    }

    func attach(_ sink: APIStream.Sink, timeout: TimeInterval) {
        let (pending, done) = state.withLock { s -> ([Data], Bool) in
            s.sink = sink
            defer { s.pending = [] }
            return (s.pending, s.done)
        }
        for line in pending where !sink.write(line) {
            stop()
            return
        }
        if done {
            sink.finish()
            return
        }
        // `stop` is idempotent: firing after the stream already ended does nothing.
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout) { [self] in stop() }
    }

    /// The store ended the watch: tell the client why (as Kubernetes does, an ERROR event with
    /// a Status), then end the stream.
    func end(_ failure: StoreFailure) {
        let e = APIError(failure)
        send(WatchLine(type: "ERROR", object: e.body))
        stop()
    }

    /// Ends the watch: stops the store's side and closes the client's stream. Idempotent.
    func stop() {
        let (sink, first) = state.withLock { s -> (APIStream.Sink?, Bool) in
            defer { s.done = true }
            return (s.sink, !s.done)
        }
        guard first else { return }
        cancellation?.cancel()
        sink?.finish()
    }
}

