import LariatTunnel
import LariatHTTP
import LariatRuntime

/// One HTTPS request to the hub over a fresh connection: TCP (direct, or through an HTTP
/// proxy with CONNECT), TLS, then one request. Used twice per connection cycle: `GET /cacerts`
/// (pinning), `POST /v3-public/agentregistrations` (trading the registration token for the
/// agent's own credential, over the pinned CA) and `GET /v1/connect` (the tunnel's WebSocket upgrade).
///
/// Each phase owns the byte stream in turn, as its handler: `ProxyConnectPhase` (the TCP
/// stream), then the `TLSConnection` (the TCP stream, via its transport adapter), then
/// `HTTPExchangePhase` (the TLS stream), then — after a 101 — the `TunnelConnection`.
/// One deadline covers every phase. Loop-confined.
final class HubRequest {
    enum Outcome {
        /// A complete response (any status) with its body.
        case response(HTTPResponseHead, [UInt8])
        /// 101 to an upgrade request. `stream` now belongs to the callee, which must start a
        /// handler on it before returning; `leftover` (valid only during the call) are the
        /// first bytes of the new protocol.
        case upgraded(HTTPResponseHead, stream: any ByteStream, leftover: UnsafeRawBufferPointer)
        case failed(HubDialError)
    }

    let loop: UVLoop
    let endpoint: HubEndpoint
    let proxy: ProxyServer?
    let context: TLSContext
    let request: HTTPRequestHead
    /// Sent after the head (the head carries its Content-Length).
    let body: [UInt8]
    let isUpgrade: Bool
    let timeoutMilliseconds: UInt64
    private var completion: ((Outcome) -> Void)?
    private var timer: UVTimer?
    private var phase = "TCP connect"
    /// The outermost stream currently open (TCP, then TLS), closed on failure or cancel.
    private var stream: (any ByteStream)?
    /// Phase objects are held by their streams; these references are for cancellation only.
    private var tlsStream: HandOffStream?

    init(loop: UVLoop, endpoint: HubEndpoint, proxy: ProxyServer?, context: TLSContext,
         request: HTTPRequestHead, body: [UInt8] = [], isUpgrade: Bool, timeoutMilliseconds: UInt64,
         completion: @escaping (Outcome) -> Void) {
        self.loop = loop
        self.endpoint = endpoint
        self.proxy = proxy
        self.context = context
        self.request = request
        self.body = body
        self.isUpgrade = isUpgrade
        self.timeoutMilliseconds = timeoutMilliseconds
        self.completion = completion
    }

    var isFinished: Bool { completion == nil }

    func start() {
        let timer = UVTimer(loop: loop)
        self.timer = timer
        timer.start(afterMilliseconds: timeoutMilliseconds) { [weak self] in
            guard let self else { return }
            self.finish(.failed(.timeout(phase: self.phase, milliseconds: self.timeoutMilliseconds)))
        }
        let host = proxy?.host ?? endpoint.host
        let port = proxy?.port ?? endpoint.port
        let what = proxy.map { "proxy \($0)" } ?? "hub \(endpoint.authority)"
        phase = proxy == nil ? "TCP connect to the hub" : "TCP connect to the proxy"
        TCPConnection.connect(loop: loop, host: host, port: port, timeoutMilliseconds: timeoutMilliseconds) { [weak self] result in
            guard let self else {
                if case .success(let tcp) = result { tcp.close() }
                return
            }
            switch result {
            case .failure(let error):
                self.finish(.failed(.connect(what: what, error)))
            case .success(let tcp):
                guard !self.isFinished else { tcp.close(); return }
                tcp.setKeepAlive(seconds: 30)
                _ = tcp.setNotSentLowWatermark(TunnelConnection.kernelUnsentLimit)
                let transport = HandOffStream(tcp)
                self.stream = transport
                if let proxy = self.proxy {
                    self.runProxyPhase(transport, proxy)
                } else {
                    self.runTLSPhase(transport)
                }
            }
        }
    }

    func cancel() { finish(.failed(.cancelled)) }

    private func runProxyPhase(_ transport: HandOffStream, _ proxy: ProxyServer) {
        phase = "proxy CONNECT"
        let connect = ProxyConnectPhase(target: endpoint.authority, proxy: proxy) { [weak self] result in
            guard let self, !self.isFinished else { return }
            switch result {
            case .success: self.runTLSPhase(transport)
            case .failure(let error): self.finish(.failed(error))
            }
        }
        connect.begin(on: transport)
    }

