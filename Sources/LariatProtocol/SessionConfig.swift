/// Which end of the tunnel a session is. The agent dials out and is the client; the hub is the
/// server. Clients open odd stream ids, servers even ones, so ids never collide.
public enum SessionRole: Sendable {
    case client(Hello)
    case server
}

/// Local limits and tunables of one session. Defaults suit a hub carrying hundreds of agents.
public struct SessionConfig: Sendable {
    /// The largest frame payload we accept (announced in the handshake).
    public var maxFramePayload = 64 * 1024
    /// The largest DATA payload we send: small, so an interactive frame waits at most one bulk frame.
    public var dataFrameSize = 16 * 1024
    /// The receive window each new stream starts with.
    public var initialStreamWindow = 128 * 1024
    /// Auto-tuning grows a busy stream's window up to this.
    public var maxStreamWindow = 16 * 1024 * 1024
    /// A session counts as contended (window auto-tuning protects other streams from a busy
    /// one's queue) for this long after DATA last arrived for two streams in turn.
    public var contentionMemoryNanos: UInt64 = 100_000_000
    /// Streams never shrink below this under memory pressure.
    public var minStreamWindow = 64 * 1024
    /// Session-wide receive window: the hard cap on bytes received and not yet consumed.
    public var sessionWindow = 32 * 1024 * 1024
    /// Bytes of application data a stream may hold unsent. Twice the runtime's socket read
    /// (256 KiB): a bridge resumes reading at half-full, so a whole read then always fits.
    public var sendBufferSize = 512 * 1024
    /// Concurrent streams (both directions).
    public var maxStreams = 16384
    /// Peer OPENs not yet accepted or refused by the application. Not announced, so it must
    /// stay at or above `ProtocolLimits.guaranteedPendingOpens` (PROTOCOL.md §5.3).
    public var maxPendingOpens = ProtocolLimits.guaranteedPendingOpens
    /// Our OPENs that may await the peer's answer at once. The peer's `maxPendingOpens` is not
    /// announced; PROTOCOL.md §5.3 guarantees 256, so more would be refused under a burst.
    /// Further opens are queued (`maxQueuedOpens`) and sent as answers arrive.
    public var maxOutstandingOpens = ProtocolLimits.guaranteedPendingOpens
    /// Opens held back behind `maxOutstandingOpens`, per session (per tunnel). Beyond it `open`
    /// throws `openQueueFull`. Each holds a stream record and, if its client wrote, a send
    /// buffer: 2048 covers a burst of a few thousand connections without unbounded memory.
    public var maxQueuedOpens = 2048
    /// A queued open that has not been sent within this fails with `TIMEOUT` (the OPEN
    /// deadline, `openTimeoutNanos`, counts separately once it is sent).
    public var openQueueTimeoutNanos: UInt64 = 30_000_000_000
    /// This end's program and version; a server announces it in WELCOME (tag 13).
    public var software = ""
    /// Try LZ4 on DATA when the peer supports it.
    public var compression = true
    /// OPEN targets whose streams never send LZ4 DATA, whichever end opened them (PROTOCOL.md
    /// §8, CRIME/BREACH): Kubernetes API traffic puts Secrets and attacker-chosen bytes in one
    /// frame, where a compressed length would leak the secret. Local rule; receivers accept both.
    public var uncompressedTargets: Set<String> = ["k8s-proxy"]
    /// Send PING when nothing was received for this long.
    public var pingIntervalNanos: UInt64 = 10_000_000_000
    /// With no work pending, declare the peer dead when nothing was received for this long.
    /// Long on purpose: an idle session and its idle streams survive a partition of this
    /// length (TCP retransmits our keepalive PING meanwhile). A dead peer that has work
    /// waiting is detected much sooner, by `livenessTimeoutNanos`.
    public var idleTimeoutNanos: UInt64 = 120_000_000_000
    /// With work pending — one of our OPENs unanswered, or DATA sent and nothing heard since —
    /// a PING goes out at once, and the peer is declared dead (GOAWAY `TIMEOUT`) when that
    /// PING stays unanswered and nothing at all was received for this long. A live peer answers
    /// PING ahead of its data (PROTOCOL.md §7), so only a peer that is stopped, cut off or not
    /// reading misses it; this is what turns a stopped agent into fast failures, not a black hole.
    public var livenessTimeoutNanos: UInt64 = 5_000_000_000
    /// A stream we opened fails with `TIMEOUT` (and RESET goes to the peer) when neither
    /// OPEN_OK nor OPEN_FAIL arrived within this. Longer than the agent's own dial timeout
    /// (10 s), so a slow target is reported by the agent as `TARGET_TIMEOUT`; this deadline
    /// catches a peer that answers PINGs but never the OPEN.
    public var openTimeoutNanos: UInt64 = 15_000_000_000
    /// Replies the peer forced us to queue (PONG for PING, OPEN_FAIL for OPEN, RESET for a bad
    /// stream frame) that the transport has not taken yet. A peer that keeps sending such
    /// frames without reading our output ends the session with `MEMORY_LIMIT`. One 64 KiB read
    /// holds at most 3855 PINGs, so a peer that reads its PONGs never comes near.
    public var maxQueuedControlFrames = 4096
    /// The handshake must complete within this.
    public var handshakeTimeoutNanos: UInt64 = 10_000_000_000

    public init() {}
}

/// A server's answer to a HELLO.
public enum HandshakeDecision: Sendable {
    case accept(sessionID: String)
    case refuse(ErrorCode, reason: String)
}

/// Why a session ended.
public enum SessionEnd: Equatable, Sendable, CustomStringConvertible {
    /// We detected a violation (and sent GOAWAY with its code).
    case localError(ProtocolViolation)
    /// The peer sent an error GOAWAY.
    case remoteError(ErrorCode, String)
    /// The transport went away under us.
    case transportClosed(String)
    /// Both sides drained after GOAWAY, or close() was called.
    case closed

    public var description: String {
        switch self {
        case .localError(let v): "protocol error: \(v)"
        case .remoteError(let code, let reason): "peer closed the session: \(code.name): \(reason)"
        case .transportClosed(let why): "connection lost: \(why)"
        case .closed: "closed"
        }
    }
}

public enum SessionError: Error, Equatable, Sendable {
    case notEstablished
    case goingAway
    case tooManyStreams
    case streamIDsExhausted
    /// `maxQueuedOpens` opens already wait behind `maxOutstandingOpens` unanswered OPENs.
    case openQueueFull(limit: Int)
    case closed
}
