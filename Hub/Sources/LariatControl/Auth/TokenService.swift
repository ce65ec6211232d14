import Foundation
import LariatRuntime
import LariatStore
import Synchronization

/// Why a bearer was refused. The client always gets the same 401; this goes to the audit
/// record and the failed-authentication throttle.
public enum TokenFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// Not shaped as `token-xxxxx:<secret>` (the text is not repeated: it may be a secret).
    case malformed
    /// No such Token: never issued, or revoked (deleted).
    case unknown(token: String)
    case wrongSecret(token: String)
    case expired(token: String, at: Date)
    case tokenDisabled(token: String)
    /// The token's user is gone or being deleted.
    case userUnknown(token: String, user: String)
    case userDisabled(token: String, user: String)

    public var description: String {
        switch self {
        case .malformed: "bearer is not a token (token-xxxxx:secret)"
        case .unknown(let t): "token \(t) not found (never issued, or revoked)"
        case .wrongSecret(let t): "wrong secret for token \(t)"
        case .expired(let t, let at): "token \(t) expired at \(at.formatted(.iso8601))"
        case .tokenDisabled(let t): "token \(t) is disabled"
        case .userUnknown(let t, let u): "token \(t) belongs to user \(u), who no longer exists"
        case .userDisabled(let t, let u): "token \(t) belongs to user \(u), who is disabled"
        }
    }
}

/// A token just issued: the object as stored and the bearer, which exists only here — show it
/// once and never log or store it.
public struct IssuedToken: Sendable {
    public var token: Object<Token>
    public var bearer: String
}

/// Issues API tokens and authenticates bearers against caches of the Token and User objects
/// (`Informer`s), so a check costs a dictionary lookup and one SHA-256 (microseconds, no store
/// round trip), and a deleted token or disabled user is refused as soon as the watch delivers.
public final class TokenService: Authenticating {
    public struct Settings: Sendable {
        /// Lifetime of tokens made by a login (Rancher's default session TTL is 16 hours).
        public var loginTTL: TimeInterval = 16 * 3600
        /// The longest lifetime a token may be given; nil for no limit (tokens may then never expire).
        public var maxTTL: TimeInterval? = nil
        /// `status.lastUsedAt` is written at most once per this interval per token, off the
        /// request's path: never a store write on every use.
        public var lastUsedResolution: TimeInterval = 3600
        /// Whether to record `lastUsedAt` at all. Off by default: the background write moves the
        /// token's resourceVersion, so an API update or delete racing it gets 409 and must retry.
        public var recordLastUsed = false
        /// Whether a token or user missing from the caches is looked up in the store (so a
        /// token works on the request right after the one that issued it).
        public var readStoreOnMiss = true
        /// Attempts at a fresh random name when one is taken (14 million names: collisions are rare).
        public var nameAttempts = 8
        public init() {}
    }

    /// The group every authenticated principal is in (as Kubernetes).
    public static let authenticatedGroup = "system:authenticated"

    public let tokens: Informer<Token>
    public let users: Informer<User>
    public let settings: Settings
    private let clock: @Sendable () -> Date
    private let lastUsedPending = Mutex<Set<String>>([])
    private let lastUsedQueue = DispatchQueue(label: "token-last-used", qos: .utility)

    /// `tokens` and `users` must be started (`Informer.start`) before bearers can be checked.
    public init(tokens: Informer<Token>, users: Informer<User>, settings: Settings = Settings(),
                clock: @escaping @Sendable () -> Date = { Date() }) {
        self.tokens = tokens
        self.users = users
        self.settings = settings
        self.clock = clock
    }

    /// Creates a Token for `userName` with a fresh secret. `ttl` nil or 0 means no expiry
    /// (refused when `maxTTL` is set, which then caps it).
    public func issue(userName: String, description: String = "", ttl: TimeInterval? = nil,
                      clusterName: String? = nil, isDerived: Bool = false) throws(StoreFailure) -> IssuedToken {
        var lifetime = (ttl ?? 0) > 0 ? ttl : nil
        if let max = settings.maxTTL { lifetime = min(lifetime ?? max, max) }
        let secret = TokenFormat.newSecret()
        var spec = Token.Spec(userName: userName, description: description,
                              expiresAt: lifetime.map { clock().addingTimeInterval($0) },
                              ttlMillis: Int64((lifetime ?? 0) * 1000), secretDigest: TokenFormat.digest(secret: secret),
                              isDerived: isDerived, clusterName: clusterName)
        spec.enabled = true
        var lastError = StoreFailure.unavailable("no attempt made")
        for _ in 0..<max(1, settings.nameAttempts) {
            let name = TokenFormat.newName()
            do {
                let created = try tokens.store.create(Object<Token>(name: name, spec: spec))
                tokens.remember(created)
                return IssuedToken(token: created, bearer: TokenFormat.bearer(name: name, secret: secret))
            } catch {
                guard case .alreadyExists = error else { throw error }
                lastError = error
            }
        }
        throw lastError
    }

