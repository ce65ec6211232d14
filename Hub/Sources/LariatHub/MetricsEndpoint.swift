import Dispatch
import Foundation
import LariatControl
import LariatRuntime
import Synchronization

/// `GET /metrics` (Prometheus text format), served through the control plane's router so it is
/// authenticated, audited and counted like any API call, and runs off the network loops.
///
/// Authentication (unless `MetricsSettings.requireAuthentication` is off): the hub's admin
/// token, or an API token whose user may `get` the non-resource URL `/metrics` — the `admin`
/// global role may; give a scraper a user bound to a role with the rule
/// `{nonResourceURLs: ["/metrics"], verbs: ["get"]}`, as Kubernetes does for its own `/metrics`.
final class MetricsEndpoint: Sendable {
    static let path = "/metrics"
    let metrics: HubMetrics
    /// Set once the hub's shared state exists (the router is built before it).
    private let hub = Mutex<HubShared?>(nil)

    init(metrics: HubMetrics) { self.metrics = metrics }

    func attach(_ shared: HubShared) { hub.withLock { $0 = shared } }

    func register(in builder: inout RouterBuilder) {
        builder.add("GET", Self.path, public: true) { [self] ctx, _ in try answer(ctx) }
    }

    private func answer(_ ctx: RequestContext) throws -> APIResponse {
        guard let hub = hub.withLock({ $0 }) else { throw APIError.unavailable("the hub is starting") }
        if metrics.settings.requireAuthentication { try authorize(ctx, hub) }
        metrics.publish(agents: hub.registry.all, tunnels: collectTunnels(hub))
        return APIResponse(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
                           body: Data(metrics.render()))
    }

    private func authorize(_ ctx: RequestContext, _ hub: HubShared) throws {
        let access = Access.nonResource(verb: "get", path: Self.path)
        ctx.access = access
        guard let bearer = ctx.request.bearerToken else {
            ctx.decisionReason = "no credentials"
            throw APIError.unauthorized
        }
        if hub.isAdmin(bearer) {
            ctx.decisionReason = "admin token"
            return
        }
        let router = hub.control.router
        switch router.authenticator.authenticate(bearer: bearer) {
        case .failed(let reason):
            ctx.decisionReason = reason
            throw APIError.unauthorized
        case .authenticated(let principal):
            if router.passwordChangeRequired(principal) {
                throw APIError.forbidden("the password must be changed first: POST /v3/users?action=changepassword")
            }
            let decision = router.authorizer.authorize(principal, access)
            ctx.decisionReason = decision.reason
            guard decision.allowed else { throw APIError.forbidden("\(principal.username) may not \(access)") }
        }
    }

    /// Each worker sums its tunnels by cluster on its own loop; this waits for all of them (up
    /// to the collect timeout: a worker that does not answer is left out of this scrape).
    private func collectTunnels(_ hub: HubShared) -> [String: TunnelTotals] {
        let workers = hub.workers
        final class Sum: Sendable { let totals = Mutex<[String: TunnelTotals]>([:]) }
        let sum = Sum()
        let done = DispatchSemaphore(value: 0)
        for w in workers {
            w.loop.execute {
                let mine = w.value.tunnelTotals()
                sum.totals.withLock { total in for (cluster, t) in mine { total[cluster, default: TunnelTotals()].add(t) } }
                done.signal()
            }
        }
        let deadline = DispatchTime.now() + .milliseconds(metrics.settings.collectTimeoutMilliseconds)
        for _ in workers { if done.wait(timeout: deadline) == .timedOut { break } }
        return sum.totals.withLock { $0 }
    }
}
