import Foundation

/// Field checks the identity and role kinds share (names use `NameRules`).
public enum FieldChecks {
    /// Free text shown to people (display names, descriptions, group principals): bounded and
    /// free of control characters, which would forge lines in logs and terminals.
    public static func text(_ text: String, field: String, maxLength: Int = 1024, required: Bool = false) -> [FieldError] {
        if required && text.trimmingCharacters(in: .whitespaces).isEmpty { return [FieldError(field, "required")] }
        if text.utf8.count > maxLength { return [FieldError(field, "at most \(maxLength) bytes")] }
        if text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            return [FieldError(field, "must not contain control characters")]
        }
        return []
    }

    /// The subject of a binding: exactly one of a user (by User object name) and a group principal.
    public static func subject(userName: String?, groupPrincipalName: String?) -> [FieldError] {
        switch (userName.flatMap { $0.isEmpty ? nil : $0 }, groupPrincipalName.flatMap { $0.isEmpty ? nil : $0 }) {
        case (nil, nil):
            return [FieldError("spec.userName", "one of spec.userName and spec.groupPrincipalName is required")]
        case (.some, .some):
            return [FieldError("spec.groupPrincipalName", "give spec.userName or spec.groupPrincipalName, not both")]
        case (.some(let user), nil):
            return NameRules.dnsLabel(user, field: "spec.userName")
        case (nil, .some(let group)):
            return text(group, field: "spec.groupPrincipalName", maxLength: 512)
        }
    }
}
