import LariatHTTP
import Testing

@Suite struct HTTPRequestParserTests {
    static let getRequest = bytes(
        "GET /tunnel/42?x=1 HTTP/1.1\r\nHost: hub.example\r\nAccept: a\r\naccept: b, c\r\n"
            + "X-Empty:\r\nUser-Agent:   lariat/1.0  \r\n\r\n")

    @Test func parsesHeadWithCaseInsensitiveMultiValueHeaders() throws {
        let events = try parseRequests([Self.getRequest])
        #expect(events.count == 2)
        guard case .head(let head) = events.first else { Issue.record("no head"); return }
        #expect(events.last == .end)
        #expect(head.method == "GET")
        #expect(head.target == "/tunnel/42?x=1")
        #expect(head.path == "/tunnel/42")
        #expect(head.query == "x=1")
        #expect(head.version == .http1_1)
        #expect(head.headers.first(name: "HOST") == "hub.example")
        #expect(head.headers["Accept"] == ["a", "b, c"])
        #expect(head.headers.tokens(name: "accept") == ["a", "b", "c"])
        #expect(head.headers.first(name: "x-empty") == "")
        #expect(head.headers.first(name: "user-agent") == "lariat/1.0")
        #expect(head.headers.map(\.name) == ["Host", "Accept", "accept", "X-Empty", "User-Agent"])
        #expect(head.keepAlive)
        #expect(!head.isUpgradeRequest)
    }

    @Test func splittingAtEveryByteBoundaryGivesTheSameResult() throws {
        let message = Self.getRequest
            + bytes("POST /upload HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world")
            + bytes("PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nabcde\r\n3\r\nfgh\r\n0\r\nTrailer: x\r\n\r\n")
        let expected = try parseRequests([message])
        #expect(expected.count == 8)
        for chunks in splits(of: message) {
            #expect(try parseRequests(chunks) == expected)
        }
    }

    @Test func contentLengthBodyIsDeliveredIncrementallyAsSlices() throws {
        var parser = HTTPRequestParser()
        let head = bytes("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n01234")
        var pieces: [[UInt8]] = []
        try head.withUnsafeBytes { buffer in
            var rest = buffer
            guard case .head = try parser.next(from: &rest) else { Issue.record("expected head"); return }
            guard case .body(let piece) = try parser.next(from: &rest) else { Issue.record("expected body"); return }
            // Zero copy: the slice points into the caller's buffer, right after the head.
            #expect(piece.baseAddress == buffer.baseAddress! + (head.count - 5))
            pieces.append(Array(piece))
            #expect(try parser.next(from: &rest) == nil)
        }
        let tail = bytes("56789")
        try tail.withUnsafeBytes { buffer in
            var rest = buffer
            guard case .body(let piece) = try parser.next(from: &rest) else { Issue.record("expected body"); return }
            pieces.append(Array(piece))
            guard case .end = try parser.next(from: &rest) else { Issue.record("expected end"); return }
            #expect(try parser.next(from: &rest) == nil)
        }
        #expect(pieces == [bytes("01234"), bytes("56789")])
    }

    @Test func chunkedBodyWithExtensionsAndTrailers() throws {
        let message = bytes(
            "POST /c HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n"
                + "4\r\nWiki\r\n5 ;name=value\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Checksum: 1\r\nX-Other: 2\r\n\r\n")
        for chunks in splits(of: message) {
            let events = try parseRequests(chunks)
            #expect(events.count == 3)
            #expect(events.dropFirst().first == .body(bytes("Wikipedia in\r\n\r\nchunks.")))
            #expect(events.last == .end)
        }
    }

