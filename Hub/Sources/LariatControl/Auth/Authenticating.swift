/// Turns a bearer token into a principal. The answer to the client is always the same 401; the
/// reason is for the audit record and the failed-authentication throttle.
public protocol Authenticating: Sendable {
    func authenticate(bearer: String) -> AuthenticationResult
}

public enum AuthenticationResult: Sendable, Equatable {
    case authenticated(Principal)
    case failed(reason: String)
}
