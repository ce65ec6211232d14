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
    /// Streams never shrink below this under memory pressure.
    public var minStreamWindow = 64 * 1024
    /// Session-wide receive window: the hard cap on bytes received and not yet consumed.
    public var sessionWindow = 32 * 1024 * 1024
    /// Bytes of application data a stream may hold unsent. Twice the runtime's socket read
    /// (256 KiB): a bridge resumes reading at half-full, so a whole read then always fits.
    public var sendBufferSize = 512 * 1024
    /// Concurrent streams (both directions).
    public var maxStreams = 16384
    /// Peer OPENs not yet accepted or refused by the application.
    public var maxPendingOpens = 256
    /// Try LZ4 on DATA when the peer supports it.
    public var compression = true
    /// Send PING when nothing was received for this long.
    public var pingIntervalNanos: UInt64 = 10_000_000_000
    /// Declare the peer dead when nothing was received for this long.
    public var idleTimeoutNanos: UInt64 = 30_000_000_000
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
    case closed
}
