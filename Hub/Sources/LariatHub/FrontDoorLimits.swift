/// The hub's limits for connections that have not (yet) proven who they are: every client of
/// the HTTPS port passes these before it reaches an API route or becomes a tunnel. Each is a
/// `lariat-hub serve` option; the defaults suit a hub in front of hundreds of agents, some of
/// them behind one corporate NAT address.
public struct FrontDoorLimits: Sendable {
    /// A TLS handshake must complete within this (slow or silent clients hold a descriptor and
    /// ~40 KiB of TLS state each).
    public var tlsHandshakeTimeoutMilliseconds: UInt64 = 10_000
    /// A request head must arrive complete within this of its first byte (or of the handshake,
    /// for the first request): the slowloris bound.
    public var requestHeadTimeoutMilliseconds: UInt64 = 10_000
    /// A request body must keep at least this rate once its head is in: its deadline is the
    /// head timeout plus its length at this rate.
    public var minimumBodyBytesPerSecond = 4096
    /// A keep-alive connection with no request in flight is closed after this.
    public var keepAliveIdleTimeoutMilliseconds: UInt64 = 60_000
    /// Open HTTPS connections (tunnels included); beyond it new ones are closed at once.
    public var maxConnections = 20_000
    /// Open HTTPS connections from one source address; NAT puts whole fleets behind one
    /// address, so this is generous, and still stops one host from taking every descriptor.
    public var maxConnectionsPerSource = 2_000
    /// Replies a client has not read, beyond which the hub stops reading its requests until it
    /// reads (a pipelining client that never reads would otherwise queue replies without end).
    public var outputHighWater = 256 * 1024
    /// Failed authentications a source address may make in a burst before it is throttled.
    public var failedAuthenticationBurst = 20
    /// How fast a throttled source earns its attempts back (per second).
    public var failedAuthenticationRefillPerSecond = 1.0
    /// After an OPEN timed out on an agent, new streams prefer its cluster's other agents for this long.
    public var unhealthyAgentHoldMilliseconds: UInt64 = 30_000
    /// A second connection with a connected agent's id probes the first; if the first does not
    /// answer within this, it is replaced (a restarted agent whose old connection is half-open).
    public var duplicateAgentProbeMilliseconds: UInt64 = 3_000

    public init() {}
}
