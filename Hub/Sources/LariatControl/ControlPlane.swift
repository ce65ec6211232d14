import CoreMetrics
import Foundation
import Logging
import LariatRuntime
import LariatStore
import Synchronization

/// The hub's control plane in one object: the store and its typed views, the informers the
/// data path reads (clusters, registration tokens, agent credentials), and the router that
/// serves `/v3`. The hub's HTTPS connections hand it requests (on its own queue, never on a
/// network loop) and ask it whether an agent may connect.
public final class ControlPlane: Sendable {
    public struct Settings: Sendable {
        /// The URL agents reach this hub at (the import command and manifest carry it).
        public var serverURL: String
        public var caPEM: String
        public var caChecksum: String
        /// The agent image the import manifest deploys.
        public var agentImage = "ghcr.io/lariat/lariat-agent:0.1.0"
        /// How long registration tokens made by `import` stay valid (nil: until deleted).
        public var registrationTokenTTL: TimeInterval? = nil
        /// Lifetime of the token each generated kubeconfig carries (Rancher's
        /// `kubeconfig-default-token-ttl-minutes`: 30 days); nil: until revoked. The token
        /// service's `maxTTL` caps it either way.
        public var kubeconfigTokenTTL: TimeInterval? = 30 * 24 * 3600
        /// Most clusters one kubeconfig may hold: each gets a token of its own (a store write).
        public var maxKubeconfigClusters = 500
        /// Where API request counts and latencies go (nil: nowhere).
        public var metricsFactory: (any MetricsFactory)? = nil
        /// Ports a Forward may ask the hub to listen on (0, any free port, always may): not the
        /// privileged ones, where a hub running as root would otherwise let a project member
        /// take a well-known service's port.
        public var forwardListenPorts: ClosedRange<Int> = 1024...65535
        /// Most Forwards one user may own (each may hold a listening socket on the hub).
        public var maxForwardsPerOwner = 100
        public init(serverURL: String, caPEM: String, caChecksum: String) {
            self.serverURL = serverURL
            self.caPEM = caPEM
            self.caChecksum = caChecksum
        }
    }

    private let settingsBox: Mutex<Settings>
    /// Settings can change once after start: a hub listening on port 0 learns its URL then.
    public var settings: Settings { settingsBox.withLock { $0 } }
    public func updateServerURL(_ url: String) { settingsBox.withLock { $0.serverURL = url } }
    /// Whether an agent id of a cluster holds a tunnel now (answered by the hub, which may also
    /// probe that tunnel's liveness); a registration for a connected id is refused.
    private let connectedCheck = Mutex<(@Sendable (String, String) -> Bool)?>(nil)
    public func whenAskedIfConnected(_ check: @escaping @Sendable (_ cluster: String, _ agentID: String) -> Bool) {
        connectedCheck.withLock { $0 = check }
    }
    func isAgentConnected(cluster: String, agentID: String) -> Bool {
        connectedCheck.withLock { $0 }?(cluster, agentID) ?? false
    }
    public let backend: any StoreBackend
    public let logger: Logger
    public let clusters: ObjectStore<Cluster>
    public let projects: ObjectStore<Project>
    public let registrationTokens: ObjectStore<ClusterRegistrationToken>
    public let agentCredentials: ObjectStore<AgentCredential>
    public let forwards: ObjectStore<Forward>
    public let clusterInformer: Informer<Cluster>
    public let registrationTokenInformer: Informer<ClusterRegistrationToken>
    public let agentCredentialInformer: Informer<AgentCredential>
    /// Forwards' cache: the hub opens listeners from it and authorizes their connections.
    public let forwardInformer: Informer<Forward>
    /// Projects' cache; started with the authorizer's caches (`RBACInformers`), which share it.
    public let projectInformer: Informer<Project>
    /// Runs API requests off the network loops; concurrent (SQLite serialises its own writes).
    public let queue = DispatchQueue(label: "control-plane-api", attributes: .concurrent)
    private let routerBox = Mutex<Router?>(nil)
    /// What happens when a cluster is created by a user (bind the creator, say); set by whoever
    /// assembles the identity kinds.
    private let onClusterCreated = Mutex<(@Sendable (Object<Cluster>, Principal) -> Void)?>(nil)

    public init(backend: any StoreBackend, settings: Settings, logger: Logger) {
        self.backend = backend
        settingsBox = Mutex(settings)
        self.logger = logger
        clusters = ObjectStore(backend)
        projects = ObjectStore(backend)
        registrationTokens = ObjectStore(backend)
        agentCredentials = ObjectStore(backend)
        forwards = ObjectStore(backend)
        clusterInformer = Informer(store: clusters)
        registrationTokenInformer = Informer(store: registrationTokens)
        agentCredentialInformer = Informer(store: agentCredentials)
        forwardInformer = Informer(store: forwards)
        projectInformer = Informer(store: projects)
    }

    /// Starts the informers and builds the router. `routes` adds the routes of kinds defined
    /// elsewhere (identities and roles).
    public func start(authenticator: any Authenticating, authorizer: any Authorizing, audit: any AuditSink,
                      passwordChangeRequired: @escaping @Sendable (Principal) -> Bool = { _ in false },
                      routes: (inout RouterBuilder) -> Void = { _ in }) throws(StoreFailure) {
        try clusterInformer.start()
        try registrationTokenInformer.start()
        try agentCredentialInformer.start()
        try forwardInformer.start()
        var builder = RouterBuilder()
        ClustersRoute.register(self, in: &builder)
        ProjectsRoute.register(self, in: &builder)
        RegistrationRoutes.register(self, in: &builder)
        ImportRoute.register(self, in: &builder)
        ForwardsRoute.register(self, in: &builder)
        routes(&builder)
        let router = builder.build(authenticator: authenticator, authorizer: authorizer, audit: audit, logger: logger,
                                   passwordChangeRequired: passwordChangeRequired,
                                   metrics: APIMetrics(factory: settings.metricsFactory))
        routerBox.withLock { $0 = router }
    }

    public func stop() {
        clusterInformer.stop()
        registrationTokenInformer.stop()
        agentCredentialInformer.stop()
        forwardInformer.stop()
    }

    public var router: Router {
        guard let r = routerBox.withLock({ $0 }) else { preconditionFailure("ControlPlane.start was not called") }
        return r
    }

    /// Answers one API request on the control plane's queue; `reply` runs there too.
    public func handle(_ request: APIRequest, reply: @escaping @Sendable (APIResponse) -> Void) {
        queue.async { [self] in reply(router.handle(request)) }
    }

    public func whenClusterCreated(_ hook: @escaping @Sendable (Object<Cluster>, Principal) -> Void) {
        onClusterCreated.withLock { $0 = hook }
    }

    func clusterCreated(_ cluster: Object<Cluster>, by principal: Principal) {
        onClusterCreated.withLock { $0 }?(cluster, principal)
    }
}
