import Foundation
@testable import LariatHub
import LariatRuntime
import Testing

@Suite struct AdminTokenTests {
    func temporaryDirectory() throws -> String {
        let dir = NSTemporaryDirectory() + "lariat-admin-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func aNewTokenIsShownOnceAndOnlyItsDigestIsKept() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = try AdminToken.loadOrCreate(directory: dir, environment: [:])
        let token = try #require(first.created)
        #expect(first.sha256Hex == Digest.sha256Hex(token))
        let files = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(files == ["admin.token.sha256"])
        let kept = try String(contentsOfFile: dir + "/admin.token.sha256", encoding: .utf8)
        #expect(!kept.contains(token))
        let again = try AdminToken.loadOrCreate(directory: dir, environment: [:])
        #expect(again.created == nil && again.sha256Hex == first.sha256Hex)
    }

    @Test func aPlaintextTokenFromBeforeStillWorksAndIsReplacedByItsDigest() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "legacy-token-0123456789\n".write(toFile: dir + "/admin.token", atomically: true, encoding: .utf8)
        let loaded = try AdminToken.loadOrCreate(directory: dir, environment: [:])
        #expect(loaded.created == nil && loaded.sha256Hex == Digest.sha256Hex("legacy-token-0123456789"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/admin.token"))
    }

    @Test func theEnvironmentCanChooseTheFirstTokenButNotAShortOne() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(throws: StoreError.self) { try AdminToken.loadOrCreate(directory: dir, environment: ["LARIAT_ADMIN_TOKEN": "short"]) }
        let chosen = try AdminToken.loadOrCreate(directory: dir, environment: ["LARIAT_ADMIN_TOKEN": "a-chosen-admin-token-of-length"])
        #expect(chosen.created == "a-chosen-admin-token-of-length")
    }

    @Test func aCorruptDigestFileIsAPlainError() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "not a digest".write(toFile: dir + "/admin.token.sha256", atomically: true, encoding: .utf8)
        let error = try #require(throws: StoreError.self) { try AdminToken.loadOrCreate(directory: dir, environment: [:]) }
        #expect(error.description.contains("delete it"))
    }
}
