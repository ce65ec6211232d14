import Foundation
import LariatStore

/// The secret a cluster's agents present when they first connect (the import manifest carries
/// it): valid for every agent of the cluster until it expires or is deleted. Only its digest is
/// kept; the token itself is shown once, in the answer that created it.
public enum ClusterRegistrationToken: Resource {
    public static let kind = "ClusterRegistrationToken"
    public static let plural = "clusterregistrationtokens"

    public struct Spec: Codable, Sendable, Equatable {
        public var clusterName: String
        /// SHA-256 (hex) of the token's secret part: high-entropy secrets need no slow KDF.
        public var secretSHA256: String
        public var expiresAt: Date?
        public init(clusterName: String, secretSHA256: String, expiresAt: Date? = nil) {
            self.clusterName = clusterName
            self.secretSHA256 = secretSHA256
            self.expiresAt = expiresAt
        }
    }

    public typealias Status = NoStatus
    public static func emptyStatus() -> NoStatus { NoStatus() }
}

/// One agent's own credential, issued at its registration: revocable alone (deleting it closes
/// that agent's tunnel), listed with the agent it belongs to.
public enum AgentCredential: Resource {
    public static let kind = "AgentCredential"
    public static let plural = "agentcredentials"

    public struct Spec: Codable, Sendable, Equatable {
        public var clusterName: String
        public var agentID: String
        public var role: String
        public var secretSHA256: String
        /// Set by revocation: the agent's tunnel closes and this id cannot register again until
        /// the credential is deleted.
        public var revoked: Bool
        public init(clusterName: String, agentID: String, role: String, secretSHA256: String, revoked: Bool = false) {
            self.clusterName = clusterName
            self.agentID = agentID
            self.role = role
            self.secretSHA256 = secretSHA256
            self.revoked = revoked
        }
    }

    public typealias Status = NoStatus
    public static func emptyStatus() -> NoStatus { NoStatus() }
}
