import Foundation
import LariatControl
import LariatRuntime
import LariatStore

/// Keeps each Cluster's status true to the agents connected now: condition `Connected` (some
/// agent holds a tunnel), `Ready` (a healthy cluster agent does), and the agents with role,
/// version, remote address, connected-since and round trip. The workers report connects and
/// disconnects; a resync every `resyncSeconds` refreshes round trips and repairs drift (a
/// write that failed while the store was down is retried by the work queue with backoff).
final class ClusterStatusController: Sendable {
    static let resyncSeconds = 10.0

    private let control: ControlPlane
    private let registry: AgentRegistry
    private let queue: WorkQueue
    private let stopped = AtomicFlag(false)

    init(control: ControlPlane, registry: AgentRegistry, refreshRoundTrips: @escaping @Sendable () -> Void) {
        self.control = control
        self.registry = registry
        queue = WorkQueue(name: "cluster-status", onError: { key, error, attempt in
            if attempt == 1 || attempt % 10 == 0 {
                control.logger.warning("cluster status of \(key.logQuoted): \(error) (attempt \(attempt); retrying with backoff)")
            }
        }, reconcile: { [registry] name in
            try Self.reconcile(name, control: control, registry: registry)
        })
        // A new cluster gets its conditions at once, not at the next resync.
        let work = queue
        control.clusterInformer.onChange { change in
            if case .upserted(let c) = change, c.status.conditions.isEmpty { work.add(c.name) }
        }
        // Clusters that were connected when the hub last stopped start out disconnected.
        for c in control.clusterInformer.items { queue.add(c.name) }
        Self.scheduleResync(queue: queue, control: control, stopped: stopped, refreshRoundTrips: refreshRoundTrips)
    }

    private static func scheduleResync(queue: WorkQueue, control: ControlPlane, stopped: AtomicFlag,
                                       refreshRoundTrips: @escaping @Sendable () -> Void) {
        DispatchQueue.global().asyncAfter(deadline: .now() + resyncSeconds) {
            guard !stopped.value else { return }
            refreshRoundTrips()
            for c in control.clusterInformer.items { queue.add(c.name) }
            scheduleResync(queue: queue, control: control, stopped: stopped, refreshRoundTrips: refreshRoundTrips)
        }
    }

    func clusterChanged(_ name: String) { queue.add(name) }

    func stop() {
        stopped.value = true
        queue.stop()
    }

    static func reconcile(_ name: String, control: ControlPlane, registry: AgentRegistry,
                          healthyScore: Int = AgentHealth.Settings().healthyScore) throws {
        guard control.clusterInformer.get(name) != nil else { return }
        let now = UVLoop.now
        let agents = registry.all.filter { $0.cluster == name && $0.established }
        let carrier = AgentRegistry.choose(from: agents, now: now, healthyScore: healthyScore)?.key
        let rows = agents.map { e in
            let h = e.health
            var row = Cluster.AgentStatus(name: e.agentID, role: e.role.name, version: e.software,
                                          connectedSince: Date(timeIntervalSince1970: e.connectedAtSeconds), remote: e.remote,
                                          rttMicros: Int(e.roundTripNanos / 1000), carriesNewStreams: e.key == carrier)
            row.health = Cluster.AgentHealthStatus(
                score: e.score(at: now), healthy: e.score(at: now) >= healthyScore, rttMicros: h.rttMicros,
                minRTTMicros: h.minRTTMicros, unansweredPingMillis: h.unansweredPingMillis, silenceMillis: h.silenceMillis,
                openStreams: h.openStreams, bytesInFlight: h.bytesInFlight, sessionAgeSeconds: h.sessionAgeSeconds,
                recentDialFailures: h.recentDialFailures, recentOpenTimeouts: h.recentOpenTimeouts)
            return row
        }.sorted { $0.name < $1.name }
        let readyAgent = agents.first { $0.role == .clusterAgent && !$0.draining && $0.score(at: now) >= healthyScore }
        let connected = !agents.isEmpty
        let connectedMessage = connected ? "\(agents.count) agent(s) connected" : "no agent holds a tunnel"
        let readyMessage = readyAgent.map { "cluster agent \($0.agentID) carries the cluster's streams" }
            ?? "no healthy cluster agent is connected"
        let ready = readyAgent != nil
        let result: Result<Object<Cluster>, StoreFailure> = Result { () throws(StoreFailure) in
            try control.clusters.modify(name) { (c: inout Object<Cluster>) throws(StoreFailure) in
                c.status.agents = rows
                c.status.conditions.set("Connected", connected ? .true : .false,
                                        reason: connected ? "AgentConnected" : "NoAgent", message: connectedMessage)
                c.status.conditions.set("Ready", ready ? .true : .false,
                                        reason: ready ? "ClusterAgentReady" : "NoHealthyClusterAgent", message: readyMessage)
            }
        }
        if case .failure(let failure) = result {
            if case .notFound = failure { return }  // deleted meanwhile
            throw failure
        }
    }
}
