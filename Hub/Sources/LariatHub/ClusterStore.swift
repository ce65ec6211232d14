import Foundation
import LariatRuntime
import Synchronization

/// The embedded store: clusters and their registration tokens, in one JSON file in the data
/// folder, written atomically (temp file + rename). Tokens are kept only as SHA-256 digests.
/// Safe to call from any thread.
public final class ClusterStore: Sendable {
    public struct Cluster: Codable, Sendable, Equatable {
        public var name: String
        public var tokenSHA256: String
        public var createdAt: Date
    }

    private struct Document: Codable {
        var version = 1
        var clusters: [Cluster] = []
    }

    public let path: String
    private let state: Mutex<Document>

    public init(directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = directory + "/clusters.json"
        if let data = FileManager.default.contents(atPath: path) {
            do {
                let doc = try JSONDecoder.iso.decode(Document.self, from: data)
                state = Mutex(doc)
            } catch {
                throw StoreError("cannot read \(path): \(error)")
            }
        } else {
            state = Mutex(Document())
        }
    }

    public var clusters: [Cluster] { state.withLock { $0.clusters } }

    /// Creates a cluster and returns its registration token (shown once; only its digest is kept).
    public func createCluster(_ name: String) throws -> String {
        guard Self.isValidName(name) else {
            throw StoreError("cluster names are 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit: \"\(name)\"")
        }
        let token = SecureRandom.hexToken(byteCount: 24)
        try state.withLock { doc in
            guard !doc.clusters.contains(where: { $0.name == name }) else { throw StoreError("cluster \"\(name)\" already exists") }
            doc.clusters.append(Cluster(name: name, tokenSHA256: Digest.sha256Hex(token), createdAt: Date()))
            try save(doc)
        }
        return token
    }

    /// Replaces a cluster's token (the old one stops working for new connections).
    public func rotateToken(_ name: String) throws -> String {
        let token = SecureRandom.hexToken(byteCount: 24)
        try state.withLock { doc in
            guard let i = doc.clusters.firstIndex(where: { $0.name == name }) else { throw StoreError("no cluster \"\(name)\"") }
            doc.clusters[i].tokenSHA256 = Digest.sha256Hex(token)
            try save(doc)
        }
        return token
    }

    /// Constant-time check of a cluster token.
    public func verify(cluster: String, token: String) -> Bool {
        guard let c = state.withLock({ doc in doc.clusters.first { $0.name == cluster } }) else { return false }
        let presented = Array(Digest.sha256Hex(token).utf8)
        return Digest.constantTimeEquals(presented, Array(c.tokenSHA256.utf8))
    }

    private func save(_ doc: Document) throws {
        let data = try JSONEncoder.iso.encode(doc)
        do {
            try FileIO.writeAtomically(path, String(decoding: data, as: UTF8.self), mode: 0o600)
        } catch {
            throw StoreError("cannot save the cluster store: \(error)")
        }
    }

    static func isValidName(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard (1...63).contains(u.count) else { return false }
        func ok(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c == 45 }
        return u.allSatisfy(ok) && u[0] != 45
    }
}

public struct StoreError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}

extension JSONDecoder {
    static var iso: JSONDecoder { let d = JSONDecoder(); d.dateDecodingStrategy = .iso8601; return d }
}
extension JSONEncoder {
    static var iso: JSONEncoder {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .iso8601
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return e
    }
}
