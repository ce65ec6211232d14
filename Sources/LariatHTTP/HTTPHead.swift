/// The start line and header fields of an HTTP/1.x request.
public struct HTTPRequestHead: Sendable, Equatable, HTTPSerializableHead {
    /// Case-sensitive method token (`GET`, `CONNECT`, …), RFC 9110 §9.1.
    public var method: String
    /// The request target exactly as sent: origin form (`/a?b`), absolute form, authority
    /// form (`host:port`, used by CONNECT) or `*`.
    public var target: String
    public var version: HTTPVersion
    public var headers: HTTPHeaders

    public init(method: String, target: String, version: HTTPVersion = .http1_1, headers: HTTPHeaders = [:]) {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
    }

    /// The target without its query (`/a/b?x=1` → `/a/b`).
    public var path: Substring {
        target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
    }

    /// The query after `?`, if any.
    public var query: Substring? {
        guard let mark = target.firstIndex(of: "?") else { return nil }
        return target[target.index(after: mark)...]
    }

    /// Whether the connection may carry another request after this one (RFC 9112 §9.3).
    public var keepAlive: Bool { HTTPConnectionSemantics.keepAlive(version: version, headers: headers) }

    /// `Connection: upgrade` together with an `Upgrade:` field (RFC 9110 §7.8), which an
    /// HTTP/1.0 request cannot make (the field must be ignored there).
    public var isUpgradeRequest: Bool {
        (version.major > 1 || version.minor >= 1)
            && headers.contains(name: "Upgrade") && headers.containsToken("upgrade", name: "Connection")
    }

    /// Appends the serialised head, ending with the blank line.
    public func write(into buffer: inout [UInt8]) { writeHead(into: &buffer) }

    public var serialized: [UInt8] { serializedHead }

    func writeStartLine(into buffer: inout [UInt8]) {
        buffer.appendFieldText(method)
        buffer.append(ASCII.space)
        buffer.appendFieldText(target)
        buffer.append(ASCII.space)
        buffer.appendASCII(version.description)
    }
}

/// The status line and header fields of an HTTP/1.x response.
public struct HTTPResponseHead: Sendable, Equatable, HTTPSerializableHead {
    public var version: HTTPVersion
    public var status: Int
    public var reason: String
    public var headers: HTTPHeaders

    /// `reason` defaults to the standard phrase for `status`.
    public init(status: Int, reason: String? = nil, version: HTTPVersion = .http1_1, headers: HTTPHeaders = [:]) {
        self.version = version
        self.status = status
        self.reason = reason ?? HTTPStatusReason.phrase(for: status)
        self.headers = headers
    }

    public var keepAlive: Bool { HTTPConnectionSemantics.keepAlive(version: version, headers: headers) }

    /// An interim 1xx response; another response to the same request follows it.
    public var isInformational: Bool { (100..<200).contains(status) }

    /// Appends the serialised head, ending with the blank line.
    public func write(into buffer: inout [UInt8]) { writeHead(into: &buffer) }

    public var serialized: [UInt8] { serializedHead }

    func writeStartLine(into buffer: inout [UInt8]) {
        buffer.appendASCII(version.description)
        buffer.append(ASCII.space)
        // Three digits always (RFC 9112 §4); out-of-range values are a caller bug, clamp them.
        let code = min(max(status, 100), 999)
        buffer.appendDecimal(code)
        buffer.append(ASCII.space)
        buffer.appendFieldText(reason)
    }

    /// A complete response (head + body) with `Content-Length` set from the body.
    /// For error pages, health checks and other small replies built in one piece.
    public static func simpleResponse(
        status: Int, headers: HTTPHeaders = [:], body: [UInt8] = [], closeConnection: Bool = false
    ) -> [UInt8] {
        var head = HTTPResponseHead(status: status, headers: headers)
        head.headers.replaceOrAdd(name: "Content-Length", value: String(body.count))
        if closeConnection { head.headers.replaceOrAdd(name: "Connection", value: "close") }
        var buffer = head.serialized
        buffer.append(contentsOf: body)
        return buffer
    }

    /// A complete `text/plain; charset=utf-8` response.
    public static func simpleResponse(
        status: Int, text: String, headers: HTTPHeaders = [:], closeConnection: Bool = false
    ) -> [UInt8] {
        var headers = headers
        if !headers.contains(name: "Content-Type") {
            headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        }
        return simpleResponse(status: status, headers: headers, body: Array(text.utf8),
                              closeConnection: closeConnection)
    }
}

/// Requests and responses serialise alike except for their start line.
protocol HTTPSerializableHead {
    var headers: HTTPHeaders { get }
    /// The start line without its line ending.
    func writeStartLine(into buffer: inout [UInt8])
}

extension HTTPSerializableHead {
    /// Start line, fields, blank line.
    func writeHead(into buffer: inout [UInt8]) {
        writeStartLine(into: &buffer)
        buffer.append(ASCII.cr)
        buffer.append(ASCII.lf)
        headers.write(into: &buffer)
        buffer.append(ASCII.cr)
        buffer.append(ASCII.lf)
    }

    /// A fresh buffer reserved for a typical head, so writing it rarely reallocates.
    var serializedHead: [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(64 + headers.count * 32)
        writeHead(into: &buffer)
        return buffer
    }
}

/// Persistence rules shared by requests and responses.
enum HTTPConnectionSemantics {
    /// HTTP/1.1 is persistent unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    static func keepAlive(version: HTTPVersion, headers: HTTPHeaders) -> Bool {
        if headers.containsToken("close", name: "Connection") { return false }
        if version.major == 1 && version.minor == 0 {
            return headers.containsToken("keep-alive", name: "Connection")
        }
        return true
    }
}
