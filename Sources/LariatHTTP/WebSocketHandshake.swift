/// The HTTP/1.1 opening handshake of RFC 6455 §4.
///
/// Client: `let key = WebSocketHandshake.makeClientKey()`, send
/// `makeClientRequest(target:host:key:)`, parse the response with an `HTTPResponseParser`,
/// then `validateServerResponse(_:clientKey:)`. Frames follow the response head; the
/// parser's `.upgrade(leftover:)` bytes are the first of them.
///
/// Server: parse the request with an `HTTPRequestParser`; on `.head` call
/// `acceptClientRequest(_:)`. Send the 101 it returns (then feed the `.upgrade` leftover to a
/// `WebSocketDecoder`), or on error send `error.rejectionResponse` and close.
public enum WebSocketHandshake {
    /// Fixed by RFC 6455 §1.3.
    public static let acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// 16 random bytes, base64-encoded (RFC 6455 §4.1).
    public static func makeClientKey() -> String {
        Base64.encode(OpenSSLPrimitives.randomBytes(16))
    }

    /// `base64(SHA-1(key + GUID))`: what the server returns in `Sec-WebSocket-Accept`.
    public static func acceptValue(forKey key: String) -> String {
        Base64.encode(OpenSSLPrimitives.sha1(Array((key + acceptGUID).utf8)))
    }

    /// The client's upgrade request. `protocols` become `Sec-WebSocket-Protocol`; `headers`
    /// are appended (authorization, for example).
    public static func makeClientRequest(
        target: String, host: String, key: String, protocols: [String] = [], headers: HTTPHeaders = [:]
    ) -> HTTPRequestHead {
        var fields: HTTPHeaders = [
            "Host": host,
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": key,
            "Sec-WebSocket-Version": "13",
        ]
        if !protocols.isEmpty { fields.add(name: "Sec-WebSocket-Protocol", value: protocols.joined(separator: ", ")) }
        for field in headers { fields.add(name: field.name, value: field.value) }
        return HTTPRequestHead(method: "GET", target: target, version: .http1_1, headers: fields)
    }

    /// Checks a client's upgrade request (RFC 6455 §4.2.1) and returns the 101 response head.
    /// `selectedProtocol` (one the client offered) is echoed in `Sec-WebSocket-Protocol`.
    public static func acceptClientRequest(
        _ request: HTTPRequestHead, selectedProtocol: String? = nil, headers: HTTPHeaders = [:]
    ) throws(WebSocketHandshakeError) -> HTTPResponseHead {
        guard request.method == "GET" else { throw .methodNotGet }
        guard request.version.major > 1 || request.version.minor >= 1 else { throw .httpVersionTooOld }
        guard request.headers.containsToken("websocket", name: "Upgrade") else { throw .missingUpgradeHeader }
        guard request.headers.containsToken("upgrade", name: "Connection") else { throw .missingConnectionUpgrade }
        let versions = request.headers["Sec-WebSocket-Version"]
        guard versions.count == 1, versions[0] == "13" else { throw .unsupportedVersion }
        let keys = request.headers["Sec-WebSocket-Key"]
        guard let key = keys.first else { throw .missingKey }
        guard keys.count == 1, Base64.decode(key)?.count == 16 else { throw .invalidKey }

        var fields: HTTPHeaders = [
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Accept": acceptValue(forKey: key),
        ]
        if let selectedProtocol { fields.add(name: "Sec-WebSocket-Protocol", value: selectedProtocol) }
        for field in headers { fields.add(name: field.name, value: field.value) }
        return HTTPResponseHead(status: 101, headers: fields)
    }

    /// Checks the server's answer to our upgrade request (RFC 6455 §4.1, client steps 1-6).
    public static func validateServerResponse(
        _ response: HTTPResponseHead, clientKey: String, offeredProtocols: [String] = []
    ) throws(WebSocketHandshakeError) {
        guard response.status == 101 else { throw .unexpectedStatus(response.status) }
        guard response.headers.containsToken("websocket", name: "Upgrade"),
              response.headers.containsToken("upgrade", name: "Connection")
        else { throw .responseMissingUpgrade }
        let accepts = response.headers["Sec-WebSocket-Accept"]
        guard accepts.count == 1, accepts[0] == acceptValue(forKey: clientKey) else { throw .acceptMismatch }
        if response.headers.contains(name: "Sec-WebSocket-Extensions") { throw .unrequestedNegotiation }
        let chosen = response.headers["Sec-WebSocket-Protocol"]
        if !chosen.isEmpty {
            guard chosen.count == 1, offeredProtocols.contains(chosen[0]) else { throw .unrequestedNegotiation }
        }
    }
}
