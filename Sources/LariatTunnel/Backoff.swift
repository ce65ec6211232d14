/// Exponential back-off with full jitter (AWS architecture blog, "Exponential Backoff And
/// Jitter"): the n-th retry waits a uniformly random time in [0, min(cap, base·2ⁿ)], so a
/// fleet of agents that lost their hub at once does not come back in lock-step.
public struct Backoff: Sendable {
    public var baseMillis: UInt64
    public var capMillis: UInt64
    public private(set) var attempt = 0
    private var rng: SystemRandomNumberGenerator

    public init(baseMillis: UInt64 = 500, capMillis: UInt64 = 30_000) {
        self.baseMillis = baseMillis
        self.capMillis = capMillis
        rng = SystemRandomNumberGenerator()
    }

    /// The delay before the next attempt; grows the ceiling.
    public mutating func next() -> UInt64 {
        let shift = min(attempt, 20)
        let ceiling = min(capMillis, baseMillis << UInt64(shift))
        attempt += 1
        return UInt64.random(in: 0...ceiling, using: &rng)
    }

    /// After a connection that worked, start again from the base.
    public mutating func reset() { attempt = 0 }
}
