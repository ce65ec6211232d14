import Foundation
import LariatControl
import LariatStore
import Logging
import Synchronization
import Testing

/// Cluster stats (issue #10, "Upward"): Kubernetes quantities, what `ClusterStatsController`
/// reads from a cluster's API server into the Cluster's status, `StatsFresh` going stale on an
/// injected clock, and the stats and the agents' fields surviving each other's writes.
@Suite struct ClusterStatsTests {
    // MARK: Quantities

    @Test(arguments: [
        // (quantity, value in units rounded away from zero, value in thousandths)
        ("4", 4, 4000),
        ("500m", 1, 500),
        ("250m", 1, 250),
        ("0.5", 1, 500),
        ("1.5", 2, 1500),
        (".5", 1, 500),
        ("5.", 5, 5000),
        ("2k", 2000, 2_000_000),
        ("100u", 1, 1),
        ("1n", 1, 1),
        ("0", 0, 0),
        ("16Gi", 17_179_869_184, 17_179_869_184_000),
        ("1024Ki", 1_048_576, 1_048_576_000),
        ("123Mi", 128_974_848, 128_974_848_000),
        ("1.5Gi", 1_610_612_736, 1_610_612_736_000),
        ("1Ti", 1_099_511_627_776, 1_099_511_627_776_000),
        ("128974848", 128_974_848, 128_974_848_000),
        ("129e6", 129_000_000, 129_000_000_000),
        ("129M", 129_000_000, 129_000_000_000),
        ("1E3", 1000, 1_000_000),
        ("1.5e3", 1500, 1_500_000),
        ("12e-1", 2, 1200),
        ("1E", 1_000_000_000_000_000_000, Int64.max),
        ("8Ei", Int64.max, Int64.max),
        ("+5", 5, 5000),
        ("-1.2", -2, -1200),
        ("110", 110, 110_000),
        ("007", 7, 7000),
    ] as [(String, Int64, Int64)])
    func quantitiesParseAsKubernetesDoes(_ text: String, _ value: Int64, _ milli: Int64) throws {
        let q = try #require(KubernetesQuantity(text), "\(text) did not parse")
        #expect(q.value == value, "\(text)")
        #expect(q.milliValue == milli, "\(text)")
    }

    @Test(arguments: ["", "Gi", "1.2.3", "1x", "1KI", "1ki", "e3", "1e", "1e+", "--1", " 1", "1 ", "1Gi ", ".", "1e3.5", "0x10",
                      "1e99999", "1mi"])
    func malformedQuantitiesAreRefused(_ text: String) {
        #expect(KubernetesQuantity(text) == nil, "\(text.debugDescription) parsed")
    }

    // MARK: What is read

