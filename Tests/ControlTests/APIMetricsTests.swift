import Foundation
import LariatControl
import LariatStore
import Logging
import MetricsTestKit
import Testing

/// The router counts every request by route pattern (never the raw path), method and status,
/// and times it, through whatever swift-metrics factory the control plane is given.
@Suite struct APIMetricsTests {
    @Test func requestsAreCountedByRoutePatternAndStatus() throws {
        let directory = NSTemporaryDirectory() + "lariat-apimetrics-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let backend = try SQLiteBackend(folder: directory)
        let metrics = TestMetrics()
        var settings = ControlPlane.Settings(serverURL: "https://127.0.0.1:8443", caPEM: "pem", caChecksum: "sum")
        settings.metricsFactory = metrics
        var hasher = PasswordHasher.Settings()
        hasher.logN = 10
        let services = try ControlPlaneServices.open(
            backend: backend, settings: settings, audit: MemoryAuditSink(), logger: Logger(label: "test"),
            passwordHasher: PasswordHasher(settings: hasher),
            environment: [ControlPlaneServices.bootstrapPasswordVariable: "bootstrap-password-1"])
        defer {
            services.stop()
            backend.close()
            try? FileManager.default.removeItem(atPath: directory)
        }
        func call(_ method: String, _ target: String, _ body: String = "") -> Int {
            services.control.router.handle(APIRequest(method: method, target: target, headers: [], body: Data(body.utf8),
                                                      remote: "127.0.0.1:1", source: "127.0.0.1")).status
        }
        #expect(call("GET", "/v3/clusters/edge-1") == 401)
        #expect(call("GET", "/v3/clusters/edge-2") == 401)
        #expect(call("GET", "/v3/no-such-thing") == 404)
        #expect(call("BREW", "/v3/no-such-thing") == 404)
        #expect(call("STEEP", "/v3/no-such-thing") == 404)
        #expect(call("POST", "/v3-public/localProviders/local?action=login",
                     #"{"username":"admin","password":"bootstrap-password-1"}"#) == 201)

        func count(_ route: String, _ method: String, _ status: String) -> Int64 {
            metrics.counterTotal(label: APIMetrics.requestsLabel,
                                 dimensions: [("route", route), ("method", method), ("status", status)])
        }
        #expect(count("/v3/clusters/{name}", "GET", "401") == 2)
        #expect(count("unmatched", "GET", "404") == 1)
        // Methods a client makes up share one label.
        #expect(count("unmatched", "other", "404") == 2)
        #expect(count("/v3-public/localProviders/local", "POST", "201") == 1)
        // No series per object name.
        #expect(metrics.counters(label: APIMetrics.requestsLabel).allSatisfy { c in
            !c.dimensions.contains { $0.1.contains("edge-") }
        })
        let timer = try metrics.expectTimer(APIMetrics.durationLabel, [("route", "/v3/clusters/{name}"), ("method", "GET")])
        #expect(timer.values.count == 2)
        #expect(timer.values.allSatisfy { $0 > 0 })
    }
}
