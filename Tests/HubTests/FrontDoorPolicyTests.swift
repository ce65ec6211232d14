import Foundation
@testable import LariatHub
import LariatProtocol
import LariatRuntime
import Testing

@Suite struct AuthThrottleTests {
    let second: UInt64 = 1_000_000_000

    @Test func aBurstOfFailuresThrottlesTheSourceUntilItEarnsAnAttemptBack() {
        let throttle = AuthThrottle(burst: 3, refillPerSecond: 0.5)
        let t0: UInt64 = 100 * second
        #expect(throttle.retryAfter(source: "192.0.2.1", now: t0) == nil)
        #expect(throttle.recordFailure(source: "192.0.2.1", reason: "bad token", now: t0))  // first: logged alone
        #expect(!throttle.recordFailure(source: "192.0.2.1", reason: "bad token", now: t0))
        #expect(throttle.retryAfter(source: "192.0.2.1", now: t0) == nil)
        throttle.recordFailure(source: "192.0.2.1", reason: "bad token", now: t0)
        // Three failures used the burst: refused, and told to come back in 1 / 0.5 = 2 s.
        #expect(throttle.retryAfter(source: "192.0.2.1", now: t0) == 2)
        #expect(throttle.retryAfter(source: "192.0.2.1", now: t0 + second) == 1)
        #expect(throttle.retryAfter(source: "192.0.2.1", now: t0 + 2 * second) == nil)
        // Another address is unaffected.
        #expect(throttle.retryAfter(source: "192.0.2.2", now: t0) == nil)
    }

    @Test func theReportAggregatesPerSourceAndForgetsRecoveredSources() {
        let throttle = AuthThrottle(burst: 2, refillPerSecond: 1)
        let t0: UInt64 = 5 * second
        for _ in 0..<5 { throttle.recordFailure(source: "198.51.100.7", reason: "r", now: t0) }
        _ = throttle.retryAfter(source: "198.51.100.7", now: t0)
        let report = throttle.takeReport(now: t0)
        #expect(report == [.init(source: "198.51.100.7", failures: 5, refusals: 1, lastReason: "r")])
        #expect(throttle.takeReport(now: t0).isEmpty)  // counts reset
        #expect(throttle.trackedSources == 1)          // still throttled: kept
        _ = throttle.takeReport(now: t0 + 10 * second)
        #expect(throttle.trackedSources == 0)          // bucket full again: forgotten
    }

    @Test func trackedSourcesAreBounded() {
        let throttle = AuthThrottle(burst: 5, refillPerSecond: 1, maxTrackedSources: 100)
        for i in 0..<1000 { throttle.recordFailure(source: "10.0.\(i / 256).\(i % 256)", reason: "r", now: second) }
        #expect(throttle.trackedSources == 100)
    }
}

@Suite struct ConnectionAdmissionTests {
    @Test func capsPerSourceAndInTotalAndGivesSlotsBackWithTheTicket() throws {
        let admission = ConnectionAdmission(maxTotal: 5, maxPerSource: 3)
        var held: [ConnectionAdmission.Ticket] = []
        for _ in 0..<3 { held.append(try admission.admit(source: "a").get()) }
        #expect(throws: ConnectionAdmission.Refusal.perSource(3)) { try admission.admit(source: "a").get() }
        for _ in 0..<2 { held.append(try admission.admit(source: "b").get()) }
        #expect(throws: ConnectionAdmission.Refusal.total(5)) { try admission.admit(source: "c").get() }
        #expect(admission.open == 5 && admission.takeRefusedCount() == 2 && admission.takeRefusedCount() == 0)
        held.removeFirst()  // the ticket's last owner lets go: the slot is free again
        #expect(admission.open == 4 && admission.open(from: "a") == 2)
        held.append(try admission.admit(source: "c").get())
        held.removeAll()
        #expect(admission.open == 0 && admission.open(from: "a") == 0)
    }
}

