import CoreMetrics
import LariatControl
import LariatRuntime
import Prometheus
import Synchronization

/// Settings of the hub's `/metrics`.
public struct MetricsSettings: Sendable {
    /// `/metrics` needs a bearer: the admin token, or an API token whose user may `get` the
    /// `metrics` resource (the `admin` role may; bind a role with that rule to a scraper's user).
    /// Off, anyone who reaches the HTTPS port may read cluster names and traffic volumes.
    public var requireAuthentication = true
    /// Histogram buckets of API request latency.
    public var apiLatencyBuckets: [Duration] = [.microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
                                                .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
                                                .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5)]
    /// Histogram buckets of store operation latency (SQLite answers in microseconds, etcd in milliseconds).
    public var storeLatencyBuckets: [Duration] = [.microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500),
                                                  .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
                                                  .milliseconds(25), .milliseconds(100), .seconds(1)]
    /// How long a scrape waits for the worker loops to report their tunnels.
    public var collectTimeoutMilliseconds = 1000
    public init() {}
}

/// The hub's metrics: one Prometheus registry per hub (so hubs in one test process do not
/// share numbers), fed through swift-metrics. Counters of events (failures, API requests,
/// store calls) are bumped where they happen; the tunnel figures (agents, streams, bytes) are
/// read at scrape time from the registry and the workers' sessions, so the data path counts
/// nothing extra: a session already keeps its byte totals.
final class HubMetrics: Sendable {
    static let agentsLabel = "lariat_hub_agents_connected"
    static let streamsLabel = "lariat_hub_streams_open"
    static let bytesLabel = "lariat_hub_tunnel_bytes_total"
    static let handshakeFailuresLabel = "lariat_hub_handshake_failures_total"
    static let authenticationFailuresLabel = "lariat_hub_authentication_failures_total"
    static let infoLabel = "lariat_hub_info"
    static let kubernetesRequestsLabel = "lariat_hub_k8s_requests_total"
    static let kubernetesFailoversLabel = "lariat_hub_k8s_failovers_total"
    static let forwardAcceptPausesLabel = "lariat_hub_forward_accept_pauses_total"

    let registry = PrometheusCollectorRegistry()
    let factory: PrometheusMetricsFactory
    let settings: MetricsSettings

    /// What the last scrape published, to turn the sessions' running totals into counter
    /// increments and to zero the gauges of clusters that went away.
    private struct Published {
        var bytes: [String: (toAgent: Int, fromAgent: Int)] = [:]
        var agentSeries: Set<[String]> = []
        var streamSeries: Set<String> = []
    }
    private let published = Mutex(Published())

    init(settings: MetricsSettings) {
        self.settings = settings
        var f = PrometheusMetricsFactory(registry: registry)
        f.durationHistogramBuckets = [APIMetrics.durationLabel: settings.apiLatencyBuckets,
                                      TimedStoreBackend.durationLabel: settings.storeLatencyBuckets]
        factory = f
        Gauge(label: Self.infoLabel, dimensions: [("version", LariatVersion.version)], factory: factory).record(1)
    }

    /// A TLS, WebSocket or tunnel handshake that did not complete (`tls`, `tls_timeout`,
    /// `websocket`, `no_hello`, `authentication`, `duplicate_agent`, `draining`).
    func handshakeFailed(_ reason: String) {
        Counter(label: Self.handshakeFailuresLabel, dimensions: [("reason", reason)], factory: factory).increment()
    }

    /// A request through the Kubernetes authentication proxy, by cluster, verb and status code.
    func kubernetesRequest(cluster: String, verb: String, status: Int, path: String) {
        Counter(label: Self.kubernetesRequestsLabel,
                dimensions: [("cluster", cluster), ("verb", verb), ("code", String(status)), ("path", path)],
                factory: factory).increment()
    }

    /// A forward listener stopped accepting: its pending-connection bound was reached
    /// (`ForwardAcceptLimits.maxPending`); later clients waited in the listen backlog.
    func forwardAcceptPaused(forward: String) {
        Counter(label: Self.forwardAcceptPausesLabel, dimensions: [("forward", forward)], factory: factory).increment()
    }

    /// A request moved to another path after failing on one (`from`/`to`: cluster-agent or node).
    func kubernetesFailover(cluster: String, from: String, to: String) {
        Counter(label: Self.kubernetesFailoversLabel, dimensions: [("cluster", cluster), ("from", from), ("to", to)],
                factory: factory).increment()
    }

    /// A refused credential (`agent`, `admin_token`, `api_token`).
    func authenticationFailed(_ reason: String) {
        Counter(label: Self.authenticationFailuresLabel, dimensions: [("reason", reason)], factory: factory).increment()
    }

    /// Sets the tunnel figures from a scrape's reading.
    func publish(agents: [AgentRegistry.Entry], tunnels: [String: TunnelTotals]) {
        var agentCounts: [[String]: Int] = [:]
        for e in agents where e.established { agentCounts[[e.cluster, e.role.name], default: 0] += 1 }
        published.withLock { p in
            for series in p.agentSeries.union(agentCounts.keys) {
                Gauge(label: Self.agentsLabel, dimensions: [("cluster", series[0]), ("role", series[1])], factory: factory)
                    .record(agentCounts[series] ?? 0)
            }
            p.agentSeries.formUnion(agentCounts.keys)
            for cluster in p.streamSeries.union(tunnels.keys) {
                Gauge(label: Self.streamsLabel, dimensions: [("cluster", cluster)], factory: factory)
                    .record(tunnels[cluster]?.streams ?? 0)
            }
            p.streamSeries.formUnion(tunnels.keys)
            for (cluster, t) in tunnels {
                let last = p.bytes[cluster] ?? (0, 0)
                // Totals only grow (ended sessions' bytes are kept by their worker).
                if t.bytesToAgent > last.toAgent {
                    Counter(label: Self.bytesLabel, dimensions: [("cluster", cluster), ("direction", "to_agent")], factory: factory)
                        .increment(by: Int64(t.bytesToAgent - last.toAgent))
                }
                if t.bytesFromAgent > last.fromAgent {
                    Counter(label: Self.bytesLabel, dimensions: [("cluster", cluster), ("direction", "from_agent")], factory: factory)
                        .increment(by: Int64(t.bytesFromAgent - last.fromAgent))
                }
                p.bytes[cluster] = (max(last.toAgent, t.bytesToAgent), max(last.fromAgent, t.bytesFromAgent))
            }
        }
    }

    /// The exposition text.
    func render() -> [UInt8] { registry.emitToBuffer() }
}

/// One cluster's tunnel figures on one worker (or summed over all).
struct TunnelTotals: Sendable, Equatable {
    var streams = 0
    var bytesToAgent = 0
    var bytesFromAgent = 0

    mutating func add(_ o: TunnelTotals) {
        streams += o.streams
        bytesToAgent += o.bytesToAgent
        bytesFromAgent += o.bytesFromAgent
    }
}
