import Testing
@testable import LariatProtocol

/// `SessionConfig.uncompressedTargets` (PROTOCOL.md §8, CRIME/BREACH): streams to these targets
/// never carry LZ4 DATA in either direction, while other streams of the same session are compressed.
@Suite struct UncompressedTargetTests {
    /// Moves every byte both ways through frame inspection; returns the DATA frames seen per stream
    /// as (stream, compressed) pairs.
    private func pumpRecordingData(_ p: SessionPair) -> [(stream: UInt32, compressed: Bool, up: Bool)] {
        var seen: [(stream: UInt32, compressed: Bool, up: Bool)] = []
        for _ in 0..<10_000 {
            let up = p.drain(p.client)
            let down = p.drain(p.server)
            if up.isEmpty && down.isEmpty { break }
            for case .data(let id, _, let compressed, _) in SessionPair.frames(up) { seen.append((id, compressed, true)) }
            for case .data(let id, _, let compressed, _) in SessionPair.frames(down) { seen.append((id, compressed, false)) }
            p.injectToServer(up)
            p.injectToClient(down)
        }
        return seen
    }

    @Test func k8sProxyStreamIsNeverCompressedInEitherDirection() throws {
        let p = SessionPair()
        #expect(p.client.compressionEnabled && p.server.compressionEnabled)
        let k8s = try p.client.open(target: "k8s-proxy")
        let tcp = try p.client.open(target: "tcp:10.0.0.5:6443")
        _ = pumpRecordingData(p)
        let payload = jsonLikeBytes(100_000)
        for id in [k8s, tcp] {
            #expect(p.client.write(id, payload) == payload.count)
            #expect(p.server.write(id, payload) == payload.count)
        }
        let frames = pumpRecordingData(p)

        #expect(p.serverDelegate.received[k8s] == payload)
        #expect(p.clientDelegate.received[k8s] == payload)
        #expect(p.serverDelegate.received[tcp] == payload)
        #expect(p.clientDelegate.received[tcp] == payload)
        let k8sFrames = frames.filter { $0.stream == k8s }
        #expect(k8sFrames.contains { $0.up } && k8sFrames.contains { !$0.up })
        #expect(!k8sFrames.contains { $0.compressed }, "LZ4 DATA on the k8s-proxy stream")
        // The same bytes on an ordinary stream are compressed both ways.
        #expect(frames.contains { $0.stream == tcp && $0.compressed && $0.up })
        #expect(frames.contains { $0.stream == tcp && $0.compressed && !$0.up })
    }

    @Test func ruleIsLocalAndConfigurable() throws {
        // The opener lists no exemption: it compresses its side; the acceptor keeps the default
        // and sends raw. Each receiver takes what comes.
        var open = SessionConfig()
        open.uncompressedTargets = []
        let p = SessionPair(clientConfig: open)
        let id = try p.client.open(target: "k8s-proxy")
        _ = pumpRecordingData(p)
        let payload = jsonLikeBytes(50_000)
        _ = p.client.write(id, payload)
        _ = p.server.write(id, payload)
        let frames = pumpRecordingData(p)
        #expect(p.serverDelegate.received[id] == payload)
        #expect(p.clientDelegate.received[id] == payload)
        #expect(frames.contains { $0.compressed && $0.up })
        #expect(!frames.contains { $0.compressed && !$0.up })
        #expect(p.client.stats.compressedFramesSent > 0)
        #expect(p.server.stats.compressedFramesSent == 0)
    }
}
