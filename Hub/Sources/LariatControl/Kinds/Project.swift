import LariatStore

/// A named set of namespaces in one cluster: what project role bindings grant access to.
public enum Project: Resource {
    public static let kind = "Project"
    public static let plural = "projects"

    public struct Spec: Codable, Sendable, Equatable {
        public var clusterName: String
        public var displayName: String
        public var namespaces: [String]
        public init(clusterName: String, displayName: String = "", namespaces: [String] = []) {
            self.clusterName = clusterName
            self.displayName = displayName
            self.namespaces = namespaces
        }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            clusterName = try c.decode(String.self, forKey: .clusterName)
            displayName = try c.decodeIfPresent(String.self, forKey: .displayName) ?? ""
            namespaces = try c.decodeIfPresent([String].self, forKey: .namespaces) ?? []
        }
    }

    public typealias Status = NoStatus
    public static func emptyStatus() -> NoStatus { NoStatus() }

    public static func validate(_ o: Object<Project>) -> [FieldError] {
        var errors = NameRules.dnsLabel(o.metadata.name, field: "metadata.name")
        errors += NameRules.dnsLabel(o.spec.clusterName, field: "spec.clusterName")
        for (i, ns) in o.spec.namespaces.enumerated() {
            errors += NameRules.dnsLabel(ns, field: "spec.namespaces[\(i)]")
        }
        if Set(o.spec.namespaces).count != o.spec.namespaces.count {
            errors.append(FieldError("spec.namespaces", "lists a namespace twice"))
        }
        return errors
    }
}
