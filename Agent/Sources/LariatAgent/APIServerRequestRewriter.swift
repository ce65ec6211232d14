import LariatHTTP

/// The byte-level half of a `k8s-proxy` stream, free of sockets so it can be tested by
/// feeding it bytes: requests from the hub go to the API server with their credentials
/// replaced by the agent's; responses go back unchanged.
///
/// Requests: each head is parsed and written again without `Authorization` and
/// `Proxy-Authorization` and with `Authorization: Bearer <token>`. Everything after a head
/// (a Content-Length body, a chunked body with its framing and trailers) is forwarded as the
/// raw bytes it arrived as, in order, straight from the caller's buffer.
///
/// Upgrades (exec, attach, port-forward: a WebSocket GET or a SPDY POST): the bytes that follow
/// an upgrade request are held until the API server answers it. `101` makes the stream raw both
/// ways for good (it now carries the exec or port-forward session); any other answer (a 403 from
/// RBAC, say) leaves it carrying requests, so a client that retries on the same stream is still
/// authenticated. Responses are watched for that, never changed; if they cannot be followed
/// (a malformed response), an upgrade request makes the stream raw at once instead.
struct APIServerRequestRewriter {
    /// A request the agent will not forward: answer `status` and end the stream.
    struct Rejection: Error, Equatable {
        var status: Int
        var reason: String

        /// The short answer for the hub (`Connection: close`: the stream ends after it).
        var response: [UInt8] {
            HTTPResponseHead.simpleResponse(status: status, text: "lariat-agent: \(reason)\n", closeConnection: true)
        }
    }

    private enum Phase {
        /// Parsing request heads and forwarding what follows them.
        case requests
        /// An upgrade request went out; later bytes wait in `held` for its answer.
        case awaitingUpgradeAnswer
        /// Upgraded: every byte passes unchanged both ways.
        case raw
        /// A request was rejected: nothing more is forwarded.
        case rejected
    }

    private let authorization: String
    private let maxHeldBytes: Int
    private var phase = Phase.requests
    private var requests: HTTPRequestParser
    /// Follows the responses to learn how an upgrade was answered; nil once raw, or if the
    /// responses could not be parsed.
    private var responses: HTTPResponseParser?
    /// Requests sent whose final response has not started yet.
    private var unanswered = 0
    /// Between a head and its `.end`: bytes consumed now belong to the message's body.
    private var inBody = false
    /// Bytes that followed an upgrade request, held until its answer (rare, and bounded).
    private var held: [UInt8] = []
    /// The rewritten head; reused, so steady keep-alive traffic does not allocate a buffer each.
    private var headBuffer: [UInt8] = []

    /// `token`: the agent's bearer token (visible ASCII, checked when it is read).
    init(token: String, limits: HTTPParserLimits, maxBytesAwaitingUpgrade: Int) {
        authorization = "Bearer " + token
        maxHeldBytes = maxBytesAwaitingUpgrade
        requests = HTTPRequestParser(limits: limits)
        responses = HTTPResponseParser(limits: limits)
    }

    /// Whether bytes wait for an upgrade's answer (a half-close must wait behind them).
    var isHolding: Bool { !held.isEmpty }
    var heldCount: Int { held.count }
    var isRaw: Bool { if case .raw = phase { true } else { false } }

    /// Request bytes from the hub. `send` gets the bytes for the API server, in order.
    mutating func request(_ bytes: UnsafeRawBufferPointer, send: (UnsafeRawBufferPointer) -> Void) throws(Rejection) {
        switch phase {
        case .raw:
            send(bytes)
        case .rejected:
            return
        case .awaitingUpgradeAnswer:
            guard held.count + bytes.count <= maxHeldBytes else {
                phase = .rejected
                throw Rejection(status: 400, reason: "more than \(maxHeldBytes) bytes sent before the upgrade was answered")
            }
            held.append(contentsOf: bytes)
        case .requests:
            try parse(bytes, send: send)
        }
    }

