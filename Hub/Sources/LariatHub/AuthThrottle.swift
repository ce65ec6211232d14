import Synchronization

/// Throttles failed authentication per source address with a token bucket: each failure takes
/// a token, a source with none left is refused before its credentials are looked at, and told
/// when to come back. Failures are also counted for one aggregated log line per source and
/// period (`takeReport`), not one line per attempt. Safe from any thread; time is passed in
/// (nanoseconds, monotonic) so the policy is testable.
final class AuthThrottle: Sendable {
    struct Bucket {
        var tokens: Double
        var updatedAt: UInt64
        var failures = 0
        var refusals = 0
        var lastReason = ""
    }

    /// One source's failures since the previous report.
    struct ReportLine: Equatable {
        var source: String
        var failures: Int
        var refusals: Int
        var lastReason: String
    }

    let burst: Double
    let refillPerSecond: Double
    /// Sources tracked at once; past this, the fullest buckets are forgotten first (an attacker
    /// with many addresses cannot grow this without end).
    let maxTrackedSources: Int
    private let buckets = Mutex<[String: Bucket]>([:])

    init(burst: Int, refillPerSecond: Double, maxTrackedSources: Int = 65_536) {
        self.burst = Double(max(1, burst))
        self.refillPerSecond = max(0.001, refillPerSecond)
        self.maxTrackedSources = maxTrackedSources
    }

    /// Nil if `source` may try to authenticate now; otherwise the seconds until it may.
    func retryAfter(source: String, now: UInt64) -> Int? {
        buckets.withLock { map in
            guard var b = map[source] else { return nil }
            refill(&b, now: now)
            defer { map[source] = b }
            guard b.tokens < 1 else { return nil }
            b.refusals += 1
            return secondsUntilToken(b)
        }
    }

    /// Records a failed authentication from `source`. Returns true for the first failure of a
    /// reporting period (worth a log line of its own; the rest go into the periodic report).
    @discardableResult
    func recordFailure(source: String, reason: String, now: UInt64) -> Bool {
        buckets.withLock { map in
            if map[source] == nil && map.count >= maxTrackedSources { evictFullest(&map, now: now) }
            var b = map[source] ?? Bucket(tokens: burst, updatedAt: now)
            refill(&b, now: now)
            b.tokens = max(0, b.tokens - 1)
            b.failures += 1
            b.lastReason = reason
            map[source] = b
            return b.failures == 1
        }
    }

    /// The failures and refusals since the last call, per source; forgets sources whose bucket
    /// is full again and that had nothing to report.
    func takeReport(now: UInt64) -> [ReportLine] {
        buckets.withLock { map in
            var lines: [ReportLine] = []
            for (source, var b) in map {
                refill(&b, now: now)
                if b.failures > 0 || b.refusals > 0 {
                    lines.append(ReportLine(source: source, failures: b.failures, refusals: b.refusals, lastReason: b.lastReason))
                }
                b.failures = 0
                b.refusals = 0
                if b.tokens >= burst { map[source] = nil } else { map[source] = b }
            }
            return lines.sorted { $0.source < $1.source }
        }
    }

    var trackedSources: Int { buckets.withLock { $0.count } }

    private func refill(_ b: inout Bucket, now: UInt64) {
        guard now > b.updatedAt else { return }
        let seconds = Double(now - b.updatedAt) / 1e9
        b.tokens = min(burst, b.tokens + seconds * refillPerSecond)
        b.updatedAt = now
    }

    private func secondsUntilToken(_ b: Bucket) -> Int {
        Int(((1 - b.tokens) / refillPerSecond).rounded(.up)).clamped(1, 3600)
    }

    private func evictFullest(_ map: inout [String: Bucket], now: UInt64) {
        guard let (source, _) = map.max(by: { $0.value.tokens < $1.value.tokens }) else { return }
        map[source] = nil
    }
}

extension Int {
    fileprivate func clamped(_ lo: Int, _ hi: Int) -> Int { Swift.min(Swift.max(self, lo), hi) }
}
