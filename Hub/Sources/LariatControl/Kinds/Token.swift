import Foundation
import LariatStore

/// An API token (Rancher's `tokens`): the bearer is `token-xxxxx:<secret>`; the object, named
/// `token-xxxxx`, keeps only a digest of the secret. Deleting the object revokes it.
public enum Token: Resource {
    public static let kind = "Token"
    public static let plural = "tokens"

    public struct Spec: Codable, Sendable, Equatable {
        /// The User the token authenticates as.
        public var userName: String
        public var description: String
        /// When the token stops working; nil for never.
        public var expiresAt: Date?
        /// The lifetime asked for at issue, in milliseconds as Rancher's `ttl` (0: no expiry).
        public var ttlMillis: Int64
        /// `sha256:<hex>` of the secret (see `TokenService` for why a fast digest suffices).
        public var secretDigest: String
        /// A token derived from a login session (for example for a kubeconfig) rather than the session itself.
        public var isDerived: Bool
        /// A token valid only for requests to this cluster.
        public var clusterName: String?
        /// A disabled token is refused, as a deleted one is, but stays listed.
        public var enabled: Bool

        public init(userName: String, description: String = "", expiresAt: Date? = nil, ttlMillis: Int64 = 0,
                    secretDigest: String, isDerived: Bool = false, clusterName: String? = nil, enabled: Bool = true) {
            self.userName = userName
            self.description = description
            self.expiresAt = expiresAt
            self.ttlMillis = ttlMillis
            self.secretDigest = secretDigest
            self.isDerived = isDerived
            self.clusterName = clusterName
            self.enabled = enabled
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            userName = try c.decode(String.self, forKey: .userName)
            description = try c.decodeIfPresent(String.self, forKey: .description) ?? ""
            expiresAt = try c.decodeIfPresent(Date.self, forKey: .expiresAt)
            ttlMillis = try c.decodeIfPresent(Int64.self, forKey: .ttlMillis) ?? 0
            secretDigest = try c.decodeIfPresent(String.self, forKey: .secretDigest) ?? ""
            isDerived = try c.decodeIfPresent(Bool.self, forKey: .isDerived) ?? false
            clusterName = try c.decodeIfPresent(String.self, forKey: .clusterName)
            enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? true
        }
    }

    public struct Status: Codable, Sendable, Equatable {
        /// When the token was last seen, to a coarse resolution (`TokenService.Settings.lastUsedResolution`):
        /// written at most once per resolution, never on every use.
        public var lastUsedAt: Date?
        public init(lastUsedAt: Date? = nil) { self.lastUsedAt = lastUsedAt }
    }

    public static func emptyStatus() -> Status { Status() }

    public static func validate(_ o: Object<Token>) -> [FieldError] {
        var errors = NameRules.dnsLabel(o.name, field: "metadata.name")
        if !TokenFormat.isTokenName(o.name) {
            errors.append(FieldError("metadata.name", "must be \"token-\" and \(TokenFormat.idLength) lowercase letters or digits"))
        }
        errors += NameRules.dnsLabel(o.spec.userName, field: "spec.userName")
        errors += FieldChecks.text(o.spec.description, field: "spec.description")
        if o.spec.ttlMillis < 0 { errors.append(FieldError("spec.ttlMillis", "must not be negative")) }
        if !TokenFormat.isSecretDigest(o.spec.secretDigest) {
            errors.append(FieldError("spec.secretDigest", "must be sha256:<64 hex digits>"))
        }
        if let cluster = o.spec.clusterName { errors += NameRules.dnsLabel(cluster, field: "spec.clusterName") }
        return errors
    }
}
