import LariatRuntime

/// The shape of API tokens, as Rancher's: the bearer `token-xxxxx:<secret>` names the Token
/// object (`token-xxxxx`) and carries a 54-character secret. Both are drawn from Rancher's
/// alphabet of 27 lowercase consonants and digits (no vowels, so no words; no 0/1/3 lookalikes):
/// 54 of them hold 256 bits.
public enum TokenFormat {
    public static let alphabet = Array("bcdfghjklmnpqrstvwxz2456789".utf8)
    public static let namePrefix = "token-"
    /// Random characters after `token-`.
    public static let idLength = 5
    public static let secretLength = 54
    /// What a stored digest starts with; a new scheme would get a new prefix.
    public static let digestPrefix = "sha256:"

    public static func newName() -> String { namePrefix + random(idLength) }
    public static func newSecret() -> String { random(secretLength) }

    public static func bearer(name: String, secret: String) -> String { "\(name):\(secret)" }

    /// Splits a bearer into the Token's name and the secret, or nil if it is not shaped as one.
    /// Only characters of the token alphabet pass, so what this returns is safe to log.
    public static func parse(_ bearer: String) -> (name: String, secret: String)? {
        let u = bearer.utf8
        guard u.count == namePrefix.utf8.count + idLength + 1 + secretLength,
              let colon = u.firstIndex(of: UInt8(ascii: ":"))
        else { return nil }
        let name = String(bearer[..<colon])
        let secret = String(bearer[bearer.index(after: colon)...])
        guard isTokenName(name), secret.utf8.count == secretLength, secret.utf8.allSatisfy(isLowerAlnum) else { return nil }
        return (name, secret)
    }

    /// `token-` and `idLength` lowercase letters or digits (wider than the alphabet, so names
    /// from other issuers — an import of old tokens — still parse).
    public static func isTokenName(_ name: String) -> Bool {
        guard name.hasPrefix(namePrefix) else { return false }
        let id = name.utf8.dropFirst(namePrefix.utf8.count)
        return id.count == idLength && id.allSatisfy(isLowerAlnum)
    }

    /// The stored form of a secret. A fast digest is enough here, unlike for passwords: the
    /// secret is 256 random bits, so no guess list or brute force can find it from the digest,
    /// and a slow hash would only make every API request slow.
    public static func digest(secret: String) -> String { digestPrefix + Digest.sha256Hex(secret) }

    public static func isSecretDigest(_ text: String) -> Bool {
        guard text.hasPrefix(digestPrefix) else { return false }
        let hex = text.utf8.dropFirst(digestPrefix.utf8.count)
        return hex.count == 64 && hex.allSatisfy {
            ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) || ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "f"))
        }
    }

    private static func isLowerAlnum(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
    }

    /// `count` characters of the alphabet, uniformly: bytes at or above the largest multiple of
    /// 27 are thrown away rather than folded in, which would favour the first characters.
    private static func random(_ count: Int) -> String {
        let limit = UInt8(256 / alphabet.count * alphabet.count)
        var out: [UInt8] = []
        out.reserveCapacity(count)
        while out.count < count {
            for b in SecureRandom.bytes(count * 2) where b < limit && out.count < count {
                out.append(alphabet[Int(b) % alphabet.count])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
