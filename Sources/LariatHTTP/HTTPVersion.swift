/// An HTTP/1.x protocol version as carried in the request line and status line.
public struct HTTPVersion: Sendable, Hashable, CustomStringConvertible {
    public var major: Int
    public var minor: Int

    public init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }

    public static let http1_0 = HTTPVersion(major: 1, minor: 0)
    public static let http1_1 = HTTPVersion(major: 1, minor: 1)

    public var description: String { "HTTP/\(major).\(minor)" }

    /// Parses exactly `HTTP/<digit>.<digit>` (RFC 9112 §2.3); only major version 1 is accepted,
    /// because this module speaks HTTP/1.x framing only.
    static func parse(_ bytes: Slice<UnsafeRawBufferPointer>) throws(HTTPParseError) -> HTTPVersion? {
        guard bytes.count == 8 else { return nil }
        let base = bytes.startIndex
        for (offset, expected) in "HTTP/".utf8.enumerated() where bytes[base + offset] != expected {
            return nil
        }
        let majorByte = bytes[base + 5], dot = bytes[base + 6], minorByte = bytes[base + 7]
        guard ASCII.isDigit(majorByte), dot == UInt8(ascii: "."), ASCII.isDigit(minorByte) else { return nil }
        guard majorByte == UInt8(ascii: "1") else { throw .unsupportedVersion }
        return HTTPVersion(major: 1, minor: Int(minorByte - 0x30))
    }
}
