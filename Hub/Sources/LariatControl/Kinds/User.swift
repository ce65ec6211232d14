import Foundation
import LariatStore

/// A local user (Rancher's `users`): the login name people type, a password kept only as a slow
/// hash, and the principals and groups the user is known by. Objects are named `u-xxxxx`.
public enum User: Resource {
    public static let kind = "User"
    public static let plural = "users"

    public struct Spec: Codable, Sendable, Equatable {
        /// The login name (unique among users; the API checks it on create).
        public var username: String
        public var displayName: String
        public var description: String
        /// A `PasswordHasher` string (`$scrypt$ln=…`); empty for a user who cannot log in with a password.
        public var passwordHash: String
        /// Set for bootstrap and admin-reset passwords: the next login must change it.
        public var mustChangePassword: Bool
        /// A disabled user's logins and tokens are refused at once.
        public var enabled: Bool
        /// The principals this user is (`local://u-xxxxx`; external providers add theirs).
        public var principalIDs: [String]
        /// Group principals the user belongs to; group bindings match these.
        public var groups: [String]

        public init(username: String, displayName: String = "", description: String = "", passwordHash: String = "",
                    mustChangePassword: Bool = false, enabled: Bool = true, principalIDs: [String] = [],
                    groups: [String] = []) {
            self.username = username
            self.displayName = displayName
            self.description = description
            self.passwordHash = passwordHash
            self.mustChangePassword = mustChangePassword
            self.enabled = enabled
            self.principalIDs = principalIDs
            self.groups = groups
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            username = try c.decode(String.self, forKey: .username)
            displayName = try c.decodeIfPresent(String.self, forKey: .displayName) ?? ""
            description = try c.decodeIfPresent(String.self, forKey: .description) ?? ""
            passwordHash = try c.decodeIfPresent(String.self, forKey: .passwordHash) ?? ""
            mustChangePassword = try c.decodeIfPresent(Bool.self, forKey: .mustChangePassword) ?? false
            enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? true
            principalIDs = try c.decodeIfPresent([String].self, forKey: .principalIDs) ?? []
            groups = try c.decodeIfPresent([String].self, forKey: .groups) ?? []
        }
    }

    public struct Status: Codable, Sendable, Equatable {
        public var conditions: [Condition]
        public init(conditions: [Condition] = []) { self.conditions = conditions }
    }

    public static func emptyStatus() -> Status { Status() }

    /// The longest login name accepted.
    public static let maxUsernameLength = 128

    /// The principal ID of a local user, as Rancher writes it.
    public static func localPrincipalID(_ name: String) -> String { "local://\(name)" }

    public static func validate(_ o: Object<User>) -> [FieldError] {
        var errors = NameRules.dnsLabel(o.name, field: "metadata.name")
        let u = o.spec.username
        if u.isEmpty {
            errors.append(FieldError("spec.username", "is required"))
        } else if u.utf8.count > maxUsernameLength {
            errors.append(FieldError("spec.username", "must be at most \(maxUsernameLength) bytes"))
        } else if !u.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "-_.@".unicodeScalars.contains($0)) }) {
            errors.append(FieldError("spec.username", "may contain only ASCII letters, digits, '-', '_', '.' and '@'"))
        }
        errors += FieldChecks.text(o.spec.displayName, field: "spec.displayName", maxLength: 256)
        errors += FieldChecks.text(o.spec.description, field: "spec.description")
        if !o.spec.passwordHash.isEmpty && !PasswordHasher.isEncodedHash(o.spec.passwordHash) {
            errors.append(FieldError("spec.passwordHash", "is not a password hash this hub writes"))
        }
        for (i, id) in o.spec.principalIDs.enumerated() {
            errors += FieldChecks.text(id, field: "spec.principalIDs[\(i)]", maxLength: 512, required: true)
        }
        for (i, g) in o.spec.groups.enumerated() {
            errors += FieldChecks.text(g, field: "spec.groups[\(i)]", maxLength: 512, required: true)
        }
        return errors
    }
}
