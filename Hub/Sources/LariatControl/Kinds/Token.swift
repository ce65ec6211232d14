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
            expiresAt = try Self.decodeInstant(c, .expiresAt)
            ttlMillis = try c.decodeIfPresent(Int64.self, forKey: .ttlMillis) ?? 0
            secretDigest = try c.decodeIfPresent(String.self, forKey: .secretDigest) ?? ""
            isDerived = try c.decodeIfPresent(Bool.self, forKey: .isDerived) ?? false
            clusterName = try c.decodeIfPresent(String.self, forKey: .clusterName)
            enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? true
        }

        enum CodingKeys: String, CodingKey {
            case userName, description, expiresAt, ttlMillis, secretDigest, isDerived, clusterName, enabled
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(userName, forKey: .userName)
            try c.encode(description, forKey: .description)
            // With milliseconds: TTLs are given in milliseconds, and the store's whole-second
            // dates would cut up to a second off every token's life.
            try c.encodeIfPresent(expiresAt.map { $0.formatted(Self.instantFormat) }, forKey: .expiresAt)
            try c.encode(ttlMillis, forKey: .ttlMillis)
            try c.encode(secretDigest, forKey: .secretDigest)
            try c.encode(isDerived, forKey: .isDerived)
            try c.encodeIfPresent(clusterName, forKey: .clusterName)
            try c.encode(enabled, forKey: .enabled)
        }

        static let instantFormat = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

        /// An ISO 8601 instant with or without fractional seconds.
        static func decodeInstant(_ c: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys) throws -> Date? {
            guard let text = try c.decodeIfPresent(String.self, forKey: key) else { return nil }
            if let d = try? instantFormat.parse(text) { return d }
            if let d = try? Date.ISO8601FormatStyle().parse(text) { return d }
            throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "not an ISO 8601 instant")
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