    @Test func emptyChunkedBody() throws {
        let events = try parseRequests("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        #expect(events.count == 2)
        #expect(events.last == .end)
    }

    @Test func pipelinedKeepAliveRequests() throws {
        let message = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
            + "POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz"
            + "\r\n"  // a stray CRLF between requests is tolerated (RFC 9112 §2.2)
            + "GET /c HTTP/1.1\r\nConnection: close\r\n\r\n"
        let events = try parseRequests(message)
        let heads = events.compactMap { event -> HTTPRequestHead? in
            if case .head(let head) = event { return head }
            return nil
        }
        #expect(heads.map(\.target) == ["/a", "/b", "/c"])
        #expect(heads.map(\.keepAlive) == [true, true, false])
        #expect(events.filter { $0 == .end }.count == 3)
        #expect(events.contains(.body(bytes("xyz"))))
    }

    @Test func bareLineFeedsAreAccepted() throws {
        let events = try parseRequests("GET / HTTP/1.0\nHost: h\n\n")
        guard case .head(let head) = events.first else { Issue.record("no head"); return }
        #expect(head.headers.first(name: "host") == "h")
        #expect(head.version == .http1_0)
        #expect(!head.keepAlive)
    }

    @Test func upgradeRequestHandsBackLeftoverBytes() throws {
        let head = "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n"
        let leftover: [UInt8] = [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]
        let message = bytes(head) + leftover
        for chunks in splits(of: message) {
            let events = try parseRequests(chunks)
            #expect(events.count == 3)
            guard case .head(let parsed) = events.first else { Issue.record("no head"); return }
            #expect(parsed.isUpgradeRequest)
            #expect(events[1] == .end)
            #expect(events[2] == .upgrade(leftover))
        }
    }

    @Test func upgradeInAnHTTP10RequestIsIgnored() throws {
        let events = try parseRequests("GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\nGET /2 HTTP/1.0\r\n\r\n")
        #expect(events.count == 4)
        #expect(!events.contains { if case .upgrade = $0 { return true } else { return false } })
    }

    @Test func connectRequestTunnelsEverythingAfterTheHead() throws {
        let events = try parseRequests("CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\nContent-Length: 3\r\n\r\n\u{0}\u{1}\u{2}\u{3}")
        #expect(events.count == 3)
        guard case .head(let head) = events.first else { Issue.record("no head"); return }
        #expect(head.method == "CONNECT")
        #expect(head.target == "db.internal:5432")
        #expect(events[2] == .upgrade([0, 1, 2, 3]))
    }

    @Test func feedingAfterUpgradeIsAnError() throws {
        var parser = HTTPRequestParser()
        _ = try parse([bytes("CONNECT a:1 HTTP/1.1\r\n\r\n")], with: &parser)
        #expect(throws: HTTPParseError.usedAfterUpgrade) { _ = try parse([[1]], with: &parser) }
    }

    @Test func declinedUpgradeResumesHTTP() throws {
        var parser = HTTPRequestParser()
        let events = try parse([bytes("GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\nGET /next HTTP/1.1\r\n\r\n")], with: &parser)
        guard case .upgrade(let leftover) = events.last else { Issue.record("no upgrade"); return }
        parser.resumeAfterDeclinedUpgrade()
        let next = try parse([leftover], with: &parser)
        guard case .head(let head) = next.first else { Issue.record("no head"); return }
        #expect(head.target == "/next")
    }

    @Test func finishReportsTruncation() throws {
        var idle = HTTPRequestParser()
        _ = try parse([bytes("GET / HTTP/1.1\r\n\r\n")], with: &idle)
        try idle.finish()

        var midHead = HTTPRequestParser()
        _ = try parse([bytes("GET / HT")], with: &midHead)
        #expect(throws: HTTPParseError.truncatedMessage) { try midHead.finish() }

        var midBody = HTTPRequestParser()
        _ = try parse([bytes("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab")], with: &midBody)
        #expect(throws: HTTPParseError.truncatedMessage) { try midBody.finish() }
    }
}

@Suite struct HTTPRequestParserLimitTests {
    @Test func headTooLargeAtTheDefault32KiB() throws {
        let big = "GET / HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 33 * 1024) + "\r\n\r\n"
        #expect(throws: HTTPParseError.headTooLarge(limit: 32 * 1024)) { try parseRequests(big) }
        // Also when the head arrives in small pieces and never ends.
        var generator = SplitMix64(seed: 1)
        let chunks = randomChunks(bytes(big), maxPiece: 700, using: &generator)
        #expect(throws: HTTPParseError.headTooLarge(limit: 32 * 1024)) { try parseRequests(chunks) }
    }

    @Test func headExactlyAtTheLimitIsAccepted() throws {
        let prefix = "GET / HTTP/1.1\r\nX: "
        let limit = 256
        let filler = String(repeating: "v", count: limit - prefix.utf8.count - 4)
        let exact = prefix + filler + "\r\n\r\n"
        #expect(exact.utf8.count == limit)
        let limits = HTTPParserLimits(maxHeadSize: limit)
        #expect(try parseRequests(exact, limits: limits).count == 2)
        #expect(throws: HTTPParseError.headTooLarge(limit: limit)) {
            try parseRequests(prefix + filler + "v\r\n\r\n", limits: limits)
        }
    }

