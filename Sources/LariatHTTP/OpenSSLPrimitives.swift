import COpenSSL

/// The two OpenSSL services this module needs: a digest for `Sec-WebSocket-Accept` and a
/// CSPRNG for handshake keys and for seeding the masking-key generator.
enum OpenSSLPrimitives {
    /// SHA-1 of `bytes` through the EVP interface. SHA-1 is mandated by RFC 6455 §4.2.2 here;
    /// it is not used for anything security-relevant.
    static func sha1(_ bytes: [UInt8]) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let ok = bytes.withUnsafeBytes { input in
            EVP_Digest(input.baseAddress, input.count, &digest, &length, EVP_sha1(), nil)
        }
        // Only fails if OpenSSL cannot allocate or SHA-1 is unavailable; nothing can continue then.
        precondition(ok == 1 && length == 20, "EVP_Digest(SHA-1) failed")
        return Array(digest.prefix(20))
    }

    /// `count` bytes from OpenSSL's CSPRNG.
    static func randomBytes(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let ok = bytes.withUnsafeMutableBytes { buffer in
            RAND_bytes(buffer.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(count))
        }
        // A failing system CSPRNG must not silently yield predictable keys.
        precondition(ok == 1, "RAND_bytes failed")
        return bytes
    }
}
