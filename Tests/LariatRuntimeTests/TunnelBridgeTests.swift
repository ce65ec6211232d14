import Testing
import LariatProtocol
@testable import LariatRuntime
import LariatTunnel

/// One end of an in-process tunnel: accepts any HELLO, and (agent side) bridges every stream
/// the peer opens to `dial`.
private final class TunnelEnd: TunnelConnectionDelegate {
    var tunnel: TunnelConnection?
    var onEstablished: () -> Void = {}
    var dial: (TunnelConnection, UInt32) -> Void = { t, id in t.refuse(id, code: .refused, message: "no dialer") }
    private(set) var ended: SessionEnd?

    func tunnel(_ tunnel: TunnelConnection, authenticate hello: Hello) -> HandshakeDecision {
        .accept(sessionID: "test/\(hello.agentID)")
    }
    func tunnelEstablished(_ tunnel: TunnelConnection) { onEstablished() }
    func tunnel(_ tunnel: TunnelConnection, openRequested stream: UInt32, target: String, streamClass: StreamClass) {
        dial(tunnel, stream)
    }
    func tunnelEnded(_ tunnel: TunnelConnection, _ end: SessionEnd) { ended = end }
}

@Suite struct TunnelBridgeTests {
    /// A socket read can be larger than the stream's free send space (here the send buffer is
    /// 8 KiB and reads are up to 64 KiB): the bridge keeps what the session could not take and
    /// pauses reading, so every byte arrives, in order, with the FIN after the last one.
    @Test func readsLargerThanTheSendBufferLoseNothing() throws {
        let total = (1 << 20) + 123
        var config = SessionConfig()
        config.sendBufferSize = 8 * 1024
        let harness = LoopHarness()
        let client = BulkClient(sendTotal: total, expectReceive: total)
        let hub = TunnelEnd(), agent = TunnelEnd()
        try harness.run {
            let loop = harness.loop
            let echo = try harness.listen(.plain) { EchoServer() }
            agent.dial = { tunnel, id in
                TCPConnection.connect(loop: loop, host: "127.0.0.1", port: echo.port) { result in
                    guard case .success(let target) = result else { return tunnel.refuse(id, code: .refused, message: "dial") }
                    harness.track(target)
                    tunnel.acceptBridged(id, to: target)
                }
            }
            let tunnelListener = try TCPListener(loop: loop, port: 0) { tcp in
                harness.track(tcp)
                hub.tunnel = TunnelConnection(stream: tcp, role: .server, config: config, delegate: hub, label: "hub")
            }
            harness.onFinish { tunnelListener.close() }
            let users = try TCPListener(loop: loop, port: 0) { tcp in
                harness.track(tcp)
                _ = try? hub.tunnel?.openBridged(target: "echo", streamClass: .bulk, connection: tcp)
            }
            harness.onFinish { users.close() }
            hub.onEstablished = {
                harness.connect(.plain, port: users.port, handler: client) { client.pump($0) }
            }
            client.onDone = { harness.finish() }
            TCPConnection.connect(loop: loop, host: "127.0.0.1", port: tunnelListener.port) { result in
                guard case .success(let tcp) = result else { return harness.finish() }
                harness.track(tcp)
                var hello = Hello()
                hello.agentID = "bridge-test"
                agent.tunnel = TunnelConnection(stream: tcp, role: .client(hello), config: config,
                                                delegate: agent, label: "agent")
            }
        }
        #expect(!harness.timedOut)
        #expect(client.error == nil, "\(String(describing: client.error))")
        #expect(client.received == total)
        #expect(!client.corrupt)
        #expect(client.gotEOF)
    }
}
