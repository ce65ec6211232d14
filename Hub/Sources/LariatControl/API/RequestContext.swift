import Foundation

/// One API request on its way through the router: who asked (once authenticated), what it is
/// (for the audit record), and a request id that ties log, audit and response together.
public final class RequestContext: @unchecked Sendable {
    // Invariant: a context belongs to the one control-plane task handling its request.
    public let request: APIRequest
    public let requestID: String
    public let startedAt: Date
    public internal(set) var principal: Principal?
    /// What the request did, in RBAC terms (set by the route once it knows).
    public var access: Access?
    /// Why it was allowed or refused (the authorizer's reason, or an authentication failure).
    public var decisionReason = ""
    /// The path as audited: routes whose path holds a secret replace it.
    public var auditPath: String
    /// The matched route's pattern ("/v3/clusters/{name}"), the request's label in metrics.
    public var route = "unmatched"

    init(request: APIRequest) {
        self.request = request
        requestID = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        startedAt = Date()
        auditPath = request.path
    }

    /// The authenticated principal; routes behind authentication may rely on it.
    public var caller: Principal {
        guard let principal else { preconditionFailure("route reached without authentication") }
        return principal
    }
}
