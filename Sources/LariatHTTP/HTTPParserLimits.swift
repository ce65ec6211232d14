/// Bounds on what a parser will buffer, so a peer cannot make it hold unbounded memory.
/// Bodies are never buffered (they are handed out as they arrive), so only the head and
/// chunked trailers need limits.
public struct HTTPParserLimits: Sendable, Equatable {
    /// Maximum bytes of start line + header fields + terminating blank line.
    public var maxHeadSize: Int
    /// Maximum number of header fields in one head.
    public var maxHeaderCount: Int

    public init(maxHeadSize: Int = 32 * 1024, maxHeaderCount: Int = 100) {
        self.maxHeadSize = maxHeadSize
        self.maxHeaderCount = maxHeaderCount
    }
}
