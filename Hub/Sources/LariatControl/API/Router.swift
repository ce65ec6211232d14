import Foundation
import LariatHTTP
import Logging
import LariatStore

/// The control plane's front: matches a request to a route, authenticates it (unless the route
/// is public), lets the route authorize and act, and audits every request — allowed, refused
/// or failed — through one hook. Routes live one file per resource (`Routes/`); this file knows
/// none of them.
public final class Router: Sendable {
    public typealias Handler = @Sendable (RequestContext, [String: String]) throws -> APIResponse

    struct Route: Sendable {
        var method: String
        /// "/v3/clusters/{name}": the route's label in metrics.
        var pattern: String
        var segments: [Segment]
        var isPublic: Bool
        var handler: Handler
    }

    enum Segment: Sendable, Equatable {
        case literal(String)
        case parameter(String)
    }

    public let authenticator: any Authenticating
    public let authorizer: any Authorizing
    public let audit: any AuditSink
    public let logger: Logger
    /// Users who must change their password may do only that (and log out) until they have.
    public let passwordChangeRequired: @Sendable (Principal) -> Bool
    private let routes: [Route]
    private let metrics: APIMetrics

    init(routes: [Route], authenticator: any Authenticating, authorizer: any Authorizing, audit: any AuditSink,
         logger: Logger, passwordChangeRequired: @escaping @Sendable (Principal) -> Bool, metrics: APIMetrics) {
        self.routes = routes
        self.metrics = metrics
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.audit = audit
        self.logger = logger
        self.passwordChangeRequired = passwordChangeRequired
    }

    /// Answers one request (blocking: call it off the network loops).
    public func handle(_ request: APIRequest) -> APIResponse {
        let ctx = RequestContext(request: request)
        let response: APIResponse
        do {
            response = try dispatch(ctx)
        } catch let e as APIError {
            response = .error(e)
            if ctx.decisionReason.isEmpty { ctx.decisionReason = e.message }
        } catch let e as StoreFailure {
            let api = APIError(e)
            response = .error(api)
            if ctx.decisionReason.isEmpty { ctx.decisionReason = api.message }
        } catch {
            logger.error("API \(request.method) \(request.path.logQuoted) failed: \(error)")
            response = .error(APIError(500, "ServerError", "internal error (request \(ctx.requestID))"))
            ctx.decisionReason = "internal error"
        }
        record(ctx, status: response.status)
        metrics.record(route: ctx.route, method: request.method, status: response.status,
                       nanoseconds: Int64(Date().timeIntervalSince(ctx.startedAt) * 1_000_000_000))
        var answered = response
        answered.headers.append(("X-Request-Id", ctx.requestID))
        return answered
    }

    private func dispatch(_ ctx: RequestContext) throws -> APIResponse {
        let parts = ctx.request.path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        var pathMatched = false
        for route in routes {
            guard let params = Self.match(route.segments, parts) else { continue }
            pathMatched = true
            guard route.method == ctx.request.method else { continue }
            ctx.route = route.pattern
            if !route.isPublic {
                try authenticate(ctx)
                let action = ctx.request.query["action"]
                if passwordChangeRequired(ctx.caller), action != "changepassword", action != "logout" {
                    throw APIError.forbidden("the password must be changed first: POST /v3/users?action=changepassword")
                }
            }
            return try route.handler(ctx, params)
        }
        if pathMatched { throw APIError.methodNotAllowed("\(ctx.request.method) is not allowed on \(ctx.request.path)") }
        throw APIError.notFound("no such endpoint: \(ctx.request.method) \(ctx.request.path)")
    }

    private func authenticate(_ ctx: RequestContext) throws {
        guard let bearer = ctx.request.bearerToken else {
            ctx.decisionReason = "no credentials"
            throw APIError.unauthorized
        }
        switch authenticator.authenticate(bearer: bearer) {
        case .authenticated(let p):
            ctx.principal = p
        case .failed(let reason):
            ctx.decisionReason = reason
            throw APIError.unauthorized
        }
    }

    /// Refuses with 403 unless the caller may do `access`; records the decision for the audit.
    public func authorize(_ ctx: RequestContext, _ access: Access) throws {
        ctx.access = access
        let decision = authorizer.authorize(ctx.caller, access)
        ctx.decisionReason = decision.reason
        guard decision.allowed else {
            throw APIError.forbidden("\(ctx.caller.username) may not \(access)")
        }
    }

    /// Whether the caller may do `access` (for filtering lists; not recorded).
    public func allows(_ ctx: RequestContext, _ access: Access) -> Bool {
        authorizer.authorize(ctx.caller, access).allowed
    }

    private func record(_ ctx: RequestContext, status: Int) {
        let p = ctx.principal
        audit.record(AuditRecord(
            time: ctx.startedAt, requestID: ctx.requestID, user: p?.username, groups: p?.groups, token: p?.tokenName,
            source: ctx.request.source, method: ctx.request.method, path: ctx.auditPath,
            verb: ctx.access?.verb, resource: ctx.access?.resource, name: ctx.access?.name, cluster: ctx.access?.cluster,
            status: status, reason: ctx.decisionReason,
            durationMicros: Int(Date().timeIntervalSince(ctx.startedAt) * 1_000_000)))
    }

    static func match(_ segments: [Segment], _ parts: [String]) -> [String: String]? {
        guard segments.count == parts.count else { return nil }
        var params: [String: String] = [:]
        for (s, p) in zip(segments, parts) {
            switch s {
            case .literal(let l): if l != p { return nil }
            case .parameter(let name): params[name] = PercentEncoding.decode(p) ?? String(p)
            }
        }
        return params
    }
}

/// Collects routes, then builds the router.
public struct RouterBuilder {
    var routes: [Router.Route] = []
    public init() {}

    /// `pattern`: "/v3/clusters/{name}"; `{x}` segments arrive as parameters.
    public mutating func add(_ method: String, _ pattern: String, public isPublic: Bool = false,
                             _ handler: @escaping Router.Handler) {
        let segments: [Router.Segment] = pattern.split(separator: "/").map { s in
            s.hasPrefix("{") && s.hasSuffix("}") ? .parameter(String(s.dropFirst().dropLast())) : .literal(String(s))
        }
        routes.append(Router.Route(method: method, pattern: pattern, segments: segments, isPublic: isPublic, handler: handler))
    }

    public func build(authenticator: any Authenticating, authorizer: any Authorizing, audit: any AuditSink,
                      logger: Logger, passwordChangeRequired: @escaping @Sendable (Principal) -> Bool = { _ in false },
                      metrics: APIMetrics = APIMetrics(factory: nil)) -> Router {
        Router(routes: routes, authenticator: authenticator, authorizer: authorizer, audit: audit, logger: logger,
               passwordChangeRequired: passwordChangeRequired, metrics: metrics)
    }
}
