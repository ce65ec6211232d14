import Foundation
import LariatControl
import Testing

@Suite struct PasswordHasherTests {
    /// Low cost: these tests check behaviour, not strength.
    static func hasher(logN: Int = 10, p: Int = 1) -> PasswordHasher {
        var s = PasswordHasher.Settings()
        s.logN = logN
        s.p = p
        return PasswordHasher(settings: s)
    }

    @Test func hashVerifiesAndWrongPasswordsFail() {
        let h = Self.hasher()
        let encoded = h.hash("correct horse battery staple")
        #expect(encoded.hasPrefix("$scrypt$ln=10,r=8,p=1$"))
        #expect(!encoded.contains("correct horse"))
        #expect(h.verify("correct horse battery staple", against: encoded) == .valid(needsRehash: false))
        #expect(h.verify("correct horse battery stapl", against: encoded) == .wrongPassword)
        #expect(h.verify("", against: encoded) == .wrongPassword)
        // A fresh salt each time: equal passwords do not give equal hashes.
        #expect(h.hash("correct horse battery staple") != encoded)
    }

    /// RFC 7914 §12's second vector, written as a PHC string: the hasher runs real scrypt.
    @Test func readsTheRFC7914Vector() {
        let vector = "$scrypt$ln=10,r=8,p=16$TmFDbA$/bq+HJ00cgB4VucZDQHp/nxq18vII3gw53N2Y0s3MWIurzDZLiKjiG/xCSedmDDaxyevuUqD7m2DYMvfoswGQA"
        // Valid, but made with other parameters (p = 16, a 4-byte salt, 64-byte key): rehash.
        #expect(Self.hasher().verify("password", against: vector) == .valid(needsRehash: true))
        #expect(Self.hasher().verify("passw0rd", against: vector) == .wrongPassword)
    }

    /// Raising the cost: old hashes still verify and ask to be replaced; the new hash does not.
    @Test func parameterUpgrade() {
        let old = Self.hasher(logN: 10).hash("a passphrase to keep")
        let newer = Self.hasher(logN: 11)
        #expect(newer.verify("a passphrase to keep", against: old) == .valid(needsRehash: true))
        #expect(newer.verify("not the passphrase", against: old) == .wrongPassword)
        let rehashed = newer.hash("a passphrase to keep")
        #expect(rehashed.hasPrefix("$scrypt$ln=11,"))
        #expect(newer.verify("a passphrase to keep", against: rehashed) == .valid(needsRehash: false))
    }

    @Test(arguments: [
        "", "plaintext", "$scrypt$", "$scrypt$ln=10,r=8$c2FsdA$aGFzaA", "$scrypt$ln=10,r=8,p=1$$aGFzaA",
        "$scrypt$ln=10,r=8,p=1$c2FsdA$", "$scrypt$ln=x,r=8,p=1$c2FsdA$aGFzaA", "$scrypt$ln=10,r=8,p=0$c2FsdA$aGFzaA",
        "$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA", "$scrypt$ln=10,r=8,p=1$c2FsdA$aGFzaA$extra",
        // Above maxLogN: refused rather than run (a tampered store must not buy gigabytes).
        "$scrypt$ln=40,r=8,p=1$c2FsdA$aGFzaA",
    ])
    func malformedHashesAreRefused(_ encoded: String) {
        #expect(Self.hasher().verify("anything", against: encoded) == .malformed)
    }

    @Test func newPasswordRules() {
        let h = Self.hasher()
        #expect(h.validateNew("short").map(\.field) == ["newPassword"])
        #expect(h.validateNew(String(repeating: "x", count: 2000)).map(\.field) == ["newPassword"])
        #expect(h.validateNew("twelve chars").isEmpty)
        #expect(h.verify(String(repeating: "x", count: 2000), against: h.hash("x")) == .wrongPassword)
        #expect(h.verifyUnknownUser("whatever") == .wrongPassword)
    }

    /// The default cost, measured (printed, not asserted: the machine is shared).
    @Test func defaultCostIsMeasured() {
        let h = PasswordHasher()
        let start = Date()
        let encoded = h.hash("measure the default cost")
        let hashTime = Date().timeIntervalSince(start)
        #expect(encoded.hasPrefix("$scrypt$ln=\(PasswordHasher.Settings().logN),"))
        #expect(h.verify("measure the default cost", against: encoded) == .valid(needsRehash: false))
        print("PasswordHasher default (scrypt ln=\(h.settings.logN) r=\(h.settings.r) p=\(h.settings.p)): \(Int(hashTime * 1000)) ms per hash")
    }
}
