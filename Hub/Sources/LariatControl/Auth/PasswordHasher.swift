import Foundation
import LariatRuntime

/// Slow, salted password hashes: scrypt through OpenSSL, written as PHC strings
/// (`$scrypt$ln=15,r=8,p=1$<salt>$<hash>`, unpadded base64) so the parameters travel with each
/// hash and can be raised later: `verify` says when a hash was made with other parameters, and
/// the login path then stores a new hash of the password it just checked.
public struct PasswordHasher: Sendable {
    public struct Settings: Sendable, Equatable {
        /// log2 of scrypt's cost N. 15 (32 MiB with r = 8) took 0.31–0.39 s per hash on the shared
        /// 2-core test machine under a load average of 8–9 (less when idle); tests lower it.
        public var logN = 15
        /// scrypt's block size.
        public var r = 8
        /// scrypt's parallelism (run sequentially by OpenSSL: more time, no more memory).
        public var p = 1
        /// Random salt bytes per hash.
        public var saltLength = 16
        /// Derived key bytes stored.
        public var keyLength = 32
        /// Longer passwords are refused before hashing (bounds the work one request can ask for).
        public var maxPasswordLength = 1024
        /// Shorter new passwords are refused (the API checks on set; verification never does).
        public var minPasswordLength = 12
        /// The highest cost a stored hash may name; a hash asking for more is treated as malformed
        /// rather than run (a tampered store must not buy gigabytes per login).
        public var maxLogN = 20
        public init() {}
    }

    public enum Verification: Sendable, Equatable {
        /// The password matches; `needsRehash` when the hash was made with other parameters than
        /// the current settings (store `hash(password)` in its place).
        case valid(needsRehash: Bool)
        case wrongPassword
        /// Not a hash this hasher reads (empty: the user has no password).
        case malformed
    }

    public let settings: Settings

    public init(settings: Settings = Settings()) { self.settings = settings }

    private struct Parameters: Equatable {
        var logN: Int
        var r: Int
        var p: Int
    }

    private var current: Parameters { Parameters(logN: settings.logN, r: settings.r, p: settings.p) }

    /// A new hash of `password` with a fresh random salt and the current parameters.
    public func hash(_ password: String) -> String {
        let salt = SecureRandom.bytes(settings.saltLength)
        let key = derive(Array(password.utf8), salt: salt, current, keyLength: settings.keyLength)!
        return Self.encode(current, salt: salt, key: key)
    }

    /// Checks `password` against a stored hash in time independent of where they differ.
    public func verify(_ password: String, against encoded: String) -> Verification {
        guard let (parameters, salt, expected) = Self.decode(encoded), parameters.logN <= settings.maxLogN,
              !expected.isEmpty
        else { return .malformed }
        // No stored password is longer (`validateNew`), so a longer one cannot match: skip the work.
        guard password.utf8.count <= settings.maxPasswordLength else { return .wrongPassword }
        guard let key = derive(Array(password.utf8), salt: salt, parameters, keyLength: expected.count) else {
            return .malformed
        }
        guard Digest.constantTimeEquals(key, expected) else { return .wrongPassword }
        return .valid(needsRehash: parameters != current || salt.count != settings.saltLength
                      || expected.count != settings.keyLength)
    }

    /// Spends the time a verification takes and fails: the login path calls it for an unknown
    /// user name, so the answer's timing does not tell which user names exist.
    public func verifyUnknownUser(_ password: String) -> Verification {
        _ = derive(Array(password.utf8.prefix(settings.maxPasswordLength)), salt: [UInt8](repeating: 0, count: settings.saltLength),
                   current, keyLength: settings.keyLength)
        return .wrongPassword
    }

    /// Field errors for a new password (length only: long passphrases beat composition rules).
    public func validateNew(_ password: String, field: String = "newPassword") -> [FieldError] {
        let n = password.count
        if n < settings.minPasswordLength { return [FieldError(field, "at least \(settings.minPasswordLength) characters")] }
        if password.utf8.count > settings.maxPasswordLength { return [FieldError(field, "at most \(settings.maxPasswordLength) bytes")] }
        return []
    }

    /// Whether `text` has the shape of a hash this hasher writes (for validation of stored users).
    public static func isEncodedHash(_ text: String) -> Bool { decode(text) != nil }

    private func derive(_ password: [UInt8], salt: [UInt8], _ p: Parameters, keyLength: Int) -> [UInt8]? {
        let n = UInt64(1) << UInt64(p.logN)
        // scrypt needs 128·r·N bytes for V plus 128·r·p for B; allow that and a margin.
        let memory = 128 * UInt64(p.r) * (n + UInt64(p.p) + 2) + (1 << 20)
        return OpenSSLKDF.scrypt(password: password, salt: salt, n: n, r: UInt64(p.r), p: UInt64(p.p),
                                 keyLength: keyLength, maxMemory: memory)
    }

    // MARK: PHC encoding

    private static let algorithm = "scrypt"

    private static func encode(_ p: Parameters, salt: [UInt8], key: [UInt8]) -> String {
        "$\(algorithm)$ln=\(p.logN),r=\(p.r),p=\(p.p)$\(base64(salt))$\(base64(key))"
    }

    private static func decode(_ text: String) -> (Parameters, [UInt8], [UInt8])? {
        let parts = text.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0].isEmpty, parts[1] == algorithm else { return nil }
        var values: [Substring: Int] = [:]
        for field in parts[2].split(separator: ",") {
            let kv = field.split(separator: "=", maxSplits: 1)
            guard kv.count == 2, let v = Int(kv[1]), v > 0 else { return nil }
            values[kv[0]] = v
        }
        guard values.count == 3, let ln = values["ln"], let r = values["r"], let p = values["p"],
              ln < 63, r < 1 << 16, p < 1 << 16,
              let salt = unbase64(parts[3]), let key = unbase64(parts[4]), !salt.isEmpty
        else { return nil }
        return (Parameters(logN: ln, r: r, p: p), salt, key)
    }

    private static func base64(_ bytes: [UInt8]) -> String {
        var s = Data(bytes).base64EncodedString()
        while s.hasSuffix("=") { s.removeLast() }
        return s
    }

    private static func unbase64(_ text: Substring) -> [UInt8]? {
        var s = String(text)
        while s.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s).map(Array.init)
    }
}
