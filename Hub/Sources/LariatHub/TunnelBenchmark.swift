import LariatProtocol
import LariatRuntime
import LariatTunnel

/// The tunnel's own iperf: measures one agent's tunnel from the hub with no extra server.
/// Round trips come from session PINGs; upload streams `bytes` from a hub-side source into the
/// agent's discard sink; download streams the agent's source into a hub-side sink. The session
/// carries it like any other bulk stream, so the figures include TLS, framing and compression.
/// Loop-confined (runs on the tunnel's worker).
final class TunnelBenchmark {
    struct Report: Sendable {
        var cluster: String
        var agent: String
        var bytes: Int
        var payload: String
        var compression: Bool
        var rttMicros: [Double]
        var uploadSeconds: Double
        var downloadSeconds: Double
        var error: String?

        var uploadMiBps: Double { uploadSeconds > 0 ? Double(bytes) / 1_048_576 / uploadSeconds : 0 }
        var downloadMiBps: Double { downloadSeconds > 0 ? Double(bytes) / 1_048_576 / downloadSeconds : 0 }

        var json: String {
            let rtts = rttMicros.map { String(format: "%.1f", $0) }.joined(separator: ",")
            let err = error.map { #","error":"\#($0.replacingOccurrences(of: "\"", with: "'"))""# } ?? ""
            return #"{"cluster":"\#(cluster)","agent":"\#(agent)","bytes":\#(bytes),"payload":"\#(payload)","compression":\#(compression),"rtt_us":[\#(rtts)],"upload_mib_per_s":\#(String(format: "%.1f", uploadMiBps)),"download_mib_per_s":\#(String(format: "%.1f", downloadMiBps)),"upload_seconds":\#(uploadSeconds),"download_seconds":\#(downloadSeconds)\#(err)}"#
        }

        var text: String {
            if let error { return "bench of cluster \(cluster) via agent \(agent) failed: \(error)\n" }
            let sorted = rttMicros.sorted()
            let rtt = sorted.isEmpty ? "n/a" : String(format: "min %.0f µs, median %.0f µs, max %.0f µs (%d pings)",
                                                       sorted.first!, sorted[sorted.count / 2], sorted.last!, sorted.count)
            return """
            Tunnel to cluster \(cluster) via agent \(agent) (\(payload) payload, LZ4 \(compression ? "on" : "off"))
              round trip   \(rtt)
              hub → agent  \(String(format: "%8.1f", uploadMiBps)) MiB/s  (\(bytes >> 20) MiB in \(String(format: "%.2f", uploadSeconds)) s)
              agent → hub  \(String(format: "%8.1f", downloadMiBps)) MiB/s  (\(bytes >> 20) MiB in \(String(format: "%.2f", downloadSeconds)) s)

            """
        }
    }

    let tunnel: TunnelConnection
    let loop: UVLoop
    var report: Report
    let completion: (Report) -> Void
    private var pingsLeft = 10
    private var started: UInt64 = 0
    private var watchdog: UVTimer?
    private var done = false
    /// Keeps this object alive while it runs (nothing else holds it).
    private var selfReference: TunnelBenchmark?

    init(tunnel: TunnelConnection, cluster: String, agent: String, bytes: Int, json: Bool, timeoutSeconds: Double,
         completion: @escaping (Report) -> Void) {
        self.tunnel = tunnel
        self.loop = tunnel.loop
        self.completion = completion
        report = Report(cluster: cluster, agent: agent, bytes: bytes, payload: json ? "json" : "random",
                        compression: tunnel.session.compressionEnabled, rttMicros: [], uploadSeconds: 0,
                        downloadSeconds: 0)
        selfReference = self
        let w = UVTimer(loop: loop)
        w.start(afterMilliseconds: UInt64(timeoutSeconds * 1000)) { [unowned self] in
            self.fail("timed out after \(Int(timeoutSeconds)) s")
        }
        watchdog = w
    }

    func start() { measureRoundTrips() }

    private func measureRoundTrips() {
        tunnel.onRoundTrip = { [unowned self] nanos in
            self.report.rttMicros.append(Double(nanos) / 1000)
            self.pingsLeft -= 1
            if self.pingsLeft > 0 {
                self.loop.schedule(afterMilliseconds: 20) { [unowned self] in self.tunnel.ping() }
            } else {
                self.tunnel.onRoundTrip = nil
                self.upload()
            }
        }
        tunnel.ping()
    }

    private func upload() {
        let source = SyntheticStream(loop: loop, mode: .source(bytes: report.bytes, compressible: report.payload == "json"))
        started = loop.now
        source.onFinished = { [unowned self] _ in
            guard !self.done else { return }
            self.report.uploadSeconds = Double(self.loop.now - self.started) / 1e9
            self.download()
        }
        open("lariat:discard", source)
    }

    private func download() {
        let sink = SyntheticStream(loop: loop, mode: .discard)
        started = loop.now
        let expected = report.bytes
        sink.onFinished = { [unowned self] s in
            guard !self.done else { return }
            self.report.downloadSeconds = Double(self.loop.now - self.started) / 1e9
            if s.bytesWritten != expected {
                self.fail("download delivered \(s.bytesWritten) of \(expected) bytes")
            } else {
                self.finish()
            }
        }
        open("lariat:source:\(report.bytes)\(report.payload == "json" ? ":json" : "")", sink)
    }

    private func open(_ target: String, _ stream: SyntheticStream) {
        do {
            try tunnel.openBridged(target: target, streamClass: .bulk, connection: stream) { [unowned self] code, message in
                self.fail("agent refused \(target): \(code.name): \(message) (agents older than this hub lack the probe targets)")
            }
        } catch {
            fail("cannot open a stream: \(error)")
        }
    }

    private func fail(_ why: String) {
        report.error = why
        finish()
    }

    private func finish() {
        guard !done else { return }
        done = true
        tunnel.onRoundTrip = nil
        watchdog?.close()
        watchdog = nil
        completion(report)
        selfReference = nil
    }
}
