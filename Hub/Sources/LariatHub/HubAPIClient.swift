import LariatHTTP
import LariatRuntime

/// A one-request HTTPS client for the hub's own API (the `lariat-hub bench` command talks to a
/// running hub this way). Trusts only the hub's CA; runs a private loop on the calling thread.
public enum HubAPIClient {
    public struct Response: Sendable {
        public var status: Int
        public var body: String
    }

    public static func get(host: String, port: Int, path: String, bearer: String, caPEM: String,
                           timeoutMilliseconds: UInt64 = 180_000) throws -> Response {
        let loop = UVLoop(name: "api-client")
        let exchange = Exchange(request: HTTPRequestHead(method: "GET", target: path, headers: [
            "Host": "\(host):\(port)", "Authorization": "Bearer \(bearer)", "Connection": "close"]))
        let context = try TLSContext.client(trustedCAPEM: caPEM, verifyHostname: true)
        TLSConnection.connect(loop: loop, host: host, port: port, context: context) { result in
            switch result {
            case .failure(let e): exchange.fail("\(e)"); loop.stop()
            case .success(let tls): exchange.run(on: tls) { loop.stop() }
            }
        }
        let timer = UVTimer(loop: loop)
        timer.start(afterMilliseconds: timeoutMilliseconds) { exchange.fail("no answer within \(timeoutMilliseconds / 1000) s"); loop.stop() }
        loop.run()
        timer.close()
        loop.close()
        if let error = exchange.error { throw APIError(description: "https://\(host):\(port)\(path): \(error)") }
        return Response(status: exchange.status, body: String(decoding: exchange.body, as: UTF8.self))
    }

    public struct APIError: Error, CustomStringConvertible { public let description: String }

    private final class Exchange: ByteStreamHandler {
        let request: HTTPRequestHead
        var parser = HTTPResponseParser()
        var status = 0
        var body: [UInt8] = []
        var error: String?
        var onDone: (() -> Void)?
        var finished = false

        init(request: HTTPRequestHead) { self.request = request }

        func run(on stream: any ByteStream, _ done: @escaping () -> Void) {
            onDone = done
            parser.expectResponse(toMethod: "GET")
            stream.start(handler: self)
            stream.write(request.serialized)
        }

        func fail(_ why: String) { if !finished { error = why; complete() } }

        private func complete() {
            guard !finished else { return }
            finished = true
            onDone?()
        }

        func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
            var input = bytes
            do {
                while let event = try parser.next(from: &input) {
                    switch event {
                    case .head(let h): status = h.status
                    case .body(let b): body.append(contentsOf: b)
                    case .end, .upgrade: stream.close(); complete()
                    }
                }
            } catch { fail("bad response: \(error)"); stream.close() }
        }
        func streamDidReadEOF(_ stream: any ByteStream) {
            if (try? parser.finish()) != nil, status != 0 { complete() } else { fail("connection closed before a response") }
            stream.close()
        }
        func streamDidFail(_ stream: any ByteStream, _ e: StreamError) { fail("\(e)") }
        func streamDidClose(_ stream: any ByteStream) { if !finished { fail("connection closed") } }
    }
}
