// lariat-allocgate: heap allocations per MiB through the whole tunnel path — bridge, session,
// LZ4 attempt, WebSocket, TLS, and the mirror path on the other end — with hub and agent in one
// process over MemoryByteStream (no sockets, one thread). Every stream moves data both ways;
// after a warm-up (windows grown, buffers pooled) malloc/calloc/realloc/aligned calls are
// counted by an interposer (CLariatAllocCounter) while `--mib` MiB arrive, then divided by the
// MiB. Prints one JSON object. AllocationGateTests fail when it exceeds perf/alloc-budget.json.
//
// Steady state should allocate nothing per read or per frame (docs/ARCHITECTURE.md); what
// remains is per-event work (timers, pings) that does not grow with the bytes.
import CLariatAllocCounter
import LariatProtocol
import LariatRuntime
import LariatTestSupport
import LariatTunnel
#if canImport(Glibc)
import Glibc
#endif

struct Options {
    /// MiB counted (received, all streams and both directions together).
    var mib = 64
    /// MiB moved before counting starts.
    var warmupMiB = 16
    var streams = 1
    var data = "random"
    var json = false
    /// The run fails if it has not finished by then: a stall must not hang a test.
    var deadlineSeconds = 120
    /// Each stream's initial receive window (see `measure`).
    static let streamWindow = 1 << 20

    init(_ args: [String]) {
        var i = 1
        func value() -> String { i + 1 < args.count ? args[i + 1] : "" }
        while i < args.count {
            switch args[i] {
            case "--mib": mib = Int(value()) ?? mib; i += 1
            case "--warmup-mib": warmupMiB = Int(value()) ?? warmupMiB; i += 1
            case "--streams": streams = max(1, Int(value()) ?? streams); i += 1
            case "--data": data = value(); i += 1
            case "--deadline": deadlineSeconds = Int(value()) ?? deadlineSeconds; i += 1
            case "--json": json = true
            case "-h", "--help":
                print("usage: lariat-allocgate [--mib N] [--warmup-mib N] [--streams N] [--data random|json] [--deadline S] [--json]")
                exit(0)
            default:
                print("unknown option \(args[i])"); exit(2)
            }
            i += 1
        }
        guard mib > 0, warmupMiB >= 0, data == "random" || data == "json" else {
            print("--mib must be positive, --data random or json"); exit(2)
        }
    }
}

/// The bytes every source sends: byte i of a stream is `doubled[i % period]`. Stored twice so
/// any window up to `period` long is contiguous (one write, one memcmp).
struct Pattern {
    static let period = 65_521  // prime: frames, records and reads never line up with it
    let doubled: [UInt8]

    init(_ kind: String) {
        var table = [UInt8](repeating: 0, count: Self.period)
        if kind == "json" {
            let line = Array(#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"web-1","namespace":"default"},"status":{"phase":"Running"}}"#.utf8) + [10]
            for i in table.indices { table[i] = line[i % line.count] }
        } else {
            var x: UInt64 = 0x9E37_79B9_7F4A_7C15
            for i in table.indices { x ^= x << 13; x ^= x >> 7; x ^= x << 17; table[i] = UInt8(truncatingIfNeeded: x) }
        }
        doubled = table + table
    }
}

/// What every endpoint reports to; decides when counting starts and stops.
final class Run {
    let warmupBytes: Int
    let measuredBytes: Int
    var received = 0
    var counting = false
    var countedFrom = 0
    var countedBytes = 0
    var startedAt: UInt64 = 0
    var counts = lariat_alloc_counts()
    /// Frames sent by both sessions so far (set once the tunnel exists).
    var framesSent: () -> Int = { 0 }
    var framesAtStart = 0
    var frames = 0
    var seconds = 0.0
    var endpointsDone = 0
    var failure: String?
    var onAllDone: () -> Void = {}
    let endpoints: Int

    init(options: Options) {
        warmupBytes = options.warmupMiB << 20
        measuredBytes = options.mib << 20
        endpoints = options.streams * 2
    }

    /// Called after every read, from inside the callback: the window opens and closes on
    /// read boundaries, so it holds whole reads only.
    func didReceive(_ count: Int) {
        received += count
        if !counting && countedBytes == 0 && received >= warmupBytes {
            counting = true
            countedFrom = received
            startedAt = UVLoop.now
            framesAtStart = framesSent()
            lariat_alloc_counter_reset()
            lariat_alloc_counter_enable(1)
        } else if counting && received - countedFrom >= measuredBytes {
            lariat_alloc_counter_enable(0)
            lariat_alloc_counter_get(&counts)
            counting = false
            countedBytes = received - countedFrom
            frames = framesSent() - framesAtStart
            seconds = Double(UVLoop.now - startedAt) / 1e9
        }
    }

