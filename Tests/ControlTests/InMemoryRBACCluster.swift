import Foundation
import LariatControl
import LariatStore
import Synchronization

/// A cluster's RBAC API in memory, as `ClusterAPIClient` sees it: ClusterRoles,
/// ClusterRoleBindings, Roles and RoleBindings under `/apis/rbac.authorization.k8s.io/v1`, with
/// kube-apiserver's answers where the sync controller depends on them — GET of one object or a
/// list (all namespaces or one, `labelSelector`, items without `kind`), POST (409 when the name
/// is taken, 404 when the namespace does not exist), PUT (409 on a stale resourceVersion, 422
/// when the roleRef changes), DELETE (404 when missing). Objects are JSON dictionaries, so a test
/// can edit one "by hand" the way `kubectl edit` would.
final class InMemoryRBACCluster: ClusterAPIClient {
    static let resources = ["clusterroles", "clusterrolebindings", "roles", "rolebindings"]
    static let namespaced: Set<String> = ["roles", "rolebindings"]
    static let kinds = ["clusterroles": "ClusterRole", "clusterrolebindings": "ClusterRoleBinding", "roles": "Role",
                        "rolebindings": "RoleBinding"]

    struct Key: Hashable, Comparable, CustomStringConvertible {
        var resource: String
        var namespace: String
        var name: String
        static func < (a: Key, b: Key) -> Bool { (a.resource, a.namespace, a.name) < (b.resource, b.namespace, b.name) }
        var description: String { "\(resource)/\(namespace.isEmpty ? "" : namespace + "/")\(name)" }
    }

    private struct State {
        var objects: [Key: Data] = [:]
        var namespaces: Set<String> = ["default", "kube-system"]
        var revision = 100
        var available = true
        var requests: [String] = []
        /// Answer the next this-many writes (POST, PUT, DELETE) with 500.
        var failWrites = 0
    }
    private let state = Mutex(State())

    // MARK: What tests set and read

    var available: Bool {
        get { state.withLock { $0.available } }
        set { state.withLock { $0.available = newValue } }
    }
    func addNamespace(_ ns: String) { state.withLock { _ = $0.namespaces.insert(ns) } }
    func failNextWrites(_ n: Int) { state.withLock { $0.failWrites = n } }

    /// "METHOD path" of every request, in order.
    var requests: [String] { state.withLock { $0.requests } }
    var writes: [String] { requests.filter { !$0.hasPrefix("GET ") } }
    func clearRequests() { state.withLock { $0.requests = [] } }

    var keys: [Key] { state.withLock { Array($0.objects.keys) }.sorted() }
    func names(_ resource: String, namespace: String = "") -> [String] {
        keys.filter { $0.resource == resource && $0.namespace == namespace }.map(\.name)
    }

    func object(_ resource: String, _ name: String, namespace: String = "") -> [String: Any]? {
        let data = state.withLock { $0.objects[Key(resource: resource, namespace: namespace, name: name)] }
        return data.flatMap { (try? JSONSerialization.jsonObject(with: $0)) as? [String: Any] }
    }

    func raw(_ resource: String, _ name: String, namespace: String = "") -> Data? {
        state.withLock { $0.objects[Key(resource: resource, namespace: namespace, name: name)] }
    }

    /// Stores `object` as is (an object someone else made, or a hand edit), bumping its resourceVersion.
    func put(_ resource: String, _ object: [String: Any], namespace: String = "") {
        var o = object
        var meta = o["metadata"] as? [String: Any] ?? [:]
        let name = meta["name"] as? String ?? ""
        state.withLock { s in
            s.revision += 1
            meta["resourceVersion"] = String(s.revision)
            if !namespace.isEmpty { meta["namespace"] = namespace }
            o["metadata"] = meta
            s.objects[Key(resource: resource, namespace: namespace, name: name)] = try? JSONSerialization.data(withJSONObject: o, options: .sortedKeys)
        }
    }

    /// A hand edit of a stored object (`kubectl edit` with the admin's rights: anything goes).
    func edit(_ resource: String, _ name: String, namespace: String = "", _ change: (inout [String: Any]) -> Void) {
        guard var o = object(resource, name, namespace: namespace) else { return }
        change(&o)
        put(resource, o, namespace: namespace)
    }

    func remove(_ resource: String, _ name: String, namespace: String = "") {
        _ = state.withLock { $0.objects.removeValue(forKey: Key(resource: resource, namespace: namespace, name: name)) }
    }

    // MARK: ClusterAPIClient

    func request(cluster: String, method: String, path: String, body: Data?, contentType: String?,
                 timeout: TimeInterval) -> Result<ClusterAPIResponse, ClusterAPIError> {
        state.withLock { s -> Result<ClusterAPIResponse, ClusterAPIError> in
            guard s.available else { return .failure(.unavailable(cluster: cluster)) }
            s.requests.append("\(method) \(path)")
            if method != "GET", s.failWrites > 0 {
                s.failWrites -= 1
                return .success(Self.status(500, "InternalError", "injected failure"))
            }
            return .success(Self.answer(&s, method: method, path: path, body: body))
        }
    }

