import Foundation
import LariatStore

/// Limits on what an import request may ask for.
public struct ImportRequestLimits: Sendable {
    /// Longest `httpsProxy` / `noProxy` query value accepted (bytes); longer is a 400.
    public var maxProxyValueBytes = 2048
    public init() {}
}

/// `GET /v3/import/{token}.yaml`: the agent manifest of the cluster the registration token
/// belongs to (`ImportManifest`). Public, as Rancher's: the token in the path is the credential,
/// so the audit record carries a redacted path, and an unknown, expired or deleted token gets
/// the same 404 as a malformed one (nothing tells which). Optional query: `httpsProxy`, `noProxy`.
enum ImportRoute {
    static let redactedPath = "/v3/import/[redacted].yaml"

    static func register(_ control: ControlPlane, limits: ImportRequestLimits = ImportRequestLimits(),
                         in builder: inout RouterBuilder) {
        builder.add("GET", "/v3/import/{file}", public: true) { ctx, p in
            ctx.auditPath = redactedPath
            let notFound = APIError.notFound("no such import manifest")
            guard let file = p["file"], file.hasSuffix(".yaml") else { throw notFound }
            let token = String(file.dropLast(5))
            guard let crt = control.registrationToken(matching: token) else {
                ctx.decisionReason = "unknown, expired or deleted registration token"
                throw notFound
            }
            let cluster = crt.spec.clusterName
            ctx.access = Access(verb: "get", resource: "import", name: crt.name, cluster: cluster)
            ctx.decisionReason = "registration token \(crt.name)"

            var fields: [FieldError] = []
            func proxyValue(_ name: String) -> String? {
                guard let v = ctx.request.query[name] else { return nil }
                if v.utf8.count > limits.maxProxyValueBytes {
                    fields.append(FieldError(name, "at most \(limits.maxProxyValueBytes) bytes"))
                } else if v.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                    fields.append(FieldError(name, "no control characters"))
                }
                return v
            }
            let httpsProxy = proxyValue("httpsProxy")
            let noProxy = proxyValue("noProxy")
            guard fields.isEmpty else { throw APIError.invalid(fields) }

            let yaml = ImportManifest.render(ImportManifest.Values(
                serverURL: control.settings.serverURL, caChecksum: control.settings.caChecksum, clusterName: cluster,
                registrationToken: token, agentImage: control.settings.agentImage,
                httpsProxy: httpsProxy, noProxy: noProxy))
            // It holds a credential: no cache may keep it.
            return APIResponse(status: 200, headers: [("Content-Type", "application/yaml; charset=utf-8"),
                                                      ("Cache-Control", "no-store")],
                               body: Data(yaml.utf8))
        }
    }
}

extension ControlPlane {
    /// The registration token object a full token (`crt-xxxxx.<secret>`) names, if the secret
    /// matches and the token is valid now. The name only picks the candidate; the secret is
    /// compared in constant time by `validRegistrationToken`.
    func registrationToken(matching token: String, now: Date = Date()) -> Object<ClusterRegistrationToken>? {
        guard token.hasPrefix("crt-"), let dot = token.firstIndex(of: ".") else { return nil }
        guard let named = registrationTokenInformer.get(String(token[..<dot])) else { return nil }
        guard let valid = validRegistrationToken(cluster: named.spec.clusterName, token: token, now: now),
              valid.name == named.name else { return nil }
        return valid
    }
}
