/// Incremental UTF-8 validation: text messages arrive in arbitrary pieces, and a code point may
/// be split between them, so the validator carries the partial sequence state across calls.
/// RFC 6455 §8.1 requires failing the connection on invalid text.
struct UTF8Validator {
    /// Continuation bytes still expected for the current code point.
    private var pendingContinuations = 0
    /// Allowed range for the next continuation byte; narrower than 0x80...0xBF right after
    /// E0/ED/F0/F4 to reject overlong forms, surrogates and code points above U+10FFFF.
    private var lowerBound: UInt8 = 0x80
    private var upperBound: UInt8 = 0xBF

    /// True when no code point is cut off (valid end of a message).
    var isAtBoundary: Bool { pendingContinuations == 0 }

    mutating func reset() {
        pendingContinuations = 0
        lowerBound = 0x80
        upperBound = 0xBF
    }

    /// Returns false at the first invalid byte.
    mutating func validate(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var index = bytes.startIndex
        let end = bytes.endIndex
        while index < end {
            // Fast path: eight ASCII bytes at a time when between code points.
            if pendingContinuations == 0, end - index >= 8 {
                let word = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                if word & 0x8080_8080_8080_8080 == 0 {
                    index += 8
                    continue
                }
            }
            let byte = bytes[index]
            index += 1
            if pendingContinuations == 0 {
                switch byte {
                case 0x00...0x7F: continue
                case 0xC2...0xDF: pendingContinuations = 1
                case 0xE0...0xEF:
                    pendingContinuations = 2
                    if byte == 0xE0 { lowerBound = 0xA0 }  // overlong
                    if byte == 0xED { upperBound = 0x9F }  // UTF-16 surrogates
                case 0xF0...0xF4:
                    pendingContinuations = 3
                    if byte == 0xF0 { lowerBound = 0x90 }  // overlong
                    if byte == 0xF4 { upperBound = 0x8F }  // above U+10FFFF
                default: return false
                }
            } else {
                guard byte >= lowerBound, byte <= upperBound else { return false }
                lowerBound = 0x80
                upperBound = 0xBF
                pendingContinuations -= 1
            }
        }
        return true
    }

    /// Validates a complete byte sequence.
    static func isValid(_ bytes: [UInt8]) -> Bool {
        var validator = UTF8Validator()
        return bytes.withUnsafeBytes { validator.validate($0) } && validator.isAtBoundary
    }
}
