import LariatControl
import LariatHTTP

/// What a request through `/k8s/clusters/<cluster>/…` asks of the cluster, in the terms of
/// Kubernetes' `RequestInfoFactory` (k8s.io/apiserver/pkg/endpoints/request): the verb, API
/// group, resource and subresource, namespace and name that RBAC and the audit log speak of.
/// Computed from the path, method and query alone, before anything reaches the cluster.
struct KubernetesRequestInfo: Equatable {
    static let prefix = "/k8s/clusters/"

    /// The cluster's name from the URL.
    var cluster: String
    /// The path and query to send to the API server (the prefix removed; "/" at least).
    var upstreamTarget: String
    var upstreamPath: String
    var verb: String
    var isResourceRequest: Bool
    var apiGroup = ""
    var resource = ""
    var subresource = ""
    var namespace = ""
    var name = ""

    /// The subresources that make a request a stream session worth its own audit records.
    enum Session: String { case exec, attach, portforward }
    var session: Session? {
        guard resource == "pods" else { return nil }
        return Session(rawValue: subresource)
    }

    /// Splits `/k8s/clusters/<cluster>/<rest>?query`; nil when the target is not under the prefix
    /// or names no cluster.
    init?(method: String, target: String) {
        guard target.hasPrefix(Self.prefix) else { return nil }
        let afterPrefix = target.dropFirst(Self.prefix.count)
        let clusterEnd = afterPrefix.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? afterPrefix.endIndex
        cluster = String(afterPrefix[..<clusterEnd])
        guard !cluster.isEmpty else { return nil }
        var rest = String(afterPrefix[clusterEnd...])
        if !rest.hasPrefix("/") { rest = "/" + rest }
        upstreamTarget = rest
        let pathEnd = rest.firstIndex(of: "?") ?? rest.endIndex
        upstreamPath = String(rest[..<pathEnd])
        let query = pathEnd < rest.endIndex ? rest[rest.index(after: pathEnd)...] : ""
        verb = ""
        isResourceRequest = false
        classify(method: method, query: query)
    }

    private mutating func classify(method: String, query: Substring) {
        var parts = upstreamPath.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        let lowerMethod = method.lowercased()
        // Non-resource URLs (/version, /healthz, /openapi/v3, the discovery roots /api and
        // /apis, a group's version list) carry the method's name as their verb.
        let isAPIPrefix = parts.first == "api" || parts.first == "apis"
        let versionParts = parts.first == "api" ? 2 : 3  // "api", v  or  "apis", g, v
        guard isAPIPrefix, parts.count >= versionParts else {
            verb = lowerMethod
            return
        }
        if parts[0] == "api" {
            parts.removeFirst(2)  // "api", version
        } else {
            apiGroup = parts[1]
            parts.removeFirst(3)  // "apis", group, version
        }
        guard !parts.isEmpty else {
            // /api/v1 or /apis/g/v: discovery of one group version, a non-resource URL.
            apiGroup = ""
            verb = lowerMethod
            return
        }
        isResourceRequest = true
        var isWatchPath = false
        if parts[0] == "watch" {
            // The deprecated /watch/ paths.
            isWatchPath = true
            parts.removeFirst()
        }
        if parts.first == "namespaces", parts.count > 1 {
            namespace = parts[1]
            // namespaces/<ns>/<resource>…, unless the third part is a namespace's own subresource.
            if parts.count > 2, parts[2] != "status", parts[2] != "finalize" { parts.removeFirst(2) }
        }
        if !parts.isEmpty { resource = parts[0] }
        if parts.count > 1 { name = parts[1] }
        if parts.count > 2 { subresource = parts[2] }
        let params = Self.queryParameters(query)
        switch method {
        case "POST": verb = "create"
        case "GET", "HEAD": verb = "get"
        case "PUT": verb = "update"
        case "PATCH": verb = "patch"
        case "DELETE": verb = "delete"
        default: verb = lowerMethod
        }
        if name.isEmpty, verb == "get" {
            let watching = isWatchPath || Self.isTrue(params["watch"])
            verb = watching ? "watch" : "list"
        } else if isWatchPath {
            verb = "watch"
        }
        if name.isEmpty, verb == "delete" { verb = "deletecollection" }
        // A list or watch narrowed to one object by `fieldSelector=metadata.name=X` is about X.
        if (verb == "list" || verb == "watch"), let selector = params["fieldSelector"] {
            for term in selector.split(separator: ",") where term.hasPrefix("metadata.name=") {
                name = String(term.dropFirst("metadata.name=".count))
            }
        }
    }

    /// The RBAC question for this request (`resource/subresource` as RBAC writes it).
    var access: Access {
        guard isResourceRequest else { return Access.nonResource(verb: verb, path: upstreamPath, cluster: cluster) }
        var a = Access(verb: verb, apiGroup: apiGroup, resource: subresource.isEmpty ? resource : resource + "/" + subresource,
                       name: name.isEmpty ? nil : name, cluster: cluster, namespace: namespace.isEmpty ? nil : namespace)
        // A namespace's own object is in that namespace for project rules.
        if resource == "namespaces", namespace.isEmpty, !name.isEmpty { a.namespace = name }
        return a
    }

    /// A query flag as kube-apiserver reads it (Go's strconv.ParseBool).
    static func isTrue(_ value: String?) -> Bool {
        ["1", "t", "T", "true", "TRUE", "True"].contains(value ?? "")
    }

    /// `a=b&c=d` with percent-decoding; later duplicates win.
    static func queryParameters(_ query: Substring) -> [String: String] {
        var out: [String: String] = [:]
        for pair in query.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = percentDecoded(kv[0])
            out[key] = kv.count > 1 ? percentDecoded(kv[1]) : ""
        }
        return out
    }

    /// Every value of `name` in the query, in order (exec's repeated `command=`).
    static func queryValues(_ query: Substring, name: String) -> [String] {
        query.split(separator: "&").compactMap { pair in
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard percentDecoded(kv[0]) == name else { return nil }
            return kv.count > 1 ? percentDecoded(kv[1]) : ""
        }
    }

    /// A query key or value; a malformed escape is kept as written (Go's query parser drops the pair).
    static func percentDecoded(_ s: Substring) -> String {
        PercentEncoding.decode(s, plusIsSpace: true) ?? String(s)
    }
}
