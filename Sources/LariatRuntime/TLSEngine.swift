import CLariatBIO
import COpenSSL

/// One TLS session over caller-owned buffers (`CLariatBIO`), with no I/O of its own: feed it ciphertext from the
/// network, read plaintext into your buffer, write plaintext, and drain the ciphertext it
/// produced to the network. Drain after every feed and every write (handshake messages, alerts,
/// and session tickets appear there too). Loop-confined like the connection that owns it.
public final class TLSEngine {
    let ssl: OpaquePointer
    /// What the SSL object reads ciphertext from and writes records to (see CLariatBIO.h).
    private let buffers: UnsafeMutablePointer<lariat_bio_buffers>
    public let isServer: Bool
    public private(set) var isHandshakeComplete = false
    /// After a fatal error OpenSSL forbids SSL_shutdown (no close_notify may follow an alert).
    public private(set) var hadFatalError = false
    private var sentCloseNotify = false

    /// `serverName` (clients): sent as SNI when it is a DNS name, and checked against the
    /// certificate's SANs when the context verifies host names.
    public init(context: TLSContext, serverName: String? = nil) throws(TLSError) {
        guard let ssl = SSL_new(context.raw) else { throw TLSError.configuration("SSL_new") }
        let buffers = UnsafeMutablePointer<lariat_bio_buffers>.allocate(capacity: 1)
        buffers.initialize(to: lariat_bio_buffers())
        guard let bio = lariat_bio_new(buffers) else {
            SSL_free(ssl)
            buffers.deallocate()
            throw TLSError.configuration("BIO_new")
        }
        SSL_set_bio(ssl, bio, bio)  // the SSL now owns the BIO (one reference for both roles)
        self.ssl = ssl
        self.buffers = buffers
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
        lariat_bio_buffers_free(buffers)
        buffers.deallocate()
    }

    // MARK: - Network side

    /// Appends ciphertext received from the peer (copied).
    public func feed(_ ciphertext: UnsafeRawBufferPointer) throws(TLSError) {
        guard let base = ciphertext.baseAddress, ciphertext.count > 0 else { return }
        guard lariat_bio_append_input(buffers, base, ciphertext.count) == 1 else {
            throw TLSError.configuration("out of memory for TLS input")
        }
    }

    /// Lets `body` decrypt straight from `ciphertext` (a socket's read buffer); what is left
    /// unread when it returns is copied, since the read buffer is about to be reused.
    public func withInput(_ ciphertext: UnsafeRawBufferPointer, _ body: () -> Void) throws(TLSError) {
        lend(ciphertext)
        body()
        try keepLentInput()
    }

    /// The two halves of `withInput`, for a caller that may hand the engine to another thread
    /// in between (`TLSConnection.detachForMigration`): it must not touch the engine afterwards.
    @inline(__always)
    func lend(_ ciphertext: UnsafeRawBufferPointer) {
        guard let base = ciphertext.baseAddress, ciphertext.count > 0 else { return }
        lariat_bio_lend(buffers, base, ciphertext.count)
    }

    /// Copies what is left of the lent ciphertext into the engine's own input buffer (no-op
    /// when nothing is lent).
    @inline(__always)
    func keepLentInput() throws(TLSError) {
        guard buffers.pointee.lent != nil else { return }
        guard lariat_bio_keep(buffers) == 1 else { throw TLSError.configuration("out of memory for TLS input") }
    }

    /// Ciphertext received and not yet decrypted (a migrating connection carries it along).
    var bufferedInputCount: Int { buffers.pointee.kept_len + buffers.pointee.lent_len }

    /// Ciphertext waiting to be sent.
    public var pendingCiphertextCount: Int { buffers.pointee.out_len }

    /// Memory held for outgoing ciphertext (kept between writes, given back when traffic is light).
    var outputBufferCapacity: Int { buffers.pointee.out_cap }
    /// Memory held for ciphertext input kept from earlier reads (a cut record's start).
    var inputBufferCapacity: Int { buffers.pointee.kept_cap }

    /// The ciphertext waiting to be sent, in place; valid until the next engine call.
    public var pendingCiphertext: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: buffers.pointee.out, count: buffers.pointee.out_len)
    }

    /// Drops the first `count` bytes of `pendingCiphertext`: they were handed to the network.
    public func ciphertextSent(_ count: Int) { lariat_bio_sent(buffers, count) }

    /// Moves up to `buffer.count` bytes of pending ciphertext into `buffer`; returns the count.
    public func drainCiphertext(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let pending = pendingCiphertext
        let n = min(pending.count, buffer.count)
        guard n > 0, let target = buffer.baseAddress, let source = pending.baseAddress else { return 0 }
        target.copyMemory(from: source, byteCount: n)
        ciphertextSent(n)
        return n
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
    /// handshake is complete, since the output buffer never refuses bytes).
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

    /// Whether buffers are freed as soon as they are empty: OpenSSL's record buffers (about
    /// 17 KiB for reading, as much for writing; `SSL_MODE_RELEASE_BUFFERS`) and our BIO's input
    /// and output buffers. Nothing is then held while idle, at the price of a few allocations
    /// per record. Turning it on frees what is empty now. `TLSConnection` switches it with the
    /// traffic.
    public var releasesRecordBuffers = false {
        didSet {
            guard releasesRecordBuffers != oldValue else { return }
            buffers.pointee.release_when_empty = releasesRecordBuffers ? 1 : 0
            if releasesRecordBuffers {
                _ = lariat_SSL_set_mode(ssl, lariat_SSL_MODE_RELEASE_BUFFERS)
                _ = SSL_free_buffers(ssl)  // refuses (harmlessly) while a record is half read
                lariat_bio_release_empty(buffers)
            } else {
                _ = lariat_SSL_clear_mode(ssl, lariat_SSL_MODE_RELEASE_BUFFERS)
            }
        }
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

    /// The application protocol agreed through ALPN ("http/1.1"), nil when none was (after the
    /// handshake).
    public var negotiatedProtocol: String? {
        var data: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    /// The certificates the peer sent, leaf first, as PEM (available after the handshake).
    /// On a client this includes the leaf; servers see only what clients sent.
    public var peerCertificateChainPEM: [String] {
        guard let chain = SSL_get_peer_cert_chain(ssl) else { return [] }
        return (0..<lariat_sk_X509_num(chain)).compactMap { index in
            lariat_sk_X509_value(chain, index).map { PEM.string(certificate: $0) }
        }
    }
}
