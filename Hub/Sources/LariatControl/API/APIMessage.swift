import Foundation
import LariatHTTP
import LariatStore

/// A request as the control plane sees it: the HTTPS front end has parsed it, bounded its size
/// and read its body.
public struct APIRequest: Sendable {
    public var method: String
    /// The path without the query ("/v3/clusters/c-1").
    public var path: String
    public var query: [String: String]
    public var headers: [(name: String, value: String)]
    public var body: Data
    /// The client's address ("ip:port") and IP alone.
    public var remote: String
    public var source: String

    public init(method: String, target: String, headers: [(name: String, value: String)], body: Data = Data(),
                remote: String = "", source: String = "") {
        self.method = method
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        path = String(parts[0])
        var q: [String: String] = [:]
        if parts.count == 2 {
            for pair in parts[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let key = PercentEncoding.decode(kv[0], plusIsSpace: true) ?? String(kv[0])
                let value = kv.count == 2 ? (PercentEncoding.decode(kv[1], plusIsSpace: true) ?? String(kv[1])) : ""
                q[key] = value
            }
        }
        query = q
        self.headers = headers
        self.body = body
        self.remote = remote
        self.source = source
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    /// The bearer token of `Authorization: Bearer …` (also `R_SESS` cookies, as Rancher's UI sends).
    public var bearerToken: String? {
        if let v = header("Authorization"), v.lowercased().hasPrefix("bearer ") {
            let t = v.dropFirst(7).trimmingCharacters(in: .whitespaces)
            return t.isEmpty ? nil : t
        }
        return nil
    }
}

/// The control plane's answer: a whole body, or a stream (watch) the front end relays chunk by
/// chunk until either side ends it.
public struct APIResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: Body

    public enum Body: Sendable {
        case data(Data)
        case stream(APIStream)
    }

    public init(status: Int, headers: [(name: String, value: String)] = [], body: Data) {
        self.status = status
        self.headers = headers
        self.body = .data(body)
    }

    public init(status: Int, headers: [(name: String, value: String)] = [], stream: APIStream) {
        self.status = status
        self.headers = headers
        body = .stream(stream)
    }

    public static func json<T: Encodable>(_ status: Int, _ value: T) -> APIResponse {
        // The control plane's types encode without failure (strings, numbers, dates, nested structs).
        let data = (try? APIJSON.encoder.encode(value)) ?? Data("{}".utf8)
        return APIResponse(status: status, headers: [("Content-Type", "application/json")], body: data + Data([0x0A]))
    }

    public static func error(_ e: APIError) -> APIResponse { .json(e.status, e.body) }

    public var bodyData: Data {
        if case .data(let d) = body { return d }
        return Data()
    }
}

/// A long-lived response body: `start` is called once with a sink; the stream writes JSON lines
/// to it until it ends (then calls `finish`) or the client goes away (`write` returns false, or
/// `cancel` is called by the front end).
public final class APIStream: Sendable {
    public struct Sink: Sendable {
        /// Queues one chunk; false once the client is gone (stop producing).
        public let write: @Sendable (Data) -> Bool
        public let finish: @Sendable () -> Void
        public init(write: @escaping @Sendable (Data) -> Bool, finish: @escaping @Sendable () -> Void) {
            self.write = write
            self.finish = finish
        }
    }

    private let onStart: @Sendable (Sink) -> Void
    private let onCancel: @Sendable () -> Void

    public init(start: @escaping @Sendable (Sink) -> Void, cancel: @escaping @Sendable () -> Void) {
        onStart = start
        onCancel = cancel
    }

    public func start(_ sink: Sink) { onStart(sink) }
    public func cancel() { onCancel() }
}

/// The API speaks the store's JSON (ISO 8601 dates, sorted keys): one encoding for both.
public enum APIJSON {
    public static var encoder: JSONEncoder { StoreCoding.encoder }
    public static var decoder: JSONDecoder { StoreCoding.decoder }
}