    /// Response bytes from the API server; they pass unchanged (the caller forwards them).
    /// `send` gets request bytes released by the answer to an upgrade.
    mutating func response(_ bytes: UnsafeRawBufferPointer, send: (UnsafeRawBufferPointer) -> Void) throws(Rejection) {
        var rest = bytes
        while responses != nil {
            let event: HTTPResponseParserEvent?
            do {
                event = try responses?.next(from: &rest)
            } catch {
                // Unfollowable responses: stop watching; a pending upgrade is taken as accepted.
                responses = nil
                if isAwaitingUpgradeAnswer { goRaw(send: send) }
                return
            }
            guard let event else { return }
            switch event {
            case .head(let head):
                if head.isInformational && head.status != 101 { continue }  // 100 Continue: the answer is still to come
                unanswered -= 1
                if head.status != 101, unanswered == 0, isAwaitingUpgradeAnswer {
                    // Declined: the stream carries requests again, starting with what was held.
                    requests.resumeAfterDeclinedUpgrade()
                    phase = .requests
                    let pending = held
                    held = []
                    try pending.withUnsafeBytes { pending in
                        Result { () throws(Rejection) in try parse(pending, send: send) }
                    }.get()
                }
            case .upgrade:
                // 101 (or a 2xx to CONNECT): from here on nothing is HTTP.
                responses = nil
                if isAwaitingUpgradeAnswer { goRaw(send: send) }
                return
            case .body, .end:
                continue
            }
        }
    }

    private var isAwaitingUpgradeAnswer: Bool {
        if case .awaitingUpgradeAnswer = phase { true } else { false }
    }

    private mutating func goRaw(send: (UnsafeRawBufferPointer) -> Void) {
        phase = .raw
        responses = nil
        if !held.isEmpty {
            held.withUnsafeBytes { send($0) }
            held = []
        }
    }

    /// Runs the request parser over `input`: heads are rewritten, the bytes after a head up to
    /// its `.end` are forwarded in runs as contiguous as the input allows.
    private mutating func parse(_ input: UnsafeRawBufferPointer, send: (UnsafeRawBufferPointer) -> Void) throws(Rejection) {
        var rest = input
        var runStart: Int? = inBody ? 0 : nil
        func offset(_ rest: UnsafeRawBufferPointer) -> Int { input.count - rest.count }
        while true {
            let event: HTTPRequestParserEvent?
            do {
                event = try requests.next(from: &rest)
            } catch {
                phase = .rejected
                throw Rejection(status: error.suggestedResponseStatus, reason: Self.describe(error))
            }
            guard let event else { break }
            switch event {
            case .head(let head):
                sendRewritten(head, send: send)
                unanswered += 1
                responses?.expectResponse(toMethod: head.method)
                inBody = true
                runStart = offset(rest)
            case .body:
                continue
            case .end:
                if let start = runStart, offset(rest) > start {
                    send(UnsafeRawBufferPointer(rebasing: input[start..<offset(rest)]))
                }
                runStart = nil
                inBody = false
            case .upgrade(let leftover):
                // The upgrade request is out; what follows waits for its answer (or goes raw
                // now if the answer cannot be told).
                phase = .awaitingUpgradeAnswer
                guard responses != nil else {
                    phase = .raw
                    send(leftover)
                    return
                }
                guard leftover.count <= maxHeldBytes else {
                    phase = .rejected
                    throw Rejection(status: 400, reason: "more than \(maxHeldBytes) bytes sent before the upgrade was answered")
                }
                held.append(contentsOf: leftover)
                return
            }
        }
        if let start = runStart, input.count > start {
            send(UnsafeRawBufferPointer(rebasing: input[start...]))
        }
    }

    private mutating func sendRewritten(_ head: HTTPRequestHead, send: (UnsafeRawBufferPointer) -> Void) {
        var head = head
        head.headers.remove(name: "Authorization")
        head.headers.remove(name: "Proxy-Authorization")
        head.headers.add(name: "Authorization", value: authorization)
        headBuffer.removeAll(keepingCapacity: true)
        head.write(into: &headBuffer)
        headBuffer.withUnsafeBytes { send($0) }
    }

    static func describe(_ error: HTTPParseError) -> String {
        switch error {
        case .headTooLarge(let limit): "request head larger than \(limit) bytes"
        case .tooManyHeaders(let limit): "more than \(limit) header fields"
        case .badRequestLine, .badStatusLine: "malformed request line"
        case .badHeader: "malformed header field"
        case .unsupportedVersion: "unsupported HTTP version"
        case .badContentLength: "malformed Content-Length"
        case .conflictingContentLength: "conflicting Content-Length fields"
        case .contentLengthWithTransferEncoding: "both Content-Length and Transfer-Encoding"
        case .unsupportedTransferEncoding: "unsupported Transfer-Encoding"
        case .badChunkSize: "malformed chunk size"
        case .badChunkFraming: "malformed chunked framing"
        case .truncatedMessage: "truncated request"
        case .usedAfterUpgrade: "bytes after an upgrade"
        }
    }
}
