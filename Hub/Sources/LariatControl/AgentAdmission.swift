import Foundation
import LariatRuntime
import LariatStore

/// Which agents may hold a cluster's tunnel. An agent presents either a registration token of
/// its cluster (what the import manifest carries; valid for every agent of the cluster) or its
/// own credential (`ac-xxxxxxxx:<secret>`, issued at registration, revocable alone). Checks
/// read only the informers' caches — microseconds, no store round trip — so a token created,
/// rotated or revoked through the API takes effect as soon as the watch delivers it.
public enum AgentAdmission: Sendable, Equatable {
    /// `credential`: the AgentCredential the agent used, if it used one (its revocation closes the tunnel).
    case admitted(credential: String?)
    case refused(String)
}

public struct AgentRegistration: Codable, Sendable, Equatable {
    public var cluster: String
    public var agentID: String
    public var role: String
    public var token: String

    public init(cluster: String, agentID: String, role: String, token: String) {
        self.cluster = cluster
        self.agentID = agentID
        self.role = role
        self.token = token
    }
}

public struct IssuedAgentCredential: Codable, Sendable, Equatable {
    public var name: String
    /// `ac-xxxxxxxx:<secret>`: shown once; only its digest is kept.
    public var credential: String
}

public struct ImportInstructions: Codable, Sendable, Equatable {
    public var clusterName: String
    public var registrationToken: String
    public var tokenName: String
    public var manifestURL: String
    public var command: String
    public var caChecksum: String
}

extension ControlPlane {
    static let credentialPrefix = "ac-"

    public func admitAgent(cluster: String, agentID: String, token: String, now: Date = Date()) -> AgentAdmission {
        guard clusterInformer.get(cluster) != nil else { return .refused("no cluster \"\(cluster)\"") }
        if token.hasPrefix(Self.credentialPrefix), let colon = token.firstIndex(of: ":") {
            let name = String(token[..<colon])
            let secret = String(token[token.index(after: colon)...])
            guard let c = agentCredentialInformer.get(name),
                  Digest.constantTimeEquals(Array(Digest.sha256Hex(secret).utf8), Array(c.spec.secretSHA256.utf8)) else {
                return .refused("unknown agent credential")
            }
            guard c.spec.clusterName == cluster, c.spec.agentID == agentID else {
                return .refused("credential \(name) belongs to agent \"\(c.spec.agentID)\" of cluster \"\(c.spec.clusterName)\"")
            }
            guard !c.spec.revoked, !c.metadata.isBeingDeleted else { return .refused("credential \(name) is revoked") }
            return .admitted(credential: name)
        }
        return validRegistrationToken(cluster: cluster, token: token, now: now) != nil
            ? .admitted(credential: nil) : .refused("invalid registration token for cluster \"\(cluster)\"")
    }

    /// The registration token object `token` matches, if it is valid for `cluster` now.
    func validRegistrationToken(cluster: String, token: String, now: Date) -> Object<ClusterRegistrationToken>? {
        let digest = Array(Digest.sha256Hex(Self.secretPart(of: token)).utf8)
        var match: Object<ClusterRegistrationToken>?
        // Every candidate is compared, so the time taken does not tell which one matched.
        for t in registrationTokenInformer.items where t.spec.clusterName == cluster {
            if Digest.constantTimeEquals(digest, Array(t.spec.secretSHA256.utf8)),
               t.spec.expiresAt.map({ $0 > now }) ?? true, !t.metadata.isBeingDeleted {
                match = t
            }
        }
        return match
    }

    /// Registration tokens are `crt-xxxxx.<secret>`; tokens imported from before are the secret alone.
    static func secretPart(of token: String) -> String {
        if token.hasPrefix("crt-"), let dot = token.firstIndex(of: ".") { return String(token[token.index(after: dot)...]) }
        return token
    }

    /// Trades a registration token for the agent's own credential. An agent id already holding
    /// a revoked credential stays refused until that credential is deleted; registering again
    /// (a restarted agent) replaces a credential that is not revoked.
    public func registerAgent(_ r: AgentRegistration) throws -> IssuedAgentCredential {
        guard validRegistrationToken(cluster: r.cluster, token: r.token, now: Date()) != nil else {
            throw APIError.unauthorized
        }
        guard ["cluster", "node"].contains(r.role) else { throw APIError.invalid([FieldError("role", "cluster or node")]) }
        guard !r.agentID.isEmpty, r.agentID.utf8.count <= 253,
              !r.agentID.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw APIError.invalid([FieldError("agentID", "1-253 characters, no control characters")])
        }
        // A registration must not displace a live agent: a registration-token holder would
        // otherwise take a connected agent's place by registering its id.
        if isAgentConnected(cluster: r.cluster, agentID: r.agentID) {
            throw APIError.conflict("agent \"\(r.agentID)\" of cluster \"\(r.cluster)\" is connected; give each agent its own id (if that agent is gone, retry in a few seconds)")
        }
        let existing = agentCredentialInformer.items.filter { $0.spec.clusterName == r.cluster && $0.spec.agentID == r.agentID }
        if let revoked = existing.first(where: { $0.spec.revoked }) {
            throw APIError.forbidden("agent \"\(r.agentID)\" of cluster \"\(r.cluster)\" is revoked (credential \(revoked.name)); delete that credential to let it register again")
        }
        let secret = SecureRandom.hexToken(byteCount: 24)
        var credential = Object<AgentCredential>(
            name: Self.credentialPrefix + SecureRandom.lowercaseAlphanumeric(count: 8),
            spec: AgentCredential.Spec(clusterName: r.cluster, agentID: r.agentID, role: r.role,
                                       secretSHA256: Digest.sha256Hex(secret)),
            labels: ["lariat.io/cluster": r.cluster])
        credential = try agentCredentials.create(credential)
        for old in existing { _ = try? agentCredentials.delete(old.name) }
        return IssuedAgentCredential(name: credential.name, credential: "\(credential.name):\(secret)")
    }

    /// A new registration token for `cluster`, and the command that imports the cluster with it.
    public func issueImport(for cluster: String) throws -> ImportInstructions {
        let secret = SecureRandom.lowercaseAlphanumeric(count: 54)
        let name = "crt-" + SecureRandom.lowercaseAlphanumeric(count: 5)
        let expires = settings.registrationTokenTTL.map { Date().addingTimeInterval($0) }
        _ = try registrationTokens.create(Object(
            name: name, spec: ClusterRegistrationToken.Spec(clusterName: cluster, secretSHA256: Digest.sha256Hex(secret),
                                                            expiresAt: expires),
            labels: ["lariat.io/cluster": cluster]))
        let token = "\(name).\(secret)"
        let url = "\(settings.serverURL)/v3/import/\(token).yaml"
        return ImportInstructions(clusterName: cluster, registrationToken: token, tokenName: name, manifestURL: url,
                                  command: "curl --insecure -sfL \(url) | kubectl apply -f -",
                                  caChecksum: settings.caChecksum)
    }
}
