import Foundation
import LariatControl
import LariatHTTP
import LariatRuntime

/// `ClusterAPIClient` for the hub's controllers: a request enters the proxy on the loop of the
/// cluster agent's tunnel exactly as a user's would after authentication, impersonating the
/// controller identity, and its answer is collected in memory (up to `maxAnswerBytes`).
final class InternalKubernetesClient: ClusterAPIClient {
    static let maxAnswerBytes = 32 << 20
    let shared: HubShared

    init(shared: HubShared) { self.shared = shared }

    func request(cluster: String, method: String, path: String, body: Data?, contentType: String?,
                 timeout: TimeInterval) -> Result<ClusterAPIResponse, ClusterAPIError> {
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox()
        start(cluster: cluster, method: method, path: path, body: body.map { Array($0) } ?? [], contentType: contentType,
              timeoutMilliseconds: UInt64(max(0.001, timeout) * 1000)) { result in
            box.set(result)
            done.signal()
        }
        done.wait()
        return box.value ?? .failure(.failed(cluster: cluster, reason: "no answer"))
    }

    /// The asynchronous form: `completion` runs on the tunnel's loop (or the caller's thread when
    /// no agent is connected).
    func start(cluster: String, method: String, path: String, body: [UInt8], contentType: String?, timeoutMilliseconds: UInt64,
               completion: @escaping @Sendable (Result<ClusterAPIResponse, ClusterAPIError>) -> Void) {
        guard let agent = shared.registry.pick(cluster: cluster, now: UVLoop.now) else {
            return completion(.failure(.unavailable(cluster: cluster)))
        }
        let worker = shared.workers[agent.worker]
        let posted = worker.loop.execute {
            let w = worker.value
            let target = KubernetesRequestInfo.prefix + cluster + (path.hasPrefix("/") ? path : "/" + path)
            guard let info = KubernetesRequestInfo(method: method, target: target) else {
                return completion(.failure(.failed(cluster: cluster, reason: "bad path \(path)")))
            }
            var headers = HTTPHeaders([("Host", "lariat-hub"), ("Accept", "application/json"), ("User-Agent", "lariat-hub")])
            if let contentType { headers.add(name: "Content-Type", value: contentType) }
            let head = UpstreamRequestHead.make(from: HTTPRequestHead(method: method, target: target, headers: headers),
                                                target: info.upstreamTarget, principal: ClusterAPIIdentity.principal,
                                                clientAddress: "127.0.0.1", bodyLength: body.count)
            let sink = InternalAnswerSink(loop: w.loop, cluster: cluster, completion: completion)
            let exchange = KubernetesExchange(proxy: w.kubernetes, client: sink, info: info, principal: ClusterAPIIdentity.principal,
                                              method: method, request: head.serialized + body, bodyBytes: body.count,
                                              isUpgrade: false, clientKeepAlive: true, source: "hub", uri: target)
            sink.exchange = exchange
            sink.armTimeout(milliseconds: timeoutMilliseconds)
            w.kubernetes.begin(exchange, agent: agent)
        }
        if !posted { completion(.failure(.unavailable(cluster: cluster))) }
    }
}

/// Holds one result across threads (written once, then read after the semaphore).
private final class ResultBox: @unchecked Sendable {
    // Invariant: written once before `signal`, read only after `wait`.
    var value: Result<ClusterAPIResponse, ClusterAPIError>?
    func set(_ v: Result<ClusterAPIResponse, ClusterAPIError>) { value = v }
}

/// The in-process "client connection" of an internal request: the exchange writes the raw answer
/// here; once it is complete it is parsed and handed to the caller. Loop-confined.
private final class InternalAnswerSink: ByteStream, KubernetesExchangeClient {
    let loop: UVLoop
    let cluster: String
    var exchange: KubernetesExchange?
    private var completion: ((Result<ClusterAPIResponse, ClusterAPIError>) -> Void)?
    private var bytes: [UInt8] = []
    private var timer: UVTimer?
    private(set) var isClosed = false

    init(loop: UVLoop, cluster: String, completion: @escaping (Result<ClusterAPIResponse, ClusterAPIError>) -> Void) {
        self.loop = loop
        self.cluster = cluster
        self.completion = completion
    }

    func armTimeout(milliseconds: UInt64) {
        timer = loop.schedule(afterMilliseconds: milliseconds) { [self] in
            timer = nil
            exchange?.terminate(reason: "timed out")
            finish(.failure(.timedOut(cluster: cluster)))
        }
    }

    private func finish(_ result: Result<ClusterAPIResponse, ClusterAPIError>) {
        timer?.close()
        timer = nil
        exchange = nil
        isClosed = true
        guard let c = completion else { return }
        completion = nil
        c(result)
    }

    // MARK: KubernetesExchangeClient

    var clientStream: any ByteStream { self }

    func exchangeAnswered(keepAlive: Bool) {
        var parser = HTTPResponseParser()
        var head: HTTPResponseHead?
        var body: [UInt8] = []
        let result: Result<ClusterAPIResponse, ClusterAPIError> = bytes.withUnsafeBytes { raw in
            var input = raw
            do throws(HTTPParseError) {
                var complete = false
                while !complete, let event = try parser.next(from: &input) {
                    switch event {
                    case .head(let h) where !h.isInformational: head = h
                    case .head, .upgrade: break
                    case .body(let b): body.append(contentsOf: b)
                    case .end: complete = head != nil
                    }
                }
                // An answer framed by the end of the connection ends only now.
                if !complete, head != nil { _ = try parser.finish() }
            } catch {
                return .failure(.failed(cluster: cluster, reason: "malformed answer: \(error)"))
            }
            guard let head else { return .failure(.failed(cluster: cluster, reason: "no answer")) }
            return .success(ClusterAPIResponse(status: head.status, headers: head.headers.map { ($0.name, $0.value) },
                                               body: Data(body)))
        }
        finish(result)
    }

    func exchangeFailed(status: Int, message: String) {
        finish(.failure(status == 503 ? .unavailable(cluster: cluster) : .failed(cluster: cluster, reason: message)))
    }

    func exchangeUpgraded() {}
    /// The controllers retry at their next resync; one failed attempt is simply reported.
    func exchangeRetry(excluding key: UInt64, reason: String) -> Bool { false }

    // MARK: ByteStream (written to by the exchange)

    func start(handler: any ByteStreamHandler) {}
    func write(_ b: UnsafeRawBufferPointer) {
        guard !isClosed else { return }
        bytes.append(contentsOf: b)
        if bytes.count > InternalKubernetesClient.maxAnswerBytes {
            exchange?.terminate(reason: "answer too large")
            finish(.failure(.failed(cluster: cluster, reason: "answer larger than \(InternalKubernetesClient.maxAnswerBytes) bytes")))
        }
    }
    var bufferedWriteBytes: Int { 0 }
    func pauseReading() {}
    func resumeReading() {}
    func shutdownWrite() {}
    func close() {
        guard !isClosed else { return }
        finish(.failure(.failed(cluster: cluster, reason: "the stream ended before the answer was complete")))
    }
    func closeWithReset() { close() }
}
