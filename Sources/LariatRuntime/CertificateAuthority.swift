import COpenSSL

/// A private CA for the hub: a self-signed ECDSA P-256 certificate plus key, which issues the
/// hub's serving certificate. Agents trust the CA (fetched once and checked against its pinned
/// SHA-256 fingerprint), so the serving certificate can be reissued without touching agents.
public struct CertificateAuthority: Sendable {
    public let certificatePEM: String
    public let privateKeyPEM: String
    /// SHA-256 of the CA certificate's DER, lowercase hex: what agents pin.
    public let fingerprintSHA256: String

    /// Wraps existing PEM material, checking that it parses and that key and certificate match.
    public init(certificatePEM: String, privateKeyPEM: String) throws(TLSError) {
        let certificates = try PEM.readCertificates(certificatePEM)
        defer { certificates.forEach { X509_free($0) } }
        let key = try PEM.readPrivateKey(privateKeyPEM)
        defer { EVP_PKEY_free(key) }
        guard X509_check_private_key(certificates[0], key) == 1 else {
            throw TLSError.configuration("CA key does not match the CA certificate")
        }
        self.certificatePEM = certificatePEM
        self.privateKeyPEM = privateKeyPEM
        fingerprintSHA256 = Digest.sha256Hex(PEM.der(certificate: certificates[0]))
    }

    /// A new self-signed CA (ECDSA P-256, SHA-256 signature), valid for `validityDays`.
    public static func generate(commonName: String = "Lariat CA",
                                validityDays: Int = 3650) throws(TLSError) -> CertificateAuthority {
        let key = try CertificateBuilder.newP256Key()
        defer { EVP_PKEY_free(key) }
        let certificate = try CertificateBuilder.build(
            commonName: commonName, publicKey: key, issuer: nil, signingKey: key, validityDays: validityDays,
            extensions: [
                (NID_basic_constraints, "critical,CA:TRUE,pathlen:0"),
                (NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature"),
                (NID_subject_key_identifier, "hash"),
                (NID_authority_key_identifier, "keyid:always"),
            ])
        defer { X509_free(certificate) }
        return try CertificateAuthority(certificatePEM: PEM.string(certificate: certificate),
                                        privateKeyPEM: PEM.string(privateKey: key))
    }

    /// Issues a serving certificate for `dnsNames` and `ipAddresses` (always including
    /// "localhost" and 127.0.0.1), with a fresh P-256 key.
    public func issueServerCertificate(commonName: String = "lariat-hub", dnsNames: [String] = [],
                                       ipAddresses: [String] = [],
                                       validityDays: Int = 3650) throws(TLSError) -> IssuedCertificate {
        let caCertificates = try PEM.readCertificates(certificatePEM)
        defer { caCertificates.forEach { X509_free($0) } }
        let caKey = try PEM.readPrivateKey(privateKeyPEM)
        defer { EVP_PKEY_free(caKey) }
        let key = try CertificateBuilder.newP256Key()
        defer { EVP_PKEY_free(key) }

        var names: [String] = []
        for dns in ["localhost"] + dnsNames where !names.contains("DNS:\(dns)") { names.append("DNS:\(dns)") }
        for ip in ["127.0.0.1"] + ipAddresses where !names.contains("IP:\(ip)") { names.append("IP:\(ip)") }

        let certificate = try CertificateBuilder.build(
            commonName: commonName, publicKey: key, issuer: caCertificates[0], signingKey: caKey,
            validityDays: validityDays,
            extensions: [
                (NID_basic_constraints, "critical,CA:FALSE"),
                (NID_key_usage, "critical,digitalSignature"),
                (NID_ext_key_usage, "serverAuth,clientAuth"),
                (NID_subject_key_identifier, "hash"),
                (NID_authority_key_identifier, "keyid,issuer"),
                (NID_subject_alt_name, names.joined(separator: ",")),
            ])
        defer { X509_free(certificate) }
        return IssuedCertificate(certificatePEM: PEM.string(certificate: certificate),
                                 privateKeyPEM: PEM.string(privateKey: key))
    }
}

/// A leaf certificate and its key, as PEM.
public struct IssuedCertificate: Sendable {
    public let certificatePEM: String
    public let privateKeyPEM: String

    public init(certificatePEM: String, privateKeyPEM: String) {
        self.certificatePEM = certificatePEM
        self.privateKeyPEM = privateKeyPEM
    }
}

/// X509 assembly with OpenSSL's v3 extension config syntax ("critical,CA:TRUE", "DNS:x,IP:y").
enum CertificateBuilder {
    static func newP256Key() throws(TLSError) -> OpaquePointer {
        guard let key = lariat_generate_ec_p256_key() else { throw TLSError.configuration("P-256 key generation") }
        return key
    }

    /// Returns an owned X509*. `issuer == nil` means self-signed.
    static func build(commonName: String, publicKey: OpaquePointer, issuer: OpaquePointer?,
                      signingKey: OpaquePointer, validityDays: Int,
                      extensions: [(Int32, String)]) throws(TLSError) -> OpaquePointer {
        guard let certificate = X509_new() else { throw TLSError.configuration("X509_new") }
        do throws(TLSError) {
            try fill(certificate, commonName: commonName, publicKey: publicKey, issuer: issuer,
                     signingKey: signingKey, validityDays: validityDays, extensions: extensions)
        } catch {
            X509_free(certificate)
            throw error
        }
        return certificate
    }

    private static func fill(_ x: OpaquePointer, commonName: String, publicKey: OpaquePointer,
                             issuer: OpaquePointer?, signingKey: OpaquePointer, validityDays: Int,
                             extensions: [(Int32, String)]) throws(TLSError) {
        guard X509_set_version(x, 2) == 1 else { throw TLSError.configuration("X509_set_version") }  // v3

        // 127 random bits: positive, unique enough that re-issued certificates never collide.
        let serial = BN_new()
        defer { BN_free(serial) }
        guard BN_rand(serial, 127, -1, 0) == 1, BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) != nil else {
            throw TLSError.configuration("serial number")
        }
        // Backdate an hour to tolerate clock skew between hub and agents.
        guard X509_gmtime_adj(lariat_X509_getm_notBefore(x), -3600) != nil,
              X509_time_adj_ex(lariat_X509_getm_notAfter(x), Int32(validityDays), 0, nil) != nil,
              X509_set_pubkey(x, publicKey) == 1 else {
            throw TLSError.configuration("validity/public key")
        }

        let name = X509_get_subject_name(x)
        let cn = Array(commonName.utf8)
        guard X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, cn, Int32(cn.count), -1, 0) == 1,
              X509_set_issuer_name(x, issuer.map { X509_get_subject_name($0) } ?? name) == 1 else {
            throw TLSError.configuration("subject/issuer name")
        }

        var context = X509V3_CTX()
        X509V3_set_ctx(&context, issuer ?? x, x, nil, nil, 0)
        for (nid, value) in extensions {
            guard let ext = X509V3_EXT_conf_nid(nil, &context, nid, value) else {
                throw TLSError.configuration("extension \(nid)=\(value)")
            }
            defer { X509_EXTENSION_free(ext) }
            guard X509_add_ext(x, ext, -1) == 1 else { throw TLSError.configuration("X509_add_ext") }
        }
        guard X509_sign(x, signingKey, EVP_sha256()) > 0 else { throw TLSError.configuration("X509_sign") }
    }
}
