import COpenSSL

/// The one place the control plane hands buffers to OpenSSL's key-derivation functions.
enum OpenSSLKDF {
    /// scrypt (RFC 7914) through `EVP_PBE_scrypt`; nil if OpenSSL refuses the parameters
    /// (N not a power of two, memory above `maxMemory`).
    static func scrypt(password: [UInt8], salt: [UInt8], n: UInt64, r: UInt64, p: UInt64, keyLength: Int,
                       maxMemory: UInt64) -> [UInt8]? {
        var key = [UInt8](repeating: 0, count: keyLength)
        let ok = password.withUnsafeBufferPointer { pw in
            salt.withUnsafeBufferPointer { s in
                key.withUnsafeMutableBufferPointer { k in
                    pw.baseAddress.withMemoryRebound(to: CChar.self, capacity: pw.count) { pwChars in
                        EVP_PBE_scrypt(pwChars, pw.count, s.baseAddress, s.count, n, r, p, maxMemory,
                                       k.baseAddress, k.count)
                    }
                }
            }
        }
        return ok == 1 ? key : nil
    }
}

extension Optional where Wrapped == UnsafePointer<UInt8> {
    /// Rebinds a possibly-nil byte pointer (an empty array's) as CChar for OpenSSL's `const char *`.
    fileprivate func withMemoryRebound<T>(to: CChar.Type, capacity: Int, _ body: (UnsafePointer<CChar>?) -> T) -> T {
        guard let p = self else { return body(nil) }
        return p.withMemoryRebound(to: CChar.self, capacity: capacity) { body($0) }
    }
}
