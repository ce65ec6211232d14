import Dispatch
@testable import LariatControl
@testable import LariatHub
import LariatProtocol
import Testing

/// The hub's metrics registry: scrape-time readings become gauges and never-decreasing
/// counters; series of clusters that went away read 0 instead of vanishing mid-graph.
@Suite struct HubMetricsTests {
    private func entry(_ key: UInt64, _ cluster: String, _ role: AgentRole = .clusterAgent, established: Bool = true) -> AgentRegistry.Entry {
        var e = AgentRegistry.Entry(key: key, cluster: cluster, agentID: "a\(key)", role: role, worker: 0, remote: "127.0.0.1:1",
                                    software: "lariat-agent/test", connectedAtNanos: 0, connectedAtSeconds: 0)
        e.established = established
        return e
    }

    private func value(_ text: String, _ name: String, _ labels: [String]) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(name + "{") {
            if labels.allSatisfy({ line.contains($0) }), let v = line.split(separator: " ").last { return Double(v) }
        }
        return nil
    }

    @Test func readingsBecomeGaugesAndMonotonicCounters() {
        let m = HubMetrics(settings: MetricsSettings())
        m.publish(agents: [entry(1, "edge"), entry(2, "edge", .nodeAgent), entry(3, "edge", .nodeAgent), entry(4, "lab", established: false)],
                  tunnels: ["edge": TunnelTotals(streams: 4, bytesToAgent: 1000, bytesFromAgent: 50)])
        var text = String(decoding: m.render(), as: UTF8.self)
        #expect(value(text, HubMetrics.agentsLabel, [#"cluster="edge""#, #"role="cluster""#]) == 1)
        #expect(value(text, HubMetrics.agentsLabel, [#"cluster="edge""#, #"role="node""#]) == 2)
        #expect(value(text, HubMetrics.agentsLabel, [#"cluster="lab""#]) == nil)  // not established yet
        #expect(value(text, HubMetrics.streamsLabel, [#"cluster="edge""#]) == 4)
        #expect(value(text, HubMetrics.bytesLabel, [#"cluster="edge""#, #"direction="to_agent""#]) == 1000)

        // A reading that is short (a worker did not answer in time) never takes a counter back.
        m.publish(agents: [], tunnels: ["edge": TunnelTotals(streams: 0, bytesToAgent: 400, bytesFromAgent: 60)])
        text = String(decoding: m.render(), as: UTF8.self)
        #expect(value(text, HubMetrics.bytesLabel, [#"cluster="edge""#, #"direction="to_agent""#]) == 1000)
        #expect(value(text, HubMetrics.bytesLabel, [#"cluster="edge""#, #"direction="from_agent""#]) == 60)
        #expect(value(text, HubMetrics.agentsLabel, [#"cluster="edge""#, #"role="node""#]) == 0)
        #expect(value(text, HubMetrics.streamsLabel, [#"cluster="edge""#]) == 0)

        m.publish(agents: [], tunnels: ["edge": TunnelTotals(streams: 0, bytesToAgent: 1500, bytesFromAgent: 60)])
        text = String(decoding: m.render(), as: UTF8.self)
        #expect(value(text, HubMetrics.bytesLabel, [#"cluster="edge""#, #"direction="to_agent""#]) == 1500)
    }

    @Test func failuresAndAPIRequestsAreCountedByLabel() {
        let m = HubMetrics(settings: MetricsSettings())
        m.handshakeFailed("tls")
        m.handshakeFailed("tls")
        m.authenticationFailed("agent")
        let api = APIMetrics(factory: m.factory)
        let n = 10_000
        let start = DispatchTime.now().uptimeNanoseconds
        for i in 0..<n { api.record(route: "/v3/clusters/{name}", method: "GET", status: i % 2 == 0 ? 200 : 404, nanoseconds: 1_500_000) }
        let perRequest = Double(DispatchTime.now().uptimeNanoseconds - start) / Double(n) / 1000
        print("APIMetrics.record through the Prometheus factory: \(perRequest) µs per request")
        let text = String(decoding: m.render(), as: UTF8.self)
        #expect(value(text, HubMetrics.handshakeFailuresLabel, [#"reason="tls""#]) == 2)
        #expect(value(text, HubMetrics.authenticationFailuresLabel, [#"reason="agent""#]) == 1)
        #expect(value(text, APIMetrics.requestsLabel, [#"status="200""#]) == Double(n / 2))
        #expect(value(text, APIMetrics.durationLabel + "_count", [#"route="/v3/clusters/{name}""#]) == Double(n))
        // 1.5 ms falls in the 2 ms bucket of the API latency buckets, not the 1 ms one.
        #expect(value(text, APIMetrics.durationLabel + "_bucket", [#"le="0.001""#]) == 0)
        #expect(value(text, APIMetrics.durationLabel + "_bucket", [#"le="0.002""#]) == Double(n))
        #expect(text.contains(#"lariat_hub_info{version=""#))
    }
}
