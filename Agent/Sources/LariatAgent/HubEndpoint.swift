import LariatHTTP
import LariatRuntime

/// Where the hub is: `--server https://HOST[:PORT][/PREFIX]`.
public struct HubEndpoint: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    /// Path prefix before `/cacerts` and `/v1/connect` (empty, or "/lariat" behind an ingress path).
    public var pathPrefix: String

    public init(host: String, port: Int, pathPrefix: String = "") {
        self.host = host
        self.port = port
        self.pathPrefix = pathPrefix
    }

    public static func parse(_ text: String) throws(ConfigurationError) -> HubEndpoint {
        var rest = Substring(text.trimmingASCIIWhitespace())
        guard let schemeEnd = rest.rangeOfSchemeSeparator() else {
            throw ConfigurationError("--server \"\(text)\": must be an https:// URL, e.g. https://hub.example.com:8443")
        }
        guard rest[..<schemeEnd.lowerBound].lowercased() == "https" else {
            throw ConfigurationError("--server \"\(text)\": the hub is only reachable over https://")
        }
        rest = rest[schemeEnd.upperBound...]
        var path = ""
        if let slash = rest.firstIndex(of: "/") {
            path = String(rest[slash...])
            rest = rest[..<slash]
        }
        while path.hasSuffix("/") { path.removeLast() }
        guard !rest.contains("@") else { throw ConfigurationError("--server \"\(text)\": credentials in the URL are not supported; use --token") }
        let (host, portText) = splitHostAndPort(rest)
        guard !host.isEmpty, !host.contains("/") else { throw ConfigurationError("--server \"\(text)\": no host") }
        var port = 443
        if let portText {
            guard let p = Int(portText), (1...65535).contains(p) else { throw ConfigurationError("--server \"\(text)\": bad port \"\(portText)\"") }
            port = p
        }
        return HubEndpoint(host: String(host), port: port, pathPrefix: path)
    }

    /// "host:port" with IPv6 in brackets: the Host header and the CONNECT target.
    public var authority: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    public var description: String { "https://\(authority)\(pathPrefix)" }

    func path(_ p: String) -> String { pathPrefix + p }
}

public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Why one attempt to reach the hub failed. The description is the log line's cause.
enum HubDialError: Error, CustomStringConvertible {
    case connect(what: String, UVError)
    case proxyRefused(statusLine: String, body: String)
    case proxyProtocol(String)
    case tls(TLSError)
    case stream(StreamError, phase: String)
    case httpStatus(request: String, status: Int, reason: String, body: String)
    case webSocket(WebSocketHandshakeError)
    case httpParse(HTTPParseError, phase: String)
    case closedEarly(phase: String)
    case timeout(phase: String, milliseconds: UInt64)
    case badCA(String)
    case cancelled

    var isCertificateVerification: Bool {
        switch self {
        case .tls(let e) where e.kind == .certificateVerification: true
        case .stream(.tls(let e), _) where e.kind == .certificateVerification: true
        default: false
        }
    }

    var description: String {
        switch self {
        case .connect(let what, let e): "cannot connect to \(what): \(e.name) (\(e.message))"
        case .proxyRefused(let line, let body): "proxy refused CONNECT: \(line)" + (body.isEmpty ? "" : ": \(body)")
        case .proxyProtocol(let why): "proxy: \(why)"
        case .tls(let e): "TLS with the hub failed: \(e)"
        case .stream(let e, let phase): "connection lost during \(phase): \(e)"
        case .httpStatus(let request, let status, let reason, let body):
            "hub answered \(request) with \(status) \(reason)" + (body.isEmpty ? "" : ": \(body)")
        case .webSocket(let e): "bad WebSocket upgrade response: \(e)"
        case .httpParse(let e, let phase): "malformed HTTP response during \(phase): \(e)"
        case .closedEarly(let phase): "the hub closed the connection during \(phase)"
        case .timeout(let phase, let ms): "timed out after \(ms) ms during \(phase)"
        case .badCA(let why): "the CA served at /cacerts is unusable: \(why)"
        case .cancelled: "cancelled"
        }
    }
}

/// Text of a response body for a log line: printable, one line, bounded.
func printableBody(_ bytes: [UInt8], limit: Int = 512) -> String {
    var text = String(decoding: bytes.prefix(limit), as: UTF8.self)
    text = String(text.map { $0 == "\n" || $0 == "\r" || $0 == "\t" ? " " : $0 }.filter { !$0.isASCII || $0.asciiValue! >= 0x20 })
    text = text.trimmingASCIIWhitespace()
    if bytes.count > limit { text += "…" }
    return text
}
