import ArgumentParser
import LariatHTTP
import LariatProtocol
import LariatRuntime
import LariatTunnel
#if canImport(Glibc)
import Glibc
#endif

/// Many idle agents in one process, for the hub's memory per connected agent: each one is a real
/// TLS connection, WebSocket upgrade and protocol session (what `lariat-agent` does, without the
/// CA-pin fetch: the CA comes from a file), so the hub's side of every tunnel is exactly what a
/// fleet of agents costs it.
struct Agents: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Connect --count idle agent sessions to a hub, print a ready line, hold them.")
    @Option(help: "The hub's HTTPS HOST:PORT.") var server: String
    @Option(help: "PEM file of the hub's CA.") var ca: String
    @Option(help: "Cluster registration token.") var token: String
    @Option(help: "Cluster name.") var cluster = "local"
    @Option(help: "Agents to connect.") var count = 1000
    @Option(help: "Handshakes in progress at once.") var concurrency = 32
    @Option(help: "Seconds to hold them once all are up.") var hold: Double = 60
    @Option(help: "Time limit for connecting.") var seconds: Double = 120
    @Flag(help: "JSON ready line.") var json = false

    func run() throws {
        raiseFileLimit()
        let (host, port) = try endpoint(server)
        guard let pem = readFile(ca) else { throw ValidationError("cannot read \(ca)") }
        let loop = UVLoop(name: "agents")
        let fleet = Fleet(loop: loop, host: host, port: port, context: try TLSContext.client(trustedCAPEM: pem),
                          token: token, cluster: cluster, count: count, concurrency: concurrency, json: json)
        let deadline = UVTimer(loop: loop)
        deadline.start(afterMilliseconds: UInt64(seconds * 1000)) { fleet.report(); loop.stop() }
        fleet.onAllUp = {
            fleet.report()
            deadline.start(afterMilliseconds: UInt64(hold * 1000)) { loop.stop() }
        }
        fleet.begin()
        loop.run()
    }
}

private func readFile(_ path: String) -> String? {
    guard let f = fopen(path, "r") else { return nil }
    defer { fclose(f) }
    var bytes: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = fread(&buf, 1, buf.count, f)
        if n <= 0 { break }
        bytes.append(contentsOf: buf[0..<n])
    }
    return String(decoding: bytes, as: UTF8.self)
}

final class Fleet: TunnelConnectionDelegate {
    let loop: UVLoop
    let host: String
    let port: Int
    let context: TLSContext
    let token: String
    let cluster: String
    let count: Int
    let concurrency: Int
    let json: Bool
    var onAllUp: (() -> Void)?
    private var started = 0
    private var inFlight = 0
    private(set) var established = 0
    private(set) var failed = 0
    private var tunnels: [TunnelConnection] = []
    private var upgrades: [Upgrade] = []
    private let t0: UInt64

    init(loop: UVLoop, host: String, port: Int, context: TLSContext, token: String, cluster: String,
         count: Int, concurrency: Int, json: Bool) {
        self.loop = loop; self.host = host; self.port = port; self.context = context
        self.token = token; self.cluster = cluster; self.count = count; self.concurrency = concurrency
        self.json = json
        t0 = loop.now
    }

    func begin() { fill() }

    private func fill() {
        while inFlight < concurrency, started < count {
            started += 1
            inFlight += 1
            let index = started
            TLSConnection.connect(loop: loop, host: host, port: port, context: context) { [unowned self] result in
                switch result {
                case .failure: self.settled(ok: false)
                case .success(let tls):
                    let u = Upgrade(fleet: self, index: index)
                    self.upgrades.append(u)
                    u.run(on: tls)
                }
            }
        }
    }

    fileprivate func upgraded(_ u: Upgrade, stream: any ByteStream, leftover: UnsafeRawBufferPointer) {
        upgrades.removeAll { $0 === u }
        var hello = Hello()
        hello.agentID = "bench-\(u.index)"
        hello.clusterID = cluster
        hello.token = token
        hello.software = "lariat-bench"
        tunnels.append(TunnelConnection(stream: stream, role: .client(hello), config: SessionConfig(), delegate: self,
                                        label: hello.agentID, leftover: leftover))
    }

    fileprivate func upgradeFailed(_ u: Upgrade) {
        upgrades.removeAll { $0 === u }
        settled(ok: false)
    }

    private func settled(ok: Bool) {
        inFlight -= 1
        if ok { established += 1 } else { failed += 1 }
        if established + failed == count { onAllUp?() } else { fill() }
    }

    func tunnelEstablished(_ tunnel: TunnelConnection) { settled(ok: true) }
    func tunnelEnded(_ tunnel: TunnelConnection, _ end: SessionEnd) {
        if tunnel.session.state == .handshaking || tunnel.session.welcome == nil { settled(ok: false) }
    }

    func report() {
        let secs = Double(loop.now - t0) / 1e9
        if json {
            out(#"{"agents":\#(count),"established":\#(established),"failed":\#(failed),"seconds":\#(secs)}"#)
        } else {
            out("agents: \(established) of \(count) established, \(failed) failed, in \(secs) s")
        }
    }
}

/// The WebSocket upgrade of one bench agent.
private final class Upgrade: ByteStreamHandler {
    unowned let fleet: Fleet
    let index: Int
    private var parser = HTTPResponseParser()
    private let key = WebSocketHandshake.makeClientKey()
    private var head: HTTPResponseHead?

    init(fleet: Fleet, index: Int) { self.fleet = fleet; self.index = index }

    func run(on stream: any ByteStream) {
        parser.expectResponse(toMethod: "GET")
        stream.start(handler: self)
        stream.write(WebSocketHandshake.makeClientRequest(target: "/v1/connect", host: "\(fleet.host):\(fleet.port)", key: key).serialized)
    }

    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        var input = bytes
        do {
            while let event = try parser.next(from: &input) {
                switch event {
                case .head(let h): head = h
                case .body, .end: break
                case .upgrade(let leftover):
                    guard let head, (try? WebSocketHandshake.validateServerResponse(head, clientKey: key)) != nil else {
                        stream.close(); fleet.upgradeFailed(self); return
                    }
                    fleet.upgraded(self, stream: stream, leftover: leftover)
                    return
                }
            }
        } catch {
            stream.close()
            fleet.upgradeFailed(self)
        }
    }
    func streamDidReadEOF(_ stream: any ByteStream) { stream.close() }
    func streamDidClose(_ stream: any ByteStream) {}
}