@Suite struct AgentRoutingTests {
    func entry(_ key: UInt64, _ id: String, role: AgentRole = .clusterAgent, at: UInt64, established: Bool = true,
               draining: Bool = false, unhealthyUntil: UInt64 = 0) -> AgentRegistry.Entry {
        var e = AgentRegistry.Entry(key: key, cluster: "c", agentID: id, role: role, worker: 0, remote: "r",
                                    software: "s", connectedAtNanos: at, connectedAtSeconds: 0)
        e.established = established
        e.draining = draining
        e.unhealthyUntilNanos = unhealthyUntil
        return e
    }

    @Test func newStreamsStayWithTheEstablishedAgentNotTheNewcomer() {
        let old = entry(1, "old", at: 100), newcomer = entry(2, "newcomer", at: 200)
        #expect(AgentRegistry.choose(from: [newcomer, old], now: 300)?.agentID == "old")
    }

    @Test(arguments: [
        // (description, agents, expected)
        ("cluster agent before node agent", ["node@1", "cluster@2"], "cluster@2"),
        ("draining agents are skipped", ["cluster@1:draining", "cluster@2"], "cluster@2"),
        ("half-registered agents are skipped", ["cluster@1:handshaking", "node@2"], "node@2"),
        ("a healthy node agent beats an unhealthy cluster agent", ["cluster@1:unhealthy", "node@2"], "node@2"),
        ("unhealthy is still better than nothing", ["cluster@1:unhealthy"], "cluster@1"),
        ("nothing usable", ["cluster@1:draining"], "none"),
    ])
    func routingRules(_ name: String, _ agents: [String], _ expected: String) {
        let entries = agents.enumerated().map { i, spec -> AgentRegistry.Entry in
            let parts = spec.split(separator: ":")
            let id = String(parts[0])
            let flag = parts.count > 1 ? String(parts[1]) : ""
            let at = UInt64(id.split(separator: "@")[1])!
            return entry(UInt64(i + 1), id, role: id.hasPrefix("node") ? .nodeAgent : .clusterAgent, at: at,
                         established: flag != "handshaking", draining: flag == "draining",
                         unhealthyUntil: flag == "unhealthy" ? 1_000 : 0)
        }
        #expect((AgentRegistry.choose(from: entries, now: 500)?.agentID ?? "none") == expected, "\(name)")
    }

    @Test func anAgentIdIsRegisteredOncePerCluster() {
        let registry = AgentRegistry()
        #expect(registry.register(entry(1, "a", at: 1)) == nil)
        #expect(registry.register(entry(2, "a", at: 2))?.key == 1)
        var other = entry(3, "a", at: 3)
        other.cluster = "other"
        #expect(registry.register(other) == nil)
        registry.remove(1)
        #expect(registry.register(entry(4, "a", at: 4)) == nil)
    }
}

@Suite struct UntrustedTextTests {
    @Test func agentListingIsValidJSONWhateverTheIdsHold() throws {
        let evil = "x\",\"role\":\"admin\"}\n]\u{1b}[31m"
        var e = AgentRegistry.Entry(key: 1, cluster: "c", agentID: evil, role: .nodeAgent, worker: 0,
                                    remote: "127.0.0.1:1", software: "s\"", connectedAtNanos: 0, connectedAtSeconds: 0)
        e.established = true
        let json = AgentListing.json(AgentListing.rows([e], now: 1))
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let decoded = try decoder.decode([AgentListing].self, from: Data(json))
        #expect(decoded.count == 1 && decoded[0].agent == evil && decoded[0].role == "node" && decoded[0].carriesNewStreams)
    }

    @Test func logQuotedEscapesLineBreaksControlsAndQuotes() {
        #expect("a\"b\\c\nd\re\u{1b}[0m\u{202E}".logQuoted == #""a\"b\\c\nd\re\u{1b}[0m\u{202e}""#)
        let long = String(repeating: "x", count: 1000).logQuoted
        #expect(long.count == String.logFieldLimit + 3 && long.hasSuffix("…\""))
    }
}
