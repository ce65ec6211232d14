@testable import LariatHub
import Foundation
import Testing

/// The audit line is written by hand for speed; it must say exactly what an encoder would.
@Suite struct KubernetesAuditLineTests {
    func viaEncoder(_ e: KubernetesAuditEvent) throws -> [String: Any] {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .custom { date, enc in
            var c = enc.singleValueContainer()
            try c.encode(date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)))
        }
        return try JSONSerialization.jsonObject(with: encoder.encode(e)) as! [String: Any]
    }

    @Test func theHandWrittenLineMatchesTheEncodersFields() throws {
        var full = KubernetesAuditEvent(kind: .sessionEnd, time: Date(timeIntervalSince1970: 1_796_000_000.123),
                                        requestID: "k8s-0-1", user: "u-x", username: "al\"ice\n", groups: ["a", "system:authenticated"],
                                        token: "token-abcde", source: "10.0.0.1", cluster: "c", path: "cluster-agent:a1",
                                        method: "GET", uri: "/api/v1/namespaces/n/pods/p/exec", verb: "get", apiGroup: nil,
                                        resource: "pods", subresource: "exec", namespace: "n", name: "p")
        full.status = 101; full.bytesIn = 5; full.bytesOut = 7; full.durationMicros = 99; full.pod = "p"
        full.container = "main"; full.command = ["sh", "-c", "exit 3"]; full.tty = true; full.exitCode = 3
        full.error = "é ✓"; full.recording = "/d/r.cast"
        let sparse = KubernetesAuditEvent(kind: .request, time: Date(timeIntervalSince1970: 0), requestID: "r", user: "u",
                                          username: "u", groups: [], token: nil, source: "s", cluster: "c", path: nil,
                                          method: "POST", uri: "/", verb: "post")
        for event in [full, sparse] {
            let line = event.jsonLine
            let parsed = try #require(try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any])
            let encoded = try viaEncoder(event)
            #expect(Set(parsed.keys) == Set(encoded.keys))
            for (key, value) in encoded {
                #expect("\(parsed[key] ?? "missing")" == "\(value)", "\(key)")
            }
            let keys = parsed.keys.sorted()
            let text = String(decoding: line, as: UTF8.self)
            // Keys in sorted order, as before.
            let positions = keys.map { text.range(of: "\"\($0)\":")!.lowerBound }
            #expect(positions == positions.sorted())
            #expect(!text.contains("\n"))
        }
    }
}
