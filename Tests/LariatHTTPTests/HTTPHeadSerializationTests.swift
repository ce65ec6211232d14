import LariatHTTP
import Testing

@Suite struct HTTPHeadSerializationTests {
    @Test func requestHeadBytes() {
        let head = HTTPRequestHead(method: "GET", target: "/x?y", headers: ["Host": "h", "Via": "a", "Via": "b"])
        #expect(head.serialized == bytes("GET /x?y HTTP/1.1\r\nHost: h\r\nVia: a\r\nVia: b\r\n\r\n"))
    }

    @Test func responseHeadBytesUseTheStandardReason() {
        #expect(HTTPResponseHead(status: 404).serialized == bytes("HTTP/1.1 404 Not Found\r\n\r\n"))
        #expect(HTTPResponseHead(status: 299, reason: "Custom").serialized == bytes("HTTP/1.1 299 Custom\r\n\r\n"))
    }

    @Test func simpleResponses() {
        let response = HTTPResponseHead.simpleResponse(status: 200, headers: ["X-A": "1"], body: bytes("hi"))
        #expect(response == bytes("HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nhi"))
        let text = HTTPResponseHead.simpleResponse(status: 503, text: "busy", closeConnection: true)
        #expect(text == bytes("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy"))
    }

    @Test func serialisationCannotInjectLines() {
        let head = HTTPResponseHead(status: 200, headers: ["X-Evil": "a\r\nSet-Cookie: b"])
        #expect(head.serialized == bytes("HTTP/1.1 200 OK\r\nX-Evil: a  Set-Cookie: b\r\n\r\n"))
    }

    @Test func serialisedHeadsParseBackIdentically() throws {
        let request = HTTPRequestHead(method: "POST", target: "/api", headers: ["Host": "h", "Content-Length": "0", "x-Mixed-Case": "V"])
        #expect(try parseRequests([request.serialized]) == [.head(request), .end])

        let response = HTTPResponseHead(status: 201, headers: ["Content-Length": "0"])
        var parser = HTTPResponseParser()
        #expect(try parse([response.serialized], with: &parser) == [.head(response), .end])
    }

    @Test func headerEditing() {
        var headers: HTTPHeaders = ["Connection": "keep-alive", "connection": "Upgrade", "X": "1"]
        #expect(headers.containsToken("UPGRADE", name: "CONNECTION"))
        headers.replaceOrAdd(name: "CONNECTION", value: "close")
        #expect(headers.fields.map(\.name) == ["X", "CONNECTION"])
        headers.remove(name: "x")
        #expect(headers == ["CONNECTION": "close"])
        #expect(!HTTPRequestHead(method: "GET", target: "/", headers: headers).keepAlive)
        #expect(HTTPRequestHead(method: "GET", target: "/", version: .http1_0, headers: ["Connection": "Keep-Alive"]).keepAlive)
    }
}
