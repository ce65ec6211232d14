import Foundation
@testable import LariatHub
import LariatControl
import LariatRuntime
import LariatStore
import Logging
import Testing

/// A data folder from before the store: `clusters.json` with token digests. The first start
/// imports its clusters, and the agents' old tokens keep working.
@Suite struct LegacyClusterImportTests {
    @Test func clustersAndTheirTokensComeAcrossAndTheFileIsSetAside() throws {
        let dir = NSTemporaryDirectory() + "lariat-legacy-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let oldToken = "3f1c0ffee0ddba11" + String(repeating: "ab", count: 16)
        let legacy = """
        {"version":1,"clusters":[
          {"name":"edge-1","tokenSHA256":"\(Digest.sha256Hex(oldToken))","createdAt":"2026-11-20T10:00:00Z"},
          {"name":"edge-2","tokenSHA256":"\(Digest.sha256Hex("another"))","createdAt":"2026-11-21T10:00:00Z"}]}
        """
        try legacy.write(toFile: dir + "/clusters.json", atomically: true, encoding: .utf8)
        let backend = try SQLiteBackend(folder: dir)
        defer { backend.close() }
        var hasher = PasswordHasher.Settings()
        hasher.logN = 10
        let services = try ControlPlaneServices.open(
            backend: backend, settings: ControlPlane.Settings(serverURL: "https://127.0.0.1:1", caPEM: "", caChecksum: ""),
            audit: MemoryAuditSink(), logger: Logger(label: "test"), passwordHasher: PasswordHasher(settings: hasher),
            environment: [ControlPlaneServices.bootstrapPasswordVariable: "a-bootstrap-password"])
        defer { services.stop() }

        let imported = try LegacyClusterImport.run(directory: dir, control: services.control)
        #expect(imported == ["edge-1", "edge-2"])
        #expect(!FileManager.default.fileExists(atPath: dir + "/clusters.json"))
        #expect(FileManager.default.fileExists(atPath: dir + "/clusters.json.imported"))
        let control = services.control
        let deadline = Date().addingTimeInterval(5)
        while (control.clusterInformer.items.count < 2 || control.registrationTokenInformer.items.count < 2) && Date() < deadline {
            usleep(5_000)
        }
        #expect(control.admitAgent(cluster: "edge-1", agentID: "a", token: oldToken) == .admitted(credential: nil))
        if case .admitted = control.admitAgent(cluster: "edge-2", agentID: "a", token: oldToken) {
            Issue.record("one cluster's old token was admitted to another cluster")
        }
        // Only digests came across: the store holds no token.
        let stored = try control.registrationTokens.listAll().items
        #expect(stored.allSatisfy { !$0.spec.secretSHA256.isEmpty } && !String(describing: stored).contains(oldToken))
        // A second start finds nothing more to import.
        #expect(try LegacyClusterImport.run(directory: dir, control: control).isEmpty)
    }
}