    private func runTLSPhase(_ transport: HandOffStream) {
        phase = "TLS handshake"
        let tls: TLSConnection
        do throws(TLSError) {
            tls = try TLSConnection(transport: transport, context: context, serverName: endpoint.host)
        } catch {
            finish(.failed(.tls(error)))
            return
        }
        tls.onHandshakeComplete = { [weak self] _ in
            guard let self, !self.isFinished else { return }
            self.phase = self.isUpgrade ? "WebSocket upgrade" : "GET \(self.request.target)"
        }
        let plaintext = HandOffStream(tls)
        stream = plaintext
        tlsStream = plaintext
        let exchange = HTTPExchangePhase(request: request, body: body, isUpgrade: isUpgrade) { [weak self] outcome in
            guard let self else { return }
            // Tag stream errors with the phase they happened in.
            if case .failed(.stream(let error, _)) = outcome {
                if case .tls(let tlsError) = error, !tls.isHandshakeComplete {
                    self.finish(.failed(.tls(tlsError)))
                } else {
                    self.finish(.failed(.stream(error, phase: self.phase)))
                }
            } else if case .failed(.closedEarly) = outcome {
                self.finish(.failed(.closedEarly(phase: self.phase)))
            } else {
                self.finish(outcome)
            }
        }
        exchange.begin(on: plaintext)  // starts TLS, which starts reading the transport
    }

    private func finish(_ outcome: Outcome) {
        guard let completion else { return }
        self.completion = nil
        timer?.close()
        timer = nil
        switch outcome {
        case .upgraded:
            stream = nil  // the callee owns it now
            completion(outcome)
        case .response:
            stream?.close()
            stream = nil
            completion(outcome)
        case .failed:
            stream?.close()
            stream = nil
            completion(outcome)
        }
    }
}

/// A phase that reads one HTTP response off its stream. The phases differ only in what they
/// do with the events, so the read loop is written once: it stops as soon as the phase has
/// finished, and a parse error goes to the phase.
private protocol ResponseReadingPhase: AnyObject {
    var parser: HTTPResponseParser { get set }
    var isFinished: Bool { get }
    /// One parser event; `rest` is the input that follows it (what arrived with a head).
    func handle(_ event: HTTPResponseParserEvent, rest: UnsafeRawBufferPointer, on stream: any ByteStream)
    func parseFailed(_ error: HTTPParseError)
}

extension ResponseReadingPhase {
    func readResponse(_ bytes: UnsafeRawBufferPointer, on stream: any ByteStream) {
        guard !isFinished else { return }
        var input = bytes
        do throws(HTTPParseError) {
            while !isFinished, let event = try parser.next(from: &input) {
                handle(event, rest: input, on: stream)
            }
        } catch {
            parseFailed(error)
        }
    }
}

/// `CONNECT host:port` to an HTTP proxy; done when the proxy answers 2xx.
final class ProxyConnectPhase: ByteStreamHandler, ResponseReadingPhase {
    private let target: String
    private let proxy: ProxyServer
    fileprivate var parser = HTTPResponseParser()
    private var head: HTTPResponseHead?
    private var completion: ((Result<Void, HubDialError>) -> Void)?
    fileprivate var isFinished: Bool { completion == nil }
    private var sent = false

    init(target: String, proxy: ProxyServer, completion: @escaping (Result<Void, HubDialError>) -> Void) {
        self.target = target
        self.proxy = proxy
        self.completion = completion
    }

    /// The request bytes (also used by tests).
    static func request(target: String, proxy: ProxyServer) -> [UInt8] {
        var headers: HTTPHeaders = ["Host": target, "User-Agent": AgentVersion.software]
        if let authorization = proxy.authorization { headers.add(name: "Proxy-Authorization", value: authorization) }
        return HTTPRequestHead(method: "CONNECT", target: target, headers: headers).serialized
    }

    /// Takes the stream over and sends the CONNECT.
    func begin(on stream: any ByteStream) {
        precondition(!sent)
        sent = true
        parser.expectResponse(toMethod: "CONNECT")
        stream.start(handler: self)
        stream.write(Self.request(target: target, proxy: proxy))
    }

    private func finish(_ result: Result<Void, HubDialError>) {
        guard let completion else { return }
        self.completion = nil
        completion(result)
    }

    fileprivate func parseFailed(_ error: HTTPParseError) {
        finish(.failure(.proxyProtocol("malformed response to CONNECT: \(error)")))
    }

