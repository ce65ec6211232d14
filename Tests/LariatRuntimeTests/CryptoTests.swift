import Testing
import Foundation
@testable import LariatRuntime

@Suite struct CryptoTests {
    @Test func sha256KnownVector() {
        #expect(Digest.sha256Hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Digest.sha256Hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    /// RFC 4231, test case 2.
    @Test func hmacSHA256RFC4231Case2() {
        let mac = Digest.hmacSHA256(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
        #expect(Digest.hex(mac) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test func randomBytesDiffer() {
        let a = SecureRandom.bytes(32)
        let b = SecureRandom.bytes(32)
        #expect(a.count == 32 && a != b)
        #expect(Digest.constantTimeEquals(a, a) && !Digest.constantTimeEquals(a, b))
    }

    @Test func certificateStoreCreatesThenReloads() throws {
        let directory = NSTemporaryDirectory() + "lariat-ca-\(UUID().uuidString)/nested"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = CertificateStore(directory: directory)
        let first = try store.loadOrCreateAuthority()
        let second = try store.loadOrCreateAuthority()
        #expect(first.fingerprintSHA256 == second.fingerprintSHA256)
        #expect(first.fingerprintSHA256.count == 64)

        let issued = try store.loadOrIssueServerCertificate(from: first, dnsNames: ["hub.example"], ipAddresses: ["10.0.0.7"])
        let reloaded = try store.loadOrIssueServerCertificate(from: first)
        #expect(issued.certificatePEM == reloaded.certificatePEM)

        for path in [store.caKeyPath, store.serverKeyPath] {
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            #expect((attributes[.posixPermissions] as? Int) == 0o600, "\(path)")
        }
        // The issued certificate really is usable as a server identity.
        _ = try TLSContext.server(certificatePEM: issued.certificatePEM, privateKeyPEM: issued.privateKeyPEM)
    }
}
