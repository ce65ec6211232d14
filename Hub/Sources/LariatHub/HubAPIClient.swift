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
        try send(method: "GET", host: host, port: port, path: path, bearer: bearer, caPEM: caPEM,
                 timeoutMilliseconds: timeoutMilliseconds)
    }

    /// One request; `body` goes as JSON. No bearer (nil or empty) sends no Authorization header.
    public static func send(method: String, host: String, port: Int, path: String, body: [UInt8]? = nil,
                            bearer: String?, caPEM: String, timeoutMilliseconds: UInt64 = 180_000) throws -> Response {
        let loop = UVLoop(name: "api-client")
        var headers: HTTPHeaders = ["Host": "\(host):\(port)", "Connection": "close"]
        if let bearer, !bearer.isEmpty { headers.add(name: "Authorization", value: "Bearer \(bearer)") }
        if let body {
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: String(body.count))
        }
        let exchange = Exchange(request: HTTPRequestHead(method: method, target: path, headers: headers), body: body ?? [])
        // No CA yet (the first contact of a login): fetch unverified, for the caller to pin.
        let context = try caPEM.isEmpty ? TLSContext.insecureClientForPinning() : TLSContext.client(trustedCAPEM: caPEM, verifyHostname: true)
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

        let requestBody: [UInt8]
        init(request: HTTPRequestHead, body: [UInt8]) {
            self.request = request
            requestBody = body
        }

        func run(on stream: any ByteStream, _ done: @escaping () -> Void) {
            onDone = done
            parser.expectResponse(toMethod: request.method)
            stream.start(handler: self)
            stream.write(request.serialized + requestBody)
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
