import Foundation
import LariatStore

/// Kubeconfigs for the hub's Kubernetes proxy (`<serverURL>/k8s/clusters/<cluster>`), as
/// Rancher makes them: `POST /v3/clusters/<id>?action=generateKubeconfig` for one cluster,
/// `POST /v3/kubeconfigs` (`{"clusters":[…]}`, or every cluster the caller reaches) for several.
/// Each cluster's entry carries a new token of the caller's, scoped to that cluster and marked
/// derived, living `kubeconfigTokenTTL`: kubectl can reach nothing else with it, and revoking it
/// ends that kubeconfig alone. The bearer is in the answer only, never in the audit record.
enum KubeconfigRoutes {
    static let action = "generateKubeconfig"

    /// Rancher's answer shape for the action (kept for `/v3/kubeconfigs` too).
    struct Output: Encodable {
        var type = "generateKubeConfigOutput"
        var baseType = "generateKubeConfigOutput"
        var config: String
    }

    /// The action takes no fields (an empty body or `{}`).
    struct NoFields: Codable {}

    struct Selection: Codable {
        var clusters: [String]?
    }

    static func register(control: ControlPlane, tokens: TokenService, authorizer: Authorizer, in builder: inout RouterBuilder) {
        builder.add("POST", "/v3/clusters/{name}") { ctx, p in
            guard let action = ctx.request.query["action"] else {
                throw APIError.methodNotAllowed("POST is not allowed on \(ctx.request.path) without ?action=\(Self.action)")
            }
            guard action == Self.action else {
                throw APIError.badRequest("clusters have no action \"\(action)\" (there is ?action=\(Self.action))")
            }
            if !ctx.request.body.isEmpty { _ = try BodyDecoding.decode(NoFields.self, from: ctx.request.body) }
            let config = try generate(ctx, clusters: [p["name"]!], control: control, tokens: tokens, authorizer: authorizer)
            return answer(config)
        }

        builder.add("POST", "/v3/kubeconfigs") { ctx, _ in
            let selection = ctx.request.body.isEmpty ? Selection() : try BodyDecoding.decode(Selection.self, from: ctx.request.body)
            var names: [String] = []
            for name in selection.clusters ?? [] where !names.contains(name) { names.append(name) }
            if names.isEmpty {
                names = authorizer.reachableClusters(ctx.caller)
                guard !names.isEmpty else {
                    ctx.access = Access(verb: "create", resource: "kubeconfigs")
                    ctx.decisionReason = "\(ctx.caller.name) reaches no cluster"
                    throw APIError.forbidden("\(ctx.caller.username) may reach no cluster")
                }
            }
            let config = try generate(ctx, clusters: names, control: control, tokens: tokens, authorizer: authorizer)
            return answer(config)
        }
    }

    static func answer(_ config: String) -> APIResponse {
        var r = APIResponse.json(200, Output(config: config))
        r.headers.append(("Cache-Control", "no-store"))  // it holds bearers
        return r
    }

    /// Checks that the caller reaches every cluster in `names` (404 for one that does not exist,
    /// unless the caller may not even know that), then issues one token per cluster and renders
    /// the kubeconfig. Nothing is issued unless every cluster passes.
    static func generate(_ ctx: RequestContext, clusters names: [String], control: ControlPlane, tokens: TokenService,
                         authorizer: Authorizer) throws -> String {
        let settings = control.settings
        guard names.count <= settings.maxKubeconfigClusters else {
            throw APIError.invalid([FieldError("clusters", "at most \(settings.maxKubeconfigClusters) clusters in one kubeconfig; name fewer")])
        }
        let caller = ctx.caller
        for name in names {
            guard control.clusterInformer.get(name) != nil else {
                // Existence is not revealed to those who may not read the cluster.
                try control.router.authorize(ctx, Access(verb: "get", resource: Cluster.plural, name: name))
                throw APIError.notFound("Cluster \"\(name)\" not found")
            }
            let decision = caller.kind == .user
                ? authorizer.canReach(caller, cluster: name)
                : Decision(allowed: false, reason: "\(caller.name) is not a user: kubeconfigs carry user tokens")
            ctx.access = Access(verb: "create", resource: "kubeconfigs", cluster: names.count == 1 ? name : nil)
            ctx.decisionReason = decision.reason
            guard decision.allowed else { throw APIError.forbidden("\(caller.username) may not reach cluster \(name)") }
        }
        if names.count > 1 { ctx.decisionReason = "\(caller.name) reaches all \(names.count) clusters asked for" }

        let base = String(settings.serverURL.reversed().drop { $0 == "/" }.reversed())
        var issued: [IssuedToken] = []
        do {
            var entries: [Kubeconfig.Entry] = []
            for name in names {
                let t = try tokens.issue(userName: caller.name, description: "kubeconfig for cluster \(name)",
                                         ttl: settings.kubeconfigTokenTTL, clusterName: name, isDerived: true)
                issued.append(t)
                entries.append(Kubeconfig.Entry(cluster: name, server: "\(base)/k8s/clusters/\(name)", caPEM: settings.caPEM,
                                                token: t.bearer))
            }
            return try Kubeconfig.yaml(entries)
        } catch {
            // No half-made kubeconfig leaves tokens behind (best effort: cleanup expires them anyway).
            for t in issued { try? tokens.revoke(t.token.name) }
            throw error
        }
    }
}