    /// A login's session token.
    public func issueLogin(userName: String, description: String = "login") throws(StoreFailure) -> IssuedToken {
        try issue(userName: userName, description: description, ttl: settings.loginTTL)
    }

    /// Revokes a token: deleting the object is the revocation (the watch tells every hub).
    public func revoke(_ name: String, attempts: Int = 8) throws(StoreFailure) {
        var lastError = StoreFailure.unavailable("no attempt made")
        for _ in 0..<max(1, attempts) {
            do {
                try tokens.store.delete(name)
                return
            } catch {
                // A concurrent write (a `lastUsedAt` record) moved the revision: read again.
                guard case .conflict = error else { throw error }
                lastError = error
            }
        }
        throw lastError
    }

    public func authenticate(bearer: String) -> AuthenticationResult {
        switch check(bearer: bearer) {
        case .success(let p): .authenticated(p)
        case .failure(let f): .failed(reason: f.description)
        }
    }

    /// The principal a bearer stands for, or why it is refused.
    public func check(bearer: String) -> Result<Principal, TokenFailure> {
        guard let (name, secret) = TokenFormat.parse(bearer) else { return .failure(.malformed) }
        guard let token = cached(name, tokens), !token.metadata.isBeingDeleted else { return .failure(.unknown(token: name)) }
        let spec = token.spec
        let presented = Array(TokenFormat.digest(secret: secret).utf8)
        guard Digest.constantTimeEquals(presented, Array(spec.secretDigest.utf8)) else {
            return .failure(.wrongSecret(token: name))
        }
        let now = clock()
        if let expiry = spec.expiresAt, expiry <= now { return .failure(.expired(token: name, at: expiry)) }
        guard spec.enabled else { return .failure(.tokenDisabled(token: name)) }
        guard let user = cached(spec.userName, users), !user.metadata.isBeingDeleted else {
            return .failure(.userUnknown(token: name, user: spec.userName))
        }
        guard user.spec.enabled else { return .failure(.userDisabled(token: name, user: spec.userName)) }
        noteUse(token, at: now)
        return .success(Self.principal(of: user, tokenName: name, clusterScope: spec.clusterName))
    }

    /// The principal a user acts as: its groups and `system:authenticated`.
    public static func principal(of user: Object<User>, tokenName: String? = nil, clusterScope: String? = nil) -> Principal {
        Principal(kind: .user, name: user.name, username: user.spec.username, groups: user.spec.groups + [authenticatedGroup],
                  tokenName: tokenName, clusterScope: clusterScope)
    }

    /// The object from the cache, or — when the cache has not seen it yet — from the store: a
    /// token issued a moment ago (by this hub or another) works on the very next request, before
    /// the watch has delivered it. Only well-formed names get here, and failed attempts are
    /// throttled by the front door, so the misses cost one indexed read each.
    private func cached<R: Resource>(_ name: String, _ informer: Informer<R>) -> Object<R>? {
        if let o = informer.get(name) { return o }
        guard settings.readStoreOnMiss else { return nil }
        return try? informer.store.find(name)
    }

    /// Records `lastUsedAt` in the background when the stored one is older than the resolution.
    private func noteUse(_ token: Object<Token>, at now: Date) {
        guard settings.recordLastUsed else { return }
        if let last = token.status.lastUsedAt, now.timeIntervalSince(last) < settings.lastUsedResolution { return }
        let name = token.name
        guard lastUsedPending.withLock({ $0.insert(name).inserted }) else { return }
        lastUsedQueue.async { [self] in
            defer { _ = lastUsedPending.withLock { $0.remove(name) } }
            // A failure (the token was just deleted, the store is busy) only loses a timestamp.
            _ = try? tokens.store.modify(name) { (t: inout Object<Token>) throws(StoreFailure) in
                t.status.lastUsedAt = now
            }
        }
    }
}
