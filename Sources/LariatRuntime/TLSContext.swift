import CLariatBIO
import COpenSSL

public enum TLSVersion: Sendable {
    case tls12, tls13

    var openSSLValue: Int32 {
        switch self {
        case .tls12: return TLS1_2_VERSION
        case .tls13: return TLS1_3_VERSION
        }
    }
}

/// Configuration shared by many TLS sessions (an `SSL_CTX`). Build one per role at start-up and
/// share it across loops.
public final class TLSContext: Sendable {
    /// Fully configured in the factory methods and never mutated afterwards; OpenSSL supports
    /// concurrent SSL_new() on one SSL_CTX from several threads.
    nonisolated(unsafe) let raw: OpaquePointer
    public let isServer: Bool
    public let verifiesPeer: Bool
    public let verifiesHostname: Bool
    /// A server's ALPN list, read by the C select callback (`CLariatALPN.h`); written once in
    /// the factory and freed after the context, so concurrent handshakes only read it.
    nonisolated(unsafe) private let alpnSelection: UnsafeMutableRawPointer?

    private init(raw: OpaquePointer, isServer: Bool, verifiesPeer: Bool, verifiesHostname: Bool,
                 alpnSelection: UnsafeMutableRawPointer? = nil) {
        self.raw = raw
        self.isServer = isServer
        self.verifiesPeer = verifiesPeer
        self.verifiesHostname = verifiesHostname
        self.alpnSelection = alpnSelection
    }

    deinit {
        SSL_CTX_free(raw)
        lariat_alpn_server_free(alpnSelection)
    }

    /// A server presenting `certificatePEM` (the leaf) with `privateKeyPEM`. `chainPEM` holds any
    /// intermediates (or the CA itself, so clients can fetch it and check its pin).
    /// `alpnProtocols`, in order of preference: the first one the client offers is selected
    /// (`TLSEngine.negotiatedProtocol`); when the client offers none of them, or no ALPN at all,
    /// the handshake goes on without it.
    public static func server(certificatePEM: String, privateKeyPEM: String, chainPEM: String? = nil,
                              minimumVersion: TLSVersion = .tls12,
                              maximumVersion: TLSVersion = .tls13,
                              alpnProtocols: [String] = []) throws(TLSError) -> TLSContext {
        let ctx = try makeContext(method: TLS_server_method(), minimumVersion, maximumVersion)
        var alpnSelection: UnsafeMutableRawPointer?
        do throws(TLSError) {
            let certificates = try PEM.readCertificates(certificatePEM)
            defer { certificates.forEach { X509_free($0) } }
            guard SSL_CTX_use_certificate(ctx, certificates[0]) == 1 else {
                throw TLSError.configuration("SSL_CTX_use_certificate")
            }
            let key = try PEM.readPrivateKey(privateKeyPEM)
            defer { EVP_PKEY_free(key) }
            guard SSL_CTX_use_PrivateKey(ctx, key) == 1, SSL_CTX_check_private_key(ctx) == 1 else {
                throw TLSError.configuration("private key does not match the certificate")
            }
            if let chainPEM {
                for extra in try PEM.readCertificates(chainPEM) {
                    // On success the context takes ownership of `extra`.
                    if lariat_SSL_CTX_add_extra_chain_cert(ctx, extra) != 1 {
                        X509_free(extra)
                        throw TLSError.configuration("SSL_CTX_add_extra_chain_cert")
                    }
                }
            }
            if !alpnProtocols.isEmpty {
                let wire = try alpnWireFormat(alpnProtocols)
                alpnSelection = wire.withUnsafeBufferPointer { lariat_alpn_server_install(ctx, $0.baseAddress, $0.count) }
                guard alpnSelection != nil else { throw TLSError.configuration("out of memory for the ALPN list") }
            }
        } catch {
            SSL_CTX_free(ctx)
            throw error
        }
        return TLSContext(raw: ctx, isServer: true, verifiesPeer: false, verifiesHostname: false,
                          alpnSelection: alpnSelection)
    }

