import Foundation
import LariatHTTP

/// The magic proxy: `/k8s/clusters/<c>/api/v1/namespaces/<ns>/services/[<scheme>:]<name>[:<port>]/proxy/<path>`,
/// Kubernetes' own URL shape for reaching a Service. The hub serves it the short way when it
/// can — the cluster agent dials the Service's ClusterIP and port (read from the API and
/// cached) and the request goes straight to the Service — and otherwise through the API
/// server's own service proxy (HTTPS backends, headless Services, a lookup or dial that fails).
/// Either way redirects are rewritten so links keep working under the hub's prefix.
struct ServiceProxyRoute {
    var scheme: String?
    var name: String
    var port: String?
    var namespace: String
    var cluster: String
    /// `/k8s/clusters/<c>/api/v1/namespaces/<ns>/services/<field>/proxy`: what a Service-relative
    /// absolute path is prefixed with.
    var base: String
    /// The path and query after `/proxy` ("/" at least).
    var rest: String

    init?(_ info: KubernetesRequestInfo) {
        guard info.isResourceRequest, info.apiGroup.isEmpty, info.resource == "services", info.subresource == "proxy",
              !info.namespace.isEmpty, !info.name.isEmpty else { return nil }
        let parts = info.name.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        switch parts.count {
        case 1: name = parts[0]
        case 2: name = parts[0]; port = parts[1].isEmpty ? nil : parts[1]
        case 3: scheme = parts[0].isEmpty ? nil : parts[0]; name = parts[1]; port = parts[2].isEmpty ? nil : parts[2]
        default: return nil
        }
        guard !name.isEmpty else { return nil }
        namespace = info.namespace
        cluster = info.cluster
        let marker = "/services/" + info.name + "/proxy"
        let target = info.upstreamTarget
        guard let r = target.range(of: marker) else { return nil }
        base = KubernetesRequestInfo.prefix + cluster + String(target[..<r.upperBound])
        var after = String(target[r.upperBound...])
        if !after.hasPrefix("/") { after = "/" + after }
        rest = after
    }

    /// What the direct path dials, if the Service allows it: `tcp:CLUSTERIP:PORT`.
    func directTarget(_ service: ServiceFacts) -> String? {
        guard scheme == nil || scheme == "http", let ip = service.clusterIP, ip != "None", !ip.isEmpty else { return nil }
        let chosen: ServiceFacts.Port?
        if let port {
            chosen = service.ports.first { $0.name == port || String($0.port) == port }
        } else {
            chosen = service.ports.first
        }
        guard let chosen else { return nil }
        return ip.contains(":") ? "tcp:[\(ip)]:\(chosen.port)" : "tcp:\(ip):\(chosen.port)"
    }

    /// Host names that mean the Service in an absolute `Location` (rewritten to the hub's prefix).
    func serviceHosts(_ service: ServiceFacts?) -> Set<String> {
        var hosts: Set<String> = [name, "\(name).\(namespace)", "\(name).\(namespace).svc", "\(name).\(namespace).svc.cluster.local"]
        if let ip = service?.clusterIP { hosts.insert(ip) }
        return hosts
    }

    /// A `Location` as the client must see it: Service-relative and Service-absolute locations
    /// under the hub's prefix for this Service; the API server's own rewriting
    /// (`/api/v1/namespaces/…/proxy/…`) under the cluster's prefix; anything else untouched.
    func rewriteLocation(_ location: String, hosts: Set<String>) -> String {
        if location.hasPrefix("/") {
            if location.hasPrefix("/api/") || location.hasPrefix("/apis/") { return KubernetesRequestInfo.prefix + cluster + location }
            if location.hasPrefix(KubernetesRequestInfo.prefix) { return location }
            return base + location
        }
        for scheme in ["http://", "https://"] where location.lowercased().hasPrefix(scheme) {
            let afterScheme = location.dropFirst(scheme.count)
            let authorityEnd = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? afterScheme.endIndex
            let authority = afterScheme[..<authorityEnd]
            var host = String(authority)
            if host.hasPrefix("["), let close = host.firstIndex(of: "]") {
                host = String(host[host.index(after: host.startIndex)..<close])
            } else if let colon = host.lastIndex(of: ":") {
                host = String(host[..<colon])
            }
            guard hosts.contains(host.lowercased()) else { return location }
            let path = afterScheme[authorityEnd...]
            return base + (path.hasPrefix("/") ? String(path) : "/" + path)
        }
        return location
    }

    /// The head sent straight to the Service: its own path, its own Host, no credential or
    /// impersonation header of the user's (as kube-apiserver's service proxy strips them).
    func directHead(from head: HTTPRequestHead, clientAddress: String, bodyLength: Int) -> HTTPRequestHead {
        var h = UpstreamRequestHead.make(from: head, target: rest, principal: nil, clientAddress: clientAddress,
                                         bodyLength: bodyLength)
        h.headers.replaceOrAdd(name: "Host", value: "\(name).\(namespace).svc")
        h.headers.replaceOrAdd(name: "X-Forwarded-Proto", value: "https")
        h.headers.replaceOrAdd(name: "X-Forwarded-Prefix", value: base)
        return h
    }
}

/// What the magic proxy needs of a Service (from `GET /api/v1/namespaces/<ns>/services/<name>`).
struct ServiceFacts: Sendable {
    struct Port: Sendable { var name: String?; var port: Int }
    var clusterIP: String?
    var ports: [Port]

    init?(json: Data) {
        guard let object = try? JSONSerialization.jsonObject(with: json) as? [String: Any],
              let spec = object["spec"] as? [String: Any] else { return nil }
        clusterIP = spec["clusterIP"] as? String
        ports = (spec["ports"] as? [[String: Any]] ?? []).compactMap { p in
            guard let port = p["port"] as? Int else { return nil }
            return Port(name: p["name"] as? String, port: port)
        }
    }
}
