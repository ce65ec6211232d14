import Foundation
import LariatStore

/// A role granted within one cluster or one project (Rancher's `roletemplates`): `cluster-owner`,
/// `cluster-member` (context cluster), `project-owner`, `project-member`, `read-only` (project).
public enum RoleTemplate: Resource {
    public static let kind = "RoleTemplate"
    public static let plural = "roletemplates"

    public enum Context: String, Codable, Sendable, Equatable, CaseIterable {
        case cluster, project
    }

    public struct Spec: Codable, Sendable, Equatable {
        public var displayName: String
        public var description: String
        /// Where bindings may use it: a ClusterRoleTemplateBinding needs `cluster`, a
        /// ProjectRoleTemplateBinding `project`.
        public var context: Context
        public var rules: [PolicyRule]
        /// Created and kept current by the hub; the API refuses to change it.
        public var builtin: Bool

        public init(displayName: String, description: String = "", context: Context, rules: [PolicyRule],
                    builtin: Bool = false) {
            self.displayName = displayName
            self.description = description
            self.context = context
            self.rules = rules
            self.builtin = builtin
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            displayName = try c.decodeIfPresent(String.self, forKey: .displayName) ?? ""
            description = try c.decodeIfPresent(String.self, forKey: .description) ?? ""
            context = try c.decode(Context.self, forKey: .context)
            rules = try c.decodeIfPresent([PolicyRule].self, forKey: .rules) ?? []
            builtin = try c.decodeIfPresent(Bool.self, forKey: .builtin) ?? false
        }
    }

    public typealias Status = NoStatus
    public static func emptyStatus() -> Status { NoStatus() }

    public static func validate(_ o: Object<RoleTemplate>) -> [FieldError] {
        NameRules.dnsLabel(o.name, field: "metadata.name")
            + FieldChecks.text(o.spec.displayName, field: "spec.displayName", maxLength: 256)
            + FieldChecks.text(o.spec.description, field: "spec.description")
            + PolicyRule.validate(o.spec.rules, allowNonResourceURLs: o.spec.context == .cluster)
    }
}
