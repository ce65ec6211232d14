import Foundation
import LariatHTTP
import LariatRuntime

/// One HTTPS connection to the hub: reads HTTP/1.1 requests and routes them. `/v1/connect`
/// upgrades to WebSocket and hands the connection to a tunnel; everything else is a small
/// request/response exchange (keep-alive). Loop-confined.
final class HubHTTPConnection: ByteStreamHandler {
    static let maxRequestBody = 64 * 1024

    let stream: any ByteStream
    let worker: HubWorker
    let remote: String
    private var parser = HTTPRequestParser()
    private var current: HTTPRequestHead?
    private var bodyBytes = 0
    private var upgraded = false

    init(stream: any ByteStream, worker: HubWorker, remote: String) {
        self.stream = stream
        self.worker = worker
        self.remote = remote
        stream.start(handler: self)
    }

    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        guard !upgraded else { return }
        var input = bytes
        do throws(HTTPParseError) {
            while let event = try parser.next(from: &input) {
                switch event {
                case .head(let head):
                    current = head
                    bodyBytes = 0
                    if head.isUpgradeRequest && head.path == "/v1/connect" {
                        upgrade(head, leftover: input)
                        return
                    }
                case .body(let b):
                    bodyBytes += b.count
                    if bodyBytes > Self.maxRequestBody {
                        respond(413, "request body larger than \(Self.maxRequestBody) bytes\n", close: true)
                        return
                    }
                case .end:
                    if let head = current { route(head) }
                    current = nil
                case .upgrade:
                    // An upgrade to something we do not speak, or to the wrong path.
                    respond(404, "no such endpoint\n", close: true)
                    return
                }
            }
        } catch {
            // 400, or 431 for an oversized head, 501/505 for what we do not speak.
            respond(error.suggestedResponseStatus, "bad request: \(error)\n", close: true)
        }
    }

    func streamDidReadEOF(_ stream: any ByteStream) { stream.close() }
    func streamDidFail(_ stream: any ByteStream, _ error: StreamError) {
        if case .tls(let e) = error {
            worker.logger.notice("TLS with \(remote) failed: \(e)")
        }
    }
    func streamDidClose(_ stream: any ByteStream) {}

    // MARK: Routes

    private func route(_ head: HTTPRequestHead) {
        let hub = worker.hub
        switch (head.method, String(head.path)) {
        case ("GET", "/healthz"), ("HEAD", "/healthz"):
            respond(hub.isDraining ? 503 : 200, hub.isDraining ? "draining\n" : "ok\n", close: !head.keepAlive)
        case ("GET", "/cacerts"):
            if let pin = head.headers.first(name: "X-Lariat-CA-Checksum"), pin.lowercased() != hub.caChecksum {
                worker.logger.warning("agent at \(remote) pins CA checksum \(pin), but this hub's CA is \(hub.caChecksum): check the agent's --ca-checksum")
            }
            respond(200, hub.caPEM, contentType: "application/x-pem-file", close: !head.keepAlive)
        case ("GET", "/v1/agents"):
            guard hub.isAdmin(bearer(head)) else { return respond(401, "admin token required (Authorization: Bearer …)\n", close: !head.keepAlive) }
            let rows = hub.registry.all.map { e in
                #"{"cluster":"\#(e.cluster)","agent":"\#(e.agentID)","role":"\#(e.role == .clusterAgent ? "cluster" : "node")","worker":\#(e.worker),"remote":"\#(e.remote)","draining":\#(e.draining)}"#
            }
            respond(200, "[" + rows.joined(separator: ",") + "]\n", contentType: "application/json", close: !head.keepAlive)
        case ("GET", let path) where path.hasPrefix("/v1/clusters/") && path.hasSuffix("/bench"):
            guard hub.isAdmin(bearer(head)) else { return respond(401, "admin token required (Authorization: Bearer …)\n", close: !head.keepAlive) }
            let cluster = String(path.dropFirst("/v1/clusters/".count).dropLast("/bench".count))
            bench(cluster: cluster, query: head.query.map(String.init) ?? "", keepAlive: head.keepAlive)
        case ("GET", "/v1/connect"):
            respond(426, "the tunnel endpoint needs a WebSocket upgrade\n", close: true)
        default:
            respond(404, "no such endpoint: \(head.method) \(head.path)\n", close: !head.keepAlive)
        }
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
        guard let agent = worker.hub.registry.pick(cluster: cluster) else {
            return respond(404, "no agent of cluster \"\(cluster)\" is connected\n", close: !keepAlive)
        }
        let me = LoopBound(self, loop: worker.loop)
        let target = worker.hub.workers[agent.worker]
        target.loop.execute {
            target.value.benchmark(tunnel: agent.key, cluster: cluster, agent: agent.agentID, bytes: bytes, json: json) { report in
                me.loop.execute {
                    let conn = me.value
                    let status = report.error == nil ? 200 : 502
                    conn.respond(status, asJSON ? report.json + "\n" : report.text,
                                 contentType: asJSON ? "application/json" : "text/plain; charset=utf-8", close: !keepAlive)
                }
            }
        }
    }

    private func upgrade(_ head: HTTPRequestHead, leftover: UnsafeRawBufferPointer) {
        if worker.hub.isDraining {
            return respond(503, "hub is shutting down; try another replica\n", close: true)
        }
        let response: HTTPResponseHead
        do {
            response = try WebSocketHandshake.acceptClientRequest(head)
        } catch {
            return respond(400, "bad WebSocket upgrade: \(error)\n", close: true)
        }
        upgraded = true
        stream.write(response.serialized)
        worker.startTunnel(on: stream, remote: remote, leftover: leftover)
    }

    private func bearer(_ head: HTTPRequestHead) -> String? {
        guard let v = head.headers.first(name: "Authorization"), v.lowercased().hasPrefix("bearer ") else { return nil }
        return String(v.dropFirst(7)).trimmingCharacters(in: .whitespaces)
    }

    private func respond(_ status: Int, _ text: String, contentType: String = "text/plain; charset=utf-8", close: Bool) {
        stream.write(HTTPResponseHead.simpleResponse(status: status, headers: ["Content-Type": contentType],
                                                      body: Array(text.utf8), closeConnection: close))
        if close { stream.shutdownWrite() }
    }
}
