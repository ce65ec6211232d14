/// Limits of the Kubernetes authentication proxy (`/k8s/clusters/<id>/…`). Each is a `serve` option.
public struct KubernetesProxySettings: Sendable, Equatable {
    /// Request bodies are read whole before anything reaches the cluster (authorization needs the
    /// head only, but a client that stalls mid-body must not hold a stream to the API server).
    /// kube-apiserver refuses bodies above 3 MiB itself.
    public var maxRequestBodyBytes = 3 << 20
    /// Idle keep-alive streams kept per agent tunnel and worker for the next request.
    public var maxIdleUpstreamsPerAgent = 16
    /// A pooled stream unused this long is closed (below the API server's own idle timeouts).
    public var upstreamIdleTimeoutMilliseconds: UInt64 = 60_000
    /// Where audit lines go (a path or "-" for standard output); nil: the last 1,000 in memory only.
    public var auditLog: String?

    public init() {}
}
