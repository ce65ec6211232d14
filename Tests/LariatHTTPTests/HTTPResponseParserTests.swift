import LariatHTTP
import Testing

@Suite struct HTTPResponseParserTests {
    func parseResponses(_ chunks: [[UInt8]], methods: [String] = []) throws -> [ParsedHTTP<HTTPResponseHead>] {
        var parser = HTTPResponseParser()
        for method in methods { parser.expectResponse(toMethod: method) }
        return try parse(chunks, with: &parser)
    }

    func heads(_ events: [ParsedHTTP<HTTPResponseHead>]) -> [HTTPResponseHead] {
        events.compactMap { if case .head(let head) = $0 { return head } else { return nil } }
    }

    @Test func statusLineHeadersAndContentLengthBody() throws {
        let message = bytes("HTTP/1.1 404 Not Found Here\r\nContent-Length: 4\r\nServer: x\r\n\r\nnope")
        for chunks in splits(of: message) {
            let events = try parseResponses(chunks)
            #expect(events.count == 3)
            let head = heads(events)[0]
            #expect(head.status == 404)
            #expect(head.reason == "Not Found Here")
            #expect(head.headers.first(name: "server") == "x")
            #expect(events[1] == .body(bytes("nope")))
            #expect(events[2] == .end)
        }
    }

    @Test func statusLineWithoutReason() throws {
        let events = try parseResponses([bytes("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n")])
        #expect(heads(events).first?.reason == "")
        #expect(events.last == .end)
    }

    @Test(arguments: ["HTTP/1.1 20 OK", "HTTP/1.1 2000 OK", "HTTP/1.1 abc OK", "HTTP/1.1", "HTTP/1.1 099 x", "ICY 200 OK"])
    func badStatusLine(_ line: String) {
        #expect(throws: HTTPParseError.badStatusLine) { try parseResponses([bytes(line + "\r\n\r\n")]) }
    }

    @Test func chunkedResponse() throws {
        let message = bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        for chunks in splits(of: message) {
            #expect(try parseResponses(chunks).dropFirst() == [.body(bytes("abc")), .end])
        }
    }

    @Test func bodyDelimitedByConnectionClose() throws {
        var parser = HTTPResponseParser()
        let events = try parse([bytes("HTTP/1.0 200 OK\r\n\r\nall of"), bytes(" this")], with: &parser)
        #expect(events.dropFirst() == [.body(bytes("all of this"))])
        guard case .end? = try parser.finish() else { Issue.record("expected end at close"); return }
        #expect(try parser.finish() == nil)
    }

    @Test func truncatedContentLengthBodyAtClose() throws {
        var parser = HTTPResponseParser()
        _ = try parse([bytes("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")], with: &parser)
        #expect(throws: HTTPParseError.truncatedMessage) { _ = try parser.finish() }
    }

    @Test func headAnd204And304HaveNoBody() throws {
        let message = bytes(
            "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"  // answers HEAD
                + "HTTP/1.1 204 No Content\r\n\r\n"
                + "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n"
                + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        let events = try parseResponses([message], methods: ["HEAD", "GET", "GET", "GET"])
        #expect(heads(events).map(\.status) == [200, 204, 304, 200])
        #expect(events.filter { $0 == .end }.count == 4)
        #expect(events.filter { if case .body = $0 { return true } else { return false } } == [.body(bytes("ok"))])
    }

    @Test func interimResponsesPrecedeTheFinalOne() throws {
        let message = bytes("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")
        let events = try parseResponses([message], methods: ["POST"])
        #expect(heads(events).map(\.status) == [100, 103, 200])
        #expect(heads(events).map(\.isInformational) == [true, true, false])
        #expect(events.last == .end)
        #expect(events.contains(.body(bytes("x"))))
        // The method expectation must survive interim responses and apply to the final one.
        let headEvents = try parseResponses([bytes("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")],
                                            methods: ["HEAD"])
        #expect(headEvents.filter { $0 == .end }.count == 2)
    }

    @Test func switchingProtocolsHandsBackLeftover() throws {
        let frame: [UInt8] = [0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F]
        let message = bytes("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n") + frame
        for chunks in splits(of: message) {
            let events = try parseResponses(chunks)
            #expect(heads(events).first?.status == 101)
            #expect(events.dropFirst() == [.end, .upgrade(frame)])
        }
    }

    @Test func connectSuccessBecomesATunnel() throws {
        let events = try parseResponses([bytes("HTTP/1.1 200 Connection Established\r\n\r\nSSH-2.0-x")], methods: ["CONNECT"])
        #expect(events.dropFirst() == [.end, .upgrade(bytes("SSH-2.0-x"))])
        // A refused CONNECT is an ordinary response.
        let refused = try parseResponses([bytes("HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")], methods: ["CONNECT"])
        #expect(refused.dropFirst() == [.body(bytes("no")), .end])
    }

    @Test func pipelinedResponsesSplitAnywhere() throws {
        let message = bytes(
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none"
                + "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n"
                + "HTTP/1.1 500 Oops\r\nContent-Length: 5\r\nConnection: close\r\n\r\nthree")
        let expected = try parseResponses([message])
        #expect(heads(expected).map(\.keepAlive) == [true, true, false])
        var generator = SplitMix64(seed: 7)
        for _ in 0..<200 {
            #expect(try parseResponses(randomChunks(message, maxPiece: 9, using: &generator)) == expected)
        }
    }

    @Test func conflictingLengthInResponses() {
        #expect(throws: HTTPParseError.conflictingContentLength) {
            try parseResponses([bytes("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")])
        }
        #expect(throws: HTTPParseError.contentLengthWithTransferEncoding) {
            try parseResponses([bytes("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")])
        }
    }
}
