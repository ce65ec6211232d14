/// What every principal that reaches a cluster (`Authorizer.canReach`) may do there whatever its
/// roles: discover the API and ask about itself — Kubernetes' `system:discovery` and
/// `system:basic-user`, granted there to every authenticated user. kubectl needs these before
/// anything else (`kubectl api-resources`, `kubectl auth can-i`, `kubectl auth whoami`); without
/// them a project member could not even list its own pods. Applies only to Kubernetes requests
/// in a cluster, never to the management group.
public enum DiscoveryBaseline {
    public static let rules: [PolicyRule] = [
        PolicyRule(verbs: ["get"], nonResourceURLs: [
            "/api", "/api/*", "/apis", "/apis/*", "/version", "/version/", "/openapi", "/openapi/*",
            "/healthz", "/livez", "/readyz",
        ]),
        PolicyRule(verbs: ["create"], apiGroups: ["authentication.k8s.io"], resources: ["selfsubjectreviews"]),
        PolicyRule(verbs: ["create"], apiGroups: ["authorization.k8s.io"],
                   resources: ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
    ]

    /// Whether `access` is one the baseline allows (for someone reaching its cluster).
    public static func covers(_ access: Access) -> Bool {
        guard access.cluster != nil, access.apiGroup != Access.managementGroup else { return false }
        return rules.contains { $0.allows(access) }
    }
}
