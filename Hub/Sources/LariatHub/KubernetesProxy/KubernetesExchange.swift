import LariatControl
import LariatHTTP
import LariatRuntime

/// The HTTPS connection a Kubernetes exchange answers on (`HubHTTPConnection`).
protocol KubernetesExchangeClient: AnyObject {
    /// Where the answer goes: the user's TLS connection, or an in-process sink (the hub's own
    /// requests).
    var clientStream: any ByteStream { get }
    /// The answer is complete; read the next request if `keepAlive`, else close after it.
    func exchangeAnswered(keepAlive: Bool)
    /// Nothing reached the client yet: answer `status` with `message` instead.
    func exchangeFailed(status: Int, message: String)
    /// The API server switched protocols: from now on the connection is the exchange's (a
    /// session relayed raw); the HTTP side lets go of it.
    func exchangeUpgraded()
    /// The request failed on agent `key` before anything of it can have reached the cluster (or
    /// it is safe to repeat): send it again on the cluster's next path. False when there is none
    /// (the exchange then answers the error itself).
    func exchangeRetry(excluding key: UInt64, reason: String) -> Bool
}

/// One request through the authentication proxy, from the rewritten head to the end of the
/// answer: the request goes out on an upstream (a pooled `k8s-proxy` stream, or a new one), the
/// answer comes back byte for byte — its framing read only to know where it ends, so watches and
/// `logs -f` stream as they arrive — and an upgrade (exec, attach, port-forward) turns the
/// exchange into a raw relay of the session until either side ends it. Loop-confined.
final class KubernetesExchange: ByteStreamHandler {
    let proxy: KubernetesProxy
    unowned(unsafe) let client: any KubernetesExchangeClient
    let stream: any ByteStream
    let info: KubernetesRequestInfo
    let principal: Principal
    let method: String
    let isUpgrade: Bool
    let clientKeepAlive: Bool
    let startedAt: UInt64
    let requestID: String
    let source: String
    let uri: String
    private(set) var upstream: KubernetesUpstream?
    private var request: [UInt8]
    private var parser = HTTPResponseParser()
    private var status: Int?
    private var responseKeepAlive = true
    private var sentToClient = 0
    private var received = 0
    private(set) var bytesIn = 0
    private(set) var bytesOut = 0
    private var splicing = false
    private var finished = false
    private var watcher: ExecStatusWatcher?
    /// Set when the cluster records sessions (`Cluster.spec.recordSessions`).
    private(set) var recorder: SessionRecorder?
    /// Why a session of a recording cluster was not recorded (SPDY, a file that could not be made).
    private(set) var notRecorded: String?
    /// Bytes the client sent after an upgrade request's head, before the answer: they belong
    /// to the session and go out right after the switch.
    var earlyClientBytes: [UInt8] = []
    /// The stream target: `k8s-proxy` (the API server), or `tcp:IP:PORT` for a Service reached
    /// directly by the magic proxy.
    private(set) var upstreamTarget = KubernetesProxy.target
    /// Set for the magic proxy: how redirects are rewritten, and (going direct) the API-server
    /// form of the request to fall back to.
    var service: ServiceProxyRoute?
    var serviceHosts: Set<String> = []
    private var fallbackRequest: [UInt8]?
    var isDirect: Bool { upstreamTarget != KubernetesProxy.target }
    var isFinished: Bool { finished }

    /// Sends the request straight to the Service at `target` (the API-server form is kept for a fallback).
    func goDirect(target: String, request direct: [UInt8]) {
        fallbackRequest = request
        request = direct
        upstreamTarget = target
    }

    /// The connection's slot in the hub's count, held while a session outlives the HTTP side.
    var ticket: ConnectionAdmission.Ticket?
    /// The upstream may be replayed once when a pooled stream turns out dead before answering.
    private var retried = false

    init(proxy: KubernetesProxy, client: any KubernetesExchangeClient, info: KubernetesRequestInfo, principal: Principal,
         method: String, request: [UInt8], bodyBytes: Int, isUpgrade: Bool, clientKeepAlive: Bool, source: String,
         uri: String) {
        self.proxy = proxy
        self.client = client
        self.stream = client.clientStream
        self.info = info
        self.principal = principal
        self.method = method
        self.request = request
        self.isUpgrade = isUpgrade
        self.clientKeepAlive = clientKeepAlive
        self.source = source
        self.uri = uri
        startedAt = proxy.loop.now
        requestID = proxy.nextRequestID()
        bytesIn = bodyBytes
        parser.expectResponse(toMethod: method)
    }

