/// Why an opening handshake (RFC 6455 §4) was refused.
public enum WebSocketHandshakeError: Error, Sendable, Equatable {
    // Server side: problems with the client's request.
    case methodNotGet
    /// The handshake needs HTTP/1.1 or later.
    case httpVersionTooOld
    /// No `Upgrade: websocket`.
    case missingUpgradeHeader
    /// `Connection` does not list `upgrade`.
    case missingConnectionUpgrade
    /// `Sec-WebSocket-Version` missing or not 13.
    case unsupportedVersion
    case missingKey
    /// `Sec-WebSocket-Key` is not base64 of 16 bytes.
    case invalidKey

    // Client side: problems with the server's response.
    /// Anything but 101; the server refused or does not speak WebSocket.
    case unexpectedStatus(Int)
    /// The 101 lacks `Upgrade: websocket` or `Connection: upgrade`.
    case responseMissingUpgrade
    /// `Sec-WebSocket-Accept` missing or not derived from our key.
    case acceptMismatch
    /// The server chose a subprotocol we did not offer, or an extension (we offer none).
    case unrequestedNegotiation

    /// The status a server answers with (server-side errors only): 426 tells the client which
    /// upgrade and version we do speak, 400 is for a malformed handshake.
    public var status: Int {
        switch self {
        case .missingUpgradeHeader, .unsupportedVersion: return 426
        default: return 400
        }
    }

    /// The response head a server sends before closing the connection.
    public var rejectionResponse: HTTPResponseHead {
        var headers: HTTPHeaders = ["Content-Length": "0", "Connection": "close"]
        if status == 426 {
            headers.add(name: "Upgrade", value: "websocket")
            headers.add(name: "Sec-WebSocket-Version", value: "13")
        }
        return HTTPResponseHead(status: status, headers: headers)
    }
}