    func endpointDone() {
        endpointsDone += 1
        if endpointsDone == endpoints { onAllDone() }
    }

    func fail(_ why: String) {
        if failure == nil { failure = why }
        onAllDone()
    }
}

/// One end of a stream: sends `total` pattern bytes with backpressure, then half-closes;
/// checks that `total` pattern bytes arrive, then EOF.
final class Endpoint: ByteStreamHandler {
    let run: Run
    let pattern: Pattern
    let total: Int
    let name: String
    private var sent = 0
    private var received = 0
    private var shutDown = false
    private var gotEOF = false

    init(run: Run, pattern: Pattern, total: Int, name: String) {
        self.run = run
        self.pattern = pattern
        self.total = total
        self.name = name
    }

    /// Writes until the stream holds a backlog; `streamDidDrain` resumes.
    func pump(_ stream: any ByteStream) {
        pattern.doubled.withUnsafeBytes { table in
            while sent < total, stream.bufferedWriteBytes == 0, !stream.isClosed {
                let count = min(64 * 1024, total - sent)
                let start = sent % Pattern.period
                stream.write(UnsafeRawBufferPointer(rebasing: table[start..<start + count]))
                sent += count
            }
        }
        if sent == total && !shutDown {
            shutDown = true
            stream.shutdownWrite()
        }
    }

    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        let same = pattern.doubled.withUnsafeBytes { table in
            var checked = 0
            while checked < bytes.count {
                let count = min(Pattern.period, bytes.count - checked)
                let start = (received + checked) % Pattern.period
                if memcmp(table.baseAddress! + start, bytes.baseAddress! + checked, count) != 0 { return false }
                checked += count
            }
            return true
        }
        guard same else { return run.fail("\(name): received bytes differ from those sent at offset \(received)") }
        received += bytes.count
        guard received <= total else { return run.fail("\(name): more bytes than were sent") }
        run.didReceive(bytes.count)
    }

    func streamDidReadEOF(_ stream: any ByteStream) {
        guard received == total else { return run.fail("\(name): EOF after \(received) of \(total) bytes") }
        gotEOF = true
        run.endpointDone()
    }

    func streamDidDrain(_ stream: any ByteStream) { pump(stream) }

    func streamDidFail(_ stream: any ByteStream, _ error: StreamError) {
        run.fail("\(name): \(error)")
    }

    func streamDidClose(_ stream: any ByteStream) {
        if !gotEOF { run.fail("\(name): closed before EOF (\(received) of \(total) bytes)") }
    }
}

func rounded(_ x: Double, _ places: Double = 1000) -> Double { (x * places).rounded() / places }

/// `text` as a JSON string literal.
func jsonString(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\u{0}"..."\u{1F}":
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

/// True if the interposer sees an allocation the Swift runtime makes from its own library:
/// otherwise every count would be zero and the gate would pass on nothing.
func interposerCountsLibraryAllocations() -> Bool {
    lariat_alloc_counter_reset()
    lariat_alloc_counter_enable(1)
    let probe = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 8)  // swift_slowAlloc, in libswiftCore
    probe.deallocate()
    lariat_alloc_counter_enable(0)
    var counts = lariat_alloc_counts()
    lariat_alloc_counter_get(&counts)
    lariat_alloc_counter_reset()
    return counts.malloc + counts.aligned > 0 && counts.free > 0
}

