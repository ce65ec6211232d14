// libFuzzer target for HTTPBodyDecoder: chunked transfer coding (RFC 9112 §7.1) and
// Content-Length bodies. Built by fuzz/run.sh with Sources/LariatHTTP/*.swift and FuzzSupport.swift.
//
// Input: byte 0 = mode and cut seed. Bit 7 set: a tight metadata limit (64 bytes of extensions
// and trailers) instead of 32 KiB. Bits 5-6: 0-1 decode the rest as a chunked body,
// 2 encode the rest as a chunked body (chunk sizes, extensions and a trailer chosen by the
// seed) and decode it, 3 decode the rest as a Content-Length body whose length is byte 1.
// Invariants:
//   1. the decoder never hands out more bytes than it was given, only slices of its input,
//      and never an empty piece;
//   2. bytes, completion point (how much input was left after the body) and error are the same
//      whether the input arrives whole or in pieces;
//   3. a decoded chunked body, encoded again, decodes to the same bytes and ends exactly at
//      the end of the encoding; arbitrary bytes encoded as chunks decode to themselves;
//   4. a Content-Length body is exactly min(length, input) bytes and completes iff the input
//      holds the whole length.

struct Decoded: Equatable {
    var body: [UInt8] = []
    /// Input bytes left over after `.complete` (nil: not complete).
    var leftover: Int?
    var error: HTTPParseError?
}

func decode(_ framing: HTTPBodyFraming, metadata: Int, _ input: UnsafeRawBufferPointer, cuts: [Int]) -> Decoded {
    var decoder = HTTPBodyDecoder(framing: framing, maxMetadataBytes: metadata)
    var result = Decoded()
    let parts = pieces(input, cuts: cuts)
    for (index, chunk) in parts.enumerated() {
        var rest = chunk
        var steps = 0
        loop: while true {
            steps += 1
            if steps > 2 * chunk.count + 8 { violated("progress", "\(steps) steps for \(chunk.count) bytes") }
            let step: HTTPBodyDecoder.Step
            do throws(HTTPParseError) {
                step = try decoder.next(from: &rest)
            } catch {
                result.error = error
                return result
            }
            switch step {
            case .bytes(let bytes):
                guard lies(bytes, within: chunk) else { violated("slice-of-input", "a body piece outside the input") }
                guard !bytes.isEmpty else { violated("no-empty-piece", "an empty body piece") }
                result.body.append(contentsOf: bytes)
            case .needMoreInput:
                guard rest.isEmpty else { violated("need-more-means-consumed", "needMoreInput with \(rest.count) bytes left") }
                break loop
            case .complete:
                result.leftover = rest.count + parts[(index + 1)...].reduce(0) { $0 + $1.count }
                return result
            }
        }
    }
    return result
}

/// `body` as chunks whose sizes come from `seed`; odd seeds add chunk extensions and a trailer.
func encodeChunked(_ body: [UInt8], seed: UInt8) -> [UInt8] {
    var out: [UInt8] = []
    var at = 0
    var size = Int(seed % 13) + 1
    let decorated = seed & 1 == 1
    func hexSize(_ n: Int) -> [UInt8] { Array(String(n, radix: 16, uppercase: seed & 2 == 2).utf8) }
    while at < body.count {
        let n = min(size, body.count - at)
        out += hexSize(n)
        if decorated { out += Array(" ;ext=\"v\"".utf8) }
        out += [13, 10]
        out += body[at..<(at + n)]
        out += [13, 10]
        at += n
        size = (size * 5 + 7) % 4099 + 1
    }
    out += Array("0".utf8)
    if decorated { out += Array(";last".utf8) }
    out += [13, 10]
    if decorated { out += Array("X-Trailer: 1\r\n".utf8) }
    out += [13, 10]
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func lariatFuzzChunked(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let selector = data[0]
    let metadata = selector & 0x80 != 0 ? 64 : 32 * 1024
    let mode = (selector >> 5) & 3
    let input = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    let cuts = cutPoints(count: input.count, seed: selector)

    switch mode {
    case 3:
        guard let length = input.first else { return 0 }
        let bodyInput = UnsafeRawBufferPointer(rebasing: input[1...])
        let whole = decode(.contentLength(UInt64(length)), metadata: metadata, bodyInput, cuts: [])
        let split = decode(.contentLength(UInt64(length)), metadata: metadata, bodyInput, cuts: cutPoints(count: bodyInput.count, seed: selector))
        guard whole == split else { violated("split-equals-whole", "content-length \(length): \(whole) vs \(split)") }
        let expected = min(Int(length), bodyInput.count)
        guard whole.body == Array(bodyInput.prefix(expected)), whole.error == nil,
              (whole.leftover != nil) == (bodyInput.count >= Int(length)) || length == 0 else {
            violated("content-length", "length \(length), input \(bodyInput.count): \(whole)")
        }
    case 2:
        let body = Array(input)
        let encoded = encodeChunked(body, seed: selector)
        let decoded = encoded.withUnsafeBytes { decode(.chunked, metadata: 32 * 1024, $0, cuts: cutPoints(count: $0.count, seed: selector)) }
        guard decoded == Decoded(body: body, leftover: 0, error: nil) else {
            violated("encode-decode", "\(body.count) bytes encoded as \(hex(encoded.prefix(200))): \(decoded)")
        }
    default:
        let whole = decode(.chunked, metadata: metadata, input, cuts: [])
        let split = decode(.chunked, metadata: metadata, input, cuts: cuts)
        guard whole == split else { violated("split-equals-whole", "\nwhole: \(whole)\nsplit: \(split)") }
        guard whole.body.count <= input.count else { violated("no-more-than-given", "\(whole.body.count) of \(input.count)") }
        if whole.leftover != nil {
            let again = encodeChunked(whole.body, seed: selector)
            let decoded = again.withUnsafeBytes { decode(.chunked, metadata: 32 * 1024, $0, cuts: []) }
            guard decoded == Decoded(body: whole.body, leftover: 0, error: nil) else {
                violated("decode-encode-decode", "\(whole.body.count) bytes: \(decoded)")
            }
        }
    }
    return 0
}
