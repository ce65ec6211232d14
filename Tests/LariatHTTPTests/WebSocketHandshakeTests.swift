import LariatHTTP
import Testing

@Suite struct Base64Tests {
    // RFC 4648 §10 test vectors.
    static let vectors: [(String, String)] = [
        ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy"),
    ]

    @Test func rfc4648Vectors() {
        for (plain, encoded) in Self.vectors {
            #expect(Base64.encode(bytes(plain)) == encoded)
            #expect(Base64.decode(encoded) == bytes(plain))
        }
        let all = (0...255).map { UInt8($0) }
        #expect(Base64.decode(Base64.encode(all)) == all)
    }

    @Test(arguments: ["Zg=", "Zg", "Z===", "=Zg=", "Zg==Zg==", "Zm9v\n", "Zm9*", "Zg=a"])
    func rejectsMalformedInput(_ text: String) {
        #expect(Base64.decode(text) == nil)
    }
}

@Suite struct WebSocketHandshakeTests {
    static let rfcKey = "dGhlIHNhbXBsZSBub25jZQ=="

    static func upgradeRequest(_ headers: HTTPHeaders, method: String = "GET", version: HTTPVersion = .http1_1) -> HTTPRequestHead {
        HTTPRequestHead(method: method, target: "/chat", version: version, headers: headers)
    }

    static let validHeaders: HTTPHeaders = [
        "Host": "server.example.com", "Upgrade": "websocket", "Connection": "Upgrade",
        "Sec-WebSocket-Key": rfcKey, "Sec-WebSocket-Version": "13",
    ]

    @Test func rfc6455AcceptExample() {
        #expect(WebSocketHandshake.acceptValue(forKey: Self.rfcKey) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    @Test func clientKeysAreRandom16ByteValues() {
        let a = WebSocketHandshake.makeClientKey(), b = WebSocketHandshake.makeClientKey()
        #expect(Base64.decode(a)?.count == 16)
        #expect(a != b)
    }

    @Test func serverAcceptsAValidRequest() throws {
        let response = try WebSocketHandshake.acceptClientRequest(Self.upgradeRequest(Self.validHeaders))
        #expect(response.status == 101)
        #expect(response.headers.first(name: "sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        #expect(response.headers.containsToken("websocket", name: "upgrade"))
        #expect(response.headers.containsToken("upgrade", name: "connection"))
        // Token matching is case-insensitive and works inside lists.
        var headers = Self.validHeaders
        headers.replaceOrAdd(name: "Connection", value: "keep-alive, UPGRADE")
        headers.replaceOrAdd(name: "Upgrade", value: "WebSocket")
        _ = try WebSocketHandshake.acceptClientRequest(Self.upgradeRequest(headers))
    }

    @Test func serverRejections() {
        func expectRejection(_ error: WebSocketHandshakeError, status: Int, _ request: HTTPRequestHead) {
            #expect(throws: error) { try WebSocketHandshake.acceptClientRequest(request) }
            #expect(error.status == status)
            #expect(error.rejectionResponse.status == status)
        }
        func without(_ name: String, replacing value: String? = nil) -> HTTPHeaders {
            var headers = Self.validHeaders
            headers.remove(name: name)
            if let value { headers.add(name: name, value: value) }
            return headers
        }
        expectRejection(.methodNotGet, status: 400, Self.upgradeRequest(Self.validHeaders, method: "POST"))
        expectRejection(.httpVersionTooOld, status: 400, Self.upgradeRequest(Self.validHeaders, version: .http1_0))
        expectRejection(.missingUpgradeHeader, status: 426, Self.upgradeRequest(without("Upgrade")))
        expectRejection(.missingUpgradeHeader, status: 426, Self.upgradeRequest(without("Upgrade", replacing: "h2c")))
        expectRejection(.missingConnectionUpgrade, status: 400, Self.upgradeRequest(without("Connection", replacing: "keep-alive")))
        expectRejection(.unsupportedVersion, status: 426, Self.upgradeRequest(without("Sec-WebSocket-Version", replacing: "8")))
        expectRejection(.unsupportedVersion, status: 426, Self.upgradeRequest(without("Sec-WebSocket-Version")))
        expectRejection(.missingKey, status: 400, Self.upgradeRequest(without("Sec-WebSocket-Key")))
        expectRejection(.invalidKey, status: 400, Self.upgradeRequest(without("Sec-WebSocket-Key", replacing: "c2hvcnQ=")))
        let rejection = WebSocketHandshakeError.unsupportedVersion.rejectionResponse
        #expect(rejection.headers.first(name: "Sec-WebSocket-Version") == "13")
    }

    @Test func clientRequestRoundTripsThroughTheServer() throws {
        let key = WebSocketHandshake.makeClientKey()
        let request = WebSocketHandshake.makeClientRequest(target: "/agent", host: "hub:443", key: key, protocols: ["lariat.v1"],
                                                           headers: ["Authorization": "Bearer t"])
        // Through the wire format and the parser, as a real server would see it.
        let parsed = try parseRequests([request.serialized])
        guard case .head(let received) = parsed.first else { Issue.record("no head"); return }
        #expect(received.isUpgradeRequest)
        #expect(parsed.last == .upgrade([]))
        let response = try WebSocketHandshake.acceptClientRequest(received, selectedProtocol: "lariat.v1")
        try WebSocketHandshake.validateServerResponse(response, clientKey: key, offeredProtocols: ["lariat.v1"])
    }

    @Test func clientRejections() throws {
        let key = Self.rfcKey
        let good = try WebSocketHandshake.acceptClientRequest(Self.upgradeRequest(Self.validHeaders))
        try WebSocketHandshake.validateServerResponse(good, clientKey: key)

        #expect(throws: WebSocketHandshakeError.unexpectedStatus(200)) {
            try WebSocketHandshake.validateServerResponse(HTTPResponseHead(status: 200), clientKey: key)
        }
        #expect(throws: WebSocketHandshakeError.acceptMismatch) {
            try WebSocketHandshake.validateServerResponse(good, clientKey: WebSocketHandshake.makeClientKey())
        }
        var noUpgrade = good
        noUpgrade.headers.remove(name: "Upgrade")
        #expect(throws: WebSocketHandshakeError.responseMissingUpgrade) {
            try WebSocketHandshake.validateServerResponse(noUpgrade, clientKey: key)
        }
        var withProtocol = good
        withProtocol.headers.add(name: "Sec-WebSocket-Protocol", value: "other")
        #expect(throws: WebSocketHandshakeError.unrequestedNegotiation) {
            try WebSocketHandshake.validateServerResponse(withProtocol, clientKey: key, offeredProtocols: ["lariat.v1"])
        }
        var withExtension = good
        withExtension.headers.add(name: "Sec-WebSocket-Extensions", value: "permessage-deflate")
        #expect(throws: WebSocketHandshakeError.unrequestedNegotiation) {
            try WebSocketHandshake.validateServerResponse(withExtension, clientKey: key)
        }
    }
}
