// lariat-bench: a libuv load generator and target server for tunnel benchmarks.
// One loop on the main thread per process; preallocated payload buffers; no Foundation.
import ArgumentParser
import LariatRuntime
#if canImport(Glibc)
import Glibc
#endif

@main
struct LariatBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lariat-bench",
        abstract: "Tunnel benchmark: target server, throughput, latency, open rate, idle streams, delay relay.",
        discussion: """
        Clients speak a 16-byte header to the target's `auto` mode ("LBN1", op, shape, count), so one \
        target port serves sink (up), source (down) and echo (latency) at once; run the target with \
        --mode auto (default) for use with the clients here.
        """,
        version: LariatVersion.version,
        subcommands: [Target.self, Throughput.self, Latency.self, OpenRate.self, Idle.self, Agents.self,
                      DelayRelayCommand.self])
}

/// Thousands of connections need thousands of descriptors: lift the soft limit to the hard one.
func raiseFileLimit() { FileLimit.raiseToHardLimit() }

func endpoint(_ s: String) throws -> (String, Int) {
    guard let hp = parseHostPort(s) else { throw ValidationError("expected HOST:PORT, got \"\(s)\"") }
    return hp
}

func parseBytes(_ s: String) throws -> UInt64 {
    var digits = s
    var mult: UInt64 = 1
    for (suffix, m) in [("GiB", UInt64(1) << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)] {
        if s.hasSuffix(suffix) {
            digits = String(s.dropLast(suffix.count))
            mult = m
            break
        }
    }
    guard let v = UInt64(digits) else { throw ValidationError("bad byte count \"\(s)\"") }
    return v * mult
}

struct Target: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a target server; prints its port on stdout.")
    @Option(help: "HOST:PORT to listen on (port 0: any).") var listen = "127.0.0.1:0"
    @Option(help: "auto (header decides; what the clients here use), sink, echo, source.") var mode = "auto"
    @Option(help: "source mode: bytes to send per connection.") var bytes = "1GiB"
    @Option(help: "source mode: random or json.") var data = "random"

    func run() throws {
        guard let m = TargetMode(rawValue: mode) else { throw ValidationError("bad --mode") }
        guard let shape = Shape(rawValue: data) else { throw ValidationError("bad --data") }
        let (host, port) = try endpoint(listen)
        let loop = UVLoop(name: "target")
        let server = TargetServer(loop: loop, mode: m, sourceBytes: try parseBytes(bytes), sourceShape: shape)
        let p = try server.listen(host: host, port: port)
        out("\(p)")
        loop.run()
    }
}

struct Throughput: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "N parallel connections each moving B bytes (or until --seconds).")
    @Option(help: "HOST:PORT of an auto-mode target (possibly through a tunnel).") var connect: String
    @Option(help: "Parallel connections.") var streams = 1
    @Option(help: "Bytes per connection (K/M/G, KiB/MiB/GiB suffixes).") var bytes = "256MiB"
    @Option(help: "up (client → target) or down (target → client).") var direction = "up"
    @Option(help: "random or json.") var data = "random"
    @Option(help: "Time limit; what was delivered by then counts.") var seconds: Double = 10
    @Flag(help: "One JSON object on stdout.") var json = false

    func run() throws {
        let (host, port) = try endpoint(connect)
        guard let dir = Direction(rawValue: direction) else { throw ValidationError("bad --direction") }
        guard let shape = Shape(rawValue: data) else { throw ValidationError("bad --data") }
        let loop = UVLoop(name: "throughput")
        let r = ThroughputRun(loop: loop, host: host, port: port, streams: streams,
                              bytesPerStream: try parseBytes(bytes), direction: dir, shape: shape, seconds: seconds)
        r.begin()
        loop.run()
        r.report(json: json)
        if r.failed > 0 { throw ExitCode(2) }
    }
}

struct Latency: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Round trips of --size bytes against an echo target (µs percentiles).")
    @Option(help: "HOST:PORT of an auto-mode (or echo-mode) target.") var connect: String
    @Option(help: "Message size in bytes.") var size = 64
    @Option(help: "Round trips to measure.") var count = 10_000
    @Option(help: "Round trips per second (0: back to back).") var rate: Double = 0
    @Option(help: "Unrecorded warm-up round trips.") var warmup = 50
    @Option(help: "Time limit.") var seconds: Double = 10
    @Option(help: "Label in the output.") var label = ""
    @Flag(help: "One JSON object on stdout.") var json = false

    func run() throws {
        let (host, port) = try endpoint(connect)
        let loop = UVLoop(name: "latency")
        let r = LatencyRun(loop: loop, host: host, port: port, size: size, count: count, rate: rate,
                           seconds: seconds, warmup: warmup)
        r.begin()
        loop.run()
        r.report(json: json, label: label)
        if r.error != nil { throw ExitCode(2) }
    }
}

struct OpenRate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "openrate", abstract: "Connections opened + first byte echoed per second.")
    @Option(help: "HOST:PORT of an auto-mode target.") var connect: String
    @Option(help: "Connections to open.") var count = 2000
    @Option(help: "Connections in progress at once (--concurrency = --count: a burst, all started at once).") var concurrency = 16
    @Option(help: "Time limit.") var seconds: Double = 10
    @Flag(help: "One JSON object on stdout.") var json = false

    func run() throws {
        raiseFileLimit()  // a burst holds --concurrency descriptors
        let (host, port) = try endpoint(connect)
        let loop = UVLoop(name: "openrate")
        let r = OpenRun(loop: loop, host: host, port: port, count: count, concurrency: concurrency,
                        seconds: seconds, hold: false)
        r.begin()
        loop.run()
        r.report(json: json)
    }
}

struct Idle: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Open --count connections (each echoes one byte end to end), print a ready line, hold them idle.")
    @Option(help: "HOST:PORT of an auto-mode target.") var connect: String
    @Option(help: "Connections to open and hold.") var count = 1000
    @Option(help: "Connections in progress at once.") var concurrency = 64
    @Option(help: "Hold time after all are open (the process can also just be killed).") var hold: Double = 60
    @Option(help: "Time limit for opening.") var seconds: Double = 60
    @Flag(help: "JSON ready line.") var json = false

    func run() throws {
        raiseFileLimit()
        let (host, port) = try endpoint(connect)
        let loop = UVLoop(name: "idle")
        let r = OpenRun(loop: loop, host: host, port: port, count: count, concurrency: concurrency,
                        seconds: seconds, hold: true)
        let holdMs = UInt64(hold * 1000)
        r.onAllOpen = { [unowned r] in
            r.report(json: json)
            r.deadline?.start(afterMilliseconds: holdMs) { r.finish() }
        }
        r.begin()
        loop.run()
    }
}

struct DelayRelayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delay-relay",
        abstract: "TCP relay holding each chunk for --delay-ms in each direction; prints its port.")
    @Option(help: "HOST:PORT to listen on.") var listen = "127.0.0.1:0"
    @Option(help: "HOST:PORT to relay to.") var connect: String
    @Option(name: .customLong("delay-ms"), help: "One-way delay in milliseconds.") var delayMs: Double = 10

    func run() throws {
        let (lh, lp) = try endpoint(listen)
        let (ch, cp) = try endpoint(connect)
        let loop = UVLoop(name: "relay")
        let relay = DelayRelay(loop: loop, upstreamHost: ch, upstreamPort: cp, delayMilliseconds: delayMs)
        out("\(try relay.listen(host: lh, port: lp))")
        loop.run()
    }
}
