import Foundation
import LariatControl
import LariatRuntime

/// Between the HTTPS connections (loop-confined) and the control plane (its own queue): which
/// paths go there, and the thread-safe sink through which a streamed answer reaches its
/// connection's loop.
enum ControlPlaneBridge {
    static func handles(_ path: Substring) -> Bool {
        path == "/v3" || path.hasPrefix("/v3/") || path.hasPrefix("/v3-public/") || path == MetricsEndpoint.path
    }
    static func handles(_ path: String) -> Bool { handles(path[...]) }

    /// Chunks are posted to the connection's loop; `write` reports false once the connection
    /// refused one (closed, or too far behind), so the producer stops.
    static func sink(for connection: HubHTTPConnection, keepAlive: Bool) -> APIStream.Sink {
        let bound = LoopBound(connection, loop: connection.worker.loop)
        let open = AtomicFlag(true)
        return APIStream.Sink(write: { data in
            guard open.value else { return false }
            bound.loop.execute {
                if !bound.value.writeChunk(data) { open.value = false }
            }
            return open.value
        }, finish: {
            open.value = false
            bound.loop.execute { bound.value.finishStream(keepAlive: keepAlive) }
        })
    }
}

import Synchronization

/// A Bool shared across threads.
final class AtomicFlag: Sendable {
    private let storage: Atomic<Bool>
    init(_ value: Bool) { storage = Atomic(value) }
    var value: Bool {
        get { storage.load(ordering: .acquiring) }
        set { storage.store(newValue, ordering: .releasing) }
    }
}
