import LariatRuntime
import Logging

/// The target end of a `k8s-proxy` stream: a `ByteStream` over the TLS connection to the API
/// server that puts the agent's credential into every request (`APIServerRequestRewriter`),
/// so the stream's bridge treats it as it treats a target socket.
///
/// Bytes written into it are the hub's requests; bytes it delivers are the API server's
/// responses, unchanged. Backpressure and half-close are the TLS connection's: reading pauses
/// and resumes it, `bufferedWriteBytes` is its backlog (plus bytes held for an upgrade's
/// answer), `shutdownWrite` half-closes it once held bytes are out.
///
/// A request the agent will not forward (malformed, or a head over the limit) is answered
/// 400/431 toward the hub and ends the stream: the answer, then end of stream. (The hub sends
/// one request at a time, so no earlier answer is still on its way then.)
final class APIServerCredentialStream: ByteStream, ByteStreamHandler {
    let inner: any ByteStream
    /// The API server's address, for logs.
    let server: String
    let logger: Logger
    private var rewriter: APIServerRequestRewriter
    private var handler: (any ByteStreamHandler)?
    private var innerStarted = false
    private var rejected = false
    /// The hub half-closed while bytes waited for an upgrade's answer: half-close after them.
    private var shutdownAfterHeld = false

    var loop: UVLoop { inner.loop }

    init(inner: any ByteStream, token: String, settings: KubernetesProxySettings, server: String, logger: Logger) {
        self.inner = inner
        self.server = server
        self.logger = logger
        rewriter = APIServerRequestRewriter(token: token, limits: settings.parserLimits,
                                            maxBytesAwaitingUpgrade: settings.maxBytesAwaitingUpgrade)
    }

    // MARK: ByteStream (the bridge's side)

    func start(handler: any ByteStreamHandler) {
        self.handler = handler
        if !innerStarted {
            innerStarted = true
            inner.start(handler: self)  // inner -> self -> handler: released by inner's close callback
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer) {
        guard !rejected, !inner.isClosed else { return }
        do {
            try rewriter.request(bytes) { inner.write($0) }
        } catch {
            reject(error)
        }
    }

    var bufferedWriteBytes: Int { inner.bufferedWriteBytes + rewriter.heldCount }
    func pauseReading() { inner.pauseReading() }
    func resumeReading() { inner.resumeReading() }

    func shutdownWrite() {
        guard !rejected else { return }
        if rewriter.isHolding { shutdownAfterHeld = true; return }
        inner.shutdownWrite()
    }

    func close() { inner.close() }
    func closeWithReset() { inner.closeWithReset() }
    var isClosed: Bool { inner.isClosed }

    // MARK: ByteStreamHandler (events from the TLS connection)

    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        guard !rejected else { return }
        let heldBefore = rewriter.heldCount
        let current = handler
        do {
            try rewriter.response(bytes) { inner.write($0) }
        } catch {
            // A request held for an upgrade's answer turned out malformed: the response that
            // declined the upgrade still goes to the hub first.
            current?.streamDidRead(self, bytes)
            reject(error)
            return
        }
        current?.streamDidRead(self, bytes)
        if heldBefore > 0, !rewriter.isHolding { releasedHeld() }
    }

    func streamDidReadEOF(_ stream: any ByteStream) {
        guard !rejected else { return }
        let current = handler
        current?.streamDidReadEOF(self)
    }

    func streamDidFail(_ stream: any ByteStream, _ error: StreamError) {
        let current = handler
        current?.streamDidFail(self, error)
    }

    func streamDidDrain(_ stream: any ByteStream) {
        guard !rewriter.isHolding else { return }
        let current = handler
        current?.streamDidDrain(self)
    }

    func streamDidClose(_ stream: any ByteStream) {
        let current = handler
        handler = nil
        current?.streamDidClose(self)
    }

    // MARK: -

    /// Held bytes went out (or back through the parser): the deferred half-close can follow,
    /// and the bridge learns they left if the socket took them at once.
    private func releasedHeld() {
        if shutdownAfterHeld, !rejected {
            shutdownAfterHeld = false
            inner.shutdownWrite()
        }
        if inner.bufferedWriteBytes == 0 {
            let current = handler
            current?.streamDidDrain(self)
        }
    }

    /// Answers the hub with the rejection and ends the stream (answer, then end of stream),
    /// on the next loop turn: `write` runs inside the session's delivery, which must not be
    /// re-entered with the answer. The API server gets a half-close and nothing more.
    private func reject(_ rejection: APIServerRequestRewriter.Rejection) {
        guard !rejected else { return }
        rejected = true
        logger.warning("k8s-proxy request to \(server) refused with \(rejection.status): \(rejection.reason.logQuoted)")
        inner.shutdownWrite()
        loop.schedule(afterMilliseconds: 0) { [self] in
            guard let current = handler, !inner.isClosed else { return }
            rejection.response.withUnsafeBytes { current.streamDidRead(self, $0) }
            current.streamDidReadEOF(self)
        }
    }
}
