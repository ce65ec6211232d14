import Foundation
import LariatHub
import Testing

/// The data folder's default is never the current folder, and problems with it are sentences.
@Suite struct DataFolderTests {
    @Test func defaultFollowsTheEnvironmentThenXDGThenTheUser() {
        #expect(DataFolder.defaultPath(environment: ["LARIAT_DATA": "/srv/lariat", "XDG_DATA_HOME": "/x"], isRoot: false) == "/srv/lariat")
        #expect(DataFolder.defaultPath(environment: ["XDG_DATA_HOME": "/x/share", "HOME": "/home/u"], isRoot: true) == "/x/share/lariat")
        #expect(DataFolder.defaultPath(environment: ["HOME": "/home/u"], isRoot: true) == "/var/lib/lariat")
        #expect(DataFolder.defaultPath(environment: ["HOME": "/home/u"], isRoot: false) == "/home/u/.local/share/lariat")
        // A relative XDG_DATA_HOME is invalid by the spec and ignored.
        #expect(DataFolder.defaultPath(environment: ["XDG_DATA_HOME": "rel", "HOME": "/home/u"], isRoot: false) == "/home/u/.local/share/lariat")
    }

    @Test func prepareCreatesAPrivateFolderAndRefusesAFile() throws {
        let base = NSTemporaryDirectory() + "lariat-df-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: base) }
        let folder = base + "/a/b"
        try DataFolder.prepare(folder)
        let mode = try FileManager.default.attributesOfItem(atPath: folder)[.posixPermissions] as? Int
        #expect(mode == 0o700)
        try DataFolder.prepare(folder)  // existing: fine

        let file = base + "/file"
        FileManager.default.createFile(atPath: file, contents: Data())
        #expect(throws: DataFolder.Problem.self) { try DataFolder.prepare(file) }
        do {
            try DataFolder.prepare(file + "/sub")
            Issue.record("a folder under a file was created")
        } catch {
            #expect(error.description == "cannot create the data folder \(file)/sub: \(file) is a file; choose another folder with --data or LARIAT_DATA")
        }
    }
}

@Suite struct DataFolderCATests {
    @Test func aMissingCAIsASentenceNamingTheFile() throws {
        let base = NSTemporaryDirectory() + "lariat-dfca-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: base) }
        do {
            _ = try DataFolder.caPEM(in: base)
            Issue.record("no CA, yet one was read")
        } catch {
            #expect(error.description == "the hub's CA certificate \(base)/tls/ca.pem does not exist: point --data (or LARIAT_DATA) at the folder the hub was started with")
        }
        try FileManager.default.createDirectory(atPath: base + "/tls", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: base + "/tls/ca.pem", contents: Data("PEM".utf8))
        #expect(try DataFolder.caPEM(in: base) == "PEM")
    }
}
