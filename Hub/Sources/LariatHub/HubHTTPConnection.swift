import Foundation
import LariatControl
import LariatHTTP
import LariatRuntime

/// One HTTPS connection to the hub: reads HTTP/1.1 requests and routes them. `/v1/connect`
/// upgrades to WebSocket and hands the connection to a tunnel; everything else is a small
/// request/response exchange (keep-alive). Loop-confined.
///
/// Until it becomes a tunnel, the connection is held to `FrontDoorLimits`: a deadline for each
/// phase (TLS handshake, request head, body, keep-alive idle) on one timer, and reading pauses
/// while the client leaves more than `outputHighWater` of replies unread.
final class HubHTTPConnection: ByteStreamHandler {
    static let maxRequestBody = 64 * 1024

    private enum Phase {
        case handshake, head, body, idle
        /// An answer is being worked out elsewhere (the tunnel probe); later requests wait.
        case responding
        /// The last reply is sent and the write side shut; input is ignored until the client closes.
        case closing
        case upgraded
    }

    let stream: TLSConnection
    let worker: HubWorker
    /// The client's address ("ip:port") for logs, and its IP alone for per-source limits.
    let remote: String
    let source: String
    /// This connection's slot in the hub's connection count, handed on to a tunnel.
    private var ticket: ConnectionAdmission.Ticket?
    private var parser = HTTPRequestParser()
    private var current: HTTPRequestHead?
    private var bodyBytes = 0
    /// The body of a control-plane request (other routes take none and discard what comes).
    private var body: [UInt8] = []
    /// A streamed answer (a watch) in progress, cancelled if the client goes away.
    private var streaming: APIStream?
    private var phase = Phase.handshake
    private let deadline: UVTimer
    /// Input not yet parsed because replies backed up (only on the pipelining-flood path).
    private var unparsed: [UInt8] = []
    private var readPaused = false
    private var limits: FrontDoorLimits { worker.hub.configuration.limits }
    /// A request through the Kubernetes proxy being answered (later requests wait).
    private var exchange: KubernetesExchange?
    /// The request the current exchange carries, kept so it can be sent again on another path,
    /// and the agents it already failed on.
    private var inFlight: (head: HTTPRequestHead, body: [UInt8])?
    private var triedAgents: Set<UInt64> = []
    /// Set while waiting for replies to drain before moving to another loop.
    var movingTo: MovePlan?
    /// How many loops this connection has moved through for its current request (at most one
    /// move is expected; a second means agents are moving and the client should retry).
    private var hops = 0

    init(stream: TLSConnection, ticket: ConnectionAdmission.Ticket, worker: HubWorker, remote: String, source: String) {
        self.stream = stream
        self.worker = worker
        self.remote = remote
        self.source = source
        self.ticket = ticket
        deadline = UVTimer(loop: worker.loop)
        arm(.handshake, afterMilliseconds: worker.hub.configuration.limits.tlsHandshakeTimeoutMilliseconds)
        stream.onHandshakeComplete = { [unowned self] _ in
            if self.phase == .handshake { self.arm(.head, afterMilliseconds: self.limits.requestHeadTimeoutMilliseconds) }
        }
        stream.start(handler: self)
    }

    /// A connection moved here from another loop, with the request it was moved for (its
    /// tunnel lives on this loop) and whatever the client sent after that request.
    init(adopted stream: TLSConnection, carrying moved: MovedRequest, worker: HubWorker) {
        self.stream = stream
        self.worker = worker
        self.remote = moved.remote
        self.source = moved.source
        self.ticket = moved.ticket
        deadline = UVTimer(loop: worker.loop)
        phase = .responding
        unparsed = moved.unparsed
        hops = moved.hops
        triedAgents = moved.triedAgents
        readPaused = true
        stream.pauseReading()
        stream.start(handler: self)
        stream.pauseReading()
        kubernetesRequest(moved.head, body: moved.body, leftover: nil, retrying: !moved.triedAgents.isEmpty)
    }

    /// What a connection carries to the loop it moves to (all values; the TLS session goes separately).
    struct MovedRequest: Sendable {
        var head: HTTPRequestHead
        var body: [UInt8]
        var unparsed: [UInt8]
        var ticket: ConnectionAdmission.Ticket?
        var remote: String
        var source: String
        var hops: Int
        var triedAgents: Set<UInt64> = []
    }

    // MARK: Deadlines

