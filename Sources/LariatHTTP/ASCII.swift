// Byte-level ASCII helpers shared by the HTTP and WebSocket code.
// HTTP field names, methods and tokens are ASCII by definition, so working on UTF-8 bytes
// avoids Foundation and Unicode-aware comparisons that HTTP does not want anyway.

enum ASCII {
    static let cr: UInt8 = 0x0D
    static let lf: UInt8 = 0x0A
    static let space: UInt8 = 0x20
    static let tab: UInt8 = 0x09
    static let colon: UInt8 = 0x3A
    static let comma: UInt8 = 0x2C
    static let semicolon: UInt8 = 0x3B

    @inline(__always)
    static func lowercased(_ byte: UInt8) -> UInt8 {
        (byte >= 0x41 && byte <= 0x5A) ? byte | 0x20 : byte
    }

    @inline(__always)
    static func isWhitespace(_ byte: UInt8) -> Bool { byte == space || byte == tab }

    @inline(__always)
    static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    /// The value of a hexadecimal digit, or nil (chunk sizes are hex).
    @inline(__always)
    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: return byte - 0x30
        case 0x41...0x46: return byte - 0x41 + 10
        case 0x61...0x66: return byte - 0x61 + 10
        default: return nil
        }
    }

    /// RFC 9110 §5.6.2 `tchar`: the characters allowed in methods and field names.
    @inline(__always)
    static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"),
             UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"),
             UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
             UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default: return false
        }
    }

    /// RFC 9110 §5.5 field-value characters: visible ASCII, SP, HTAB and obs-text.
    /// Every other control byte (CR, LF, NUL above all) is how header injection works.
    @inline(__always)
    static func isFieldValueCharacter(_ byte: UInt8) -> Bool {
        byte == tab || (byte >= 0x20 && byte != 0x7F)
    }

    /// Case-insensitive comparison of two ASCII strings (non-ASCII bytes compare exactly).
    static func equalsCaseInsensitive(_ a: String, _ b: String) -> Bool {
        let a = a.utf8, b = b.utf8
        guard a.count == b.count else { return false }
        for (x, y) in zip(a, b) where lowercased(x) != lowercased(y) { return false }
        return true
    }

    /// Case-insensitive comparison of an ASCII string against bytes.
    static func equalsCaseInsensitive<C: Collection<UInt8>>(_ bytes: C, _ b: String) -> Bool {
        let b = b.utf8
        guard bytes.count == b.count else { return false }
        for (x, y) in zip(bytes, b) where lowercased(x) != lowercased(y) { return false }
        return true
    }

    /// The bytes of `slice` without leading and trailing SP/HTAB (HTTP "OWS").
    static func trimmingWhitespace(_ slice: Slice<UnsafeRawBufferPointer>) -> Slice<UnsafeRawBufferPointer> {
        var start = slice.startIndex, end = slice.endIndex
        while start < end, isWhitespace(slice[start]) { start += 1 }
        while end > start, isWhitespace(slice[end - 1]) { end -= 1 }
        return slice[start..<end]
    }

    /// Splits a comma-separated header value into trimmed, non-empty elements (RFC 9110 §5.6.1).
    static func commaSeparatedElements(_ value: String) -> [Substring] {
        value.split(separator: ",").compactMap { element in
            let trimmed = element.drop(while: { $0 == " " || $0 == "\t" })
            var end = trimmed.endIndex
            while end > trimmed.startIndex {
                let before = trimmed.index(before: end)
                guard trimmed[before] == " " || trimmed[before] == "\t" else { break }
                end = before
            }
            let result = trimmed[trimmed.startIndex..<end]
            return result.isEmpty ? nil : result
        }
    }
}

extension UnsafeRawBufferPointer {
    /// The bytes after the first `count`: how parsers advance through a caller's input.
    @inline(__always)
    func droppingFirst(_ count: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: self[(startIndex + count)...])
    }

    @inline(__always)
    func prefixBytes(_ count: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: self[startIndex..<(startIndex + count)])
    }
}

extension UnsafeMutableRawBufferPointer {
    @inline(__always)
    func droppingFirst(_ count: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: self[(startIndex + count)...])
    }

    @inline(__always)
    func prefixBytes(_ count: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: self[startIndex..<(startIndex + count)])
    }
}

extension Array where Element == UInt8 {
    /// Appends the UTF-8 bytes of `string`; the serialisers' building block.
    @inline(__always)
    mutating func appendASCII(_ string: String) { append(contentsOf: string.utf8) }

    /// Appends a header name or value, turning bytes that could end the line (CR, LF, NUL and
    /// other controls) into spaces: a value that came from a peer must never be able to inject
    /// a header or split a response.
    mutating func appendFieldText(_ string: String) {
        for byte in string.utf8 {
            append(ASCII.isFieldValueCharacter(byte) ? byte : ASCII.space)
        }
    }

    mutating func appendDecimal(_ value: Int) { append(contentsOf: String(value).utf8) }
}
