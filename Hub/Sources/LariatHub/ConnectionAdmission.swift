import Synchronization

/// Counts the hub's open HTTPS connections, in total and per source address, and refuses new
/// ones beyond `FrontDoorLimits.maxConnections` / `maxConnectionsPerSource`. The acceptor
/// thread admits; whichever worker ends the connection releases, through the ticket.
final class ConnectionAdmission: Sendable {
    enum Refusal: Error, Equatable, CustomStringConvertible {
        case total(Int)
        case perSource(Int)
        var description: String {
            switch self {
            case .total(let n): "the hub holds its maximum of \(n) connections"
            case .perSource(let n): "this source address holds its maximum of \(n) connections"
            }
        }
    }

    private struct Counts {
        var total = 0
        var bySource: [String: Int] = [:]
        var refused = 0
    }

    let maxTotal: Int
    let maxPerSource: Int
    private let counts = Mutex(Counts())

    init(maxTotal: Int, maxPerSource: Int) {
        self.maxTotal = maxTotal
        self.maxPerSource = maxPerSource
    }

    /// A ticket for one connection from `source`, or why there is none.
    func admit(source: String) -> Result<Ticket, Refusal> {
        let refusal: Refusal? = counts.withLock { c in
            if c.total >= maxTotal { c.refused += 1; return .total(maxTotal) }
            let mine = c.bySource[source, default: 0]
            if mine >= maxPerSource { c.refused += 1; return .perSource(maxPerSource) }
            c.total += 1
            c.bySource[source] = mine + 1
            return nil
        }
        if let refusal { return .failure(refusal) }
        return .success(Ticket(admission: self, source: source))
    }

    fileprivate func release(_ source: String) {
        counts.withLock { c in
            c.total -= 1
            let left = c.bySource[source, default: 1] - 1
            c.bySource[source] = left > 0 ? left : nil
        }
    }

    var open: Int { counts.withLock { $0.total } }
    func open(from source: String) -> Int { counts.withLock { $0.bySource[source, default: 0] } }
    /// Refusals since the last call (for one aggregated log line instead of one per refusal).
    func takeRefusedCount() -> Int { counts.withLock { c in defer { c.refused = 0 }; return c.refused } }

    /// Held by whatever owns the connection (its HTTP handler, then its tunnel); the slot is
    /// given back when the last owner lets go, on whichever thread that is.
    final class Ticket: Sendable {
        let admission: ConnectionAdmission
        let source: String
        fileprivate init(admission: ConnectionAdmission, source: String) {
            self.admission = admission
            self.source = source
        }
        deinit { admission.release(source) }
    }
}