    var path: String { upstream?.path ?? "" }

    func start(on upstream: KubernetesUpstream) {
        self.upstream = upstream
        upstream.exchange = self
        if let session = info.session, isUpgrade {
            proxy.audit(self, sessionStart: session)
        }
        upstream.pipe.send(request)
        if !isUpgrade && !retriable && fallbackRequest == nil { request = [] }
    }

    /// Safe to send again when the first stream died before any answer (RFC 9110 §9.2.2).
    private var retriable: Bool { ["GET", "HEAD", "OPTIONS"].contains(method) }

    // MARK: From the upstream

    func upstreamReceived(_ bytes: UnsafeRawBufferPointer) {
        guard !finished else { return }
        received += bytes.count
        if splicing {
            bytesOut += bytes.count
            watcher?.scan(bytes)
            recorder?.serverSent(bytes, now: proxy.loop.now)
            stream.write(bytes)
            return
        }
        var input = bytes
        do throws(HTTPParseError) {
            while !finished, !splicing {
                let before = input
                guard let event = try parser.next(from: &input) else {
                    forward(before, upTo: input)
                    break
                }
                switch event {
                case .head(var head):
                    // The head is re-sent with the path it took; the rest passes raw.
                    head.headers.replaceOrAdd(name: Self.pathHeader, value: pathHeaderValue)
                    if let service {
                        if let location = head.headers.first(name: "Location") {
                            head.headers.replaceOrAdd(name: "Location", value: service.rewriteLocation(location, hosts: serviceHosts))
                        }
                        head.headers.replaceOrAdd(name: Self.serviceRouteHeader, value: isDirect ? "direct" : "api-server")
                    }
                    let bytes = head.serialized
                    stream.write(bytes)
                    sentToClient += bytes.count
                    bytesOut += bytes.count
                    if !head.isInformational || head.status == 101 {
                        status = head.status
                        responseKeepAlive = head.keepAlive
                    }
                case .body:
                    forward(before, upTo: input)
                case .end:
                    forward(before, upTo: input)
                    if let status, status != 101 { complete() }
                case .upgrade(let leftover):
                    forward(before, upTo: UnsafeRawBufferPointer(rebasing: before[(before.count - leftover.count)...]))
                    beginSplice(leftover: leftover)
                }
            }
        } catch {
            proxy.logger.warning("k8s proxy \(requestID): bad answer from cluster \(info.cluster.logQuoted) via \(path): \(error)")
            upstream?.abandon()
            fail(status: 502, message: "the API server of cluster \(info.cluster) sent a malformed answer")
        }
    }

    static let pathHeader = "X-Lariat-Path"
    /// For the magic proxy: `direct` (the agent dialled the Service) or `api-server` (its service proxy).
    static let serviceRouteHeader = "X-Lariat-Service-Route"
    /// `cluster-agent`, or `node:<agent id>` for a node agent (the fallback path).
    private var pathHeaderValue: String {
        guard let path = upstream?.path else { return "" }
        if path.hasPrefix("node-agent:") { return "node:" + path.dropFirst("node-agent:".count) }
        return "cluster-agent"
    }

    /// Relays the raw bytes the parser consumed between `before` and `after` (framing included).
    private func forward(_ before: UnsafeRawBufferPointer, upTo after: UnsafeRawBufferPointer) {
        let consumed = before.count - after.count
        guard consumed > 0 else { return }
        stream.write(UnsafeRawBufferPointer(rebasing: before[..<consumed]))
        sentToClient += consumed
        bytesOut += consumed
    }

