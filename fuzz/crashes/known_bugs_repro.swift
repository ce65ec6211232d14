// Standalone reproducers for the LariatProtocol bugs of fuzz/crashes/README.md. Build and run:
//   swiftc -Onone -swift-version 5 -parse-as-library -I Sources/CLZ4 -module-name Repro Sources/LariatProtocol/*.swift \
//          fuzz/crashes/known_bugs_repro.swift -o /tmp/repro -llz4
//   /tmp/repro hang | leak | readyqueue | utf8
// (compiled into the same module as the sources to inspect internal state)
import Glibc
// Standalone reproducers for suspected LariatProtocol bugs. Usage: repro <case>
final class D: SessionDelegate {
    var name: String
    var writeOnOpen = 0
    var autoConsume = true
    var delivered: [UInt32: Int] = [:]
    var log: [String] = []
    init(_ n: String) { name = n }
    func session(_ s: Session, authenticate hello: Hello) -> HandshakeDecision { .accept(sessionID: "x") }
    func session(_ s: Session, openRequested stream: UInt32, target: String, streamClass: StreamClass) {
        if writeOnOpen > 0 { let b = [UInt8](repeating: 7, count: writeOnOpen); _ = b.withUnsafeBytes { s.write(stream, $0) } }
        s.accept(stream)
    }
    func session(_ s: Session, streamOpenFailed stream: UInt32, code: ErrorCode, message: String) { log.append("openFailed \(stream) \(code)") }
    func session(_ s: Session, streamData stream: UInt32, bytes: UnsafeRawBufferPointer) {
        if autoConsume { s.consumed(stream, bytes.count) } else { delivered[stream, default: 0] += bytes.count }
    }
    func session(_ s: Session, streamFinished stream: UInt32) {}
    func session(_ s: Session, streamReset stream: UInt32, code: ErrorCode, message: String) { log.append("reset \(stream) \(code) \(message)") }
    func session(_ s: Session, streamClosed stream: UInt32) {}
    func sessionHasOutput(_ s: Session) {}
    func session(_ s: Session, ended: SessionEnd) { log.append("ended \(ended)") }
}

var buf = [UInt8](repeating: 0, count: 1 << 16)
func pump(_ a: Session, _ b: Session, rounds: Int = 50) {
    for _ in 0..<rounds {
        var moved = false
        for (x, y) in [(a, b), (b, a)] {
            let n = buf.withUnsafeMutableBytes { x.produce(into: $0) }
            if n > 0 { moved = true; buf.withUnsafeBytes { y.receive(UnsafeRawBufferPointer(rebasing: $0[0..<n]), now: 1) } }
        }
        if !moved { break }
    }
}
func oneWay(_ a: Session, _ b: Session) {
    let n = buf.withUnsafeMutableBytes { a.produce(into: $0) }
    buf.withUnsafeBytes { b.receive(UnsafeRawBufferPointer(rebasing: $0[0..<n]), now: 1) }
}

@main enum KnownBugs {
    static func main() {
        setvbuf(stdout, nil, _IONBF, 0)
        let which = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "all"
        var agentCfg = SessionConfig(), hubCfg = SessionConfig()
        let ad = D("agent"), hd = D("hub")

        switch which {
        case "hang":
            // Hub's session window (64 KiB) < stream window (256 KiB); hub does not consume.
            hubCfg.sessionWindow = 64 * 1024; hd.autoConsume = false
            let agent = Session(role: .client(Hello()), config: agentCfg, delegate: ad, now: 1)
            let hub = Session(role: .server, config: hubCfg, delegate: hd, now: 1)
            pump(agent, hub)
            let id = try! agent.open(target: "k8s-api", streamClass: .interactive)
            pump(agent, hub)
            let data = [UInt8](repeating: 1, count: 200_000)
            _ = data.withUnsafeBytes { agent.write(id, $0) }
            print("before: agent session credit", agent.sessionSendCredit)
            pump(agent, hub, rounds: 3)
            print("agent session credit now", agent.sessionSendCredit, "- calling produce again (hangs if the bug is present)")
            let n = buf.withUnsafeMutableBytes { agent.produce(into: $0) }
            print("produce returned", n)
        case "leak":
            // Hub's session window 64 KiB, stream window 256 KiB; hub app resets a stream holding unconsumed data.
            hubCfg.sessionWindow = 64 * 1024; hd.autoConsume = false
            let agent = Session(role: .client(Hello()), config: agentCfg, delegate: ad, now: 1)
            let hub = Session(role: .server, config: hubCfg, delegate: hd, now: 1)
            pump(agent, hub)
            let a = try! agent.open(target: "tcp:a:1")
            pump(agent, hub)
            let data = [UInt8](repeating: 1, count: 64 * 1024)
            _ = data.withUnsafeBytes { agent.write(a, $0) }
            pump(agent, hub)
            print("hub delivered on \(a):", hd.delivered[a] ?? 0, "agent session credit:", agent.sessionSendCredit)
            hub.reset(a, code: .cancel, message: "client went away")
            hd.autoConsume = true
            pump(agent, hub)
            let b = try! agent.open(target: "tcp:b:1")
            pump(agent, hub)
            _ = data.withUnsafeBytes { agent.write(b, UnsafeRawBufferPointer(rebasing: $0[0..<1000])) }
            pump(agent, hub)
            print("stream \(b): agent unsent bytes:", agent.slots[agent.slot(b)!].sendBuffer.count,
                  "agent session credit:", agent.sessionSendCredit,
                  "hub sessionUnannounced:", hub.sessionUnannounced, "hub sessionRecvCredit:", hub.sessionRecvCredit)
        case "readyqueue":
            hubCfg.maxStreams = 2; hd.writeOnOpen = 100
            let agent = Session(role: .client(Hello()), config: agentCfg, delegate: ad, now: 1)
            let hub = Session(role: .server, config: hubCfg, delegate: hd, now: 1)
            pump(agent, hub)
            for _ in 0..<4 { let id = try! agent.open(target: "k8s-api"); agent.reset(id) }
            print("agent queued 4 OPEN+RESET pairs; delivering them to the hub in one read")
            oneWay(agent, hub)
            print("hub survived; streams:", hub.streamCount)
        case "utf8":
            let agent = Session(role: .client(Hello()), config: agentCfg, delegate: ad, now: 1)
            let hub = Session(role: .server, config: hubCfg, delegate: hd, now: 1)
            pump(agent, hub)
            let id = try! agent.open(target: "k8s-api")
            print("resetting with a 1500-byte message of 3-byte characters")
            agent.reset(id, code: .cancel, message: String(repeating: "€", count: 500))
            print("survived")
        default: print("cases: hang leak readyqueue utf8")
        }
    }
}
