// Helpers shared by the parser harnesses (FuzzHTTPRequest, FuzzHTTPResponse, FuzzChunked,
// FuzzWebSocket, FuzzHandshake, FuzzProxy, FuzzTarget). fuzz/run.sh compiles this file into each
// of them; the older FuzzDecoder/FuzzSession targets keep their own helpers.

/// Stops the run with a message naming the broken invariant (libFuzzer saves the input).
func violated(_ invariant: String, _ message: @autoclosure () -> String) -> Never {
    fatalError("invariant \(invariant) violated: \(message())")
}

/// Cut points for feeding `count` bytes in pieces: a deterministic spread of small and larger
/// pieces chosen by `seed` (the same recipe as FuzzDecoder.swift). Ends with `count`.
func cutPoints(count: Int, seed: UInt8) -> [Int] {
    var cuts: [Int] = []
    var step = Int(seed % 64) + 1
    var at = 0
    while at < count {
        at += step
        cuts.append(min(at, count))
        step = (step * 7 + 3) % 97 + 1
    }
    return cuts
}

/// The pieces of `input` between consecutive cut points (the whole input when `cuts` is empty).
func pieces(_ input: UnsafeRawBufferPointer, cuts: [Int]) -> [UnsafeRawBufferPointer] {
    var out: [UnsafeRawBufferPointer] = []
    var start = 0
    for end in (cuts.isEmpty ? [input.count] : cuts) where end > start {
        out.append(UnsafeRawBufferPointer(rebasing: input[start..<end]))
        start = end
    }
    return out
}

/// Whether `inner` lies inside `outer` (a parser may only hand out slices of what it was given).
func lies(_ inner: UnsafeRawBufferPointer, within outer: UnsafeRawBufferPointer) -> Bool {
    if inner.isEmpty { return true }
    guard let i = inner.baseAddress, let o = outer.baseAddress else { return false }
    return i >= o && i + inner.count <= o + outer.count
}

func hex<S: Sequence<UInt8>>(_ bytes: S) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
    return String(decoding: out, as: UTF8.self)
}