    func upstreamFinished() {
        guard !finished else { return }
        if splicing {
            stream.shutdownWrite()
            return
        }
        upstream?.reusable = false
        guard status != nil, sentToClient > 0 else {
            return upstreamFailedBeforeAnswer(reason: "the API server closed the connection before answering")
        }
        // An answer framed by the end of the connection ends here; any other is cut short.
        var whole = false
        if let event = try? parser.finish(), case .end = event { whole = true }
        if whole {
            responseKeepAlive = false
            complete()
        } else {
            finish(error: "the API server closed the connection in the middle of the answer")
            stream.closeWithReset()
        }
    }

    func upstreamClosed(reset: Bool) {
        guard !finished else { return }
        if splicing {
            if reset {
                let why = "the stream to cluster \(info.cluster) via \(path) was lost (agent gone or tunnel reset)"
                finish(error: why)
                endSession(with: why)
            } else {
                finish(error: nil)
                stream.close()
            }
            return
        }
        if sentToClient == 0 {
            upstreamFailedBeforeAnswer(reason: reset ? "the stream to the agent was reset or refused" : "the agent closed the stream")
        } else {
            // Part of an answer reached the client: it must see an error, not a clean end.
            finish(error: "the stream to the agent ended in the middle of the answer")
            stream.closeWithReset()
        }
    }

    /// Nothing came back on this path. A pooled stream that died while idle (the API server's
    /// keep-alive ended) is replaced once on the same agent; a path that failed (tunnel gone,
    /// agent stuck) is left for the cluster's next path — both only when the request is safe to
    /// repeat: GET, HEAD, OPTIONS (watches included) and upgrades that have not started. Never a
    /// request that may have reached the cluster and changed something.
    private func upstreamFailedBeforeAnswer(reason: String) {
        guard let upstream, received == 0, sentToClient == 0, retriable || isUpgrade else {
            self.upstream?.abandon()
            return fail(status: 502, message: "cluster \(info.cluster): \(reason)")
        }
        if upstream.reused, !retried, proxy.isTunnelAlive(upstream.tunnelKey), proxy.isHealthy(upstream.tunnelKey) {
            retried = true
            upstream.exchange = nil
            upstream.abandon()
            proxy.retry(self)
            return
        }
        failOver(from: upstream, reason: reason, orAnswer: 502)
    }

    /// The OPEN was refused or timed out: the request never left the hub, so any method may go
    /// to the next path.
    func openFailed(_ message: String) {
        guard !finished else { return }
        if isDirect, let fallback = fallbackRequest, let upstream {
            // The Service could not be dialled directly: through the API server's service proxy.
            proxy.logger.info("k8s proxy \(requestID): \(upstreamTarget) unreachable from \(upstream.path) (\(message)); using the API server's service proxy")
            request = fallback
            fallbackRequest = nil
            upstreamTarget = KubernetesProxy.target
            upstream.exchange = nil
            upstream.abandon()
            proxy.retry(self)
            return
        }
        guard let upstream else {
            return fail(status: 503, message: "cluster \(info.cluster): \(message)")
        }
        failOver(from: upstream, reason: "the agent could not reach the API server: \(message)", orAnswer: 503)
    }

    /// Path `upstream` is deemed stuck (its health score fell): a request that has heard nothing
    /// on it and may be repeated moves to the next path now rather than wait for liveness.
    func pathStuck() {
        guard !finished, !splicing, let upstream, received == 0, sentToClient == 0, retriable || isUpgrade else { return }
        failOver(from: upstream, reason: "\(upstream.path) stopped answering", orAnswer: 503)
    }

    private var failedOver = false

    private func failOver(from upstream: KubernetesUpstream, reason: String, orAnswer status: Int) {
        let key = upstream.tunnelKey
        upstream.exchange = nil
        upstream.abandon()
        if !failedOver, client.exchangeRetry(excluding: key, reason: reason) {
            // The client runs the request again as a new exchange; this one only leaves its record.
            failedOver = true
            finish(error: "failed over from \(upstream.path): \(reason)")
            return
        }
        fail(status: status, message: "cluster \(info.cluster): \(reason)\(failedOver ? "" : " (no other path to the cluster)")")
    }

    func upstreamPaused() { if splicing { stream.pauseReading() } }
    func upstreamResumed() { if splicing { stream.resumeReading() } }
    var clientBacklog: Int { stream.bufferedWriteBytes }

    // MARK: Completion

