/// How well an agent's tunnel is doing, sampled on its worker loop every `AgentHealth.Settings.
/// tickMilliseconds` and scored 0…100. The score decides where new requests go: the cluster
/// agent while it scores at least `healthyScore`, otherwise the best node agent (streams in
/// flight stay where they are). What counts, strongest first:
/// - a PING unanswered for `stuckAfterMilliseconds`: the agent is stopped, starved or cut off
///   (SIGSTOP, a frozen node, a broken path) → 0 at once;
/// - OPENs that timed out (the agent took the stream and never answered) and dial failures
///   (the agent could not reach its target) in the last minute;
/// - round trip above `slowRTTMicros`, and a standing queue (round trip far above the minimum);
/// - load: open streams and bytes waiting to reach the agent;
/// - a session younger than `unprovenSeconds` (it has not shown it stays up).
public struct AgentHealth: Sendable, Equatable {
    public struct Settings: Sendable, Equatable {
        /// How often each worker samples its tunnels.
        public var tickMilliseconds: UInt64 = 250
        /// A tunnel silent this long is probed with a PING (idle tunnels cost one PING per period).
        public var probeAfterSilenceMilliseconds: UInt64 = 1000
        /// A PING unanswered this long makes the agent unhealthy (score 0).
        public var stuckAfterMilliseconds: UInt64 = 1000
        /// Scores at or above this count as healthy.
        public var healthyScore = 50
        public var slowRTTMicros = 50_000
        public var unprovenSeconds = 5
        /// Failures older than this are forgotten.
        public var failureWindowSeconds = 60
        public init() {}
    }

    public var rttMicros = 0
    public var minRTTMicros = 0
    /// Since the last frame from the agent.
    public var silenceMillis = 0
    /// Since a PING went out that is not answered yet (0: none outstanding).
    public var unansweredPingMillis = 0
    public var openStreams = 0
    /// Bytes written toward the agent and not yet sent.
    public var bytesInFlight = 0
    public var sessionAgeSeconds = 0
    public var recentDialFailures = 0
    public var recentOpenTimeouts = 0
    public var score = 100

    public init() {}

    /// Fills in `score` from the other fields.
    public mutating func rescore(_ s: Settings) {
        score = Self.score(self, s)
    }

    static func score(_ h: AgentHealth, _ s: Settings) -> Int {
        if h.unansweredPingMillis >= Int(s.stuckAfterMilliseconds) { return 0 }
        var score = 100
        // Half-way to stuck is a warning, not a verdict: on a loaded machine a PING can wait that
        // long, and a busy but working agent must keep its traffic.
        if h.unansweredPingMillis >= Int(s.stuckAfterMilliseconds) / 2 { score -= 25 }
        score -= min(60, 30 * h.recentOpenTimeouts)
        score -= min(40, 10 * h.recentDialFailures)
        if h.rttMicros > s.slowRTTMicros { score -= min(20, (h.rttMicros - s.slowRTTMicros) / 10_000 + 5) }
        if h.minRTTMicros > 0, h.rttMicros > 4 * h.minRTTMicros + 2000 { score -= 10 }
        score -= min(10, h.openStreams / 200)
        if h.bytesInFlight > 8 << 20 { score -= 10 }
        if h.sessionAgeSeconds < s.unprovenSeconds { score -= 5 }
        return max(0, min(100, score))
    }
}