    /// A client that trusts only the CA certificates in `trustedCAPEM` (not the system store).
    /// With `verifyHostname`, the server name given per connection must match a SAN
    /// (DNS name, or IP address when the name is numeric). `alpnProtocols` are offered in
    /// that order; what the server chose is `TLSEngine.negotiatedProtocol`.
    public static func client(trustedCAPEM: String, verifyHostname: Bool = true,
                              minimumVersion: TLSVersion = .tls12,
                              maximumVersion: TLSVersion = .tls13,
                              alpnProtocols: [String] = []) throws(TLSError) -> TLSContext {
        let ctx = try makeContext(method: TLS_client_method(), minimumVersion, maximumVersion)
        do throws(TLSError) {
            let authorities = try PEM.readCertificates(trustedCAPEM)
            defer { authorities.forEach { X509_free($0) } }
            let store = SSL_CTX_get_cert_store(ctx)
            for authority in authorities where X509_STORE_add_cert(store, authority) != 1 {
                throw TLSError.configuration("X509_STORE_add_cert")
            }
            if !alpnProtocols.isEmpty {
                let wire = try alpnWireFormat(alpnProtocols)
                // Unlike most of OpenSSL, 0 means success here.
                guard SSL_CTX_set_alpn_protos(ctx, wire, UInt32(wire.count)) == 0 else {
                    throw TLSError.configuration("SSL_CTX_set_alpn_protos")
                }
            }
        } catch {
            SSL_CTX_free(ctx)
            throw error
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        return TLSContext(raw: ctx, isServer: false, verifiesPeer: true, verifiesHostname: verifyHostname)
    }

    /// A client that accepts ANY certificate. Only for bootstrapping trust: fetch the server's
    /// chain (`TLSEngine.peerCertificateChainPEM`), check the CA against a pinned SHA-256
    /// fingerprint, then reconnect with `client(trustedCAPEM:)`. Never carry data over it.
    public static func insecureClientForPinning(minimumVersion: TLSVersion = .tls12,
                                                maximumVersion: TLSVersion = .tls13) throws(TLSError) -> TLSContext {
        let ctx = try makeContext(method: TLS_client_method(), minimumVersion, maximumVersion)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
        return TLSContext(raw: ctx, isServer: false, verifiesPeer: false, verifiesHostname: false)
    }

    /// RFC 7301 wire format: each protocol name as a length byte and 1...255 bytes.
    static func alpnWireFormat(_ protocols: [String]) throws(TLSError) -> [UInt8] {
        var wire: [UInt8] = []
        for name in protocols {
            let bytes = Array(name.utf8)
            guard (1...255).contains(bytes.count) else {
                throw TLSError.configuration("an ALPN protocol name must be 1 to 255 bytes, not \(bytes.count)")
            }
            wire.append(UInt8(bytes.count))
            wire += bytes
        }
        guard wire.count <= 0xFFFF else { throw TLSError.configuration("the ALPN list is longer than 65535 bytes") }
        return wire
    }

    private static func makeContext(method: OpaquePointer?, _ minimum: TLSVersion,
                                    _ maximum: TLSVersion) throws(TLSError) -> OpaquePointer {
        guard let ctx = SSL_CTX_new(method) else { throw TLSError.configuration("SSL_CTX_new") }
        guard lariat_SSL_CTX_set_min_proto_version(ctx, minimum.openSSLValue) == 1,
              lariat_SSL_CTX_set_max_proto_version(ctx, maximum.openSSLValue) == 1 else {
            SSL_CTX_free(ctx)
            throw TLSError.configuration("unsupported TLS version range")
        }
        _ = SSL_CTX_set_options(ctx, lariat_SSL_OP_ALL | lariat_SSL_OP_NO_COMPRESSION | lariat_SSL_OP_NO_RENEGOTIATION)
        // SSL_MODE_RELEASE_BUFFERS is not set here but per connection, by its traffic
        // (`TLSEngine.releasesRecordBuffers`): set always, it reallocates record buffers on the
        // data path; never set, every idle connection holds about 34 KiB of them.
        return ctx
    }
}
