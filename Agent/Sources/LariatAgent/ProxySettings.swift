import LariatHTTP

/// An HTTP proxy the agent tunnels through with CONNECT (`HTTPS_PROXY=http://[user:pass@]host:port`).
public struct ProxyServer: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var username: String?
    public var password: String?

    public init(host: String, port: Int, username: String? = nil, password: String? = nil) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
    }

    /// `Proxy-Authorization` value, when the URL carried credentials.
    public var authorization: String? {
        guard let username else { return nil }
        return "Basic " + Base64.encode(Array("\(username):\(password ?? "")".utf8))
    }

    /// For logs: never prints the password.
    public var description: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return username == nil ? "http://\(h):\(port)" : "http://\(username!):***@\(h):\(port)"
    }

    /// Parses a proxy URL the way Go's `http.ProxyFromEnvironment` does: a missing scheme
    /// means http, the default port is 80, user info may be percent-encoded.
    public static func parse(_ text: String) throws(ProxyConfigurationError) -> ProxyServer {
        var rest = Substring(text.trimmingASCIIWhitespace())
        guard !rest.isEmpty else { throw .init("empty proxy URL") }
        if let schemeEnd = rest.rangeOfSchemeSeparator() {
            let scheme = rest[..<schemeEnd.lowerBound].lowercased()
            switch scheme {
            case "http": break
            case "https": throw .init("\(redacted(text)): https:// proxies (TLS to the proxy) are not supported; use http://")
            default: throw .init("\(redacted(text)): unsupported proxy scheme \"\(scheme)\" (only http:// CONNECT proxies are supported)")
            }
            rest = rest[schemeEnd.upperBound...]
        }
        // Drop any path ("http://proxy:3128/").
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        var username: String?, password: String?
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = userInfo.firstIndex(of: ":") {
                username = percentDecode(userInfo[..<colon])
                password = percentDecode(userInfo[userInfo.index(after: colon)...])
            } else {
                username = percentDecode(userInfo)
            }
            guard username != nil, password != nil || !userInfo.contains(":") else {
                throw .init("\(redacted(text)): bad percent-encoding in the credentials")
            }
        }
        let (host, portText) = splitHostAndPort(rest)
        guard !host.isEmpty else { throw .init("\(redacted(text)): no proxy host") }
        // Found by fuzz/FuzzProxy.swift: splitHostAndPort ignores what follows "]" unless it is
        // ":port" ("[::1]x") and returns an unbracketed authority with a stray "]" whole
        // ("fd00::2]:8080"); both are malformed URLs, so refuse them instead of dialling garbage.
        // Host names are ASCII (IDNs travel as punycode); a non-ASCII byte, a space or a control
        // is a typo or an attack, and a combining mark even fuses with the "/" before it.
        let afterBracket = rest.hasPrefix("[") ? rest.firstIndex(of: "]").map { rest[rest.index(after: $0)...] } : nil
        guard afterBracket.map({ $0.isEmpty || $0.hasPrefix(":") }) ?? true,
              host.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "[") && $0 != UInt8(ascii: "]") })
        else { throw .init("\(redacted(text)): malformed proxy host") }
        var port = 80
        if let portText {
            guard let p = Int(portText), (1...65535).contains(p) else { throw .init("\(redacted(text)): bad port \"\(portText)\"") }
            port = p
        }
        return ProxyServer(host: String(host), port: port, username: username, password: password)
    }

    static func redacted(_ url: String) -> String {
        guard let at = url.lastIndex(of: "@") else { return url }
        let prefixEnd = url[...].rangeOfSchemeSeparator()?.upperBound ?? url.startIndex
        return String(url[..<prefixEnd]) + "***" + String(url[at...])
    }

    static func percentDecode<S: StringProtocol>(_ s: S) -> String? { PercentEncoding.decode(s) }
}

public struct ProxyConfigurationError: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// `NO_PROXY`: hosts reached directly, with Go's `httpproxy` semantics (what Rancher agents use):
/// - `*` alone: no proxy for anything;
/// - `example.com`: that host and every name below it; `.example.com` / `*.example.com`:
///   only names below it;
/// - `10.0.0.0/8`, `fd00::/8`: literal IP hosts inside the block; `10.1.2.3`: that IP;
/// - any entry may end in `:PORT`, which must then match too (`[::1]:8443` for IPv6);
/// - localhost and loopback addresses are never proxied.
/// Names are not resolved: an IP entry matches only a host given as that IP.
public struct NoProxy: Sendable, Equatable {
    public enum Entry: Sendable, Equatable {
        case block(CIDR, port: Int?)
        /// `host` has a leading dot; `includesApex` when the entry was written without one.
        case domain(String, includesApex: Bool, port: Int?)
    }

