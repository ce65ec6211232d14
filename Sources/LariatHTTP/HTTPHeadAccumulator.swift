/// Collects the bytes of one message head (start line + fields + blank line) across
/// arbitrary input chunks.
///
/// It stops exactly after the blank line, so whatever follows (body, the next pipelined
/// request, or upgraded-protocol bytes) stays in the caller's buffer and is never copied.
struct HTTPHeadAccumulator {
    private(set) var bytes: [UInt8] = []
    /// Visible bytes on the current line; a line feed that ends an empty line ends the head.
    private var currentLineLength = 0
    /// Blank lines skipped before the start line (RFC 9112 §2.2 robustness), counted against the limit.
    private var skippedLeadingBytes = 0
    let maxSize: Int

    init(maxSize: Int) {
        self.maxSize = maxSize
    }

    /// Whether any part of a head has been seen (to tell a clean close from a truncated head).
    var hasPartialHead: Bool { !bytes.isEmpty }

    mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
        currentLineLength = 0
        skippedLeadingBytes = 0
    }

    /// Consumes input up to and including the end of the head. Returns true once the head is
    /// complete (the input is then advanced past it); false when all input was taken and more
    /// is needed.
    mutating func consume(_ input: inout UnsafeRawBufferPointer) throws(HTTPParseError) -> Bool {
        var index = 0
        // Leading CR/LF before a start line are leftovers of a previous message; skip them.
        if bytes.isEmpty {
            while index < input.count, input[index] == ASCII.cr || input[index] == ASCII.lf {
                index += 1
            }
            skippedLeadingBytes += index
            if skippedLeadingBytes > maxSize { throw .headTooLarge(limit: maxSize) }
        }
        let start = index
        // Never scan past what the limit allows, so a huge chunk is rejected without a full scan.
        let scanEnd = min(input.count, start + (maxSize - bytes.count) + 1)
        var complete = false
        while index < scanEnd {
            let byte = input[index]
            index += 1
            if byte == ASCII.lf {
                if currentLineLength == 0 { complete = true; break }
                currentLineLength = 0
            } else if byte != ASCII.cr {
                currentLineLength += 1
            }
        }
        if bytes.count + (index - start) > maxSize { throw .headTooLarge(limit: maxSize) }
        bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[start..<index]))
        input = input.droppingFirst(index)
        return complete
    }
}
