// libFuzzer target for the agent's proxy environment: HTTPS_PROXY (ProxyServer.parse) and
// NO_PROXY (NoProxy), Agent/Sources/LariatAgent/ProxySettings.swift.
// Built by fuzz/run.sh from copies of the agent's pure files (ProxySettings.swift, IPAddress.swift,
// TargetPolicy.swift) and Sources/LariatHTTP/Base64.swift, with `import LariatHTTP` removed:
// the agent module itself pulls in libuv and the runtime.
//
// Input: up to three NUL-separated parts (an environment variable cannot hold NUL):
// HTTPS_PROXY, NO_PROXY, and a host to look up; the last byte is also the port's seed.
// Invariants:
//   1. ProxyServer.parse either fails or gives a non-empty host and a port in 1...65535;
//      the URL written back from the result (credentials percent-encoded, IPv6 in brackets)
//      parses to the same server;
//   2. neither the server's description nor the URL as errors quote it shows the password;
//   3. every NO_PROXY entry bypasses the host it was written for (the name and names below
//      it, the address or block), on its port; `*` bypasses everything; localhost always;
//   4. matching ignores ASCII case and trailing dots of the host;
//   5. ProxySettings.proxy(forHost:) is nil exactly when there is no proxy or NO_PROXY matches.

@_cdecl("LLVMFuzzerTestOneInput")
public func lariatFuzzProxy(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    let parts = bytes.split(separator: 0, maxSplits: 2, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    let proxyText = parts.first ?? ""
    let noProxyText = parts.count > 1 ? parts[1] : ""
    let host = parts.count > 2 ? parts[2] : "example.com"
    let port = Int(bytes.last ?? 0) * 257 % 65535 + 1

    checkProxyURL(proxyText)
    let noProxy = NoProxy(noProxyText)
    checkNoProxy(noProxy, host: host, port: port)

    var env = ["NO_PROXY": noProxyText]
    env["HTTPS_PROXY"] = proxyText
    if let settings = try? ProxySettings.fromEnvironment(env) {
        let direct = settings.httpsProxy == nil || settings.noProxy.bypassesProxy(host: host, port: port)
        guard (settings.proxy(forHost: host, port: port) == nil) == direct else {
            violated("proxy-for-host", "\(host):\(port) proxy \(String(describing: settings.proxy(forHost: host, port: port))), direct \(direct)")
        }
    }
    return 0
}

/// The password as written in `text`, if the URL has user info with one (Go's rules: the
/// authority ends at the first "/", user info at its last "@").
func writtenPassword(_ text: String) -> Substring? {
    var authority = Substring(text)
    if let scheme = authority.range(of: "://") { authority = authority[scheme.upperBound...] }
    if let slash = authority.firstIndex(of: "/") { authority = authority[..<slash] }
    guard let at = authority.lastIndex(of: "@") else { return nil }
    let userInfo = authority[..<at]
    guard let colon = userInfo.firstIndex(of: ":") else { return nil }
    return userInfo[userInfo.index(after: colon)...]
}

func percentEncode(_ s: String) -> String {
    var out = ""
    for b in s.utf8 {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            out.unicodeScalars.append(Unicode.Scalar(b))
        default:
            out += "%" + hex([b])
        }
    }
    return out
}

func checkProxyURL(_ text: String) {
    let server: ProxyServer
    do {
        server = try ProxyServer.parse(text)
    } catch {
        // Every error message quotes the URL through `redacted`. (The whole message is not
        // checked: its own text can complete a short password by chance, "@:-" + ": no proxy
        // host" containing "@:-:".) A password may also occur elsewhere in the URL by chance.
        let shown = ProxyServer.redacted(text)
        if let pw = writtenPassword(text), pw.utf8.count >= 4, shown.contains(pw),
           !text.replacingFirst(pw, with: "").contains(pw) {
            violated("error-hides-password", "\(error.description)")
        }
        return
    }
    guard !server.host.isEmpty, (1...65535).contains(server.port) else { violated("server-valid", "\(server)") }
    // The description must not depend on the password at all (a substring test would flag a
    // password that happens to span "user@host:port").
    var other = server
    other.password = server.password == nil ? nil : (server.password == "x" ? "y" : "x")
    guard other.description == server.description else {
        violated("description-hides-password", "\(server.description) vs \(other.description)")
    }
    var url = "http://"
    if let user = server.username {
        url += percentEncode(user)
        if let pw = server.password { url += ":" + percentEncode(pw) }
        url += "@"
    }
    url += (server.host.contains(":") ? "[\(server.host)]" : server.host) + ":\(server.port)"
    let again = try? ProxyServer.parse(url)
    guard again == server else { violated("url-round-trip", "\(text) → \(server) → \(url) → \(String(describing: again))") }
}

func checkNoProxy(_ noProxy: NoProxy, host: String, port: Int) {
    func bypass(_ h: String, _ p: Int) -> Bool { noProxy.bypassesProxy(host: h, port: p) }
    let plain = bypass(host, port)
    // Upper case and a trailing dot are the same name (not for IPv6 zone ids, kept as written).
    if !host.contains("%") {
        guard bypass(asciiUppercased(host), port) == plain, bypass(host + ".", port) == plain || host.hasSuffix("]") || host.contains(":") else {
            violated("host-normalised", "\(host): \(plain), upper \(bypass(asciiUppercased(host), port)), dot \(bypass(host + ".", port))")
        }
    }
    guard bypass("localhost", port), bypass("127.0.0.1", port), bypass("[::1]", port) else { violated("loopback-direct", "") }
    if noProxy.matchesEverything { guard plain else { violated("star", host) } }
    for entry in noProxy.entries {
        switch entry {
        case .block(let block, let p):
            let h = block.network.isIPv4 ? block.network.description : "[\(block.network)]"
            guard bypass(h, p ?? port) else { violated("entry-matches", "\(entry) does not bypass \(h):\(p ?? port)") }
        case .domain(let suffix, let apex, let p):
            guard bypass("x" + suffix, p ?? port) else { violated("entry-matches", "\(entry) does not bypass x\(suffix)") }
            if apex, IPAddress(String(suffix.dropFirst())) == nil {
                guard bypass(String(suffix.dropFirst()), p ?? port) else { violated("entry-matches", "\(entry) does not bypass its apex") }
            }
        }
    }
}

func asciiUppercased(_ s: String) -> String {
    String(decoding: s.utf8.map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 0x20 : $0 }, as: UTF8.self)
}

extension String {
    func replacingFirst(_ needle: Substring, with replacement: String) -> String {
        guard !needle.isEmpty, let r = range(of: needle) else { return self }
        return String(self[..<r.lowerBound]) + replacement + String(self[r.upperBound...])
    }
    /// First occurrence of `needle` (no Foundation here).
    func range(of needle: some StringProtocol) -> Range<Index>? {
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix(needle) { return i..<index(i, offsetBy: needle.count) }
            i = index(after: i)
        }
        return nil
    }
}

extension Substring {
    func range(of needle: String) -> Range<Index>? {
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix(needle) { return i..<index(i, offsetBy: needle.count) }
            i = index(after: i)
        }
        return nil
    }
}
