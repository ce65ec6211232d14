import Foundation
import Testing

/// The allocation gate (issue #11): heap allocations per MiB through the whole tunnel path —
/// TLS, WebSocket, session, bridges, both ends — must stay within the committed budget
/// (perf/alloc-budget.json). `lariat-allocgate` measures in a process of its own, because
/// counting needs malloc interposed, which must not happen to the test runner.
@Suite struct AllocationGateTests {
    /// MiB counted per run: enough for hundreds of frames of each kind and every buffer pool
    /// warmed, small enough for a debug build in seconds.
    static let measuredMiB = 32
    static let warmupMiB = 8

    @Test func allocationsPerMiBStayWithinTheBudget() throws {
        let budget = try Budget.load()
        let report = try Gate.run(["--mib", "\(Self.measuredMiB)", "--warmup-mib", "\(Self.warmupMiB)", "--json"])
        let configuration = try #require(report["configuration"] as? String)
        let limit = try #require(budget[configuration], "perf/alloc-budget.json has no budget for \(configuration) builds")
        #expect(report["error"] == nil, "\(report["error"] ?? "")")
        let measured = try #require(report["measured_mib"] as? Double)
        #expect(measured >= Double(Self.measuredMiB))
        let perMiB = try #require(report["allocations_per_mib"] as? Double)
        #expect(perMiB <= limit, """
            \(perMiB) allocations per MiB through the tunnel (\(configuration) build), budget \(limit): \
            something on the data path allocates per read or per frame. Run lariat-allocgate, find it \
            (valgrind --tool=callgrind on it, or heaptrack), fix it; raise perf/alloc-budget.json only \
            with a measurement and a reason. Report: \(report)
            """)
    }
}

/// perf/alloc-budget.json: allocations per MiB allowed, per build configuration.
enum Budget {
    static func load() throws -> [String: Double] {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("perf/alloc-budget.json")
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: path)) as? [String: Any]
        guard let limits = object?["allocations_per_mib"] as? [String: Double], !limits.isEmpty else {
            throw GateFailure("\(path.path): no \"allocations_per_mib\" object")
        }
        return limits
    }
}

/// Runs the built `lariat-allocgate` and parses its JSON line.
enum Gate {
    static let binary: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = (exe as NSString).deletingLastPathComponent
        while !FileManager.default.fileExists(atPath: dir + "/lariat-allocgate"), dir != "/" {
            dir = (dir as NSString).deletingLastPathComponent
        }
        return dir + "/lariat-allocgate"
    }()

    static func run(_ arguments: [String]) throws -> [String: Any] {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw GateFailure("lariat-allocgate was not built next to the tests (looked for \(binary))")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard let line = text.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
              let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw GateFailure("lariat-allocgate exited \(process.terminationStatus) without a JSON report:\n\(text)")
        }
        return object
    }
}

struct GateFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
