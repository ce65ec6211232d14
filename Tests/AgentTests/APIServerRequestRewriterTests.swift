@testable import LariatAgent
import LariatHTTP
import Testing

/// Drives a rewriter with byte arrays and collects what it sends to the API server.
private final class RewriterDriver {
    var rewriter: APIServerRequestRewriter
    var toServer: [UInt8] = []

    init(maxHeadSize: Int = 64 * 1024, maxHeld: Int = 64 * 1024) {
        rewriter = APIServerRequestRewriter(token: "agent-token", limits: HTTPParserLimits(maxHeadSize: maxHeadSize, maxHeaderCount: 100),
                                            maxBytesAwaitingUpgrade: maxHeld)
    }

    func request(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { bytes in
            try rewriter.request(bytes) { toServer.append(contentsOf: $0) }
        }
    }

    func request(_ text: String) throws { try request(Array(text.utf8)) }

    func response(_ text: String) throws {
        try Array(text.utf8).withUnsafeBytes { bytes in
            try rewriter.response(bytes) { toServer.append(contentsOf: $0) }
        }
    }

    var sent: String { String(decoding: toServer, as: UTF8.self) }
}

private let bearer = "Authorization: Bearer agent-token\r\n"

@Suite struct APIServerRequestRewriterTests {
    /// Pipelined: a GET with credentials, a Content-Length body holding a head-like text with a
    /// credential, a chunked body with an extension and a trailer, and a last GET.
    static let pipeline = [
        "GET /api?timeout=32s HTTP/1.1\r\nHost: hub\r\nauthorization: Bearer user-token\r\nImpersonate-User: alice\r\n\r\n",
        "POST /api/v1/namespaces HTTP/1.1\r\nHost: hub\r\nContent-Length: 56\r\nPROXY-AUTHORIZATION: Basic eDp5\r\n\r\n",
        "GET /x HTTP/1.1\r\nAuthorization: Bearer evil-inside\r\n\r\n{}",
        "POST /apis/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nAuthorization: Basic dTpw\r\n\r\n",
        "5;ext=1\r\nhello\r\n1B\r\nAuthorization: Bearer no!\r\n\r\n0\r\nX-Trailer: kept\r\n\r\n",
        "GET /version HTTP/1.1\r\nHost: hub\r\n\r\n",
    ].joined()

    static let expected = [
        "GET /api?timeout=32s HTTP/1.1\r\nHost: hub\r\nImpersonate-User: alice\r\n\(bearer)\r\n",
        "POST /api/v1/namespaces HTTP/1.1\r\nHost: hub\r\nContent-Length: 56\r\n\(bearer)\r\n",
        "GET /x HTTP/1.1\r\nAuthorization: Bearer evil-inside\r\n\r\n{}",
        "POST /apis/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\(bearer)\r\n",
        "5;ext=1\r\nhello\r\n1B\r\nAuthorization: Bearer no!\r\n\r\n0\r\nX-Trailer: kept\r\n\r\n",
        "GET /version HTTP/1.1\r\nHost: hub\r\n\(bearer)\r\n",
    ].joined()

    @Test func pipelinedRequestsAreRewrittenAndBodiesPassVerbatim() throws {
        #expect(Array("GET /x HTTP/1.1\r\nAuthorization: Bearer evil-inside\r\n\r\n{}".utf8).count == 56)
        let driver = RewriterDriver()
        try driver.request(Self.pipeline)
        #expect(driver.sent == Self.expected)
    }

    @Test func everySplitPositionGivesTheSameBytes() throws {
        let input = Array(Self.pipeline.utf8)
        let expected = Array(Self.expected.utf8)
        var differing: [Int] = []
        for cut in 0...input.count {
            let driver = RewriterDriver()
            try driver.request(Array(input[..<cut]))
            try driver.request(Array(input[cut...]))
            if driver.toServer != expected { differing.append(cut) }
        }
        #expect(differing.isEmpty, "output differs when split at \(differing.prefix(10))…")
        let bytewise = RewriterDriver()
        for byte in input { try bytewise.request([byte]) }
        #expect(bytewise.sent == Self.expected)
    }

    @Test func everyCredentialFieldIsReplacedWhateverItsCase() throws {
        let driver = RewriterDriver()
        try driver.request("GET /api HTTP/1.1\r\nAUTHORIZATION: Basic a\r\nAuthorization: Bearer b\r\nproxy-Authorization: c\r\nAccept: */*\r\n\r\n")
        #expect(driver.sent == "GET /api HTTP/1.1\r\nAccept: */*\r\n\(bearer)\r\n")
    }

