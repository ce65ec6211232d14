import Foundation
import LariatHub
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Cluster stats upward (issue #10, "Must show": "Cluster status shows nodes, pods and version
/// from the stand-in, and turns stale when the agent stops reporting"): a real hub with a short
/// `--stats-interval`, a real agent whose `k8s-proxy` reaches the Kubernetes stand-in, and
/// `GET /v3/clusters/local` and `lariat-hub cluster list` read as an admin would.
@Suite(.serialized) struct ClusterStatsEndToEndTests {
    static let interval = 1.0

    @Test func statsFromTheStandinAppearAndTurnStaleWhenTheAgentDies() throws {
        let bootstrapPassword = "stats-bootstrap-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let rig = try TunnelRig(forwards: [], hubArguments: ["--stats-interval", "\(Self.interval)"],
                                hubEnvironment: ["LARIAT_BOOTSTRAP_PASSWORD": bootstrapPassword])
        defer { rig.shutdown() }
        let seed = rig.directory + "/stats-seed.json"
        try Self.seed.write(toFile: seed, atomically: true, encoding: .utf8)
        let proxyToken = "stats-proxy-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        var options = KubeStandin.Options()
        options.proxyToken = proxyToken
        options.serverVersion = "v1.31.2"
        options.pods = ["default/p1", "default/p2,phase=Pending"]
        options.extraArguments = ["--seed", seed]
        let standin = try KubeStandin(directory: rig.directory, options: options)
        defer { standin.stop() }
        let tokenFile = rig.directory + "/stats-k8s-token"
        try (proxyToken + "\n").write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let agent = try rig.startAgent(id: "stats-agent", extra: ["--k8s-api", "127.0.0.1:\(standin.port)", "--k8s-token-file", tokenFile,
                                                                  "--k8s-ca-file", standin.caFile])
        let connectedAt = Date()
        let cli = try Self.adminCLI(rig, bootstrapPassword: bootstrapPassword)
        let bearer = try cli.savedToken()

        // Fresh stats: version, both nodes, both pods, the warning event.
        var cluster: [String: Any] = [:]
        let fresh = try poll(timeout: 30) {
            cluster = try Self.cluster(rig, bearer: bearer)
            return Self.condition(cluster, "StatsFresh")?["status"] as? String == "True"
        }
        #expect(fresh != nil, "no fresh stats: \(cluster)\n\(rig.logs)\n\(standin.log.suffix(1500))")
        print("ClusterStatsEndToEnd: fresh stats seen \(String(format: "%.1f", Date().timeIntervalSince(connectedAt))) s after the agent connected")
        let status = cluster["status"] as? [String: Any] ?? [:]
        #expect((status["kubernetes"] as? [String: Any])?["version"] as? String == "v1.31.2", "\(status)")
        let nodes = status["nodes"] as? [String: Any] ?? [:]
        #expect(nodes["total"] as? Int == 2, "\(nodes)")
        #expect(nodes["ready"] as? Int == 2, "\(nodes)")
        #expect(((nodes["items"] as? [[String: Any]]) ?? []).compactMap { $0["name"] as? String }.sorted() == ["standin-node", "worker-1"])
        // Only worker-1 declares resources: 4 CPUs, 16Gi; allocatable 3500m, 15Gi.
        let capacity = status["capacity"] as? [String: Any] ?? [:]
        #expect(capacity["cpuMillis"] as? Int == 4000, "\(capacity)")
        #expect(capacity["memoryBytes"] as? Int == 16 << 30, "\(capacity)")
        #expect(capacity["pods"] as? Int == 110, "\(capacity)")
        let allocatable = status["allocatable"] as? [String: Any] ?? [:]
        #expect(allocatable["cpuMillis"] as? Int == 3500, "\(allocatable)")
        #expect(allocatable["memoryBytes"] as? Int == 15 << 30, "\(allocatable)")
        let pods = status["pods"] as? [String: Any] ?? [:]
        #expect(pods["total"] as? Int == 2, "\(pods)")
        #expect((pods["byPhase"] as? [String: Any])?["Running"] as? Int == 1, "\(pods)")
        #expect((pods["byPhase"] as? [String: Any])?["Pending"] as? Int == 1, "\(pods)")
        let warnings = status["warnings"] as? [[String: Any]] ?? []
        #expect(warnings.count == 1, "\(warnings)")
        #expect(warnings.first?["reason"] as? String == "BackOff")
        #expect(warnings.first?["object"] as? String == "pod/web")
        #expect(warnings.first?["count"] as? Int == 4)
        // The agents' part of the status is there too (the other writer's fields survive).
        #expect((status["agents"] as? [[String: Any]])?.first?["name"] as? String == "stats-agent")
        #expect(Self.condition(cluster, "Connected")?["status"] as? String == "True")

        // The reads went to the API server through the agent, as lariat:controller.
        let reads = try standin.requests(pathPrefix: "/api/v1/nodes")
        #expect(!reads.isEmpty)
        #expect(reads.allSatisfy { $0.impersonateUser == "lariat:controller" }, "\(reads)")

        let listed = try cli.succeed(["cluster", "list"]).output
        let row = listed.split(separator: "\n").first { $0.hasPrefix("local\t") }.map(String.init) ?? ""
        #expect(row.contains("v1.31.2") && row.contains("\t2/2\t") && row.hasSuffix("\tfresh"), "\(listed)")

        // The agent dies: within three intervals (and a read's timeout) the stats are stale, and kept.
        agent.stop(SIGKILL, timeout: 5)
        let stale = try poll(timeout: 30) {
            cluster = try Self.cluster(rig, bearer: bearer)
            return Self.condition(cluster, "StatsFresh")?["status"] as? String == "False"
        }
        #expect(stale != nil, "never stale: \(cluster)\n\(rig.logs)")
        print("ClusterStatsEndToEnd: StatsFresh False \(stale.map { String(format: "%.1f", $0) } ?? "-") s after SIGKILL (interval \(Self.interval) s)")
        #expect(Self.condition(cluster, "StatsFresh")?["reason"] as? String == "Stale")
        #expect(((cluster["status"] as? [String: Any])?["kubernetes"] as? [String: Any])?["version"] as? String == "v1.31.2")
        let staleRow = try cli.succeed(["cluster", "list"]).output
        #expect(staleRow.contains("\tSTALE"), "\(staleRow)")
    }

    // MARK: Helpers

    /// Two nodes (the stand-in's own declares no resources), a warning event and a normal one.
    static let seed = #"""
    {"kind":"List","items":[
     {"kind":"Node","apiVersion":"v1","metadata":{"name":"worker-1"},"status":{
       "capacity":{"cpu":"4","memory":"16Gi","pods":"110"},"allocatable":{"cpu":"3500m","memory":"15Gi","pods":"110"},
       "conditions":[{"type":"Ready","status":"True","reason":"KubeletReady"}],
       "nodeInfo":{"kubeletVersion":"v1.31.2","osImage":"stand-in","architecture":"amd64","containerRuntimeVersion":"standin://1"}}},
     {"kind":"Event","apiVersion":"v1","metadata":{"name":"web.1","namespace":"default"},
      "involvedObject":{"kind":"Pod","name":"web","namespace":"default"},"reason":"BackOff",
      "message":"Back-off restarting failed container","type":"Warning","count":4,"lastTimestamp":"2026-01-01T10:00:00Z"},
     {"kind":"Event","apiVersion":"v1","metadata":{"name":"web.2","namespace":"default"},
      "involvedObject":{"kind":"Pod","name":"web","namespace":"default"},"reason":"Scheduled","message":"ok","type":"Normal",
      "lastTimestamp":"2026-01-01T10:00:00Z"}
    ]}
    """#

    static func cluster(_ rig: TunnelRig, bearer: String) throws -> [String: Any] {
        let r = try rig.api("/v3/clusters/local", bearer: bearer)
        guard r.status == 200 else { throw TestFailure("GET /v3/clusters/local: \(r.status) \(r.body)") }
        return (try? JSONSerialization.jsonObject(with: Data(r.body.utf8))) as? [String: Any] ?? [:]
    }

    static func condition(_ cluster: [String: Any], _ type: String) -> [String: Any]? {
        ((cluster["status"] as? [String: Any])?["conditions"] as? [[String: Any]])?.first { $0["type"] as? String == type }
    }

    /// The CLI logged in as admin, the one-time password changed first.
    static func adminCLI(_ rig: TunnelRig, bootstrapPassword: String) throws -> HubCLI {
        let cli = HubCLI(configPath: rig.directory + "/stats-cli.json")
        let login = ["login", "--server", "https://127.0.0.1:\(rig.httpsPort)", "--username", "admin", "--password-stdin",
                     "--ca-checksum", rig.caChecksum]
        let first = try cli.succeed(login, stdin: bootstrapPassword + "\n")
        if first.output.contains("must be changed") {
            try cli.succeed(["user", "change-password", "--password-stdin"], stdin: "\(bootstrapPassword)\n\(cli.adminPassword)\n")
            try cli.succeed(login, stdin: cli.adminPassword + "\n")
        }
        return cli
    }

    /// Polls `condition` every 100 ms; the seconds it took, or nil after `timeout`.
    func poll(timeout: Double, _ condition: () throws -> Bool) rethrows -> Double? {
        let start = Date()
        while Date().timeIntervalSince(start) < timeout {
            if try condition() { return Date().timeIntervalSince(start) }
            usleep(100_000)
        }
        return nil
    }
}
