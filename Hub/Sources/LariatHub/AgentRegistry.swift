import LariatProtocol
import Synchronization

/// Which agents are connected, on which worker loop: the hub-wide index that forward
/// listeners and the API consult from any thread. The tunnels themselves stay on their loops
/// (`HubWorker`); this holds only Sendable facts about them.
public final class AgentRegistry: Sendable {
    public struct Entry: Sendable, Equatable {
        public var key: UInt64
        public var cluster: String
        public var agentID: String
        public var role: AgentRole
        public var worker: Int
        public var remote: String
        public var connectedAtNanos: UInt64
        public var draining = false
    }

    private let entries = Mutex<[UInt64: Entry]>([:])
    private let nextKey = Atomic<UInt64>(1)

    public init() {}

    func makeKey() -> UInt64 { nextKey.wrappingAdd(1, ordering: .relaxed).oldValue }

    func add(_ e: Entry) { entries.withLock { $0[e.key] = e } }
    func remove(_ key: UInt64) { entries.withLock { $0[key] = nil } }
    func markDraining(_ key: UInt64) { entries.withLock { $0[key]?.draining = true } }

    public var all: [Entry] { entries.withLock { Array($0.values) }.sorted { $0.key < $1.key } }
    public var count: Int { entries.withLock { $0.count } }

    /// The agent to carry a new stream for `cluster`: the newest healthy cluster agent, else
    /// the newest node agent (the fallback path when the cluster agent is down).
    public func pick(cluster: String) -> Entry? {
        entries.withLock { map in
            let candidates = map.values.filter { $0.cluster == cluster && !$0.draining }
            func newest(_ role: AgentRole) -> Entry? {
                candidates.filter { $0.role == role }.max { $0.connectedAtNanos < $1.connectedAtNanos }
            }
            return newest(.clusterAgent) ?? newest(.nodeAgent)
        }
    }
}
