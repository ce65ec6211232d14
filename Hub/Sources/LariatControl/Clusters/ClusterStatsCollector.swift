import Foundation

/// Why one read of a cluster's stats failed.
public enum ClusterStatsFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// No agent of the cluster is connected to this hub (another hub may hold it).
    case unavailable(String)
    /// A request failed, was refused or answered something that is not the expected list.
    case failed(String)

    public var isUnavailable: Bool { if case .unavailable = self { true } else { false } }
    public var description: String {
        switch self {
        case .unavailable(let m), .failed(let m): m
        }
    }
}

/// Reads one cluster's stats through `ClusterAPIClient` (as `lariat:controller`): `/version`,
/// then nodes, pods and `type=Warning` events, each list in pages of `pageSize` (a large
/// cluster's pod list in one answer would pass the client's size cap), keeping counts and sums
/// rather than objects. Runs on a controller's worker thread.
struct ClusterStatsCollector: Sendable {
    let api: any ClusterAPIClient
    let settings: ClusterStatsController.Settings

    func collect(_ cluster: String) -> Result<Cluster.Stats, ClusterStatsFailure> {
        Result { () throws(ClusterStatsFailure) in
            let version: VersionInfo = try get(cluster, "/version")
            var nodes = NodeTally(settings: settings)
            try eachPage(cluster, "/api/v1/nodes", NodeList.self) { nodes.add($0.items ?? []) }
            var pods = PodTally()
            try eachPage(cluster, "/api/v1/pods", PodList.self) { pods.add($0.items ?? []) }
            var warnings = WarningTally(settings: settings)
            try eachPage(cluster, "/api/v1/events", EventList.self, query: "fieldSelector=type%3DWarning") {
                warnings.add($0.items ?? [])
            }
            return Cluster.Stats(
                kubernetes: Cluster.KubernetesInfo(version: bounded(version.gitVersion ?? "", settings.maxNameCharacters),
                                                   platform: bounded(version.platform ?? "", settings.maxNameCharacters)),
                capacity: nodes.capacity, allocatable: nodes.allocatable,
                nodes: Cluster.NodeCounts(total: nodes.total, ready: nodes.ready, items: nodes.listed),
                pods: Cluster.PodCounts(total: pods.total, byPhase: pods.byPhase), warnings: warnings.newest)
        }
    }

    // MARK: Requests

    private func get<T: Decodable>(_ cluster: String, _ path: String) throws(ClusterStatsFailure) -> T {
        let answer: ClusterAPIResponse
        switch api.get(cluster: cluster, path: path, timeout: settings.requestTimeout) {
        case .success(let a): answer = a
        case .failure(let error):
            if case .unavailable = error { throw .unavailable(error.description) }
            throw .failed("GET \(path): \(error)")
        }
        guard answer.isSuccess else {
            // The API server's own Status message says why (403: the lariat-controller role is missing).
            let message = (try? JSONDecoder().decode(StatusMessage.self, from: answer.body))?.message
                ?? String(decoding: answer.body.prefix(200), as: UTF8.self)
            throw .failed("GET \(path): \(answer.status) \(bounded(message, settings.maxMessageCharacters))")
        }
        do {
            return try JSONDecoder().decode(T.self, from: answer.body)
        } catch {
            throw .failed("GET \(path): the answer is not a \(T.self): \(error)")
        }
    }

    /// Follows `metadata.continue` until the last page (or `maxPages`, refused: counts from part
    /// of a list would look true and be wrong).
    private func eachPage<L: PagedList>(_ cluster: String, _ path: String, _ type: L.Type, query: String = "",
                                        _ body: (L) -> Void) throws(ClusterStatsFailure) {
        var token: String?
        for _ in 0..<max(1, settings.maxPages) {
            var target = path + "?" + (query.isEmpty ? "" : query + "&") + "limit=\(settings.pageSize)"
            if let token { target += "&continue=" + Self.queryEscaped(token) }
            let page: L = try get(cluster, target)
            body(page)
            guard let next = page.metadata?.continue, !next.isEmpty else { return }
            token = next
        }
        throw .failed("GET \(path): more than \(settings.maxPages) pages of \(settings.pageSize)")
    }