    private func arm(_ next: Phase, afterMilliseconds ms: UInt64) {
        phase = next
        deadline.start(afterMilliseconds: ms) { [unowned self] in self.deadlinePassed() }
    }

    private func deadlinePassed() {
        switch phase {
        case .handshake, .idle, .closing:
            if phase == .handshake { worker.hub.metrics.handshakeFailed("tls_timeout") }
            // Nothing to answer: a handshake that never finished, a quiet keep-alive connection,
            // or a client that never closed after its last reply.
            close()
        case .head, .body:
            respond(408, "request not received in time\n", close: true)
            close()
        case .responding, .upgraded:
            break
        }
    }

    private func close() {
        deadline.close()
        stream.close()
    }

    // MARK: ByteStreamHandler

    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        guard phase != .upgraded, phase != .closing else { return }
        if phase == .responding {
            // An answer is being worked out: what follows waits, in order, and reading stops.
            unparsed.append(contentsOf: bytes)
            pauseReading()
            return
        }
        if phase == .idle { arm(.head, afterMilliseconds: limits.requestHeadTimeoutMilliseconds) }
        if !unparsed.isEmpty {
            // Replies are backed up; keep the input in order behind what is waiting.
            unparsed.append(contentsOf: bytes)
            return
        }
        parse(bytes)
    }

    private func parse(_ bytes: UnsafeRawBufferPointer) {
        var input = bytes
        do throws(HTTPParseError) {
            while let event = try parser.next(from: &input) {
                switch event {
                case .head(let head):
                    current = head
                    bodyBytes = 0
                    body = []
                    if head.isUpgradeRequest, head.target.hasPrefix(KubernetesRequestInfo.prefix) {
                        // exec, attach, port-forward: the rest of the connection is the session.
                        kubernetesRequest(head, body: [], leftover: input)
                        return
                    }
                    if head.isUpgradeRequest {
                        guard head.path == "/v1/connect" else {
                            // One answer; the parser's `.upgrade` event for it is never reached.
                            return respondAndClose(404, "no such endpoint: \(head.method) \(head.path)\n")
                        }
                        upgrade(head, leftover: input)
                        return
                    }
                    if isKubernetes(head), head.headers.first(name: "Expect")?.lowercased() == "100-continue" {
                        // The body is read here before anything is sent on: tell the client to send it.
                        stream.write(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
                    }
                    let bodyAllowance = UInt64(maxBody(head) * 1000 / max(1, limits.minimumBodyBytesPerSecond))
                    arm(.body, afterMilliseconds: limits.requestHeadTimeoutMilliseconds + bodyAllowance)
                case .body(let b):
                    bodyBytes += b.count
                    let limit = current.map(maxBody) ?? Self.maxRequestBody
                    if bodyBytes > limit {
                        return respondAndClose(413, "request body larger than \(limit) bytes\n")
                    }
                    if let head = current, ControlPlaneBridge.handles(head.path) || isKubernetes(head) { body.append(contentsOf: b) }
                case .end:
                    if let head = current { route(head) }
                    current = nil
                    if phase == .closing { return }
                    if phase == .body { arm(.idle, afterMilliseconds: limits.keepAliveIdleTimeoutMilliseconds) }
                    if phase == .responding || stream.bufferedWriteBytes > limits.outputHighWater {
                        // Replies stay in order behind one still being worked out, and a client
                        // that does not read its replies gets no more: stop parsing until then.
                        unparsed = Array(input)
                        pauseReading()
                        return
                    }
                case .upgrade:
                    // An upgrade-style request (CONNECT) we do not speak; routed and answered above.
                    return respondAndClose(404, "no such endpoint\n")
                }
            }
        } catch {
            // 400, or 431 for an oversized head, 501/505 for what we do not speak.
            respondAndClose(error.suggestedResponseStatus, "bad request: \(error)\n")
        }
    }

    func streamDidDrain(_ stream: any ByteStream) {
        exchange?.clientDrained()
        if let moving = movingTo { return migrate(to: moving) }
        resumeParsing()
    }

    /// Parses what waited while replies were backed up or one was being worked out, then reads on.
    private func resumeParsing() {
        guard readPaused, phase != .upgraded, phase != .closing, phase != .responding,
              stream.bufferedWriteBytes <= limits.outputHighWater, !stream.isClosed else { return }
        if !unparsed.isEmpty {
            let pending = unparsed
            unparsed = []
            pending.withUnsafeBytes { parse($0) }
        }
        if unparsed.isEmpty && readPaused && !stream.isClosed && phase != .closing && phase != .upgraded {
            readPaused = false
            stream.resumeReading()
        }
    }

    private func pauseReading() {
        guard !readPaused else { return }
        readPaused = true
        stream.pauseReading()
    }

    func streamDidReadEOF(_ stream: any ByteStream) { close() }
    func streamDidFail(_ stream: any ByteStream, _ error: StreamError) {
        if case .tls(let e) = error {
            if phase == .handshake { worker.hub.metrics.handshakeFailed("tls") }
            worker.logger.debug("TLS with \(remote) failed: \(e)")
        }
    }
    func streamDidClose(_ stream: any ByteStream) {
        deadline.close()
        ticket = nil
        streaming?.cancel()
        streaming = nil
        exchange?.clientClosed()
        exchange = nil
    }

    // MARK: Routes

    private func route(_ head: HTTPRequestHead) {
        let hub = worker.hub
        let keepOpen = head.keepAlive
        switch (head.method, String(head.path)) {
        case ("GET", "/healthz"), ("HEAD", "/healthz"):
            let health = HubHealth(draining: hub.isDraining, accept: head.headers.first(name: "Accept"))
            respond(health.status, health.body, contentType: health.contentType, extraHeaders: HubHealth.headers, close: !keepOpen)
        case ("GET", "/cacerts"):
            if let pin = head.headers.first(name: "X-Lariat-CA-Checksum"), pin.lowercased() != hub.caChecksum {
                worker.logger.warning("agent at \(remote) pins CA checksum \(pin.logQuoted), but this hub's CA is \(hub.caChecksum): check the agent's --ca-checksum")
            }
            respond(200, hub.caPEM, contentType: "application/x-pem-file", close: !keepOpen)
        case ("GET", "/v1/agents"):
            guard authorizeAdmin(head) else { return }
            let rows = AgentListing.rows(hub.registry.all, now: worker.loop.now)
            respond(200, AgentListing.json(rows), contentType: "application/json", close: !keepOpen)
        case ("GET", let path) where path.hasPrefix("/v1/clusters/") && path.hasSuffix("/bench"):
            guard authorizeAdmin(head) else { return }
            let cluster = String(path.dropFirst("/v1/clusters/".count).dropLast("/bench".count))
            bench(cluster: cluster, query: head.query.map(String.init) ?? "", keepAlive: keepOpen)
        case ("GET", "/v1/connect"):
            respondAndClose(426, "the tunnel endpoint needs a WebSocket upgrade\n")
        case (_, let path) where ControlPlaneBridge.handles(path):
            controlPlane(head)
        case _ where isKubernetes(head):
            kubernetesRequest(head, body: body, leftover: nil)
            body = []
        default:
            respond(404, "no such endpoint: \(head.method) \(head.path)\n", close: !keepOpen)
        }
    }

    /// The admin API's bearer check, behind the failed-authentication throttle. Answers 429 or
    /// 401 itself and returns false when the request may not proceed.
    private func authorizeAdmin(_ head: HTTPRequestHead) -> Bool {
        let hub = worker.hub
        let now = worker.loop.now
        if let wait = hub.authThrottle.retryAfter(source: source, now: now) {
            respond(429, "too many failed authentications from \(source); retry in \(wait) s\n",
                    extraHeaders: ["Retry-After": String(wait)], close: !head.keepAlive)
            return false
        }
        guard hub.isAdmin(bearer(head)) else {
            hub.authenticationFailed(source: source, reason: "bad admin token on \(head.path.logQuoted)", now: now, metric: "admin_token")
            respond(401, "admin token required (Authorization: Bearer …)\n", close: !head.keepAlive)
            return false
        }
        return true
    }

    /// `GET /v1/clusters/NAME/bench?bytes=N&payload=random|json&format=json|text`: runs the
    /// tunnel probe on the agent's worker and answers from this one.
    private func bench(cluster: String, query: String, keepAlive: Bool) {
        var params: [String: String] = [:]
        for pair in query.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { params[String(kv[0])] = String(kv[1]) }
        }
        let bytes = min(max(Int(params["bytes"] ?? "") ?? (64 << 20), 1 << 20), 4 << 30)
        let json = params["payload"] == "json"
        let asJSON = params["format"] != "text"
        guard let agent = worker.hub.registry.pick(cluster: cluster, now: worker.loop.now) else {
            return respond(404, "no agent of cluster \(cluster.logQuoted) is connected\n", close: !keepAlive)
        }
        // The probe may run for minutes: no request deadline while it does.
        phase = .responding
        deadline.stop()
        let me = LoopBound(self, loop: worker.loop)
        let target = worker.hub.workers[agent.worker]
        target.loop.execute {
            target.value.benchmark(tunnel: agent.key, cluster: cluster, agent: agent.agentID, bytes: bytes, json: json) { report in
                me.loop.execute {
                    let conn = me.value
                    let status = report.error == nil ? 200 : 502
                    conn.respond(status, asJSON ? report.json + "\n" : report.text,
                                 contentType: asJSON ? "application/json" : "text/plain; charset=utf-8", close: !keepAlive)
                    if keepAlive {
                        conn.arm(.idle, afterMilliseconds: conn.limits.keepAliveIdleTimeoutMilliseconds)
                        conn.resumeParsing()
                    }
                }
            }
        }
    }

    /// Hands the request to the control plane (on its queue) and answers when it has; later
    /// requests on this connection wait, so answers stay in order.
    private func controlPlane(_ head: HTTPRequestHead) {
        let hub = worker.hub
        if head.headers.first(name: "Authorization") != nil,
           let wait = hub.authThrottle.retryAfter(source: source, now: worker.loop.now) {
            return respond(429, "too many failed authentications from \(source); retry in \(wait) s\n",
                           extraHeaders: ["Retry-After": String(wait)], close: !head.keepAlive)
        }
        phase = .responding
        deadline.stop()
        let request = APIRequest(method: head.method, target: head.target,
                                 headers: head.headers.map { (name: $0.name, value: $0.value) },
                                 body: Data(body), remote: remote, source: source)
        body = []
        let keepAlive = head.keepAlive
        let me = LoopBound(self, loop: worker.loop)
        hub.control.handle(request) { response in
            me.loop.execute { me.value.answer(response, keepAlive: keepAlive) }
        }
    }

    private func answer(_ response: APIResponse, keepAlive: Bool) {
        guard !stream.isClosed else {
            if case .stream(let s) = response.body { s.cancel() }
            return
        }
        if response.status == 401 {
            worker.hub.authenticationFailed(source: source, reason: "API request refused: bad or missing token", now: worker.loop.now,
                                            metric: "api_token")
        }
        let headers = response.headers.map { ($0.name, $0.value) }
        switch response.body {
        case .data(let data):
            var h = HTTPHeaders(headers)
            h.add(name: "Content-Length", value: String(data.count))
            if !keepAlive { h.add(name: "Connection", value: "close") }
            stream.write(HTTPResponseHead(status: response.status, headers: h).serialized + Array(data))
            finishAnswer(keepAlive: keepAlive)
        case .stream(let s):
            var h = HTTPHeaders(headers)
            h.add(name: "Transfer-Encoding", value: "chunked")
            stream.write(HTTPResponseHead(status: response.status, headers: h).serialized)
            streaming = s
            s.start(ControlPlaneBridge.sink(for: self, keepAlive: keepAlive))
        }
    }

    /// One chunk of a streamed answer (on this loop); false once the client is gone or has
    /// left too much unread (it must reconnect and resume from its last resourceVersion).
    func writeChunk(_ data: Data) -> Bool {
        guard !stream.isClosed, streaming != nil else { return false }
        guard stream.bufferedWriteBytes <= limits.outputHighWater * 4 else {
            streaming?.cancel()
            streaming = nil
            close()
            return false
        }
        stream.write(Array(String(data.count, radix: 16).utf8) + [13, 10] + Array(data) + [13, 10])
        return true
    }

    func finishStream(keepAlive: Bool) {
        guard streaming != nil, !stream.isClosed else { return }
        streaming = nil
        stream.write(Array("0\r\n\r\n".utf8))
        finishAnswer(keepAlive: keepAlive)
    }

    private func finishAnswer(keepAlive: Bool) {
        if keepAlive {
            arm(.idle, afterMilliseconds: limits.keepAliveIdleTimeoutMilliseconds)
            resumeParsing()
        } else {
            arm(.closing, afterMilliseconds: limits.requestHeadTimeoutMilliseconds)
            stream.shutdownWrite()
        }
    }

    private func upgrade(_ head: HTTPRequestHead, leftover: UnsafeRawBufferPointer) {
        let hub = worker.hub
        if hub.isDraining {
            return respondAndClose(503, "hub is shutting down; try another replica\n")
        }
        if let wait = hub.authThrottle.retryAfter(source: source, now: worker.loop.now) {
            return respondAndClose(429, "too many failed authentications from \(source); retry in \(wait) s\n",
                                   extraHeaders: ["Retry-After": String(wait)])
        }
        let response: HTTPResponseHead
        do {
            response = try WebSocketHandshake.acceptClientRequest(head)
        } catch {
            worker.hub.metrics.handshakeFailed("websocket")
            return respondAndClose(400, "bad WebSocket upgrade: \(error)\n")
        }
        phase = .upgraded
        deadline.close()
        stream.onHandshakeComplete = nil
        stream.write(response.serialized)
        worker.startTunnel(on: stream, remote: remote, source: source, ticket: ticket, leftover: leftover)
        ticket = nil
    }

    private func bearer(_ head: HTTPRequestHead) -> String? {
        guard let v = head.headers.first(name: "Authorization"), v.lowercased().hasPrefix("bearer ") else { return nil }
        return String(v.dropFirst(7)).trimmingCharacters(in: .whitespaces)
    }

    private func respondAndClose(_ status: Int, _ text: String, extraHeaders: [String: String] = [:]) {
        respond(status, text, extraHeaders: extraHeaders, close: true)
    }

    private func respond(_ status: Int, _ text: String, contentType: String = "text/plain; charset=utf-8",
                         extraHeaders: [String: String] = [:], close: Bool) {
        respond(status, Array(text.utf8), contentType: contentType, extraHeaders: extraHeaders, close: close)
    }

    private func respond(_ status: Int, _ body: [UInt8], contentType: String, extraHeaders: [String: String] = [:], close: Bool) {
        let headers = HTTPHeaders([("Content-Type", contentType)] + extraHeaders.sorted { $0.key < $1.key })
        stream.write(HTTPResponseHead.simpleResponse(status: status, headers: headers, body: body, closeConnection: close))
        if close {
            // Nothing more is read; a client that never closes is closed after the head timeout.
            arm(.closing, afterMilliseconds: limits.requestHeadTimeoutMilliseconds)
            unparsed = []
            stream.shutdownWrite()
        }
    }
}