    private func complete() {
        guard let upstream else { return }
        let reusable = responseKeepAlive && !isUpgrade && upstream.reusable
        finish(error: nil)
        upstream.exchange = nil
        if reusable { proxy.checkin(upstream) } else { upstream.abandon() }
        client.exchangeAnswered(keepAlive: clientKeepAlive && responseKeepAlive)
    }

    private func fail(status: Int, message: String) {
        guard !finished else { return }
        self.status = status
        finish(error: message)
        if let upstream, upstream.exchange === self { upstream.exchange = nil; upstream.abandon() }
        if splicing || sentToClient > 0 {
            stream.closeWithReset()
        } else {
            client.exchangeFailed(status: status, message: message + "\n")
        }
    }

    /// Ends the exchange from outside (token revoked, hub stopping): the client's connection
    /// closes with an error and the stream to the cluster is reset.
    func terminate(reason: String) {
        guard !finished else { return }
        finish(error: reason)
        upstream?.exchange = nil
        upstream?.abandon()
        if splicing { endSession(with: reason) } else { stream.closeWithReset() }
    }

    /// How long a client gets to read a session's final error before its connection is closed.
    static let sessionErrorLingerMilliseconds: UInt64 = 2000

    /// Ends a relayed session with an error the client reports (see `failureFrames`), or with a
    /// reset when the server's side stopped mid-frame.
    private func endSession(with message: String) {
        guard let frames = watcher?.failureFrames(message: message) else { return stream.closeWithReset() }
        stream.write(frames)
        stream.shutdownWrite()
        proxy.loop.schedule(afterMilliseconds: Self.sessionErrorLingerMilliseconds) { [stream] in stream.close() }
    }

    private func finish(error: String?) {
        guard !finished else { return }
        finished = true
        recorder?.finish()
        proxy.exchangeEnded(self, status: status, error: error, exitCode: watcher?.exitCode, sawStatus: watcher?.sawStatus ?? false)
    }

    // MARK: The session after an upgrade

    private func beginSplice(leftover: UnsafeRawBufferPointer) {
        splicing = true
        if info.session == .exec || info.session == .attach {
            let spdy = (status == 101) && method == "POST"
            watcher = ExecStatusWatcher(framing: spdy ? .spdy : .webSocket)
        }
        upstream?.reusable = false
        if info.session == .exec || info.session == .attach, proxy.recordsSessions(of: info.cluster) {
            if method == "GET" {
                recorder = proxy.makeRecorder(for: self)
                if recorder == nil { notRecorded = "the recording file could not be created" }
            } else {
                notRecorded = "SPDY sessions are not recorded (kubectl 1.30 and later use WebSockets)"
            }
        }
        client.exchangeUpgraded()
        stream.start(handler: self)
        if leftover.count > 0 {
            bytesOut += leftover.count
            watcher?.scan(leftover)
            recorder?.serverSent(leftover, now: proxy.loop.now)
            stream.write(leftover)
        }
        if !earlyClientBytes.isEmpty {
            let early = earlyClientBytes
            earlyClientBytes = []
            bytesIn += early.count
            early.withUnsafeBytes { recorder?.clientSent($0, now: proxy.loop.now) }
            upstream?.pipe.send(early)
        }
    }

    /// The client's connection went away during an HTTP exchange (not a session).
    func clientClosed() {
        guard !finished else { return }
        finish(error: "the client closed the connection")
        upstream?.exchange = nil
        upstream?.abandon()
    }

    func clientDrained() { upstream?.pipe.ownerDrained() }

    // MARK: ByteStreamHandler (the client's connection, once spliced)

    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        bytesIn += bytes.count
        recorder?.clientSent(bytes, now: proxy.loop.now)
        upstream?.pipe.send(bytes)
    }
    func streamDidReadEOF(_ stream: any ByteStream) { upstream?.pipe.sendEOF() }
    func streamDidDrain(_ stream: any ByteStream) { upstream?.pipe.ownerDrained() }
    func streamDidFail(_ stream: any ByteStream, _ error: StreamError) {}
    func streamDidClose(_ stream: any ByteStream) {
        if !finished { finish(error: nil) }
        upstream?.exchange = nil
        upstream?.abandon()
        upstream = nil
        proxy.sessionClosed(self)
    }
}
