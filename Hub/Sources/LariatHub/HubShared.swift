import Logging
import LariatControl
import LariatRuntime
import Synchronization

/// State every loop of the hub reads: immutable configuration and credentials, plus the
/// thread-safe store and registry.
final class HubShared: Sendable {
    let configuration: HubConfiguration
    let control: ControlPlane
    /// Set once right after init, like `workers`.
    nonisolated(unsafe) var clusterStatus: ClusterStatusController?
    /// Set once right after init, like `workers` (nil with `--no-rbac-sync`).
    nonisolated(unsafe) var rbacSync: RBACSyncController?
    let registry: AgentRegistry
    let tls: TLSContext
    let caPEM: String
    let caChecksum: String
    let adminTokenSHA256: String
    let logger: Logger
    let admission: ConnectionAdmission
    let authThrottle: AuthThrottle
    let metrics: HubMetrics
    /// Bearer → principal and "may P do A", read by the Kubernetes proxy on the loops (informer
    /// caches; a token not yet in the cache costs one indexed store read).
    let tokens: TokenService
    let authorizer: Authorizer
    /// For the password-change gate the API applies too (a bootstrap password must be changed first).
    let users: Informer<User>
    let kubernetesAudit: KubernetesAuditLog
    private let draining = Atomic<Bool>(false)
    /// User connections bridged into a tunnel and not yet closed. A draining hub waits for
    /// these too: a stream the session has finished may still be flushing to its user.
    let userConnections = OpenCount()
    /// Agent tunnel connections not yet closed, including ended ones still lingering for the
    /// agent's EOF (exiting under them would turn their close into an RST). Every registered
    /// agent has one, so this is never below `registry.count`.
    let tunnelConnections = OpenCount()
    /// The worker loops, set once right after init (before any connection is accepted).
    nonisolated(unsafe) var workers: [LoopBound<HubWorker>] = []
    private let cursor = Atomic<Int>(0)

    init(configuration: HubConfiguration, control: ControlPlane, tokens: TokenService, authorizer: Authorizer,
         users: Informer<User>, kubernetesAudit: KubernetesAuditLog, registry: AgentRegistry, tls: TLSContext,
         caPEM: String, adminTokenSHA256: String, logger: Logger, metrics: HubMetrics) {
        self.configuration = configuration
        self.tokens = tokens
        self.authorizer = authorizer
        self.users = users
        self.kubernetesAudit = kubernetesAudit
        self.metrics = metrics
        self.control = control
        self.registry = registry
        self.tls = tls
        self.caPEM = caPEM
        self.caChecksum = Digest.sha256Hex(caPEM)
        self.adminTokenSHA256 = adminTokenSHA256
        self.logger = logger
        let limits = configuration.limits
        admission = ConnectionAdmission(maxTotal: limits.maxConnections, maxPerSource: limits.maxConnectionsPerSource)
        authThrottle = AuthThrottle(burst: limits.failedAuthenticationBurst,
                                    refillPerSecond: limits.failedAuthenticationRefillPerSecond)
    }

    var isDraining: Bool { draining.load(ordering: .relaxed) }
    func startDraining() { draining.store(true, ordering: .relaxed) }
    /// Round-robin choice of the worker for a new connection.
    func nextWorker(of count: Int) -> Int { cursor.wrappingAdd(1, ordering: .relaxed).oldValue % count }

    func isAdmin(_ bearer: String?) -> Bool {
        guard let bearer else { return false }
        return Digest.constantTimeEquals(Array(Digest.sha256Hex(bearer).utf8), Array(adminTokenSHA256.utf8))
    }

    /// Records a failed authentication from `source` (an IP address): the first of a period is
    /// logged at once, the rest in the periodic summary (`Hub.reportAuthenticationFailures`).
    func authenticationFailed(source: String, reason: String, now: UInt64, metric: String) {
        metrics.authenticationFailed(metric)
        if authThrottle.recordFailure(source: source, reason: reason, now: now) {
            logger.warning("authentication failed from \(source.logQuoted): \(reason) (further failures from this address are summarised every \(Self.authReportSeconds) s)")
        }
    }

    static let authReportSeconds: UInt64 = 10
}

/// How many of something are open right now, counted from any thread.
struct OpenCount: ~Copyable, Sendable {
    private let value = Atomic<Int>(0)
    var current: Int { value.load(ordering: .acquiring) }
    func opened() { value.add(1, ordering: .relaxed) }
    func closed() { value.subtract(1, ordering: .releasing) }
}
