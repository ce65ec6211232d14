import LariatProtocol
import LariatRuntime
import LariatTunnel

/// A whole tunnel in one process with no sockets: a hub-role and an agent-role
/// `TunnelConnection`, each over TLS over one end of a `MemoryByteStream` pair, on one loop.
/// Streams opened with `openStream` are bridged on the hub to a user connection and on the
/// agent to a target connection, both memory pairs whose far ends the caller drives. So the
/// whole data path — bridge, session, WebSocket, TLS, and back — runs deterministically on one
/// thread. Used by the runtime tests and the allocation gate (`lariat-allocgate`); no
/// production target depends on this module.
///
/// Set up before the loop runs (or on its thread); the rig must outlive the loop's run (the
/// tunnels hold it as their delegate).
public final class MemoryTunnel: TunnelConnectionDelegate {
    public struct Options {
        /// The tunnel's own connection (hub ↔ agent).
        public var transport = MemoryByteStream.Configuration()
        /// Each stream's user connection (hub side) and target connection (agent side).
        public var connections = MemoryByteStream.Configuration()
        public var hubSession = SessionConfig()
        public var agentSession = SessionConfig()
        /// The sessions' clock (nanoseconds); nil is the loop's monotonic clock.
        public var clock: (() -> UInt64)?

        public init() {}
    }

    /// A stream's two connections as the caller sees them: the far ends of the memory pairs.
    public struct Stream {
        public let id: UInt32
        /// The user's end (what a client of the hub would hold).
        public let user: MemoryByteStream
        /// The hub's end of the user connection, bridged into the tunnel.
        public let hubSide: MemoryByteStream
    }

    public let loop: UVLoop
    public let options: Options
    /// The tunnel's connection: the hub's end and the agent's end, below TLS.
    public let hubTransport: MemoryByteStream
    public let agentTransport: MemoryByteStream
    public let hubTLS: TLSConnection
    public let agentTLS: TLSConnection
    public private(set) var hub: TunnelConnection!
    public private(set) var agent: TunnelConnection!
    public private(set) var hubEnded: SessionEnd?
    public private(set) var agentEnded: SessionEnd?
    /// Once both sessions are established.
    public var onEstablished: () -> Void = {}
    /// Agent side: each accepted stream's target connection as the target sees it (the far end
    /// of its memory pair), before it is started. Start it with the target's handler.
    public var onTarget: (UInt32, MemoryByteStream) -> Void = { _, far in far.close() }
    /// Agent side: the agent's end of each target connection, by stream id.
    public private(set) var agentSides: [UInt32: MemoryByteStream] = [:]

    private var established = 0

    public init(loop: UVLoop, options: Options = Options()) throws(TLSError) {
        self.loop = loop
        self.options = options
        (hubTransport, agentTransport) = MemoryByteStream.pair(loop: loop, configuration: options.transport)
        let contexts = try Self.contexts.get()
        hubTLS = try TLSConnection(transport: hubTransport, context: contexts.server)
        agentTLS = try TLSConnection(transport: agentTransport, context: contexts.client, serverName: Self.serverName)
        hub = TunnelConnection(stream: hubTLS, role: .server, config: options.hubSession, delegate: self,
                               label: "hub", clock: options.clock)
        var hello = Hello()
        hello.agentID = "memory-agent"
        agent = TunnelConnection(stream: agentTLS, role: .client(hello), config: options.agentSession, delegate: self,
                                 label: "agent", clock: options.clock)
    }

    /// Opens a stream from the hub to the agent, bridged at both ends. The user end is returned
    /// unstarted; the target end reaches `onTarget` once the agent accepts.
    public func openStream(target: String = "memory:0", streamClass: StreamClass = .bulk) throws(SessionError) -> Stream {
        let (user, hubSide) = MemoryByteStream.pair(loop: loop, configuration: options.connections)
        let bridge = try hub.openBridged(target: target, streamClass: streamClass, connection: hubSide)
        return Stream(id: bridge.id, user: user, hubSide: hubSide)
    }

    /// Closes both tunnel connections at once (no GOAWAY), for tearing a test down.
    public func closeTransports() {
        hubTransport.close()
        agentTransport.close()
    }

    // MARK: TunnelConnectionDelegate

    public func tunnel(_ tunnel: TunnelConnection, authenticate hello: Hello) -> HandshakeDecision {
        .accept(sessionID: "memory/\(hello.agentID)")
    }

    public func tunnelEstablished(_ tunnel: TunnelConnection) {
        established += 1
        if established == 2 { onEstablished() }
    }

    public func tunnel(_ tunnel: TunnelConnection, openRequested stream: UInt32, target: String, streamClass: StreamClass) {
        let (agentSide, far) = MemoryByteStream.pair(loop: loop, configuration: options.connections)
        guard tunnel.acceptBridged(stream, to: agentSide) != nil else {
            agentSide.close()
            far.close()
            return
        }
        agentSides[stream] = agentSide
        onTarget(stream, far)
    }

    public func tunnelEnded(_ tunnel: TunnelConnection, _ end: SessionEnd) {
        if tunnel === hub { hubEnded = end } else { agentEnded = end }
    }

    // MARK: Certificates

    static let serverName = "hub.memory.test"

    private struct Contexts: Sendable {
        let server: TLSContext
        let client: TLSContext
    }

    /// One CA and serving certificate per process (generating keys is slow next to a test).
    private static let contexts: Result<Contexts, TLSError> = {
        do throws(TLSError) {
            let authority = try CertificateAuthority.generate(commonName: "Lariat Memory Test CA")
            let issued = try authority.issueServerCertificate(dnsNames: [serverName])
            return .success(Contexts(
                server: try TLSContext.server(certificatePEM: issued.certificatePEM, privateKeyPEM: issued.privateKeyPEM,
                                              chainPEM: authority.certificatePEM),
                client: try TLSContext.client(trustedCAPEM: authority.certificatePEM)))
        } catch {
            return .failure(error)
        }
    }()
}
