import Foundation

/// What the hub reads from a cluster's API server into its status (`ClusterStatsController`):
/// the Kubernetes version, node and pod counts, the nodes' summed capacity and allocatable, and
/// the most recent warning events. Every string in here came from the cluster and is bounded.
extension Cluster {
    /// `/version`.
    public struct KubernetesInfo: Codable, Sendable, Equatable {
        /// `gitVersion`, e.g. "v1.32.4".
        public var version: String
        /// e.g. "linux/amd64".
        public var platform: String
        public init(version: String, platform: String) {
            self.version = version
            self.platform = platform
        }
    }

    /// A sum over the cluster's nodes (`status.capacity` or `status.allocatable`).
    public struct ResourceTotals: Codable, Sendable, Equatable {
        public var cpuMillis: Int64
        public var memoryBytes: Int64
        public var pods: Int64
        public init(cpuMillis: Int64 = 0, memoryBytes: Int64 = 0, pods: Int64 = 0) {
            self.cpuMillis = cpuMillis
            self.memoryBytes = memoryBytes
            self.pods = pods
        }
    }

    public struct NodeCounts: Codable, Sendable, Equatable {
        public var total: Int
        /// Nodes whose `Ready` condition is True.
        public var ready: Int
        /// At most `ClusterStatsController.Settings.maxListedNodes`, nodes that are not ready
        /// first, then by name. A node agent's id is its node's name (the DaemonSet sets it from
        /// `spec.nodeName`), so this is where a node agent's node facts are.
        public var items: [NodeSummary]
        public init(total: Int, ready: Int, items: [NodeSummary] = []) {
            self.total = total
            self.ready = ready
            self.items = items
        }
    }

    public struct NodeSummary: Codable, Sendable, Equatable {
        public var name: String
        public var ready: Bool
        public var unschedulable: Bool
        public var kubeletVersion: String
        public var osImage: String
        public var architecture: String
        public var containerRuntime: String
        public init(name: String, ready: Bool, unschedulable: Bool = false, kubeletVersion: String = "", osImage: String = "",
                    architecture: String = "", containerRuntime: String = "") {
            self.name = name
            self.ready = ready
            self.unschedulable = unschedulable
            self.kubeletVersion = kubeletVersion
            self.osImage = osImage
            self.architecture = architecture
            self.containerRuntime = containerRuntime
        }
    }

    public struct PodCounts: Codable, Sendable, Equatable {
        public var total: Int
        /// Pending, Running, Succeeded, Failed, Unknown (a phase Kubernetes does not define counts as Unknown).
        public var byPhase: [String: Int]
        public init(total: Int, byPhase: [String: Int]) {
            self.total = total
            self.byPhase = byPhase
        }
    }

    /// One `type=Warning` event, as `kubectl get events` shows it.
    public struct WarningEvent: Codable, Sendable, Equatable {
        /// When it was last seen (series, lastTimestamp, eventTime, firstTimestamp or creation, the first set).
        public var time: Date?
        public var namespace: String
        /// The involved object as `kind/name`, lowercased kind ("pod/web-1").
        public var object: String
        public var reason: String
        public var message: String
        public var count: Int
        public init(time: Date?, namespace: String, object: String, reason: String, message: String, count: Int) {
            self.time = time
            self.namespace = namespace
            self.object = object
            self.reason = reason
            self.message = message
            self.count = count
        }
    }

    /// One read of a cluster's stats, written into its status as a whole.
    public struct Stats: Sendable, Equatable {
        public var kubernetes: KubernetesInfo
        public var capacity: ResourceTotals
        public var allocatable: ResourceTotals
        public var nodes: NodeCounts
        public var pods: PodCounts
        public var warnings: [WarningEvent]

        public init(kubernetes: KubernetesInfo, capacity: ResourceTotals, allocatable: ResourceTotals, nodes: NodeCounts,
                    pods: PodCounts, warnings: [WarningEvent]) {
            self.kubernetes = kubernetes
            self.capacity = capacity
            self.allocatable = allocatable
            self.nodes = nodes
            self.pods = pods
            self.warnings = warnings
        }

        /// Sets the stats fields of `status` (nothing else: agents and conditions belong to
        /// other writers).
        public func apply(to status: inout Status, at time: Date) {
            status.kubernetes = kubernetes
            status.capacity = capacity
            status.allocatable = allocatable
            status.nodes = nodes
            status.pods = pods
            status.warnings = warnings
            status.statsUpdatedAt = time
        }
    }
}
