import Foundation
import LariatStore

/// A role that applies everywhere (Rancher's `globalroles`: `admin`, `user`).
public enum GlobalRole: Resource {
    public static let kind = "GlobalRole"
    public static let plural = "globalroles"

    public struct Spec: Codable, Sendable, Equatable {
        public var displayName: String
        public var description: String
        public var rules: [PolicyRule]
        /// Created and kept current by the hub (`BuiltinRoles.ensure`); the API refuses to change it.
        public var builtin: Bool
        /// Bound to every new user on creation (Rancher's `newUserDefault`).
        public var newUserDefault: Bool

        public init(displayName: String, description: String = "", rules: [PolicyRule], builtin: Bool = false,
                    newUserDefault: Bool = false) {
            self.displayName = displayName
            self.description = description
            self.rules = rules
            self.builtin = builtin
            self.newUserDefault = newUserDefault
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            displayName = try c.decodeIfPresent(String.self, forKey: .displayName) ?? ""
            description = try c.decodeIfPresent(String.self, forKey: .description) ?? ""
            rules = try c.decodeIfPresent([PolicyRule].self, forKey: .rules) ?? []
            builtin = try c.decodeIfPresent(Bool.self, forKey: .builtin) ?? false
            newUserDefault = try c.decodeIfPresent(Bool.self, forKey: .newUserDefault) ?? false
        }
    }

    public typealias Status = NoStatus
    public static func emptyStatus() -> Status { NoStatus() }

    public static func validate(_ o: Object<GlobalRole>) -> [FieldError] {
        NameRules.dnsLabel(o.name, field: "metadata.name")
            + FieldChecks.text(o.spec.displayName, field: "spec.displayName", maxLength: 256)
            + FieldChecks.text(o.spec.description, field: "spec.description")
            + PolicyRule.validate(o.spec.rules, allowNonResourceURLs: true)
    }
}
