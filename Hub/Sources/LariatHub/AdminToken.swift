import Foundation
import LariatRuntime

/// The hub's admin token: only its SHA-256 digest is kept (`DATA/admin.token.sha256`), so a
/// copy of the data folder does not hand out admin access. The token itself is printed once,
/// when it is created, or taken from `LARIAT_ADMIN_TOKEN` on that first start. A data folder
/// from before keeps its token: the plaintext `admin.token` is replaced by its digest.
public enum AdminToken {
    public struct Loaded: Sendable {
        public var sha256Hex: String
        /// The token, when this call created it (to show once); nil when it already existed.
        public var created: String?
    }

    public static let environmentVariable = "LARIAT_ADMIN_TOKEN"

    public static func loadOrCreate(directory: String,
                                    environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Loaded {
        let digestPath = directory + "/admin.token.sha256"
        let legacyPath = directory + "/admin.token"
        if let text = try FileIO.readIfExists(digestPath) {
            let digest = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard digest.count == 64, digest.allSatisfy(\.isHexDigit) else {
                throw StoreError("\(digestPath) does not hold a SHA-256 digest; delete it to make a new admin token")
            }
            return Loaded(sha256Hex: digest.lowercased(), created: nil)
        }
        if let legacy = try FileIO.readIfExists(legacyPath)?.trimmingCharacters(in: .whitespacesAndNewlines), !legacy.isEmpty {
            let digest = Digest.sha256Hex(legacy)
            try FileIO.writeAtomically(digestPath, digest + "\n", mode: 0o600)
            unlink(legacyPath)
            return Loaded(sha256Hex: digest, created: nil)
        }
        var token = environment[environmentVariable]?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        if token.isEmpty {
            token = SecureRandom.hexToken(byteCount: 24)
        } else if token.utf8.count < 16 {
            throw StoreError("\(environmentVariable) must be at least 16 characters")
        }
        let digest = Digest.sha256Hex(token)
        try FileIO.writeAtomically(digestPath, digest + "\n", mode: 0o600)
        return Loaded(sha256Hex: digest, created: token)
    }
}
