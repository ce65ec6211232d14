import Foundation
import LariatStore

/// A downstream cluster: what operators create (and import), and what its agents report into.
public enum Cluster: Resource {
    public static let kind = "Cluster"
    public static let plural = "clusters"

    public struct Spec: Codable, Sendable, Equatable {
        public var displayName: String
        public var description: String
        /// Record exec and attach sessions through the hub (WebSocket ones) as asciicast v2 files
        /// (input and output with timing) in the hub's data folder.
        public var recordSessions: Bool
        public init(displayName: String = "", description: String = "", recordSessions: Bool = false) {
            self.displayName = displayName
            self.description = description
            self.recordSessions = recordSessions
        }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            displayName = try c.decodeIfPresent(String.self, forKey: .displayName) ?? ""
            description = try c.decodeIfPresent(String.self, forKey: .description) ?? ""
            recordSessions = try c.decodeIfPresent(Bool.self, forKey: .recordSessions) ?? false
        }
    }

    /// One connected agent, as the hub last saw it.
    public struct AgentStatus: Codable, Sendable, Equatable {
        public var name: String
        public var role: String
        public var version: String
        public var connectedSince: Date
        public var remote: String
        /// Smoothed tunnel round trip, microseconds (0 before the first PING).
        public var rttMicros: Int
        public var carriesNewStreams: Bool
        /// The hub's health score of the agent and what it is made of (absent in objects written
        /// before scores existed).
        public var health: AgentHealthStatus?

        public init(name: String, role: String, version: String, connectedSince: Date, remote: String, rttMicros: Int,
                    carriesNewStreams: Bool) {
            self.name = name
            self.role = role
            self.version = version
            self.connectedSince = connectedSince
            self.remote = remote
            self.rttMicros = rttMicros
            self.carriesNewStreams = carriesNewStreams
        }
    }

    /// An agent's health as the hub scores it (0…100; new requests avoid agents below the
    /// healthy score), with the parts of the score.
    public struct AgentHealthStatus: Codable, Sendable, Equatable {
        public var score: Int
        public var healthy: Bool
        public var rttMicros: Int
        public var minRTTMicros: Int
        public var unansweredPingMillis: Int
        public var silenceMillis: Int
        public var openStreams: Int
        public var bytesInFlight: Int
        public var sessionAgeSeconds: Int
        public var recentDialFailures: Int
        public var recentOpenTimeouts: Int
        public init(score: Int, healthy: Bool, rttMicros: Int, minRTTMicros: Int, unansweredPingMillis: Int, silenceMillis: Int,
                    openStreams: Int, bytesInFlight: Int, sessionAgeSeconds: Int, recentDialFailures: Int, recentOpenTimeouts: Int) {
            self.score = score
            self.healthy = healthy
            self.rttMicros = rttMicros
            self.minRTTMicros = minRTTMicros
            self.unansweredPingMillis = unansweredPingMillis
            self.silenceMillis = silenceMillis
            self.openStreams = openStreams
            self.bytesInFlight = bytesInFlight
            self.sessionAgeSeconds = sessionAgeSeconds
            self.recentDialFailures = recentDialFailures
            self.recentOpenTimeouts = recentOpenTimeouts
        }
    }

    public struct Status: Codable, Sendable, Equatable {
        /// `Connected` (an agent holds a tunnel) and `Ready` (a cluster agent is connected and healthy).
        public var conditions: [Condition] = []
        public var agents: [AgentStatus] = []
        /// Read from the cluster's API server every stats interval (`ClusterStatsController`,
        /// condition `StatsFresh`); absent until the first read, kept when reads stop.
        public var kubernetes: KubernetesInfo?
        public var capacity: ResourceTotals?
        public var allocatable: ResourceTotals?
        public var nodes: NodeCounts?
        public var pods: PodCounts?
        public var warnings: [WarningEvent]?
        public var statsUpdatedAt: Date?
        public init() {}
    }

    public static func emptyStatus() -> Status { Status() }

    /// A name is a DNS label: 1-63 of a-z, 0-9 and '-', starting and ending with a letter or digit.
    public static func validate(_ o: Object<Cluster>) -> [FieldError] {
        var errors = NameRules.dnsLabel(o.metadata.name, field: "metadata.name")
        if o.spec.displayName.count > 253 { errors.append(FieldError("spec.displayName", "at most 253 characters")) }
        if o.spec.description.count > 4096 { errors.append(FieldError("spec.description", "at most 4096 characters")) }
        return errors
    }
}

/// A field that failed validation, named as the API client wrote it.
public struct FieldError: Sendable, Equatable, Codable, CustomStringConvertible {
    public var field: String
    public var message: String
    public init(_ field: String, _ message: String) {
        self.field = field
        self.message = message
    }
    public var description: String { "\(field): \(message)" }
}

public enum NameRules {
    /// RFC 1123 label, as Kubernetes names of most kinds.
    public static func dnsLabel(_ name: String, field: String) -> [FieldError] {
        let u = Array(name.utf8)
        guard !u.isEmpty else { return [FieldError(field, "required")] }
        guard u.count <= 63 else { return [FieldError(field, "at most 63 characters")] }
        func ok(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c == 45 }
        guard u.allSatisfy(ok), u.first != 45, u.last != 45 else {
            return [FieldError(field, "lowercase letters, digits and '-', starting and ending with a letter or digit")]
        }
        return []
    }
}
