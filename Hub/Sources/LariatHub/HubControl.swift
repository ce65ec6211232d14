import Foundation
import Logging
import LariatControl
import LariatRuntime
import LariatStore

/// Which store the hub keeps its control plane in.
public enum StoreChoice: Sendable, Equatable {
    /// `DATA/store.db` (the default: one hub).
    case sqlite
    /// An etcd cluster several hubs share (`host`, `port`, key prefix).
    case etcd(host: String, port: Int, prefix: String)
}

/// Opens the hub's control plane over the configured store, imports a data folder from before
/// the store, and makes the first cluster on an empty store.
struct HubControl {
    let services: ControlPlaneServices
    var control: ControlPlane { services.control }
    var bootstrapPassword: String? { services.bootstrapPassword }
    /// Set when the bootstrap cluster was created now: its registration token, to print once.
    var bootstrapClusterToken: String?
    var imported: [String] = []
    /// Deletes expired API and registration tokens after a grace.
    var tokenCleanup: TokenCleanupController?

    static func open(configuration: HubConfiguration, caPEM: String, caChecksum: String, logger: Logger,
                     metrics: HubMetrics, extraRoutes: @escaping (inout RouterBuilder) -> Void) throws -> HubControl {
        var backend: any StoreBackend
        switch configuration.store {
        case .sqlite:
            backend = try SQLiteBackend(folder: configuration.dataDirectory)
        case .etcd(let host, let port, let prefix):
            var settings = EtcdStoreSettings()
            settings.prefix = prefix
            backend = try EtcdBackend(host: host, port: port, settings: settings)
        }
        backend = TimedStoreBackend(backend, backendName: backend is SQLiteBackend ? "sqlite" : "etcd", factory: metrics.factory)
        var settings = ControlPlane.Settings(serverURL: configuration.serverURL, caPEM: caPEM, caChecksum: caChecksum)
        settings.metricsFactory = metrics.factory
        settings.agentImage = configuration.agentImage
        let audit: any AuditSink = try configuration.auditLog.map { try JSONLinesAuditSink(path: $0) } ?? MemoryAuditSink(capacity: 1000)
        let services = try ControlPlaneServices.open(backend: backend, settings: settings, audit: audit, logger: logger,
                                                     extraRoutes: extraRoutes)
        let control = services.control
        var result = HubControl(services: services)
        result.tokenCleanup = TokenCleanupController(tokens: services.tokens.tokens, registrationTokens: control.registrationTokenInformer, logger: logger)
        result.imported = try LegacyClusterImport.run(directory: configuration.dataDirectory, control: control)
        if control.clusterInformer.items.isEmpty, let name = configuration.bootstrapCluster {
            _ = try control.clusters.create(Object(name: name, spec: Cluster.Spec(displayName: name)))
            result.bootstrapClusterToken = try control.issueImport(for: name).registrationToken
        }
        // The informers follow writes by a watch delivery: the data path must see what was just made.
        let expected = max(result.imported.count, configuration.bootstrapCluster == nil ? 0 : 1)
        let deadline = Date().addingTimeInterval(5)
        while control.clusterInformer.items.count < expected && Date() < deadline { usleep(5_000) }
        return result
    }
}
