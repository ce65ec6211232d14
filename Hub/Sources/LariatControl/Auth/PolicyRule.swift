/// One rule of a role, in Kubernetes RBAC form: verbs on resources of API groups (optionally
/// only the named objects), or verbs on non-resource URL paths. A role allows what any of its
/// rules allows; there are no deny rules, as in Kubernetes.
public struct PolicyRule: Codable, Sendable, Equatable {
    public var verbs: [String]
    public var apiGroups: [String]
    public var resources: [String]
    public var resourceNames: [String]
    public var nonResourceURLs: [String]

    public init(verbs: [String], apiGroups: [String] = [], resources: [String] = [], resourceNames: [String] = [],
                nonResourceURLs: [String] = []) {
        self.verbs = verbs
        self.apiGroups = apiGroups
        self.resources = resources
        self.resourceNames = resourceNames
        self.nonResourceURLs = nonResourceURLs
    }

    // Absent lists decode as empty, as in Kubernetes manifests.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        verbs = try c.decodeIfPresent([String].self, forKey: .verbs) ?? []
        apiGroups = try c.decodeIfPresent([String].self, forKey: .apiGroups) ?? []
        resources = try c.decodeIfPresent([String].self, forKey: .resources) ?? []
        resourceNames = try c.decodeIfPresent([String].self, forKey: .resourceNames) ?? []
        nonResourceURLs = try c.decodeIfPresent([String].self, forKey: .nonResourceURLs) ?? []
    }

    /// Verbs a rule may name: Kubernetes' resource verbs, its non-resource (HTTP) verbs, and `*`.
    public static let knownVerbs: Set<String> = [
        "get", "list", "watch", "create", "update", "patch", "delete", "deletecollection",
        "impersonate", "bind", "escalate", "use", "approve", "sign", "proxy",
        "post", "put", "head", "options", "*",
    ]

    /// Whether this rule allows `access` (Kubernetes' RBAC matching: `*` matches any group,
    /// resource or verb; `*/sub` any resource's subresource `sub`; `resourceNames` restricts to
    /// those objects, so a request naming no object — list, create — is not allowed by it; a
    /// URL pattern ending in `*` matches by prefix).
    public func allows(_ access: Access) -> Bool {
        guard verbs.contains(where: { $0 == "*" || $0 == access.verb }) else { return false }
        if let path = access.nonResourcePath {
            return nonResourceURLs.contains { pattern in
                if pattern.hasSuffix("*") { return path.hasPrefix(pattern.dropLast()) }
                return pattern == path
            }
        }
        guard !resources.isEmpty,
              apiGroups.contains(where: { $0 == "*" || $0 == access.apiGroup }),
              resources.contains(where: { Self.resource($0, matches: access.resource) })
        else { return false }
        if resourceNames.isEmpty { return true }
        guard let name = access.name else { return false }
        return resourceNames.contains(name)
    }

    private static func resource(_ pattern: String, matches resource: String) -> Bool {
        if pattern == "*" || pattern == resource { return true }
        // "*/scale" matches the scale subresource of every resource.
        if pattern.hasPrefix("*/"), let slash = resource.firstIndex(of: "/") {
            return pattern.dropFirst(2) == resource[resource.index(after: slash)...]
        }
        return false
    }

    /// Field errors for rule `index` of `field` (`spec.rules`). Non-resource URLs are allowed
    /// only where `allowNonResourceURLs` (global and cluster roles; a project's namespaces have
    /// no URLs of their own, as Kubernetes refuses them in namespaced Roles).
    public func validate(field: String, allowNonResourceURLs: Bool) -> [FieldError] {
        var errors: [FieldError] = []
        if verbs.isEmpty { errors.append(FieldError("\(field).verbs", "at least one verb is required")) }
        for (i, verb) in verbs.enumerated() where !Self.knownVerbs.contains(verb) {
            errors.append(FieldError("\(field).verbs[\(i)]", "unknown verb \"\(verb)\" (known: \(Self.knownVerbs.sorted().joined(separator: ", ")))"))
        }
        let hasResources = !resources.isEmpty
        let hasURLs = !nonResourceURLs.isEmpty
        switch (hasResources, hasURLs) {
        case (false, false):
            errors.append(FieldError("\(field).resources", "a rule needs resources (with apiGroups) or nonResourceURLs"))
        case (true, true):
            errors.append(FieldError("\(field).nonResourceURLs", "a rule applies to resources or to non-resource URLs, not both"))
        case (true, false):
            if apiGroups.isEmpty {
                errors.append(FieldError("\(field).apiGroups", "is required with resources (\"\" is the core group)"))
            }
            for (i, r) in resources.enumerated() where r.isEmpty || r.contains(where: { $0.isWhitespace }) {
                errors.append(FieldError("\(field).resources[\(i)]", "must be a resource name, \"*\" or \"*/subresource\""))
            }
        case (false, true):
            if !allowNonResourceURLs {
                errors.append(FieldError("\(field).nonResourceURLs", "is allowed only in global and cluster roles"))
            }
            if !apiGroups.isEmpty || !resourceNames.isEmpty {
                errors.append(FieldError("\(field).apiGroups", "a non-resource rule names no apiGroups or resourceNames"))
            }
            for (i, url) in nonResourceURLs.enumerated() where !url.hasPrefix("/") && url != "*" {
                errors.append(FieldError("\(field).nonResourceURLs[\(i)]", "must be a path starting with \"/\" or \"*\""))
            }
            for (i, url) in nonResourceURLs.enumerated() where url.dropLast().contains("*") {
                errors.append(FieldError("\(field).nonResourceURLs[\(i)]", "\"*\" may only end a path"))
            }
        }
        return errors
    }

    public static func validate(_ rules: [PolicyRule], field: String = "spec.rules", allowNonResourceURLs: Bool) -> [FieldError] {
        rules.enumerated().flatMap { i, rule in rule.validate(field: "\(field)[\(i)]", allowNonResourceURLs: allowNonResourceURLs) }
    }
}
