import LariatControl
import LariatHTTP

/// The request head the API server receives for a user's request: the `/k8s/clusters/<id>`
/// prefix removed, every credential and impersonation header the user sent dropped, and the
/// caller's identity set as impersonation (the agent adds its own service account's bearer,
/// which may do nothing but impersonate).
///
/// Dropped: `Authorization`, `Proxy-Authorization`, every `Impersonate-*` (a user must not
/// choose whom the agent impersonates), hop-by-hop fields (those named in `Connection`,
/// `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`) and the body framing, which the proxy
/// sets itself (`Content-Length` of the buffered body). An upgrade keeps `Connection: Upgrade`
/// and `Upgrade`, which is what makes it one.
enum UpstreamRequestHead {
    static let extraUsername = "Impersonate-Extra-Username"
    static let extraPrincipal = "Impersonate-Extra-Principalid"
    static let extraToken = "Impersonate-Extra-Requesttokenid"

    /// `principal` nil: no impersonation (a request straight to a Service).
    static func make(from head: HTTPRequestHead, target: String, principal: Principal?, clientAddress: String,
                     bodyLength: Int) -> HTTPRequestHead {
        let upgrade = head.isUpgradeRequest
        let named = Set(head.headers.tokens(name: "Connection").map { $0.lowercased() })
        var out = HTTPHeaders()
        for field in head.headers {
            let lower = field.name.lowercased()
            if lower == "authorization" || lower == "proxy-authorization" || lower.hasPrefix("impersonate-") { continue }
            if lower == "connection" || lower == "keep-alive" || lower == "proxy-connection" || lower == "te"
                || lower == "trailer" || lower == "transfer-encoding" || lower == "content-length"
                || lower == "x-forwarded-for" { continue }
            if named.contains(lower), !(upgrade && lower == "upgrade") { continue }
            out.add(name: field.name, value: field.value)
        }
        if upgrade {
            out.add(name: "Connection", value: "Upgrade")
        } else if bodyLength > 0 || head.method == "POST" || head.method == "PUT" || head.method == "PATCH" {
            out.add(name: "Content-Length", value: String(bodyLength))
        }
        if let principal {
            out.add(name: "Impersonate-User", value: principal.name)
            for group in principal.groups { out.add(name: "Impersonate-Group", value: group) }
            out.add(name: extraUsername, value: principal.username)
            out.add(name: extraPrincipal, value: "local://" + principal.name)
            if let token = principal.tokenName { out.add(name: extraToken, value: token) }
        }
        out.add(name: "X-Forwarded-For", value: clientAddress)
        return HTTPRequestHead(method: head.method, target: target, version: .http1_1, headers: out)
    }
}
