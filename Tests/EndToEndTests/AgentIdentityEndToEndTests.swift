import Foundation
import LariatHub
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A cluster token in a second agent's hands must not redirect the cluster's traffic (issue #7,
/// finding 1): the established agent keeps new streams, ids are unique per cluster, and the
/// listing shows who is connected and who carries the streams.
@Suite(.serialized) struct AgentIdentityEndToEndTests {
    struct Row: Decodable { var cluster: String; var agent: String; var role: String; var carriesNewStreams: Bool; var healthy: Bool }

    func listing(_ rig: TunnelRig) throws -> [Row] {
        let r = try rig.api("/v1/agents")
        guard r.status == 200 else { throw TestFailure("GET /v1/agents: \(r.status) \(r.body)") }
        return try JSONDecoder().decode([Row].self, from: Data(r.body.utf8))
    }

    @Test func aSecondAgentWithTheClusterTokenDoesNotTakeTheClustersStreams() throws {
        let target = try TargetServer(mode: .echo)
        defer { target.stop() }
        let rig = try TunnelRig(forwards: ["local/127.0.0.1:\(target.port)"])
        defer { rig.shutdown() }
        let port = rig.forwardPorts[0]
        try rig.startAgent(id: "established", extra: ["--allow", "127.0.0.1"])
        #expect(echoRoundTrip(port: port, [1, 2, 3]) == [1, 2, 3], "\(rig.logs)")

        // The intruder holds the token but refuses every target of this test: were it to receive
        // the cluster's new streams (as the newest agent did before), every forward would break.
        try rig.startAgent(id: "intruder", extra: ["--allow", "192.0.2.1"])
        try rig.hub.waitForLog("standing by: new streams stay with \"established\"")
        for i in 0..<20 {
            #expect(echoRoundTrip(port: port, [UInt8(i)]) == [UInt8(i)], "stream \(i) did not go through the established agent\n\(rig.logs)")
        }
        let rows = try listing(rig)
        #expect(rows.count == 2)
        #expect(rows.first { $0.agent == "established" }?.carriesNewStreams == true)
        #expect(rows.first { $0.agent == "intruder" }?.carriesNewStreams == false)

        // The same id again is refused, loudly, and changes nothing.
        let duplicate = try rig.startAgent(id: "established", extra: ["--allow", "127.0.0.1"], waitConnected: false)
        try rig.hub.waitForLog("refused a second connection for agent \"established\" of cluster \"local\"")
        try duplicate.waitForLog("already connected")
        duplicate.stop(SIGKILL)
        #expect(try listing(rig).count == 2)
        #expect(echoRoundTrip(port: port, [9]) == [9])
        // The probe the duplicate triggered found the established agent alive: it is still there.
        #expect(!rig.hub.log.contains("did not answer a liveness probe"), "\(rig.logs)")
    }

    @Test func aRestartedAgentWhoseOldConnectionIsDeadReplacesIt() throws {
        let target = try TargetServer(mode: .echo)
        defer { target.stop() }
        let rig = try TunnelRig(forwards: ["local/127.0.0.1:\(target.port)"])
        defer { rig.shutdown() }
        let old = try rig.startAgent(id: "pod-0", extra: ["--allow", "127.0.0.1"])
        // A frozen process keeps its TCP connection open but answers nothing: like a half-open
        // connection of an agent that restarted elsewhere.
        old.signal(SIGSTOP)
        defer { old.signal(SIGCONT) }
        try rig.startAgent(id: "pod-0", extra: ["--allow", "127.0.0.1"], waitConnected: false)
        try rig.hub.waitForLog("did not answer a liveness probe", timeout: 15)
        try rig.hub.waitForLog("agent \"pod-0\" of cluster \"local\" connected from", timeout: 30)
        // The log now holds two "connected" lines for pod-0: the original and the replacement.
        let connected = rig.hub.log.components(separatedBy: "agent \"pod-0\" of cluster \"local\" connected from").count - 1
        let deadline = Date().addingTimeInterval(30)
        var replaced = connected >= 2
        while !replaced && Date() < deadline {
            usleep(100_000)
            replaced = rig.hub.log.components(separatedBy: "agent \"pod-0\" of cluster \"local\" connected from").count - 1 >= 2
        }
        #expect(replaced, "\(rig.logs)")
        #expect(echoRoundTrip(port: rig.forwardPorts[0], [4, 2]) == [4, 2], "\(rig.logs)")
    }

    @Test func hostileAgentIdsStayInsideTheirJSONStringAndLogField() throws {
        let rig = try TunnelRig(forwards: [])
        defer { rig.shutdown() }
        let evil = "x\",\"role\":\"cluster\"}\nforged log line"
        try rig.startAgent(id: evil, role: "node", waitConnected: false)
        try rig.hub.waitForLog(#"agent "x\",\"role\":\"cluster\"}\nforged log line" of cluster "local" connected"#)
        #expect(!rig.hub.log.contains("\nforged log line"), "an agent id broke a log line")
        let rows = try listing(rig)
        #expect(rows.count == 1 && rows[0].agent == evil && rows[0].role == "node")
    }
}
