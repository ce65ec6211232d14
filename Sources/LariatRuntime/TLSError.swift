import COpenSSL

/// A TLS failure with OpenSSL's own words: the error queue text (`ERR_error_string_n`) and,
/// for certificate problems, the verifier's reason (`X509_verify_cert_error_string`).
public struct TLSError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Bad certificate/key material or context options.
        case configuration
        /// The handshake failed for a reason other than certificate verification.
        case handshake
        /// The peer's certificate chain did not verify (unknown CA, expired, wrong host name...).
        case certificateVerification
        /// A fatal error after the handshake (bad record MAC, unexpected message...).
        case protocolViolation
        /// The transport ended without a TLS close_notify (possible truncation).
        case unexpectedEOF
    }

    public let kind: Kind
    public let message: String
    /// The X509_V_ERR_* code when `kind == .certificateVerification`.
    public let verifyCode: Int?

    public init(kind: Kind, message: String, verifyCode: Int? = nil) {
        self.kind = kind
        self.message = message
        self.verifyCode = verifyCode
    }

    public var description: String { "TLS \(kind): \(message)" }

    /// Empties this thread's OpenSSL error queue into one readable line.
    static func takeErrorQueue() -> String {
        var parts: [String] = []
        var text = [CChar](repeating: 0, count: 256)
        while case let code = ERR_get_error(), code != 0 {
            ERR_error_string_n(code, &text, text.count)
            parts.append(text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
        }
        return parts.joined(separator: "; ")
    }

    static func configuration(_ what: String) -> TLSError {
        let queue = takeErrorQueue()
        return TLSError(kind: .configuration, message: queue.isEmpty ? what : "\(what): \(queue)")
    }

    /// Classifies a failed SSL_* call on `ssl` (SSL_get_error result `code`).
    static func session(_ ssl: OpaquePointer, code: Int32, operation: String, handshakeComplete: Bool) -> TLSError {
        let queue = takeErrorQueue()
        let verify = SSL_get_verify_result(ssl)
        if verify != Int(X509_V_OK) {
            let reason = String(cString: X509_verify_cert_error_string(verify))
            return TLSError(kind: .certificateVerification,
                            message: "certificate verification failed: \(reason) (X509 error \(verify))"
                                + (queue.isEmpty ? "" : "; \(queue)"),
                            verifyCode: verify)
        }
        if code == SSL_ERROR_SYSCALL && queue.isEmpty {
            return TLSError(kind: .unexpectedEOF, message: "\(operation): unexpected end of stream")
        }
        let detail = queue.isEmpty ? "SSL error \(code)" : queue
        return TLSError(kind: handshakeComplete ? .protocolViolation : .handshake, message: "\(operation) failed: \(detail)")
    }
}