    private static func answer(_ s: inout State, method: String, path target: String, body: Data?) -> ClusterAPIResponse {
        let prefix = "/apis/rbac.authorization.k8s.io/v1/"
        let parts = target.split(separator: "?", maxSplits: 1)
        let path = String(parts[0])
        let query = parts.count > 1 ? String(parts[1]) : ""
        guard path.hasPrefix(prefix) else { return status(404, "NotFound", "the server could not find the requested resource") }
        var segments = path.dropFirst(prefix.count).split(separator: "/").map(String.init)
        var namespace = ""
        if segments.first == "namespaces", segments.count >= 3 {
            namespace = segments[1]
            segments.removeFirst(2)
        }
        guard let resource = segments.first, resources.contains(resource), segments.count <= 2,
              namespace.isEmpty || namespaced.contains(resource) else {
            return status(404, "NotFound", "the server could not find the requested resource")
        }
        let name = segments.count == 2 ? segments[1] : nil
        switch (method, name) {
        case ("GET", nil):
            var selector = LabelSelector.everything
            for pair in query.split(separator: "&") where pair.hasPrefix("labelSelector=") {
                let text = String(pair.dropFirst("labelSelector=".count)).removingPercentEncoding ?? ""
                guard let parsed = try? LabelSelector(parsing: text) else { return status(400, "BadRequest", "bad selector") }
                selector = parsed
            }
            let items: [[String: Any]] = s.objects.filter { key, _ in
                key.resource == resource && (namespace.isEmpty || key.namespace == namespace)
            }.sorted { $0.key < $1.key }.compactMap { _, data in
                guard var o = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return nil }
                let labels = (o["metadata"] as? [String: Any])?["labels"] as? [String: String] ?? [:]
                guard selector.matches(labels) else { return nil }
                o["kind"] = nil
                o["apiVersion"] = nil
                return o
            }
            return json(200, ["kind": (kinds[resource] ?? "") + "List", "apiVersion": "rbac.authorization.k8s.io/v1",
                              "metadata": ["resourceVersion": String(s.revision)], "items": items])
        case ("GET", let name?):
            guard let data = s.objects[Key(resource: resource, namespace: namespace, name: name)] else {
                return status(404, "NotFound", "\(resource) \"\(name)\" not found")
            }
            return ClusterAPIResponse(status: 200, headers: [], body: data)
        case ("POST", nil):
            guard var o = body.flatMap({ (try? JSONSerialization.jsonObject(with: $0)) as? [String: Any] }),
                  var meta = o["metadata"] as? [String: Any], let name = meta["name"] as? String else {
                return status(400, "BadRequest", "no object")
            }
            if namespaced.contains(resource) {
                guard !namespace.isEmpty, s.namespaces.contains(namespace) else {
                    return status(404, "NotFound", "namespaces \"\(namespace)\" not found")
                }
            }
            let key = Key(resource: resource, namespace: namespace, name: name)
            guard s.objects[key] == nil else { return status(409, "AlreadyExists", "\(resource) \"\(name)\" already exists") }
            s.revision += 1
            meta["resourceVersion"] = String(s.revision)
            meta["uid"] = UUID().uuidString.lowercased()
            if !namespace.isEmpty { meta["namespace"] = namespace }
            o["metadata"] = meta
            let data = (try? JSONSerialization.data(withJSONObject: o, options: .sortedKeys)) ?? Data()
            s.objects[key] = data
            return ClusterAPIResponse(status: 201, headers: [], body: data)
        case ("PUT", let name?):
            let key = Key(resource: resource, namespace: namespace, name: name)
            guard let current = s.objects[key].flatMap({ (try? JSONSerialization.jsonObject(with: $0)) as? [String: Any] }) else {
                return status(404, "NotFound", "\(resource) \"\(name)\" not found")
            }
            guard var o = body.flatMap({ (try? JSONSerialization.jsonObject(with: $0)) as? [String: Any] }),
                  var meta = o["metadata"] as? [String: Any] else { return status(400, "BadRequest", "no object") }
            let currentMeta = current["metadata"] as? [String: Any] ?? [:]
            if let rv = meta["resourceVersion"] as? String, rv != currentMeta["resourceVersion"] as? String {
                return status(409, "Conflict", "the object has been modified; please apply your changes to the latest version and try again")
            }
            if let ref = current["roleRef"] as? [String: String], (o["roleRef"] as? [String: String]) != ref {
                return status(422, "Invalid", "roleRef: Invalid value: cannot change roleRef")
            }
            s.revision += 1
            meta["resourceVersion"] = String(s.revision)
            meta["uid"] = currentMeta["uid"]
            o["metadata"] = meta
            let data = (try? JSONSerialization.data(withJSONObject: o, options: .sortedKeys)) ?? Data()
            s.objects[key] = data
            return ClusterAPIResponse(status: 200, headers: [], body: data)
        case ("DELETE", let name?):
            guard s.objects.removeValue(forKey: Key(resource: resource, namespace: namespace, name: name)) != nil else {
                return status(404, "NotFound", "\(resource) \"\(name)\" not found")
            }
            s.revision += 1
            return json(200, ["kind": "Status", "apiVersion": "v1", "status": "Success"])
        default:
            return status(405, "MethodNotAllowed", "\(method) is not supported here")
        }
    }

    private static func json(_ code: Int, _ object: [String: Any]) -> ClusterAPIResponse {
        ClusterAPIResponse(status: code, headers: [("Content-Type", "application/json")],
                           body: (try? JSONSerialization.data(withJSONObject: object, options: .sortedKeys)) ?? Data())
    }

    private static func status(_ code: Int, _ reason: String, _ message: String) -> ClusterAPIResponse {
        json(code, ["kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message, "code": code])
    }
}
