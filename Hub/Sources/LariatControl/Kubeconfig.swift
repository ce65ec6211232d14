import Foundation
import Yams

/// A kubeconfig as kubectl reads it (`apiVersion: v1`, `kind: Config`): one cluster, user and
/// context per cluster, all named after the cluster, the first one current. Written by Yams from
/// these types, never pasted together, so no value can change the document's structure.
public enum Kubeconfig {
    /// One cluster's entry: where its API is, the CA to trust, the bearer to send.
    public struct Entry: Sendable, Equatable {
        public var cluster: String
        public var server: String
        /// The CA's PEM; nil or empty when the server's certificate is publicly trusted.
        public var caPEM: String?
        public var token: String
        public init(cluster: String, server: String, caPEM: String?, token: String) {
            self.cluster = cluster
            self.server = server
            self.caPEM = caPEM
            self.token = token
        }
    }

    /// The kubeconfig YAML for `entries` (the first is the current context).
    public static func yaml(_ entries: [Entry]) throws -> String {
        let config = Config(
            clusters: entries.map { e in
                NamedCluster(name: .init(e.cluster), cluster: ClusterInfo(
                    server: .init(e.server),
                    certificateAuthorityData: e.caPEM.flatMap { $0.isEmpty ? nil : .init(Data($0.utf8).base64EncodedString()) }))
            },
            users: entries.map { NamedUser(name: .init($0.cluster), user: UserInfo(token: .init($0.token))) },
            contexts: entries.map { NamedContext(name: .init($0.cluster), context: Context(cluster: .init($0.cluster), user: .init($0.cluster))) },
            currentContext: entries.first.map { .init($0.cluster) })
        let encoder = YAMLEncoder()
        encoder.options.width = -1  // never fold the CA data or the token
        return try encoder.encode(config)
    }

    /// A string YAML always double-quotes: kubectl's YAML reader takes `y`, `n`, `on` or `0x1f`
    /// (valid cluster names) for booleans and numbers, and Yams quotes only what its own
    /// resolver would misread.
    struct Quoted: Encodable, YAMLEncodable {
        let value: String
        init(_ value: String) { self.value = value }
        func box() -> Node { Node(value, Tag(.str), .doubleQuoted) }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            try c.encode(value)
        }
    }

    struct Config: Encodable {
        var apiVersion = Quoted("v1")
        var kind = Quoted("Config")
        var clusters: [NamedCluster]
        var users: [NamedUser]
        var contexts: [NamedContext]
        var currentContext: Quoted?
        enum CodingKeys: String, CodingKey {
            case apiVersion, kind, clusters, users, contexts
            case currentContext = "current-context"
        }
    }

    struct NamedCluster: Encodable {
        var name: Quoted
        var cluster: ClusterInfo
    }

    struct ClusterInfo: Encodable {
        var server: Quoted
        var certificateAuthorityData: Quoted?
        enum CodingKeys: String, CodingKey {
            case server
            case certificateAuthorityData = "certificate-authority-data"
        }
    }

    struct NamedUser: Encodable {
        var name: Quoted
        var user: UserInfo
    }

    struct UserInfo: Encodable {
        var token: Quoted
    }

    struct NamedContext: Encodable {
        var name: Quoted
        var context: Context
    }

    struct Context: Encodable {
        var cluster: Quoted
        var user: Quoted
    }
}