// MARK: - The Kubernetes authentication proxy

extension HubHTTPConnection: KubernetesExchangeClient {
    var clientStream: any ByteStream { stream }

    func isKubernetes(_ head: HTTPRequestHead) -> Bool { head.target.hasPrefix(KubernetesRequestInfo.prefix) }

    func maxBody(_ head: HTTPRequestHead) -> Int {
        isKubernetes(head) ? worker.hub.configuration.kubernetes.maxRequestBodyBytes : Self.maxRequestBody
    }

    /// Authenticates and authorizes a request under `/k8s/clusters/<id>/`, then sends it to the
    /// cluster's API server through the agent's tunnel, moving this connection to the loop of
    /// that tunnel first if it lives elsewhere. `leftover`: bytes after an upgrade request's head.
    func kubernetesRequest(_ head: HTTPRequestHead, body: [UInt8], leftover: UnsafeRawBufferPointer?, retrying: Bool = false) {
        let hub = worker.hub
        if !retrying { triedAgents = [] }
        let keepAlive = head.keepAlive && !head.isUpgradeRequest
        phase = .responding
        deadline.stop()
        if let leftover, leftover.count > 0 { unparsed = Array(leftover) + unparsed }
        if head.isUpgradeRequest { pauseReading() }
        func refuse(_ status: Int, _ reason: String, _ message: String, headers: [String: String] = [:]) {
            kubernetesRefusal(status, reason: reason, message: message, headers: headers, keepAlive: keepAlive)
        }
        if let wait = hub.authThrottle.retryAfter(source: source, now: worker.loop.now) {
            return refuse(429, "TooManyRequests", "too many failed authentications from \(source); retry in \(wait) s",
                          headers: ["Retry-After": String(wait)])
        }
        guard let info = KubernetesRequestInfo(method: head.method, target: head.target) else {
            return refuse(404, "NotFound", "no cluster named in \(head.path)")
        }
        guard let bearer = bearer(head) else {
            return refuse(401, "Unauthorized", "a Lariat API token is required (Authorization: Bearer token-…:…)")
        }
        let principal: Principal
        switch hub.tokens.check(bearer: bearer) {
        case .success(let p) where p.kind == .user:
            principal = p
        case .success:
            return refuse(401, "Unauthorized", "this credential cannot be used for the Kubernetes API")
        case .failure(let why):
            hub.authenticationFailed(source: source, reason: "Kubernetes API request: \(why)", now: worker.loop.now, metric: "api_token")
            return refuse(401, "Unauthorized", "invalid or expired token")
        }
        if hub.users.get(principal.name)?.spec.mustChangePassword == true {
            return refuse(403, "Forbidden", "user \(principal.username) must change the password first (lariat-hub user change-password)")
        }
        let reach = hub.authorizer.canReach(principal, cluster: info.cluster)
        guard reach.allowed else {
            // Whether a cluster exists is told only to those who may read clusters (as the API does).
            if hub.control.clusterInformer.get(info.cluster) == nil,
               hub.authorizer.authorize(principal, Access(verb: "get", resource: "clusters", name: info.cluster,
                                                          cluster: info.cluster)).allowed {
                return refuse(404, "NotFound", "cluster \(info.cluster) not found")
            }
            return refuse(403, "Forbidden", "user \(principal.username) may not use cluster \(info.cluster)")
        }
        let access = info.access
        let decision = hub.authorizer.authorize(principal, access)
        guard decision.allowed else {
            return refuse(403, "Forbidden", Self.forbiddenMessage(info, username: principal.username))
        }
        guard let agent = hub.registry.pick(cluster: info.cluster, now: worker.loop.now, excluding: triedAgents,
                                            healthyScore: hub.configuration.agentHealth.healthyScore) else {
            return refuse(503, "ServiceUnavailable", "cluster \(info.cluster) is unavailable: no agent of it is connected to this hub")
        }
        if agent.worker != worker.index {
            guard hops == 0 else {
                return refuse(503, "ServiceUnavailable", "cluster \(info.cluster): its agents are reconnecting; retry")
            }
            movingTo = MovePlan(worker: agent.worker, head: head, body: body)
            return migrate(to: movingTo!)
        }
        hops = 0
        inFlight = (head, body)
        let upstreamHead = UpstreamRequestHead.make(from: head, target: info.upstreamTarget, principal: principal,
                                                    clientAddress: source, bodyLength: body.count)
        var request = upstreamHead.serialized
        request.append(contentsOf: body)
        let e = KubernetesExchange(proxy: worker.kubernetes, client: self, info: info, principal: principal, method: head.method,
                                   request: request, bodyBytes: body.count, isUpgrade: head.isUpgradeRequest,
                                   clientKeepAlive: keepAlive, source: source, uri: head.target)
        exchange = e
        if let route = ServiceProxyRoute(info) {
            let direct = route.directHead(from: head, clientAddress: source, bodyLength: body.count).serialized + body
            return worker.kubernetes.beginService(e, agent: agent, route: route, direct: direct)
        }
        worker.kubernetes.begin(e, agent: agent)
    }

