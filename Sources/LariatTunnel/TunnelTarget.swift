/// What an OPEN asks the agent to reach. The protocol treats targets as opaque strings; these
/// are the forms Lariat uses (PROTOCOL.md §5.2).
public enum TunnelTarget: Equatable, Sendable, CustomStringConvertible {
    /// "tcp:HOST:PORT" (IPv6 hosts in brackets: "tcp:[::1]:443").
    case tcp(host: String, port: Int)
    /// "k8s-api": a TCP connection to the cluster's API server, as the agent knows it (TLS end to
    /// end, with the client's own credentials).
    case kubernetesAPI
    /// "k8s-proxy": HTTP/1.1 requests for the cluster's API server, which the agent sends over
    /// TLS with its own credential (any Authorization in a request is replaced).
    case kubernetesProxy
    /// "svc:NAMESPACE/NAME:PORT": an in-cluster service.
    case service(namespace: String, name: String, port: Int)
    /// "lariat:discard": the agent drops what it receives (`lariat-hub bench`, upload).
    case discard
    /// "lariat:source:BYTES[:json]": the agent sends BYTES bytes, random or JSON-like (download).
    case source(bytes: Int, compressible: Bool)

    public init?(_ s: String) {
        if s == "lariat:discard" { self = .discard; return }
        if s.hasPrefix("lariat:source:") {
            let parts = s.dropFirst("lariat:source:".count).split(separator: ":")
            guard let first = parts.first, let n = Int(first), n >= 0, parts.count <= 2,
                  parts.count == 1 || parts[1] == "json" else { return nil }
            self = .source(bytes: n, compressible: parts.count == 2)
            return
        }
        if s == "k8s-api" { self = .kubernetesAPI; return }
        if s == "k8s-proxy" { self = .kubernetesProxy; return }
        if s.hasPrefix("tcp:") {
            guard let (host, port) = Self.hostPort(s.dropFirst(4)) else { return nil }
            self = .tcp(host: host, port: port)
            return
        }
        if s.hasPrefix("svc:") {
            let rest = s.dropFirst(4)
            guard let slash = rest.firstIndex(of: "/"),
                  let (name, port) = Self.hostPort(rest[rest.index(after: slash)...]) else { return nil }
            let ns = String(rest[..<slash])
            guard !ns.isEmpty else { return nil }
            self = .service(namespace: ns, name: name, port: port)
            return
        }
        return nil
    }

    public var description: String {
        switch self {
        case .tcp(let host, let port): host.contains(":") ? "tcp:[\(host)]:\(port)" : "tcp:\(host):\(port)"
        case .kubernetesAPI: "k8s-api"
        case .kubernetesProxy: "k8s-proxy"
        case .service(let ns, let name, let port): "svc:\(ns)/\(name):\(port)"
        case .discard: "lariat:discard"
        case .source(let n, let json): "lariat:source:\(n)\(json ? ":json" : "")"
        }
    }

    /// Parses "HOST:PORT" or "[V6]:PORT".
    public static func hostPort<S: StringProtocol>(_ s: S) -> (String, Int)? {
        let str = String(s)
        let host: String
        let portPart: Substring
        if str.hasPrefix("[") {
            guard let close = str.firstIndex(of: "]") else { return nil }
            host = String(str[str.index(after: str.startIndex)..<close])
            // Brackets hold an IPv6 literal only ("[db]:80" is not another spelling of "db:80").
            guard host.contains(":") else { return nil }
            let after = str[str.index(after: close)...]
            guard after.hasPrefix(":") else { return nil }
            portPart = after.dropFirst()
        } else {
            guard let colon = str.lastIndex(of: ":") else { return nil }
            host = String(str[..<colon])
            portPart = str[str.index(after: colon)...]
            guard !host.contains(":") else { return nil }
        }
        guard !host.isEmpty, let port = Int(portPart), (1...65535).contains(port) else { return nil }
        return (host, port)
    }
}
