import Foundation

/// The hub's own requests to a cluster's API server (controllers: RBAC sync, cluster stats).
/// They take the same path as users' requests — the cluster's tunnel, the agent's `k8s-proxy`
/// stream, the agent's service account — impersonating `ClusterAPIClient.controllerUser`, which
/// the import manifest binds to the ClusterRole `lariat-controller` and nothing else.
public protocol ClusterAPIClient: Sendable {
    /// Blocks the calling thread (a controller's worker) until the answer or `timeout`.
    func request(cluster: String, method: String, path: String, body: Data?, contentType: String?,
                 timeout: TimeInterval) -> Result<ClusterAPIResponse, ClusterAPIError>
}

extension ClusterAPIClient {
    public func get(cluster: String, path: String, timeout: TimeInterval = 10) -> Result<ClusterAPIResponse, ClusterAPIError> {
        request(cluster: cluster, method: "GET", path: path, body: nil, contentType: nil, timeout: timeout)
    }
}

public enum ClusterAPIIdentity {
    /// The Kubernetes user the hub's controllers act as inside every cluster.
    public static let controllerUser = "lariat:controller"
    public static let controllerGroups = ["system:authenticated", "lariat:controllers"]

    /// Their principal on the hub (never issued a token; used only in-process).
    public static var principal: Principal {
        Principal(kind: .agent, name: controllerUser, username: controllerUser, groups: controllerGroups)
    }
}

public struct ClusterAPIResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: Data
    public init(status: Int, headers: [(name: String, value: String)], body: Data) {
        self.status = status
        self.headers = headers
        self.body = body
    }
    public var isSuccess: Bool { (200..<300).contains(status) }
}

public enum ClusterAPIError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No agent of the cluster is connected to this hub.
    case unavailable(cluster: String)
    case timedOut(cluster: String)
    /// The stream failed, the answer was malformed or too large.
    case failed(cluster: String, reason: String)

    public var description: String {
        switch self {
        case .unavailable(let c): "cluster \(c) is unavailable: no agent of it is connected to this hub"
        case .timedOut(let c): "cluster \(c) did not answer in time"
        case .failed(let c, let r): "cluster \(c): \(r)"
        }
    }
}
