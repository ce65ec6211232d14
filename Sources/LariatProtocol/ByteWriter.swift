/// Big-endian serialisation into a growable array. Used for control frames and tests, never for
/// DATA payloads (those are written straight into the caller's output buffer).
public struct ByteWriter {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u16(_ v: UInt16) {
        bytes.append(UInt8(v >> 8)); bytes.append(UInt8(truncatingIfNeeded: v))
    }
    public mutating func u24(_ v: Int) {
        bytes.append(UInt8(truncatingIfNeeded: v >> 16))
        bytes.append(UInt8(truncatingIfNeeded: v >> 8))
        bytes.append(UInt8(truncatingIfNeeded: v))
    }
    public mutating func u32(_ v: UInt32) {
        u16(UInt16(v >> 16)); u16(UInt16(truncatingIfNeeded: v))
    }
    public mutating func u64(_ v: UInt64) {
        u32(UInt32(v >> 32)); u32(UInt32(truncatingIfNeeded: v))
    }
    public mutating func append<C: Collection>(_ c: C) where C.Element == UInt8 { bytes.append(contentsOf: c) }
}

/// Big-endian reads over a borrowed buffer with bounds checks that report, never trap.
public struct ByteReader {
    public let buffer: UnsafeRawBufferPointer
    public private(set) var offset = 0

    public init(_ buffer: UnsafeRawBufferPointer) { self.buffer = buffer }

    public var remaining: Int { buffer.count - offset }

    public mutating func u8() -> UInt8? {
        guard remaining >= 1 else { return nil }
        defer { offset += 1 }
        return buffer[offset]
    }
    public mutating func u16() -> UInt16? {
        guard remaining >= 2 else { return nil }
        defer { offset += 2 }
        return UInt16(buffer[offset]) << 8 | UInt16(buffer[offset + 1])
    }
    public mutating func u32() -> UInt32? {
        guard remaining >= 4, let hi = u16(), let lo = u16() else { return nil }
        return UInt32(hi) << 16 | UInt32(lo)
    }
    public mutating func u64() -> UInt64? {
        guard remaining >= 8, let hi = u32(), let lo = u32() else { return nil }
        return UInt64(hi) << 32 | UInt64(lo)
    }
    public mutating func bytes(_ n: Int) -> UnsafeRawBufferPointer? {
        guard n >= 0, remaining >= n else { return nil }
        defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: buffer[offset..<(offset + n)])
    }
    public mutating func rest() -> UnsafeRawBufferPointer {
        bytes(remaining)!
    }
}

extension String {
    /// Strict UTF-8 decoding: nil for invalid sequences (a peer's text is never trusted).
    init?(validatingUTF8Bytes b: UnsafeRawBufferPointer) {
        guard let s = String(validating: b.bindMemory(to: UInt8.self), as: UTF8.self) else { return nil }
        self = s
    }
}

extension String {
    /// At most `maxBytes` of UTF-8, cut at a scalar boundary so the result stays valid UTF-8.
    public func truncatedUTF8(_ maxBytes: Int) -> String {
        guard utf8.count > maxBytes else { return self }
        var end = utf8.index(utf8.startIndex, offsetBy: maxBytes)
        while String.Index(end, within: unicodeScalars) == nil { end = utf8.index(before: end) }
        return String(unicodeScalars[..<end])
    }
}
