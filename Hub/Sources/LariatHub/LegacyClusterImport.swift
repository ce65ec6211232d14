import Foundation
import LariatControl
import LariatRuntime
import LariatStore

/// Data folders from before the control plane kept clusters in `clusters.json` (token digests
/// only). On the first start with the store, each becomes a Cluster with a registration token
/// of the same digest — agents keep connecting with the tokens they have — and the file is
/// renamed `clusters.json.imported`.
enum LegacyClusterImport {
    private struct Document: Codable {
        struct Cluster: Codable {
            var name: String
            var tokenSHA256: String
            var createdAt: Date
        }
        var version: Int
        var clusters: [Cluster]
    }

    /// Returns the names of the clusters imported.
    static func run(directory: String, control: ControlPlane) throws -> [String] {
        let path = directory + "/clusters.json"
        guard let text = try FileIO.readIfExists(path) else { return [] }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let doc: Document
        do {
            doc = try decoder.decode(Document.self, from: Data(text.utf8))
        } catch {
            throw StoreError("\(path) cannot be imported: \(error)")
        }
        var imported: [String] = []
        for c in doc.clusters {
            if (try control.clusters.find(c.name)) == nil {
                _ = try control.clusters.create(Object(name: c.name, spec: Cluster.Spec(),
                                                      annotations: ["lariat.io/imported-from": "clusters.json"]))
            }
            let tokenName = "crt-imported-" + c.name
            if (try control.registrationTokens.find(tokenName)) == nil {
                _ = try control.registrationTokens.create(Object(
                    name: tokenName, spec: ClusterRegistrationToken.Spec(clusterName: c.name, secretSHA256: c.tokenSHA256),
                    labels: ["lariat.io/cluster": c.name]))
            }
            imported.append(c.name)
        }
        guard rename(path, path + ".imported") == 0 else {
            throw StoreError("imported \(path), but cannot rename it: \(String(cString: strerror(errno)))")
        }
        return imported
    }
}

public struct StoreError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}