    public var matchesEverything = false
    public var entries: [Entry] = []

    public init() {}

    public init(_ text: String) {
        for raw in text.split(separator: ",") {
            let item = raw.trimmingASCIIWhitespace().lowercased()
            if item.isEmpty { continue }
            if item == "*" { matchesEverything = true; continue }
            if let block = CIDR(item), item.contains("/") {
                entries.append(.block(block, port: nil))
                continue
            }
            var (host, portText) = splitHostAndPort(Substring(item))
            var port: Int?
            if let portText {
                // Go ignores an entry with a bad port rather than failing: do the same.
                guard let p = Int(portText), (1...65535).contains(p) else { continue }
                port = p
            }
            if let ip = IPAddress(String(host)) {
                entries.append(.block(CIDR(network: ip, prefixLength: ip.bytes.count * 8), port: port))
                continue
            }
            if host.hasPrefix("*.") { host = host.dropFirst() }
            while host.hasSuffix(".") { host = host.dropLast() }
            guard !host.isEmpty, host != "." else { continue }
            if host.hasPrefix(".") {
                entries.append(.domain(String(host), includesApex: false, port: port))
            } else {
                entries.append(.domain("." + host, includesApex: true, port: port))
            }
        }
    }

    /// True when `host:port` must be reached directly.
    public func bypassesProxy(host: String, port: Int) -> Bool {
        var name = host.lowercased()
        if name.hasPrefix("["), name.hasSuffix("]") { name = String(name.dropFirst().dropLast()) }
        while name.hasSuffix(".") { name.removeLast() }
        if name == "localhost" || name.hasSuffix(".localhost") { return true }
        let ip = IPAddress(name)
        if let ip, ip.isIPv4 ? ip.bytes[0] == 127 : ip.bytes == [UInt8](repeating: 0, count: 15) + [1] { return true }
        if matchesEverything { return true }
        for entry in entries {
            switch entry {
            case .block(let block, let p):
                if let ip, block.contains(ip), p == nil || p == port { return true }
            case .domain(let suffix, let includesApex, let p):
                guard ip == nil, p == nil || p == port else { continue }
                if name.hasSuffix(suffix) || (includesApex && name == suffix.dropFirst()) { return true }
            }
        }
        return false
    }
}

/// The proxy environment: `HTTPS_PROXY`/`https_proxy` and `NO_PROXY`/`no_proxy` (upper case
/// first, as Go does). The hub is always https, so `HTTP_PROXY` does not apply.
public struct ProxySettings: Sendable, Equatable {
    public var httpsProxy: ProxyServer?
    public var noProxy: NoProxy

    public init(httpsProxy: ProxyServer? = nil, noProxy: NoProxy = NoProxy()) {
        self.httpsProxy = httpsProxy
        self.noProxy = noProxy
    }

    public static func fromEnvironment(_ env: [String: String]) throws(ProxyConfigurationError) -> ProxySettings {
        func value(_ names: String...) -> String? {
            for name in names { if let v = env[name], !v.trimmingASCIIWhitespace().isEmpty { return v } }
            return nil
        }
        var settings = ProxySettings()
        if let proxy = value("HTTPS_PROXY", "https_proxy") {
            do throws(ProxyConfigurationError) {
                settings.httpsProxy = try ProxyServer.parse(proxy)
            } catch {
                throw ProxyConfigurationError("HTTPS_PROXY: \(error.description)")
            }
        }
        if let noProxy = value("NO_PROXY", "no_proxy") { settings.noProxy = NoProxy(noProxy) }
        return settings
    }

    /// The proxy to use for `host:port`, or nil to connect directly.
    public func proxy(forHost host: String, port: Int) -> ProxyServer? {
        guard let httpsProxy, !noProxy.bypassesProxy(host: host, port: port) else { return nil }
        return httpsProxy
    }
}
