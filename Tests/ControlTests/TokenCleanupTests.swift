import Foundation
import LariatControl
import LariatStore
import Logging
import Testing

/// The token cleanup controller over a real SQLite store: expired tokens go once their grace
/// has passed, and not before; tokens without expiry, or not yet expired, stay.
@Suite struct TokenCleanupTests {
    private func token(_ name: String, expiresAt: Date?) -> Object<Token> {
        Object(name: name, spec: Token.Spec(userName: "user-admin", expiresAt: expiresAt,
                                            secretDigest: TokenFormat.digest(secret: TokenFormat.newSecret())))
    }

    @Test func expiredTokensAreDeletedAfterTheGraceOnly() throws {
        let h = try APIHarness()
        let store = h.services.tokens.tokens.store
        let now = Date()
        let expiredLongAgo = try store.create(token(TokenFormat.newName(), expiresAt: now.addingTimeInterval(-600))).name
        let inGrace = try store.create(token(TokenFormat.newName(), expiresAt: now.addingTimeInterval(-1))).name
        let expiresSoon = try store.create(token(TokenFormat.newName(), expiresAt: now.addingTimeInterval(0.3))).name
        let forever = try store.create(token(TokenFormat.newName(), expiresAt: nil)).name
        let regs = h.control.registrationTokens
        let oldReg = try regs.create(Object(name: "crt-old", spec: ClusterRegistrationToken.Spec(
            clusterName: "edge", secretSHA256: String(repeating: "a", count: 64), expiresAt: now.addingTimeInterval(-600)))).name
        let liveReg = try regs.create(Object(name: "crt-live", spec: ClusterRegistrationToken.Spec(
            clusterName: "edge", secretSHA256: String(repeating: "b", count: 64), expiresAt: now.addingTimeInterval(3600)))).name
        try h.waitUntil { h.services.tokens.tokens.get(forever) != nil && h.control.registrationTokenInformer.get(liveReg) != nil }

        var settings = TokenCleanupController.Settings()
        settings.grace = 60
        let cleanup = TokenCleanupController(tokens: h.services.tokens.tokens,
                                             registrationTokens: h.control.registrationTokenInformer,
                                             settings: settings, logger: Logger(label: "test"))
        defer { cleanup.stop() }
        try h.waitUntil { (try? store.find(expiredLongAgo)) == nil && (try? regs.find(oldReg)) == nil }
        // Expired a second ago: inside the 60 s grace, so it stays (as does everything unexpired).
        usleep(500_000)
        #expect(try store.find(inGrace) != nil)
        #expect(try store.find(expiresSoon) != nil)
        #expect(try store.find(forever) != nil)
        #expect(try regs.find(liveReg) != nil)
    }

    @Test func aTokenIsDeletedWhenItsGraceEndsWithoutAnotherChange() throws {
        let h = try APIHarness()
        let store = h.services.tokens.tokens.store
        let name = try store.create(token(TokenFormat.newName(), expiresAt: Date().addingTimeInterval(0.2))).name
        try h.waitUntil { h.services.tokens.tokens.get(name) != nil }
        var settings = TokenCleanupController.Settings()
        settings.grace = 0.3
        let cleanup = TokenCleanupController(tokens: h.services.tokens.tokens,
                                             registrationTokens: h.control.registrationTokenInformer,
                                             settings: settings, logger: Logger(label: "test"))
        defer { cleanup.stop() }
        // Not yet: the token expires in 0.2 s and its grace runs 0.3 s more.
        #expect(try store.find(name) != nil)
        try h.waitUntil(timeout: 5) { (try? store.find(name)) == nil }
    }

    @Test func aRenewedTokenIsNotDeleted() throws {
        let h = try APIHarness()
        let store = h.services.tokens.tokens.store
        let name = try store.create(token(TokenFormat.newName(), expiresAt: Date().addingTimeInterval(0.3))).name
        try h.waitUntil { h.services.tokens.tokens.get(name) != nil }
        var settings = TokenCleanupController.Settings()
        settings.grace = 0.2
        let cleanup = TokenCleanupController(tokens: h.services.tokens.tokens,
                                             registrationTokens: h.control.registrationTokenInformer,
                                             settings: settings, logger: Logger(label: "test"))
        defer { cleanup.stop() }
        // Renewed before it expired: the cleaner rereads the expiry when its wait ends.
        _ = try store.modify(name) { $0.spec.expiresAt = Date().addingTimeInterval(3600) }
        usleep(1_000_000)
        #expect(try store.find(name) != nil)
    }
}