    static func queryEscaped(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }
}

/// Cuts an untrusted string to `limit` characters (an ellipsis marks the cut).
func bounded(_ s: String, _ limit: Int) -> String {
    guard s.count > limit else { return s }
    return String(s.prefix(max(0, limit - 1))) + "…"
}

// MARK: - Tallies (one page at a time)

private struct NodeTally {
    let settings: ClusterStatsController.Settings
    var total = 0
    var ready = 0
    var capacity = Cluster.ResourceTotals()
    var allocatable = Cluster.ResourceTotals()
    /// Kept to `maxListedNodes` after each page, not-ready nodes first.
    var listed: [Cluster.NodeSummary] = []

    init(settings: ClusterStatsController.Settings) { self.settings = settings }

    mutating func add(_ nodes: [NodeList.Node]) {
        for n in nodes {
            total += 1
            let isReady = n.status?.conditions?.contains { $0.type == "Ready" && $0.status == "True" } ?? false
            if isReady { ready += 1 }
            Self.sum(n.status?.capacity, into: &capacity)
            Self.sum(n.status?.allocatable, into: &allocatable)
            let info = n.status?.nodeInfo
            let limit = settings.maxNameCharacters
            listed.append(Cluster.NodeSummary(
                name: bounded(n.metadata?.name ?? "", limit), ready: isReady, unschedulable: n.spec?.unschedulable ?? false,
                kubeletVersion: bounded(info?.kubeletVersion ?? "", limit), osImage: bounded(info?.osImage ?? "", limit),
                architecture: bounded(info?.architecture ?? "", limit),
                containerRuntime: bounded(info?.containerRuntimeVersion ?? "", limit)))
        }
        listed.sort { ($0.ready ? 1 : 0, $0.name) < ($1.ready ? 1 : 0, $1.name) }
        if listed.count > settings.maxListedNodes { listed.removeLast(listed.count - settings.maxListedNodes) }
    }

    /// Adds `cpu` (millicores), `memory` (bytes) and `pods`; a quantity that does not parse adds nothing.
    static func sum(_ resources: [String: LenientString]?, into totals: inout Cluster.ResourceTotals) {
        guard let resources else { return }
        func add(_ a: Int64, _ b: Int64?) -> Int64 {
            guard let b, b > 0 else { return a }
            let (s, overflow) = a.addingReportingOverflow(b)
            return overflow ? Int64.max : s
        }
        totals.cpuMillis = add(totals.cpuMillis, resources["cpu"].flatMap { KubernetesQuantity($0.value) }?.milliValue)
        totals.memoryBytes = add(totals.memoryBytes, resources["memory"].flatMap { KubernetesQuantity($0.value) }?.value)
        totals.pods = add(totals.pods, resources["pods"].flatMap { KubernetesQuantity($0.value) }?.value)
    }
}

private struct PodTally {
    static let phases: Set<String> = ["Pending", "Running", "Succeeded", "Failed", "Unknown"]
    var total = 0
    var byPhase: [String: Int] = [:]

    mutating func add(_ pods: [PodList.Pod]) {
        for p in pods {
            total += 1
            let phase = p.status?.phase ?? "Unknown"
            byPhase[Self.phases.contains(phase) ? phase : "Unknown", default: 0] += 1
        }
    }
}

/// The `maxWarnings` newest warning events over every page.
private struct WarningTally {
    let settings: ClusterStatsController.Settings
    var newest: [Cluster.WarningEvent] = []

    init(settings: ClusterStatsController.Settings) { self.settings = settings }

