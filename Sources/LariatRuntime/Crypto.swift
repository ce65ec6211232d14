import COpenSSL

/// SHA-256 and HMAC-SHA-256 through OpenSSL's EVP layer (already linked for TLS, so no
/// swift-crypto and its BoringSSL build).
public enum Digest {
    public static func sha256(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(SHA256_DIGEST_LENGTH))
        var length: UInt32 = 0
        let ok = out.withUnsafeMutableBufferPointer { digest in
            EVP_Digest(bytes.baseAddress, bytes.count, digest.baseAddress, &length, EVP_sha256(), nil)
        }
        precondition(ok == 1 && length == out.count, "EVP_Digest(SHA-256) failed")
        return out
    }

    public static func sha256(_ bytes: [UInt8]) -> [UInt8] { bytes.withUnsafeBytes { sha256($0) } }

    public static func sha256Hex(_ bytes: [UInt8]) -> String { hex(sha256(bytes)) }
    public static func sha256Hex(_ text: String) -> String { sha256Hex(Array(text.utf8)) }

    public static func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let result = key.withUnsafeBytes { key in
            message.withUnsafeBytes { message in
                out.withUnsafeMutableBufferPointer { digest in
                    HMAC(EVP_sha256(), key.baseAddress, Int32(key.count),
                         message.baseAddress?.assumingMemoryBound(to: UInt8.self), message.count,
                         digest.baseAddress, &length)
                }
            }
        }
        precondition(result != nil, "HMAC(SHA-256) failed")
        return Array(out.prefix(Int(length)))
    }

    /// Compares secrets (tokens, MACs) in time independent of where they differ.
    public static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBytes { a in
            b.withUnsafeBytes { b in CRYPTO_memcmp(a.baseAddress, b.baseAddress, a.count) == 0 }
        }
    }

    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}

/// Cryptographically secure random bytes (OpenSSL's RAND_bytes, seeded from the OS).
public enum SecureRandom {
    public static func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let ok = out.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32(count)) }
        precondition(ok == 1, "RAND_bytes failed")
        return out
    }

    /// A random token as lowercase hex (`byteCount` random bytes).
    public static func hexToken(byteCount: Int = 32) -> String { Digest.hex(bytes(byteCount)) }

    /// `count` characters of a-z and 0-9, uniformly chosen (rejection sampling: no modulo bias),
    /// as Rancher's object names and token secrets are made.
    public static func lowercaseAlphanumeric(count: Int) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(count)
        while out.count < count {
            for b in bytes(count) where b < 252 && out.count < count {  // 252 = 7 × 36
                out.append(alphabet[Int(b) % 36])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
