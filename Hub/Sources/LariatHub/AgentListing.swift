import Foundation
import LariatProtocol

/// One row of `GET /v1/agents`: what an operator needs to see who holds a cluster's tunnel.
struct AgentListing: Codable, Equatable {
    var cluster: String
    var agent: String
    var role: String
    var software: String
    var remote: String
    var worker: Int
    var connectedAt: Date
    var draining: Bool
    var healthy: Bool
    var openTimeouts: Int
    /// Whether new streams of the cluster go to this agent now.
    var carriesNewStreams: Bool

    static func rows(_ entries: [AgentRegistry.Entry], now: UInt64) -> [AgentListing] {
        let carriers = Set(Dictionary(grouping: entries, by: \.cluster).values
            .compactMap { AgentRegistry.choose(from: $0, now: now)?.key })
        return entries.map { e in
            AgentListing(cluster: e.cluster, agent: e.agentID, role: e.role.name, software: e.software, remote: e.remote,
                         worker: e.worker, connectedAt: Date(timeIntervalSince1970: e.connectedAtSeconds),
                         draining: e.draining, healthy: e.isHealthy(at: now), openTimeouts: e.openTimeouts,
                         carriesNewStreams: carriers.contains(e.key))
        }
    }

    static func json(_ rows: [AgentListing]) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        // Encoding plain strings, numbers and dates cannot fail.
        return Array(try! encoder.encode(rows)) + [0x0A]
    }
}

extension AgentRole {
    /// "cluster" or "node", as the agent's `--role` flag spells it.
    var name: String { self == .clusterAgent ? "cluster" : "node" }
}
