import Logging
import LariatRuntime
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Backpressure on accept for forward listeners (`--forward` and Forward objects).
public struct ForwardAcceptLimits: Sendable {
    /// Connections one forward listener holds that the agent has not answered yet (accepted,
    /// on their way to the tunnel's loop, queued behind the tunnel's `maxOutstandingOpens` or
    /// awaiting OPEN_OK). At this many the listener stops accepting and further clients wait in
    /// the kernel's listen backlog, costing the hub nothing. 1024 holds a burst of 1,000 without
    /// a pause and stays below what one tunnel queues (256 outstanding + 2048 queued opens), so
    /// a larger burst meets a paused listener, not a refusal.
    public var maxPending = 1024
    /// Accepting resumes once the count has fallen to this: a gap below `maxPending`, so a
    /// listener pauses once per batch of answers rather than once per answer.
    public var resumePending = 768
    /// listen(2)'s backlog of forward listeners: the clients a paused listener leaves waiting
    /// (the kernel caps it at net.core.somaxconn).
    public var listenBacklog = TCPListener.defaultBacklog
    /// While pauses repeat, at most one log line per this many seconds per listener.
    public var pauseLogIntervalSeconds: UInt64 = 10
    public init() {}
}

/// What the acceptor and the worker loops share about one paced listener.
private final class PendingCount: Sendable {
    /// Connections accepted and not yet answered by the agent.
    let pending = Atomic<Int>(0)
    /// The listener is paused and nobody has claimed its resume yet. Whoever turns it from true
    /// to false (a worker giving back the count, or the acceptor re-checking right after it
    /// paused) resumes the listener, so exactly one resume follows each pause.
    let paused = Atomic<Bool>(false)
}

/// One accepted connection's place in its listener's pending count. Given back once — when the
/// agent answers its OPEN (OK or refused), when it fails or closes first, or when the ticket is
/// dropped — from whichever loop holds it; the listener is resumed on its own loop.
final class ForwardAcceptTicket: Sendable {
    private let owner: LoopBound<PacedForwardListener>
    private let count: PendingCount
    private let resumeAt: Int
    private let returned = Atomic<Bool>(false)

    fileprivate init(owner: LoopBound<PacedForwardListener>, count: PendingCount, resumeAt: Int) {
        self.owner = owner
        self.count = count
        self.resumeAt = resumeAt
    }

    func release() {
        guard !returned.exchange(true, ordering: .sequentiallyConsistent) else { return }
        let left = count.pending.subtract(1, ordering: .sequentiallyConsistent).newValue
        guard left <= resumeAt,
              count.paused.compareExchange(expected: true, desired: false, ordering: .sequentiallyConsistent).exchanged
        else { return }
        let owner = self.owner
        _ = owner.loop.execute { owner.value.resume() }
    }

    deinit { release() }
}

/// A forward's TCP listener that stops accepting while `maxPending` of its connections wait for
/// the agent's answer and resumes at `resumePending` (`TCPListener.pauseAccepting`: the kernel
/// holds the rest of a burst in the listen backlog). Acceptor-loop-confined; the count is shared
/// with the worker loops through `ForwardAcceptTicket`s.
final class PacedForwardListener {
    /// Set once, right after `listener` exists (the accept closure needs `self` first).
    private(set) var listener: TCPListener!
    /// Names the forward in logs and in the `forward` label of the pause metric.
    let name: String
    private let limits: ForwardAcceptLimits
    /// `limits.resumePending`, held below `maxPending` so a pause can always end.
    private let resumeAt: Int
    private let count = PendingCount()
    private let metrics: HubMetrics
    private let logger: Logger
    private var pausesSinceLog = 0
    private var lastPauseLogAt: UInt64 = 0
    /// How often accepting paused (for tests and `/metrics`).
    private(set) var pauses = 0

    var localAddress: SocketAddress { listener.localAddress }
    var port: Int { listener.port }
    /// Connections accepted and not yet answered by the agent.
    var pending: Int { count.pending.load(ordering: .relaxed) }

    init(loop: UVLoop, host: String, port: Int, name: String, limits: ForwardAcceptLimits, metrics: HubMetrics,
         logger: Logger, onAccept: @escaping (TCPConnection, ForwardAcceptTicket) -> Void) throws {
        self.name = name
        self.limits = limits
        self.metrics = metrics
        self.logger = logger
        resumeAt = min(max(0, limits.resumePending), max(0, limits.maxPending - 1))
        listener = try TCPListener(loop: loop, host: host, port: port, backlog: limits.listenBacklog) { [weak self] connection in
            guard let self else { return connection.closeWithReset() }
            let ticket = ForwardAcceptTicket(owner: LoopBound(self, loop: loop), count: count, resumeAt: resumeAt)
            admitted()
            onAccept(connection, ticket)
        }
    }

    /// Counts a connection in; at `maxPending` pauses the listener.
    private func admitted() {
        let now = count.pending.add(1, ordering: .sequentiallyConsistent).newValue
        guard now >= limits.maxPending,
              count.paused.compareExchange(expected: false, desired: true, ordering: .sequentiallyConsistent).exchanged
        else { return }
        listener.pauseAccepting()
        pauses += 1
        pausesSinceLog += 1
        metrics.forwardAcceptPaused(forward: name)
        let at = listener.loop.now
        if lastPauseLogAt == 0 || at - lastPauseLogAt >= limits.pauseLogIntervalSeconds * 1_000_000_000 {
            logger.info("forward \(name.logQuoted): \(now) connections wait for the agent to answer (forward max pending \(limits.maxPending)); not accepting until \(resumeAt) or fewer wait, later clients wait in the listen backlog (\(pausesSinceLog) pause(s) since the last line)")
            lastPauseLogAt = at
            pausesSinceLog = 0
        }
        // Answers that arrived between the count and the flag found nothing to resume.
        if count.pending.load(ordering: .sequentiallyConsistent) <= resumeAt,
           count.paused.compareExchange(expected: true, desired: false, ordering: .sequentiallyConsistent).exchanged {
            listener.resumeAccepting()
        }
    }

    fileprivate func resume() { listener.resumeAccepting() }

    func close() { listener.close() }
}
