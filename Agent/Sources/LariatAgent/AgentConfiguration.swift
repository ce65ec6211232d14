import LariatProtocol
import LariatRuntime

public enum AgentVersion {
    public static let version = LariatVersion.version
    public static let software = LariatVersion.software("lariat-agent")
}

/// A `host:port` the agent dials (the Kubernetes API server).
public struct HostPort: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// "HOST:PORT", "[V6]:PORT", or a URL "https://HOST[:PORT]" (default port 443).
    public static func parse(_ text: String) -> HostPort? {
        var rest = Substring(text.trimmingASCIIWhitespace())
        var defaultPort: Int?
        if let schemeEnd = rest.rangeOfSchemeSeparator() {
            let scheme = rest[..<schemeEnd.lowerBound].lowercased()
            defaultPort = scheme == "https" ? 443 : scheme == "http" ? 80 : nil
            guard defaultPort != nil else { return nil }
            rest = rest[schemeEnd.upperBound...]
            if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        }
        let (host, portText) = splitHostAndPort(rest)
        // The same host check as every target's, so a bad value fails at start, not per stream.
        guard case .success = TargetHost.parse(String(host)) else { return nil }
        if let portText {
            guard let p = Int(portText), (1...65535).contains(p) else { return nil }
            return HostPort(host: String(host), port: p)
        }
        guard let defaultPort else { return nil }
        return HostPort(host: String(host), port: defaultPort)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Everything the agent needs; built by the CLI from flags and environment.
public struct AgentConfiguration: Sendable {
    public var hub: HubEndpoint
    public var token: String
    /// Lowercase SHA-256 hex of the hub's CA PEM (as served at /cacerts), or nil with
    /// `insecureSkipCACheck`.
    public var caChecksum: String?
    /// Trust whatever CA the hub serves (trust on first use, per connection). For labs only.
    public var insecureSkipCACheck = false
    public var cluster: String
    public var agentID: String
    public var role: AgentRole = .clusterAgent
    /// Trade a registration token (`crt-…`) for this agent's own credential before connecting,
    /// and connect with that (`--register`; implied by `credentialFile`). Off: the token itself
    /// goes in HELLO, as before registration existed.
    public var register = false
    /// Where the credential from registration is kept (0600) and found at the next start; nil:
    /// register again at every start.
    public var credentialFile: String?
    public var policy = TargetPolicy()
    /// Where `k8s-api` streams go (plain TCP; TLS to the API server is end to end) and where
    /// `k8s-proxy` streams go (TLS from the agent, with the agent's credential). Configured
    /// by the operator, so only `--deny` applies to it: it may be loopback (`--k8s-api
    /// 127.0.0.1:6443` outside a pod) without an `--allow`.
    public var kubernetesAPI: HostPort?
    /// The agent's own credential for `k8s-proxy` streams to `kubernetesAPI` (token file and
    /// cluster CA); without them `k8s-proxy` is refused naming the missing flag.
    public var kubernetesProxy = KubernetesProxySettings()
    /// `svc:NS/NAME:PORT` dials `NAME.NS.<serviceDomain>:PORT`.
    public var serviceDomain = "svc.cluster.local"
    public var proxy = ProxySettings()
    public var session = SessionConfig()
    /// Per target dial: name resolution plus connection attempts.
    public var dialTimeoutMilliseconds: UInt64 = 10_000
    /// Per hub connection: TCP, proxy, TLS and the HTTP exchange.
    public var hubTimeoutMilliseconds: UInt64 = 20_000
    /// After SIGTERM: how long open streams get to finish.
    public var shutdownGraceMilliseconds: UInt64 = 10_000
    /// A session that stayed up this long resets the reconnect back-off.
    public var stableSessionMilliseconds: UInt64 = 10_000
    public var backoffBaseMilliseconds: UInt64 = 500
    public var backoffCapMilliseconds: UInt64 = 30_000

    public init(hub: HubEndpoint, token: String, caChecksum: String?, cluster: String, agentID: String) {
        self.hub = hub
        self.token = token
        self.caChecksum = caChecksum
        self.cluster = cluster
        self.agentID = agentID
    }

    /// Whether the agent registers before connecting: asked to, and holding a registration token.
    public var registers: Bool {
        (register || credentialFile != nil) && AgentRegistration.isRegistrationToken(token)
    }

    /// The credential kept in `credentialFile` from an earlier registration, if any.
    public func storedCredential() throws(ConfigurationError) -> String? {
        guard let credentialFile else { return nil }
        return try AgentRegistration.loadCredential(credentialFile)
    }

    /// Validates a `--ca-checksum`: 64 hex digits (a "sha256:" prefix is tolerated).
    public static func normalizeChecksum(_ text: String) throws(ConfigurationError) -> String {
        var s = text.trimmingASCIIWhitespace().lowercased()
        if s.hasPrefix("sha256:") { s.removeFirst(7) }
        guard s.utf8.count == 64, s.allSatisfy(\.isHexDigit) else {
            throw ConfigurationError("--ca-checksum must be the SHA-256 of the hub's CA certificate as 64 hex digits (got \"\(text)\")")
        }
        return s
    }
}