    fileprivate func handle(_ event: HTTPResponseParserEvent, rest: UnsafeRawBufferPointer, on stream: any ByteStream) {
        switch event {
        case .head(let h):
            if h.isInformational { return }
            head = h
            if !(200..<300).contains(h.status) {
                // The body (if any) is the proxy's explanation; take what is here.
                let body = printableBody(Array(rest.prefix(512)))
                finish(.failure(.proxyRefused(statusLine: "\(h.status) \(h.reason)", body: body)))
            }
        case .body, .end:
            break
        case .upgrade(let leftover):
            // The tunnel to the hub is open. Bytes past the head (there should be none:
            // the TLS client speaks first) belong to the next phase.
            if let handOff = stream as? HandOffStream, leftover.count > 0 { handOff.handOff(leftover: leftover) }
            finish(.success(()))
        }
    }

    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        readResponse(bytes, on: stream)
    }

    func streamDidReadEOF(_ stream: any ByteStream) {
        finish(.failure(.proxyProtocol("the proxy closed the connection before answering CONNECT")))
    }

    func streamDidFail(_ stream: any ByteStream, _ error: StreamError) {
        finish(.failure(.proxyProtocol("connection to the proxy failed: \(error)")))
    }

    func streamDidClose(_ stream: any ByteStream) {
        finish(.failure(.proxyProtocol("connection to the proxy closed")))
    }
}

/// Sends one HTTP request on the (TLS) stream and reads the answer.
final class HTTPExchangePhase: ByteStreamHandler, ResponseReadingPhase {
    static let maxBody = 1 << 20
    private let request: HTTPRequestHead
    private let body: [UInt8]
    private let isUpgrade: Bool
    fileprivate var parser = HTTPResponseParser()
    private var head: HTTPResponseHead?
    private var responseBody: [UInt8] = []
    private var completion: ((HubRequest.Outcome) -> Void)?
    fileprivate var isFinished: Bool { completion == nil }

    init(request: HTTPRequestHead, body: [UInt8], isUpgrade: Bool, completion: @escaping (HubRequest.Outcome) -> Void) {
        self.request = request
        self.body = body
        self.isUpgrade = isUpgrade
        self.completion = completion
        parser.expectResponse(toMethod: request.method)
    }

    /// Takes the stream over and sends the request (TLS queues it until the handshake is done).
    func begin(on stream: any ByteStream) {
        stream.start(handler: self)
        stream.write(request.serialized)
        if !body.isEmpty { stream.write(body) }
    }

    private func finish(_ outcome: HubRequest.Outcome) {
        guard let completion else { return }
        self.completion = nil
        completion(outcome)
    }

    fileprivate func parseFailed(_ error: HTTPParseError) {
        finish(.failed(.httpParse(error, phase: "\(request.method) \(request.target)")))
    }

    fileprivate func handle(_ event: HTTPResponseParserEvent, rest: UnsafeRawBufferPointer, on stream: any ByteStream) {
        switch event {
        case .head(let h):
            if h.isInformational && h.status != 101 { return }
            head = h
        case .body(let chunk):
            if responseBody.count < Self.maxBody { responseBody.append(contentsOf: chunk.prefix(Self.maxBody - responseBody.count)) }
        case .end:
            guard let head, head.status != 101 else { return }  // a 101's .upgrade follows
            finish(.response(head, responseBody))
        case .upgrade(let leftover):
            // `.upgrade` consumed all input, so without a head the read simply ends.
            guard let head else { return }
            if head.status == 101 {
                finish(.upgraded(head, stream: stream, leftover: leftover))
            } else {
                finish(.response(head, responseBody))
            }
        }
    }

    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        readResponse(bytes, on: stream)
    }

    func streamDidReadEOF(_ stream: any ByteStream) {
        guard completion != nil else { return }
        // A body delimited by the close ends here.
        if let head, case .end? = try? parser.finish() {
            finish(.response(head, responseBody))
        } else {
            finish(.failed(.closedEarly(phase: "")))
        }
    }

    func streamDidFail(_ stream: any ByteStream, _ error: StreamError) {
        // A server that closes without close_notify after its (error) response: keep the answer.
        if let head, head.status != 101, case .tls(let tlsError) = error, tlsError.kind == .unexpectedEOF {
            finish(.response(head, responseBody))
            return
        }
        finish(.failed(.stream(error, phase: "")))
    }

    func streamDidClose(_ stream: any ByteStream) {
        finish(.failed(.closedEarly(phase: "")))
    }
}
