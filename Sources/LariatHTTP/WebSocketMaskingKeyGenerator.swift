/// Produces the per-frame masking keys a client must send (RFC 6455 §5.3).
///
/// Calling the OpenSSL CSPRNG for every frame is too slow for the data path, so keys come from
/// xoshiro256** seeded once from `RAND_bytes`. The masking key only has to be unpredictable to
/// script running in a browser that could otherwise aim crafted bytes at intermediary caches;
/// a Lariat agent runs no such script, and a CSPRNG-seeded 256-bit state is plenty for that.
public struct WebSocketMaskingKeyGenerator: Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64
    /// Each 64-bit output gives two keys; the spare one is kept here.
    private var spare: UInt32?

    /// Seeded from OpenSSL's CSPRNG.
    public init() {
        let seed = OpenSSLPrimitives.randomBytes(32)
        func word(_ index: Int) -> UInt64 {
            (0..<8).reduce(0) { $0 << 8 | UInt64(seed[index * 8 + $1]) }
        }
        self.init(state: (word(0), word(1), word(2), word(3)))
    }

    /// Deterministic keys, for tests and reproducible benchmarks.
    public init(seed: UInt64) {
        // SplitMix64 expands the seed, as the xoshiro authors recommend.
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        self.init(state: (splitMix(), splitMix(), splitMix(), splitMix()))
    }

    private init(state: (UInt64, UInt64, UInt64, UInt64)) {
        (s0, s1, s2, s3) = state
        // The all-zero state is the one xoshiro cannot leave.
        if s0 | s1 | s2 | s3 == 0 { s0 = 0x9E37_79B9_7F4A_7C15 }
    }

    public mutating func next() -> WebSocketMaskingKey {
        if let key = spare {
            spare = nil
            return WebSocketMaskingKey(key)
        }
        let output = nextWord()
        spare = UInt32(truncatingIfNeeded: output)
        return WebSocketMaskingKey(UInt32(truncatingIfNeeded: output >> 32))
    }

    /// xoshiro256** (Blackman & Vigna).
    private mutating func nextWord() -> UInt64 {
        let result = rotateLeft(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = rotateLeft(s3, 45)
        return result
    }

    private func rotateLeft(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
}
