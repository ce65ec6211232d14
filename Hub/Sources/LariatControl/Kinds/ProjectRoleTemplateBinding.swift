import Foundation
import LariatStore

/// Grants a project-context RoleTemplate to a user or group in one project (Rancher's
/// `projectroletemplatebindings`): it applies to the Project object and to the project's
/// namespaces in its cluster.
public enum ProjectRoleTemplateBinding: Resource {
    public static let kind = "ProjectRoleTemplateBinding"
    public static let plural = "projectroletemplatebindings"

    public struct Spec: Codable, Sendable, Equatable {
        /// The Project object's name.
        public var projectName: String
        public var userName: String?
        public var groupPrincipalName: String?
        public var roleTemplateName: String

        public init(projectName: String, userName: String? = nil, groupPrincipalName: String? = nil, roleTemplateName: String) {
            self.projectName = projectName
            self.userName = userName
            self.groupPrincipalName = groupPrincipalName
            self.roleTemplateName = roleTemplateName
        }
    }

    public typealias Status = NoStatus
    public static func emptyStatus() -> Status { NoStatus() }

    /// Checks the fields; with `roleTemplate` (a lookup) also that the template exists and is a project one.
    public static func validate(_ o: Object<ProjectRoleTemplateBinding>,
                                roleTemplate: ((String) -> Object<RoleTemplate>?)? = nil) -> [FieldError] {
        var errors = NameRules.dnsLabel(o.name, field: "metadata.name")
            + NameRules.dnsLabel(o.spec.projectName, field: "spec.projectName")
            + FieldChecks.subject(userName: o.spec.userName, groupPrincipalName: o.spec.groupPrincipalName)
            + NameRules.dnsLabel(o.spec.roleTemplateName, field: "spec.roleTemplateName")
        if let roleTemplate, errors.isEmpty {
            errors += RoleTemplateReference.check(o.spec.roleTemplateName, context: .project, roleTemplate)
        }
        return errors
    }
}
