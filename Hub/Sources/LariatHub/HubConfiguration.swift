import LariatControl
import LariatTunnel
import LariatProtocol
import LariatRuntime

/// Everything `lariat-hub serve` can be told.
public struct HubConfiguration: Sendable {
    public var listenHost = "0.0.0.0"
    public var listenPort = 8443
    /// Holds the CA, the serving certificate, the cluster store and the admin token's digest.
    public var dataDirectory = DataFolder.defaultPath()
    /// Worker loops; accepted connections are spread across them.
    public var loops = LoopGroup.coreCount
    /// Extra DNS names / IPs for the serving certificate (localhost and 127.0.0.1 are always in).
    public var serverNames: [String] = []
    /// Static, unauthenticated forwards (`--forward`), for local testing: anyone who reaches the
    /// listener reaches the target. Forward objects (`/v3/forwards`) are the authorized kind.
    public var forwards: [ForwardSpec] = []
    /// How Forward objects' listeners, named ports and statuses are kept.
    public var forwardObjects = ForwardObjectSettings()
    /// Backpressure on accept for every forward listener: pending-connection bound, resume
    /// point, listen backlog.
    public var forwardAccept = ForwardAcceptLimits()
    /// How long a draining hub waits for open streams before it exits anyway.
    public var drainTimeoutMilliseconds: UInt64 = 10_000
    /// `/metrics`: who may read it, histogram buckets.
    public var metrics = MetricsSettings()
    public var session: SessionConfig = {
        var s = SessionConfig()
        s.software = LariatVersion.software("lariat-hub")  // announced in WELCOME
        return s
    }()
    /// Timeouts, connection caps and throttles for the HTTPS port.
    public var limits = FrontDoorLimits()
    /// When free heap memory is given back to the kernel (after connection floods).
    public var memoryTrim = MemoryTrimSettings()
    /// On first start with no clusters, create this one and print its token.
    public var bootstrapCluster: String? = "local"
    /// Where the control plane keeps its objects.
    public var store = StoreChoice.sqlite
    /// The URL agents and API clients reach this hub at (import commands carry it); derived
    /// from the listen address when not given.
    public var advertisedURL: String?
    /// The agent image import manifests deploy.
    public var agentImage = "ghcr.io/lariat/lariat-agent:0.1.0"
    /// Audit records of API requests as JSON lines to this file ("-": standard output); nil keeps
    /// the most recent in memory only.
    public var auditLog: String?
    /// The Kubernetes authentication proxy (`/k8s/clusters/<id>/…`): limits, pool, audit log.
    public var kubernetes = KubernetesProxySettings()
    /// Keeping each cluster's RBAC in step with the hub's role bindings (resync period, request
    /// timeout); nil turns it off.
    public var rbacSync: RBACSyncController.Settings? = RBACSyncController.Settings()
    /// How agents' health is sampled and scored (where new requests go).
    public var agentHealth = AgentHealth.Settings()
    /// Reading each cluster's version, nodes, pods and warning events into its status (the
    /// interval is `--stats-interval`; stale after three).
    public var clusterStats = ClusterStatsController.Settings()

    public var serverURL: String { serverURL(port: listenPort) }

    /// The advertised URL, or one made from the listen address and the port actually bound.
    public func serverURL(port: Int) -> String {
        if let advertisedURL { return advertisedURL }
        let host = listenHost == "0.0.0.0" || listenHost == "::" ? "127.0.0.1" : listenHost
        return "https://\(host.contains(":") ? "[\(host)]" : host):\(port)"
    }

    public init() {}
}

/// `LISTEN_HOST:PORT=CLUSTER/TARGET`: a hub-side TCP listener whose connections are carried to
/// TARGET through an agent of CLUSTER. TARGET is `HOST:PORT`, or any tunnel target form
/// (`tcp:HOST:PORT`, `k8s-api`, `svc:NS/NAME:PORT`).
public struct ForwardSpec: Sendable, Equatable, CustomStringConvertible {
    public var listenHost: String
    public var listenPort: Int
    public var cluster: String
    public var target: String
    /// Scheduling class of the connections in the tunnel (`,interactive` after the target).
    public var streamClass: StreamClass

    public init(listenHost: String, listenPort: Int, cluster: String, target: String, streamClass: StreamClass = .bulk) {
        self.listenHost = listenHost
        self.listenPort = listenPort
        self.cluster = cluster
        self.target = target
        self.streamClass = streamClass
    }

    /// `LISTEN_HOST:PORT=CLUSTER/TARGET[,interactive|,bulk]`.
    public init?(parsing text: String) {
        var s = Substring(text)
        var streamClass = StreamClass.bulk
        if let comma = s.lastIndex(of: ",") {
            switch s[s.index(after: comma)...] {
            case "interactive": streamClass = .interactive
            case "bulk": streamClass = .bulk
            default: return nil
            }
            s = s[..<comma]
        }
        guard let eq = s.firstIndex(of: "=") else { return nil }
        let listen = s[..<eq]
        let rest = s[s.index(after: eq)...]
        guard let slash = rest.firstIndex(of: "/") else { return nil }
        let cluster = String(rest[..<slash])
        var target = String(rest[rest.index(after: slash)...])
        // Port 0 is allowed for the listener (the kernel picks one).
        guard !cluster.isEmpty, let colon = listen.lastIndex(of: ":"),
              let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        let host = String(listen[..<colon])
        guard !host.isEmpty else { return nil }
        if TunnelTarget(target) == nil {
            guard TunnelTarget.hostPort(target) != nil else { return nil }
            target = "tcp:" + target
        }
        self.init(listenHost: host, listenPort: port, cluster: cluster, target: target, streamClass: streamClass)
    }

    public var description: String {
        "\(listenHost):\(listenPort)=\(cluster)/\(target)" + (streamClass == .interactive ? ",interactive" : "")
    }
}
