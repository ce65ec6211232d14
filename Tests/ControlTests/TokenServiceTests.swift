import Foundation
import LariatControl
import LariatRuntime
import LariatStore
import Synchronization
import Testing

/// A clock tests move by hand.
final class TestClock: Sendable {
    private let now = Mutex(Date(timeIntervalSince1970: 1_800_000_000))
    var date: Date { now.withLock { $0 } }
    func advance(_ seconds: TimeInterval) { now.withLock { $0 += seconds } }
}

/// A started token service over a real SQLite store, with users `u-alice` (in group
/// `local://g-ops`) and `u-bob`.
final class TokenFixture: Sendable {
    let store: AuthTestStore
    let service: TokenService
    let users: ObjectStore<User>
    let clock = TestClock()

    init(settings: TokenService.Settings = TokenService.Settings(), memory: Bool = false) throws {
        store = try AuthTestStore(memory: memory)
        users = store.store()
        _ = try users.create(Object(name: "u-alice", spec: User.Spec(username: "alice", groups: ["local://g-ops"])))
        _ = try users.create(Object(name: "u-bob", spec: User.Spec(username: "bob")))
        let clock = clock
        service = TokenService(tokens: Informer(store: store.store()), users: Informer(store: store.store()),
                               settings: settings, clock: { clock.date })
        try service.tokens.start()
        try service.users.start()
    }

    deinit {
        service.tokens.stop()
        service.users.stop()
    }

    /// Waits for the informer to hold `name` (a token issued a moment ago).
    func awaitCached(_ name: String) {
        _ = waitUntil { service.tokens.get(name) != nil }
    }
}

@Suite struct TokenServiceTests {
    @Test func issuedBearerHasRanchersShapeAndOnlyItsDigestIsStored() throws {
        let f = try TokenFixture()
        let issued = try f.service.issue(userName: "u-alice", description: "ci")
        let (name, secret) = try #require(TokenFormat.parse(issued.bearer))
        #expect(name == issued.token.name && TokenFormat.isTokenName(name))
        #expect(name.utf8.count == "token-".utf8.count + 5 && secret.utf8.count == 54)
        #expect(issued.bearer.utf8.allSatisfy { TokenFormat.alphabet.contains($0) || "token-:".utf8.contains($0) })
        #expect(issued.token.spec.secretDigest == TokenFormat.digest(secret: secret))
        #expect(Token.validate(issued.token).isEmpty)
        // The secret appears nowhere in the stored document.
        let raw = try f.store.backend.get(StoreKey(kind: Token.plural, name: name))
        #expect(!String(decoding: raw.data, as: UTF8.self).contains(secret))
        #expect(try f.service.issue(userName: "u-alice").bearer != issued.bearer)
    }

    @Test func authenticatesToTheUsersPrincipal() throws {
        let f = try TokenFixture()
        let issued = try f.service.issue(userName: "u-alice")
        f.awaitCached(issued.token.name)
        let p = try f.service.check(bearer: issued.bearer).get()
        #expect(p.kind == .user && p.name == "u-alice" && p.username == "alice")
        #expect(p.groups == ["local://g-ops", TokenService.authenticatedGroup])
        #expect(p.tokenName == issued.token.name && p.clusterScope == nil)
        #expect(f.service.authenticate(bearer: issued.bearer) == .authenticated(p))

        let scoped = try f.service.issue(userName: "u-bob", clusterName: "c-1", isDerived: true)
        f.awaitCached(scoped.token.name)
        #expect(try f.service.check(bearer: scoped.bearer).get().clusterScope == "c-1")
    }

    /// A token works on the next request, before the watch has brought it (read-your-writes):
    /// with caches that never sync, the store answers the misses.
    @Test func aFreshTokenWorksBeforeTheCacheHasIt() throws {
        let t = try AuthTestStore()
        _ = try t.store(User.self).create(Object(name: "u-erin", spec: User.Spec(username: "erin")))
        let unsynced = TokenService(tokens: Informer(store: t.store()), users: Informer(store: t.store()))
        let issued = try unsynced.issue(userName: "u-erin")
        #expect(try unsynced.check(bearer: issued.bearer).get().name == "u-erin")
        var settings = TokenService.Settings()
        settings.readStoreOnMiss = false
        let cacheOnly = TokenService(tokens: Informer(store: t.store()), users: Informer(store: t.store()), settings: settings)
        #expect(cacheOnly.check(bearer: issued.bearer) == .failure(.unknown(token: issued.token.name)))
    }

