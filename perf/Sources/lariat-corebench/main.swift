// lariat-corebench: in-process throughput of the protocol engine. A client and a server
// Session are joined by a memory buffer; the client writes N MiB on one or more streams and the
// server consumes them. No sockets, no TLS: this isolates framing, flow control, scheduling and
// LZ4. Run under `valgrind --tool=callgrind` (perf/scripts/core-callgrind.sh) for instruction
// and malloc counts per MiB; wall-clock MiB/s is printed for orientation only.
import LariatProtocol
#if canImport(Glibc)
import Glibc
#endif

final class Sink: SessionDelegate {
    var received = 0
    var opened = false
    func session(_ session: Session, authenticate hello: Hello) -> HandshakeDecision { .accept(sessionID: "bench") }
    func session(_ session: Session, openRequested stream: UInt32, target: String, streamClass: StreamClass) {
        session.accept(stream)
    }
    func session(_ session: Session, streamOpened stream: UInt32) { opened = true }
    func session(_ session: Session, streamOpenFailed stream: UInt32, code: ErrorCode, message: String) {}
    func session(_ session: Session, streamData stream: UInt32, bytes: UnsafeRawBufferPointer) {
        received += bytes.count
        session.consumed(stream, bytes.count)
    }
    func session(_ session: Session, streamFinished stream: UInt32) {}
    func session(_ session: Session, streamReset stream: UInt32, code: ErrorCode, message: String) {}
    func session(_ session: Session, streamClosed stream: UInt32) {}
    func sessionHasOutput(_ session: Session) {}
    func session(_ session: Session, ended: SessionEnd) {}
}

struct Options {
    var mib = 256
    var streams = 1
    var data = "random"
    var lz4 = true
    var json = false

    init(_ args: [String]) {
        var i = 1
        while i < args.count {
            let v = i + 1 < args.count ? args[i + 1] : ""
            switch args[i] {
            case "--mib": mib = Int(v) ?? mib; i += 1
            case "--streams": streams = Int(v) ?? streams; i += 1
            case "--data": data = v; i += 1
            case "--lz4": lz4 = v != "off"; i += 1
            case "--json": json = true
            case "-h", "--help":
                print("usage: lariat-corebench [--mib N] [--streams N] [--data random|json] [--lz4 on|off] [--json]")
                exit(0)
            default:
                print("unknown option \(args[i])"); exit(2)
            }
            i += 1
        }
    }
}

func makeSource(_ kind: String) -> [UInt8] {
    let n = 1 << 20
    if kind == "json" {
        var s = ""
        var i = 0
        while s.utf8.count < n {
            s += #"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"web-\#(i)","namespace":"default","uid":"\#(i * 7919)","labels":{"app":"web","tier":"frontend"}},"status":{"phase":"Running","podIP":"10.42.\#(i % 200).\#(i % 250)"}}"# + "\n"
            i += 1
        }
        return Array(s.utf8.prefix(n))
    }
    var x: UInt64 = 0x9E37_79B9_7F4A_7C15
    return (0..<n).map { _ in x ^= x << 13; x ^= x >> 7; x ^= x << 17; return UInt8(truncatingIfNeeded: x) }
}

func nowNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func run(_ opt: Options) {
    var config = SessionConfig()
    config.compression = opt.lz4
    let clientSink = Sink(), serverSink = Sink()
    var hello = Hello()
    hello.agentID = "bench"
    let client = Session(role: .client(hello), config: config, delegate: clientSink, now: 1)
    let server = Session(role: .server, config: config, delegate: serverSink, now: 1)
    let wire = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 * 1024, alignment: 16)

    /// Moves one batch of output each way. Returns bytes moved.
    func pump() -> Int {
        var moved = 0
        let a = client.produce(into: wire)
        if a > 0 { server.receive(UnsafeRawBufferPointer(rebasing: wire[0..<a]), now: 1); moved += a }
        let b = server.produce(into: wire)
        if b > 0 { client.receive(UnsafeRawBufferPointer(rebasing: wire[0..<b]), now: 1); moved += b }
        return moved
    }

    while pump() > 0 {}
    var ids: [UInt32] = []
    for i in 0..<opt.streams { ids.append(try! client.open(target: "bench-\(i)")) }
    while pump() > 0 {}

    let source = makeSource(opt.data)
    let total = opt.mib << 20
    var written = 0
    var wireBytes = 0
    let start = nowNanos()
    source.withUnsafeBytes { src in
        var offset = 0
        while serverSink.received < total {
            for id in ids where written < total {
                let space = client.sendSpace(id)
                if space >= 16 * 1024 {
                    let n = min(space, src.count - offset, total - written)
                    let w = client.write(id, UnsafeRawBufferPointer(rebasing: src[offset..<(offset + n)]))
                    written += w
                    offset = (offset + w) % src.count
                }
            }
            wireBytes += pump()
        }
    }
    let elapsed = Double(nowNanos() - start) / 1e9
    let mibps = Double(total) / 1048576 / elapsed
    let ratio = Double(client.stats.wireDataBytesSent) / Double(client.stats.dataBytesSent)
    if opt.json {
        print(#"{"mib":\#(opt.mib),"streams":\#(opt.streams),"data":"\#(opt.data)","lz4":\#(opt.lz4),"seconds":\#(elapsed),"mib_per_s":\#(mibps),"wire_ratio":\#(ratio),"frames":\#(client.stats.framesSent),"compressed_frames":\#(client.stats.compressedFramesSent)}"#)
    } else {
        print("moved \(opt.mib) MiB (\(opt.data), lz4 \(opt.lz4 ? "on" : "off"), \(opt.streams) stream(s)) in \(elapsed) s: \(Int(mibps)) MiB/s; wire/payload \(ratio); frames \(client.stats.framesSent), compressed \(client.stats.compressedFramesSent)")
    }

}

run(Options(CommandLine.arguments))