    @Test func statsFromTheAPIServerLandInTheClusterStatusAndTheAPI() throws {
        let h = try APIHarness()
        let admin = try h.adminToken()
        let cluster = FakeStatsCluster()
        let clock = TestClock()
        let controller = makeController(h, cluster, clock: clock)
        defer { controller.stop() }
        try createCluster(h, "c1")

        #expect(try controller.refresh(cluster: "c1") == .updated)
        let status = try h.control.clusters.get("c1").status
        #expect(status.kubernetes == Cluster.KubernetesInfo(version: "v1.32.4", platform: "linux/amd64"))
        #expect(status.nodes?.total == 3)
        #expect(status.nodes?.ready == 2)
        // 4 + 500m + 2 CPUs; 16Gi + 1024Ki + 2Gi; 110 + 110 + 20 pods.
        #expect(status.capacity == Cluster.ResourceTotals(cpuMillis: 6500, memoryBytes: 17_179_869_184 + 1_048_576 + 2_147_483_648,
                                                          pods: 240))
        #expect(status.allocatable == Cluster.ResourceTotals(cpuMillis: 3900 + 400 + 1000,
                                                             memoryBytes: 16_000_000_000 + 524_288 + 1_000_000, pods: 235))
        // Not-ready nodes first, then by name.
        #expect(status.nodes?.items.map(\.name) == ["n-cold", "n-a", "n-b"])
        #expect(status.nodes?.items.first?.kubeletVersion == "v1.32.3")
        #expect(status.pods == Cluster.PodCounts(total: 6, byPhase: ["Running": 3, "Pending": 1, "Failed": 1, "Unknown": 1]))
        let warnings = try #require(status.warnings)
        // 25 warnings and one Normal event were served: the 20 newest warnings, newest first.
        #expect(warnings.count == 20)
        #expect(warnings.first?.reason == "BackOff-24")
        #expect(warnings.first?.object == "pod/web-24")
        #expect(warnings.first?.namespace == "default")
        #expect(warnings.first?.count == 3)
        #expect(warnings.last?.reason == "BackOff-5")
        #expect(zip(warnings, warnings.dropFirst()).allSatisfy { ($0.time ?? .distantPast) >= ($1.time ?? .distantPast) })
        #expect(!warnings.contains { $0.reason == "Scheduled" })
        // The cluster wrote a 10,000-character message: it is cut.
        let long = try #require(warnings.first { $0.reason == "BackOff-20" })
        #expect(long.message.count == ClusterStatsController.Settings().maxMessageCharacters)
        #expect(status.statsUpdatedAt == clock.date)
        #expect(status.conditions["StatsFresh"]?.status == .true)
        #expect(status.conditions["StatsFresh"]?.reason == "Reported")

        // Every request impersonated nobody but went through the client; lists are paged.
        let paths = cluster.requests
        #expect(paths.contains("/version"))
        #expect(paths.contains { $0.hasPrefix("/api/v1/nodes?limit=") })
        #expect(paths.contains { $0.hasPrefix("/api/v1/events?fieldSelector=type%3DWarning&limit=") })

        // GET /v3/clusters/c1 serves the new fields.
        let a = h.call("GET", "/v3/clusters/c1", bearer: admin)
        #expect(a.status == 200, "\(a.text)")
        let served = try #require(a.json["status"] as? [String: Any])
        #expect((served["kubernetes"] as? [String: Any])?["version"] as? String == "v1.32.4")
        #expect((served["nodes"] as? [String: Any])?["ready"] as? Int == 2)
        #expect((served["capacity"] as? [String: Any])?["cpuMillis"] as? Int == 6500)
        #expect(((served["pods"] as? [String: Any])?["byPhase"] as? [String: Any])?["Running"] as? Int == 3)
        #expect((served["warnings"] as? [[String: Any]])?.count == 20)
        #expect(served["statsUpdatedAt"] is String)
    }

    @Test func listsAreReadPageByPageWithTheContinueTokenEscaped() throws {
        let h = try APIHarness()
        let cluster = FakeStatsCluster()
        cluster.podPages = 3
        var settings = ClusterStatsController.Settings()
        settings.pageSize = 2
        let controller = makeController(h, cluster, clock: TestClock(), settings: settings)
        defer { controller.stop() }
        try createCluster(h, "c1")
        #expect(try controller.refresh(cluster: "c1") == .updated)
        let podRequests = cluster.requests.filter { $0.hasPrefix("/api/v1/pods") }
        #expect(podRequests == ["/api/v1/pods?limit=2", "/api/v1/pods?limit=2&continue=page%2B1%2F%3D",
                                "/api/v1/pods?limit=2&continue=page%2B2%2F%3D"])
        #expect(try h.control.clusters.get("c1").status.pods?.total == 18)

        // A list longer than maxPages is refused rather than counted in part.
        settings.maxPages = 2
        let short = makeController(h, cluster, clock: TestClock(), settings: settings)
        defer { short.stop() }
        try createCluster(h, "c2")
        guard case .stale(let failure) = try short.refresh(cluster: "c2") else { Issue.record("a partial list was accepted"); return }
        #expect(failure.description.contains("more than 2 pages"), "\(failure)")
        #expect(try h.control.clusters.get("c2").status.pods == nil)
    }

    @Test func aRefusalFromTheAPIServerIsReportedWithItsMessage() throws {
        let h = try APIHarness()
        let cluster = FakeStatsCluster()
        cluster.forbid = "/api/v1/pods"
        let controller = makeController(h, cluster, clock: TestClock())
        defer { controller.stop() }
        try createCluster(h, "c1")
        guard case .stale(let failure) = try controller.refresh(cluster: "c1") else { Issue.record("a 403 was not a failure"); return }
        #expect(!failure.isUnavailable)
        let condition = try #require(try h.control.clusters.get("c1").status.conditions["StatsFresh"])
        #expect(condition.status == .unknown && condition.reason == "NotReported")
        #expect(condition.message.contains("403"), "\(condition.message)")
        #expect(condition.message.contains("cannot list resource \"pods\""), "\(condition.message)")
    }

    // MARK: Staleness

    @Test func statsTurnStaleAfterThreeIntervalsWithoutARead() throws {
        let h = try APIHarness()
        let cluster = FakeStatsCluster()
        let clock = TestClock()
        var settings = ClusterStatsController.Settings()
        settings.interval = 30
        let controller = makeController(h, cluster, clock: clock, settings: settings)
        defer { controller.stop() }
        try createCluster(h, "c1")

        // Never read: Unknown, not stale.
        cluster.connected = false
        let unavailable = ClusterStatsFailure.unavailable("cluster c1 is unavailable: no agent of it is connected to this hub")
        #expect(try controller.refresh(cluster: "c1") == .stale(unavailable))
        #expect(try h.control.clusters.get("c1").status.conditions["StatsFresh"]?.status == .unknown)

        cluster.connected = true
        #expect(try controller.refresh(cluster: "c1") == .updated)
        let readAt = clock.date
        cluster.connected = false
        clock.advance(89)
        #expect(try controller.refresh(cluster: "c1") == .fresh(until: readAt.addingTimeInterval(90)))
        var status = try h.control.clusters.get("c1").status
        #expect(status.conditions["StatsFresh"]?.status == .true)

        clock.advance(1)
        guard case .stale = try controller.refresh(cluster: "c1") else { Issue.record("not stale after 90 s"); return }
        status = try h.control.clusters.get("c1").status
        let condition = try #require(status.conditions["StatsFresh"])
        #expect(condition.status == .false)
        #expect(condition.reason == "Stale")
        #expect(condition.lastTransitionTime == clock.date)
        // The last stats stay, marked stale.
        #expect(status.kubernetes?.version == "v1.32.4")
        #expect(status.statsUpdatedAt == readAt)

        // Another pass changes nothing (no write for an unchanged status).
        let version = try h.control.clusters.get("c1").metadata.resourceVersion
        clock.advance(30)
        _ = try controller.refresh(cluster: "c1")
        #expect(try h.control.clusters.get("c1").metadata.resourceVersion == version)

        // Reports again: fresh again.
        cluster.connected = true
        #expect(try controller.refresh(cluster: "c1") == .updated)
        #expect(try h.control.clusters.get("c1").status.conditions["StatsFresh"]?.status == .true)
    }

    // MARK: Two writers, one status

    @Test func statsAndTheAgentsFieldsSurviveEachOthersWrites() throws {
        let h = try APIHarness()
        let cluster = FakeStatsCluster()
        let controller = makeController(h, cluster, clock: TestClock())
        defer { controller.stop() }
        try createCluster(h, "c1")
        #expect(try controller.refresh(cluster: "c1") == .updated)

        // What the hub's cluster status controller does on an agent's connect.
        let agent = Cluster.AgentStatus(name: "a1", role: "cluster", version: "lariat-agent 0.1.0", connectedSince: Date(timeIntervalSince1970: 1_700_000_000),
                                        remote: "127.0.0.1:5555", rttMicros: 120, carriesNewStreams: true)
        try h.control.clusters.modify("c1") { (c: inout Object<Cluster>) throws(StoreFailure) in
            c.status.agents = [agent]
            c.status.conditions.set("Connected", .true, reason: "AgentConnected", message: "1 agent(s) connected")
        }
        var status = try h.control.clusters.get("c1").status
        #expect(status.kubernetes?.version == "v1.32.4")
        #expect(status.nodes?.total == 3)
        #expect(status.conditions["StatsFresh"]?.status == .true)

        // And the next stats write keeps the agents and their conditions.
        cluster.version = "v1.33.0"
        #expect(try controller.refresh(cluster: "c1") == .updated)
        status = try h.control.clusters.get("c1").status
        #expect(status.kubernetes?.version == "v1.33.0")
        #expect(status.agents == [agent])
        #expect(status.conditions["Connected"]?.status == .true)
        #expect(status.conditions.count == 2)
    }

    @Test func anAgentConnectingIsReadAtOnceOnceStarted() throws {
        let h = try APIHarness()
        let cluster = FakeStatsCluster()
        var settings = ClusterStatsController.Settings()
        settings.interval = 3600  // only the first tick and the connect trigger in this test
        let controller = makeController(h, cluster, clock: TestClock(), settings: settings)
        defer { controller.stop() }
        try createCluster(h, "c1")
        cluster.connected = false
        // The first tick reads the clusters the informer holds.
        try h.waitUntil { h.control.clusterInformer.get("c1") != nil }
        controller.start()
        try h.waitUntil { h.control.clusterInformer.get("c1")?.status.conditions["StatsFresh"]?.reason == "NotReported" }
        cluster.connected = true
        try h.control.clusters.modify("c1") { (c: inout Object<Cluster>) throws(StoreFailure) in
            c.status.conditions.set("Connected", .true, reason: "AgentConnected", message: "1 agent(s) connected")
        }
        try h.waitUntil(timeout: 10) { h.control.clusterInformer.get("c1")?.status.conditions["StatsFresh"]?.status == .true }
        #expect(h.control.clusterInformer.get("c1")?.status.nodes?.total == 3)
    }

    // MARK: Helpers

    private func makeController(_ h: APIHarness, _ cluster: FakeStatsCluster, clock: TestClock,
                                settings: ClusterStatsController.Settings = ClusterStatsController.Settings()) -> ClusterStatsController {
        // The store keeps whole seconds; the test clock starts on one and moves by whole seconds.
        ClusterStatsController(clusters: h.control.clusters, informer: h.control.clusterInformer, api: cluster, settings: settings,
                               logger: Logger(label: "stats-test"), clock: { clock.date })
    }

    private func createCluster(_ h: APIHarness, _ name: String) throws {
        _ = try h.control.clusters.create(Object<Cluster>(name: name, spec: Cluster.Spec()))
    }
}