    @Test func tooManyHeaders() throws {
        func request(headerCount: Int) -> String {
            "GET / HTTP/1.1\r\n" + (0..<headerCount).map { "H\($0): v\r\n" }.joined() + "\r\n"
        }
        #expect(try parseRequests(request(headerCount: 100)).count == 2)
        #expect(throws: HTTPParseError.tooManyHeaders(limit: 100)) { try parseRequests(request(headerCount: 101)) }
    }

    @Test(arguments: [
        "GET /\r\n\r\n",
        "GET  / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1 \r\n\r\n",
        "G(T / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1x\r\n\r\n",
        "GET / HTTX/1.1\r\n\r\n",
        "GET /\u{7F} HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\rX\r\n\r\n",
        " GET / HTTP/1.1\r\n\r\n",
    ])
    func badRequestLine(_ request: String) {
        #expect(throws: HTTPParseError.badRequestLine) { try parseRequests(request) }
    }

    @Test func unsupportedVersion() {
        #expect(throws: HTTPParseError.unsupportedVersion) { try parseRequests("GET / HTTP/2.0\r\n\r\n") }
        #expect(HTTPParseError.unsupportedVersion.suggestedResponseStatus == 505)
    }

    @Test(arguments: [
        "Host : h",  // whitespace before the colon
        "NoColon",
        ": empty-name",
        "Bad Name: v",
        "X-Ctl: a\u{1}b",
        "X-Nul: a\u{0}b",
        "X-Cr: a\rb",
    ])
    func badHeader(_ line: String) {
        #expect(throws: HTTPParseError.badHeader) { try parseRequests("GET / HTTP/1.1\r\n\(line)\r\n\r\n") }
    }

    @Test func obsoleteLineFoldingIsRejected() {
        #expect(throws: HTTPParseError.badHeader) {
            try parseRequests("GET / HTTP/1.1\r\nX-Long: a\r\n  continued\r\n\r\n")
        }
    }

    @Test(arguments: [
        "zz\r\n",
        "\r\n",
        "-1\r\n",
        "1000000000000000\r\n",  // 16 hex digits
        "5\n",  // chunk framing requires CRLF
        "5 x\r\n",
    ])
    func badChunkSize(_ sizeLine: String) {
        #expect(throws: HTTPParseError.badChunkSize) {
            try parseRequests("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + sizeLine + "hello\r\n0\r\n\r\n")
        }
    }

    @Test func chunkDataMustEndWithCRLF() {
        #expect(throws: HTTPParseError.badChunkFraming) {
            try parseRequests("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n")
        }
    }

    @Test func conflictingContentLength() throws {
        #expect(throws: HTTPParseError.conflictingContentLength) {
            try parseRequests("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")
        }
        #expect(throws: HTTPParseError.conflictingContentLength) {
            try parseRequests("POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\nhello!")
        }
        // Repeating the same value is allowed.
        let events = try parseRequests("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\nhello")
        #expect(events.dropFirst().first == .body(bytes("hello")))
    }

    @Test(arguments: ["abc", "-1", "+5", "1 2", "", "99999999999999999999"])
    func badContentLength(_ value: String) {
        #expect(throws: HTTPParseError.badContentLength) {
            try parseRequests("POST / HTTP/1.1\r\nContent-Length: \(value)\r\n\r\n")
        }
    }

    @Test func ambiguousOrUnsupportedTransferEncoding() {
        #expect(throws: HTTPParseError.contentLengthWithTransferEncoding) {
            try parseRequests("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        }
        #expect(throws: HTTPParseError.unsupportedTransferEncoding) {
            try parseRequests("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n")
        }
        #expect(throws: HTTPParseError.unsupportedTransferEncoding) {
            try parseRequests("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n")
        }
        #expect(throws: HTTPParseError.unsupportedTransferEncoding) {
            try parseRequests("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n")
        }
        #expect(HTTPParseError.unsupportedTransferEncoding.suggestedResponseStatus == 501)
        #expect(HTTPParseError.headTooLarge(limit: 1).suggestedResponseStatus == 431)
    }

    @Test func aFailedParserStaysFailed() throws {
        var parser = HTTPRequestParser()
        #expect(throws: HTTPParseError.badRequestLine) { _ = try parse([bytes("NOPE\r\n\r\n")], with: &parser) }
        #expect(throws: HTTPParseError.badRequestLine) { _ = try parse([bytes("GET / HTTP/1.1\r\n\r\n")], with: &parser) }
    }
}