/// Runs the measurement; returns the exit status.
func measure(_ options: Options) -> Int32 {
    guard interposerCountsLibraryAllocations() else {
        print(options.json ? #"{"error":"the malloc interposer is not in effect: nothing would be counted"}"#
                           : "lariat-allocgate: the malloc interposer is not in effect: nothing would be counted")
        return 1
    }
    let pattern = Pattern(options.data)
    let run = Run(options: options)
    // Each direction of each stream carries an equal share of warm-up plus measured bytes, and a
    // little more, so the window closes before any stream ends.
    let perDirection = (run.warmupBytes + run.measuredBytes) / (options.streams * 2) + (1 << 20)

    let loop = UVLoop(name: "allocgate")
    var tunnelOptions = MemoryTunnel.Options()
    // The sessions' clock stands still, so the count depends on the bytes alone: on the real
    // clock the RTT probe sends a PING (and gets a PONG) per millisecond of transfer, whose
    // encoding allocates, and a slow debug build on a loaded machine would count more of them.
    // A still clock also stills window auto-tuning (it times round trips), so streams start
    // with the window a busy stream grows to: with 128 KiB, credit returns cut the output into
    // more, smaller TLS records, each of which OpenSSL allocates for.
    let epoch = UVLoop.now
    tunnelOptions.clock = { epoch }
    tunnelOptions.hubSession.initialStreamWindow = Options.streamWindow
    tunnelOptions.agentSession.initialStreamWindow = Options.streamWindow
    // The tunnel's connection reads like a tunnel socket (256 KiB reads); the user and target
    // connections like ordinary ones.
    tunnelOptions.transport = MemoryByteStream.Configuration(readChunkBytes: UVLoop.readBufferSize, inFlightLimit: 256 * 1024)
    tunnelOptions.connections = MemoryByteStream.Configuration(readChunkBytes: 64 * 1024, inFlightLimit: 128 * 1024)
    let rig: MemoryTunnel
    do {
        rig = try MemoryTunnel(loop: loop, options: tunnelOptions)
    } catch {
        print("lariat-allocgate: TLS set-up failed: \(error)")
        return 1
    }
    run.framesSent = { rig.hub.session.stats.framesSent + rig.agent.session.stats.framesSent }
    var endpoints: [Endpoint] = []
    rig.onTarget = { id, target in
        let endpoint = Endpoint(run: run, pattern: pattern, total: perDirection, name: "target of stream \(id)")
        endpoints.append(endpoint)
        target.start(handler: endpoint)
        endpoint.pump(target)
    }
    rig.onEstablished = {
        for _ in 0..<options.streams {
            do {
                let stream = try rig.openStream()
                let endpoint = Endpoint(run: run, pattern: pattern, total: perDirection, name: "user of stream \(stream.id)")
                endpoints.append(endpoint)
                stream.user.start(handler: endpoint)
                endpoint.pump(stream.user)
            } catch {
                run.fail("open: \(error)")
            }
        }
    }
    run.onAllDone = { loop.stop() }
    let deadline = UVTimer(loop: loop)
    deadline.start(afterMilliseconds: UInt64(options.deadlineSeconds) * 1000) {
        run.fail("not finished within \(options.deadlineSeconds) s (\(run.received >> 20) MiB received)")
    }
    loop.run()
    deadline.close()
    loop.close()  // closes every stream and timer still open
    _ = rig

    if run.failure == nil && run.countedBytes == 0 { run.failure = "the measured window never closed" }
    let allocations = run.counts.malloc + run.counts.calloc + run.counts.realloc + run.counts.aligned
    let mib = Double(run.countedBytes) / Double(1 << 20)
    let perMiB = mib > 0 ? Double(allocations) / mib : 0
    #if DEBUG
    let configuration = "debug"
    #else
    let configuration = "release"
    #endif
    if options.json {
        var fields: [String] = [
            "\"configuration\":\"\(configuration)\"",
            "\"data\":\"\(options.data)\"",
            "\"streams\":\(options.streams)",
            "\"warmup_mib\":\(options.warmupMiB)",
            "\"measured_mib\":\(rounded(mib))",
            "\"allocations\":\(allocations)",
            "\"malloc\":\(run.counts.malloc)",
            "\"calloc\":\(run.counts.calloc)",
            "\"realloc\":\(run.counts.realloc)",
            "\"aligned\":\(run.counts.aligned)",
            "\"free\":\(run.counts.free)",
            "\"allocations_per_mib\":\(rounded(perMiB))",
            "\"frames\":\(run.frames)",
            "\"allocations_per_frame\":\(run.frames > 0 ? rounded(Double(allocations) / Double(run.frames)) : 0)",
            "\"seconds\":\(rounded(run.seconds))",
        ]
        if let failure = run.failure { fields.append("\"error\":\(jsonString(failure))") }
        print("{" + fields.joined(separator: ",") + "}")
    } else {
        if let failure = run.failure { print("lariat-allocgate: \(failure)") }
        print("\(configuration): \(rounded(mib)) MiB counted in \(rounded(run.seconds)) s, \(allocations) allocations "
              + "(malloc \(run.counts.malloc), calloc \(run.counts.calloc), realloc \(run.counts.realloc), aligned \(run.counts.aligned)), "
              + "\(rounded(perMiB)) per MiB")
    }
    return run.failure == nil ? 0 : 1
}

exit(measure(Options(CommandLine.arguments)))
