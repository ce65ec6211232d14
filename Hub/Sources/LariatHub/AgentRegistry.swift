import LariatProtocol
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
        }
    }

    public var all: [Entry] { entries.withLock { Array($0.values) }.sorted { $0.key < $1.key } }
    public var count: Int { entries.withLock { $0.count } }

    /// The agent to carry a new stream for `cluster` at monotonic time `now`.
    public func pick(cluster: String, now: UInt64) -> Entry? {
        entries.withLock { map in Self.choose(from: map.values.filter { $0.cluster == cluster }, now: now) }
    }

    /// Healthy before unhealthy, cluster agents before node agents (the fallback path), then
    /// the longest connected; draining and half-registered agents never.
    static func choose(from agents: [Entry], now: UInt64) -> Entry? {
        let usable = agents.filter { $0.established && !$0.draining }
        func rank(_ e: Entry) -> (Int, Int, UInt64, UInt64) {
            (e.isHealthy(at: now) ? 0 : 1, e.role == .clusterAgent ? 0 : 1, e.connectedAtNanos, e.key)
        }
        return usable.min { rank($0) < rank($1) }
    }
}