    @Test func contentLengthBodyThatLooksLikeAHeadIsNotRewritten() throws {
        let body = "GET / HTTP/1.1\r\nAuthorization: Bearer x\r\n\r\n"
        let driver = RewriterDriver()
        try driver.request("PUT /a HTTP/1.1\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
        #expect(driver.sent == "PUT /a HTTP/1.1\r\nContent-Length: \(body.utf8.count)\r\n\(bearer)\r\n\(body)")
    }

    @Test func acceptedUpgradeMakesTheStreamRawBothWays() throws {
        let driver = RewriterDriver()
        let upgrade = "GET /api/v1/namespaces/d/pods/p/exec?command=sh HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nAuthorization: Bearer u\r\n\r\n"
        // A frame sent early (with the head) waits for the answer.
        try driver.request(upgrade + "early")
        #expect(driver.sent == "GET /api/v1/namespaces/d/pods/p/exec?command=sh HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\(bearer)\r\n")
        #expect(driver.rewriter.heldCount == 5)
        let before = driver.toServer.count
        try driver.request("GET /not-a-request HTTP/1.1\r\nAuthorization: Bearer raw\r\n\r\n")
        #expect(driver.toServer.count == before)
        try driver.response("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\u{82}\u{01}x")
        #expect(driver.rewriter.isRaw)
        try driver.request("\u{0}\u{1}GET / HTTP/1.1\r\nAuthorization: Bearer raw2\r\n\r\n")
        try driver.response("not HTTP at all \r\n\r\n")
        #expect(String(decoding: driver.toServer[before...], as: UTF8.self)
            == "earlyGET /not-a-request HTTP/1.1\r\nAuthorization: Bearer raw\r\n\r\n\u{0}\u{1}GET / HTTP/1.1\r\nAuthorization: Bearer raw2\r\n\r\n")
    }

    @Test func spdyPostUpgradeIsAnUpgradeToo() throws {
        let driver = RewriterDriver()
        try driver.request("POST /api/v1/namespaces/d/pods/p/exec HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\nContent-Length: 0\r\n\r\n")
        try driver.response("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n")
        #expect(driver.rewriter.isRaw)
    }

    @Test func declinedUpgradeLeavesTheStreamCarryingRequests() throws {
        let driver = RewriterDriver()
        try driver.request("GET /exec HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        // The retry arrives before the refusal: it waits, then goes as a request.
        try driver.request("POST /exec HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nAuthorization: Bearer u\r\n\r\n")
        let afterFirst = driver.toServer.count
        try driver.response("HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\n{}")
        #expect(!driver.rewriter.isRaw)
        #expect(String(decoding: driver.toServer[afterFirst...], as: UTF8.self)
            == "POST /exec HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\(bearer)\r\n")
        try driver.response("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n")
        #expect(driver.rewriter.isRaw)
    }

    @Test func responsesToEarlierRequestsDoNotAnswerTheUpgrade() throws {
        let driver = RewriterDriver()
        try driver.request("GET /a HTTP/1.1\r\n\r\nHEAD /b HTTP/1.1\r\n\r\nGET /exec HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nframe")
        // The HEAD response declares a length but has no body; a 100 is not an answer.
        try driver.response("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n")
        #expect(driver.rewriter.heldCount == 5)
        try driver.response("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        #expect(driver.rewriter.isRaw)
        #expect(driver.sent.hasSuffix("\r\n\r\nframe"))
    }

    @Test func oversizedHeadIsRefusedWith431() throws {
        let driver = RewriterDriver(maxHeadSize: 1024)
        var thrown: APIServerRequestRewriter.Rejection?
        do {
            try driver.request("GET / HTTP/1.1\r\nX-Big: \(String(repeating: "a", count: 2000))\r\n\r\n")
        } catch {
            thrown = error as? APIServerRequestRewriter.Rejection
        }
        #expect(thrown?.status == 431)
        #expect(driver.toServer.isEmpty)
        let answer = String(decoding: thrown?.response ?? [], as: UTF8.self)
        #expect(answer.hasPrefix("HTTP/1.1 431 "))
        #expect(answer.contains("Connection: close"))
        // Nothing more is forwarded.
        try driver.request("GET / HTTP/1.1\r\n\r\n")
        #expect(driver.toServer.isEmpty)
    }

    @Test func malformedRequestIsRefusedWith400() throws {
        let driver = RewriterDriver()
        try driver.request("GET /ok HTTP/1.1\r\n\r\n")
        var thrown: APIServerRequestRewriter.Rejection?
        do { try driver.request("GET /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n") } catch {
            thrown = error as? APIServerRequestRewriter.Rejection
        }
        #expect(thrown?.status == 400)
        #expect(driver.sent == "GET /ok HTTP/1.1\r\n\(bearer)\r\n")
    }

    @Test func tooMuchBeforeTheUpgradeAnswerIsRefused() throws {
        let driver = RewriterDriver(maxHeld: 8)
        try driver.request("GET /exec HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n12345678")
        #expect(throws: APIServerRequestRewriter.Rejection.self) { try driver.request("9") }
    }
}
