/// Who is making a request, once authenticated: a local user (through a login session or an
/// API token) or an agent. Every API request carries one in its context; authorization,
/// auditing and (later) Kubernetes impersonation read it.
public struct Principal: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable { case user, agent }
    public var kind: Kind
    /// The User object's name (`u-xxxxx`), or `system:agent:<cluster>:<agent>` for agents.
    public var name: String
    /// The login name users type (`admin`); for agents the same as `name`.
    public var username: String
    public var groups: [String]
    /// The Token object that authenticated the request, if any (for audit and revocation).
    public var tokenName: String?
    /// Set when the token is scoped to one cluster (Rancher's cluster-scoped tokens): the
    /// authorizer then refuses everything outside that cluster.
    public var clusterScope: String?

    public init(kind: Kind, name: String, username: String, groups: [String] = [], tokenName: String? = nil,
                clusterScope: String? = nil) {
        self.kind = kind
        self.name = name
        self.username = username
        self.groups = groups
        self.tokenName = tokenName
        self.clusterScope = clusterScope
    }
}

/// What a request wants to do, in Kubernetes RBAC terms: a verb on a resource (in an API
/// group), possibly a named object, within a cluster and namespace or none. Management
/// resources (`/v3/...`) use the group `management.lariat.io`; Kubernetes requests through the
/// authentication proxy use the cluster's own groups.
public struct Access: Sendable, Equatable, CustomStringConvertible {
    public var verb: String
    public var apiGroup: String
    public var resource: String
    public var name: String?
    /// The cluster the object belongs to (a Cluster's own name for cluster-scoped objects).
    public var cluster: String?
    /// The Kubernetes namespace inside `cluster`, or the Project's name for project objects.
    public var namespace: String?
    public var project: String?
    /// The User name owning the object (a Token's `spec.userName`, a User's own name), when the
    /// API knows it: every user may read its own User and manage its own Tokens.
    public var owner: String?
    /// A non-resource request (`/healthz`, `/version` through the proxy): the URL path, matched
    /// against rules' `nonResourceURLs`; `resource` is then empty.
    public var nonResourcePath: String?

    public static let managementGroup = "management.lariat.io"

    public init(verb: String, apiGroup: String = Access.managementGroup, resource: String, name: String? = nil,
                cluster: String? = nil, namespace: String? = nil, project: String? = nil, owner: String? = nil) {
        self.verb = verb
        self.apiGroup = apiGroup
        self.resource = resource
        self.name = name
        self.cluster = cluster
        self.namespace = namespace
        self.project = project
        self.owner = owner
    }

    /// A request for a non-resource URL (in `cluster` when it goes through the cluster's proxy).
    public static func nonResource(verb: String, path: String, cluster: String? = nil) -> Access {
        var a = Access(verb: verb, apiGroup: "", resource: "", cluster: cluster)
        a.nonResourcePath = path
        return a
    }

    public var description: String {
        var s = "\(verb) \(apiGroup.isEmpty ? "" : apiGroup + "/")\(nonResourcePath ?? resource)"
        if let name { s += "/\(name)" }
        if let cluster { s += " in cluster \(cluster)" }
        if let namespace { s += " namespace \(namespace)" }
        if let project { s += " project \(project)" }
        return s
    }
}

/// The answer to "may P do A", with the reason (for audit records and 403 messages).
public struct Decision: Sendable, Equatable {
    public var allowed: Bool
    public var reason: String
    public init(allowed: Bool, reason: String) {
        self.allowed = allowed
        self.reason = reason
    }
}

public protocol Authorizing: Sendable {
    func authorize(_ principal: Principal, _ access: Access) -> Decision
}
