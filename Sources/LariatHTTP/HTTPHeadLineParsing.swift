/// Splits a complete head into its start line and header fields.
///
/// Lines end with CRLF; a bare LF is accepted too (RFC 9112 §2.2 allows it), but a CR anywhere
/// else is an error, because lenient CR handling is a classic request-smuggling ambiguity.
enum HTTPHeadLineParsing {
    struct SplitHead {
        var startLine: Slice<UnsafeRawBufferPointer>
        var headers: HTTPHeaders
    }

    static func split(
        _ head: UnsafeRawBufferPointer, limits: HTTPParserLimits, startLineError: HTTPParseError
    ) throws(HTTPParseError) -> SplitHead {
        var lines = LineIterator(bytes: head)
        // A malformed first line is a start-line error, not a header error.
        let firstLine: Slice<UnsafeRawBufferPointer>?
        do { firstLine = try lines.next() } catch { throw startLineError }
        guard let startLine = firstLine, !startLine.isEmpty else { throw startLineError }
        var headers = HTTPHeaders()
        while let line = try lines.next() {
            if line.isEmpty { break }  // the blank line that ends the head
            guard headers.count < limits.maxHeaderCount else {
                throw .tooManyHeaders(limit: limits.maxHeaderCount)
            }
            let field = try parseField(line)
            headers.add(name: field.name, value: field.value)
        }
        return SplitHead(startLine: startLine, headers: headers)
    }

    /// `name ":" OWS value OWS`. Whitespace before the colon and folded lines are rejected
    /// (RFC 9112 §5.1, §5.2).
    static func parseField(_ line: Slice<UnsafeRawBufferPointer>) throws(HTTPParseError) -> (name: String, value: String) {
        guard let colon = line.firstIndex(of: ASCII.colon), colon > line.startIndex else { throw .badHeader }
        let name = line[line.startIndex..<colon]
        for byte in name where !ASCII.isTokenCharacter(byte) { throw .badHeader }
        let value = ASCII.trimmingWhitespace(line[(colon + 1)...])
        for byte in value where !ASCII.isFieldValueCharacter(byte) { throw .badHeader }
        return (String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self))
    }

    /// Yields lines without their terminator.
    struct LineIterator {
        let bytes: UnsafeRawBufferPointer
        var position: Int

        init(bytes: UnsafeRawBufferPointer) {
            self.bytes = bytes
            self.position = bytes.startIndex
        }

        mutating func next() throws(HTTPParseError) -> Slice<UnsafeRawBufferPointer>? {
            guard position < bytes.endIndex else { return nil }
            guard let lf = bytes[position...].firstIndex(of: ASCII.lf) else { throw .badHeader }
            var end = lf
            if end > position, bytes[end - 1] == ASCII.cr { end -= 1 }
            let line = bytes[position..<end]
            if line.contains(ASCII.cr) { throw .badHeader }
            position = lf + 1
            return line
        }
    }

    /// Splits a start line at single spaces into at most `maxParts` parts (the last part keeps
    /// its spaces, which a reason phrase needs).
    static func splitAtSpaces(_ line: Slice<UnsafeRawBufferPointer>, maxParts: Int) -> [Slice<UnsafeRawBufferPointer>] {
        var parts: [Slice<UnsafeRawBufferPointer>] = []
        var start = line.startIndex
        var index = line.startIndex
        while index < line.endIndex, parts.count < maxParts - 1 {
            if line[index] == ASCII.space {
                parts.append(line[start..<index])
                start = index + 1
            }
            index += 1
        }
        parts.append(line[start..<line.endIndex])
        return parts
    }
}
