import CLZ4

/// LZ4 block compression for DATA payloads, with a per-stream back-off: a stream whose frames
/// keep not shrinking stops trying for a growing number of frames, so incompressible traffic
/// (TLS inside the tunnel, images, already-compressed logs) pays almost nothing.
enum LZ4Codec {
    /// Frames smaller than this are sent raw: the saving cannot pay for the work.
    static let minimumInput = 512

    /// Compresses `src` into `dst` only if the result saves at least 1/16 of the input.
    /// Returns the compressed length, or 0 when the frame should go raw.
    @inline(__always)
    static func compress(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawPointer) -> Int {
        let limit = src.count - src.count / 16
        let n = LZ4_compress_default(src.baseAddress!.assumingMemoryBound(to: CChar.self),
                                     dst.assumingMemoryBound(to: CChar.self),
                                     Int32(src.count), Int32(limit))
        return Int(n)
    }

    /// Decompresses exactly `decodedLength` bytes; nil if the block is corrupt or of another size.
    @inline(__always)
    static func decompress(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawPointer, decodedLength: Int) -> Bool {
        guard let base = src.baseAddress else { return false }
        let n = LZ4_decompress_safe(base.assumingMemoryBound(to: CChar.self),
                                    dst.assumingMemoryBound(to: CChar.self),
                                    Int32(src.count), Int32(decodedLength))
        return Int(n) == decodedLength
    }
}

/// The back-off state kept per stream.
struct CompressionBackoff {
    private var skip: Int32 = 0
    private var misses: Int32 = 0

    /// True when this frame should be tried.
    @inline(__always)
    mutating func shouldTry() -> Bool {
        if skip > 0 { skip -= 1; return false }
        return true
    }

    @inline(__always)
    mutating func record(shrank: Bool) {
        if shrank { misses = 0; return }
        misses += 1
        // Two misses in a row: skip 16 frames, doubling to 1024 while misses continue.
        if misses >= 2 { skip = Int32(min(16 << min(Int(misses) - 2, 6), 1024)) }
    }
}
