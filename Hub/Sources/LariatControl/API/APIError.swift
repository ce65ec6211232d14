import Foundation
import LariatStore

/// An API failure with the status it answers and a message that names what to fix. Encoded in
/// Rancher's error shape: `{"type":"error","status":422,"code":"InvalidFormat","message":…,"fieldName":…}`.
public struct APIError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var code: String
    public var message: String
    public var fields: [FieldError]

    public init(_ status: Int, _ code: String, _ message: String, fields: [FieldError] = []) {
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
    }

    public var description: String { "\(status) \(code): \(message)" }

    public static func badRequest(_ m: String) -> APIError { APIError(400, "BadRequest", m) }
    public static let unauthorized = APIError(401, "Unauthorized", "must authenticate: send Authorization: Bearer <token>")
    public static func forbidden(_ m: String) -> APIError { APIError(403, "Forbidden", m) }
    public static func notFound(_ m: String) -> APIError { APIError(404, "NotFound", m) }
    public static func methodNotAllowed(_ m: String) -> APIError { APIError(405, "MethodNotAllowed", m) }
    public static func conflict(_ m: String) -> APIError { APIError(409, "Conflict", m) }
    public static func gone(_ m: String) -> APIError { APIError(410, "Gone", m) }
    public static func tooLarge(_ m: String) -> APIError { APIError(413, "RequestEntityTooLarge", m) }
    public static func invalid(_ fields: [FieldError]) -> APIError {
        APIError(422, "InvalidFormat", fields.map(\.description).joined(separator: "; "), fields: fields)
    }
    public static func unavailable(_ m: String) -> APIError { APIError(503, "ServiceUnavailable", m) }

    /// The API's answer to a store failure.
    public init(_ failure: StoreFailure) {
        switch failure {
        case .notFound(let k): self = .notFound("\(k.kind) \"\(k.name)\" not found")
        case .alreadyExists(let k): self = APIError(409, "AlreadyExists", "\(k.kind) \"\(k.name)\" already exists")
        case .conflict: self = .conflict(failure.description)
        case .gone: self = .gone(failure.description)
        case .unavailable: self = .unavailable(failure.description)
        case .invalid(let m): self = .badRequest(m)
        }
    }

    struct Body: Encodable, Sendable {
        var type = "error"
        var status: Int
        var code: String
        var message: String
        var fieldName: String?
        var fields: [FieldError]?
    }

    var body: Body {
        Body(status: status, code: code, message: message, fieldName: fields.first?.field, fields: fields.isEmpty ? nil : fields)
    }
}
