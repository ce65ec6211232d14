import Foundation
import LariatStore

/// Grants a GlobalRole to a user or a group (Rancher's `globalrolebindings`).
public enum GlobalRoleBinding: Resource {
    public static let kind = "GlobalRoleBinding"
    public static let plural = "globalrolebindings"

    public struct Spec: Codable, Sendable, Equatable {
        public var userName: String?
        public var groupPrincipalName: String?
        public var globalRoleName: String

        public init(userName: String? = nil, groupPrincipalName: String? = nil, globalRoleName: String) {
            self.userName = userName
            self.groupPrincipalName = groupPrincipalName
            self.globalRoleName = globalRoleName
        }
    }

    public typealias Status = NoStatus
    public static func emptyStatus() -> Status { NoStatus() }

    public static func validate(_ o: Object<GlobalRoleBinding>) -> [FieldError] {
        NameRules.dnsLabel(o.name, field: "metadata.name")
            + FieldChecks.subject(userName: o.spec.userName, groupPrincipalName: o.spec.groupPrincipalName)
            + NameRules.dnsLabel(o.spec.globalRoleName, field: "spec.globalRoleName")
    }
}
