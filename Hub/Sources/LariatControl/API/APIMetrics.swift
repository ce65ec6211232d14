import CoreMetrics
import Foundation

/// What the router counts (through swift-metrics, so the hub decides where it goes): requests
/// by route pattern (never the raw path: names would make one series per object), method and
/// status, and their latency as a histogram. Without a factory nothing is recorded.
public struct APIMetrics: Sendable {
    public static let requestsLabel = "lariat_api_requests_total"
    public static let durationLabel = "lariat_api_request_duration_seconds"
    let factory: (any MetricsFactory)?

    public init(factory: (any MetricsFactory)?) { self.factory = factory }

    func record(route: String, method: String, status: Int, nanoseconds: Int64) {
        guard let factory else { return }
        Counter(label: Self.requestsLabel, dimensions: [("route", route), ("method", method), ("status", String(status))],
                factory: factory).increment()
        CoreMetrics.Timer(label: Self.durationLabel, dimensions: [("route", route), ("method", method)], factory: factory)
            .recordNanoseconds(nanoseconds)
    }
}
