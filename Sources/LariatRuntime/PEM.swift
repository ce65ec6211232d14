import COpenSSL

/// PEM/DER conversions for OpenSSL objects (X509*, EVP_PKEY*). Returned objects are owned by
/// the caller (free with X509_free / EVP_PKEY_free).
enum PEM {
    /// Every certificate in `pem`, in order.
    static func readCertificates(_ pem: String) throws(TLSError) -> [OpaquePointer] {
        let certificates = withMemoryBIO(pem) { bio -> [OpaquePointer] in
            var result: [OpaquePointer] = []
            while let certificate = PEM_read_bio_X509(bio, nil, nil, nil) { result.append(certificate) }
            return result
        }
        // Reading stops at a "no start line" error, which is the normal end of input.
        ERR_clear_error()
        guard !certificates.isEmpty else { throw TLSError.configuration("no certificate found in PEM") }
        return certificates
    }

    static func readPrivateKey(_ pem: String) throws(TLSError) -> OpaquePointer {
        guard let key = withMemoryBIO(pem, { PEM_read_bio_PrivateKey($0, nil, nil, nil) }) else {
            throw TLSError.configuration("cannot parse private key PEM")
        }
        return key
    }

    static func string(certificate: OpaquePointer) -> String {
        writeToMemoryBIO { PEM_write_bio_X509($0, certificate) }
    }

    static func string(privateKey: OpaquePointer) -> String {
        writeToMemoryBIO { PEM_write_bio_PrivateKey($0, privateKey, nil, nil, 0, nil, nil) }
    }

    static func der(certificate: OpaquePointer) -> [UInt8] {
        let length = i2d_X509(certificate, nil)
        guard length > 0 else { return [] }
        var der = [UInt8](repeating: 0, count: Int(length))
        der.withUnsafeMutableBufferPointer { buffer in
            var cursor: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
            _ = i2d_X509(certificate, &cursor)
        }
        return der
    }

    /// SHA-256 of the DER encoding of the first certificate in `pem`, as lowercase hex:
    /// the pin format used to check a fetched CA.
    static func fingerprintSHA256(certificatePEM pem: String) throws(TLSError) -> String {
        let certificates = try readCertificates(pem)
        defer { certificates.forEach { X509_free($0) } }
        return Digest.sha256Hex(der(certificate: certificates[0]))
    }

    private static func withMemoryBIO<R>(_ text: String, _ body: (OpaquePointer) -> R) -> R {
        var text = text
        return text.withUTF8 { utf8 in
            let bio = BIO_new_mem_buf(utf8.baseAddress, Int32(utf8.count))!
            defer { BIO_free(bio) }
            return body(bio)
        }
    }

    private static func writeToMemoryBIO(_ body: (OpaquePointer) -> Int32) -> String {
        let bio = BIO_new(BIO_s_mem())!
        defer { BIO_free(bio) }
        guard body(bio) == 1 else { return "" }
        var data: UnsafeMutablePointer<CChar>?
        let length = lariat_BIO_get_mem_data(bio, &data)
        guard let data, length > 0 else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }
}