    @Test func refusalsSayWhyOnlyToTheAudit() throws {
        let f = try TokenFixture()
        let issued = try f.service.issue(userName: "u-alice")
        f.awaitCached(issued.token.name)
        let (name, secret) = try #require(TokenFormat.parse(issued.bearer))
        let wrong = String(secret.dropLast()) + (secret.hasSuffix("b") ? "c" : "b")
        #expect(f.service.check(bearer: "\(name):\(wrong)") == .failure(.wrongSecret(token: name)))
        #expect(f.service.check(bearer: "token-zzzzz:\(secret)") == .failure(.unknown(token: "token-zzzzz")))
        for bad in ["", "token-abc", issued.bearer + "x", issued.bearer.uppercased(), "Bearer " + issued.bearer,
                    "\(name):\(secret.prefix(53))\n", "\(name)\0:\(secret)", "kubeconfig-u-alice:\(secret)"] {
            #expect(f.service.check(bearer: bad) == .failure(.malformed), "\(bad.debugDescription)")
        }
        // The audit reason never carries the presented secret.
        if case .failed(let reason) = f.service.authenticate(bearer: "\(name):\(wrong)") {
            #expect(reason.contains(name) && !reason.contains(wrong))
        } else {
            Issue.record("a wrong secret authenticated")
        }
    }

    @Test func expiryFollowsTheTTLAndMaxTTLCapsIt() throws {
        var settings = TokenService.Settings()
        settings.maxTTL = 3600
        let f = try TokenFixture(settings: settings)
        let short = try f.service.issue(userName: "u-alice", ttl: 60)
        let uncapped = try f.service.issue(userName: "u-alice")
        #expect(short.token.spec.ttlMillis == 60_000)
        #expect(uncapped.token.spec.expiresAt == f.clock.date.addingTimeInterval(3600))
        f.awaitCached(short.token.name)
        f.awaitCached(uncapped.token.name)
        #expect((try? f.service.check(bearer: short.bearer).get()) != nil)
        f.clock.advance(60)
        #expect(f.service.check(bearer: short.bearer) == .failure(.expired(token: short.token.name, at: short.token.spec.expiresAt!)))
        #expect((try? f.service.check(bearer: uncapped.bearer).get()) != nil)
        f.clock.advance(3540)
        #expect(f.service.check(bearer: uncapped.bearer) == .failure(.expired(token: uncapped.token.name, at: uncapped.token.spec.expiresAt!)))

        // Milliseconds survive the store (its dates are whole seconds otherwise).
        f.clock.advance(0.25)
        let subsecond = try f.service.issue(userName: "u-alice", ttl: 1.5)
        let stored = try f.service.tokens.store.get(subsecond.token.name).spec.expiresAt
        #expect(abs(try #require(stored).timeIntervalSince(subsecond.token.spec.expiresAt!)) < 0.001)

        // Without a maximum, a token with no TTL never expires.
        let g = try TokenFixture()
        let forever = try g.service.issue(userName: "u-bob")
        #expect(forever.token.spec.expiresAt == nil)
        g.awaitCached(forever.token.name)
        g.clock.advance(100 * 365 * 86400)
        #expect((try? g.service.check(bearer: forever.bearer).get()) != nil)
    }

    /// Deleting the Token object revokes it: refused as soon as the watch delivers, well under 1 s.
    @Test func revocationIsSeenThroughTheWatchWithinOneSecond() throws {
        let f = try TokenFixture()
        let issued = try f.service.issue(userName: "u-alice")
        f.awaitCached(issued.token.name)
        #expect((try? f.service.check(bearer: issued.bearer).get()) != nil)
        try f.service.revoke(issued.token.name)
        let took = waitUntil(timeout: 1) { f.service.check(bearer: issued.bearer) == .failure(.unknown(token: issued.token.name)) }
        #expect(took != nil, "a revoked token still authenticated after 1 s")
        print("TokenService: revocation refused after \(Int((took ?? 1) * 1_000_000)) µs")
    }