    /// kube-apiserver's wording, so kubectl prints what users know.
    static func forbiddenMessage(_ info: KubernetesRequestInfo, username: String) -> String {
        guard info.isResourceRequest else {
            return "forbidden: User \"\(username)\" cannot \(info.verb) path \"\(info.upstreamPath)\" in cluster \(info.cluster)"
        }
        let resource = info.subresource.isEmpty ? info.resource : info.resource + "/" + info.subresource
        var m = "\(resource)\(info.name.isEmpty ? "" : " \"\(info.name)\"") is forbidden: User \"\(username)\" cannot \(info.verb) resource \"\(resource)\" in API group \"\(info.apiGroup)\""
        m += info.namespace.isEmpty ? " at the cluster scope" : " in the namespace \"\(info.namespace)\""
        return m + " of cluster \(info.cluster)"
    }

    /// A `metav1.Status` answer (what kubectl shows for errors).
    private func kubernetesRefusal(_ status: Int, reason: String, message: String, headers: [String: String], keepAlive: Bool) {
        var json = JSONLineWriter()
        json.beginObject()
        json.key("kind"); json.string("Status")
        json.key("apiVersion"); json.string("v1")
        json.key("metadata"); json.beginObject(); json.endObject()
        json.key("status"); json.string("Failure")
        json.key("message"); json.string(message)
        json.key("reason"); json.string(reason)
        json.key("code"); json.raw(number: status)
        json.endObject()
        // An upgrade refused leaves unread session bytes behind: that connection closes.
        let close = !keepAlive || !unparsed.isEmpty && current?.isUpgradeRequest == true
        respond(status, json.bytes + [10], contentType: "application/json", extraHeaders: headers, close: close)
        if !close { finishAnswer(keepAlive: true) }
    }

    // MARK: KubernetesExchangeClient

    func exchangeRetry(excluding key: UInt64, reason: String) -> Bool {
        guard let request = inFlight, let failed = exchange else { return false }
        let hub = worker.hub
        var tried = triedAgents
        tried.insert(key)
        guard let next = hub.registry.pick(cluster: failed.info.cluster, now: worker.loop.now, excluding: tried,
                                           healthyScore: hub.configuration.agentHealth.healthyScore) else { return false }
        exchange = nil
        triedAgents = tried
        let from = failed.upstream?.path ?? "?"
        hub.metrics.kubernetesFailover(cluster: failed.info.cluster, from: from.hasPrefix("node-agent:") ? "node" : "cluster-agent",
                                       to: next.role == .clusterAgent ? "cluster-agent" : "node")
        worker.logger.notice("k8s proxy \(failed.requestID): \(request.head.method) \(failed.info.upstreamPath.logQuoted) of cluster \(failed.info.cluster.logQuoted) failed on \(from) (\(reason)); sending it to \(KubernetesProxy.pathName(next))")
        hops = 0
        kubernetesRequest(request.head, body: request.body, leftover: nil, retrying: true)
        return true
    }

    func exchangeAnswered(keepAlive: Bool) {
        inFlight = nil
        exchange = nil
        finishAnswer(keepAlive: keepAlive)
    }

    func exchangeFailed(status: Int, message: String) {
        inFlight = nil
        let wasUpgrade = exchange?.isUpgrade ?? false
        let keep = (exchange?.clientKeepAlive ?? false) && !wasUpgrade
        exchange = nil
        kubernetesRefusal(status, reason: status == 503 ? "ServiceUnavailable" : "InternalError", message: message
            .trimmingCharacters(in: .newlines), headers: [:], keepAlive: keep)
    }

    func exchangeUpgraded() {
        guard let e = exchange else { return }
        inFlight = nil
        phase = .upgraded
        deadline.close()
        e.ticket = ticket
        ticket = nil
        e.earlyClientBytes.append(contentsOf: unparsed)
        unparsed = []
        exchange = nil
        readPaused = false
        stream.onHandshakeComplete = nil
    }

    // MARK: Moving to the tunnel's loop

    struct MovePlan {
        var worker: Int
        var head: HTTPRequestHead
        var body: [UInt8]
    }

    /// Hands the TLS session (socket and OpenSSL state) to the worker holding the agent's tunnel,
    /// once nothing waits to be written; the request is routed again there.
    func migrate(to plan: MovePlan) {
        pauseReading()
        guard stream.bufferedWriteBytes == 0 else { return }  // streamDidDrain comes back here
        movingTo = nil
        // Not from inside the TLS read callback that delivered the request: on the next turn.
        worker.loop.schedule(afterMilliseconds: 0) { [self] in
            guard !stream.isClosed else { return }
            guard let moving = stream.detachForMigration() else {
                return kubernetesRefusal(503, reason: "ServiceUnavailable", message: "cluster: cannot move the connection to its tunnel's loop; retry",
                                         headers: [:], keepAlive: false)
            }
            deadline.close()
            let moved = MovedRequest(head: plan.head, body: plan.body, unparsed: unparsed, ticket: ticket, remote: remote,
                                     source: source, hops: hops + 1, triedAgents: triedAgents)
            unparsed = []
            ticket = nil
            let target = worker.hub.workers[plan.worker]
            let logger = worker.logger
            target.loop.execute {
                do {
                    let tls = try moving.adopt(on: target.loop)
                    _ = HubHTTPConnection(adopted: tls, carrying: moved, worker: target.value)
                } catch {
                    logger.warning("cannot move a connection from \(moved.remote) to worker \(plan.worker): \(error)")
                    moving.discard()
                }
            }
        }
    }
}
