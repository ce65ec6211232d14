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
        /// The sink is attached and the lines that waited are being written: new lines queue
        /// behind them, so the client sees store order.
        var flushing = false
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
            if let sink = s.sink, !s.flushing { return .write(sink) }
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
        state.withLock { s in
            s.sink = sink
            s.flushing = true
        }
        // Drain what waited, and what arrives meanwhile, until nothing is left; only then do
        // new lines go straight to the sink (the store delivers from one thread, in order).
        while true {
            let (batch, done) = state.withLock { s -> ([Data], Bool) in
                if s.pending.isEmpty { s.flushing = false }
                defer { s.pending = [] }
                return (s.pending, s.done)
            }
            if done && batch.isEmpty {
                sink.finish()
                return
            }
            if batch.isEmpty { break }
            for line in batch where !sink.write(line) {
                stop()
                return
            }
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