    @Test func disabledOrDeletedUsersAndDisabledTokensAreRefused() throws {
        let f = try TokenFixture()
        let alice = try f.service.issue(userName: "u-alice")
        let bob = try f.service.issue(userName: "u-bob")
        let bob2 = try f.service.issue(userName: "u-bob")
        f.awaitCached(bob2.token.name)

        try f.users.modify("u-alice") { (u: inout Object<User>) throws(StoreFailure) in u.spec.enabled = false }
        #expect(waitUntil(timeout: 1) {
            f.service.check(bearer: alice.bearer) == .failure(.userDisabled(token: alice.token.name, user: "u-alice"))
        } != nil)
        try f.users.delete("u-bob")
        #expect(waitUntil(timeout: 1) {
            f.service.check(bearer: bob.bearer) == .failure(.userUnknown(token: bob.token.name, user: "u-bob"))
        } != nil)

        let carol = try f.users.create(Object(name: "u-carol", spec: User.Spec(username: "carol")))
        let t = try f.service.issue(userName: carol.name)
        f.awaitCached(t.token.name)
        _ = waitUntil { f.service.users.get("u-carol") != nil }
        #expect((try? f.service.check(bearer: t.bearer).get()) != nil)
        try f.service.tokens.store.modify(t.token.name) { (o: inout Object<Token>) throws(StoreFailure) in o.spec.enabled = false }
        #expect(waitUntil(timeout: 1) { f.service.check(bearer: t.bearer) == .failure(.tokenDisabled(token: t.token.name)) } != nil)
    }

    /// `lastUsedAt` is written once per resolution in the background, never on every use.
    @Test func lastUseIsRecordedCoarsely() throws {
        var settings = TokenService.Settings()
        settings.recordLastUsed = true
        let f = try TokenFixture(settings: settings)
        let issued = try f.service.issue(userName: "u-alice")
        f.awaitCached(issued.token.name)
        _ = f.service.check(bearer: issued.bearer)
        #expect(waitUntil { f.service.tokens.get(issued.token.name)?.status.lastUsedAt == f.clock.date } != nil)
        let recorded = try #require(f.service.tokens.get(issued.token.name)).metadata.resourceVersion
        for _ in 0..<50 { _ = f.service.check(bearer: issued.bearer) }
        f.clock.advance(60)
        _ = f.service.check(bearer: issued.bearer)
        Thread.sleep(forTimeInterval: 0.1)
        #expect(try f.service.tokens.store.get(issued.token.name).metadata.resourceVersion == recorded)
        // Past the resolution, the next use is recorded.
        f.clock.advance(f.service.settings.lastUsedResolution)
        _ = f.service.check(bearer: issued.bearer)
        #expect(waitUntil { f.service.tokens.get(issued.token.name)?.status.lastUsedAt == f.clock.date } != nil)
    }

    /// The cost of one check with 10,000 tokens in the store (printed, not asserted).
    @Test func checkCostWithTenThousandTokens() throws {
        let f = try TokenFixture(memory: true)
        let tokens = f.service.tokens.store
        // Created straight in the store (one digest each), not through `issue`, to save time;
        // every 100th keeps its secret for the measurement.
        var bearers: [String] = []
        for i in 0..<10_000 {
            let name = String(format: "token-%05d", i)
            let secret = TokenFormat.newSecret()
            _ = try tokens.create(Object(name: name, spec: Token.Spec(userName: i % 2 == 0 ? "u-alice" : "u-bob",
                                                                       secretDigest: TokenFormat.digest(secret: secret))))
            if i % 100 == 0 { bearers.append(TokenFormat.bearer(name: name, secret: secret)) }
        }
        #expect(waitUntil(timeout: 30) { f.service.tokens.get("token-09999") != nil } != nil)
        let rounds = 200
        let start = DispatchTime.now().uptimeNanoseconds
        var ok = 0
        for _ in 0..<rounds {
            for b in bearers { if case .success = f.service.check(bearer: b) { ok += 1 } }
        }
        let micros = Double(DispatchTime.now().uptimeNanoseconds - start) / 1000 / Double(rounds * bearers.count)
        #expect(ok == rounds * bearers.count)
        print("TokenService: \(String(format: "%.2f", micros)) µs per check with 10,000 tokens (\(rounds * bearers.count) checks)")
    }
}
