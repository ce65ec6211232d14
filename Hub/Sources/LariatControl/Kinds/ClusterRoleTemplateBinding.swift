import Foundation
import LariatStore

/// Grants a cluster-context RoleTemplate to a user or group in one cluster (Rancher's
/// `clusterroletemplatebindings`).
public enum ClusterRoleTemplateBinding: Resource {
    public static let kind = "ClusterRoleTemplateBinding"
    public static let plural = "clusterroletemplatebindings"

    public struct Spec: Codable, Sendable, Equatable {
        public var clusterName: String
        public var userName: String?
        public var groupPrincipalName: String?
        public var roleTemplateName: String

        public init(clusterName: String, userName: String? = nil, groupPrincipalName: String? = nil, roleTemplateName: String) {
            self.clusterName = clusterName
            self.userName = userName
            self.groupPrincipalName = groupPrincipalName
            self.roleTemplateName = roleTemplateName
        }
    }

    public typealias Status = NoStatus
    public static func emptyStatus() -> Status { NoStatus() }

    /// Checks the fields; with `roleTemplates` (the API passes its cache) also that the template
    /// exists and is a cluster one.
    public static func validate(_ o: Object<ClusterRoleTemplateBinding>,
                                roleTemplate: ((String) -> Object<RoleTemplate>?)? = nil) -> [FieldError] {
        var errors = NameRules.dnsLabel(o.name, field: "metadata.name")
            + NameRules.dnsLabel(o.spec.clusterName, field: "spec.clusterName")
            + FieldChecks.subject(userName: o.spec.userName, groupPrincipalName: o.spec.groupPrincipalName)
            + NameRules.dnsLabel(o.spec.roleTemplateName, field: "spec.roleTemplateName")
        if let roleTemplate, errors.isEmpty {
            errors += RoleTemplateReference.check(o.spec.roleTemplateName, context: .cluster, roleTemplate)
        }
        return errors
    }
}

/// The check both binding kinds make of the template they name.
enum RoleTemplateReference {
    static func check(_ name: String, context: RoleTemplate.Context,
                      _ lookup: (String) -> Object<RoleTemplate>?) -> [FieldError] {
        guard let template = lookup(name) else {
            return [FieldError("spec.roleTemplateName", "no role template \"\(name)\"")]
        }
        guard template.spec.context == context else {
            return [FieldError("spec.roleTemplateName", "\"\(name)\" is a \(template.spec.context.rawValue) role template, not a \(context.rawValue) one")]
        }
        return []
    }
}
