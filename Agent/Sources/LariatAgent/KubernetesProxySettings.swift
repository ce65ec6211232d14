import LariatHTTP
import LariatRuntime

/// What `k8s-proxy` streams need: the agent's own credential for the API server, so the
/// cluster's credential never leaves the cluster. The hub sends requests with its users'
/// identities in `Impersonate-*` headers; the agent authenticates them with its ServiceAccount
/// token (which may only impersonate) over TLS verified against the cluster's CA.
public struct KubernetesProxySettings: Sendable {
    /// Where Kubernetes mounts a pod's ServiceAccount token and the cluster CA.
    public static let podTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    public static let podCAFile = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"

    /// `--k8s-token-file`: read at every new `k8s-proxy` stream, because kubelet rotates
    /// projected tokens in place (a token read once at start expires within the hour).
    public var tokenFile: String?
    /// `--k8s-ca-file`, kept for messages.
    public private(set) var caFile: String?
    /// The CA bundle of `caFile`, loaded once at start: the API server's chain must end in it,
    /// and its certificate must name the `--k8s-api` host (a DNS SAN, or an IP SAN for an IP).
    public private(set) var trust: TLSContext?
    /// Largest request head (start line and fields) the agent rewrites; a larger one is
    /// answered 431. Twice the hub's own limit: the hub adds the impersonation fields.
    public var maxRequestHeadBytes = 64 * 1024
    /// Most fields in one request head: a user in many groups gets one `Impersonate-Group`
    /// line per group, so this is well above the usual 100.
    public var maxRequestHeaderCount = 1024
    /// Request bytes held while an upgrade request waits for its answer (a client may not
    /// speak the new protocol before `101`, so this only bounds a misbehaving one).
    public var maxBytesAwaitingUpgrade = 64 * 1024
    /// Largest token accepted from `tokenFile` (ServiceAccount tokens are 1-2 KiB).
    public var maxTokenBytes = 16 * 1024

    public init() {}

    /// Loads the CA bundle at `path` (PEM, one or more certificates) for verifying the API
    /// server. Only these CAs are trusted, not the system store.
    public mutating func loadCA(from path: String) throws(ConfigurationError) {
        let text: String?
        do { text = try FileIO.readIfExists(path) } catch { throw ConfigurationError("--k8s-ca-file: \(error)") }
        guard let text else { throw ConfigurationError("--k8s-ca-file \(path): no such file") }
        do {
            trust = try TLSContext.client(trustedCAPEM: text, verifyHostname: true)
        } catch {
            throw ConfigurationError("--k8s-ca-file \(path): not a PEM CA certificate: \(error)")
        }
        caFile = path
    }

    var parserLimits: HTTPParserLimits {
        HTTPParserLimits(maxHeadSize: maxRequestHeadBytes, maxHeaderCount: maxRequestHeaderCount)
    }

    /// Why `k8s-proxy` cannot be served, naming the missing flag; nil when it can.
    func missingSetting(kubernetesAPI: HostPort?) -> String? {
        var missing: [String] = []
        if kubernetesAPI == nil { missing.append("--k8s-api (LARIAT_K8S_API)") }
        if trust == nil { missing.append("--k8s-ca-file (LARIAT_K8S_CA_FILE)") }
        if tokenFile == nil { missing.append("--k8s-token-file (LARIAT_K8S_TOKEN_FILE)") }
        guard !missing.isEmpty else { return nil }
        return "k8s-proxy is not configured on this agent: set \(missing.joined(separator: " and ")) (in a pod they default to the API service and the mounted ServiceAccount)"
    }

    /// The token in `path`, without surrounding whitespace, or why it is unusable. A token
    /// with bytes outside visible ASCII could not travel in a header, so it is refused whole.
    static func readToken(_ path: String, maxBytes: Int) -> Result<String, ConfigurationError> {
        let text: String?
        do { text = try FileIO.readIfExists(path) } catch { return .failure(ConfigurationError("cannot read the API server token: \(error)")) }
        guard let text else { return .failure(ConfigurationError("cannot read the API server token: \(path) does not exist")) }
        let token = text.trimmingASCIIWhitespace()
        guard !token.isEmpty else { return .failure(ConfigurationError("the API server token file \(path) is empty")) }
        guard token.utf8.count <= maxBytes else {
            return .failure(ConfigurationError("the API server token in \(path) is larger than \(maxBytes) bytes"))
        }
        guard token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            return .failure(ConfigurationError("the API server token in \(path) holds bytes a bearer token cannot have"))
        }
        return .success(token)
    }
}
