import CLibUV

/// A failed libuv call, named by libuv itself (`uv_err_name`, e.g. "ECONNREFUSED", "EOF")
/// so logs and tests can match on a stable string rather than a platform errno number.
public struct UVError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The negative libuv status code (`UV_E*`).
    public let code: Int32
    /// What we were doing: "connect", "write", "read", "bind", ...
    public let operation: StaticString

    public init(code: Int32, operation: StaticString) {
        self.code = code
        self.operation = operation
    }

    /// libuv's symbolic name, e.g. "ECONNREFUSED".
    public var name: String { String(cString: uv_err_name(code)) }
    /// libuv's human-readable message, e.g. "connection refused".
    public var message: String { String(cString: uv_strerror(code)) }
    public var isEOF: Bool { code == UV_EOF.rawValue }

    public var description: String { "\(operation): \(name) (\(message))" }

    public static func == (a: UVError, b: UVError) -> Bool {
        a.code == b.code && a.operation.description == b.operation.description
    }

    static func timedOut(_ operation: StaticString) -> UVError {
        UVError(code: UV_ETIMEDOUT.rawValue, operation: operation)
    }
}

/// Turns a libuv status (0 or negative `UV_E*`) into a thrown `UVError`.
@inline(__always)
func uvCheck(_ status: Int32, _ operation: StaticString) throws(UVError) {
    if status < 0 { throw UVError(code: status, operation: operation) }
}
