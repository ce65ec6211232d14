import LariatProtocol
import LariatRuntime
import Synchronization

/// Which agents are connected, on which worker loop: the hub-wide index that forward
/// listeners and the API consult from any thread. The tunnels themselves stay on their loops
/// (`HubWorker`); this holds only Sendable facts about them.
///
/// Rules (a leaked cluster token must not redirect a cluster's traffic):
/// - an agent id is unique within its cluster: a second connection with a connected agent's id
///   is refused (`register` returns the one connected), never silently swapped in;
/// - new streams stay with the longest-connected healthy agent of the preferred role (cluster
///   agents, then node agents), so a newcomer carries nothing while the established agent is
///   healthy; it takes over only when that one leaves, drains or fails to answer an OPEN.
public final class AgentRegistry: Sendable {
    public struct Entry: Sendable, Equatable {
        public var key: UInt64
        public var cluster: String
        public var agentID: String
        public var role: AgentRole
        public var worker: Int
        public var remote: String
        public var software: String
        /// Monotonic (uv_hrtime) and wall-clock times of the registration.
        public var connectedAtNanos: UInt64
        public var connectedAtSeconds: Double
        /// Set once the handshake finished; only established agents carry streams.
        public var established = false
        public var draining = false
        /// Until this monotonic time the agent counts as unhealthy (an OPEN timed out on it).
        public var unhealthyUntilNanos: UInt64 = 0
        public var openTimeouts = 0
        /// The AgentCredential the agent authenticated with (nil: the cluster's registration token).
        public var credential: String?
        /// Smoothed tunnel round trip, refreshed every few seconds.
        public var roundTripNanos: UInt64 = 0
        /// The latest health sample and its score (`AgentHealth`), refreshed by the agent's worker.
        public var health = AgentHealth()
        /// Monotonic times of recent dial failures and OPEN timeouts (pruned to the failure window).
        var dialFailures: [UInt64] = []
        var openTimeoutTimes: [UInt64] = []

        public init(key: UInt64, cluster: String, agentID: String, role: AgentRole, worker: Int, remote: String,
                    software: String, connectedAtNanos: UInt64, connectedAtSeconds: Double, credential: String? = nil) {
            self.key = key
            self.cluster = cluster
            self.agentID = agentID
            self.role = role
            self.worker = worker
            self.remote = remote
            self.software = software
            self.connectedAtNanos = connectedAtNanos
            self.connectedAtSeconds = connectedAtSeconds
            self.credential = credential
        }

        public func isHealthy(at now: UInt64) -> Bool { now >= unhealthyUntilNanos }

        /// The health score in force at `now` (0 while an OPEN timeout's hold lasts).
        public func score(at now: UInt64) -> Int { isHealthy(at: now) ? health.score : 0 }
    }

    private let entries = Mutex<[UInt64: Entry]>([:])
    private let nextKey = Atomic<UInt64>(1)

    public init() {}

    func makeKey() -> UInt64 { nextKey.wrappingAdd(1, ordering: .relaxed).oldValue }

    /// Adds `e` unless its cluster already has an agent with the same id; returns that one then.
    func register(_ e: Entry) -> Entry? {
        entries.withLock { map in
            if let existing = map.values.first(where: { $0.cluster == e.cluster && $0.agentID == e.agentID }) {
                return existing
            }
            map[e.key] = e
            return nil
        }
    }

    func markEstablished(_ key: UInt64) { entries.withLock { $0[key]?.established = true } }
    @discardableResult
    func remove(_ key: UInt64) -> Entry? { entries.withLock { $0.removeValue(forKey: key) } }
    func setRoundTrip(_ key: UInt64, nanos: UInt64) { entries.withLock { $0[key]?.roundTripNanos = nanos } }
    func markDraining(_ key: UInt64) { entries.withLock { $0[key]?.draining = true } }
    func markUnhealthy(_ key: UInt64, until: UInt64) {
        entries.withLock { map in
            map[key]?.unhealthyUntilNanos = until
            map[key]?.openTimeouts += 1
            map[key]?.openTimeoutTimes.append(UVLoop.now)
        }
    }

    /// The agent could not reach a target (OPEN refused with a TARGET_* code).
    func noteDialFailure(_ key: UInt64, now: UInt64) {
        entries.withLock { $0[key]?.dialFailures.append(now) }
    }

    /// Stores a health sample (its failure counts filled in here) and returns the new score.
    @discardableResult
    func updateHealth(_ key: UInt64, _ sample: AgentHealth, settings: AgentHealth.Settings, now: UInt64) -> Int {
        entries.withLock { map in
            guard var e = map[key] else { return 0 }
            let window = UInt64(settings.failureWindowSeconds) * 1_000_000_000
            let horizon = now > window ? now - window : 0
            e.dialFailures.removeAll { $0 < horizon }
            e.openTimeoutTimes.removeAll { $0 < horizon }
            var h = sample
            h.recentDialFailures = e.dialFailures.count
            h.recentOpenTimeouts = e.openTimeoutTimes.count
            h.rescore(settings)
            e.health = h
            map[key] = e
            return h.score
        }
    }

    public func entry(_ key: UInt64) -> Entry? { entries.withLock { $0[key] } }

    public var all: [Entry] { entries.withLock { Array($0.values) }.sorted { $0.key < $1.key } }
    public var count: Int { entries.withLock { $0.count } }

    /// The agent to carry a new stream for `cluster` at monotonic time `now`, other than those
    /// in `excluding` (paths a request already failed on).
    public func pick(cluster: String, now: UInt64, excluding: Set<UInt64> = [],
                     healthyScore: Int = AgentHealth.Settings().healthyScore) -> Entry? {
        entries.withLock { map in
            Self.choose(from: map.values.filter { $0.cluster == cluster && !excluding.contains($0.key) }, now: now,
                        healthyScore: healthyScore)
        }
    }

    /// Healthy (score ≥ `healthyScore`) before unhealthy; among the healthy, cluster agents
    /// before node agents (the fallback path), the longest-connected cluster agent (a newcomer
    /// holding the token carries nothing while the established one is healthy) and the
    /// best-scoring node agent; among the unhealthy, the best score. Draining and half-registered
    /// agents never.
    static func choose(from agents: [Entry], now: UInt64, healthyScore: Int = AgentHealth.Settings().healthyScore) -> Entry? {
        let usable = agents.filter { $0.established && !$0.draining }
        func rank(_ e: Entry) -> (Int, Int, Int, UInt64, UInt64) {
            let score = e.score(at: now)
            let healthy = score >= healthyScore
            // Cluster agents rank by age alone while healthy; the others by score first.
            let byScore = healthy && e.role == .clusterAgent ? 0 : -score
            return (healthy ? 0 : 1, healthy ? (e.role == .clusterAgent ? 0 : 1) : 0, byScore, e.connectedAtNanos, e.key)
        }
        return usable.min { rank($0) < rank($1) }
    }
}