/// A cluster's API server as `ClusterAPIClient` sees it: `/version`, three nodes (one not
/// ready), six pods, 25 warning events and a normal one; pods paged when `podPages` > 1.
final class FakeStatsCluster: ClusterAPIClient, @unchecked Sendable {
    // Invariant: every mutable field is read and written under `lock`.
    private let lock = NSLock()
    private var _requests: [String] = []
    private var _connected = true
    private var _version = "v1.32.4"
    private var _forbid: String?
    private var _podPages = 1

    var requests: [String] { lock.withLock { _requests } }
    var connected: Bool { get { lock.withLock { _connected } } set { lock.withLock { _connected = newValue } } }
    var version: String { get { lock.withLock { _version } } set { lock.withLock { _version = newValue } } }
    var forbid: String? { get { lock.withLock { _forbid } } set { lock.withLock { _forbid = newValue } } }
    var podPages: Int { get { lock.withLock { _podPages } } set { lock.withLock { _podPages = newValue } } }

    func request(cluster: String, method: String, path: String, body: Data?, contentType: String?,
                 timeout: TimeInterval) -> Result<ClusterAPIResponse, ClusterAPIError> {
        let (connected, version, forbid, podPages) = lock.withLock { () -> (Bool, String, String?, Int) in
            _requests.append(path)
            return (_connected, _version, _forbid, _podPages)
        }
        guard connected else { return .failure(.unavailable(cluster: cluster)) }
        let route = String(path.prefix { $0 != "?" })
        if let forbid, route == forbid {
            return answer(403, #"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"pods is forbidden: User \"lariat:controller\" cannot list resource \"pods\" in API group \"\" at the cluster scope","reason":"Forbidden","code":403}"#)
        }
        switch route {
        case "/version":
            return answer(200, #"{"major":"1","minor":"32","gitVersion":"\#(version)","platform":"linux/amd64","goVersion":"go1.23"}"#)
        case "/api/v1/nodes":
            return answer(200, Self.nodes)
        case "/api/v1/pods":
            let page = path.contains("continue=page%2B2") ? 3 : path.contains("continue=page%2B1") ? 2 : 1
            let next = page < podPages ? #""continue":"page+\#(page)/=""# : #""resourceVersion":"9""#
            return answer(200, #"{"kind":"PodList","apiVersion":"v1","metadata":{\#(next)},"items":\#(Self.pods)}"#)
        case "/api/v1/events":
            return answer(200, Self.events)
        default:
            return answer(404, #"{"kind":"Status","message":"not found","code":404}"#)
        }
    }

    private func answer(_ status: Int, _ body: String) -> Result<ClusterAPIResponse, ClusterAPIError> {
        .success(ClusterAPIResponse(status: status, headers: [("Content-Type", "application/json")], body: Data(body.utf8)))
    }

    static let nodes = #"""
    {"kind":"NodeList","apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":[
      {"metadata":{"name":"n-b"},"status":{"capacity":{"cpu":"4","memory":"16Gi","pods":"110"},
        "allocatable":{"cpu":"3900m","memory":"16e9","pods":"105"},
        "conditions":[{"type":"MemoryPressure","status":"False"},{"type":"Ready","status":"True"}],
        "nodeInfo":{"kubeletVersion":"v1.32.4","osImage":"Ubuntu","architecture":"amd64","containerRuntimeVersion":"containerd://1.7"}}},
      {"metadata":{"name":"n-a"},"spec":{"unschedulable":true},"status":{"capacity":{"cpu":"500m","memory":"1024Ki","pods":110},
        "allocatable":{"cpu":"0.4","memory":"512Ki","pods":"110"},
        "conditions":[{"type":"Ready","status":"True"}],"nodeInfo":{"kubeletVersion":"v1.32.4"}}},
      {"metadata":{"name":"n-cold"},"status":{"capacity":{"cpu":"2","memory":"2Gi","pods":"20","nvidia.com/gpu":"1"},
        "allocatable":{"cpu":"1","memory":"1M","pods":"20","memory-bogus":"x"},
        "conditions":[{"type":"Ready","status":"Unknown"}],"nodeInfo":{"kubeletVersion":"v1.32.3"}}}
    ]}
    """#

    static let pods = #"""
    [{"metadata":{"name":"a"},"status":{"phase":"Running"}},{"metadata":{"name":"b"},"status":{"phase":"Running"}},
     {"metadata":{"name":"c"},"status":{"phase":"Running"}},{"metadata":{"name":"d"},"status":{"phase":"Pending"}},
     {"metadata":{"name":"e"},"status":{"phase":"Failed"}},{"metadata":{"name":"f"},"status":{"phase":"Exploded"}}]
    """#

    static let events: String = {
        var items: [String] = []
        for i in 0..<25 {
            // Older events first, with lastTimestamp, eventTime or series time in turn.
            let t = String(format: "2026-01-01T10:%02d:00Z", i)
            let micro = String(format: "2026-01-01T10:%02d:00.250000Z", i)
            let time: String
            switch i % 3 {
            case 0: time = #""lastTimestamp":"\#(t)","count":3"#
            case 1: time = #""eventTime":"\#(micro)","count":3"#
            default: time = #""series":{"count":3,"lastObservedTime":"\#(micro)"},"firstTimestamp":"2025-01-01T00:00:00Z""#
            }
            let message = i == 20 ? String(repeating: "x", count: 10_000) : "Back-off restarting failed container \(i)"
            items.append(#"{"metadata":{"name":"e\#(i)","namespace":"default","creationTimestamp":"2025-01-01T00:00:00Z"},"involvedObject":{"kind":"Pod","name":"web-\#(i)","namespace":"default"},"reason":"BackOff-\#(i)","message":"\#(message)","type":"Warning",\#(time)}"#)
        }
        items.append(#"{"metadata":{"name":"n","namespace":"default"},"involvedObject":{"kind":"Pod","name":"web"},"reason":"Scheduled","message":"ok","type":"Normal","lastTimestamp":"2027-01-01T00:00:00Z"}"#)
        return #"{"kind":"EventList","apiVersion":"v1","metadata":{},"items":[\#(items.joined(separator: ","))]}"#
    }()
}