    mutating func add(_ events: [EventList.Event]) {
        for e in events where (e.type ?? "Warning") == "Warning" {
            let name = settings.maxNameCharacters
            let kind = (e.involvedObject?.kind ?? "").lowercased()
            let objectName = e.involvedObject?.name ?? ""
            newest.append(Cluster.WarningEvent(
                time: e.seenAt, namespace: bounded(e.metadata?.namespace ?? e.involvedObject?.namespace ?? "", name),
                object: bounded(kind.isEmpty ? objectName : kind + "/" + objectName, name),
                reason: bounded(e.reason ?? "", name), message: bounded(e.message ?? "", settings.maxMessageCharacters),
                count: max(1, e.series?.count ?? e.count ?? 1)))
        }
        // Newest first; undated events last.
        newest.sort { ($0.time ?? .distantPast) > ($1.time ?? .distantPast) }
        if newest.count > settings.maxWarnings { newest.removeLast(newest.count - settings.maxWarnings) }
    }
}

// MARK: - The fields read from Kubernetes' JSON (everything else is skipped)

private protocol PagedList: Decodable {
    var metadata: ListMeta? { get }
}

private struct ListMeta: Decodable {
    var `continue`: String?
}

private struct StatusMessage: Decodable {
    var message: String
}

private struct VersionInfo: Decodable {
    var gitVersion: String?
    var platform: String?
}

/// A string, or a number written where a string was expected (quantities are strings in
/// Kubernetes' JSON; a hand-made object may carry `"pods": 110`).
struct LenientString: Decodable {
    var value: String
    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) {
            value = s
        } else if let d = try? c.decode(Double.self) {
            value = d == d.rounded() && abs(d) < 1e18 ? String(Int64(d)) : String(d)
        } else {
            value = ""
        }
    }
}

private struct NodeList: PagedList {
    var metadata: ListMeta?
    var items: [Node]?

    struct Node: Decodable {
        var metadata: Meta?
        var spec: Spec?
        var status: Status?
    }
    struct Meta: Decodable { var name: String? }
    struct Spec: Decodable { var unschedulable: Bool? }
    struct Status: Decodable {
        var capacity: [String: LenientString]?
        var allocatable: [String: LenientString]?
        var conditions: [Condition]?
        var nodeInfo: Info?
    }
    struct Condition: Decodable {
        var type: String?
        var status: String?
    }
    struct Info: Decodable {
        var kubeletVersion: String?
        var osImage: String?
        var architecture: String?
        var containerRuntimeVersion: String?
    }
}

private struct PodList: PagedList {
    var metadata: ListMeta?
    var items: [Pod]?

    struct Pod: Decodable { var status: Status? }
    struct Status: Decodable { var phase: String? }
}

private struct EventList: PagedList {
    var metadata: ListMeta?
    var items: [Event]?

    struct Event: Decodable {
        var metadata: Meta?
        var involvedObject: ObjectReference?
        var reason: String?
        var message: String?
        var type: String?
        var count: Int?
        var firstTimestamp: String?
        var lastTimestamp: String?
        var eventTime: String?
        var series: Series?

        /// The newest time the event carries (`series` for events.k8s.io-style repeats).
        var seenAt: Date? {
            for text in [series?.lastObservedTime, lastTimestamp, eventTime, firstTimestamp, metadata?.creationTimestamp] {
                if let text, let date = KubernetesTime.parse(text) { return date }
            }
            return nil
        }
    }
    struct Meta: Decodable {
        var namespace: String?
        var creationTimestamp: String?
    }
    struct ObjectReference: Decodable {
        var kind: String?
        var name: String?
        var namespace: String?
    }
    struct Series: Decodable {
        var count: Int?
        var lastObservedTime: String?
    }
}

/// Kubernetes timestamps: RFC 3339 (`Time`) or with microseconds (`MicroTime`), kept to whole
/// seconds as the store keeps dates.
enum KubernetesTime {
    static func parse(_ text: String) -> Date? {
        let date = (try? Date(text, strategy: .iso8601))
            ?? (try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true)))
        return date.map { Date(timeIntervalSince1970: $0.timeIntervalSince1970.rounded(.down)) }
    }
}
