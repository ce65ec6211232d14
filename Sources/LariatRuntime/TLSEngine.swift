import COpenSSL

/// One TLS session over two memory BIOs, with no I/O of its own: feed it ciphertext from the
/// network, read plaintext into your buffer, write plaintext, and drain the ciphertext it
/// produced to the network. Drain after every feed and every write (handshake messages, alerts,
/// and session tickets appear there too). Loop-confined like the connection that owns it.
public final class TLSEngine {
    let ssl: OpaquePointer
    private let readBIO: OpaquePointer
    private let writeBIO: OpaquePointer
    public let isServer: Bool
    public private(set) var isHandshakeComplete = false
    /// After a fatal error OpenSSL forbids SSL_shutdown (no close_notify may follow an alert).
    public private(set) var hadFatalError = false
    private var sentCloseNotify = false

    /// `serverName` (clients): sent as SNI when it is a DNS name, and checked against the
    /// certificate's SANs when the context verifies host names.
    public init(context: TLSContext, serverName: String? = nil) throws(TLSError) {
        guard let ssl = SSL_new(context.raw) else { throw TLSError.configuration("SSL_new") }
        guard let readBIO = BIO_new(BIO_s_mem()), let writeBIO = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            throw TLSError.configuration("BIO_new")
        }
        // An empty memory BIO must mean "retry later", not end-of-file.
        _ = lariat_BIO_set_mem_eof_return(readBIO, -1)
        _ = lariat_BIO_set_mem_eof_return(writeBIO, -1)
        SSL_set_bio(ssl, readBIO, writeBIO)  // the SSL now owns both BIOs
        self.ssl = ssl
        self.readBIO = readBIO
        self.writeBIO = writeBIO
        isServer = context.isServer

        if isServer {
            SSL_set_accept_state(ssl)
            return
        }
        SSL_set_connect_state(ssl)
        guard let serverName else {
            if context.verifiesHostname {
                throw TLSError(kind: .configuration, message: "a server name is required to verify the host name")
            }
            return
        }
        let isIPAddress = SocketAddress(ip: serverName, port: 0) != nil
        if !isIPAddress { _ = lariat_SSL_set_tlsext_host_name(ssl, serverName) }  // SNI is DNS-only
        if context.verifiesHostname {
            let ok = isIPAddress
                ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), serverName)
                : SSL_set1_host(ssl, serverName)
            guard ok == 1 else { throw TLSError.configuration("cannot set the expected host name") }
        }
    }

    deinit {
        SSL_free(ssl)
    }

    // MARK: - Network side

    /// Appends ciphertext received from the peer.
    public func feed(_ ciphertext: UnsafeRawBufferPointer) throws(TLSError) {
        guard let base = ciphertext.baseAddress else { return }
        var offset = 0
        while offset < ciphertext.count {
            let n = BIO_write(readBIO, base + offset, Int32(min(ciphertext.count - offset, Int(Int32.max))))
            guard n > 0 else { throw TLSError.configuration("BIO_write (out of memory)") }
            offset += Int(n)
        }
    }

    /// Ciphertext waiting to be sent.
    public var pendingCiphertextCount: Int { Int(BIO_ctrl_pending(writeBIO)) }

    /// Moves up to `buffer.count` bytes of pending ciphertext into `buffer`; returns the count.
    public func drainCiphertext(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let n = BIO_read(writeBIO, buffer.baseAddress, Int32(clamping: buffer.count))
        return n > 0 ? Int(n) : 0
    }

    // MARK: - Application side

    /// Advances the handshake. Returns true once it is complete.
    public func handshake() throws(TLSError) -> Bool {
        if isHandshakeComplete { return true }
        ERR_clear_error()
        let rc = SSL_do_handshake(ssl)
        if rc == 1 {
            isHandshakeComplete = true
            return true
        }
        let code = SSL_get_error(ssl, rc)
        if code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE { return false }
        hadFatalError = true
        throw TLSError.session(ssl, code: code, operation: "handshake", handshakeComplete: false)
    }

    public enum ReadResult: Equatable, Sendable {
        /// This many plaintext bytes were written to the buffer.
        case bytes(Int)
        /// Nothing decryptable yet: feed more ciphertext.
        case needsInput
        /// The peer sent close_notify: no more plaintext will come.
        case closed
    }

    /// Decrypts into `buffer` (at most one TLS record's worth per call).
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(TLSError) -> ReadResult {
        ERR_clear_error()
        let n = SSL_read(ssl, buffer.baseAddress, Int32(clamping: buffer.count))
        if n > 0 { return .bytes(Int(n)) }
        let code = SSL_get_error(ssl, n)
        switch code {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return .needsInput
        case SSL_ERROR_ZERO_RETURN:
            return .closed
        default:
            hadFatalError = true
            throw TLSError.session(ssl, code: code, operation: "read", handshakeComplete: isHandshakeComplete)
        }
    }

    /// Encrypts `plaintext`; returns how many bytes were consumed (all of them once the
    /// handshake is complete, since the memory BIO never refuses output).
    public func write(_ plaintext: UnsafeRawBufferPointer) throws(TLSError) -> Int {
        guard let base = plaintext.baseAddress, plaintext.count > 0 else { return 0 }
        ERR_clear_error()
        let n = SSL_write(ssl, base, Int32(clamping: plaintext.count))
        if n > 0 { return Int(n) }
        let code = SSL_get_error(ssl, n)
        if code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE { return 0 }
        hadFatalError = true
        throw TLSError.session(ssl, code: code, operation: "write", handshakeComplete: isHandshakeComplete)
    }

    /// Queues a close_notify alert (drain it afterwards). Reading may continue.
    public func sendCloseNotify() {
        guard isHandshakeComplete, !hadFatalError, !sentCloseNotify else { return }
        sentCloseNotify = true
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }

    // MARK: - Inspection

    /// Negotiated protocol, e.g. "TLSv1.3".
    public var protocolVersion: String { String(cString: SSL_get_version(ssl)) }

    /// The certificates the peer sent, leaf first, as PEM (available after the handshake).
    /// On a client this includes the leaf; servers see only what clients sent.
    public var peerCertificateChainPEM: [String] {
        guard let chain = SSL_get_peer_cert_chain(ssl) else { return [] }
        return (0..<lariat_sk_X509_num(chain)).compactMap { index in
            lariat_sk_X509_value(chain, index).map { PEM.string(certificate: $0) }
        }
    }
}
